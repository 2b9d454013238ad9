package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestKillLeaderOfQuiescedRange: the "default" range of a 3-process
// cluster goes idle and quiesces on every node (cairn_ranges_quiesced);
// then its leader's process is killed with SIGKILL. The quiesced followers
// must notice through node liveness (docs/design/quiescence.md) and elect
// a leader: a write through a survivor succeeds within maxFailoverGap, and
// both survivors read it, with a version above the write before the kill.
func TestKillLeaderOfQuiescedRange(t *testing.T) {
	c := StartCluster(t, 3, "--quiesce=true")
	v0 := c.Nodes[0].MustPut(t, "default", "q", []byte("before"))
	for _, n := range c.Nodes {
		waitFor(t, 20*time.Second, n.Name+" quiescing the idle default range", func() error {
			if q := metricValue(n, "cairn_ranges_quiesced"); q < 1 {
				return fmt.Errorf("cairn_ranges_quiesced = %v", q)
			}
			return nil
		})
	}
	leader := c.Leader("default")
	t.Logf("default quiesced on every node; killing its leader %s", leader.Name)
	killAt := time.Now()
	leader.Kill9()
	survivors := c.Others(leader)
	var v1 uint64
	waitFor(t, 2*maxFailoverGap, "a write through a survivor after the kill", func() error {
		r := survivors[0].Put("default", "q", []byte("after"))
		if r.Status != 200 {
			return fmt.Errorf("put: %s", r)
		}
		var err error
		v1, err = r.Version()
		return err
	})
	gap := time.Since(killAt)
	t.Logf("first write after the kill acknowledged %v after it", gap.Round(time.Millisecond))
	if gap > maxFailoverGap {
		t.Errorf("a quiesced range took %v to accept writes after its leader died; want < %v", gap, maxFailoverGap)
	}
	if v1 <= v0 {
		t.Errorf("version after the kill %d not above %d", v1, v0)
	}
	for _, n := range survivors {
		if val, ver := n.MustGet(t, "default", "q"); string(val) != "after" || ver != v1 {
			t.Errorf("%s reads q = %q v%d; want \"after\" v%d", n.Name, val, ver, v1)
		}
	}
}

// metricValue returns the sum of the samples of metric name on n's
// /metrics (0 if absent).
func metricValue(n *Node, name string) float64 {
	r := n.Do(opTimeout, "GET", "/metrics", nil)
	sum := 0.0
	for _, line := range strings.Split(string(r.Body), "\n") {
		var v float64
		if _, err := fmt.Sscanf(line, name+" %g", &v); err == nil {
			sum += v
		}
	}
	return sum
}
