package robustness

import (
	"flag"
	"strings"
	"testing"
)

var flagKnownBugs = flag.Bool("known-bugs", false, "also run the reproducers of bugs not fixed yet (they fail until fixed)")

// Bugs found by this package and not fixed yet. A reproducer calls
// knownBug; it runs with -known-bugs (and fails until the bug is fixed).
// Delete the entry, and the call, with the fix: the reproducer then runs
// in CI as the bug's regression test.
// None open at the moment. Each one is a const here, e.g.
//
//	// bugX: what goes wrong, where, how often.
//	bugX = "x"
//
// and its reproducer starts with knownBug(t, bugX).

func knownBug(t *testing.T, bugs ...string) {
	t.Helper()
	if !*flagKnownBugs {
		t.Skipf("reproduces known bugs not fixed yet (%s); run with -known-bugs", strings.Join(bugs, ", "))
	}
}
