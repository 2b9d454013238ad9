package respapi

// Tests of AUTH against an Authenticator: with auth enabled every command
// but AUTH, HELLO and QUIT answers -NOAUTH until AUTH succeeds; a wrong
// password is -WRONGPASS; after AUTH the connection's backend calls carry
// the principal (single commands, pipelined SETs, MSET, transactions), and
// a denial from the backend is -NOPERM. Method: a fake Authenticator and
// a backend that refuses writes of the user "reader".

import (
	"context"
	"crypto/tls"
	"strings"
	"testing"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/kv"
)

type userKey struct{}

type fakeAuth struct {
	enabled bool
	protect bool
	users   map[string]string // name -> password
}

func (f *fakeAuth) Enabled() bool                { return f.enabled }
func (f *fakeAuth) ProtectedRefuses(string) bool { return f.protect }
func (f *fakeAuth) CertContext(context.Context, tls.ConnectionState) (context.Context, bool) {
	return nil, false
}
func (f *fakeAuth) UserExists(name string) bool { _, ok := f.users[name]; return ok }
func (f *fakeAuth) PasswordContext(parent context.Context, user, password, _ string) (context.Context, error) {
	if pw, ok := f.users[user]; !ok || pw != password {
		return nil, kv.Errorf(kv.ErrUnauthenticated, "invalid user name or password")
	}
	return context.WithValue(parent, userKey{}, user), nil
}

// guardedBackend refuses every write unless the context's user is "writer".
type guardedBackend struct{ *memBackend }

func allowWrite(ctx context.Context) error {
	if u, _ := ctx.Value(userKey{}).(string); u != "writer" {
		return kv.Errorf(kv.ErrPermissionDenied, "user %q lacks write permission on table \"default\"", u)
	}
	return nil
}

func (g guardedBackend) Put(ctx context.Context, r *cairnpb.PutRequest) (*cairnpb.PutResponse, error) {
	if err := allowWrite(ctx); err != nil {
		return nil, err
	}
	return g.memBackend.Put(ctx, r)
}

func (g guardedBackend) Batch(ctx context.Context, r *cairnpb.BatchRequest) (*cairnpb.BatchResponse, error) {
	if err := allowWrite(ctx); err != nil {
		return nil, err
	}
	return g.memBackend.Batch(ctx, r)
}

func TestAuthEnabled(t *testing.T) {
	fa := &fakeAuth{enabled: true, users: map[string]string{"reader": "r", "writer": "w", "default": "d"}}
	s := newTestServer(t, guardedBackend{newMemBackend()}, Options{Auth: fa})
	addr := startServer(t, s)
	c := dial(t, addr)
	for _, cmd := range [][]string{{"GET", "k"}, {"PING"}, {"SET", "k", "v"}, {"MULTI"}, {"CLIENT", "LIST"}} {
		if got := c.do(cmd...); !strings.Contains(got, "NOAUTH") {
			t.Fatalf("%v before AUTH: %s", cmd, got)
		}
	}
	if got := c.do("AUTH", "writer", "bad"); !strings.Contains(got, "WRONGPASS") {
		t.Fatalf("wrong password: %s", got)
	}
	if got := c.do("AUTH", "nobody", "w"); !strings.Contains(got, "WRONGPASS") {
		t.Fatalf("unknown user: %s", got)
	}
	if got := c.do("GET", "k"); !strings.Contains(got, "NOAUTH") {
		t.Fatalf("GET after a failed AUTH: %s", got)
	}
	if got := c.do("AUTH", "writer", "w"); got != "OK" {
		t.Fatalf("AUTH writer: %s", got)
	}
	c.send([]byte(string(encode("SET", "a", "1")) + string(encode("SET", "b", "2"))))
	for range 2 {
		if got := c.read(); got != "OK" {
			t.Fatalf("pipelined SET as writer: %s", got)
		}
	}
	if got := c.do("MSET", "c", "3", "d", "4"); got != "OK" {
		t.Fatalf("MSET as writer: %s", got)
	}

	r := dial(t, addr)
	if got := r.do("HELLO", "2", "AUTH", "reader", "r"); strings.Contains(got, "ERR") || strings.Contains(got, "WRONGPASS") {
		t.Fatalf("HELLO AUTH reader: %s", got)
	}
	if got := r.do("GET", "a"); got != `"1"` {
		t.Fatalf("reader GET: %s", got)
	}
	for _, cmd := range [][]string{{"SET", "a", "x"}, {"MSET", "a", "x", "b", "y"}, {"INCR", "n"}} {
		if got := r.do(cmd...); !strings.HasPrefix(got, "(error) NOPERM") && !strings.Contains(got, "NOPERM") {
			t.Fatalf("reader %v: %s, want NOPERM", cmd, got)
		}
	}
	d := dial(t, addr)
	if got := d.do("AUTH", "d"); got != "OK" {
		t.Fatalf("AUTH pass as default: %s", got)
	}
}

func TestAuthDisabledKeepsRedisBehaviour(t *testing.T) {
	fa := &fakeAuth{enabled: false, users: map[string]string{"alice": "a"}}
	s := newTestServer(t, newMemBackend(), Options{Auth: fa})
	c := dial(t, startServer(t, s))
	if got := c.do("SET", "k", "v"); got != "OK" {
		t.Fatalf("SET without AUTH while auth is off: %s", got)
	}
	if got := c.do("AUTH", "default", "anything"); got != "OK" {
		t.Fatalf("AUTH default while auth is off and no such user: %s", got)
	}
	if got := c.do("AUTH", "alice", "wrong"); !strings.Contains(got, "WRONGPASS") {
		t.Fatalf("AUTH of an existing user with a wrong password: %s", got)
	}
	if got := c.do("AUTH", "x"); !strings.Contains(got, "without any password configured") {
		t.Fatalf("AUTH pass without a default user: %s", got)
	}
}

func TestProtectedModeDenies(t *testing.T) {
	fa := &fakeAuth{protect: true}
	s := newTestServer(t, newMemBackend(), Options{Auth: fa})
	c := dial(t, startServer(t, s))
	if got := c.do("GET", "k"); !strings.Contains(got, "DENIED") {
		t.Fatalf("GET in protected mode: %s", got)
	}
	c.expectClosed()
}

// A pipeline is checked like single commands: pipelined SETs, MSETs and
// GETs are refused in protected mode (and write nothing), and answered
// -NOAUTH before AUTH, instead of reaching the backend as one run.
func TestPipelinesAreRefusedLikeCommands(t *testing.T) {
	pipeline := string(encode("SET", "a", "1")) + string(encode("MSET", "b", "2", "c", "3")) +
		string(encode("GET", "a")) + string(encode("GET", "b"))

	b := newMemBackend()
	s := newTestServer(t, b, Options{Auth: &fakeAuth{protect: true}})
	c := dial(t, startServer(t, s))
	c.send([]byte(pipeline))
	if got := c.read(); !strings.Contains(got, "DENIED") {
		t.Fatalf("pipelined SET in protected mode: %s", got)
	}
	c.expectClosed()
	b.mu.Lock()
	batches, puts := b.batches, b.puts
	b.mu.Unlock()
	if batches != 0 || puts != 0 {
		t.Fatalf("protected mode: the pipeline reached the backend (%d batches, %d puts)", batches, puts)
	}

	fa := &fakeAuth{enabled: true, users: map[string]string{"writer": "w"}}
	s = newTestServer(t, guardedBackend{newMemBackend()}, Options{Auth: fa})
	c = dial(t, startServer(t, s))
	c.send([]byte(pipeline))
	for i := range 4 {
		if got := c.read(); !strings.Contains(got, "NOAUTH") {
			t.Fatalf("pipelined command %d before AUTH: %s", i, got)
		}
	}
}

func (g guardedBackend) Txn(ctx context.Context, r *cairnpb.TxnRequest) (*cairnpb.TxnResponse, error) {
	for _, op := range r.Ops {
		if op.Kind == cairnpb.TxnOp_PUT || op.Kind == cairnpb.TxnOp_DELETE {
			if err := allowWrite(ctx); err != nil {
				return nil, err
			}
		}
	}
	return g.memBackend.Txn(ctx, r)
}
