// Package client is the Go SDK of cairn: reads, writes, listings, tables and
// cluster status over the gRPC API of api/cairnpb.
//
//	c, err := client.New(client.Config{Endpoints: []string{"127.0.0.1:7379"}})
//	if err != nil { ... }
//	defer c.Close()
//	ver, err := c.Put(ctx, "default", []byte("k"), []byte("v"))
//	val, ver, err := c.Get(ctx, "default", []byte("k"))
//	_, err = c.Put(ctx, "default", []byte("k"), []byte("v2"), client.IfVersion(ver))
//	if errors.Is(err, client.ErrConditionFailed) { ... }
//
// # Routing and failover
//
// Every node serves every request: a node that does not lead the range of a
// key forwards the request to the leader. So the SDK needs no knowledge of
// ranges; it sends each call to one of the configured endpoints, sticking to
// the last one that answered. (Routing straight to range leaders, as the
// design asks of the Go client, is a later step; it needs no change to this
// API.)
//
// When an endpoint cannot be reached the SDK fails over to the next one,
// trying each endpoint at most once per call:
//
//   - Reads (Get, List, GetTable, ListTables, ClusterStatus) move on after
//     any Unavailable error, and after ErrTooStale (another node's replica
//     may prove a stale read's bound): a read has no effect, so repeating
//     it is safe.
//   - Writes (Put, Delete, CreateTable, DropTable) move on only after errors
//     that prove the request was not executed: no connection to the endpoint
//     could be made within Config.DialTimeout (so nothing was sent), or the
//     node answered that no leader could be reached (the "unavailable" and
//     "not_leader" codes, given before anything is proposed). If the
//     connection breaks after a write was sent, the write may or may not
//     have taken effect: the call returns an error matching ErrTimeout and
//     does not retry, because repeating an unconditional write could apply
//     it twice and a conditional one could then fail misleadingly.
//
// # Consistency
//
// Get and List read linearizably unless told otherwise (or the table's
// default says otherwise): WithConsistency(Session) reads this Client's
// own writes and never goes back, served by any replica that has caught
// up; WithConsistency(Stale) with WithMaxStaleness(d) accepts data up to
// d old. The Client keeps the session token itself (SessionToken and
// SetSessionToken hand it to another Client); WithServed reports which
// level and node served a read.
//
// # Errors
//
// Failed calls return an *Error carrying the server's stable code; classify
// it with errors.Is against the sentinels (ErrNotFound, ErrConditionFailed,
// ErrTableNotFound, ErrTableExists, ErrInvalidArgument, ErrUnavailable,
// ErrTimeout, ErrInternal). ErrUnavailable means the request was not
// executed and may be retried; ErrTimeout means its outcome is unknown.
//
// # Deadlines
//
// A call whose context has no deadline gets Config.RequestTimeout for the
// whole call, failovers included.
package client
