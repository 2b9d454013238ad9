package respapi

// Goal: the connection layer under real sockets and bad clients:
// pipelining, protocol errors, limits (connections, output buffer,
// partial commands, slow readers, value sizes), panics, shutdown, and the
// atomicity of concurrent read-modify-writes and transactions. Method: a
// Server on a loopback listener over memBackend (or a backend that blocks
// or panics), driven by raw RESP over TCP.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/resp"
)

// startServer serves s on a loopback port and returns the address.
func startServer(t testing.TB, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v", err)
		}
	})
	return ln.Addr().String()
}

// client is a raw RESP client.
type client struct {
	t  testing.TB
	nc net.Conn
	r  *resp.Reader
}

func dial(t testing.TB, addr string) *client {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &client{t: t, nc: nc, r: resp.NewReader(nc, resp.Limits{MaxBulkBytes: 64 << 20, MaxFrameBytes: 1 << 30})}
}

func encode(args ...string) []byte {
	var w resp.Writer
	w.ArrayHeader(len(args))
	for _, a := range args {
		w.BulkString(a)
	}
	return w.Bytes()
}

func (c *client) send(b []byte) {
	c.t.Helper()
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) read() string {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	v, err := c.r.ReadValue()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return v.String()
}

func (c *client) do(args ...string) string {
	c.t.Helper()
	c.send(encode(args...))
	return c.read()
}

// expectClosed waits for the server to close the connection.
func (c *client) expectClosed() {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, c.nc)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.t.Fatal("connection still open")
	}
}

func TestPipelineAndInline(t *testing.T) {
	s := newTestServer(t, newMemBackend(), Options{})
	c := dial(t, startServer(t, s))
	var batch []byte
	for i := range 100 {
		batch = append(batch, encode("SET", fmt.Sprint("k", i), fmt.Sprint(i))...)
	}
	batch = append(batch, "GET k42\r\nPING\r\n"...)
	c.send(batch)
	for i := range 100 {
		if got := c.read(); got != "OK" {
			t.Fatalf("reply %d: %s", i, got)
		}
	}
	if got := c.read(); got != `"42"` {
		t.Fatalf("GET: %s", got)
	}
	if got := c.read(); got != "PONG" {
		t.Fatalf("PING: %s", got)
	}
}

// TestPipelinedRuns: consecutive SETs of a pipeline become one batch and
// consecutive GETs parallel reads, with replies in order and per-command
// errors where they belong.
func TestPipelinedRuns(t *testing.T) {
	b := newMemBackend()
	s := newTestServer(t, b, Options{})
	c := dial(t, startServer(t, s))
	var in []byte
	for i := range 50 {
		in = append(in, encode("SET", fmt.Sprint("k", i%10), fmt.Sprint(i))...)
	}
	in = append(in, encode("SET", "", "x")...)
	in = append(in, encode("set", "k0", "last")...)
	for i := range 10 {
		in = append(in, encode("GET", fmt.Sprint("k", i))...)
	}
	in = append(in, encode("GET", "nope")...)
	in = append(in, encode("GET", "")...)
	in = append(in, encode("INCR", "k1")...)
	in = append(in, encode("GET", "k1")...)
	want := append(strings.Split(strings.Repeat("OK,", 50), ",")[:50], "(error) ERR invalid argument: key is empty", "OK",
		`"last"`, `"41"`, `"42"`, `"43"`, `"44"`, `"45"`, `"46"`, `"47"`, `"48"`, `"49"`, "(nil)",
		"(error) ERR invalid argument: key is empty", "(integer) 42", `"42"`)
	// One batch for the run of SETs; INCR writes with a put.
	sendPipeline(t, c, b, in, want, 1, 1)
}

// sendPipeline sends in at once, checks the replies, and checks how many
// batches and single puts reached the backend.
func sendPipeline(t *testing.T, c *client, b *memBackend, in []byte, want []string, batches, puts int) {
	t.Helper()
	c.send(in)
	var got []string
	for range want {
		got = append(got, c.read())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("replies:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.batches != batches || b.puts != puts {
		t.Fatalf("%d batches and %d puts, want %d and %d: the run was not batched", b.batches, b.puts, batches, puts)
	}
}

// TestPipelinedMSetRuns: MSETs join the SETs of a pipeline run, each
// whole (an MSET with one invalid pair fails alone and writes nothing);
// the run is one batch.
func TestPipelinedMSetRuns(t *testing.T) {
	b := newMemBackend()
	s := newTestServer(t, b, Options{})
	c := dial(t, startServer(t, s))
	var in []byte
	in = append(in, encode("SET", "a", "1")...)
	in = append(in, encode("MSET", "a", "2", "b", "2", "c", "2")...)
	in = append(in, encode("mset", "d", "bad", "", "x")...)
	in = append(in, encode("MSET", "e", "4")...)
	in = append(in, encode("SET", "e", "5")...)
	in = append(in, encode("MSET", "c", "3", "c", "6")...)
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		in = append(in, encode("GET", k)...)
	}
	want := []string{"OK", "OK", "(error) ERR invalid argument: key is empty", "OK", "OK", "OK",
		`"2"`, `"2"`, `"6"`, "(nil)", `"5"`}
	sendPipeline(t, c, b, in, want, 1, 0)
}

func TestProtocolErrorClosesConnection(t *testing.T) {
	s := newTestServer(t, newMemBackend(), Options{})
	addr := startServer(t, s)
	for in, want := range map[string]string{
		"*1\r\n$-5\r\n":          "(error) ERR Protocol error: invalid bulk length",
		"*1\r\n:1\r\n":           "(error) ERR Protocol error: expected '$', got ':'",
		"*1\r\n$9999999999\r\n":  "(error) ERR Protocol error: bulk length 9999999999 is over the limit of 1114112",
		"*99999999\r\n":          "(error) ERR Protocol error: multibulk length 99999999 is over the limit of 65536",
		"SET \"a b\r\n":          "(error) ERR Protocol error: unbalanced quotes in request",
		"*1\r\n$4\r\nPINGxx\r\n": "(error) ERR Protocol error: expected '\\r\\n' after bulk data",
	} {
		c := dial(t, addr)
		c.send([]byte(in))
		if got := c.read(); got != want {
			t.Errorf("%q: %s, want %s", in, got, want)
		}
		c.expectClosed()
	}
}

func TestValueLimits(t *testing.T) {
	s := newTestServer(t, newMemBackend(), Options{})
	c := dial(t, startServer(t, s))
	big := strings.Repeat("v", 1<<20)
	if got := c.do("SET", "big", big); got != "OK" {
		t.Fatal(got)
	}
	if got := c.do("STRLEN", "big"); got != "(integer) 1048576" {
		t.Fatal(got)
	}
	if got := c.do("GET", "big"); len(got) != 1<<20+2 {
		t.Fatalf("GET big: %d bytes", len(got))
	}
	if got := c.do("SET", "big", big+"x"); got != "(error) ERR invalid argument: value is 1048577 bytes; the limit is 1048576" {
		t.Fatal(got)
	}
	if got := c.do("APPEND", "big", "x"); got != "(error) ERR string exceeds maximum allowed size (proto-max-bulk-len)" {
		t.Fatal(got)
	}
	if got := c.do("GET", strings.Repeat("k", 4097)); got != "(error) ERR invalid argument: key is 4097 bytes; the limit is 4096" {
		t.Fatal(got)
	}
	// Only the header of the oversized bulk string: the server refuses it
	// on its declared length and closes; sending the body too would race
	// with the close (a reset on the client's write).
	c.send([]byte(fmt.Sprintf("*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$%d\r\n", 1<<20+bulkSlackBytes+1)))
	if got := c.read(); !strings.HasPrefix(got, "(error) ERR Protocol error: bulk length") {
		t.Fatal(got)
	}
	c.expectClosed()
}

func TestMaxConnections(t *testing.T) {
	s := newTestServer(t, newMemBackend(), Options{MaxConnections: 2})
	addr := startServer(t, s)
	a, b := dial(t, addr), dial(t, addr)
	a.do("PING")
	b.do("PING")
	c := dial(t, addr)
	if got := c.read(); got != "(error) ERR max number of clients reached" {
		t.Fatal(got)
	}
	c.expectClosed()
	a.nc.Close()
	waitFor(t, func() bool { return s.connCount() == 1 })
	if got := dial(t, addr).do("PING"); got != "PONG" {
		t.Fatal(got)
	}
}

func TestPartialCommandTimeout(t *testing.T) {
	s := newTestServer(t, newMemBackend(), Options{PartialCommandTimeout: 100 * time.Millisecond})
	addr := startServer(t, s)
	idle := dial(t, addr)
	half := dial(t, addr)
	half.send([]byte("*2\r\n$3\r\nGET\r\n$5\r\nab"))
	half.expectClosed()
	// An idle connection (nothing sent) is not a partial command.
	time.Sleep(300 * time.Millisecond)
	if got := idle.do("PING"); got != "PONG" {
		t.Fatal(got)
	}
}

func TestIdleTimeout(t *testing.T) {
	s := newTestServer(t, newMemBackend(), Options{IdleTimeout: 100 * time.Millisecond})
	c := dial(t, startServer(t, s))
	c.do("PING")
	c.expectClosed()
}

// TestClientThatNeverReads: a client pipelining GETs of a large value and
// never reading its replies is disconnected (write deadline), and the
// server's memory for it stays within the output buffer limit.
func TestClientThatNeverReads(t *testing.T) {
	s := newTestServer(t, newMemBackend(), Options{WriteTimeout: 200 * time.Millisecond})
	c := dial(t, startServer(t, s))
	if got := c.do("SET", "v", strings.Repeat("x", 256<<10)); got != "OK" {
		t.Fatal(got)
	}
	go func() {
		get := bytes.Repeat(encode("GET", "v"), 1000)
		for range 100 {
			if _, err := c.nc.Write(get); err != nil {
				return
			}
		}
	}()
	waitFor(t, func() bool { return s.connCount() == 0 })
}

func TestOutputBufferLimit(t *testing.T) {
	s := newTestServer(t, newMemBackend(), Options{MaxOutputBufferBytes: 8 << 20})
	c := dial(t, startServer(t, s))
	v := strings.Repeat("x", 1<<20)
	args := []string{"MGET"}
	for i := range 10 {
		if got := c.do("SET", fmt.Sprint("k", i), v); got != "OK" {
			t.Fatal(got)
		}
		args = append(args, fmt.Sprint("k", i))
	}
	c.send(encode(args...))
	c.expectClosed()
}

// panicBackend panics in Get of the key "boom".
type panicBackend struct{ *memBackend }

func (p panicBackend) Get(ctx context.Context, req *cairnpb.GetRequest) (*cairnpb.GetResponse, error) {
	if string(req.Key) == "boom" {
		panic("injected panic")
	}
	return p.memBackend.Get(ctx, req)
}

func TestPanicClosesOnlyItsConnection(t *testing.T) {
	s := newTestServer(t, panicBackend{newMemBackend()}, Options{})
	addr := startServer(t, s)
	other := dial(t, addr)
	other.do("PING")
	c := dial(t, addr)
	c.send(encode("GET", "boom"))
	c.expectClosed()
	// In the combiner and in parallel reads the panic becomes an error.
	c2 := dial(t, addr)
	if got := c2.do("INCR", "boom"); got != "(error) ERR cairn internal error" {
		t.Fatal(got)
	}
	if got := c2.do("MGET", "a", "boom"); got != "(error) ERR cairn internal error" {
		t.Fatal(got)
	}
	if got := other.do("PING"); got != "PONG" {
		t.Fatal(got)
	}
}

// blockingBackend blocks Get until its context ends.
type blockingBackend struct {
	*memBackend
	entered chan struct{}
}

func (b blockingBackend) Get(ctx context.Context, req *cairnpb.GetRequest) (*cairnpb.GetResponse, error) {
	b.entered <- struct{}{}
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestCloseCancelsCommandsInFlight(t *testing.T) {
	b := blockingBackend{newMemBackend(), make(chan struct{}, 10)}
	s := New(b, Options{Logger: discardLogger()})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	c := dial(t, ln.Addr().String())
	c.send(encode("GET", "k"))
	<-b.entered
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	c.expectClosed()
}

// TestConcurrentIncr: INCR from many connections is atomic, and
// concurrent INCRs of one key are combined into fewer writes.
func TestConcurrentIncr(t *testing.T) {
	b := newMemBackend()
	s := newTestServer(t, b, Options{})
	addr := startServer(t, s)
	const clients, each = 20, 50
	var wg sync.WaitGroup
	for range clients {
		c := dial(t, addr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				c.send(encode("INCR", "n"))
			}
			for range each {
				if got := c.read(); !strings.HasPrefix(got, "(integer)") {
					t.Error(got)
				}
			}
		}()
	}
	wg.Wait()
	if got := dial(t, addr).do("GET", "n"); got != strconv.Quote(strconv.Itoa(clients*each)) {
		t.Fatalf("counter %s, want %d", got, clients*each)
	}
	t.Logf("%d INCRs took %d Puts", clients*each, b.CallCount("Put"))
}

// TestWatchIncrRace: clients increment one counter with WATCH, GET,
// MULTI, SET, EXEC and retry on a null EXEC; the counter ends at the
// number of committed EXECs.
func TestWatchIncrRace(t *testing.T) {
	s := newTestServer(t, newMemBackend(), Options{})
	addr := startServer(t, s)
	var committed atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		c := dial(t, addr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 30 {
				c.do("WATCH", "ctr")
				cur := c.do("GET", "ctr")
				n := 0
				if cur != "(nil)" {
					n, _ = strconv.Atoi(strings.Trim(cur, `"`))
				}
				c.do("MULTI")
				c.do("SET", "ctr", strconv.Itoa(n+1))
				switch got := c.do("EXEC"); got {
				case "[OK]":
					committed.Add(1)
				case "(nil array)":
				default:
					t.Error(got)
				}
			}
		}()
	}
	wg.Wait()
	got := dial(t, addr).do("GET", "ctr")
	if want := strconv.Quote(strconv.FormatInt(committed.Load(), 10)); got != want {
		t.Fatalf("counter %s, committed %s", got, want)
	}
	t.Logf("%d of 240 EXECs committed", committed.Load())
}

// TestMSetAtomicWithMGet: MGET never sees half of an MSET.
func TestMSetAtomicWithMGet(t *testing.T) {
	s := newTestServer(t, newMemBackend(), Options{})
	addr := startServer(t, s)
	w := dial(t, addr)
	w.do("MSET", "a", "0", "b", "0")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; i <= 300; i++ {
			v := strconv.Itoa(i)
			w.do("MSET", "a", v, "b", v)
		}
	}()
	r := dial(t, addr)
	for {
		select {
		case <-done:
			return
		default:
		}
		got := r.do("MGET", "a", "b")
		var a, b string
		if _, err := fmt.Sscanf(got, "[%q, %q]", &a, &b); err != nil || a != b {
			t.Fatalf("MGET saw %s", got)
		}
	}
}

func TestThousandIdleConnections(t *testing.T) {
	s := newTestServer(t, newMemBackend(), Options{})
	addr := startServer(t, s)
	for range 1000 {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
	}
	waitFor(t, func() bool { return s.connCount() == 1000 })
	c := dial(t, addr)
	if got := c.do("PING"); got != "PONG" {
		t.Fatal(got)
	}
	if got := c.do("INFO", "clients"); !strings.Contains(got, "connected_clients:1001") {
		t.Fatal(got)
	}
}

func TestQuitClosesAfterReply(t *testing.T) {
	s := newTestServer(t, newMemBackend(), Options{})
	c := dial(t, startServer(t, s))
	c.send(append(encode("QUIT"), encode("PING")...))
	if got := c.read(); got != "OK" {
		t.Fatal(got)
	}
	c.expectClosed()
}

func TestInfoAndClientList(t *testing.T) {
	s := newTestServer(t, newMemBackend(), Options{NodeName: "n7"})
	c := dial(t, startServer(t, s))
	c.do("MSET", "a", "1", "b", "2")
	info := c.do("INFO")
	for _, want := range []string{"# Server", "redis_version:7.0.0", "cairn_node:n7", "# Keyspace", "db0:keys=2,expires=0,avg_ttl=0", "role:master"} {
		if !strings.Contains(info, want) {
			t.Errorf("INFO lacks %q: %s", want, info)
		}
	}
	if got := c.do("INFO", "keyspace"); strings.Contains(got, "# Server") {
		t.Errorf("INFO keyspace: %s", got)
	}
	c.do("CLIENT", "SETNAME", "me")
	if got := c.do("CLIENT", "LIST"); !strings.Contains(got, "name=me") || !strings.Contains(got, "cmd=client") {
		t.Errorf("CLIENT LIST: %s", got)
	}
	c.do("HELLO", "3")
	if got := c.do("CLIENT", "INFO"); !strings.HasPrefix(got, "(verbatim txt)") || !strings.Contains(got, "resp=3") {
		t.Errorf("CLIENT INFO: %s", got)
	}
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
