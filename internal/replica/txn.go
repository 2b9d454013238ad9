package replica

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/hlc"
	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/kv"
	"github.com/cairn-db/cairn/internal/storage"
)

// The transaction commands of the state machine (docs/design/
// transactions.md). Every decision (conflict, condition, expiry) is made
// at apply from the log entry and the range's state alone, so every
// replica decides alike.

// ReadIntent returns the intent on key of table as of rd, or nil.
func ReadIntent(rd Reader, table keys.TableID, key []byte) (*cairnpb.TxnIntent, error) {
	v, closer, err := rd.Get(keys.IntentKey(table, key))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	in := &cairnpb.TxnIntent{}
	if err := proto.Unmarshal(v, in); err != nil {
		return nil, fmt.Errorf("intent: %w", err)
	}
	return in, nil
}

func readRecord(b *pebble.Batch, m *cairnpb.TxnMeta) (*cairnpb.TxnRecord, error) {
	v, closer, err := b.Get(keys.TxnRecordKey(keys.TableID(m.PrimaryTableId), m.Id, m.PrimaryKey))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	rec := &cairnpb.TxnRecord{}
	if err := proto.Unmarshal(v, rec); err != nil {
		return nil, fmt.Errorf("txn record: %w", err)
	}
	return rec, nil
}

func writeRecord(b *pebble.Batch, rec *cairnpb.TxnRecord) error {
	m := rec.Meta
	enc, err := proto.Marshal(rec)
	if err != nil {
		return err
	}
	return b.Set(keys.TxnRecordKey(keys.TableID(m.PrimaryTableId), m.Id, m.PrimaryKey), enc, nil)
}

// lockedErr is a plain write's answer to a key another transaction holds.
func lockedErr(in *cairnpb.TxnIntent) error {
	return kv.Errorf(kv.ErrTxnConflict, "key is locked by transaction %x", in.GetMeta().GetId())
}

// checkUnlocked refuses a plain write to a key with an intent on it.
func (r *Replica) checkUnlocked(b *pebble.Batch, table keys.TableID, key []byte) (error, error) {
	if r.intentFree.Load() {
		return nil, nil
	}
	in, err := ReadIntent(b, table, key)
	if err != nil || in == nil {
		return nil, err
	}
	return lockedErr(in), nil
}

// liveValue is a key's live value as of a batch.
type liveValue struct {
	current
	value []byte
}

func readLiveValue(b *pebble.Batch, table keys.TableID, key []byte, ts uint64) (liveValue, error) {
	cur, err := readLive(b, table, key, ts)
	if err != nil || !cur.found {
		return liveValue{current: cur}, err
	}
	v, closer, err := b.Get(keys.DataKey(table, key))
	if err != nil {
		return liveValue{}, err
	}
	defer closer.Close()
	_, _, val, err := storage.DecodeValueTTL(v)
	if err != nil {
		return liveValue{}, err
	}
	return liveValue{current: cur, value: append([]byte(nil), val...)}, nil
}

// checkTxnCondition checks an operation's condition: version, absence and
// value equality.
func checkTxnCondition(c *cairnpb.Condition, lv liveValue) error {
	if err := checkCondition(c, lv.found, lv.version); err != nil {
		return err
	}
	if c != nil && c.Value != nil {
		if !lv.found {
			return kv.Errorf(kv.ErrConditionFailed, "key is absent; expected a value")
		}
		if !bytes.Equal(lv.value, c.Value) {
			return kv.Errorf(kv.ErrConditionFailed, "value differs from the expected one")
		}
	}
	return nil
}

func validMeta(m *cairnpb.TxnMeta) bool {
	return m != nil && len(m.Id) == keys.TxnIDLen && len(m.PrimaryKey) > 0
}

// applyTxnPrewrite is phase one on this range (or the whole transaction,
// one_phase). A key locked by another transaction makes the command
// change nothing and report the conflicting intent; a failed condition
// makes it change nothing and fail. A replay of the same prewrite (same
// transaction's intents already there) is answered from the intents.
func (r *Replica) applyTxnPrewrite(b *pebble.Batch, table keys.TableID, p *cairnpb.TxnPrewrite, ts uint64) (Result, error) {
	if !validMeta(p.Meta) || (p.CreateRecord && p.OnePhase) {
		return Result{Err: kv.Errorf(kv.ErrInvalidArgument, "malformed prewrite")}, nil
	}
	for i, op := range p.Ops {
		if !r.containsKey(op.Key) {
			return Result{Err: kv.Errorf(kv.ErrRangeKeyMismatch, "txn op %d: range %d no longer holds the key", i, r.ID)}, nil
		}
	}
	if p.CreateRecord {
		if p.Meta.PrimaryTableId != uint64(table) || !r.containsKey(p.Meta.PrimaryKey) {
			return Result{Err: kv.Errorf(kv.ErrRangeKeyMismatch, "range %d no longer holds the primary key", r.ID)}, nil
		}
		rec, err := readRecord(b, p.Meta)
		if err != nil {
			return Result{}, err
		}
		if rec != nil && rec.Status == cairnpb.TxnStatus_ABORTED {
			return Result{Err: kv.Errorf(kv.ErrTxnAborted, "transaction %x was aborted", p.Meta.Id)}, nil
		}
	}
	lvs := make([]liveValue, len(p.Ops))
	own := make([]*cairnpb.TxnIntent, len(p.Ops))
	for i, op := range p.Ops {
		in, err := ReadIntent(b, table, op.Key)
		if err != nil {
			return Result{}, err
		}
		if in != nil && !bytes.Equal(in.GetMeta().GetId(), p.Meta.Id) {
			return Result{Txn: &cairnpb.TxnRangeResult{Conflict: in, ConflictKey: op.Key}}, nil
		}
		own[i] = in
		lv, err := readLiveValue(b, table, op.Key, r.state.MaxTimestamp)
		if err != nil {
			return Result{}, err
		}
		lvs[i] = lv
		if in != nil {
			continue // a replay: checked the first time
		}
		if err := checkTxnCondition(op.Condition, lv); err != nil {
			return Result{Err: fmt.Errorf("txn op on key %q: %w", op.Key, err)}, nil
		}
	}
	if p.OnePhase {
		return r.applyTxnOnePhase(b, table, p, lvs, ts)
	}
	results := make([]*cairnpb.TxnResult, len(p.Ops))
	var maxReserved uint64
	for i, op := range p.Ops {
		lv := lvs[i]
		res := &cairnpb.TxnResult{Found: lv.found, Version: lv.version, Value: lv.value}
		results[i] = res
		if op.Kind == cairnpb.TxnOp_PUT {
			res.Found, res.Value = true, nil
		}
		if own[i] != nil {
			if op.Kind == cairnpb.TxnOp_PUT {
				res.Version = own[i].Version
			}
			maxReserved = max(maxReserved, own[i].Version)
			continue
		}
		in := &cairnpb.TxnIntent{Meta: p.Meta, Kind: op.Kind}
		switch op.Kind {
		case cairnpb.TxnOp_PUT:
			in.Value = op.Value
			in.Version = r.nextVersion(ts)
			res.Version = in.Version
		case cairnpb.TxnOp_DELETE:
			// A delete reserves a version too: the commit version is at
			// least every write's (see TxnEnd.commit_version).
			in.Version = r.nextVersion(ts)
		}
		maxReserved = max(maxReserved, in.Version)
		enc, err := proto.Marshal(in)
		if err != nil {
			return Result{}, err
		}
		r.mayHaveIntents()
		if err := b.Set(keys.IntentKey(table, op.Key), enc, nil); err != nil {
			return Result{}, err
		}
	}
	if p.CreateRecord {
		rec, err := readRecord(b, p.Meta)
		if err != nil {
			return Result{}, err
		}
		if rec == nil {
			if err := writeRecord(b, &cairnpb.TxnRecord{Meta: p.Meta, Status: cairnpb.TxnStatus_PENDING}); err != nil {
				return Result{}, err
			}
		}
	}
	return Result{Txn: &cairnpb.TxnRangeResult{Results: results, MaxReserved: maxReserved}}, nil
}

// applyTxnOnePhase applies a whole transaction that lies in this range at
// once: conditions were checked, no other transaction holds its keys.
func (r *Replica) applyTxnOnePhase(b *pebble.Batch, table keys.TableID, p *cairnpb.TxnPrewrite, lvs []liveValue, ts uint64) (Result, error) {
	results := make([]*cairnpb.TxnResult, len(p.Ops))
	for i, op := range p.Ops {
		lv := lvs[i]
		res := &cairnpb.TxnResult{Found: lv.found, Version: lv.version, Value: lv.value}
		results[i] = res
		switch op.Kind {
		case cairnpb.TxnOp_PUT:
			v := r.nextVersion(ts)
			if err := r.writeValue(b, table, &cairnpb.PutRequest{Key: op.Key, Value: op.Value}, lv.current, v, r.state.MaxTimestamp); err != nil {
				return Result{}, err
			}
			res.Found, res.Value, res.Version = true, nil, v
		case cairnpb.TxnOp_DELETE:
			res.Value = nil
			if lv.stored {
				if err := r.removeValue(b, table, op.Key, lv.current, storage.ChangeDelete, r.nextVersion(ts)); err != nil {
					return Result{}, err
				}
			}
		}
	}
	return Result{Txn: &cairnpb.TxnRangeResult{Results: results}}, nil
}

// applyTxnEnd decides a record (see TxnEnd). The result's status is the
// record's status after the command.
func (r *Replica) applyTxnEnd(b *pebble.Batch, e *cairnpb.TxnEnd, ts uint64) (Result, error) {
	m := e.Meta
	if !validMeta(m) || (e.Status != cairnpb.TxnStatus_COMMITTED && e.Status != cairnpb.TxnStatus_ABORTED) {
		return Result{Err: kv.Errorf(kv.ErrInvalidArgument, "malformed txn end")}, nil
	}
	if m.PrimaryTableId != r.Desc().TableId || !r.containsKey(m.PrimaryKey) {
		return Result{Err: kv.Errorf(kv.ErrRangeKeyMismatch, "range %d no longer holds the primary key", r.ID)}, nil
	}
	status := func(s cairnpb.TxnStatus) Result {
		return Result{Txn: &cairnpb.TxnRangeResult{Status: s}}
	}
	final := func(rec *cairnpb.TxnRecord) Result {
		return Result{Txn: &cairnpb.TxnRangeResult{Status: rec.Status, CommitVersion: rec.CommitVersion}}
	}
	nowMs := hlc.Timestamp(ts).Millis()
	rec, err := readRecord(b, m)
	if err != nil {
		return Result{}, err
	}
	if rec == nil {
		// The primary's prewrite has not applied (and now never will
		// succeed): only an abort, and a push only after the expiry.
		if e.Push && m.ExpireAtMs > nowMs {
			return status(cairnpb.TxnStatus_PENDING), nil
		}
		rec = &cairnpb.TxnRecord{Meta: m, Status: cairnpb.TxnStatus_ABORTED}
		return status(rec.Status), writeRecord(b, rec)
	}
	if rec.Status != cairnpb.TxnStatus_PENDING {
		return final(rec), nil
	}
	if e.Push {
		if rec.Meta.ExpireAtMs > nowMs {
			return status(cairnpb.TxnStatus_PENDING), nil
		}
		rec.Status = cairnpb.TxnStatus_ABORTED
	} else {
		rec.Status = e.Status
		if e.Status == cairnpb.TxnStatus_COMMITTED {
			rec.CommitVersion = e.CommitVersion
		}
	}
	return final(rec), writeRecord(b, rec)
}

// applyTxnResolve resolves the intents of one transaction on keys of this
// range: commit turns them into values, abort drops them.
func (r *Replica) applyTxnResolve(b *pebble.Batch, table keys.TableID, res *cairnpb.TxnResolve) (Result, error) {
	for _, k := range res.Keys {
		if !r.containsKey(k) {
			return Result{Err: kv.Errorf(kv.ErrRangeKeyMismatch, "range %d no longer holds the key", r.ID)}, nil
		}
	}
	var resolved uint64
	for _, k := range res.Keys {
		in, err := ReadIntent(b, table, k)
		if err != nil {
			return Result{}, err
		}
		if in == nil || !bytes.Equal(in.GetMeta().GetId(), res.TxnId) {
			continue
		}
		resolved++
		if err := b.Delete(keys.IntentKey(table, k), nil); err != nil {
			return Result{}, err
		}
		if !res.Commit {
			continue
		}
		cur, err := readLive(b, table, k, r.state.MaxTimestamp)
		if err != nil {
			return Result{}, err
		}
		// The transaction's commit version, at least what this intent
		// reserved; the key was locked since, so it is above the key's
		// stored version.
		v := max(in.Version, res.CommitVersion)
		if v > r.state.MaxVersion {
			r.state.MaxVersion = v // reserved at prewrite; never below
		}
		switch in.Kind {
		case cairnpb.TxnOp_PUT:
			if err := r.writeValue(b, table, &cairnpb.PutRequest{Key: k, Value: in.Value}, cur, v, r.state.MaxTimestamp); err != nil {
				return Result{}, err
			}
		case cairnpb.TxnOp_DELETE:
			if v == 0 {
				v = r.nextVersion(r.state.MaxTimestamp) // an intent of before deletes reserved one
			}
			if cur.stored {
				if err := r.removeValue(b, table, k, cur, storage.ChangeDelete, v); err != nil {
					return Result{}, err
				}
			}
		}
	}
	return Result{Version: resolved}, nil
}

// txnSnapshotKVs returns the intents and records desc owns, as of rd.
func txnSnapshotKVs(rd Reader, desc *cairnpb.RangeDescriptor) ([]*cairnpb.SnapshotKV, error) {
	var out []*cairnpb.SnapshotKV
	err := forEachTxnKey(rd, desc, func(k, v []byte) error {
		out = append(out, &cairnpb.SnapshotKV{Key: append([]byte(nil), k...), Value: append([]byte(nil), v...)})
		return nil
	})
	return out, err
}

// clearTxnKeys deletes, in b, the intents and records desc owns, reading
// them from rd.
func clearTxnKeys(b *pebble.Batch, rd Reader, desc *cairnpb.RangeDescriptor) error {
	return forEachTxnKey(rd, desc, func(k, _ []byte) error { return b.Delete(k, nil) })
}

// forEachTxnKey calls f with every intent and record desc owns: the
// intents of its span, and the records whose primary key it holds.
func forEachTxnKey(rd Reader, desc *cairnpb.RangeDescriptor, f func(k, v []byte) error) error {
	table := keys.TableID(desc.TableId)
	is, ie := keys.IntentSpan(table, desc.Start, desc.End)
	rs, re := keys.TxnRecordSpan(table)
	for _, span := range [][2][]byte{{is, ie}, {rs, re}} {
		it, err := rd.NewIter(&pebble.IterOptions{LowerBound: span[0], UpperBound: span[1]})
		if err != nil {
			return err
		}
		for ok := it.First(); ok; ok = it.Next() {
			if _, _, pk, derr := keys.DecodeTxnRecordKey(it.Key()); derr == nil && !inSpan(desc, pk) {
				continue
			}
			if err := f(it.Key(), it.Value()); err != nil {
				it.Close()
				return err
			}
		}
		if err := it.Close(); err != nil {
			return err
		}
	}
	return nil
}

// IntentsIn returns up to limit intents in desc's span as of rd, with
// their user keys (for the background resolver).
func IntentsIn(rd Reader, desc *cairnpb.RangeDescriptor, limit int) ([][]byte, []*cairnpb.TxnIntent, error) {
	is, ie := keys.IntentSpan(keys.TableID(desc.TableId), desc.Start, desc.End)
	it, err := rd.NewIter(&pebble.IterOptions{LowerBound: is, UpperBound: ie})
	if err != nil {
		return nil, nil, err
	}
	var ks [][]byte
	var ins []*cairnpb.TxnIntent
	for ok := it.First(); ok && len(ks) < limit; ok = it.Next() {
		_, uk, derr := keys.DecodeIntentKey(it.Key())
		in := &cairnpb.TxnIntent{}
		if derr != nil || proto.Unmarshal(it.Value(), in) != nil {
			continue
		}
		ks = append(ks, append([]byte(nil), uk...))
		ins = append(ins, in)
	}
	return ks, ins, it.Close()
}
