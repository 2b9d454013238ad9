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
		leaderOf := func(id keys.RangeID) *replica.Replica {
			t.Helper()
			var r *replica.Replica
			sc.until(fmt.Sprintf("a leader of range %d", id), func() bool { r = s.leaderOf(id); return r != nil })
			return r
		}
		split := func(at string) keys.RangeID {
			t.Helper()
			alloc := sc.await("a range ID", mustPropose(t, sc.metaLeader(), &cairnpb.Command{Op: &cairnpb.Command_AllocRangeId{AllocRangeId: &cairnpb.AllocRangeID{}}}))
			left := leaderOf(dataRange)
			res := sc.await("the split at "+at, mustPropose(t, left, &cairnpb.Command{TableId: tableID,
				Op: &cairnpb.Command_Split{Split: &cairnpb.Split{SplitKey: []byte(at), NewRangeId: alloc.RangeID, ExpectedGeneration: left.Desc().Generation}}}))
			if res.Err != nil {
				t.Fatalf("split at %s: %v", at, res.Err)
			}
			sc.record(res.Split.Left)
			sc.record(res.Split.Right)
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
			sc.record(mres.Desc)
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

// The checker's own rule for a replica destroyed and created again: a
// node that comes back from a crash opens its replicas from its stale
// catalog, and the first messages it gets (held for it while it was down)
// tell it that it was removed from the data range, so it destroys that
// replica in the same step, before any check saw it. Added back later
// (unfenced, then a learner), it holds a new, empty replica. The checker
// took the applied index it read at the restart for that new replica's
// predecessor only if it had seen the old replica object, and reported
// "applied index went back from N to 0" (seed 1913, RELIABILITY.md #19:
// not a bug of cairn).
func TestScenarioReplicaGoneAtRestartComesBackEmpty(t *testing.T) {
	runScenario(t, 1, func(sc *scenario) {
		s := sc.s
		s.move.every = 0
		s.merge.every = 0
		l := sc.leader()
		f, o := sc.others(l)
		sc.put(l, "k4", "v4")
		if meta := sc.metaLeader(); meta == f.st.Replica(replica.MetaRangeID) {
			if err := meta.TransferLeader(l.id); err != nil {
				t.Fatal(err)
			}
			sc.until("the meta range led by another node", func() bool { return l.st.Replica(replica.MetaRangeID).IsLeader() })
		}
		sc.until("a converged cluster", s.converged)
		change := func(what string, ch <-chan replica.Result) {
			t.Helper()
			res := sc.await(what, ch)
			if res.Err != nil {
				t.Fatalf("%s: %v", what, res.Err)
			}
			sc.record(res.Desc)
		}
		// Everything sent to f waits from now on; f goes down and is
		// removed from the data range.
		s.net.hold = func(e *envelope) bool { return e.to == f.idx }
		s.crash(f)
		left := l.st.Replica(dataRange)
		change("the removal", mustPropose2(t, left, replica.OpRemove, f.id))
		// f restarts, and what was sent to it while it was down arrives
		// in the same step: its meta replica learns of the removal, and
		// reconcile destroys its replica of the data range at once.
		for i := range s.net.held {
			s.net.held[i].at = s.now + 1
		}
		s.net.q = append(s.net.q, s.net.held...)
		s.net.hold, s.net.held = nil, nil
		f.restartAt = s.now + 1
		s.step(false)
		if s.stopped {
			t.Fatalf("at the restart: %v", s.res.Failures)
		}
		if !f.up || f.st.Replica(dataRange) != nil {
			t.Fatal("f's replica of the data range survived its restart's first step; the scenario needs it destroyed there")
		}
		if _, ok := f.cursor[dataRange]; !ok {
			t.Fatal("the checker had no cursor for f's replica of the data range; the scenario needs one from the restart")
		}
		left = l.st.Replica(dataRange)
		change("the unfence", mustPropose(t, left, &cairnpb.Command{TableId: tableID, Op: &cairnpb.Command_Unfence{Unfence: &cairnpb.Unfence{Node: f.id}}}))
		// A rejoin needs a later term: leadership to the third node.
		if err := left.TransferLeader(o.id); err != nil {
			t.Fatal(err)
		}
		sc.until("the transfer", func() bool { return o.st.Replica(dataRange).IsLeader() })
		left = o.st.Replica(dataRange)
		change("the learner", mustPropose2(t, left, replica.OpAddLearner, f.id))
		sc.until("f's new replica catching up", func() bool {
			r := f.st.Replica(dataRange)
			if r == nil {
				return false
			}
			_, _, a := r.Status()
			_, c, _ := left.Status()
			return a > 0 && a == c
		})
		if v, found, err := readKey(f, "k4"); err != nil || !found || v.value != "v4" {
			t.Fatalf("f's new replica: k4=%q, found %v, %v", v.value, found, err)
		}
	})
}
