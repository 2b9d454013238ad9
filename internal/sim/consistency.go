package sim

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/cairn-db/cairn/internal/kv"
	"github.com/cairn-db/cairn/internal/replica"
)

// Probes of session and bounded-stale reads (Config.Probes). Every
// probeEvery steps each live node serves one stale read and one session
// read of a random key from its own replica, exactly when the replica
// says it may without waiting (replica.StaleReady; kv.SessionToken.Need
// and the visible index), and the checkers compare what it read with the
// acknowledged writes:
//
//   - staleness: a stale read with bound D at step t reflects every write
//     acknowledged before step t - D;
//   - session: the client slot's session (its acknowledged writes and
//     the reads it made) never sees a key older than it has seen.
//
// A key's states are ordered by position: put of version v, then the
// delete of v, then puts of later versions. A read that finds no key
// after a put is accepted only when some delete of the key was issued
// (its outcome may be unknown), so a missing key is never excused by
// nothing.

const probeEvery = 3

// pos is a key's state in its history: a put of ver, or (del) the delete
// of the value of version ver.
type pos struct {
	ver uint64
	del bool
}

func (a pos) less(b pos) bool { return a.ver < b.ver || (a.ver == b.ver && !a.del && b.del) }

type ack struct {
	step int64
	at   pos
}

type probes struct {
	s   *Sim
	rng *rand.Rand
	// acks lists each key's acknowledged writes; delIssued the keys some
	// delete was issued for.
	acks      map[string][]ack
	delIssued map[string]bool
	// Per client slot (a session): its token and the least state it may
	// see of each key.
	tokens []kv.SessionToken
	floors []map[string]pos
}

func newProbes(s *Sim) *probes {
	p := &probes{s: s, rng: rand.New(rand.NewChaCha8(seedBytes(s.cfg.Seed, 4))),
		acks: map[string][]ack{}, delIssued: map[string]bool{}}
	for range s.cfg.Clients {
		p.tokens = append(p.tokens, kv.SessionToken{})
		p.floors = append(p.floors, map[string]pos{})
	}
	return p
}

// issued notes a client operation as it is issued.
func (p *probes) issued(in input) {
	if in.Kind == opDel {
		p.delIssued[in.Key] = true
	}
}

// acked notes an acknowledged write of client slot on replica r.
func (p *probes) acked(slot int, o *op, res replica.Result, r *replica.Replica) {
	at := pos{ver: res.Version, del: o.in.Kind == opDel}
	p.acks[o.in.Key] = append(p.acks[o.in.Key], ack{step: p.s.now, at: at})
	if slot < 0 || r == nil {
		return
	}
	d := r.Desc()
	p.tokens[slot].Observe(kv.SessionEntry{Table: d.TableId, Range: d.Id, Generation: d.Generation, Index: res.Index})
	if f, ok := p.floors[slot][o.in.Key]; !ok || f.less(at) {
		p.floors[slot][o.in.Key] = at
	}
}

// covers reports whether a read that found (found, ver) is at least at
// state want.
func (p *probes) covers(key string, found bool, ver uint64, want pos) bool {
	if found {
		return !pos{ver: ver}.less(want)
	}
	return want.del || p.delIssued[key]
}

func (p *probes) step() {
	s := p.s
	if s.now%probeEvery != 0 {
		return
	}
	for _, n := range s.upNodes() {
		p.staleProbe(n)
		p.sessionProbe(n)
	}
}

var staleBounds = []time.Duration{20 * time.Millisecond, 50 * time.Millisecond, 150 * time.Millisecond, 400 * time.Millisecond}

func (p *probes) staleProbe(n *node) {
	s := p.s
	key := fmt.Sprintf("k%d", p.rng.IntN(s.cfg.Keys))
	bound := staleBounds[p.rng.IntN(len(staleBounds))]
	r := n.st.LocalRangeFor(tableID, []byte(key))
	if r == nil {
		return
	}
	staleness, ok := r.StaleReady(bound)
	if s.cfg.Bug == BugStaleWithoutProof {
		ok = true
	}
	if !ok || !r.Contains([]byte(key)) {
		return
	}
	v, found, err := readKey(n, key)
	if err != nil {
		s.fail("%s: stale read %s: %v", n.name, key, err)
		return
	}
	s.res.StaleReads++
	s.ev("stale-read", n.id, uint64(staleness))
	cutoff := s.now - bound.Milliseconds()
	var want pos
	have := false
	for _, a := range p.acks[key] {
		if a.step < cutoff && (!have || want.less(a.at)) {
			want, have = a.at, true
		}
	}
	if have && !p.covers(key, found, v.version, want) {
		s.fail("staleness: %s served %s (found %v, version %d) within %v (proved %v), but %+v was acknowledged more than %v before",
			n.name, key, found, v.version, bound, staleness, want, bound)
	}
}

func (p *probes) sessionProbe(n *node) {
	s := p.s
	slot := p.rng.IntN(len(p.tokens))
	key := fmt.Sprintf("k%d", p.rng.IntN(s.cfg.Keys))
	r := n.st.LocalRangeFor(tableID, []byte(key))
	if r == nil {
		return
	}
	d := r.Desc()
	need, err := p.tokens[slot].Need(d.TableId, d.Id, d.Generation)
	if s.cfg.Bug == BugSessionIgnoresToken {
		need, err = 0, nil
	}
	if err != nil || r.VisibleIndex() < need || !r.Contains([]byte(key)) {
		return
	}
	entry := r.SessionEntry()
	v, found, rerr := readKey(n, key)
	if rerr != nil {
		s.fail("%s: session read %s: %v", n.name, key, rerr)
		return
	}
	s.res.SessionReads++
	s.ev("session-read", n.id, uint64(slot))
	if want, ok := p.floors[slot][key]; ok && !p.covers(key, found, v.version, want) {
		s.fail("session: slot %d read %s on %s (found %v, version %d) behind what it wrote or saw: %+v",
			slot, key, n.name, found, v.version, want)
	}
	p.tokens[slot].Observe(entry)
	if found {
		if at := (pos{ver: v.version}); p.floors[slot][key].less(at) {
			p.floors[slot][key] = at
		}
	}
}
