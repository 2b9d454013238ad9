package e2e

// Goal: read learners (issue 7): a table created with --learners 1 gets,
// on a 4-node cluster, three voters and one learner per range, placed by
// the coordinator; the learner serves session and bounded-stale reads
// itself, with the guarantees of those levels; its lag is visible in GET
// /v1/cluster; and it never slows writes: with the learner frozen
// (SIGSTOP), writes are acknowledged as fast as before, and once it is
// resumed its reads are never older than their bound. Finally a PATCH of
// the table to no learners takes it away.
// Method: 3 nodes plus one that joins; HTTP only; the staleness check
// compares each stale read with the newest write acknowledged (by the
// client's clock, which is later than the server's) before the read was
// sent minus the bound.

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"
)

func TestReadLearners(t *testing.T) {
	c := StartCluster(t, 3, placementArgs...)
	n1 := c.Nodes[0]
	c.Join(n1)
	if r := n1.Do(opTimeout, "POST", "/v1/tables", []byte(`{"name":"cat","replicas":3,"learners":1}`)); r.Status != 201 {
		t.Fatalf("create table: %s", r)
	} else if !bytes.Contains(r.Body, []byte(`"learners":1`)) {
		t.Fatalf("table reply does not say learners 1: %s", r.Body)
	}
	for _, bad := range []string{`{"name":"x","learners":8}`, `{"name":"x","learners":-1}`, `{"name":"x","learners":"two"}`} {
		if r := n1.Do(opTimeout, "POST", "/v1/tables", []byte(bad)); r.Status != 400 {
			t.Errorf("create %s: %s, want 400", bad, r)
		}
	}

	// The coordinator adds the learner on the node without a voter.
	var rs *RangeStatus
	waitFor(t, 30*time.Second, "table cat has 3 voters and a learner with a lag report", func() error {
		st, err := n1.ClusterStatus(opTimeout)
		if err != nil {
			return err
		}
		rs = st.Range("cat")
		switch {
		case rs == nil:
			return fmt.Errorf("no range of cat yet")
		case len(rs.Replicas) != 3 || len(rs.Learners) != 1:
			var local []string
			for _, n := range c.Nodes {
				if st, err := n.ClusterStatus(opTimeout); err == nil {
					for _, r := range st.Ranges {
						local = append(local, fmt.Sprintf("%s: %+v", n.Name, r))
					}
				}
			}
			return fmt.Errorf("voters %v learners %v (decisions %v) %v", rs.Replicas, rs.Learners, st.Decisions, local)
		case slices.Contains(rs.Replicas, rs.Learners[0]):
			return fmt.Errorf("learner %d is also a voter: %v", rs.Learners[0], rs.Replicas)
		}
		if _, ok := rs.Lag[strconv.FormatUint(rs.Learners[0], 10)]; !ok {
			return fmt.Errorf("no lag reported for learner %d: %v", rs.Learners[0], rs.Lag)
		}
		return nil
	})
	learner := c.Node(rs.Learners[0])
	var voter *Node
	for _, n := range c.Nodes {
		if n != learner {
			voter = n
			break
		}
	}
	servedBy := fmt.Sprintf("n%d", learner.ID)
	t.Logf("range %d: voters %v, learner %s (node %d)", rs.ID, rs.Replicas, learner.Name, learner.ID)

	// Session reads through the learner see the session's own writes and
	// are served by the learner itself.
	token := ""
	localSession := 0
	for i := range 50 {
		key := fmt.Sprintf("s%02d", i%10)
		w := voter.Put("cat", key, []byte(strconv.Itoa(i)), "Cairn-Session", token)
		if w.Status != 200 {
			t.Fatalf("put %s: %s", key, w)
		}
		token = w.Header.Get("Cairn-Session")
		r := learner.Do(opTimeout, "GET", kvPath("cat", key)+"?consistency=session", nil, "Cairn-Session", token)
		if r.Status != 200 || string(r.Body) != strconv.Itoa(i) {
			t.Fatalf("session read of %s through the learner after writing %d: %s", key, i, r)
		}
		if r.Header.Get("Cairn-Consistency") == "session" && r.Header.Get("Cairn-Served-By") == servedBy {
			localSession++
		}
		token = r.Header.Get("Cairn-Session")
	}
	if localSession < 25 {
		t.Errorf("the learner served %d of 50 session reads itself; want most", localSession)
	}

	// Stale reads on the learner: served there, never older than the bound.
	type write struct {
		val   int
		acked time.Time
	}
	var writes []write // of key "st", in order
	put := func(i int) time.Duration {
		start := time.Now()
		w := voter.Put("cat", "st", []byte(strconv.Itoa(i)))
		if w.Status != 200 {
			t.Fatalf("put st=%d: %s", i, w)
		}
		writes = append(writes, write{i, time.Now()})
		return time.Since(start)
	}
	const bound = 500 * time.Millisecond
	localStale := 0
	checkStale := func(phase string) {
		sent := time.Now()
		r := learner.Do(opTimeout, "GET", kvPath("cat", "st")+"?consistency=stale&max_staleness=500ms", nil)
		if r.Status == 503 {
			return // too stale: allowed, never older data
		}
		if r.Status != 200 {
			t.Fatalf("%s: stale read: %s", phase, r)
		}
		got, err := strconv.Atoi(string(r.Body))
		if err != nil {
			t.Fatalf("%s: stale read body %q", phase, r.Body)
		}
		floor := -1
		for _, w := range writes {
			if w.acked.Before(sent.Add(-bound)) {
				floor = w.val
			}
		}
		if got < floor {
			t.Errorf("%s: stale read at %s returned %d, older than %d (acknowledged more than %v earlier)", phase, sent.Format("15:04:05.000"), got, floor, bound)
		}
		if r.Header.Get("Cairn-Consistency") == "stale" && r.Header.Get("Cairn-Served-By") == servedBy {
			localStale++
		}
	}
	var before []time.Duration
	for i := range 40 {
		before = append(before, put(i))
		checkStale("running")
		time.Sleep(20 * time.Millisecond)
	}
	if localStale < 20 {
		t.Errorf("the learner served %d of 40 stale reads itself; want most", localStale)
	}

	// Frozen learner: writes do not wait for it.
	resume := pauseNode(t, learner)
	var during []time.Duration
	for i := 40; i < 80; i++ {
		during = append(during, put(i))
	}
	slices.Sort(before)
	slices.Sort(during)
	if p90b, p90d := before[len(before)*9/10], during[len(during)*9/10]; p90d > 5*p90b+100*time.Millisecond {
		t.Errorf("writes slowed by a frozen learner: p90 %v, was %v", p90d, p90b)
	}
	time.Sleep(2 * bound)
	resume()
	// Right after the resume the learner is behind by 40 writes: its
	// stale reads must wait, forward or refuse, never answer older.
	for range 40 {
		checkStale("after resume")
		time.Sleep(10 * time.Millisecond)
	}
	waitFor(t, 10*time.Second, "learner's lag back to 0", func() error {
		st, err := n1.ClusterStatus(opTimeout)
		if err != nil {
			return err
		}
		r := st.Range("cat")
		if r == nil {
			return fmt.Errorf("no range of cat")
		}
		if l, ok := r.Lag[strconv.FormatUint(learner.ID, 10)]; !ok || l != 0 {
			return fmt.Errorf("lag %v", r.Lag)
		}
		return nil
	})

	// Settings change after creation (PATCH): without read learners the
	// range ends with three voters and no learner, and every key is
	// still there.
	if r := n1.Do(opTimeout, "PATCH", "/v1/tables/cat", []byte(`{"learners":0}`)); r.Status != 200 || !bytes.Contains(r.Body, []byte(`"learners":0`)) {
		t.Fatalf("PATCH learners 0: %s", r)
	}
	waitFor(t, 30*time.Second, "table cat without learners", func() error {
		st, err := n1.ClusterStatus(opTimeout)
		if err != nil {
			return err
		}
		r := st.Range("cat")
		if r == nil || len(r.Replicas) != 3 || len(r.Learners) != 0 {
			return fmt.Errorf("range %+v", r)
		}
		return nil
	})
	if got, _ := voter.MustGet(t, "cat", "st"); string(got) != strconv.Itoa(writes[len(writes)-1].val) {
		t.Errorf("st = %q after the learner went, want %d", got, writes[len(writes)-1].val)
	}
}
