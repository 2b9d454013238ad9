package store

import (
	"cmp"
	"slices"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/cairn-db/cairn/internal/keys"
)

// Node liveness for quiesced ranges.
//
// A quiesced follower does not tick, so it would never notice that its
// leader died (replica/quiesce.go, invariant 4). The store notices for
// all its replicas at once: every HeartbeatTicks ticks it sends each
// other member a node heartbeat (a raft MsgHeartbeat on the reserved range
// 0, which no replica sees), and it records the tick of the last message
// of any kind it got from each node. A node not heard from for more than
// ElectionTicks ticks is down; on that transition the store wakes every
// quiesced replica whose leader is on that node, which then campaigns
// after an election timeout as in plain Raft. The cost is one small
// message per peer node per heartbeat interval, whatever the number of
// ranges (CockroachDB's node liveness and TiKV's store heartbeats serve
// the same purpose for their quiesced / hibernating regions).
//
// Why a node heartbeat and not the coordinator's view: the coordinator
// calls a node down only after several seconds (--down-after), and only
// its leader knows it; every follower needs to know within an election
// timeout. The transport's connection state would miss a node that is
// connected but whose driver is stuck. And the heartbeat runs through the
// same Sender as Raft messages, so the deterministic simulation's network
// (partitions, drops, delays) applies to it unchanged.
//
// A false "down" (a partition, lost heartbeats) only wakes replicas: at
// worst they campaign, which Raft's PreVote and CheckQuorum stickiness
// make harmless while the leader is in fact alive. A false "up" is not
// possible for longer than an election timeout.

// nodeHeartbeatRange is the range ID node heartbeats travel on; no range
// has ID 0.
const nodeHeartbeatRange keys.RangeID = 0

// liveness is the store's view of the other nodes. Driver-owned.
type liveness struct {
	// heardAt is the tick a message of the node last arrived at.
	heardAt map[uint64]uint64
	// down is the nodes found down (and their followers woken) since
	// they were last heard from.
	down map[uint64]bool
}

// heard records a message from node. Driver only.
func (s *Store) heard(node uint64) {
	if !s.opts.Quiesce || node == 0 {
		return
	}
	if s.live.heardAt == nil {
		s.live.heardAt, s.live.down = map[uint64]uint64{}, map[uint64]bool{}
	}
	s.live.heardAt[node] = s.ticks
	delete(s.live.down, node)
}

// tickLiveness sends node heartbeats and wakes the quiesced followers of
// nodes that went quiet. Driver only, once per tick (after tickHeld
// advanced s.ticks).
func (s *Store) tickLiveness() {
	if !s.opts.Quiesce {
		return
	}
	if s.live.heardAt == nil {
		s.live.heardAt, s.live.down = map[uint64]uint64{}, map[uint64]bool{}
	}
	var peers []uint64
	for _, n := range s.Nodes() {
		if n.Id != s.opts.NodeID && n.State != "removed" {
			peers = append(peers, n.Id)
		}
	}
	slices.SortFunc(peers, cmp.Compare)
	heartbeatTicks := uint64(max(s.opts.HeartbeatTicks, 1))
	if s.ticks%heartbeatTicks == 0 && s.transport != nil && len(peers) > 0 {
		msgs := make([]raftpb.Message, 0, len(peers))
		for _, id := range peers {
			msgs = append(msgs, raftpb.Message{Type: raftpb.MsgHeartbeat, From: s.opts.NodeID, To: id})
		}
		s.transport.Send(nodeHeartbeatRange, msgs)
	}
	for _, id := range peers {
		at, ok := s.live.heardAt[id]
		if !ok {
			// Never heard of: count from now (a node just started or
			// joined gives its peers an election timeout to speak).
			s.live.heardAt[id] = s.ticks
			continue
		}
		if s.live.down[id] || s.ticks-at <= uint64(s.opts.ElectionTicks) {
			continue
		}
		s.live.down[id] = true
		s.wakeFollowersOf(id)
	}
}

// wakeFollowersOf wakes the quiesced replicas led from node. Driver only;
// O(replicas), but only when a node goes down.
func (s *Store) wakeFollowersOf(node uint64) {
	woken := 0
	for _, r := range s.Replicas() {
		if r.WakeIfLeader(node) {
			s.touch(r)
			woken++
		}
	}
	if woken > 0 {
		s.logger.Info("store: node went quiet; woke quiesced followers", "node", node, "ranges", woken)
	}
}

// NodeDown reports whether this store considers node down (not heard
// from for an election timeout). Driver only (tests).
func (s *Store) NodeDown(node uint64) bool { return s.live.down[node] }
