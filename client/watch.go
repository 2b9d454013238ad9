package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cairn-db/cairn/api/cairnpb"
)

// EventType says what a change did.
type EventType int

const (
	EventPut EventType = iota
	EventDelete
	// EventExpire: the key's TTL ran out and it was removed.
	EventExpire
)

func (t EventType) String() string {
	switch t {
	case EventPut:
		return "put"
	case EventDelete:
		return "delete"
	case EventExpire:
		return "expire"
	}
	return "unknown"
}

// WatchEvent is one change of one key.
type WatchEvent struct {
	Type  EventType
	Key   []byte
	Value []byte // puts only
	// Version is the change's version (a delete's own, not the deleted
	// value's); PrevVersion the key's previous change's (0: none retained).
	Version, PrevVersion uint64
	// ExpireAt is when a put's value expires (zero: never).
	ExpireAt time.Time
}

// WatchResponse is one batch of changes, in order, and the resume token
// after them. A response without events says the watch caught up with the
// history it replayed. Err ends the watch (the channel closes after it):
// ErrCompacted (read afresh, watch from now), ErrPermissionDenied,
// ErrInvalidArgument, ErrTableNotFound, or the context's error.
type WatchResponse struct {
	Events      []WatchEvent
	ResumeToken string
	Err         error
}

// WatchOption configures Watch.
type WatchOption func(*cairnpb.WatchRequest)

// WatchPrefix watches every key with the given key as prefix (an empty
// key: the whole table).
func WatchPrefix() WatchOption { return func(r *cairnpb.WatchRequest) { r.Prefix = true } }

// WatchAfterVersion starts with the retained changes after version v.
func WatchAfterVersion(v uint64) WatchOption {
	return func(r *cairnpb.WatchRequest) { r.StartVersion = v }
}

// WatchResume starts after a resume token from an earlier WatchResponse.
func WatchResume(token string) WatchOption {
	return func(r *cairnpb.WatchRequest) { r.ResumeToken = token }
}

// Watch streams the changes of key in table (of every key with that
// prefix, with WatchPrefix) from now, or from where an option says, until
// ctx ends. When a node fails or the watcher falls behind, Watch resumes
// on its own (on the next endpoint) from the last token it delivered:
// no change is lost or repeated. Read the channel promptly; it is closed
// after an error response.
func (c *Client) Watch(ctx context.Context, table string, key []byte, opts ...WatchOption) <-chan WatchResponse {
	req := &cairnpb.WatchRequest{Table: table, Key: key}
	for _, o := range opts {
		o(req)
	}
	out := make(chan WatchResponse, 16)
	go c.runWatch(ctx, req, out)
	return out
}

func (c *Client) runWatch(ctx context.Context, req *cairnpb.WatchRequest, out chan<- WatchResponse) {
	defer close(out)
	deliver := func(r WatchResponse) bool {
		select {
		case out <- r:
			return true
		case <-ctx.Done():
			return false
		}
	}
	backoff := 50 * time.Millisecond
	for i := int(c.preferred.Load()); ; i++ {
		if c.closed.Load() {
			deliver(WatchResponse{Err: &Error{Code: "closed", Message: ErrClosed.Error(), kind: ErrClosed}})
			return
		}
		ep := c.endpoints[i%len(c.endpoints)]
		err := ep.waitReady(ctx, c.cfg.DialTimeout)
		if err != nil && ctx.Err() == nil {
			// Not connected: the node is down or unreachable; try the next.
			err = status.Error(codes.Unavailable, fmt.Sprintf("cannot connect to %s: %v", ep.addr, err))
		} else if err == nil {
			var stream cairnpb.Watch_WatchClient
			stream, err = ep.watch.Watch(ctx, req)
			for err == nil {
				var resp *cairnpb.WatchResponse
				if resp, err = stream.Recv(); err != nil {
					break
				}
				backoff = 50 * time.Millisecond
				req.ResumeToken = resp.ResumeToken
				if !deliver(toWatchResponse(resp)) {
					return
				}
			}
		}
		if ctx.Err() != nil {
			deliver(WatchResponse{Err: contextError(ctx, ep.addr)})
			return
		}
		if errors.Is(err, io.EOF) {
			err = newError("unavailable", "the node ended the watch", ep.addr)
		}
		e, _ := fromStatus(err, ep.addr)
		if !(errors.Is(e, ErrUnavailable) || errors.Is(e, ErrResourceExhausted) || errors.Is(e, ErrTimeout) || errors.Is(e, context.Canceled)) {
			deliver(WatchResponse{Err: e})
			return
		}
		select {
		case <-ctx.Done():
			deliver(WatchResponse{Err: contextError(ctx, ep.addr)})
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

func toWatchResponse(resp *cairnpb.WatchResponse) WatchResponse {
	out := WatchResponse{ResumeToken: resp.ResumeToken, Events: make([]WatchEvent, len(resp.Events))}
	for i, e := range resp.Events {
		ev := WatchEvent{Key: e.Key, Value: e.Value, Version: e.Version, PrevVersion: e.PrevVersion}
		switch e.Type {
		case cairnpb.WatchEvent_DELETE:
			ev.Type = EventDelete
		case cairnpb.WatchEvent_EXPIRE:
			ev.Type = EventExpire
		}
		if e.ExpireAtMs > 0 {
			ev.ExpireAt = time.UnixMilli(e.ExpireAtMs)
		}
		out.Events[i] = ev
	}
	return out
}
