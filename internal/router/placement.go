package router

import (
	"cmp"
	"context"
	"slices"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/coord"
	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/kv"
	"github.com/cairn-db/cairn/internal/replica"
)

// The router is the coordinator's hands (coord.Cluster): it carries a
// replica change to the range's leader, wherever that is, and records the
// outcome in the meta range. See docs/design/placement.md.

var _ coord.Cluster = (*Router)(nil)

// SetCoordinator gives the router the node's coordinator, whose view
// ClusterStatus reports when this node leads the meta range.
func (rt *Router) SetCoordinator(c *coord.Coordinator) { rt.coord.Store(c) }

// NodeID implements coord.Cluster.
func (rt *Router) NodeID() uint64 { return rt.store.NodeID() }

// IsMetaLeader implements coord.Cluster.
func (rt *Router) IsMetaLeader() bool {
	r := rt.store.Replica(replica.MetaRangeID)
	return r != nil && r.IsLeader()
}

// Tables implements coord.Cluster.
func (rt *Router) Tables() []*cairnpb.Table { return rt.store.Tables() }

// Nodes implements coord.Cluster.
func (rt *Router) Nodes() []*cairnpb.Node { return rt.store.Nodes() }

// Meta implements coord.Cluster.
func (rt *Router) Meta() (*cairnpb.RangeDescriptor, []uint64) {
	r := rt.store.Replica(replica.MetaRangeID)
	if r == nil || !r.Initialized() {
		return nil, nil
	}
	return r.Desc(), r.CaughtUp()
}

// ChangeReplicas implements coord.Cluster: one step on the range's leader,
// then the new descriptor into the catalog (the meta range's own
// descriptor lives in its replicas only).
func (rt *Router) ChangeReplicas(ctx context.Context, rangeID uint64, op string, node, expect uint64) error {
	req := &cairnpb.ChangeReplicasRequest{RangeId: rangeID, Op: op, Node: node, ExpectedConfVersion: expect}
	resp, err := rt.route(ctx, keys.RangeID(rangeID), &cairnpb.Request{Op: &cairnpb.Request_ChangeReplicas{ChangeReplicas: req}}, true,
		func(r *replica.Replica) (*cairnpb.Response, error) { return rt.localChangeReplicas(ctx, r, req) })
	if err != nil {
		return err
	}
	d := resp.GetRangeDesc()
	if d == nil || d.TableId == uint64(keys.MetaTableID) {
		return nil
	}
	return rt.updateMeta(ctx, d.TableId, d)
}

func (rt *Router) localChangeReplicas(ctx context.Context, r *replica.Replica, req *cairnpb.ChangeReplicasRequest) (*cairnpb.Response, error) {
	if op := req.Op; (op == replica.OpRemove || op == replica.OpDemote) && req.Node == rt.store.NodeID() {
		return nil, kv.Errorf(kv.ErrInvalidArgument, "range %d: the leader does not %s itself; transfer leadership first", r.ID, op)
	}
	if req.Op == replica.OpUnfence {
		res, err := rt.propose(ctx, r, &cairnpb.Command{TableId: r.Desc().TableId, Op: &cairnpb.Command_Unfence{Unfence: &cairnpb.Unfence{Node: req.Node}}})
		if err != nil {
			return nil, err
		}
		return &cairnpb.Response{Op: &cairnpb.Response_RangeDesc{RangeDesc: res.Desc}}, nil
	}
	d, err := r.ChangeReplicas(ctx, req.Op, req.Node, req.ExpectedConfVersion)
	if err != nil {
		return nil, err
	}
	return &cairnpb.Response{Op: &cairnpb.Response_RangeDesc{RangeDesc: d}}, nil
}

// TransferLeader implements coord.Cluster. It returns once the transfer
// is asked for; the coordinator sees the outcome in later heartbeats.
func (rt *Router) TransferLeader(ctx context.Context, rangeID, to uint64) error {
	req := &cairnpb.TransferLeaderRequest{RangeId: rangeID, To: to}
	_, err := rt.route(ctx, keys.RangeID(rangeID), &cairnpb.Request{Op: &cairnpb.Request_TransferLeader{TransferLeader: req}}, false,
		func(r *replica.Replica) (*cairnpb.Response, error) { return &cairnpb.Response{}, r.TransferLeader(to) })
	return err
}

// SetNodeState implements coord.Cluster.
func (rt *Router) SetNodeState(ctx context.Context, id uint64, state string) error {
	_, err := rt.metaCommand(ctx, &cairnpb.Command{Op: &cairnpb.Command_SetNodeState{SetNodeState: &cairnpb.SetNodeState{Id: id, State: state}}})
	return err
}

// RecordRanges implements coord.Cluster.
func (rt *Router) RecordRanges(ctx context.Context, tableID uint64, descs []*cairnpb.RangeDescriptor) error {
	return rt.updateMeta(ctx, tableID, descs...)
}

// AddNode records a joining node in the meta range and returns its
// record (with its ID).
func (rt *Router) AddNode(ctx context.Context, name, peerAddr string) (*cairnpb.Node, error) {
	ctx, cancel := rt.withTimeout(ctx)
	defer cancel()
	resp, err := rt.metaCommand(ctx, &cairnpb.Command{Op: &cairnpb.Command_AddNode{AddNode: &cairnpb.AddNode{Name: name, PeerAddress: peerAddr}}})
	if err != nil {
		return nil, err
	}
	return resp.GetNode(), nil
}

// metaCommand proposes a node command on the meta leader.
func (rt *Router) metaCommand(ctx context.Context, cmd *cairnpb.Command) (*cairnpb.Response, error) {
	req := &cairnpb.Request{}
	switch op := cmd.Op.(type) {
	case *cairnpb.Command_AddNode:
		req.Op = &cairnpb.Request_AddNode{AddNode: op.AddNode}
	case *cairnpb.Command_SetNodeState:
		req.Op = &cairnpb.Request_SetNodeState{SetNodeState: op.SetNodeState}
	default:
		return nil, kv.Errorf(kv.ErrInternal, "not a node command")
	}
	return rt.route(ctx, replica.MetaRangeID, req, true, func(r *replica.Replica) (*cairnpb.Response, error) {
		return rt.localMetaCommand(ctx, r, cmd)
	})
}

func (rt *Router) localMetaCommand(ctx context.Context, r *replica.Replica, cmd *cairnpb.Command) (*cairnpb.Response, error) {
	res, err := rt.propose(ctx, r, cmd)
	if err != nil {
		return nil, err
	}
	return &cairnpb.Response{Op: &cairnpb.Response_Node{Node: res.Node}}, nil
}

// NodeAction implements kv.Service: drain or remove a node. Both mark the
// node; the coordinator moves its replicas away (and, for remove, then
// marks it removed).
func (rt *Router) NodeAction(ctx context.Context, req *cairnpb.NodeActionRequest) (*cairnpb.NodeActionResponse, error) {
	var state string
	switch req.Action {
	case "drain":
		state = "draining"
	case "remove":
		state = "removing"
	case "activate":
		state = replica.NodeActive
	default:
		return nil, kv.Errorf(kv.ErrInvalidArgument, "node action %q: want drain, remove or activate", req.Action)
	}
	ctx, cancel := rt.withTimeout(ctx)
	defer cancel()
	if !slices.ContainsFunc(rt.store.Nodes(), func(n *cairnpb.Node) bool { return n.Id == req.Node }) {
		return nil, kv.Errorf(kv.ErrNotFound, "node %d is not a member", req.Node)
	}
	resp, err := rt.metaCommand(ctx, &cairnpb.Command{Op: &cairnpb.Command_SetNodeState{SetNodeState: &cairnpb.SetNodeState{Id: req.Node, State: state}}})
	if err != nil {
		return nil, err
	}
	n := resp.GetNode()
	return &cairnpb.NodeActionResponse{Node: &cairnpb.NodeStatus{Id: n.GetId(), Name: n.GetName(), Address: n.GetPeerAddress(), State: n.GetState()}}, nil
}

// coordinatorStatus asks the meta leader's coordinator for its view (nil
// when it cannot be had in time).
func (rt *Router) coordinatorStatus(ctx context.Context) *cairnpb.ClusterStatus {
	if c := rt.coord.Load(); c != nil && rt.IsMetaLeader() {
		return c.Status()
	}
	resp, err := rt.route(ctx, replica.MetaRangeID, &cairnpb.Request{Op: &cairnpb.Request_ClusterStatus{ClusterStatus: &cairnpb.ClusterStatusRequest{}}}, false,
		func(r *replica.Replica) (*cairnpb.Response, error) {
			c := rt.coord.Load()
			if c == nil {
				return nil, kv.Errorf(kv.ErrUnavailable, "no coordinator on node %d", rt.store.NodeID())
			}
			return &cairnpb.Response{Op: &cairnpb.Response_ClusterStatus{ClusterStatus: c.Status()}}, nil
		})
	if err != nil {
		return nil
	}
	return resp.GetClusterStatus()
}

// place picks the voters of a new table's first range: rf of the active
// members (rf 0: the default), those holding the fewest replicas first.
// The meta leader runs it; the command carries the choice, so every
// replica applies the same.
func (rt *Router) place(rf uint32) (uint32, []uint64) {
	if rf == 0 {
		rf = uint32(rt.opts.DefaultReplicas)
		if rf == 0 {
			rf = 3
		}
	}
	load := map[uint64]int{}
	for _, t := range rt.store.Tables() {
		for _, d := range t.Ranges {
			for _, id := range d.Replicas {
				load[id]++
			}
		}
	}
	var cands []uint64
	for _, n := range rt.store.Nodes() {
		if replica.NodeState(n) == replica.NodeActive {
			cands = append(cands, n.Id)
		}
	}
	slices.SortFunc(cands, func(a, b uint64) int {
		if c := cmp.Compare(load[a], load[b]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	if len(cands) > int(rf) {
		cands = cands[:rf]
	}
	return rf, cands
}

// RangeCounts are a range's counters at one heartbeat, for the next
// heartbeat's rates: its applied index and the requests this node served
// for it (rangeLoad, with load-based splits on).
type RangeCounts struct {
	Applied  uint64
	Requests uint64
}

// Heartbeat builds this node's report to the coordinator: every local
// replica, with leaders' descriptors, terms and caught-up replicas.
// Leaders' writes_per_sec and requests_per_sec are estimated from the
// deltas of the counters since prev, elapsed seconds ago (nil: no rates);
// it returns the counters for the next call.
func (rt *Router) Heartbeat(prev map[uint64]RangeCounts, elapsed float64) (*cairnpb.NodeHeartbeat, map[uint64]RangeCounts) {
	hb := &cairnpb.NodeHeartbeat{NodeId: rt.store.NodeID(), ClientAddress: rt.opts.ClientAddress}
	replicas := rt.store.ReplicasUnordered()
	hb.Ranges = make([]*cairnpb.RangeHeartbeat, 0, len(replicas))
	counts := make(map[uint64]RangeCounts, len(replicas))
	for _, r := range replicas {
		d := r.Desc()
		term, _, idx := r.Status()
		rh := &cairnpb.RangeHeartbeat{RangeId: d.Id, AppliedIndex: idx, ApproxBytes: r.ApproxBytes(), ConfVersion: d.ConfVersion, Term: term}
		now := RangeCounts{Applied: idx}
		if v, ok := rt.load.Load(r.ID); ok {
			now.Requests = v.(*rangeLoad).n.Load()
		}
		if r.IsLeader() {
			rh.Leader, rh.CaughtUp, rh.Desc, rh.Lag = true, r.CaughtUp(), d, r.Lag()
			if p, ok := prev[d.Id]; ok && elapsed > 0 {
				if idx >= p.Applied {
					rh.WritesPerSec = float64(idx-p.Applied) / elapsed
				}
				if now.Requests >= p.Requests { // the counter starts over when the range left and came back
					rh.RequestsPerSec = float64(now.Requests-p.Requests) / elapsed
				}
			}
		}
		counts[d.Id] = now
		hb.Ranges = append(hb.Ranges, rh)
	}
	return hb, counts
}

// MetaReplica returns this node's replica of the meta range, or nil.
func (rt *Router) MetaReplica() *replica.Replica { return rt.store.Replica(replica.MetaRangeID) }

// SetRangeBytes records the ranges' sizes the coordinator knows (for size
// quotas of tables whose ranges are not all here).
func (rt *Router) SetRangeBytes(m map[uint64]uint64) {
	if m != nil {
		rt.rangeBytes.Store(&m)
	}
}

// tableBytes is a table's logical size: each range's as applied here,
// else as its leader last reported it to the coordinator.
func (rt *Router) tableBytes(t *cairnpb.Table) uint64 {
	var reported map[uint64]uint64
	if p := rt.rangeBytes.Load(); p != nil {
		reported = *p
	}
	local := map[uint64]uint64{}
	for _, o := range rt.store.Replicas() {
		if d := o.Desc(); d.TableId == t.Id && o.Initialized() {
			local[d.Id] = o.ApproxBytes()
		}
	}
	var size uint64
	counted := map[uint64]bool{}
	for _, d := range t.Ranges {
		if b, ok := local[d.Id]; ok {
			size += b
		} else {
			size += reported[d.Id]
		}
		counted[d.Id] = true
	}
	// Ranges the catalog does not list yet (just split off) are here.
	for id, b := range local {
		if !counted[id] {
			size += b
		}
	}
	return size
}
