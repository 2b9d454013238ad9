package e2e

import (
	"testing"
	"time"
)

// TestSIGTERMIsClean: SIGTERM stops a node with status 0 within 10s, the
// cluster keeps serving, and the node's data is intact after its restart;
// the same holds for a follower and for the whole cluster stopped with
// SIGTERM one node at a time.
func TestSIGTERMIsClean(t *testing.T) {
	c := StartCluster(t, 3)
	all := map[string]uint64{}
	add := func(m map[string]uint64) {
		for k, v := range m {
			all[k] = v
		}
	}
	add(writeKeys(t, c.Nodes, "term/a/", 200, 8))

	// The leader first.
	leader := c.Leader("default")
	t.Logf("SIGTERM to %s, the leader of default", leader.Name)
	leader.Term()
	add(writeKeys(t, c.Others(leader), "term/b/", 100, 8))
	leader.Restart()
	checkKeys(t, leader, "term/", all, 10)

	// Then a follower.
	var follower *Node
	for _, n := range c.Others(c.Leader("default")) {
		follower = n
	}
	t.Logf("SIGTERM to %s, a follower", follower.Name)
	follower.Term()
	add(writeKeys(t, c.Others(follower), "term/c/", 100, 8))
	follower.Restart()
	checkKeys(t, follower, "term/", all, 10)

	// Then the whole cluster, one node at a time; the last ones stop
	// without a quorum and must still exit cleanly.
	for _, n := range c.Nodes {
		n.Term()
	}
	start := time.Now()
	for _, n := range c.Nodes {
		n.Start()
	}
	c.WaitReady()
	t.Logf("whole cluster restarted and ready in %v", time.Since(start).Round(time.Millisecond))
	for _, n := range c.Nodes {
		checkKeys(t, n, "term/", all, 20)
	}
	// And it takes writes again.
	add(writeKeys(t, c.Nodes, "term/d/", 30, 3))
	checkKeys(t, c.Nodes[0], "term/", all, 1000)
}
