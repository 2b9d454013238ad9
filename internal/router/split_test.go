// Goal: the router over ranges that split, on a real single-node store:
// SplitRange validates its key and records both ranges in the catalog;
// gets and puts route by key; List walks the ranges in order with correct
// pagination (pages that fill exactly at a range boundary included),
// prefixes and bounds across boundaries; versions keep increasing across
// splits; and RunSplitter splits ranges over the split size and keeps the
// catalog contiguous.
// Method: the single-node environment of ttl_test.go.
package router

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/kv"
)

func listAll(t *testing.T, rt *Router, req *cairnpb.ListRequest) []string {
	t.Helper()
	var out []string
	for page := 0; ; page++ {
		if page > 1000 {
			t.Fatal("list does not end")
		}
		resp, err := rt.List(context.Background(), req)
		if err != nil {
			t.Fatalf("list %+v: %v", req, err)
		}
		if req.Limit > 0 && len(resp.Items) > int(req.Limit) {
			t.Fatalf("page of %d items with limit %d", len(resp.Items), req.Limit)
		}
		for _, it := range resp.Items {
			out = append(out, string(it.Key))
		}
		if resp.NextPageToken == "" {
			return out
		}
		req.PageToken = resp.NextPageToken
	}
}

func checkCatalog(t *testing.T, rt *Router, minRanges int) *cairnpb.Table {
	t.Helper()
	tbl, err := rt.GetTable(context.Background(), &cairnpb.GetTableRequest{Name: "default"})
	if err != nil {
		t.Fatal(err)
	}
	if len(tbl.Ranges) < minRanges {
		t.Fatalf("%d ranges, want at least %d", len(tbl.Ranges), minRanges)
	}
	var end []byte
	for i, d := range tbl.Ranges {
		if i > 0 && string(d.Start) != string(end) {
			t.Fatalf("catalog: range %d starts at %q after a range ending at %q", d.Id, d.Start, end)
		}
		end = d.End
	}
	if len(tbl.Ranges[0].Start) != 0 || len(end) != 0 {
		t.Fatalf("catalog does not cover the table: %v", tbl.Ranges)
	}
	return tbl
}

func TestSplitRouting(t *testing.T) {
	e := newTTLEnv(t)
	ctx := context.Background()
	var want []string
	var maxVersion uint64
	for i := range 60 {
		k := fmt.Sprintf("k%02d", i)
		resp, err := e.rt.Put(ctx, &cairnpb.PutRequest{Table: "default", Key: []byte(k), Value: []byte("v" + k)})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, k)
		maxVersion = max(maxVersion, resp.Version)
	}
	for _, k := range []string{"k10", "k20", "k35", "k50"} {
		resp, err := e.rt.SplitRange(ctx, &cairnpb.SplitRangeRequest{Table: "default", Key: []byte(k)})
		if err != nil {
			t.Fatalf("split at %s: %v", k, err)
		}
		if string(resp.Right.Start) != k || string(resp.Left.End) != k || resp.Left.Generation != resp.Right.Generation {
			t.Fatalf("split at %s: left %v right %v", k, resp.Left, resp.Right)
		}
	}
	for _, bad := range []string{"k20", ""} {
		if _, err := e.rt.SplitRange(ctx, &cairnpb.SplitRangeRequest{Table: "default", Key: []byte(bad)}); !errors.Is(err, kv.ErrInvalidArgument) {
			t.Errorf("split at %q: %v, want invalid argument", bad, err)
		}
	}
	if _, err := e.rt.SplitRange(ctx, &cairnpb.SplitRangeRequest{Table: "nosuch", Key: []byte("a")}); !errors.Is(err, kv.ErrTableNotFound) {
		t.Errorf("split of a missing table: %v", err)
	}
	checkCatalog(t, e.rt, 5)

	for _, k := range want {
		resp, err := e.rt.Get(ctx, &cairnpb.GetRequest{Table: "default", Key: []byte(k)})
		if err != nil || string(resp.Value) != "v"+k {
			t.Fatalf("get %s: %v %v", k, resp, err)
		}
	}
	resp, err := e.rt.Put(ctx, &cairnpb.PutRequest{Table: "default", Key: []byte("k55"), Value: []byte("again")})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Version <= maxVersion {
		t.Fatalf("version after the splits %d is not above %d", resp.Version, maxVersion)
	}

	// Page sizes: 10 fills exactly at the first boundary (k10).
	for _, limit := range []uint32{1, 5, 7, 10, 15, 1000} {
		got := listAll(t, e.rt, &cairnpb.ListRequest{Table: "default", Limit: limit})
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("list with limit %d: %v", limit, got)
		}
	}
	if got := listAll(t, e.rt, &cairnpb.ListRequest{Table: "default", Prefix: []byte("k2"), Limit: 3}); fmt.Sprint(got) != fmt.Sprint(want[20:30]) {
		t.Fatalf("prefix k2: %v", got)
	}
	if got := listAll(t, e.rt, &cairnpb.ListRequest{Table: "default", Start: []byte("k08"), End: []byte("k52"), Limit: 4}); fmt.Sprint(got) != fmt.Sprint(want[8:52]) {
		t.Fatalf("[k08, k52): %v", got)
	}
	if got := listAll(t, e.rt, &cairnpb.ListRequest{Table: "default", Start: []byte("k35"), End: []byte("k35")}); len(got) != 0 {
		t.Fatalf("empty span: %v", got)
	}

	// Size-based splits: every range over 100 bytes splits at its middle.
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.rt.RunSplitter(sctx, SplitterOptions{Interval: 20 * time.Millisecond, SplitSizeBytes: 100})
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		tbl, err := e.rt.GetTable(ctx, &cairnpb.GetTableRequest{Name: "default"})
		if err != nil {
			t.Fatal(err)
		}
		if len(tbl.Ranges) >= 12 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d ranges after size-based splitting", len(tbl.Ranges))
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	checkCatalog(t, e.rt, 12)
	for _, limit := range []uint32{3, 1000} {
		if got := listAll(t, e.rt, &cairnpb.ListRequest{Table: "default", Limit: limit}); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("list with limit %d after size splits: %v", limit, got)
		}
	}
}
