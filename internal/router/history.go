package router

import (
	"context"
	"errors"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/keys/hashkey"
	"github.com/cairn-db/cairn/internal/kv"
	"github.com/cairn-db/cairn/internal/replica"
	"github.com/cairn-db/cairn/internal/watch"
)

// History implements kv.Historian: a key's retained changes, or the one in
// effect at a version, read like a Get (on any replica after a read
// barrier, so linearizable).
func (rt *Router) History(ctx context.Context, req *cairnpb.HistoryRequest) (*cairnpb.HistoryResponse, error) {
	if err := rt.opts.Limits.ValidateHistory(req); err != nil {
		return nil, err
	}
	ctx, cancel := rt.withTimeout(ctx)
	defer cancel()
	restore, err := rt.placed(ctx, req.Table, &req.Key)
	if err != nil {
		return nil, err
	}
	defer restore()
	var resp *cairnpb.Response
	err = rt.keyed(ctx, req.Table, req.Key, func(t *cairnpb.Table, d *cairnpb.RangeDescriptor) (err error) {
		resp, err = rt.read(ctx, keys.RangeID(d.Id), &cairnpb.Request{Op: &cairnpb.Request_History{History: req}},
			func(r *replica.Replica) (*cairnpb.Response, error) { return rt.localHistory(ctx, r, t, req) })
		return err
	})
	if err != nil {
		return nil, err
	}
	out := resp.GetHistory()
	if t := rt.store.Table(req.Table); t != nil && IsHash(t) {
		for _, c := range out.GetChanges() {
			c.Key = hashkey.Strip(c.Key)
		}
	}
	return out, nil
}

func (rt *Router) localHistory(ctx context.Context, r *replica.Replica, t *cairnpb.Table, req *cairnpb.HistoryRequest) (*cairnpb.Response, error) {
	if err := r.ReadBarrier(ctx); err != nil {
		return nil, err
	}
	if d := r.Desc(); d.TableId != t.Id || !r.Contains(req.Key) {
		return nil, kv.Errorf(kv.ErrRangeKeyMismatch, "range %d no longer holds the key", r.ID)
	}
	out := &cairnpb.HistoryResponse{}
	table := keys.TableID(t.Id)
	if req.AtVersion > 0 {
		e, err := watch.At(rt.store.DB(), table, req.Key, req.AtVersion)
		switch {
		case errors.Is(err, watch.ErrAbsentAt):
			return nil, kv.Errorf(kv.ErrNotFound, "%v", err)
		case errors.Is(err, watch.ErrCompacted):
			return nil, kv.Errorf(kv.ErrCompacted, "version %d of the key is no longer retained: %v", req.AtVersion, err)
		case err != nil:
			return nil, kv.Errorf(kv.ErrInternal, "history: %v", err)
		}
		out.Changes, out.Complete = []*cairnpb.WatchEvent{eventPB(&e)}, false
	} else {
		limit := int(req.Limit)
		if limit == 0 {
			limit = rt.opts.Limits.DefaultListLimit
		}
		evs, complete, err := watch.History(rt.store.DB(), table, req.Key, limit)
		if err != nil {
			return nil, kv.Errorf(kv.ErrInternal, "history: %v", err)
		}
		for i := range evs {
			out.Changes = append(out.Changes, eventPB(&evs[i]))
		}
		out.Complete = complete
	}
	return &cairnpb.Response{Op: &cairnpb.Response_History{History: out}}, nil
}
