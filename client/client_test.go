// Tests of the Go SDK. Goal: each call reaches the server with the right
// request, errors come back as the package's sentinels, and failover obeys
// the rules of the package doc (reads try every endpoint once; writes move
// on only when the request was provably not executed). Method: real gRPC
// servers on loopback ports (grpcapi over an in-memory kv.Service), plus
// closed ports for nodes that are down.
package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cairn-db/cairn/internal/frontend/grpcapi"
	"github.com/cairn-db/cairn/internal/kv"
	"github.com/cairn-db/cairn/internal/kv/kvtest"
)

// trackingListener remembers the connections it accepted so a test can cut
// them.
type trackingListener struct {
	net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.conns = append(l.conns, c)
		l.mu.Unlock()
	}
	return c, err
}

func (l *trackingListener) cutAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		_ = c.Close()
	}
}

// node is one test server.
type node struct {
	addr string
	svc  *kvtest.MemService
	lis  *trackingListener
}

func startNode(t testing.TB) *node {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lis := &trackingListener{Listener: l}
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
	return &node{addr: l.Addr().String(), svc: svc, lis: lis}
}

// deadAddr returns a loopback address where nothing listens.
func deadAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

func newClient(t testing.TB, endpoints ...string) *Client {
	t.Helper()
	c, err := New(Config{Endpoints: endpoints, DialTimeout: 2 * time.Second, RequestTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestKV(t *testing.T) {
	n := startNode(t)
	c := newClient(t, n.addr)
	ctx := context.Background()

	if _, _, err := c.Get(ctx, "default", []byte("a")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of a missing key: %v, want ErrNotFound", err)
	}
	v1, err := c.Put(ctx, "default", []byte("a"), []byte("one"))
	if err != nil {
		t.Fatal(err)
	}
	val, ver, err := c.Get(ctx, "default", []byte("a"))
	if err != nil || string(val) != "one" || ver != v1 {
		t.Fatalf("Get = %q %d %v, want one %d", val, ver, err, v1)
	}
	if _, err := c.Put(ctx, "default", []byte("a"), []byte("x"), IfAbsent()); !errors.Is(err, ErrConditionFailed) {
		t.Fatalf("Put IfAbsent of an existing key: %v", err)
	}
	if _, err := c.Put(ctx, "default", []byte("a"), []byte("x"), IfVersion(v1+100)); !errors.Is(err, ErrConditionFailed) {
		t.Fatalf("Put IfVersion wrong: %v", err)
	}
	v2, err := c.Put(ctx, "default", []byte("a"), []byte("two"), IfVersion(v1))
	if err != nil || v2 <= v1 {
		t.Fatalf("Put IfVersion right = %d, %v", v2, err)
	}
	if _, err := c.Delete(ctx, "default", []byte("a"), IfVersion(v1)); !errors.Is(err, ErrConditionFailed) {
		t.Fatalf("Delete IfVersion wrong: %v", err)
	}
	if dv, err := c.Delete(ctx, "default", []byte("a"), IfVersion(v2)); err != nil || dv != v2 {
		t.Fatalf("Delete = %d, %v; want %d", dv, err, v2)
	}
	if _, err := c.Delete(ctx, "default", []byte("a")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Delete of a missing key: %v", err)
	}
	if _, err := c.Put(ctx, "nope", []byte("a"), nil); !errors.Is(err, ErrTableNotFound) {
		t.Fatalf("Put to a missing table: %v", err)
	}
	if _, err := c.Put(ctx, "default", nil, nil); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("Put of an empty key: %v", err)
	}
	if _, err := c.Put(ctx, "default", []byte("a"), nil, IfAbsent(), IfVersion(3)); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("Put with two conditions: %v", err)
	}
}

// TestTTL: WithTTL reaches the server as ttl_ms; the key is gone once the
// server's clock passes it; a sub-millisecond TTL is refused locally.
func TestTTL(t *testing.T) {
	n := startNode(t)
	now := time.UnixMilli(1_700_000_000_000)
	var mu sync.Mutex
	n.svc.SetNow(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	c := newClient(t, n.addr)
	ctx := context.Background()
	if _, err := c.Put(ctx, "default", []byte("k"), []byte("v"), WithTTL(1500*time.Millisecond), IfAbsent()); err != nil {
		t.Fatal(err)
	}
	list, err := c.List(ctx, "default", ListOptions{})
	if err != nil || len(list.Items) != 1 {
		t.Fatalf("list = %v, %v", list, err)
	}
	mu.Lock()
	now = now.Add(1499 * time.Millisecond)
	mu.Unlock()
	if _, _, err := c.Get(ctx, "default", []byte("k")); err != nil {
		t.Fatalf("get 1 ms before expiry: %v", err)
	}
	mu.Lock()
	now = now.Add(time.Millisecond)
	mu.Unlock()
	if _, _, err := c.Get(ctx, "default", []byte("k")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get at expiry: %v; want ErrNotFound", err)
	}
	if _, err := c.Put(ctx, "default", []byte("k"), []byte("v"), WithTTL(time.Microsecond)); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("put with a 1µs TTL: %v; want ErrInvalidArgument", err)
	}
}

func TestListPages(t *testing.T) {
	n := startNode(t)
	c := newClient(t, n.addr)
	ctx := context.Background()
	for i := range 25 {
		if _, err := c.Put(ctx, "default", fmt.Appendf(nil, "k%02d", i), fmt.Appendf(nil, "v%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Put(ctx, "default", []byte("other"), nil); err != nil {
		t.Fatal(err)
	}
	var got []KeyValue
	opts := ListOptions{Prefix: []byte("k"), Limit: 10, Values: true}
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("listing does not end")
		}
		page, err := c.List(ctx, "default", opts)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, page.Items...)
		if page.NextPageToken == "" {
			break
		}
		opts.PageToken = page.NextPageToken
	}
	if len(got) != 25 {
		t.Fatalf("listed %d keys, want 25", len(got))
	}
	for i, kv := range got {
		if string(kv.Key) != fmt.Sprintf("k%02d", i) || string(kv.Value) != fmt.Sprintf("v%d", i) || kv.Version == 0 {
			t.Errorf("item %d = %q %q %d", i, kv.Key, kv.Value, kv.Version)
		}
	}
	page, err := c.List(ctx, "default", ListOptions{Start: []byte("k05"), End: []byte("k08")})
	if err != nil || len(page.Items) != 3 || string(page.Items[0].Key) != "k05" || page.Items[0].Value != nil {
		t.Fatalf("List span = %+v, %v", page, err)
	}
	if _, err := c.List(ctx, "default", ListOptions{PageToken: "garbage"}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("List with a bad token: %v", err)
	}
}

func TestTablesAndCluster(t *testing.T) {
	n := startNode(t)
	c := newClient(t, n.addr)
	ctx := context.Background()
	tbl, err := c.CreateTable(ctx, "users", WithPartitioning("range"))
	if err != nil || tbl.Name != "users" || tbl.Partitioning != "range" || len(tbl.Ranges) != 1 {
		t.Fatalf("CreateTable = %+v, %v", tbl, err)
	}
	if _, err := c.CreateTable(ctx, "users"); !errors.Is(err, ErrTableExists) {
		t.Fatalf("CreateTable twice: %v", err)
	}
	if _, err := c.CreateTable(ctx, "Users!"); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("CreateTable bad name: %v", err)
	}
	if tbl, err := c.GetTable(ctx, "users"); err != nil || tbl.Name != "users" {
		t.Fatalf("GetTable = %+v, %v", tbl, err)
	}
	tbls, err := c.ListTables(ctx)
	if err != nil || len(tbls) != 2 || tbls[0].Name != "default" || tbls[1].Name != "users" {
		t.Fatalf("ListTables = %+v, %v", tbls, err)
	}
	if err := c.DropTable(ctx, "users"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetTable(ctx, "users"); !errors.Is(err, ErrTableNotFound) {
		t.Fatalf("GetTable after drop: %v", err)
	}
	if err := c.DropTable(ctx, "users"); !errors.Is(err, ErrTableNotFound) {
		t.Fatalf("DropTable twice: %v", err)
	}
	st, err := c.ClusterStatus(ctx)
	if err != nil || len(st.Nodes) != 1 || st.Nodes[0].Name != "n1" || len(st.Ranges) != 1 || st.Ranges[0].SizeBytes != 4096 {
		t.Fatalf("ClusterStatus = %+v, %v", st, err)
	}
}

func TestFromStatus(t *testing.T) {
	withInfo := func(code codes.Code, msg, reason string) error {
		st, err := status.New(code, msg).WithDetails(&errdetails.ErrorInfo{Domain: "cairn", Reason: reason})
		if err != nil {
			t.Fatal(err)
		}
		return st.Err()
	}
	for _, tc := range []struct {
		name     string
		err      error
		want     error
		code     string
		msg      string
		fromNode bool
	}{
		{"detail and prefix", withInfo(codes.NotFound, "table_not_found: table not found: t", "table_not_found"),
			ErrTableNotFound, "table_not_found", "table not found: t", true},
		{"prefix only", status.Error(codes.FailedPrecondition, "condition_failed: version is 3"),
			ErrConditionFailed, "condition_failed", "version is 3", true},
		{"detail only", withInfo(codes.Unavailable, "no leader", "not_leader"),
			ErrUnavailable, "not_leader", "no leader", true},
		{"unknown prefix", status.Error(codes.NotFound, "nothing: here"), ErrNotFound, "not_found", "nothing: here", false},
		{"transport", status.Error(codes.Unavailable, "connection refused"), ErrUnavailable, "unavailable", "connection refused", false},
		{"deadline", status.Error(codes.DeadlineExceeded, "context deadline exceeded"), ErrTimeout, "timeout", "context deadline exceeded", false},
		{"canceled", status.Error(codes.Canceled, "context canceled"), context.Canceled, "canceled", "context canceled", false},
		{"exists", status.Error(codes.AlreadyExists, "x"), ErrTableExists, "table_exists", "x", false},
		{"other", status.Error(codes.ResourceExhausted, "busy"), ErrInternal, "internal", "busy", false},
		{"not a status", errors.New("boom"), ErrInternal, "internal", "boom", false},
	} {
		e, fromNode := fromStatus(tc.err, "ep")
		if !errors.Is(e, tc.want) || e.Code != tc.code || e.Message != tc.msg || fromNode != tc.fromNode || e.Endpoint != "ep" {
			t.Errorf("%s: got %+v fromNode=%v, want %v %q %q %v", tc.name, e, fromNode, tc.want, tc.code, tc.msg, tc.fromNode)
		}
	}
}

// TestErrorCodesMatchKV checks that the client knows every code the server
// sends.
func TestErrorCodesMatchKV(t *testing.T) {
	for _, code := range []string{"invalid_argument", "not_found", "table_not_found", "table_exists",
		"condition_failed", "unavailable", "timeout", "not_leader", "internal", "txn_conflict", "txn_aborted"} {
		if kv.Code(kv.FromCode(code, "")) != code {
			t.Fatalf("kv does not know code %q", code)
		}
		if kindOf(code) == nil {
			t.Errorf("client does not know code %q", code)
		}
	}
}

func TestReadFailover(t *testing.T) {
	n := startNode(t)
	dead := deadAddr(t)
	c := newClient(t, dead, n.addr)
	ctx := context.Background()
	if _, err := c.Put(ctx, "default", []byte("k"), []byte("v")); err != nil {
		t.Fatalf("Put with the first endpoint down: %v", err)
	}
	if v, _, err := c.Get(ctx, "default", []byte("k")); err != nil || string(v) != "v" {
		t.Fatalf("Get = %q, %v", v, err)
	}

	// A node that answers "unavailable" to reads is skipped too.
	down := startNode(t)
	down.svc.SetFail(func(string, []byte) error { return kv.Errorf(kv.ErrUnavailable, "no leader") })
	c2 := newClient(t, down.addr, n.addr)
	if v, _, err := c2.Get(ctx, "default", []byte("k")); err != nil || string(v) != "v" {
		t.Fatalf("Get via an unavailable node = %q, %v", v, err)
	}
	if _, err := c2.List(ctx, "default", ListOptions{}); err != nil {
		t.Fatalf("List via an unavailable node: %v", err)
	}
	if got := down.svc.CallCount("Get"); got != 1 {
		t.Errorf("unavailable node saw %d Gets, want 1", got)
	}
}

func TestWriteFailoverWhenNotExecuted(t *testing.T) {
	ctx := context.Background()
	for _, kind := range []error{kv.ErrUnavailable, kv.ErrNotLeader} {
		a, b := startNode(t), startNode(t)
		a.svc.SetFail(func(string, []byte) error { return kv.Errorf(kind, "from a") })
		c := newClient(t, a.addr, b.addr)
		if _, err := c.Put(ctx, "default", []byte("k"), []byte("v")); err != nil {
			t.Fatalf("%v: Put: %v", kind, err)
		}
		if _, err := c.Delete(ctx, "default", []byte("k")); err != nil {
			t.Fatalf("%v: Delete: %v", kind, err)
		}
		if a.svc.CallCount("Put") != 1 || b.svc.CallCount("Put") != 1 {
			t.Errorf("%v: Puts a=%d b=%d, want 1 and 1", kind, a.svc.CallCount("Put"), b.svc.CallCount("Put"))
		}
	}
}

func TestWriteNotRetriedWhenOutcomeUnknown(t *testing.T) {
	ctx := context.Background()

	// The node says the outcome is unknown.
	a, b := startNode(t), startNode(t)
	a.svc.SetFail(func(string, []byte) error { return kv.Errorf(kv.ErrTimeout, "proposal pending") })
	c := newClient(t, a.addr, b.addr)
	if _, err := c.Put(ctx, "default", []byte("k"), []byte("v")); !errors.Is(err, ErrTimeout) {
		t.Fatalf("Put: %v, want ErrTimeout", err)
	}
	if b.svc.CallCount("Put") != 0 {
		t.Errorf("a write with unknown outcome was repeated on another node")
	}

	// The connection breaks while the node handles the write.
	a2 := startNode(t)
	c2 := newClient(t, a2.addr, b.addr)
	if _, _, err := c2.Get(ctx, "default", []byte("x")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get to warm the connection: %v", err)
	}
	a2.svc.SetFail(func(method string, _ []byte) error {
		if method == "Put" {
			a2.lis.cutAll()
		}
		return nil
	})
	_, err := c2.Put(ctx, "default", []byte("k"), []byte("v"))
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("Put over a broken connection: %v, want ErrTimeout", err)
	}
	if b.svc.CallCount("Put") != 0 {
		t.Errorf("a write sent over a broken connection was repeated on another node")
	}
}

func TestAllEndpointsDown(t *testing.T) {
	c := newClient(t, deadAddr(t), deadAddr(t))
	ctx := context.Background()
	if _, _, err := c.Get(ctx, "default", []byte("k")); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Get: %v, want ErrUnavailable", err)
	}
	if _, err := c.Put(ctx, "default", []byte("k"), nil); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Put: %v, want ErrUnavailable", err)
	}
}

func TestRequestTimeout(t *testing.T) {
	n := startNode(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) }) // runs before the server stops
	n.svc.SetFail(func(string, []byte) error {
		<-release // answer only after the client gave up
		return nil
	})
	c, err := New(Config{Endpoints: []string{n.addr}, RequestTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, _, err := c.Get(context.Background(), "default", []byte("k")); !errors.Is(err, ErrTimeout) {
		t.Fatalf("Get: %v, want ErrTimeout", err)
	}
}

func TestConfigAndClose(t *testing.T) {
	if _, err := New(Config{}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("New without endpoints: %v", err)
	}
	if _, err := New(Config{Endpoints: []string{" ", ""}}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("New with blank endpoints: %v", err)
	}
	n := startNode(t)
	c, err := New(Config{Endpoints: []string{" " + n.addr + " "}})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Endpoints(); len(got) != 1 || got[0] != n.addr {
		t.Errorf("Endpoints = %v", got)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Get(context.Background(), "default", []byte("k")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
}

func TestValuesAreBinarySafe(t *testing.T) {
	n := startNode(t)
	c := newClient(t, n.addr)
	ctx := context.Background()
	key := []byte{0, 1, 0xff, '\n'}
	val := bytes.Repeat([]byte{0, 0xfe}, 1000)
	if _, err := c.Put(ctx, "default", key, val); err != nil {
		t.Fatal(err)
	}
	got, _, err := c.Get(ctx, "default", key)
	if err != nil || !bytes.Equal(got, val) {
		t.Fatalf("Get = %d bytes, %v", len(got), err)
	}
}

func TestUnavailableNamesEveryEndpoint(t *testing.T) {
	a, b := deadAddr(t), deadAddr(t)
	c := newClient(t, a, b)
	_, _, err := c.Get(context.Background(), "default", []byte("k"))
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), a) || !strings.Contains(err.Error(), b) {
		t.Fatalf("Get: %v", err)
	}
}

// TestHashTable: a hash table created with WithInitialRanges starts with
// that many ranges; keys written through the client read back, and a
// paged List returns them in key order.
func TestHashTable(t *testing.T) {
	n := startNode(t)
	c := newClient(t, n.addr)
	ctx := context.Background()
	tbl, err := c.CreateTable(ctx, "events", WithPartitioning("hash"), WithInitialRanges(3))
	if err != nil || tbl.Partitioning != "hash" || len(tbl.Ranges) != 3 {
		t.Fatalf("CreateTable = %+v, %v", tbl, err)
	}
	if _, err := c.CreateTable(ctx, "bad", WithPartitioning("hash"), WithInitialRanges(5000)); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("CreateTable with 5000 ranges: %v", err)
	}
	var want []string
	for i := range 30 {
		k := fmt.Sprintf("e%03d", i)
		if _, err := c.Put(ctx, "events", []byte(k), []byte("v"+k)); err != nil {
			t.Fatal(err)
		}
		want = append(want, k)
	}
	if v, _, err := c.Get(ctx, "events", []byte("e017")); err != nil || string(v) != "ve017" {
		t.Fatalf("Get = %q, %v", v, err)
	}
	var got []string
	opts := ListOptions{Limit: 4}
	for {
		page, err := c.List(ctx, "events", opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Items {
			got = append(got, string(it.Key))
		}
		if page.NextPageToken == "" {
			break
		}
		opts.PageToken = page.NextPageToken
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("List = %v", got)
	}
}
