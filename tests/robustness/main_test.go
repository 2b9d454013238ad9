// Package robustness runs clusters of real `cairn server` processes under
// injected faults while concurrent clients read and write, records every
// operation with its invoke and return times, and checks the history:
// linearizability per key (porcupine), no acknowledged write lost, and
// versions never going backwards in real time.
//
// Faults: kill -9 (a random node, the leader, all nodes), SIGSTOP/SIGCONT
// of the leader, network partitions (isolated leader, majority/minority,
// bridge, one-way), a slow lossy link (HTB rate limit plus random drop),
// and a full disk (one node's data dir on a small tmpfs). Every fault is
// bounded in time and undone in t.Cleanup, even when a test fails.
//
// Partitions on one host: each node runs under its own uid; an iptables
// rule in mangle OUTPUT stamps every new connection with a connmark
// derived from the owner uid of the socket that opened it, and filter
// INPUT rules DROP (silently: peers see timeouts, not errors) packets of
// the cut pairs, matched by that connmark and the peer listener's port.
// All rules live in chains of this process (CRB-<pid>…) that cleanup
// flushes and deletes; no other rule is touched.
//
// Needs root, iptables (Debian package iptables) and tc (iproute2). A
// missing tool fails the tests with the package to install; nothing is
// skipped. tc netem is not used: the kernels this runs on are built
// without sch_netem (CONFIG_NET_SCH_NETEM), so latency comes from an HTB
// rate limit (queueing) and loss from the iptables statistic match.
//
// Flags (after -args, or directly with go test):
//
//	-seed=N          seed of the first run (default: random, printed)
//	-duration=D      workload time of each scenario run (default: the
//	                 scenario's short CI duration)
//	-runs=N          runs of each scenario, seeds N, N+1, ... (default 1)
//	-scenario=a,b    only these scenarios (default: all)
//
// Environment:
//
//	CAIRN_ROBUST_BINARY=/path/to/cairn  test this binary instead of building
//	CAIRN_ROBUST_RACE=1                 build with -race
//	CAIRN_ROBUST_ARTIFACTS=DIR          where failing runs save history,
//	                                    porcupine HTML and logs (default
//	                                    $TMPDIR/cairn-robustness)
//	CAIRN_ROBUST_PLANT=stale-read       plant a known bug in the harness's
//	                                    client (GETs sometimes answered from
//	                                    an older reply, as a stale follower
//	                                    would): every scenario must then fail
//
// Short (CI, a few minutes on two cores):
//
//	go test -count=1 ./tests/robustness/ -v
//
// Long:
//
//	go test -count=1 -timeout=2h ./tests/robustness/ -v -runs=20 -duration=60s
package robustness

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

var (
	flagSeed     = flag.Uint64("seed", 0, "seed of the first run of each scenario (0: random)")
	flagDuration = flag.Duration("duration", 0, "workload duration of each scenario run (0: the scenario's default)")
	flagRuns     = flag.Int("runs", 1, "runs of each scenario")
	flagScenario = flag.String("scenario", "", "comma-separated scenarios to run (default: all)")
)

// binary is the path of the cairn binary under test, set by TestMain.
var binary string

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	cleanupStale()
	if b := os.Getenv("CAIRN_ROBUST_BINARY"); b != "" {
		binary = b
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "cairn-robust-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "robustness: temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	// Nodes run under their own uids: they must be able to execute it.
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "robustness: chmod:", err)
		return 1
	}
	binary = filepath.Join(dir, "cairn")
	args := []string{"build", "-o", binary}
	if os.Getenv("CAIRN_ROBUST_RACE") != "" {
		args = append(args, "-race")
	}
	args = append(args, "./cmd/cairn")
	cmd := exec.Command("go", args...)
	cmd.Dir = filepath.Join("..", "..") // the module root, from tests/robustness
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "robustness: go %v: %v\n%s", args, err, out)
		return 1
	}
	fmt.Fprintf(os.Stderr, "robustness: built %s in %v\n", binary, time.Since(start).Round(time.Millisecond))
	return m.Run()
}
