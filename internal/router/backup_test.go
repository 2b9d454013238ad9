// Goal: the router's backup walk on a real single-node store. The state
// streamed is exactly the state at the point in time T the first chunk
// names, while the table splits, keys are overwritten, deleted and
// created after T (the fence puts every later write above T); a range
// that splits under the walk is re-resolved as List does; Restore writes
// it back with the same versions into a fresh node; a node that keeps no
// key history refuses to back up rather than send an empty backup.
// Method: the single-node environment of ttl_test.go, with key history
// on; writes and a split happen from the send callback, between chunks.
package router

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/store"
)

func TestBackupAtPointInTime(t *testing.T) {
	e := newTTLEnvWith(t, func(o *store.Options) { o.HistoryRetention = time.Minute })
	ctx := context.Background()
	put := func(k, v string) uint64 {
		t.Helper()
		resp, err := e.rt.Put(ctx, &cairnpb.PutRequest{Table: "default", Key: []byte(k), Value: []byte(v)})
		if err != nil {
			t.Fatal(err)
		}
		return resp.Version
	}
	want := map[string]string{}
	versions := map[string]uint64{}
	for i := range 60 {
		k := fmt.Sprintf("k%02d", i)
		versions[k] = put(k, "v"+k)
		want[k] = "v" + k
	}
	if _, err := e.rt.SplitRange(ctx, &cairnpb.SplitRangeRequest{Table: "default", Key: []byte("k20")}); err != nil {
		t.Fatal(err)
	}

	var at uint64
	got := map[string]*cairnpb.BackupRecord{}
	chunks := 0
	err := e.rt.Backup(ctx, &cairnpb.BackupRequest{}, func(c *cairnpb.BackupChunk) error {
		chunks++
		if chunks == 1 {
			at = c.AtVersion
			if len(c.Tables) != 1 || c.Tables[0].Name != "default" || c.RangesTotal != 2 {
				t.Fatalf("first chunk: %d tables, %d ranges", len(c.Tables), c.RangesTotal)
			}
			// After T: overwrite, delete, create, and split the range
			// the walk has not reached yet.
			put("k05", "late")
			put("k45", "late")
			put("new", "late")
			if _, err := e.rt.Delete(ctx, &cairnpb.DeleteRequest{Table: "default", Key: []byte("k50")}); err != nil {
				t.Fatal(err)
			}
			if _, err := e.rt.SplitRange(ctx, &cairnpb.SplitRangeRequest{Table: "default", Key: []byte("k40")}); err != nil {
				t.Fatal(err)
			}
			return nil
		}
		for _, r := range c.Records {
			if _, dup := got[string(r.Key)]; dup {
				t.Fatalf("key %q streamed twice", r.Key)
			}
			got[string(r.Key)] = r
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("backup holds %d keys, want %d", len(got), len(want))
	}
	for k, v := range want {
		r := got[k]
		if r == nil || string(r.Value) != v || r.Version != versions[k] || !r.HasValue || r.Version > at {
			t.Fatalf("key %s: %+v, want %q@%d (T %d)", k, r, v, versions[k], at)
		}
	}

	// Restore into a fresh node: same keys, same versions; later writes
	// get versions above them.
	f := newTTLEnv(t)
	if _, err := f.rt.RestoreBegin(ctx, &cairnpb.RestoreBeginRequest{}); err != nil {
		t.Fatal(err)
	}
	var recs []*cairnpb.BackupRecord
	var maxRestored uint64
	for i := range 60 {
		r := got[fmt.Sprintf("k%02d", i)]
		recs = append(recs, r)
		maxRestored = max(maxRestored, r.Version)
	}
	if resp, err := f.rt.RestoreData(ctx, &cairnpb.RestoreDataRequest{Table: "default", Records: recs}); err != nil || resp.Restored != 60 {
		t.Fatalf("restore data: %v %v", resp, err)
	}
	for k, v := range want {
		resp, err := f.rt.Get(ctx, &cairnpb.GetRequest{Table: "default", Key: []byte(k)})
		if err != nil || string(resp.Value) != v || resp.Version != versions[k] {
			t.Fatalf("restored %s: %v %v, want %q@%d", k, resp, err, v, versions[k])
		}
	}
	resp, err := f.rt.Put(ctx, &cairnpb.PutRequest{Table: "default", Key: []byte("k00"), Value: []byte("x")})
	if err != nil || resp.Version <= maxRestored {
		t.Fatalf("put after restore: %v %v, want a version above every restored one (%d)", resp, err, maxRestored)
	}
	// Now the target is not empty: a second restore is refused.
	if _, err := f.rt.RestoreBegin(ctx, &cairnpb.RestoreBeginRequest{}); err == nil || !strings.Contains(err.Error(), "empty cluster") {
		t.Fatalf("restore into a cluster with keys: %v", err)
	}
}

func TestBackupNeedsHistory(t *testing.T) {
	e := newTTLEnvWith(t, func(o *store.Options) { o.HistoryVersions = -1 }) // no key history
	ctx := context.Background()
	if _, err := e.rt.Put(ctx, &cairnpb.PutRequest{Table: "default", Key: []byte("k"), Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	err := e.rt.Backup(ctx, &cairnpb.BackupRequest{}, func(*cairnpb.BackupChunk) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "history") {
		t.Fatalf("backup without key history: %v", err)
	}
}
