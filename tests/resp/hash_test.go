package resp

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sort"
	"testing"
)

// TestHashTableScan: over RESP, a hash table (keys spread over 4 ranges by
// hash) serves SET, GET, SCAN (MATCH, COUNT) and DBSIZE as a range table
// does: SCAN's cursor walks every key once, whatever range holds it.
func TestHashTableScan(t *testing.T) {
	n := shared.nodes[0]
	name := fmt.Sprintf("hashscan%d", len(t.Name()))
	resp, err := http.Post("http://"+n.client+"/v1/tables", "application/json",
		bytes.NewReader(fmt.Appendf(nil, `{"name":%q,"partitioning":"hash","initial_ranges":4}`, name)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("create table: %s", resp.Status)
	}
	rdb := newClient(n.respURL, 2)
	defer rdb.Close()
	ctx := context.Background()
	// CAIRN.TABLE is per connection: one connection for the whole test.
	conn := rdb.Conn()
	defer conn.Close()
	must(t, "CAIRN.TABLE", conn.Do(ctx, "CAIRN.TABLE", name).Err())
	var want []string
	for i := range 200 {
		k := fmt.Sprintf("user:%04d", i)
		must(t, "SET", conn.Set(ctx, k, "v", 0).Err())
		want = append(want, k)
	}
	must(t, "SET", conn.Set(ctx, "other", "v", 0).Err())
	v, err := conn.Get(ctx, "user:0042").Result()
	eq(t, "GET", v+errText(err), "v")
	size, err := conn.DBSize(ctx).Result()
	must(t, "DBSIZE", err)
	eq(t, "DBSIZE", size, int64(201))
	var got []string
	cursor := uint64(0)
	for page := 0; ; page++ {
		if page > 1000 {
			t.Fatal("SCAN does not end")
		}
		ks, next, err := conn.Scan(ctx, cursor, "user:*", 17).Result()
		must(t, "SCAN", err)
		got = append(got, ks...)
		if cursor = next; cursor == 0 {
			break
		}
	}
	sort.Strings(got)
	eq(t, "SCAN keys", fmt.Sprint(got), fmt.Sprint(want))
}
