package robustness

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestSIGTERMDuringPartition stops nodes with SIGTERM while the workload
// runs and the network is split, the stopped node on either side: each
// must exit with status 0 within exitTimeout. (A node that hangs gets a
// SIGQUIT first, which prints its goroutines into its log.)
func TestSIGTERMDuringPartition(t *testing.T) {
	requireFaultTools(t)
	seed := cmpOr(*flagSeed, 1)
	start := time.Now()
	tl := &timeline{start: start}
	c := StartCluster(t, clusterOpts{nodes: 5}, tl)
	h := newHistory(start)
	kc := newKVClient(h, "default")
	w := &workload{c: c, kc: kc, keys: workloadKeys(12), prefix: "k", clients: 8, sdkEvery: 3, seed: seed}
	e := &env{t: t, c: c, rng: rand.New(rand.NewPCG(seed, 0x5167)), tl: tl, seed: seed}
	t.Cleanup(kc.close)
	t.Cleanup(w.halt)
	w.start()
	rounds := 12
	for i := range rounds {
		time.Sleep(e.between(500*time.Millisecond, 1500*time.Millisecond))
		nodes := e.shuffled()
		minority, majority := nodes[:2], nodes[2:]
		victim := majority[0]
		if i%2 == 1 {
			victim = minority[0]
		}
		cut := func() {
			var err error
			if i%3 == 2 {
				err = c.fw.Slow(c.Nodes, "64kbit", 0.1)
			} else {
				err = c.fw.Partition(minority, majority)
			}
			if err != nil {
				t.Error(err)
			}
		}
		before := e.rng.IntN(2) == 0
		if before {
			cut()
			// Let the fault bite (streams stall) before the SIGTERM.
			time.Sleep(e.between(0, 2*time.Second))
		} else {
			// The fault strikes while the node drains.
			go func() {
				time.Sleep(e.between(0, 2500*time.Millisecond))
				cut()
			}()
		}
		t0 := time.Now()
		err := victim.Term()
		t.Logf("round %d: fault %s (before SIGTERM: %v) split %s | %s, SIGTERM %s: %v after %v", i,
			map[bool]string{true: "slow", false: "split"}[i%3 == 2], before, names(minority), names(majority), victim.Name, err, time.Since(t0).Round(time.Millisecond))
		if err != nil {
			t.Error(err)
		}
		time.Sleep(3 * time.Second) // the late fault is in
		if err := c.fw.Heal(); err != nil {
			t.Fatal(err)
		}
		victim.Start()
		if err := victim.WaitReady(readyTimeout); err != nil {
			t.Fatal(err)
		}
	}
	w.halt()
}
