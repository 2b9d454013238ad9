package sim

// Goal: session and bounded-stale reads under the simulation's faults
// (crashes, partitions, message loss and delay, splits): sweep seeds with
// the probes of consistency.go and fail with the seed when the staleness
// or session checker fires; prove both checkers can fire by planting a
// probe that ignores the freshness proof, and one that ignores the
// session token. Mutations of cairn itself the sweep catches (tried):
// timing a freshness proof at the reply instead of the request (seed 52
// of 60) and dropping the split-generation rules of
// kv.SessionToken.Need (seed 44 of 150).
//
//	go test ./internal/sim -run TestSimProbes -probe-seeds=1000
//	go test ./internal/sim -run TestSimProbes -seed=N -v   # replay one

import (
	"flag"
	"os"
	"strings"
	"testing"
)

var flagProbeSeeds = flag.Int("probe-seeds", 0, "seeds of TestSimProbes (default 60, 10 under -race)")

func TestSimProbes(t *testing.T) {
	cfg := Config{Steps: *flagSteps, Nodes: *flagNodes, Probes: true}
	if *flagSeed >= 0 {
		cfg.Seed = uint64(*flagSeed)
		if *flagTrace {
			cfg.Trace = os.Stdout
		}
		r := Run(cfg)
		t.Logf("seed %d: %d stale reads, %d session reads", r.Seed, r.StaleReads, r.SessionReads)
		if r.Failed() {
			reportProbeFailure(t, r)
		}
		return
	}
	n := *flagProbeSeeds
	if n == 0 {
		n = 60
		if raceEnabled {
			n = 10
		}
	}
	var stale, session, partitions, splits, failed int
	for i := 0; i < n; i++ {
		cfg.Seed = *flagFirst + uint64(i)
		r := Run(cfg)
		stale, session, partitions, splits = stale+r.StaleReads, session+r.SessionReads, partitions+r.Partitions, splits+r.Splits
		if r.Failed() {
			failed++
			reportProbeFailure(t, r)
			if failed >= 3 {
				t.Fatalf("stopping after %d failed seeds", failed)
			}
		}
	}
	t.Logf("%d seeds: %d stale and %d session reads checked, %d partitions, %d splits, %d failed",
		n, stale, session, partitions, splits, failed)
	if stale < 100*n || session < 100*n {
		t.Errorf("only %d stale and %d session reads served in %d seeds: the probes hardly ran", stale, session, n)
	}
}

func TestSimProbesCatchPlantedBugs(t *testing.T) {
	skipWhenReplaying(t)
	for _, tc := range []struct {
		name string
		bug  Bug
		want string
	}{
		{"stale read without a proof", BugStaleWithoutProof, "staleness:"},
		{"session read ignoring the token", BugSessionIgnoresToken, "session:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for seed := uint64(1); seed <= 40; seed++ {
				r := Run(Config{Seed: seed, Bug: tc.bug, Probes: true, KeepGoing: true})
				for _, f := range r.Failures {
					if strings.Contains(f, tc.want) {
						t.Logf("seed %d caught it: %s", seed, f)
						return
					}
				}
				if r.Failed() {
					t.Logf("seed %d failed, but not by the expected checker: %v", seed, r.Failures)
				}
			}
			t.Fatal("no seed caught the planted bug")
		})
	}
}

func reportProbeFailure(t *testing.T, r *Result) {
	t.Helper()
	cmd := strings.Replace(replayCommand(r.Seed), "-run TestSim ", "-run TestSimProbes ", 1)
	t.Errorf("seed %d FAILED after %d steps (replay: %s)\n  %s", r.Seed, r.Steps, cmd, strings.Join(r.Failures, "\n  "))
	if r.VisualizationPath != "" {
		t.Errorf("seed %d: porcupine visualization: %s", r.Seed, r.VisualizationPath)
	}
}

// TestSimProbesReplay: a seed with probes replays exactly.
func TestSimProbesReplay(t *testing.T) {
	skipWhenReplaying(t)
	a := Run(Config{Seed: 7, Steps: 2000, Probes: true})
	b := Run(Config{Seed: 7, Steps: 2000, Probes: true})
	if a.TraceHash != b.TraceHash || a.StaleReads != b.StaleReads || a.SessionReads != b.SessionReads {
		t.Fatalf("seed 7 with probes does not replay: trace %016x vs %016x, reads %d/%d vs %d/%d",
			a.TraceHash, b.TraceHash, a.StaleReads, a.SessionReads, b.StaleReads, b.SessionReads)
	}
	if a.StaleReads == 0 || a.SessionReads == 0 {
		t.Fatalf("seed 7: %d stale, %d session reads", a.StaleReads, a.SessionReads)
	}
}
