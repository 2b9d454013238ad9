package replica

import (
	"github.com/cockroachdb/pebble/v2"

	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/storage"
	"github.com/cairn-db/cairn/internal/watch"
)

// DefaultHistoryVersions is how many changes of one key its history keeps
// unless Options.HistoryVersions says otherwise.
const DefaultHistoryVersions = 16

// recordChange appends a change to the key's history (trimming it to the
// newest HistoryVersions entries) and queues the change for the node's
// watchers, who get it once the apply batch is committed. Every replica
// records the same changes in the same order, so the history travels in
// snapshots like the data it describes. Driver only.
func (r *Replica) recordChange(b *pebble.Batch, table keys.TableID, key []byte, version uint64, c storage.Change) error {
	if n := r.opts.HistoryVersions; n > 0 {
		prefix := keys.HistoryKeyPrefix(table, key)
		it, err := b.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: keys.PrefixEnd(prefix)})
		if err != nil {
			return err
		}
		kept := 1 // the new entry
		for ok := it.Last(); ok; ok = it.Prev() {
			k := it.Key()
			if c.Prev == 0 && len(k) >= 8 {
				_, _, c.Prev, _ = keys.DecodeHistoryKey(k)
			}
			if kept < n {
				kept++
				continue
			}
			if err := b.Delete(k, nil); err != nil {
				it.Close()
				return err
			}
		}
		if err := it.Close(); err != nil {
			return err
		}
		if err := b.Set(keys.HistoryKey(table, key, version), storage.EncodeChange(c), nil); err != nil {
			return err
		}
	}
	d := r.Desc()
	r.events = append(r.events, watch.Event{Table: table, Key: key, Version: version, Change: c, Start: d.Start, End: d.End})
	return nil
}
