package robustness

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-db/cairn/client"
)

// watcher follows the workload's keys through the Go SDK's Watch (every
// node an endpoint, so it resumes elsewhere when its node dies, freezes
// behind a partition or is restarted) for the whole run, and records
// what it was told.
type watcher struct {
	cl     *client.Client
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	events []client.WatchEvent
	// gaps counts restarts from "now" after the history could not serve a
	// resume (ErrCompacted): completeness is not checked then.
	gaps int
	errs []string
}

// startWatcher starts watching prefix in table from now and returns once
// the watch is established.
func startWatcher(c *Cluster, table, prefix string, rng *rand.Rand) (*watcher, error) {
	var eps []string
	for _, n := range c.Nodes {
		eps = append(eps, n.Client)
	}
	rng.Shuffle(len(eps), func(i, j int) { eps[i], eps[j] = eps[j], eps[i] })
	cl, err := client.New(client.Config{Endpoints: eps, DialTimeout: time.Second, RequestTimeout: clientTimeout})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{cl: cl, cancel: cancel, done: make(chan struct{})}
	ready := make(chan struct{})
	go func() {
		defer close(w.done)
		first := true
		token := "" // where to resume: the last response's
		for ctx.Err() == nil {
			opts := []client.WatchOption{client.WatchPrefix()}
			if token != "" {
				opts = append(opts, client.WatchResume(token))
			}
			for r := range cl.Watch(ctx, table, []byte(prefix), opts...) {
				if first {
					first = false
					close(ready)
				}
				w.mu.Lock()
				switch {
				case r.Err == nil:
					w.events = append(w.events, r.Events...)
					token = r.ResumeToken
				case ctx.Err() != nil:
				case errors.Is(r.Err, client.ErrCompacted):
					w.gaps++ // go on from now
					token = ""
				default:
					w.errs = append(w.errs, r.Err.Error())
				}
				w.mu.Unlock()
			}
			select { // not a busy loop if the watch keeps failing
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	select {
	case <-ready:
		return w, nil
	case <-time.After(15 * time.Second):
		w.stop()
		return nil, fmt.Errorf("watch not established within 15s")
	}
}

func (w *watcher) stop() {
	w.cancel()
	<-w.done
	_ = w.cl.Close()
}

// snapshot returns the events so far.
func (w *watcher) snapshot() ([]client.WatchEvent, int, []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]client.WatchEvent(nil), w.events...), w.gaps, append([]string(nil), w.errs...)
}

type keyVersion struct {
	key     string
	version uint64
}

// missingFromWatch returns the acknowledged puts and deletes the events
// do not hold yet (a put by its version, a delete by the version it
// deleted, which its event names as prev).
func missingFromWatch(ops []*Op, events []client.WatchEvent) []string {
	puts, dels := map[keyVersion]bool{}, map[keyVersion]bool{}
	for _, e := range events {
		switch e.Type {
		case client.EventPut:
			puts[keyVersion{string(e.Key), e.Version}] = true
		case client.EventDelete:
			dels[keyVersion{string(e.Key), e.PrevVersion}] = true
		}
	}
	var out []string
	for _, o := range ops {
		if o.Outcome != outOK || o.Final || o.Version == 0 {
			continue
		}
		switch o.Kind {
		case "put":
			if !puts[keyVersion{o.Key, o.Version}] {
				out = append(out, fmt.Sprintf("acknowledged %s never reached the watcher", o))
			}
		case "delete":
			if !dels[keyVersion{o.Key, o.Version}] {
				out = append(out, fmt.Sprintf("acknowledged %s never reached the watcher", o))
			}
		}
	}
	return out
}

// CheckWatch checks a watcher's events against the history: each change
// once, per key in increasing versions; every put it reports was written
// by a client with that value (and, if acknowledged, at that version),
// never one that failed; and, unless the watch had to skip ahead
// (gaps > 0), every acknowledged put and delete was reported.
func CheckWatch(r *Report, ops []*Op, events []client.WatchEvent, gaps int) {
	seen := map[keyVersion]bool{}
	last := map[string]uint64{}
	byValue := map[string]*Op{}
	for _, o := range ops {
		if o.Kind == "put" {
			byValue[o.Key+"\x00"+o.Value] = o
		}
	}
	for _, e := range events {
		kv := keyVersion{string(e.Key), e.Version}
		if seen[kv] {
			r.violate("watch: %s@%d delivered twice", kv.key, kv.version)
		}
		seen[kv] = true
		if e.Version <= last[kv.key] {
			r.violate("watch: %s: version %d delivered after %d", kv.key, e.Version, last[kv.key])
		}
		last[kv.key] = e.Version
		if e.Type != client.EventPut {
			continue
		}
		o := byValue[kv.key+"\x00"+string(e.Value)]
		switch {
		case o == nil:
			r.violate("watch: put %s=%q@%d was never written by any client", kv.key, e.Value, e.Version)
		case o.Outcome == outOK && o.Version != e.Version:
			r.violate("watch: put %s=%q@%d, but the write was acknowledged at version %d", kv.key, e.Value, e.Version, o.Version)
		case o.Outcome == outFailed || o.Outcome == outCondition || o.Outcome == outNotFound:
			r.violate("watch: put %s=%q@%d, but the write failed (%s)", kv.key, e.Value, e.Version, o)
		}
	}
	if gaps > 0 {
		return
	}
	for _, m := range missingFromWatch(ops, events) {
		r.violate("watch: %s", m)
	}
}

// TestCheckWatchFlags: the watch checker accepts a faithful stream and
// flags each way a stream can be wrong.
func TestCheckWatchFlags(t *testing.T) {
	okPut := func(key, value string, v uint64) *Op {
		return &Op{Kind: "put", Key: key, Value: value, Outcome: outOK, Version: v}
	}
	ops := []*Op{
		okPut("k1", "a", 10), okPut("k1", "b", 12), okPut("k2", "c", 11),
		{Kind: "put", Key: "k2", Value: "lost?", Outcome: outUnknown},
		{Kind: "put", Key: "k2", Value: "refused", Outcome: outFailed},
		{Kind: "delete", Key: "k1", Outcome: outOK, Version: 12},
	}
	put := func(key, value string, v uint64) client.WatchEvent {
		return client.WatchEvent{Type: client.EventPut, Key: []byte(key), Value: []byte(value), Version: v}
	}
	del := client.WatchEvent{Type: client.EventDelete, Key: []byte("k1"), Version: 13, PrevVersion: 12}
	good := []client.WatchEvent{put("k1", "a", 10), put("k2", "c", 11), put("k1", "b", 12), del}
	for _, tc := range []struct {
		name   string
		events []client.WatchEvent
		gaps   int
		want   string // "" = no violation
	}{
		{"faithful", good, 0, ""},
		{"an in-doubt write may appear", append(append([]client.WatchEvent(nil), good...), put("k2", "lost?", 14)), 0, ""},
		{"missing put", []client.WatchEvent{put("k1", "a", 10), put("k1", "b", 12), del}, 0, "never reached the watcher"},
		{"missing put after a gap is not checked", []client.WatchEvent{put("k1", "a", 10), put("k1", "b", 12), del}, 1, ""},
		{"missing delete", good[:3], 0, "delete k1"},
		{"duplicate", append(append([]client.WatchEvent(nil), good...), put("k1", "b", 12)), 0, "delivered twice"},
		{"out of order", []client.WatchEvent{put("k1", "b", 12), put("k1", "a", 10), put("k2", "c", 11), del}, 0, "delivered after"},
		{"never written", append(append([]client.WatchEvent(nil), good...), put("k2", "ghost", 20)), 0, "never written"},
		{"failed write", append(append([]client.WatchEvent(nil), good...), put("k2", "refused", 20)), 0, "the write failed"},
		{"wrong version", []client.WatchEvent{put("k1", "a", 9), put("k2", "c", 11), put("k1", "b", 12), del}, 0, "acknowledged at version 10"},
	} {
		r := &Report{}
		CheckWatch(r, ops, tc.events, tc.gaps)
		if tc.want == "" {
			if !r.OK() {
				t.Errorf("%s: unexpected violations %v", tc.name, r.Violations)
			}
			continue
		}
		found := false
		for _, v := range r.Violations {
			found = found || strings.Contains(v, tc.want)
		}
		if !found {
			t.Errorf("%s: violations %v, want one containing %q", tc.name, r.Violations, tc.want)
		}
	}
}
