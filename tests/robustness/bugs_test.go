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
const (
	// bugShutdownWaitsForPeerHandshake: on SIGTERM the server calls
	// grpc.Server.Stop on the peer server, which waits (serveWG) for every
	// accepted connection still in its HTTP/2 handshake; cairn keeps
	// gRPC's default handshake deadline (ConnectionTimeout, 120 s), so a
	// peer that connected and went silent (frozen, or partitioned right
	// after the TCP handshake) holds the shutdown for up to two minutes.
	bugShutdownWaitsForPeerHandshake = "shutdown-waits-for-peer-handshake"
)

func knownBug(t *testing.T, bugs ...string) {
	t.Helper()
	if !*flagKnownBugs {
		t.Skipf("reproduces known bugs not fixed yet (%s); run with -known-bugs", strings.Join(bugs, ", "))
	}
}
