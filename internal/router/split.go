package router

import (
	"bytes"
	"context"
	"errors"
	"time"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/keys/hashkey"
	"github.com/cairn-db/cairn/internal/kv"
	"github.com/cairn-db/cairn/internal/replica"
)

// Routing by key, and splits (docs/design/splits.md).
//
// The stale-routing rule: a request is routed by the catalog (the meta
// range's table records, as applied here) to one range. The replica that
// executes it checks, at apply (writes) or after the read barrier (reads),
// that its range still holds the key; if not it answers
// kv.ErrRangeKeyMismatch, having done nothing. keyed then resolves the key
// again, first from the local replicas' own descriptors (a node learns of
// a split when it applies it, before the meta range records it), and
// retries. A split therefore costs a client at most an internal retry.

var _ kv.Splitter = (*Router)(nil)

// keyed runs f with the range of table that holds key, re-resolving and
// retrying while f fails with kv.ErrRangeKeyMismatch.
func (rt *Router) keyed(ctx context.Context, table string, key []byte,
	f func(t *cairnpb.Table, d *cairnpb.RangeDescriptor) error) error {
	backoff := time.Millisecond
	for attempt := 0; ; attempt++ {
		t, d, err := rt.locate(ctx, table, key, attempt > 0)
		if err == nil {
			err = f(t, d)
		}
		if err == nil || !errors.Is(err, kv.ErrRangeKeyMismatch) {
			return err
		}
		if attempt == 0 {
			continue // retry at once with the local descriptors
		}
		select {
		case <-ctx.Done():
			return kv.Errorf(kv.ErrUnavailable, "no range found for the key in time: %v", err)
		case <-time.After(backoff):
		}
		if backoff *= 2; backoff > 100*time.Millisecond {
			backoff = 100 * time.Millisecond
		}
	}
}

// locate resolves table and the range holding key: from the catalog, or
// after a mismatch (fresh) from the local replicas first.
func (rt *Router) locate(ctx context.Context, table string, key []byte, fresh bool) (*cairnpb.Table, *cairnpb.RangeDescriptor, error) {
	t, err := rt.table(ctx, table)
	if err != nil {
		return nil, nil, err
	}
	if fresh {
		if r := rt.store.LocalRangeFor(t.Id, key); r != nil {
			return t, r.Desc(), nil
		}
	}
	if d := rangeFor(t, key); d != nil {
		return t, d, nil
	}
	return nil, nil, kv.Errorf(kv.ErrRangeKeyMismatch, "table %q: no range recorded for the key yet", table)
}

// SplitRange implements kv.Service: split the range of table holding key
// at key.
func (rt *Router) SplitRange(ctx context.Context, req *cairnpb.SplitRangeRequest) (*cairnpb.SplitRangeResponse, error) {
	if err := kv.ValidateTableName(req.Table); err != nil {
		return nil, err
	}
	if len(req.Key) == 0 || len(req.Key) > rt.opts.Limits.MaxKeyBytes {
		return nil, kv.Errorf(kv.ErrInvalidArgument, "split key must be 1 to %d bytes", rt.opts.Limits.MaxKeyBytes)
	}
	ctx, cancel := rt.withTimeout(ctx)
	defer cancel()
	if t, err := rt.table(ctx, req.Table); err != nil {
		return nil, err
	} else if IsHash(t) {
		// A hash table splits at a position of the hash space, written
		// 0x and 16 hex digits (docs/design/hashing.md).
		k, err := hashkey.ParseSplitKey(string(req.Key))
		if err != nil {
			return nil, kv.Errorf(kv.ErrInvalidArgument, "%v", err)
		}
		orig := req.Key
		req.Key = k
		defer func() { req.Key = orig }()
	}
	var resp *cairnpb.Response
	err := rt.keyed(ctx, req.Table, req.Key, func(t *cairnpb.Table, d *cairnpb.RangeDescriptor) (err error) {
		resp, err = rt.route(ctx, keys.RangeID(d.Id), &cairnpb.Request{Op: &cairnpb.Request_SplitRange{SplitRange: req}}, true,
			func(r *replica.Replica) (*cairnpb.Response, error) { return rt.localSplit(ctx, r, t, req.Key) })
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp.GetSplitRange(), nil
}

// localSplit splits r (which this node leads) at key: allocate the new
// range's ID on the meta range, propose the split to r's own group, then
// record both descriptors in the meta range. A crash after the allocation
// wastes an ID; a crash after the split leaves the meta update to
// RunSplitter, which every leader runs (maybeUpdateMeta).
func (rt *Router) localSplit(ctx context.Context, r *replica.Replica, t *cairnpb.Table, key []byte) (*cairnpb.Response, error) {
	d := r.Desc()
	if d.TableId != t.Id || !r.Contains(key) {
		return nil, kv.Errorf(kv.ErrRangeKeyMismatch, "range %d no longer holds the key", r.ID)
	}
	if bytes.Equal(key, d.Start) {
		return nil, kv.Errorf(kv.ErrInvalidArgument, "key %q is already the start of range %d", key, d.Id)
	}
	id, err := rt.allocRangeID(ctx)
	if err != nil {
		return nil, err
	}
	res, err := rt.propose(ctx, r, &cairnpb.Command{TableId: t.Id, Op: &cairnpb.Command_Split{Split: &cairnpb.Split{
		SplitKey: key, NewRangeId: id, ExpectedGeneration: d.Generation,
	}}})
	if errors.Is(err, kv.ErrConditionFailed) {
		// The range split or changed since we read its descriptor.
		return nil, kv.Errorf(kv.ErrRangeKeyMismatch, "range %d changed during the split: %v", r.ID, err)
	}
	if err != nil {
		return nil, err
	}
	if err := rt.updateMeta(ctx, t.Id, res.Split.Left, res.Split.Right); err != nil {
		// The split stands; the leaders' splitter loop records it later.
		rt.logf("split: meta update failed; will retry", "range", uint64(r.ID), "err", err)
	}
	return &cairnpb.Response{Op: &cairnpb.Response_SplitRange{SplitRange: res.Split}}, nil
}

func (rt *Router) allocRangeID(ctx context.Context) (uint64, error) {
	req := &cairnpb.Request{Op: &cairnpb.Request_AllocRangeId{AllocRangeId: &cairnpb.AllocRangeID{}}}
	resp, err := rt.route(ctx, replica.MetaRangeID, req, true,
		func(r *replica.Replica) (*cairnpb.Response, error) { return rt.localAllocRangeID(ctx, r) })
	if err != nil {
		return 0, err
	}
	return resp.RangeId, nil
}

func (rt *Router) localAllocRangeID(ctx context.Context, r *replica.Replica) (*cairnpb.Response, error) {
	res, err := rt.propose(ctx, r, &cairnpb.Command{Op: &cairnpb.Command_AllocRangeId{AllocRangeId: &cairnpb.AllocRangeID{}}})
	if err != nil {
		return nil, err
	}
	return &cairnpb.Response{RangeId: res.RangeID}, nil
}

// updateMeta records descriptors in the meta range (idempotent).
func (rt *Router) updateMeta(ctx context.Context, tableID uint64, descs ...*cairnpb.RangeDescriptor) error {
	u := &cairnpb.UpdateRanges{TableId: tableID, Descs: descs}
	_, err := rt.route(ctx, replica.MetaRangeID, &cairnpb.Request{Op: &cairnpb.Request_UpdateRanges{UpdateRanges: u}}, true,
		func(r *replica.Replica) (*cairnpb.Response, error) { return rt.localUpdateRanges(ctx, r, u) })
	return err
}

func (rt *Router) localUpdateRanges(ctx context.Context, r *replica.Replica, u *cairnpb.UpdateRanges) (*cairnpb.Response, error) {
	if _, err := rt.propose(ctx, r, &cairnpb.Command{Op: &cairnpb.Command_UpdateRanges{UpdateRanges: u}}); err != nil {
		return nil, err
	}
	return &cairnpb.Response{}, nil
}

// SplitterOptions configures RunSplitter.
type SplitterOptions struct {
	// Interval between passes over the local leaders.
	Interval time.Duration
	// SplitSizeBytes: a range whose data exceeds it splits at its middle
	// key. 0 disables size-based splits.
	SplitSizeBytes uint64
	// Merges (merge.go): a range and its right neighbour, with the same
	// replicas, merge when their data together stays under MergeSizeBytes
	// (and under half of SplitSizeBytes, if set) and they serve fewer than
	// MergeQPS requests a second together, both descriptors unchanged for
	// MergeDelay. MergeSizeBytes 0 disables automatic merges.
	MergeSizeBytes uint64
	MergeQPS       int
	MergeDelay     time.Duration
	// MergeTimeout: a range frozen for a merge this long (its driver died)
	// is unfrozen, unless the merge happened. Default 10 s.
	MergeTimeout time.Duration
}

// RunSplitter runs until ctx ends. Every pass, for each data range this
// node leads: if the catalog lacks the range's current descriptor (a
// split or merge whose meta update a crash or a failure cut off), record
// it; if it has been frozen for a merge too long, undo the freeze
// (merge.go); if the range is over the split size, split it at its middle
// key; if it has been hot for a while (Options.SplitQPS), split it at its
// median request key (load.go); if it and its right neighbour have been
// small and cold for a while, merge them (merge.go).
func (rt *Router) RunSplitter(ctx context.Context, opts SplitterOptions) {
	tick := time.NewTicker(opts.Interval)
	defer tick.Stop()
	if opts.MergeTimeout == 0 {
		opts.MergeTimeout = 10 * time.Second
	}
	if half := opts.SplitSizeBytes / 2; half > 0 && opts.MergeSizeBytes > half {
		opts.MergeSizeBytes = half // a merged range must not split again at once
	}
	frozenSince := map[keys.RangeID]time.Time{}
	merges := map[keys.RangeID]*mergeWatch{}
	// A quiesced range (replica/quiesce.go) has had no write, read or
	// descriptor change since it went quiet: it cannot have grown, got hot
	// or lost its catalog entry, and its merge watch only waits out
	// MergeDelay. So the pass checks it only every idleEvery passes
	// (spread over them by range ID), which at 10,000 idle ranges is most
	// of the splitter's cost; a range frozen for a merge is checked every
	// pass. idleEvery stays well under MergeDelay.
	idleEvery := uint64(10)
	if opts.MergeSizeBytes > 0 && opts.Interval > 0 {
		idleEvery = min(idleEvery, max(1, uint64(opts.MergeDelay/opts.Interval/4)))
	}
	var pass uint64
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		replicas := rt.store.ReplicasUnordered()
		nb := &neighbours{replicas: replicas} // the merge checks' right neighbours
		for _, r := range replicas {
			if ctx.Err() != nil {
				return
			}
			if r.ID == replica.MetaRangeID || !r.Initialized() {
				continue
			}
			if (pass+uint64(r.ID))%idleEvery != 0 && r.IsQuiesced() && !r.Frozen() {
				continue
			}
			if !r.IsLeader() {
				rt.maybeRecordGap(ctx, r)
				continue
			}
			rt.maybeUpdateMeta(ctx, r)
			rt.maybeUnfreeze(ctx, r, opts.MergeTimeout, frozenSince, time.Now())
			rt.maybeSplitBySize(ctx, r, opts.SplitSizeBytes)
			rt.maybeSplitByLoad(ctx, r, time.Now())
			rt.maybeMerge(ctx, r, nb, opts, merges, time.Now())
		}
		pass++
		rt.forgetLoad()
		for id := range merges {
			if r := rt.store.Replica(id); r == nil || !r.IsLeader() {
				delete(merges, id)
			}
		}
	}
}

// CatalogHas reports whether t records d at d's generation or later.
func CatalogHas(t *cairnpb.Table, d *cairnpb.RangeDescriptor) bool {
	for _, h := range t.Ranges {
		if h.Id == d.Id && !replica.DescNewer(d, h) {
			return true
		}
	}
	return false
}

func (rt *Router) maybeUpdateMeta(ctx context.Context, r *replica.Replica) {
	d := r.Desc()
	// The store's index of the catalog answers CatalogHas without a walk
	// over the table's ranges (a pass over a node of 10,000 ranges would
	// otherwise compare 10,000 x ranges-per-table descriptors).
	if c := rt.store.CatalogRange(keys.RangeID(d.Id)); c != nil && !replica.DescNewer(d, c) {
		return
	}
	t := rt.store.TableByID(d.TableId)
	if t == nil || CatalogHas(t, d) {
		return
	}
	cctx, cancel := rt.withTimeout(ctx)
	defer cancel()
	if err := rt.updateMeta(cctx, d.TableId, d); err != nil {
		rt.logf("splitter: meta update failed", "range", d.Id, "err", err)
	}
}

// maybeRecordGap records the descriptor of r, a replica of a range
// without a known leader, when the catalog has no entry for the range and
// none of its table's entries overlaps the range's span. That is a split
// whose record was lost (the meta range was unavailable): normally the
// new range's leader records it (maybeUpdateMeta), but a node that
// skipped the split (a snapshot of the left range past it) has no replica
// of the new range, and reconcile creates one only from the catalog; when
// the new range needs that node's vote, neither ever happens
// (RELIABILITY.md #26, simulation seed 6861). The record may be older than
// the range's current descriptor; the leader, once elected, records the
// current one, and the meta range keeps the newer of overlapping
// descriptors (replica.MergeDescs), so a merged-away range is never
// brought back.
func (rt *Router) maybeRecordGap(ctx context.Context, r *replica.Replica) {
	d := r.Desc()
	if r.Leader() != 0 || rt.store.CatalogRange(keys.RangeID(d.Id)) != nil {
		return
	}
	t := rt.store.TableByID(d.TableId)
	if t == nil || !replica.CatalogGap(t, d) {
		return
	}
	cctx, cancel := rt.withTimeout(ctx)
	defer cancel()
	if err := rt.updateMeta(cctx, d.TableId, d); err != nil {
		rt.logf("splitter: recording a range missing from the catalog failed", "range", d.Id, "err", err)
		return
	}
	rt.logf("splitter: recorded a range missing from the catalog", "range", d.Id)
}

func (rt *Router) maybeSplitBySize(ctx context.Context, r *replica.Replica, limit uint64) {
	if limit == 0 || r.ApproxBytes() <= limit {
		return
	}
	d := r.Desc()
	t := rt.store.TableByID(d.TableId)
	if t == nil {
		return
	}
	var key []byte
	if IsHash(t) {
		key = hashSplitKey(d)
	}
	if key == nil {
		var err error
		if key, err = replica.MiddleKey(rt.store.DB(), d); err != nil || key == nil {
			return
		}
	}
	cctx, cancel := rt.withTimeout(ctx)
	defer cancel()
	if _, err := rt.localSplit(cctx, r, t, key); err != nil {
		rt.logf("splitter: split failed", "range", d.Id, "err", err)
	}
}

func (rt *Router) logf(msg string, args ...any) {
	if rt.opts.Logger != nil {
		rt.opts.Logger.Info(msg, args...)
	}
}
