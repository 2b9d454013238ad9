package client

import (
	"bytes"
	"math/rand/v2"
	"net"
	"sort"
	"sync"
	"time"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/keys/hashkey"
)

// Routing by key.
//
// The Client sends Get, Put and Delete straight to the node that leads the
// range of the key (Session and Stale reads: to a random replica of it),
// instead of to a configured endpoint that would forward it: one network
// hop and one node's work less per request. It learns where keys live from
// Cluster.Routes, per table, and keeps the answer in a routeCache.
//
// Invariants:
//
//  1. Routing never changes an answer. Every node serves every request
//     (forwarding when it does not lead the key's range, retrying on
//     splits), so a stale route costs a hop, not a wrong reply.
//  2. A routed write is repeated elsewhere only when it provably was not
//     executed (the same rules as the endpoints' failover, package doc).
//  3. The cache converges: entries expire after routeTTL; a reply served
//     by another node than the one chosen (forwarded: the leader moved or
//     the range split), or a read's reply naming another leader, corrects
//     the range's leader at once and schedules a refresh; an unreachable node is avoided for nodeDownFor and its
//     table refreshed. Refreshes of one table run one at a time and at
//     most once per minRefreshInterval, so their cost is bounded whatever
//     the request rate.
//
// Hash tables route by placement key (package hashkey, the same code the
// nodes use), since their ranges are intervals of the hash space.

// Bounds of the route cache.
const (
	// routeTTL is how long a table's routes are used before they are
	// refreshed (in the background; the old ones serve meanwhile).
	routeTTL = 10 * time.Second
	// minRefreshInterval spaces the refreshes of one table.
	minRefreshInterval = 100 * time.Millisecond
	// deniedTTL is how long a table whose routes cannot be had (no read
	// permission on the whole table, an old server) goes unrouted.
	deniedTTL = time.Minute
	// nodeDownFor is how long a node that could not be reached gets no
	// routed requests.
	nodeDownFor = time.Second
)

// rangeRoute is one range of a table in the cache: placement keys
// [start, end) (an empty end is the end of the table).
type rangeRoute struct {
	id       uint64
	start    []byte
	end      []byte
	leader   uint64   // 0: unknown
	replicas []uint64 // voters and learners
}

// tableRoutes is the cached routing of one table.
type tableRoutes struct {
	hash   bool
	ranges []rangeRoute // sorted by start, disjoint
	// denied: the routes were refused; none until expires.
	denied bool
	nodes  map[uint64]string
	// expires is when the routes must be refreshed (deniedTTL after a
	// refusal).
	expires time.Time
	// done is open while a refresh runs (nil otherwise) and closed when
	// it ends; refreshed is when the last one started; loaded is set once
	// one has ended, whatever its outcome.
	done      chan struct{}
	refreshed time.Time
	loaded    bool
}

// routeCache caches tables' routes. It is safe for concurrent use; every
// method holds mu briefly and does no I/O.
type routeCache struct {
	mu     sync.Mutex
	tables map[string]*tableRoutes
	// down are the nodes (by client address) not to route to until the
	// time given.
	down map[string]time.Time
	now  func() time.Time
}

func newRouteCache(now func() time.Time) *routeCache {
	return &routeCache{tables: map[string]*tableRoutes{}, down: map[string]time.Time{}, now: now}
}

// target is where a routed request goes.
type target struct {
	node uint64
	addr string
}

// lookup returns the node to send a request on key of table to: the
// range's leader (anyReplica: a random replica). ok is false when the
// cache cannot tell (no routes, no range holds the key, leader or address
// unknown, node down). refresh says the table's routes are missing or due
// for a refresh (the caller starts one with beginRefresh); missing that
// no lookup of the table has ended yet.
func (rc *routeCache) lookup(table string, key []byte, anyReplica bool) (t target, ok, refresh, missing bool) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	now := rc.now()
	tr := rc.tables[table]
	if tr == nil || !tr.loaded {
		return target{}, false, true, true
	}
	refresh = !now.Before(tr.expires)
	if tr.denied {
		return target{}, false, refresh, false
	}
	r := tr.find(key)
	if r == nil {
		return target{}, false, true, false
	}
	node := r.leader
	if anyReplica && len(r.replicas) > 0 {
		node = r.replicas[rand.IntN(len(r.replicas))]
	}
	addr := tr.nodes[node]
	if node == 0 || addr == "" || now.Before(rc.down[addr]) {
		return target{}, false, true, false
	}
	return target{node: node, addr: addr}, true, refresh, false
}

// find returns the range holding key (a user key), or nil.
func (tr *tableRoutes) find(key []byte) *rangeRoute {
	if tr.hash {
		key = hashkey.Encode(key)
	}
	// The last range whose start is <= key.
	i := sort.Search(len(tr.ranges), func(i int) bool { return bytes.Compare(tr.ranges[i].start, key) > 0 }) - 1
	if i < 0 {
		return nil
	}
	r := &tr.ranges[i]
	if len(r.end) > 0 && bytes.Compare(key, r.end) >= 0 {
		return nil
	}
	return r
}

// beginRefresh reports whether the caller should refresh table now: no
// refresh of it runs and the last started minRefreshInterval ago or more.
// A true answer must be followed by finishRefresh.
func (rc *routeCache) beginRefresh(table string) bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	now := rc.now()
	tr := rc.tables[table]
	if tr == nil {
		tr = &tableRoutes{}
		rc.tables[table] = tr
	}
	if tr.done != nil || now.Sub(tr.refreshed) < minRefreshInterval {
		return false
	}
	tr.done, tr.refreshed = make(chan struct{}), now
	return true
}

// pending returns a channel closed when the running refresh of table
// ends, or nil when none runs.
func (rc *routeCache) pending(table string) <-chan struct{} {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if tr := rc.tables[table]; tr != nil && tr.done != nil {
		return tr.done
	}
	return nil
}

// finishRefresh ends a refresh of table begun with beginRefresh: it
// stores resp (nil with denied: the table gets no routes for deniedTTL;
// nil otherwise: the old routes stay, to be refreshed again soon).
func (rc *routeCache) finishRefresh(table string, resp *cairnpb.RoutesResponse, denied bool) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	now := rc.now()
	tr := rc.tables[table]
	if tr == nil || tr.done == nil {
		panic("client: finishRefresh without beginRefresh")
	}
	close(tr.done)
	switch {
	case resp != nil:
		fresh := routesFrom(resp)
		fresh.expires, fresh.refreshed = now.Add(routeTTL), tr.refreshed
		rc.tables[table] = fresh
	case denied:
		*tr = tableRoutes{denied: true, expires: now.Add(deniedTTL), refreshed: tr.refreshed}
	}
	tr = rc.tables[table]
	tr.done, tr.loaded = nil, true
}

// routesFrom converts a Routes reply; nodes without a usable address are
// left out (their ranges are reached by forwarding).
func routesFrom(resp *cairnpb.RoutesResponse) *tableRoutes {
	tr := &tableRoutes{hash: resp.Partitioning == "hash", nodes: map[uint64]string{}}
	for _, n := range resp.Nodes {
		if usableAddress(n.ClientAddress) {
			tr.nodes[n.Id] = n.ClientAddress
		}
	}
	for _, r := range resp.Ranges {
		replicas := append(append([]uint64{}, r.Replicas...), r.Learners...)
		tr.ranges = append(tr.ranges, rangeRoute{id: r.Id, start: r.Start, end: r.End, leader: r.Leader, replicas: replicas})
	}
	sort.Slice(tr.ranges, func(i, j int) bool { return bytes.Compare(tr.ranges[i].start, tr.ranges[j].start) < 0 })
	// Drop overlaps (a reply assembled while a split applied): a request
	// for their keys is forwarded until the next refresh.
	kept := tr.ranges[:0]
	for _, r := range tr.ranges {
		if n := len(kept); n > 0 && (len(kept[n-1].end) == 0 || bytes.Compare(kept[n-1].end, r.start) > 0) {
			continue
		}
		kept = append(kept, r)
	}
	tr.ranges = kept
	return tr
}

// usableAddress reports whether a node's advertised client address can be
// dialed from elsewhere: host:port with a host that is not a wildcard
// (a node listening on 0.0.0.0 without --advertise).
func usableAddress(addr string) bool {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" || host == "" {
		return false
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return false
	}
	return true
}

// servedElsewhere records that a request on key of table, sent to t as
// the leader, found node leading the range instead (it served the request
// after a forward, or named it as leader in a read's reply: the leader
// moved or the range split). The range's leader becomes node if its
// address is known, and the table is due for a refresh.
func (rc *routeCache) servedElsewhere(table string, key []byte, t target, node uint64) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	tr := rc.tables[table]
	if tr == nil {
		return
	}
	if r := tr.find(key); r != nil && r.leader == t.node {
		r.leader = node
		if tr.nodes[node] == "" {
			r.leader = 0
		}
	}
	tr.expires = rc.now()
}

// unreachable records that t could not be reached: no routed requests go
// to it for nodeDownFor, and table is due for a refresh.
func (rc *routeCache) unreachable(table string, t target) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	now := rc.now()
	rc.down[t.addr] = now.Add(nodeDownFor)
	if tr := rc.tables[table]; tr != nil {
		tr.expires = now
	}
	for addr, until := range rc.down {
		if !now.Before(until) {
			delete(rc.down, addr)
		}
	}
}
