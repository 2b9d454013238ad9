// Package sim is a deterministic simulation of a cairn cluster: N nodes
// (default 3), each a real store.Store with real replicas, real raftlog and
// real Pebble, driven from ONE goroutine through the store's driver steps
// (Tick, Deliver, DrainRequests, ProcessReady) instead of Store.Start.
//
// Why: real-process fault tests find bugs slowly and cannot replay them.
// Here everything that decides an interleaving comes from one seed, so a
// failing seed replays exactly, under a debugger if need be, and thousands
// of seeds of crashes, partitions and message chaos run in minutes (the
// FoundationDB / TigerBeetle VOPR habit; STYLE.md section 6).
//
// What is simulated:
//
//   - Time: a step counter; one step is 1 ms of simulated time and a Raft
//     tick is tickEvery steps (each node ticks at its own phase). Every
//     store gets Options.Now and an hlc.Clock reading simulated time (plus a
//     per-node skew that changes on restart).
//   - Raft's randomness: etcd raft draws election timeouts from
//     crypto/rand.Reader; Run points it at a seeded ChaCha8 stream and
//     restores it afterwards (so Run is not reentrant; runs are serialized).
//   - Network (network.go): a queue of messages with seeded delay, drop,
//     duplication, reordering (long delays), partitions (sets of cut
//     directed node pairs, healed later) and clogs (a link that holds its
//     messages and delivers them in a burst when it clears). Messages are
//     marshalled on send,
//     as the real transport does. Some drops are reported to Raft as
//     unreachable (and snapshot failures), as transport.Transport does.
//   - Disks: Pebble on vfs.NewCrashableMem with automatic compactions off;
//     seeded steps flush and compact. A crash takes CrashClone of the FS
//     (keeping only synced data), drops the store, and later reopens it
//     (store.Bootstrap returns the stored ID, then store.New). Some crashes
//     happen in the middle of a Ready pass, at a Send: a leader has then
//     sent entries it has not yet fsynced.
//   - Clients (client.go): a seeded workload of puts (unique values),
//     conditional puts, deletes, conditional deletes and linearizable gets
//     on a few keys. Writes go to the leader (via the gateway's leader hint,
//     as the router forwards) or to a random replica, and are retried on
//     ErrNotLeader; reads run ReadBarrierAsync on the gateway's replica and
//     then read that node's Pebble. Writes whose node crashes or that time
//     out are "unknown" (maybe applied).
//   - Table churn (churn.go): extra tables created and dropped through the
//     meta range, with writes into them, so that replica creation and
//     destruction, reconcile and meta snapshots run under the same faults.
//
// Checkers (check.go, model.go): after every step, at most one leader per
// term per range; applied entries agree across nodes and incarnations (the
// (term, type, data) of every applied index, read back from the Raft log,
// and a hash of the range's state machine at every applied index); a key's
// version never goes down on a node. At the end, after healing everything
// and letting the cluster settle: all replicas hold the same data and the
// same catalog, no replica or data of a dropped table is left behind, no
// acknowledged write is lost, and the whole client history is
// linearizable per key (porcupine, with a register model that checks
// versions too; unknown writes may or may not have happened). Liveness:
// the healed cluster must settle, and in a calm phase after that every
// operation must succeed within an election timeout, with no failed read
// barrier (this catches lost ReadIndex requests and stuck proposals,
// which a client would otherwise just retry).
//
// Replaying: a failing seed prints itself and the command that replays it,
//
//	go test ./internal/sim -run TestSim -seed=N -v
//
// (add -simtrace to print every simulated event), and the path of porcupine's
// HTML visualization when the history is not linearizable. Long sweeps:
//
//	go test ./internal/sim -run TestSim -seeds=10000 -timeout=0
//
// A panic in cairn or raft code (raft panics when it finds a log it was
// promised missing) fails the seed too.
//
// Config.Bug plants a known bug (a read without its barrier, a disk that
// forgets synced writes) so that a test can prove the checkers fire.
// scenario_test.go reuses the harness for targeted regression scenarios:
// the test holds chosen messages, cuts links, crashes and restarts nodes.
//
// Determinism notes: never call Store.Start (the simulation is the driver);
// anything that iterates a map to decide an order breaks replay (store.New
// opens replicas in map order, so the simulation feeds raft a constant
// random stream while a store opens or reconciles replicas); Pebble runs
// with automatic compactions off and is flushed and compacted at seeded
// steps. A seed that does not replay is a bug: TestSimReplaysExactly.
package sim
