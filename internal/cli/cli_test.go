// Test harness of the command line. Goal of the tests in this package:
// each command prints what its doc promises, in text and JSON, and exits
// with the documented code. Method: the cobra command runs in-process
// (Run) against a real gRPC server on a loopback port serving grpcapi over
// the in-memory kv.Service of memservice_test.go.
package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"

	"github.com/cairn-db/cairn/internal/frontend/grpcapi"
	"github.com/cairn-db/cairn/internal/kv/kvtest"
)

// testServer is a gRPC server over a memService.
type testServer struct {
	addr string
	svc  *kvtest.MemService
}

func startServer(t testing.TB) *testServer {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	svc := kvtest.NewMemService()
	s := grpc.NewServer()
	grpcapi.Register(s, svc)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(lis)
	}()
	t.Cleanup(func() {
		s.Stop()
		<-done
	})
	return &testServer{addr: lis.Addr().String(), svc: svc}
}

// result is the outcome of one command line.
type result struct {
	stdout, stderr string
	code           int
}

// run runs cairn with args and stdin.
func run(t testing.TB, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}

// cli runs a client command against s: args plus --endpoints.
func (s *testServer) cli(t testing.TB, args ...string) result {
	t.Helper()
	return run(t, "", append(args, "--endpoints", s.addr)...)
}

// expect checks the exit code and that stdout equals wantOut (unless
// wantOut is "*").
func (r result) expect(t testing.TB, code int, wantOut string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit code %d, want %d (stdout %q, stderr %q)", r.code, code, r.stdout, r.stderr)
	}
	if wantOut != "*" && r.stdout != wantOut {
		t.Errorf("stdout %q, want %q (stderr %q)", r.stdout, wantOut, r.stderr)
	}
}

// decode parses stdout as one JSON document into v.
func (r result) decode(t testing.TB, v any) {
	t.Helper()
	if strings.Count(r.stdout, "\n") != 1 {
		t.Errorf("JSON output is not one line: %q", r.stdout)
	}
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		t.Fatalf("stdout %q is not JSON: %v", r.stdout, err)
	}
}
