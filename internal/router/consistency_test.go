// Goal: the router serves each consistency level and says how: a
// session read is served locally once the replica has applied the
// session's position, a read whose token the replica cannot judge (it
// names a later generation of the range) falls back to linearizable,
// not-found answers still carry the session token, writes return their
// log position, stale reads prove their bound, and bad levels, tokens
// and bounds are refused. Lists over split ranges carry an entry per
// range.
// Method: the single-node environment of ttl_test.go (a real store and
// Pebble); multi-node behaviour (followers, killed nodes) is covered by
// tests/e2e/consistency_test.go.
package router

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/kv"
)

func mustToken(t *testing.T, s string) kv.SessionToken {
	t.Helper()
	tok, err := kv.DecodeSessionToken(s)
	if err != nil {
		t.Fatalf("token %q: %v", s, err)
	}
	return tok
}

func TestSessionReads(t *testing.T) {
	e := newTTLEnv(t)
	ctx := context.Background()
	put, err := e.rt.Put(ctx, &cairnpb.PutRequest{Table: "default", Key: []byte("a"), Value: []byte("1")})
	if err != nil {
		t.Fatal(err)
	}
	wt := mustToken(t, put.SessionToken)
	if len(wt.Entries) != 1 || wt.Entries[0].Index <= 10 || wt.Entries[0].Table == 0 {
		t.Fatalf("write token %+v", wt)
	}
	got, err := e.rt.Get(ctx, &cairnpb.GetRequest{Table: "default", Key: []byte("a"), Consistency: kv.Session, SessionToken: put.SessionToken})
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Value) != "1" || got.ServedConsistency != kv.Session || got.ServedBy != 1 {
		t.Fatalf("session get: %+v", got)
	}
	rt := mustToken(t, got.SessionToken)
	if rt.Entries[0].Range != wt.Entries[0].Range || rt.Entries[0].Index < wt.Entries[0].Index {
		t.Fatalf("read token %+v does not cover write token %+v", rt, wt)
	}

	// A token from a later generation of the range: this replica cannot
	// judge it and reads linearizably.
	later := rt
	later.Entries = append([]kv.SessionEntry(nil), rt.Entries...)
	later.Entries[0].Generation += 5
	got, err = e.rt.Get(ctx, &cairnpb.GetRequest{Table: "default", Key: []byte("a"), Consistency: kv.Session, SessionToken: later.Encode()})
	if err != nil || got.ServedConsistency != kv.Linearizable {
		t.Fatalf("unjudgeable token: %+v, %v", got, err)
	}

	// A miss carries the token.
	_, err = e.rt.Get(ctx, &cairnpb.GetRequest{Table: "default", Key: []byte("absent"), Consistency: kv.Session, SessionToken: put.SessionToken})
	var miss *kv.ReadMissError
	if !errors.Is(err, kv.ErrNotFound) || !errors.As(err, &miss) || miss.ServedConsistency != kv.Session {
		t.Fatalf("miss: %v", err)
	}
	if mt := mustToken(t, miss.SessionToken); mt.Entries[0].Index < wt.Entries[0].Index {
		t.Fatalf("miss token %+v behind the write %+v", mt, wt)
	}

	// Deletes and batches return tokens past the previous ones.
	del, err := e.rt.Delete(ctx, &cairnpb.DeleteRequest{Table: "default", Key: []byte("a")})
	if err != nil {
		t.Fatal(err)
	}
	if dt := mustToken(t, del.SessionToken); dt.Entries[0].Index <= wt.Entries[0].Index {
		t.Fatalf("delete token %+v not after put token %+v", dt, wt)
	}
	b, err := e.rt.Batch(ctx, &cairnpb.BatchRequest{Table: "default", Ops: []*cairnpb.BatchOp{{Op: &cairnpb.BatchOp_Put{Put: &cairnpb.PutRequest{Key: []byte("b"), Value: []byte("2")}}}}})
	if err != nil || b.SessionToken == "" {
		t.Fatalf("batch: %+v, %v", b, err)
	}
}

func TestStaleReads(t *testing.T) {
	e := newTTLEnv(t)
	ctx := context.Background()
	if _, err := e.rt.Put(ctx, &cairnpb.PutRequest{Table: "default", Key: []byte("a"), Value: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	got, err := e.rt.Get(ctx, &cairnpb.GetRequest{Table: "default", Key: []byte("a"), Consistency: kv.Stale, MaxStalenessMs: 2000})
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Value) != "1" || got.ServedConsistency != kv.Stale || got.StalenessMs > 2000 || got.SessionToken == "" {
		t.Fatalf("stale get: %+v", got)
	}
	list, err := e.rt.List(ctx, &cairnpb.ListRequest{Table: "default", Consistency: kv.Stale})
	if err != nil || len(list.Items) != 1 || list.ServedConsistency != kv.Stale {
		t.Fatalf("stale list: %+v, %v", list, err)
	}
}

func TestReadLevelValidation(t *testing.T) {
	e := newTTLEnv(t)
	ctx := context.Background()
	for _, req := range []*cairnpb.GetRequest{
		{Table: "default", Key: []byte("a"), Consistency: "eventual"},
		{Table: "default", Key: []byte("a"), Consistency: kv.Session, SessionToken: "not a token"},
		{Table: "default", Key: []byte("a"), Consistency: kv.Stale, MaxStalenessMs: 1},
		{Table: "default", Key: []byte("a"), Consistency: kv.Stale, MaxStalenessMs: -5},
		{Table: "default", Key: []byte("a"), MaxStalenessMs: 1000},
	} {
		if _, err := e.rt.Get(ctx, req); !errors.Is(err, kv.ErrInvalidArgument) {
			t.Errorf("get %+v: %v, want invalid argument", req, err)
		}
	}
	if _, err := e.rt.List(ctx, &cairnpb.ListRequest{Table: "default", Consistency: "nope"}); !errors.Is(err, kv.ErrInvalidArgument) {
		t.Errorf("list with a bad level: %v", err)
	}
}

func TestSessionListAcrossSplit(t *testing.T) {
	e := newTTLEnv(t)
	ctx := context.Background()
	var tok string
	for _, k := range []string{"a", "m", "z"} {
		p, err := e.rt.Put(ctx, &cairnpb.PutRequest{Table: "default", Key: []byte(k), Value: []byte(k)})
		if err != nil {
			t.Fatal(err)
		}
		if tok, err = kv.MergeSessionTokens(tok, p.SessionToken); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.rt.SplitRange(ctx, &cairnpb.SplitRangeRequest{Table: "default", Key: []byte("m")}); err != nil {
		t.Fatal(err)
	}
	// The token names only the parent; the right side needs nothing of
	// it (it started from the parent's state) and serves locally.
	var list *cairnpb.ListResponse
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		list, err = e.rt.List(ctx, &cairnpb.ListRequest{Table: "default", Consistency: kv.Session, SessionToken: tok})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(list.Items) != 3 || list.ServedConsistency != kv.Session {
		t.Fatalf("list: %d items, served %q", len(list.Items), list.ServedConsistency)
	}
	if lt := mustToken(t, list.SessionToken); len(lt.Entries) != 2 || lt.Entries[0].Generation != 1 || lt.Entries[1].Generation != 1 {
		t.Fatalf("list token %+v, want both sides at generation 1", lt)
	}
	// A session that saw the right side at generation 1 is judged by the
	// left side too (same generation: no split the replica lacks).
	got, err := e.rt.Get(ctx, &cairnpb.GetRequest{Table: "default", Key: []byte("a"), Consistency: kv.Session, SessionToken: list.SessionToken})
	if err != nil || got.ServedConsistency != kv.Session {
		t.Fatalf("get after split: %+v, %v", got, err)
	}
}

// TestTableDefaultConsistency: a table created with a default level
// serves reads that name none at that level (with the session token
// counted), an explicit level wins, and a bad default is refused.
func TestTableDefaultConsistency(t *testing.T) {
	e := newTTLEnv(t)
	ctx := context.Background()
	tbl, err := e.rt.CreateTable(ctx, &cairnpb.CreateTableRequest{Name: "sess", Consistency: kv.Session})
	if err != nil || tbl.Consistency != kv.Session {
		t.Fatalf("create: %+v, %v", tbl, err)
	}
	if _, err := e.rt.CreateTable(ctx, &cairnpb.CreateTableRequest{Name: "bad", Consistency: "eventual"}); !errors.Is(err, kv.ErrInvalidArgument) {
		t.Fatalf("a bad default: %v", err)
	}
	lin, err := e.rt.CreateTable(ctx, &cairnpb.CreateTableRequest{Name: "lin", Consistency: kv.Linearizable})
	if err != nil || lin.Consistency != "" {
		t.Fatalf("linearizable default is stored as \"\": %+v, %v", lin, err)
	}
	var put *cairnpb.PutResponse
	deadline := time.Now().Add(10 * time.Second)
	for {
		if put, err = e.rt.Put(ctx, &cairnpb.PutRequest{Table: "sess", Key: []byte("k"), Value: []byte("v")}); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	got, err := e.rt.Get(ctx, &cairnpb.GetRequest{Table: "sess", Key: []byte("k"), SessionToken: put.SessionToken})
	if err != nil || got.ServedConsistency != kv.Session || string(got.Value) != "v" {
		t.Fatalf("default-level get: %+v, %v", got, err)
	}
	got, err = e.rt.Get(ctx, &cairnpb.GetRequest{Table: "sess", Key: []byte("k"), Consistency: kv.Linearizable})
	if err != nil || got.ServedConsistency != kv.Linearizable {
		t.Fatalf("explicit level: %+v, %v", got, err)
	}
	list, err := e.rt.List(ctx, &cairnpb.ListRequest{Table: "sess"})
	if err != nil || list.ServedConsistency != kv.Session {
		t.Fatalf("default-level list: %+v, %v", list, err)
	}
	if _, err := e.rt.Get(ctx, &cairnpb.GetRequest{Table: "sess", Key: []byte("k"), SessionToken: "junk"}); !errors.Is(err, kv.ErrInvalidArgument) {
		t.Fatalf("a bad token with the table's session default: %v", err)
	}
}
