package replica

import (
	"bytes"
	"slices"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
)

// Quiescence: an idle range stops ticking (docs/design/quiescence.md).
//
// A Raft group costs its node work on every tick even when nothing
// happens: the leader sends a heartbeat per follower per HeartbeatTicks,
// every follower counts towards an election timeout. With thousands of
// ranges per node that is most of an idle node's CPU. A quiesced replica
// is not ticked at all (the store keeps the set of awake replicas and
// ticks only those), so an idle range costs nothing but memory.
//
// Invariants:
//
//  1. Only a leader starts quiescence, and only when the range is idle
//     (no proposal, read or incoming message for quiesceIdleTicks ticks,
//     nothing queued or in flight, no leadership transfer) and settled:
//     its log is committed and applied up to its last index, and every
//     follower's match index is that last index.
//  2. The leader then sends every peer a heartbeat carrying
//     quiesceContext and stops ticking. A follower that receives it
//     steps it as any heartbeat (it resets its election timer and learns
//     the commit index) and stops ticking too if, after that, it follows
//     the sender in the heartbeat's term with the heartbeat's commit
//     index. Otherwise it keeps ticking and, at worst, its election
//     timeout wakes the group.
//  3. Anything else wakes a replica: a proposal, a read (also one served
//     from the lease), a freshness request, a leadership transfer, any
//     incoming message other than a quiesce heartbeat or its response. A
//     follower woken by anything but its leader's message also pokes its
//     leader (an empty heartbeat response, which raft steps harmlessly
//     and which wakes the leader), so that a woken group never waits out
//     an election timeout for a leader that is alive but asleep.
//  4. A replica that keeps ticking without a word from its leader for
//     half an election timeout (it missed the quiesce heartbeat, was woken
//     by the store, or restarted and knows no leader) pokes its leader, or
//     every voter it knows if it knows none, and does so again every half
//     election timeout while the silence lasts (pokeSilentLeader). A
//     learner never campaigns: without the poke a learner that missed the
//     entry promoting it waits forever for a leader that quiesced
//     believing it caught up (RELIABILITY.md #20). A voter would campaign
//     after an election timeout, but a live leader it merely did not hear
//     from refuses that campaign (and so do the other voters, within its
//     lease), while the voter, a pre-candidate, knows no leader and
//     refuses reads (#23): half a timeout leaves the woken leader time to
//     send its heartbeat first.
//  5. A quiesced follower does not notice its leader's death by itself;
//     the store does: it tracks the liveness of every node (node
//     heartbeats) and wakes the quiesced followers of ranges whose leader
//     runs on a node it has not heard from for an election timeout
//     (WakeIfLeader). They poke the leader at once (it may only be slow)
//     and campaign after an election timeout of ticks without an answer,
//     as if the leader had just gone quiet.
//
// Why leases stay safe: a lease (lease.go) relies on followers not
// voting for another candidate before they counted an election timeout of
// ticks since they last heard from the leader. A quiesced follower counts
// no ticks at all, so it waits longer, never shorter; the lease itself
// ends by the wall clock, which a quiesced leader keeps reading. A
// quiesced leader serves lease reads only while its lease is valid (and
// such a read wakes it, so that it renews the lease); afterwards a read
// queues a read index round, which wakes the group.
//
// The meta range never quiesces: it is one range, carries the
// coordinator's work, and must never wait for a wake-up.

// quiesceContext marks the leader's quiesce heartbeat (and raft echoes it
// in the follower's response). It cannot be a read index context, whose
// contexts are 16 bytes (sendReadIndex).
var quiesceContext = []byte("cairn:quiesce")

// quiesceIdleTicks is how many ticks without activity a leader waits
// before it quiesces its range: an election timeout, so a range that is
// used about once a second never quiesces and pays no wake-ups.
func (r *Replica) quiesceIdleTicks() int { return r.opts.ElectionTicks }

// isQuiesceMsg reports whether m is a quiesce heartbeat or its response:
// the only messages that do not wake a quiesced replica.
func isQuiesceMsg(m raftpb.Message) bool {
	return (m.Type == raftpb.MsgHeartbeat || m.Type == raftpb.MsgHeartbeatResp) &&
		bytes.Equal(m.Context, quiesceContext)
}

// Quiesced reports whether the replica is quiesced: the store does not
// tick it. Driver only.
func (r *Replica) Quiesced() bool { return r.quiesced }

// IsQuiesced is Quiesced for any goroutine (metrics, status).
func (r *Replica) IsQuiesced() bool { return r.quiescedFlag.Load() }

// markActive records activity from any goroutine: the replica does not
// quiesce for quiesceIdleTicks, and a quiesced one asks the driver to
// wake it.
func (r *Replica) markActive() {
	r.active.Store(true)
	if r.quiescedFlag.Load() {
		r.notify(r.ID)
	}
}

// unquiesce wakes the replica; pokeLeader also wakes its leader (see
// invariant 3). Driver only.
func (r *Replica) unquiesce(pokeLeader bool) {
	if !r.quiesced {
		return
	}
	r.idleTicks, r.silentTicks = 0, 0
	r.quiesced = false
	r.quiescedFlag.Store(false)
	r.stats().Unquiesces.Add(1)
	if !pokeLeader {
		return
	}
	st := r.rn.BasicStatus()
	if st.Lead == raft.None || st.Lead == r.opts.NodeID {
		return
	}
	r.outbox = append(r.outbox, raftpb.Message{
		Type: raftpb.MsgHeartbeatResp, To: st.Lead, From: r.opts.NodeID, Term: st.Term,
	})
}

// WakeIfLeader wakes the replica if it is quiesced and follows node: the
// store calls it when node seems down (invariant 4). It reports whether
// it woke. Driver only.
func (r *Replica) WakeIfLeader(node uint64) bool {
	if !r.quiesced || r.rn.BasicStatus().Lead != node {
		return false
	}
	r.unquiesce(true)
	return true
}

// pokeSilentLeader counts the ticks since this replica last heard from
// its leader and, after half an election timeout of them, pokes the leader (or
// every voter, if it knows no leader) awake (invariant 4). Driver only,
// from Tick, before raft's tick: at the tick where raft campaigns too, the
// leader it knows still gets its poke.
func (r *Replica) pokeSilentLeader() {
	st := r.rn.BasicStatus()
	if st.RaftState != raft.StateFollower {
		// A leader has no leader to poke; a (pre-)candidate's vote
		// requests wake every voter already.
		r.silentTicks = 0
		return
	}
	if r.silentTicks++; r.silentTicks < r.silentPokeTicks() {
		return
	}
	r.silentTicks = 0
	r.stats().LeaderPokes.Add(1)
	to := []uint64{st.Lead}
	if st.Lead == raft.None {
		to = to[:0]
		for _, id := range r.Desc().Replicas {
			if id != r.opts.NodeID {
				to = append(to, id)
			}
		}
	}
	for _, id := range to {
		r.outbox = append(r.outbox, raftpb.Message{
			Type: raftpb.MsgHeartbeatResp, To: id, From: r.opts.NodeID, Term: st.Term,
		})
	}
}

// silentPokeTicks is how many ticks without a word from the leader make
// a replica poke it: half an election timeout (invariant 4).
func (r *Replica) silentPokeTicks() int { return max(1, r.opts.ElectionTicks/2) }

// noteStep wakes the replica for an incoming message m unless m is a
// quiesce heartbeat or its response, and restarts the leader's idle count
// unless m is heartbeat traffic (which an idle group has too). Driver
// only.
func (r *Replica) noteStep(m raftpb.Message) {
	if m.From == r.leader.Load() {
		r.silentTicks = 0
	}
	if isQuiesceMsg(m) {
		return
	}
	if m.Type != raftpb.MsgHeartbeat && m.Type != raftpb.MsgHeartbeatResp {
		r.idleTicks = 0
	}
	if r.quiesced {
		r.unquiesce(m.From != r.rn.BasicStatus().Lead)
	}
}

// Wake wakes the replica (and its leader, if this is a follower). Driver
// only.
func (r *Replica) Wake() { r.unquiesce(true) }

// TakeMessages returns the messages the replica produced outside Ready
// since the last call (read index answers from the lease, quiesce
// heartbeats, leader pokes), for the store to send. Driver only.
func (r *Replica) TakeMessages() []raftpb.Message {
	out := r.leaseReplies
	out = append(out, r.outbox...)
	r.leaseReplies, r.outbox = nil, nil
	return out
}

// maybeQuiesce quiesces an idle, settled leader (invariant 1) and queues
// its quiesce heartbeats. It reports whether it did. Driver only, from
// Tick, before raft's tick (whose heartbeats would leave a Ready).
func (r *Replica) maybeQuiesce() bool {
	if !r.opts.Quiesce || r.quiesced || r.ID == MetaRangeID || r.idleTicks < r.quiesceIdleTicks() {
		return false
	}
	if !r.idleLocally() || r.rn.HasReady() {
		return false
	}
	// BasicStatus and WithProgress, not Status: this runs every tick on an
	// idle leader that cannot quiesce (a peer down), so it must not
	// allocate a progress map each time.
	st := r.rn.BasicStatus()
	if st.RaftState != raft.StateLeader || st.LeadTransferee != raft.None {
		return false
	}
	last, err := r.log.LastIndex()
	if err != nil || st.Commit != last || st.Applied != last || r.applied.Load() != last {
		return false
	}
	// Every peer has the whole log and is replicating: a peer still in
	// probe (after a snapshot, say) is not counted caught up
	// (noteProgress), and a quiesced leader would never recount it, so a
	// learner would never be promoted.
	settled := true
	var peers []uint64
	r.rn.WithProgress(func(id uint64, _ raft.ProgressType, pr tracker.Progress) {
		if pr.Match != last || (id != r.opts.NodeID && pr.State != tracker.StateReplicate) {
			settled = false
		}
		if id != r.opts.NodeID {
			peers = append(peers, id)
		}
	})
	if !settled {
		return false
	}
	r.noteProgress()
	// In ID order: a deterministic simulation replays the messages sent.
	slices.Sort(peers)
	for _, id := range peers {
		r.outbox = append(r.outbox, raftpb.Message{
			Type: raftpb.MsgHeartbeat, To: id, From: r.opts.NodeID, Term: st.Term,
			Commit: st.Commit, Context: quiesceContext,
		})
	}
	r.quiesce()
	return true
}

// maybeQuiesceFollower quiesces a follower after it stepped the quiesce
// heartbeat m, if it follows m's sender in m's term at m's commit index
// and has nothing of its own in flight (invariant 2). Driver only.
func (r *Replica) maybeQuiesceFollower(m raftpb.Message) {
	if !r.opts.Quiesce || r.quiesced || r.ID == MetaRangeID || m.Type != raftpb.MsgHeartbeat {
		return
	}
	st := r.rn.BasicStatus()
	if st.RaftState != raft.StateFollower || st.Lead != m.From || st.Term != m.Term || st.Commit != m.Commit {
		return
	}
	if !r.idleLocally() {
		return
	}
	r.quiesce()
}

func (r *Replica) quiesce() {
	r.quiesced = true
	r.quiescedFlag.Store(true)
	r.stats().Quiesces.Add(1)
}

// idleLocally reports whether nothing is queued or in flight on this
// replica. Driver only.
func (r *Replica) idleLocally() bool {
	if len(r.waiters) > 0 || len(r.readsInflight) > 0 || len(r.readsIndexed) > 0 ||
		len(r.leaseReplies) > 0 || r.wantFresh.Load() {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.mu.proposals) == 0 && len(r.mu.reads) == 0 && len(r.mu.leaseReads) == 0 && r.mu.transferTo == 0
}
