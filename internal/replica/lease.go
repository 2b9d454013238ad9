package replica

import (
	"time"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/cairn-db/cairn/internal/kv"
)

// Leader read leases.
//
// A linearizable read needs proof that no other leader has committed
// anything this replica has not applied. Raft's ReadIndex gets that proof
// with a round of heartbeats per read (batched). A lease reuses one proof
// for a while: when a read index round that this node sent as leader at
// time T (its own clock) comes back confirmed in the same term, a quorum
// of followers heard from this leader after T. Each of them refuses to vote
// for another candidate until it has counted an election timeout of ticks
// without hearing from us (etcd raft's CheckQuorum "leader stickiness",
// which PreVote also honours). Ticks never run faster than the wall clock,
// and at most two come early after a stalled driver, so no other leader
// can exist before T + (ElectionTicks-2) ticks. The lease runs to
//
//	T + (ElectionTicks-3) * TickInterval
//
// one tick of margin for rate differences between the clocks. While it
// runs, the leader serves a read at its current commit index without a
// round trip: it answers at once if it has applied that far, else when it
// has.
//
// Why the wall clock and not ticks (raft's own ReadOnlyLeaseBased): a
// leader that is paused (a GC pause, SIGSTOP, a frozen VM) stops ticking,
// so a tick-based lease would outlive its real validity; the wall clock
// keeps running through the pause, so the lease is over when it resumes.
//
// A restart forgets who the leader was, and a node that forgot would vote
// at once, cutting a lease short. So a node drops vote requests for an
// election timeout after it starts (HoldVotesUntil): the price is that a
// cluster whose nodes all restart elects its leaders an election timeout
// later.
//
// A follower's read index request (raft's MsgReadIndex, sent when a read
// arrives at a follower) is answered by a leader under a lease at once,
// with its commit index, instead of after a heartbeat round: the same
// proof covers it. The follower then serves the read once it has applied
// that far.
//
// Leases are renewed in the background while reads use them: a tick that
// finds less than half a lease left sends a read index round without
// waiters. An idle range's lease lapses, and its next read pays one round.
//
// A leadership transfer ends the lease for the rest of the leader's term.
// The transferee campaigns on MsgTimeoutNow, and voters grant that vote
// despite the stickiness above, so the new leader can commit writes while
// the old leader's lease runs; an old leader that kept serving lease reads
// until it heard of the new term (late, behind a slow link) returned stale
// data (RELIABILITY.md #25). Ending the lease only until the transfer is
// over would not do: raft aborts a transfer after an election timeout, but
// its MsgTimeoutNow may still be on its way and still win an election. So
// a leader that started a transfer serves reads by read index rounds until
// the term changes.

type leaseRead struct {
	w     *readWaiter
	index uint64
}

// leaseDuration is how long a confirmed read index round lets the leader
// serve reads alone; 0 disables leases.
func (r *Replica) leaseDuration() int64 {
	if r.opts.TickInterval <= 0 || r.opts.ElectionTicks < 5 {
		return 0
	}
	return int64(time.Duration(r.opts.ElectionTicks-3) * r.opts.TickInterval)
}

func (r *Replica) nowNanos() int64 { return int64(r.opts.Now().Sub(r.base)) }

// leaseReadIndex returns the index a read may be served at under the
// lease, if this replica leads with a valid lease. Any goroutine.
func (r *Replica) leaseReadIndex() (uint64, bool) {
	idx, ok := r.leaseReadIndexPeek()
	if ok {
		r.leaseUsed.Store(true)
		r.markActive()
		r.stats().LeaseReads.Add(1)
	}
	return idx, ok
}

// awaitApplied returns nil if index is applied, else a channel that
// yields once it is.
func (r *Replica) awaitApplied(index uint64) (<-chan error, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	// Checked under the lock that releaseLeaseReads takes: either we see
	// the index it made visible or it sees our waiter.
	if r.mu.visible >= index {
		return nil, nil
	}
	if len(r.mu.leaseReads) >= r.opts.MaxPending {
		return nil, kv.Errorf(kv.ErrUnavailable, "range %d: %d reads queued", r.ID, r.opts.MaxPending)
	}
	w := &readWaiter{done: make(chan error, 1)}
	r.mu.leaseReads = append(r.mu.leaseReads, leaseRead{w: w, index: index})
	return w.done, nil
}

// releaseLeaseReads wakes the lease reads whose index is applied. Driver
// only.
func (r *Replica) releaseLeaseReads(applied uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mu.visible = applied
	r.visible.Store(applied)
	kept := r.mu.leaseReads[:0]
	for _, lr := range r.mu.leaseReads {
		if lr.index <= applied {
			lr.w.done <- nil
			continue
		}
		kept = append(kept, lr)
	}
	clear(r.mu.leaseReads[len(kept):])
	r.mu.leaseReads = kept
}

// endLeaseForTransfer ends the lease for the rest of this term before
// this leader starts a leadership transfer (its MsgTimeoutNow leaves in a
// later Ready). Driver only.
func (r *Replica) endLeaseForTransfer() {
	r.noLeaseTerm.Store(r.rn.BasicStatus().Term)
	r.leaseUntil.Store(0)
}

// extendLease extends the lease after rb's read index came back. Driver
// only, after the Ready's hard state and leader were recorded.
func (r *Replica) extendLease(rb *readBatch) {
	d := r.leaseDuration()
	if d == 0 || rb.leaderTerm == 0 || rb.leaderTerm != r.term.Load() || !r.IsLeader() {
		return
	}
	if rb.leaderTerm == r.noLeaseTerm.Load() {
		return // a transfer started in this term
	}
	until := rb.sentAt + d
	if until <= r.leaseUntil.Load() {
		return
	}
	r.leaseTerm.Store(rb.leaderTerm)
	r.leaseUntil.Store(until)
}

// maybeRenewLease sends a read index round without waiters when reads used
// the lease and less than half of it is left. Driver only.
func (r *Replica) maybeRenewLease() {
	d := r.leaseDuration()
	if d == 0 || !r.leaseUsed.Load() || !r.IsLeader() {
		return
	}
	now := r.nowNanos()
	if r.leaseUntil.Load()-now > d/2 || now-r.lastRenewal < d/4 {
		return
	}
	st := r.rn.BasicStatus()
	if st.Lead != r.opts.NodeID {
		return
	}
	r.leaseUsed.Store(false)
	r.lastRenewal = now
	r.sendReadIndex(&readBatch{}, st.Term)
}

// HasLease reports whether this replica leads under a valid read lease.
func (r *Replica) HasLease() bool {
	_, ok := r.leaseReadIndexPeek()
	return ok
}

func (r *Replica) leaseReadIndexPeek() (uint64, bool) {
	if !r.IsLeader() {
		return 0, false
	}
	// Load order matters: extendLease stores the term, then the end.
	until := r.leaseUntil.Load()
	term := r.term.Load()
	if until == 0 || r.nowNanos() >= until || r.leaseTerm.Load() != term || r.noLeaseTerm.Load() == term {
		return 0, false
	}
	return r.commit.Load(), true
}

// answerFromLease answers a follower's read index request from the lease,
// if this replica leads under one, and reports whether it did. Driver
// only; the store sends the answer (TakeLeaseReplies).
func (r *Replica) answerFromLease(m raftpb.Message) bool {
	// (raft sends MsgReadIndex without a term, like a proposal.)
	if m.From == r.opts.NodeID || m.From == 0 || len(m.Entries) != 1 {
		return false
	}
	idx, ok := r.leaseReadIndexPeek()
	if !ok {
		return false
	}
	r.leaseUsed.Store(true)
	r.stats().LeaseReads.Add(1)
	r.leaseReplies = append(r.leaseReplies, raftpb.Message{
		Type: raftpb.MsgReadIndexResp, To: m.From, From: r.opts.NodeID,
		Term: r.term.Load(), Index: idx, Entries: m.Entries,
	})
	return true
}

// TakeLeaseReplies returns the read index answers given from the lease
// since the last call, for the store to send. Driver only.
// (Quiescence adds messages of its own; TakeMessages returns both.)
func (r *Replica) TakeLeaseReplies() []raftpb.Message { return r.TakeMessages() }
