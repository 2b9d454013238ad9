package replica

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/kv"
	"github.com/cairn-db/cairn/internal/storage"
	"github.com/cairn-db/cairn/internal/watch"
)

// Effect is a change to the node's set of replicas that an applied meta
// command asks the store to make once the apply batch is committed.
type Effect struct {
	Create  *cairnpb.RangeDescriptor
	Destroy *cairnpb.RangeDescriptor
	// Split marks a Create made by a split of a data range (not by the
	// meta range): the left's leader campaigns for it.
	Split bool
	// Changed is a range's descriptor after a replica change; Removed says
	// the change removed this node's replica (the store destroys it).
	Changed *cairnpb.RangeDescriptor
	Removed bool
	// Merged is the right range of a merge this node's left replica
	// applied: the store destroys its local replica (merge.go).
	Merged *cairnpb.RangeDescriptor
}

// Applied is what one apply pass produced: the waiters to wake once the
// batch is committed and the effects for the store.
type Applied struct {
	fire    []func()
	Effects []Effect
	// MaxVersion is the largest version handed out (for the node's clock).
	MaxVersion uint64
	// Events are the changes applied, in apply order, for the node's
	// watchers (publish after commit).
	Events []watch.Event
}

// Fire wakes the waiters of the applied entries. Call after commit.
func (a *Applied) Fire() {
	for _, f := range a.fire {
		f()
	}
	a.fire = nil
}

// Apply applies committed entries to the state machine, writing into b (an
// indexed batch, so later entries read earlier ones' writes). Driver only.
func (r *Replica) Apply(b *pebble.Batch, ents []raftpb.Entry, out *Applied) error {
	if len(ents) == 0 {
		return nil
	}
	for i := range ents {
		e := &ents[i]
		if e.Index <= r.state.AppliedIndex {
			continue
		}
		if err := r.applyEntry(b, e, out); err != nil {
			return fmt.Errorf("range %d: apply entry %d: %w", r.ID, e.Index, err)
		}
		r.stats().EntriesApplied.Add(1)
		r.state.AppliedIndex, r.state.AppliedTerm = e.Index, e.Term
	}
	if err := putState(b, r.ID, r.state); err != nil {
		return err
	}
	r.settleOrphans(r.state.AppliedIndex, out)
	r.applied.Store(r.state.AppliedIndex)
	out.Events = append(out.Events, r.events...)
	r.events = r.events[:0]
	if r.state.MaxVersion > out.MaxVersion {
		out.MaxVersion = r.state.MaxVersion
	}
	return nil
}

func (r *Replica) applyEntry(b *pebble.Batch, e *raftpb.Entry, out *Applied) error {
	switch e.Type {
	case raftpb.EntryConfChange:
		// cairn proposes only V2 changes (membership.go): refuse others.
		return r.applyRaftConf(refuseConfChange)
	case raftpb.EntryConfChangeV2:
		var cc raftpb.ConfChangeV2
		if err := cc.Unmarshal(e.Data); err != nil {
			return err
		}
		return r.applyConfChangeV2(cc, e.Term, out)
	}
	if len(e.Data) == 0 {
		return nil // a new leader's empty entry
	}
	cmd := &cairnpb.Command{}
	if err := proto.Unmarshal(e.Data, cmd); err != nil {
		return err
	}
	r.applyingTerm = e.Term
	res, err := r.applyCommand(b, cmd, out)
	if err != nil {
		return err
	}
	res.Index = e.Index
	if cmd.NodeId == r.opts.NodeID {
		if p, ok := r.waiters[cmd.ProposalId]; ok {
			delete(r.waiters, cmd.ProposalId)
			out.fire = append(out.fire, func() { p.done <- res })
		}
	}
	return nil
}

// applyCommand applies one command. The returned error is a storage
// failure (fatal); a command's own failure (condition, not found) is in
// the Result, decided identically on every replica.
func (r *Replica) applyCommand(b *pebble.Batch, cmd *cairnpb.Command, out *Applied) (Result, error) {
	desc := r.Desc()
	if err := r.refuseFrozen(cmd); err != nil {
		return Result{Err: err}, nil
	}
	if cmd.Timestamp > r.state.MaxTimestamp {
		r.state.MaxTimestamp = cmd.Timestamp
	}
	r.history = r.historyOf(cmd)
	switch op := cmd.Op.(type) {
	case *cairnpb.Command_Put:
		if cmd.TableId != desc.TableId {
			return Result{Err: kv.Errorf(kv.ErrTableNotFound, "table %q moved or was dropped", op.Put.Table)}, nil
		}
		if !r.containsKey(op.Put.Key) {
			return Result{Err: kv.Errorf(kv.ErrRangeKeyMismatch, "range %d no longer holds the key", r.ID)}, nil
		}
		return r.applyPut(b, keys.TableID(cmd.TableId), op.Put, cmd.Timestamp)
	case *cairnpb.Command_Delete:
		if cmd.TableId != desc.TableId {
			return Result{Err: kv.Errorf(kv.ErrTableNotFound, "table %q moved or was dropped", op.Delete.Table)}, nil
		}
		if !r.containsKey(op.Delete.Key) {
			return Result{Err: kv.Errorf(kv.ErrRangeKeyMismatch, "range %d no longer holds the key", r.ID)}, nil
		}
		return r.applyDelete(b, keys.TableID(cmd.TableId), op.Delete.Key, op.Delete.Condition, cmd.Timestamp)
	case *cairnpb.Command_Batch:
		if cmd.TableId != desc.TableId {
			return Result{Err: kv.Errorf(kv.ErrTableNotFound, "table %q moved or was dropped", op.Batch.Table)}, nil
		}
		return r.applyBatch(b, keys.TableID(cmd.TableId), op.Batch, cmd.Timestamp)
	case *cairnpb.Command_TxnPrewrite:
		if cmd.TableId != desc.TableId {
			return Result{Err: kv.Errorf(kv.ErrTableNotFound, "table %q moved or was dropped", op.TxnPrewrite.Table)}, nil
		}
		return r.applyTxnPrewrite(b, keys.TableID(cmd.TableId), op.TxnPrewrite, cmd.Timestamp)
	case *cairnpb.Command_TxnEnd:
		if cmd.TableId != desc.TableId {
			return Result{Err: kv.Errorf(kv.ErrTableNotFound, "table %q moved or was dropped", op.TxnEnd.GetMeta().GetPrimaryTable())}, nil
		}
		return r.applyTxnEnd(b, op.TxnEnd, cmd.Timestamp)
	case *cairnpb.Command_TxnResolve:
		if cmd.TableId != desc.TableId {
			return Result{Err: kv.Errorf(kv.ErrTableNotFound, "table %q moved or was dropped", op.TxnResolve.Table)}, nil
		}
		return r.applyTxnResolve(b, keys.TableID(cmd.TableId), op.TxnResolve)
	case *cairnpb.Command_Expire:
		if cmd.TableId != desc.TableId {
			return Result{Err: kv.Errorf(kv.ErrTableNotFound, "range %d no longer holds table %d", desc.Id, cmd.TableId)}, nil
		}
		return r.applyExpire(b, keys.TableID(cmd.TableId), op.Expire)
	case *cairnpb.Command_CreateTable:
		if desc.TableId != uint64(keys.MetaTableID) {
			return Result{Err: kv.Errorf(kv.ErrInternal, "create table on a data range")}, nil
		}
		return r.applyCreateTable(b, op.CreateTable, cmd.Timestamp, out)
	case *cairnpb.Command_DropTable:
		if desc.TableId != uint64(keys.MetaTableID) {
			return Result{Err: kv.Errorf(kv.ErrInternal, "drop table on a data range")}, nil
		}
		return r.applyDropTable(b, op.DropTable, out)
	case *cairnpb.Command_UpdateTable:
		if desc.TableId != uint64(keys.MetaTableID) {
			return Result{Err: kv.Errorf(kv.ErrInternal, "update table on a data range")}, nil
		}
		return r.applyUpdateTable(b, op.UpdateTable, cmd.Timestamp)
	case *cairnpb.Command_Split:
		return r.applySplit(b, op.Split, out)
	case *cairnpb.Command_AllocRangeId:
		if desc.TableId != uint64(keys.MetaTableID) {
			return Result{Err: kv.Errorf(kv.ErrInternal, "range ID allocation on a data range")}, nil
		}
		return r.applyAllocRangeID(b)
	case *cairnpb.Command_UpdateRanges:
		if desc.TableId != uint64(keys.MetaTableID) {
			return Result{Err: kv.Errorf(kv.ErrInternal, "range update on a data range")}, nil
		}
		return r.applyUpdateRanges(b, op.UpdateRanges, cmd.Timestamp)
	case *cairnpb.Command_AddNode:
		if desc.TableId != uint64(keys.MetaTableID) {
			return Result{Err: kv.Errorf(kv.ErrInternal, "node command on a data range")}, nil
		}
		return r.applyAddNode(b, op.AddNode, cmd.Timestamp)
	case *cairnpb.Command_SetNodeState:
		if desc.TableId != uint64(keys.MetaTableID) {
			return Result{Err: kv.Errorf(kv.ErrInternal, "node command on a data range")}, nil
		}
		return r.applySetNodeState(b, op.SetNodeState, cmd.Timestamp)
	case *cairnpb.Command_Unfence:
		return r.applyUnfence(op.Unfence, r.applyingTerm)
	case *cairnpb.Command_Fence:
		if cmd.TableId != desc.TableId {
			return Result{Err: kv.Errorf(kv.ErrRangeKeyMismatch, "range %d no longer holds table %d", desc.Id, cmd.TableId)}, nil
		}
		return r.applyFence(op.Fence)
	case *cairnpb.Command_Restore:
		if cmd.TableId != desc.TableId {
			return Result{Err: kv.Errorf(kv.ErrRangeKeyMismatch, "range %d no longer holds table %d", desc.Id, cmd.TableId)}, nil
		}
		return r.applyRestore(b, keys.TableID(cmd.TableId), op.Restore)
	case *cairnpb.Command_MergeFreeze:
		return r.applyMergeFreeze(op.MergeFreeze)
	case *cairnpb.Command_MergeUnfreeze:
		return r.applyMergeUnfreeze(op.MergeUnfreeze)
	case *cairnpb.Command_MergeAbort:
		return r.applyMergeAbort(op.MergeAbort)
	case *cairnpb.Command_Merge:
		return r.applyMerge(op.Merge, out)
	case *cairnpb.Command_Auth:
		if desc.TableId != uint64(keys.MetaTableID) {
			return Result{Err: kv.Errorf(kv.ErrInternal, "auth command on a data range")}, nil
		}
		return r.applyAuth(b, op.Auth, cmd.Timestamp)
	}
	return Result{Err: kv.Errorf(kv.ErrInternal, "unknown command")}, nil
}

func (r *Replica) containsKey(k []byte) bool { return DescContains(r.Desc(), k) }

// nextVersion returns the version of the next write: above the range's
// last version and at least the proposer's timestamp.
func (r *Replica) nextVersion(ts uint64) uint64 {
	v := r.state.MaxVersion + 1
	if ts > v {
		v = ts
	}
	r.state.MaxVersion = v
	return v
}

func checkCondition(c *cairnpb.Condition, found bool, version uint64) error {
	if c == nil {
		return nil
	}
	if c.Absent && found {
		return kv.Errorf(kv.ErrConditionFailed, "key exists (version %d)", version)
	}
	if c.Version != 0 {
		if !found {
			return kv.Errorf(kv.ErrConditionFailed, "key is absent; expected version %d", c.Version)
		}
		if version != c.Version {
			return kv.Errorf(kv.ErrConditionFailed, "version is %d; expected %d", version, c.Version)
		}
	}
	return nil
}

func (r *Replica) applyPut(b *pebble.Batch, table keys.TableID, req *cairnpb.PutRequest, ts uint64) (Result, error) {
	if locked, err := r.checkUnlocked(b, table, req.Key); err != nil || locked != nil {
		return Result{Err: locked}, err
	}
	cur, err := readLive(b, table, req.Key, r.state.MaxTimestamp)
	if err != nil {
		return Result{}, err
	}
	if err := checkCondition(req.Condition, cur.found, cur.version); err != nil {
		return Result{Err: err}, nil
	}
	v := r.nextVersion(ts)
	if err := r.writeValue(b, table, req, cur, v, r.state.MaxTimestamp); err != nil {
		return Result{}, err
	}
	return Result{Version: v}, nil
}

func (r *Replica) applyDelete(b *pebble.Batch, table keys.TableID, key []byte, cond *cairnpb.Condition, ts uint64) (Result, error) {
	if locked, err := r.checkUnlocked(b, table, key); err != nil || locked != nil {
		return Result{Err: locked}, err
	}
	cur, err := readLive(b, table, key, r.state.MaxTimestamp)
	if err != nil {
		return Result{}, err
	}
	if !cur.found {
		return Result{Err: kv.ErrNotFound}, nil
	}
	if err := checkCondition(cond, cur.found, cur.version); err != nil {
		return Result{Err: err}, nil
	}
	// The delete itself gets a version of its own: its place in the key's
	// history and in watchers' streams. The reply names the version it
	// deleted.
	if err := r.removeValue(b, table, key, cur, storage.ChangeDelete, r.nextVersion(ts)); err != nil {
		return Result{}, err
	}
	return Result{Version: cur.version}, nil
}

// batchKey returns the key of a batch operation.
func batchKey(op *cairnpb.BatchOp) ([]byte, *cairnpb.Condition) {
	switch o := op.Op.(type) {
	case *cairnpb.BatchOp_Put:
		return o.Put.Key, o.Put.Condition
	case *cairnpb.BatchOp_Delete:
		return o.Delete.Key, o.Delete.Condition
	}
	return nil, nil
}

// applyBatch applies a batch all or nothing: every condition is checked
// against the state before the batch; then the operations apply in order
// (a later write to the same key wins; each put gets its own version).
func (r *Replica) applyBatch(b *pebble.Batch, table keys.TableID, req *cairnpb.BatchRequest, ts uint64) (Result, error) {
	for i, op := range req.Ops {
		key, cond := batchKey(op)
		if key == nil {
			return Result{Err: kv.Errorf(kv.ErrInvalidArgument, "batch op %d is empty", i)}, nil
		}
		if !r.containsKey(key) {
			return Result{Err: kv.Errorf(kv.ErrRangeKeyMismatch, "batch op %d: range %d no longer holds the key", i, r.ID)}, nil
		}
		if locked, err := r.checkUnlocked(b, table, key); err != nil || locked != nil {
			return Result{Err: locked}, err
		}
		cur, err := readLive(b, table, key, r.state.MaxTimestamp)
		if err != nil {
			return Result{}, err
		}
		if err := checkCondition(cond, cur.found, cur.version); err != nil {
			return Result{Err: fmt.Errorf("batch op %d: %w", i, err)}, nil
		}
	}
	results := make([]*cairnpb.BatchResult, len(req.Ops))
	for i, op := range req.Ops {
		switch o := op.Op.(type) {
		case *cairnpb.BatchOp_Put:
			cur, err := readLive(b, table, o.Put.Key, r.state.MaxTimestamp)
			if err != nil {
				return Result{}, err
			}
			v := r.nextVersion(ts)
			if err := r.writeValue(b, table, o.Put, cur, v, r.state.MaxTimestamp); err != nil {
				return Result{}, err
			}
			results[i] = &cairnpb.BatchResult{Version: v, Found: true}
		case *cairnpb.BatchOp_Delete:
			cur, err := readLive(b, table, o.Delete.Key, r.state.MaxTimestamp)
			if err != nil {
				return Result{}, err
			}
			if cur.found {
				if err := r.removeValue(b, table, o.Delete.Key, cur, storage.ChangeDelete, r.nextVersion(ts)); err != nil {
					return Result{}, err
				}
			}
			results[i] = &cairnpb.BatchResult{Version: cur.version, Found: cur.found}
		}
	}
	return Result{Batch: results}, nil
}
