package cli

import (
	"os"
	"path/filepath"
	"testing"
)

// TestTxn: cairn txn reads JSON from stdin or a file, prints one line per
// op or the JSON reply, exits 1 (nothing written) on a failed check and 2
// on malformed input.
func TestTxn(t *testing.T) {
	s := startServer(t)
	s.cli(t, "put", "a", "1").expect(t, exitOK, "OK version=1\n")
	body := `{"ops":[{"op":"read","table":"default","key":"a"},{"op":"put","table":"default","key":"b","value":"2","if_absent":true}]}`
	r := run(t, body, "txn", "--endpoints", s.addr)
	r.expect(t, exitOK, "read default/a found=true version=1 value=1\nput default/b found=true version=2\n")
	s.cli(t, "get", "b").expect(t, exitOK, "2\n")

	f := filepath.Join(t.TempDir(), "t.json")
	if err := os.WriteFile(f, []byte(`{"ops":[{"op":"check","table":"default","key":"a","value":"1"},{"op":"delete","table":"default","key":"b"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	s.cli(t, "txn", f, "-o", "json").expect(t, exitOK, `{"results":[{"found":true,"value":"MQ==","version":1},{"found":true,"version":2}]}`+"\n")
	s.cli(t, "get", "b").expect(t, exitNo, "")

	// A failed check writes nothing.
	r = run(t, `{"ops":[{"op":"put","table":"default","key":"c","value":"x"},{"op":"check","table":"default","key":"a","absent":true}]}`, "txn", "--endpoints", s.addr)
	r.expect(t, exitNo, "")
	s.cli(t, "get", "c").expect(t, exitNo, "")

	run(t, `{"ops":[{"op":"read"}]}`, "txn", "--endpoints", s.addr).expect(t, exitUsage, "")
	run(t, `not json`, "txn", "-", "--endpoints", s.addr).expect(t, exitUsage, "")
	s.cli(t, "txn", filepath.Join(t.TempDir(), "missing.json")).expect(t, exitUsage, "")
}
