package cli

// Goal: get and ls take --consistency/--max-staleness (checked before
// connecting), and --session-file carries the session token between
// commands: a put writes it, a session get sends it and a miss still
// advances it.
// Method: the CLI against a loopback gRPC server over the in-memory
// service (one range whose log index counts the writes).

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-db/cairn/internal/kv"
)

func sessionIndex(t *testing.T, path string) uint64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := kv.DecodeSessionToken(strings.TrimSpace(string(b)))
	if err != nil || len(tok.Entries) != 1 {
		t.Fatalf("session file %q: %+v, %v", b, tok, err)
	}
	return tok.Entries[0].Index
}

func TestSessionFile(t *testing.T) {
	s := startServer(t)
	file := filepath.Join(t.TempDir(), "session")
	s.cli(t, "put", "k", "v", "--session-file", file).expect(t, exitOK, "*")
	if got := sessionIndex(t, file); got != 11 {
		t.Fatalf("after one put the session is at %d, want 11", got)
	}
	want, _ := os.ReadFile(file)
	s.cli(t, "get", "k", "--consistency", "session", "--session-file", file).expect(t, exitOK, "v\n")
	if got := s.svc.LastGetToken(); got != strings.TrimSpace(string(want)) {
		t.Fatalf("session get sent %q, want %q", got, want)
	}
	// A put without the file does not move it; a miss read with it does.
	s.cli(t, "put", "other", "x").expect(t, exitOK, "*")
	s.cli(t, "get", "absent", "--consistency", "session", "--session-file", file).expect(t, exitNo, "")
	if got := sessionIndex(t, file); got != 12 {
		t.Fatalf("after a miss the session is at %d, want 12", got)
	}
	t.Setenv("CAIRN_SESSION_FILE", file)
	s.cli(t, "ls", "--consistency", "session").expect(t, exitOK, "k\nother\n")

	if err := os.WriteFile(file, []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.cli(t, "get", "k", "--session-file", file).expect(t, exitUsage, "")
}

func TestReadFlags(t *testing.T) {
	s := startServer(t)
	s.cli(t, "put", "k", "v").expect(t, exitOK, "*")
	s.cli(t, "get", "k", "--consistency", "stale", "--max-staleness", "500ms").expect(t, exitOK, "v\n")
	r := s.cli(t, "get", "k", "--consistency", "stale", "-o", "json")
	r.expect(t, exitOK, "*")
	var out kvOutput
	r.decode(t, &out)
	if out.Consistency != "stale" || out.ServedBy != 1 {
		t.Errorf("JSON output %+v does not say how the get was served", out)
	}
	s.cli(t, "ls", "--consistency", "stale").expect(t, exitOK, "k\n")
	s.cli(t, "get", "k", "--consistency", "eventual").expect(t, exitUsage, "")
	s.cli(t, "get", "k", "--max-staleness", "2s").expect(t, exitUsage, "")
	s.cli(t, "get", "k", "--consistency", "stale", "--max-staleness", "1ms").expect(t, exitUsage, "")
	s.cli(t, "ls", "--consistency", "stale", "--max-staleness", "2h").expect(t, exitUsage, "")
}
