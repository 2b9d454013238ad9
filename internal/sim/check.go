package sim

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/replica"
	"github.com/cairn-db/cairn/internal/storage"
)

// checker holds what the per-step checks have seen across all nodes and
// incarnations.
type checker struct {
	// leaders maps (range, term) to the node that led it.
	leaders map[[2]uint64]uint64
	// entries maps range -> index -> hash of the applied entry's (term,
	// type, data), as read back from the applying node's Raft log.
	entries map[keys.RangeID]map[uint64]entryAt
	// states maps range -> applied index -> hash of the range's state
	// machine (data, max version, applied term) at that index.
	states map[keys.RangeID]map[uint64]entryAt
}

// entryAt is a hash and the node that first recorded it.
type entryAt struct {
	hash uint64
	node uint64
}

func newChecker() *checker {
	return &checker{
		leaders: map[[2]uint64]uint64{},
		entries: map[keys.RangeID]map[uint64]entryAt{},
		states:  map[keys.RangeID]map[uint64]entryAt{},
	}
}

// afterStep runs the cheap checks on every live node: one leader per term,
// applied entries and states agree, versions never go down.
func (c *checker) afterStep(s *Sim) {
	for _, n := range s.nodes {
		if !n.up {
			continue
		}
		for _, r := range n.st.Replicas() {
			term, commit, applied := r.Status()
			if applied > commit {
				s.fail("%s: range %d applied %d beyond its commit index %d", n.name, r.ID, applied, commit)
			}
			if r.IsLeader() {
				k := [2]uint64{uint64(r.ID), term}
				if prev, ok := c.leaders[k]; ok && prev != n.id {
					s.fail("range %d has two leaders in term %d: n%d and n%d", r.ID, term, prev, n.id)
				}
				c.leaders[k] = n.id
			}
			if prev := n.incarnation[r.ID]; prev != r {
				// A replica created since the last check after the
				// node's last one moved away (destroyed, then added
				// back): a new, empty one starts from nothing.
				if prev != nil && applied == 0 {
					n.cursor[r.ID] = 0
				}
				n.incarnation[r.ID] = r
			}
			from := n.cursor[r.ID]
			if applied == from {
				continue
			}
			if applied < from {
				s.fail("%s: range %d applied index went back from %d to %d", n.name, r.ID, from, applied)
			}
			c.checkEntries(s, n, r.ID, from, applied)
			c.checkState(s, n, r.ID)
			n.cursor[r.ID] = applied
		}
	}
}

// checkEntries compares the entries (from, to] that n applied with what
// every other node applied at the same indexes. Entries already truncated
// (or skipped by a snapshot) are not in the log any more and are skipped;
// checkState still covers them.
func (c *checker) checkEntries(s *Sim, n *node, id keys.RangeID, from, to uint64) {
	m := c.entries[id]
	if m == nil {
		m = map[uint64]entryAt{}
		c.entries[id] = m
	}
	for idx := from + 1; idx <= to; idx++ {
		raw, closer, err := n.db.Get(keys.RaftLogKey(id, idx))
		if errors.Is(err, pebble.ErrNotFound) {
			continue
		}
		if err != nil {
			s.fail("%s: read log entry %d of range %d: %v", n.name, idx, id, err)
			return
		}
		var e raftpb.Entry
		err = e.Unmarshal(raw)
		closer.Close()
		if err != nil || e.Index != idx {
			s.fail("%s: log entry %d of range %d: index %d, %v", n.name, idx, id, e.Index, err)
			return
		}
		h := fnv.New64a()
		var b [16]byte
		binary.LittleEndian.PutUint64(b[:], e.Term)
		binary.LittleEndian.PutUint64(b[8:], uint64(e.Type))
		h.Write(b[:])
		h.Write(e.Data)
		sum := h.Sum64()
		if prev, ok := m[idx]; ok && prev.hash != sum {
			s.fail("range %d: applied entries diverge at index %d: n%d applied %s, n%d applied another (term %d, %d bytes)",
				id, idx, prev.node, "one entry", n.id, e.Term, len(e.Data))
			return
		}
		if _, ok := m[idx]; !ok {
			m[idx] = entryAt{hash: sum, node: n.id}
		}
	}
}

// checkState hashes range id's state machine (data and key history) on n
// at its applied index and compares it with every other node's state at
// that index. For the
// data range it also checks that no key's version went down on n.
func (c *checker) checkState(s *Sim, n *node, id keys.RangeID) {
	st, err := replica.LoadState(n.db, id)
	if err != nil {
		s.fail("%s: %v", n.name, err)
		return
	}
	r := n.st.Replica(id)
	if r == nil {
		return
	}
	if _, _, applied := r.Status(); applied != st.AppliedIndex {
		s.fail("%s: range %d reports applied %d but stored state is at %d", n.name, id, applied, st.AppliedIndex)
		return
	}
	h := fnv.New64a()
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:], st.MaxVersion)
	binary.LittleEndian.PutUint64(b[8:], st.AppliedTerm)
	h.Write(b[:])
	start, end := r.DataSpan()
	it, err := n.db.NewIter(&pebble.IterOptions{LowerBound: start, UpperBound: end})
	if err != nil {
		s.fail("%s: %v", n.name, err)
		return
	}
	for ok := it.First(); ok; ok = it.Next() {
		binary.LittleEndian.PutUint64(b[:], uint64(len(it.Key())))
		h.Write(b[:8])
		h.Write(it.Key())
		h.Write(it.Value())
		if r.Desc().TableId != tableID {
			continue
		}
		ver, _, err := storage.DecodeValue(it.Value())
		if err != nil {
			s.fail("%s: corrupt value at %q: %v", n.name, it.Key(), err)
			continue
		}
		_, uk, _ := keys.DecodeDataKey(it.Key())
		if prev := n.seenVer[string(uk)]; ver < prev {
			s.fail("%s: version of %q went down from %d to %d (applied index %d)", n.name, uk, prev, ver, st.AppliedIndex)
		} else if st.MaxVersion < ver {
			s.fail("%s: %q has version %d above the range's max version %d", n.name, uk, ver, st.MaxVersion)
		}
		n.seenVer[string(uk)] = max(n.seenVer[string(uk)], ver)
	}
	if err := it.Close(); err != nil {
		s.fail("%s: %v", n.name, err)
	}
	// The key history (what watches resume from) is replicated state too:
	// the same entries, trimmed the same way, on every replica.
	d := r.Desc()
	hs, he := keys.HistorySpan(keys.TableID(d.TableId), d.Start, d.End)
	hit, err := n.db.NewIter(&pebble.IterOptions{LowerBound: hs, UpperBound: he})
	if err != nil {
		s.fail("%s: %v", n.name, err)
		return
	}
	binary.LittleEndian.PutUint64(b[:], st.MaxSeq)
	h.Write(b[:8])
	for ok := hit.First(); ok; ok = hit.Next() {
		binary.LittleEndian.PutUint64(b[:], uint64(len(hit.Key())))
		h.Write(b[:8])
		h.Write(hit.Key())
		h.Write(hit.Value())
	}
	if err := hit.Close(); err != nil {
		s.fail("%s: %v", n.name, err)
	}
	m := c.states[id]
	if m == nil {
		m = map[uint64]entryAt{}
		c.states[id] = m
	}
	sum := h.Sum64()
	if prev, ok := m[st.AppliedIndex]; ok && prev.hash != sum {
		s.fail("range %d: state machines diverge at applied index %d (n%d vs n%d)", id, st.AppliedIndex, prev.node, n.id)
		return
	}
	if _, ok := m[st.AppliedIndex]; !ok {
		m[st.AppliedIndex] = entryAt{hash: sum, node: n.id}
	}
}

// final runs the end-of-run checks on a settled cluster: all replicas hold
// the same data, no acknowledged write is lost, every value was written by
// someone, and the history (plus a final read of every key) linearizes.
func (c *checker) final(s *Sim) {
	cl := s.cl
	finals, ok := c.readFinals(s)
	if !ok {
		return
	}
	c.lostWrites(s, finals)
	c.checkCatalogs(s)
	checkLinearizable(s, cl.history)
	s.res.Ops = len(cl.history)
	s.res.Splits = s.split.splits
	s.res.Merges = s.merge.merges
	s.res.Moves = s.move.moves
	s.res.Transfers = s.xfer.transfers
	for _, o := range cl.history {
		if o.out.Out == outUnknown {
			s.res.Unknown++
		}
	}
}

// durable checks, on a settled cluster, that no acknowledged write was
// lost so far. It runs before the calm phase, whose writes would
// otherwise overwrite (and so hide) a write lost during the faults.
func (c *checker) durable(s *Sim) {
	if finals, ok := c.readFinals(s); ok {
		c.lostWrites(s, finals)
	}
}

// readFinals reads every key on every node, checks that the replicas
// agree, and adds the values to the history as reads after everything so
// far.
func (c *checker) readFinals(s *Sim) (map[string]*versioned, bool) {
	cl := s.cl
	finals := map[string]*versioned{}
	for k := 0; k < s.cfg.Keys; k++ {
		key := fmt.Sprintf("k%d", k)
		var first *versioned
		for i, n := range s.nodes {
			v, found, err := readKey(n, key)
			if err != nil {
				s.fail("%s: final read of %s: %v", n.name, key, err)
				return nil, false
			}
			var got *versioned
			if found {
				got = &v
			}
			if i == 0 {
				first = got
				continue
			}
			if (first == nil) != (got == nil) || (first != nil && *first != *got) {
				s.fail("replicas disagree on %s at the end: %s has %v, %s has %v", key, s.nodes[0].name, first, n.name, got)
			}
		}
		finals[key] = first
		// The final value joins the history as a read after everything.
		cl.clock++
		o := &op{id: -1 - k, client: cl.nextClient, in: input{Kind: opGet, Key: key}, call: cl.clock}
		cl.clock++
		o.ret = cl.clock
		o.out = output{Out: outNotFound}
		if first != nil {
			o.out = output{Out: outOK, Value: first.value, Version: first.version}
		}
		cl.history = append(cl.history, o)
	}
	return finals, true
}

// lostWrites checks every acknowledged write against the final state: a
// put must be there or overwritten by a later version (or deleted by a
// delete that may have come after it); a delete must not be undone by an
// older version; the final value must have been written by some put.
func (c *checker) lostWrites(s *Sim, finals map[string]*versioned) {
	written := map[string]bool{}
	maybeDeleted := map[string]uint64{} // key -> highest version a delete may have removed
	for _, o := range s.cl.history {
		if o.in.Kind == opPut && (o.out.Out == outOK || o.out.Out == outUnknown) {
			written[o.in.Value] = true
		}
		if o.in.Kind == opDel {
			switch o.out.Out {
			case outOK:
				maybeDeleted[o.in.Key] = max(maybeDeleted[o.in.Key], o.out.Version)
			case outUnknown:
				maybeDeleted[o.in.Key] = ^uint64(0)
			}
		}
	}
	for _, o := range s.cl.history {
		if o.out.Out != outOK || o.id < 0 {
			continue
		}
		f := finals[o.in.Key]
		switch o.in.Kind {
		case opPut:
			switch {
			case f == nil && maybeDeleted[o.in.Key] < o.out.Version:
				s.fail("lost write: put %s=%s acknowledged with version %d, but the key is absent and no delete came after it",
					o.in.Key, o.in.Value, o.out.Version)
			case f != nil && f.version < o.out.Version:
				s.fail("lost write: put %s=%s acknowledged with version %d, but the final version is %d (%s)",
					o.in.Key, o.in.Value, o.out.Version, f.version, f.value)
			case f != nil && f.version == o.out.Version && f.value != o.in.Value:
				s.fail("lost write: put %s=%s acknowledged with version %d, but that version holds %s",
					o.in.Key, o.in.Value, o.out.Version, f.value)
			}
		case opDel:
			if f != nil && f.version <= o.out.Version {
				s.fail("lost delete: delete of %s acknowledged (version %d), but %s@%d is back", o.in.Key, o.out.Version, f.value, f.version)
			}
		}
	}
	for key, f := range finals {
		if f != nil && !written[f.value] {
			s.fail("phantom write: %s holds %s@%d, which no client wrote", key, f.value, f.version)
		}
	}
}
