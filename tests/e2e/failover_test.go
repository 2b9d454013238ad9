package e2e

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// maxFailoverGap bounds the write outage after kill -9 of a leader: the
// election timeout is 10 ticks of 100ms, randomised up to twice that.
const maxFailoverGap = 6 * time.Second

// TestKillLeaderWhileWriting: 8 writers write through random nodes while
// the leader of "default" is killed with SIGKILL and later restarted.
// Writes resume within maxFailoverGap, and every acknowledged write
// survives with its version; versions of each shared key only grow.
func TestKillLeaderWhileWriting(t *testing.T) {
	c := StartCluster(t, 3)
	h := newHistory()
	shared := []string{"shared-a", "shared-b", "shared-c"}
	stop := make(chan struct{})
	start := time.Now()
	wg := h.writers(c, 8, shared, stop)
	stopped := false
	stopWriters := func() {
		if !stopped {
			stopped = true
			close(stop)
			wg.Wait()
		}
	}
	defer stopWriters() // on t.Fatal too: no goroutine outlives the test

	time.Sleep(3 * time.Second)
	leader := c.Leader("default")
	st, _ := leader.ClusterStatus(time.Second)
	t.Logf("killing %s, leader of default (term %d)", leader.Name, st.Range("default").Term)
	killAt := time.Now()
	leader.Kill9()

	// Writes resume through the survivors.
	waitFor(t, 2*maxFailoverGap, "an acknowledged write after the kill", func() error {
		if _, first := h.ackGap(killAt); first.IsZero() {
			return fmt.Errorf("no write sent after the kill was acknowledged yet")
		}
		return nil
	})
	last, first := h.ackGap(killAt)
	gap := first.Sub(last)
	t.Logf("last ack %v before the kill, first ack of a new write %v after it: gap %v",
		killAt.Sub(last).Round(time.Millisecond), first.Sub(killAt).Round(time.Millisecond), gap.Round(time.Millisecond))
	if gap > maxFailoverGap {
		t.Errorf("writes stalled %v after kill -9 of the leader; want < %v", gap, maxFailoverGap)
	}
	newLeader := c.Leader("default")
	t.Logf("new leader of default: %s", newLeader.Name)

	time.Sleep(2 * time.Second)
	restartAt := time.Now()
	leader.Restart()
	t.Logf("%s restarted and ready in %v", leader.Name, time.Since(restartAt).Round(time.Millisecond))

	if d := 12*time.Second - time.Since(start); d > 0 {
		time.Sleep(d)
	}
	stopWriters()
	h.report(t)
	if g, at := h.maxAckGap(); true {
		t.Logf("longest time without an ack during the run: %v (from %v after the start)", g.Round(time.Millisecond), at.Sub(start).Round(time.Millisecond))
	}
	h.mu.Lock()
	acked := len(h.acked)
	h.mu.Unlock()
	if acked < 100 {
		t.Errorf("only %d writes were acknowledged in 12s", acked)
	}
	h.checkVersions(t)
	c.WaitReady()
	h.checkFinal(t, c.Nodes)
}

// TestVersionsMonotonicAcrossLeaderChanges: four writers overwrite one key
// through random nodes while the leader is killed and restarted twice. The
// versions acknowledged for the key strictly increase in each writer's
// order and in real time, and the final value is the last acknowledged.
func TestVersionsMonotonicAcrossLeaderChanges(t *testing.T) {
	c := StartCluster(t, 3)
	h := newHistory()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				nodes := c.Ready()
				if len(nodes) == 0 {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				h.put(nodes[(w+seq)%len(nodes)], w, "counter", fmt.Sprintf("w%d-%d", w, seq))
			}
		}()
	}
	stopped := false
	stopWriters := func() {
		if !stopped {
			stopped = true
			close(stop)
			wg.Wait()
		}
	}
	defer stopWriters()

	var terms []uint64
	for round := 1; round <= 2; round++ {
		time.Sleep(2 * time.Second)
		leader := c.Leader("default")
		st, err := leader.ClusterStatus(time.Second)
		if err != nil {
			t.Fatal(err)
		}
		terms = append(terms, st.Range("default").Term)
		t.Logf("round %d: killing %s, leader of default in term %d", round, leader.Name, st.Range("default").Term)
		killAt := time.Now()
		leader.Kill9()
		waitFor(t, 2*maxFailoverGap, "an acknowledged write after the kill", func() error {
			if _, first := h.ackGap(killAt); first.IsZero() {
				return fmt.Errorf("no write sent after the kill was acknowledged yet")
			}
			return nil
		})
		last, first := h.ackGap(killAt)
		t.Logf("round %d: writes resumed; gap %v", round, first.Sub(last).Round(time.Millisecond))
		if first.Sub(last) > maxFailoverGap {
			t.Errorf("round %d: writes stalled %v after kill -9 of the leader", round, first.Sub(last))
		}
		time.Sleep(time.Second)
		leader.Restart()
	}
	time.Sleep(2 * time.Second)
	stopWriters()
	h.report(t)

	leader := c.Leader("default")
	st, err := leader.ClusterStatus(time.Second)
	if err != nil {
		t.Fatal(err)
	}
	terms = append(terms, st.Range("default").Term)
	t.Logf("terms of default's leaders: %v", terms)
	for i := 1; i < len(terms); i++ {
		if terms[i] <= terms[i-1] {
			t.Errorf("leader terms did not grow across the kills: %v", terms)
		}
	}

	h.mu.Lock()
	n := len(h.acked)
	h.mu.Unlock()
	if n < 50 {
		t.Errorf("only %d overwrites were acknowledged", n)
	}
	h.checkVersions(t)
	c.WaitReady()
	h.checkFinal(t, c.Nodes)
}
