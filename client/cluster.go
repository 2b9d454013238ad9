package client

import (
	"context"

	"github.com/cairn-db/cairn/api/cairnpb"
)

// ClusterStatus reports the nodes and ranges of a cluster.
type ClusterStatus struct {
	Nodes  []NodeStatus  `json:"nodes"`
	Ranges []RangeStatus `json:"ranges"`
}

// NodeStatus describes one node.
type NodeStatus struct {
	ID      uint64 `json:"id"`
	Name    string `json:"name"`
	Address string `json:"address"`
	Alive   bool   `json:"alive"`
	// Ranges counts the replicas on the node; Leaders those that lead.
	Ranges  uint32 `json:"ranges"`
	Leaders uint32 `json:"leaders"`
}

// RangeStatus describes one range: the keys of Table in [Start, End).
type RangeStatus struct {
	ID    uint64 `json:"id"`
	Table string `json:"table"`
	Start []byte `json:"start"`
	End   []byte `json:"end"`
	// Replicas and Leader are node IDs; Leader is 0 when unknown.
	Replicas     []uint64 `json:"replicas"`
	Leader       uint64   `json:"leader"`
	Term         uint64   `json:"term"`
	CommitIndex  uint64   `json:"commit_index"`
	AppliedIndex uint64   `json:"applied_index"`
	SizeBytes    uint64   `json:"size_bytes"`
	// Generation counts the range's splits.
	Generation uint64 `json:"generation"`
	// Partitioning of the range's table; with "hash", Start and End are
	// positions in the hash space (8 bytes, big endian).
	Partitioning string `json:"partitioning,omitempty"`
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
		Nodes:  make([]NodeStatus, len(resp.Nodes)),
		Ranges: make([]RangeStatus, len(resp.Ranges)),
	}
	for i, n := range resp.Nodes {
		out.Nodes[i] = NodeStatus{ID: n.Id, Name: n.Name, Address: n.Address, Alive: n.Alive, Ranges: n.Ranges, Leaders: n.Leaders}
	}
	for i, r := range resp.Ranges {
		out.Ranges[i] = RangeStatus{
			ID: r.Id, Table: r.Table, Start: r.Start, End: r.End, Replicas: r.Replicas, Leader: r.Leader,
			Term: r.Term, CommitIndex: r.CommitIndex, AppliedIndex: r.AppliedIndex, SizeBytes: r.SizeBytes,
			Generation: r.Generation, Partitioning: r.Partitioning,
		}
	}
	return out, nil
}
