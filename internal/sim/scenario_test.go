// Goal: targeted scenarios on the simulation harness, one per bug the
// seed sweeps found, each forcing the exact interleaving deterministically
// (a regression test that does not depend on a seed staying interesting).
// Method: a fault-free simulation driven step by step; the test cuts
// links, holds chosen messages, crashes and restarts nodes itself.
package sim

import (
	"slices"
	"testing"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/replica"
)

type scenario struct {
	t *testing.T
	s *Sim
}

func runScenario(t *testing.T, seed uint64, f func(sc *scenario)) {
	t.Helper()
	s, done := open(Config{Seed: seed, NoFaults: true})
	defer done()
	s.cl.stopIssuing = true
	f(&scenario{t: t, s: s})
}

// until steps the simulation until cond holds.
func (sc *scenario) until(what string, cond func() bool) {
	sc.t.Helper()
	for i := 0; i < 3000; i++ {
		if cond() {
			return
		}
		sc.s.step(false)
		if sc.s.stopped {
			sc.t.Fatalf("while waiting for %s: %v", what, sc.s.res.Failures)
		}
	}
	sc.t.Fatalf("timed out waiting for %s", what)
}

// barrier steps until a read barrier's outcome arrives on ch and returns it.
func (sc *scenario) barrier(what string, ch <-chan error) error {
	sc.t.Helper()
	var err error
	done := false
	sc.until(what, func() bool {
		select {
		case err = <-ch:
			done = true
		default:
		}
		return done
	})
	return err
}

// leader waits for a converged cluster and returns the data range's leader.
func (sc *scenario) leader() *node {
	sc.t.Helper()
	sc.until("a converged cluster", sc.s.converged)
	for _, n := range sc.s.nodes {
		if n.st.Replica(dataRange).IsLeader() {
			return n
		}
	}
	sc.t.Fatal("no leader")
	return nil
}

func (sc *scenario) others(l *node) (a, b *node) {
	var out []*node
	for _, n := range sc.s.nodes {
		if n != l {
			out = append(out, n)
		}
	}
	return out[0], out[1]
}

func (sc *scenario) applied(n *node) uint64 {
	_, _, a := n.st.Replica(dataRange).Status()
	return a
}

// put writes key=value through l and waits for the outcome.
func (sc *scenario) put(l *node, key, value string) replica.Result {
	sc.t.Helper()
	cmd := &cairnpb.Command{TableId: tableID, Timestamp: uint64(l.clock.Now()),
		Op: &cairnpb.Command_Put{Put: &cairnpb.PutRequest{Table: tableName, Key: []byte(key), Value: []byte(value)}}}
	ch, err := l.st.Replica(dataRange).ProposeAsync(cmd)
	if err != nil {
		sc.t.Fatal(err)
	}
	var res replica.Result
	got := false
	sc.until("put "+key, func() bool {
		select {
		case res = <-ch:
			got = true
		default:
		}
		return got
	})
	if res.Err != nil {
		sc.t.Fatalf("put %s=%s: %v", key, value, res.Err)
	}
	return res
}

func (sc *scenario) isolate(n *node, cut bool) {
	for _, o := range sc.s.nodes {
		if o != n {
			sc.s.net.cut[[2]int{n.idx, o.idx}] = cut
			sc.s.net.cut[[2]int{o.idx, n.idx}] = cut
		}
	}
}

// A follower that installed a snapshot and acknowledged it must still have
// it after a crash: the leader's Match for it now covers the snapshot, and
// a heartbeat committing past the follower's log makes raft panic
// ("tocommit(N) is out of range"), on every restart. Sweep seed 1296 found
// it; store.processReady now fsyncs Readies that carry a snapshot.
func TestScenarioSnapshotSurvivesCrash(t *testing.T) {
	runScenario(t, 1, func(sc *scenario) {
		l := sc.leader()
		f, _ := sc.others(l)
		sc.isolate(f, true)
		for i := 0; i < 4*logKeep; i++ {
			sc.put(l, "k", "v"+string(rune('a'+i%26)))
		}
		target := sc.applied(l)
		sc.isolate(f, false)
		snaps := sc.s.res.Snapshots
		// Crash the follower at the end of the step in which it applied
		// (and acknowledged) the snapshot.
		sc.until("the follower installing a snapshot", func() bool { return sc.applied(f) >= target })
		if sc.s.res.Snapshots == snaps {
			t.Fatal("the follower caught up without a snapshot; the scenario needs one")
		}
		sc.s.crash(f)
		sc.s.closeCrashed()
		sc.s.start(f)
		sc.until("the cluster converging again", sc.s.converged)
	})
}

// A follower's ReadIndex request context must not be reused by its next
// incarnation: a response to the old incarnation's read, delivered late
// (the leader's transport queue reaches a restarted peer), would release
// the new incarnation's read at an index from before its call and serve a
// stale value.
func TestScenarioStaleReadIndexAfterRestart(t *testing.T) {
	runScenario(t, 2, func(sc *scenario) {
		s := sc.s
		l := sc.leader()
		f, _ := sc.others(l)
		sc.put(l, "k", "v1")
		sc.until("every node applying v1", s.converged)
		// Hold the leader's ReadIndex responses and appends to f.
		var stale envelope
		s.net.hold = func(e *envelope) bool {
			t := e.msg.Msg.Type
			return e.seq != stale.seq && e.from == l.idx && e.to == f.idx && (t == raftpb.MsgReadIndexResp || t == raftpb.MsgApp)
		}
		if _, err := f.st.Replica(dataRange).ReadBarrierAsync(); err != nil {
			t.Fatal(err)
		}
		sc.until("the leader answering f's read index", func() bool { return len(s.net.held) == 1 })
		stale = s.net.held[0]
		s.net.held = nil
		sc.s.crash(f)
		sc.s.closeCrashed()
		v2 := sc.put(l, "k", "v2") // acknowledged before f's next read starts
		sc.s.start(f)
		sc.until("f learning the leader", func() bool { return f.st.Replica(dataRange).Leader() == l.id })
		ch, err := f.st.Replica(dataRange).ReadBarrierAsync()
		if err != nil {
			t.Fatal(err)
		}
		// The old response arrives just after f sent its new request, and
		// before the leader's answer (held).
		stale.at, stale.toInc = s.now+2, -1
		s.net.q = append(s.net.q, stale)
		for i := 0; i < 20; i++ {
			s.step(false)
		}
		// Then everything flows again.
		s.net.hold = nil
		s.net.q = append(s.net.q, s.net.held...)
		s.net.held = nil
		rerr := sc.barrier("f's read barrier", ch)
		if rerr != nil {
			t.Fatalf("read barrier: %v", rerr)
		}
		got, found, err := readKey(f, "k")
		if err != nil || !found {
			t.Fatalf("read k on f: %v, %v", found, err)
		}
		if got.value != "v2" || got.version != v2.Version {
			t.Fatalf("stale read on f after its restart: got %s@%d, but v2@%d was acknowledged before the read began",
				got.value, got.version, v2.Version)
		}
	})
}

// A leader's read lease rests on its followers refusing to vote for
// another candidate for an election timeout after they heard from it. A
// follower that restarts forgot it heard from the leader; if it voted at
// once, a candidate cut off from the leader could win while the leader
// still serves reads under its lease (stale reads). The store therefore
// holds votes for an election timeout after it starts (replica/lease.go).
// Here: b is cut off from the leader l; l takes a lease; a restarts and
// hears nothing from l; b campaigns at once. b must not win while l's
// lease runs.
func TestScenarioRestartedVoterCannotCutALeaseShort(t *testing.T) {
	runScenario(t, 1, func(sc *scenario) {
		l := sc.leader()
		a, b := sc.others(l)
		sc.s.net.cut[[2]int{l.idx, b.idx}] = true
		sc.s.net.cut[[2]int{b.idx, l.idx}] = true
		// A read through l takes the lease.
		ch, err := l.st.Replica(dataRange).ReadBarrierAsync()
		if err != nil {
			t.Fatal(err)
		}
		if ch != nil {
			err = sc.barrier("l's read barrier", ch)
			if err != nil {
				t.Fatal(err)
			}
		}
		if !l.st.Replica(dataRange).HasLease() {
			t.Fatal("the leader has no lease after a confirmed read index; the scenario needs one")
		}
		sc.s.crash(a)
		sc.s.closeCrashed()
		// a hears nothing from l after its restart.
		sc.s.net.hold = func(e *envelope) bool { return e.from == l.idx && e.to == a.idx }
		sc.s.start(a)
		if err := b.st.Replica(dataRange).Campaign(); err != nil {
			t.Fatal(err)
		}
		leased := 0
		for l.st.Replica(dataRange).HasLease() {
			if b.st.Replica(dataRange).IsLeader() {
				t.Fatalf("b won an election while l still serves reads under its lease (step %d)", sc.s.now)
			}
			leased++
			sc.s.step(false)
			if leased > 10000 {
				t.Fatal("the lease never ended")
			}
		}
		if leased == 0 {
			t.Fatal("the lease ended before the restarted node could vote; the scenario proves nothing")
		}
	})
}

// A leader cut off from everyone right after it took its lease: the
// lease must be over before the others elect a new leader, however the
// nodes' ticks fall.
func TestScenarioLeaseEndsBeforeANewLeader(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		runScenario(t, seed, func(sc *scenario) {
			l := sc.leader()
			a, b := sc.others(l)
			ch, err := l.st.Replica(dataRange).ReadBarrierAsync()
			if err != nil {
				t.Fatal(err)
			}
			sc.isolate(l, true)
			if ch != nil {
				// Let the read index round through, then cut l off.
				sc.isolate(l, false)
				err = sc.barrier("l's read barrier", ch)
				sc.isolate(l, true)
			}
			if !l.st.Replica(dataRange).HasLease() {
				t.Fatalf("seed %d: no lease after a confirmed read index", seed)
			}
			sc.until("a new leader", func() bool {
				if l.st.Replica(dataRange).HasLease() && (a.st.Replica(dataRange).IsLeader() || b.st.Replica(dataRange).IsLeader()) {
					t.Fatalf("seed %d: a new leader while the old one's lease runs (step %d)", seed, sc.s.now)
				}
				return a.st.Replica(dataRange).IsLeader() || b.st.Replica(dataRange).IsLeader()
			})
		})
	}
}

// metaLeader steps until some node leads the meta range and returns its
// replica.
func (sc *scenario) metaLeader() *replica.Replica {
	sc.t.Helper()
	var meta *replica.Replica
	sc.until("a meta leader", func() bool { meta = sc.s.metaLeader(); return meta != nil })
	return meta
}

// record writes d into the catalog (the meta range) of the data table.
func (sc *scenario) record(d *cairnpb.RangeDescriptor) {
	sc.t.Helper()
	res := sc.await("a catalog record", mustPropose(sc.t, sc.metaLeader(), &cairnpb.Command{Op: &cairnpb.Command_UpdateRanges{UpdateRanges: &cairnpb.UpdateRanges{
		TableId: tableID, Descs: []*cairnpb.RangeDescriptor{d},
	}}}))
	if res.Err != nil {
		sc.t.Fatalf("record range %d: %v", d.Id, res.Err)
	}
}

// await steps until ch delivers a result.
func (sc *scenario) await(what string, ch <-chan replica.Result) replica.Result {
	sc.t.Helper()
	var res replica.Result
	got := false
	sc.until(what, func() bool {
		select {
		case res = <-ch:
			got = true
		default:
		}
		return got
	})
	return res
}

// The stale-routing rule for reads. After a split, a read barrier on the
// left range does not cover writes to the right one: a node whose
// right-hand replica lags would serve a stale value for a key that moved
// if it read after the left's barrier without checking that the left
// still holds the key. The scenario builds exactly that node (the split
// applied there, the right range's messages to it held back, a newer
// write committed by the other two) and shows both the stale value in its
// Pebble and the check that refuses it (the router then retries on the
// right range, whose barrier waits for the write).
func TestScenarioReadAfterSplitChecksRange(t *testing.T) {
	runScenario(t, 1, func(sc *scenario) {
		s := sc.s
		l := sc.leader()
		sc.put(l, "k5", "old")
		var meta *replica.Replica
		sc.until("a meta leader", func() bool { meta = s.metaLeader(); return meta != nil })
		alloc := sc.await("a range ID", mustPropose(t, meta, &cairnpb.Command{Op: &cairnpb.Command_AllocRangeId{AllocRangeId: &cairnpb.AllocRangeID{}}}))
		res := sc.await("the split", mustPropose(t, l.st.Replica(dataRange), &cairnpb.Command{TableId: tableID,
			Op: &cairnpb.Command_Split{Split: &cairnpb.Split{SplitKey: []byte("k5"), NewRangeId: alloc.RangeID}}}))
		if res.Err != nil {
			t.Fatalf("split: %v", res.Err)
		}
		right := res.Split.Right.Id
		sc.until("every node with a led right range", sc.s.converged)
		var rl, f *node
		for _, n := range s.nodes {
			if n.st.Replica(keysRangeID(right)).IsLeader() {
				rl = n
			}
		}
		for _, n := range s.nodes {
			if n != rl {
				f = n
			}
		}
		s.net.hold = func(e *envelope) bool { return uint64(e.msg.RangeID) == right && e.to == f.idx }
		ch := mustPropose(t, rl.st.Replica(keysRangeID(right)), &cairnpb.Command{TableId: tableID, Timestamp: uint64(rl.clock.Now()),
			Op: &cairnpb.Command_Put{Put: &cairnpb.PutRequest{Table: tableName, Key: []byte("k5"), Value: []byte("new")}}})
		if r := sc.await("the write to the right range", ch); r.Err != nil {
			t.Fatalf("put: %v", r.Err)
		}
		left := f.st.Replica(dataRange)
		bch, err := left.ReadBarrierAsync()
		if err != nil {
			t.Fatal(err)
		}
		berr := sc.barrier("the left's read barrier on the lagging node", bch)
		if berr != nil {
			t.Fatalf("barrier: %v", berr)
		}
		v, found, err := readKey(f, "k5")
		if err != nil || !found || v.value != "old" {
			t.Fatalf("the lagging node's Pebble has k5=%q (found %v, %v); the scenario needs the stale value", v.value, found, err)
		}
		if left.Contains([]byte("k5")) {
			t.Fatal("the left range still claims k5 after the split: a read would return the stale value")
		}
		s.net.hold = nil
	})
}

func mustPropose(t *testing.T, r *replica.Replica, cmd *cairnpb.Command) <-chan replica.Result {
	t.Helper()
	ch, err := r.ProposeAsync(cmd)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func keysRangeID(id uint64) keys.RangeID { return keys.RangeID(id) }

// A node whose replica of a range lags behind a split, while the split's
// right-hand range moves on without it: the right range removes the node
// (it never had a replica there, so it reports none), unfences it, gets a
// new term and adds it back as a learner. Then the lagging left replica
// applies the split. It must not create the right range at the split's
// index: that copy would take the right range's log from there, including
// its own removal and re-addition, acknowledge it in the current term and
// then destroy itself on applying the removal, and the leader, which
// counts those entries as held, would probe it forever (ping-pong
// MsgApp/rejection) instead of sending a snapshot. Sweep seed 145 found
// it (RELIABILITY.md); store.dropStaleSplits now drops such a copy in the
// split's own apply batch, and the node gets the range by snapshot.
//
// catalogBehind: f's meta replica lags too, so f cannot know the right
// range moved when it applies the split, and creates the copy at the
// split's index. That copy then gets the right range's log, its removal
// and its re-addition in one apply pass; it must not destroy itself for
// the removal (store.removeMoved): it is a member again, and its log is
// what it acknowledged. It catches up from the log.
func TestScenarioLateSplitAfterRightRangeMoved(t *testing.T) {
	for _, catalogBehind := range []bool{false, true} {
		t.Run(map[bool]string{false: "catalog-current", true: "catalog-behind"}[catalogBehind], func(t *testing.T) {
			lateSplitScenario(t, catalogBehind)
		})
	}
}

func lateSplitScenario(t *testing.T, catalogBehind bool) {
	runScenario(t, 1, func(sc *scenario) {
		s := sc.s
		s.move.every = 0 // the test makes the moves
		l := sc.leader()
		f, o := sc.others(l)
		sc.put(l, "k7", "before")
		var meta *replica.Replica
		metaLeader := func() *replica.Replica {
			sc.until("a meta leader", func() bool { meta = s.metaLeader(); return meta != nil })
			return meta
		}
		record := func(d *cairnpb.RangeDescriptor) {
			res := sc.await("a catalog record", mustPropose(t, metaLeader(), &cairnpb.Command{Op: &cairnpb.Command_UpdateRanges{UpdateRanges: &cairnpb.UpdateRanges{
				TableId: tableID, Descs: []*cairnpb.RangeDescriptor{d},
			}}}))
			if res.Err != nil {
				t.Fatalf("record range %d: %v", d.Id, res.Err)
			}
		}
		if catalogBehind && metaLeader() == f.st.Replica(replica.MetaRangeID) {
			if err := meta.TransferLeader(l.id); err != nil {
				t.Fatal(err)
			}
			sc.until("the meta range led by another node", func() bool { return l.st.Replica(replica.MetaRangeID).IsLeader() })
		}
		// f hears nothing of the data range from now on: it will apply
		// the split late.
		s.net.hold = func(e *envelope) bool {
			return e.to == f.idx && (e.msg.RangeID == dataRange || catalogBehind && e.msg.RangeID == replica.MetaRangeID)
		}
		alloc := sc.await("a range ID", mustPropose(t, metaLeader(), &cairnpb.Command{Op: &cairnpb.Command_AllocRangeId{AllocRangeId: &cairnpb.AllocRangeID{}}}))
		res := sc.await("the split", mustPropose(t, l.st.Replica(dataRange), &cairnpb.Command{TableId: tableID,
			Op: &cairnpb.Command_Split{Split: &cairnpb.Split{SplitKey: []byte("k5"), NewRangeId: alloc.RangeID, ExpectedGeneration: l.st.Replica(dataRange).Desc().Generation}}}))
		if res.Err != nil {
			t.Fatalf("split: %v", res.Err)
		}
		right := keysRangeID(res.Split.Right.Id)
		record(res.Split.Left)
		record(res.Split.Right)
		// The right range's leader, among l and o (f has no replica).
		lead := func() *node {
			var rl *node
			sc.until("a leader of the right range", func() bool {
				for _, n := range []*node{l, o} {
					if r := n.st.Replica(right); r != nil && r.IsLeader() {
						rl = n
						return true
					}
				}
				return false
			})
			return rl
		}
		if f.st.Replica(right) != nil {
			t.Fatal("f has the right range already; the scenario needs f behind the split")
		}
		change := func(op string) {
			r := lead().st.Replica(right)
			out := sc.await(op, mustPropose2(t, r, op, f.id))
			if out.Err != nil {
				t.Fatalf("%s %d: %v", op, f.id, out.Err)
			}
			record(out.Desc)
		}
		change(replica.OpRemove)
		// f reports no replica of the right range: unfence it.
		rl := lead()
		ures := sc.await("unfence", mustPropose(t, rl.st.Replica(right), &cairnpb.Command{TableId: tableID, Op: &cairnpb.Command_Unfence{Unfence: &cairnpb.Unfence{Node: f.id}}}))
		if ures.Err != nil {
			t.Fatalf("unfence: %v", ures.Err)
		}
		record(ures.Desc)
		// A new term: leadership to the other voter.
		other := o
		if rl == o {
			other = l
		}
		if err := rl.st.Replica(right).TransferLeader(other.id); err != nil {
			t.Fatal(err)
		}
		sc.until("the transfer", func() bool { return other.st.Replica(right).IsLeader() })
		change(replica.OpAddLearner)
		// f's catalog learns of all that (the meta range is not held).
		want := other.st.Replica(right).Desc().ConfVersion
		if !catalogBehind {
			sc.until("f's catalog recording the learner", func() bool {
				d := f.st.CatalogRange(right)
				return d != nil && d.ConfVersion == want
			})
		}
		if f.st.Replica(right) != nil {
			t.Fatal("f has a replica of the right range before it applied the split")
		}
		// Now f's left replica catches up and applies the split.
		snaps := s.res.Snapshots
		if catalogBehind {
			// Only the data range flows again; the catalog stays behind
			// until f has the right range.
			s.net.hold = func(e *envelope) bool { return e.to == f.idx && e.msg.RangeID == replica.MetaRangeID }
			var keep []envelope
			for _, e := range s.net.held {
				if e.msg.RangeID == replica.MetaRangeID {
					keep = append(keep, e)
				} else {
					s.net.q = append(s.net.q, e)
				}
			}
			s.net.held = keep
		} else {
			s.net.hold = nil
			s.net.q = append(s.net.q, s.net.held...)
			s.net.held = nil
		}
		sc.until("f applying the split", func() bool { return !f.st.Replica(dataRange).Contains([]byte("k7")) })
		sc.until("f's learner catching up", func() bool {
			r, lr := f.st.Replica(right), other.st.Replica(right)
			if r == nil {
				return false
			}
			_, _, a := r.Status()
			_, c, _ := lr.Status()
			return a == c && a > 0
		})
		if !catalogBehind && s.res.Snapshots == snaps {
			t.Fatal("f's learner caught up without a snapshot")
		}
		if catalogBehind {
			if d := f.st.CatalogRange(right); d != nil && d.ConfVersion > res.Split.Right.ConfVersion {
				t.Fatal("f's catalog knew the right range moved; the scenario needs it behind")
			}
			s.net.hold = nil
			s.net.q = append(s.net.q, s.net.held...)
			s.net.held = nil
		}
		change(replica.OpPromote)
		sc.until("the cluster converging", s.converged)
		v, found, err := readKey(f, "k7")
		if err != nil || !found || v.value != "before" {
			t.Fatalf("f's copy of k7: %q, found %v, %v", v.value, found, err)
		}
	})
}

func mustPropose2(t *testing.T, r *replica.Replica, op string, node uint64) <-chan replica.Result {
	t.Helper()
	ch, err := r.ChangeReplicasAsync(op, node, r.Desc().ConfVersion)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// A split entry right after a node's removal in the left range's log: the
// removed replica applies both in one pass (it is destroyed only after the
// pass), so the split would create, on the removed node, an initialized
// right-hand replica whose configuration does not list the node. Nothing
// ever destroyed it (the catalog's descriptor is no newer) and it kept the
// node from being added to the range again: seed 518 never settled.
// store.dropStaleSplits drops it in the split's apply batch.
func TestScenarioSplitAfterOwnRemoval(t *testing.T) {
	runScenario(t, 1, func(sc *scenario) {
		s := sc.s
		s.move.every = 0
		l := sc.leader()
		f, o := sc.others(l)
		sc.put(l, "k7", "v")
		sc.until("every node applying the put", s.converged)
		var meta *replica.Replica
		sc.until("a meta leader", func() bool { meta = s.metaLeader(); return meta != nil })
		alloc := sc.await("a range ID", mustPropose(t, meta, &cairnpb.Command{Op: &cairnpb.Command_AllocRangeId{AllocRangeId: &cairnpb.AllocRangeID{}}}))
		left := l.st.Replica(dataRange)
		// The removal and the split must commit together, with f's
		// acknowledgement, so that the leader sends f the commit index
		// covering both before it applies f's removal (it then stops
		// sending to f). Everything to and from f and o's
		// acknowledgements wait; f then gets both entries in order, and
		// only its acknowledgement of both goes to the leader.
		s.net.hold = func(e *envelope) bool {
			return e.msg.RangeID == dataRange && (e.from == o.idx && e.to == l.idx || e.from == f.idx || e.to == f.idx)
		}
		_, base, _ := left.Status()
		rm := mustPropose2(t, left, replica.OpRemove, f.id)
		sp := mustPropose(t, left, &cairnpb.Command{TableId: tableID,
			Op: &cairnpb.Command_Split{Split: &cairnpb.Split{SplitKey: []byte("k5"), NewRangeId: alloc.RangeID, ExpectedGeneration: left.Desc().Generation}}})
		sc.until("the leader sending f both entries", func() bool {
			n := 0
			for _, e := range s.net.held {
				if m := e.msg.Msg; e.to == f.idx && m.Type == raftpb.MsgApp {
					n += len(m.Entries)
				}
			}
			return n >= 2
		})
		var toF, rest []envelope
		for _, e := range s.net.held {
			if e.to == f.idx {
				e.at = s.now + 1
				toF = append(toF, e)
			} else {
				rest = append(rest, e)
			}
		}
		s.net.held = rest
		s.net.q = append(s.net.q, toF...)
		s.net.hold = func(e *envelope) bool {
			return e.msg.RangeID == dataRange && (e.from == o.idx && e.to == l.idx || e.from == f.idx)
		}
		var ack *envelope
		sc.until("f acknowledging both entries", func() bool {
			for i, e := range s.net.held {
				if m := e.msg.Msg; e.from == f.idx && m.Type == raftpb.MsgAppResp && !m.Reject && m.Index >= base+2 {
					ack = &s.net.held[i]
					return true
				}
			}
			return false
		})
		a := *ack
		a.at = s.now + 1
		s.net.q = append(s.net.q, a)
		s.net.hold = func(e *envelope) bool {
			return e.seq != a.seq && e.msg.RangeID == dataRange && (e.from == o.idx && e.to == l.idx || e.from == f.idx)
		}
		if res := sc.await("the removal", rm); res.Err != nil {
			t.Fatalf("remove: %v", res.Err)
		}
		res := sc.await("the split", sp)
		if res.Err != nil {
			t.Fatalf("split: %v", res.Err)
		}
		if slices.Contains(res.Split.Right.Replicas, f.id) {
			t.Fatal("the split came before the removal; the scenario needs it after")
		}
		right := keysRangeID(res.Split.Right.Id)
		s.net.hold = nil
		s.net.held = nil
		sc.until("f's left replica gone", func() bool { return f.st.Replica(dataRange) == nil })
		for i := 0; i < 50; i++ {
			s.step(false)
		}
		if r := f.st.Replica(right); r != nil {
			term, commit, applied := r.Status()
			t.Fatalf("f has a replica of the right range outside its configuration (term %d, commit %d, applied %d)", term, commit, applied)
		}
		if _, found, err := readKey(f, "k7"); err != nil || found {
			t.Fatalf("f kept the right range's data: found %v, %v", found, err)
		}
	})
}
