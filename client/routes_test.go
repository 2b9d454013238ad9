// Tests of the route cache (routes.go). Goal: a key maps to the range that
// holds it (hash tables by placement key, with the nodes' own hashkey
// code), refreshes are single and spaced, corrections and unreachable
// nodes steer requests away, and the cache is safe under concurrent use.
// Method: the cache alone with a fake clock; then a Client against two
// in-process gRPC "nodes" that report which of them served each request.
package client

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/frontend/grpcapi"
	"github.com/cairn-db/cairn/internal/keys/hashkey"
	"github.com/cairn-db/cairn/internal/kv/kvtest"
)

// fakeClock is a settable clock for the cache.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// threeRanges: [,"g") led by 1, ["g","p") by 2, ["p",) by 3; nodes 1-3
// have addresses a1-a3.
func threeRanges() *cairnpb.RoutesResponse {
	return &cairnpb.RoutesResponse{
		Partitioning: "range",
		Ranges: []*cairnpb.RangeStatus{
			{Id: 12, Start: []byte("p"), Leader: 3, Replicas: []uint64{1, 2, 3}},
			{Id: 10, End: []byte("g"), Leader: 1, Replicas: []uint64{1, 2, 3}},
			{Id: 11, Start: []byte("g"), End: []byte("p"), Leader: 2, Replicas: []uint64{1, 2, 3}},
		},
		Nodes: []*cairnpb.NodeStatus{{Id: 1, ClientAddress: "h:1"}, {Id: 2, ClientAddress: "h:2"}, {Id: 3, ClientAddress: "h:3"}},
	}
}

func mustRefresh(t *testing.T, rc *routeCache, table string, resp *cairnpb.RoutesResponse) {
	t.Helper()
	if !rc.beginRefresh(table) {
		t.Fatalf("beginRefresh(%q) = false", table)
	}
	rc.finishRefresh(table, resp, false)
}

func TestRouteLookupByKey(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	rc := newRouteCache(clk.now)
	if _, ok, refresh, missing := rc.lookup("t", []byte("a"), false); ok || !refresh || !missing {
		t.Fatalf("empty cache: ok=%v refresh=%v missing=%v, want false true true", ok, refresh, missing)
	}
	mustRefresh(t, rc, "t", threeRanges())
	for key, want := range map[string]uint64{"": 1, "a": 1, "f\xff": 1, "g": 2, "o": 2, "p": 3, "zzz": 3} {
		tg, ok, refresh, _ := rc.lookup("t", []byte(key), false)
		if !ok || refresh || tg.node != want || tg.addr != fmt.Sprintf("h:%d", want) {
			t.Errorf("lookup(%q) = %+v ok=%v refresh=%v, want node %d", key, tg, ok, refresh, want)
		}
	}
	// Any replica: always one of the range's.
	for range 50 {
		tg, ok, _, _ := rc.lookup("t", []byte("k"), true)
		if !ok || tg.node < 1 || tg.node > 3 {
			t.Fatalf("any-replica lookup = %+v ok=%v", tg, ok)
		}
	}
	// Another table is not known.
	if _, ok, _, missing := rc.lookup("u", []byte("a"), false); ok || !missing {
		t.Fatalf("other table: ok=%v missing=%v", ok, missing)
	}
}

func TestRouteLookupGapsAndUnknowns(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	rc := newRouteCache(clk.now)
	resp := &cairnpb.RoutesResponse{
		Ranges: []*cairnpb.RangeStatus{
			{Id: 1, Start: []byte("b"), End: []byte("d"), Leader: 1},
			{Id: 2, Start: []byte("f"), End: []byte("h"), Leader: 0}, // leader unknown
			{Id: 3, Start: []byte("h"), End: []byte("k"), Leader: 2}, // no address
			{Id: 4, Start: []byte("k"), End: []byte("m"), Leader: 3}, // wildcard address
			{Id: 5, Start: []byte("c"), End: []byte("e"), Leader: 1}, // overlaps 1: dropped
		},
		Nodes: []*cairnpb.NodeStatus{{Id: 1, ClientAddress: "h:1"}, {Id: 2}, {Id: 3, ClientAddress: "0.0.0.0:7379"}},
	}
	mustRefresh(t, rc, "t", resp)
	for _, key := range []string{"a", "d", "e", "f", "i", "l", "m", "z"} {
		if tg, ok, refresh, _ := rc.lookup("t", []byte(key), false); ok || !refresh {
			t.Errorf("lookup(%q) = %+v ok=%v refresh=%v, want no route and a refresh", key, tg, ok, refresh)
		}
	}
	if tg, ok, _, _ := rc.lookup("t", []byte("c"), false); !ok || tg.node != 1 {
		t.Errorf("lookup(c) = %+v ok=%v, want node 1", tg, ok)
	}
}

func TestRouteLookupHashTable(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	rc := newRouteCache(clk.now)
	bounds := hashkey.InitialBounds(4) // the starts of 4 equal hash intervals after the first
	starts := append([][]byte{nil}, bounds...)
	resp := &cairnpb.RoutesResponse{Partitioning: "hash"}
	for i, s := range starts {
		var end []byte
		if i+1 < len(starts) {
			end = starts[i+1]
		}
		resp.Ranges = append(resp.Ranges, &cairnpb.RangeStatus{Id: uint64(i + 1), Start: s, End: end, Leader: uint64(i + 1)})
		resp.Nodes = append(resp.Nodes, &cairnpb.NodeStatus{Id: uint64(i + 1), ClientAddress: fmt.Sprintf("h:%d", i+1)})
	}
	mustRefresh(t, rc, "h", resp)
	seen := map[uint64]bool{}
	for i := range 200 {
		key := []byte(fmt.Sprintf("key-%06d", i))
		tg, ok, _, _ := rc.lookup("h", key, false)
		if !ok {
			t.Fatalf("lookup(%q): no route", key)
		}
		// The range must be the one whose interval holds the key's
		// placement key, found independently.
		p := hashkey.Encode(key)
		want := uint64(0)
		for j, s := range starts {
			if bytes.Compare(p, s) >= 0 {
				want = uint64(j + 1)
			}
		}
		if tg.node != want {
			t.Fatalf("lookup(%q) = node %d, want %d", key, tg.node, want)
		}
		seen[tg.node] = true
	}
	if len(seen) != len(starts) {
		t.Fatalf("sequential keys reached %d of %d ranges", len(seen), len(starts))
	}
}

func TestRouteRefreshSpacingAndTTL(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	rc := newRouteCache(clk.now)
	if !rc.beginRefresh("t") {
		t.Fatal("first beginRefresh = false")
	}
	if rc.beginRefresh("t") {
		t.Fatal("beginRefresh while one runs = true")
	}
	rc.finishRefresh("t", threeRanges(), false)
	clk.advance(minRefreshInterval / 2)
	if rc.beginRefresh("t") {
		t.Fatal("beginRefresh within minRefreshInterval = true")
	}
	if _, _, refresh, _ := rc.lookup("t", []byte("a"), false); refresh {
		t.Fatal("fresh routes due for refresh")
	}
	clk.advance(routeTTL)
	tg, ok, refresh, _ := rc.lookup("t", []byte("a"), false)
	if !ok || tg.node != 1 || !refresh {
		t.Fatalf("expired routes: %+v ok=%v refresh=%v, want still used and due", tg, ok, refresh)
	}
	// A failed refresh keeps the old routes.
	if !rc.beginRefresh("t") {
		t.Fatal("beginRefresh after TTL = false")
	}
	rc.finishRefresh("t", nil, false)
	if tg, ok, _, _ := rc.lookup("t", []byte("a"), false); !ok || tg.node != 1 {
		t.Fatalf("after a failed refresh: %+v ok=%v", tg, ok)
	}
	// A refusal leaves the table unrouted for deniedTTL, without refreshes.
	clk.advance(minRefreshInterval)
	if !rc.beginRefresh("t") {
		t.Fatal("beginRefresh = false")
	}
	rc.finishRefresh("t", nil, true)
	clk.advance(deniedTTL / 2)
	if _, ok, refresh, _ := rc.lookup("t", []byte("a"), false); ok || refresh {
		t.Fatalf("denied table: ok=%v refresh=%v, want no route and no refresh", ok, refresh)
	}
	clk.advance(deniedTTL / 2)
	if _, _, refresh, _ := rc.lookup("t", []byte("a"), false); !refresh {
		t.Fatal("denied table not retried after deniedTTL")
	}
}

func TestRouteCorrections(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	rc := newRouteCache(clk.now)
	mustRefresh(t, rc, "t", threeRanges())
	// The leader of ["g","p") moved from 2 to 3: a write sent to 2 was
	// served by 3.
	rc.servedElsewhere("t", []byte("h"), target{node: 2, addr: "h:2"}, 3)
	tg, ok, refresh, _ := rc.lookup("t", []byte("h"), false)
	if !ok || tg.node != 3 || !refresh {
		t.Fatalf("after servedElsewhere: %+v ok=%v refresh=%v, want node 3 and a refresh due", tg, ok, refresh)
	}
	// Served by a node whose address is unknown: no route until refreshed.
	rc.servedElsewhere("t", []byte("h"), target{node: 3, addr: "h:3"}, 9)
	if _, ok, _, _ := rc.lookup("t", []byte("h"), false); ok {
		t.Fatal("route to a node without an address")
	}
	// Node 1 unreachable: no route to it for nodeDownFor, others unaffected.
	rc.unreachable("t", target{node: 1, addr: "h:1"})
	if _, ok, _, _ := rc.lookup("t", []byte("a"), false); ok {
		t.Fatal("route to an unreachable node")
	}
	if tg, ok, _, _ := rc.lookup("t", []byte("q"), false); !ok || tg.node != 3 {
		t.Fatalf("lookup(q) = %+v ok=%v", tg, ok)
	}
	clk.advance(nodeDownFor)
	if tg, ok, _, _ := rc.lookup("t", []byte("a"), false); !ok || tg.node != 1 {
		t.Fatalf("after nodeDownFor: %+v ok=%v", tg, ok)
	}
}

// TestRouteCacheConcurrent runs lookups, refreshes and corrections at once
// (go test -race checks the locking); every answer must be a route of one
// of the two layouts refreshed.
func TestRouteCacheConcurrent(t *testing.T) {
	rc := newRouteCache(time.Now)
	moved := threeRanges()
	moved.Ranges[2].Leader = 3 // ["g","p") led by 3
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	errs := make(chan error, 16)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				switch {
				case w == 0 && rc.beginRefresh("t"):
					resp := threeRanges()
					if i%2 == 1 {
						resp = moved
					}
					rc.finishRefresh("t", resp, false)
				case w == 1:
					rc.servedElsewhere("t", []byte("h"), target{node: 2, addr: "h:2"}, 3)
				default:
					tg, ok, _, _ := rc.lookup("t", []byte("h"), w%2 == 0)
					if ok && tg.node != 2 && tg.node != 3 && !(w%2 == 0 && tg.node == 1) {
						errs <- fmt.Errorf("lookup(h) = %+v", tg)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// routedNode is a test node that reports itself (or, to play a node that
// forwarded, another node) as the server of every Get, Put and Delete,
// counts them, and answers Routes with a layout shared by all test nodes.
type routedNode struct {
	*kvtest.MemService
	id       uint64
	mu       sync.Mutex
	servedAs uint64 // 0: id
	leaderAs uint64 // the leader reads name; 0: id
	calls    int
	layout   func() *cairnpb.RoutesResponse
	stop     func() // stops the node's server
}

func (n *routedNode) served() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.calls++
	if n.servedAs != 0 {
		return n.servedAs
	}
	return n.id
}

func (n *routedNode) callCount() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.calls
}

func (n *routedNode) Get(ctx context.Context, req *cairnpb.GetRequest) (*cairnpb.GetResponse, error) {
	resp, err := n.MemService.Get(ctx, req)
	by := n.served()
	if resp != nil {
		n.mu.Lock()
		resp.ServedBy, resp.Leader = by, n.leaderAs
		n.mu.Unlock()
		if resp.Leader == 0 {
			resp.Leader = by
		}
	}
	return resp, err
}

func (n *routedNode) Put(ctx context.Context, req *cairnpb.PutRequest) (*cairnpb.PutResponse, error) {
	resp, err := n.MemService.Put(ctx, req)
	by := n.served()
	if resp != nil {
		resp.ServedBy = by
	}
	return resp, err
}

func (n *routedNode) Routes(context.Context, *cairnpb.RoutesRequest) (*cairnpb.RoutesResponse, error) {
	return n.layout(), nil
}

// startRoutedNodes starts two routedNodes over one store: node 1 leads
// keys before "m", node 2 the others.
func startRoutedNodes(t *testing.T) (n1, n2 *routedNode, addr1, addr2 string) {
	t.Helper()
	mem := kvtest.NewMemService()
	var addrs [2]string
	layout := func() *cairnpb.RoutesResponse {
		return &cairnpb.RoutesResponse{
			Ranges: []*cairnpb.RangeStatus{{Id: 1, End: []byte("m"), Leader: 1, Replicas: []uint64{1, 2}},
				{Id: 2, Start: []byte("m"), Leader: 2, Replicas: []uint64{1, 2}}},
			Nodes: []*cairnpb.NodeStatus{{Id: 1, ClientAddress: addrs[0]}, {Id: 2, ClientAddress: addrs[1]}},
		}
	}
	n1 = &routedNode{MemService: mem, id: 1, layout: layout}
	n2 = &routedNode{MemService: mem, id: 2, layout: layout}
	for i, n := range []*routedNode{n1, n2} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s := grpc.NewServer()
		grpcapi.Register(s, n)
		done := make(chan struct{})
		go func() { defer close(done); _ = s.Serve(l) }()
		n.stop = func() { s.Stop(); <-done }
		t.Cleanup(n.stop)
		addrs[i] = l.Addr().String()
	}
	return n1, n2, addrs[0], addrs[1]
}

func TestClientRoutesToLeaders(t *testing.T) {
	ctx := context.Background()
	n1, n2, addr1, _ := startRoutedNodes(t)
	c := newClient(t, addr1) // only node 1 is configured
	if _, err := c.Put(ctx, "default", []byte("a"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, "default", []byte("z"), []byte("2")); err != nil {
		t.Fatal(err)
	}
	if v, _, err := c.Get(ctx, "default", []byte("z")); err != nil || string(v) != "2" {
		t.Fatalf("Get(z) = %q, %v", v, err)
	}
	if got := n2.callCount(); got != 2 {
		t.Fatalf("node 2 served %d requests, want 2 (Put z, Get z)", got)
	}
	if got := n1.callCount(); got != 1 {
		t.Fatalf("node 1 served %d requests, want 1 (Put a)", got)
	}
	if s := c.RoutingStats(); s.Direct != 3 || s.Redirected != 0 || s.Fallback != 0 || s.Refreshes != 1 {
		t.Fatalf("stats %+v, want 3 direct and 1 refresh", s)
	}

	// The leader of ["m",) moved to node 1: node 2 forwards (reports node
	// 1). The Client corrects its route at once.
	n2.mu.Lock()
	n2.servedAs = 1
	n2.mu.Unlock()
	if _, err := c.Put(ctx, "default", []byte("z"), []byte("3")); err != nil {
		t.Fatal(err)
	}
	before := n1.callCount()
	if _, err := c.Put(ctx, "default", []byte("z"), []byte("4")); err != nil {
		t.Fatal(err)
	}
	if n1.callCount() != before+1 {
		t.Fatal("the Put after a forwarded one did not go to the new leader")
	}
	if s := c.RoutingStats(); s.Redirected != 1 || s.Direct != 4 {
		t.Fatalf("stats %+v, want 1 redirected and 4 direct", s)
	}
	if v, _, err := c.Get(ctx, "default", []byte("z")); err != nil || string(v) != "4" {
		t.Fatalf("Get(z) = %q, %v", v, err)
	}
}

func TestClientRoutingOffAndUnreachable(t *testing.T) {
	ctx := context.Background()
	n1, n2, addr1, _ := startRoutedNodes(t)
	off, err := New(Config{Endpoints: []string{addr1}, DisableKeyRouting: true})
	if err != nil {
		t.Fatal(err)
	}
	defer off.Close()
	if _, err := off.Put(ctx, "default", []byte("z"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	if n2.callCount() != 0 || n1.callCount() != 1 {
		t.Fatalf("routing off: node 1 %d calls, node 2 %d, want 1 and 0", n1.callCount(), n2.callCount())
	}
	if s := off.RoutingStats(); s.Fallback != 1 || s.Direct != 0 || s.Refreshes != 0 {
		t.Fatalf("routing off: stats %+v", s)
	}

	// A route to a node that is down: the request goes through the
	// configured endpoint instead, and the node is avoided afterwards.
	c := newClient(t, addr1)
	dead := deadAddr(t)
	mustRefresh(t, c.routes, "default", &cairnpb.RoutesResponse{
		Ranges: []*cairnpb.RangeStatus{{Id: 1, Leader: 9}},
		Nodes:  []*cairnpb.NodeStatus{{Id: 9, ClientAddress: dead}},
	})
	if _, err := c.Put(ctx, "default", []byte("k"), []byte("0")); err != nil {
		t.Fatal(err)
	}
	if s := c.RoutingStats(); s.Fallback != 1 || s.Direct != 0 {
		t.Fatalf("dead leader: stats %+v, want 1 fallback", s)
	}
	// The failure made the routes due: a refresh (in the background)
	// brings the live layout, and requests go direct again.
	deadline := time.Now().Add(5 * time.Second)
	for i := 1; c.RoutingStats().Direct == 0; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("no direct request after the dead route: stats %+v", c.RoutingStats())
		}
		if _, err := c.Put(ctx, "default", []byte("k"), []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n1.callCount() < 2 {
		t.Fatalf("node 1 served %d requests", n1.callCount())
	}
}

// TestClientFirstLookupShared: concurrent first requests on a table share
// one route lookup and all go direct.
func TestClientFirstLookupShared(t *testing.T) {
	_, _, addr1, _ := startRoutedNodes(t)
	c := newClient(t, addr1)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Put(context.Background(), "default", []byte(fmt.Sprintf("%c", 'a'+i)), []byte("v")); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if s := c.RoutingStats(); s.Refreshes != 1 || s.Direct != 16 || s.Fallback != 0 {
		t.Fatalf("stats %+v, want 1 refresh and 16 direct", s)
	}
}

// TestClientSurvivesSeedLoss: once routing has found the other nodes, a
// Client whose only endpoint is down keeps working through them.
func TestClientSurvivesSeedLoss(t *testing.T) {
	ctx := context.Background()
	n1, _, addr1, _ := startRoutedNodes(t)
	c := newClient(t, addr1)
	if _, err := c.Put(ctx, "default", []byte("z"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	n1.stop()
	// A write sent on the old connection before the Client saw it break
	// would rightly end "outcome unknown": wait until it has seen.
	for c.endpoints[0].cc.GetState() == connectivity.Ready {
		time.Sleep(time.Millisecond)
	}
	if _, err := c.Put(ctx, "default", []byte("z"), []byte("2")); err != nil {
		t.Fatalf("put to the live leader: %v", err)
	}
	// "a" is led by the stopped node: the Put goes through the endpoints,
	// which are down, then through the node found by routing.
	if _, err := c.Put(ctx, "default", []byte("a"), []byte("3")); err != nil {
		t.Fatalf("put of a key led by the stopped node: %v", err)
	}
	if v, _, err := c.Get(ctx, "default", []byte("a")); err != nil || string(v) != "3" {
		t.Fatalf("get a = %q, %v", v, err)
	}
	if s := c.RoutingStats(); s.Fallback != 2 {
		t.Fatalf("stats %+v, want the 2 requests on a through the fallback", s)
	}
}

// TestClientReadLearnsLeader: a follower still serves a linearizable read
// sent to it (after a ReadIndex), but names the leader; the next request
// goes to the leader.
func TestClientReadLearnsLeader(t *testing.T) {
	ctx := context.Background()
	n1, n2, addr1, _ := startRoutedNodes(t)
	c := newClient(t, addr1)
	if _, err := c.Put(ctx, "default", []byte("z"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	n2.mu.Lock()
	n2.leaderAs = 1 // node 1 now leads ["m",)
	n2.mu.Unlock()
	if v, _, err := c.Get(ctx, "default", []byte("z")); err != nil || string(v) != "1" {
		t.Fatalf("get z = %q, %v", v, err)
	}
	before := n1.callCount()
	if _, _, err := c.Get(ctx, "default", []byte("z")); err != nil {
		t.Fatal(err)
	}
	if n1.callCount() != before+1 {
		t.Fatal("the read after one naming another leader did not go to it")
	}
	if s := c.RoutingStats(); s.Direct != 3 || s.Redirected != 0 {
		t.Fatalf("stats %+v, want 3 direct", s)
	}
}
