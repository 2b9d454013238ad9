package e2e

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cairn-db/cairn/client"
	"github.com/cairn-db/cairn/internal/keys/hashkey"
)

// routedRanges returns the ranges of table as the node behind cl reports
// them.
func routedRanges(cl *client.Client, table string) ([]client.RangeStatus, error) {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	st, err := cl.ClusterStatus(ctx)
	if err != nil {
		return nil, err
	}
	var out []client.RangeStatus
	for _, r := range st.Ranges {
		if r.Table == table {
			out = append(out, r)
		}
	}
	return out, nil
}

// TestClientRoutesByKey: the Go client, given one endpoint, sends each
// request straight to the node leading its key's range (replies name the
// serving node: reads that n1, which holds every range, would have served
// itself are served by the other leaders), and keeps working, never
// answering wrong, while a range splits and a leader is killed with
// SIGKILL (only writes in flight on the killed node may end "outcome
// unknown", as without routing).
func TestClientRoutesByKey(t *testing.T) {
	c := StartCluster(t, 3, "--heartbeat-interval", "200ms")
	n1 := c.Nodes[0]
	if r := n1.Do(opTimeout, "POST", "/v1/tables", []byte(`{"name":"routed","partitioning":"hash","initial_ranges":6}`)); r.Status != 201 {
		t.Fatalf("create table: %s", r)
	}
	cl, err := client.New(client.Config{Endpoints: []string{n1.Client}, RequestTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	waitFor(t, 60*time.Second, "the 6 ranges of table routed led by at least two nodes", func() error {
		rs, err := routedRanges(cl, "routed")
		if err != nil {
			return err
		}
		leaders := map[uint64]bool{}
		for _, r := range rs {
			leaders[r.Leader] = true
		}
		if len(rs) != 6 || len(leaders) < 2 || leaders[0] {
			return fmt.Errorf("%d ranges, leaders %v", len(rs), leaders)
		}
		return nil
	})

	// Every node's client address reaches the status through heartbeats.
	waitFor(t, 30*time.Second, "the nodes' client addresses in the cluster status", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		st, err := cl.ClusterStatus(ctx)
		if err != nil {
			return err
		}
		for _, n := range st.Nodes {
			if want := c.Node(n.ID).Client; n.ClientAddress != want {
				return fmt.Errorf("node %d: client address %q, want %q", n.ID, n.ClientAddress, want)
			}
		}
		return nil
	})

	// Phase 1: every request goes direct.
	ctx := context.Background()
	servedBy := map[uint64]int{}
	const keys = 200
	for i := range keys {
		k := []byte(fmt.Sprintf("key-%03d", i))
		if _, err := cl.Put(ctx, "routed", k, k); err != nil {
			t.Fatalf("put %s: %v", k, err)
		}
		var s client.Served
		v, _, err := cl.Get(ctx, "routed", k, client.WithServed(&s))
		if err != nil || string(v) != string(k) {
			t.Fatalf("get %s = %q, %v", k, v, err)
		}
		servedBy[s.Node]++
	}
	st := cl.RoutingStats()
	t.Logf("phase 1: reads served by %v; %+v", servedBy, st)
	if len(servedBy) < 2 {
		t.Errorf("every read was served by one node (%v): not routed to the leaders", servedBy)
	}
	// Leaders may move meanwhile (the coordinator balances them): a few
	// requests may be redirected, none may miss a route.
	if st.Fallback != 0 || st.Direct < 2*keys*9/10 {
		t.Errorf("phase 1 stats %+v: want no fallback and at least 90%% of %d requests direct", st, 2*keys)
	}

	// Phase 2: writers and readers while a range splits and a leader dies.
	type failure struct {
		at  time.Time
		err error
		op  string
	}
	var (
		mu       sync.Mutex
		failures []failure
		okAfter  = map[int]int{} // successful ops per phase step
		step     int
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := []byte(fmt.Sprintf("w%d-%03d", w, i%300))
				val := strconv.Itoa(i)
				_, err := cl.Put(ctx, "routed", k, []byte(val))
				if err == nil {
					var v []byte
					v, _, err = cl.Get(ctx, "routed", k)
					if err == nil && string(v) != val {
						err = fmt.Errorf("read %q after writing %q (one writer per key)", v, val)
					}
				}
				mu.Lock()
				if err != nil {
					failures = append(failures, failure{time.Now(), err, fmt.Sprintf("w%d op %d on %s", w, i, k)})
				} else {
					okAfter[step]++
				}
				mu.Unlock()
			}
		}(w)
	}
	setStep := func(s int) {
		mu.Lock()
		step = s
		mu.Unlock()
	}
	time.Sleep(time.Second)

	// Split the first range at the middle of its hash interval.
	rs, err := routedRanges(cl, "routed")
	if err != nil {
		t.Fatal(err)
	}
	mid := hashkey.Midpoint(rs[0].Start, rs[0].End)
	if _, _, err := cl.SplitRange(ctx, "routed", []byte(hashkey.FormatBound(mid))); err != nil {
		t.Fatalf("split at %s: %v", hashkey.FormatBound(mid), err)
	}
	setStep(1)
	refreshes := cl.RoutingStats().Refreshes
	time.Sleep(2 * time.Second)

	// Kill a node other than the client's endpoint that leads a range.
	rs, err = routedRanges(cl, "routed")
	if err != nil {
		t.Fatal(err)
	}
	var victim *Node
	for _, r := range rs {
		if r.Leader != 0 && r.Leader != n1.ID {
			victim = c.Node(r.Leader)
			break
		}
	}
	if victim == nil {
		t.Fatalf("no range of routed is led by a node other than n1: %+v", rs)
	}
	killedAt := time.Now()
	victim.Kill9()
	setStep(2)
	before := cl.RoutingStats()
	// Requests go direct again once the ranges have new leaders.
	waitFor(t, 60*time.Second, "direct requests to the new leaders", func() error {
		if d := cl.RoutingStats().Direct - before.Direct; d < 200 {
			return fmt.Errorf("%d direct requests since the kill", d)
		}
		return nil
	})
	setStep(3)
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	after := cl.RoutingStats()
	t.Logf("phase 2: ok ops per step (0 before split, 1 after split, 2 after kill, 3 direct again) %v; stats %+v", okAfter, after)

	if after.Refreshes <= refreshes {
		t.Errorf("no route refresh after the split and the kill (refreshes %d -> %d)", refreshes, after.Refreshes)
	}
	for _, s := range []int{0, 1, 2, 3} {
		if okAfter[s] == 0 {
			t.Errorf("no successful operation in step %d", s)
		}
	}
	for _, f := range failures {
		// Only a write the killed node had received can end with an
		// unknown outcome; nothing else may fail.
		if errors.Is(f.err, client.ErrTimeout) && f.at.After(killedAt) && f.at.Sub(killedAt) < 20*time.Second {
			t.Logf("%s: outcome unknown %v after the kill: %v", f.op, f.at.Sub(killedAt).Round(time.Millisecond), f.err)
			continue
		}
		t.Errorf("%s at %v (kill at %v): %v", f.op, f.at.Format("15:04:05.000"), killedAt.Format("15:04:05.000"), f.err)
	}
}
