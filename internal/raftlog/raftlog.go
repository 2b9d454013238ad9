// Package raftlog implements raft.Storage for one range over the node's
// Pebble instance: log entries, hard state and the truncated position live
// under the range's keys (package keys). The store's Ready loop is the only
// writer: it appends entries and hard states into its per-Ready batch with
// Append/SetHardState, commits that batch with one fsync for all ranges,
// and only then calls Applied* to move the in-memory view forward.
//
// Invariants:
//  1. Entries (truncIndex, lastIndex] are in Pebble; (0, truncIndex] are not.
//  2. truncTerm is the term of entry truncIndex (it may be a snapshot's).
//  3. All methods run on the store's driver goroutine; none is concurrent.
package raftlog

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/cairn-db/cairn/internal/keys"
)

// SnapshotFunc builds a snapshot of the range's state machine at its
// current applied index.
type SnapshotFunc func() (raftpb.Snapshot, error)

// Log is the raft.Storage of one range.
type Log struct {
	db      *pebble.DB
	rangeID keys.RangeID

	hardState  raftpb.HardState
	confState  raftpb.ConfState
	truncIndex uint64
	truncTerm  uint64
	lastIndex  uint64
	// lastTerm caches the term of lastIndex.
	lastTerm uint64

	snapshot SnapshotFunc
}

var _ raft.Storage = (*Log)(nil)

// Load reads a range's log state from db. confState is the applied
// configuration (kept in the range's applied state, not here).
func Load(db *pebble.DB, id keys.RangeID, confState raftpb.ConfState, snap SnapshotFunc) (*Log, error) {
	l := &Log{db: db, rangeID: id, confState: confState, snapshot: snap}
	if err := getProto(db, keys.HardStateKey(id), &l.hardState); err != nil {
		return nil, err
	}
	v, closer, err := db.Get(keys.TruncatedStateKey(id))
	if err != nil {
		return nil, fmt.Errorf("raftlog: range %d: truncated state: %w", id, err)
	}
	if len(v) != 16 {
		closer.Close()
		return nil, fmt.Errorf("raftlog: range %d: truncated state is %d bytes", id, len(v))
	}
	l.truncIndex, l.truncTerm = binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:])
	closer.Close()

	l.lastIndex, l.lastTerm = l.truncIndex, l.truncTerm
	start, end := keys.RaftLogKey(id, 0), keys.RaftLogKey(id, ^uint64(0))
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: start, UpperBound: end})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	if it.Last() {
		var e raftpb.Entry
		if err := e.Unmarshal(it.Value()); err != nil {
			return nil, fmt.Errorf("raftlog: range %d: last entry: %w", id, err)
		}
		l.lastIndex, l.lastTerm = e.Index, e.Term
	}
	return l, it.Error()
}

// WriteInitial writes the log state of a range that starts from a snapshot
// at (index, term): an empty log, truncated at index.
func WriteInitial(b *pebble.Batch, id keys.RangeID, index, term uint64) error {
	hs := raftpb.HardState{Term: term, Commit: index}
	if err := setProto(b, keys.HardStateKey(id), &hs); err != nil {
		return err
	}
	return b.Set(keys.TruncatedStateKey(id), truncVal(index, term), nil)
}

func truncVal(index, term uint64) []byte {
	v := binary.BigEndian.AppendUint64(nil, index)
	return binary.BigEndian.AppendUint64(v, term)
}

// InitialState implements raft.Storage.
func (l *Log) InitialState() (raftpb.HardState, raftpb.ConfState, error) {
	return l.hardState, l.confState, nil
}

// Entries implements raft.Storage.
func (l *Log) Entries(lo, hi, maxSize uint64) ([]raftpb.Entry, error) {
	if lo <= l.truncIndex {
		return nil, raft.ErrCompacted
	}
	if hi > l.lastIndex+1 {
		return nil, fmt.Errorf("raftlog: range %d: entries [%d, %d) past last index %d", l.rangeID, lo, hi, l.lastIndex)
	}
	it, err := l.db.NewIter(&pebble.IterOptions{
		LowerBound: keys.RaftLogKey(l.rangeID, lo),
		UpperBound: keys.RaftLogKey(l.rangeID, hi),
	})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var ents []raftpb.Entry
	var size uint64
	next := lo
	for ok := it.First(); ok; ok = it.Next() {
		var e raftpb.Entry
		if err := e.Unmarshal(it.Value()); err != nil {
			return nil, fmt.Errorf("raftlog: range %d: entry: %w", l.rangeID, err)
		}
		if e.Index != next {
			return nil, fmt.Errorf("raftlog: range %d: entry %d missing (found %d)", l.rangeID, next, e.Index)
		}
		size += uint64(e.Size())
		if len(ents) > 0 && size > maxSize {
			break
		}
		ents = append(ents, e)
		next++
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	if len(ents) == 0 || (next < hi && size <= maxSize) {
		return nil, fmt.Errorf("raftlog: range %d: entries [%d, %d) incomplete", l.rangeID, lo, hi)
	}
	return ents, nil
}

// Term implements raft.Storage.
func (l *Log) Term(i uint64) (uint64, error) {
	switch {
	case i == l.truncIndex:
		return l.truncTerm, nil
	case i < l.truncIndex:
		return 0, raft.ErrCompacted
	case i > l.lastIndex:
		return 0, raft.ErrUnavailable
	case i == l.lastIndex:
		return l.lastTerm, nil
	}
	v, closer, err := l.db.Get(keys.RaftLogKey(l.rangeID, i))
	if err != nil {
		return 0, fmt.Errorf("raftlog: range %d: term of %d: %w", l.rangeID, i, err)
	}
	defer closer.Close()
	var e raftpb.Entry
	if err := e.Unmarshal(v); err != nil {
		return 0, err
	}
	return e.Term, nil
}

// LastIndex implements raft.Storage.
func (l *Log) LastIndex() (uint64, error) { return l.lastIndex, nil }

// FirstIndex implements raft.Storage.
func (l *Log) FirstIndex() (uint64, error) { return l.truncIndex + 1, nil }

// Snapshot implements raft.Storage.
func (l *Log) Snapshot() (raftpb.Snapshot, error) { return l.snapshot() }

// HardState returns the last hard state written.
func (l *Log) HardState() raftpb.HardState { return l.hardState }

// TruncIndex is the last index no longer in the log.
func (l *Log) TruncIndex() uint64 { return l.truncIndex }

// Append writes entries into b, replacing any conflicting suffix, and
// moves the in-memory view: the caller must commit b before raft next
// reads the log.
func (l *Log) Append(b *pebble.Batch, ents []raftpb.Entry) error {
	if len(ents) == 0 {
		return nil
	}
	first, last := ents[0].Index, ents[len(ents)-1]
	if first <= l.truncIndex {
		return fmt.Errorf("raftlog: range %d: append at %d into truncated log (trunc %d)", l.rangeID, first, l.truncIndex)
	}
	for i := range ents {
		data, err := ents[i].Marshal()
		if err != nil {
			return err
		}
		if err := b.Set(keys.RaftLogKey(l.rangeID, ents[i].Index), data, nil); err != nil {
			return err
		}
	}
	if last.Index < l.lastIndex {
		// Entries past the new last index belong to a losing leader's term.
		if err := b.DeleteRange(keys.RaftLogKey(l.rangeID, last.Index+1), keys.RaftLogKey(l.rangeID, l.lastIndex+1), nil); err != nil {
			return err
		}
	}
	l.lastIndex, l.lastTerm = last.Index, last.Term
	return nil
}

// Position returns a range's hard state and the index and term of the
// last entry of its log as stored in db; found is false when the range
// has no log state there.
func Position(db *pebble.DB, id keys.RangeID) (hs raftpb.HardState, lastIndex, lastTerm uint64, found bool, err error) {
	if _, closer, err := db.Get(keys.TruncatedStateKey(id)); errors.Is(err, pebble.ErrNotFound) {
		return hs, 0, 0, false, nil
	} else if err != nil {
		return hs, 0, 0, false, err
	} else {
		closer.Close()
	}
	l, err := Load(db, id, raftpb.ConfState{}, nil)
	if err != nil {
		return hs, 0, 0, false, err
	}
	return l.hardState, l.lastIndex, l.lastTerm, true, nil
}

// FloorTerm raises the hard state to term, with this node's vote in it
// (self), unless it is past term already or has voted in it. A replica
// whose range ID this node held before uses it (replica.Open): Raft IDs
// are node IDs, so the earlier replica may have voted in that term, and
// raft must not vote in it again. Only memory changes; the next hard
// state raft persists carries it, and until then the tombstone it came
// from raises it again on every load.
func (l *Log) FloorTerm(term, self uint64) {
	if hs := l.hardState; hs.Term < term || hs.Term == term && hs.Vote == 0 {
		l.hardState = raftpb.HardState{Term: term, Vote: self, Commit: hs.Commit}
	}
}

// SetHardState writes hs into b.
func (l *Log) SetHardState(b *pebble.Batch, hs raftpb.HardState) error {
	l.hardState = hs
	return setProto(b, keys.HardStateKey(l.rangeID), &hs)
}

// ApplySnapshot resets the log to start after the snapshot (index, term)
// and records its configuration.
func (l *Log) ApplySnapshot(b *pebble.Batch, meta raftpb.SnapshotMetadata) error {
	if err := b.DeleteRange(keys.RaftLogKey(l.rangeID, 0), keys.RaftLogKey(l.rangeID, ^uint64(0)), nil); err != nil {
		return err
	}
	if err := b.Set(keys.TruncatedStateKey(l.rangeID), truncVal(meta.Index, meta.Term), nil); err != nil {
		return err
	}
	l.truncIndex, l.truncTerm = meta.Index, meta.Term
	l.lastIndex, l.lastTerm = meta.Index, meta.Term
	l.confState = meta.ConfState
	if l.hardState.Commit < meta.Index {
		l.hardState.Commit = meta.Index
	}
	return nil
}

// SetConfState records the applied configuration (InitialState reports it
// on restart via the range's applied state; this keeps it current).
func (l *Log) SetConfState(cs raftpb.ConfState) { l.confState = cs }

// Truncate drops entries up to and including index, which must be applied.
func (l *Log) Truncate(b *pebble.Batch, index uint64) error {
	if index <= l.truncIndex || index > l.lastIndex {
		return nil
	}
	term, err := l.Term(index)
	if err != nil {
		return err
	}
	if err := b.DeleteRange(keys.RaftLogKey(l.rangeID, 0), keys.RaftLogKey(l.rangeID, index+1), nil); err != nil {
		return err
	}
	if err := b.Set(keys.TruncatedStateKey(l.rangeID), truncVal(index, term), nil); err != nil {
		return err
	}
	l.truncIndex, l.truncTerm = index, term
	return nil
}

type marshaler interface {
	Marshal() ([]byte, error)
	Unmarshal([]byte) error
}

func getProto(db *pebble.DB, key []byte, m marshaler) error {
	v, closer, err := db.Get(key)
	if err == pebble.ErrNotFound {
		return nil
	}
	if err != nil {
		return err
	}
	defer closer.Close()
	return m.Unmarshal(v)
}

func setProto(b *pebble.Batch, key []byte, m marshaler) error {
	data, err := m.Marshal()
	if err != nil {
		return err
	}
	return b.Set(key, data, nil)
}
