package e2e

import (
	"fmt"
	"testing"
	"time"
)

// TestClusterWritesThroughEveryNode: any node serves any request. Writes
// through each node are read through every other node, and a table created
// through one node is usable through another at once.
func TestClusterWritesThroughEveryNode(t *testing.T) {
	c := StartCluster(t, 3)

	versions := map[string]uint64{}
	for _, w := range c.Nodes {
		for i := range 20 {
			k := fmt.Sprintf("via-%s/%02d", w.Name, i)
			versions[k] = w.MustPut(t, "default", k, []byte("written through "+w.Name+" "+k))
		}
	}
	for _, w := range c.Nodes {
		for _, r := range c.Others(w) {
			for i := range 20 {
				k := fmt.Sprintf("via-%s/%02d", w.Name, i)
				val, ver := r.MustGet(t, "default", k)
				if string(val) != "written through "+w.Name+" "+k || ver != versions[k] {
					t.Fatalf("%s reads %q = %q v%d; want the value written through %s v%d", r.Name, k, val, ver, w.Name, versions[k])
				}
			}
			items, err := r.List("default", "via-"+w.Name+"/", 7)
			if err != nil {
				t.Fatal(err)
			}
			if len(items) != 20 {
				t.Fatalf("%s lists %d keys written through %s, want 20", r.Name, len(items), w.Name)
			}
		}
	}

	// Overwrites through different nodes: versions still increase.
	var last uint64
	for i := range 9 {
		w := c.Nodes[i%3]
		v := w.MustPut(t, "default", "hop", []byte(fmt.Sprint(i)))
		if v <= last {
			t.Fatalf("write %d of hop through %s got version %d, not above %d", i, w.Name, v, last)
		}
		last = v
	}
	for _, r := range c.Nodes {
		if val, ver := r.MustGet(t, "default", "hop"); string(val) != "8" || ver != last {
			t.Fatalf("%s reads hop = %q v%d; want %q v%d", r.Name, val, ver, "8", last)
		}
	}

	// Conditional writes and deletes through followers are decided by the
	// leader on the current version.
	for _, w := range c.Nodes {
		k := "cond-" + w.Name
		v := w.MustPut(t, "default", k, []byte("a"), "If-None-Match", "*")
		for _, o := range c.Others(w) {
			if r := o.Put("default", k, []byte("b"), "If-None-Match", "*"); r.Status != 412 {
				t.Fatalf("create-only put of existing %q through %s: %s; want 412", k, o.Name, r)
			}
			if r := o.Put("default", k, []byte("b"), "If-Match", fmt.Sprintf(`"%d"`, v+1)); r.Status != 412 {
				t.Fatalf("put of %q with a wrong If-Match through %s: %s; want 412", k, o.Name, r)
			}
		}
		o := c.Others(w)[0]
		v2 := o.MustPut(t, "default", k, []byte("c"), "If-Match", fmt.Sprintf(`"%d"`, v))
		if v2 <= v {
			t.Fatalf("conditional put of %q through %s got version %d, not above %d", k, o.Name, v2, v)
		}
		last := c.Others(w)[1]
		if r := last.Del("default", k, "If-Match", fmt.Sprintf(`"%d"`, v)); r.Status != 412 {
			t.Fatalf("delete of %q with a stale If-Match through %s: %s; want 412", k, last.Name, r)
		}
		if r := last.Del("default", k, "If-Match", fmt.Sprintf(`"%d"`, v2)); r.Status != 200 {
			t.Fatalf("delete of %q through %s: %s", k, last.Name, r)
		}
		for _, r := range c.Nodes {
			if g := r.Get("default", k); g.Status != 404 {
				t.Fatalf("%s reads deleted %q: %s; want 404", r.Name, k, g)
			}
		}
	}

	// A table created through n2 is writable through n3 at once and
	// readable through n1.
	n1, n2, n3 := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	if r := n2.Do(opTimeout, "POST", "/v1/tables", []byte(`{"name":"orders"}`)); r.Status != 200 && r.Status != 201 {
		t.Fatalf("create table through n2: %s", r)
	}
	r := n3.Put("orders", "o-1", []byte("first order"))
	if r.Status != 200 {
		t.Fatalf("write to the new table through n3 right after its creation: %s", r)
	}
	v, err := r.Version()
	if err != nil {
		t.Fatal(err)
	}
	if val, ver := n1.MustGet(t, "orders", "o-1"); string(val) != "first order" || ver != v {
		t.Fatalf("n1 reads orders/o-1 = %q v%d; want %q v%d", val, ver, "first order", v)
	}
	if r := n1.Get("default", "o-1"); r.Status != 404 {
		t.Fatalf("orders' key visible in default: %s", r)
	}
	if r := n1.Do(opTimeout, "POST", "/v1/tables", []byte(`{"name":"orders"}`)); r.Status != 409 {
		t.Fatalf("create orders again through n1: %s; want 409", r)
	}
	// Every node learns the new table's range and a leader for it.
	for _, n := range c.Nodes {
		waitFor(t, 10*time.Second, n.Name+" knows a leader of orders", func() error {
			st, err := n.ClusterStatus(time.Second)
			if err != nil {
				return err
			}
			rs := st.Range("orders")
			if rs == nil || rs.Leader == 0 {
				return fmt.Errorf("range of orders: %+v", rs)
			}
			return nil
		})
	}
	// /v1/cluster lists the three nodes, all alive, by name and id.
	st, err := n1.ClusterStatus(time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Nodes) != 3 {
		t.Fatalf("/v1/cluster lists %d nodes, want 3: %+v", len(st.Nodes), st.Nodes)
	}
	for i, nd := range st.Nodes {
		if nd.ID != uint64(i+1) || nd.Name != fmt.Sprintf("n%d", i+1) || !nd.Alive {
			t.Fatalf("/v1/cluster node %d = %+v; want id %d name n%d alive", i, nd, i+1, i+1)
		}
	}
}
