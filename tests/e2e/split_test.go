package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSplitsUnderWrites: a 3-node cluster with a tiny split size. Writers
// on every node put keys concurrently while ranges split by size (and one
// split by hand through POST /v1/ranges/split); no request may fail
// because of a split. Then the table must have many ranges, contiguous in
// the catalog; every acknowledged key reads back through every node with
// its version; and List returns all keys, in order, across ranges and
// pages, through every node.
func TestSplitsUnderWrites(t *testing.T) {
	c := StartCluster(t, 3, "--split-size", "2KiB")
	const writers, perWriter = 6, 250
	value := bytes.Repeat([]byte("v"), 40)

	var mu sync.Mutex
	acked := map[string]uint64{}
	var failures []string
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			n := c.Nodes[w%len(c.Nodes)]
			for i := range perWriter {
				// Keys spread over the whole key space, so that every range
				// keeps growing.
				k := fmt.Sprintf("%c%03d-w%d", 'a'+byte((i*7+w)%26), i, w)
				r := n.Put("default", k, value)
				if r.Status != 200 {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("%s: put %s: %s", n.Name, k, r))
					mu.Unlock()
					continue
				}
				v, err := r.Version()
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				acked[k] = v
				mu.Unlock()
			}
		}(w)
	}
	// A split by hand, in the middle of the writes.
	time.Sleep(500 * time.Millisecond)
	body, _ := json.Marshal(map[string]string{"table": "default", "key": "m"})
	if r := c.Nodes[1].Do(opTimeout, "POST", "/v1/ranges/split", body); r.Status != 200 {
		// "m" may already be a boundary only if a size split chose it.
		if r.Status != 400 {
			t.Errorf("split by hand: %s", r)
		}
	}
	wg.Wait()
	for _, f := range failures {
		t.Error(f)
	}
	if t.Failed() {
		return
	}

	// The table reaches many ranges, and the catalog covers it without a
	// gap or an overlap.
	waitFor(t, 60*time.Second, "the default table in at least 8 ranges", func() error {
		r := c.Nodes[0].Do(opTimeout, "GET", "/v1/tables/default", nil)
		if r.Status != 200 {
			return fmt.Errorf("%s", r)
		}
		var tbl struct {
			Ranges []struct {
				ID    uint64 `json:"id"`
				Start string `json:"start"`
				End   string `json:"end"`
			} `json:"ranges"`
		}
		if err := r.JSON(&tbl); err != nil {
			return err
		}
		if len(tbl.Ranges) < 8 {
			return fmt.Errorf("%d ranges", len(tbl.Ranges))
		}
		end := ""
		for i, d := range tbl.Ranges {
			if i > 0 && d.Start != end {
				t.Fatalf("catalog: range %d starts at %q, the previous ended at %q: %s", d.ID, d.Start, end, r.Body)
			}
			end = d.End
		}
		if tbl.Ranges[0].Start != "" || end != "" {
			t.Fatalf("catalog does not cover the table: %s", r.Body)
		}
		t.Logf("default table: %d ranges", len(tbl.Ranges))
		return nil
	})
	st, err := c.Nodes[2].ClusterStatus(opTimeout)
	if err != nil {
		t.Fatal(err)
	}
	ranges := 0
	for _, r := range st.Ranges {
		if r.Table == "default" {
			ranges++
		}
	}
	if ranges < 8 {
		t.Errorf("GET /v1/cluster on n3 shows %d ranges of the default table", ranges)
	}

	// Every acknowledged key reads back, through every node.
	keys := make([]string, 0, len(acked))
	for k := range acked {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		n := c.Nodes[i%len(c.Nodes)]
		val, ver := n.MustGet(t, "default", k)
		if !bytes.Equal(val, value) || ver != acked[k] {
			t.Fatalf("%s: %s = %q v%d, want v%d", n.Name, k, val, ver, acked[k])
		}
	}
	// List returns every key in order across ranges and pages.
	for _, n := range c.Nodes {
		items, err := n.List("default", "", 37)
		if err != nil {
			t.Fatal(err)
		}
		if len(items) != len(keys) {
			t.Fatalf("%s lists %d keys, want %d", n.Name, len(items), len(keys))
		}
		for i, it := range items {
			if it.Key != keys[i] || it.Version != acked[it.Key] || !bytes.Equal(it.Value, value) {
				t.Fatalf("%s: list item %d is %q v%d, want %q v%d", n.Name, i, it.Key, it.Version, keys[i], acked[keys[i]])
			}
		}
		// A prefix inside one letter, and one page size larger than all.
		sub, err := n.List("default", "q", 1000)
		if err != nil {
			t.Fatal(err)
		}
		want := 0
		for _, k := range keys {
			if k[0] == 'q' {
				want++
			}
		}
		if len(sub) != want {
			t.Fatalf("%s: prefix q lists %d keys, want %d", n.Name, len(sub), want)
		}
	}
}

// TestSplitsWhileNodeDown: a node is killed with SIGKILL while its table
// keeps splitting and the logs truncate; restarted, it gets the ranges it
// missed (split ones by snapshot, through uninitialized replicas) and
// serves every key and a complete ordered List.
func TestSplitsWhileNodeDown(t *testing.T) {
	c := StartCluster(t, 3, "--split-size", "2KiB", "--log-keep-entries", "20")
	value := bytes.Repeat([]byte("x"), 40)
	acked := map[string]uint64{}
	put := func(n *Node, k string) {
		// A write in flight to a leader that is killed ends 504 (outcome
		// unknown) and writes right after get 503 until a new leader is
		// elected: retry those (the value is the same, so a retry after an
		// unknown outcome is harmless), within a bound.
		var r Reply
		for deadline := time.Now().Add(20 * time.Second); ; {
			r = n.Put("default", k, value)
			if r.Status == 200 || (r.Status != 503 && r.Status != 504) || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if r.Status != 200 {
			t.Fatalf("%s: put %s: %s", n.Name, k, r)
		}
		v, err := r.Version()
		if err != nil {
			t.Fatal(err)
		}
		acked[k] = v
	}
	rangesOn := func(n *Node) (int, error) {
		st, err := n.ClusterStatus(opTimeout)
		if err != nil {
			return 0, err
		}
		count := 0
		for _, r := range st.Ranges {
			if r.Table == "default" && r.Leader != 0 {
				count++
			}
		}
		return count, nil
	}
	waitRanges := func(n *Node, min int) {
		waitFor(t, 60*time.Second, fmt.Sprintf("at least %d ranges", min), func() error {
			got, err := rangesOn(n)
			if err != nil {
				return err
			}
			if got < min {
				return fmt.Errorf("%d ranges", got)
			}
			return nil
		})
	}
	for i := range 200 {
		put(c.Nodes[i%2], fmt.Sprintf("%c%03d", 'a'+byte(i*7%26), i))
	}
	waitRanges(c.Nodes[0], 3)
	down := c.Nodes[2]
	down.Kill9()
	for i := 200; i < 700; i++ {
		put(c.Nodes[i%2], fmt.Sprintf("%c%03d", 'a'+byte(i*7%26), i))
	}
	waitRanges(c.Nodes[0], 10)
	// More writes after the splits, so that the new ranges' logs truncate.
	for i := 700; i < 900; i++ {
		put(c.Nodes[i%2], fmt.Sprintf("%c%03d", 'a'+byte(i*7%26), i))
	}
	down.Restart()
	waitFor(t, 60*time.Second, down.Name+" holding every range", func() error {
		n0, err := rangesOn(c.Nodes[0])
		if err != nil {
			return err
		}
		got, err := rangesOn(down)
		if err != nil {
			return err
		}
		if got < n0 {
			return fmt.Errorf("%d ranges with a known leader, want %d", got, n0)
		}
		return nil
	})
	keys := make([]string, 0, len(acked))
	for k := range acked {
		keys = append(keys, k)
		val, ver := down.MustGet(t, "default", k)
		if !bytes.Equal(val, value) || ver != acked[k] {
			t.Fatalf("%s: %s = %q v%d, want v%d", down.Name, k, val, ver, acked[k])
		}
	}
	sort.Strings(keys)
	items, err := down.List("default", "", 50)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != len(keys) {
		t.Fatalf("%s lists %d keys, want %d", down.Name, len(items), len(keys))
	}
	for i, it := range items {
		if it.Key != keys[i] {
			t.Fatalf("%s: list item %d is %q, want %q", down.Name, i, it.Key, keys[i])
		}
	}
}

// TestLoadSplit: a small table under sustained load over --split-qps
// (200 here) splits by load, not size, at a key inside the written
// span; the two halves end with leaders on different nodes; no request
// fails because of it, and every key reads back afterwards.
func TestLoadSplit(t *testing.T) {
	c := StartCluster(t, 3, "--split-qps", "200", "--heartbeat-interval", "200ms")
	n1 := c.Nodes[0]
	if r := n1.Do(opTimeout, "POST", "/v1/tables", []byte(`{"name":"hot"}`)); r.Status != 201 {
		t.Fatalf("create table: %s", r)
	}
	var mu sync.Mutex
	acked := map[string]uint64{}
	var failures []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			n := c.Nodes[w%3]
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := fmt.Sprintf("k%03d", (i*37+w*101)%500)
				r := n.Put("hot", k, []byte("v"))
				mu.Lock()
				if r.Status != 200 {
					failures = append(failures, fmt.Sprintf("%s put %s: %s", n.Name, k, r))
				} else if v, err := r.Version(); err == nil && v > acked[k] {
					acked[k] = v
				}
				mu.Unlock()
			}
		}(w)
	}
	var ranges []RangeStatus
	waitFor(t, 60*time.Second, "table hot split by load, halves led by two nodes", func() error {
		ranges = dataRanges(t, n1, "hot")
		if len(ranges) < 2 {
			return fmt.Errorf("%d ranges", len(ranges))
		}
		leaders := map[uint64]bool{}
		for _, r := range ranges {
			leaders[r.Leader] = true
		}
		if len(leaders) < 2 || leaders[0] {
			return fmt.Errorf("leaders of %d ranges: %v", len(ranges), leaders)
		}
		return nil
	})
	close(stop)
	wg.Wait()
	if len(failures) > 0 {
		t.Errorf("%d requests failed during the load split, e.g. %v", len(failures), failures[:min(3, len(failures))])
	}
	for _, r := range ranges[1:] {
		if r.Start <= "k000" || r.Start > "k499" {
			t.Errorf("a range starts at %q, outside the written keys k000..k499", r.Start)
		}
	}
	t.Logf("%d ranges: %+v", len(ranges), ranges)
	for _, n := range c.Nodes {
		bad := 0
		for k, v := range acked {
			r := n.Get("hot", k)
			got, err := r.ETag()
			if r.Status != 200 || err != nil || got < v {
				if bad++; bad <= 3 {
					t.Errorf("%s: get %s: %s (want version >= %d)", n.Name, k, r, v)
				}
			}
		}
	}
}

// Test50kKeys is the scale-out story at size: 50,000 keys written by 16
// concurrent clients into a table with a small split size (64 KiB) end up
// in many ranges whose leaders are spread over the 3 nodes; no write
// fails (a timed-out one is retried, as a client would); every key reads
// back with its version; a full scan returns all
// of them, in order, across ranges and pages.
func Test50kKeys(t *testing.T) {
	c := StartCluster(t, 3, "--split-size", "64KiB", "--heartbeat-interval", "200ms")
	const writers, perWriter = 16, 3125
	value := bytes.Repeat([]byte("x"), 32)
	acked := make([][]uint64, writers)
	var failures atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := range writers {
		acked[w] = make([]uint64, perWriter)
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			n := c.Nodes[w%len(c.Nodes)]
			for i := range perWriter {
				// A timed-out put (an election on a loaded machine) is
				// retried, as a client would: an unconditional put of the
				// same value is idempotent. Anything else, or 3 retries
				// in vain, fails the test.
				r := n.putRetrying("default", key50k(w, i), value)
				v, err := r.Version()
				if r.Status != 200 || err != nil {
					if failures.Add(1) <= 3 {
						t.Errorf("%s: put %s: %s", n.Name, key50k(w, i), r)
					}
					continue
				}
				acked[w][i] = v
			}
		}(w)
	}
	wg.Wait()
	t.Logf("50000 writes in %v", time.Since(start).Round(time.Millisecond))
	if failures.Load() > 0 {
		t.Fatalf("%d writes failed", failures.Load())
	}
	waitFor(t, 60*time.Second, "at least 20 ranges, led by all 3 nodes", func() error {
		rs := dataRanges(t, c.Nodes[0], "default")
		leaders := map[uint64]int{}
		for _, r := range rs {
			leaders[r.Leader]++
		}
		if len(rs) < 20 || len(leaders) < 3 || leaders[0] > 0 {
			return fmt.Errorf("%d ranges, leaders per node %v", len(rs), leaders)
		}
		t.Logf("%d ranges, leaders per node %v", len(rs), leaders)
		return nil
	})
	for w := range writers {
		for i := range perWriter {
			n := c.Nodes[(w+i)%len(c.Nodes)]
			r := n.Get("default", key50k(w, i))
			if v, err := r.ETag(); r.Status != 200 || err != nil || v != acked[w][i] || !bytes.Equal(r.Body, value) {
				t.Fatalf("%s: get %s: %s, want version %d", n.Name, key50k(w, i), r, acked[w][i])
			}
		}
	}
	items, err := c.Nodes[1].List("default", "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != writers*perWriter {
		t.Fatalf("scan returned %d keys, want %d", len(items), writers*perWriter)
	}
	for i := 1; i < len(items); i++ {
		if items[i-1].Key >= items[i].Key {
			t.Fatalf("scan out of order at %d: %q then %q", i, items[i-1].Key, items[i].Key)
		}
	}
}

// key50k spreads writer w's i-th key over the key space (so that every
// range keeps growing while the table splits).
func key50k(w, i int) string {
	return fmt.Sprintf("%c%02d-%04d-w%02d", 'a'+byte((i*7+w)%26), i%100, i, w)
}
