// Goal: TTL through a real single-node store: a put with a TTL is read
// back with its expiry; once a (fake) clock passes it, a get answers not
// found and has removed the key and its index entry through Raft; the
// expirer removes due keys of the ranges the node leads; lists leave
// expired keys out; and a key not yet due is never removed.
// Method: one node (Pebble in a temp dir, store, transport without peers,
// router) whose HLC reads a clock the test moves; storage is inspected
// directly.
package router

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/hlc"
	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/kv"
	"github.com/cairn-db/cairn/internal/storage"
	"github.com/cairn-db/cairn/internal/store"
	"github.com/cairn-db/cairn/internal/transport"
)

type ttlEnv struct {
	rt  *Router
	db  *pebble.DB
	now atomic.Int64 // unix ms of the fake clock
}

func newTTLEnv(t testing.TB) *ttlEnv { return newTTLEnvWith(t, func(*store.Options) {}) }

// newTTLEnvWith is newTTLEnv with the store's options changed by opt.
func newTTLEnvWith(t testing.TB, opt func(*store.Options)) *ttlEnv {
	t.Helper()
	e := &ttlEnv{}
	e.now.Store(1_700_000_000_000)
	db, err := storage.Open(t.TempDir(), storage.Options{CacheBytes: 1 << 20, MemTableBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	e.db = db
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	id, err := store.Bootstrap(db, "n1", []*cairnpb.Node{{Id: 1, Name: "n1", PeerAddress: "127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	clock := hlc.New(func() time.Time { return time.UnixMilli(e.now.Load()) })
	so := store.Options{NodeID: id, TickInterval: 10 * time.Millisecond, ElectionTicks: 10,
		HeartbeatTicks: 1, LogKeepEntries: 1000, Logger: logger, Clock: clock}
	opt(&so)
	st, err := store.New(db, so)
	if err != nil {
		t.Fatal(err)
	}
	tr := transport.New(id, st.TransportCallbacks(), logger)
	st.SetTransport(tr)
	st.Start()
	t.Cleanup(func() {
		st.Stop()
		tr.Close()
		db.Close()
	})
	e.rt = New(st, tr, Options{Limits: kv.DefaultLimits, RequestTimeout: 5 * time.Second, Clock: clock})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for e.rt.Ready(ctx) != nil {
		if ctx.Err() != nil {
			t.Fatal("the node never became ready")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return e
}

func (e *ttlEnv) advance(d time.Duration) { e.now.Add(d.Milliseconds()) }

// stored reports whether key's value and its expiry index entry are in
// Pebble.
func (e *ttlEnv) stored(t *testing.T, key string) (value, index bool) {
	t.Helper()
	_, closer, err := e.db.Get(keys.DataKey(1, []byte(key)))
	if err == nil {
		closer.Close()
		value = true
	} else if !errors.Is(err, pebble.ErrNotFound) {
		t.Fatal(err)
	}
	start, end := keys.ExpirySpan(1, -1)
	it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: start, UpperBound: end})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		if _, _, uk, _ := keys.DecodeExpiryKey(it.Key()); string(uk) == key {
			index = true
		}
	}
	return value, index
}

func TestTTL(t *testing.T) {
	e := newTTLEnv(t)
	ctx := context.Background()
	put := func(key string, ttl time.Duration) uint64 {
		t.Helper()
		resp, err := e.rt.Put(ctx, &cairnpb.PutRequest{Table: "default", Key: []byte(key), Value: []byte("v"), TtlMs: ttl.Milliseconds()})
		if err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
		return resp.Version
	}
	get := func(key string) (*cairnpb.GetResponse, error) {
		return e.rt.Get(ctx, &cairnpb.GetRequest{Table: "default", Key: []byte(key)})
	}

	start := e.now.Load()
	put("lazy", 2*time.Second)
	put("swept", 2*time.Second)
	put("later", time.Minute)
	put("plain", 0)
	resp, err := get("lazy")
	if err != nil || resp.ExpireAtMs != start+2000 {
		t.Fatalf("get lazy = %v, %v; want expiry %d", resp, err, start+2000)
	}
	if resp, err := get("plain"); err != nil || resp.ExpireAtMs != 0 {
		t.Fatalf("get plain = %v, %v; want no expiry", resp, err)
	}
	if v, i := e.stored(t, "lazy"); !v || !i {
		t.Fatalf("lazy: stored value %v, index entry %v; want both", v, i)
	}
	// Not due: the expirer removes nothing.
	if n := e.rt.ExpireDue(ctx); n != 0 {
		t.Fatalf("expirer removed %d keys before any was due", n)
	}

	e.advance(2 * time.Second)
	// A get of a due key expires it through Raft and answers not found.
	if _, err := get("lazy"); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("get of an expired key: %v; want not found", err)
	}
	if v, i := e.stored(t, "lazy"); v || i {
		t.Fatalf("lazy after get: stored value %v, index entry %v; want neither", v, i)
	}
	// A list leaves the other due key out before the expirer runs.
	list, err := e.rt.List(ctx, &cairnpb.ListRequest{Table: "default"})
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, it := range list.Items {
		listed = append(listed, string(it.Key))
	}
	if len(listed) != 2 || listed[0] != "later" || listed[1] != "plain" {
		t.Fatalf("list = %q; want [later plain]", listed)
	}
	if v, _ := e.stored(t, "swept"); !v {
		t.Fatal("swept is gone before the expirer ran")
	}
	// The expirer removes the due key, and only it.
	if n := e.rt.ExpireDue(ctx); n != 1 {
		t.Fatalf("expirer removed %d keys; want 1", n)
	}
	if v, i := e.stored(t, "swept"); v || i {
		t.Fatalf("swept after the expirer: stored value %v, index entry %v; want neither", v, i)
	}
	if v, i := e.stored(t, "later"); !v || !i {
		t.Fatalf("later (not due): stored value %v, index entry %v; want both", v, i)
	}
	if _, err := get("later"); err != nil {
		t.Fatalf("get later: %v", err)
	}

	// A write with keep_ttl keeps the expiry; a plain write drops it and
	// its index entry.
	resp, _ = get("later")
	if _, err := e.rt.Put(ctx, &cairnpb.PutRequest{Table: "default", Key: []byte("later"), Value: []byte("w"), KeepTtl: true}); err != nil {
		t.Fatal(err)
	}
	if r2, err := get("later"); err != nil || r2.ExpireAtMs != resp.ExpireAtMs || string(r2.Value) != "w" {
		t.Fatalf("after keep_ttl put: %v, %v; want expiry %d", r2, err, resp.ExpireAtMs)
	}
	put("later", 0)
	if v, i := e.stored(t, "later"); !v || i {
		t.Fatalf("later after a plain put: stored value %v, index entry %v; want value only", v, i)
	}
	e.advance(2 * time.Minute)
	if _, err := get("later"); err != nil {
		t.Fatalf("a key whose TTL was removed expired: %v", err)
	}
	if n := e.rt.ExpireDue(ctx); n != 0 {
		t.Fatalf("expirer removed %d keys; want 0", n)
	}
	// Bad TTLs are refused.
	for _, req := range []*cairnpb.PutRequest{
		{Table: "default", Key: []byte("x"), TtlMs: -1},
		{Table: "default", Key: []byte("x"), TtlMs: 5, KeepTtl: true},
		{Table: "default", Key: []byte("x"), TtlMs: kv.MaxTTLMs + 1},
	} {
		if _, err := e.rt.Put(ctx, req); !errors.Is(err, kv.ErrInvalidArgument) {
			t.Fatalf("put with ttl %d keep %v: %v; want invalid argument", req.TtlMs, req.KeepTtl, err)
		}
	}
}
