// Goal: a prefix watch whose ranges no single node holds is served as
// parts merged into one stream. The parts are cut at range boundaries
// into as few as the holders allow (this node's own where it can), and
// the merged stream delivers every change once, in each key's order, with
// resume tokens that continue every part exactly, from any node.
// Method: watchParts from given catalogs; the merge itself on the
// single-node environment of ttl_test.go, with the parts all local (the
// same code path as remote parts but for the transport, which the e2e
// test TestMergedWatchAcrossNodes covers).
package router

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/kv"
)

func TestWatchParts(t *testing.T) {
	rd := func(start, end string, replicas ...uint64) *cairnpb.RangeDescriptor {
		d := &cairnpb.RangeDescriptor{Start: []byte(start), Replicas: replicas}
		if end != "" {
			d.End = []byte(end)
		}
		return d
	}
	up := func(uint64) bool { return true }
	for _, tc := range []struct {
		name   string
		ranges []*cairnpb.RangeDescriptor
		lo, hi string // hi "": unbounded
		self   uint64
		up     func(uint64) bool
		want   string
		err    error
	}{
		{name: "one holder of all", ranges: []*cairnpb.RangeDescriptor{rd("", "m", 1, 2), rd("m", "", 2, 3)}, self: 4, up: up,
			want: `[""-"" n2]`},
		{name: "cut where no holder continues", ranges: []*cairnpb.RangeDescriptor{rd("", "f", 1), rd("f", "m", 2), rd("m", "", 2, 3)}, self: 4, up: up,
			want: `[""-"f" n1] ["f"-"" n2]`},
		{name: "prefix bounds", ranges: []*cairnpb.RangeDescriptor{rd("", "f", 1), rd("f", "m", 2), rd("m", "", 3)}, lo: "c", hi: "g", self: 4, up: up,
			want: `["c"-"f" n1] ["f"-"g" n2]`},
		{name: "this node's part stays here", ranges: []*cairnpb.RangeDescriptor{rd("", "f", 1, 2), rd("f", "m", 2), rd("m", "", 1, 2)}, self: 1, up: up,
			want: `[""-"f" n1] ["f"-"" n2]`},
		{name: "connected holder first", ranges: []*cairnpb.RangeDescriptor{rd("", "f", 1, 2), rd("f", "", 3)}, self: 4, up: func(id uint64) bool { return id != 1 },
			want: `[""-"f" n2] ["f"-"" n3]`},
		{name: "unreachable holders still named", ranges: []*cairnpb.RangeDescriptor{rd("", "f", 1), rd("f", "", 3)}, self: 4, up: func(uint64) bool { return false },
			want: `[""-"f" n1] ["f"-"" n3]`},
		{name: "gap in the catalog", ranges: []*cairnpb.RangeDescriptor{rd("", "f", 1), rd("g", "", 3)}, self: 4, up: up, err: kv.ErrUnavailable},
		{name: "catalog ends early", ranges: []*cairnpb.RangeDescriptor{rd("", "f", 1), rd("f", "m", 3)}, self: 4, up: up, err: kv.ErrUnavailable},
		{name: "range without replicas", ranges: []*cairnpb.RangeDescriptor{rd("", "f", 1), rd("f", "")}, self: 4, up: up, err: kv.ErrUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hi []byte
			if tc.hi != "" {
				hi = []byte(tc.hi)
			}
			tbl := &cairnpb.Table{Name: "t", Ranges: slices.Clone(tc.ranges)}
			slices.Reverse(tbl.Ranges) // the catalog's order must not matter
			parts, err := watchParts(tbl, []byte(tc.lo), hi, tc.self, tc.up)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range parts {
				got = append(got, fmt.Sprintf("[%q-%q n%d]", p.start, p.end, p.node))
			}
			if s := fmt.Sprint(got); s != "["+tc.want+"]" {
				t.Fatalf("parts = %s, want [%s]", s, tc.want)
			}
		})
	}
}

// watchStream runs a merged watch in the background and hands its
// responses out one by one.
type watchStream struct {
	resps  chan *cairnpb.WatchResponse
	done   chan error
	cancel context.CancelFunc
}

func startMerged(t *testing.T, rt *Router, parts []watchPart, req *cairnpb.WatchRequest) *watchStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &watchStream{resps: make(chan *cairnpb.WatchResponse, 1024), done: make(chan error, 1), cancel: cancel}
	go func() {
		w.done <- rt.mergedWatch(ctx, parts, req, func(r *cairnpb.WatchResponse) error {
			w.resps <- r
			return nil
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-w.done
	})
	return w
}

// next returns the next response (nil: none within a second).
func (w *watchStream) next(t *testing.T) *cairnpb.WatchResponse {
	t.Helper()
	select {
	case r := <-w.resps:
		return r
	case err := <-w.done:
		t.Fatalf("the watch ended: %v", err)
	case <-time.After(5 * time.Second):
	}
	return nil
}

// events reads responses until it has n events, and returns them as
// key@version with each event's token; sawSync says whether an empty
// (caught up) response came along.
func (w *watchStream) events(t *testing.T, n int) (evs []string, toks []string, sawSync bool) {
	t.Helper()
	for len(evs) < n {
		r := w.next(t)
		if r == nil {
			t.Fatalf("%d events, want %d: %v", len(evs), n, evs)
		}
		if len(r.Events) == 0 {
			sawSync = true
		}
		for _, e := range r.Events {
			evs = append(evs, fmt.Sprintf("%s@%d", e.Key, e.Version))
			toks = append(toks, e.ResumeToken)
		}
	}
	return evs, toks, sawSync
}

func TestMergedWatch(t *testing.T) {
	e := newTTLEnv(t)
	ctx := context.Background()
	for _, k := range []string{"p/3", "p/6"} {
		if _, err := e.rt.SplitRange(ctx, &cairnpb.SplitRangeRequest{Table: "default", Key: []byte(k)}); err != nil {
			t.Fatalf("split at %s: %v", k, err)
		}
	}
	self := e.rt.store.NodeID()
	parts := []watchPart{{[]byte("p/"), []byte("p/3"), self}, {[]byte("p/3"), []byte("p/6"), self}, {[]byte("p/6"), []byte("p0"), self}}
	var written []string
	put := func(key string) {
		t.Helper()
		resp, err := e.rt.Put(ctx, &cairnpb.PutRequest{Table: "default", Key: []byte(key), Value: []byte("v")})
		if err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
		written = append(written, fmt.Sprintf("%s@%d", key, resp.Version))
	}
	put("other") // outside the prefix: never delivered
	for i := range 9 {
		put(fmt.Sprintf("p/%d", i))
	}
	first := written[1]
	var firstVersion uint64
	fmt.Sscanf(first[len("p/0@"):], "%d", &firstVersion)

	// From a version: the 9 changes replayed, then one caught-up marker
	// (sent once every part caught up), then live changes.
	w := startMerged(t, e.rt, parts, &cairnpb.WatchRequest{Table: "default", Key: []byte("p/"), Prefix: true, StartVersion: firstVersion - 1, EventTokens: true})
	got, toks, _ := w.events(t, 9)
	checkSameChanges(t, "replay", got, written[1:])
	if r := w.next(t); r == nil || len(r.Events) != 0 {
		t.Fatalf("after the replay: %v, want the caught-up marker", r)
	}
	for _, k := range []string{"p/1", "p/4", "p/7", "other"} {
		put(k)
	}
	live, liveToks, sawSync := w.events(t, 3)
	if sawSync {
		t.Fatal("a second caught-up marker")
	}
	checkSameChanges(t, "live", live, written[10:13])
	got, toks = append(got, live...), append(toks, liveToks...)

	// Resume from the token after each event: exactly the later events
	// (through the merge, and through a plain local watch: one format).
	for _, at := range []int{0, 4, 8, 11} {
		r := startMerged(t, e.rt, parts, &cairnpb.WatchRequest{Table: "default", Key: []byte("p/"), Prefix: true, ResumeToken: toks[at]})
		rest, _, _ := r.events(t, len(got)-at-1)
		checkSameChanges(t, fmt.Sprintf("resume after event %d", at), rest, got[at+1:])
		r.cancel()
	}
	plain := make(chan []string, 1)
	go func() {
		var evs []string
		pctx, cancel := context.WithCancel(ctx)
		defer cancel()
		e.rt.Watch(pctx, &cairnpb.WatchRequest{Table: "default", Key: []byte("p/"), Prefix: true, ResumeToken: toks[4]}, func(r *cairnpb.WatchResponse) error {
			for _, ev := range r.Events {
				evs = append(evs, fmt.Sprintf("%s@%d", ev.Key, ev.Version))
			}
			if len(r.Events) == 0 {
				plain <- evs
				cancel()
			}
			return nil
		})
	}()
	select {
	case evs := <-plain:
		checkSameChanges(t, "plain resume", evs, got[5:])
	case <-time.After(10 * time.Second):
		t.Fatal("plain watch from a merged token never caught up")
	}

	// From now: nothing old, the caught-up marker, then new changes only.
	now := startMerged(t, e.rt, parts, &cairnpb.WatchRequest{Table: "default", Key: []byte("p/"), Prefix: true})
	if r := now.next(t); r == nil || len(r.Events) != 0 {
		t.Fatalf("watch from now: first response %v, want the caught-up marker", r)
	}
	put("p/2")
	put("p/8")
	fresh, _, _ := now.events(t, 2)
	checkSameChanges(t, "from now", fresh, written[len(written)-2:])

	// The public API refuses parts.
	err := e.rt.Watch(ctx, &cairnpb.WatchRequest{Table: "default", Key: []byte("p/"), Prefix: true, Part: &cairnpb.WatchPart{}}, func(*cairnpb.WatchResponse) error { return nil })
	if !errors.Is(err, kv.ErrInvalidArgument) {
		t.Fatalf("public watch with a part: %v, want invalid argument", err)
	}
}

// checkSameChanges: got holds exactly want's changes, each key's in
// want's order (keys of different parts may interleave).
func checkSameChanges(t *testing.T, what string, got, want []string) {
	t.Helper()
	perKey := func(evs []string) map[string][]string {
		m := map[string][]string{}
		for _, e := range evs {
			var k string
			for i := len(e) - 1; i >= 0; i-- {
				if e[i] == '@' {
					k = e[:i]
					break
				}
			}
			m[k] = append(m[k], e)
		}
		return m
	}
	g, w := perKey(got), perKey(want)
	if len(got) != len(want) || fmt.Sprint(g) != fmt.Sprint(w) {
		t.Fatalf("%s: got %v, want %v (per key, in order)", what, got, want)
	}
}
