package respapi

// Goal: the command table's replies, byte for byte as Redis gives them
// where Redis defines them. Method: datadriven transcripts
// (testdata/transcripts/*.txt) of commands on named connections against a Server over
// an in-memory backend (memBackend), without sockets. Each command must
// produce exactly one well-formed reply. Regenerate with -rewrite and read
// the diff. Texts were checked against redis-server 7.0 by hand and, for
// what go-redis sees, by tests/resp against a real redis-server.
//
// Directives:
//
//	run [conn=NAME]   run the input lines as commands (inline syntax) on
//	                  connection NAME (default "a"); print "> cmd" and the
//	                  reply of each
//	fail [method=M err=unavailable|timeout|invalid|internal|notleader]
//	                  make backend method M (Get, Put, Delete, List,
//	                  Batch, or * for all) fail; no arguments: stop failing
//	batches           print how many Batch calls the backend saw

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/cairn-db/cairn/internal/kv"
)

func TestTranscripts(t *testing.T) {
	datadriven.Walk(t, "testdata/transcripts", func(t *testing.T, path string) {
		b := newMemBackend()
		s := newTestServer(t, b, Options{NodeName: "n1"})
		next := uint64(0)
		s.cursors.newID = func() uint64 { next++; return next }
		conns := map[string]*testConn{}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			switch d.Cmd {
			case "run":
				name := "a"
				if d.HasArg("conn") {
					d.ScanArgs(t, "conn", &name)
				}
				tc := conns[name]
				if tc == nil || tc.c.closing {
					tc = s.newTestConn(t)
					conns[name] = tc
				}
				var out strings.Builder
				for _, line := range strings.Split(d.Input, "\n") {
					if strings.TrimSpace(line) == "" {
						continue
					}
					fmt.Fprintf(&out, "> %s\n%s\n", line, tc.do(line))
				}
				return out.String()
			case "fail":
				if len(d.CmdArgs) == 0 {
					b.setFail(nil)
					return "ok"
				}
				var method, kind string
				d.ScanArgs(t, "method", &method)
				d.ScanArgs(t, "err", &kind)
				err := map[string]error{
					"unavailable": kv.Errorf(kv.ErrUnavailable, "range 2 has no leader"),
					"timeout":     kv.Errorf(kv.ErrTimeout, "forward to node 1 failed"),
					"invalid":     kv.Errorf(kv.ErrInvalidArgument, "batch keys lie in several ranges"),
					"internal":    kv.Errorf(kv.ErrInternal, "disk on fire"),
					"notleader":   kv.Errorf(kv.ErrNotLeader, "node 1 does not lead range 2"),
				}[kind]
				b.setFail(func(m string) error {
					if method == "*" || m == method {
						return err
					}
					return nil
				})
				return "ok"
			case "batches":
				b.mu.Lock()
				defer b.mu.Unlock()
				return fmt.Sprint(b.batches)
			}
			t.Fatalf("unknown directive %q", d.Cmd)
			return ""
		})
	})
}
