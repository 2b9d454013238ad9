package robustness

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// scenario is one kind of fault, injected again and again while the
// workload runs.
type scenario struct {
	name     string
	nodes    int
	duration time.Duration // default workload time (short: CI)
	tmpfs    bool          // the last node's data dir is a small tmpfs
	// snapshots: nodes keep few log entries, so a node that was down or
	// cut off catches up through a Raft snapshot.
	snapshots bool
	nemesis   func(e *env)
}

const (
	defaultDuration = 8 * time.Second
	tmpfsSize       = 64 << 20
)

var scenarios = []scenario{
	{name: "kill-random", snapshots: true, nodes: 3, nemesis: func(e *env) {
		e.loop(func() {
			running := e.running()
			if len(running) > 0 {
				e.killRestart(running[e.rng.IntN(len(running))])
			}
		})
	}},
	{name: "kill-leader", snapshots: true, nodes: 3, nemesis: func(e *env) {
		e.loop(func() { e.killRestart(e.leader()) })
	}},
	{name: "kill-all", nodes: 3, nemesis: func(e *env) {
		e.loop(e.killAll)
	}},
	{name: "restart-graceful", nodes: 3, nemesis: func(e *env) {
		e.loop(func() {
			n := e.leader()
			if e.rng.IntN(2) == 0 {
				n = e.c.Nodes[e.rng.IntN(len(e.c.Nodes))]
			}
			if e.rng.IntN(2) == 0 {
				e.termRestart(n)
				return
			}
			// The shutdown has to drain while the network fails: the
			// node cut off (or its links slowed) just before or while it
			// stops.
			var err error
			d := e.between(0, 2*time.Second)
			cut := e.rng.IntN(2) == 0
			done := make(chan struct{})
			end := e.fault("net", map[bool]string{true: "cut ", false: "slow "}[cut]+n.Name+" around its SIGTERM")
			go func() {
				defer close(done)
				time.Sleep(d)
				if cut {
					err = e.c.fw.Partition([]*Node{n}, e.c.Others(n))
				} else {
					err = e.c.fw.Slow([]*Node{n}, "64kbit", 0.1)
				}
			}()
			if e.rng.IntN(2) == 0 {
				<-done // the fault first
			}
			e.termRestartNoWait(n)
			<-done
			if err != nil {
				e.t.Error(err)
			}
			time.Sleep(time.Second)
			if err := e.c.fw.Heal(); err != nil {
				e.t.Error(err)
			}
			end()
			e.restart(n)
		})
	}},
	{name: "pause-leader", snapshots: true, nodes: 3, nemesis: func(e *env) {
		e.loop(func() { e.pause(e.leader()) })
	}},
	{name: "partition-leader", snapshots: true, nodes: 3, nemesis: func(e *env) {
		e.loop(func() { e.isolate(e.leader()) })
	}},
	{name: "partition-split", snapshots: true, nodes: 5, nemesis: func(e *env) {
		e.loop(e.split)
	}},
	{name: "partition-bridge", nodes: 5, nemesis: func(e *env) {
		e.loop(e.bridge)
	}},
	{name: "one-way", nodes: 3, nemesis: func(e *env) {
		e.loop(func() { e.oneWay(e.leader()) })
	}},
	{name: "slow-lossy", nodes: 3, nemesis: func(e *env) {
		e.loop(e.slow)
	}},
	{name: "disk-full", nodes: 3, tmpfs: true, nemesis: func(e *env) {
		e.loop(func() { e.diskFull(e.c.Nodes[len(e.c.Nodes)-1]) })
	}},
	{name: "chaos", snapshots: true, nodes: 5, nemesis: func(e *env) {
		// Process faults and network faults at the same time, each on
		// its own clock: they overlap. Liveness expectations are off (a
		// partition plus a kill can leave no majority).
		e.lenient = true
		procs := e.fork(1)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			procs.loop(func() {
				switch procs.rng.IntN(4) {
				case 0:
					running := procs.running()
					if len(running) > 0 {
						procs.killRestart(running[procs.rng.IntN(len(running))])
					}
				case 1:
					procs.killRestart(procs.leader())
				case 2:
					procs.pause(procs.leader())
				case 3:
					procs.termRestart(procs.leader())
				}
			})
		}()
		e.loop(func() {
			switch e.rng.IntN(5) {
			case 0:
				e.isolate(e.leader())
			case 1:
				e.split()
			case 2:
				e.bridge()
			case 3:
				e.oneWay(e.leader())
			case 4:
				e.slow()
			}
		})
		wg.Wait()
		e.faults += procs.faults
	}},
	{name: "splits", snapshots: true, nodes: 3, nemesis: func(e *env) {
		// The workload's table splits again and again at random keys
		// (admin splits through random nodes) while nodes are killed and
		// the leader is cut off: routing, catalog updates, snapshots past
		// splits and the stale-routing rule all run under faults.
		e.lenient = true
		splits := e.fork(2)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			splits.splitLoop()
		}()
		e.loop(e.killOrIsolate)
		wg.Wait()
		e.faults += splits.faults
	}},
	{name: "moves", snapshots: true, nodes: 5, nemesis: func(e *env) {
		// Replicas move while nodes die and the leader is cut off: nodes
		// are drained and taken back again and again (the coordinator
		// moves replicas off and back: learner, promote, remove, leader
		// transfers), ranges split, and the bank's table (3 voters of 5
		// nodes) is served through nodes that hold none of its replicas.
		e.lenient = true
		moves, splits := e.fork(3), e.fork(2)
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); moves.moveLoop() }()
		go func() { defer wg.Done(); splits.splitLoop() }()
		e.loop(e.killOrIsolate)
		wg.Wait()
		e.faults += moves.faults + splits.faults
	}},
	{name: "mixed", snapshots: true, nodes: 5, nemesis: func(e *env) {
		e.loop(func() {
			switch e.rng.IntN(9) {
			case 0:
				running := e.running()
				if len(running) > 0 {
					e.killRestart(running[e.rng.IntN(len(running))])
				}
			case 1:
				e.killRestart(e.leader())
			case 2:
				e.pause(e.leader())
			case 3:
				e.isolate(e.leader())
			case 4:
				e.split()
			case 5:
				e.bridge()
			case 6:
				e.oneWay(e.leader())
			case 7:
				e.slow()
			case 8:
				e.termRestart(e.leader())
			}
		})
	}},
}

// TestRobustness runs every scenario -runs times.
func TestRobustness(t *testing.T) {
	requireFaultTools(t)
	only := map[string]bool{}
	for _, s := range strings.Split(*flagScenario, ",") {
		if s = strings.TrimSpace(s); s != "" {
			only[s] = true
		}
	}
	seed := *flagSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano()) & (1<<31 - 1)
	}
	t.Logf("seed %d, runs %d", seed, *flagRuns)
	var stats []*runStats
	for _, sc := range scenarios {
		if len(only) > 0 && !only[sc.name] {
			continue
		}
		t.Run(sc.name, func(t *testing.T) {
			for i := range *flagRuns {
				s := seed + uint64(i)
				dur := cmpOr(*flagDuration, sc.duration, defaultDuration)
				name := fmt.Sprintf("seed=%d", s)
				t.Run(name, func(t *testing.T) {
					st := runScenario(t, sc, s, dur, runOpts{plant: plantFromEnv(s)})
					stats = append(stats, st)
				})
			}
		})
	}
	logSummary(t, stats)
}

func cmpOr[T comparable](vals ...T) T {
	var zero T
	for _, v := range vals {
		if v != zero {
			return v
		}
	}
	return zero
}

// runStats is what one run adds to the summary.
type runStats struct {
	scenario string
	seed     uint64
	faults   int
	// snapshots is how many Raft snapshots nodes restored (log lines).
	snapshots int
	report    *Report
	failed    bool
	// watchEvents is how many changes the run's watcher received;
	// watchGaps how often it had to skip ahead (history compacted).
	watchEvents, watchGaps int
	// transfers and bankChecks count the bank's committed transfers and
	// its read-only total checks.
	transfers, bankChecks int64
	// sessionReads and staleReads count the readers' checked reads;
	// staleRefused the stale reads refused as too stale; learnerReads
	// the checked reads that learners served.
	sessionReads, staleReads, staleRefused, learnerReads int64
}

func logSummary(t *testing.T, stats []*runStats) {
	type agg struct {
		runs, faults, snaps, ops, acked, unknown, watched, violations, failed int
	}
	by := map[string]*agg{}
	var order []string
	for _, s := range stats {
		a := by[s.scenario]
		if a == nil {
			a = &agg{}
			by[s.scenario] = a
			order = append(order, s.scenario)
		}
		a.runs++
		a.faults += s.faults
		a.snaps += s.snapshots
		a.watched += s.watchEvents
		if s.report != nil {
			a.ops += s.report.Ops
			a.acked += s.report.Acked
			a.unknown += s.report.Unknown
			a.violations += len(s.report.Violations)
		}
		if s.failed {
			a.failed++
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-18s %5s %7s %6s %8s %8s %8s %8s %11s %7s\n", "scenario", "runs", "faults", "snaps", "ops", "acked", "unknown", "watched", "violations", "failed")
	var tot agg
	for _, name := range order {
		a := by[name]
		fmt.Fprintf(&b, "%-18s %5d %7d %6d %8d %8d %8d %8d %11d %7d\n", name, a.runs, a.faults, a.snaps, a.ops, a.acked, a.unknown, a.watched, a.violations, a.failed)
		tot.runs += a.runs
		tot.faults += a.faults
		tot.snaps += a.snaps
		tot.ops += a.ops
		tot.acked += a.acked
		tot.unknown += a.unknown
		tot.watched += a.watched
		tot.violations += a.violations
		tot.failed += a.failed
	}
	fmt.Fprintf(&b, "%-18s %5d %7d %6d %8d %8d %8d %8d %11d %7d\n", "total", tot.runs, tot.faults, tot.snaps, tot.ops, tot.acked, tot.unknown, tot.watched, tot.violations, tot.failed)
	t.Logf("summary:\n%s", b.String())
}

// runOpts are the knobs of one run that only tests set.
type runOpts struct {
	plant *stalePlant
	// artifacts overrides the directory a failing run saves into.
	artifacts string
	// expectViolations: the run is meant to fail the checkers (a planted
	// bug); violations are returned, not reported as test failures.
	expectViolations bool
}

// runScenario starts a cluster, runs the workload and the scenario's
// faults for dur, heals, reads the final state through every node, and
// checks the history.
func runScenario(t *testing.T, sc scenario, seed uint64, dur time.Duration, ro runOpts) *runStats {
	st := &runStats{scenario: sc.name, seed: seed}
	defer func() { st.failed = t.Failed() }()
	start := time.Now()
	tl := &timeline{start: start}
	opts := clusterOpts{nodes: sc.nodes}
	if sc.snapshots {
		// Debug logs: raft's "restored snapshot" is logged at debug.
		opts.extraArgs = []string{"--log-keep-entries", "100", "--log-level", "debug"}
	}
	if sc.tmpfs {
		opts.tmpfs, opts.tmpfsSize, opts.expectCrashes = []int{sc.nodes}, tmpfsSize, true
	}
	c := StartCluster(t, opts, tl)
	h := newHistory(start)
	kc := newKVClient(h, "default")
	kc.plant = ro.plant
	keys := workloadKeys(12)
	w := &workload{c: c, kc: kc, keys: keys, prefix: "k", clients: 8, sdkEvery: 3, seed: seed}
	e := &env{t: t, c: c, rng: rand.New(rand.NewPCG(seed, 0xfa17)), tl: tl, seed: seed}
	// Cleanups run last-in first-out: clients stop before the cluster is
	// torn down, and faults are healed by the firewall's and mounts' own
	// cleanups, whatever happens here.
	t.Cleanup(kc.close)
	t.Cleanup(w.halt)
	t.Cleanup(e.freeDisks)

	t.Logf("scenario %s: seed %d, %d nodes, %v of faults; cluster ready in %v", sc.name, seed, sc.nodes, dur, time.Since(start).Round(time.Millisecond))
	// A watcher follows every change of the workload's keys through the
	// faults (it resumes on other nodes by itself).
	wt, err := startWatcher(c, "default", "k", rand.New(rand.NewPCG(seed, 0x3a7c)))
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	t.Cleanup(wt.stop)
	// And a bank moves money between two ranges with transactions.
	bk := &bank{c: c, hc: &http.Client{Timeout: clientTimeout}, seed: seed}
	if err := bk.setup(); err != nil {
		t.Fatalf("bank: %v", err)
	}
	t.Cleanup(bk.halt)
	// Session and stale readers, each with its own key (readers_test.go).
	rd := &readers{c: c, kc: kc, clients: 3, bound: time.Second, seed: seed}
	if err := rd.setup(); err != nil {
		t.Fatalf("readers: %v", err)
	}
	t.Cleanup(rd.halt)
	w.start()
	bk.start()
	rd.start()
	e.deadline = time.Now().Add(dur)
	sc.nemesis(e)
	healStart := time.Now()
	e.healAll()
	healed := h.now()
	t.Logf("faults healed in %v (%d faults injected)", time.Since(healStart).Round(time.Millisecond), e.faults)
	st.faults = e.faults

	// Liveness: once healed, writes go through again.
	progress := waitProgress(h, healed, 15*time.Second)
	time.Sleep(500 * time.Millisecond)
	w.halt()
	bk.halt()
	rd.halt()
	// Every request has returned to its client, and no client gives up
	// before the node does (clientTimeout > serverTimeout); let writes
	// still in a Raft log settle before the final reads.
	time.Sleep(time.Second)
	finalErr := finalReads(c, kc, keys, "k")
	ops := h.Ops()
	rep := Check(ops, keys)
	// The watcher catches up once the faults are healed; then its events
	// must be exactly the history's changes.
	deadline := time.Now().Add(20 * time.Second)
	events, gaps, werrs := wt.snapshot()
	for gaps == 0 && len(missingFromWatch(ops, events)) > 0 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		events, gaps, werrs = wt.snapshot()
	}
	wt.stop()
	events, gaps, werrs = wt.snapshot()
	CheckWatch(rep, ops, events, gaps)
	bk.check(rep)
	rd.check(rep)
	st.sessionReads, st.staleReads, st.staleRefused = rd.sessionOK.Load(), rd.staleOK.Load(), rd.staleRefused.Load()
	st.learnerReads = rd.learnerReads.Load()
	st.transfers, st.bankChecks = bk.transfers.Load(), bk.checks.Load()
	if st.transfers == 0 || st.bankChecks == 0 {
		rep.violate("bank: nothing happened (%d transfers, %d checks)", st.transfers, st.bankChecks)
	}
	for _, e := range werrs {
		rep.violate("watch ended with an error the client does not retry: %s", e)
	}
	st.watchEvents, st.watchGaps = len(events), gaps
	if gaps > 0 {
		t.Logf("watch: history compacted under the watcher %d times; completeness not checked", gaps)
	}
	if !progress {
		rep.violate("no write was acknowledged within 15s after the faults healed")
	}
	if finalErr != nil {
		rep.violate("final reads: %v", finalErr)
	}
	st.report = rep
	st.snapshots = c.countLog("restored snapshot")
	t.Logf("scenario=%s seed=%d faults=%d snapshots=%d watched=%d transfers=%d bank-checks=%d session-reads=%d stale-reads=%d stale-refused=%d learner-reads=%d %s",
		sc.name, seed, e.faults, st.snapshots, len(events), st.transfers, st.bankChecks, st.sessionReads, st.staleReads, st.staleRefused, st.learnerReads, rep.Summary())
	for k, res := range rep.Results {
		if res != "Ok" && res != "Illegal" {
			t.Logf("key %q: porcupine %s (check timed out after %v: not a violation, but not checked)", k, res, checkTimeout)
		}
	}
	if rep.OK() {
		return st
	}
	dir := saveArtifacts(t, sc, seed, dur, ops, rep, tl, c, ro.artifacts)
	show := rep.Violations
	if len(show) > 20 {
		show = append(show[:20:20], fmt.Sprintf("... and %d more (see %s)", len(rep.Violations)-20, filepath.Join(dir, "violations.txt")))
	}
	msg := fmt.Sprintf("scenario %s, seed %d: %d violations:\n  %s\nhistory, porcupine visualization and logs: %s\nreproduce: go test -count=1 ./tests/robustness -run 'TestRobustness/^%s$' -seed=%d -duration=%v -v",
		sc.name, seed, len(rep.Violations), strings.Join(show, "\n  "), dir, sc.name, seed, dur)
	if ro.expectViolations {
		t.Log(msg)
	} else {
		t.Error(msg)
	}
	return st
}

// waitProgress waits until a write sent after since is acknowledged.
func waitProgress(h *History, since int64, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, o := range h.Ops() {
			if o.Kind == "put" && o.Outcome == outOK && o.Call > since {
				return true
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

// finalClientBase is the client id of the final reads through node 1;
// node i+1 reads as finalClientBase+i.
const finalClientBase = 1000

// finalReads reads every key through every node (linearizable GETs, then
// one list page), retrying reads that fail, and records them as Final.
func finalReads(c *Cluster, kc *kvClient, keys []string, prefix string) error {
	var errs []string
	for i, n := range c.Nodes {
		client := finalClientBase + i
		for _, k := range keys {
			deadline := time.Now().Add(20 * time.Second)
			for {
				o := kc.Get(n, &Op{Client: client, Key: k, Final: true})
				if o.Outcome == outOK || o.Outcome == outNotFound {
					break
				}
				if time.Now().After(deadline) {
					errs = append(errs, fmt.Sprintf("%s: %s", n.Name, o))
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
		o := kc.List(n, &Op{Client: client, Prefix: prefix, Limit: len(keys) + 10, Final: true})
		if o.Outcome != outOK {
			errs = append(errs, fmt.Sprintf("%s: %s", n.Name, o))
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// timeline records the faults of a run (and crashes), for the log, the
// history file and porcupine's visualization.
type timeline struct {
	start  time.Time
	mu     sync.Mutex
	events []event
}

type event struct {
	Start int64  `json:"start"` // ns since the start of the run
	End   int64  `json:"end"`
	Who   string `json:"who"`
	What  string `json:"what"`
}

func (tl *timeline) add(start, end time.Duration, who, what string) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.events = append(tl.events, event{int64(start), int64(end), who, what})
}

func (tl *timeline) all() []event {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	out := append([]event(nil), tl.events...)
	sort.Slice(out, func(i, j int) bool { return out[i].Start < out[j].Start })
	return out
}

// env is what a nemesis works with.
type env struct {
	t        *testing.T
	c        *Cluster
	rng      *rand.Rand
	tl       *timeline
	deadline time.Time
	faults   int
	seed     uint64
	// lenient: faults overlap, so a majority may be gone; do not require
	// a leader to emerge during a fault.
	lenient bool

	fillMu  sync.Mutex
	fillers []string // files filling a tmpfs
}

// fork returns an env for a second nemesis goroutine, with its own
// random stream.
// splitLoop asks a random serving node, every 200-800 ms until the
// deadline, to split the default table at a random key between the
// workload's keys, or (one time in three) to merge the range holding such
// a key with its right neighbour. Refusals (already a boundary, the last
// range, no leader, a node down) are expected under faults; the checkers
// judge the outcome.
func (e *env) splitLoop() {
	done, merged := 0, 0
	for !e.done() {
		time.Sleep(e.between(200*time.Millisecond, 800*time.Millisecond))
		var serving []*Node
		for _, n := range e.c.Nodes {
			if n.Serving() {
				serving = append(serving, n)
			}
		}
		if len(serving) == 0 {
			continue
		}
		n := serving[e.rng.IntN(len(serving))]
		key := fmt.Sprintf("k%02d%c", e.rng.IntN(12), 'a'+rune(e.rng.IntN(26)))
		body := fmt.Sprintf(`{"table":"default","key":%q}`, key)
		if e.rng.IntN(3) == 0 {
			// One in three: merge the range holding key with its right
			// neighbour (docs/design/merges.md), undoing splits under the
			// same faults. Refusals (last range, replicas differ, a
			// concurrent merge) are expected.
			status, _, err := n.admin("POST", "/v1/ranges/merge", []byte(body), 5*time.Second)
			if err == nil && status == 200 {
				merged++
				e.tl.add(e.c.since(), e.c.since(), n.Name, "merge at "+key)
			}
			continue
		}
		status, _, err := n.admin("POST", "/v1/ranges/split", []byte(body), 5*time.Second)
		if err == nil && status == 200 {
			done++
			e.tl.add(e.c.since(), e.c.since(), n.Name, "split at "+key)
		}
	}
	e.t.Logf("%d admin splits and %d admin merges applied", done, merged)
	if done == 0 {
		e.t.Error("no admin split succeeded during the run: the scenario exercised nothing")
	}
}

// moveLoop drains a random node, or takes a drained one back, every 1-3 s
// until the deadline (at most one node drained at a time), through a
// random serving node; at the end every node is taken back. The
// coordinator carries out the moves; the checkers judge the outcome.
func (e *env) moveLoop() {
	drained := uint64(0)
	action := func(id uint64, act string) bool {
		for _, n := range e.c.Nodes {
			if !n.Serving() {
				continue
			}
			body := fmt.Sprintf(`{"id":%d,"action":%q}`, id, act)
			status, _, err := n.admin("POST", "/v1/cluster/nodes", []byte(body), 5*time.Second)
			if err == nil && status == 200 {
				e.tl.add(e.c.since(), e.c.since(), n.Name, fmt.Sprintf("%s node %d", act, id))
				return true
			}
		}
		return false
	}
	done := 0
	// The replica changes the coordinators report (a new one starts with
	// an empty list, so sample as we go).
	steps := map[string]bool{}
	sample := func() {
		for _, n := range e.c.Nodes {
			if !n.Serving() {
				continue
			}
			status, body, err := n.adminGet("/v1/cluster", 2*time.Second)
			if err != nil || status != 200 {
				continue
			}
			var st struct {
				Decisions []struct {
					At      int64  `json:"at_unix_ms"`
					Op      string `json:"op"`
					Range   uint64 `json:"range"`
					Node    uint64 `json:"node"`
					Outcome string `json:"outcome"`
				} `json:"decisions"`
			}
			if json.Unmarshal(body, &st) != nil {
				continue
			}
			for _, d := range st.Decisions {
				if d.Outcome == "done" && d.Op != "transfer_leader" {
					steps[fmt.Sprintf("%d %s %d %d", d.At, d.Op, d.Range, d.Node)] = true
				}
			}
			return
		}
	}
	for !e.done() {
		time.Sleep(e.between(time.Second, 3*time.Second))
		sample()
		if drained != 0 {
			if action(drained, "activate") {
				drained = 0
				done++
			}
			continue
		}
		id := e.c.Nodes[e.rng.IntN(len(e.c.Nodes))].ID
		if action(id, "drain") {
			drained = id
			done++
			e.faults++
		}
	}
	for end := time.Now().Add(30 * time.Second); drained != 0 && time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if action(drained, "activate") {
			drained = 0
		}
	}
	if drained != 0 {
		e.t.Errorf("node %d could not be taken back after the run", drained)
	}
	sample()
	e.t.Logf("%d drains and activations, %d replica changes seen", done, len(steps))
	if done == 0 || len(steps) == 0 {
		e.t.Error("no drain succeeded or no replica moved during the run: the scenario exercised nothing")
	}
}

// killOrIsolate kills (and restarts) a random node or the leader, or cuts
// the leader off: the faults that run beside a second nemesis.
func (e *env) killOrIsolate() {
	switch e.rng.IntN(3) {
	case 0:
		if running := e.running(); len(running) > 0 {
			e.killRestart(running[e.rng.IntN(len(running))])
		}
	case 1:
		e.isolate(e.leader())
	case 2:
		e.killRestart(e.leader())
	}
}

func (e *env) fork(salt uint64) *env {
	return &env{t: e.t, c: e.c, rng: rand.New(rand.NewPCG(e.seed, salt)), tl: e.tl, deadline: e.deadline, seed: e.seed, lenient: e.lenient}
}

func (e *env) done() bool { return !time.Now().Before(e.deadline) }

func (e *env) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(e.rng.Int64N(int64(hi-lo)+1))
}

// loop runs step after a quiet spell, again and again until the deadline.
// Every step heals its own fault before it returns.
func (e *env) loop(step func()) {
	for {
		quiet := e.between(time.Second, 2*time.Second)
		if time.Until(e.deadline) < quiet+time.Second {
			time.Sleep(max(time.Until(e.deadline), 0))
			return
		}
		time.Sleep(quiet)
		step()
		if e.done() {
			return
		}
	}
}

// fault logs and records the start of a fault; the returned func records
// its end.
func (e *env) fault(who, what string) func() {
	e.faults++
	start := e.c.since()
	e.t.Logf("%7.3fs fault: %s: %s", start.Seconds(), who, what)
	return func() {
		end := e.c.since()
		e.tl.add(start, end, who, what)
		e.t.Logf("%7.3fs healed: %s: %s (%v)", end.Seconds(), who, what, (end - start).Round(time.Millisecond))
	}
}

func (e *env) running() []*Node {
	var out []*Node
	for _, n := range e.c.Nodes {
		if n.Running() {
			out = append(out, n)
		}
	}
	return out
}

// leader is the leader of the workload's range, or a random serving node
// when none is found within 5s.
func (e *env) leader() *Node {
	if n := e.c.Leader("default", 5*time.Second); n != nil {
		return n
	}
	serving := e.c.Serving()
	if len(serving) == 0 {
		return e.c.Nodes[e.rng.IntN(len(e.c.Nodes))]
	}
	n := serving[e.rng.IntN(len(serving))]
	e.t.Logf("no leader of default found in 5s; picking %s", n.Name)
	return n
}

func (e *env) shuffled() []*Node {
	nodes := append([]*Node(nil), e.c.Nodes...)
	e.rng.Shuffle(len(nodes), func(i, j int) { nodes[i], nodes[j] = nodes[j], nodes[i] })
	return nodes
}

// restart starts a node that is down and waits until it is ready; a node
// that does not come back is a bug.
func (e *env) restart(n *Node) {
	if n.Running() {
		return
	}
	n.Start()
	if err := n.WaitReady(readyTimeout); err != nil {
		e.t.Errorf("restart: %v", err)
	}
}

// electionBound is how long a majority may take to elect a leader once
// the old one is gone or cut off (election timeout 1-2s, pre-vote, and
// check-quorum before a cut-off leader steps down).
const electionBound = 10 * time.Second

// expectLeader waits until one of nodes reports itself leader of the
// workload's range; none within electionBound is a liveness bug.
func (e *env) expectLeader(nodes []*Node, why string) {
	start := time.Now()
	n := e.c.LeaderAmong("default", nodes, electionBound)
	if n == nil {
		if e.lenient {
			e.t.Logf("%s: no leader of default among %s within %v (other faults overlap)", why, names(nodes), electionBound)
			return
		}
		e.t.Errorf("%s: no leader of default among %s within %v (liveness)", why, names(nodes), electionBound)
		return
	}
	e.t.Logf("%7.3fs leader %s among %s after %v", e.c.since().Seconds(), n.Name, names(nodes), time.Since(start).Round(time.Millisecond))
}

func (e *env) killRestart(n *Node) {
	if !n.Running() {
		e.restart(n)
		return
	}
	wasLeader := e.c.LeaderAmong("default", []*Node{n}, 0) == n
	end := e.fault(n.Name, "kill -9")
	n.Kill9()
	down := e.between(500*time.Millisecond, 3*time.Second)
	t0 := time.Now()
	if wasLeader {
		e.expectLeader(e.c.Others(n), "after kill -9 of leader "+n.Name)
	}
	time.Sleep(down - time.Since(t0))
	e.restart(n)
	end()
}

// termRestart stops n with SIGTERM (it must exit 0 in time) and starts
// it again at once.
func (e *env) termRestart(n *Node) {
	if !n.Running() {
		e.restart(n)
		return
	}
	end := e.fault(n.Name, "SIGTERM, restart")
	e.termRestartNoWait(n)
	e.restart(n)
	end()
}

// termRestartNoWait stops n with SIGTERM; it must exit 0 in time.
func (e *env) termRestartNoWait(n *Node) {
	if !n.Running() {
		return
	}
	t0 := time.Now()
	if err := n.Term(); err != nil {
		e.t.Error(err)
	}
	e.t.Logf("%7.3fs %s stopped by SIGTERM in %v", e.c.since().Seconds(), n.Name, time.Since(t0).Round(time.Millisecond))
}

func (e *env) killAll() {
	end := e.fault("all", "kill -9 of every node")
	for _, n := range e.c.Nodes {
		n.Kill9()
	}
	time.Sleep(e.between(200*time.Millisecond, 2*time.Second))
	for _, n := range e.c.Nodes {
		n.Start()
	}
	for _, n := range e.c.Nodes {
		if err := n.WaitReady(readyTimeout); err != nil {
			e.t.Errorf("restart after kill of all: %v", err)
		}
	}
	end()
}

// pause freezes n (SIGSTOP) for longer than an election timeout.
func (e *env) pause(n *Node) {
	if !n.Serving() {
		return
	}
	d := e.between(3*time.Second, 6*time.Second)
	end := e.fault(n.Name, fmt.Sprintf("SIGSTOP for %v", d.Round(time.Millisecond)))
	if err := n.Pause(); err != nil {
		e.t.Error(err)
		end()
		return
	}
	t0 := time.Now()
	e.expectLeader(e.c.Others(n), "after SIGSTOP of "+n.Name)
	time.Sleep(d - time.Since(t0))
	if err := n.Resume(); err != nil {
		e.t.Error(err)
	}
	end()
}

// holdNet applies a network fault for a few seconds, checks that a leader
// emerges among expect (when not nil) and that the rules dropped or
// shaped packets, and heals.
func (e *env) holdNet(what string, expect []*Node, apply func() error) {
	e.holdNetChecked(what, expect, true, apply)
}

// holdNetChecked is holdNet; mustBite says that Raft traffic is sure to
// cross the fault (it cuts or slows the leader off from someone), so that
// no packet dropped or shaped means the rules did not work. A bridge whose
// middle node is the leader cuts only followers from followers, which may
// not talk at all meanwhile.
func (e *env) holdNetChecked(what string, expect []*Node, mustBite bool, apply func() error) {
	d := e.between(3*time.Second, 5*time.Second)
	end := e.fault("net", what)
	t0 := time.Now()
	if err := apply(); err != nil {
		e.t.Errorf("%s: %v", what, err)
	} else {
		if expect != nil {
			e.expectLeader(expect, what)
		}
		time.Sleep(d - time.Since(t0))
	}
	dropped, shaped := e.c.fw.Dropped()
	if err := e.c.fw.Heal(); err != nil {
		e.t.Errorf("heal: %v", err)
	}
	end()
	e.t.Logf("%7.3fs %s: %d packets dropped, %d shaped", e.c.since().Seconds(), what, dropped, shaped)
	if dropped == 0 && shaped == 0 && mustBite && !e.lenient {
		e.t.Errorf("%s: no packet was dropped or shaped: the fault had no effect (harness bug?)", what)
	}
}

func (e *env) isolate(n *Node) {
	others := e.c.Others(n)
	e.holdNet(fmt.Sprintf("isolate leader %s from %s", n.Name, names(others)), others, func() error {
		return e.c.fw.Partition([]*Node{n}, others)
	})
}

// split cuts the cluster into a minority and a majority; half of the
// time the leader is in the minority.
func (e *env) split() {
	nodes := e.shuffled()
	if e.rng.IntN(2) == 0 {
		leader := e.leader()
		for i, n := range nodes {
			if n == leader {
				nodes[0], nodes[i] = nodes[i], nodes[0]
			}
		}
	}
	k := (len(nodes) - 1) / 2
	a, b := nodes[:k], nodes[k:]
	e.holdNet(fmt.Sprintf("split %s | %s", names(a), names(b)), b, func() error { return e.c.fw.Partition(a, b) })
}

// bridge cuts the cluster in two halves that one node (the bridge) still
// sees both of. The bridge and either half are a majority.
func (e *env) bridge() {
	nodes := e.shuffled()
	mid := len(nodes) / 2
	a, br, b := nodes[:mid], nodes[mid], nodes[mid+1:]
	e.holdNetChecked(fmt.Sprintf("bridge %s | %s | %s", names(a), br.Name, names(b)), e.c.Nodes, false, func() error { return e.c.fw.Partition(a, b) })
}

// oneWay drops the packets of one direction between n and the others.
// Either way the others, who still talk among themselves, must end up
// with a leader.
func (e *env) oneWay(n *Node) {
	others := e.c.Others(n)
	if e.rng.IntN(2) == 0 {
		e.holdNet(fmt.Sprintf("one-way: drop %s -> %s", n.Name, names(others)), others, func() error { return e.c.fw.Cut([]*Node{n}, others) })
	} else {
		e.holdNet(fmt.Sprintf("one-way: drop %s -> %s", names(others), n.Name), others, func() error { return e.c.fw.Cut(others, []*Node{n}) })
	}
}

// slow shapes the links of every node, or of the leader only.
func (e *env) slow() {
	targets := e.c.Nodes
	if e.rng.IntN(2) == 0 {
		targets = []*Node{e.leader()}
	}
	rate := []string{"64kbit", "256kbit", "1mbit"}[e.rng.IntN(3)]
	loss := []float64{0, 0.02, 0.1}[e.rng.IntN(3)]
	e.holdNet(fmt.Sprintf("slow links of %s: %s, %.0f%% loss", names(targets), rate, loss*100), nil, func() error {
		return e.c.fw.Slow(targets, rate, loss)
	})
}

// diskFull fills the tmpfs of n, holds it full, frees it, and restarts n
// if it stopped. The node must fail safely: stop or refuse, never
// acknowledge a write it did not persist, never harm the others.
func (e *env) diskFull(n *Node) {
	end := e.fault(n.Name, "disk full")
	path := filepath.Join(n.DataDir, fmt.Sprintf("robustness-filler-%d", e.faults))
	e.fillMu.Lock()
	e.fillers = append(e.fillers, path)
	e.fillMu.Unlock()
	filled, err := fill(path)
	if err != nil {
		e.t.Errorf("disk full: %v", err)
	}
	e.t.Logf("filled %s with %d MiB; %s is %s", n.DataDir, filled>>20, n.Name, map[bool]string{true: "running", false: "down"}[n.Running()])
	time.Sleep(e.between(3*time.Second, 5*time.Second))
	wasRunning := n.Running()
	e.freeDisks()
	if !wasRunning {
		e.t.Logf("%s stopped on the full disk; restarting it", n.Name)
	}
	e.restart(n)
	end()
}

// fill writes path until the file system is full and returns its size.
func fill(path string) (int64, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	var n int64
	for {
		w, err := f.Write(buf)
		n += int64(w)
		if errors.Is(err, syscall.ENOSPC) {
			break
		}
		if err != nil {
			return n, err
		}
	}
	// Fill the last partial pages too.
	for _, sz := range []int{64 << 10, 4 << 10, 512, 1} {
		for {
			w, err := f.Write(buf[:sz])
			n += int64(w)
			if err != nil {
				break
			}
		}
	}
	return n, nil
}

// freeDisks removes every filler file (also run in t.Cleanup).
func (e *env) freeDisks() {
	e.fillMu.Lock()
	defer e.fillMu.Unlock()
	for _, p := range e.fillers {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			e.t.Errorf("free disk: %v", err)
		}
	}
	e.fillers = nil
}

// healAll undoes every fault: heals the network, resumes paused nodes,
// frees disks, restarts nodes that are down, and waits until all are
// ready.
func (e *env) healAll() {
	if err := e.c.fw.Heal(); err != nil {
		e.t.Errorf("heal: %v", err)
	}
	e.freeDisks()
	for _, n := range e.c.Nodes {
		if n.paused.Load() {
			if err := n.Resume(); err != nil {
				e.t.Error(err)
			}
		}
	}
	for _, n := range e.c.Nodes {
		if !n.Running() {
			n.Start()
		}
	}
	for _, n := range e.c.Nodes {
		if err := n.WaitReady(readyTimeout); err != nil {
			e.t.Errorf("after healing: %v", err)
		}
	}
}
