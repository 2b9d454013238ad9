package router

import (
	"context"
	"log/slog"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/replica"
	"github.com/cairn-db/cairn/internal/storage"
)

// Expiry of keys with a TTL (see internal/replica/ttl.go for the rule: the
// Raft log decides). The router's part is to propose the removals: a get
// that meets a key this node's clock says has expired expires it through
// Raft before answering, and every node runs an expirer that proposes the
// removal of due keys of the ranges it leads, from the expiry index.

// expire asks the leader of range d to remove keys if they are expired.
func (rt *Router) expire(ctx context.Context, t *cairnpb.Table, d *cairnpb.RangeDescriptor, ks []*cairnpb.ExpireKey) error {
	ex := &cairnpb.Expire{Keys: ks}
	req := &cairnpb.Request{Op: &cairnpb.Request_Expire{Expire: &cairnpb.ExpireRequest{Table: t.Name, Expire: ex}}}
	_, err := rt.route(ctx, keys.RangeID(d.Id), req, true,
		func(r *replica.Replica) (*cairnpb.Response, error) { return rt.localExpire(ctx, r, t, ex) })
	return err
}

func (rt *Router) localExpire(ctx context.Context, r *replica.Replica, t *cairnpb.Table, ex *cairnpb.Expire) (*cairnpb.Response, error) {
	res, err := rt.propose(ctx, r, withHistory(t, &cairnpb.Command{TableId: t.Id, Op: &cairnpb.Command_Expire{Expire: ex}}))
	if err != nil {
		return nil, err
	}
	expiredKeys.Add(float64(res.Version))
	return &cairnpb.Response{Op: &cairnpb.Response_Expire{Expire: &cairnpb.ExpireResponse{Removed: res.Version}}}, nil
}

// expiredKeys counts keys removed by Expire commands this node proposed.
var expiredKeys = prometheus.NewCounter(prometheus.CounterOpts{
	Name: "cairn_ttl_expired_keys_total",
	Help: "Keys with a TTL removed through Expire commands proposed by this node (expirer and gets).",
})

// Collectors returns the package's metrics, for the node to register once.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{expiredKeys, watchesRelayed, watchesMerged}
}

// maxExpirePerCommand bounds one Expire command (and one scan of the
// index per range and pass).
const maxExpirePerCommand = 512

// RunExpirer proposes, every interval until ctx ends, the removal of the
// due keys of every data range this node leads.
func (rt *Router) RunExpirer(ctx context.Context, interval time.Duration) {
	every(ctx, interval, func() { rt.ExpireDue(ctx) })
}

// every runs f every interval until ctx ends.
func every(ctx context.Context, interval time.Duration, f func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		f()
	}
}

// ledDataRange is a data range this node leads, with its table.
type ledDataRange struct {
	t *cairnpb.Table
	r *replica.Replica
	d *cairnpb.RangeDescriptor
}

// ledDataRanges returns the data ranges this node leads now of the tables
// for which want is true: what the background passes (expirer,
// transaction resolver) work on. want is asked once per table, before
// any replica is looked at, so that a pass with nothing to do costs one
// look per table, not one per range (10,000 idle ranges on a node).
func (rt *Router) ledDataRanges(want func(*cairnpb.Table) bool) []ledDataRange {
	tables := map[uint64]*cairnpb.Table{}
	for _, t := range rt.store.Tables() {
		if t.Id != uint64(keys.MetaTableID) && want(t) {
			tables[t.Id] = t
		}
	}
	if len(tables) == 0 {
		return nil
	}
	var out []ledDataRange
	for _, r := range rt.store.ReplicasUnordered() {
		d := r.Desc()
		if t := tables[d.TableId]; t != nil && r.IsLeader() {
			out = append(out, ledDataRange{t, r, d})
		}
	}
	return out
}

// ExpireDue runs one expirer pass and returns how many keys it removed.
func (rt *Router) ExpireDue(ctx context.Context) int {
	removed := 0
	// The expiry index is per table: one look per table finds the tables
	// with nothing due, whose ranges (all of them, on a node of many idle
	// ranges) need no scan of their own.
	nowMs := rt.opts.Clock.Now().Millis()
	due := func(t *cairnpb.Table) bool {
		start, end := keys.ExpirySpan(keys.TableID(t.Id), nowMs)
		return !spanEmpty(rt.store.DB(), start, end)
	}
	for _, l := range rt.ledDataRanges(due) {
		t, r, d := l.t, l.r, l.d
		ks, err := rt.dueKeys(d, rt.opts.Clock.Now().Millis())
		if err != nil {
			slog.Warn("expirer: scan failed", "range", d.Id, "err", err)
			continue
		}
		if len(ks) == 0 {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, rt.opts.RequestTimeout)
		resp, err := rt.localExpire(pctx, r, t, &cairnpb.Expire{Keys: ks})
		cancel()
		if err != nil {
			slog.Debug("expirer: propose failed", "range", d.Id, "err", err)
			continue
		}
		removed += int(resp.GetExpire().GetRemoved())
	}
	return removed
}

// dueKeys reads the expiry index of d's table for keys of d due by nowMs,
// with the version and expiry their values have now (or, for a stale
// entry, the entry's own expiry, which the Expire command then drops).
func (rt *Router) dueKeys(d *cairnpb.RangeDescriptor, nowMs int64) ([]*cairnpb.ExpireKey, error) {
	db := rt.store.DB()
	table := keys.TableID(d.TableId)
	start, end := keys.ExpirySpan(table, nowMs)
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: start, UpperBound: end})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var ks []*cairnpb.ExpireKey
	for ok := it.First(); ok && len(ks) < maxExpirePerCommand; ok = it.Next() {
		_, exp, uk, err := keys.DecodeExpiryKey(it.Key())
		if err != nil {
			return nil, err
		}
		if !inRange(d, uk) {
			continue
		}
		k := &cairnpb.ExpireKey{Key: append([]byte(nil), uk...), ExpireAtMs: exp}
		if v, closer, err := db.Get(keys.DataKey(table, uk)); err == nil {
			if version, _, _, err := storage.DecodeValueTTL(v); err == nil {
				k.Version = version
			}
			closer.Close()
		}
		ks = append(ks, k)
	}
	return ks, it.Error()
}

// spanEmpty reports whether db holds no key in [start, end) (false on an
// error: the caller then scans and meets the error itself).
func spanEmpty(db *pebble.DB, start, end []byte) bool {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: start, UpperBound: end})
	if err != nil {
		return false
	}
	empty := !it.First()
	if err := it.Close(); err != nil {
		return false
	}
	return empty
}

func inRange(d *cairnpb.RangeDescriptor, k []byte) bool {
	return rangeFor(&cairnpb.Table{Ranges: []*cairnpb.RangeDescriptor{d}}, k) != nil
}
