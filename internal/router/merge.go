package router

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/keys/hashkey"
	"github.com/cairn-db/cairn/internal/kv"
	"github.com/cairn-db/cairn/internal/replica"
)

// Merges (docs/design/merges.md; the commands are in replica/merge.go).
//
// The leader of the left range L drives a merge with its right neighbour
// R (localMerge): freeze R through R's leader, wait until every replica
// of R has applied the freeze durably (MergeWait to each node), propose
// the Merge to L, record L' in the meta range. A request that meets the
// frozen R gets a range key mismatch and keyed retries it until L' covers
// the key, so a merge costs clients at most an internal retry.
//
// If a step after the freeze fails, the driver aborts (abortMerge): a
// MergeAbort to L, which makes the merge impossible or reports that it
// happened, then an unfreeze of R. If the driver dies, R's leader does the
// same once R has been frozen for SplitterOptions.MergeTimeout.

var _ kv.Merger = (*Router)(nil)

// MergeRange implements kv.Merger: merge the range of table holding key
// with the range to its right.
func (rt *Router) MergeRange(ctx context.Context, req *cairnpb.MergeRangeRequest) (*cairnpb.MergeRangeResponse, error) {
	if err := kv.ValidateTableName(req.Table); err != nil {
		return nil, err
	}
	if len(req.Key) > rt.opts.Limits.MaxKeyBytes {
		return nil, kv.Errorf(kv.ErrInvalidArgument, "key must be at most %d bytes", rt.opts.Limits.MaxKeyBytes)
	}
	ctx, cancel := rt.withTimeout(ctx)
	defer cancel()
	key := req.Key
	if t, err := rt.table(ctx, req.Table); err != nil {
		return nil, err
	} else if IsHash(t) && len(key) > 0 {
		// A hash table names a position of the hash space (as for splits).
		if key, err = hashkey.ParseSplitKey(string(req.Key)); err != nil {
			return nil, kv.Errorf(kv.ErrInvalidArgument, "%v", err)
		}
	}
	fwd := &cairnpb.MergeRangeRequest{Table: req.Table, Key: key}
	var resp *cairnpb.Response
	err := rt.keyed(ctx, req.Table, key, func(t *cairnpb.Table, d *cairnpb.RangeDescriptor) (err error) {
		resp, err = rt.route(ctx, keys.RangeID(d.Id), &cairnpb.Request{Op: &cairnpb.Request_MergeRange{MergeRange: fwd}}, true,
			func(r *replica.Replica) (*cairnpb.Response, error) { return rt.localMerge(ctx, r, t) })
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp.GetMergeRange(), nil
}

// rangeStart keys a table's local replicas by start key.
type rangeStart struct {
	table uint64
	start string
}

// neighbours is the splitter's per-pass index of right neighbours: the
// local replicas by table and start key, built on the pass's first
// lookup (a lookup per range through store.LocalRangeFor, which walks
// every replica, made a pass quadratic; and a pass whose ranges are all
// kept from merging, such as an idle hash table's initial ranges, builds
// nothing).
type neighbours struct {
	replicas []*replica.Replica
	byStart  map[rangeStart]*replica.Replica
}

// rightOf returns the local replica whose range starts at end of table,
// or nil.
func (n *neighbours) rightOf(table uint64, end []byte) *replica.Replica {
	if n.byStart == nil {
		n.byStart = make(map[rangeStart]*replica.Replica, len(n.replicas))
		for _, r := range n.replicas {
			if d := r.Desc(); r.Initialized() && len(d.Start) > 0 {
				n.byStart[rangeStart{d.TableId, string(d.Start)}] = r
			}
		}
	}
	r := n.byStart[rangeStart{table, string(end)}]
	if r == nil || string(r.Desc().Start) != string(end) {
		return nil // split or merged since the pass began
	}
	return r
}

// rightOf returns the local replica of the range that starts where l's
// range ends, or nil.
func (rt *Router) rightOf(l *cairnpb.RangeDescriptor) *replica.Replica {
	if len(l.End) == 0 {
		return nil
	}
	r := rt.store.LocalRangeFor(l.TableId, l.End)
	if r == nil || string(r.Desc().Start) != string(l.End) {
		return nil
	}
	return r
}

// localMerge merges l (which this node leads) with its right neighbour.
func (rt *Router) localMerge(ctx context.Context, l *replica.Replica, t *cairnpb.Table) (*cairnpb.Response, error) {
	d := l.Desc()
	if d.TableId != t.Id || !l.Initialized() {
		return nil, kv.Errorf(kv.ErrRangeKeyMismatch, "range %d no longer holds the key", l.ID)
	}
	if l.Frozen() {
		return nil, kv.Errorf(kv.ErrConditionFailed, "range %d is itself frozen for a merge", l.ID)
	}
	if len(d.End) == 0 {
		return nil, kv.Errorf(kv.ErrInvalidArgument, "range %d is the last range of table %q: nothing to merge it with", l.ID, t.Name)
	}
	r := rt.rightOf(d)
	if r == nil {
		return nil, kv.Errorf(kv.ErrConditionFailed, "range %d: this node has no replica of the range to its right (replicas differ, or it is frozen)", l.ID)
	}
	rd := r.Desc()
	if !replica.SameReplicas(d, rd) {
		return nil, kv.Errorf(kv.ErrConditionFailed, "range %d and range %d have different replicas", l.ID, rd.Id)
	}
	st, err := rt.mergeStep(ctx, keys.RangeID(rd.Id), &cairnpb.MergeStep{Op: &cairnpb.MergeStep_Freeze{Freeze: &cairnpb.MergeFreeze{
		LeftId: d.Id, LeftGeneration: d.Generation, ExpectedGeneration: rd.Generation,
	}}})
	if err != nil {
		if !errors.Is(err, kv.ErrConditionFailed) && !errors.Is(err, kv.ErrInvalidArgument) {
			rt.abortMerge(d, rd) // the freeze may have applied
		}
		return nil, err
	}
	fail := func(err error) (*cairnpb.Response, error) {
		rt.abortMerge(d, rd)
		return nil, err
	}
	if err := rt.waitApplied(ctx, st.Desc, st.AppliedIndex); err != nil {
		return fail(err)
	}
	res, err := rt.propose(ctx, l, &cairnpb.Command{TableId: t.Id, Op: &cairnpb.Command_Merge{Merge: &cairnpb.Merge{
		ExpectedGeneration: d.Generation, RightState: st,
	}}})
	if err != nil {
		return fail(err)
	}
	if err := rt.updateMeta(ctx, t.Id, res.Desc); err != nil {
		// The merge stands; the leaders' splitter loop records it later.
		rt.logf("merge: meta update failed; will retry", "range", d.Id, "err", err)
	}
	return &cairnpb.Response{Op: &cairnpb.Response_MergeRange{MergeRange: &cairnpb.MergeRangeResponse{Merged: res.Desc}}}, nil
}

// mergeStep has the leader of range id propose step. For a freeze it
// returns the frozen range's state with applied_index set to the freeze's
// index.
func (rt *Router) mergeStep(ctx context.Context, id keys.RangeID, step *cairnpb.MergeStep) (*cairnpb.RangeState, error) {
	step.RangeId = uint64(id)
	resp, err := rt.route(ctx, id, &cairnpb.Request{Op: &cairnpb.Request_MergeStep{MergeStep: step}}, true,
		func(r *replica.Replica) (*cairnpb.Response, error) { return rt.localMergeStep(ctx, r, step) })
	if err != nil {
		return nil, err
	}
	return resp.GetRangeState(), nil
}

func (rt *Router) localMergeStep(ctx context.Context, r *replica.Replica, step *cairnpb.MergeStep) (*cairnpb.Response, error) {
	cmd := &cairnpb.Command{TableId: r.Desc().TableId}
	switch op := step.Op.(type) {
	case *cairnpb.MergeStep_Freeze:
		cmd.Op = &cairnpb.Command_MergeFreeze{MergeFreeze: op.Freeze}
	case *cairnpb.MergeStep_Unfreeze:
		cmd.Op = &cairnpb.Command_MergeUnfreeze{MergeUnfreeze: op.Unfreeze}
	case *cairnpb.MergeStep_Abort:
		cmd.Op = &cairnpb.Command_MergeAbort{MergeAbort: op.Abort}
	default:
		return nil, kv.Errorf(kv.ErrInvalidArgument, "empty merge step")
	}
	res, err := rt.propose(ctx, r, cmd)
	if err != nil {
		return nil, err
	}
	resp := &cairnpb.Response{}
	if res.State != nil {
		res.State.AppliedIndex = res.Index
		resp.Op = &cairnpb.Response_RangeState{RangeState: res.State}
	}
	return resp, nil
}

// waitApplied waits until every replica (voter and learner) of d has
// applied index and made it durable.
func (rt *Router) waitApplied(ctx context.Context, d *cairnpb.RangeDescriptor, index uint64) error {
	nodes := append(append([]uint64(nil), d.Replicas...), d.Learners...)
	for _, n := range nodes {
		err := retry(ctx, func() error {
			if n == rt.store.NodeID() {
				return rt.localMergeWait(ctx, keys.RangeID(d.Id), index)
			}
			c := rt.transport.Client(n)
			if c == nil {
				return kv.Errorf(kv.ErrUnavailable, "node %d is unreachable", n)
			}
			out, err := c.Forward(ctx, &cairnpb.Request{Op: &cairnpb.Request_MergeWait{MergeWait: &cairnpb.MergeWait{RangeId: d.Id, Index: index}}})
			if err != nil {
				return kv.Errorf(kv.ErrUnavailable, "merge wait on node %d: %v", n, err)
			}
			if out.Error != nil {
				return kv.FromCode(out.Error.Code, out.Error.Message)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// localMergeWait waits (a while) until the local replica of id has
// applied index, then syncs Pebble's WAL so that the apply survives a
// crash: a merged range must never read a node's copy of data the right
// range had not applied.
func (rt *Router) localMergeWait(ctx context.Context, id keys.RangeID, index uint64) error {
	deadline := time.Now().Add(time.Second)
	for {
		r := rt.store.Replica(id)
		if r == nil {
			return kv.Errorf(kv.ErrUnavailable, "range %d is not on node %d", id, rt.store.NodeID())
		}
		if r.VisibleIndex() >= index {
			break
		}
		if time.Now().After(deadline) {
			return kv.Errorf(kv.ErrUnavailable, "range %d on node %d has not applied index %d yet", id, rt.store.NodeID(), index)
		}
		select {
		case <-ctx.Done():
			return kv.Errorf(kv.ErrTimeout, "range %d on node %d: %v", id, rt.store.NodeID(), ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
	if err := rt.store.DB().LogData(nil, pebble.Sync); err != nil {
		return kv.Errorf(kv.ErrInternal, "sync: %v", err)
	}
	return nil
}

// abortMerge undoes the freeze of right for a merge into left (both as
// the driver read them): MergeAbort to left, then, unless the merge
// happened, MergeUnfreeze to right. Best effort: what it cannot do, the
// right range's leader retries after MergeTimeout.
func (rt *Router) abortMerge(left, right *cairnpb.RangeDescriptor) {
	ctx, cancel := context.WithTimeout(context.Background(), rt.opts.RequestTimeout)
	defer cancel()
	// A few tries: the driver's view of the neighbourhood may be what
	// made the merge fail (a split it had not applied yet).
	var err error
	for try := 0; try < 4 && ctx.Err() == nil; try++ {
		err = rt.undoFreeze(ctx, &cairnpb.Frozen{LeftId: left.Id, LeftGeneration: left.Generation}, right)
		if err == nil || errors.Is(err, kv.ErrConditionFailed) {
			return
		}
		sleep(ctx, time.Duration(100<<try)*time.Millisecond)
	}
	rt.logf("merge: abort failed; the right range's leader retries", "left", left.Id, "right", right.Id, "err", err)
}

// undoFreeze makes the merge fr names impossible and unfreezes right, or
// reports (condition failed) that the merge happened. The abort goes to
// right's current left neighbour (replica.applyMergeAbort).
func (rt *Router) undoFreeze(ctx context.Context, fr *cairnpb.Frozen, right *cairnpb.RangeDescriptor) error {
	cands := rt.leftNeighbours(right)
	if len(cands) == 0 {
		return kv.Errorf(kv.ErrUnavailable, "range %d: no range ending at %q known here", right.Id, right.Start)
	}
	var err error
	for _, left := range cands {
		// A candidate that no longer ends at right's start (a local
		// replica behind a split) refuses; the next may be current.
		_, err = rt.mergeStep(ctx, left, &cairnpb.MergeStep{Op: &cairnpb.MergeStep_Abort{Abort: &cairnpb.MergeAbort{
			LeftId: fr.LeftId, LeftGeneration: fr.LeftGeneration, RightStart: right.Start,
		}}})
		if err == nil || !errors.Is(err, kv.ErrRangeKeyMismatch) {
			break
		}
	}
	if err != nil {
		return err
	}
	_, err = rt.mergeStep(ctx, keys.RangeID(right.Id), &cairnpb.MergeStep{Op: &cairnpb.MergeStep_Unfreeze{Unfreeze: &cairnpb.MergeUnfreeze{
		LeftId: fr.LeftId, LeftGeneration: fr.LeftGeneration,
	}}})
	return err
}

// leftNeighbours returns the ranges that may end where d starts: the
// local replica's view first (it usually knows of splits and merges
// first), then the catalog's, if it differs (a local replica can lag
// behind a split); none if neither knows one.
func (rt *Router) leftNeighbours(d *cairnpb.RangeDescriptor) []keys.RangeID {
	var out []keys.RangeID
	for _, r := range rt.store.Replicas() {
		if ld := r.Desc(); r.Initialized() && !r.Frozen() && ld.TableId == d.TableId && string(ld.End) == string(d.Start) && len(ld.End) > 0 {
			out = append(out, r.ID)
			break
		}
	}
	if t := rt.store.TableByID(d.TableId); t != nil {
		for _, h := range t.Ranges {
			if string(h.End) == string(d.Start) && len(h.End) > 0 && !slices.Contains(out, keys.RangeID(h.Id)) {
				out = append(out, keys.RangeID(h.Id))
			}
		}
	}
	return out
}

// maybeUnfreeze is the splitter's check of a range this node leads: a
// range frozen for longer than timeout (its merge driver died or gave up)
// is unfrozen unless its merge happened. frozenSince is the splitter's
// record of when it first saw each range frozen.
func (rt *Router) maybeUnfreeze(ctx context.Context, r *replica.Replica, timeout time.Duration, frozenSince map[keys.RangeID]time.Time, now time.Time) {
	fr := r.FrozenFor()
	if fr == nil {
		delete(frozenSince, r.ID)
		return
	}
	since, ok := frozenSince[r.ID]
	if !ok {
		frozenSince[r.ID] = now
		return
	}
	if now.Sub(since) < timeout {
		return
	}
	cctx, cancel := rt.withTimeout(ctx)
	defer cancel()
	if err := rt.undoFreeze(cctx, fr, r.Desc()); err != nil && !errors.Is(err, kv.ErrConditionFailed) {
		rt.logf("merge: unfreezing a range frozen too long failed", "range", uint64(r.ID), "err", err)
		return
	}
	delete(frozenSince, r.ID)
}

// mergeWatch is the splitter's record of a range and its right neighbour
// as merge candidates: their descriptors' generations, since when both
// have been small, cold and unchanged, and the counters of the last pass.
type mergeWatch struct {
	leftGen, rightGen uint64
	rightID           uint64
	since             time.Time
	lastAt            time.Time
	lastCount         uint64
}

// maybeMerge is the splitter's merge check of l, a range this node leads:
// it merges l with its right neighbour once both have stayed small and
// cold, with the same replicas and unchanged descriptors, for
// opts.MergeDelay. The delay also keeps a range that just split (its
// descriptor changed) from merging back at once. A hash table's initial
// bounds are never merged across (hashkey.KeepsBound).
func (rt *Router) maybeMerge(ctx context.Context, l *replica.Replica, nb *neighbours,
	opts SplitterOptions, watches map[keys.RangeID]*mergeWatch, now time.Time) {
	if opts.MergeSizeBytes == 0 {
		return
	}
	d := l.Desc()
	var t *cairnpb.Table
	if len(d.End) > 0 && !l.Frozen() && l.ApproxBytes() < opts.MergeSizeBytes {
		t = rt.store.TableByID(d.TableId)
	}
	var r *replica.Replica
	if t != nil && !hashkey.KeepsBound(t, d.End) {
		r = nb.rightOf(d.TableId, d.End)
	}
	if r == nil || !replica.SameReplicas(d, r.Desc()) || l.ApproxBytes()+r.ApproxBytes() >= opts.MergeSizeBytes {
		delete(watches, l.ID)
		return
	}
	rd := r.Desc()
	count := rt.requestCount(l) + rt.requestCount(r)
	w := watches[l.ID]
	if w == nil || w.leftGen != d.Generation || w.rightID != rd.Id || w.rightGen != rd.Generation {
		watches[l.ID] = &mergeWatch{leftGen: d.Generation, rightID: rd.Id, rightGen: rd.Generation, since: now, lastAt: now, lastCount: count}
		return
	}
	if elapsed := now.Sub(w.lastAt).Seconds(); elapsed > 0 {
		rate := float64(count-w.lastCount) / elapsed
		w.lastAt, w.lastCount = now, count
		if rate >= float64(opts.MergeQPS) {
			w.since = now // hot: start over
			return
		}
	}
	if now.Sub(w.since) < opts.MergeDelay {
		return
	}
	delete(watches, l.ID)
	cctx, cancel := rt.withTimeout(ctx)
	defer cancel()
	if _, err := rt.localMerge(cctx, l, t); err != nil {
		rt.logf("splitter: merge failed", "range", d.Id, "right", rd.Id, "err", err)
		return
	}
	rt.logf("splitter: merged", "range", d.Id, "right", rd.Id)
}

// requestCount is a measure of the requests r has served here: its
// applied index (every write, on every replica) plus the requests this
// node counted for it (reads and writes served here, when load-based
// splits are on).
func (rt *Router) requestCount(r *replica.Replica) uint64 {
	_, _, applied := r.Status()
	n := applied
	if v, ok := rt.load.Load(r.ID); ok {
		n += v.(*rangeLoad).n.Load()
	}
	return n
}
