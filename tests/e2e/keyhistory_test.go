package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestKeyHistory: through any node of a 3-node cluster, a key's retained
// changes list newest first with their links; ?version=V answers the value
// the key had at V (404 before it existed and while deleted); and the CLI
// prints the history and reverts the key to an older value with a
// conditional write.
func TestKeyHistory(t *testing.T) {
	c := StartCluster(t, 3)
	w := c.Nodes[0]
	v1 := w.MustPut(t, "default", "h", []byte("one"))
	v2 := w.MustPut(t, "default", "h", []byte("two"))
	if r := w.Del("default", "h"); r.Status != 200 {
		t.Fatal(r)
	}
	v4 := w.MustPut(t, "default", "h", []byte("four"))
	for _, n := range c.Nodes {
		r := n.Do(opTimeout, "GET", kvPath("default", "h")+"?history", nil)
		if r.Status != 200 {
			t.Fatalf("%s: %s", n.Name, r)
		}
		var h struct {
			Versions []struct {
				Type        string
				Version     uint64
				Value       string
				PrevVersion uint64 `json:"prev_version"`
			}
			Complete bool
		}
		if err := json.Unmarshal(r.Body, &h); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, v := range h.Versions {
			got = append(got, fmt.Sprintf("%s:%s", v.Type, v.Value))
		}
		if strings.Join(got, ",") != "put:Zm91cg==,delete:,put:dHdv,put:b25l" || !h.Complete {
			t.Fatalf("%s: history %v complete=%v", n.Name, got, h.Complete)
		}
		if h.Versions[0].Version != v4 || h.Versions[0].PrevVersion != h.Versions[1].Version || h.Versions[2].Version != v2 ||
			h.Versions[3].Version != v1 || h.Versions[3].PrevVersion != 0 || h.Versions[1].Version <= v2 {
			t.Fatalf("%s: versions or links wrong: %+v (v1=%d v2=%d v4=%d)", n.Name, h.Versions, v1, v2, v4)
		}
		for _, tc := range []struct {
			at     uint64
			status int
			body   string
		}{{v1, 200, "one"}, {v2 - 1, 200, "one"}, {v2, 200, "two"}, {h.Versions[1].Version, 404, ""}, {v4, 200, "four"}, {v1 - 1, 404, ""}} {
			r := n.Do(opTimeout, "GET", fmt.Sprintf("%s?version=%d", kvPath("default", "h"), tc.at), nil)
			if r.Status != tc.status || tc.status == 200 && string(r.Body) != tc.body {
				t.Fatalf("%s: at %d: %s, want %d %q", n.Name, tc.at, r, tc.status, tc.body)
			}
		}
	}
	out, err := cairnCLIErr(c.Nodes[1].Client, "", nil, "history", "h")
	if err != nil || !strings.HasPrefix(out, fmt.Sprintf("%d put four\n", v4)) || strings.Count(out, "\n") != 4 {
		t.Fatalf("cairn history: %q %v", out, err)
	}
	if out, err := cairnCLIErr(c.Nodes[2].Client, "", nil, "revert", "h", "--to", fmt.Sprint(v2)); err != nil {
		t.Fatalf("cairn revert: %q %v", out, err)
	}
	if got, _ := w.MustGet(t, "default", "h"); string(got) != "two" {
		t.Fatalf("after revert: %q", got)
	}
}

// TestTableHistoryRetention: per-table key history retention. A table
// created with history_keep 3 and history_for 0s keeps exactly the 3
// newest changes of a key on every replica; after a PATCH to 6 the next
// writes keep 6; the default table keeps the nodes' defaults (16 newest,
// and everything younger than 1 minute); bad settings are refused.
func TestTableHistoryRetention(t *testing.T) {
	c := StartCluster(t, 3)
	w := c.Nodes[0]
	if r := w.Do(opTimeout, "POST", "/v1/tables", []byte(`{"name":"hk","history_keep":3,"history_for":"0s"}`)); r.Status != 201 ||
		!strings.Contains(string(r.Body), `"history_keep":3`) || !strings.Contains(string(r.Body), `"history_for":"0s"`) {
		t.Fatalf("create: %s", r)
	}
	for _, bad := range []string{`{"name":"x","history_keep":10001}`, `{"name":"x","history_for":"721h"}`, `{"name":"x","history_for":"soon"}`, `{"name":"x","history_for":"-1s"}`} {
		if r := w.Do(opTimeout, "POST", "/v1/tables", []byte(bad)); r.Status != 400 {
			t.Errorf("create %s: %s, want 400", bad, r)
		}
	}
	count := func(table, key string) []int {
		var out []int
		for _, n := range c.Nodes {
			r := n.Do(opTimeout, "GET", kvPath(table, key)+"?history", nil)
			if r.Status != 200 {
				t.Fatalf("%s: %s", n.Name, r)
			}
			var h struct{ Versions []json.RawMessage }
			if err := json.Unmarshal(r.Body, &h); err != nil {
				t.Fatal(err)
			}
			out = append(out, len(h.Versions))
		}
		return out
	}
	for i := range 10 {
		w.MustPut(t, "hk", "k", []byte(fmt.Sprint(i)))
		w.MustPut(t, "default", "k", []byte(fmt.Sprint(i)))
	}
	if got := count("hk", "k"); fmt.Sprint(got) != "[3 3 3]" {
		t.Errorf("hk keeps %v changes per node, want 3 on each", got)
	}
	if got := count("default", "k"); fmt.Sprint(got) != "[10 10 10]" {
		t.Errorf("default keeps %v changes per node, want all 10 on each", got)
	}
	if r := w.Do(opTimeout, "PATCH", "/v1/tables/hk", []byte(`{"history_keep":6}`)); r.Status != 200 || !strings.Contains(string(r.Body), `"history_keep":6`) {
		t.Fatalf("PATCH: %s", r)
	}
	waitFor(t, 10*time.Second, "every node applied the PATCH", func() error {
		for _, n := range c.Nodes {
			r := n.Do(opTimeout, "GET", "/v1/tables/hk", nil)
			if !strings.Contains(string(r.Body), `"history_keep":6`) {
				return fmt.Errorf("%s: %s", n.Name, r)
			}
		}
		return nil
	})
	for i := range 10 {
		c.Nodes[i%3].MustPut(t, "hk", "k", []byte(fmt.Sprint(i)))
	}
	if got := count("hk", "k"); fmt.Sprint(got) != "[6 6 6]" {
		t.Errorf("after PATCH hk keeps %v changes per node, want 6 on each", got)
	}
}
