// Package respapi serves the Redis protocol (RESP2 and RESP3) on
// --listen-resp, so that redis-cli, redis-benchmark and Redis client
// libraries work against cairn unchanged.
//
// # Request path
//
// A connection's goroutine reads a command (internal/resp), looks it up in
// the command table (commands.go) and runs it against the Backend (the
// router: kv.Service plus kv.Batcher), which forwards to the leader of the
// key's range when needed. Every reply is Redis's where Redis defines one;
// backend errors are translated in one place (errors.go): unavailable ->
// "-TRYAGAIN ..." (not applied; clients may retry), timeout -> "-ERR cairn
// timeout: outcome unknown", invalid input -> "-ERR ...".
//
// # Connection state
//
// Per connection: the table (CAIRN.TABLE, default "default"; SELECT only
// knows database 0), the protocol (HELLO 2|3), the client name and library
// (CLIENT SETNAME, SETINFO), a MULTI in progress and the watched keys.
//
// # Commands and their guarantees
//
// Every write is acknowledged after a majority of the range's replicas
// fsynced it; every read is linearizable.
//
//   - GET, a plain SET, DEL: one backend call (DEL of several keys: one
//     atomic batch per kv.MaxBatchOps keys).
//   - INCR, DECR, INCRBY, DECRBY, APPEND, SETNX, GETDEL, SET with NX, XX or
//     GET: atomic read-modify-writes: read value and version, compute, write
//     conditioned on the version, retry on a conflict (at most maxAttempts
//     times). Concurrent ones on the same key on this node are combined into
//     one write (rmw.go).
//   - MSET, MSETNX: one atomic batch (at most kv.MaxBatchOps keys, which
//     today must lie in one range: every table is one range).
//   - MGET, EXISTS of several keys: reads repeated until two rounds agree,
//     so the reply is a snapshot (txn.validateReads).
//   - WATCH/MULTI/EXEC: optimistic transactions (txn.go, runExec). WATCH
//     records each key's version; EXEC reads the watched keys and the keys
//     of the queued commands, aborts (null reply) if a watched key's version
//     changed, runs the queued commands against that read, and commits their
//     writes as one atomic batch conditioned on every key read being
//     unchanged, retrying from the read on a conflict with an unwatched key.
//     Commands that may be queued in MULTI: GET, SET, SETNX, GETDEL, MGET,
//     MSET, MSETNX, INCR, DECR, INCRBY, DECRBY, APPEND, STRLEN, SETEX,
//     PSETEX, GETEX, DEL, EXISTS, TYPE, TTL, PTTL, PERSIST, EXPIRE, PEXPIRE,
//     EXPIREAT, PEXPIREAT, PING, ECHO, UNWATCH.
//     Any other command inside MULTI is refused with "-ERR Command not
//     allowed inside a transaction" and EXEC then fails with EXECABORT.
//   - TTL: a key's expiry is an absolute time (unix ms) carried with its
//     value; the Raft log decides when a key is gone (see
//     internal/replica/ttl.go). Commands that change only the TTL (EXPIRE,
//     PERSIST, GETEX) rewrite the value with a new version, so a WATCHer
//     sees them as a change, as in Redis. INCR, DECR and APPEND keep the
//     TTL; SET, MSET and SETNX remove it unless KEEPTTL. A relative TTL is
//     turned into an absolute time with this node's clock, except for a
//     plain SET EX/PX, which passes it to the leader as is.
//   - SCAN pages through List; its cursor is a number naming a page token
//     kept by the node (scan.go), because clients parse cursors as numbers.
//   - Pipelines: consecutive plain SETs already received are written as one
//     atomic batch, consecutive GETs read in parallel (pipeline.go).
//
// # Limits and bad input
//
// Every limit is an Options field with a Default constant: the largest
// bulk string is the key or value limit plus slack; commands, MULTI queues
// and watched keys are bounded; a command started but not finished within
// PartialCommandTimeout, or replies the client does not take within
// WriteTimeout, or replies over MaxOutputBufferBytes close the connection;
// connections over MaxConnections are refused. A panic while serving a
// connection is logged and closes that connection only.
//
// # Goroutines
//
// Serve runs one goroutine per listener and one per connection; the
// combiner has none of its own (the first waiter of a key leads its
// batch); multi-key reads fan out to at most prefetchParallel short-lived
// goroutines. Close cancels the backend calls in flight, closes every
// connection and waits for all of them.
package respapi
