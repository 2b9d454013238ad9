package replica

import (
	"bytes"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/kv"
)

// The commands of backup and restore (docs/design/backup.md).
//
// A backup at point in time T fences every range at T: the Fence's apply
// raises max_version to at least T, so every write applied after it (in
// log order, on every replica alike) gets a version above T, and every
// write at or below T was applied before it. A Pebble snapshot taken
// after the fence applied therefore holds, in key history, the complete
// state at T (transactions aside: their intents carry versions reserved
// at prewrite, so the backup resolves a span's intents after the fence
// and before its snapshot).
//
// A restore writes keys with their original versions and expiry through
// Restore commands; the apply raises max_version to at least every
// restored version, so later writes get versions above them, as after a
// split.

// SpanWithin reports whether the span [start, end) (end empty: the
// table's end) lies within d.
func SpanWithin(d *cairnpb.RangeDescriptor, start, end []byte) bool {
	if !DescContains(d, start) {
		return false
	}
	if len(d.End) == 0 {
		return true
	}
	return len(end) > 0 && bytes.Compare(end, d.End) <= 0
}

// KeepsHistory reports whether the replica records key history (a backup
// reads the state at its point in time from it).
func (r *Replica) KeepsHistory() bool { return r.opts.HistoryVersions > 0 }

// applyFence raises max_version to the fence's point in time. Result.Version
// is the range's max_version after the apply.
func (r *Replica) applyFence(f *cairnpb.Fence) (Result, error) {
	if f.AtVersion == 0 {
		return Result{Err: kv.Errorf(kv.ErrInvalidArgument, "fence at version 0")}, nil
	}
	if !SpanWithin(r.Desc(), f.Start, f.End) {
		return Result{Err: kv.Errorf(kv.ErrRangeKeyMismatch, "range %d no longer holds [%q, %q)", r.ID, f.Start, f.End)}, nil
	}
	if f.AtVersion > r.state.MaxVersion {
		r.state.MaxVersion = f.AtVersion
	}
	return Result{Version: r.state.MaxVersion}, nil
}

// applyRestore writes restored keys all or nothing (every key must lie in
// the range). A key already stored at the same or a newer version stays
// (a retried proposal, or a write that won), and a key whose expiry the
// log time has passed is skipped. Result.Version is the number of keys
// written.
func (r *Replica) applyRestore(b *pebble.Batch, table keys.TableID, rs *cairnpb.Restore) (Result, error) {
	for i, k := range rs.Keys {
		if k.Version == 0 || k.ExpireAtMs < 0 {
			return Result{Err: kv.Errorf(kv.ErrInvalidArgument, "restore key %d: version 0 or negative expiry", i)}, nil
		}
		if !r.containsKey(k.Key) {
			return Result{Err: kv.Errorf(kv.ErrRangeKeyMismatch, "restore key %d: range %d no longer holds the key", i, r.ID)}, nil
		}
	}
	var written uint64
	for _, k := range rs.Keys {
		if k.Version > r.state.MaxVersion {
			r.state.MaxVersion = k.Version
		}
		if Expired(k.ExpireAtMs, r.state.MaxTimestamp) {
			continue
		}
		cur, err := readLive(b, table, k.Key, r.state.MaxTimestamp)
		if err != nil {
			return Result{}, err
		}
		if cur.stored && cur.version >= k.Version {
			continue
		}
		if err := r.storeValue(b, table, k.Key, k.Value, cur, k.Version, k.ExpireAtMs); err != nil {
			return Result{}, err
		}
		written++
	}
	return Result{Version: written}, nil
}
