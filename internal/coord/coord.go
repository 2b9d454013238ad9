// Package coord is the cluster's coordinator: the scheduler that places,
// repairs and balances replicas, run by whichever node leads the meta
// range (tikv/pd's shape, embedded in every node instead of a separate
// service).
//
// Why here and like this: the meta range already holds the members and
// every range's descriptor, replicated by Raft, so the node that leads it
// sees the cluster's state linearizably and needs no election of its own.
// What it adds is soft state: heartbeats. Every node reports every second
// (NodeHeartbeat: the ranges it holds, which it leads, their sizes and
// loads, and on leaders which replicas are caught up). Heartbeats live in
// the coordinator's memory only; a new coordinator starts empty and waits
// to hear from nodes before it judges them (a node is "down" after a few
// missed heartbeats and only then left out of new placements, "dead"
// after --dead-node-timeout and only then has its replicas rebuilt
// elsewhere).
//
// Each round (Plan, a pure function tested on golden cluster states)
// yields a few steps: add a learner, promote a caught-up learner, remove a
// replica, transfer a leadership. The operator carries each out through
// the range's own leader (a Raft configuration change of the range, which
// applies only at the conf_version it was planned against) and records
// the new descriptor in the meta range. A step that fails or is refused is
// simply planned again from fresh state next round: the scheduler holds
// no plan across rounds, so a coordinator that dies mid-move leaves
// nothing for its successor to untangle (see docs/design/placement.md).
//
// # Colocation and balancing
//
// Two adjacent ranges merge only when their replicas are on the same
// nodes (router.localMerge; docs/design/merges.md). When merges are on
// (--merge-size), the scheduler finds neighbours that the router would
// merge by its own thresholds (together under --merge-size and
// --merge-qps, each reported so for --merge-delay at its current
// generation; the coordinator keeps since-when marks like heartbeats,
// soft state) but whose replicas differ, and moves the right range's
// replicas onto the left range's nodes with the ordinary steps
// (colocate.go). Replica balancing counts replicas per node and would
// undo that; rather than making every colocation target one the balancer
// already likes (often none is: the left range's nodes may well be the
// most loaded), the balancer does not move either range of a candidate
// pair. The exemption is short-lived: colocated, the pair merges after
// the router's merge delay, and the merged range is balanced like any
// other; a pair that turns hot or grows is no candidate any more and is
// balanced again. Colocation may leave node counts uneven meanwhile; the
// balancer evens them out with the other ranges. Leaderships are
// balanced as before: the merge needs the left range's leader to hold a
// replica of the right range, not to lead it.
package coord

import (
	"cmp"
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/keys/hashkey"
)

// Cluster is what the coordinator needs of its node (the router and the
// store implement it).
type Cluster interface {
	NodeID() uint64
	// IsMetaLeader: this node leads the meta range now.
	IsMetaLeader() bool
	Tables() []*cairnpb.Table
	Nodes() []*cairnpb.Node
	// Meta returns the meta range's descriptor, and on its leader the
	// caught-up replicas.
	Meta() (desc *cairnpb.RangeDescriptor, caughtUp []uint64)
	// ChangeReplicas carries out one step on the range's leader and
	// records the new descriptor in the catalog.
	ChangeReplicas(ctx context.Context, rangeID uint64, op string, node, expectConfVersion uint64) error
	TransferLeader(ctx context.Context, rangeID, to uint64) error
	SetNodeState(ctx context.Context, id uint64, state string) error
	// RecordRanges writes descriptors the catalog lags behind.
	RecordRanges(ctx context.Context, tableID uint64, descs []*cairnpb.RangeDescriptor) error
}

// Options configures the coordinator.
type Options struct {
	// Interval between rounds (and the expected heartbeat interval).
	Interval time.Duration
	// DownAfter: a node not heard from this long gets no new replicas.
	DownAfter time.Duration
	// DeadAfter: a node not heard from this long has its replicas rebuilt
	// elsewhere.
	DeadAfter time.Duration
	// MaxMoves bounds the replica changes one round starts.
	MaxMoves int
	// DefaultReplicas is the voters per range of a table that names none.
	DefaultReplicas int
	// The router's settings for automatic merges (--merge-size,
	// --merge-qps, --merge-delay) and its split size (a merge stays
	// under half of it): adjacent ranges that would merge by them but
	// sit on different nodes are colocated. MergeSizeBytes 0: no merges,
	// no colocation.
	MergeSizeBytes uint64
	MergeQPS       int
	MergeDelay     time.Duration
	SplitSizeBytes uint64
	Logger         *slog.Logger
	Now            func() time.Time
}

func (o *Options) defaults() {
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.DownAfter <= 0 {
		o.DownAfter = 4 * o.Interval
	}
	if o.DeadAfter <= 0 {
		o.DeadAfter = 5 * time.Minute
	}
	if o.MaxMoves <= 0 {
		o.MaxMoves = 4
	}
	if o.DefaultReplicas <= 0 {
		o.DefaultReplicas = 3
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if half := o.SplitSizeBytes / 2; half > 0 && o.MergeSizeBytes > half {
		o.MergeSizeBytes = half // as router.RunSplitter does
	}
}

// limits returns the scheduler's limits for a round.
func (o *Options) limits() Limits {
	return Limits{MaxMoves: o.MaxMoves, Balance: true,
		Merge: Merge{SizeBytes: o.MergeSizeBytes, QPS: float64(o.MergeQPS), Delay: o.MergeDelay}}
}

// coldMark is since when a range has been small and cold at generation
// gen, as its leader reports.
type coldMark struct {
	gen   uint64
	since time.Time
}

type beat struct {
	at time.Time
	hb *cairnpb.NodeHeartbeat
}

// stepTimeout bounds each step and each catalog repair, so that a round
// never hangs on a range that lost its leader meanwhile.
const stepTimeout = 5 * time.Second

// maxDecisions is how many recent decisions Status reports.
const maxDecisions = 100

// Coordinator runs the scheduler on the meta leader.
type Coordinator struct {
	opts    Options
	cluster Cluster

	mu struct {
		sync.Mutex
		beats map[uint64]beat
		// since is when this node last became the meta leader (zero: it
		// is not): nodes are judged down or dead only after that much
		// time without a heartbeat counted from then.
		since     time.Time
		decisions []*cairnpb.Decision
		// cold: the data ranges whose leaders report them under the
		// merge size and rate, since when (RangeInfo.ColdFor). Soft
		// state like the heartbeats: a new coordinator starts empty,
		// so it waits a merge delay before it colocates anything.
		cold map[uint64]coldMark
	}
}

// New returns a coordinator for the node behind cluster.
func New(cluster Cluster, opts Options) *Coordinator {
	opts.defaults()
	c := &Coordinator{opts: opts, cluster: cluster}
	c.mu.beats = map[uint64]beat{}
	c.mu.cold = map[uint64]coldMark{}
	return c
}

// Heartbeat records a node's report.
func (c *Coordinator) Heartbeat(hb *cairnpb.NodeHeartbeat) {
	c.mu.Lock()
	c.mu.beats[hb.NodeId] = beat{at: c.opts.Now(), hb: hb}
	c.mu.Unlock()
}

// Run runs rounds until ctx ends. Rounds run only while this node leads
// the meta range.
func (c *Coordinator) Run(ctx context.Context) {
	t := time.NewTicker(c.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !c.cluster.IsMetaLeader() {
			c.mu.Lock()
			c.mu.since = time.Time{}
			clear(c.mu.cold)
			c.mu.Unlock()
			continue
		}
		c.Round(ctx)
	}
}

// Round runs one round: observe, plan, act. Exported for tests.
func (c *Coordinator) Round(ctx context.Context) []Op {
	now := c.opts.Now()
	c.mu.Lock()
	if c.mu.since.IsZero() {
		c.mu.since = now
	}
	c.mu.Unlock()
	nodes, ranges := c.observe(ctx, now)
	ops := Plan(nodes, ranges, c.opts.limits())
	for _, op := range ops {
		c.act(ctx, op)
	}
	return ops
}

// observe builds the scheduler's input from the catalog and heartbeats,
// and heals catalog entries that lag behind what range leaders report.
func (c *Coordinator) observe(ctx context.Context, now time.Time) ([]NodeInfo, []RangeInfo) {
	c.mu.Lock()
	since := c.mu.since
	beats := make(map[uint64]beat, len(c.mu.beats))
	for id, b := range c.mu.beats {
		beats[id] = b
	}
	c.mu.Unlock()
	self := c.cluster.NodeID()
	var nodes []NodeInfo
	eligible := 0
	for _, n := range c.cluster.Nodes() {
		st := n.State
		if st == "" {
			st = stateActive
		}
		last := since
		if b, ok := beats[n.Id]; ok && b.at.After(since) {
			last = b.at
		}
		_, heard := beats[n.Id]
		ni := NodeInfo{ID: n.Id, State: st,
			Up:   n.Id == self || (heard && now.Sub(last) < c.opts.DownAfter),
			Dead: n.Id != self && now.Sub(last) >= c.opts.DeadAfter}
		if st == stateActive && !ni.Dead {
			eligible++
		}
		nodes = append(nodes, ni)
	}
	slices.SortFunc(nodes, func(a, b NodeInfo) int { return cmp.Compare(a.ID, b.ID) })

	// What leaders report: per range, the freshest leader's view.
	type lead struct {
		node uint64
		rh   *cairnpb.RangeHeartbeat
	}
	reported := 0
	for _, b := range beats {
		reported = max(reported, len(b.hb.Ranges))
	}
	leaders := make(map[uint64]lead, reported)
	holders := make(map[uint64][]uint64, reported)
	for id, b := range beats {
		if now.Sub(b.at) >= c.opts.DownAfter {
			continue
		}
		for _, rh := range b.hb.Ranges {
			if rh.AppliedIndex > 0 {
				holders[rh.RangeId] = append(holders[rh.RangeId], id)
			}
			if !rh.Leader {
				continue
			}
			if cur, ok := leaders[rh.RangeId]; !ok || rh.Term > cur.rh.Term {
				leaders[rh.RangeId] = lead{id, rh}
			}
		}
	}
	tables := c.cluster.Tables()
	n := 1
	for _, t := range tables {
		n += len(t.Ranges)
	}
	ranges := make([]RangeInfo, 0, n)
	var seen map[uint64]bool // the catalog's data ranges (cold marks of others go)
	if c.opts.MergeSizeBytes > 0 {
		seen = make(map[uint64]bool, n)
	}
	if md, caught := c.cluster.Meta(); md != nil {
		want := min(5, eligible)
		if want%2 == 0 {
			want--
		}
		ranges = append(ranges, RangeInfo{ID: md.Id, Meta: true, Voters: md.Replicas, Learners: md.Learners,
			ConfVersion: md.ConfVersion, Want: max(want, 1), Leader: self, CaughtUp: caught, Holders: sorted(holders[md.Id]), Removed: removedOf(md)})
	}
	for _, t := range tables {
		want := int(t.Replicas)
		if want <= 0 {
			want = c.opts.DefaultReplicas
		}
		want = max(1, min(want, eligible))
		learners := max(0, min(int(t.Learners), eligible-want))
		var heal []*cairnpb.RangeDescriptor
		for _, d := range t.Ranges {
			ri := RangeInfo{ID: d.Id, Voters: d.Replicas, Learners: d.Learners, ConfVersion: d.ConfVersion, Want: want, WantLearners: learners,
				Holders: sorted(holders[d.Id]), Removed: removedOf(d), Table: t.Id, Start: d.Start, End: d.End,
				KeepEnd: hashkey.KeepsBound(t, d.End)}
			if seen != nil {
				seen[d.Id] = true
			}
			if l, ok := leaders[d.Id]; ok {
				ri.Leader, ri.CaughtUp, ri.Term = l.node, l.rh.CaughtUp, l.rh.Term
				ri.Bytes, ri.QPS = l.rh.ApproxBytes, l.rh.WritesPerSec+l.rh.RequestsPerSec
				ri.ColdFor, ri.Reported = c.markCold(d, ri, now), true
				if ld := l.rh.Desc; ld != nil && ld.Id == d.Id {
					if ld.Generation != d.Generation || ld.ConfVersion != d.ConfVersion {
						// The leader is ahead (or behind: then it is not
						// the leader for long); plan against its view and
						// tell the catalog.
						if ld.Generation > d.Generation || (ld.Generation == d.Generation && ld.ConfVersion > d.ConfVersion) {
							heal = append(heal, ld)
						}
						ri.Leader = 0 // wait until both agree
					}
				}
			}
			ranges = append(ranges, ri)
		}
		if len(heal) > 0 {
			hctx, cancel := context.WithTimeout(ctx, stepTimeout)
			err := c.cluster.RecordRanges(hctx, t.Id, heal)
			cancel()
			if err != nil {
				c.opts.Logger.Debug("coordinator: record ranges", "table", t.Name, "err", err)
			}
		}
	}
	ranges = sortedByID(ranges)
	c.mu.Lock()
	for id := range c.mu.cold {
		if !seen[id] {
			delete(c.mu.cold, id) // merged away or dropped
		}
	}
	c.mu.Unlock()
	return nodes, ranges
}

// markCold updates since when range d, as its leader reports it in ri,
// has been under the merge size and rate at its current generation, and
// returns for how long (zero: not cold, or merges are off). A split or
// merge (a new generation) starts the count again; a replica move does
// not, so a pair being colocated stays a candidate. A round without a
// leader's report leaves the mark as it is.
func (c *Coordinator) markCold(d *cairnpb.RangeDescriptor, ri RangeInfo, now time.Time) time.Duration {
	if c.opts.MergeSizeBytes == 0 {
		return 0 // and no marks: nothing to lock for
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if ri.Bytes >= c.opts.MergeSizeBytes || ri.QPS >= float64(c.opts.MergeQPS) {
		delete(c.mu.cold, d.Id)
		return 0
	}
	m, ok := c.mu.cold[d.Id]
	if !ok || m.gen != d.Generation {
		m = coldMark{gen: d.Generation, since: now}
		c.mu.cold[d.Id] = m
	}
	return now.Sub(m.since)
}

// sortedByID returns ranges in ID order. RangeInfo is large, so with many
// ranges (10,000 on a node, every round) it sorts their positions and
// copies each once instead of swapping the structs.
func sortedByID(ranges []RangeInfo) []RangeInfo {
	byID := func(a, b RangeInfo) int { return cmp.Compare(a.ID, b.ID) }
	if slices.IsSortedFunc(ranges, byID) {
		return ranges
	}
	order := make([]int32, len(ranges))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int { return cmp.Compare(ranges[a].ID, ranges[b].ID) })
	out := make([]RangeInfo, len(ranges))
	for i, j := range order {
		out[i] = ranges[j]
	}
	return out
}

func removedOf(d *cairnpb.RangeDescriptor) map[uint64]uint64 {
	if len(d.Removed) == 0 {
		return nil
	}
	m := map[uint64]uint64{}
	for _, rr := range d.Removed {
		m[rr.Node] = rr.FenceTerm
	}
	return m
}

func sorted(ids []uint64) []uint64 {
	slices.Sort(ids)
	return ids
}

// act carries out one step and records the decision.
func (c *Coordinator) act(ctx context.Context, op Op) {
	d := &cairnpb.Decision{AtUnixMs: c.opts.Now().UnixMilli(), Op: op.Kind, RangeId: op.Range, Node: op.Node, Reason: op.Reason}
	actx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	var err error
	switch op.Kind {
	case OpAddLearner, OpPromote, OpRemove, OpDemote, OpUnfence:
		err = c.cluster.ChangeReplicas(actx, op.Range, op.Kind, op.Node, op.Expect)
	case OpTransferLeader:
		err = c.cluster.TransferLeader(actx, op.Range, op.Node)
	case OpSetRemoved:
		err = c.cluster.SetNodeState(actx, op.Node, stateRemoved)
	}
	d.Outcome = "done"
	if err != nil {
		d.Outcome = "failed: " + err.Error()
		c.opts.Logger.Info("coordinator: step failed", "op", op.String(), "err", err)
	} else {
		c.opts.Logger.Info("coordinator: step", "op", op.String())
	}
	c.mu.Lock()
	c.mu.decisions = append(c.mu.decisions, d)
	if n := len(c.mu.decisions); n > maxDecisions {
		c.mu.decisions = slices.Clone(c.mu.decisions[n-maxDecisions:])
	}
	c.mu.Unlock()
}

// RangeBytes returns each range's size as its leader last reported it.
func (c *Coordinator) RangeBytes() map[uint64]uint64 {
	now := c.opts.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	leaders := 0 // sized up front: at 10,000 ranges growing the maps cost more than filling them
	for _, b := range c.mu.beats {
		for _, rh := range b.hb.Ranges {
			if rh.Leader {
				leaders++
			}
		}
	}
	out := make(map[uint64]uint64, leaders)
	terms := make(map[uint64]uint64, leaders)
	for _, b := range c.mu.beats {
		if now.Sub(b.at) >= c.opts.DownAfter {
			continue
		}
		for _, rh := range b.hb.Ranges {
			if rh.Leader && rh.Term >= terms[rh.RangeId] {
				out[rh.RangeId], terms[rh.RangeId] = rh.ApproxBytes, rh.Term
			}
		}
	}
	return out
}

// Status fills a cluster status from the coordinator's view: every
// member with its liveness and load, every range with its leader and
// stats, and the recent decisions. Call on the meta leader.
func (c *Coordinator) Status() *cairnpb.ClusterStatus {
	now := c.opts.Now()
	c.mu.Lock()
	beats := make(map[uint64]beat, len(c.mu.beats))
	for id, b := range c.mu.beats {
		beats[id] = b
	}
	decisions := slices.Clone(c.mu.decisions)
	c.mu.Unlock()
	self := c.cluster.NodeID()
	out := &cairnpb.ClusterStatus{Coordinator: self, Decisions: decisions}
	type rstat struct {
		leader uint64
		rh     *cairnpb.RangeHeartbeat
	}
	stats := map[uint64]rstat{}
	nodeStat := map[uint64]*cairnpb.NodeStatus{}
	for _, n := range c.cluster.Nodes() {
		ns := &cairnpb.NodeStatus{Id: n.Id, Name: n.Name, Address: n.PeerAddress, State: n.State, LastHeartbeatMs: -1}
		if ns.State == "" {
			ns.State = stateActive
		}
		if b, ok := beats[n.Id]; ok {
			ns.ClientAddress = b.hb.ClientAddress
			ns.LastHeartbeatMs = now.Sub(b.at).Milliseconds()
			ns.Alive = now.Sub(b.at) < c.opts.DownAfter
			for _, rh := range b.hb.Ranges {
				ns.Ranges++
				if rh.Leader {
					ns.Leaders++
					ns.ReadsPerSec += rh.ReadsPerSec
					ns.WritesPerSec += rh.WritesPerSec
					if cur, ok := stats[rh.RangeId]; !ok || rh.Term > cur.rh.Term {
						stats[rh.RangeId] = rstat{n.Id, rh}
					}
				}
				ns.Bytes += rh.ApproxBytes
			}
		}
		if n.Id == self {
			ns.Alive = true
		}
		nodeStat[n.Id] = ns
		out.Nodes = append(out.Nodes, ns)
	}
	slices.SortFunc(out.Nodes, func(a, b *cairnpb.NodeStatus) int { return cmp.Compare(a.Id, b.Id) })
	add := func(table string, d *cairnpb.RangeDescriptor) {
		rs := &cairnpb.RangeStatus{Id: d.Id, Table: table, Start: d.Start, End: d.End, Replicas: d.Replicas, Learners: d.Learners,
			Generation: d.Generation, ConfVersion: d.ConfVersion}
		if s, ok := stats[d.Id]; ok {
			rs.Leader, rs.Term, rs.AppliedIndex = s.leader, s.rh.Term, s.rh.AppliedIndex
			rs.SizeBytes, rs.ReadsPerSec, rs.WritesPerSec = s.rh.ApproxBytes, s.rh.ReadsPerSec, s.rh.WritesPerSec
			rs.Lag = s.rh.Lag
		}
		out.Ranges = append(out.Ranges, rs)
	}
	if md, _ := c.cluster.Meta(); md != nil {
		add("", md)
	}
	for _, t := range c.cluster.Tables() {
		for _, d := range t.Ranges {
			add(t.Name, d)
		}
	}
	slices.SortFunc(out.Ranges, func(a, b *cairnpb.RangeStatus) int { return cmp.Compare(a.Id, b.Id) })
	return out
}
