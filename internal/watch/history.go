package watch

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/storage"
)

// ErrAbsentAt: the key did not exist at the requested version (not yet
// written, or deleted or expired by then).
var ErrAbsentAt = errors.New("watch: the key did not exist at that version")

// History returns key's retained changes, newest first, at most limit
// (limit > 0), and whether they reach back to the key's first change.
func History(db pebble.Reader, table keys.TableID, key []byte, limit int) (out []Event, complete bool, err error) {
	prefix := keys.HistoryKeyPrefix(table, key)
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: keys.PrefixEnd(prefix)})
	if err != nil {
		return nil, false, err
	}
	defer it.Close()
	for ok := it.Last(); ok; ok = it.Prev() {
		if len(out) == limit {
			return out, false, it.Error()
		}
		e, err := decodeEntry(table, it.Key(), it.Value())
		if err != nil {
			return nil, false, err
		}
		out = append(out, e)
	}
	complete = len(out) > 0 && out[len(out)-1].Prev == 0
	return out, complete, it.Error()
}

// At returns the change of key in effect at version v: the newest at or
// below it. ErrAbsentAt when the key did not exist then (that change is a
// delete or an expiry, or the key's first change came later);
// ErrCompacted when that change is no longer retained.
func At(db pebble.Reader, table keys.TableID, key []byte, v uint64) (Event, error) {
	prefix := keys.HistoryKeyPrefix(table, key)
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: keys.PrefixEnd(prefix)})
	if err != nil {
		return Event{}, err
	}
	defer it.Close()
	if v < ^uint64(0) && it.SeekLT(keys.HistoryKey(table, key, v+1)) || v == ^uint64(0) && it.Last() {
		e, err := decodeEntry(table, it.Key(), it.Value())
		if err != nil {
			return Event{}, err
		}
		if e.Kind != storage.ChangePut {
			return Event{}, fmt.Errorf("%w (%s at version %d)", ErrAbsentAt, e.Kind, e.Version)
		}
		// A value whose TTL ran out by v's time was gone then, even if the
		// expiry was applied later.
		if e.ExpireAt != 0 && v != ^uint64(0) && e.ExpireAt <= int64(v>>16) {
			return Event{}, fmt.Errorf("%w (expired at %d ms)", ErrAbsentAt, e.ExpireAt)
		}
		return e, nil
	}
	if err := it.Error(); err != nil {
		return Event{}, err
	}
	// Nothing at or below v: either the key began after v, or what it was
	// at v is trimmed.
	if !it.First() {
		return Event{}, fmt.Errorf("%w (no recorded changes)", ErrAbsentAt)
	}
	first, err := decodeEntry(table, it.Key(), it.Value())
	if err != nil {
		return Event{}, err
	}
	if first.Prev == 0 {
		return Event{}, fmt.Errorf("%w (first written at version %d)", ErrAbsentAt, first.Version)
	}
	return Event{}, fmt.Errorf("%w (the oldest retained change is version %d)", ErrCompacted, first.Version)
}

func decodeEntry(table keys.TableID, k, v []byte) (Event, error) {
	t, key, version, err := keys.DecodeHistoryKey(k)
	if err != nil || t != table {
		return Event{}, fmt.Errorf("watch: history key %x: %w", k, storage.ErrCorruptValue)
	}
	c, err := storage.DecodeChange(v)
	if err != nil {
		return Event{}, err
	}
	c.Value = append([]byte(nil), c.Value...)
	return Event{Table: t, Key: key, Version: version, Change: c}, nil
}
