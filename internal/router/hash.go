package router

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/keys/hashkey"
	"github.com/cairn-db/cairn/internal/kv"
	"github.com/cairn-db/cairn/internal/replica"
	"github.com/cairn-db/cairn/internal/storage"
)

// Hash-partitioned tables (docs/design/hashing.md).
//
// The router is the only layer that knows user keys from placement keys:
// every public entry point (Get, Put, Delete, Batch, History, Watch, Txn,
// SplitRange) replaces the user key of a request on a hash table by its
// placement key (package hashkey) before routing, and every key it
// returns is stripped again. Forwarded requests carry placement keys
// already and are never translated twice. Below the router, replicas
// and storage see ordinary keys whose ranges happen to be hash
// intervals.
//
// A List over a hash table cannot use the user span as a key span: user
// order is not placement order. listHashed asks every range for the
// smallest limit keys of the user span it holds (each range scans its
// whole span and filters), merges the parts by user key and returns the
// first limit. The page token is the last user key returned, so the next
// page asks every range for keys after it: correct across pages and
// splits, at the cost of a scan of the whole table per page.

// DefaultInitialRanges is the number of ranges a hash table starts with
// when CreateTable names none.
const DefaultInitialRanges = 4

// IsHash reports whether t is hash-partitioned.
func IsHash(t *cairnpb.Table) bool { return t.GetPartitioning() == "hash" }

// validatePartitioning checks and completes the partitioning fields of a
// CreateTable request.
func validatePartitioning(req *cairnpb.CreateTableRequest) error {
	switch req.Partitioning {
	case "", "range":
		req.Partitioning = "range"
		if req.InitialRanges > 1 {
			return kv.Errorf(kv.ErrInvalidArgument, "initial_ranges is for hash tables; a range table starts as one range")
		}
		req.InitialRanges = 0
	case "hash":
		if req.InitialRanges == 0 {
			req.InitialRanges = DefaultInitialRanges
		}
		if req.InitialRanges > hashkey.MaxInitialRanges {
			return kv.Errorf(kv.ErrInvalidArgument, "initial_ranges %d is more than the limit %d", req.InitialRanges, hashkey.MaxInitialRanges)
		}
	default:
		return kv.Errorf(kv.ErrInvalidArgument, "partitioning %q is not supported (\"range\" or \"hash\")", req.Partitioning)
	}
	return nil
}

// placeKey returns the key table t stores key under: its placement key
// on a hash table, key itself otherwise.
func placeKey(t *cairnpb.Table, key []byte) []byte {
	if IsHash(t) {
		return hashkey.Encode(key)
	}
	return key
}

// userKey returns the user key of a key of table t as stored.
func userKey(t *cairnpb.Table, key []byte) []byte {
	if IsHash(t) {
		return hashkey.Strip(key)
	}
	return key
}

// shownKey is key of table as an error message should name it: the user
// key (a hash table's placement key stripped).
func (rt *Router) shownKey(table string, key []byte) []byte {
	if t := rt.store.Table(table); t != nil {
		return userKey(t, key)
	}
	return key
}

// keyRename pairs a placement key with its user key.
type keyRename struct{ placed, user []byte }

// renameKeys returns err with every placement key it names (quoted, as
// %q prints it) replaced by the user key; errors.Is and errors.As see the
// original error.
func renameKeys(err error, renames []keyRename) error {
	if err == nil || len(renames) == 0 {
		return err
	}
	msg := err.Error()
	for _, r := range renames {
		msg = strings.ReplaceAll(msg, fmt.Sprintf("%q", r.placed), fmt.Sprintf("%q", r.user))
	}
	if msg == err.Error() {
		return err
	}
	return &renamedError{msg: msg, err: err}
}

// renamedError is an error with a rewritten message.
type renamedError struct {
	msg string
	err error
}

func (e *renamedError) Error() string { return e.msg }
func (e *renamedError) Unwrap() error { return e.err }

// placed resolves table and returns the key to route key by, and a
// function that restores the caller's key (the request is changed in
// place for the duration of the call, then put back). NB: only for calls
// that use the request no longer once they return (a proposal is
// marshaled when it is queued, a forward when it is sent); Txn, whose
// resolution goes on after it returns, copies its ops instead.
func (rt *Router) placed(ctx context.Context, table string, key *[]byte) (restore func(), err error) {
	t, err := rt.table(ctx, table)
	if err != nil {
		return nil, err
	}
	if !IsHash(t) {
		return func() {}, nil
	}
	orig := *key
	*key = hashkey.Encode(orig)
	return func() { *key = orig }, nil
}

// maxListFanout bounds the parts of one List over a hash table that run
// at once.
const maxListFanout = 16

// hashPart is the outcome of one span of a List over a hash table.
type hashPart struct {
	out   *cairnpb.ListResponse // session token and served fields
	items []*cairnpb.KeyValue
	more  bool
	err   error
}

// listHashed is List over a hash table: every range's part, merged by
// user key (see the comment at the top of this file). The placement
// space is cut at the starts of the table's ranges in the catalog; the
// spans are listed concurrently (at most maxListFanout at once), each by
// a walk that re-resolves its ranges on a split, so a catalog that lags
// costs a retry, never a missed key.
func (rt *Router) listHashed(ctx context.Context, req *cairnpb.ListRequest, limit int, after []byte) (*cairnpb.ListResponse, error) {
	userStart, userEnd := listSpan(req, after)
	out := &cairnpb.ListResponse{}
	if len(userEnd) > 0 && bytes.Compare(userStart, userEnd) >= 0 {
		return out, nil
	}
	t, err := rt.table(ctx, req.Table)
	if err != nil {
		return nil, err
	}
	cuts := [][]byte{nil}
	for _, d := range t.Ranges {
		if len(d.Start) > 0 {
			cuts = append(cuts, d.Start)
		}
	}
	// Each finished span is merged at once, so memory stays within
	// (maxListFanout + 1) * limit items, whatever the number of ranges.
	ctx, cancel := context.WithCancel(ctx) // the first error ends the others
	defer cancel()
	var mu sync.Mutex
	var items []*cairnpb.KeyValue
	var firstErr error
	more := false
	sem := make(chan struct{}, maxListFanout)
	var wg sync.WaitGroup
	for i := range cuts {
		var end []byte
		if i+1 < len(cuts) {
			end = cuts[i+1]
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			p := rt.listHashedSpan(ctx, req, cuts[i], end, userStart, userEnd, limit)
			mu.Lock()
			defer mu.Unlock()
			if p.err == nil {
				p.err = mergeListPart(out, p.out)
			}
			if p.err != nil {
				if firstErr == nil {
					firstErr = p.err
					cancel()
				}
				return
			}
			more = more || p.more
			items = mergeByKey(items, p.items, limit, &more)
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	out.Items = items
	if more && len(items) > 0 {
		out.NextPageToken = kv.EncodePageToken(items[len(items)-1].Key)
	}
	return out, nil
}

// listHashedSpan lists the placement span [start, end) (end nil: to the
// end of the table) of a List over a hash table: a walk over the ranges
// holding it, as List does for a range table, keeping the first limit
// items by user key.
func (rt *Router) listHashedSpan(ctx context.Context, req *cairnpb.ListRequest, start, end, userStart, userEnd []byte, limit int) hashPart {
	p := hashPart{out: &cairnpb.ListResponse{}}
	for {
		var sub *cairnpb.ListResponse
		var subEnd []byte
		err := rt.keyed(ctx, req.Table, start, func(t *cairnpb.Table, d *cairnpb.RangeDescriptor) error {
			subEnd = d.End
			if len(end) > 0 && (len(subEnd) == 0 || bytes.Compare(end, subEnd) < 0) {
				subEnd = end
			}
			subReq := &cairnpb.ListRequest{Table: req.Table, Start: start, End: subEnd, Limit: uint32(limit), Values: req.Values,
				Consistency: req.Consistency, MaxStalenessMs: req.MaxStalenessMs, SessionToken: req.SessionToken,
				Hashed: true, UserStart: userStart, UserEnd: userEnd}
			resp, err := rt.read(ctx, keys.RangeID(d.Id), &cairnpb.Request{Op: &cairnpb.Request_List{List: subReq}},
				func(r *replica.Replica) (*cairnpb.Response, error) { return rt.localList(ctx, r, t, subReq) })
			if err != nil {
				return err
			}
			sub = resp.GetList()
			return nil
		})
		if err != nil {
			p.err = err
			return p
		}
		if err := mergeListPart(p.out, sub); err != nil {
			p.err = err
			return p
		}
		p.more = p.more || sub.NextPageToken != ""
		p.items = mergeByKey(p.items, sub.Items, limit, &p.more)
		if len(subEnd) == 0 || (len(end) > 0 && bytes.Equal(subEnd, end)) {
			return p
		}
		start = subEnd
	}
}

// mergeByKey merges two lists sorted by key and keeps the first limit
// items, setting *more when it drops any.
func mergeByKey(a, b []*cairnpb.KeyValue, limit int, more *bool) []*cairnpb.KeyValue {
	out := make([]*cairnpb.KeyValue, 0, min(len(a)+len(b), limit))
	for len(out) < limit && (len(a) > 0 || len(b) > 0) {
		if len(b) == 0 || (len(a) > 0 && bytes.Compare(a[0].Key, b[0].Key) < 0) {
			out, a = append(out, a[0]), a[1:]
		} else {
			out, b = append(out, b[0]), b[1:]
		}
	}
	if len(a)+len(b) > 0 {
		*more = true
	}
	return out
}

// scanHashed reads the part of a List over a hash table that one range
// holds: every key of the placement span [start, end), filtered by the
// user span [req.UserStart, req.UserEnd), the smallest limit by user key.
// Memory stays within 2*limit items: the candidates are sorted and cut
// back to limit whenever they reach twice that.
func (rt *Router) scanHashed(out *cairnpb.ListResponse, t *cairnpb.Table, req *cairnpb.ListRequest, start, end []byte,
	limit int, keep func(exp int64) bool) error {
	ls, le := keys.DataSpan(keys.TableID(t.Id), start, end)
	it, err := rt.store.DB().NewIter(&pebble.IterOptions{LowerBound: ls, UpperBound: le})
	if err != nil {
		return kv.Errorf(kv.ErrInternal, "list: %v", err)
	}
	defer it.Close()
	var items []*cairnpb.KeyValue
	truncated := false
	cut := func() {
		sort.Slice(items, func(i, j int) bool { return bytes.Compare(items[i].Key, items[j].Key) < 0 })
		if len(items) > limit {
			items, truncated = items[:limit], true
		}
	}
	for ok := it.First(); ok; ok = it.Next() {
		_, pk, err := keys.DecodeDataKey(it.Key())
		if err != nil {
			return kv.Errorf(kv.ErrInternal, "list: %v", err)
		}
		uk := hashkey.Strip(pk)
		if bytes.Compare(uk, req.UserStart) < 0 || (len(req.UserEnd) > 0 && bytes.Compare(uk, req.UserEnd) >= 0) {
			continue
		}
		if truncated && len(items) >= limit && bytes.Compare(uk, items[limit-1].Key) > 0 {
			continue // cannot make this page
		}
		version, exp, value, err := storage.DecodeValueTTL(it.Value())
		if err != nil {
			return kv.Errorf(kv.ErrInternal, "list: %v", err)
		}
		if !keep(exp) {
			continue
		}
		item := &cairnpb.KeyValue{Key: append([]byte(nil), uk...), Version: version, ExpireAtMs: exp}
		if req.Values {
			item.Value = append([]byte(nil), value...)
		}
		if items = append(items, item); len(items) >= 2*limit {
			cut()
		}
	}
	if err := it.Error(); err != nil {
		return kv.Errorf(kv.ErrInternal, "list: %v", err)
	}
	cut()
	out.Items = items
	if truncated {
		out.NextPageToken = kv.EncodePageToken(items[len(items)-1].Key)
	}
	return nil
}

// hashSplitKey is where a hash table's range splits by size: the
// midpoint of its hash interval, so that a split halves the interval;
// nil when the interval is too narrow (then the caller splits at the
// middle of the range's bytes).
func hashSplitKey(d *cairnpb.RangeDescriptor) []byte { return hashkey.Midpoint(d.Start, d.End) }
