package replica

import (
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/kv"
)

// Proposals caught in a change of leader.
//
// A leader that loses its leadership cannot tell at once what becomes of
// the entries it appended and has not applied: the new leader may have
// them (then they commit in its term) or may not (then its log replaces
// them). Failing their waiters at once with "outcome unknown" would hand
// every client write in flight during a leadership transfer an error the
// client cannot act on, although a transfer, by construction, keeps them
// all.
//
// Raft identifies an entry by its index and term, and the index an entry
// was appended at never changes. So a waiter remembers its entry's index
// (noteIndexes, from the entries this node persists), and when leadership
// is lost it becomes an orphan that keeps waiting:
//
//   - If its entry applies here, the waiter gets its result as usual: the
//     write happened, in whatever term.
//   - If this replica applies past the index without meeting the entry,
//     another entry took the index, so this one can never commit: the
//     waiter fails with kv.ErrNotLeader, which callers retry, because the
//     write certainly did not happen.
//   - If a snapshot carries the replica past the index, or the orphan
//     waits longer than orphanTicks, or its entry never got an index here
//     (leadership was lost before it was persisted; an old leader's
//     message may still carry it elsewhere), the outcome is unknown: the
//     waiter fails with kv.ErrTimeout as before.

// orphanTicksPerElection bounds how long an orphan waits, in election
// timeouts: long enough for an election and the new leader's first commit.
const orphanTicksPerElection = 10

// proposalOf returns the node and proposal ID an entry carries, from the
// Command's first fields (deterministic marshalling writes node_id and
// proposal_id first) or a conf change's ChangeReplicas context.
func proposalOf(e *raftpb.Entry) (node, id uint64, ok bool) {
	switch e.Type {
	case raftpb.EntryNormal:
		b := e.Data
		for len(b) > 0 && (node == 0 || id == 0) {
			num, typ, n := protowire.ConsumeTag(b)
			if n < 0 || typ != protowire.VarintType || num > 2 {
				break
			}
			b = b[n:]
			v, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return 0, 0, false
			}
			b = b[m:]
			if num == 1 {
				node = v
			} else {
				id = v
			}
		}
		return node, id, node != 0 && id != 0
	case raftpb.EntryConfChangeV2:
		var cc raftpb.ConfChangeV2
		if err := cc.Unmarshal(e.Data); err != nil {
			return 0, 0, false
		}
		meta := &cairnpb.ChangeReplicas{}
		if err := proto.Unmarshal(cc.Context, meta); err != nil {
			return 0, 0, false
		}
		return meta.NodeId, meta.ProposalId, meta.NodeId != 0 && meta.ProposalId != 0
	}
	return 0, 0, false
}

// noteIndexes records the log index of this node's waiting proposals
// among ents (entries being persisted). Driver only.
func (r *Replica) noteIndexes(ents []raftpb.Entry) {
	if len(r.waiters) == 0 {
		return
	}
	for i := range ents {
		if node, id, ok := proposalOf(&ents[i]); ok && node == r.opts.NodeID {
			if p := r.waiters[id]; p != nil {
				p.index = ents[i].Index
			}
		}
	}
}

// orphanWaiters is called when this replica stops leading: waiters whose
// entry has an index keep waiting as orphans, the others fail with an
// unknown outcome. Driver only.
func (r *Replica) orphanWaiters() {
	for id, p := range r.waiters {
		if p.index == 0 {
			p.done <- Result{Err: kv.Errorf(kv.ErrTimeout, "range %d: leadership lost; outcome unknown", r.ID)}
			delete(r.waiters, id)
			continue
		}
		if !p.orphan {
			p.orphan, p.orphanTicks = true, 0
			r.orphans = append(r.orphans, p)
		}
	}
}

// settleOrphans fails, after an apply pass up to applied, the orphans
// whose index it passed without applying their entry: they were replaced
// and never commit. Their waiters fire with the pass's (out.fire). Driver
// only.
func (r *Replica) settleOrphans(applied uint64, out *Applied) {
	r.dropOrphans(func(p *proposal) (Result, bool) {
		if p.index > applied {
			return Result{}, false
		}
		return Result{Err: kv.Errorf(kv.ErrNotLeader,
			"range %d: the entry at index %d was replaced after a change of leader; not applied", r.ID, p.index)}, true
	}, out)
}

// dropOrphans removes the orphans that are no longer waiting, and those
// for which fail says so, failing them with its Result: at once if out is
// nil, else with out's waiters.
func (r *Replica) dropOrphans(fail func(*proposal) (Result, bool), out *Applied) {
	if len(r.orphans) == 0 {
		return
	}
	kept := r.orphans[:0]
	for _, p := range r.orphans {
		if r.waiters[p.id] != p {
			continue // applied (or failed) meanwhile
		}
		if res, ok := fail(p); ok {
			delete(r.waiters, p.id)
			if out != nil {
				out.fire = append(out.fire, func() { p.done <- res })
			} else {
				p.done <- res
			}
			continue
		}
		kept = append(kept, p)
	}
	clear(r.orphans[len(kept):])
	r.orphans = kept
}

// unknownOrphans fails the orphans whose entry a snapshot up to index
// may hold: the outcome is unknown. Driver only.
func (r *Replica) unknownOrphans(index uint64) {
	r.dropOrphans(func(p *proposal) (Result, bool) {
		return Result{Err: kv.Errorf(kv.ErrTimeout, "range %d: snapshot applied past index %d; outcome unknown", r.ID, p.index)},
			p.index <= index
	}, nil)
}

// ageOrphans fails orphans that waited too long. Driver only (Tick).
func (r *Replica) ageOrphans() {
	limit := orphanTicksPerElection * r.opts.ElectionTicks
	r.dropOrphans(func(p *proposal) (Result, bool) {
		p.orphanTicks++
		return Result{Err: kv.Errorf(kv.ErrTimeout, "range %d: leadership lost and index %d not applied in time; outcome unknown", r.ID, p.index)},
			p.orphanTicks > limit
	}, nil)
}
