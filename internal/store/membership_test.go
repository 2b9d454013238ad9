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
	_ = cairnpb.RemovedReplica{}
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
	// victim's return while it is fenced.
	if err := change(replica.OpAddLearner, victim.id, conf); !errors.Is(err, kv.ErrConditionFailed) {
		t.Fatalf("stale conf version: %v, want condition_failed", err)
	}
	if err := change(replica.OpAddLearner, victim.id, conf2); !errors.Is(err, kv.ErrConditionFailed) {
		t.Fatalf("re-adding a fenced node: %v, want condition_failed", err)
	}
	// Writes go on with two voters.
	if _, err := leader.propose(ctx, rangeID, putCmd(1, "after-remove", "v", nil)); err != nil {
		t.Fatal(err)
	}
	// The fence: once the victim's old replica is gone (it is: destroyed
	// above), an unfence records that in this term; an add in the same
	// term is still refused; after a new term the victim rejoins.
	if err := change(replica.OpUnfence, victim.id, 0); err != nil {
		t.Fatalf("unfence: %v", err)
	}
	_, _, conf3 := desc()
	if err := change(replica.OpAddLearner, victim.id, conf3); !errors.Is(err, kv.ErrConditionFailed) {
		t.Fatalf("re-adding in the fence's term: %v, want condition_failed", err)
	}
	var other *testNode
	for _, n := range nodes {
		if n != leader && n != victim {
			other = n
		}
	}
	// (Retried: a node votes only an election timeout after it started.)
	waitFor(t, 15*time.Second, "leadership moved to "+other.name, func() bool {
		if r := other.st.Replica(rangeID); r != nil && r.IsLeader() {
			return true
		}
		leader.use(func(rt *router.Router) { _ = rt.TransferLeader(ctx, uint64(rangeID), other.id) })
		time.Sleep(50 * time.Millisecond)
		return false
	})
	leader = other
	_, _, conf3 = desc()
	if err := change(replica.OpAddLearner, victim.id, conf3); err != nil {
		t.Fatalf("re-adding after a new term: %v", err)
	}
	right := rangeID
	rl := leader
	changeRight := func(op string, node uint64) error {
		var err error
		expect := rl.st.Replica(right).Desc().ConfVersion
		rl.use(func(rt *router.Router) { err = rt.ChangeReplicas(ctx, uint64(right), op, node, expect) })
		return err
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
	victim.mustRead(t, right, 1, "after-remove", "v", 0)
	if d := rl.st.Replica(right).Desc(); len(d.Removed) != 0 {
		t.Fatalf("removed nodes after the rejoin: %v", d.Removed)
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
