package replica

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/kv"
	"github.com/cairn-db/cairn/internal/raftlog"
)

// Splits (see docs/design/splits.md).
//
// A split is a command of the range itself. Every replica applies it at
// the same log index, in the apply batch of that index, so the left
// replica's narrower descriptor and the right range's initial state
// become durable together or not at all:
//
//  1. The command applies only if the range's generation is still the one
//     the proposer saw and the split key lies strictly inside the range.
//  2. The left keeps [start, split_key) with generation+1; the right range
//     (new_range_id, allocated from the meta counter beforehand) gets
//     [split_key, end), the same generation, the left's configuration, the
//     left's max version, so versions of a key keep increasing, and the
//     left's log time (max timestamp), so TTL expiry never goes back.
//  3. The right range starts at InitialIndex/InitialTerm with an empty log,
//     like a range created by CreateTable; no data moves, since data keys
//     do not contain the range ID.
//  4. The store opens the right replica from the Effect after the batch
//     commits; the left's leader campaigns for it at once.
//
// Raft messages for a range a node does not have are dropped (the store
// never creates a replica on a message): a node that has not applied the
// split yet gets the right range from its own apply. A node that never
// will (its left replica got a snapshot from after the split) gets an
// uninitialized replica once the catalog lists the range and no local
// replica overlaps its span; it waits for a snapshot.

// Contains reports whether the replica is initialized, not frozen for a
// merge (merge.go), and its range holds key now. Any goroutine.
func (r *Replica) Contains(key []byte) bool {
	if !r.Initialized() || r.Frozen() {
		return false
	}
	return DescContains(r.Desc(), key)
}

// DescContains reports whether key lies in [d.Start, d.End).
func DescContains(d *cairnpb.RangeDescriptor, key []byte) bool {
	return bytes.Compare(key, d.Start) >= 0 && (len(d.End) == 0 || bytes.Compare(key, d.End) < 0)
}

// DescsOverlap reports whether two descriptors of one table overlap.
func DescsOverlap(a, b *cairnpb.RangeDescriptor) bool {
	if a.TableId != b.TableId {
		return false
	}
	// a.Start < b.End && b.Start < a.End, with empty End = +inf.
	aBeforeBEnd := len(b.End) == 0 || bytes.Compare(a.Start, b.End) < 0
	bBeforeAEnd := len(a.End) == 0 || bytes.Compare(b.Start, a.End) < 0
	return aBeforeBEnd && bBeforeAEnd
}

// Initialized reports whether the replica holds a state machine (false for
// a replica created to receive a snapshot). Any goroutine.
func (r *Replica) Initialized() bool { return r.applied.Load() > 0 }

// ApproxBytes returns the logical size of the range's data (keys plus
// values) as applied here. Any goroutine.
func (r *Replica) ApproxBytes() uint64 { return r.approxBytes.Load() }

// WriteUninitialized writes the state of a replica that has nothing yet:
// no applied state, an empty log at index 0 and no configuration, so it
// never campaigns; the leader sends it a snapshot. Its descriptor (from the
// catalog) only reserves its span on this node; it serves nothing.
func WriteUninitialized(b *pebble.Batch, desc *cairnpb.RangeDescriptor) error {
	st := &cairnpb.RangeState{Desc: desc}
	if err := putState(b, keys.RangeID(desc.Id), st); err != nil {
		return err
	}
	return raftlog.WriteInitial(b, keys.RangeID(desc.Id), 0, 0)
}

// SnapshotDesc returns the descriptor a Raft snapshot message carries, or
// nil if it has none.
func SnapshotDesc(m raftpb.Message) *cairnpb.RangeDescriptor {
	if m.Type != raftpb.MsgSnap || m.Snapshot == nil {
		return nil
	}
	sd := &cairnpb.SnapshotData{}
	if err := proto.Unmarshal(m.Snapshot.Data, sd); err != nil || sd.State == nil {
		return nil
	}
	return sd.State.Desc
}

// MiddleKey returns the key at which the range's data splits in two
// halves by size, or nil when the range holds fewer than two keys. It reads
// rd (the node's Pebble), so it may run on any goroutine; the split
// command revalidates the key against the generation.
func MiddleKey(rd Reader, d *cairnpb.RangeDescriptor) ([]byte, error) {
	start, end := keys.DataSpan(keys.TableID(d.TableId), d.Start, d.End)
	it, err := rd.NewIter(&pebble.IterOptions{LowerBound: start, UpperBound: end})
	if err != nil {
		return nil, err
	}
	var total uint64
	for ok := it.First(); ok; ok = it.Next() {
		total += uint64(len(it.Key()) + len(it.Value()))
	}
	var sum uint64
	var mid []byte
	first := true
	for ok := it.First(); ok; ok = it.Next() {
		sum += uint64(len(it.Key()) + len(it.Value()))
		if first {
			first = false
			continue // the left half keeps at least one key
		}
		if sum*2 >= total {
			_, uk, derr := keys.DecodeDataKey(it.Key())
			if derr != nil {
				it.Close()
				return nil, derr
			}
			mid = append([]byte(nil), uk...)
			break
		}
	}
	if err := it.Close(); err != nil {
		return nil, err
	}
	if mid != nil && bytes.Equal(mid, d.Start) {
		return nil, nil
	}
	return mid, nil
}

func cloneDesc(d *cairnpb.RangeDescriptor) *cairnpb.RangeDescriptor {
	return proto.Clone(d).(*cairnpb.RangeDescriptor)
}

// spanBytes returns the logical size of the data in [start, end) of table
// as of b.
func spanBytes(b *pebble.Batch, table keys.TableID, start, end []byte) (uint64, error) {
	ls, le := keys.DataSpan(table, start, end)
	it, err := b.NewIter(&pebble.IterOptions{LowerBound: ls, UpperBound: le})
	if err != nil {
		return 0, err
	}
	var n uint64
	for ok := it.First(); ok; ok = it.Next() {
		n += uint64(len(it.Key()) + len(it.Value()))
	}
	return n, it.Close()
}

func (r *Replica) applySplit(b *pebble.Batch, s *cairnpb.Split, out *Applied) (Result, error) {
	d := r.Desc()
	switch {
	case d.TableId == uint64(keys.MetaTableID):
		return Result{Err: kv.Errorf(kv.ErrInvalidArgument, "the meta range does not split")}, nil
	case d.Generation != s.ExpectedGeneration:
		return Result{Err: kv.Errorf(kv.ErrConditionFailed, "range %d: generation is %d, split expected %d", r.ID, d.Generation, s.ExpectedGeneration)}, nil
	case !DescContains(d, s.SplitKey) || bytes.Equal(s.SplitKey, d.Start):
		return Result{Err: kv.Errorf(kv.ErrInvalidArgument, "range %d: split key %q is not inside [%q, %q)", r.ID, s.SplitKey, d.Start, d.End)}, nil
	case s.NewRangeId <= uint64(MetaRangeID) || s.NewRangeId == uint64(r.ID):
		return Result{Err: kv.Errorf(kv.ErrInvalidArgument, "range %d: bad new range ID %d", r.ID, s.NewRangeId)}, nil
	}
	newID := keys.RangeID(s.NewRangeId)
	if _, closer, err := b.Get(keys.RangeStateKey(newID)); err == nil {
		closer.Close()
		// A range ID is allocated once, and no local replica can overlap
		// the left's span: an existing state is a bug, not an input.
		return Result{}, fmt.Errorf("split of range %d: range %d already exists here", r.ID, newID)
	} else if !errors.Is(err, pebble.ErrNotFound) {
		return Result{}, err
	}
	left := cloneDesc(d)
	left.End = append([]byte(nil), s.SplitKey...)
	left.Generation++
	right := &cairnpb.RangeDescriptor{
		Id: uint64(newID), TableId: d.TableId,
		Start: append([]byte(nil), s.SplitKey...), End: append([]byte(nil), d.End...),
		Replicas: slices.Clone(d.Replicas), Generation: left.Generation,
		Learners: slices.Clone(d.Learners), ConfVersion: d.ConfVersion,
	}
	rightBytes, err := spanBytes(b, keys.TableID(d.TableId), right.Start, right.End)
	if err != nil {
		return Result{}, err
	}
	rst := &cairnpb.RangeState{
		Desc: right, AppliedIndex: InitialIndex, AppliedTerm: InitialTerm,
		MaxVersion: r.state.MaxVersion, MaxTimestamp: r.state.MaxTimestamp, MaxSeq: r.state.MaxSeq,
		ConfState:   slices.Clone(r.state.ConfState),
		ApproxBytes: rightBytes,
	}
	if err := putState(b, newID, rst); err != nil {
		return Result{}, err
	}
	if err := raftlog.WriteInitial(b, newID, InitialIndex, InitialTerm); err != nil {
		return Result{}, err
	}
	r.state.Desc = left
	r.desc.Store(left)
	r.addBytes(-int64(rightBytes))
	out.Effects = append(out.Effects, Effect{Create: right, Split: true})
	return Result{Split: &cairnpb.SplitRangeResponse{Left: cloneDesc(left), Right: cloneDesc(right)}}, nil
}

// addBytes adjusts the approximate size, never below zero (ranges written
// before sizes were kept start at zero).
func (r *Replica) addBytes(delta int64) {
	n := int64(r.state.ApproxBytes) + delta
	if n < 0 {
		n = 0
	}
	r.state.ApproxBytes = uint64(n)
	r.approxBytes.Store(r.state.ApproxBytes)
}

func (r *Replica) applyAllocRangeID(b *pebble.Batch) (Result, error) {
	id, err := nextCounter(b, metaRangeCtr, 2)
	if err != nil {
		return Result{}, err
	}
	return Result{RangeID: id}, nil
}

// findTable returns the name and record of the table with ID id as of b.
func findTable(b *pebble.Batch, id uint64) (*cairnpb.Table, error) {
	start, end := MetaTableSpan()
	var found *cairnpb.Table
	err := ScanProtos(b, start, end, func() *cairnpb.Table { return &cairnpb.Table{} }, func(t *cairnpb.Table) {
		if t.Id == id {
			found = t
		}
	})
	return found, err
}

// DescNewer reports whether d supersedes h, an overlapping descriptor: a
// higher generation (a later split), or the same range at the same
// generation with a higher conf_version (a later replica change).
func DescNewer(d, h *cairnpb.RangeDescriptor) bool {
	if d.Generation != h.Generation {
		return d.Generation > h.Generation
	}
	return d.Id == h.Id && d.ConfVersion > h.ConfVersion
}

// MergeDescs applies the UpdateRanges rule to a table's sorted descriptors:
// each of descs replaces the recorded descriptors it overlaps if it is
// newer than all of them (DescNewer), and is ignored otherwise. Along
// one lineage of splits, a later descriptor of overlapping span always has
// a higher generation, so stale or repeated updates change nothing and the
// result never holds overlapping descriptors. It reports whether anything
// changed.
func MergeDescs(have []*cairnpb.RangeDescriptor, descs []*cairnpb.RangeDescriptor) ([]*cairnpb.RangeDescriptor, bool) {
	changed := false
	for _, d := range descs {
		stale := false
		for _, h := range have {
			if DescsOverlap(h, d) && !DescNewer(d, h) {
				stale = true
				break
			}
		}
		if stale {
			continue
		}
		kept := have[:0:0]
		for _, h := range have {
			if !DescsOverlap(h, d) && h.Id != d.Id {
				kept = append(kept, h)
			}
		}
		have = append(kept, cloneDesc(d))
		changed = true
	}
	slices.SortFunc(have, func(a, b *cairnpb.RangeDescriptor) int { return bytes.Compare(a.Start, b.Start) })
	return have, changed
}

// CatalogGap reports whether t has no entry for d's range and none that
// overlaps d's span: a range the catalog never recorded (router's
// maybeRecordGap).
func CatalogGap(t *cairnpb.Table, d *cairnpb.RangeDescriptor) bool {
	for _, h := range t.Ranges {
		if h.Id == d.Id || DescsOverlap(h, d) {
			return false
		}
	}
	return true
}

func (r *Replica) applyUpdateRanges(b *pebble.Batch, u *cairnpb.UpdateRanges, ts uint64) (Result, error) {
	t, err := findTable(b, u.TableId)
	if err != nil {
		return Result{}, err
	}
	if t == nil {
		return Result{}, nil // dropped meanwhile: nothing to record
	}
	for _, d := range u.Descs {
		if d.TableId != t.Id {
			return Result{Err: kv.Errorf(kv.ErrInvalidArgument, "descriptor of range %d is not of table %d", d.Id, t.Id)}, nil
		}
	}
	ranges, changed := MergeDescs(t.Ranges, u.Descs)
	if !changed {
		return Result{Table: t}, nil
	}
	t.Ranges = ranges
	v := r.nextVersion(ts)
	if err := putProto(b, MetaTableKey(t.Name), v, t); err != nil {
		return Result{}, err
	}
	return Result{Version: v, Table: t}, nil
}
