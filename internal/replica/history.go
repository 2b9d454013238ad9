package replica

import (
	"errors"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/kv"
	"github.com/cairn-db/cairn/internal/storage"
	"github.com/cairn-db/cairn/internal/watch"
)

// DefaultHistoryVersions is how many changes of one key its history keeps
// at least, unless Options.HistoryVersions says otherwise.
const DefaultHistoryVersions = 16

// maxTrimPerWrite bounds the old history entries one write deletes; a key
// with more (rewritten after a long pause) loses the rest on later writes.
const maxTrimPerWrite = 64

// historyPolicy is how much of a key's history its writes keep: at least
// the newest versions changes (0: no history at all), and every change
// younger than retention before the newest.
type historyPolicy struct {
	versions  int
	retention time.Duration
}

// historyOf returns the history policy of cmd: its table's settings as
// the proposer put them in the command, the node's options for what the
// command does not set. Only the command and the options decide, so every
// replica (whose options must match, like --history-versions) keeps the
// same entries.
func (r *Replica) historyOf(cmd *cairnpb.Command) historyPolicy {
	p := historyPolicy{versions: r.opts.HistoryVersions, retention: r.opts.HistoryRetention}
	if cmd.HistoryVersions != nil {
		p.versions = int(min(*cmd.HistoryVersions, kv.MaxHistoryVersions))
	}
	if cmd.HistoryRetentionMs != nil {
		p.retention = min(time.Duration(*cmd.HistoryRetentionMs)*time.Millisecond, kv.MaxHistoryRetention)
	}
	return p
}

// recordChange appends a change to the key's history and queues it for
// the node's watchers, who get it once the apply batch is committed.
//
// Trimming: an entry goes when it is older than the retention before the
// new change (by version, which is HLC time) and not among the key's
// newest entries the policy keeps (r.history: the table's, else the
// node's HistoryVersions and HistoryRetention). Both are decided by
// versions and the command alone, so every replica keeps the same
// entries and the history travels in snapshots like the data it
// describes. Driver only.
//
// stored is the version of the key's stored value (0: none). A key's
// versions only grow, so its newest history entry, if it has one, is at
// that version: a point lookup (bloom filters, no iterator) finds it, and
// when its floor says nothing needs trimming no iterator is built at all,
// the common case of a key written again within the retention. Otherwise
// (no stored value, no entry there after a policy change, or something to
// trim) an iterator finds the newest entry and trims.
func (r *Replica) recordChange(b *pebble.Batch, table keys.TableID, key []byte, stored, version uint64, c storage.Change) error {
	// The change's place in the range's apply order: its version, unless
	// that is not above the last change's (a transaction's write resolved
	// after later writes of other keys of the range).
	c.Seq = max(version, r.state.MaxSeq+1)
	r.state.MaxSeq = c.Seq
	if n := r.history.versions; n > 0 {
		var cutoff uint64 // entries below it may go
		if ret := uint64(r.history.retention / time.Millisecond << 16); version > ret {
			cutoff = version - ret
		}
		prefix := keys.HistoryKeyPrefix(table, key)
		lower, upper := prefix, keys.PrefixEnd(prefix)
		known := false // the newest entry was found by its version
		if stored != 0 {
			prev, found, err := readChange(b, keys.HistoryKey(table, key, stored))
			if err != nil {
				return err
			}
			if found {
				known = true
				c.Prev, c.PrevSeq, c.Floor = stored, prev.Seq, prev.Floor
				if c.Floor > 0 && c.Floor >= cutoff {
					// Every retained entry is at or above the floor
					// (Change.Floor): none is older than the cutoff, and
					// nothing goes (a key written often keeps many
					// entries by age; walking them on each write was most
					// of its cost).
					c.Floor = min(c.Floor, version)
					return r.putChange(b, table, key, version, c)
				}
				if c.Floor > 0 {
					// Never walk the deleted entries below the floor: they
					// are tombstones until a compaction, as many as the
					// key's writes, and skipping them cost each write more.
					lower = keys.HistoryKey(table, key, c.Floor)
				}
			}
		}
		it, err := b.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
		if err != nil {
			return err
		}
		ok := it.Last()
		if !known {
			// The newest entry found by the iterator: the new change's
			// predecessor, and its floor.
			c.Floor = version // no entry: the new one is the oldest
			if ok {
				if _, _, c.Prev, err = keys.DecodeHistoryKey(it.Key()); err != nil {
					it.Close()
					return err
				}
				prev, err := storage.DecodeChange(it.Value())
				if err != nil {
					it.Close()
					return err
				}
				c.PrevSeq, c.Floor = prev.Seq, prev.Floor
				switch {
				case c.Floor > 0 && c.Floor >= cutoff:
					ok = false // nothing to trim, as above
				case c.Floor > 0:
					it.SetBounds(keys.HistoryKey(table, key, c.Floor), upper)
					ok = it.Last()
				}
			}
		}
		// What may go: entries older than the cutoff that are not among
		// the newest n-1 (with the new one, n). They go oldest first, at
		// most maxTrimPerWrite per write, and the floor rises past them,
		// so the next write starts at the oldest entry left and never
		// walks over what earlier writes deleted. (Trimming newest first
		// left each write's deletions above older entries, and every later
		// write walked over all of them again: a burst of writes of one
		// key, aging out, cost each write more than the last, seconds per
		// apply for a burst of 100k.)
		for kept := 1; ok && kept < n; kept++ {
			ok = it.Prev()
		}
		bound := cutoff // entries at or above it stay
		if ok {
			// it is at the newest entry not kept by count.
			_, _, v, err := keys.DecodeHistoryKey(it.Key())
			if err != nil {
				it.Close()
				return err
			}
			bound = min(bound, v+1)
			trimmed := 0
			for ok = it.First(); ok && trimmed < maxTrimPerWrite; ok = it.Next() {
				_, _, v, err := keys.DecodeHistoryKey(it.Key())
				if err != nil {
					it.Close()
					return err
				}
				if v >= bound {
					break
				}
				if err := b.Delete(it.Key(), nil); err != nil {
					it.Close()
					return err
				}
				trimmed++
				c.Floor = v + 1 // it and everything older are gone
			}
		}
		c.Floor = min(c.Floor, version)
		if err := it.Close(); err != nil {
			return err
		}
		return r.putChange(b, table, key, version, c)
	}
	r.queueEvent(table, key, version, c)
	return nil
}

// putChange writes a history entry and queues its event.
func (r *Replica) putChange(b *pebble.Batch, table keys.TableID, key []byte, version uint64, c storage.Change) error {
	if err := b.Set(keys.HistoryKey(table, key, version), storage.EncodeChange(c), nil); err != nil {
		return err
	}
	r.queueEvent(table, key, version, c)
	return nil
}

// queueEvent queues a change for the node's watchers.
func (r *Replica) queueEvent(table keys.TableID, key []byte, version uint64, c storage.Change) {
	d := r.Desc()
	r.events = append(r.events, watch.Event{Table: table, Key: key, Version: version, Change: c, Start: d.Start, End: d.End})
}

// readChange reads one history entry as of b.
func readChange(b *pebble.Batch, hk []byte) (storage.Change, bool, error) {
	v, closer, err := b.Get(hk)
	if errors.Is(err, pebble.ErrNotFound) {
		return storage.Change{}, false, nil
	}
	if err != nil {
		return storage.Change{}, false, err
	}
	defer closer.Close()
	c, err := storage.DecodeChange(v)
	return c, err == nil, err
}
