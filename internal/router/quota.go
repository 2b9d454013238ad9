package router

import (
	"sync"
	"time"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/kv"
	"github.com/cairn-db/cairn/internal/replica"
)

// Quotas (docs/design/quotas.md). They are checked on the leader of the
// range a write goes to, just before it is proposed, because every write
// of a range passes there whatever node the client used; so a quota holds
// for the whole cluster without any coordination.
//
//   - Size: a write that adds bytes is refused (quota_bytes) when the
//     table's size, the sum of its ranges' logical sizes, would pass
//     max_bytes. Deletes and overwrites that shrink are always allowed, so
//     a full table can be emptied. The size is as applied here: writes in
//     flight are not counted, so a burst can pass the quota by what is in
//     flight at once (bounded by the request concurrency).
//   - Rate: each range of the table gets max_writes_per_sec divided by
//     the table's range count, in a token bucket (burst: one second's
//     worth) at its leader; a write over it is refused (quota_rate) and
//     not executed. The table's total never exceeds the quota; a skewed
//     load that hits one range gets only that range's share.
//   - Read rate: reads are served by any replica, so each replica of each
//     range gets max_reads_per_sec divided by the table's range count and
//     by the range's replica count (voters and learners), in a bucket of
//     its own on its node (checkReadQuota); the same never-exceeds, may-
//     under-use trade.
type quotas struct {
	mu      sync.Mutex
	buckets map[keys.RangeID]*bucket
}

type bucket struct {
	rate, tokens float64
	last         time.Time
}

// take spends one token of range id's bucket (refilled at rate per second,
// holding at most one second's worth) and reports whether there was one.
func (q *quotas) take(id keys.RangeID, rate float64, now time.Time) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.buckets == nil {
		q.buckets = map[keys.RangeID]*bucket{}
	}
	b := q.buckets[id]
	burst := max(rate, 1)
	if b == nil || b.rate != rate {
		b = &bucket{rate: rate, tokens: burst, last: now}
		q.buckets[id] = b
	}
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = min(burst, b.tokens+el*rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// checkQuota refuses a write of table t on range leader r that would add
// growth bytes, by t's quotas.
func (rt *Router) checkQuota(r *replica.Replica, t *cairnpb.Table, growth int) error {
	if t.MaxBytes > 0 && growth > 0 {
		size := rt.tableBytes(t)
		if size+uint64(growth) > t.MaxBytes {
			return kv.Errorf(kv.ErrQuotaBytes, "table %q holds %d bytes; its quota is %d", t.Name, size, t.MaxBytes)
		}
	}
	if t.MaxWritesPerSec > 0 {
		rate := float64(t.MaxWritesPerSec) / float64(max(1, len(t.Ranges)))
		if !rt.quotas.take(r.ID, rate, time.Now()) {
			return kv.Errorf(kv.ErrQuotaRate, "table %q allows %d writes/s; retry later", t.Name, t.MaxWritesPerSec)
		}
	}
	return nil
}

// checkReadQuota refuses a read of table t on the local replica r when
// r's share of t's read quota is spent.
func (rt *Router) checkReadQuota(r *replica.Replica, t *cairnpb.Table) error {
	if t.MaxReadsPerSec == 0 {
		return nil
	}
	d := r.Desc()
	rate := float64(t.MaxReadsPerSec) / float64(max(1, len(t.Ranges))) / float64(max(1, len(d.Replicas)+len(d.Learners)))
	if !rt.readQuotas.take(r.ID, rate, time.Now()) {
		return kv.Errorf(kv.ErrQuotaRate, "table %q allows %d reads/s; retry later", t.Name, t.MaxReadsPerSec)
	}
	return nil
}

// putGrowth is what a put may add to its table's size.
func putGrowth(key, value []byte) int { return len(key) + len(value) + 9 }

// batchGrowth is what a batch's puts may add.
func batchGrowth(req *cairnpb.BatchRequest) int {
	n := 0
	for _, op := range req.Ops {
		if p, ok := op.Op.(*cairnpb.BatchOp_Put); ok {
			n += putGrowth(p.Put.Key, p.Put.Value)
		}
	}
	return n
}

// prewriteGrowth is what a transaction's writes on one range may add.
func prewriteGrowth(p *cairnpb.TxnPrewrite) int {
	n := 0
	for _, op := range p.Ops {
		if op.Kind == cairnpb.TxnOp_PUT {
			n += putGrowth(op.Key, op.Value)
		}
	}
	return n
}
