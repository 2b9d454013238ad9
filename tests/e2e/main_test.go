// Package e2e runs real cairn binaries as child processes on real ports and
// checks the user-facing contract of DESIGN.md from outside: HTTP requests,
// kill -9, SIGTERM, restarts.
//
// TestMain builds ./cmd/cairn once into a temporary directory. Environment:
//
//	CAIRN_E2E_BINARY=/path/to/cairn  use this binary instead of building
//	CAIRN_E2E_RACE=1                 build with -race (slower; finds races)
//	CAIRN_E2E_LOGDIR=DIR             copy every node's log into DIR after each test
//
// Every test always runs (no -short skips); the package takes a few minutes
// on two cores. Tests do not run in parallel: each starts its own cluster
// on fresh ports, and kill -9 timings are easier to reason about alone.
package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// binary is the path of the cairn binary under test, set by TestMain.
var binary string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if b := os.Getenv("CAIRN_E2E_BINARY"); b != "" {
		binary = b
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "cairn-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "cairn")
	args := []string{"build", "-o", binary}
	if os.Getenv("CAIRN_E2E_RACE") != "" {
		args = append(args, "-race")
	}
	args = append(args, "./cmd/cairn")
	cmd := exec.Command("go", args...)
	cmd.Dir = filepath.Join("..", "..") // the module root, from tests/e2e
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go %v: %v\n%s", args, err, out)
		return 1
	}
	fmt.Fprintf(os.Stderr, "e2e: built %s in %v\n", binary, time.Since(start).Round(time.Millisecond))
	return m.Run()
}
