// Goal: sweep seeds of the deterministic cluster simulation (see doc.go)
// and fail with the seed, the replay command and porcupine's visualization
// when a checker fires; prove that a seed replays exactly; prove that the
// checkers catch planted bugs.
//
// Cost: the default sweep (defaultSeeds = 350 seeds of 3000 faulty steps,
// about 4.5 s of simulated time and ~450 checked operations each) takes
// roughly 60-90 s on an idle 2-core machine without -race; under
// -race the default is raceSeeds (20). Long sweeps by flag:
//
//	go test ./internal/sim -run TestSim$ -seeds=10000 -timeout=0
//	go test ./internal/sim -run TestSim$ -seed=N -v -simtrace   # replay one
package sim

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
)

var (
	flagSeed      = flag.Int64("seed", -1, "run only this seed (replay)")
	flagSeeds     = flag.Int("seeds", 0, "number of seeds to sweep (default: defaultSeeds, or raceSeeds under -race)")
	flagFirst     = flag.Uint64("first-seed", 1, "first seed of a sweep")
	flagSteps     = flag.Int("steps", 0, "steps of the faulty phase per seed (default 3000)")
	flagNodes     = flag.Int("nodes", 0, "nodes per cluster (default 3)")
	flagTrace     = flag.Bool("simtrace", false, "print every simulated event of a replayed seed")
	flagNoQuiesce = flag.Bool("noquiesce", false, "keep idle ranges ticking (store.Options.Quiesce off)")
	flagNoMerges  = flag.Bool("nomerges", false, "no random range merges")
	flagNoXfers   = flag.Bool("notransfers", false, "no random leadership transfers (the seeds of before transfer.go)")
)

const defaultSeeds = 350

func replayCommand(seed uint64) string {
	cmd := fmt.Sprintf("go test ./internal/sim -run TestSim -seed=%d -v", seed)
	if *flagSteps != 0 {
		cmd += fmt.Sprintf(" -steps=%d", *flagSteps)
	}
	if *flagNodes != 0 {
		cmd += fmt.Sprintf(" -nodes=%d", *flagNodes)
	}
	return cmd
}

func skipWhenReplaying(t *testing.T) {
	if *flagSeed >= 0 {
		t.Skip("replaying one seed")
	}
}

func reportFailure(t *testing.T, r *Result) {
	t.Helper()
	t.Errorf("seed %d FAILED after %d steps (replay: %s)\n  %s", r.Seed, r.Steps, replayCommand(r.Seed), strings.Join(r.Failures, "\n  "))
	if r.VisualizationPath != "" {
		t.Errorf("seed %d: porcupine visualization: %s", r.Seed, r.VisualizationPath)
	}
}

func TestSim(t *testing.T) {
	cfg := Config{Steps: *flagSteps, Nodes: *flagNodes, NoQuiesce: *flagNoQuiesce, NoMerges: *flagNoMerges, NoTransfers: *flagNoXfers}
	if *flagSeed >= 0 {
		cfg.Seed = uint64(*flagSeed)
		if *flagTrace {
			cfg.Trace = os.Stdout
		}
		r := Run(cfg)
		t.Logf("seed %d: %d steps, %d ops (%d unknown), %d crashes, %d partitions, %d snapshots, %d splits, %d merges, %d moves, %d transfers, porcupine %s, trace %016x",
			r.Seed, r.Steps, r.Ops, r.Unknown, r.Crashes, r.Partitions, r.Snapshots, r.Splits, r.Merges, r.Moves, r.Transfers, r.Linearizable, r.TraceHash)
		if r.Failed() {
			reportFailure(t, r)
		}
		return
	}
	n := *flagSeeds
	if n == 0 {
		n = defaultSeeds
		if raceEnabled {
			n = raceSeeds
		}
	}
	var ops, unknown, crashes, parts, snaps, splits, merges, moves, transfers, quiesces, wakes, failed int
	for i := 0; i < n; i++ {
		cfg.Seed = *flagFirst + uint64(i)
		r := Run(cfg)
		ops, unknown, crashes, parts, snaps = ops+r.Ops, unknown+r.Unknown, crashes+r.Crashes, parts+r.Partitions, snaps+r.Snapshots
		splits, merges, moves, transfers = splits+r.Splits, merges+r.Merges, moves+r.Moves, transfers+r.Transfers
		quiesces, wakes = quiesces+r.Quiesces, wakes+r.Wakes
		if r.Failed() {
			failed++
			reportFailure(t, r)
			if failed >= 5 {
				t.Fatalf("stopping after %d failed seeds", failed)
			}
		}
	}
	t.Logf("%d seeds: %d ops checked (%d unknown), %d crashes, %d partitions, %d snapshots, %d splits, %d merges, %d replica moves, %d transfers, %d quiesces, %d wakes, %d failed",
		n, ops, unknown, crashes, parts, snaps, splits, merges, moves, transfers, quiesces, wakes, failed)
	if splits == 0 && n >= 20 {
		t.Errorf("no seed split a range: the split machinery did not run")
	}
	if merges == 0 && n >= 20 {
		t.Errorf("no seed merged ranges: the merge machinery did not run")
	}
	if moves == 0 && n >= 20 {
		t.Errorf("no seed moved a replica: the move machinery did not run")
	}
}

// TestSimReplaysExactly runs seeds with crashes, partitions and snapshots
// twice and compares their event traces.
func TestSimReplaysExactly(t *testing.T) {
	skipWhenReplaying(t)
	replayed := 0
	var hashes []uint64
	for seed := uint64(1); seed <= 50 && replayed < 3; seed++ {
		a := Run(Config{Seed: seed, Steps: 2000})
		if a.Crashes == 0 || a.Partitions == 0 || a.Snapshots == 0 {
			continue
		}
		b := Run(Config{Seed: seed, Steps: 2000})
		if a.TraceHash != b.TraceHash || a.Ops != b.Ops || a.Steps != b.Steps {
			t.Fatalf("seed %d does not replay: trace %016x vs %016x, ops %d vs %d, steps %d vs %d",
				seed, a.TraceHash, b.TraceHash, a.Ops, b.Ops, a.Steps, b.Steps)
		}
		replayed++
		hashes = append(hashes, a.TraceHash)
	}
	if replayed < 3 {
		t.Fatalf("only %d of seeds 1-50 had crashes, partitions and snapshots", replayed)
	}
	if hashes[0] == hashes[1] || hashes[1] == hashes[2] {
		t.Fatal("different seeds gave the same trace")
	}
}

// TestSimCatchesPlantedBugs proves the checkers can fail: each planted bug
// must be reported, by the checker named, within a few seeds.
func TestSimCatchesPlantedBugs(t *testing.T) {
	skipWhenReplaying(t)
	for _, tc := range []struct {
		name string
		bug  Bug
		want []string // any of these failure texts
	}{
		{"read without barrier", BugReadWithoutBarrier, []string{"not linearizable"}},
		{"forget synced writes", BugForgetSyncedWrites, []string{"lost write", "lost delete"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for seed := uint64(1); seed <= 20; seed++ {
				// KeepGoing: other checkers may fire first (two leaders in
				// a term, diverging entries); the named one must fire too.
				r := Run(Config{Seed: seed, Bug: tc.bug, KeepGoing: true})
				if !r.Failed() {
					continue
				}
				if r.VisualizationPath != "" {
					defer os.Remove(r.VisualizationPath)
				}
				for _, f := range r.Failures {
					for _, w := range tc.want {
						if strings.Contains(f, w) {
							t.Logf("seed %d caught it: %s", seed, f)
							return
						}
					}
				}
				t.Logf("seed %d failed, but not by the expected checker: %v", seed, r.Failures)
			}
			t.Fatalf("no seed caught the planted bug")
		})
	}
}

// TestSimReusedVoterSeeds replays the seeds that found bug #17
// (RELIABILITY.md): a node's new, empty replica of a range it had held
// voted for a lagging candidate (two leaders in term 9 in seed 374;
// committed entries overwritten in seed 956). Both remove a replica and
// crash its node, so the seeds exercise the tombstone.
func TestSimReusedVoterSeeds(t *testing.T) {
	skipWhenReplaying(t)
	for _, seed := range []uint64{374, 956} {
		r := Run(Config{Seed: seed, Steps: *flagSteps, Nodes: *flagNodes, NoQuiesce: *flagNoQuiesce, NoMerges: *flagNoMerges, NoTransfers: true})
		if r.Failed() {
			reportFailure(t, r)
			continue
		}
		if r.Moves == 0 || r.Crashes == 0 {
			t.Errorf("seed %d: %d moves, %d crashes; the seed no longer reaches the case", seed, r.Moves, r.Crashes)
		}
	}
}

// TestSimCatalogGapSeed replays the seed of RELIABILITY.md #26: a split
// whose catalog record was lost, a node that skipped it (a snapshot of the
// left range past it) and so had no replica of the right range, and a
// removal that left the right range needing that node's vote: nothing
// elected its leader or recorded it, and the cluster never settled.
// Without the gap repair (a leaderless replica of a range missing from
// the catalog records itself) the seed fails; with it, it passes.
func TestSimCatalogGapSeed(t *testing.T) {
	skipWhenReplaying(t)
	bad := Run(Config{Seed: 6861, NoTransfers: true, Bug: BugNoCatalogGapRepair, KeepGoing: true})
	if !bad.Failed() || !strings.Contains(strings.Join(bad.Failures, "\n"), "did not settle") {
		t.Errorf("seed 6861 without the gap repair: %v; the seed no longer reaches the case", bad.Failures)
	}
	if r := Run(Config{Seed: 6861, NoTransfers: true}); r.Failed() {
		reportFailure(t, r)
	}
}

// TestSimMergeSeeds replays the seeds that found merge bugs during
// development (docs/design/merges.md): a freeze whose left range merged
// away before the abort (106), uninitialized and stale replicas of merged
// ranges blocking the merged range (65, 88), a frozen replica waiting for
// a left replica that had moved on (104), a split's catalog gap taken for
// a merge (14), a snapshot of the left range refused after it merged and
// split again (720), and those of RELIABILITY.md #19 (2344, 1913). Each
// must pass and merge, but for the seeds in noMergeNow: since 89828fa
// (transport and replica changes shift the schedules) neither seed of #19
// reaches its case any more (1913 merges nothing; their cases have
// scenario tests: TestScenarioTwoMergesBeforeTheLeftCatchesUp,
// TestScenarioReplicaGoneAtRestartComesBackEmpty), and seed 65 merges no
// range (70 merges in its place).
func TestSimMergeSeeds(t *testing.T) {
	skipWhenReplaying(t)
	noMergeNow := map[uint64]bool{1913: true}
	for _, seed := range []uint64{14, 70, 88, 104, 106, 113, 720, 2344, 1913} {
		r := Run(Config{Seed: seed, Steps: *flagSteps, Nodes: *flagNodes, NoQuiesce: *flagNoQuiesce, NoMerges: *flagNoMerges, NoTransfers: true})
		if r.Failed() {
			reportFailure(t, r)
			continue
		}
		if r.Merges == 0 && !noMergeNow[seed] {
			t.Errorf("seed %d merged no range", seed)
		}
	}
}
