package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
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
