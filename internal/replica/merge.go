package replica

import (
	"bytes"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/kv"
)

// Merges (see docs/design/merges.md).
//
// A merge joins a range L = [a, b) and its right neighbour R = [b, c) of
// the same table, whose replicas are on the same nodes, into L' = [a, c).
// Data keys do not name the range, so no data moves: each node's Pebble
// already holds R's data where L' will read it. What must hold is that
// every node's copy of R's data is complete and final before any replica
// of L' serves it, and that no replica of R serves or accepts anything
// after L' may have. Hence two commands in two Raft groups:
//
//  1. MergeFreeze, applied by R: from its apply on, R applies nothing but
//     MergeUnfreeze (every write, split, fence, transaction step is refused
//     with a range key mismatch, which the router retries) and a replica
//     change is refused; reads check Contains after their barrier, which
//     is false for a frozen replica. The freeze names L and L's generation.
//  2. Once every replica of R has applied the freeze (and made it durable:
//     the merge driver asks each node), Merge, applied by L: it applies
//     only if L is still at the generation the freeze names, L is not
//     frozen itself, R starts where L ends and both have the same voters
//     and learners. L' gets generation max(gL, gR)+1, R's max version, log
//     time and watch sequence if larger, and R's size added.
//  3. After the apply batch commits, the store destroys the local replica
//     of R (its Raft state, not its data, which L' owns now): a frozen
//     replica covered by a local replica of higher generation is a merged
//     one (store.reconcile), which also covers a crash before the
//     destruction and a node whose L got a snapshot from after the merge.
//
// Undoing a freeze: R cannot know whether L will apply the merge, so the
// decision is made in the log of R's current left neighbour (L, or the
// range that replaced it). MergeAbort raises L's generation if it is still
// the freeze's (then no Merge can apply any more) and fails if the
// neighbour already covers R's start (the merge happened); only after it
// succeeded is MergeUnfreeze proposed to R (see applyMergeAbort). The merge driver does this when a step
// fails, and R's leader does it when R has been frozen for too long (the
// driver died).

// Frozen reports whether the replica is frozen for a merge. Any goroutine.
func (r *Replica) Frozen() bool { return r.frozen.Load() != nil }

// FrozenFor returns the merge the range is frozen for, or nil. Any
// goroutine.
func (r *Replica) FrozenFor() *cairnpb.Frozen { return r.frozen.Load() }

// refuseFrozen returns the refusal of cmd by a frozen range, or nil if cmd
// may apply (only the merge commands that undo or repeat a freeze, and an
// abort, which only changes the generation, may).
func (r *Replica) refuseFrozen(cmd *cairnpb.Command) error {
	if r.state.Frozen == nil {
		return nil
	}
	switch cmd.Op.(type) {
	case *cairnpb.Command_MergeUnfreeze, *cairnpb.Command_MergeFreeze, *cairnpb.Command_MergeAbort:
		return nil
	}
	return kv.Errorf(kv.ErrRangeKeyMismatch, "range %d is frozen for a merge into range %d", r.ID, r.state.Frozen.LeftId)
}

func (r *Replica) applyMergeFreeze(f *cairnpb.MergeFreeze) (Result, error) {
	d := r.Desc()
	if fr := r.state.Frozen; fr != nil {
		if fr.LeftId == f.LeftId && fr.LeftGeneration == f.LeftGeneration {
			return Result{State: proto.Clone(r.state).(*cairnpb.RangeState)}, nil // a repeated proposal
		}
		return Result{Err: kv.Errorf(kv.ErrConditionFailed, "range %d is frozen for a merge into range %d", r.ID, fr.LeftId)}, nil
	}
	switch {
	case d.TableId == uint64(keys.MetaTableID):
		return Result{Err: kv.Errorf(kv.ErrInvalidArgument, "the meta range does not merge")}, nil
	case d.Generation != f.ExpectedGeneration:
		return Result{Err: kv.Errorf(kv.ErrConditionFailed, "range %d: generation is %d, freeze expected %d", r.ID, d.Generation, f.ExpectedGeneration)}, nil
	case f.LeftId == uint64(r.ID) || f.LeftId <= uint64(MetaRangeID):
		return Result{Err: kv.Errorf(kv.ErrInvalidArgument, "range %d: bad left range %d", r.ID, f.LeftId)}, nil
	}
	r.state.Frozen = &cairnpb.Frozen{LeftId: f.LeftId, LeftGeneration: f.LeftGeneration}
	r.frozen.Store(r.state.Frozen)
	return Result{State: proto.Clone(r.state).(*cairnpb.RangeState)}, nil
}

func (r *Replica) applyMergeUnfreeze(u *cairnpb.MergeUnfreeze) (Result, error) {
	fr := r.state.Frozen
	if fr == nil || fr.LeftId != u.LeftId || fr.LeftGeneration != u.LeftGeneration {
		return Result{}, nil // not frozen by that merge: nothing to undo
	}
	r.state.Frozen = nil
	r.frozen.Store(nil)
	return Result{}, nil
}

// applyMergeAbort decides, on the range that is now the left neighbour of
// the frozen range (it ends at right_start), whether the merge the freeze
// names can still happen. Only the range holding the keys just before
// right_start can merge with the frozen range, and that range changes only
// by a split (the left range's generation goes up: a Merge expecting the
// old one is refused) or by a merge into its own left neighbour (it was
// frozen first: it applies no Merge after that). So:
//
//   - this range holds right_start: the merge happened (here or in a range
//     merged into this one since): condition failed, R stays frozen until
//     its replica is destroyed;
//   - this is the left range at the freeze's generation: its generation
//     goes up, so the Merge can never apply;
//   - otherwise the left range changed or is gone: nothing to do.
//
// In the last two cases R may be unfrozen.
func (r *Replica) applyMergeAbort(a *cairnpb.MergeAbort) (Result, error) {
	d := r.Desc()
	if DescContains(d, a.RightStart) {
		return Result{Err: kv.Errorf(kv.ErrConditionFailed, "range %d already holds %q: the merge happened", r.ID, a.RightStart)}, nil
	}
	if !bytes.Equal(d.End, a.RightStart) || len(a.RightStart) == 0 {
		return Result{Err: kv.Errorf(kv.ErrRangeKeyMismatch, "range %d [%q, %q) does not end at %q", r.ID, d.Start, d.End, a.RightStart)}, nil
	}
	if d.Id != a.LeftId || d.Generation != a.LeftGeneration {
		return Result{Desc: cloneDesc(d)}, nil // changed since: no merge expecting that range and generation applies
	}
	nd := cloneDesc(d)
	nd.Generation++
	r.state.Desc = nd
	r.desc.Store(nd)
	return Result{Desc: cloneDesc(nd)}, nil
}

// SameReplicas reports whether two descriptors place voters and learners
// on the same nodes.
func SameReplicas(a, b *cairnpb.RangeDescriptor) bool {
	// The fast path, without allocating, is what a split leaves: both
	// halves list their replicas in the same order (the splitter asks
	// this of every led range every pass).
	if slices.Equal(a.Replicas, b.Replicas) && slices.Equal(a.Learners, b.Learners) {
		return true
	}
	return slices.Equal(slices.Sorted(slices.Values(a.Replicas)), slices.Sorted(slices.Values(b.Replicas))) &&
		slices.Equal(slices.Sorted(slices.Values(a.Learners)), slices.Sorted(slices.Values(b.Learners)))
}

// checkMerge decides whether a Merge applies, from replicated state only.
func (r *Replica) checkMerge(m *cairnpb.Merge) error {
	d := r.Desc()
	rs := m.RightState
	if rs == nil || rs.Desc == nil || rs.Frozen == nil {
		return kv.Errorf(kv.ErrInvalidArgument, "range %d: merge without the frozen right range's state", r.ID)
	}
	right := rs.Desc
	switch {
	case d.TableId == uint64(keys.MetaTableID):
		return kv.Errorf(kv.ErrInvalidArgument, "the meta range does not merge")
	case d.Generation != m.ExpectedGeneration:
		return kv.Errorf(kv.ErrConditionFailed, "range %d: generation is %d, merge expected %d", r.ID, d.Generation, m.ExpectedGeneration)
	case rs.Frozen.LeftId != uint64(r.ID) || rs.Frozen.LeftGeneration != d.Generation:
		return kv.Errorf(kv.ErrConditionFailed, "range %d: range %d is frozen for range %d at generation %d",
			r.ID, right.Id, rs.Frozen.LeftId, rs.Frozen.LeftGeneration)
	case right.TableId != d.TableId || len(d.End) == 0 || !bytes.Equal(right.Start, d.End) || right.Id == d.Id:
		return kv.Errorf(kv.ErrInvalidArgument, "range %d [%q, %q): range %d [%q, %q) is not its right neighbour",
			r.ID, d.Start, d.End, right.Id, right.Start, right.End)
	case !SameReplicas(d, right):
		return kv.Errorf(kv.ErrConditionFailed, "range %d: range %d has other replicas", r.ID, right.Id)
	}
	return nil
}

func (r *Replica) applyMerge(m *cairnpb.Merge, out *Applied) (Result, error) {
	if err := r.checkMerge(m); err != nil {
		return Result{Err: err}, nil
	}
	r.mayHaveIntents() // the right range's come along
	rs := m.RightState
	right := rs.Desc
	d := cloneDesc(r.Desc())
	d.End = append([]byte(nil), right.End...)
	d.Generation = max(d.Generation, right.Generation) + 1
	r.state.Desc = d
	r.desc.Store(d)
	r.state.MaxVersion = max(r.state.MaxVersion, rs.MaxVersion)
	r.state.MaxTimestamp = max(r.state.MaxTimestamp, rs.MaxTimestamp)
	r.state.MaxSeq = max(r.state.MaxSeq, rs.MaxSeq)
	r.addBytes(int64(rs.ApproxBytes))
	out.Effects = append(out.Effects, Effect{Merged: cloneDesc(right)})
	return Result{Desc: cloneDesc(d)}, nil
}

// Subsumed reports whether st, a local range's state, belongs to a range
// merged into by, another local range's descriptor: st is frozen, of the
// same table, its span lies within by's, and by's generation is higher (a
// merge gives the merged range a generation above both). Along a lineage
// of splits no descriptor covers another of lower generation, so only a
// merge makes this true.
func Subsumed(st *cairnpb.RangeState, by *cairnpb.RangeDescriptor) bool {
	d := st.Desc
	if st.Frozen == nil || d.Id == by.Id || d.TableId != by.TableId || by.Generation <= d.Generation {
		return false
	}
	return DescContains(by, d.Start) && (len(by.End) == 0 || (len(d.End) > 0 && bytes.Compare(d.End, by.End) <= 0))
}
