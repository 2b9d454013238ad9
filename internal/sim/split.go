package sim

import (
	"fmt"
	"math/rand/v2"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/replica"
)

// Splits: the simulation splits data ranges under the same faults, the
// way router.localSplit and router.RunSplitter do, from its one goroutine:
//
//  1. allocate a range ID on the meta leader (AllocRangeID);
//  2. propose Split{key, id, generation} on the leader of the range;
//  3. propose UpdateRanges with both new descriptors on the meta leader.
//
// Any step may fail or end unknown (crash, timeout); the pipeline is then
// abandoned, as a crashed node would abandon it. The meta updater (every
// leader of a data range records its own descriptor when its catalog
// lacks it, as RunSplitter does) repairs what a cut-off step 3 left.
//
// Split points come from two sources, chosen per seed: random keys (a
// split command at any moment, often at a key the clients use) and size
// (a leader whose range holds more than splitSizeBytes splits at its
// middle key). The client workload routes every operation by key through
// the gateway's local descriptors and retries "range key mismatch"; the
// usual checkers (linearizable per key, no acknowledged write lost,
// versions never go down, replicas and catalogs converge) run across
// splits.

type splitter struct {
	rng *rand.Rand
	// randomEvery is the mean number of steps between random splits (0:
	// none); sizeBytes the size split threshold (0: none).
	randomEvery int64
	sizeBytes   uint64
	// metaEvery is how often (steps) leaders check the catalog has their
	// descriptor.
	metaEvery int64

	// The pipeline in flight (at most one).
	stage    int // 0 idle, 1 allocating, 2 splitting, 3 recording
	key      []byte
	rangeID  keys.RangeID
	gen      uint64
	ch       <-chan replica.Result
	deadline int64

	splits int // applied splits (for the result)
}

func newSplitter(seed uint64, noSplits bool) *splitter {
	sp := &splitter{rng: rand.New(rand.NewChaCha8(seedBytes(seed, 4))), metaEvery: 50}
	if noSplits {
		return sp
	}
	sp.randomEvery = []int64{0, 150, 400}[sp.rng.IntN(3)]
	sp.sizeBytes = []uint64{0, 0, 120, 300}[sp.rng.IntN(4)]
	return sp
}

// splitStep runs one step of the split machinery.
func (s *Sim) splitStep() {
	sp := s.split
	if sp.stage != 0 {
		s.splitPoll()
	}
	if s.now%sp.metaEvery == 0 {
		s.metaUpdater()
	}
	// No new splits while settling or in the calm phase: a new range has
	// no leader for a moment, and the calm phase fails any read barrier
	// that finds none (a real router retries it).
	if sp.stage != 0 || s.cl.stopIssuing || s.cl.calmFrom > 0 {
		return
	}
	if every(sp.rng, sp.randomEvery) {
		s.splitRandom()
		return
	}
	if sp.sizeBytes > 0 && s.now%20 == 0 {
		s.splitBySize()
	}
}

// dataLeaders returns the live nodes' replicas that lead a data range, in
// node and range order.
func (s *Sim) dataLeaders() []*replica.Replica {
	var out []*replica.Replica
	for _, n := range s.upNodes() {
		for _, r := range n.st.Replicas() {
			if r.ID != replica.MetaRangeID && r.IsLeader() && r.Initialized() {
				out = append(out, r)
			}
		}
	}
	return out
}

func (s *Sim) splitRandom() {
	sp := s.split
	// Mostly keys the clients use (k0..k7) and points between them.
	key := fmt.Sprintf("k%d", sp.rng.IntN(8))
	if sp.rng.IntN(2) == 0 {
		key += "5"
	}
	for _, n := range s.upNodes() {
		if r := n.st.LocalRangeFor(tableID, []byte(key)); r != nil && r.IsLeader() {
			s.splitBegin(r.ID, r.Desc().Generation, []byte(key))
			return
		}
	}
}

func (s *Sim) splitBySize() {
	for _, r := range s.dataLeaders() {
		if r.ApproxBytes() <= s.split.sizeBytes {
			continue
		}
		var db replica.Reader
		for _, n := range s.upNodes() {
			if n.st.Replica(r.ID) == r {
				db = n.db
			}
		}
		key, err := replica.MiddleKey(db, r.Desc())
		if err != nil {
			s.fail("middle key of range %d: %v", r.ID, err)
			return
		}
		if key != nil {
			s.splitBegin(r.ID, r.Desc().Generation, key)
			return
		}
	}
}

func (s *Sim) metaLeader() *replica.Replica {
	for _, n := range s.upNodes() {
		if r := n.st.Replica(replica.MetaRangeID); r != nil && r.IsLeader() {
			return r
		}
	}
	return nil
}

func (s *Sim) splitBegin(id keys.RangeID, gen uint64, key []byte) {
	sp := s.split
	meta := s.metaLeader()
	if meta == nil {
		return
	}
	ch, err := meta.ProposeAsync(&cairnpb.Command{Op: &cairnpb.Command_AllocRangeId{AllocRangeId: &cairnpb.AllocRangeID{}}})
	if err != nil {
		return
	}
	sp.stage, sp.key, sp.rangeID, sp.gen, sp.ch, sp.deadline = 1, key, id, gen, ch, s.now+opTimeout
	s.ev("split-begin", uint64(id), gen)
}

func (s *Sim) splitAbandon(why string) {
	s.logf("split of range %d at %q abandoned: %s", s.split.rangeID, s.split.key, why)
	s.ev("split-abandon", uint64(s.split.rangeID), uint64(s.split.stage))
	s.split.stage, s.split.ch = 0, nil
}

// splitPoll advances the pipeline when its current proposal has a result.
func (s *Sim) splitPoll() {
	sp := s.split
	var res replica.Result
	select {
	case res = <-sp.ch:
	default:
		if s.now > sp.deadline {
			s.splitAbandon("timed out")
		}
		return
	}
	if res.Err != nil {
		s.splitAbandon(res.Err.Error())
		return
	}
	switch sp.stage {
	case 1:
		var leader *replica.Replica
		for _, n := range s.upNodes() {
			if r := n.st.Replica(sp.rangeID); r != nil && r.IsLeader() {
				leader = r
			}
		}
		if leader == nil {
			s.splitAbandon("no leader")
			return
		}
		ch, err := leader.ProposeAsync(&cairnpb.Command{TableId: leader.Desc().TableId, Op: &cairnpb.Command_Split{Split: &cairnpb.Split{
			SplitKey: sp.key, NewRangeId: res.RangeID, ExpectedGeneration: sp.gen,
		}}})
		if err != nil {
			s.splitAbandon(err.Error())
			return
		}
		sp.stage, sp.ch, sp.deadline = 2, ch, s.now+opTimeout
	case 2:
		sp.splits++
		s.ev("split-applied", uint64(sp.rangeID), res.Split.Right.Id)
		meta := s.metaLeader()
		if meta == nil {
			s.splitAbandon("no meta leader")
			return
		}
		ch, err := meta.ProposeAsync(&cairnpb.Command{Op: &cairnpb.Command_UpdateRanges{UpdateRanges: &cairnpb.UpdateRanges{
			TableId: res.Split.Left.TableId, Descs: []*cairnpb.RangeDescriptor{res.Split.Left, res.Split.Right},
		}}})
		if err != nil {
			s.splitAbandon(err.Error())
			return
		}
		sp.stage, sp.ch, sp.deadline = 3, ch, s.now+opTimeout
	case 3:
		s.ev("split-recorded", uint64(sp.rangeID))
		sp.stage, sp.ch = 0, nil
	}
}

// metaUpdater: every leader of a data range whose node's catalog lacks its
// current descriptor records it (fire and forget), as RunSplitter does.
func (s *Sim) metaUpdater() {
	meta := s.metaLeader()
	if meta == nil {
		return
	}
	for _, n := range s.upNodes() {
		for _, r := range n.st.Replicas() {
			if r.ID == replica.MetaRangeID || !r.Initialized() {
				continue
			}
			d := r.Desc()
			t := n.st.TableByID(d.TableId)
			if t == nil {
				continue
			}
			// Leaders record their descriptor when the catalog lags; a
			// replica of a range with no known leader records its own
			// when the catalog has a gap where the range is (as the
			// router's maybeRecordGap: RELIABILITY.md #26).
			if r.IsLeader() && catalogHas(t, d) || !r.IsLeader() && (r.Leader() != 0 || !replica.CatalogGap(t, d) || s.cfg.Bug == BugNoCatalogGapRepair) {
				continue
			}
			_, err := meta.ProposeAsync(&cairnpb.Command{Op: &cairnpb.Command_UpdateRanges{UpdateRanges: &cairnpb.UpdateRanges{
				TableId: d.TableId, Descs: []*cairnpb.RangeDescriptor{d},
			}}})
			kind := "meta-update"
			if !r.IsLeader() {
				kind = "meta-gap"
			}
			s.ev(kind, uint64(r.ID), d.Generation, boolInt(err == nil))
		}
	}
}

func catalogHas(t *cairnpb.Table, d *cairnpb.RangeDescriptor) bool {
	for _, h := range t.Ranges {
		if h.Id == d.Id && !replica.DescNewer(d, h) {
			return true
		}
	}
	return false
}
