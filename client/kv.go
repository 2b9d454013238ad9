package client

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/cairn-db/cairn/api/cairnpb"
)

// WriteOption sets a condition on Put or Delete, or a TTL on Put.
type WriteOption func(*writeOptions)

type writeOptions struct {
	cond *cairnpb.Condition
	ttl  time.Duration
}

// IfVersion makes a write succeed only if the key's current version is v
// (non-zero); otherwise it fails with ErrConditionFailed.
func IfVersion(v uint64) WriteOption {
	return func(o *writeOptions) { o.condition().Version = v }
}

// IfAbsent makes a Put succeed only if the key does not exist; otherwise it
// fails with ErrConditionFailed.
func IfAbsent() WriteOption {
	return func(o *writeOptions) { o.condition().Absent = true }
}

// WithTTL makes a Put's key expire ttl after the write (at least 1 ms;
// rounded down to milliseconds). The leader's clock fixes the expiry time
// when it orders the write; Delete ignores it.
func WithTTL(ttl time.Duration) WriteOption {
	return func(o *writeOptions) { o.ttl = ttl }
}

func (o *writeOptions) condition() *cairnpb.Condition {
	if o.cond == nil {
		o.cond = &cairnpb.Condition{}
	}
	return o.cond
}

func collect(opts []WriteOption) writeOptions {
	var o writeOptions
	for _, f := range opts {
		f(&o)
	}
	return o
}

// Get returns the value and version of key in table, or ErrNotFound.
// Options choose the consistency level (default Linearizable); the
// Client's session token goes with Session reads, and every reply's
// token, a not-found one included, is merged into it.
func (c *Client) Get(ctx context.Context, table string, key []byte, opts ...ReadOption) (value []byte, version uint64, err error) {
	var o readOptions
	for _, f := range opts {
		f(&o)
	}
	req := &cairnpb.GetRequest{Table: table, Key: key, Consistency: o.consistency, MaxStalenessMs: o.maxStaleness.Milliseconds()}
	if o.consistency == Session || o.consistency == "" {
		// "" may be a table whose default is Session.
		req.SessionToken = c.session.get()
	}
	var resp *cairnpb.GetResponse
	anyReplica := o.consistency == Session || o.consistency == Stale
	err = c.doKey(ctx, read, table, key, anyReplica, func(ctx context.Context, ep *endpoint) (uint64, uint64, error) {
		var md metadata.MD
		resp, err = ep.kv.Get(ctx, req, grpc.Header(&md))
		c.session.observeMD(md)
		return resp.GetServedBy(), resp.GetLeader(), err
	})
	if err != nil {
		return nil, 0, err
	}
	c.session.observe(resp.SessionToken)
	if o.served != nil {
		*o.served = Served{Consistency: resp.ServedConsistency, Node: resp.ServedBy, Staleness: time.Duration(resp.StalenessMs) * time.Millisecond}
	}
	return resp.Value, resp.Version, nil
}

// Put sets key in table to value and returns the new version. With
// IfVersion or IfAbsent it fails with ErrConditionFailed when the condition
// does not hold.
func (c *Client) Put(ctx context.Context, table string, key, value []byte, opts ...WriteOption) (version uint64, err error) {
	o := collect(opts)
	if o.ttl != 0 && o.ttl < time.Millisecond {
		return 0, fmt.Errorf("%w: ttl %v is under 1ms", ErrInvalidArgument, o.ttl)
	}
	req := &cairnpb.PutRequest{Table: table, Key: key, Value: value, Condition: o.cond, TtlMs: o.ttl.Milliseconds()}
	var resp *cairnpb.PutResponse
	err = c.doKey(ctx, write, table, key, false, func(ctx context.Context, ep *endpoint) (uint64, uint64, error) {
		resp, err = ep.kv.Put(ctx, req)
		// The leader executed the write.
		return resp.GetServedBy(), resp.GetServedBy(), err
	})
	if err != nil {
		return 0, err
	}
	c.session.observe(resp.SessionToken)
	return resp.Version, nil
}

// Delete removes key from table and returns the version of the deleted
// value; ErrNotFound if it is absent. With IfVersion it fails with
// ErrConditionFailed unless the current version is the given one.
func (c *Client) Delete(ctx context.Context, table string, key []byte, opts ...WriteOption) (version uint64, err error) {
	req := &cairnpb.DeleteRequest{Table: table, Key: key, Condition: collect(opts).cond}
	var resp *cairnpb.DeleteResponse
	err = c.doKey(ctx, write, table, key, false, func(ctx context.Context, ep *endpoint) (uint64, uint64, error) {
		resp, err = ep.kv.Delete(ctx, req)
		return resp.GetServedBy(), resp.GetServedBy(), err
	})
	if err != nil {
		return 0, err
	}
	c.session.observe(resp.SessionToken)
	return resp.Version, nil
}

// ListOptions selects the keys of a List. Prefix and the half-open span
// [Start, End) combine: the keys listed are in their intersection. An empty
// End means no upper bound.
type ListOptions struct {
	Prefix []byte
	Start  []byte
	End    []byte
	// Limit is the maximum number of items in the page; 0 means the
	// server's default (1000).
	Limit int
	// PageToken continues a listing after a previous page; it is that
	// page's NextPageToken.
	PageToken string
	// Values asks for the values too; without it items have only keys
	// and versions.
	Values bool
	// Consistency and MaxStaleness as in WithConsistency and
	// WithMaxStaleness.
	Consistency  string
	MaxStaleness time.Duration
}

// KeyValue is one item of a listing.
type KeyValue struct {
	Key     []byte `json:"key"`
	Value   []byte `json:"value,omitempty"`
	Version uint64 `json:"version"`
}

// ListPage is one page of a listing, in key order.
type ListPage struct {
	Items []KeyValue `json:"items"`
	// NextPageToken continues the listing (ListOptions.PageToken); it is
	// empty on the last page.
	NextPageToken string `json:"next_page_token"`
	// Served says how the page was served (the weakest level of its
	// ranges).
	Served Served `json:"-"`
}

// List returns one page of the keys of table selected by opts. Pages name
// the key they resume after, so a listing that follows NextPageToken
// returns every key present throughout it exactly once.
func (c *Client) List(ctx context.Context, table string, opts ListOptions) (*ListPage, error) {
	if opts.Limit < 0 || opts.Limit > 1<<31 {
		return nil, newError("invalid_argument", "list limit out of range", "")
	}
	req := &cairnpb.ListRequest{
		Table:     table,
		Prefix:    opts.Prefix,
		Start:     opts.Start,
		End:       opts.End,
		Limit:     uint32(opts.Limit),
		PageToken: opts.PageToken,
		Values:    opts.Values,

		Consistency: opts.Consistency, MaxStalenessMs: opts.MaxStaleness.Milliseconds(),
	}
	if opts.Consistency == Session || opts.Consistency == "" {
		req.SessionToken = c.session.get()
	}
	var resp *cairnpb.ListResponse
	err := c.do(ctx, read, func(ctx context.Context, ep *endpoint) (err error) {
		resp, err = ep.kv.List(ctx, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	c.session.observe(resp.SessionToken)
	page := &ListPage{Items: make([]KeyValue, len(resp.Items)), NextPageToken: resp.NextPageToken,
		Served: Served{Consistency: resp.ServedConsistency, Node: resp.ServedBy, Staleness: time.Duration(resp.StalenessMs) * time.Millisecond}}
	for i, it := range resp.Items {
		page.Items[i] = KeyValue{Key: it.Key, Value: it.Value, Version: it.Version}
	}
	return page, nil
}
