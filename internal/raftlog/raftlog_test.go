// Goal: check that raftlog.Log is a correct raft.Storage: Append replaces
// a conflicting suffix, Truncate and ApplySnapshot move the first index and
// turn reads below it into ErrCompacted (and above the last into
// ErrUnavailable), Entries honours maxSize but always returns at least one
// entry, Load after a reopen sees exactly what was committed, and one
// range's operations never touch a neighbouring range's log.
// Method: a rapid state-machine test against raft's own MemoryStorage as
// the model, on a real Pebble, plus table tests for edge cases the model
// does not express (errors where MemoryStorage panics).
package raftlog

import (
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"pgregory.net/rapid"

	"github.com/cairn-db/cairn/internal/keys"
)

func openDB(t testing.TB) *pebble.DB {
	t.Helper()
	db, err := pebble.Open(t.TempDir(), &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// tb is the part of testing.TB the helpers need; *rapid.T has it too.
type tb interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// commit commits b without fsync: the tests reopen Pebble cleanly but never
// crash it, and fsyncs would dominate the run time.
func commit(t tb, b *pebble.Batch) {
	t.Helper()
	if err := b.Commit(pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	b.Close()
}

// newLog writes the initial state of range id (empty log truncated at
// index/term) and loads it.
func newLog(t tb, db *pebble.DB, id keys.RangeID, index, term uint64) *Log {
	t.Helper()
	b := db.NewBatch()
	if err := WriteInitial(b, id, index, term); err != nil {
		t.Fatal(err)
	}
	commit(t, b)
	l, err := Load(db, id, raftpb.ConfState{Voters: []uint64{1}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func ents(first, term uint64, n int, dataBytes int) []raftpb.Entry {
	out := make([]raftpb.Entry, n)
	for i := range out {
		out[i] = raftpb.Entry{Index: first + uint64(i), Term: term, Data: make([]byte, dataBytes)}
	}
	return out
}

func appendCommit(t tb, db *pebble.DB, l *Log, es []raftpb.Entry) {
	t.Helper()
	b := db.NewBatch()
	if err := l.Append(b, es); err != nil {
		t.Fatal(err)
	}
	commit(t, b)
}

func TestInitialState(t *testing.T) {
	db := openDB(t)
	l := newLog(t, db, 3, 10, 5)
	hs, cs, err := l.InitialState()
	if err != nil {
		t.Fatal(err)
	}
	if hs.Term != 5 || hs.Commit != 10 || hs.Vote != 0 {
		t.Errorf("hard state %+v, want term 5 commit 10", hs)
	}
	if !reflect.DeepEqual(cs.Voters, []uint64{1}) {
		t.Errorf("conf state %+v", cs)
	}
	first, _ := l.FirstIndex()
	last, _ := l.LastIndex()
	if first != 11 || last != 10 {
		t.Errorf("first, last = %d, %d; want 11, 10", first, last)
	}
	if term, err := l.Term(10); err != nil || term != 5 {
		t.Errorf("Term(10) = %d, %v; want 5", term, err)
	}
	if _, err := l.Term(9); !errors.Is(err, raft.ErrCompacted) {
		t.Errorf("Term(9): %v, want ErrCompacted", err)
	}
	if _, err := l.Term(11); !errors.Is(err, raft.ErrUnavailable) {
		t.Errorf("Term(11): %v, want ErrUnavailable", err)
	}
	if _, err := l.Entries(10, 11, 1<<20); !errors.Is(err, raft.ErrCompacted) {
		t.Errorf("Entries(10, 11): %v, want ErrCompacted", err)
	}
	if l.TruncIndex() != 10 {
		t.Errorf("TruncIndex = %d", l.TruncIndex())
	}
}

func TestLoadMissingTruncatedState(t *testing.T) {
	db := openDB(t)
	if _, err := Load(db, 9, raftpb.ConfState{}, nil); err == nil {
		t.Fatal("Load of a range without truncated state succeeded")
	}
}

func TestAppendConflictingSuffix(t *testing.T) {
	db := openDB(t)
	l := newLog(t, db, 1, 10, 5)
	appendCommit(t, db, l, ents(11, 5, 10, 8)) // 11..20 at term 5
	// A new leader at term 7 overwrites from 15 with a shorter log.
	appendCommit(t, db, l, ents(15, 7, 2, 8)) // 15, 16 at term 7
	if last, _ := l.LastIndex(); last != 16 {
		t.Fatalf("LastIndex = %d, want 16", last)
	}
	for i, want := range map[uint64]uint64{11: 5, 14: 5, 15: 7, 16: 7} {
		if got, err := l.Term(i); err != nil || got != want {
			t.Errorf("Term(%d) = %d, %v; want %d", i, got, err, want)
		}
	}
	if _, err := l.Term(17); !errors.Is(err, raft.ErrUnavailable) {
		t.Errorf("Term(17): %v, want ErrUnavailable", err)
	}
	// The deleted suffix must be gone from Pebble too: reload.
	l2, err := Load(db, 1, raftpb.ConfState{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if last, _ := l2.LastIndex(); last != 16 {
		t.Fatalf("after reload LastIndex = %d, want 16", last)
	}
	if term, _ := l2.Term(16); term != 7 {
		t.Fatalf("after reload Term(16) = %d, want 7", term)
	}
	// Appending past the old suffix again works and reads back.
	appendCommit(t, db, l, ents(17, 7, 3, 8))
	es, err := l.Entries(11, 20, 1<<20)
	if err != nil || len(es) != 9 {
		t.Fatalf("Entries(11, 20) = %d entries, %v", len(es), err)
	}
	for i, e := range es {
		if e.Index != 11+uint64(i) {
			t.Fatalf("entry %d has index %d", i, e.Index)
		}
	}
}

func TestAppendIntoTruncated(t *testing.T) {
	db := openDB(t)
	l := newLog(t, db, 1, 10, 5)
	b := db.NewBatch()
	defer b.Close()
	if err := l.Append(b, ents(10, 5, 1, 0)); err == nil {
		t.Fatal("Append at the truncated index succeeded")
	}
	if err := l.Append(b, nil); err != nil {
		t.Fatalf("empty Append: %v", err)
	}
}

func TestEntriesMaxSize(t *testing.T) {
	db := openDB(t)
	l := newLog(t, db, 1, 10, 5)
	es := ents(11, 5, 10, 100)
	appendCommit(t, db, l, es)
	one := uint64(es[0].Size())
	for _, tc := range []struct {
		maxSize uint64
		want    int
	}{
		{0, 1}, // always at least one entry
		{1, 1},
		{one - 1, 1},
		{one, 1},
		{2*one - 1, 1},
		{2 * one, 2},
		{3*one + 1, 3},
		{10 * one, 10},
		{1 << 30, 10},
	} {
		got, err := l.Entries(11, 21, tc.maxSize)
		if err != nil {
			t.Fatalf("maxSize %d: %v", tc.maxSize, err)
		}
		if len(got) != tc.want {
			t.Errorf("Entries(11, 21, %d) returned %d entries, want %d", tc.maxSize, len(got), tc.want)
		}
	}
	// hi bounds the result regardless of maxSize.
	if got, err := l.Entries(12, 14, 1<<30); err != nil || len(got) != 2 || got[0].Index != 12 {
		t.Errorf("Entries(12, 14) = %v, %v", got, err)
	}
	// A single entry bigger than maxSize is still returned.
	big := ents(21, 5, 1, 10_000)
	appendCommit(t, db, l, big)
	if got, err := l.Entries(21, 22, 10); err != nil || len(got) != 1 {
		t.Errorf("Entries of one big entry = %d, %v", len(got), err)
	}
	// hi past the last index is an error (MemoryStorage panics).
	if _, err := l.Entries(11, 23, 1<<30); err == nil {
		t.Error("Entries past the last index succeeded")
	}
}

// TestEntriesDetectsHole: a missing entry in Pebble is reported, not
// silently skipped (raft would otherwise send a gapped log).
func TestEntriesDetectsHole(t *testing.T) {
	db := openDB(t)
	l := newLog(t, db, 1, 10, 5)
	appendCommit(t, db, l, ents(11, 5, 5, 8))
	if err := db.Delete(keys.RaftLogKey(1, 13), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if es, err := l.Entries(11, 16, 1<<30); err == nil {
		t.Fatalf("Entries over a hole returned %d entries", len(es))
	}
	if es, err := l.Entries(11, 13, 1<<30); err != nil || len(es) != 2 {
		t.Fatalf("Entries before the hole = %d, %v", len(es), err)
	}
	if err := db.Delete(keys.RaftLogKey(1, 15), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if es, err := l.Entries(14, 16, 1<<30); err == nil {
		t.Fatalf("Entries with a missing tail returned %d entries", len(es))
	}
}

func TestTruncate(t *testing.T) {
	db := openDB(t)
	l := newLog(t, db, 1, 10, 5)
	appendCommit(t, db, l, ents(11, 6, 10, 8))
	b := db.NewBatch()
	if err := l.Truncate(b, 15); err != nil {
		t.Fatal(err)
	}
	commit(t, b)
	if first, _ := l.FirstIndex(); first != 16 {
		t.Fatalf("FirstIndex = %d, want 16", first)
	}
	if term, err := l.Term(15); err != nil || term != 6 {
		t.Fatalf("Term(15) = %d, %v; want the truncated term 6", term, err)
	}
	if _, err := l.Term(14); !errors.Is(err, raft.ErrCompacted) {
		t.Fatalf("Term(14): %v, want ErrCompacted", err)
	}
	if _, err := l.Entries(15, 17, 1<<20); !errors.Is(err, raft.ErrCompacted) {
		t.Fatalf("Entries(15, 17): %v, want ErrCompacted", err)
	}
	if _, err := l.Term(21); !errors.Is(err, raft.ErrUnavailable) {
		t.Fatalf("Term(21): %v, want ErrUnavailable", err)
	}
	// The entries are gone from Pebble.
	if _, closer, err := db.Get(keys.RaftLogKey(1, 12)); err == nil {
		closer.Close()
		t.Fatal("truncated entry 12 still in Pebble")
	}
	// No-ops: at or below the truncated index, or past the last index.
	b = db.NewBatch()
	for _, idx := range []uint64{3, 15, 21, 100} {
		if err := l.Truncate(b, idx); err != nil {
			t.Fatalf("Truncate(%d): %v", idx, err)
		}
	}
	commit(t, b)
	if first, _ := l.FirstIndex(); first != 16 {
		t.Fatalf("no-op truncations moved FirstIndex to %d", first)
	}
	// Truncating everything keeps last index and term.
	b = db.NewBatch()
	if err := l.Truncate(b, 20); err != nil {
		t.Fatal(err)
	}
	commit(t, b)
	l2, err := Load(db, 1, raftpb.ConfState{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, lg := range []*Log{l, l2} {
		first, _ := lg.FirstIndex()
		last, _ := lg.LastIndex()
		term, err := lg.Term(20)
		if first != 21 || last != 20 || term != 6 || err != nil {
			t.Fatalf("after truncating all: first %d last %d term(20) %d %v", first, last, term, err)
		}
	}
}

func TestApplySnapshot(t *testing.T) {
	db := openDB(t)
	l := newLog(t, db, 1, 10, 5)
	appendCommit(t, db, l, ents(11, 5, 10, 8))
	b := db.NewBatch()
	if err := l.SetHardState(b, raftpb.HardState{Term: 5, Vote: 2, Commit: 12}); err != nil {
		t.Fatal(err)
	}
	commit(t, b)

	// A snapshot from a later term, in the middle of our log: the whole log
	// goes (it may conflict), the snapshot's position becomes the base.
	meta := raftpb.SnapshotMetadata{Index: 15, Term: 8, ConfState: raftpb.ConfState{Voters: []uint64{1, 2, 3}}}
	b = db.NewBatch()
	if err := l.ApplySnapshot(b, meta); err != nil {
		t.Fatal(err)
	}
	commit(t, b)
	check := func(name string, lg *Log) {
		t.Helper()
		first, _ := lg.FirstIndex()
		last, _ := lg.LastIndex()
		if first != 16 || last != 15 {
			t.Errorf("%s: first %d last %d, want 16, 15", name, first, last)
		}
		if term, err := lg.Term(15); err != nil || term != 8 {
			t.Errorf("%s: Term(15) = %d, %v; want 8", name, term, err)
		}
		if _, err := lg.Term(14); !errors.Is(err, raft.ErrCompacted) {
			t.Errorf("%s: Term(14): %v, want ErrCompacted", name, err)
		}
		if _, err := lg.Term(16); !errors.Is(err, raft.ErrUnavailable) {
			t.Errorf("%s: Term(16): %v, want ErrUnavailable", name, err)
		}
		_, cs, _ := lg.InitialState()
		if !reflect.DeepEqual(cs.Voters, []uint64{1, 2, 3}) {
			t.Errorf("%s: conf state %+v", name, cs)
		}
	}
	check("in memory", l)
	if hs := l.HardState(); hs.Commit != 15 {
		t.Errorf("commit after snapshot = %d, want 15", hs.Commit)
	}
	// On reload the conf state comes from the caller (the applied state).
	l2, err := Load(db, 1, meta.ConfState, nil)
	if err != nil {
		t.Fatal(err)
	}
	check("reloaded", l2)
	// New entries go after the snapshot.
	appendCommit(t, db, l, ents(16, 8, 2, 8))
	if es, err := l.Entries(16, 18, 1<<20); err != nil || len(es) != 2 || es[1].Term != 8 {
		t.Fatalf("entries after snapshot: %v, %v", es, err)
	}

	// A snapshot beyond our last index (we were far behind).
	b = db.NewBatch()
	if err := l.ApplySnapshot(b, raftpb.SnapshotMetadata{Index: 100, Term: 9}); err != nil {
		t.Fatal(err)
	}
	commit(t, b)
	if first, _ := l.FirstIndex(); first != 101 {
		t.Fatalf("FirstIndex after far snapshot = %d", first)
	}
	l3, err := Load(db, 1, raftpb.ConfState{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if last, _ := l3.LastIndex(); last != 100 {
		t.Fatalf("reloaded LastIndex after far snapshot = %d, want 100", last)
	}
}

func TestSnapshotDelegates(t *testing.T) {
	db := openDB(t)
	b := db.NewBatch()
	if err := WriteInitial(b, 1, 10, 5); err != nil {
		t.Fatal(err)
	}
	commit(t, b)
	want := raftpb.Snapshot{Data: []byte("x"), Metadata: raftpb.SnapshotMetadata{Index: 10, Term: 5}}
	l, err := Load(db, 1, raftpb.ConfState{}, func() (raftpb.Snapshot, error) { return want, nil })
	if err != nil {
		t.Fatal(err)
	}
	if got, err := l.Snapshot(); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Snapshot = %v, %v", got, err)
	}
}

// logModel drives a Log and a raft.MemoryStorage with the same operations
// and compares everything raft can observe after each step.
type logModel struct {
	db        *pebble.DB
	id        keys.RangeID
	log       *Log
	mem       *raft.MemoryStorage
	neighbors []*Log // ranges id-1 and id+1, which must never change
	nbEnts    [][]raftpb.Entry
}

func (m *logModel) first() uint64 { f, _ := m.mem.FirstIndex(); return f }
func (m *logModel) last() uint64  { l, _ := m.mem.LastIndex(); return l }

func (m *logModel) termAt(t *rapid.T, i uint64) uint64 {
	term, err := m.mem.Term(i)
	if err != nil {
		t.Fatalf("model Term(%d): %v", i, err)
	}
	return term
}

func (m *logModel) append(t *rapid.T) {
	first, last := m.first(), m.last()
	start := rapid.Uint64Range(first, last+1).Draw(t, "start")
	n := rapid.IntRange(1, 6).Draw(t, "n")
	// Terms never decrease along a log: start at or above the term of the
	// entry before the append.
	term := m.termAt(t, start-1) + rapid.Uint64Range(0, 2).Draw(t, "termBump")
	es := make([]raftpb.Entry, n)
	for i := range es {
		if rapid.IntRange(0, 4).Draw(t, "bump") == 0 {
			term++
		}
		es[i] = raftpb.Entry{Index: start + uint64(i), Term: term, Data: make([]byte, rapid.IntRange(0, 64).Draw(t, "dataBytes"))}
		if len(es[i].Data) > 0 {
			es[i].Data[0] = byte(i)
		}
	}
	b := m.db.NewBatch()
	if err := m.log.Append(b, es); err != nil {
		t.Fatalf("Append at %d: %v", start, err)
	}
	commit(t, b)
	if err := m.mem.Append(es); err != nil {
		t.Fatal(err)
	}
}

func (m *logModel) truncate(t *rapid.T) {
	first, last := m.first(), m.last()
	idx := rapid.Uint64Range(first-2, last+2).Draw(t, "index")
	b := m.db.NewBatch()
	if err := m.log.Truncate(b, idx); err != nil {
		t.Fatalf("Truncate(%d): %v", idx, err)
	}
	commit(t, b)
	if idx >= first && idx <= last {
		if err := m.mem.Compact(idx); err != nil {
			t.Fatal(err)
		}
	}
}

func (m *logModel) applySnapshot(t *rapid.T) {
	// Raft restores only snapshots above its commit index.
	first, last := m.first(), m.last()
	hs, _, _ := m.mem.InitialState()
	idx := rapid.Uint64Range(max(first, hs.Commit+1), max(first, hs.Commit+1, last)+5).Draw(t, "index")
	term := m.termAt(t, first-1) + rapid.Uint64Range(0, 3).Draw(t, "termBump")
	if idx <= last {
		// A snapshot never has a term below the entry it replaces.
		if lt := m.termAt(t, idx); term < lt {
			term = lt
		}
	}
	voters := rapid.SliceOfN(rapid.Uint64Range(1, 5), 1, 3).Draw(t, "voters")
	meta := raftpb.SnapshotMetadata{Index: idx, Term: term, ConfState: raftpb.ConfState{Voters: voters}}
	b := m.db.NewBatch()
	if err := m.log.ApplySnapshot(b, meta); err != nil {
		t.Fatal(err)
	}
	// Raft's Ready after a snapshot carries a hard state with commit at
	// least the snapshot index; the log raises it in memory already.
	hs = m.log.HardState()
	if hs.Commit < idx {
		t.Fatalf("ApplySnapshot(%d) left commit at %d", idx, hs.Commit)
	}
	if err := m.log.SetHardState(b, hs); err != nil {
		t.Fatal(err)
	}
	commit(t, b)
	if err := m.mem.ApplySnapshot(raftpb.Snapshot{Metadata: meta}); err != nil {
		t.Fatal(err)
	}
	if err := m.mem.SetHardState(hs); err != nil {
		t.Fatal(err)
	}
}

func (m *logModel) setHardState(t *rapid.T) {
	hs, _, _ := m.mem.InitialState()
	hs.Term += rapid.Uint64Range(0, 2).Draw(t, "termBump")
	hs.Vote = rapid.Uint64Range(0, 3).Draw(t, "vote")
	if last := m.last(); last > hs.Commit {
		hs.Commit = rapid.Uint64Range(hs.Commit, last).Draw(t, "commit")
	}
	b := m.db.NewBatch()
	if err := m.log.SetHardState(b, hs); err != nil {
		t.Fatal(err)
	}
	commit(t, b)
	if err := m.mem.SetHardState(hs); err != nil {
		t.Fatal(err)
	}
}

func (m *logModel) reopen(t *rapid.T) {
	_, cs, _ := m.mem.InitialState()
	l, err := Load(m.db, m.id, cs, nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	m.log = l
}

func (m *logModel) entries(t *rapid.T) {
	first, last := m.first(), m.last()
	if first > last {
		return
	}
	lo := rapid.Uint64Range(first, last).Draw(t, "lo")
	hi := rapid.Uint64Range(lo+1, last+1).Draw(t, "hi")
	maxSize := rapid.OneOf(rapid.Uint64Range(0, 200), rapid.Just(uint64(1<<30))).Draw(t, "maxSize")
	got, err := m.log.Entries(lo, hi, maxSize)
	want, werr := m.mem.Entries(lo, hi, maxSize)
	if err != nil || werr != nil {
		t.Fatalf("Entries(%d, %d, %d): %v (model %v)", lo, hi, maxSize, err, werr)
	}
	if len(got) == 0 {
		t.Fatalf("Entries(%d, %d, %d) returned nothing", lo, hi, maxSize)
	}
	if !entriesEqual(got, want) {
		t.Fatalf("Entries(%d, %d, %d) = %s, model %s", lo, hi, maxSize, describe(got), describe(want))
	}
}

func (m *logModel) check(t *rapid.T) {
	lf, _ := m.log.FirstIndex()
	ll, _ := m.log.LastIndex()
	if lf != m.first() || ll != m.last() {
		t.Fatalf("first/last = %d/%d, model %d/%d", lf, ll, m.first(), m.last())
	}
	for i := lf - 2; i <= ll+2; i++ {
		got, err := m.log.Term(i)
		want, werr := m.mem.Term(i)
		if got != want || !errors.Is(err, werr) || (err == nil) != (werr == nil) {
			t.Fatalf("Term(%d) = %d, %v; model %d, %v", i, got, err, want, werr)
		}
	}
	if lf <= ll {
		got, err := m.log.Entries(lf, ll+1, 1<<30)
		want, _ := m.mem.Entries(lf, ll+1, 1<<30)
		if err != nil || !entriesEqual(got, want) {
			t.Fatalf("all entries = %s, %v; model %s", describe(got), err, describe(want))
		}
	}
	if _, err := m.log.Entries(lf-1, ll+1, 1<<30); !errors.Is(err, raft.ErrCompacted) {
		t.Fatalf("Entries(first-1, ...): %v, want ErrCompacted", err)
	}
	hs, cs, _ := m.log.InitialState()
	whs, wcs, _ := m.mem.InitialState()
	if !reflect.DeepEqual(hs, whs) {
		t.Fatalf("hard state %+v, model %+v", hs, whs)
	}
	if !reflect.DeepEqual(cs.Voters, wcs.Voters) {
		t.Fatalf("conf state %+v, model %+v", cs, wcs)
	}
	if m.log.TruncIndex() != lf-1 {
		t.Fatalf("TruncIndex %d, first index %d", m.log.TruncIndex(), lf)
	}
	for i, nb := range m.neighbors {
		got, err := nb.Entries(11, 11+uint64(len(m.nbEnts[i])), 1<<30)
		if err != nil || !entriesEqual(got, m.nbEnts[i]) {
			t.Fatalf("neighbouring range's log changed: %s, %v", describe(got), err)
		}
	}
}

func entriesEqual(a, b []raftpb.Entry) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Index != b[i].Index || a[i].Term != b[i].Term || a[i].Type != b[i].Type || string(a[i].Data) != string(b[i].Data) {
			return false
		}
	}
	return true
}

func describe(es []raftpb.Entry) string {
	s := "["
	for i, e := range es {
		if i > 0 {
			s += " "
		}
		s += fmt.Sprintf("%d/%d(%dB)", e.Index, e.Term, len(e.Data))
	}
	return s + "]"
}

func TestLogMatchesMemoryStorage(t *testing.T) {
	db := openDB(t)
	var nextID keys.RangeID = 100
	rapid.Check(t, func(t *rapid.T) {
		// Each run uses fresh ranges in the shared Pebble: id in the middle,
		// neighbours id-1 and id+1 with logs that must stay untouched.
		id := nextID + 1
		nextID += 3
		m := &logModel{db: db, id: id, mem: raft.NewMemoryStorage()}
		for _, nid := range []keys.RangeID{id - 1, id + 1} {
			nb := newLog(t, db, nid, 10, 5)
			es := ents(11, 5, 3, 4)
			appendCommit(t, db, nb, es)
			m.neighbors = append(m.neighbors, nb)
			m.nbEnts = append(m.nbEnts, es)
		}
		m.log = newLog(t, db, id, 10, 5)
		if err := m.mem.ApplySnapshot(raftpb.Snapshot{Metadata: raftpb.SnapshotMetadata{
			Index: 10, Term: 5, ConfState: raftpb.ConfState{Voters: []uint64{1}},
		}}); err != nil {
			t.Fatal(err)
		}
		if err := m.mem.SetHardState(raftpb.HardState{Term: 5, Commit: 10}); err != nil {
			t.Fatal(err)
		}
		t.Repeat(map[string]func(*rapid.T){
			"append":        m.append,
			"truncate":      m.truncate,
			"applySnapshot": m.applySnapshot,
			"setHardState":  m.setHardState,
			"reopen":        m.reopen,
			"entries":       m.entries,
			"":              m.check,
		})
	})
}
