package coord

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"
)

// TestColocationConverges: starting from each merge_*.in cluster state,
// plan, carry the plan out (every step succeeds, learners catch up at
// once, removed replicas are destroyed at once), and repeat. The cluster
// must come to rest (a round with nothing to do: colocation, repair and
// balancing never undo each other), every merge candidate pair then has
// its replicas on the same nodes, and no step along the way removes a
// range's leader or a voter the range needs.
func TestColocationConverges(t *testing.T) {
	ins, err := filepath.Glob("testdata/merge_*.in")
	if err != nil || len(ins) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, in := range ins {
		t.Run(filepath.Base(in), func(t *testing.T) {
			nodes, ranges, lim := parseState(t, in)
			const maxRounds = 100
			for round := 0; ; round++ {
				if round == maxRounds {
					t.Fatalf("no rest after %d rounds; last plan: %v", maxRounds, Plan(nodes, ranges, lim))
				}
				ops := Plan(nodes, ranges, lim)
				if len(ops) == 0 {
					t.Logf("at rest after %d rounds", round)
					break
				}
				for _, op := range ops {
					if err := execute(nodes, ranges, op); err != nil {
						t.Fatalf("round %d: %v: %v", round, op, err)
					}
				}
				settle(ranges)
			}
			for right, l := range mergePairs(ranges, lim.Merge) {
				r := ranges[slices.IndexFunc(ranges, func(r RangeInfo) bool { return r.ID == right })]
				if !sameNodes(l, r) {
					t.Errorf("candidates %d and %d at rest on different nodes: %v %v / %v %v", l.ID, r.ID, l.Voters, l.Learners, r.Voters, r.Learners)
				}
			}
		})
	}
}

// execute applies op to the cluster state as the range's leader would,
// checking what a real step checks (the conf version) and what the
// scheduler promises (no leader or needed voter removed).
func execute(nodes []NodeInfo, ranges []RangeInfo, op Op) error {
	if op.Kind == OpSetRemoved {
		for i := range nodes {
			if nodes[i].ID == op.Node {
				nodes[i].State = stateRemoved
			}
		}
		return nil
	}
	i := slices.IndexFunc(ranges, func(r RangeInfo) bool { return r.ID == op.Range })
	if i < 0 {
		return fmt.Errorf("no range %d", op.Range)
	}
	r := &ranges[i]
	if op.Kind == OpTransferLeader {
		if !slices.Contains(r.Voters, op.Node) {
			return fmt.Errorf("leadership to a non-voter")
		}
		r.Leader = op.Node
		r.Term++
		return nil
	}
	if op.Expect != r.ConfVersion {
		return fmt.Errorf("planned at conf %d, range at %d", op.Expect, r.ConfVersion)
	}
	r.ConfVersion++
	switch op.Kind {
	case OpAddLearner:
		if slices.Contains(r.Voters, op.Node) || slices.Contains(r.Learners, op.Node) || fenced(*r, op.Node) {
			return fmt.Errorf("node %d may not get a learner", op.Node)
		}
		r.Learners = append(slices.Clone(r.Learners), op.Node)
		delete(r.Removed, op.Node)
	case OpPromote:
		if !slices.Contains(r.Learners, op.Node) {
			return fmt.Errorf("promote of a non-learner")
		}
		r.Learners = slices.DeleteFunc(slices.Clone(r.Learners), func(n uint64) bool { return n == op.Node })
		r.Voters = append(slices.Clone(r.Voters), op.Node)
	case OpRemove, OpDemote:
		if op.Node == r.Leader {
			return fmt.Errorf("removes the leader")
		}
		if slices.Contains(r.Voters, op.Node) {
			if len(r.Voters) <= r.Want && nodeGood(nodes, op.Node) {
				return fmt.Errorf("removes a needed voter (%d voters, want %d)", len(r.Voters), r.Want)
			}
			r.Voters = slices.DeleteFunc(slices.Clone(r.Voters), func(n uint64) bool { return n == op.Node })
			if op.Kind == OpDemote {
				r.Learners = append(slices.Clone(r.Learners), op.Node)
				return nil
			}
		} else {
			r.Learners = slices.DeleteFunc(slices.Clone(r.Learners), func(n uint64) bool { return n == op.Node })
		}
		if r.Removed == nil {
			r.Removed = map[uint64]uint64{}
		}
		r.Removed[op.Node] = 0
	case OpUnfence:
		r.Removed[op.Node] = r.Term
	default:
		return fmt.Errorf("unknown op")
	}
	return nil
}

func nodeGood(nodes []NodeInfo, id uint64) bool {
	for _, n := range nodes {
		if n.ID == id {
			return good(n, true)
		}
	}
	return false
}

// settle is the time between rounds: every replica catches up, removed
// ones are destroyed, and the leaders report it.
func settle(ranges []RangeInfo) {
	for i := range ranges {
		r := &ranges[i]
		if r.Leader == 0 {
			continue
		}
		r.CaughtUp = slices.Concat(r.Voters, r.Learners)
		r.Holders = slices.Sorted(slices.Values(slices.Concat(r.Voters, r.Learners)))
	}
}
