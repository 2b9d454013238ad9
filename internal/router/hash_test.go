// Goal: hash-partitioned tables behave like range tables to a client.
// CreateTable pre-splits the hash space into equal intervals; gets, puts,
// deletes, conditional writes, TTL, history, watch and transactions on
// a hash table take user keys and return user keys while Pebble holds
// placement keys; a size quota holds for the whole table; List is the
// sorted set of user keys in every page (a rapid model test against a
// map); size-based splits halve hash intervals and lose nothing under
// concurrent writes.
// Method: the single-node environment of ttl_test.go.
package router

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"pgregory.net/rapid"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/keys/hashkey"
	"github.com/cairn-db/cairn/internal/kv"
)

func createHash(t testing.TB, rt *Router, name string, n uint32) *cairnpb.Table {
	t.Helper()
	tbl, err := rt.CreateTable(context.Background(), &cairnpb.CreateTableRequest{Name: name, Partitioning: "hash", InitialRanges: n})
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}

func TestHashCreateTable(t *testing.T) {
	e := newTTLEnv(t)
	ctx := context.Background()
	tbl := createHash(t, e.rt, "h8", 8)
	if tbl.Partitioning != "hash" || len(tbl.Ranges) != 8 {
		t.Fatalf("table = %v", tbl)
	}
	bounds := hashkey.InitialBounds(8)
	for i, d := range tbl.Ranges {
		if i > 0 && !bytes.Equal(d.Start, bounds[i-1]) || i == 0 && len(d.Start) != 0 {
			t.Fatalf("range %d starts at %x", i, d.Start)
		}
		if i < 7 && !bytes.Equal(d.End, bounds[i]) || i == 7 && len(d.End) != 0 {
			t.Fatalf("range %d ends at %x", i, d.End)
		}
	}
	if tbl := createHash(t, e.rt, "hdefault", 0); len(tbl.Ranges) != DefaultInitialRanges {
		t.Fatalf("default: %d ranges", len(tbl.Ranges))
	}
	for _, req := range []*cairnpb.CreateTableRequest{
		{Name: "bad1", Partitioning: "hash", InitialRanges: hashkey.MaxInitialRanges + 1},
		{Name: "bad2", Partitioning: "range", InitialRanges: 4},
		{Name: "bad3", Partitioning: "consistent"},
	} {
		if _, err := e.rt.CreateTable(ctx, req); !errors.Is(err, kv.ErrInvalidArgument) {
			t.Errorf("CreateTable(%v) = %v, want invalid argument", req, err)
		}
	}
}

func TestHashKeyOps(t *testing.T) {
	e := newTTLEnv(t)
	ctx := context.Background()
	tbl := createHash(t, e.rt, "h", 4)
	put := func(k, v string, c *cairnpb.Condition) (uint64, error) {
		resp, err := e.rt.Put(ctx, &cairnpb.PutRequest{Table: "h", Key: []byte(k), Value: []byte(v), Condition: c})
		return resp.GetVersion(), err
	}
	v1, err := put("user/1", "a", nil)
	if err != nil {
		t.Fatal(err)
	}
	// Pebble holds the placement key, not the user key.
	if _, closer, err := e.db.Get(keys.DataKey(keys.TableID(tbl.Id), hashkey.Encode([]byte("user/1")))); err != nil {
		t.Fatalf("placement key not stored: %v", err)
	} else {
		closer.Close()
	}
	if _, _, err := e.db.Get(keys.DataKey(keys.TableID(tbl.Id), []byte("user/1"))); !errors.Is(err, pebble.ErrNotFound) {
		t.Fatalf("user key stored as is: %v", err)
	}
	req := &cairnpb.GetRequest{Table: "h", Key: []byte("user/1")}
	if g, err := e.rt.Get(ctx, req); err != nil || string(g.Value) != "a" || g.Version != v1 {
		t.Fatalf("get = %v, %v", g, err)
	}
	if string(req.Key) != "user/1" {
		t.Fatalf("the caller's request was left changed: %q", req.Key)
	}
	// Conditional writes.
	if _, err := put("user/1", "b", &cairnpb.Condition{Version: v1 + 100}); !errors.Is(err, kv.ErrConditionFailed) {
		t.Fatalf("put with a wrong version: %v", err)
	}
	if _, err := put("user/1", "b", &cairnpb.Condition{Absent: true}); !errors.Is(err, kv.ErrConditionFailed) {
		t.Fatalf("create-only put of a present key: %v", err)
	}
	v2, err := put("user/1", "b", &cairnpb.Condition{Version: v1})
	if err != nil {
		t.Fatal(err)
	}
	// History and ?version= reads name user keys.
	h, err := e.rt.History(ctx, &cairnpb.HistoryRequest{Table: "h", Key: []byte("user/1")})
	if err != nil || len(h.Changes) != 2 || string(h.Changes[0].Key) != "user/1" {
		t.Fatalf("history = %v, %v", h, err)
	}
	at, err := e.rt.History(ctx, &cairnpb.HistoryRequest{Table: "h", Key: []byte("user/1"), AtVersion: v1})
	if err != nil || len(at.Changes) != 1 || string(at.Changes[0].Value) != "a" || string(at.Changes[0].Key) != "user/1" {
		t.Fatalf("history at %d = %v, %v", v1, at, err)
	}
	// Delete with a condition.
	if _, err := e.rt.Delete(ctx, &cairnpb.DeleteRequest{Table: "h", Key: []byte("user/1"), Condition: &cairnpb.Condition{Version: v1}}); !errors.Is(err, kv.ErrConditionFailed) {
		t.Fatalf("delete with a stale version: %v", err)
	}
	if _, err := e.rt.Delete(ctx, &cairnpb.DeleteRequest{Table: "h", Key: []byte("user/1"), Condition: &cairnpb.Condition{Version: v2}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rt.Get(ctx, req); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	// TTL: the key expires and the expirer removes it.
	if _, err := e.rt.Put(ctx, &cairnpb.PutRequest{Table: "h", Key: []byte("tmp"), Value: []byte("x"), TtlMs: 1000}); err != nil {
		t.Fatal(err)
	}
	if g, err := e.rt.Get(ctx, &cairnpb.GetRequest{Table: "h", Key: []byte("tmp")}); err != nil || g.ExpireAtMs == 0 {
		t.Fatalf("get of a key with a TTL = %v, %v", g, err)
	}
	e.advance(2 * time.Second)
	if n := e.rt.ExpireDue(ctx); n != 1 {
		t.Fatalf("ExpireDue = %d, want 1", n)
	}
	if _, err := e.rt.Get(ctx, &cairnpb.GetRequest{Table: "h", Key: []byte("tmp")}); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("get after expiry: %v", err)
	}
	// A transaction over keys of the hash table (several ranges) and of
	// a range table.
	var ops []*cairnpb.TxnOp
	for i := range 10 {
		ops = append(ops, &cairnpb.TxnOp{Kind: cairnpb.TxnOp_PUT, Table: "h", Key: fmt.Appendf(nil, "t%d", i), Value: []byte("tv")})
	}
	ops = append(ops, &cairnpb.TxnOp{Kind: cairnpb.TxnOp_PUT, Table: "default", Key: []byte("t"), Value: []byte("tv")})
	if _, err := e.rt.Txn(ctx, &cairnpb.TxnRequest{Ops: ops}); err != nil {
		t.Fatal(err)
	}
	if string(ops[0].Key) != "t0" {
		t.Fatalf("txn left the caller's key changed: %q", ops[0].Key)
	}
	read := []*cairnpb.TxnOp{{Kind: cairnpb.TxnOp_READ, Table: "h", Key: []byte("t3")}, {Kind: cairnpb.TxnOp_CHECK, Table: "h", Key: []byte("t7"),
		Condition: &cairnpb.Condition{Value: []byte("tv")}}}
	if resp, err := e.rt.Txn(ctx, &cairnpb.TxnRequest{Ops: read}); err != nil || !resp.Results[0].Found || string(resp.Results[0].Value) != "tv" {
		t.Fatalf("txn read = %v, %v", resp, err)
	}
	// A failed condition names the user key, not the placement key.
	failed := []*cairnpb.TxnOp{{Kind: cairnpb.TxnOp_CHECK, Table: "h", Key: []byte("t5"), Condition: &cairnpb.Condition{Value: []byte("other")}},
		{Kind: cairnpb.TxnOp_PUT, Table: "h", Key: []byte("t6"), Value: []byte("no")}}
	_, err = e.rt.Txn(ctx, &cairnpb.TxnRequest{Ops: failed})
	if !errors.Is(err, kv.ErrConditionFailed) || !strings.Contains(err.Error(), `"t5"`) || strings.Contains(err.Error(), `\x`) {
		t.Fatalf("txn with a failed condition: %v", err)
	}
	t.Logf("failed condition: %v", err)
	if got := listAll(t, e.rt, &cairnpb.ListRequest{Table: "h", Prefix: []byte("t"), Limit: 3}); fmt.Sprint(got) != "[t0 t1 t2 t3 t4 t5 t6 t7 t8 t9]" {
		t.Fatalf("list after txn: %v", got)
	}
	// Batch (MSET) of keys that lie in one range works; across ranges it
	// is refused like on a range table.
	var multi []*cairnpb.BatchOp
	for i := range 10 {
		multi = append(multi, &cairnpb.BatchOp{Op: &cairnpb.BatchOp_Put{Put: &cairnpb.PutRequest{Key: fmt.Appendf(nil, "b%d", i), Value: []byte("x")}}})
	}
	if _, err := e.rt.Batch(ctx, &cairnpb.BatchRequest{Table: "h", Ops: multi}); !errors.Is(err, kv.ErrMultiRange) {
		t.Fatalf("batch across hash ranges: %v", err)
	}
	one := []*cairnpb.BatchOp{{Op: &cairnpb.BatchOp_Put{Put: &cairnpb.PutRequest{Key: []byte("solo"), Value: []byte("x")}}}}
	if _, err := e.rt.Batch(ctx, &cairnpb.BatchRequest{Table: "h", Ops: one}); err != nil {
		t.Fatal(err)
	}
	if g, err := e.rt.Get(ctx, &cairnpb.GetRequest{Table: "h", Key: []byte("solo")}); err != nil || string(g.Value) != "x" {
		t.Fatalf("get after batch = %v, %v", g, err)
	}
}

func TestHashWatchPrefix(t *testing.T) {
	e := newTTLEnv(t)
	createHash(t, e.rt, "h", 4)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Keys with the prefix land in every range; the watch sees them all,
	// named by user key, and nothing without the prefix.
	var want []string
	var first uint64
	for i := range 20 {
		resp, err := e.rt.Put(ctx, &cairnpb.PutRequest{Table: "h", Key: fmt.Appendf(nil, "w/%02d", i), Value: []byte("v")})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = resp.Version
		}
		want = append(want, fmt.Sprintf("w/%02d", i))
		if _, err := e.rt.Put(ctx, &cairnpb.PutRequest{Table: "h", Key: fmt.Appendf(nil, "x/%02d", i), Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	// Replayed from the retained history of every range: a watch from
	// before the first put sees all 20 keys with the prefix, in order of
	// their versions, and none without it.
	var replayed []string
	rctx, rstop := context.WithCancel(ctx)
	err := e.rt.Watch(rctx, &cairnpb.WatchRequest{Table: "h", Key: []byte("w/"), Prefix: true, StartVersion: first - 1}, func(r *cairnpb.WatchResponse) error {
		for _, ev := range r.Events {
			replayed = append(replayed, string(ev.Key))
		}
		if len(replayed) >= len(want) {
			rstop()
		}
		return nil
	})
	rstop()
	if fmt.Sprint(replayed) != fmt.Sprint(want) {
		t.Fatalf("replayed %v (err %v), want %v", replayed, err, want)
	}
	var mu sync.Mutex
	var got []string
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- e.rt.Watch(wctx, &cairnpb.WatchRequest{Table: "h", Key: []byte("w/"), Prefix: true, StartVersion: 0}, func(r *cairnpb.WatchResponse) error {
			mu.Lock()
			defer mu.Unlock()
			for _, ev := range r.Events {
				got = append(got, string(ev.Key))
			}
			return nil
		})
	}()
	// Replayed from history (start_version 0 is "from now" only without
	// history; poll until every key showed or the deadline).
	var single []string
	sctx, sstop := context.WithCancel(ctx)
	sdone := make(chan error, 1)
	go func() {
		sdone <- e.rt.Watch(sctx, &cairnpb.WatchRequest{Table: "h", Key: []byte("w/05")}, func(r *cairnpb.WatchResponse) error {
			mu.Lock()
			defer mu.Unlock()
			for _, ev := range r.Events {
				single = append(single, string(ev.Key))
			}
			return nil
		})
	}()
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		// Live changes after the watches started.
		if _, err := e.rt.Put(ctx, &cairnpb.PutRequest{Table: "h", Key: []byte("w/05"), Value: fmt.Appendf(nil, "%d", i)}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.rt.Put(ctx, &cairnpb.PutRequest{Table: "h", Key: fmt.Appendf(nil, "w/live%d", i), Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			t.Fatalf("prefix watch ended: %v", err)
		case err := <-sdone:
			t.Fatalf("key watch ended: %v", err)
		default:
		}
		mu.Lock()
		// "From now" starts when the watch registers, which may be after
		// the first live puts: any live key will do.
		okPrefix := slices.Contains(got, "w/05") &&
			slices.ContainsFunc(got, func(k string) bool { return strings.HasPrefix(k, "w/live") })
		okSingle := len(single) > 0
		bad := slices.ContainsFunc(got, func(k string) bool { return !strings.HasPrefix(k, "w/") }) ||
			slices.ContainsFunc(single, func(k string) bool { return k != "w/05" })
		mu.Unlock()
		if bad {
			t.Fatalf("watch returned foreign keys: %v / %v", got, single)
		}
		if okPrefix && okSingle {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("watch saw %v and %v", got, single)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	sstop()
	<-done
	<-sdone
}

// TestHashQuota: a size quota holds for a hash table as a whole, summed
// over its ranges.
func TestHashQuota(t *testing.T) {
	e := newTTLEnv(t)
	ctx := context.Background()
	if _, err := e.rt.CreateTable(ctx, &cairnpb.CreateTableRequest{Name: "hq", Partitioning: "hash", InitialRanges: 4, MaxBytes: 2000}); err != nil {
		t.Fatal(err)
	}
	written := 0
	for i := range 1000 {
		k, v := fmt.Appendf(nil, "key-%04d", i), bytes.Repeat([]byte("v"), 50)
		_, err := e.rt.Put(ctx, &cairnpb.PutRequest{Table: "hq", Key: k, Value: v})
		if errors.Is(err, kv.ErrQuotaBytes) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		written += len(k) + len(v)
	}
	// Each put counts its placement key (8 bytes more) and 9 bytes of
	// overhead: the quota stops the writes between 1,000 and 2,000 user
	// bytes, never past it.
	if written < 1000 || written > 2000 {
		t.Fatalf("%d bytes written under a 2,000-byte quota", written)
	}
}

// TestHashListModel: a random sequence of puts, deletes and paged lists
// (prefix, bounds, limit) on a hash table of 1 to 6 ranges, with manual
// splits at random hash positions in between, agrees with a map.
func TestHashListModel(t *testing.T) {
	e := newTTLEnv(t)
	ctx := context.Background()
	var n atomic.Int32
	rapid.Check(t, func(rt *rapid.T) {
		name := fmt.Sprintf("m%d", n.Add(1))
		createHash(t, e.rt, name, uint32(rapid.IntRange(1, 6).Draw(rt, "ranges")))
		defer func() {
			if _, err := e.rt.DropTable(ctx, &cairnpb.DropTableRequest{Name: name}); err != nil {
				rt.Fatal(err)
			}
		}()
		model := map[string]string{}
		keyGen := rapid.StringMatching(`[abc]{0,3}`)
		for range rapid.IntRange(1, 40).Draw(rt, "steps") {
			switch rapid.IntRange(0, 9).Draw(rt, "op") {
			case 0, 1, 2, 3, 4:
				k, v := keyGen.Draw(rt, "key"), rapid.StringMatching(`[0-9]{1,3}`).Draw(rt, "value")
				if k == "" {
					continue
				}
				if _, err := e.rt.Put(ctx, &cairnpb.PutRequest{Table: name, Key: []byte(k), Value: []byte(v)}); err != nil {
					rt.Fatal(err)
				}
				model[k] = v
			case 5:
				k := keyGen.Draw(rt, "key")
				if k == "" {
					continue
				}
				if _, err := e.rt.Delete(ctx, &cairnpb.DeleteRequest{Table: name, Key: []byte(k)}); err != nil && !errors.Is(err, kv.ErrNotFound) {
					rt.Fatal(err)
				}
				delete(model, k)
			case 6:
				pos := hashkey.Point(rapid.Uint64().Draw(rt, "split"))
				_, err := e.rt.SplitRange(ctx, &cairnpb.SplitRangeRequest{Table: name, Key: fmt.Appendf(nil, "0x%x", pos)})
				if err != nil && !errors.Is(err, kv.ErrInvalidArgument) {
					rt.Fatal(err) // invalid: the position starts a range already
				}
			default:
				prefix := keyGen.Draw(rt, "prefix")
				start, end := keyGen.Draw(rt, "start"), keyGen.Draw(rt, "end")
				limit := rapid.IntRange(1, 5).Draw(rt, "limit")
				req := &cairnpb.ListRequest{Table: name, Prefix: []byte(prefix), Start: []byte(start), End: []byte(end), Limit: uint32(limit), Values: true}
				var got, want []string
				for page := 0; ; page++ {
					if page > 100 {
						rt.Fatal("list does not end")
					}
					resp, err := e.rt.List(ctx, req)
					if err != nil {
						rt.Fatal(err)
					}
					if len(resp.Items) > limit {
						rt.Fatalf("%d items with limit %d", len(resp.Items), limit)
					}
					for _, it := range resp.Items {
						got = append(got, string(it.Key)+"="+string(it.Value))
					}
					if resp.NextPageToken == "" {
						break
					}
					req.PageToken = resp.NextPageToken
				}
				for _, k := range slices.Sorted(maps.Keys(model)) {
					if strings.HasPrefix(k, prefix) && k >= start && (end == "" || k < end) {
						want = append(want, k+"="+model[k])
					}
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					rt.Fatalf("list %q [%q, %q) limit %d = %v, want %v", prefix, start, end, limit, got, want)
				}
			}
		}
	})
}

// TestHashSplitUnderWrites: with a tiny split size, a hash table splits
// at the midpoints of its hash intervals while writers run; every write
// is readable and listed afterwards.
func TestHashSplitUnderWrites(t *testing.T) {
	e := newTTLEnv(t)
	ctx := context.Background()
	createHash(t, e.rt, "h", 2)
	// Keys present throughout: every List during the splits returns each
	// exactly once, in order.
	var base []string
	for i := range 100 {
		k := fmt.Sprintf("base-%03d", i)
		if _, err := e.rt.Put(ctx, &cairnpb.PutRequest{Table: "h", Key: []byte(k), Value: []byte("b")}); err != nil {
			t.Fatal(err)
		}
		base = append(base, k)
	}
	sctx, cancel := context.WithCancel(ctx)
	listerDone := make(chan error, 1)
	lists := 0
	go func() {
		for sctx.Err() == nil {
			var got []string
			req := &cairnpb.ListRequest{Table: "h", Prefix: []byte("base-"), Limit: 7}
			for {
				resp, err := e.rt.List(ctx, req)
				if err != nil {
					listerDone <- err
					return
				}
				for _, it := range resp.Items {
					got = append(got, string(it.Key))
				}
				if resp.NextPageToken == "" {
					break
				}
				req.PageToken = resp.NextPageToken
			}
			if fmt.Sprint(got) != fmt.Sprint(base) {
				listerDone <- fmt.Errorf("list during splits: %d keys %v", len(got), got)
				return
			}
			lists++
		}
		listerDone <- nil
	}()
	splitterDone := make(chan struct{})
	go func() {
		defer close(splitterDone)
		e.rt.RunSplitter(sctx, SplitterOptions{Interval: 10 * time.Millisecond, SplitSizeBytes: 300})
	}()
	const writers, perWriter = 4, 100
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				k := fmt.Sprintf("key-%d-%04d", w, i)
				if _, err := e.rt.Put(ctx, &cairnpb.PutRequest{Table: "h", Key: []byte(k), Value: []byte("value-" + k)}); err != nil {
					errs <- fmt.Errorf("put %s: %w", k, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Wait until the table has split well past its two ranges.
	deadline := time.Now().Add(20 * time.Second)
	var tbl *cairnpb.Table
	for {
		var err error
		if tbl, err = e.rt.GetTable(ctx, &cairnpb.GetTableRequest{Name: "h"}); err != nil {
			t.Fatal(err)
		}
		if len(tbl.Ranges) >= 8 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d ranges", len(tbl.Ranges))
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-splitterDone
	if err := <-listerDone; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d complete lists during the splits", lists)
	// Every split halved a hash interval: all bounds are hash positions.
	for _, d := range tbl.Ranges {
		for _, b := range [][]byte{d.Start, d.End} {
			if len(b) != 0 && len(b) != hashkey.PrefixLen {
				t.Fatalf("range %d has a bound %x that is not a hash position", d.Id, b)
			}
		}
	}
	want := slices.Clone(base)
	for w := range writers {
		for i := range perWriter {
			k := fmt.Sprintf("key-%d-%04d", w, i)
			want = append(want, k)
			if g, err := e.rt.Get(ctx, &cairnpb.GetRequest{Table: "h", Key: []byte(k)}); err != nil || string(g.Value) != "value-"+k {
				t.Fatalf("get %s = %v, %v", k, g, err)
			}
		}
	}
	slices.Sort(want)
	for _, limit := range []uint32{7, 1000} {
		if got := listAll(t, e.rt, &cairnpb.ListRequest{Table: "h", Limit: limit}); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("list with limit %d: %d keys, want %d", limit, len(got), len(want))
		}
	}
	t.Logf("%d ranges after size-based splits", len(tbl.Ranges))
}

// BenchmarkHashVsRange compares a get and a put on a hash table (4 ranges,
// and 1) with the same on a range table (1 range, and 4 after manual
// splits): one node; the routing and the placement key are the
// difference. All gets run before all puts.
//
//	go test ./internal/router -run '^$' -bench HashVsRange -benchtime 2000x -count 5
func BenchmarkHashVsRange(b *testing.B) {
	e := newTTLEnv(b)
	ctx := context.Background()
	createHash(b, e.rt, "hash", 4)
	if _, err := e.rt.CreateTable(ctx, &cairnpb.CreateTableRequest{Name: "range"}); err != nil {
		b.Fatal(err)
	}
	createHash(b, e.rt, "hash1", 1)
	if _, err := e.rt.CreateTable(ctx, &cairnpb.CreateTableRequest{Name: "range4"}); err != nil {
		b.Fatal(err)
	}
	for _, k := range []string{"key-000250", "key-000500", "key-000750"} {
		if _, err := e.rt.SplitRange(ctx, &cairnpb.SplitRangeRequest{Table: "range4", Key: []byte(k)}); err != nil {
			b.Fatal(err)
		}
	}
	tables := []string{"range", "hash", "hash1", "range4"}
	value := bytes.Repeat([]byte("v"), 100)
	for _, table := range tables {
		for i := range 1000 {
			if _, err := e.rt.Put(ctx, &cairnpb.PutRequest{Table: table, Key: fmt.Appendf(nil, "key-%06d", i), Value: value}); err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, table := range tables {
		b.Run("op=get/table="+table, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := e.rt.Get(ctx, &cairnpb.GetRequest{Table: table, Key: fmt.Appendf(nil, "key-%06d", i%1000)}); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
	for _, table := range tables {
		b.Run("op=put/table="+table, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := e.rt.Put(ctx, &cairnpb.PutRequest{Table: table, Key: fmt.Appendf(nil, "key-%06d", i%1000), Value: value}); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
