package cli

import (
	"strings"
	"testing"
	"time"
)

func TestPut(t *testing.T) {
	s := startServer(t)
	s.cli(t, "put", "k", "v1").expect(t, exitOK, "OK version=1\n")
	s.cli(t, "put", "k", "v2", "-o", "json").expect(t, exitOK, "{\"version\":2}\n")

	r := s.cli(t, "put", "k", "v3", "--if-version", "1")
	r.expect(t, exitNo, "")
	if !strings.Contains(r.stderr, "condition failed") {
		t.Errorf("stderr %q", r.stderr)
	}
	s.cli(t, "put", "k", "v3", "--if-version", "2").expect(t, exitOK, "OK version=3\n")
	s.cli(t, "put", "k", "x", "--if-absent").expect(t, exitNo, "")
	s.cli(t, "put", "new", "x", "--if-absent").expect(t, exitOK, "OK version=4\n")
	s.cli(t, "get", "k").expect(t, exitOK, "v3\n")

	// A value from stdin, binary and without a trailing newline.
	value := "line one\nline two\x00\xff"
	r = run(t, value, "put", "blob", "-", "--endpoints", s.addr)
	r.expect(t, exitOK, "OK version=5\n")
	s.cli(t, "get", "blob").expect(t, exitOK, value+"\n")

	// --ttl: the key is there until the server's clock passes the TTL.
	s.cli(t, "put", "session", "x", "--ttl", "-1s").expect(t, exitUsage, "")
	s.cli(t, "put", "session", "x", "--ttl", "500us").expect(t, exitUsage, "")
	s.cli(t, "put", "session", "x", "--ttl", "50ms").expect(t, exitOK, "OK version=6\n")
	s.cli(t, "get", "session").expect(t, exitOK, "x\n")
	time.Sleep(60 * time.Millisecond)
	s.cli(t, "get", "session").expect(t, exitNo, "")

	s.cli(t, "put", "k", "v", "--table", "nosuch").expect(t, exitNo, "")
	s.cli(t, "put", "k", strings.Repeat("v", 2<<20)).expect(t, exitUsage, "")
}
