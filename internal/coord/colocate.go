package coord

import (
	"bytes"
	"fmt"
	"slices"
	"time"
)

// Colocation of merge candidates (docs/design/merges.md, "Colocation").
//
// A range merges with its right neighbour only when both have their
// voters and learners on the same nodes (replica.SameReplicas): the
// leader of the left range drives the merge and needs a replica of the
// right one on its node, and every node of the merged range must already
// hold both halves' data. After a split both halves share their replicas,
// but a repair or a balancing move can part them, and two small, cold
// neighbours on different nodes would then never merge.
//
// The scheduler finds such pairs (mergePairs: adjacent ranges of one
// table, small and cold by the router's own thresholds, --merge-size,
// --merge-qps, --merge-delay) and moves the right range's replicas onto
// the left range's nodes (colocate), with the steps every move uses: a
// learner on a node of the left range, its promotion once caught up
// (repair), then the removal of the surplus voter, which repair picks
// among the voters the left range does not have. Learners go the other
// way round: the right range's learner on a foreign node is removed first
// and repair adds the missing read learner, on a node of the left range.
// A node the right range left earlier is fenced (docs/design/placement.md);
// colocation lifts the fence and gets a new term first, as repair does.
// In a chain of candidates, a range moves only once everything to its
// left is colocated (anchoredRanges), so no range moves twice.
//
// Invariants: every step is a single configuration change planned at the
// range's conf_version (no quorum is lost: a voter goes only when the
// range has one more than it wants, never the leader); at most one step
// per range per round, within the round's move limit; nothing moves
// while either range of the pair has a move or repair in progress.
//
// The balancer leaves both ranges of a candidate pair alone (see
// balanceReplicas): moving either would part what colocation joins, and
// the pair is about to become one range, which the balancer then moves
// freely. Leader balancing still moves the pair's leaderships: the merge
// driver needs the left range's leader to hold a replica of the right
// range, not to lead it (router.localMerge asks the right range's
// leader, wherever it is, to freeze it).

// Merge holds the router's thresholds for automatic merges, as the
// scheduler uses them to find candidate pairs. SizeBytes 0 turns merges,
// and so colocation, off.
type Merge struct {
	// SizeBytes: the pair's data together stays under it (the caller
	// applies the router's cap of half the split size).
	SizeBytes uint64
	// QPS: the pair serves fewer requests a second than this together.
	QPS float64
	// Delay: both ranges have been small and cold, at their current
	// generation, at least this long (RangeInfo.ColdFor).
	Delay time.Duration
}

// mergePairs returns the candidate pairs: for each range that is the
// right half of one, its left neighbour. Both are data ranges of one
// table with stats from their leaders' heartbeats (a range whose leader
// is mid-move, ahead of the catalog, stays a candidate: the balancer
// must not move its partner meanwhile), adjacent (the left ends where
// the right starts, not at an initial bound of a hash table), together
// under m.SizeBytes and m.QPS, and each cold for at least m.Delay.
func mergePairs(ranges []RangeInfo, m Merge) map[uint64]RangeInfo {
	if m.SizeBytes == 0 {
		return nil
	}
	// Each half on its own must be small and cold; an idle cluster has
	// many such ranges, but those of hash tables end at initial bounds,
	// so most often no left half is found and nothing more is built
	// (this runs every round, over every range).
	small := func(r RangeInfo) bool {
		return !r.Meta && r.Reported && r.ColdFor >= m.Delay && r.Bytes < m.SizeBytes && r.QPS < m.QPS
	}
	var lefts []RangeInfo
	for _, l := range ranges {
		if len(l.End) > 0 && !l.KeepEnd && small(l) {
			lefts = append(lefts, l)
		}
	}
	if len(lefts) == 0 {
		return nil
	}
	type tableStart struct {
		table uint64
		start string
	}
	byStart := make(map[tableStart]RangeInfo, len(lefts))
	for _, r := range ranges {
		if small(r) {
			byStart[tableStart{r.Table, string(r.Start)}] = r
		}
	}
	pairs := map[uint64]RangeInfo{}
	for _, l := range lefts {
		r, ok := byStart[tableStart{l.Table, string(l.End)}]
		if !ok || !bytes.Equal(r.Start, l.End) || l.Bytes+r.Bytes >= m.SizeBytes || l.QPS+r.QPS >= m.QPS {
			continue
		}
		pairs[r.ID] = l
	}
	return pairs
}

// anchoredRanges returns the ranges that are the left half of a
// candidate pair and stay where they are: every pair to their left in
// the chain of candidates is colocated already (or there is none). Only
// the right neighbour of an anchored range moves; a chain of cold ranges
// is colocated from its left end, one link after another.
func anchoredRanges(ranges []RangeInfo, pairs map[uint64]RangeInfo) map[uint64]bool {
	anchored := map[uint64]bool{}
	if len(pairs) == 0 {
		return anchored
	}
	byID := make(map[uint64]RangeInfo, len(ranges))
	for _, r := range ranges {
		byID[r.ID] = r
	}
	for _, l := range pairs {
		// Walk left until a range with a known answer or the chain's
		// head; then answer for the ranges walked, right to left.
		var path []uint64
		ok := true
		for cur := l; ; {
			if known, seen := anchored[cur.ID]; seen {
				ok = known
				break
			}
			path = append(path, cur.ID)
			ll, isRight := pairs[cur.ID]
			if !isRight {
				break // the head of the chain
			}
			if !sameNodes(ll, byID[cur.ID]) {
				ok = false
				break
			}
			cur = ll
		}
		for _, id := range path {
			anchored[id] = ok
		}
	}
	return anchored
}

// sameNodes: a and b have their voters on the same nodes and their
// learners on the same nodes (what a merge requires).
func sameNodes(a, b RangeInfo) bool {
	return slices.Equal(slices.Sorted(slices.Values(a.Voters)), slices.Sorted(slices.Values(b.Voters))) &&
		slices.Equal(slices.Sorted(slices.Values(a.Learners)), slices.Sorted(slices.Values(b.Learners)))
}

// colocate returns the next step that brings r's replicas onto the nodes
// of l, its left neighbour in a candidate pair, if one is due now.
//
// Both ranges must be settled: every replica where the table wants it
// (no move, repair or catch-up in progress: those are repair's) and l's
// replicas on good, up nodes (else repair moves l first, and r follows
// l's new nodes). l must be anchored (see anchoredRanges): in a chain
// of cold ranges everything converges on the leftmost range's nodes,
// and a range moves once, not twice.
func colocate(l, r RangeInfo, anchored bool, byID map[uint64]NodeInfo, voters map[uint64]int) (Op, bool) {
	if !anchored || sameNodes(l, r) || !settled(l, byID) || l.Want != r.Want || l.WantLearners != r.WantLearners {
		return Op{}, false
	}
	op := func(kind string, node uint64, reason string, args ...any) (Op, bool) {
		return Op{Kind: kind, Range: r.ID, Node: node, Expect: r.ConfVersion,
			Reason: fmt.Sprintf("colocate with range %d for a merge: "+reason, append([]any{l.ID}, args...)...)}, true
	}
	// r may lack a read learner that repair cannot place: the only nodes
	// left are ones r left earlier (colocation removed them), still
	// fenced. Then lift the fence of one of l's nodes r lacks; repair
	// places the learner there, and colocation goes on from it.
	if short := len(r.Learners) < r.WantLearners; short {
		r.WantLearners = len(r.Learners)
		if !settled(r, byID) {
			return Op{}, false
		}
		for _, n := range slices.Concat(outside(l.Voters, r.Voters), outside(l.Learners, r.Learners)) {
			if step, ready := admit(r, n, op); !ready && step.Kind != "" {
				return step, true
			}
		}
		return Op{}, false
	}
	if !settled(r, byID) {
		return Op{}, false
	}
	// Voters first: a node of l's voters that r lacks gets r's replica.
	for _, n := range l.Voters {
		if slices.Contains(r.Voters, n) {
			continue
		}
		if slices.Contains(r.Learners, n) {
			// r's read learner is there already: promote it; repair then
			// removes a voter l does not have and adds the read learner
			// back on a node of l.
			if !slices.Contains(r.CaughtUp, n) {
				return Op{}, false
			}
			return op(OpPromote, n, "node %d holds a voter of range %d and a learner of range %d", n, l.ID, r.ID)
		}
		if step, ready := admit(r, n, op); !ready {
			return step, step.Kind != ""
		}
		from := pickVictim(r, nil, outside(r.Voters, l.Voters), voters)
		step, ok := op(OpAddLearner, n, "node %d holds a voter of range %d, not of range %d (a replica moves from %d)", n, l.ID, r.ID, from)
		step.from = from
		return step, ok
	}
	// Then learners: r's learner on a node without one of l goes, once a
	// node of l's learners can take its place (repair adds it there).
	for _, n := range l.Learners {
		if slices.Contains(r.Learners, n) {
			continue
		}
		if step, ready := admit(r, n, op); !ready {
			return step, step.Kind != ""
		}
		for _, x := range r.Learners {
			if !slices.Contains(l.Learners, x) {
				return op(OpRemove, x, "learner on node %d, which holds none of range %d; node %d gets it instead", x, l.ID, n)
			}
		}
	}
	return Op{}, false
}

// admit says whether node n (a good, up node) may get a replica of r now
// (ready), and otherwise which step must come first: lifting the fence
// of a node r left earlier (e.g. moved away by the balancer before the
// pair was a candidate), or a new term after it. A zero step means wait
// (n still reports its old copy, or no voter can take the leadership).
func admit(r RangeInfo, n uint64, op func(string, uint64, string, ...any) (Op, bool)) (step Op, ready bool) {
	if slices.Contains(r.Holders, n) {
		return Op{}, false // its old copy is not gone yet
	}
	fence, ok := r.Removed[n]
	switch {
	case !ok:
		return Op{}, true
	case fence == 0:
		step, _ = op(OpUnfence, n, "node %d left range %d earlier; its old replica is gone, so it may rejoin after a new term", n, r.ID)
		return step, false
	case r.Term <= fence:
		for _, v := range r.Voters {
			if v != r.Leader && slices.Contains(r.CaughtUp, v) {
				step, _ = op(OpTransferLeader, v, "a new term, so that node %d may rejoin range %d", n, r.ID)
				return step, false
			}
		}
		return Op{}, false
	}
	return Op{}, true
}

// settled: r has its table's numbers of voters and learners, all caught
// up, on active, up nodes, and a known leader.
func settled(r RangeInfo, byID map[uint64]NodeInfo) bool {
	if r.Leader == 0 || len(r.Voters) != r.Want || len(r.Learners) != r.WantLearners || !allCaughtUp(r) {
		return false
	}
	for _, id := range slices.Concat(r.Voters, r.Learners) {
		if n, ok := byID[id]; !good(n, ok) || !n.Up {
			return false
		}
	}
	return true
}

// outside returns the ids not in of.
func outside(ids, of []uint64) []uint64 {
	var out []uint64
	for _, id := range ids {
		if !slices.Contains(of, id) {
			out = append(out, id)
		}
	}
	return out
}
