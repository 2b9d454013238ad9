// Goal: the pieces a gap-free watch rests on. A Position is a step
// function that only rises and round-trips through its token; the hub
// delivers matching events in order and ends (never blocks on) a watcher
// whose buffer is full or whose replica was reset; a replay returns the
// retained changes after a Position in version order, and refuses
// (ErrCompacted) when a key's history lost a change after the Position.
// Method: table tests, rapid properties against a map model, a fuzz
// target for the token decoder, and Pebble (on its in-memory filesystem)
// for the replay.
package watch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"pgregory.net/rapid"

	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/storage"
)

// TestPositionModel: Floor after any sequence of Advances equals a
// per-key model's max, and Encode/DecodePosition round-trip.
func TestPositionModel(t *testing.T) {
	universe := [][]byte{nil, []byte("a"), []byte("b"), []byte("b\x00"), []byte("c"), []byte("m"), []byte("z")}
	rapid.Check(t, func(t *rapid.T) {
		p := NewPosition(rapid.Uint64Range(0, 5).Draw(t, "v0"))
		model := map[string]uint64{}
		for _, k := range universe {
			model[string(k)] = p.Floor(k)
		}
		for i := rapid.IntRange(0, 20).Draw(t, "n"); i > 0; i-- {
			s := rapid.SampledFrom(universe).Draw(t, "start")
			e := rapid.SampledFrom(universe).Draw(t, "end")
			if len(e) > 0 && bytes.Compare(e, s) <= 0 {
				continue
			}
			v := rapid.Uint64Range(0, 20).Draw(t, "v")
			p.Advance(s, e, v)
			for _, k := range universe {
				if bytes.Compare(k, s) >= 0 && (len(e) == 0 || bytes.Compare(k, e) < 0) && model[string(k)] < v {
					model[string(k)] = v
				}
			}
		}
		q, err := DecodePosition(p.Encode())
		if err != nil {
			t.Fatalf("decode own token: %v", err)
		}
		for _, k := range universe {
			if got := p.Floor(k); got != model[string(k)] {
				t.Fatalf("Floor(%q) = %d, model %d", k, got, model[string(k)])
			}
			if got := q.Floor(k); got != model[string(k)] {
				t.Fatalf("decoded Floor(%q) = %d, model %d", k, got, model[string(k)])
			}
		}
	})
}

// TestPositionSplice: after any sequence of Advances and Splices, Floor
// equals a per-key model where a Splice copies the source's floors on its
// keys only, and the result has the canonical form (its token
// round-trips, no two neighbouring spans share a version).
func TestPositionSplice(t *testing.T) {
	universe := [][]byte{nil, []byte("a"), []byte("b"), []byte("b\x00"), []byte("c"), []byte("m"), []byte("z")}
	randPos := func(t *rapid.T, label string) Position {
		p := NewPosition(rapid.Uint64Range(0, 5).Draw(t, label+"v0"))
		for i := rapid.IntRange(0, 6).Draw(t, label+"n"); i > 0; i-- {
			s := rapid.SampledFrom(universe).Draw(t, label+"start")
			e := rapid.SampledFrom(universe).Draw(t, label+"end")
			if len(e) > 0 && bytes.Compare(e, s) <= 0 {
				continue
			}
			p.Advance(s, e, rapid.Uint64Range(0, 20).Draw(t, label+"v"))
		}
		return p
	}
	rapid.Check(t, func(t *rapid.T) {
		p := randPos(t, "p")
		model := map[string]uint64{}
		for _, k := range universe {
			model[string(k)] = p.Floor(k)
		}
		for i := rapid.IntRange(0, 8).Draw(t, "n"); i > 0; i-- {
			src := randPos(t, "src")
			s := rapid.SampledFrom(universe).Draw(t, "start")
			e := rapid.SampledFrom(universe).Draw(t, "end")
			if len(e) > 0 && bytes.Compare(e, s) <= 0 {
				continue
			}
			p.Splice(src, s, e)
			for _, k := range universe {
				if bytes.Compare(k, s) >= 0 && (len(e) == 0 || bytes.Compare(k, e) < 0) {
					model[string(k)] = src.Floor(k)
				}
			}
			for j := 1; j < len(p.spans); j++ {
				if p.spans[j].Version == p.spans[j-1].Version || bytes.Compare(p.spans[j].Start, p.spans[j-1].Start) <= 0 {
					t.Fatalf("not canonical: %+v", p.spans)
				}
			}
		}
		if _, err := DecodePosition(p.Encode()); err != nil {
			t.Fatalf("decode own token: %v", err)
		}
		for _, k := range universe {
			if got := p.Floor(k); got != model[string(k)] {
				t.Fatalf("Floor(%q) = %d, model %d", k, got, model[string(k)])
			}
		}
	})
}

func FuzzDecodePosition(f *testing.F) {
	p := NewPosition(7)
	p.Advance([]byte("k"), []byte("m"), 9)
	f.Add(p.Encode())
	f.Add("")
	f.Add("AQA")
	f.Fuzz(func(t *testing.T, tok string) {
		p, err := DecodePosition(tok)
		if err != nil {
			return
		}
		if again := p.Encode(); again != tok {
			t.Fatalf("token %q re-encodes to %q", tok, again)
		}
		_ = p.Floor([]byte("x"))
	})
}

func ev(table keys.TableID, key string, v uint64) Event {
	return Event{Table: table, Key: []byte(key), Version: v, Change: storage.Change{Kind: storage.ChangePut, Seq: v, Value: []byte("x")}}
}

func TestHubFilterOrderOverflowReset(t *testing.T) {
	h := NewHub()
	pre := h.Subscribe(Filter{Table: 1, Key: []byte("a/"), Prefix: true}, 3)
	one := h.Subscribe(Filter{Table: 1, Key: []byte("a/1")}, 10)
	other := h.Subscribe(Filter{Table: 2, Key: nil, Prefix: true}, 10)
	h.Publish([]Event{ev(1, "a/1", 1), ev(1, "b", 2), ev(1, "a/2", 3), ev(2, "a/1", 4)})
	got := func(s *Sub) (out []uint64) {
		for {
			select {
			case e := <-s.Events():
				out = append(out, e.Version)
			default:
				return out
			}
		}
	}
	if g := got(pre); fmt.Sprint(g) != "[1 3]" {
		t.Fatalf("prefix watcher got %v, want [1 3]", g)
	}
	if g := got(one); fmt.Sprint(g) != "[1]" {
		t.Fatalf("key watcher got %v, want [1]", g)
	}
	if g := got(other); fmt.Sprint(g) != "[4]" {
		t.Fatalf("table-2 watcher got %v, want [4]", g)
	}
	// Four events into a buffer of three: the watcher is ended, the
	// publisher never waits.
	done := make(chan struct{})
	go func() {
		h.Publish([]Event{ev(1, "a/1", 5), ev(1, "a/1", 6), ev(1, "a/1", 7), ev(1, "a/1", 8)})
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Publish blocked on a full watcher")
	}
	<-pre.Done()
	if !errors.Is(pre.Err(), ErrOverflow) {
		t.Fatalf("full watcher ended with %v, want ErrOverflow", pre.Err())
	}
	if g := got(one); fmt.Sprint(g) != "[5 6 7 8]" {
		t.Fatalf("key watcher got %v after the overflow of another", g)
	}
	// A snapshot of [a/0, a/5) of table 1 resets the key watcher only.
	h.Reset(1, []byte("a/0"), []byte("a/5"))
	<-one.Done()
	if !errors.Is(one.Err(), ErrReset) {
		t.Fatalf("reset watcher ended with %v", one.Err())
	}
	if other.Err() != nil {
		t.Fatalf("watcher of another table ended: %v", other.Err())
	}
	other.Close()
	if h.Watchers() != 0 {
		t.Fatalf("%d watchers left", h.Watchers())
	}
}

// history writes changes into a fresh Pebble the way replicas do.
type history struct {
	db   *pebble.DB
	prev map[string]uint64
}

func newHistory(t *testing.T) *history {
	db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem(), Logger: quiet{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &history{db: db, prev: map[string]uint64{}}
}

// put records a change of key at v; trimmed drops it from storage (as a
// replica's trimming would) while later changes still link to it.
func (h *history) put(t *testing.T, key string, v uint64, kind storage.ChangeKind, trimmed bool) {
	c := storage.Change{Kind: kind, Seq: v, Prev: h.prev[key], PrevSeq: h.prev[key]}
	if kind == storage.ChangePut {
		c.Value = []byte(fmt.Sprintf("%s@%d", key, v))
	}
	h.prev[key] = v
	if trimmed {
		return
	}
	if err := h.db.Set(keys.HistoryKey(1, []byte(key), v), storage.EncodeChange(c), pebble.NoSync); err != nil {
		t.Fatal(err)
	}
}

func versions(evs []Event) string {
	var b bytes.Buffer
	for _, e := range evs {
		fmt.Fprintf(&b, "%s@%d ", e.Key, e.Version)
	}
	return b.String()
}

func TestReplay(t *testing.T) {
	h := newHistory(t)
	h.put(t, "a", 10, storage.ChangePut, false)
	h.put(t, "b", 11, storage.ChangePut, false)
	h.put(t, "a", 12, storage.ChangePut, false)
	h.put(t, "ab", 13, storage.ChangePut, false)
	h.put(t, "b", 14, storage.ChangeDelete, false)
	h.put(t, "c", 5, storage.ChangePut, true) // trimmed
	h.put(t, "c", 20, storage.ChangePut, false)
	f := Filter{Table: 1, Key: []byte("a"), Prefix: true}
	for _, tc := range []struct {
		f    Filter
		pos  Position
		want string
	}{
		{f, NewPosition(0), "a@10 a@12 ab@13 "},
		{f, NewPosition(10), "a@12 ab@13 "},
		{Filter{Table: 1, Key: []byte("a")}, NewPosition(0), "a@10 a@12 "},
		{Filter{Table: 1, Prefix: true}, NewPosition(5), "a@10 b@11 a@12 ab@13 b@14 c@20 "},
		{Filter{Table: 1, Prefix: true}, NewPosition(20), ""},
	} {
		got, err := Replay(h.db, tc.f, tc.pos, 100)
		if err != nil {
			t.Fatalf("replay %+v after %d: %v", tc.f, tc.pos.Min(), err)
		}
		if versions(got) != tc.want {
			t.Fatalf("replay %+v after %d: %q, want %q", tc.f, tc.pos.Min(), versions(got), tc.want)
		}
	}
	// Per-span positions: keys below "b" were delivered up to 12, the
	// others up to 5.
	p := NewPosition(5)
	p.Advance(nil, []byte("b"), 12)
	got, err := Replay(h.db, Filter{Table: 1, Prefix: true}, p, 100)
	if err != nil || versions(got) != "b@11 ab@13 b@14 c@20 " {
		t.Fatalf("replay with spans: %q %v", versions(got), err)
	}
	// c's change at 5 is gone: a resume from before it cannot be complete.
	if _, err := Replay(h.db, Filter{Table: 1, Key: []byte("c")}, NewPosition(4), 100); !errors.Is(err, ErrCompacted) {
		t.Fatalf("replay over a trimmed change: %v, want ErrCompacted", err)
	}
	if _, err := Replay(h.db, Filter{Table: 1, Key: []byte("c")}, NewPosition(5), 100); err != nil {
		t.Fatalf("replay right after the trimmed change: %v", err)
	}
	if _, err := Replay(h.db, Filter{Table: 1, Prefix: true}, NewPosition(0), 3); !errors.Is(err, ErrCompacted) {
		t.Fatalf("replay over the limit: %v, want ErrCompacted", err)
	}
}

// TestRunReplayThenLive: Run replays history, reports the catch-up, then
// streams live events, skipping those the replay already sent, and keeps
// the Position such that a resume from any delivered token repeats
// nothing and misses nothing.
func TestRunReplayThenLive(t *testing.T) {
	h := newHistory(t)
	hub := NewHub()
	for v := uint64(1); v <= 5; v++ {
		h.put(t, fmt.Sprintf("k%d", v%2), v, storage.ChangePut, false)
	}
	src := Source{DB: h.db, Hub: hub,
		SpanOf: func([]byte) ([]byte, []byte, bool) { return nil, nil, true },
		Now:    func() []RangeVersion { return []RangeVersion{{Version: 5}} }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type got struct {
		evs []Event
		pos Position
	}
	ch := make(chan got, 100)
	errc := make(chan error, 1)
	go func() {
		errc <- Run(ctx, src, Filter{Table: 1, Prefix: true}, Start{AfterVersion: 2}, Options{MaxBatch: 2}, func(evs []Event, after []Position) error {
			if len(after) != max(len(evs), 1) {
				t.Errorf("%d positions for %d events", len(after), len(evs))
			}
			ch <- got{append([]Event(nil), evs...), after[len(after)-1]}
			return nil
		})
	}()
	var all []Event
	var tokens []Position
	for synced := false; !synced; {
		g := <-ch
		if len(g.evs) == 0 {
			synced = true
		}
		all = append(all, g.evs...)
		tokens = append(tokens, g.pos)
	}
	if versions(all) != "k1@3 k0@4 k1@5 " {
		t.Fatalf("replay sent %q", versions(all))
	}
	// Live: 5 again (already replayed: skipped), then 6 and 7.
	live := []Event{ev(1, "k1", 5), ev(1, "k0", 6), ev(1, "k1", 7)}
	for _, e := range live[1:] {
		h.put(t, string(e.Key), e.Version, storage.ChangePut, false)
	}
	hub.Publish(live)
	for len(all) < 5 {
		g := <-ch
		all = append(all, g.evs...)
		tokens = append(tokens, g.pos)
	}
	if versions(all) != "k1@3 k0@4 k1@5 k0@6 k1@7 " {
		t.Fatalf("stream %q", versions(all))
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run ended with %v", err)
	}
	// A resume from the token after the replay of k1@3 replays exactly
	// the rest.
	p, err := DecodePosition(tokens[0].Encode())
	if err != nil {
		t.Fatal(err)
	}
	rest, err := Replay(h.db, Filter{Table: 1, Prefix: true}, p, 100)
	if err != nil {
		t.Fatal(err)
	}
	sort.SliceStable(rest, func(i, j int) bool { return rest[i].Version < rest[j].Version })
	if versions(rest) != "k1@5 k0@6 k1@7 " {
		t.Fatalf("resume from the first token replays %q", versions(rest))
	}
}

type quiet struct{}

func (quiet) Infof(string, ...interface{})  {}
func (quiet) Errorf(string, ...interface{}) {}
func (quiet) Fatalf(format string, args ...interface{}) {
	panic(fmt.Sprintf(format, args...))
}

func TestHistoryAndAt(t *testing.T) {
	h := newHistory(t)
	h.put(t, "a", 10, storage.ChangePut, true) // trimmed
	h.put(t, "a", 12, storage.ChangePut, false)
	h.put(t, "a", 14, storage.ChangeDelete, false)
	h.put(t, "a", 16, storage.ChangePut, false)
	h.put(t, "b", 20, storage.ChangePut, false)
	h.put(t, "b", 21, storage.ChangePut, false)
	evs, complete, err := History(h.db, 1, []byte("a"), 10)
	if err != nil || versions(evs) != "a@16 a@14 a@12 " || complete {
		t.Fatalf("history of a: %q complete=%v %v", versions(evs), complete, err)
	}
	evs, complete, err = History(h.db, 1, []byte("b"), 10)
	if err != nil || versions(evs) != "b@21 b@20 " || !complete {
		t.Fatalf("history of b: %q complete=%v %v", versions(evs), complete, err)
	}
	if evs, complete, _ = History(h.db, 1, []byte("b"), 1); versions(evs) != "b@21 " || complete {
		t.Fatalf("limited history of b: %q complete=%v", versions(evs), complete)
	}
	for _, tc := range []struct {
		key  string
		v    uint64
		want string // version of the put, or the error
	}{
		{"a", 12, "12"}, {"a", 13, "12"}, {"a", 14, "absent"}, {"a", 15, "absent"}, {"a", 16, "16"},
		{"a", ^uint64(0), "16"}, {"a", 11, "compacted"}, {"a", 5, "compacted"},
		{"b", 19, "absent"}, {"b", 20, "20"}, {"c", 30, "absent"},
	} {
		e, err := At(h.db, 1, []byte(tc.key), tc.v)
		got := fmt.Sprint(e.Version)
		switch {
		case errors.Is(err, ErrAbsentAt):
			got = "absent"
		case errors.Is(err, ErrCompacted):
			got = "compacted"
		case err != nil:
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("At(%s, %d) = %s, want %s", tc.key, tc.v, got, tc.want)
		}
	}
}

// TestLateTransactionWrite: a transaction's write keeps the version it
// reserved at prewrite (100) but is resolved after later writes of the
// range (101, 102), so its sequence number (103) follows theirs. A
// watcher that saw 101 and 102 still gets it, live and on a resume.
func TestLateTransactionWrite(t *testing.T) {
	h := newHistory(t)
	set := func(key string, v, seq uint64) Event {
		c := storage.Change{Kind: storage.ChangePut, Seq: seq, Value: []byte(key)}
		if err := h.db.Set(keys.HistoryKey(1, []byte(key), v), storage.EncodeChange(c), pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		return Event{Table: 1, Key: []byte(key), Version: v, Change: c}
	}
	set("b", 101, 101)
	set("c", 102, 102)
	late := set("a", 100, 103)
	p := NewPosition(102) // delivered b and c
	got, err := Replay(h.db, Filter{Table: 1, Prefix: true}, p, 10)
	if err != nil || versions(got) != "a@100 " {
		t.Fatalf("resume after 102: %q %v, want the late write", versions(got), err)
	}
	var batch []Event
	var after []Position
	batch, _ = appendLive(batch, after, &p, late)
	if len(batch) != 1 {
		t.Fatal("the live stream dropped the late write")
	}
}
