package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/kv"
	"github.com/cairn-db/cairn/internal/replica"
	"github.com/cairn-db/cairn/internal/router"
)

// TestReplicaMoves drives the single steps of a replica move on a real
// 3-node cluster and checks each outcome: a removed replica destroys its
// data; a stale conf version is refused; a learner receives a snapshot of
// the data and, promoted, votes again; the leader does not remove itself;
// the catalog follows every step.
func TestReplicaMoves(t *testing.T) {
	nodes := newCluster(t, "n1", "n2", "n3")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const rangeID = keys.RangeID(2) // the default table's range
	leader := leaderOf(t, nodes, rangeID)
	for i := range 50 {
		if _, err := leader.propose(ctx, rangeID, putCmd(1, fmt.Sprintf("k%02d", i), "v", nil)); err != nil {
			t.Fatal(err)
		}
	}
	var victim *testNode
	for _, n := range nodes {
		if n != leader {
			victim = n
			break
		}
	}
	change := func(op string, node, expect uint64) error {
		var err error
		leader.use(func(rt *router.Router) { err = rt.ChangeReplicas(ctx, uint64(rangeID), op, node, expect) })
		return err
	}
	desc := func() (voters, learners []uint64, conf uint64) {
		d := leader.st.Replica(rangeID).Desc()
		return d.Replicas, d.Learners, d.ConfVersion
	}
	catalogHas := func(n *testNode, node uint64) bool {
		d := n.st.CatalogRange(rangeID)
		return d != nil && (slices.Contains(d.Replicas, node) || slices.Contains(d.Learners, node))
	}

	// The leader refuses to remove itself.
	_, _, conf := desc()
	if err := change(replica.OpRemove, leader.id, conf); !errors.Is(err, kv.ErrInvalidArgument) {
		t.Fatalf("leader removing itself: %v, want invalid_argument", err)
	}
	// Remove the victim: its replica and data go; the catalog follows.
	if err := change(replica.OpRemove, victim.id, conf); err != nil {
		t.Fatal(err)
	}
	voters, _, conf2 := desc()
	if len(voters) != 2 || slices.Contains(voters, victim.id) || conf2 != conf+1 {
		t.Fatalf("after remove: voters %v conf %d (was %d)", voters, conf2, conf)
	}
	waitFor(t, 10*time.Second, "the victim's replica destroyed", func() bool {
		return victim.st.Replica(rangeID) == nil
	})
	if victim.hasKeys(t, func() ([]byte, []byte) { return keys.DataSpan(1, nil, nil) }) {
		t.Fatalf("%s still holds data of the removed range", victim.name)
	}
	waitFor(t, 10*time.Second, "every catalog without the victim", func() bool {
		for _, n := range nodes {
			if catalogHas(n, victim.id) {
				return false
			}
		}
		return true
	})
	// A step planned against the old version is refused; so is the
	// victim's return under the Raft ID it left with.
	if err := change(replica.OpAddLearner, victim.id, conf); !errors.Is(err, kv.ErrConditionFailed) {
		t.Fatalf("stale conf version: %v, want condition_failed", err)
	}
	if err := change(replica.OpAddLearner, victim.id, conf2); !errors.Is(err, kv.ErrConditionFailed) {
		t.Fatalf("re-adding a node that left: %v, want condition_failed", err)
	}
	// Writes go on with two voters.
	if _, err := leader.propose(ctx, rangeID, putCmd(1, "after-remove", "v", nil)); err != nil {
		t.Fatal(err)
	}
	// The right half of a split is a new Raft group: the victim may join
	// it. It gets a snapshot with all the data of its span.
	meta := leaderOf(t, nodes, replica.MetaRangeID)
	alloc, err := meta.propose(ctx, replica.MetaRangeID, &cairnpb.Command{Op: &cairnpb.Command_AllocRangeId{AllocRangeId: &cairnpb.AllocRangeID{}}})
	if err != nil {
		t.Fatal(err)
	}
	sres, err := leader.propose(ctx, rangeID, &cairnpb.Command{TableId: 1, Op: &cairnpb.Command_Split{Split: &cairnpb.Split{
		SplitKey: []byte("k25"), NewRangeId: alloc.RangeID, ExpectedGeneration: leader.st.Replica(rangeID).Desc().Generation,
	}}})
	if err != nil {
		t.Fatal(err)
	}
	right := keys.RangeID(sres.Split.Right.Id)
	if len(sres.Split.Right.Removed) != 0 || !slices.Equal(sres.Split.Left.Removed, []uint64{victim.id}) {
		t.Fatalf("removed nodes: left %v right %v", sres.Split.Left.Removed, sres.Split.Right.Removed)
	}
	if _, err := meta.propose(ctx, replica.MetaRangeID, &cairnpb.Command{Op: &cairnpb.Command_UpdateRanges{UpdateRanges: &cairnpb.UpdateRanges{
		TableId: 1, Descs: []*cairnpb.RangeDescriptor{sres.Split.Left, sres.Split.Right},
	}}}); err != nil {
		t.Fatal(err)
	}
	var rl *testNode
	waitFor(t, 10*time.Second, "a leader of the right range", func() bool {
		for _, n := range nodes {
			if r := n.st.Replica(right); r != nil && r.IsLeader() {
				rl = n
				return true
			}
		}
		return false
	})
	changeRight := func(op string, node uint64) error {
		var err error
		expect := rl.st.Replica(right).Desc().ConfVersion
		rl.use(func(rt *router.Router) { err = rt.ChangeReplicas(ctx, uint64(right), op, node, expect) })
		return err
	}
	if err := changeRight(replica.OpAddLearner, victim.id); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the learner caught up", func() bool {
		r := victim.st.Replica(right)
		_, _, lapplied := rl.st.Replica(right).Status()
		if r == nil {
			return false
		}
		_, _, applied := r.Status()
		return applied >= lapplied && slices.Contains(rl.st.Replica(right).CaughtUp(), victim.id)
	})
	victim.mustRead(t, right, 1, "k37", "v", 0)
	if victim.st.Replica(rangeID) != nil {
		t.Fatalf("%s holds the left range again", victim.name)
	}
	// Promote it: three voters again.
	if err := changeRight(replica.OpPromote, victim.id); err != nil {
		t.Fatal(err)
	}
	d := rl.st.Replica(right).Desc()
	if len(d.Replicas) != 3 || len(d.Learners) != 0 {
		t.Fatalf("after promote: voters %v learners %v", d.Replicas, d.Learners)
	}
	// A promote of a voter, and a demote of a stranger, are refused.
	if err := changeRight(replica.OpPromote, victim.id); !errors.Is(err, kv.ErrConditionFailed) {
		t.Fatalf("promote of a voter: %v", err)
	}
	if err := changeRight(replica.OpDemote, 99); !errors.Is(err, kv.ErrConditionFailed) {
		t.Fatalf("demote of a stranger: %v", err)
	}
	// The victim votes: with the third node stopped, writes to the right
	// range still commit (its leader and the victim are a quorum).
	for _, n := range nodes {
		if n != rl && n != victim {
			n.stop()
		}
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if _, err := rl.propose(wctx, right, putCmd(1, "quorum-with-victim", "v", nil)); err != nil {
		t.Fatalf("write with the promoted replica as the quorum: %v", err)
	}
}
