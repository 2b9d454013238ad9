package sim

import (
	"fmt"
	"testing"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/replica"
)

// Two merges into one range, recorded in the catalog before a lagging
// node's left replica applied the first (seed 2344, RELIABILITY.md #19).
// The data range L = [, k3) merges M = [k3, k6) and then R = [k6, ): L's
// generation g becomes g+1 and then g+2, and R is frozen for L at g+1.
// Node f takes part in both freezes, but its replica of L hears nothing,
// so it is still at g when its catalog records L at g+2 and no R. Store
// reconcile's rule for a range the catalog says merged away kept a frozen
// replica only while the local left replica was exactly at the freeze's
// generation; below it, it destroyed f's replica of R with its data, and
// when f's L then applied both merges it took over R's span without R's
// keys: its state machine diverged from the others' at the second
// merge's index. A frozen replica must stay while the local left replica
// has not passed the freeze's generation.
func TestScenarioTwoMergesBeforeTheLeftCatchesUp(t *testing.T) {
	runScenario(t, 1, func(sc *scenario) {
		s := sc.s
		s.move.every = 0
		s.merge.every = 0
		l := sc.leader()
		f, _ := sc.others(l)
		sc.put(l, "k4", "v4")
		sc.put(l, "k7", "v7")
		var meta *replica.Replica
		metaLeader := func() *replica.Replica {
			sc.until("a meta leader", func() bool { meta = s.metaLeader(); return meta != nil })
			return meta
		}
		record := func(d *cairnpb.RangeDescriptor) {
			t.Helper()
			res := sc.await("a catalog record", mustPropose(t, metaLeader(), &cairnpb.Command{Op: &cairnpb.Command_UpdateRanges{UpdateRanges: &cairnpb.UpdateRanges{
				TableId: tableID, Descs: []*cairnpb.RangeDescriptor{d},
			}}}))
			if res.Err != nil {
				t.Fatalf("record range %d: %v", d.Id, res.Err)
			}
		}
		leaderOf := func(id keys.RangeID) *replica.Replica {
			t.Helper()
			var r *replica.Replica
			sc.until(fmt.Sprintf("a leader of range %d", id), func() bool { r = s.leaderOf(id); return r != nil })
			return r
		}
		split := func(at string) keys.RangeID {
			t.Helper()
			alloc := sc.await("a range ID", mustPropose(t, metaLeader(), &cairnpb.Command{Op: &cairnpb.Command_AllocRangeId{AllocRangeId: &cairnpb.AllocRangeID{}}}))
			left := leaderOf(dataRange)
			res := sc.await("the split at "+at, mustPropose(t, left, &cairnpb.Command{TableId: tableID,
				Op: &cairnpb.Command_Split{Split: &cairnpb.Split{SplitKey: []byte(at), NewRangeId: alloc.RangeID, ExpectedGeneration: left.Desc().Generation}}}))
			if res.Err != nil {
				t.Fatalf("split at %s: %v", at, res.Err)
			}
			record(res.Split.Left)
			record(res.Split.Right)
			return keysRangeID(res.Split.Right.Id)
		}
		right := split("k6")
		middle := split("k3")
		sc.until("every node holding the three ranges", s.converged)

		// f's replica of L hears nothing from now on.
		s.net.hold = func(e *envelope) bool { return e.to == f.idx && e.msg.RangeID == dataRange }
		merge := func(rid keys.RangeID) *cairnpb.RangeDescriptor {
			t.Helper()
			left := leaderOf(dataRange).Desc()
			rd := leaderOf(rid).Desc()
			fres := sc.await("the freeze", mustPropose(t, leaderOf(rid), &cairnpb.Command{TableId: tableID, Op: &cairnpb.Command_MergeFreeze{MergeFreeze: &cairnpb.MergeFreeze{
				LeftId: left.Id, LeftGeneration: left.Generation, ExpectedGeneration: rd.Generation,
			}}}))
			if fres.Err != nil {
				t.Fatalf("freeze range %d: %v", rid, fres.Err)
			}
			fres.State.AppliedIndex = fres.Index
			sc.until("every replica of the right range applying the freeze", func() bool {
				for _, n := range s.nodes {
					if r := n.st.Replica(rid); r == nil || r.VisibleIndex() < fres.Index {
						return false
					}
				}
				return true
			})
			mres := sc.await("the merge", mustPropose(t, leaderOf(dataRange), &cairnpb.Command{TableId: tableID, Op: &cairnpb.Command_Merge{Merge: &cairnpb.Merge{
				ExpectedGeneration: left.Generation, RightState: fres.State,
			}}}))
			if mres.Err != nil {
				t.Fatalf("merge range %d: %v", rid, mres.Err)
			}
			record(mres.Desc)
			return mres.Desc
		}
		merge(middle)
		merged := merge(right)
		sc.until("f's catalog recording both merges", func() bool {
			d := f.st.CatalogRange(dataRange)
			return d != nil && d.Generation == merged.Generation
		})
		for i := 0; i < 20; i++ {
			s.step(false)
		}
		if g := f.st.Replica(dataRange).Desc().Generation; g >= merged.Generation-1 {
			t.Fatalf("f's left replica is at generation %d; the scenario needs it before both merges", g)
		}
		if v, found, err := readKey(f, "k7"); err != nil || !found || v.value != "v7" {
			t.Fatalf("f lost the right range's data before its left replica merged it: k7=%q, found %v, %v", v.value, found, err)
		}
		s.net.hold = nil
		s.net.q = append(s.net.q, s.net.held...)
		s.net.held = nil
		sc.until("f's left replica applying both merges", func() bool {
			return f.st.Replica(dataRange).Desc().Generation == merged.Generation
		})
		sc.until("the cluster converging", s.converged)
		for _, k := range []string{"k4", "k7"} {
			if v, found, err := readKey(f, k); err != nil || !found || v.value != "v"+k[1:] {
				t.Fatalf("f's copy of %s after the merges: %q, found %v, %v", k, v.value, found, err)
			}
		}
		if f.st.Replica(right) != nil || f.st.Replica(middle) != nil {
			t.Fatal("f kept a replica of a merged range")
		}
	})
}
