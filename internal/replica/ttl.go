package replica

import (
	"bytes"
	"errors"
	"math"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/hlc"
	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/storage"
)

// Keys with a TTL. Expiry is decided by the Raft log, never by a
// replica's own clock. The range's log time (RangeState.max_timestamp) is
// the largest command timestamp applied so far (timestamps are the
// proposing leaders' clocks); it never goes back, even when a new leader's
// clock is behind. A write's expiry time is the log time plus the TTL,
// and a command treats a key as absent once the log time has reached its
// expiry. So every replica, applying the same entries, agrees on which
// keys exist, and a key never comes back to life. Expired keys are removed by Expire commands that the
// leaders' expirers propose from the per-table expiry index (see
// keys.ExpiryKey), and by the read path when it meets one.

// current is a key's stored state as a write at some timestamp sees it.
type current struct {
	stored   bool   // present in storage, perhaps expired
	found    bool   // present and not expired at the timestamp
	version  uint64 // of the stored value
	expireAt int64  // of the stored value; 0 for none
	size     int64  // bytes of the stored key and value (for the range size)
}

// storedVersion is the version of cur's stored value, 0 if none.
func storedVersion(cur current) uint64 {
	if !cur.stored {
		return 0
	}
	return cur.version
}

// readLive reads key's stored state as of b, judged at timestamp ts.
func readLive(b *pebble.Batch, table keys.TableID, key []byte, ts uint64) (current, error) {
	v, closer, err := b.Get(keys.DataKey(table, key))
	if errors.Is(err, pebble.ErrNotFound) {
		return current{}, nil
	}
	if err != nil {
		return current{}, err
	}
	defer closer.Close()
	version, exp, _, err := storage.DecodeValueTTL(v)
	if err != nil {
		return current{}, err
	}
	c := current{stored: true, version: version, expireAt: exp, size: int64(len(keys.DataKey(table, key)) + len(v))}
	c.found = !Expired(exp, ts)
	return c, nil
}

// Expired reports whether a value expiring at expireAt (unix ms; 0 means
// never) is expired at timestamp ts.
func Expired(expireAt int64, ts uint64) bool {
	return expireAt != 0 && expireAt <= hlc.Timestamp(ts).Millis()
}

// expiryOf returns the expiry time a put at ts gives its key.
func expiryOf(req *cairnpb.PutRequest, cur current, ts uint64) int64 {
	switch {
	case req.KeepTtl:
		if cur.found {
			return cur.expireAt
		}
		return 0
	case req.TtlMs > 0:
		now := hlc.Timestamp(ts).Millis()
		if req.TtlMs > math.MaxInt64-now {
			return math.MaxInt64
		}
		return now + req.TtlMs
	}
	return 0
}

// writeValue stores req's value at version v and keeps the expiry index
// in step with the value's expiry, and the range's size.
func (r *Replica) writeValue(b *pebble.Batch, table keys.TableID, req *cairnpb.PutRequest, cur current, v, ts uint64) error {
	return r.storeValue(b, table, req.Key, req.Value, cur, v, expiryOf(req, cur, ts))
}

// storeValue is writeValue with the expiry given (exp unix ms, 0: none).
func (r *Replica) storeValue(b *pebble.Batch, table keys.TableID, key, value []byte, cur current, v uint64, exp int64) error {
	if cur.stored && cur.expireAt != 0 && cur.expireAt != exp {
		if err := b.Delete(keys.ExpiryKey(table, cur.expireAt, key), nil); err != nil {
			return err
		}
	}
	dk, enc := keys.DataKey(table, key), storage.EncodeValueTTL(v, exp, value)
	if err := b.Set(dk, enc, nil); err != nil {
		return err
	}
	r.addBytes(int64(len(dk)+len(enc)) - cur.size)
	if exp != 0 {
		if err := b.Set(keys.ExpiryKey(table, exp, key), nil, nil); err != nil {
			return err
		}
	}
	return r.recordChange(b, table, key, storedVersion(cur), v, storage.Change{Kind: storage.ChangePut, ExpireAt: exp, Value: value})
}

// removeValue deletes a stored key and its expiry index entry, and records
// the removal (a delete or an expiry) at version in the key's history.
func (r *Replica) removeValue(b *pebble.Batch, table keys.TableID, key []byte, cur current, kind storage.ChangeKind, version uint64) error {
	if err := b.Delete(keys.DataKey(table, key), nil); err != nil {
		return err
	}
	r.addBytes(-cur.size)
	if cur.expireAt != 0 {
		if err := b.Delete(keys.ExpiryKey(table, cur.expireAt, key), nil); err != nil {
			return err
		}
	}
	return r.recordChange(b, table, key, storedVersion(cur), version, storage.Change{Kind: kind})
}

// applyExpire removes the keys of an Expire command that still have the
// version and expiry it names and are expired at the log time. An index
// entry whose key is gone or has another expiry is stale and removed; one
// whose key is not yet due stays, to be proposed again later.
// Result.Version is the number of keys removed.
func (r *Replica) applyExpire(b *pebble.Batch, table keys.TableID, e *cairnpb.Expire) (Result, error) {
	var removed uint64
	for _, k := range e.Keys {
		if !r.containsKey(k.Key) || k.ExpireAtMs <= 0 {
			continue
		}
		cur, err := readLive(b, table, k.Key, r.state.MaxTimestamp)
		if err != nil {
			return Result{}, err
		}
		switch {
		case cur.stored && cur.expireAt == k.ExpireAtMs && cur.version == k.Version && !cur.found:
			if err := r.removeValue(b, table, k.Key, cur, storage.ChangeExpire, r.nextVersion(r.state.MaxTimestamp)); err != nil {
				return Result{}, err
			}
			removed++
		case cur.stored && cur.expireAt == k.ExpireAtMs:
			// Not yet due (the proposer's clock ran ahead of the log
			// time), or rewritten with the same expiry: the entry is still
			// the key's.
		default:
			if err := b.Delete(keys.ExpiryKey(table, k.ExpireAtMs, k.Key), nil); err != nil {
				return Result{}, err
			}
		}
	}
	return Result{Version: removed}, nil
}

// LogTime returns the range's log time as of its applied state: the
// largest command timestamp applied. Reads judge expiry against it (after
// a read barrier), as commands do.
func (r *Replica) LogTime() uint64 { return r.maxTS.Load() }

// clearExpiryIndex deletes, in b, the expiry index entries of the keys in
// desc's span, reading the index from rd. The index is derived state: a
// snapshot rebuilds it from the data it installs.
func clearExpiryIndex(b *pebble.Batch, rd Reader, desc *cairnpb.RangeDescriptor) error {
	table := keys.TableID(desc.TableId)
	start, end := keys.ExpirySpan(table, -1)
	if len(desc.Start) == 0 && len(desc.End) == 0 {
		return b.DeleteRange(start, end, nil)
	}
	it, err := rd.NewIter(&pebble.IterOptions{LowerBound: start, UpperBound: end})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		_, _, uk, err := keys.DecodeExpiryKey(it.Key())
		if err != nil {
			it.Close()
			return err
		}
		if inSpan(desc, uk) {
			if err := b.Delete(it.Key(), nil); err != nil {
				it.Close()
				return err
			}
		}
	}
	return it.Close()
}

// indexSnapshotValue adds the expiry index entry of a value a snapshot
// installs, if it has a TTL.
func indexSnapshotValue(b *pebble.Batch, dataKey, value []byte) error {
	_, exp, _, err := storage.DecodeValueTTL(value)
	if err != nil || exp == 0 {
		return err
	}
	table, uk, err := keys.DecodeDataKey(dataKey)
	if err != nil {
		return err
	}
	return b.Set(keys.ExpiryKey(table, exp, uk), nil, nil)
}

func inSpan(d *cairnpb.RangeDescriptor, k []byte) bool {
	return bytes.Compare(k, d.Start) >= 0 && (len(d.End) == 0 || bytes.Compare(k, d.End) < 0)
}
