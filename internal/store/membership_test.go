package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

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
	// A step planned against the old version is refused.
	if err := change(replica.OpAddLearner, victim.id, conf); !errors.Is(err, kv.ErrConditionFailed) {
		t.Fatalf("stale conf version: %v, want condition_failed", err)
	}
	// Writes go on with two voters.
	if _, err := leader.propose(ctx, rangeID, putCmd(1, "after-remove", "v", nil)); err != nil {
		t.Fatal(err)
	}
	// Add it back as a learner: it gets a snapshot with all the data.
	if err := change(replica.OpAddLearner, victim.id, conf2); err != nil {
		t.Fatal(err)
	}
	_, learners, conf3 := desc()
	if !slices.Equal(learners, []uint64{victim.id}) {
		t.Fatalf("learners %v, want [%d]", learners, victim.id)
	}
	waitFor(t, 10*time.Second, "the learner caught up", func() bool {
		r := victim.st.Replica(rangeID)
		_, _, lapplied := leader.st.Replica(rangeID).Status()
		if r == nil {
			return false
		}
		_, _, applied := r.Status()
		return applied >= lapplied && slices.Contains(leader.st.Replica(rangeID).CaughtUp(), victim.id)
	})
	victim.mustRead(t, rangeID, 1, "k07", "v", 0)
	victim.mustRead(t, rangeID, 1, "after-remove", "v", 0)
	// Promote it: three voters again.
	if err := change(replica.OpPromote, victim.id, conf3); err != nil {
		t.Fatal(err)
	}
	voters, learners, _ = desc()
	if len(voters) != 3 || len(learners) != 0 {
		t.Fatalf("after promote: voters %v learners %v", voters, learners)
	}
	// A promote of a voter, and a demote of a non-voter, are refused.
	_, _, conf4 := desc()
	if err := change(replica.OpPromote, victim.id, conf4); !errors.Is(err, kv.ErrConditionFailed) {
		t.Fatalf("promote of a voter: %v", err)
	}
	if err := change(replica.OpDemote, 99, conf4); !errors.Is(err, kv.ErrConditionFailed) {
		t.Fatalf("demote of a stranger: %v", err)
	}
	// The victim votes: with the other follower stopped, writes still
	// commit (leader + victim are a quorum of three).
	for _, n := range nodes {
		if n != leader && n != victim {
			n.stop()
		}
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if _, err := leader.propose(wctx, rangeID, putCmd(1, "quorum-with-victim", "v", nil)); err != nil {
		t.Fatalf("write with the promoted replica as the quorum: %v", err)
	}
}
