package e2e

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// write is one acknowledged PUT.
type write struct {
	writer     int
	key, value string
	version    uint64
	sent, done time.Time
}

// history records the PUTs of concurrent writers: what was acknowledged,
// what was attempted (an unacknowledged PUT may or may not have happened),
// and any reply that no fault can excuse.
type history struct {
	mu         sync.Mutex
	acked      []write
	attempted  map[string]map[string]bool // key -> values ever sent
	outcomes   map[string]int             // outcome class -> count
	unexpected []string
}

func newHistory() *history {
	return &history{attempted: map[string]map[string]bool{}, outcomes: map[string]int{}}
}

// put sends key=value through n and records the outcome. It reports the
// acknowledged version, or ok=false when the outcome is unknown or failed.
func (h *history) put(n *Node, writer int, key, value string) (uint64, bool) {
	h.mu.Lock()
	if h.attempted[key] == nil {
		h.attempted[key] = map[string]bool{}
	}
	h.attempted[key][value] = true
	h.mu.Unlock()

	r := n.Put("default", key, []byte(value))
	class := outcomeClass(r)
	var v uint64
	var err error
	if class == "ok" {
		v, err = r.Version()
		if err != nil {
			class = "unexpected"
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.outcomes[class]++
	switch class {
	case "ok":
		h.acked = append(h.acked, write{writer: writer, key: key, value: value, version: v, sent: r.Sent, done: r.Done})
		return v, true
	case "unexpected":
		if len(h.unexpected) < 20 {
			h.unexpected = append(h.unexpected, fmt.Sprintf("%s via %s: %s", time.Now().Format("15:04:05.000"), n.Name, r))
		}
	}
	return 0, false
}

// outcomeClass sorts a reply to an unconditional PUT: "ok", an excusable
// failure under faults (connection refused or reset, client timeout, 503,
// 504), or "unexpected" (any other status: 4xx or 500 are bugs here).
func outcomeClass(r Reply) string {
	switch {
	case r.Err != nil && r.Refused():
		return "refused"
	case r.Err != nil && strings.Contains(r.Err.Error(), "deadline exceeded"):
		return "client timeout"
	case r.Err != nil:
		return "conn error"
	case r.Status == 200:
		return "ok"
	case r.Status == 503 || r.Status == 504:
		return fmt.Sprintf("%d %s", r.Status, r.ErrCode())
	}
	return "unexpected"
}

// report logs the outcome counts and fails the test on unexpected replies.
func (h *history) report(t testing.TB) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	classes := make([]string, 0, len(h.outcomes))
	for c := range h.outcomes {
		classes = append(classes, c)
	}
	sort.Strings(classes)
	var parts []string
	for _, c := range classes {
		parts = append(parts, fmt.Sprintf("%s: %d", c, h.outcomes[c]))
	}
	t.Logf("PUT outcomes: %s", strings.Join(parts, ", "))
	for _, u := range h.unexpected {
		t.Errorf("unexpected reply to a PUT: %s", u)
	}
}

// ackGap returns the last ack completed before at, and the first ack of a
// request sent after at.
func (h *history) ackGap(at time.Time) (lastBefore, firstAfter time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, w := range h.acked {
		if w.done.Before(at) && w.done.After(lastBefore) {
			lastBefore = w.done
		}
		if w.sent.After(at) && (firstAfter.IsZero() || w.done.Before(firstAfter)) {
			firstAfter = w.done
		}
	}
	return lastBefore, firstAfter
}

// maxAckGap returns the longest time between two consecutive acks, and
// when it began.
func (h *history) maxAckGap() (time.Duration, time.Time) {
	h.mu.Lock()
	done := make([]time.Time, len(h.acked))
	for i, w := range h.acked {
		done[i] = w.done
	}
	h.mu.Unlock()
	sort.Slice(done, func(i, j int) bool { return done[i].Before(done[j]) })
	var gap time.Duration
	var at time.Time
	for i := 1; i < len(done); i++ {
		if d := done[i].Sub(done[i-1]); d > gap {
			gap, at = d, done[i-1]
		}
	}
	return gap, at
}

// checkVersions checks the acknowledged writes of each key: versions are
// distinct, strictly increase in each writer's own order, and respect real
// time (a write acknowledged before another was sent has a lower version).
func (h *history) checkVersions(t testing.TB) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	byKey := map[string][]write{}
	for _, w := range h.acked {
		byKey[w.key] = append(byKey[w.key], w)
	}
	errs := 0
	fail := func(format string, args ...any) {
		t.Helper()
		if errs++; errs <= 10 {
			t.Errorf(format, args...)
		}
	}
	for key, ws := range byKey {
		last := map[int]write{}
		seen := map[uint64]write{}
		for _, w := range ws { // h.acked is in ack order; per writer that is program order
			if p, ok := last[w.writer]; ok && w.version <= p.version {
				fail("key %q, writer %d: version went from %d (%q, acked %s) to %d (%q, acked %s)",
					key, w.writer, p.version, p.value, p.done.Format("15:04:05.000"), w.version, w.value, w.done.Format("15:04:05.000"))
			}
			last[w.writer] = w
			if o, ok := seen[w.version]; ok {
				fail("key %q: two acknowledged writes got version %d: %q (writer %d) and %q (writer %d)",
					key, w.version, o.value, o.writer, w.value, w.writer)
			}
			seen[w.version] = w
		}
		// Real-time order across writers: sort by version; then no write
		// may have been sent after a write with a higher version was acked.
		sorted := append([]write(nil), ws...)
		sort.Slice(sorted, func(i, j int) bool { return sorted[i].version < sorted[j].version })
		for i, a := range sorted {
			for _, b := range sorted[i+1:] {
				if b.done.Before(a.sent) {
					fail("key %q: write %q got version %d though it was sent at %s, after write %q with the higher version %d was acked at %s",
						key, a.value, a.version, a.sent.Format("15:04:05.000"), b.value, b.version, b.done.Format("15:04:05.000"))
				}
			}
		}
	}
	if errs > 10 {
		t.Errorf("... and %d more version-order violations", errs-10)
	}
}

// checkFinal reads every key the history touched through each node and
// checks that every acknowledged write is there: the exact value and
// version for a key whose last acknowledged write was the last one
// attempted, else a version at least the highest acknowledged one, and
// always a value that was written. All nodes must agree.
func (h *history) checkFinal(t testing.TB, nodes []*Node) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	maxAck := map[string]write{}
	for _, w := range h.acked {
		if w.version > maxAck[w.key].version {
			maxAck[w.key] = w
		}
	}
	for _, n := range nodes {
		got, err := n.List("default", "", 1000)
		if err != nil {
			t.Fatalf("final list through %s: %v", n.Name, err)
		}
		byKey := map[string]Item{}
		for _, it := range got {
			byKey[it.Key] = it
		}
		errs := 0
		fail := func(format string, args ...any) {
			t.Helper()
			if errs++; errs <= 10 {
				t.Errorf(format, args...)
			}
		}
		for key, w := range maxAck {
			it, ok := byKey[key]
			switch {
			case !ok:
				fail("%s: acknowledged write %q=%q v%d (acked %s) is lost: the key is absent",
					n.Name, key, w.value, w.version, w.done.Format("15:04:05.000"))
			case it.Version < w.version:
				fail("%s: key %q has version %d (%q), below the acknowledged %d (%q)", n.Name, key, it.Version, it.Value, w.version, w.value)
			case it.Version == w.version && string(it.Value) != w.value:
				fail("%s: key %q version %d has value %q, but %q was acknowledged with that version", n.Name, key, it.Version, it.Value, w.value)
			case len(h.attempted[key]) == 1 && it.Version != w.version:
				fail("%s: key %q was written once, acknowledged with version %d, but reads version %d", n.Name, key, w.version, it.Version)
			}
		}
		for key, it := range byKey {
			if vals := h.attempted[key]; vals == nil || !vals[string(it.Value)] {
				fail("%s: key %q holds %q (v%d), which no writer sent", n.Name, key, it.Value, it.Version)
			}
		}
		if errs > 10 {
			t.Errorf("%s: ... and %d more lost or wrong writes", n.Name, errs-10)
		}
		// Point reads (ETag) of the overwritten keys agree with the list.
		for key, w := range maxAck {
			if len(h.attempted[key]) < 2 {
				continue
			}
			val, ver := n.MustGet(t, "default", key)
			it := byKey[key]
			if ver != it.Version || string(val) != string(it.Value) {
				t.Errorf("%s: GET %q = %q v%d but the list says %q v%d (acked max v%d)", n.Name, key, val, ver, it.Value, it.Version, w.version)
			}
		}
		t.Logf("%s: %d keys, every acknowledged write found", n.Name, len(byKey))
	}
}

// writers runs n goroutines that write through random running nodes until
// stop is closed. Each writer writes unique keys u/<writer>/<seq> and,
// every third write, overwrites one of the shared keys.
func (h *history) writers(c *Cluster, n int, sharedKeys []string, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				nodes := c.Ready()
				if len(nodes) == 0 {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				node := pick(rng, nodes)
				if len(sharedKeys) > 0 && seq%3 == 0 {
					k := sharedKeys[rng.IntN(len(sharedKeys))]
					h.put(node, w, k, fmt.Sprintf("w%d-s%d", w, seq))
				} else {
					h.put(node, w, fmt.Sprintf("u/%d/%06d", w, seq), fmt.Sprintf("w%d-u%d-%x", w, seq, rng.Uint32()))
				}
			}
		}()
	}
	return &wg
}
