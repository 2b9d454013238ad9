// Package store hosts all of a node's replicas (multi-Raft) and runs the
// node's one driver goroutine: the only code that touches Raft groups.
//
// The driver loop, one iteration:
//
//  1. Wait for a tick, inbound messages, or a replica with queued requests.
//  2. Tick / Step / hand queued proposals and reads to raft. Only awake
//     replicas are ticked: an idle range quiesces (replica/quiesce.go,
//     docs/design/quiescence.md) and costs no work per tick; node
//     heartbeats (liveness.go) wake the quiesced followers of a dead leader.
//  3. Collect Ready from every awake or just touched replica that has one.
//  4. Persist all of them in ONE Pebble batch (snapshots, entries, hard
//     states) and commit it with ONE fsync: group commit across ranges
//     and across the many proposals each Ready carries.
//  5. Send their messages: a leader's before the fsync (step 4), every
//     other replica's after it, so a follower's append ack always means
//     "durable here".
//  6. Apply committed entries of all replicas in one batch (no fsync: the
//     log is durable and apply is replayed from the applied index after a
//     crash), then wake waiters, release reads, make meta effects
//     (create/destroy replicas), Advance, and truncate logs.
//
// Steps are serial because raft's Ready/Advance contract requires it; the
// batching across replicas is what makes one driver fast enough.
package store

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/hlc"
	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/kv"
	"github.com/cairn-db/cairn/internal/replica"
	"github.com/cairn-db/cairn/internal/transport"
	"github.com/cairn-db/cairn/internal/watch"
)

// Options configures a Store.
type Options struct {
	NodeID         uint64
	TickInterval   time.Duration
	ElectionTicks  int
	HeartbeatTicks int
	LogKeepEntries uint64
	Logger         *slog.Logger
	Clock          *hlc.Clock
	// Now reads the wall clock (default time.Now); the simulator injects
	// its own so that a seed replays exactly.
	Now func() time.Time
	// HistoryVersions is how many changes of a key its history keeps at
	// least (replica.Options.HistoryVersions); 0 means
	// replica.DefaultHistoryVersions, negative keeps none.
	// HistoryRetention keeps younger changes beyond those.
	HistoryVersions  int
	HistoryRetention time.Duration
	// OnNodes, if set, is called with the members whenever the catalog
	// is published (the server adds new peers to its transport). It must
	// not block.
	OnNodes func([]*cairnpb.Node)
	// Quiesce lets idle ranges stop ticking (replica/quiesce.go); the
	// store then also sends node heartbeats, by which it wakes quiesced
	// followers of a leader whose node went quiet (liveness.go).
	Quiesce bool
}

// Store is a node's set of replicas and their driver.
type Store struct {
	opts      Options
	db        *pebble.DB
	transport Sender
	logger    *slog.Logger
	startedAt time.Time
	stats     replica.Stats
	hub       *watch.Hub

	// inbox carries inbound Raft messages to the driver (bounded).
	inbox chan []transport.RangeMessage
	// work carries IDs of replicas with queued requests. It is bounded;
	// when it is full, notify sets drainAll instead and the driver then
	// drains every replica, so no queued request is ever forgotten.
	work     chan keys.RangeID
	drainAll atomic.Bool
	reports  chan func()

	// held keeps Raft messages for ranges this node does not have yet
	// (driver-owned): the right-hand range of a split is created here only
	// when this node applies the split, usually a moment after the left's
	// leader campaigned for it. Dropping the vote requests would cost the
	// new range an election timeout; they are stepped when the range is
	// opened, or dropped after heldTicks. Never a reason to create a
	// replica (see docs/design/splits.md).
	held      map[keys.RangeID][]heldMsg
	heldCount int
	heldBytes int
	ticks     uint64

	// awake holds the replicas that are not quiesced: the only ones Tick
	// ticks. dirty holds replicas something touched (a message, a request,
	// a report) since a Ready pass last found them without work: the Ready
	// pass looks at awake and dirty replicas only, so a node of 10,000
	// quiesced ranges does no per-range work per tick. Driver-owned.
	awake map[keys.RangeID]*replica.Replica
	dirty map[keys.RangeID]*replica.Replica
	// awakeCount mirrors len(awake) for other goroutines (metrics).
	awakeCount atomic.Int64
	// live is the node liveness quiesced followers rely on (liveness.go).
	// Driver-owned.
	live liveness

	mu struct {
		sync.RWMutex
		replicas map[keys.RangeID]*replica.Replica
		catalog  map[string]*cairnpb.Table
		nodes    map[uint64]*cairnpb.Node
		// ranges indexes the catalog's descriptors by range ID.
		ranges map[keys.RangeID]*cairnpb.RangeDescriptor
	}
	// removed remembers the descriptor with which a replica left this node
	// (driver-owned), so that a catalog still listing the node there does
	// not create it again before it hears of the move.
	removed map[keys.RangeID]*cairnpb.RangeDescriptor

	stop chan struct{}
	done chan struct{}
}

type heldMsg struct {
	m    raftpb.Message
	tick uint64
}

const (
	maxHeldMsgs  = 4096
	maxHeldBytes = 8 << 20
	heldTicks    = 20
)

// hold keeps m for a range not (yet) here. Snapshots are not kept: they
// are large, and the sender retries them.
func (s *Store) hold(id keys.RangeID, m raftpb.Message) {
	size := m.Size()
	if m.Type == raftpb.MsgSnap || s.heldCount >= maxHeldMsgs || s.heldBytes+size > maxHeldBytes {
		return
	}
	s.heldBytes += size
	if s.held == nil {
		s.held = map[keys.RangeID][]heldMsg{}
	}
	s.held[id] = append(s.held[id], heldMsg{m: m, tick: s.ticks})
	s.heldCount++
}

// tickHeld ages held messages out.
func (s *Store) tickHeld() {
	s.ticks++
	for id, ms := range s.held {
		kept := ms[:0]
		for _, h := range ms {
			if s.ticks-h.tick <= heldTicks {
				kept = append(kept, h)
			} else {
				s.heldBytes -= h.m.Size()
			}
		}
		s.heldCount -= len(ms) - len(kept)
		if len(kept) == 0 {
			delete(s.held, id)
		} else {
			s.held[id] = kept
		}
	}
}

// stepHeld steps the messages held for a range just opened.
func (s *Store) stepHeld(r *replica.Replica) {
	ms := s.held[r.ID]
	if len(ms) == 0 {
		return
	}
	delete(s.held, r.ID)
	s.heldCount -= len(ms)
	for _, h := range ms {
		s.heldBytes -= h.m.Size()
		if err := r.Step(h.m); err != nil && !errors.Is(err, raft.ErrStepPeerNotFound) {
			s.logger.Debug("step held", "range", uint64(r.ID), "err", err)
		}
	}
}

// New opens the replicas found in db. Start runs the driver.
func New(db *pebble.DB, opts Options) (*Store, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Store{
		opts:      opts,
		db:        db,
		logger:    opts.Logger,
		inbox:     make(chan []transport.RangeMessage, 1024),
		work:      make(chan keys.RangeID, 4096),
		reports:   make(chan func(), 4096),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
		startedAt: opts.Now(),
		hub:       watch.NewHub(),
		awake:     map[keys.RangeID]*replica.Replica{},
		dirty:     map[keys.RangeID]*replica.Replica{},
	}
	s.mu.replicas = map[keys.RangeID]*replica.Replica{}
	catalog, nodes, err := s.readCatalog()
	if err != nil {
		return nil, err
	}
	s.publishCatalog(catalog, nodes)
	if err := s.reconcile(catalog); err != nil {
		return nil, err
	}
	return s, nil
}

// Sender is what the store needs of a transport: a send that never
// blocks. *transport.Transport implements it; the simulator has its own.
type Sender interface {
	Send(rangeID keys.RangeID, msgs []raftpb.Message)
}

// SetTransport connects the store to its transport (before Start).
func (s *Store) SetTransport(t Sender) { s.transport = t }

// TransportCallbacks returns the callbacks the transport calls.
func (s *Store) TransportCallbacks() transport.Callbacks {
	return transport.Callbacks{
		Deliver: func(ctx context.Context, msgs []transport.RangeMessage) error {
			select {
			case s.inbox <- msgs:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			case <-s.stop:
				return errors.New("store: stopped")
			}
		},
		Unreachable: func(id keys.RangeID, to uint64) {
			s.report(func() {
				if r := s.replicaLocked(id); r != nil {
					r.ReportUnreachable(to)
					s.touch(r)
				}
			})
		},
		SnapshotSent: func(id keys.RangeID, to uint64, ok bool) {
			// Never dropped (unlike unreachable reports): a lost snapshot
			// report leaves the follower waiting for a snapshot until the
			// leader changes. The sender blocks instead; the driver never
			// waits on the transport, so this cannot deadlock.
			f := func() {
				if r := s.replicaLocked(id); r != nil {
					r.ReportSnapshot(to, ok)
					s.touch(r)
				}
			}
			select {
			case s.reports <- f:
			case <-s.stop:
			}
		},
	}
}

func (s *Store) report(f func()) {
	select {
	case s.reports <- f:
	default: // dropped: raft recovers by its own probing
	}
}

func (s *Store) replicaLocked(id keys.RangeID) *replica.Replica {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.mu.replicas[id]
}

// Replica returns the local replica of a range, or nil.
func (s *Store) Replica(id keys.RangeID) *replica.Replica { return s.replicaLocked(id) }

// Replicas returns all local replicas.
func (s *Store) Replicas() []*replica.Replica {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*replica.Replica, 0, len(s.mu.replicas))
	for _, r := range s.mu.replicas {
		out = append(out, r)
	}
	// In range order: the order of Ready processing decides the order of
	// sent messages, which a deterministic simulation must reproduce.
	slices.SortFunc(out, func(a, b *replica.Replica) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// ReplicasUnordered returns all local replicas in no particular order:
// for periodic passes over every replica, which need not pay for sorting
// 10,000 of them.
func (s *Store) ReplicasUnordered() []*replica.Replica {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Collect(maps.Values(s.mu.replicas))
}

// Table returns the table named name as this node's meta replica has
// applied it (possibly stale; see router).
func (s *Store) Table(name string) *cairnpb.Table {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.mu.catalog[name]
}

// TableByID returns the table with ID id as applied here, or nil.
func (s *Store) TableByID(id uint64) *cairnpb.Table {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, t := range s.mu.catalog {
		if t.Id == id {
			return t
		}
	}
	return nil
}

// LocalRangeFor returns the local initialized replica of table whose range
// holds key now, or nil. Local descriptors learn of a split when it
// applies here, before the catalog does, so the router asks them after a
// range key mismatch.
func (s *Store) LocalRangeFor(table uint64, key []byte) *replica.Replica {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, r := range s.mu.replicas {
		if r.Desc().TableId == table && r.Contains(key) {
			return r
		}
	}
	return nil
}

// Tables returns all tables as applied here.
func (s *Store) Tables() []*cairnpb.Table {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*cairnpb.Table, 0, len(s.mu.catalog))
	for _, t := range s.mu.catalog {
		out = append(out, t)
	}
	return out
}

// Nodes returns the cluster's nodes as applied here.
func (s *Store) Nodes() []*cairnpb.Node {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*cairnpb.Node, 0, len(s.mu.nodes))
	for _, n := range s.mu.nodes {
		out = append(out, n)
	}
	return out
}

// DB returns the node's Pebble instance (for reads).
func (s *Store) DB() *pebble.DB { return s.db }

// Stats returns the node's Raft counters.
func (s *Store) Stats() *replica.Stats { return &s.stats }

// NodeID returns this node's ID.
func (s *Store) NodeID() uint64 { return s.opts.NodeID }

// readCatalog reads the table and node maps from the meta records.
func (s *Store) readCatalog() (map[string]*cairnpb.Table, map[uint64]*cairnpb.Node, error) {
	catalog := map[string]*cairnpb.Table{}
	start, end := replica.MetaTableSpan()
	if err := replica.ScanProtos(s.db, start, end, func() *cairnpb.Table { return &cairnpb.Table{} },
		func(t *cairnpb.Table) { catalog[t.Name] = t }); err != nil {
		return nil, nil, fmt.Errorf("store: load tables: %w", err)
	}
	nodes := map[uint64]*cairnpb.Node{}
	start, end = replica.MetaNodeSpan()
	if err := replica.ScanProtos(s.db, start, end, func() *cairnpb.Node { return &cairnpb.Node{} },
		func(n *cairnpb.Node) { nodes[n.Id] = n }); err != nil {
		return nil, nil, fmt.Errorf("store: load nodes: %w", err)
	}
	return catalog, nodes, nil
}

// publishCatalog makes a catalog the one requests see.
func (s *Store) publishCatalog(catalog map[string]*cairnpb.Table, nodes map[uint64]*cairnpb.Node) {
	ranges := map[keys.RangeID]*cairnpb.RangeDescriptor{}
	for _, t := range catalog {
		for _, d := range t.Ranges {
			ranges[keys.RangeID(d.Id)] = d
		}
	}
	s.mu.Lock()
	s.mu.catalog, s.mu.nodes, s.mu.ranges = catalog, nodes, ranges
	s.mu.Unlock()
	if s.opts.OnNodes != nil {
		s.opts.OnNodes(slices.Collect(maps.Values(nodes)))
	}
}

// CatalogRange returns range id's descriptor as the catalog records it
// (possibly behind the range itself), or nil.
func (s *Store) CatalogRange(id keys.RangeID) *cairnpb.RangeDescriptor {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.mu.ranges[id]
}

// MetaDesc returns the meta range's descriptor as the local meta replica
// has applied it, or nil when this node has no initialized meta replica.
func (s *Store) MetaDesc() *cairnpb.RangeDescriptor {
	if r := s.replicaLocked(replica.MetaRangeID); r != nil && r.Initialized() {
		return r.Desc()
	}
	return nil
}

// holds reports whether d places a replica (voter or learner) on node.
func holds(d *cairnpb.RangeDescriptor, node uint64) bool {
	return slices.Contains(d.Replicas, node) || slices.Contains(d.Learners, node)
}

// reconcile makes the set of local replicas match the catalog:
//
//   - it opens every replica whose state is stored here (a range created
//     by a split is here before the catalog lists it);
//   - it destroys replicas of tables the catalog no longer has (a DropTable,
//     or one whose cleanup a crash cut off), deleting the data each local
//     replica owns by its own descriptor;
//   - it creates uninitialized replicas (see replica.WriteUninitialized) of
//     ranges the catalog lists on this node that are not here, as long as
//     no local replica of the table overlaps their span: a local replica
//     that still covers the span will create the range itself when it
//     applies the split, with the data at the split; creating it earlier
//     would let two replicas own the same keys. A meta snapshot can also
//     announce a table whose CreateTable this node never applied; its
//     ranges come the same way and get a snapshot from their leader.
func (s *Store) reconcile(catalog map[string]*cairnpb.Table) error {
	tables := map[uint64]bool{uint64(keys.MetaTableID): true}
	for _, t := range catalog {
		tables[t.Id] = true
	}
	have := map[keys.RangeID]*cairnpb.RangeState{}
	start, end := keys.RangeStateSpan()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: start, UpperBound: end})
	if err != nil {
		return err
	}
	var ids []keys.RangeID
	for ok := it.First(); ok; ok = it.Next() {
		if id, ok := keys.RangeStateID(it.Key()); ok {
			ids = append(ids, id)
		}
	}
	if err := it.Close(); err != nil {
		return err
	}
	for _, id := range ids {
		st, err := replica.LoadState(s.db, id)
		if err != nil {
			return err
		}
		// An open replica's descriptor may be ahead of Pebble (its apply
		// batch is committed; LoadState reads the same), so either works.
		have[id] = st
	}
	b := s.db.NewBatch()
	defer b.Close()
	var destroyed []keys.RangeID
	for id, st := range have {
		if !tables[st.Desc.TableId] {
			if err := replica.DestroyData(s.db, b, st); err != nil {
				return err
			}
			// The table is gone: so is its expiry index (per table, not
			// per range, so no single range's destruction covers it).
			is, ie := keys.ExpirySpan(keys.TableID(st.Desc.TableId), -1)
			if err := b.DeleteRange(is, ie, nil); err != nil {
				return err
			}
			rs, re := keys.TxnRecordSpan(keys.TableID(st.Desc.TableId))
			if err := b.DeleteRange(rs, re, nil); err != nil {
				return err
			}
			ls, le := keys.IntentSpan(keys.TableID(st.Desc.TableId), nil, nil)
			if err := b.DeleteRange(ls, le, nil); err != nil {
				return err
			}
			destroyed = append(destroyed, id)
			delete(have, id)
		}
	}
	// Replicas moved off this node: the catalog records a newer
	// configuration of the same range without this node (the range applied
	// it first, so the catalog only learns of it after it is decided). A
	// replica that applied its own removal is destroyed at once
	// (removeMoved); this catches one that was cut off then.
	byID := map[keys.RangeID]*cairnpb.RangeDescriptor{}
	for _, t := range catalog {
		for _, d := range t.Ranges {
			byID[keys.RangeID(d.Id)] = d
		}
	}
	// Ranges merged away (replica/merge.go), before the moves below, whose
	// data destruction depends on which replicas stay: see mergedAway.
	fates := map[keys.RangeID]mergeFate{}
	for id, st := range have {
		if f := mergedAway(id, st, have, byID, s.opts.NodeID); f != notMerged {
			fates[id] = f
		}
	}
	merged := slices.Sorted(maps.Keys(fates))
	stay := maps.Clone(have)
	for _, id := range merged {
		delete(stay, id)
	}
	for _, id := range merged {
		var err error
		if fates[id] == mergedInto {
			err = replica.DestroyData(s.db, b, &cairnpb.RangeState{Desc: have[id].Desc}) // Raft state only
		} else {
			err = s.destroyMoved(b, id, have[id], stay)
		}
		if err != nil {
			return err
		}
		delete(have, id)
	}
	var moved []keys.RangeID
	for id, st := range have {
		d := byID[id]
		if d == nil || holds(d, s.opts.NodeID) || !replica.DescNewer(d, st.Desc) {
			continue
		}
		if err := s.destroyMoved(b, id, st, have); err != nil {
			return err
		}
		moved = append(moved, id)
		delete(have, id)
	}
	var created []keys.RangeID
	for _, t := range catalog {
		for _, d := range t.Ranges {
			if !holds(d, s.opts.NodeID) {
				continue
			}
			if _, ok := have[keys.RangeID(d.Id)]; ok {
				continue
			}
			if gone := s.removed[keys.RangeID(d.Id)]; gone != nil && !replica.DescNewer(d, gone) {
				continue
			}
			if overlapsAny(have, d) {
				continue
			}
			if err := replica.WriteUninitialized(b, d); err != nil {
				return err
			}
			have[keys.RangeID(d.Id)] = &cairnpb.RangeState{Desc: d}
			created = append(created, keys.RangeID(d.Id))
		}
	}
	if !b.Empty() {
		if err := b.Commit(pebble.Sync); err != nil {
			return err
		}
	}
	// Data first, then the replica: whoever sees the replica gone also
	// sees its data gone.
	slices.Sort(destroyed)
	for _, id := range destroyed {
		s.removeReplica(id)
	}
	slices.Sort(merged)
	for _, id := range merged {
		s.logger.Info("store: range merged into its left neighbour; replica destroyed", "range", uint64(id))
		// A write still waiting on the frozen range was refused or never
		// applied (every entry before the freeze applied here before the
		// merge could): it may be retried on the merged range.
		err := kv.Errorf(kv.ErrRangeKeyMismatch, "range %d was merged into its left neighbour", id)
		s.removeReplicaErrs(id, err, err)
	}
	slices.Sort(moved)
	for _, id := range moved {
		s.removeReplicaErr(id, kv.Errorf(kv.ErrNotLeader, "range %d moved off node %d", id, s.opts.NodeID))
	}
	// In range order: each opened replica draws an election timeout, so a
	// deterministic simulation needs a fixed order.
	for _, id := range slices.Sorted(maps.Keys(have)) {
		if s.replicaLocked(id) != nil {
			continue
		}
		if err := s.openReplica(id); err != nil {
			return err
		}
	}
	if len(created) > 0 {
		s.logger.Debug("store: uninitialized replicas created", "ranges", created)
	}
	return nil
}

type mergeFate int

const (
	notMerged mergeFate = iota
	// mergedInto: a local replica covers the range now; only its Raft
	// state goes, its data is the covering range's.
	mergedInto
	// mergedElsewhere: the range was merged into a range this node holds
	// no replica of, or this replica had left the range before: it goes
	// like a moved replica.
	mergedElsewhere
)

// mergedAway reports whether the local range id (state st) was merged into
// another range:
//
//   - frozen and covered by a local range of higher generation
//     (replica.Subsumed): merged into that local replica;
//   - not listed in the catalog, which records a newer range holding its
//     start key: only a merge gives a range's start key to another range
//     (a split keeps the left's ID, and its right half starts strictly
//     inside the range; a newer descriptor of the range itself has its
//     ID). Not any newer overlapping range: the catalog drops a range that
//     split until both halves are recorded (an update of the right half
//     alone leaves a gap), and a replica that has not applied the split
//     yet overlaps the right half. Left alone, such a replica would keep the merged
//     range from being created here. It is destroyed like a moved one,
//     unless it is frozen and the local replica of the left range has not
//     passed the freeze's generation (and is not moved off this node):
//     that replica has yet to apply the merge and take over the span with
//     its data (at any later generation it never will). Below the
//     freeze's generation it still has entries to apply before the merge,
//     an earlier merge for one: the catalog can record two merges into
//     the left range before this node's left replica applied the first
//     (seed 2344 destroyed the second right range's data here, and the
//     left replica then merged a span it no longer held). (A replica
//     that is not frozen was no member of the range when it froze, since
//     every member applied the freeze before the merge: a node holding
//     the left range, a member of the same replica set, holds a frozen
//     replica.)
func mergedAway(id keys.RangeID, st *cairnpb.RangeState, have map[keys.RangeID]*cairnpb.RangeState,
	catalog map[keys.RangeID]*cairnpb.RangeDescriptor, node uint64) mergeFate {
	for oid, o := range have {
		if oid != id && replica.Subsumed(st, o.Desc) {
			return mergedInto
		}
	}
	if catalog[id] != nil || st.Desc.TableId == uint64(keys.MetaTableID) {
		return notMerged
	}
	newer := false
	for _, d := range catalog {
		if d.TableId == st.Desc.TableId && replica.DescContains(d, st.Desc.Start) && d.Generation > st.Desc.Generation {
			newer = true
			break
		}
	}
	if !newer {
		return notMerged
	}
	if fr := st.Frozen; fr != nil {
		// The local left replica has yet to reach the freeze's generation
		// (below it: earlier merges or splits still to apply, seed 2344)
		// or is at it: it may still apply the merge, and then it reads
		// this replica's data as the right range's. Unless the catalog
		// shows it moved off this node: it goes, and this one with it.
		if o := have[keys.RangeID(fr.LeftId)]; o != nil && o.Desc.Generation <= fr.LeftGeneration && !movedOff(o.Desc, catalog, node) {
			return notMerged
		}
	}
	return mergedElsewhere
}

// movedOff reports whether the catalog records a newer configuration of
// the local range d that does not hold node (reconcile destroys such a
// replica as moved).
func movedOff(d *cairnpb.RangeDescriptor, catalog map[keys.RangeID]*cairnpb.RangeDescriptor, node uint64) bool {
	c := catalog[keys.RangeID(d.Id)]
	return c != nil && !holds(c, node) && replica.DescNewer(c, d)
}

// destroyMoved deletes, into b, a replica that no longer belongs here: its
// Raft state always, its data only if no other local replica overlaps its
// span (one created by a later split owns that data now).
func (s *Store) destroyMoved(b *pebble.Batch, id keys.RangeID, st *cairnpb.RangeState, have map[keys.RangeID]*cairnpb.RangeState) error {
	others := maps.Clone(have)
	delete(others, id)
	if overlapsAny(others, st.Desc) {
		st = &cairnpb.RangeState{Desc: st.Desc} // uninitialized: Raft state only
	}
	s.logger.Info("store: replica moved off this node", "range", uint64(id))
	return replica.DestroyData(s.db, b, st)
}

// dropStaleSplits undoes, in the apply batch b that created them, the
// right-hand replicas of splits applied in this pass that must not exist
// here.
//
// A split the left replica applied after its own removal (both in one
// apply pass: the removed replica is destroyed only after the pass) makes
// a right range whose configuration does not list this node: an
// initialized copy outside its configuration would never hear from the
// range, never be destroyed (the catalog's descriptor is not newer than
// it) and, since it looks like a removed replica not yet gone, keep the
// node from ever being added to the range (seed 518).
//
// And one applied when this node already knows that the new range moved
// on without this copy: the catalog
// records a newer descriptor of it (a configuration change or a split
// since), or a replica of it was removed from this node. Such a split was
// applied by a lagging left replica, long after the range's other
// replicas; meanwhile this node may have been removed from the new range
// (it never had a replica of it, so it reported none and was unfenced) and
// added back. A copy created now at the split's index would take the
// range's log from there, acknowledge it in the current term, and then
// destroy itself when it applies its own old removal: entries its Raft ID
// acknowledged would be gone, and the leader, whose progress says they are
// held, would probe it forever instead of sending a snapshot (seed 145,
// RELIABILITY.md). The copy has not been opened, so it has sent nothing;
// dropping it (its Raft state and the data of its span, which the left
// just gave up) is safe. Its effect's Create is cleared; reconcile then
// creates an uninitialized replica if the catalog lists this node, and the
// leader sends it a snapshot. A split whose right side merely gained or
// lost a replica elsewhere costs this node a snapshot too: the price of
// not knowing what happened to the range in between.
func (s *Store) dropStaleSplits(b *pebble.Batch, effects []replica.Effect) error {
	for i, e := range effects {
		if e.Create == nil || !e.Split {
			continue
		}
		id := keys.RangeID(e.Create.Id)
		cat := s.CatalogRange(id)
		outside := !holds(e.Create, s.opts.NodeID)
		if !outside && (cat == nil || !replica.DescNewer(cat, e.Create)) && s.removed[id] == nil {
			continue
		}
		if s.replicaLocked(id) != nil {
			continue // not a creation of this pass (never happens: a split refuses an existing range)
		}
		// Applied index != 0: the data of the span goes too.
		st := &cairnpb.RangeState{Desc: e.Create, AppliedIndex: replica.InitialIndex}
		if err := replica.DestroyData(s.db, b, st); err != nil {
			return err
		}
		effects[i].Create = nil
		s.logger.Info("store: the right-hand copy of a split applied here is dropped",
			"range", uint64(id), "outside_its_configuration", outside,
			"catalog_conf_version", cat.GetConfVersion(), "split_conf_version", e.Create.ConfVersion)
	}
	return nil
}

// removeMoved destroys the local replicas whose own log removed them
// (replica.Effect.Removed), data and all, before the catalog hears of it.
func (s *Store) removeMoved(effects []replica.Effect) error {
	var ids []keys.RangeID
	for _, e := range effects {
		if e.Removed && e.Changed != nil {
			// A later entry of the same apply pass added this node back:
			// the replica is a member again, its log intact and possibly
			// acknowledged as such; destroying it would lose that log.
			// (Only a replica that never held the range when the node was
			// unfenced can be in that position; see dropStaleSplits.)
			if r := s.replicaLocked(keys.RangeID(e.Changed.Id)); r != nil && holds(r.Desc(), s.opts.NodeID) {
				continue
			}
			ids = append(ids, keys.RangeID(e.Changed.Id))
			if s.removed == nil {
				s.removed = map[keys.RangeID]*cairnpb.RangeDescriptor{}
			}
			s.removed[keys.RangeID(e.Changed.Id)] = e.Changed
		}
	}
	if len(ids) == 0 {
		return nil
	}
	have := map[keys.RangeID]*cairnpb.RangeState{}
	for _, r := range s.Replicas() {
		st, err := replica.LoadState(s.db, r.ID)
		if err != nil {
			return err
		}
		have[r.ID] = st
	}
	b := s.db.NewBatch()
	defer b.Close()
	for _, id := range ids {
		st := have[id]
		if st == nil {
			continue
		}
		if err := s.destroyMoved(b, id, st, have); err != nil {
			return err
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return err
	}
	for _, id := range ids {
		s.removeReplicaErr(id, kv.Errorf(kv.ErrNotLeader, "range %d moved off node %d", id, s.opts.NodeID))
	}
	return nil
}

func overlapsAny(have map[keys.RangeID]*cairnpb.RangeState, d *cairnpb.RangeDescriptor) bool {
	for _, st := range have {
		if replica.DescsOverlap(st.Desc, d) {
			return true
		}
	}
	return false
}

func (s *Store) openReplica(id keys.RangeID) error {
	r, err := replica.Open(s.db, id, replica.Options{
		NodeID:         s.opts.NodeID,
		ElectionTicks:  s.opts.ElectionTicks,
		HeartbeatTicks: s.opts.HeartbeatTicks,
		MaxPending:     10000,
		ProposalIDSeed: uint64(s.opts.Now().UnixNano()),
		Logger:         s.logger,
		TickInterval:   s.opts.TickInterval,
		Now:            s.opts.Now,
		// A restarted node forgot which leaders it heard from; it must not
		// vote before an election timeout has passed (replica/lease.go).
		HoldVotesUntil:   s.startedAt.Add(time.Duration(s.opts.ElectionTicks) * s.opts.TickInterval),
		Stats:            &s.stats,
		HistoryVersions:  s.historyVersions(),
		HistoryRetention: s.opts.HistoryRetention,
		Quiesce:          s.opts.Quiesce,
	}, s.notify)
	if err != nil {
		return err
	}
	// A range with no other voter need not wait out an election timeout.
	if r.SoleVoter() {
		if err := r.Campaign(); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.mu.replicas[id] = r
	s.mu.Unlock()
	s.touch(r)
	s.stepHeld(r)
	return nil
}

func (s *Store) removeReplica(id keys.RangeID) {
	s.removeReplicaErr(id, kv.Errorf(kv.ErrTableNotFound, "range %d was removed", id))
}

// removeReplicaErr drops a replica; its queued requests fail with err,
// proposed writes with an unknown outcome unless the table is gone.
func (s *Store) removeReplicaErr(id keys.RangeID, err error) {
	proposed := err
	if !errors.Is(err, kv.ErrTableNotFound) {
		proposed = kv.Errorf(kv.ErrTimeout, "range %d moved off this node with the write in flight", id)
	}
	s.removeReplicaErrs(id, err, proposed)
}

// removeReplicaErrs drops a replica; its queued requests fail with err,
// proposed writes with proposedErr.
func (s *Store) removeReplicaErrs(id keys.RangeID, err, proposedErr error) {
	s.mu.Lock()
	r := s.mu.replicas[id]
	delete(s.mu.replicas, id)
	s.mu.Unlock()
	delete(s.awake, id)
	delete(s.dirty, id)
	s.awakeCount.Store(int64(len(s.awake)))
	if r != nil {
		r.Destroy(err, proposedErr)
	}
}

func (s *Store) notify(id keys.RangeID) {
	select {
	case s.work <- id:
	default:
		s.drainAll.Store(true)
		// Wake the driver: an entry of work suffices, and one is there.
	}
}

// Bootstrap writes a new cluster's initial state if db has none. It
// returns the node ID stored in db.
func Bootstrap(db *pebble.DB, self string, nodes []*cairnpb.Node) (uint64, error) {
	ident, err := Identity(db)
	if err != nil {
		return 0, err
	}
	if ident != nil {
		if ident.Name != self {
			return 0, fmt.Errorf("store: data dir belongs to node %q, not %q", ident.Name, self)
		}
		return ident.Id, nil
	}
	ident = &cairnpb.Node{}
	for _, n := range nodes {
		if n.Name == self {
			ident = n
		}
	}
	if ident.Id == 0 {
		return 0, fmt.Errorf("store: node %q is not in the initial cluster", self)
	}
	b := db.NewIndexedBatch()
	defer b.Close()
	if err := replica.Bootstrap(b, nodes); err != nil {
		return 0, err
	}
	data, err := proto.Marshal(ident)
	if err != nil {
		return 0, err
	}
	if err := b.Set(keys.IdentKey(), data, nil); err != nil {
		return 0, err
	}
	return ident.Id, b.Commit(pebble.Sync)
}

// Start runs the driver goroutine until Stop.
func (s *Store) Start() {
	go s.run()
}

// Stop ends the driver and waits for it.
func (s *Store) Stop() {
	close(s.stop)
	<-s.done
}

func (s *Store) run() {
	defer close(s.done)
	ticker := time.NewTicker(s.opts.TickInterval)
	defer ticker.Stop()
	// again is set when a Ready pass left more work behind (a single-voter
	// range commits only on Advance): loop at once instead of waiting for
	// the next event.
	again := false
	for {
		if !again {
			if !s.wait(ticker.C) {
				s.shutdown()
				return
			}
		}
		// Take whatever else is already waiting before one Ready pass:
		// this is where proposals and messages batch up.
		s.gather()
		if s.drainAll.Swap(false) {
			s.DrainRequests()
		}
		if err := s.processReady(); err != nil {
			// Storage failure: never keep serving on a broken disk.
			s.logger.Error("store: fatal storage error; stopping node", "err", err)
			panic(fmt.Sprintf("store: %v", err))
		}
		again = s.anyReady()
	}
}

// wait blocks until one event arrives and handles it; false means stop.
func (s *Store) wait(tick <-chan time.Time) bool {
	select {
	case <-s.stop:
		return false
	case <-tick:
		s.Tick()
	case msgs := <-s.inbox:
		s.step(msgs)
	case id := <-s.work:
		s.drain(id)
	case f := <-s.reports:
		f()
	}
	return true
}

// Driving a store by hand. A simulator that never calls Start drives the
// store from its one goroutine with these, in the order run would:
// Tick/Deliver/DrainRequests, then ProcessReady until it reports no work
// left. Each is "driver only".

// Tick advances every awake replica by one Raft tick (quiesced ones are
// not ticked: replica/quiesce.go).
func (s *Store) Tick() {
	tick := s.Replicas
	if s.opts.Quiesce {
		tick = func() []*replica.Replica { return sortedReplicas(s.awake) }
	}
	for _, r := range tick() {
		r.Tick()
		s.sendOut(r)
		s.touch(r)
	}
	s.tickHeld()
	s.tickLiveness()
}

// touch records that r may have Ready work and whether it is awake.
// Driver only.
func (s *Store) touch(r *replica.Replica) {
	s.dirty[r.ID] = r
	if r.Quiesced() {
		delete(s.awake, r.ID)
	} else {
		s.awake[r.ID] = r
	}
	s.awakeCount.Store(int64(len(s.awake)))
}

// AwakeReplicas returns how many local replicas are not quiesced (the
// ones the driver ticks). Any goroutine.
func (s *Store) AwakeReplicas() int { return int(s.awakeCount.Load()) }

// sendOut sends the messages r made outside Ready. Driver only.
func (s *Store) sendOut(r *replica.Replica) {
	if out := r.TakeMessages(); len(out) > 0 && s.transport != nil {
		s.transport.Send(r.ID, out)
	}
}

// sortedReplicas returns the replicas of m in range order (a deterministic
// simulation needs a fixed order).
func sortedReplicas(m map[keys.RangeID]*replica.Replica) []*replica.Replica {
	out := slices.Collect(maps.Values(m))
	slices.SortFunc(out, func(a, b *replica.Replica) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// readyCandidates returns the replicas that may have Ready work: the awake
// and the dirty ones, in range order. Driver only.
//
// NB: with quiescence off every replica is a candidate, exactly as before
// quiescence existed (see the open question in docs/design/quiescence.md).
func (s *Store) readyCandidates() []*replica.Replica {
	if !s.opts.Quiesce {
		return s.Replicas()
	}
	out := make([]*replica.Replica, 0, len(s.awake)+len(s.dirty))
	for _, r := range s.awake {
		out = append(out, r)
	}
	for id, r := range s.dirty {
		if _, ok := s.awake[id]; !ok {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b *replica.Replica) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Deliver steps inbound Raft messages.
func (s *Store) Deliver(msgs []transport.RangeMessage) { s.step(msgs) }

// DrainRequests hands every replica's queued proposals and reads to Raft.
// It touches every replica (a simulator may call replicas directly, for
// instance to report an unreachable peer).
func (s *Store) DrainRequests() {
	for _, r := range s.Replicas() {
		r.DrainRequests()
		s.sendOut(r)
		s.touch(r)
	}
}

// ProcessReady runs one Ready pass over all replicas and reports whether
// more work is left (call it again at once if so).
func (s *Store) ProcessReady() (more bool, err error) {
	if err := s.processReady(); err != nil {
		return false, err
	}
	return s.anyReady(), nil
}

// ReportUnreachable tells a range's Raft group a peer did not get a message.
func (s *Store) ReportUnreachable(id keys.RangeID, to uint64) {
	if r := s.replicaLocked(id); r != nil {
		r.ReportUnreachable(to)
		s.touch(r)
	}
}

// anyReady reports whether a candidate has Ready work, and forgets the
// dirty replicas that have none.
func (s *Store) anyReady() bool {
	if !s.opts.Quiesce {
		clear(s.dirty)
		for _, r := range s.Replicas() {
			if r.HasReady() {
				return true
			}
		}
		return false
	}
	found := false
	for id, r := range s.dirty {
		if r.HasReady() {
			found = true
		} else {
			delete(s.dirty, id)
		}
	}
	for _, r := range s.awake {
		if !found && r.HasReady() {
			found = true
		}
	}
	return found
}

func (s *Store) shutdown() {
	for _, r := range s.Replicas() {
		r.Destroy(kv.Errorf(kv.ErrUnavailable, "node is shutting down"),
			kv.Errorf(kv.ErrTimeout, "node is shutting down; outcome unknown"))
	}
}

func (s *Store) gather() {
	for i := 0; i < 256; i++ {
		select {
		case msgs := <-s.inbox:
			s.step(msgs)
		case id := <-s.work:
			s.drain(id)
		case f := <-s.reports:
			f()
		default:
			return
		}
	}
}

func (s *Store) drain(id keys.RangeID) {
	if r := s.replicaLocked(id); r != nil {
		r.DrainRequests()
		s.sendOut(r)
		s.touch(r)
	}
}

func (s *Store) step(msgs []transport.RangeMessage) {
	for _, m := range msgs {
		s.heard(m.Msg.From)
		if m.RangeID == nodeHeartbeatRange {
			continue // a node heartbeat: liveness only
		}
		r := s.replicaLocked(m.RangeID)
		if r == nil {
			// Not created here yet (this node has not applied the split
			// that creates it), or removed. Never create a replica on a
			// message: hold it a while; raft retries anyway, and the split
			// or reconcile creates the replica.
			s.hold(m.RangeID, m.Msg)
			continue
		}
		if m.Msg.Type == raftpb.MsgSnap && !s.snapshotFits(r, m.Msg) {
			continue
		}
		if err := r.Step(m.Msg); err != nil && !errors.Is(err, raft.ErrStepPeerNotFound) {
			s.logger.Debug("step", "range", uint64(m.RangeID), "err", err)
		}
		// A leader under a lease answers read index requests at once.
		s.sendOut(r)
		s.touch(r)
	}
}

// snapshotFits reports whether a snapshot for r may be applied: its span
// must not overlap another local replica's. A snapshot from before a split
// (a lagging leader's) could otherwise cover a right-hand range this node
// already holds, and two replicas would own the same keys. The sender
// retries later, by then with a newer snapshot.
func (s *Store) snapshotFits(r *replica.Replica, m raftpb.Message) bool {
	d := replica.SnapshotDesc(m)
	if d == nil || d.Id != uint64(r.ID) {
		return false
	}
	for _, o := range s.Replicas() {
		if o.ID != r.ID && replica.DescsOverlap(o.Desc(), d) && !s.mergedInto(o, d) {
			s.logger.Debug("store: snapshot overlaps a local replica; dropped", "range", uint64(r.ID), "other", uint64(o.ID))
			return false
		}
	}
	return true
}

// mergedInto reports whether the local replica o, which the snapshot's
// descriptor d overlaps, is a frozen range that d's range has merged: o is
// frozen for d's range at a generation d has passed (a range reaches into
// its right neighbour's span only by merging it), or d covers o
// (replica.Subsumed). The snapshot then holds o's data as of the merge or
// later (a range may have split again since), and reconcile destroys o
// once it is applied.
func (s *Store) mergedInto(o *replica.Replica, d *cairnpb.RangeDescriptor) bool {
	fr := o.FrozenFor()
	if fr == nil {
		return false
	}
	if fr.LeftId == d.Id && d.Generation > fr.LeftGeneration {
		return true
	}
	st, err := replica.LoadState(s.db, o.ID)
	return err == nil && replica.Subsumed(st, d)
}

type pending struct {
	r  *replica.Replica
	rd raft.Ready
}

func (s *Store) processReady() error {
	var rds []pending
	for _, r := range s.readyCandidates() {
		if r.HasReady() {
			rds = append(rds, pending{r, r.Ready()})
		}
	}
	if len(rds) == 0 {
		return nil
	}
	// A leader may send before its own fsync (as etcd does): its appends
	// count toward the quorum only once persisted (raft acks the leader's
	// own entries on Advance), and followers append in parallel, which
	// takes the leader's fsync off the critical path of every round.
	// Followers send after the fsync: their acks promise durability.
	early := make([]bool, len(rds))
	for i, p := range rds {
		lead := p.r.IsLeader()
		if p.rd.SoftState != nil {
			lead = p.rd.SoftState.RaftState == raft.StateLeader
		}
		if lead && len(p.rd.Messages) > 0 {
			early[i] = true
			s.transport.Send(p.r.ID, p.rd.Messages)
		}
	}
	// Step 4: one batch, one fsync.
	b := s.db.NewBatch()
	sync := false
	for _, p := range rds {
		if err := p.r.Persist(b, p.rd); err != nil {
			b.Close()
			return err
		}
		// raft's MustSync ignores snapshots, but the follower acks one as
		// soon as this batch commits: it must be durable like entries.
		sync = sync || p.rd.MustSync || !raft.IsEmptySnap(p.rd.Snapshot)
	}
	opt := pebble.NoSync
	if sync {
		opt = pebble.Sync
	}
	// Heartbeat-only Readies write nothing; skip the commit pipeline.
	if !b.Empty() {
		if err := b.Commit(opt); err != nil {
			b.Close()
			return fmt.Errorf("commit raft batch: %w", err)
		}
	}
	b.Close()
	// Step 5: messages.
	for i, p := range rds {
		p.r.AfterPersist(p.rd)
		if !early[i] && len(p.rd.Messages) > 0 {
			s.transport.Send(p.r.ID, p.rd.Messages)
		}
	}
	// Step 6: apply.
	ab := s.db.NewIndexedBatch()
	var applied replica.Applied
	metaChanged := false
	for _, p := range rds {
		if p.r.TakeSnapshotApplied() {
			metaChanged = true // reconcile: a snapshot may narrow a replica
			d := p.r.Desc()
			s.hub.Reset(keys.TableID(d.TableId), d.Start, d.End)
		}
	}
	for _, p := range rds {
		if len(p.rd.CommittedEntries) == 0 && raft.IsEmptySnap(p.rd.Snapshot) {
			continue
		}
		if err := p.r.Apply(ab, p.rd.CommittedEntries, &applied); err != nil {
			ab.Close()
			return err
		}
		if p.r.ID == replica.MetaRangeID {
			metaChanged = true
		}
	}
	if err := s.dropStaleSplits(ab, applied.Effects); err != nil {
		ab.Close()
		return err
	}
	for _, p := range rds {
		if err := p.r.MaybeTruncate(ab, s.opts.LogKeepEntries); err != nil {
			ab.Close()
			return err
		}
	}
	if !ab.Empty() {
		if err := ab.Commit(pebble.NoSync); err != nil {
			ab.Close()
			return fmt.Errorf("commit apply batch: %w", err)
		}
	}
	ab.Close()
	if applied.MaxVersion > 0 {
		s.opts.Clock.Update(hlc.Timestamp(applied.MaxVersion))
	}
	// Meta changes take effect (catalog, new replicas opened) before any
	// waiter wakes or read is released: a client told "table created", or
	// reading the catalog after a barrier, must find the table's replica.
	if metaChanged || len(applied.Effects) > 0 {
		if err := s.metaApplied(applied.Effects); err != nil {
			return err
		}
	}
	applied.Fire()
	s.hub.Publish(applied.Events)
	for _, p := range rds {
		p.r.ReleaseReads()
		p.r.Advance(p.rd)
	}
	return nil
}

// metaApplied refreshes the catalog after the meta range applied entries
// (or a split or snapshot changed the local replicas) and carries out
// their effects.
func (s *Store) metaApplied(effects []replica.Effect) error {
	if err := s.removeMoved(effects); err != nil {
		return err
	}
	catalog, nodes, err := s.readCatalog()
	if err != nil {
		return err
	}
	// Destructions (a dropped table's replicas and data), creations by a
	// split or a CreateTable, and anything a meta snapshot announced are
	// all carried out by reconcile, before the new catalog is published: a
	// request that finds a table finds its replicas.
	if err := s.reconcile(catalog); err != nil {
		return err
	}
	s.publishCatalog(catalog, nodes)
	// The meta leader proposed a table's creation, the left range's leader
	// a split: each campaigns for the new range at once so it has a leader
	// without an election timeout.
	meta := s.replicaLocked(replica.MetaRangeID)
	for _, e := range effects {
		if e.Create == nil {
			continue
		}
		r := s.replicaLocked(keys.RangeID(e.Create.Id))
		if r == nil {
			continue
		}
		// The meta leader proposed a table's creation: it campaigns if it
		// holds the new range, else the range's first voter does.
		campaign := false
		if meta != nil && !e.Split {
			if lead := meta.Leader(); slices.Contains(e.Create.Replicas, lead) {
				campaign = lead == s.opts.NodeID
			} else {
				campaign = len(e.Create.Replicas) > 0 && e.Create.Replicas[0] == s.opts.NodeID
			}
		}
		if e.Split {
			if left := s.leftOf(e.Create); left != nil && left.IsLeader() {
				campaign = true
			}
		}
		if campaign {
			if err := r.Campaign(); err != nil {
				s.logger.Warn("campaign for a new range", "range", e.Create.Id, "err", err)
			}
			s.touch(r)
		}
	}
	return nil
}

// leftOf returns the local replica whose range ends where d starts (the
// left side of the split that created d).
func (s *Store) leftOf(d *cairnpb.RangeDescriptor) *replica.Replica {
	for _, r := range s.Replicas() {
		ld := r.Desc()
		if ld.TableId == d.TableId && bytes.Equal(ld.End, d.Start) && r.Initialized() {
			return r
		}
	}
	return nil
}

func (s *Store) historyVersions() int {
	switch n := s.opts.HistoryVersions; {
	case n == 0:
		return replica.DefaultHistoryVersions
	case n < 0:
		return 0
	default:
		return n
	}
}

// Hub is where the node's watchers subscribe to applied changes.
func (s *Store) Hub() *watch.Hub { return s.hub }

// Identity returns the node identity stored in db, or nil if there is
// none yet (a new data dir).
func Identity(db *pebble.DB) (*cairnpb.Node, error) {
	v, closer, err := db.Get(keys.IdentKey())
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	ident := &cairnpb.Node{}
	if err := proto.Unmarshal(v, ident); err != nil {
		return nil, fmt.Errorf("store: node identity: %w", err)
	}
	return ident, nil
}

// BootstrapJoined writes the state of a node the cluster just admitted
// (server --join): its identity and an uninitialized replica of the meta
// range, which the meta leader fills with a snapshot once the coordinator
// adds it as a learner. Everything else follows from the catalog.
func BootstrapJoined(db *pebble.DB, ident *cairnpb.Node) error {
	b := db.NewBatch()
	defer b.Close()
	meta := &cairnpb.RangeDescriptor{Id: uint64(replica.MetaRangeID), TableId: uint64(keys.MetaTableID)}
	if err := replica.WriteUninitialized(b, meta); err != nil {
		return err
	}
	data, err := proto.Marshal(ident)
	if err != nil {
		return err
	}
	if err := b.Set(keys.IdentKey(), data, nil); err != nil {
		return err
	}
	return b.Commit(pebble.Sync)
}
