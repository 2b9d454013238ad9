package client

import (
	"context"
	"time"

	"github.com/cairn-db/cairn/api/cairnpb"
)

// ClusterStatus reports the nodes and ranges of a cluster.
type ClusterStatus struct {
	Nodes  []NodeStatus  `json:"nodes"`
	Ranges []RangeStatus `json:"ranges"`
	// Coordinator is the node whose scheduler reported Decisions (0: it
	// did not answer in time).
	Coordinator uint64     `json:"coordinator"`
	Decisions   []Decision `json:"decisions"`
}

// Decision is one recent step of the coordinator's scheduler.
type Decision struct {
	At      time.Time `json:"at"`
	Op      string    `json:"op"`
	Range   uint64    `json:"range,omitempty"`
	Node    uint64    `json:"node"`
	Reason  string    `json:"reason"`
	Outcome string    `json:"outcome"`
}

// NodeStatus describes one node.
type NodeStatus struct {
	ID      uint64 `json:"id"`
	Name    string `json:"name"`
	Address string `json:"address"`
	// ClientAddress is the node's client API address (--advertise) as it
	// last reported it; Address is its peer address.
	ClientAddress string `json:"client_address,omitempty"`
	Alive         bool   `json:"alive"`
	// Ranges counts the replicas on the node; Leaders those that lead.
	Ranges  uint32 `json:"ranges"`
	Leaders uint32 `json:"leaders"`
	// State is active, draining, removing or removed.
	State string `json:"state"`
	// LastHeartbeat is how long ago the coordinator heard from the node
	// (negative: not since it became coordinator).
	LastHeartbeat time.Duration `json:"last_heartbeat"`
	Bytes         uint64        `json:"bytes"`
	WritesPerSec  float64       `json:"writes_per_sec"`
}

// RangeStatus describes one range: the keys of Table in [Start, End).
type RangeStatus struct {
	ID    uint64 `json:"id"`
	Table string `json:"table"`
	Start []byte `json:"start"`
	End   []byte `json:"end"`
	// Replicas (voters), Learners and Leader are node IDs; Leader is 0
	// when unknown.
	Replicas     []uint64 `json:"replicas"`
	Learners     []uint64 `json:"learners,omitempty"`
	Leader       uint64   `json:"leader"`
	Term         uint64   `json:"term"`
	CommitIndex  uint64   `json:"commit_index"`
	AppliedIndex uint64   `json:"applied_index"`
	SizeBytes    uint64   `json:"size_bytes"`
	// Generation counts the range's splits; ConfVersion its replica
	// changes.
	Generation  uint64 `json:"generation"`
	ConfVersion uint64 `json:"conf_version"`
	// Partitioning of the range's table; with "hash", Start and End are
	// positions in the hash space (8 bytes, big endian).
	Partitioning string `json:"partitioning,omitempty"`
	// Lag is, per other replica's node ID, how many log entries it is
	// behind the leader's commit index (as the leader last reported).
	Lag map[uint64]uint64 `json:"lag,omitempty"`
}

// RangeSpan is a range of a table: keys [Start, End); an empty End is the
// end of the table.
type RangeSpan struct {
	ID         uint64   `json:"id"`
	Start      []byte   `json:"start"`
	End        []byte   `json:"end"`
	Replicas   []uint64 `json:"replicas"`
	Generation uint64   `json:"generation"`
}

// SplitRange splits the range of table that holds key at key (an admin
// operation) and returns the two ranges.
func (c *Client) SplitRange(ctx context.Context, table string, key []byte) (left, right RangeSpan, err error) {
	var resp *cairnpb.SplitRangeResponse
	err = c.do(ctx, write, func(ctx context.Context, ep *endpoint) (err error) {
		resp, err = ep.cluster.SplitRange(ctx, &cairnpb.SplitRangeRequest{Table: table, Key: key})
		return err
	})
	if err != nil {
		return RangeSpan{}, RangeSpan{}, err
	}
	conv := func(d *cairnpb.RangeDescriptor) RangeSpan {
		return RangeSpan{ID: d.GetId(), Start: d.GetStart(), End: d.GetEnd(), Replicas: d.GetReplicas(), Generation: d.GetGeneration()}
	}
	return conv(resp.GetLeft()), conv(resp.GetRight()), nil
}

// MergeRange merges the range of table that holds key with the range to
// its right (an admin operation; both must have their replicas on the same
// nodes) and returns the merged range.
func (c *Client) MergeRange(ctx context.Context, table string, key []byte) (RangeSpan, error) {
	var resp *cairnpb.MergeRangeResponse
	err := c.do(ctx, write, func(ctx context.Context, ep *endpoint) (err error) {
		resp, err = ep.cluster.MergeRange(ctx, &cairnpb.MergeRangeRequest{Table: table, Key: key})
		return err
	})
	if err != nil {
		return RangeSpan{}, err
	}
	d := resp.GetMerged()
	return RangeSpan{ID: d.GetId(), Start: d.GetStart(), End: d.GetEnd(), Replicas: d.GetReplicas(), Generation: d.GetGeneration()}, nil
}

// ClusterStatus reports the nodes and ranges of the cluster, as one node
// sees them.
func (c *Client) ClusterStatus(ctx context.Context) (*ClusterStatus, error) {
	var resp *cairnpb.ClusterStatus
	err := c.do(ctx, read, func(ctx context.Context, ep *endpoint) (err error) {
		resp, err = ep.cluster.Status(ctx, &cairnpb.ClusterStatusRequest{})
		return err
	})
	if err != nil {
		return nil, err
	}
	out := &ClusterStatus{
		Nodes:       make([]NodeStatus, len(resp.Nodes)),
		Ranges:      make([]RangeStatus, len(resp.Ranges)),
		Coordinator: resp.Coordinator,
	}
	for i, n := range resp.Nodes {
		out.Nodes[i] = nodeStatus(n)
	}
	for i, r := range resp.Ranges {
		out.Ranges[i] = RangeStatus{
			ID: r.Id, Table: r.Table, Start: r.Start, End: r.End, Replicas: r.Replicas, Learners: r.Learners, Leader: r.Leader,
			Term: r.Term, CommitIndex: r.CommitIndex, AppliedIndex: r.AppliedIndex, SizeBytes: r.SizeBytes,
			Generation: r.Generation, ConfVersion: r.ConfVersion, Partitioning: r.Partitioning,
		}
		for _, l := range r.Lag {
			if out.Ranges[i].Lag == nil {
				out.Ranges[i].Lag = map[uint64]uint64{}
			}
			out.Ranges[i].Lag[l.Node] = l.Entries
		}
	}
	for _, d := range resp.Decisions {
		out.Decisions = append(out.Decisions, Decision{At: time.UnixMilli(d.AtUnixMs), Op: d.Op, Range: d.RangeId, Node: d.Node,
			Reason: d.Reason, Outcome: d.Outcome})
	}
	return out, nil
}

func nodeStatus(n *cairnpb.NodeStatus) NodeStatus {
	return NodeStatus{ID: n.Id, Name: n.Name, Address: n.Address, ClientAddress: n.ClientAddress, Alive: n.Alive, Ranges: n.Ranges, Leaders: n.Leaders,
		State: n.State, LastHeartbeat: time.Duration(n.LastHeartbeatMs) * time.Millisecond, Bytes: n.Bytes, WritesPerSec: n.WritesPerSec}
}

// NodeAction drains ("drain"), removes ("remove") or reactivates
// ("activate") a node (an admin operation). Drain moves every replica off
// the node; remove does the same, then takes the node out of the cluster
// for good. Both return at once: the coordinator moves the replicas.
func (c *Client) NodeAction(ctx context.Context, node uint64, action string) (NodeStatus, error) {
	var resp *cairnpb.NodeActionResponse
	err := c.do(ctx, write, func(ctx context.Context, ep *endpoint) (err error) {
		resp, err = ep.cluster.NodeAction(ctx, &cairnpb.NodeActionRequest{Node: node, Action: action})
		return err
	})
	if err != nil {
		return NodeStatus{}, err
	}
	return nodeStatus(resp.GetNode()), nil
}
