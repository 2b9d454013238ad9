package respapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/kv"
	"github.com/cairn-db/cairn/internal/kv/kvtest"
	"github.com/cairn-db/cairn/internal/resp"
)

// memBackend is kvtest.MemService plus an atomic Batch with the router's
// semantics: every condition is checked against the state before the
// batch, then the operations apply in order; a delete of an absent key is
// a no-op. One mutex makes Batch atomic with respect to the other calls.
// fail, when set, runs first in Get, Put, Delete, List and Batch.
type memBackend struct {
	*kvtest.MemService
	mu   sync.Mutex
	fail func(method string) error
	// batches and puts count Batch and Put calls.
	batches, puts int
}

func newMemBackend() *memBackend { return &memBackend{MemService: kvtest.NewMemService()} }

func (m *memBackend) injected(method string) error {
	if m.fail != nil {
		return m.fail(method)
	}
	return nil
}

func (m *memBackend) setFail(f func(string) error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fail = f
}

func (m *memBackend) Get(ctx context.Context, req *cairnpb.GetRequest) (*cairnpb.GetResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.injected("Get"); err != nil {
		return nil, err
	}
	return m.MemService.Get(ctx, req)
}

func (m *memBackend) Put(ctx context.Context, req *cairnpb.PutRequest) (*cairnpb.PutResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.puts++
	if err := m.injected("Put"); err != nil {
		return nil, err
	}
	if err := kv.DefaultLimits.ValidatePut(req); err != nil {
		return nil, err
	}
	return m.MemService.Put(ctx, req)
}

func (m *memBackend) Delete(ctx context.Context, req *cairnpb.DeleteRequest) (*cairnpb.DeleteResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.injected("Delete"); err != nil {
		return nil, err
	}
	return m.MemService.Delete(ctx, req)
}

func (m *memBackend) List(ctx context.Context, req *cairnpb.ListRequest) (*cairnpb.ListResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.injected("List"); err != nil {
		return nil, err
	}
	return m.MemService.List(ctx, req)
}

func (m *memBackend) Batch(ctx context.Context, req *cairnpb.BatchRequest) (*cairnpb.BatchResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.batches++
	if err := m.injected("Batch"); err != nil {
		return nil, err
	}
	if err := kv.DefaultLimits.ValidateBatch(req); err != nil {
		return nil, err
	}
	for i, op := range req.Ops {
		key, cond := opKey(op)
		cur, err := m.MemService.Get(ctx, &cairnpb.GetRequest{Table: req.Table, Key: key})
		found := err == nil
		if err != nil && !errors.Is(err, kv.ErrNotFound) {
			return nil, err
		}
		if cond == nil {
			continue
		}
		switch {
		case cond.Absent && found:
			return nil, kv.Errorf(kv.ErrConditionFailed, "batch op %d: key exists", i)
		case cond.Version != 0 && (!found || cur.Version != cond.Version):
			return nil, kv.Errorf(kv.ErrConditionFailed, "batch op %d: version differs", i)
		}
	}
	out := &cairnpb.BatchResponse{}
	for _, op := range req.Ops {
		switch o := op.Op.(type) {
		case *cairnpb.BatchOp_Put:
			r, err := m.MemService.Put(ctx, &cairnpb.PutRequest{Table: req.Table, Key: o.Put.Key, Value: o.Put.Value,
				TtlMs: o.Put.TtlMs, KeepTtl: o.Put.KeepTtl})
			if err != nil {
				return nil, err
			}
			out.Results = append(out.Results, &cairnpb.BatchResult{Version: r.Version, Found: true})
		case *cairnpb.BatchOp_Delete:
			r, err := m.MemService.Delete(ctx, &cairnpb.DeleteRequest{Table: req.Table, Key: o.Delete.Key})
			if err != nil {
				out.Results = append(out.Results, &cairnpb.BatchResult{})
				continue
			}
			out.Results = append(out.Results, &cairnpb.BatchResult{Version: r.Version, Found: true})
		}
	}
	return out, nil
}

func opKey(op *cairnpb.BatchOp) ([]byte, *cairnpb.Condition) {
	switch o := op.Op.(type) {
	case *cairnpb.BatchOp_Put:
		return o.Put.Key, o.Put.Condition
	case *cairnpb.BatchOp_Delete:
		return o.Delete.Key, o.Delete.Condition
	}
	return nil, nil
}

// fakeAddr is the address of a connection that has no socket.
type fakeAddr string

func (a fakeAddr) Network() string { return "tcp" }
func (a fakeAddr) String() string  { return string(a) }

// nopConn is a net.Conn for a conn driven by dispatch alone.
type nopConn struct{ net.Conn }

func (nopConn) RemoteAddr() net.Addr { return fakeAddr("127.0.0.1:50000") }
func (nopConn) LocalAddr() net.Addr  { return fakeAddr("127.0.0.1:7381") }
func (nopConn) Close() error         { return nil }

// testConn is a connection driven through dispatch, without a socket.
type testConn struct {
	t testing.TB
	c *conn
}

func newTestServer(t testing.TB, b Backend, opts Options) *Server {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = discardLogger()
	}
	s := New(b, opts)
	t.Cleanup(func() { s.Close() })
	return s
}

func (s *Server) newTestConn(t testing.TB) *testConn {
	return &testConn{t: t, c: newConn(s, nopConn{})}
}

// do runs one command (inline syntax) and returns its reply, described.
// It fails the test unless the command produced exactly one well-formed
// reply.
func (tc *testConn) do(line string) string {
	tc.t.Helper()
	args, ok := resp.SplitArgs([]byte(line))
	if !ok || len(args) == 0 {
		tc.t.Fatalf("bad command line %q", line)
	}
	v, err := tc.run(args)
	if err != nil {
		tc.t.Fatalf("%s: %v", line, err)
	}
	return v.String()
}

// run dispatches args and parses the one reply.
func (tc *testConn) run(args [][]byte) (resp.Value, error) {
	c := tc.c
	c.out.Reset(keepBufferBytes)
	c.dispatch(args)
	out := c.out.Bytes()
	if len(out) == 0 && c.closing {
		return resp.Value{Kind: resp.SimpleString, Str: []byte("(connection closed)")}, nil
	}
	r := resp.NewReader(bytes.NewReader(out), resp.Limits{MaxBulkBytes: 64 << 20, MaxFrameBytes: 1 << 30})
	v, err := r.ReadValue()
	if err != nil {
		return v, fmt.Errorf("reply %q does not parse: %v", out, err)
	}
	if _, err := r.ReadValue(); err == nil {
		return v, fmt.Errorf("more than one reply in %q", out)
	}
	return v, nil
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// Txn is kvtest.MemService's all-or-nothing Txn, with fault injection.
func (m *memBackend) Txn(ctx context.Context, req *cairnpb.TxnRequest) (*cairnpb.TxnResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.injected("Txn"); err != nil {
		return nil, err
	}
	return m.MemService.Txn(ctx, req)
}
