package backup

import (
	"bytes"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/storage"
	"github.com/cairn-db/cairn/internal/watch"
)

// ScanAt calls emit, in key order, with every key of table in the user
// key span [start, end) (end empty = the table's end) that was live at
// version at, as its key history (prefix 0x07) in r records it: the
// newest change at or below at, if it is a put whose TTL had not run out
// by at's time. Keys created after at are absent; keys changed or
// deleted after at appear as they were at at. A key whose state at at
// was trimmed from its history fails the scan with watch.ErrCompacted
// (the caller retries with a newer at). r should be a Pebble snapshot
// taken after every write at or below at was applied (see backup.md).
// The record passed to emit is valid only during the call.
func ScanAt(r pebble.Reader, table keys.TableID, start, end []byte, at uint64, emit func(*Record) error) error {
	lo, hi := keys.HistorySpan(table, start, end)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	defer it.Close()
	var (
		cur       []byte // the user key being scanned
		best      storage.Change
		bestV     uint64
		haveBest  bool
		firstPrev uint64 // Prev of the key's oldest retained change
	)
	flush := func() error {
		if cur == nil {
			return nil
		}
		if !haveBest {
			if firstPrev != 0 {
				return fmt.Errorf("backup: key %q at version %d: %w", cur, at, watch.ErrCompacted)
			}
			return nil // created after at
		}
		if best.Kind != storage.ChangePut || (best.ExpireAt != 0 && best.ExpireAt <= int64(at>>16)) {
			return nil
		}
		return emit(&Record{Key: cur, Version: bestV, ExpireAtMs: best.ExpireAt, HasValue: true, Value: best.Value})
	}
	for ok := it.First(); ok; ok = it.Next() {
		t, uk, v, err := keys.DecodeHistoryKey(it.Key())
		if err != nil || t != table {
			return fmt.Errorf("backup: history key %x: %w", it.Key(), storage.ErrCorruptValue)
		}
		c, err := storage.DecodeChange(it.Value())
		if err != nil {
			return err
		}
		if !bytes.Equal(uk, cur) {
			if err := flush(); err != nil {
				return err
			}
			cur, haveBest, firstPrev = uk, false, c.Prev
		}
		if v <= at {
			c.Value = append([]byte(nil), c.Value...)
			best, bestV, haveBest = c, v, true
		}
	}
	if err := it.Error(); err != nil {
		return err
	}
	return flush()
}
