package e2e

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestQuotas: a table with a size quota takes writes until the next one
// would pass it (507 quota_bytes, through any node), takes them again
// once deletes freed space; a table with a rate quota refuses writes over
// it (429 quota_rate) and the refused writes are not executed.
func TestQuotas(t *testing.T) {
	c := StartCluster(t, 3)
	n := c.Nodes[0]
	if r := n.Do(opTimeout, "POST", "/v1/tables", []byte(`{"name":"small","max_bytes":2048}`)); r.Status != 200 && r.Status != 201 {
		t.Fatalf("create small: %s", r)
	}
	if r := n.Do(opTimeout, "GET", "/v1/tables/small", nil); !strings.Contains(string(r.Body), `"max_bytes":2048`) {
		t.Fatalf("table shows no quota: %s", r)
	}
	value := bytes.Repeat([]byte("v"), 200)
	var refused string
	written := 0
	for i := range 30 {
		node := c.Nodes[i%3]
		r := node.Put("small", fmt.Sprintf("k%02d", i), value)
		if r.Status == 507 {
			refused = string(r.Body)
			break
		}
		if r.Status != 200 {
			t.Fatalf("put %d: %s", i, r)
		}
		written++
	}
	if refused == "" || !strings.Contains(refused, "quota_bytes") || written < 5 || written > 10 {
		t.Fatalf("after %d writes of 200 bytes into 2 KiB: refused %q", written, refused)
	}
	// Deletes are always allowed and free space.
	for i := range 3 {
		if r := n.Del("small", fmt.Sprintf("k%02d", i)); r.Status != 200 {
			t.Fatalf("delete: %s", r)
		}
	}
	waitFor(t, 10*time.Second, "a write after deletes", func() error {
		if r := c.Nodes[2].Put("small", "again", value); r.Status != 200 {
			return fmt.Errorf("%s", r)
		}
		return nil
	})

	if r := n.Do(opTimeout, "POST", "/v1/tables", []byte(`{"name":"slow","max_writes_per_sec":5}`)); r.Status != 200 && r.Status != 201 {
		t.Fatalf("create slow: %s", r)
	}
	ok, limited := 0, 0
	for i := range 40 {
		r := c.Nodes[i%3].Put("slow", fmt.Sprintf("r%02d", i), []byte("x"))
		switch r.Status {
		case 200:
			ok++
		case 429:
			limited++
			if !strings.Contains(string(r.Body), "quota_rate") {
				t.Fatalf("429 without quota_rate: %s", r)
			}
			// Not executed: the key is absent.
			if g := n.Get("slow", fmt.Sprintf("r%02d", i)); g.Status != 404 {
				t.Fatalf("a refused write took effect: %s", g)
			}
		default:
			t.Fatalf("put %d: %s", i, r)
		}
	}
	if limited == 0 || ok == 0 {
		t.Fatalf("rate quota of 5/s over 40 quick writes: %d ok, %d refused", ok, limited)
	}
	t.Logf("size quota: %d writes of 200 B fit in 2 KiB; rate quota: %d of 40 quick writes passed", written, ok)

	// A read quota of 30/s (one range, three replicas: 10/s each): 120
	// quick reads spread over the nodes are partly refused with 429
	// quota_rate, and those served stay within what the buckets allow
	// (a burst of one second's worth, then the rate).
	if r := n.Do(opTimeout, "POST", "/v1/tables", []byte(`{"name":"cold","max_reads_per_sec":30}`)); r.Status != 201 || !strings.Contains(string(r.Body), `"max_reads_per_sec":30`) {
		t.Fatalf("create cold: %s", r)
	}
	n.MustPut(t, "cold", "k", []byte("v"))
	start := time.Now()
	served, refusedReads := 0, 0
	for i := range 120 {
		r := c.Nodes[i%3].Get("cold", "k")
		switch r.Status {
		case 200:
			served++
		case 429:
			refusedReads++
			if !strings.Contains(string(r.Body), "quota_rate") || !strings.Contains(string(r.Body), "reads/s") {
				t.Fatalf("read 429 without quota_rate and reads/s: %s", r)
			}
		default:
			t.Fatalf("get %d: %s", i, r)
		}
	}
	allowed := 30 + 30*time.Since(start).Seconds() + 3 // burst, refill, rounding per bucket
	if refusedReads == 0 || served == 0 || float64(served) > allowed {
		t.Fatalf("read quota of 30/s over 120 quick reads in %v: %d served (at most %.0f allowed), %d refused", time.Since(start), served, allowed, refusedReads)
	}
	// Lifting it (PATCH) serves every read again.
	if r := n.Do(opTimeout, "PATCH", "/v1/tables/cold", []byte(`{"max_reads_per_sec":0}`)); r.Status != 200 {
		t.Fatalf("PATCH: %s", r)
	}
	waitFor(t, 10*time.Second, "reads served after the quota is lifted", func() error {
		for i := range 60 {
			if r := c.Nodes[i%3].Get("cold", "k"); r.Status != 200 {
				return fmt.Errorf("get %d: %s", i, r)
			}
		}
		return nil
	})
	t.Logf("read quota: %d of 120 quick reads served, %d refused", served, refusedReads)
}
