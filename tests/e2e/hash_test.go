package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// hashPosition is how /v1/cluster and /v1/tables show a bound of a hash
// table's range: its hash position in hex.
var hashPosition = regexp.MustCompile(`^0x[0-9a-f]{16}$`)

// putAll writes keys through the nodes in turn with writers goroutines
// and returns each key's acknowledged version; a failed put fails t.
func putAll(t *testing.T, c *Cluster, table string, keys []string, value []byte, writers int) map[string]uint64 {
	t.Helper()
	var mu sync.Mutex
	acked := make(map[string]uint64, len(keys))
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := c.Nodes[w%len(c.Nodes)]
			for i := w; i < len(keys); i += writers {
				r := n.Put(table, keys[i], value)
				if r.Status != 200 {
					t.Errorf("%s: put %s: %s", n.Name, keys[i], r)
					return
				}
				v, err := r.Version()
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				acked[keys[i]] = v
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return acked
}

// checkAllReadable reads every key through the nodes in turn, and lists
// the table through every node: complete, ordered, with versions.
func checkAllReadable(t *testing.T, c *Cluster, table string, acked map[string]uint64, value []byte, pageSize int) {
	t.Helper()
	keys := make([]string, 0, len(acked))
	for k := range acked {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		n := c.Nodes[i%len(c.Nodes)]
		val, ver := n.MustGet(t, table, k)
		if !bytes.Equal(val, value) || ver != acked[k] {
			t.Fatalf("%s: %s = %q v%d, want v%d", n.Name, k, val, ver, acked[k])
		}
	}
	for _, n := range c.Nodes {
		items, err := n.List(table, "", pageSize)
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
}

// hashRanges returns the ranges of table in node n's /v1/cluster, and
// checks that their bounds are hash positions.
func hashRanges(t *testing.T, n *Node, table string) []RangeStatus {
	t.Helper()
	st, err := n.ClusterStatus(opTimeout)
	if err != nil {
		t.Fatal(err)
	}
	var out []RangeStatus
	for _, r := range st.Ranges {
		if r.Table != table {
			continue
		}
		for _, b := range []string{r.Start, r.End} {
			if b != "" && !hashPosition.MatchString(b) {
				t.Fatalf("range %d of hash table %s has bound %q, not a hash position", r.ID, table, b)
			}
		}
		out = append(out, r)
	}
	return out
}

// TestHashTableSpreadsSequentialKeys: "cairn table create --partitioning
// hash --initial-ranges 8" on three nodes; 6,000 sequential keys
// ("key-000001"...) spread evenly over the 8 ranges (max/min of the
// ranges' sizes at most 1.5; on a range table they would all land in its
// last range). Every key reads back through every node; a paged List is
// complete and in user-key order; a prefix list finds exactly its keys.
func TestHashTableSpreadsSequentialKeys(t *testing.T) {
	c := StartCluster(t, 3)
	out := cairnCLI(t, c.Nodes[0].Client, "", nil, "table", "create", "seq", "--partitioning", "hash", "--initial-ranges", "8")
	if !strings.HasPrefix(out, "OK table=seq") {
		t.Fatalf("table create: %q", out)
	}
	if out := cairnCLI(t, c.Nodes[1].Client, "", nil, "table", "ls"); !strings.Contains(out, "hash") {
		t.Fatalf("table ls does not show the partitioning: %q", out)
	}
	const n = 6000
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%06d", i+1)
	}
	value := bytes.Repeat([]byte("v"), 32)
	start := time.Now()
	acked := putAll(t, c, "seq", keys, value, 6)
	t.Logf("%d puts in %v", n, time.Since(start).Round(time.Millisecond))

	// The sizes as every node reports them, once all agree (followers
	// apply a moment after the leader acknowledges).
	var sizes []uint64
	waitFor(t, 30*time.Second, "all nodes to report the same range sizes", func() error {
		var first []uint64
		for i, node := range c.Nodes {
			rs := hashRanges(t, node, "seq")
			if len(rs) != 8 {
				return fmt.Errorf("%s shows %d ranges of seq", node.Name, len(rs))
			}
			var s []uint64
			for _, r := range rs {
				s = append(s, r.SizeBytes)
			}
			if i == 0 {
				first = s
			} else if fmt.Sprint(s) != fmt.Sprint(first) {
				return fmt.Errorf("%s reports %v, %s %v", node.Name, s, c.Nodes[0].Name, first)
			}
		}
		sizes = first
		return nil
	})
	lo, hi, total := sizes[0], sizes[0], uint64(0)
	for _, s := range sizes {
		lo, hi, total = min(lo, s), max(hi, s), total+s
	}
	ratio := float64(hi) / float64(max(lo, 1))
	t.Logf("hash table, 8 ranges, %d sequential keys: range sizes %v bytes (total %d), max/min = %.3f", n, sizes, total, ratio)
	if lo == 0 || ratio > 1.5 {
		t.Fatalf("uneven spread: sizes %v, max/min %.3f > 1.5", sizes, ratio)
	}
	checkAllReadable(t, c, "seq", acked, value, 500)
	// A prefix: key-0010xx is 100 keys, found in order across all ranges.
	items, err := c.Nodes[2].List("seq", "key-0010", 7)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 100 || items[0].Key != "key-001000" || items[99].Key != "key-001099" {
		t.Fatalf("prefix list: %d items", len(items))
	}
	// History, a read at a version, and cairn revert on a hash table.
	n0 := c.Nodes[0]
	v2 := n0.MustPut(t, "seq", "key-000001", []byte("second"))
	r := n0.Do(opTimeout, "GET", fmt.Sprintf("/v1/kv/seq/key-000001?version=%d", acked["key-000001"]), nil)
	if r.Status != 200 || !bytes.Equal(r.Body, value) {
		t.Fatalf("read at version %d: %s", acked["key-000001"], r)
	}
	if r := n0.Do(opTimeout, "GET", "/v1/kv/seq/key-000001?history", nil); r.Status != 200 || !strings.Contains(string(r.Body), `"key-000001"`) {
		t.Fatalf("history: %s", r)
	}
	cairnCLI(t, c.Nodes[1].Client, "", nil, "revert", "key-000001", "--table", "seq", "--to", fmt.Sprint(acked["key-000001"]))
	val, ver := c.Nodes[2].MustGet(t, "seq", "key-000001")
	if !bytes.Equal(val, value) || ver <= v2 {
		t.Fatalf("after revert: %q v%d (v2 %d)", val, ver, v2)
	}
	acked["key-000001"] = ver
	// A split by hand at a hash position, through HTTP and the CLI; the
	// replies and "cairn range ls" show hash positions.
	split, _ := json.Marshal(map[string]string{"table": "seq", "key": "0x1000000000000000"})
	r = n0.Do(opTimeout, "POST", "/v1/ranges/split", split)
	if r.Status != 200 || !strings.Contains(string(r.Body), `"end":"0x1000000000000000"`) {
		t.Fatalf("split by hand: %s", r)
	}
	out = cairnCLI(t, c.Nodes[1].Client, "", nil, "range", "split", "seq", "0x0800000000000000")
	if !strings.Contains(out, "[-, 0x0800000000000000) right=") {
		t.Fatalf("cairn range split: %q", out)
	}
	if _, err := cairnCLIErr(c.Nodes[1].Client, "", nil, "range", "split", "seq", "key-000001"); err == nil {
		t.Fatal("a split of a hash table at a user key must fail")
	}
	out = cairnCLI(t, c.Nodes[2].Client, "", nil, "range", "ls", "seq")
	if !strings.Contains(out, "0x0800000000000000") || strings.Count(out, "\n") != 11 {
		t.Fatalf("cairn range ls: %q", out)
	}
	checkAllReadable(t, c, "seq", acked, value, 1000)
}

// TestHashTableSplitsUnderWrites: a hash table of 2 ranges with a 2 KiB
// split size splits (halving hash intervals) while writers on every node
// put keys, and once more by hand at a hash position; no write fails,
// and afterwards every key reads back and lists, through every node.
func TestHashTableSplitsUnderWrites(t *testing.T) {
	c := StartCluster(t, 3, "--split-size", "2KiB")
	body := []byte(`{"name":"hs","partitioning":"hash","initial_ranges":2}`)
	if r := c.Nodes[0].Do(opTimeout, "POST", "/v1/tables", body); r.Status != 201 {
		t.Fatalf("create: %s", r)
	}
	keys := make([]string, 1500)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%06d", i+1)
	}
	value := bytes.Repeat([]byte("x"), 40)
	var acked map[string]uint64
	done := make(chan struct{})
	go func() {
		defer close(done)
		acked = putAll(t, c, "hs", keys, value, 6)
	}()
	// A split by hand in the middle of the writes, at a hash position
	// (it may already be a boundary a size split chose: 400).
	split, _ := json.Marshal(map[string]string{"table": "hs", "key": "0x2000000000000000"})
	if r := c.Nodes[1].Do(opTimeout, "POST", "/v1/ranges/split", split); r.Status != 200 && r.Status != 400 {
		t.Errorf("split by hand: %s", r)
	}
	<-done
	if t.Failed() {
		return
	}
	waitFor(t, 60*time.Second, "the hash table in at least 8 ranges", func() error {
		if rs := hashRanges(t, c.Nodes[0], "hs"); len(rs) < 8 {
			return fmt.Errorf("%d ranges", len(rs))
		}
		return nil
	})
	t.Logf("hash table: %d ranges after splits", len(hashRanges(t, c.Nodes[0], "hs")))
	checkAllReadable(t, c, "hs", acked, value, 97)
}
