package cli

import (
	"strings"
	"testing"
)

func TestGet(t *testing.T) {
	s := startServer(t)
	s.cli(t, "put", "greeting", "hello").expect(t, exitOK, "OK version=1\n")
	s.cli(t, "get", "greeting").expect(t, exitOK, "hello\n")

	r := s.cli(t, "get", "greeting", "-o", "json")
	r.expect(t, exitOK, "*")
	var out kvOutput
	r.decode(t, &out)
	if out.Table != "default" || out.Key != "greeting" || out.Version != 1 || string(out.Value) != "hello" {
		t.Errorf("JSON output %+v", out)
	}

	r = s.cli(t, "get", "missing")
	r.expect(t, exitNo, "")
	if !strings.Contains(r.stderr, "Error: key not found") {
		t.Errorf("stderr %q", r.stderr)
	}
	r = s.cli(t, "get", "missing", "-o", "json")
	r.expect(t, exitNo, "")
	if !strings.Contains(r.stderr, `"code":"not_found"`) {
		t.Errorf("stderr %q", r.stderr)
	}

	r = s.cli(t, "get", "k", "--table", "nosuch")
	r.expect(t, exitNo, "")
	if !strings.Contains(r.stderr, "table not found") {
		t.Errorf("stderr %q", r.stderr)
	}
	s.cli(t, "get", "k", "--table", "Bad!").expect(t, exitUsage, "")
	s.cli(t, "get", strings.Repeat("k", 5000)).expect(t, exitUsage, "")
}
