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
// key forwards the request to the leader. The SDK uses that for every call
// but Get, Put and Delete: it sends the call to one of the configured
// endpoints, sticking to the last one that answered.
//
// Get, Put and Delete are routed by key (routes.go): the Client asks a
// node once per table where its ranges are (Cluster.Routes: ranges,
// leaders, nodes' client addresses; concurrent first calls share the
// lookup), caches the answer (refreshed every 10s, and when a reply shows
// that another node than the chosen one served it or leads the range, or
// the chosen node cannot be reached), and sends linearizable reads and all
// writes straight to the node leading the key's range, Session and Stale
// reads to a random replica of it. Hash tables are routed by the placement
// key the nodes use. A request without a usable route (routing off with
// Config.DisableKeyRouting, no read permission on the whole table, a node
// without a dialable --advertise address) goes to the endpoints as above.
// Routing never changes an answer: a node that no longer leads the range
// forwards, so a stale route costs a hop. RoutingStats counts direct,
// redirected and fallback requests. The connections to discovered nodes
// use the Config's credentials and TLS.
//
// When an endpoint cannot be reached the SDK fails over to the next one,
// trying each endpoint at most once per call (a routed call first tries
// its chosen node by the same rules, then the endpoints; when no endpoint
// can serve a call, the nodes found by routing are tried too, so a Client
// outlives the loss of its configured endpoints):
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
