package e2e

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// writeKeys writes count keys prefix%05d through the given nodes with
// workers concurrent writers, retrying failed writes a few times (no
// faults are injected meanwhile). It returns the acknowledged versions.
func writeKeys(t testing.TB, nodes []*Node, prefix string, count, workers int) map[string]uint64 {
	t.Helper()
	var mu sync.Mutex
	versions := make(map[string]uint64, count)
	var failures []string
	next := make(chan int)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				key := fmt.Sprintf("%s%05d", prefix, i)
				var last Reply
				ok := false
				for attempt := range 5 {
					last = nodes[(i+w+attempt)%len(nodes)].Put("default", key, valueOf(key))
					if last.Status == 200 {
						ok = true
						break
					}
					time.Sleep(200 * time.Millisecond)
				}
				mu.Lock()
				if ok {
					v, err := last.Version()
					if err != nil {
						failures = append(failures, err.Error())
					}
					versions[key] = v
				} else {
					failures = append(failures, last.String())
				}
				mu.Unlock()
			}
		}()
	}
	for i := range count {
		next <- i
	}
	close(next)
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d of %d writes failed 5 times with no fault injected; first: %s", len(failures), count, failures[0])
	}
	return versions
}

// valueOf is the value written for key: the key repeated, ~100 bytes.
func valueOf(key string) []byte {
	return []byte(strings.Repeat(key+";", 100/(len(key)+1)+1))
}

// checkKeys reads every key of versions through n: by one list of the
// prefix (exact key set) and by point reads of every stride-th key.
func checkKeys(t testing.TB, n *Node, prefix string, versions map[string]uint64, stride int) {
	t.Helper()
	items, err := n.List("default", prefix, 500)
	if err != nil {
		t.Fatalf("list through %s: %v", n.Name, err)
	}
	got := map[string]Item{}
	for _, it := range items {
		got[it.Key] = it
	}
	missing := 0
	for k, v := range versions {
		it, ok := got[k]
		if !ok || it.Version != v || !bytes.Equal(it.Value, valueOf(k)) {
			if missing++; missing <= 5 {
				t.Errorf("%s: key %q: got present=%v v%d %q; want v%d", n.Name, k, ok, it.Version, shorten(string(it.Value), 40), v)
			}
		}
	}
	if missing > 0 || len(got) != len(versions) {
		t.Fatalf("%s: %d of %d acknowledged keys missing or wrong; %d keys listed under %q", n.Name, missing, len(versions), len(got), prefix)
	}
	i := 0
	for k, v := range versions {
		if i++; i%stride != 0 {
			continue
		}
		val, ver := n.MustGet(t, "default", k)
		if ver != v || !bytes.Equal(val, valueOf(k)) {
			t.Fatalf("%s: GET %q = v%d %q; want v%d", n.Name, k, ver, shorten(string(val), 40), v)
		}
	}
	t.Logf("%s: all %d keys under %q present with their versions", n.Name, len(versions), prefix)
}

// TestRestartCatchesUpViaSnapshot: a follower is down while far more
// entries are written than the leader keeps in its log, so on restart it
// can only catch up through a Raft snapshot. It then has every key; to
// show the data is its own, it is made to serve the reads as leader.
func TestRestartCatchesUpViaSnapshot(t *testing.T) {
	c := StartCluster(t, 3, "--log-keep-entries", "100")
	leader := c.Leader("default")
	metaLeader := c.Leader("(meta)")
	// The follower to stop: prefer one that leads neither range.
	f := c.Others(leader)[0]
	for _, n := range c.Others(leader) {
		if n != metaLeader {
			f = n
			break
		}
	}
	t.Logf("leader of default %s, of meta %s; stopping follower %s", leader.Name, metaLeader.Name, f.Name)
	f.Kill9()

	start := time.Now()
	versions := writeKeys(t, c.Others(f), "snap/", 2000, 16)
	t.Logf("wrote 2000 keys in %v", time.Since(start).Round(time.Millisecond))

	// Restart with debug logs: raft logs "restored snapshot" at its info
	// level, which cairn logs at debug.
	f.ExtraArgs = []string{"--log-level", "debug"}
	start = time.Now()
	f.Restart()
	var rangeID uint64
	waitFor(t, 30*time.Second, f.Name+" applied index of default equal to the leader's", func() error {
		l := c.Leader("default")
		lst, err := l.ClusterStatus(time.Second)
		if err != nil {
			return err
		}
		fst, err := f.ClusterStatus(time.Second)
		if err != nil {
			return err
		}
		lr, fr := lst.Range("default"), fst.Range("default")
		if lr == nil || fr == nil {
			return fmt.Errorf("range of default missing: leader %+v, %s %+v", lr, f.Name, fr)
		}
		rangeID = fr.ID
		if fr.AppliedIndex != lr.AppliedIndex {
			return fmt.Errorf("%s applied %d, leader %s applied %d", f.Name, fr.AppliedIndex, l.Name, lr.AppliedIndex)
		}
		return nil
	})
	t.Logf("%s caught up in %v after its restart", f.Name, time.Since(start).Round(time.Millisecond))
	if !logHasSnapshot(f, rangeID) {
		t.Errorf("%s's log shows no \"restored snapshot\" for range %d: it did not catch up through a snapshot, so this test did not test log truncation", f.Name, rangeID)
	}

	// Kill -9 the two others and restart them: from now on the data of the
	// cluster includes the caught-up follower's.
	others := c.Others(f)
	for _, n := range others {
		n.Kill9()
	}
	for _, n := range others {
		n.Start()
	}
	c.WaitReady()

	// Make f the leader of default, so that its own state machine serves
	// the reads: kill the leader until f wins an election (bounded).
	for attempt := 0; ; attempt++ {
		l := c.Leader("default")
		if l == f {
			t.Logf("%s leads default after %d leader kills", f.Name, attempt)
			break
		}
		if attempt == 6 {
			t.Logf("%s did not win an election in %d tries; reading through it as a follower", f.Name, attempt)
			break
		}
		l.Kill9()
		waitFor(t, leaderWait, "a new leader", func() error {
			if c.Leader("default") == l {
				return fmt.Errorf("still %s", l.Name)
			}
			return nil
		})
		l.Restart()
	}
	checkKeys(t, f, "snap/", versions, 10)
	for _, n := range c.Others(f) {
		checkKeys(t, n, "snap/", versions, 100)
	}
}

// logHasSnapshot reports whether n's log records a restored snapshot of
// range id.
func logHasSnapshot(n *Node, id uint64) bool {
	data, err := os.ReadFile(n.LogPath)
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.Contains(line, "restored snapshot") && strings.Contains(line, fmt.Sprintf("range=%d", id)) {
			return true
		}
	}
	return false
}
