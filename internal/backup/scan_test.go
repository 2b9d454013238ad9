package backup

import (
	"errors"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/storage"
	"github.com/cairn-db/cairn/internal/watch"
)

// TestScanAt checks the point-in-time rewind over key history: a key
// written after T is backed up at its value at T, a key created after T
// is absent, a key deleted after T is present, one deleted or expired by
// T is absent, and a trimmed state at T fails with ErrCompacted.
func TestScanAt(t *testing.T) {
	db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const table = keys.TableID(7)
	put := func(key string, v, prev uint64, exp int64, val string) {
		c := storage.Change{Kind: storage.ChangePut, Seq: v, Prev: prev, ExpireAt: exp, Value: []byte(val)}
		if err := db.Set(keys.HistoryKey(table, []byte(key), v), storage.EncodeChange(c), nil); err != nil {
			t.Fatal(err)
		}
	}
	del := func(key string, v, prev uint64) {
		c := storage.Change{Kind: storage.ChangeDelete, Seq: v, Prev: prev}
		if err := db.Set(keys.HistoryKey(table, []byte(key), v), storage.EncodeChange(c), nil); err != nil {
			t.Fatal(err)
		}
	}
	const at = uint64(1000) << 16 // T: log time 1000 ms
	put("changed", at-5, 0, 0, "old")
	put("changed", at+5, at-5, 0, "new")
	put("created", at+1, 0, 0, "x")
	put("deleted-after", at-3, 0, 0, "kept")
	del("deleted-after", at+2, at-3)
	put("deleted-before", at-9, 0, 0, "gone")
	del("deleted-before", at-8, at-9)
	put("expired", at-7, 0, 999, "ttl")
	put("ttl-live", at-6, 0, 5000, "ttl")

	var got []string
	err = ScanAt(db, table, nil, nil, at, func(r *Record) error {
		got = append(got, fmt.Sprintf("%s=%s@%d/%d", r.Key, r.Value, r.Version-at+100, r.ExpireAtMs))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"changed=old@95/0", "deleted-after=kept@97/0", "ttl-live=ttl@94/5000"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}

	put("trimmed", at+3, at-50, 0, "y") // its state at T was trimmed
	err = ScanAt(db, table, nil, nil, at, func(*Record) error { return nil })
	if !errors.Is(err, watch.ErrCompacted) {
		t.Fatalf("trimmed history: err = %v, want ErrCompacted", err)
	}
}
