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
}
