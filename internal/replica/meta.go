package replica

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/keys/hashkey"
	"github.com/cairn-db/cairn/internal/kv"
	"github.com/cairn-db/cairn/internal/storage"
)

// The meta range (range 1) holds table 0, whose keys are the cluster's
// own records:
//
//	"node/" + id(8)       -> cairnpb.Node
//	"table/" + name       -> cairnpb.Table (with its range descriptors)
//	"counter/table"       -> next table ID (8 bytes)
//	"counter/range"       -> next range ID (8 bytes)
const (
	MetaRangeID keys.RangeID = 1

	metaNodePrefix  = "node/"
	metaTablePrefix = "table/"
	metaTableCtr    = "counter/table"
	metaRangeCtr    = "counter/range"
	metaNodeCtr     = "counter/node"
)

// Node states (cairnpb.Node.state; "" reads as active).
const (
	NodeActive   = "active"
	NodeDraining = "draining"
	NodeRemoved  = "removed"
)

// NodeState returns n's state, "" meaning active.
func NodeState(n *cairnpb.Node) string {
	if n.State == "" {
		return NodeActive
	}
	return n.State
}

// MetaTableKey is the storage key of a table's record.
func MetaTableKey(name string) []byte {
	return keys.DataKey(keys.MetaTableID, []byte(metaTablePrefix+name))
}

// MetaTableSpan is the span of all table records.
func MetaTableSpan() (start, end []byte) {
	p := []byte(metaTablePrefix)
	return keys.DataKey(keys.MetaTableID, p), keys.DataKey(keys.MetaTableID, keys.PrefixEnd(p))
}

// MetaNodeKey is the storage key of a node's record.
func MetaNodeKey(id uint64) []byte {
	return keys.DataKey(keys.MetaTableID, binary.BigEndian.AppendUint64([]byte(metaNodePrefix), id))
}

// MetaNodeSpan is the span of all node records.
func MetaNodeSpan() (start, end []byte) {
	p := []byte(metaNodePrefix)
	return keys.DataKey(keys.MetaTableID, p), keys.DataKey(keys.MetaTableID, keys.PrefixEnd(p))
}

// Reader is what meta reads need: a *pebble.DB or an indexed batch.
type Reader interface {
	Get(key []byte) ([]byte, io.Closer, error)
	NewIter(o *pebble.IterOptions) (*pebble.Iterator, error)
}

// GetProto reads a meta record; found is false when absent.
func GetProto(rd Reader, key []byte, m proto.Message) (found bool, err error) {
	v, closer, err := rd.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer closer.Close()
	_, raw, err := storage.DecodeValue(v)
	if err != nil {
		return false, err
	}
	return true, proto.Unmarshal(raw, m)
}

func putProto(b *pebble.Batch, key []byte, version uint64, m proto.Message) error {
	data, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	return b.Set(key, storage.EncodeValue(version, data), nil)
}

// ScanProtos calls fn with each record in [start, end).
func ScanProtos[T proto.Message](rd Reader, start, end []byte, newT func() T, fn func(T)) error {
	it, err := rd.NewIter(&pebble.IterOptions{LowerBound: start, UpperBound: end})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		_, raw, err := storage.DecodeValue(it.Value())
		if err != nil {
			it.Close()
			return err
		}
		m := newT()
		if err := proto.Unmarshal(raw, m); err != nil {
			it.Close()
			return err
		}
		fn(m)
	}
	return it.Close()
}

func nextCounter(b *pebble.Batch, name string, first uint64) (uint64, error) {
	key := keys.DataKey(keys.MetaTableID, []byte(name))
	n := first
	v, closer, err := b.Get(key)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
	case err != nil:
		return 0, err
	default:
		_, raw, derr := storage.DecodeValue(v)
		if derr == nil && len(raw) == 8 {
			n = binary.BigEndian.Uint64(raw)
		}
		closer.Close()
		if derr != nil {
			return 0, derr
		}
	}
	return n, b.Set(key, storage.EncodeValue(0, binary.BigEndian.AppendUint64(nil, n+1)), nil)
}

// Bootstrap writes the initial state of a new cluster into b: the meta
// range and the "default" table's range, both replicated on every node.
// Every node of an --initial-cluster writes the same bytes, so all
// replicas start identical.
func Bootstrap(b *pebble.Batch, nodes []*cairnpb.Node) error {
	var voters []uint64
	for _, n := range nodes {
		voters = append(voters, n.Id)
		if err := putProto(b, MetaNodeKey(n.Id), 0, n); err != nil {
			return err
		}
	}
	meta := &cairnpb.RangeDescriptor{Id: uint64(MetaRangeID), TableId: uint64(keys.MetaTableID), Replicas: voters}
	if err := WriteInitial(b, meta); err != nil {
		return err
	}
	if _, err := nextCounter(b, metaTableCtr, 1); err != nil { // table 1 = default
		return err
	}
	if _, err := nextCounter(b, metaRangeCtr, 2); err != nil { // range 2 = default's
		return err
	}
	desc := &cairnpb.RangeDescriptor{Id: 2, TableId: 1, Replicas: voters}
	t := &cairnpb.Table{Name: "default", Id: 1, Partitioning: "range", Replicas: uint32(len(voters)), Ranges: []*cairnpb.RangeDescriptor{desc}}
	if err := putProto(b, MetaTableKey(t.Name), 0, t); err != nil {
		return err
	}
	return WriteInitial(b, desc)
}

// metaVoters returns the members that are not removed.
func (r *Replica) metaVoters(b *pebble.Batch) ([]uint64, error) {
	start, end := MetaNodeSpan()
	var ids []uint64
	err := ScanProtos(b, start, end, func() *cairnpb.Node { return &cairnpb.Node{} }, func(n *cairnpb.Node) {
		if NodeState(n) != NodeRemoved {
			ids = append(ids, n.Id)
		}
	})
	return ids, err
}

// applyAddNode records a joining node. A name already recorded at the
// same address gets its record back (the joiner retried after a crash);
// at another address it is refused. IDs are never reused.
func (r *Replica) applyAddNode(b *pebble.Batch, c *cairnpb.AddNode, ts uint64) (Result, error) {
	if c.Name == "" || c.PeerAddress == "" {
		return Result{Err: kv.Errorf(kv.ErrInvalidArgument, "a joining node needs a name and a peer address")}, nil
	}
	start, end := MetaNodeSpan()
	var same *cairnpb.Node
	var maxID uint64
	var clash string
	err := ScanProtos(b, start, end, func() *cairnpb.Node { return &cairnpb.Node{} }, func(n *cairnpb.Node) {
		maxID = max(maxID, n.Id)
		if NodeState(n) == NodeRemoved {
			return
		}
		switch {
		case n.Name == c.Name && n.PeerAddress == c.PeerAddress:
			same = n
		case n.Name == c.Name:
			clash = fmt.Sprintf("node name %q is taken by node %d at %s", c.Name, n.Id, n.PeerAddress)
		case n.PeerAddress == c.PeerAddress:
			clash = fmt.Sprintf("peer address %s is taken by node %d (%s)", c.PeerAddress, n.Id, n.Name)
		}
	})
	if err != nil {
		return Result{}, err
	}
	if same != nil {
		return Result{Node: same}, nil
	}
	if clash != "" {
		return Result{Err: kv.Errorf(kv.ErrConditionFailed, "join refused: %s", clash)}, nil
	}
	id, err := nextCounter(b, metaNodeCtr, maxID+1)
	if err != nil {
		return Result{}, err
	}
	if id <= maxID { // a counter from before a node was added otherwise
		id = maxID + 1
	}
	n := &cairnpb.Node{Id: id, Name: c.Name, PeerAddress: c.PeerAddress, State: NodeActive}
	v := r.nextVersion(ts)
	if err := putProto(b, MetaNodeKey(id), v, n); err != nil {
		return Result{}, err
	}
	return Result{Version: v, Node: n}, nil
}

// applySetNodeState moves a node between active, draining and removed. A
// removed node stays removed (its ID is never reused).
func (r *Replica) applySetNodeState(b *pebble.Batch, c *cairnpb.SetNodeState, ts uint64) (Result, error) {
	switch c.State {
	case NodeActive, NodeDraining, NodeRemoved:
	default:
		return Result{Err: kv.Errorf(kv.ErrInvalidArgument, "node state %q: want active, draining or removed", c.State)}, nil
	}
	n := &cairnpb.Node{}
	found, err := GetProto(b, MetaNodeKey(c.Id), n)
	if err != nil {
		return Result{}, err
	}
	if !found {
		return Result{Err: kv.Errorf(kv.ErrNotFound, "node %d is not a member", c.Id)}, nil
	}
	if NodeState(n) == NodeRemoved && c.State != NodeRemoved {
		return Result{Err: kv.Errorf(kv.ErrConditionFailed, "node %d was removed; it cannot come back (join it again as a new node)", c.Id)}, nil
	}
	n.State = c.State
	v := r.nextVersion(ts)
	if err := putProto(b, MetaNodeKey(c.Id), v, n); err != nil {
		return Result{}, err
	}
	return Result{Version: v, Node: n}, nil
}

func (r *Replica) applyCreateTable(b *pebble.Batch, c *cairnpb.CreateTable, ts uint64, out *Applied) (Result, error) {
	existing := &cairnpb.Table{}
	found, err := GetProto(b, MetaTableKey(c.Name), existing)
	if err != nil {
		return Result{}, err
	}
	if found {
		return Result{Err: kv.Errorf(kv.ErrTableExists, "table %q exists", c.Name), Table: existing}, nil
	}
	voters, err := r.metaVoters(b)
	if err != nil {
		return Result{}, err
	}
	replicas := uint32(len(voters))
	if len(c.Placement) > 0 {
		// Placed by the proposer; every node must still be a member.
		for _, id := range c.Placement {
			if !slices.Contains(voters, id) {
				return Result{Err: kv.Errorf(kv.ErrUnavailable, "node %d of the placement is no longer a member", id)}, nil
			}
		}
		voters = slices.Sorted(slices.Values(c.Placement))
		replicas = c.Replicas
	}
	tableID, err := nextCounter(b, metaTableCtr, 1)
	if err != nil {
		return Result{}, err
	}
	// A hash table starts as initial_ranges equal intervals of the hash
	// space (docs/design/hashing.md); a range table as one range.
	var bounds [][]byte
	if c.Partitioning == "hash" && c.InitialRanges > 1 {
		bounds = hashkey.InitialBounds(int(min(c.InitialRanges, hashkey.MaxInitialRanges)))
	}
	t := &cairnpb.Table{Name: c.Name, Id: tableID, Partitioning: c.Partitioning, Replicas: replicas, Learners: c.Learners,
		HistoryVersions: c.HistoryVersions, HistoryRetentionMs: c.HistoryRetentionMs, MaxReadsPerSec: c.MaxReadsPerSec,
		Consistency: c.Consistency, MaxBytes: c.MaxBytes, MaxWritesPerSec: c.MaxWritesPerSec}
	if c.Partitioning == "hash" {
		t.InitialRanges = uint32(len(bounds) + 1)
	}
	for i := 0; i <= len(bounds); i++ {
		rangeID, err := nextCounter(b, metaRangeCtr, 2)
		if err != nil {
			return Result{}, err
		}
		desc := &cairnpb.RangeDescriptor{Id: rangeID, TableId: tableID, Replicas: voters}
		if i > 0 {
			desc.Start = bounds[i-1]
		}
		if i < len(bounds) {
			desc.End = bounds[i]
		}
		t.Ranges = append(t.Ranges, desc)
	}
	v := r.nextVersion(ts)
	if err := putProto(b, MetaTableKey(c.Name), v, t); err != nil {
		return Result{}, err
	}
	for _, desc := range t.Ranges {
		// Only the placed voters start a replica (range state is local
		// to each node, outside the meta range's data): a node outside
		// the configuration holding an initialized copy would look like
		// a replica that was removed and not yet destroyed, and get no
		// learner of the range until it went.
		if !slices.Contains(desc.Replicas, r.opts.NodeID) {
			continue
		}
		if err := WriteInitial(b, desc); err != nil {
			return Result{}, fmt.Errorf("create range %d: %w", desc.Id, err)
		}
		out.Effects = append(out.Effects, Effect{Create: desc})
	}
	return Result{Version: v, Table: t}, nil
}

// applyUpdateTable changes the settings u sets and keeps the others. The
// proposer validated them; they are checked again here (the same way on
// every replica) so that no entry can store a setting out of range.
func (r *Replica) applyUpdateTable(b *pebble.Batch, u *cairnpb.UpdateTableRequest, ts uint64) (Result, error) {
	t := &cairnpb.Table{}
	found, err := GetProto(b, MetaTableKey(u.Name), t)
	if err != nil {
		return Result{}, err
	}
	if !found {
		return Result{Err: kv.Errorf(kv.ErrTableNotFound, "table %q does not exist", u.Name)}, nil
	}
	if err := kv.ValidateTableUpdate(u); err != nil {
		return Result{Err: err}, nil
	}
	kv.ApplyTableUpdate(t, u)
	v := r.nextVersion(ts)
	if err := putProto(b, MetaTableKey(t.Name), v, t); err != nil {
		return Result{}, err
	}
	return Result{Version: v, Table: t}, nil
}

func (r *Replica) applyDropTable(b *pebble.Batch, c *cairnpb.DropTable, out *Applied) (Result, error) {
	t := &cairnpb.Table{}
	found, err := GetProto(b, MetaTableKey(c.Name), t)
	if err != nil {
		return Result{}, err
	}
	if !found {
		return Result{Err: kv.Errorf(kv.ErrTableNotFound, "table %q does not exist", c.Name)}, nil
	}
	if err := b.Delete(MetaTableKey(c.Name), nil); err != nil {
		return Result{}, err
	}
	for _, d := range t.Ranges {
		out.Effects = append(out.Effects, Effect{Destroy: d})
	}
	return Result{Table: t}, nil
}
