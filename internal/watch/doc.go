// Package watch streams the changes of a key or a key prefix to clients,
// in order, resumable after a disconnect without gaps.
//
// Where changes come from: every replica records each change it applies in
// the key's history (keys.HistoryKey, written in the same Pebble batch as
// the data, so it is replicated, survives restarts and travels in
// snapshots) and hands it to the node's Hub once the batch is committed.
// A watch is served by any node holding replicas of the watched keys,
// leader or not: a follower's stream is as complete as the leader's, only
// a little later.
//
// Order and resumption: versions are HLC timestamps, ordered within a
// range (a range applies its changes in version order) but not across
// ranges, whose clocks differ. So a watcher's place is not one version but
// a Position: for each span of keys, the version up to which every change
// was delivered. A client that reconnects presents its Position; the node
// replays the history after it (per key, proving from each entry's Prev
// link that nothing was trimmed in between) and then continues with the
// live stream, skipping what the replay already sent. A split changes
// nothing: the children of a range continue its versions, and Positions
// are about keys, not range IDs.
//
// Bounds: a watcher's live buffer holds Options.Buffer events; a watcher
// that falls further behind is cut off with ErrOverflow and resumes from
// history. A resume the history cannot serve (trimmed past the Position)
// fails with ErrCompacted: the client must read the keys afresh.
package watch
