package cli

import (
	"strings"
	"testing"
)

// TestServerFlags checks the server command's flags and that a bad
// configuration is a usage error reported before the node starts.
func TestServerFlags(t *testing.T) {
	r := run(t, "", "server", "--help")
	r.expect(t, exitOK, "*")
	for _, flag := range []string{"--name", "--data-dir", "--listen ", "--listen-peer", "--listen-resp", "--advertise ",
		"--advertise-peer", "--initial-cluster", "--join", "--tick-interval", "--election-ticks", "--heartbeat-ticks",
		"--log-keep-entries", "--request-timeout", "--max-key-bytes", "--max-value-bytes", "--log-level",
		"--log-format", "--config", "$CAIRN_DATA_DIR"} {
		if !strings.Contains(r.stdout, flag) {
			t.Errorf("server --help lacks %s", flag)
		}
	}
	if strings.Contains(r.stdout, "--endpoints") {
		t.Error("server takes the client flag --endpoints")
	}

	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--listen", "nope"}, "--listen: \"nope\" is not host:port"},
		{[]string{"--initial-cluster", "n2=127.0.0.1:7380"}, "has no entry for this node"},
		{[]string{"--election-ticks", "x"}, "invalid argument"},
		{[]string{"--config", dir + "/missing.json"}, "no such file"},
		{[]string{"extra"}, "unknown command"},
	} {
		r := run(t, "", append([]string{"server", "--data-dir", dir}, tc.args...)...)
		r.expect(t, exitUsage, "")
		if !strings.Contains(r.stderr, tc.want) {
			t.Errorf("server %v: stderr %q, want %q", tc.args, r.stderr, tc.want)
		}
	}
}
