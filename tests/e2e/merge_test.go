package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"
)

// TestMergesUnderWrites: a 3-node cluster whose default table is split by
// hand into 9 ranges merges back into one while writers on every node put
// keys over the whole key space: merges by hand (POST /v1/ranges/merge)
// during the writes, and automatic merges of the small, cold neighbours
// (--merge-delay 2s, a --merge-qps no test load reaches). No write may
// fail because of a merge; afterwards the catalog holds one range, every
// acknowledged key reads back through every node with its version, and
// List returns all keys in order.
func TestMergesUnderWrites(t *testing.T) {
	c := StartCluster(t, 3, "--merge-size", "16MiB", "--merge-delay", "2s", "--merge-qps", "1000000")
	for _, k := range []string{"c", "f", "i", "l", "o", "r", "u", "x"} {
		body, _ := json.Marshal(map[string]string{"table": "default", "key": k})
		if r := c.Nodes[0].Do(opTimeout, "POST", "/v1/ranges/split", body); r.Status != 200 {
			t.Fatalf("split at %s: %s", k, r)
		}
	}
	const writers, perWriter = 6, 150
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
	// Merges by hand during the writes (the splitter merges too, so a
	// boundary may be gone or frozen meanwhile: those are refused).
	merged := 0
	for i := range 4 {
		time.Sleep(300 * time.Millisecond)
		body, _ := json.Marshal(map[string]string{"table": "default", "key": "a"})
		r := c.Nodes[i%len(c.Nodes)].Do(opTimeout, "POST", "/v1/ranges/merge", body)
		if r.Status == 200 {
			merged++
		} else {
			t.Logf("merge by hand %d: %s", i, r)
		}
	}
	wg.Wait()
	for _, f := range failures {
		t.Error(f)
	}
	if t.Failed() {
		return
	}
	t.Logf("%d merges by hand succeeded during the writes", merged)
	waitFor(t, 90*time.Second, "the default table back in one range", func() error {
		r := c.Nodes[1].Do(opTimeout, "GET", "/v1/tables/default", nil)
		if r.Status != 200 {
			return fmt.Errorf("%s", r)
		}
		var tbl struct {
			Ranges []struct {
				Start string `json:"start"`
				End   string `json:"end"`
			} `json:"ranges"`
		}
		if err := r.JSON(&tbl); err != nil {
			return err
		}
		if len(tbl.Ranges) != 1 {
			return fmt.Errorf("%d ranges", len(tbl.Ranges))
		}
		if tbl.Ranges[0].Start != "" || tbl.Ranges[0].End != "" {
			t.Fatalf("catalog does not cover the table: %s", r.Body)
		}
		return nil
	})

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
	for _, n := range c.Nodes {
		items, err := n.List("default", "", 53)
		if err != nil {
			t.Fatal(err)
		}
		if len(items) != len(keys) {
			t.Fatalf("%s lists %d keys, want %d", n.Name, len(items), len(keys))
		}
		for i, it := range items {
			if it.Key != keys[i] || it.Version != acked[it.Key] {
				t.Fatalf("%s: list item %d is %q v%d, want %q v%d", n.Name, i, it.Key, it.Version, keys[i], acked[keys[i]])
			}
		}
	}
	// A write after the merges gets a version above every earlier one.
	var maxVersion uint64
	for _, v := range acked {
		maxVersion = max(maxVersion, v)
	}
	r := c.Nodes[2].Put("default", "zz-after", value)
	if v, err := r.Version(); r.Status != 200 || err != nil || v <= maxVersion {
		t.Fatalf("put after the merges: %s (version %d, max before %d)", r, v, maxVersion)
	}
}

// TestHashTableKeepsInitialRanges: with the default --merge-size (merges
// on), a hash table's ranges that a split made merge back, but the
// table never merges below the 4 ranges it was created with: an idle
// hash table keeps its spread.
func TestHashTableKeepsInitialRanges(t *testing.T) {
	c := StartCluster(t, 3, "--merge-delay", "2s", "--merge-qps", "1000000")
	n1 := c.Nodes[0]
	if r := n1.Do(opTimeout, "POST", "/v1/tables", []byte(`{"name":"h","partitioning":"hash","initial_ranges":4}`)); r.Status != 201 {
		t.Fatalf("create table: %s", r)
	}
	for _, k := range []string{"0x2000000000000000", "0xa000000000000000"} {
		body, _ := json.Marshal(map[string]string{"table": "h", "key": k})
		if r := n1.Do(opTimeout, "POST", "/v1/ranges/split", body); r.Status != 200 {
			t.Fatalf("split at %s: %s", k, r)
		}
	}
	for i := range 50 {
		c.Nodes[i%3].MustPut(t, "h", fmt.Sprintf("k%03d", i), []byte("v"))
	}
	ends := func() ([]string, error) {
		r := n1.Do(opTimeout, "GET", "/v1/tables/h", nil)
		if r.Status != 200 {
			return nil, fmt.Errorf("%s", r)
		}
		var tbl struct {
			Ranges []struct {
				End string `json:"end"`
			} `json:"ranges"`
		}
		if err := r.JSON(&tbl); err != nil {
			return nil, err
		}
		var out []string
		for _, d := range tbl.Ranges {
			out = append(out, d.End)
		}
		return out, nil
	}
	if e, err := ends(); err != nil || len(e) != 6 {
		t.Fatalf("after two splits: range ends %q (%v)", e, err)
	}
	want := fmt.Sprint([]string{"0x4000000000000000", "0x8000000000000000", "0xc000000000000000", ""})
	waitFor(t, 60*time.Second, "the splits merged back", func() error {
		e, err := ends()
		if err != nil {
			return err
		}
		if fmt.Sprint(e) != want {
			return fmt.Errorf("range ends %q", e)
		}
		return nil
	})
	time.Sleep(8 * time.Second) // four merge delays more
	if e, err := ends(); err != nil || fmt.Sprint(e) != want {
		t.Fatalf("range ends %q (%v), want the initial %s", e, err, want)
	}
	for i := range 50 {
		if v, _ := c.Nodes[(i+1)%3].MustGet(t, "h", fmt.Sprintf("k%03d", i)); string(v) != "v" {
			t.Fatalf("k%03d = %q", i, v)
		}
	}
}
