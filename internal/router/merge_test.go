// Goal: merges through the router on a real single-node store: MergeRange
// validates its request and joins a range with its right neighbour while
// writers and readers keep going (no request fails, every acknowledged
// value reads back, versions keep increasing); the merged range's replica
// replaces both in the catalog and the right one is destroyed; a range
// frozen by a merge whose driver vanished is unfrozen after the timeout
// (maybeUnfreeze); RunSplitter merges small, cold neighbours back into one
// range.
// Method: the single-node environment of ttl_test.go; splits by hand, then
// merges by hand or by the splitter with a short delay.
package router

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/keys/hashkey"
	"github.com/cairn-db/cairn/internal/kv"
)

func TestMergeRange(t *testing.T) {
	e := newTTLEnv(t)
	ctx := context.Background()
	for _, k := range []string{"g", "p"} {
		if _, err := e.rt.SplitRange(ctx, &cairnpb.SplitRangeRequest{Table: "default", Key: []byte(k)}); err != nil {
			t.Fatalf("split at %s: %v", k, err)
		}
	}
	checkCatalog(t, e.rt, 3)

	// Writers and readers over all three ranges during the merges.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	acked := map[string]string{}
	var failures []error
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := fmt.Sprintf("%c%03d", "atz"[w], i%50)
				v := fmt.Sprintf("v%d", i)
				if _, err := e.rt.Put(ctx, &cairnpb.PutRequest{Table: "default", Key: []byte(k), Value: []byte(v)}); err != nil {
					mu.Lock()
					failures = append(failures, fmt.Errorf("put %s: %w", k, err))
					mu.Unlock()
					continue
				}
				mu.Lock()
				acked[k] = v
				mu.Unlock()
				resp, err := e.rt.Get(ctx, &cairnpb.GetRequest{Table: "default", Key: []byte(k)})
				mu.Lock()
				if err != nil {
					failures = append(failures, fmt.Errorf("get %s: %w", k, err))
				} else if string(resp.Value) != acked[k] {
					failures = append(failures, fmt.Errorf("get %s = %q, want %q", k, resp.Value, acked[k]))
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	var lastGen uint64
	for _, k := range []string{"g", "a"} {
		resp, err := e.rt.MergeRange(ctx, &cairnpb.MergeRangeRequest{Table: "default", Key: []byte(k)})
		if err != nil {
			t.Fatalf("merge at %s: %v", k, err)
		}
		lastGen = resp.Merged.Generation
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d requests failed or read wrong values during merges, first: %v", len(failures), failures[0])
	}
	tbl := checkCatalog(t, e.rt, 1)
	if len(tbl.Ranges) != 1 || tbl.Ranges[0].Generation != lastGen {
		t.Fatalf("catalog after the merges: %v", tbl.Ranges)
	}
	if n := len(e.rt.store.Replicas()); n != 2 {
		t.Fatalf("%d local replicas after the merges, want 2 (meta and the merged range)", n)
	}
	for k, v := range acked {
		resp, err := e.rt.Get(ctx, &cairnpb.GetRequest{Table: "default", Key: []byte(k)})
		if err != nil || string(resp.Value) != v {
			t.Fatalf("get %s after the merges: %v %v, want %q", k, resp, err, v)
		}
	}
	if got := listAll(t, e.rt, &cairnpb.ListRequest{Table: "default", Limit: 7}); len(got) != len(acked) {
		t.Fatalf("list after the merges: %d keys, want %d", len(got), len(acked))
	}

	// Refusals: the last range has no right neighbour; a missing table.
	if _, err := e.rt.MergeRange(ctx, &cairnpb.MergeRangeRequest{Table: "default", Key: []byte("a")}); !errors.Is(err, kv.ErrInvalidArgument) {
		t.Errorf("merge of the only range: %v, want invalid argument", err)
	}
	if _, err := e.rt.MergeRange(ctx, &cairnpb.MergeRangeRequest{Table: "nosuch", Key: []byte("a")}); !errors.Is(err, kv.ErrTableNotFound) {
		t.Errorf("merge of a missing table: %v", err)
	}
}

func TestMergeFrozenTooLong(t *testing.T) {
	e := newTTLEnv(t)
	ctx := context.Background()
	sp, err := e.rt.SplitRange(ctx, &cairnpb.SplitRangeRequest{Table: "default", Key: []byte("m")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.rt.Put(ctx, &cairnpb.PutRequest{Table: "default", Key: []byte("x"), Value: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	// A driver froze the right range, then vanished.
	left, right := sp.Left, sp.Right
	if _, err := e.rt.mergeStep(ctx, keys.RangeID(right.Id), &cairnpb.MergeStep{Op: &cairnpb.MergeStep_Freeze{Freeze: &cairnpb.MergeFreeze{
		LeftId: left.Id, LeftGeneration: left.Generation, ExpectedGeneration: right.Generation,
	}}}); err != nil {
		t.Fatal(err)
	}
	r := e.rt.store.Replica(keys.RangeID(right.Id))
	if !r.Frozen() {
		t.Fatal("the right range is not frozen")
	}
	// A write to the frozen range waits (retries) until it is unfrozen.
	written := make(chan error, 1)
	go func() {
		_, err := e.rt.Put(ctx, &cairnpb.PutRequest{Table: "default", Key: []byte("x"), Value: []byte("2")})
		written <- err
	}()
	since := map[keys.RangeID]time.Time{}
	now := time.Now()
	e.rt.maybeUnfreeze(ctx, r, time.Minute, since, now)
	e.rt.maybeUnfreeze(ctx, r, time.Minute, since, now.Add(30*time.Second))
	if !r.Frozen() {
		t.Fatal("unfrozen before the timeout")
	}
	select {
	case err := <-written:
		t.Fatalf("a write to a frozen range finished: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	e.rt.maybeUnfreeze(ctx, r, time.Minute, since, now.Add(61*time.Second))
	if r.Frozen() {
		t.Fatal("still frozen after the timeout")
	}
	if err := <-written; err != nil {
		t.Fatalf("the write after the unfreeze: %v", err)
	}
	// The abort raised the left range's generation: the old merge can
	// never apply.
	if g := e.rt.store.Replica(keys.RangeID(left.Id)).Desc().Generation; g != left.Generation+1 {
		t.Fatalf("left generation %d, want %d", g, left.Generation+1)
	}
	resp, err := e.rt.Get(ctx, &cairnpb.GetRequest{Table: "default", Key: []byte("x")})
	if err != nil || string(resp.Value) != "2" {
		t.Fatalf("get x: %v %v", resp, err)
	}
}

func TestSplitterMerges(t *testing.T) {
	e := newTTLEnv(t)
	ctx := context.Background()
	for i := range 20 {
		k := fmt.Sprintf("k%02d", i)
		if _, err := e.rt.Put(ctx, &cairnpb.PutRequest{Table: "default", Key: []byte(k), Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"k05", "k10", "k15"} {
		if _, err := e.rt.SplitRange(ctx, &cairnpb.SplitRangeRequest{Table: "default", Key: []byte(k)}); err != nil {
			t.Fatal(err)
		}
	}
	checkCatalog(t, e.rt, 4)
	defer runMergingSplitter(e.rt)()
	deadline := time.Now().Add(20 * time.Second)
	for {
		tbl := checkCatalog(t, e.rt, 1)
		if len(tbl.Ranges) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d ranges left after automatic merging", len(tbl.Ranges))
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i := range 20 {
		k := fmt.Sprintf("k%02d", i)
		resp, err := e.rt.Get(ctx, &cairnpb.GetRequest{Table: "default", Key: []byte(k)})
		if err != nil || string(resp.Value) != "v" {
			t.Fatalf("get %s: %v %v", k, resp, err)
		}
	}
}

// TestSplitterKeepsHashInitialRanges: the splitter merges the ranges a
// hash table split into back to its initial ranges, and no further.
func TestSplitterKeepsHashInitialRanges(t *testing.T) {
	e := newTTLEnv(t)
	ctx := context.Background()
	createHash(t, e.rt, "h", 4)
	bounds := hashkey.InitialBounds(4)
	for _, b := range bounds {
		h, _ := hashkey.PositionOf(b)
		pos := hashkey.Point(h + 1<<60) // inside the range that starts at b
		if _, err := e.rt.SplitRange(ctx, &cairnpb.SplitRangeRequest{Table: "h", Key: fmt.Appendf(nil, "0x%x", pos)}); err != nil {
			t.Fatal(err)
		}
	}
	ranges := func() []*cairnpb.RangeDescriptor {
		tbl, err := e.rt.GetTable(ctx, &cairnpb.GetTableRequest{Name: "h"})
		if err != nil {
			t.Fatal(err)
		}
		return tbl.Ranges
	}
	if n := len(ranges()); n != 7 {
		t.Fatalf("%d ranges after 3 splits of 4", n)
	}
	defer runMergingSplitter(e.rt)()
	deadline := time.Now().Add(20 * time.Second)
	for len(ranges()) > 4 {
		if time.Now().After(deadline) {
			t.Fatalf("%d ranges left after automatic merging", len(ranges()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Ten merge delays more: the initial ranges stay.
	time.Sleep(time.Second)
	got := ranges()
	if len(got) != 4 {
		t.Fatalf("%d ranges, want the 4 the table was created with", len(got))
	}
	for i, b := range bounds {
		if !bytes.Equal(got[i].End, b) {
			t.Fatalf("range %d ends at %x, want the initial bound %x", i, got[i].End, b)
		}
	}
}

// runMergingSplitter runs rt's splitter with quick automatic merges (a
// 100 ms merge delay, a 20 ms pass) until the returned stop is called.
func runMergingSplitter(rt *Router) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		rt.RunSplitter(ctx, SplitterOptions{Interval: 20 * time.Millisecond, SplitSizeBytes: 1 << 20,
			MergeSizeBytes: 1 << 16, MergeQPS: 1000, MergeDelay: 100 * time.Millisecond})
	}()
	return func() { cancel(); <-done }
}
