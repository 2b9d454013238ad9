package sim

import (
	"cmp"
	"context"
	"math/rand/v2"
	"slices"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/transport"
)

// profile is a seed's fault mix, drawn once per seed so that the sweep
// covers calm seeds, lossy ones and crash-heavy ones.
type profile struct {
	none bool
	// Per message.
	drop, dup, slow float64
	maxDelay        int64 // normal delay is 1..maxDelay steps
	slowDelay       int64 // a slow message takes up to this many steps
	// Mean steps between injections (0: never).
	crashEvery, partEvery, compactEvery int64
	// churnEvery is the mean steps between table churn operations.
	churnEvery int64
	// crashAtSend is the share of crashes that hit the middle of a Ready.
	crashAtSend float64
	// reportDrop is the share of drops reported to Raft as unreachable.
	reportDrop float64
}

func newProfile(rng *rand.Rand, none bool) profile {
	p := profile{maxDelay: 1 + rng.Int64N(6), slowDelay: 20 + rng.Int64N(200), reportDrop: 0.5}
	p.churnEvery = []int64{0, 40, 150}[rng.IntN(3)]
	if none {
		p.none = true
		return p
	}
	pick := func(xs ...float64) float64 { return xs[rng.IntN(len(xs))] }
	p.drop = pick(0, 0.01, 0.05, 0.2)
	p.dup = pick(0, 0.01, 0.05)
	p.slow = pick(0, 0.01, 0.05)
	p.crashEvery = int64(pick(0, 300, 800, 2000))
	p.partEvery = int64(pick(0, 400, 1000))
	p.compactEvery = int64(pick(0, 200, 1000))
	p.crashAtSend = pick(0, 0.3, 0.7)
	return p
}

// quiet turns message faults off for the settling phase; delays stay.
func (p *profile) quiet() {
	p.drop, p.dup, p.slow = 0, 0, 0
}

func chance(rng *rand.Rand, p float64) bool { return p > 0 && rng.Float64() < p }

func every(rng *rand.Rand, mean int64) bool { return mean > 0 && rng.Int64N(mean) == 0 }

// envelope is a message in flight.
type envelope struct {
	at       int64 // delivery step
	seq      uint64
	from, to int // node indexes
	// toInc is the incarnation of the destination at send time; -1 when it
	// was down (then whichever incarnation is up at delivery gets it, as a
	// real transport's queue reaches a restarted peer after reconnecting).
	toInc int
	msg   transport.RangeMessage
}

type report struct {
	node, inc int
	rangeID   keys.RangeID
	to        uint64
	snap      bool // a snapshot status (ok below), else unreachable
	ok        bool
}

type network struct {
	q       []envelope
	seq     uint64
	cut     map[[2]int]bool // directed from -> to
	clog    map[[2]int]bool // directed links whose messages wait for healAt
	healAt  int64
	reports []report
	// hold, if set, keeps the due messages it matches in held instead of
	// delivering them (targeted scenarios).
	hold func(e *envelope) bool
	held []envelope
}

// sender is a node incarnation's transport.
type sender struct {
	s   *Sim
	n   *node
	inc int
}

// Send implements store.Sender. It never blocks.
func (x *sender) Send(id keys.RangeID, msgs []raftpb.Message) { x.s.send(x.n, x.inc, id, msgs) }

func (s *Sim) send(n *node, inc int, id keys.RangeID, msgs []raftpb.Message) {
	if !n.up || n.inc != inc {
		return // a crashed incarnation finishing its Ready pass: nothing leaves
	}
	p := &s.prof
	for _, m := range msgs {
		to := s.nodeByID(m.To)
		if to == nil {
			s.report(n, id, m, false)
			continue
		}
		// Copy the message as the real transport does (it marshals it), so
		// no node ever shares memory with another.
		data, err := m.Marshal()
		if err != nil {
			s.fail("marshal raft message: %v", err)
			return
		}
		var cp raftpb.Message
		if err := cp.Unmarshal(data); err != nil {
			s.fail("unmarshal raft message: %v", err)
			return
		}
		if m.Type == raftpb.MsgSnap {
			s.res.Snapshots++
		}
		kind := uint64(m.Type)
		if s.net.cut[[2]int{n.idx, to.idx}] {
			s.ev("cut", n.id, m.To, uint64(id), kind)
			s.report(n, id, m, true)
			continue
		}
		if chance(s.rngN, p.drop) {
			s.ev("drop", n.id, m.To, uint64(id), kind)
			if chance(s.rngN, p.reportDrop) {
				s.report(n, id, m, true)
			} else if m.Type == raftpb.MsgSnap {
				// Lost after the stream took it: the real transport has
				// reported success by then (Raft then probes again).
				s.net.reports = append(s.net.reports, report{node: n.idx, inc: n.inc, rangeID: id, to: m.To, snap: true, ok: true})
			}
			continue
		}
		if m.Type == raftpb.MsgSnap {
			// The real transport reports success once the stream took it.
			s.net.reports = append(s.net.reports, report{node: n.idx, inc: n.inc, rangeID: id, to: m.To, snap: true, ok: true})
		}
		copies := 1
		if chance(s.rngN, p.dup) {
			copies = 2
		}
		for c := 0; c < copies; c++ {
			delay := 1 + s.rngN.Int64N(p.maxDelay)
			if chance(s.rngN, p.slow) {
				delay += s.rngN.Int64N(p.slowDelay)
			}
			if s.net.clog[[2]int{n.idx, to.idx}] {
				// Delivered, in order, once the clog clears.
				delay = s.net.healAt - s.now + 1 + int64(c)
			}
			toInc := to.inc
			if !to.up {
				toInc = -1
			}
			s.net.seq++
			s.net.q = append(s.net.q, envelope{at: s.now + delay, seq: s.net.seq, from: n.idx, to: to.idx, toInc: toInc,
				msg: transport.RangeMessage{RangeID: id, Msg: cp}})
			s.ev("send", n.id, m.To, uint64(id), kind, m.Term, m.Index, m.Commit, uint64(len(m.Entries)), uint64(delay))
		}
	}
	if n.crashAtSend {
		// Crash right after these messages left: a leader's entries are
		// on the wire but not yet in its own fsynced log.
		s.crash(n)
	}
}

// report queues an unreachable (and, for snapshots, a failure) report for
// the sender's next driver step, as the transport's callbacks do.
func (s *Sim) report(n *node, id keys.RangeID, m raftpb.Message, unreachable bool) {
	if !unreachable {
		return
	}
	s.net.reports = append(s.net.reports, report{node: n.idx, inc: n.inc, rangeID: id, to: m.To})
	if m.Type == raftpb.MsgSnap {
		s.net.reports = append(s.net.reports, report{node: n.idx, inc: n.inc, rangeID: id, to: m.To, snap: true})
	}
}

func (s *Sim) applyReports() {
	reps := s.net.reports
	s.net.reports = nil
	for _, rp := range reps {
		n := s.nodes[rp.node]
		if !n.up || n.inc != rp.inc {
			continue
		}
		r := n.st.Replica(rp.rangeID)
		if r == nil {
			continue
		}
		if rp.snap {
			r.ReportSnapshot(rp.to, rp.ok)
		} else {
			r.ReportUnreachable(rp.to)
		}
	}
}

// deliver hands every due message to its destination, in (due step, send
// order) order, one Deliver batch per destination.
func (s *Sim) deliver() {
	var due []envelope
	kept := s.net.q[:0]
	for _, e := range s.net.q {
		if e.at <= s.now {
			due = append(due, e)
		} else {
			kept = append(kept, e)
		}
	}
	s.net.q = kept
	if len(due) == 0 {
		return
	}
	slices.SortFunc(due, func(a, b envelope) int {
		if a.at != b.at {
			return cmp.Compare(a.at, b.at)
		}
		return cmp.Compare(a.seq, b.seq)
	})
	batches := make([][]transport.RangeMessage, len(s.nodes))
	for _, e := range due {
		to := s.nodes[e.to]
		if s.net.hold != nil && s.net.hold(&e) {
			s.net.held = append(s.net.held, e)
			continue
		}
		if !to.up || (e.toInc >= 0 && e.toInc != to.inc) || s.net.cut[[2]int{e.from, e.to}] {
			s.ev("lost", uint64(e.from+1), uint64(e.to+1), e.seq)
			continue
		}
		batches[e.to] = append(batches[e.to], e.msg)
	}
	for i, b := range batches {
		if n := s.nodes[i]; len(b) > 0 && n.up {
			s.ev("deliver", uint64(i+1), uint64(len(b)))
			s.guard(n, "Deliver", func() { n.st.Deliver(b) })
		}
	}
}

// partition cuts links: isolate a node (often the leader), split the
// cluster in two, or cut one direction of one link.
func (s *Sim) partition() {
	if len(s.net.cut) > 0 || len(s.net.clog) > 0 {
		return
	}
	rng, nn := s.rngF, len(s.nodes)
	cut := func(a, b int) { s.net.cut[[2]int{a, b}] = true }
	switch k := rng.IntN(5); k {
	case 0, 1: // isolate one node; k == 1 prefers the data range's leader
		victim := rng.IntN(nn)
		if k == 1 {
			for _, n := range s.upNodes() {
				if r := n.st.LocalRangeFor(tableID, []byte("k0")); r != nil && r.IsLeader() {
					victim = n.idx
				}
			}
		}
		for i := 0; i < nn; i++ {
			if i != victim {
				cut(i, victim)
				cut(victim, i)
			}
		}
	case 2: // split into two random sides
		side := make([]bool, nn)
		for i := range side {
			side[i] = rng.IntN(2) == 0
		}
		for i := 0; i < nn; i++ {
			for j := 0; j < nn; j++ {
				if side[i] != side[j] {
					cut(i, j)
				}
			}
		}
	case 3: // one-way loss on one link
		a := rng.IntN(nn)
		b := (a + 1 + rng.IntN(nn-1)) % nn
		cut(a, b)
	case 4: // clog: both directions of one link hold messages until healed
		a := rng.IntN(nn)
		b := (a + 1 + rng.IntN(nn-1)) % nn
		s.net.clog[[2]int{a, b}], s.net.clog[[2]int{b, a}] = true, true
	}
	s.net.healAt = s.now + 50 + rng.Int64N(800)
	s.res.Partitions++
	var links []uint64
	for i := 0; i < nn; i++ {
		for j := 0; j < nn; j++ {
			if s.net.cut[[2]int{i, j}] || s.net.clog[[2]int{i, j}] {
				links = append(links, uint64(i+1)*10+uint64(j+1))
			}
		}
	}
	s.ev("partition", links...)
}

func (n *network) healAll(s *Sim) {
	if len(n.cut)+len(n.clog) > 0 {
		s.ev("heal")
	}
	n.cut, n.clog = map[[2]int]bool{}, map[[2]int]bool{}
	n.healAt = 0
}

// injectFaults draws this step's faults: partitions and heals, crashes
// and restarts, manual flushes and compactions.
func (s *Sim) injectFaults() {
	p, rng := &s.prof, s.rngF
	if p.none {
		return
	}
	if s.net.healAt > 0 && s.now >= s.net.healAt {
		s.net.healAll(s)
	}
	if every(rng, p.partEvery) {
		s.partition()
	}
	if s.cfg.Bug == BugForgetSyncedWrites {
		if s.now%checkpointEvery == 1 {
			for _, n := range s.nodes {
				n.checkpoint = n.fs.CrashClone(vfs.CrashCloneCfg{})
			}
		}
		if every(rng, p.crashEvery) && rng.IntN(2) == 0 {
			s.powerFailureWithLyingDisks()
			return
		}
	}
	if every(rng, p.crashEvery) {
		up := s.upNodes()
		// Mostly keep a majority up; sometimes take the whole cluster down.
		if len(up) > len(s.nodes)/2+1 || (len(up) > 0 && rng.IntN(10) == 0) {
			victim := up[rng.IntN(len(up))]
			if rng.IntN(3) == 0 { // prefer the data range's leader
				for _, n := range up {
					if r := n.st.LocalRangeFor(tableID, []byte("k0")); r != nil && r.IsLeader() {
						victim = n
					}
				}
			}
			if chance(rng, p.crashAtSend) {
				victim.crashAtSend = true
				s.ev("crash-at-send", victim.id)
			} else {
				s.crash(victim)
				s.closeCrashed()
			}
		}
	}
	for _, n := range s.nodes {
		if !n.up && n.restartAt == 0 {
			n.restartAt = s.now + 20 + rng.Int64N(600)
		}
	}
	if every(rng, p.compactEvery) {
		up := s.upNodes()
		if len(up) > 0 {
			n := up[rng.IntN(len(up))]
			s.ev("compact", n.id)
			if err := n.db.Flush(); err != nil {
				s.fail("%s: flush: %v", n.name, err)
			} else if err := n.db.Compact(context.Background(), []byte{0}, []byte{0xff, 0xff}, false); err != nil {
				s.fail("%s: compact: %v", n.name, err)
			}
		}
	}
}

// powerFailureWithLyingDisks is BugForgetSyncedWrites: every node crashes
// and comes back with the disk image of the last checkpoint.
func (s *Sim) powerFailureWithLyingDisks() {
	s.ev("power-failure")
	for _, n := range s.nodes {
		s.crash(n)
		if n.checkpoint != nil {
			n.fs = n.checkpoint
		}
	}
	s.closeCrashed()
	s.net.q, s.net.reports = nil, nil
}
