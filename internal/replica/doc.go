// Package replica is one range's replica on one node: its Raft group
// (a raft.RawNode over a raftlog.Log), its state machine (apply of
// Commands to the range's keys in Pebble), and the queues through which
// request goroutines propose writes and wait for linearizable reads.
//
// Ownership: the store's driver goroutine owns the RawNode, the log, the
// applied state and the waiter maps; it alone calls the methods documented
// "driver only". Request goroutines call Propose and ReadBarrier, which
// enqueue under mu and wait on a channel that the driver triggers after
// the effect is durable and applied. Status fields that request goroutines
// read (leader, term, applied) are typed atomics.
//
// Writes: Propose encodes a Command, the driver hands it to raft, and the
// waiter fires when the entry applies — after a majority has fsynced it.
// If this replica stops leading before that, its waiters keep waiting
// for their entries' indexes (handover.go): an entry that applies answers
// as usual, one that another entry replaced fails with kv.ErrNotLeader
// (not applied, so callers retry), and only where that cannot be told
// does a waiter fail with kv.ErrTimeout ("outcome unknown").
//
// Reads: ReadBarrier uses Raft's ReadIndex (safe without clock
// assumptions): the leader confirms it still leads with a heartbeat round
// and returns its commit index; the read waits until this replica has
// applied that index and then reads Pebble directly. Concurrent reads share
// one ReadIndex round. Leases (no round trip) are a later optimisation.
//
// Versions: a write's version is max(proposer's HLC timestamp, the range's
// max version + 1), decided at apply, so every replica computes the same
// version and a range's versions strictly increase across leader changes
// and restarts (see docs/design/versions.md).
//
// Splits and merges are commands of the ranges themselves (split.go,
// merge.go; docs/design/splits.md, docs/design/merges.md): a split
// narrows the range and creates its right neighbour in one apply batch; a
// merge freezes the right range, then widens the left one over it, and
// the store destroys the right range's replicas.
package replica
