package cli

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/cairn-db/cairn/client"
)

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"nosuchcommand"},
		{"get"},
		{"get", "a", "b"},
		{"put", "k"},
		{"get", "k", "--nosuchflag"},
		{"put", "k", "v", "--if-version", "abc"},
		{"put", "k", "v", "--if-version", "3", "--if-absent"},
		{"put", "k", "v", "--if-version", "0"},
		{"del", "k", "--if-version", "0"},
		{"get", "k", "-o", "yaml"},
		{"get", "k", "--endpoints", " , "},
		{"get", "k", "--timeout", "0s"},
		{"table", "nosuch"},
		{"cluster", "nosuch"},
		{"table", "create"},
		{"cluster", "status", "extra"},
		{"version", "extra"},
		{"ls", "a", "b"},
		{"ls", "--limit", "-1"},
	} {
		r := run(t, "", args...)
		if r.code != exitUsage {
			t.Errorf("cairn %s: exit %d, want %d (stderr %q)", strings.Join(args, " "), r.code, exitUsage, r.stderr)
		}
		if !strings.HasPrefix(r.stderr, "Error: ") {
			t.Errorf("cairn %s: stderr %q", strings.Join(args, " "), r.stderr)
		}
	}
	r := run(t, "", "get")
	if !strings.Contains(r.stderr, "Run 'cairn get --help' for usage.") {
		t.Errorf("usage hint missing: %q", r.stderr)
	}
}

func TestHelp(t *testing.T) {
	r := run(t, "")
	r.expect(t, exitOK, "*")
	for _, cmd := range []string{"server", "get", "put", "del", "ls", "table", "cluster", "bench", "version"} {
		if !strings.Contains(r.stdout, "\n  "+cmd+" ") {
			t.Errorf("help does not list %q:\n%s", cmd, r.stdout)
		}
	}
	r = run(t, "", "get", "--help")
	r.expect(t, exitOK, "*")
	for _, flag := range []string{"--endpoints", "--timeout", "--output", "--table"} {
		if !strings.Contains(r.stdout, flag) {
			t.Errorf("get --help lacks %s", flag)
		}
	}
}

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{runError{client.ErrNotFound}, exitNo},
		{runError{client.ErrTableNotFound}, exitNo},
		{runError{client.ErrConditionFailed}, exitNo},
		{runError{client.ErrTableExists}, exitNo},
		{runError{client.ErrInvalidArgument}, exitUsage},
		{runError{client.ErrUnavailable}, exitFailure},
		{runError{client.ErrTimeout}, exitFailure},
		{runError{client.ErrInternal}, exitFailure},
		{runError{errors.New("disk full")}, exitFailure},
		{usageErrorf("bad"), exitUsage},
		{errors.New("from cobra"), exitUsage},
	} {
		if got := exitCode(tc.err); got != tc.want {
			t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

func TestUnavailable(t *testing.T) {
	r := run(t, "", "get", "k", "--endpoints", "127.0.0.1:1", "--timeout", "2s")
	r.expect(t, exitFailure, "")
	if !strings.Contains(r.stderr, "cannot connect to 127.0.0.1:1") {
		t.Errorf("stderr %q", r.stderr)
	}
	r = run(t, "", "get", "k", "--endpoints", "127.0.0.1:1", "-o", "json")
	r.expect(t, exitFailure, "")
	var e struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal([]byte(r.stderr), &e); err != nil || e.Error.Code != "unavailable" {
		t.Errorf("JSON error %q: %v", r.stderr, err)
	}
}

func TestEndpointsFromEnv(t *testing.T) {
	s := startServer(t)
	t.Setenv("CAIRN_ENDPOINTS", s.addr)
	run(t, "", "put", "k", "v").expect(t, exitOK, "OK version=1\n")
	// The flag wins over the environment.
	r := run(t, "", "get", "k", "--endpoints", "127.0.0.1:1")
	r.expect(t, exitFailure, "")
}
