package sim

import (
	"errors"
	"math/rand/v2"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/kv"
	"github.com/cairn-db/cairn/internal/replica"
)

// Merges: the simulation merges adjacent data ranges under the same
// faults, with the steps router.localMerge uses (docs/design/merges.md),
// from its one goroutine:
//
//  1. propose MergeFreeze{L, gL, gR} on the leader of the right range R;
//  2. wait until every replica of R has applied the freeze, syncing each
//     node's Pebble once it has (MergeWait does the same);
//  3. propose Merge{gL, R's frozen state} on the leader of L;
//  4. propose UpdateRanges{L'} on the meta leader.
//
// A step that fails or times out after the freeze aborts: MergeAbort on
// L's leader, then, unless L reports the merge happened, MergeUnfreeze on
// R's leader. An abort that is itself cut off is redone, like
// RunSplitter's maybeUnfreeze, for a range that stays frozen for
// mergeTimeout steps; this recovery runs while settling too, so no range
// stays frozen. The clients' routing and retry of range key mismatches
// and the checkers are the same as for splits.
type merger struct {
	rng *rand.Rand
	// every is the mean number of steps between merge attempts (0: none).
	every int64

	// The pipeline in flight (at most one).
	stage       int // 0 idle, 1 freezing, 2 waiting, 3 merging, 4 recording, 5 aborting, 6 unfreezing
	left, right *cairnpb.RangeDescriptor
	frozen      *cairnpb.RangeState // R's state at the freeze, applied_index = the freeze's index
	fr          *cairnpb.Frozen     // the freeze an abort undoes
	synced      map[uint64]bool     // nodes whose replica of R applied the freeze, synced
	ch          <-chan replica.Result
	deadline    int64

	// frozenSince records when each frozen range was first seen frozen.
	frozenSince map[keys.RangeID]int64
	merges      int // applied merges (for the result)
}

// mergeTimeout is how long a range may stay frozen before the recovery
// aborts its merge.
const mergeTimeout = 2 * opTimeout

func newMerger(seed uint64, noMerges bool) *merger {
	m := &merger{rng: rand.New(rand.NewChaCha8(seedBytes(seed, 8))), frozenSince: map[keys.RangeID]int64{}}
	if noMerges {
		return m
	}
	m.every = []int64{0, 100, 300}[m.rng.IntN(3)]
	return m
}

// mergeStep runs one step of the merge machinery.
func (s *Sim) mergeStep() {
	m := s.merge
	if m.stage != 0 {
		s.mergePoll()
	}
	if m.stage == 0 {
		s.mergeRecover()
	}
	if m.stage != 0 || m.every == 0 || s.cl.stopIssuing || s.cl.calmFrom > 0 || !every(m.rng, m.every) {
		return
	}
	leaders := s.dataLeaders()
	if len(leaders) == 0 {
		return
	}
	l := leaders[m.rng.IntN(len(leaders))]
	d := l.Desc()
	if l.Frozen() || len(d.End) == 0 {
		return
	}
	var rd *cairnpb.RangeDescriptor
	for _, n := range s.upNodes() {
		if n.st.Replica(l.ID) == l {
			if r := n.st.LocalRangeFor(d.TableId, d.End); r != nil && string(r.Desc().Start) == string(d.End) {
				rd = r.Desc()
			}
		}
	}
	if rd == nil || !replica.SameReplicas(d, rd) {
		return
	}
	rl := s.leaderOf(keys.RangeID(rd.Id))
	if rl == nil {
		return
	}
	ch, err := rl.ProposeAsync(&cairnpb.Command{TableId: rd.TableId, Op: &cairnpb.Command_MergeFreeze{MergeFreeze: &cairnpb.MergeFreeze{
		LeftId: d.Id, LeftGeneration: d.Generation, ExpectedGeneration: rd.Generation,
	}}})
	if err != nil {
		return
	}
	m.stage, m.left, m.right, m.ch, m.deadline = 1, d, rd, ch, s.now+opTimeout
	m.fr = &cairnpb.Frozen{LeftId: d.Id, LeftGeneration: d.Generation}
	s.ev("merge-begin", d.Id, rd.Id, d.Generation, rd.Generation)
}

// leaderOf returns the live replica that leads range id, or nil.
func (s *Sim) leaderOf(id keys.RangeID) *replica.Replica {
	for _, n := range s.upNodes() {
		if r := n.st.Replica(id); r != nil && r.IsLeader() && r.Initialized() {
			return r
		}
	}
	return nil
}

// mergePoll advances the pipeline.
func (s *Sim) mergePoll() {
	m := s.merge
	if m.stage == 2 {
		s.mergeWait()
		return
	}
	var res replica.Result
	select {
	case res = <-m.ch:
	default:
		if s.now > m.deadline {
			s.mergeFailed("timed out")
		}
		return
	}
	switch m.stage {
	case 1:
		if res.Err != nil {
			s.ev("merge-refused", m.right.Id)
			m.stage, m.ch = 0, nil
			return
		}
		res.State.AppliedIndex = res.Index
		m.frozen, m.synced = res.State, map[uint64]bool{}
		m.stage, m.deadline = 2, s.now+opTimeout
	case 3:
		if res.Err != nil {
			s.mergeFailed(res.Err.Error())
			return
		}
		m.merges++
		s.ev("merge-applied", m.left.Id, m.right.Id, res.Desc.Generation)
		meta := s.metaLeader()
		if meta == nil {
			m.stage, m.ch = 0, nil // the meta updater records it later
			return
		}
		ch, err := meta.ProposeAsync(&cairnpb.Command{Op: &cairnpb.Command_UpdateRanges{UpdateRanges: &cairnpb.UpdateRanges{
			TableId: res.Desc.TableId, Descs: []*cairnpb.RangeDescriptor{res.Desc},
		}}})
		if err != nil {
			m.stage, m.ch = 0, nil
			return
		}
		m.stage, m.ch, m.deadline = 4, ch, s.now+opTimeout
	case 4:
		s.ev("merge-recorded", m.left.Id)
		m.stage, m.ch = 0, nil
	case 5:
		if errors.Is(res.Err, kv.ErrConditionFailed) {
			s.ev("merge-abort-found-merged", m.fr.LeftId)
			m.stage, m.ch = 0, nil
			return
		}
		if res.Err != nil {
			s.mergeAbandon(res.Err.Error())
			return
		}
		rl := s.leaderOf(keys.RangeID(m.right.Id))
		if rl == nil {
			s.mergeAbandon("no leader of the right range")
			return
		}
		ch, err := rl.ProposeAsync(&cairnpb.Command{TableId: m.right.TableId, Op: &cairnpb.Command_MergeUnfreeze{MergeUnfreeze: &cairnpb.MergeUnfreeze{
			LeftId: m.fr.LeftId, LeftGeneration: m.fr.LeftGeneration,
		}}})
		if err != nil {
			s.mergeAbandon(err.Error())
			return
		}
		m.stage, m.ch, m.deadline = 6, ch, s.now+opTimeout
	case 6:
		s.ev("merge-unfrozen", m.right.Id, boolInt(res.Err == nil))
		m.stage, m.ch = 0, nil
	}
}

// mergeWait checks whether every replica of R applied the freeze; then it
// proposes the merge.
func (s *Sim) mergeWait() {
	m := s.merge
	rd := m.frozen.Desc
	all := true
	for _, id := range append(append([]uint64(nil), rd.Replicas...), rd.Learners...) {
		if m.synced[id] {
			continue
		}
		n := s.nodes[id-1]
		var r *replica.Replica
		if n.up {
			r = n.st.Replica(keys.RangeID(rd.Id))
		}
		if r == nil || r.VisibleIndex() < m.frozen.AppliedIndex {
			all = false
			continue
		}
		if err := n.db.LogData(nil, pebble.Sync); err != nil {
			s.fail("%s: sync for a merge: %v", n.name, err)
			return
		}
		m.synced[id] = true
	}
	if !all {
		if s.now > m.deadline {
			s.mergeFailed("replicas of the right range did not apply the freeze in time")
		}
		return
	}
	ll := s.leaderOf(keys.RangeID(m.left.Id))
	if ll == nil {
		s.mergeFailed("no leader of the left range")
		return
	}
	ch, err := ll.ProposeAsync(&cairnpb.Command{TableId: m.left.TableId, Op: &cairnpb.Command_Merge{Merge: &cairnpb.Merge{
		ExpectedGeneration: m.left.Generation, RightState: m.frozen,
	}}})
	if err != nil {
		s.mergeFailed(err.Error())
		return
	}
	m.stage, m.ch, m.deadline = 3, ch, s.now+opTimeout
}

// mergeFailed handles a failed step: after a possible freeze (any stage
// but recording) it aborts; a recording that failed is left to the meta
// updater.
func (s *Sim) mergeFailed(why string) {
	m := s.merge
	s.logf("merge of range %d into range %d failed at stage %d: %s", m.right.Id, m.left.Id, m.stage, why)
	s.ev("merge-failed", m.right.Id, uint64(m.stage))
	switch m.stage {
	case 1, 2, 3:
		s.mergeAbort(m.fr, m.right)
	default:
		m.stage, m.ch = 0, nil
	}
}

// mergeAbort proposes MergeAbort for fr on the left range's leader.
func (s *Sim) mergeAbort(fr *cairnpb.Frozen, right *cairnpb.RangeDescriptor) {
	m := s.merge
	m.stage, m.ch, m.fr, m.right = 0, nil, fr, right
	// The abort goes to right's current left neighbour (the left range,
	// or the range that replaced it): replica.applyMergeAbort.
	var ll *replica.Replica
	for _, r := range s.dataLeaders() {
		if d := r.Desc(); !r.Frozen() && d.TableId == right.TableId && len(d.End) > 0 && string(d.End) == string(right.Start) {
			ll = r
			break
		}
	}
	if ll == nil {
		s.mergeAbandon("no leader of the left neighbour")
		return
	}
	ch, err := ll.ProposeAsync(&cairnpb.Command{TableId: right.TableId, Op: &cairnpb.Command_MergeAbort{MergeAbort: &cairnpb.MergeAbort{
		LeftId: fr.LeftId, LeftGeneration: fr.LeftGeneration, RightStart: right.Start,
	}}})
	if err != nil {
		s.mergeAbandon(err.Error())
		return
	}
	m.stage, m.ch, m.deadline = 5, ch, s.now+opTimeout
}

func (s *Sim) mergeAbandon(why string) {
	s.logf("merge abort abandoned: %s (recovery retries)", why)
	s.ev("merge-abandon", uint64(s.merge.stage))
	s.merge.stage, s.merge.ch = 0, nil
}

// mergeRecover aborts the merge of a range that has been frozen for
// mergeTimeout steps (as router.maybeUnfreeze does on its leader).
func (s *Sim) mergeRecover() {
	m := s.merge
	seen := map[keys.RangeID]bool{}
	for _, r := range s.dataLeaders() {
		fr := r.FrozenFor()
		if fr == nil {
			continue
		}
		seen[r.ID] = true
		since, ok := m.frozenSince[r.ID]
		if !ok {
			m.frozenSince[r.ID] = s.now
			continue
		}
		if s.now-since < mergeTimeout {
			continue
		}
		delete(m.frozenSince, r.ID)
		s.ev("merge-recover", uint64(r.ID), fr.LeftId)
		s.mergeAbort(fr, r.Desc())
		return
	}
	for id := range m.frozenSince {
		if !seen[id] {
			delete(m.frozenSince, id)
		}
	}
}

// anyFrozen reports whether a live replica is frozen for a merge.
func (s *Sim) anyFrozen() bool {
	for _, n := range s.upNodes() {
		for _, r := range n.st.Replicas() {
			if r.Frozen() {
				return true
			}
		}
	}
	return false
}
