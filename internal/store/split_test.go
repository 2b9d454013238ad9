// Goal: a split applied by a three-node cluster under concurrent writes
// creates the right-hand range on every node with a leader right away, loses
// no acknowledged write, keeps versions of every key increasing, refuses
// writes routed to the wrong side with a range key mismatch (so a router
// can retry them), and survives a restart; a node that was down during
// splits and gets a snapshot from after them receives the new ranges as
// uninitialized replicas that catch up by snapshot.
// Method: the node harness of node_test.go; writers propose on the leader
// of whichever local range holds their key (as the router does after a
// mismatch) and retry mismatches; splits are proposed on the leader with a
// range ID the test allocates through the meta range.
package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/kv"
	"github.com/cairn-db/cairn/internal/replica"
)

// rangeOf returns the range holding key on n (local descriptors), or 0.
func rangeOf(n *testNode, key string) keys.RangeID {
	if r := n.st.LocalRangeFor(1, []byte(key)); r != nil {
		return r.ID
	}
	return 0
}

// splitAt allocates a range ID on the meta leader and splits the range
// holding key at key on its leader.
func splitAt(t *testing.T, ctx context.Context, nodes []*testNode, key string) *cairnpb.SplitRangeResponse {
	t.Helper()
	meta := leaderOf(t, nodes, replica.MetaRangeID)
	res, err := meta.propose(ctx, replica.MetaRangeID, &cairnpb.Command{Op: &cairnpb.Command_AllocRangeId{AllocRangeId: &cairnpb.AllocRangeID{}}})
	if err != nil {
		t.Fatalf("alloc range ID: %v", err)
	}
	id := rangeOf(meta, key)
	leader := leaderOf(t, nodes, id)
	gen := leader.st.Replica(id).Desc().Generation
	res2, err := leader.propose(ctx, id, &cairnpb.Command{TableId: 1, Op: &cairnpb.Command_Split{Split: &cairnpb.Split{
		SplitKey: []byte(key), NewRangeId: res.RangeID, ExpectedGeneration: gen,
	}}})
	if err != nil {
		t.Fatalf("split range %d at %q: %v", id, key, err)
	}
	if _, err := meta.propose(ctx, replica.MetaRangeID, &cairnpb.Command{Op: &cairnpb.Command_UpdateRanges{UpdateRanges: &cairnpb.UpdateRanges{
		TableId: 1, Descs: []*cairnpb.RangeDescriptor{res2.Split.Left, res2.Split.Right},
	}}}); err != nil {
		t.Fatalf("update meta: %v", err)
	}
	return res2.Split
}

func TestSplitUnderWrites(t *testing.T) {
	nodes := newCluster(t, "n1", "n2", "n3")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	leaderOf(t, nodes, replica.MetaRangeID)
	leaderOf(t, nodes, 2)

	// Writers: each owns keys w<i>-<n>, written through node i%3.
	var mu sync.Mutex
	acked := map[string]uint64{}
	mismatches := 0
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("%c%03d", 'a'+byte(i%26), w*1000+i)
				for {
					id := rangeOf(nodes[w%3], key)
					var leader *testNode
					for _, n := range nodes {
						if r := n.st.Replica(id); id != 0 && r != nil && r.IsLeader() {
							leader = n
						}
					}
					if leader == nil {
						time.Sleep(5 * time.Millisecond)
						continue
					}
					res, err := leader.propose(ctx, id, putCmd(1, key, "v"+key, nil))
					if errors.Is(err, kv.ErrRangeKeyMismatch) {
						mu.Lock()
						mismatches++
						mu.Unlock()
						continue
					}
					if errors.Is(err, kv.ErrNotLeader) || errors.Is(err, kv.ErrTimeout) {
						continue // a timed-out put is retried: same value, harmless
					}
					if err != nil {
						t.Errorf("put %s on range %d: %v", key, id, err)
						return
					}
					mu.Lock()
					acked[key] = res.Version
					mu.Unlock()
					break
				}
			}
		}(w)
	}

	time.Sleep(200 * time.Millisecond)
	var splits []*cairnpb.SplitRangeResponse
	for _, k := range []string{"m", "f", "t", "c", "p"} {
		splits = append(splits, splitAt(t, ctx, nodes, k))
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	if t.Failed() {
		return
	}
	t.Logf("%d writes acknowledged, %d range key mismatches retried, %d splits", len(acked), mismatches, len(splits))

	// Every node has every range with the same descriptor, and a leader.
	for _, sp := range splits {
		leaderOf(t, nodes, keys.RangeID(sp.Right.Id))
	}
	waitFor(t, 10*time.Second, "equal descriptors", func() bool {
		for _, sp := range splits {
			want := nodes[0].st.Replica(keys.RangeID(sp.Right.Id))
			for _, n := range nodes {
				r := n.st.Replica(keys.RangeID(sp.Right.Id))
				if r == nil || want == nil || r.Desc().Generation != want.Desc().Generation ||
					string(r.Desc().End) != string(want.Desc().End) {
					return false
				}
			}
		}
		return true
	})
	// The catalog lists six ranges covering the table without gaps.
	waitFor(t, 10*time.Second, "catalog with six ranges", func() bool {
		for _, n := range nodes {
			tb := n.st.Table("default")
			if tb == nil || len(tb.Ranges) != 6 {
				return false
			}
			var end []byte
			for i, d := range tb.Ranges {
				if i > 0 && string(d.Start) != string(end) {
					t.Fatalf("%s: catalog has a gap or overlap at range %d: %v", n.name, d.Id, tb.Ranges)
				}
				end = d.End
			}
			if len(end) != 0 {
				t.Fatalf("%s: catalog does not reach the end of the table", n.name)
			}
		}
		return true
	})
	// Every acknowledged write is readable on every node, through the
	// range that holds it now, with its version.
	for _, n := range nodes {
		for key, v := range acked {
			n.mustRead(t, rangeOf(n, key), 1, key, "v"+key, v)
		}
	}
	// Versions keep increasing across the split: a write to a right-hand
	// range gets a version above every version the parent handed out.
	var maxV uint64
	for _, v := range acked {
		maxV = max(maxV, v)
	}
	last := splits[len(splits)-1].Right
	leader := leaderOf(t, nodes, keys.RangeID(last.Id))
	res, err := leader.propose(ctx, keys.RangeID(last.Id), putCmd(1, string(last.Start), "after", nil))
	if err != nil {
		t.Fatal(err)
	}
	if res.Version <= maxV {
		t.Fatalf("version %d after the splits is not above %d", res.Version, maxV)
	}
	// A write routed to the left for a key of the right is refused.
	first := splits[0]
	ll := leaderOf(t, nodes, keys.RangeID(first.Left.Id))
	if _, err := ll.propose(ctx, keys.RangeID(first.Left.Id), putCmd(1, "zz", "x", nil)); !errors.Is(err, kv.ErrRangeKeyMismatch) {
		t.Fatalf("write of a key outside the range: %v, want ErrRangeKeyMismatch", err)
	}

	// Restart a node: it reopens every range, split ones included.
	nodes[1].stop()
	nodes[1].start(nil)
	// Wait until the restarted node knows a leader of every range it
	// reads (left sides too: range 2's leader was not awaited, and a read
	// on a replica without a leader yet fails "no leader").
	for _, sp := range splits {
		leaderOf(t, nodes, keys.RangeID(sp.Left.Id))
		leaderOf(t, nodes, keys.RangeID(sp.Right.Id))
	}
	for key, v := range acked {
		nodes[1].mustRead(t, rangeOf(nodes[1], key), 1, key, "v"+key, v)
	}
}

// A node that is down while the table splits, and whose logs are truncated
// past the splits meanwhile, gets the left range by snapshot (already
// narrow) and the right ranges as uninitialized replicas that the catalog
// announces, which then catch up by snapshot too.
func TestSplitCatchUpBySnapshot(t *testing.T) {
	nodes := newCluster(t, "n1", "n2", "n3")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	leaderOf(t, nodes, replica.MetaRangeID)
	leaderOf(t, nodes, 2)
	down := nodes[2]
	if down.st.Replica(2).IsLeader() || down.st.Replica(replica.MetaRangeID).IsLeader() {
		down = nodes[1]
		if down.st.Replica(2).IsLeader() || down.st.Replica(replica.MetaRangeID).IsLeader() {
			down = nodes[0]
		}
	}
	down.stop()
	up := []*testNode{}
	for _, n := range nodes {
		if n != down {
			up = append(up, n)
		}
	}
	sp1 := splitAt(t, ctx, up, "h")
	sp2 := splitAt(t, ctx, up, "q")
	acked := map[string]uint64{}
	// Enough writes to every range that each log truncates (keep = 5).
	for i := 0; i < 60; i++ {
		key := fmt.Sprintf("%c%02d", 'a'+byte(i%26), i)
		id := rangeOf(up[0], key)
		res, err := leaderOf(t, up, id).propose(ctx, id, putCmd(1, key, "v"+key, nil))
		if err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
		acked[key] = res.Version
	}
	for i := 0; i < 20; i++ { // and the meta range's log too
		n := leaderOf(t, up, replica.MetaRangeID)
		if _, err := n.propose(ctx, replica.MetaRangeID, &cairnpb.Command{Op: &cairnpb.Command_AllocRangeId{AllocRangeId: &cairnpb.AllocRangeID{}}}); err != nil {
			t.Fatal(err)
		}
	}
	down.start(nil)
	for _, id := range []uint64{sp1.Left.Id, sp1.Right.Id, sp2.Right.Id} {
		waitFor(t, 20*time.Second, fmt.Sprintf("%s catches up range %d", down.name, id), func() bool {
			r := down.st.Replica(keys.RangeID(id))
			return r != nil && r.Initialized() && r.Leader() != 0
		})
	}
	for key, v := range acked {
		id := rangeOf(down, key)
		if id == 0 {
			t.Fatalf("%s: no range holds %s", down.name, key)
		}
		down.mustRead(t, id, 1, key, "v"+key, v)
	}
}
