package replica

import "sync/atomic"

// Stats are a node's Raft counters, shared by all its replicas (so that
// they only grow, whatever replicas come and go) and exported as metrics
// by internal/metrics.
type Stats struct {
	Proposals        atomic.Uint64 // commands handed to raft
	ProposalsDropped atomic.Uint64 // refused: not the leader, or raft dropped them
	LeaderChanges    atomic.Uint64 // times a replica saw its range's leader change
	BecameLeader     atomic.Uint64 // times a replica of this node became leader
	ReadIndexRounds  atomic.Uint64 // ReadIndex requests handed to raft (batches and lease renewals)
	LeaseReads       atomic.Uint64 // reads served under the leader's lease
	SessionReads     atomic.Uint64 // session reads served locally (no Raft round)
	StaleReads       atomic.Uint64 // bounded-stale reads served locally on a freshness proof
	StaleRefused     atomic.Uint64 // bounded-stale reads refused: no proof within the bound (too_stale)
	SnapshotsApplied atomic.Uint64 // snapshots installed
	EntriesApplied   atomic.Uint64 // log entries applied
	Quiesces         atomic.Uint64 // times a replica quiesced (stopped ticking)
	Unquiesces       atomic.Uint64 // times a quiesced replica woke
	LeaderPokes      atomic.Uint64 // times a replica that heard nothing from its leader poked it (quiesce.go)
}

func (r *Replica) stats() *Stats {
	if r.opts.Stats == nil {
		return &discardStats
	}
	return r.opts.Stats
}

// discardStats absorbs the counts of replicas opened without Stats.
var discardStats Stats
