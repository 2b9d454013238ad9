// Goal: shared test harness for the store tests: a node made of a Pebble
// in a temp dir, store.Bootstrap + store.New, a real transport.Transport
// and a loopback gRPC server serving the Peer.Raft stream, assembled as
// internal/server does, that can be stopped and restarted on the same data
// dir and address. Method: public APIs only; waits poll with a deadline.
package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/grpc"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/hlc"
	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/kv"
	"github.com/cairn-db/cairn/internal/replica"
	"github.com/cairn-db/cairn/internal/router"
	"github.com/cairn-db/cairn/internal/storage"
	"github.com/cairn-db/cairn/internal/store"
	"github.com/cairn-db/cairn/internal/transport"
)

const tickInterval = 10 * time.Millisecond

// testNode is one cairn node without its client front ends.
type testNode struct {
	t     testing.TB
	name  string
	dir   string
	addr  string
	nodes []*cairnpb.Node
	clock *hlc.Clock
	// electionTicks is the Raft election timeout in ticks (default 30).
	electionTicks int

	id  uint64
	db  *pebble.DB
	st  *store.Store
	tr  *transport.Transport
	srv *grpc.Server
	// rt is the node's router (coordinator and forwarding target); gate
	// keeps requests in flight on it apart from a stop (see use).
	rt   *router.Router
	gate sync.RWMutex
	down atomic.Bool
	// unreachable counts messages the transport could not send.
	unreachable atomic.Int64
	running     bool
}

type peerServer struct {
	cairnpb.UnimplementedPeerServer
	tr   *transport.Transport
	node *testNode
}

// Forward serves forwarded requests on the node's router, unless the node
// is stopping.
func (p *peerServer) Forward(ctx context.Context, req *cairnpb.Request) (*cairnpb.Response, error) {
	n := p.node
	if n.down.Load() || !n.gate.TryRLock() {
		return &cairnpb.Response{Error: &cairnpb.Error{Code: kv.Code(kv.ErrUnavailable), Message: "node stopping"}}, nil
	}
	defer n.gate.RUnlock()
	return n.rt.Forward(ctx, req), nil
}

// use runs f with the node's router unless the node is down; stop waits
// for every f in flight (a router must not touch a closed Pebble).
func (n *testNode) use(f func(rt *router.Router)) bool {
	if n.down.Load() || !n.gate.TryRLock() {
		return false
	}
	defer n.gate.RUnlock()
	f(n.rt)
	return true
}

func (p *peerServer) Raft(st cairnpb.Peer_RaftServer) error { return p.tr.HandleStream(st) }

func testLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// listen reserves a loopback address for a node.
func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// start opens (or reopens) the node on ln; with ln nil it listens on the
// node's address again.
func (n *testNode) start(ln net.Listener) {
	t := n.t
	t.Helper()
	if ln == nil && n.addr != "" {
		// The old listener is closed; rebinding the same port can race with
		// the kernel briefly, so retry for a while.
		var err error
		waitFor(t, 5*time.Second, "relisten on "+n.addr, func() bool {
			ln, err = net.Listen("tcp", n.addr)
			return err == nil
		})
	}
	db, err := storage.Open(n.dir, storage.Options{CacheBytes: 4 << 20, MemTableBytes: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	n.db = db
	id, err := store.Bootstrap(db, n.name, n.nodes)
	if err != nil {
		t.Fatal(err)
	}
	n.id = id
	if n.clock == nil {
		n.clock = hlc.New(nil)
	}
	if n.electionTicks == 0 {
		// 300 ms: short enough for quick failovers, long enough that a CI
		// machine busy with -race and other packages does not starve
		// heartbeats into spurious elections (seen at 100 ms).
		n.electionTicks = 30
	}
	st, err := store.New(db, store.Options{
		NodeID: id, TickInterval: tickInterval, ElectionTicks: n.electionTicks, HeartbeatTicks: 1,
		LogKeepEntries: 5, Logger: testLogger().With("node", n.name), Clock: n.clock, Quiesce: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	n.st = st
	cb := st.TransportCallbacks()
	inner := cb.Unreachable
	cb.Unreachable = func(r keys.RangeID, to uint64) {
		n.unreachable.Add(1)
		inner(r, to)
	}
	n.tr = transport.New(id, cb, testLogger())
	for _, p := range st.Nodes() {
		if err := n.tr.AddPeer(p.Id, p.PeerAddress); err != nil {
			t.Fatal(err)
		}
	}
	st.SetTransport(n.tr)
	n.srv = grpc.NewServer()
	n.rt = router.New(st, n.tr, router.Options{Limits: kv.DefaultLimits, RequestTimeout: 5 * time.Second, Clock: n.clock,
		TxnLimits: router.TxnLimits{MaxDuration: 2 * time.Second}})
	cairnpb.RegisterPeerServer(n.srv, &peerServer{tr: n.tr, node: n})
	go func() { _ = n.srv.Serve(ln) }()
	st.Start()
	n.running = true
	n.down.Store(false)
}

// stop shuts the node down in the order internal/server uses: peer
// server, driver, transport, Pebble.
func (n *testNode) stop() {
	if !n.running {
		return
	}
	n.running = false
	n.down.Store(true)
	n.gate.Lock() // wait out requests in flight
	defer n.gate.Unlock()
	n.srv.Stop()
	n.st.Stop()
	n.tr.Close()
	if err := n.db.Close(); err != nil {
		n.t.Errorf("%s: close pebble: %v", n.name, err)
	}
}

func newCluster(t testing.TB, names ...string) []*testNode {
	t.Helper()
	var lns []net.Listener
	cluster := map[string]string{}
	for _, name := range names {
		ln := listen(t)
		lns = append(lns, ln)
		cluster[name] = ln.Addr().String()
	}
	// IDs by sorted name, as server.InitialNodes assigns them.
	var nodes []*cairnpb.Node
	for i, name := range names {
		nodes = append(nodes, &cairnpb.Node{Id: uint64(i + 1), Name: name, PeerAddress: cluster[name]})
	}
	var out []*testNode
	for i, name := range names {
		n := &testNode{t: t, name: name, dir: t.TempDir(), addr: cluster[name], nodes: nodes}
		n.start(lns[i])
		out = append(out, n)
		t.Cleanup(n.stop)
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		<-tick.C
	}
}

// leaderOf waits until the running nodes agree on a leader of range id that
// is itself running and knows it leads, and returns it.
func leaderOf(t testing.TB, nodes []*testNode, id keys.RangeID) *testNode {
	t.Helper()
	var leader *testNode
	waitFor(t, 10*time.Second, fmt.Sprintf("a leader of range %d", id), func() bool {
		leader = nil
		var lead uint64
		for _, n := range nodes {
			if !n.running {
				continue
			}
			r := n.st.Replica(id)
			if r == nil {
				return false
			}
			l := r.Leader()
			if l == 0 || (lead != 0 && l != lead) {
				return false
			}
			lead = l
			if r.IsLeader() {
				leader = n
			}
		}
		return leader != nil && leader.id == lead
	})
	return leader
}

func putCmd(table uint64, key, value string, cond *cairnpb.Condition) *cairnpb.Command {
	return &cairnpb.Command{TableId: table, Op: &cairnpb.Command_Put{Put: &cairnpb.PutRequest{
		Table: "default", Key: []byte(key), Value: []byte(value), Condition: cond,
	}}}
}

// propose proposes cmd on n's replica of range id, stamped by n's clock as
// the router does, and returns the applied result.
func (n *testNode) propose(ctx context.Context, id keys.RangeID, cmd *cairnpb.Command) (replica.Result, error) {
	r := n.st.Replica(id)
	if r == nil {
		return replica.Result{}, fmt.Errorf("%s: no replica of range %d", n.name, id)
	}
	cmd.Timestamp = uint64(n.clock.Now())
	res, err := r.Propose(ctx, cmd)
	if err != nil {
		return res, err
	}
	return res, res.Err
}

// read does a linearizable read of key in table on n: ReadBarrier on the
// range's replica, then Pebble.
func (n *testNode) read(ctx context.Context, id keys.RangeID, table uint64, key string) (version uint64, value string, found bool, err error) {
	r := n.st.Replica(id)
	if r == nil {
		return 0, "", false, fmt.Errorf("%s: no replica of range %d", n.name, id)
	}
	if err := r.ReadBarrier(ctx); err != nil {
		return 0, "", false, err
	}
	raw, closer, err := n.db.Get(keys.DataKey(keys.TableID(table), []byte(key)))
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, "", false, nil
	}
	if err != nil {
		return 0, "", false, err
	}
	defer closer.Close()
	v, val, err := storage.DecodeValue(raw)
	return v, string(bytes.Clone(val)), true, err
}

// mustRead reads key and checks its value and version (version 0: any).
func (n *testNode) mustRead(t testing.TB, id keys.RangeID, table uint64, key, value string, version uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, val, found, err := n.read(ctx, id, table, key)
	if err != nil {
		t.Fatalf("%s: read %s: %v", n.name, key, err)
	}
	if !found || val != value || (version != 0 && v != version) {
		t.Fatalf("%s: read %s = %q version %d (found %v), want %q version %d", n.name, key, val, v, found, value, version)
	}
}
