package router

import (
	"bytes"
	"context"
	"errors"
	"io"
	"maps"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/keys/hashkey"
	"github.com/cairn-db/cairn/internal/kv"
	"github.com/cairn-db/cairn/internal/replica"
	"github.com/cairn-db/cairn/internal/storage"
	"github.com/cairn-db/cairn/internal/watch"
)

// Watch implements kv.Watcher: it streams the changes of a key or prefix
// from this node's replicas (package watch) until ctx ends or an error.
// When this node holds no replica of some of the watched keys (replicas
// are placed on some nodes only), the watch runs on a node that holds
// them all and its stream is relayed (WatchLocal there).
func (rt *Router) Watch(ctx context.Context, req *cairnpb.WatchRequest, send func(*cairnpb.WatchResponse) error) error {
	if req.Part != nil {
		return kv.Errorf(kv.ErrInvalidArgument, "a watch part is a request between nodes")
	}
	return rt.watch(ctx, req, send, true)
}

// WatchLocal is Watch from this node's replicas only: it never forwards
// (the Peer API's Watch, so a relayed watch cannot loop).
func (rt *Router) WatchLocal(ctx context.Context, req *cairnpb.WatchRequest, send func(*cairnpb.WatchResponse) error) error {
	return rt.watch(ctx, req, send, false)
}

func (rt *Router) watch(ctx context.Context, req *cairnpb.WatchRequest, send func(*cairnpb.WatchResponse) error, forward bool) error {
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
	if p := req.Part; p != nil {
		// One part of a merged watch: the watched keys within the part.
		if !req.Prefix {
			return kv.Errorf(kv.ErrInvalidArgument, "a watch part narrows a prefix watch")
		}
		f.Bounded, f.Lo, f.Hi = true, p.Start, p.End
		if bytes.Compare(p.Start, lo) > 0 {
			lo = p.Start
		}
		if len(p.End) > 0 && (hi == nil || bytes.Compare(p.End, hi) < 0) {
			hi = p.End
		}
		if hi != nil && bytes.Compare(lo, hi) >= 0 {
			return kv.Errorf(kv.ErrInvalidArgument, "the watch part [%q, %q) holds none of the watched keys", p.Start, p.End)
		}
	}
	local := rt.localRanges(t.Id, lo, hi)
	if !covers(local, lo, hi) {
		if forward {
			return rt.relayWatch(ctx, t, lo, hi, req, send)
		}
		return kv.Errorf(kv.ErrUnavailable, "node %d holds no replica of some of the watched keys of table %q", rt.store.NodeID(), req.Table)
	}
	if err := rt.watchBarrier(ctx, local); err != nil {
		return err
	}
	if !covers(rt.localRanges(t.Id, lo, hi), lo, hi) {
		// A replica moved away while the barrier waited: the client
		// resumes elsewhere (a relay from here would start over).
		return kv.Errorf(kv.ErrUnavailable, "watch: node %d no longer holds some of the watched keys of table %q", rt.store.NodeID(), req.Table)
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
	start.Announce = req.Part != nil
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
	case errors.Is(err, watch.ErrReset), errors.Is(err, watch.ErrMoved):
		return kv.Errorf(kv.ErrUnavailable, "%v", err)
	}
	return err
}

// relayWatch runs the watch on another node that holds a replica (voter
// or learner) of every range of t overlapping [lo, hi) and relays its
// stream; when no node holds them all, it merges several nodes' streams
// (mergedWatch). Candidates come from the catalog; one that turns out not to
// hold them (the catalog here lags) is skipped until one works. Once the
// stream has delivered, its end is the watch's end: the client resumes
// with its last resume token, as after any watch error.
func (rt *Router) relayWatch(ctx context.Context, t *cairnpb.Table, lo, hi []byte, req *cairnpb.WatchRequest, send func(*cairnpb.WatchResponse) error) error {
	var holders map[uint64]bool
	for _, d := range t.Ranges {
		if !overlaps(d.Start, d.End, lo, hi) {
			continue
		}
		these := map[uint64]bool{}
		for _, id := range append(slices.Clone(d.Replicas), d.Learners...) {
			if holders == nil || holders[id] {
				these[id] = true
			}
		}
		holders = these
	}
	delete(holders, rt.store.NodeID())
	if len(holders) == 0 {
		parts, err := watchParts(t, lo, hi, rt.store.NodeID(), rt.transport.Connected)
		if err != nil {
			return err
		}
		return rt.mergedWatch(ctx, parts, req, send)
	}
	watchesRelayed.Inc()
	var last error
	for _, id := range slices.Sorted(maps.Keys(holders)) {
		c := rt.transport.Client(id)
		if c == nil || !rt.transport.Connected(id) {
			last = kv.Errorf(kv.ErrUnavailable, "node %d, which holds the watched keys, is unreachable", id)
			continue
		}
		delivered, err := relayFrom(ctx, c, req, send)
		if delivered || ctx.Err() != nil || !errors.Is(err, kv.ErrUnavailable) {
			return err
		}
		last = err
	}
	return last
}

// mergedWatch serves a prefix watch whose ranges no single node holds
// (replicas are placed on some nodes only): it cuts [lo, hi) into parts
// at range boundaries, each held whole by one node (this one where it
// can), runs each part there (a watch narrowed to the part's keys, which
// first announces its start Position), and merges the streams. Each key
// is in one part, so its changes keep their order; the Position handed
// to the client is each part's Position on the part's keys (Splice), so a
// resume anywhere continues every part exactly. Nothing is sent until
// every part has announced its start, which is what a resume token must
// cover; the parts wait meanwhile (a part's node buffers at most its
// watcher buffer). A part's error ends the whole watch: the client
// resumes with its last token and the parts are cut again from a fresher
// catalog.
func (rt *Router) mergedWatch(ctx context.Context, parts []watchPart, req *cairnpb.WatchRequest, send func(*cairnpb.WatchResponse) error) error {
	watchesMerged.Inc()
	self := rt.store.NodeID()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-rt.stopWatches:
			cancel()
		case <-ctx.Done():
		}
	}()
	type partMsg struct {
		i    int
		resp *cairnpb.WatchResponse
		err  error
	}
	msgs := make(chan partMsg)
	allStarted := make(chan struct{})
	for i, p := range parts {
		sub := proto.Clone(req).(*cairnpb.WatchRequest)
		sub.Part = &cairnpb.WatchPart{Start: p.start, End: p.end}
		go func() {
			announced := false
			deliver := func(resp *cairnpb.WatchResponse) error {
				if announced {
					select {
					case <-allStarted:
					case <-ctx.Done():
						return ctx.Err()
					}
				}
				announced = true
				select {
				case msgs <- partMsg{i: i, resp: resp}:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			var err error
			if p.node == self {
				err = rt.watch(ctx, sub, deliver, false)
			} else if c := rt.transport.Client(p.node); c == nil {
				err = kv.Errorf(kv.ErrUnavailable, "node %d, which holds watched keys, is unreachable", p.node)
			} else {
				_, err = relayFrom(ctx, c, sub, deliver)
			}
			if err == nil {
				err = kv.Errorf(kv.ErrUnavailable, "a part of the watch ended")
			}
			select {
			case msgs <- partMsg{i: i, err: err}:
			case <-ctx.Done():
			}
		}()
	}
	const (
		awaitStart = iota
		replaying
		live
	)
	state := make([]int, len(parts))
	var pos watch.Position
	started, caught := 0, 0
	splice := func(i int, tok string) error {
		p, err := watch.DecodePosition(tok)
		if err != nil {
			return kv.Errorf(kv.ErrUnavailable, "watch part on node %d: %v", parts[i].node, err)
		}
		pos.Splice(p, parts[i].start, parts[i].end)
		return nil
	}
	for {
		var m partMsg
		select {
		case m = <-msgs:
		case <-ctx.Done():
			return ctx.Err()
		}
		if m.err != nil {
			return m.err
		}
		resp := m.resp
		switch {
		case state[m.i] == awaitStart:
			if err := splice(m.i, resp.ResumeToken); err != nil {
				return err
			}
			state[m.i] = replaying
			if started++; started == len(parts) {
				close(allStarted)
			}
			continue
		case len(resp.Events) == 0:
			// The part caught up; the watch has when every part has.
			if err := splice(m.i, resp.ResumeToken); err != nil {
				return err
			}
			if state[m.i] == replaying {
				state[m.i] = live
				if caught++; caught < len(parts) {
					continue
				}
			}
			if err := send(&cairnpb.WatchResponse{ResumeToken: pos.Encode()}); err != nil {
				return err
			}
			continue
		}
		for _, ev := range resp.Events {
			if ev.ResumeToken != "" {
				if err := splice(m.i, ev.ResumeToken); err != nil {
					return err
				}
				ev.ResumeToken = pos.Encode()
			}
		}
		if err := splice(m.i, resp.ResumeToken); err != nil {
			return err
		}
		resp.ResumeToken = pos.Encode()
		if err := send(resp); err != nil {
			return err
		}
	}
}

// watchPart is one part of a merged watch: the stored keys [start, end)
// (end empty: unbounded), watched on node.
type watchPart struct {
	start, end []byte
	node       uint64
}

// watchParts cuts [lo, hi) (hi nil: unbounded) at the boundaries of t's
// ranges into as few parts as it can, each part's ranges all held (voter
// or learner) by one node: self where it holds them, else the
// lowest-numbered connected holder, else the lowest-numbered holder.
func watchParts(t *cairnpb.Table, lo, hi []byte, self uint64, connected func(uint64) bool) ([]watchPart, error) {
	var ranges []*cairnpb.RangeDescriptor
	for _, d := range t.Ranges {
		if overlaps(d.Start, d.End, lo, hi) {
			ranges = append(ranges, d)
		}
	}
	slices.SortFunc(ranges, func(a, b *cairnpb.RangeDescriptor) int { return bytes.Compare(a.Start, b.Start) })
	holders := func(d *cairnpb.RangeDescriptor) map[uint64]bool {
		m := map[uint64]bool{}
		for _, id := range append(slices.Clone(d.Replicas), d.Learners...) {
			m[id] = true
		}
		return m
	}
	pick := func(cands map[uint64]bool) uint64 {
		if cands[self] {
			return self
		}
		ids := slices.Sorted(maps.Keys(cands))
		for _, id := range ids {
			if connected(id) {
				return id
			}
		}
		return ids[0]
	}
	var parts []watchPart
	at := lo
	var cands map[uint64]bool
	for i, d := range ranges {
		if i == 0 && bytes.Compare(d.Start, lo) > 0 || i > 0 && !bytes.Equal(d.Start, ranges[i-1].End) {
			return nil, kv.Errorf(kv.ErrUnavailable, "the catalog of table %q has no range for some watched keys; retry", t.Name)
		}
		h := holders(d)
		if len(h) == 0 {
			return nil, kv.Errorf(kv.ErrUnavailable, "range %d of table %q has no replicas in the catalog; retry", d.Id, t.Name)
		}
		if i == 0 {
			cands = h
			continue
		}
		both := map[uint64]bool{}
		for id := range cands {
			if h[id] {
				both[id] = true
			}
		}
		if len(both) > 0 && !(cands[self] && !both[self]) {
			cands = both
			continue
		}
		// No node holds this range too (or only others do, while this
		// node holds the part so far): cut here.
		parts = append(parts, watchPart{start: at, end: d.Start, node: pick(cands)})
		at, cands = d.Start, h
	}
	if len(ranges) == 0 {
		return nil, kv.Errorf(kv.ErrUnavailable, "the catalog of table %q has no range for the watched keys; retry", t.Name)
	}
	if last := ranges[len(ranges)-1]; len(last.End) > 0 && (hi == nil || bytes.Compare(last.End, hi) < 0) {
		return nil, kv.Errorf(kv.ErrUnavailable, "the catalog of table %q has no range for some watched keys; retry", t.Name)
	}
	return append(parts, watchPart{start: at, end: hi, node: pick(cands)}), nil
}

var (
	watchesRelayed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cairn_watches_relayed_total",
		Help: "Watches this node relayed from one other node that holds every watched range.",
	})
	watchesMerged = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cairn_watches_merged_total",
		Help: "Watches this node served as a merge of parts from several nodes (no node holds every watched range).",
	})
)

// relayFrom relays one peer's watch stream to send; delivered says whether
// anything reached the client.
func relayFrom(ctx context.Context, c cairnpb.PeerClient, req *cairnpb.WatchRequest, send func(*cairnpb.WatchResponse) error) (delivered bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.Watch(ctx, req)
	if err != nil {
		return false, kv.Errorf(kv.ErrUnavailable, "relay watch: %v", err)
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return delivered, PeerStreamError(err, stream.Trailer())
		}
		if err := send(resp); err != nil {
			return true, err
		}
		delivered = true
	}
}

// PeerStreamErrorKey is the trailer of a Peer stream that carries the kv
// code of the error that ended it.
const PeerStreamErrorKey = "cairn-code"

// PeerStreamError turns the end of a Peer stream back into the kv error
// the serving node returned (its code in the trailer; without one, the
// stream broke: unavailable, so the caller may try elsewhere).
func PeerStreamError(err error, trailer metadata.MD) error {
	if errors.Is(err, io.EOF) {
		return kv.Errorf(kv.ErrUnavailable, "the relayed watch ended")
	}
	if v := trailer.Get(PeerStreamErrorKey); len(v) == 1 {
		return kv.FromCode(v[0], status.Convert(err).Message())
	}
	if status.Code(err) == codes.Canceled {
		return context.Canceled
	}
	return kv.Errorf(kv.ErrUnavailable, "relayed watch: %v", err)
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
// span is a local replica and its span.
type span struct {
	start, end []byte
	r          *replica.Replica
}

// localRanges returns the initialized local replicas of table that overlap
// [lo, hi) (hi nil: unbounded).
func (rt *Router) localRanges(table uint64, lo, hi []byte) []span {
	var out []span
	for _, r := range rt.store.Replicas() {
		if d := r.Desc(); d.TableId == table && r.Initialized() && overlaps(d.Start, d.End, lo, hi) {
			out = append(out, span{d.Start, d.End, r})
		}
	}
	return out
}

// watchBarrier returns once every replica of local has applied every
// write committed before the call (a read barrier on each, in parallel).
// A watch starts after it: its replay then holds every change
// acknowledged before the watch began, so its catch-up marker ("synced")
// means what a client takes it for, even on a lagging follower or
// learner, and a watch "from now" starts no earlier than a linearizable
// read would.
func (rt *Router) watchBarrier(ctx context.Context, local []span) error {
	ctx, cancel := rt.withTimeout(ctx)
	defer cancel()
	waits := make([]<-chan error, 0, len(local))
	for _, s := range local {
		done, err := s.r.ReadBarrierAsync()
		if err != nil {
			return err
		}
		if done != nil {
			waits = append(waits, done)
		}
	}
	for i, done := range waits {
		select {
		case err := <-done:
			if err != nil {
				return err
			}
		case <-ctx.Done():
			return kv.Errorf(kv.ErrUnavailable, "watch: %d of %d ranges not caught up in time: %v", len(waits)-i, len(local), ctx.Err())
		}
	}
	return nil
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
