package router

import (
	"bytes"
	"context"
	"errors"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/keys/hashkey"
	"github.com/cairn-db/cairn/internal/kv"
	"github.com/cairn-db/cairn/internal/storage"
	"github.com/cairn-db/cairn/internal/watch"
)

// Watch implements kv.Watcher: it streams the changes of a key or prefix
// from this node's replicas (package watch) until ctx ends or an error.
func (rt *Router) Watch(ctx context.Context, req *cairnpb.WatchRequest, send func(*cairnpb.WatchResponse) error) error {
	if err := rt.opts.Limits.ValidateWatch(req); err != nil {
		return err
	}
	var start watch.Start
	if req.ResumeToken != "" {
		pos, err := watch.DecodePosition(req.ResumeToken)
		if err != nil {
			return kv.Errorf(kv.ErrInvalidArgument, "%v", err)
		}
		start.Position = &pos
	} else {
		start.AfterVersion = req.StartVersion
	}
	rctx, cancel := rt.withTimeout(ctx)
	t, err := rt.table(rctx, req.Table)
	cancel()
	if err != nil {
		return err
	}
	f := watch.Filter{Table: keys.TableID(t.Id), Key: req.Key, Prefix: req.Prefix}
	lo, hi := req.Key, keys.PrefixEnd(req.Key)
	switch {
	case IsHash(t) && req.Prefix:
		// Any range of a hash table may hold keys with the prefix.
		f.Hashed, lo, hi = true, nil, nil
	case IsHash(t):
		f.Key = hashkey.Encode(req.Key)
		lo, hi = f.Key, append(append([]byte(nil), f.Key...), 0)
	case !req.Prefix:
		hi = append(append([]byte(nil), req.Key...), 0)
	}
	local := rt.localRanges(t.Id, lo, hi)
	if !covers(local, lo, hi) {
		return kv.Errorf(kv.ErrUnavailable, "this node holds no replica of some of the watched keys of table %q; watch through a node that does", req.Table)
	}
	src := watch.Source{
		DB:  rt.store.DB(),
		Hub: rt.store.Hub(),
		SpanOf: func(k []byte) ([]byte, []byte, bool) {
			r := rt.store.LocalRangeFor(t.Id, k)
			if r == nil {
				return nil, nil, false
			}
			d := r.Desc()
			return d.Start, d.End, true
		},
		Now: func() []watch.RangeVersion {
			var out []watch.RangeVersion
			for _, r := range rt.store.Replicas() {
				if d := r.Desc(); d.TableId == t.Id && r.Initialized() && overlaps(d.Start, d.End, lo, hi) {
					out = append(out, watch.RangeVersion{Start: d.Start, End: d.End, Version: r.MaxSeq()})
				}
			}
			return out
		},
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		select {
		case <-rt.stopWatches:
			stop()
		case <-ctx.Done():
		}
	}()
	err = watch.Run(ctx, src, f, start, rt.opts.Watch, func(evs []watch.Event, after []watch.Position) error {
		resp := &cairnpb.WatchResponse{ResumeToken: after[len(after)-1].Encode(), Events: make([]*cairnpb.WatchEvent, len(evs))}
		for i := range evs {
			resp.Events[i] = eventPB(&evs[i])
			resp.Events[i].Key = userKey(t, resp.Events[i].Key)
			if req.EventTokens {
				resp.Events[i].ResumeToken = after[i].Encode()
			}
		}
		return send(resp)
	})
	switch {
	case errors.Is(err, watch.ErrCompacted):
		return kv.Errorf(kv.ErrCompacted, "%v", err)
	case errors.Is(err, watch.ErrOverflow):
		return kv.Errorf(kv.ErrResourceExhausted, "%v", err)
	case errors.Is(err, watch.ErrReset):
		return kv.Errorf(kv.ErrUnavailable, "%v", err)
	}
	return err
}

// StopWatches ends every watch stream (the node is shutting down); their
// clients resume elsewhere.
func (rt *Router) StopWatches() { rt.stopWatchesOnce.Do(func() { close(rt.stopWatches) }) }

func eventPB(e *watch.Event) *cairnpb.WatchEvent {
	out := &cairnpb.WatchEvent{Key: e.Key, Version: e.Version, PrevVersion: e.Prev}
	switch e.Kind {
	case storage.ChangePut:
		out.Type, out.Value, out.ExpireAtMs = cairnpb.WatchEvent_PUT, e.Value, e.ExpireAt
	case storage.ChangeDelete:
		out.Type = cairnpb.WatchEvent_DELETE
	case storage.ChangeExpire:
		out.Type = cairnpb.WatchEvent_EXPIRE
	}
	return out
}

// span is a key interval [start, end); an empty end is unbounded.
type span struct{ start, end []byte }

// localRanges returns the spans of the initialized local replicas of table
// that overlap [lo, hi) (hi nil: unbounded).
func (rt *Router) localRanges(table uint64, lo, hi []byte) []span {
	var out []span
	for _, r := range rt.store.Replicas() {
		if d := r.Desc(); d.TableId == table && r.Initialized() && overlaps(d.Start, d.End, lo, hi) {
			out = append(out, span{d.Start, d.End})
		}
	}
	return out
}

func overlaps(start, end, lo, hi []byte) bool {
	return (len(end) == 0 || bytes.Compare(lo, end) < 0) && (hi == nil || bytes.Compare(start, hi) < 0)
}

// covers reports whether the spans together cover [lo, hi).
func covers(spans []span, lo, hi []byte) bool {
	at := lo
	for {
		advanced := false
		for _, s := range spans {
			if bytes.Compare(s.start, at) <= 0 && (len(s.end) == 0 || bytes.Compare(at, s.end) < 0) {
				if len(s.end) == 0 {
					return true
				}
				at, advanced = s.end, true
				if hi != nil && bytes.Compare(at, hi) >= 0 {
					return true
				}
			}
		}
		if !advanced {
			return false
		}
	}
}
