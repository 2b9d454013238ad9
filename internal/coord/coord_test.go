package coord

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/keys/hashkey"
)

// TestRoundColocatesAfterMergeDelay drives the coordinator (observe, plan,
// act) against a fake cluster and a fake clock: two small, cold
// neighbours on different nodes are colocated only once both have been
// reported cold for the merge delay; a hot report or a split (a new
// generation) starts the wait again, and merges off means no colocation
// at all.
func TestRoundColocatesAfterMergeDelay(t *testing.T) {
	const delay = 5 * time.Minute
	f := newFakeCluster(6)
	now := time.Unix(1_000_000, 0)
	c := New(f, Options{Interval: time.Second, MergeSizeBytes: 1000, MergeQPS: 10, MergeDelay: delay,
		Now: func() time.Time { return now }, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	round := func() []Op {
		t.Helper()
		f.beat(c)
		return c.Round(context.Background())
	}
	colocations := func(ops []Op) int {
		n := 0
		for _, op := range ops {
			if op.Range == 3 && op.Kind == OpAddLearner {
				n++
			}
		}
		return n
	}

	if ops := round(); colocations(ops) != 0 {
		t.Fatalf("colocated at once: %v", ops)
	}
	now = now.Add(delay - time.Second)
	if ops := round(); colocations(ops) != 0 {
		t.Fatalf("colocated before the merge delay: %v", ops)
	}
	// Hot for one report: the wait starts again.
	f.qps[3] = 50
	now = now.Add(2 * time.Second)
	round()
	f.qps[3] = 0
	now = now.Add(delay - time.Second)
	if ops := round(); colocations(ops) != 0 {
		t.Fatalf("colocated within the merge delay of a hot report: %v", ops)
	}
	// A new generation (a split of the right range) starts it again too.
	f.desc(3).Generation++
	now = now.Add(2 * time.Second)
	if ops := round(); colocations(ops) != 0 {
		t.Fatalf("colocated right after a new generation: %v", ops)
	}
	now = now.Add(delay)
	ops := round()
	if colocations(ops) != 1 {
		t.Fatalf("not colocated after the merge delay: %v", ops)
	}
	if got, want := f.changes, []string{"add_learner range 3 node 1"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("changes %v, want %v", got, want)
	}

	// Merges off: the same cluster is left as it is.
	f = newFakeCluster(6)
	c = New(f, Options{Interval: time.Second, MergeSizeBytes: 0, MergeQPS: 10, MergeDelay: 0,
		Now: func() time.Time { return now }, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	for range 3 {
		now = now.Add(time.Hour)
		if ops := round(); len(ops) != 0 {
			t.Fatalf("merges off, yet: %v", ops)
		}
	}
}

// TestRoundKeepsHashInitialBounds: two cold neighbours of a hash table
// that meet at one of the table's initial bounds are never colocated
// for a merge (an idle hash table keeps its initial ranges); meeting at
// a bound a split made, they are.
func TestRoundKeepsHashInitialBounds(t *testing.T) {
	for _, tc := range []struct {
		bound []byte
		want  bool // colocated
	}{
		{hashkey.Point(1 << 63), false},      // the initial bound of 2 ranges
		{hashkey.Point(1<<63 + 1<<62), true}, // a split's bound
	} {
		f := newFakeCluster(6)
		f.table.Partitioning, f.table.InitialRanges = "hash", 2
		f.table.Ranges[0].End, f.table.Ranges[1].Start = tc.bound, tc.bound
		now := time.Unix(1_000_000, 0)
		c := New(f, Options{Interval: time.Second, MergeSizeBytes: 1000, MergeQPS: 10, MergeDelay: time.Minute,
			Now: func() time.Time { return now }, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		colocations := 0
		for range 5 {
			f.beat(c)
			for _, op := range c.Round(context.Background()) {
				if op.Kind == OpAddLearner {
					colocations++
				}
			}
			now = now.Add(time.Hour)
		}
		// The fake cluster applies no change, so a colocation repeats
		// every round.
		if (colocations > 0) != tc.want {
			t.Fatalf("bound %x: %d colocations, want them %v (changes %v)", tc.bound, colocations, tc.want, f.changes)
		}
	}
}

// TestOptionsCapMergeSize: as in the router, a merged range stays under
// half the split size.
func TestOptionsCapMergeSize(t *testing.T) {
	o := Options{MergeSizeBytes: 1000, SplitSizeBytes: 1200}
	o.defaults()
	if o.MergeSizeBytes != 600 {
		t.Fatalf("merge size %d, want 600", o.MergeSizeBytes)
	}
}

// fakeCluster is a balanced cluster of n nodes with one table of two
// ranges: range 2 [, m) on nodes 1,2,3 and range 3 [m, ) on nodes 4,5,6,
// both small; qps is the requests a second their leaders report.
type fakeCluster struct {
	nodes   []*cairnpb.Node
	table   *cairnpb.Table
	qps     map[uint64]float64
	changes []string
}

func newFakeCluster(n int) *fakeCluster {
	f := &fakeCluster{qps: map[uint64]float64{}}
	for id := range uint64(n) {
		f.nodes = append(f.nodes, &cairnpb.Node{Id: id + 1, State: stateActive})
	}
	f.table = &cairnpb.Table{Name: "t", Id: 7, Replicas: 3, Ranges: []*cairnpb.RangeDescriptor{
		{Id: 2, TableId: 7, End: []byte("m"), Replicas: []uint64{1, 2, 3}, Generation: 1},
		{Id: 3, TableId: 7, Start: []byte("m"), Replicas: []uint64{4, 5, 6}, Generation: 1},
	}}
	return f
}

func (f *fakeCluster) desc(id uint64) *cairnpb.RangeDescriptor {
	for _, d := range f.table.Ranges {
		if d.Id == id {
			return d
		}
	}
	return nil
}

// beat sends every node's heartbeat: each range reported by all its
// replicas, led by its first voter, caught up everywhere.
func (f *fakeCluster) beat(c *Coordinator) {
	for _, n := range f.nodes {
		hb := &cairnpb.NodeHeartbeat{NodeId: n.Id}
		for _, d := range f.table.Ranges {
			for i, v := range d.Replicas {
				if v != n.Id {
					continue
				}
				rh := &cairnpb.RangeHeartbeat{RangeId: d.Id, AppliedIndex: 10, ApproxBytes: 100, Term: 2}
				if i == 0 {
					rh.Leader, rh.CaughtUp, rh.Desc, rh.RequestsPerSec = true, d.Replicas, d, f.qps[d.Id]
				}
				hb.Ranges = append(hb.Ranges, rh)
			}
		}
		c.Heartbeat(hb)
	}
}

func (f *fakeCluster) NodeID() uint64                             { return 1 }
func (f *fakeCluster) IsMetaLeader() bool                         { return true }
func (f *fakeCluster) Tables() []*cairnpb.Table                   { return []*cairnpb.Table{f.table} }
func (f *fakeCluster) Nodes() []*cairnpb.Node                     { return f.nodes }
func (f *fakeCluster) Meta() (*cairnpb.RangeDescriptor, []uint64) { return nil, nil }
func (f *fakeCluster) ChangeReplicas(_ context.Context, rangeID uint64, op string, node, _ uint64) error {
	f.changes = append(f.changes, fmt.Sprintf("%s range %d node %d", op, rangeID, node))
	return nil
}
func (f *fakeCluster) TransferLeader(context.Context, uint64, uint64) error { return nil }
func (f *fakeCluster) SetNodeState(context.Context, uint64, string) error   { return nil }
func (f *fakeCluster) RecordRanges(context.Context, uint64, []*cairnpb.RangeDescriptor) error {
	return nil
}
