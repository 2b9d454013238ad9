package e2e

import (
	"fmt"
	"testing"
	"time"
)

// TestTTLAcrossNodes: a key written with ?ttl= through one node shows the
// same expiry on every node, stays readable everywhere until then, and is
// gone from every node (get and list) once it passes, without anyone
// deleting it; a key without a TTL and one with a long TTL stay.
func TestTTLAcrossNodes(t *testing.T) {
	c := StartCluster(t, 3)
	w := c.Nodes[0]
	r := w.Do(opTimeout, "PUT", kvPath("default", "short")+"?ttl=3s", []byte("v"))
	if r.Status != 200 {
		t.Fatalf("put with ttl: %s", r)
	}
	written := time.Now()
	w.MustPut(t, "default", "plain", []byte("p"))
	if r := w.Do(opTimeout, "PUT", kvPath("default", "long")+"?ttl=1h", []byte("l")); r.Status != 200 {
		t.Fatalf("put with ttl: %s", r)
	}
	var expiry string
	for _, n := range c.Nodes {
		g := n.Get("default", "short")
		if g.Status != 200 || string(g.Body) != "v" {
			t.Fatalf("%s: get before expiry: %s", n.Name, g)
		}
		e := g.Header.Get("Cairn-Expires-At")
		if e == "" || (expiry != "" && e != expiry) {
			t.Fatalf("%s: Cairn-Expires-At %q (other nodes: %q)", n.Name, e, expiry)
		}
		expiry = e
	}
	var at int64
	if _, err := fmt.Sscan(expiry, &at); err != nil {
		t.Fatal(err)
	}
	if d := time.UnixMilli(at).Sub(written); d < 2*time.Second || d > 4*time.Second {
		t.Fatalf("expiry %v after the write; want about 3s", d)
	}
	time.Sleep(time.Until(time.UnixMilli(at)) + 100*time.Millisecond)
	// Gone through every node: the first get through a follower expires
	// it through Raft if the leader's expirer has not yet.
	for _, n := range c.Others(c.Leader("default")) {
		if g := n.Get("default", "short"); g.Status != 404 {
			t.Fatalf("%s: get after expiry: %s; want 404", n.Name, g)
		}
	}
	waitFor(t, 10*time.Second, "every node to list only the keys without or with a long TTL", func() error {
		for _, n := range c.Nodes {
			if g := n.Get("default", "short"); g.Status != 404 {
				return fmt.Errorf("%s: get after expiry: %s", n.Name, g)
			}
			items, err := n.List("default", "", 10)
			if err != nil {
				return err
			}
			if len(items) != 2 {
				return fmt.Errorf("%s lists %d keys, want 2 (long, plain)", n.Name, len(items))
			}
		}
		return nil
	})
	for _, n := range c.Nodes {
		if g := n.Get("default", "long"); g.Status != 200 {
			t.Fatalf("%s: the key with a 1h TTL: %s", n.Name, g)
		}
	}
}
