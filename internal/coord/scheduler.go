package coord

import (
	"cmp"
	"fmt"
	"slices"
	"time"
)

// NodeInfo is a node as the scheduler sees it.
type NodeInfo struct {
	ID    uint64
	State string // active, draining, removing, removed
	// Up: heard from within the down timeout (placeable). Dead: not heard
	// from for longer than the dead-node timeout (its replicas are
	// rebuilt elsewhere). A node neither up nor dead is only left alone.
	Up   bool
	Dead bool
}

// RangeInfo is a range as the scheduler sees it.
type RangeInfo struct {
	ID       uint64
	Meta     bool // the meta range: voters up to 5, a learner everywhere else
	Voters   []uint64
	Learners []uint64
	// ConfVersion is what a change must expect.
	ConfVersion uint64
	// Want is the number of voters the range should have. WantLearners
	// (data ranges) is the number of permanent learners it should have
	// besides: asynchronous replicas that serve session and stale reads
	// and never slow a write. A learner beyond that is a move in progress
	// (promoted once caught up, and then a voter goes).
	Want         int
	WantLearners int
	// Leader is the node leading the range (0: unknown). CaughtUp are the
	// replicas the leader reports near its commit index.
	Leader   uint64
	CaughtUp []uint64
	Bytes    uint64
	// Holders are the nodes whose latest heartbeat lists an initialized
	// replica of the range (an uninitialized one never acknowledged an
	// entry). A node outside the configuration that still holds one (it
	// was removed and has not destroyed its copy yet) gets no learner
	// until it reports none: its old log must be gone before it joins
	// again under the same Raft ID, or the leader could count entries it
	// acknowledged before its copy was destroyed.
	Holders []uint64
	// Removed are the nodes that left the range, with their fence terms
	// (0: fenced until unfenced). A removed node gets a replica again
	// only once its old one is gone (Unfence records that in the term of
	// its entry) and the range's leader is in a later term (see
	// cairnpb.RangeDescriptor.removed).
	Removed map[uint64]uint64
	// Term is the leader's term.
	Term uint64
	// Table is the range's table; Start and End its span [Start, End)
	// (End empty: the table's last range). Merge candidates are adjacent
	// ranges of one table (colocate.go).
	Table      uint64
	Start, End []byte
	// KeepEnd: End is one of the initial bounds of a hash table, which
	// merges never cross (the table keeps the ranges it was created
	// with).
	KeepEnd bool
	// QPS is the load its leader reports: entries applied a second plus
	// requests it served a second (the splitter's measure for merges).
	QPS float64
	// ColdFor is how long the range has been, by its leader's reports,
	// under the merge size and rate at its current generation (the
	// coordinator's soft state; zero when merges are off).
	ColdFor time.Duration
	// Reported: Bytes, QPS and ColdFor come from a leader's heartbeat
	// (also when Leader is zero because that leader's descriptor is ahead
	// of the catalog, as in the middle of a move).
	Reported bool
}

// Op is one step the scheduler asks for.
type Op struct {
	Kind   string // add_learner, promote, remove, transfer_leader, set_removed
	Range  uint64
	Node   uint64
	Expect uint64 // the range's conf_version the step expects
	Reason string
	from   uint64 // a balancing move's source node
}

func hiOf(op Op) uint64 { return op.from }

func (o Op) String() string {
	if o.Kind == OpSetRemoved {
		return fmt.Sprintf("%s node %d: %s", o.Kind, o.Node, o.Reason)
	}
	return fmt.Sprintf("%s range %d node %d: %s", o.Kind, o.Range, o.Node, o.Reason)
}

// Op kinds beyond the replica changes.
const (
	OpAddLearner     = "add_learner"
	OpPromote        = "promote"
	OpRemove         = "remove"
	OpDemote         = "demote"
	OpUnfence        = "unfence"
	OpTransferLeader = "transfer_leader"
	// OpSetRemoved marks a node that was being removed as removed, once
	// it holds nothing but its meta learner.
	OpSetRemoved = "set_removed"
)

// Node states (as in replica.Node*; repeated to keep this package pure).
const (
	stateActive   = "active"
	stateDraining = "draining"
	stateRemoving = "removing"
	stateRemoved  = "removed"
)

// Limits bound what one round may start.
type Limits struct {
	// MaxMoves is the number of replica changes a round starts at most.
	MaxMoves int
	// Balance enables replica and leader balancing (repairs always run).
	Balance bool
	// Merge: the router's thresholds for automatic merges; candidate
	// pairs on different nodes are colocated (colocate.go).
	Merge Merge
}

// Plan decides the next steps for a cluster: at most one step per range
// and at most lim.MaxMoves replica changes. It is a pure function of its
// input, so it is tested from given cluster states (testdata/*.golden).
//
// Order of concern: a range's own health first (learners to promote or
// drop, voters to replace, too many or too few voters), then colocation
// of merge candidates, then balance (replica counts, then leader counts),
// which leaves merge candidates alone.
func Plan(nodes []NodeInfo, ranges []RangeInfo, lim Limits) []Op {
	byID := map[uint64]NodeInfo{}
	for _, n := range nodes {
		byID[n.ID] = n
	}
	// load counts replicas per node, including the ones this round adds;
	// voters counts voters only (a surplus voter goes from the node with
	// the most, not from one that is receiving several learners).
	load := map[uint64]int{}
	voters := map[uint64]int{}
	for _, r := range ranges {
		if r.Meta {
			continue
		}
		for _, v := range r.Voters {
			load[v]++
			voters[v]++
		}
		for _, l := range r.Learners {
			load[l]++
		}
	}
	var ops []Op
	moves := 0
	busy := map[uint64]bool{} // ranges with a step this round
	metaIDs := map[uint64]bool{}
	for _, r := range ranges {
		if r.Meta {
			metaIDs[r.ID] = true
		}
	}
	add := func(op Op) {
		ops = append(ops, op)
		busy[op.Range] = true
		if metaIDs[op.Range] {
			moves++ // the meta range's copies do not count as load
			return
		}
		if op.Kind == OpAddLearner || op.Kind == OpPromote || op.Kind == OpRemove || op.Kind == OpDemote {
			moves++
		}
		if op.Kind == OpAddLearner {
			load[op.Node]++
		}
		if op.Kind == OpRemove {
			load[op.Node]--
		}
	}
	// pairs: right range -> its left neighbour, for merge candidates. A
	// range being colocated is repaired toward its left neighbour's nodes.
	pairs := mergePairs(ranges, lim.Merge)
	for _, r := range ranges {
		if moves >= lim.MaxMoves {
			break
		}
		var partner *RangeInfo
		if l, ok := pairs[r.ID]; ok {
			partner = &l
		}
		if op, ok := repair(r, partner, byID, nodes, load, voters); ok {
			add(op)
		}
	}
	anchored := anchoredRanges(ranges, pairs)
	for _, r := range ranges {
		l, ok := pairs[r.ID]
		if moves >= lim.MaxMoves {
			break
		}
		if !ok || busy[l.ID] || busy[r.ID] {
			continue
		}
		if op, ok := colocate(l, r, anchored[l.ID], byID, voters); ok {
			add(op)
			if op.from != 0 {
				load[op.from]-- // the surplus voter it will shed
			}
		}
	}
	if !lim.Balance {
		return ops
	}
	// Merge candidates keep their replicas where they are (colocate.go);
	// their leaderships may move.
	pinned := map[uint64]bool{}
	for right, l := range pairs {
		pinned[right], pinned[l.ID] = true, true
	}
	// Balancing with what the round has left: several moves, each on a
	// range without a step this round, with the counts updated as if the
	// earlier ones had completed. Ranges mid-move (learners, surplus
	// voters) are not touched.
	for moves < lim.MaxMoves {
		op, ok := balanceReplicas(ranges, nodes, load, busy, pinned)
		if !ok {
			break
		}
		add(op)
		load[hiOf(op)]-- // the surplus voter it will shed
	}
	lead := map[uint64]int{}
	for _, r := range ranges {
		if r.Leader != 0 && !r.Meta {
			lead[r.Leader]++
		}
	}
	for range lim.MaxMoves {
		op, ok := balanceLeaders(ranges, nodes, lead, busy)
		if !ok {
			break
		}
		add(op)
	}
	// Nodes being removed that hold nothing any more are removed for good.
	for _, n := range nodes {
		if n.State != stateRemoving || load[n.ID] > 0 {
			continue
		}
		if holdsMetaVoter(ranges, n.ID) {
			continue
		}
		ops = append(ops, Op{Kind: OpSetRemoved, Node: n.ID, Reason: "drained: holds no replica"})
	}
	return ops
}

func holdsMetaVoter(ranges []RangeInfo, node uint64) bool {
	for _, r := range ranges {
		if r.Meta && slices.Contains(r.Voters, node) {
			return true
		}
	}
	return false
}

// good says whether a node may keep (or get) a voter: an active member
// not given up for dead.
func good(n NodeInfo, ok bool) bool {
	return ok && n.State == stateActive && !n.Dead
}

// repair returns the step a range needs for its own health, if any.
// partner, if not nil, is the left neighbour r is being colocated with:
// new replicas go to its nodes and surplus voters leave the others first.
func repair(r RangeInfo, partner *RangeInfo, byID map[uint64]NodeInfo, nodes []NodeInfo, load, voters map[uint64]int) (Op, bool) {
	op := func(kind string, node uint64, reason string, args ...any) (Op, bool) {
		if partner != nil {
			reason += fmt.Sprintf(" (colocating with range %d for a merge)", partner.ID)
		}
		return Op{Kind: kind, Range: r.ID, Node: node, Expect: r.ConfVersion, Reason: fmt.Sprintf(reason, args...)}, true
	}
	if r.Leader == 0 {
		return Op{}, false // no leader to change anything
	}
	var goodVoters, badVoters []uint64
	for _, v := range r.Voters {
		if n, ok := byID[v]; good(n, ok) {
			goodVoters = append(goodVoters, v)
		} else {
			badVoters = append(badVoters, v)
		}
	}
	// Learners: drop the ones on bad nodes; promote the caught-up ones a
	// data range added (to replace a voter or to move one: the surplus
	// voter goes next); the meta range promotes only to reach its count,
	// since every other member keeps a meta learner for good. A range
	// being colocated promotes a learner on its partner's voters first.
	learners := r.Learners
	if partner != nil {
		learners = slices.Concat(inside(r.Learners, partner.Voters), outside(r.Learners, partner.Voters))
	}
	for _, l := range learners {
		n, ok := byID[l]
		switch {
		case !ok || n.State == stateRemoved || (!r.Meta && !good(n, ok)):
			return op(OpRemove, l, "learner on a node that is %s", describe(n, ok))
		case (len(goodVoters) < r.Want || (!r.Meta && len(r.Learners) > r.WantLearners)) && good(n, ok) && n.Up && slices.Contains(r.CaughtUp, l):
			if len(goodVoters) < r.Want {
				return op(OpPromote, l, "learner caught up; range has %d of %d healthy voters", len(goodVoters), r.Want)
			}
			return op(OpPromote, l, "learner caught up; range has %d learners, keeps %d (a voter moves)", len(r.Learners), r.WantLearners)
		}
	}
	// Too many voters: remove a bad one first, else the one on the most
	// loaded node; never the leader (move leadership first).
	if len(r.Voters) > r.Want {
		cands := goodVoters
		if partner != nil && len(outside(goodVoters, partner.Voters)) > 0 {
			cands = outside(goodVoters, partner.Voters)
		}
		victim := pickVictim(r, badVoters, cands, voters)
		if victim == r.Leader {
			if to := transferTarget(r, victim, byID); to != 0 {
				return op(OpTransferLeader, to, "leader on node %d is leaving the range", victim)
			}
			return Op{}, false
		}
		kind := OpRemove
		if n, ok := byID[victim]; r.Meta && ok && n.State != stateRemoved {
			// A member keeps its copy of the catalog.
			kind = OpDemote
		}
		return op(kind, victim, "range has %d voters, wants %d; node %d is %s", len(r.Voters), r.Want, victim, describeID(byID, victim))
	}
	// Too few healthy voters: a learner on a new node (promoted once it
	// caught up, by a later round). A learner already on its way counts
	// while its node is up (a read learner on a down node would otherwise
	// hold the repair back until the node is declared dead).
	pending := 0
	for _, l := range r.Learners {
		if n, ok := byID[l]; good(n, ok) && n.Up {
			pending++
		}
	}
	if len(goodVoters)+pending < r.Want {
		if r.Meta && pending > 0 {
			return Op{}, false // meta learners exist everywhere: wait for one to catch up
		}
		if to := placeTarget(r, nodes, load, partnerNodes(partner, true)); to != 0 {
			why := "under-replicated"
			if len(badVoters) > 0 {
				why = fmt.Sprintf("replacing node %d (%s)", badVoters[0], describeID(byID, badVoters[0]))
			}
			return op(OpAddLearner, to, "%s: %d of %d healthy voters", why, len(goodVoters), r.Want)
		}
		// Only nodes that left the range are left: lift a fence, step by
		// step (its old replica gone, then a later term).
		for _, n := range nodes {
			fence, ok := r.Removed[n.ID]
			if !ok || n.State != stateActive || !n.Up || n.Dead || slices.Contains(r.Holders, n.ID) {
				continue
			}
			if fence == 0 {
				return op(OpUnfence, n.ID, "node %d left the range; its old replica is gone, so it may rejoin after a new term (%d of %d healthy voters)", n.ID, len(goodVoters), r.Want)
			}
			if r.Term <= fence {
				if to := transferTarget(r, r.Leader, byID); to != 0 {
					return op(OpTransferLeader, to, "a new term, so that node %d may rejoin the range", n.ID)
				}
			}
		}
		return Op{}, false
	}
	// Read learners: as many as the table asks for, on the least loaded
	// nodes without a replica of the range; a surplus voter has gone
	// first, so a learner beyond the count here is one a move added.
	if !r.Meta && len(r.Voters) == r.Want && len(r.Learners) < r.WantLearners {
		if to := placeTarget(r, nodes, load, partnerNodes(partner, false)); to != 0 {
			return op(OpAddLearner, to, "read learners: %d of %d", len(r.Learners), r.WantLearners)
		}
	}
	// The meta range keeps a learner on every member (the catalog lives
	// there).
	if r.Meta {
		for _, n := range nodes {
			if n.State == stateRemoved || !n.Up || slices.Contains(r.Voters, n.ID) || slices.Contains(r.Learners, n.ID) || slices.Contains(r.Holders, n.ID) ||
				fenced(r, n.ID) {
				continue
			}
			return op(OpAddLearner, n.ID, "every member keeps a copy of the catalog")
		}
	}
	return Op{}, false
}

func pickVictim(r RangeInfo, bad, goodV []uint64, load map[uint64]int) uint64 {
	if len(bad) > 0 {
		// A non-leader bad voter first.
		for _, b := range bad {
			if b != r.Leader {
				return b
			}
		}
		return bad[0]
	}
	cands := slices.Clone(goodV)
	slices.SortStableFunc(cands, func(a, b uint64) int {
		if c := cmp.Compare(load[b], load[a]); c != 0 {
			return c
		}
		// Prefer not the leader, then the higher ID.
		if (a == r.Leader) != (b == r.Leader) {
			if a == r.Leader {
				return 1
			}
			return -1
		}
		return cmp.Compare(b, a)
	})
	return cands[0]
}

// transferTarget picks a healthy, caught-up voter other than from.
func transferTarget(r RangeInfo, from uint64, byID map[uint64]NodeInfo) uint64 {
	for _, v := range r.Voters {
		if n, ok := byID[v]; v != from && good(n, ok) && n.Up && slices.Contains(r.CaughtUp, v) {
			return v
		}
	}
	return 0
}

// placeTarget picks the node for a new replica: active, up, not holding
// the range, among prefer if any of those qualifies, fewest replicas,
// then lowest ID.
func placeTarget(r RangeInfo, nodes []NodeInfo, load map[uint64]int, prefer []uint64) uint64 {
	if len(prefer) > 0 {
		var preferred []NodeInfo
		for _, n := range nodes {
			if slices.Contains(prefer, n.ID) && placeable(r, n) {
				preferred = append(preferred, n)
			}
		}
		if len(preferred) > 0 {
			nodes = preferred
		}
	}
	var best uint64
	for _, n := range nodes {
		if !placeable(r, n) {
			continue
		}
		if best == 0 || load[n.ID] < load[best] || (load[n.ID] == load[best] && n.ID < best) {
			best = n.ID
		}
	}
	return best
}

// placeable: n may get a new replica of r (a learner).
func placeable(r RangeInfo, n NodeInfo) bool {
	return n.State == stateActive && n.Up && !n.Dead && !slices.Contains(r.Voters, n.ID) &&
		!slices.Contains(r.Learners, n.ID) && !slices.Contains(r.Holders, n.ID) && !fenced(r, n.ID)
}

// fenced: n left r and may not rejoin yet.
func fenced(r RangeInfo, n uint64) bool {
	fence, ok := r.Removed[n]
	return ok && (fence == 0 || r.Term <= fence)
}

// extremes returns the active, live nodes with the highest and the lowest
// count (ties: the lower ID), or zeros.
func extremes(nodes []NodeInfo, count map[uint64]int) (hi, lo uint64) {
	for _, n := range nodes {
		if n.State != stateActive || !n.Up || n.Dead {
			continue
		}
		if hi == 0 || count[n.ID] > count[hi] || (count[n.ID] == count[hi] && n.ID < hi) {
			hi = n.ID
		}
		if lo == 0 || count[n.ID] < count[lo] || (count[n.ID] == count[lo] && n.ID < lo) {
			lo = n.ID
		}
	}
	return hi, lo
}

// balanceReplicas moves one replica from the most to the least loaded
// node when they differ by more than one and by more than 10%. It moves
// no pinned range: both ranges of a merge candidate pair stay together
// (colocate.go), and they are counted in the load all the same.
func balanceReplicas(ranges []RangeInfo, nodes []NodeInfo, load map[uint64]int, busy, pinned map[uint64]bool) (Op, bool) {
	hi, lo := extremes(nodes, load)
	if hi == 0 || lo == 0 || load[hi]-load[lo] <= 1 || float64(load[hi]) <= 1.1*float64(load[lo]) {
		return Op{}, false
	}
	// A range that never moved first: every move leaves its source among
	// the range's removed nodes, which take it back only through a fence
	// (slower: an unfence and a new term), so moving the same range again
	// and again would make its repairs slow.
	cands := slices.Clone(ranges)
	slices.SortStableFunc(cands, func(a, b RangeInfo) int { return cmp.Compare(len(a.Removed), len(b.Removed)) })
	for _, r := range cands {
		if r.Meta || busy[r.ID] || pinned[r.ID] || r.Leader == 0 || len(r.Learners) != r.WantLearners || len(r.Voters) != r.Want || !allCaughtUp(r) {
			continue
		}
		if slices.Contains(r.Voters, hi) && placeable(r, byNode(nodes, lo)) {
			return Op{Kind: OpAddLearner, Range: r.ID, Node: lo, Expect: r.ConfVersion, from: hi,
				Reason: fmt.Sprintf("balance: node %d holds %d replicas, node %d holds %d (a replica moves from %d)", hi, load[hi], lo, load[lo], hi)}, true
		}
	}
	return Op{}, false
}

// balanceLeaders moves one leadership from the node leading the most
// ranges to a voter on the node leading the fewest, when they differ by
// more than one.
func balanceLeaders(ranges []RangeInfo, nodes []NodeInfo, lead map[uint64]int, busy map[uint64]bool) (Op, bool) {
	hi, lo := extremes(nodes, lead)
	if hi == 0 || lo == 0 || lead[hi]-lead[lo] <= 1 {
		return Op{}, false
	}
	for _, r := range ranges {
		if r.Meta || busy[r.ID] || r.Leader != hi || !slices.Contains(r.Voters, lo) || !allCaughtUp(r) {
			continue
		}
		op := Op{Kind: OpTransferLeader, Range: r.ID, Node: lo, Expect: r.ConfVersion,
			Reason: fmt.Sprintf("balance: node %d leads %d ranges, node %d leads %d", hi, lead[hi], lo, lead[lo])}
		lead[hi]--
		lead[lo]++
		return op, true
	}
	return Op{}, false
}

func describe(n NodeInfo, ok bool) string {
	switch {
	case !ok:
		return "not a member"
	case n.Dead:
		return "dead (" + n.State + ")"
	case !n.Up:
		return "down (" + n.State + ")"
	}
	return n.State
}

func describeID(byID map[uint64]NodeInfo, id uint64) string {
	n, ok := byID[id]
	return describe(n, ok)
}

func byNode(nodes []NodeInfo, id uint64) NodeInfo {
	for _, n := range nodes {
		if n.ID == id {
			return n
		}
	}
	return NodeInfo{}
}

// allCaughtUp: every voter of r is near its leader's commit index. Balancing
// (which is optional) touches only such ranges: a leadership handed to a
// node cut off from the others, or a move started while a voter lags,
// would cost availability for nothing.
func allCaughtUp(r RangeInfo) bool {
	for _, v := range r.Voters {
		if !slices.Contains(r.CaughtUp, v) {
			return false
		}
	}
	return true
}

// partnerNodes returns where a replica of a range being colocated with
// partner should go: partner's voters (voters) or learners (read
// learners); nil without a partner.
func partnerNodes(partner *RangeInfo, voters bool) []uint64 {
	switch {
	case partner == nil:
		return nil
	case voters:
		return partner.Voters
	}
	return partner.Learners
}

// inside returns the ids in of.
func inside(ids, of []uint64) []uint64 {
	var out []uint64
	for _, id := range ids {
		if slices.Contains(of, id) {
			out = append(out, id)
		}
	}
	return out
}
