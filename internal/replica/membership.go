package replica

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/kv"
)

// Replica moves. A range's replica set changes one step at a time, each a
// Raft configuration change of the range itself (docs/design/placement.md):
//
//	add_learner  a new replica that receives the log but does not vote
//	promote      a caught-up learner becomes a voter
//	demote       a voter becomes a learner (the meta range keeps a copy
//	             on every member)
//	remove       a voter or a learner leaves
//
// Each step changes the voters by at most one, so any two successive
// configurations share a quorum and a move never loses one (the simple
// changes of the Raft thesis; etcd raft checks it too). A step carries the
// conf_version of the descriptor it was planned against and applies only
// if it is still current, so two schedulers (an old coordinator and a new
// one) can never stack conflicting changes: the loser's step is refused
// identically by every replica.

// Change operations.
const (
	OpAddLearner = "add_learner"
	OpPromote    = "promote"
	OpDemote     = "demote"
	OpRemove     = "remove"
	// OpUnfence is not a configuration change: a command recording that
	// a removed node's old replica is gone (applyUnfence).
	OpUnfence = "unfence"
)

// ChangeReplicas proposes one step and waits until it is applied here. It
// returns the new descriptor. Only the leader proposes; a refused step
// (stale conf_version, a node already there) returns its reason.
func (r *Replica) ChangeReplicas(ctx context.Context, op string, node, expectedConfVersion uint64) (*cairnpb.RangeDescriptor, error) {
	done, err := r.ChangeReplicasAsync(op, node, expectedConfVersion)
	if err != nil {
		return nil, err
	}
	select {
	case res := <-done:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Desc, nil
	case <-ctx.Done():
		// Raft turns a change proposed while another is pending into an
		// empty entry, so a waiter can also end here: the caller rereads
		// the descriptor.
		return nil, kv.Errorf(kv.ErrTimeout, "range %d: replica change not applied in time: %v", r.ID, ctx.Err())
	}
}

// ChangeReplicasAsync queues one step and returns the channel its Result
// (with the new descriptor) arrives on once applied here. The simulator
// uses it to keep one goroutine; ChangeReplicas wraps it.
func (r *Replica) ChangeReplicasAsync(op string, node, expectedConfVersion uint64) (<-chan Result, error) {
	var t raftpb.ConfChangeType
	switch op {
	case OpAddLearner, OpDemote:
		t = raftpb.ConfChangeAddLearnerNode
	case OpPromote:
		t = raftpb.ConfChangeAddNode
	case OpRemove:
		t = raftpb.ConfChangeRemoveNode
	default:
		return nil, kv.Errorf(kv.ErrInvalidArgument, "replica change %q: want add_learner, promote, demote or remove", op)
	}
	if node == 0 {
		return nil, kv.Errorf(kv.ErrInvalidArgument, "replica change without a node")
	}
	if r.destroyed.Load() {
		return nil, kv.Errorf(kv.ErrNotLeader, "range %d was removed", r.ID)
	}
	p := &proposal{id: r.nextProposalID.Add(1), done: make(chan Result, 1)}
	cctx, err := proto.Marshal(&cairnpb.ChangeReplicas{NodeId: r.opts.NodeID, ProposalId: p.id, ExpectedConfVersion: expectedConfVersion, Demote: op == OpDemote})
	if err != nil {
		return nil, kv.Errorf(kv.ErrInternal, "marshal change: %v", err)
	}
	p.cc = &raftpb.ConfChangeV2{Changes: []raftpb.ConfChangeSingle{{Type: t, NodeID: node}}, Context: cctx}
	return r.enqueue(p)
}

// TransferLeader asks raft to hand leadership to node (a voter). The
// transfer completes asynchronously; the caller watches Leader.
func (r *Replica) TransferLeader(node uint64) error {
	if !r.IsLeader() {
		return kv.Errorf(kv.ErrNotLeader, "range %d: not the leader", r.ID)
	}
	if !slices.Contains(r.Desc().Replicas, node) {
		return kv.Errorf(kv.ErrInvalidArgument, "range %d: node %d is not a voter", r.ID, node)
	}
	r.mu.Lock()
	r.mu.transferTo = node
	r.mu.Unlock()
	r.notify(r.ID)
	return nil
}

// refuseConfChange is the no-op every replica applies for a refused step:
// raft skips a change of node 0 (etcd's own convention).
var refuseConfChange = raftpb.ConfChangeV2{Changes: []raftpb.ConfChangeSingle{{Type: raftpb.ConfChangeAddNode, NodeID: raft.None}}}

// applyConfChangeV2 applies (or refuses, deterministically) one step.
func (r *Replica) applyConfChangeV2(cc raftpb.ConfChangeV2, term uint64, out *Applied) error {
	meta := &cairnpb.ChangeReplicas{}
	res := Result{}
	if err := proto.Unmarshal(cc.Context, meta); err != nil {
		res.Err = kv.Errorf(kv.ErrInternal, "range %d: replica change without a valid context", r.ID)
	} else {
		res.Err = r.checkConfChange(cc, meta, term)
	}
	if res.Err != nil {
		if err := r.applyRaftConf(refuseConfChange); err != nil {
			return err
		}
	} else {
		if err := r.applyRaftConf(cc); err != nil {
			return err
		}
		var cs raftpb.ConfState
		if err := cs.Unmarshal(r.state.ConfState); err != nil {
			return err
		}
		d := cloneDesc(r.Desc())
		d.Replicas = slices.Sorted(slices.Values(cs.Voters))
		d.Learners = slices.Sorted(slices.Values(cs.Learners))
		d.ConfVersion++
		ch := cc.Changes[0]
		switch {
		case ch.Type == raftpb.ConfChangeRemoveNode:
			// Fenced until its old replica is known gone (Unfence).
			d.Removed = slices.DeleteFunc(d.Removed, func(rr *cairnpb.RemovedReplica) bool { return rr.Node == ch.NodeID })
			d.Removed = append(d.Removed, &cairnpb.RemovedReplica{Node: ch.NodeID})
			slices.SortFunc(d.Removed, func(a, b *cairnpb.RemovedReplica) int { return cmp.Compare(a.Node, b.Node) })
		case ch.Type == raftpb.ConfChangeAddLearnerNode && !meta.Demote:
			d.Removed = slices.DeleteFunc(d.Removed, func(rr *cairnpb.RemovedReplica) bool { return rr.Node == ch.NodeID })
		}
		r.state.Desc = d
		r.desc.Store(d)
		res.Desc = cloneDesc(d)
		out.Effects = append(out.Effects, Effect{Changed: cloneDesc(d),
			Removed: ch.Type == raftpb.ConfChangeRemoveNode && ch.NodeID == r.opts.NodeID})
	}
	if meta.NodeId == r.opts.NodeID {
		if p, ok := r.waiters[meta.ProposalId]; ok {
			delete(r.waiters, meta.ProposalId)
			out.fire = append(out.fire, func() { p.done <- res })
		}
	}
	return nil
}

// checkConfChange decides whether a step applies: the same answer on every
// replica, from the replicated descriptor and configuration only.
func (r *Replica) checkConfChange(cc raftpb.ConfChangeV2, meta *cairnpb.ChangeReplicas, term uint64) error {
	d := r.Desc()
	if r.state.Frozen != nil {
		// A merge checks that both ranges have the same replicas against
		// the frozen descriptor: it must stay true.
		return kv.Errorf(kv.ErrConditionFailed, "range %d is frozen for a merge", r.ID)
	}
	if meta.ExpectedConfVersion != d.ConfVersion {
		return kv.Errorf(kv.ErrConditionFailed, "range %d: conf version is %d, change expected %d", r.ID, d.ConfVersion, meta.ExpectedConfVersion)
	}
	if len(cc.Changes) != 1 || cc.Transition != raftpb.ConfChangeTransitionAuto {
		return kv.Errorf(kv.ErrInvalidArgument, "range %d: one simple change at a time", r.ID)
	}
	var cs raftpb.ConfState
	if err := cs.Unmarshal(r.state.ConfState); err != nil {
		return kv.Errorf(kv.ErrInternal, "range %d: conf state: %v", r.ID, err)
	}
	if len(cs.VotersOutgoing) > 0 {
		return kv.Errorf(kv.ErrConditionFailed, "range %d: in a joint configuration", r.ID)
	}
	ch := cc.Changes[0]
	voter, learner := slices.Contains(cs.Voters, ch.NodeID), slices.Contains(cs.Learners, ch.NodeID)
	switch ch.Type {
	case raftpb.ConfChangeAddLearnerNode:
		if meta.Demote {
			if !voter {
				return kv.Errorf(kv.ErrConditionFailed, "range %d: node %d is not a voter", r.ID, ch.NodeID)
			}
			if len(cs.Voters) == 1 {
				return kv.Errorf(kv.ErrConditionFailed, "range %d: node %d is the last voter", r.ID, ch.NodeID)
			}
			break
		}
		if voter || learner {
			return kv.Errorf(kv.ErrConditionFailed, "range %d: node %d already holds a replica", r.ID, ch.NodeID)
		}
		if rr := removedEntry(d, ch.NodeID); rr != nil && (rr.FenceTerm == 0 || term <= rr.FenceTerm) {
			return kv.Errorf(kv.ErrConditionFailed, "range %d: node %d left this range and is fenced (fence term %d, this entry's term %d): it may rejoin after its old replica is gone (unfence) and the term moved on",
				r.ID, ch.NodeID, rr.FenceTerm, term)
		}
	case raftpb.ConfChangeAddNode:
		if !learner {
			return kv.Errorf(kv.ErrConditionFailed, "range %d: node %d is not a learner", r.ID, ch.NodeID)
		}
	case raftpb.ConfChangeRemoveNode:
		if !voter && !learner {
			return kv.Errorf(kv.ErrConditionFailed, "range %d: node %d holds no replica", r.ID, ch.NodeID)
		}
		if voter && len(cs.Voters) == 1 {
			return kv.Errorf(kv.ErrConditionFailed, "range %d: node %d is the last voter", r.ID, ch.NodeID)
		}
	default:
		return kv.Errorf(kv.ErrInvalidArgument, "range %d: unsupported change %v", r.ID, ch.Type)
	}
	return nil
}

// applyRaftConf hands a configuration to raft and records the result.
func (r *Replica) applyRaftConf(cc raftpb.ConfChangeI) error {
	// A new configuration's quorums need not overlap the one that last
	// confirmed the lease: start it over.
	r.leaseUntil.Store(0)
	cs := r.rn.ApplyConfChange(cc)
	csb, err := cs.Marshal()
	if err != nil {
		return fmt.Errorf("conf state: %w", err)
	}
	r.state.ConfState = csb
	r.log.SetConfState(*cs)
	return nil
}

// catchUpSlack is how far behind the commit index a replica may be and
// still count as caught up.
const catchUpSlack = 256

// noteProgress records, on the leader, which replicas' logs match the
// commit index (CaughtUp). Driver only; called every election timeout.
func (r *Replica) noteProgress() {
	if r.rn.BasicStatus().RaftState != raft.StateLeader {
		r.caughtUp.Store(nil)
		r.lag.Store(nil)
		return
	}
	commit := r.commit.Load()
	var ids []uint64
	var lag []*cairnpb.ReplicaLag
	r.rn.WithProgress(func(id uint64, _ raft.ProgressType, pr tracker.Progress) {
		// Replicating (past any snapshot) and near the commit index: a
		// learner promoted then is a voter that can join quorums at once.
		if pr.State == tracker.StateReplicate && pr.Match+catchUpSlack >= commit {
			ids = append(ids, id)
		}
		if id != r.opts.NodeID {
			lag = append(lag, &cairnpb.ReplicaLag{Node: id, Entries: commit - min(pr.Match, commit)})
		}
	})
	slices.Sort(ids)
	slices.SortFunc(lag, func(a, b *cairnpb.ReplicaLag) int { return cmp.Compare(a.Node, b.Node) })
	r.caughtUp.Store(&ids)
	r.lag.Store(&lag)
}

// CaughtUp returns, on the leader, the replicas (voters and learners)
// whose logs were near the commit index at the last check, which is at most
// an election timeout old; nil on a follower. Any goroutine.
func (r *Replica) CaughtUp() []uint64 {
	if p := r.caughtUp.Load(); p != nil && r.IsLeader() {
		return *p
	}
	return nil
}

// Lag returns, on the leader, how far each other replica's log was behind
// the commit index when last noted (every election timeout).
func (r *Replica) Lag() []*cairnpb.ReplicaLag {
	if p := r.lag.Load(); p != nil && r.IsLeader() {
		return *p
	}
	return nil
}

func removedEntry(d *cairnpb.RangeDescriptor, node uint64) *cairnpb.RemovedReplica {
	for _, rr := range d.Removed {
		if rr.Node == node {
			return rr
		}
	}
	return nil
}

// RemovedNodes returns the nodes that left the range.
func RemovedNodes(d *cairnpb.RangeDescriptor) []uint64 {
	var out []uint64
	for _, rr := range d.Removed {
		out = append(out, rr.Node)
	}
	return out
}

// applyUnfence records, in the term of its entry, that a removed node's old
// replica is gone. The fence is that term: an add of the node applies only
// in an entry of a later term. Why that is safe: the old replica was
// destroyed before this entry was proposed, so it never learned a term
// after this one, and every message it ever sent (some may still be in
// flight, or queued on its node) carries a term at most this one, which
// any leader of a later term ignores. Without the fence such a message (an
// acknowledgement of entries) could be counted for the new, empty replica.
func (r *Replica) applyUnfence(u *cairnpb.Unfence, term uint64) (Result, error) {
	d := r.Desc()
	rr := removedEntry(d, u.Node)
	if rr == nil {
		return Result{Err: kv.Errorf(kv.ErrConditionFailed, "range %d: node %d is not a removed node", r.ID, u.Node)}, nil
	}
	if rr.FenceTerm != 0 {
		return Result{Desc: cloneDesc(d)}, nil // already unfenced
	}
	nd := cloneDesc(d)
	removedEntry(nd, u.Node).FenceTerm = term
	// A new version of the descriptor, so the catalog records it.
	nd.ConfVersion++
	r.state.Desc = nd
	r.desc.Store(nd)
	return Result{Desc: cloneDesc(nd)}, nil
}
