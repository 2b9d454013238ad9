package replica

import (
	"context"
	"time"

	"github.com/cairn-db/cairn/internal/kv"
)

// Session and bounded-stale reads (docs/design/reads.md, "Consistency
// levels"). Both serve from this replica's Pebble without a Raft round
// when it can prove it has applied far enough:
//
//   - a session read needs the visible index to reach the session
//     token's entry for this range (SessionBarrier);
//   - a stale read needs a freshness proof (S, C), a ReadIndex round this
//     replica sent at S (its own clock) that came back with index C, with
//     now − S within the bound and the visible index at C (StaleBarrier).
//
// The proof is recorded in AfterPersist for every ReadIndex round of
// this replica, with or without waiters; a leader under a valid lease
// has the trivial proof (now, commit).

// freshness is the newest freshness proof: sentAt in nanoseconds since
// r.base (0: none), index the read index the round returned.
type freshness struct {
	sentAt int64
	index  uint64
}

// noteFreshness records the proof of a read index round that returned.
// Driver only.
func (r *Replica) noteFreshness(rb *readBatch) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rb.sentAt > r.mu.fresh.sentAt {
		r.mu.fresh = freshness{sentAt: rb.sentAt, index: rb.index}
	}
}

// freshnessProof returns the newest proof; a leader under a valid lease
// returns (now, commit). Any goroutine.
func (r *Replica) freshnessProof() (freshness, bool) {
	if idx, ok := r.leaseReadIndexPeek(); ok {
		return freshness{sentAt: r.nowNanos(), index: idx}, true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mu.fresh, r.mu.fresh.sentAt != 0
}

// requestFreshness asks the driver for a read index round without
// waiters (to refresh the proof), unless one was asked for within
// minInterval. Any goroutine.
func (r *Replica) requestFreshness(minInterval time.Duration) {
	now := r.nowNanos()
	last := r.freshAskedAt.Load()
	if now-last < int64(minInterval) || !r.freshAskedAt.CompareAndSwap(last, now) {
		return
	}
	r.wantFresh.Store(true)
	r.notify(r.ID)
}

// VisibleIndex is the applied index whose apply batch is committed to
// Pebble: a read of Pebble now sees at least this state.
func (r *Replica) VisibleIndex() uint64 { return r.visible.Load() }

// SessionEntry describes the state a read of Pebble now sees, as a
// session token entry: the visible index, then the descriptor (loaded in
// that order: a split stores the new descriptor before its index becomes
// visible, so the generation is never older than the index).
func (r *Replica) SessionEntry() kv.SessionEntry {
	idx := r.VisibleIndex()
	d := r.Desc()
	return kv.SessionEntry{Table: d.TableId, Range: d.Id, Generation: d.Generation, Index: idx}
}

// waitVisible waits until index is visible, ctx ends or wait passes, and
// reports whether index became visible.
func (r *Replica) waitVisible(ctx context.Context, index uint64, wait time.Duration) (bool, error) {
	done, err := r.awaitApplied(index)
	if err != nil || done == nil {
		return err == nil, err
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case err := <-done:
		return err == nil, err
	case <-t.C:
	case <-ctx.Done():
	}
	r.cancelAwait(done)
	return false, nil
}

// cancelAwait drops the waiter of an awaitApplied that timed out, so an
// abandoned wait does not hold a slot of MaxPending.
func (r *Replica) cancelAwait(done <-chan error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, lr := range r.mu.leaseReads {
		if (<-chan error)(lr.w.done) == done {
			r.mu.leaseReads = append(r.mu.leaseReads[:i], r.mu.leaseReads[i+1:]...)
			return
		}
	}
}

// SessionBarrier waits up to wait for this replica's visible index to
// reach need, and reports whether it did. false is not an error: the
// caller falls back to a linearizable read.
func (r *Replica) SessionBarrier(ctx context.Context, need uint64, wait time.Duration) (bool, error) {
	if r.destroyed.Load() {
		return false, kv.Errorf(kv.ErrNotLeader, "range %d was removed", r.ID)
	}
	ok, err := r.waitVisible(ctx, need, wait)
	if ok {
		r.stats().SessionReads.Add(1)
	}
	return ok, err
}

// StaleBarrier returns once a read of this replica's Pebble would be at
// most maxStaleness behind: every write acknowledged maxStaleness before
// the return (or later) is visible. It returns the staleness it proved.
// Without a proof fresh enough it runs one ReadIndex round (bounded by
// maxStaleness and ctx); if that fails, kv.ErrTooStale.
func (r *Replica) StaleBarrier(ctx context.Context, maxStaleness time.Duration) (time.Duration, error) {
	if r.destroyed.Load() {
		return 0, kv.Errorf(kv.ErrNotLeader, "range %d was removed", r.ID)
	}
	d := int64(maxStaleness)
	for attempt := 0; attempt < 2; attempt++ {
		if p, ok := r.freshnessProof(); ok {
			age := r.nowNanos() - p.sentAt
			if age > d/2 {
				r.requestFreshness(maxStaleness / 4)
			}
			if age <= d {
				ok, err := r.waitVisible(ctx, p.index, time.Duration(d-age))
				if err != nil {
					return 0, err
				}
				if age = r.nowNanos() - p.sentAt; ok && age <= d {
					r.stats().StaleReads.Add(1)
					return time.Duration(age), nil
				}
			}
		}
		if attempt == 1 {
			break
		}
		// No usable proof: one round, which records a fresh one.
		rctx, cancel := context.WithTimeout(ctx, maxStaleness)
		err := r.ReadBarrier(rctx)
		cancel()
		if err != nil {
			r.stats().StaleRefused.Add(1)
			return 0, kv.Errorf(kv.ErrTooStale, "range %d: replica on node %d cannot prove it is within %v: %v", r.ID, r.opts.NodeID, maxStaleness, err)
		}
	}
	r.stats().StaleRefused.Add(1)
	return 0, kv.Errorf(kv.ErrTooStale, "range %d: replica on node %d cannot prove it is within %v", r.ID, r.opts.NodeID, maxStaleness)
}

// StaleReady reports, without waiting, whether a read of this replica's
// Pebble now is within maxStaleness, and the staleness it proves. When
// the proof is older than half the bound it asks for a fresh one (as
// StaleBarrier does). The simulator uses it: it cannot block.
func (r *Replica) StaleReady(maxStaleness time.Duration) (time.Duration, bool) {
	p, ok := r.freshnessProof()
	if !ok {
		r.requestFreshness(maxStaleness / 4)
		return 0, false
	}
	age := time.Duration(r.nowNanos() - p.sentAt)
	if age > maxStaleness/2 {
		r.requestFreshness(maxStaleness / 4)
	}
	if age > maxStaleness || r.VisibleIndex() < p.index {
		return 0, false
	}
	return age, true
}
