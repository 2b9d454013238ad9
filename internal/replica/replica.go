package replica

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/kv"
	"github.com/cairn-db/cairn/internal/raftlog"
	"github.com/cairn-db/cairn/internal/storage"
	"github.com/cairn-db/cairn/internal/watch"
)

// Initial log position of a range created at bootstrap or by CreateTable:
// every replica starts from the same empty "snapshot" at this index and
// term, so no replica needs a snapshot to join (as CockroachDB does).
const (
	InitialIndex uint64 = 10
	InitialTerm  uint64 = 5
)

// Options configures a replica's Raft group.
type Options struct {
	NodeID         uint64
	ElectionTicks  int
	HeartbeatTicks int
	// MaxPending bounds queued proposals and reads; beyond it requests fail
	// fast with kv.ErrUnavailable.
	MaxPending int
	// ProposalIDSeed starts this run's proposal IDs; it must exceed every ID
	// a previous run of the node used (the store passes the wall clock in
	// nanoseconds), so a stale entry never wakes a new waiter.
	ProposalIDSeed uint64
	Logger         *slog.Logger
	// TickInterval is the wall time of one tick; with Now it bounds the
	// leader's read lease (see lease.go). Zero disables leases.
	TickInterval time.Duration
	// Now reads the clock (default time.Now); the simulator passes its own.
	Now func() time.Time
	// HoldVotesUntil: vote requests that arrive before then are dropped
	// (the store passes its start plus an election timeout; see lease.go).
	HoldVotesUntil time.Time
	// Stats receives the replica's counters (nil: not counted).
	Stats *Stats
	// HistoryVersions is how many changes of a key its history keeps at
	// least (for watch resumption and key history); 0 keeps none.
	// HistoryRetention keeps, beyond those, the changes younger than it
	// (measured from the key's latest change). See recordChange.
	HistoryVersions  int
	HistoryRetention time.Duration
	// Quiesce lets the range stop ticking when idle (quiesce.go).
	Quiesce bool
}

// Result is the outcome of an applied command.
type Result struct {
	Version uint64
	Table   *cairnpb.Table
	Batch   []*cairnpb.BatchResult
	// Split is the outcome of a split: both new descriptors.
	Split *cairnpb.SplitRangeResponse
	// RangeID is a range ID the meta range allocated.
	RangeID uint64
	// Index is the command's log index (for session tokens).
	Index uint64
	// Txn is the outcome of a transaction command.
	Txn *cairnpb.TxnRangeResult
	// Node is the record an AddNode or SetNodeState wrote.
	Node *cairnpb.Node
	// Desc is the range's descriptor after a replica change or a merge.
	Desc *cairnpb.RangeDescriptor
	// State is a frozen range's state (MergeFreeze).
	State *cairnpb.RangeState
	Err   error
}

type proposal struct {
	id   uint64
	data []byte
	cc   *raftpb.ConfChangeV2 // a replica change (membership.go) instead of data
	done chan Result
	// index is the log index of the proposal's entry, once persisted here;
	// orphan and orphanTicks track a waiter whose leader stepped down
	// (handover.go).
	index       uint64
	orphan      bool
	orphanTicks int
}

type readWaiter struct {
	done chan error
}

type readBatch struct {
	waiters []*readWaiter
	index   uint64
	tickAge int
	// sentAt is when the request went to raft; leaderTerm is the term this
	// node led when it did (0 if it did not lead): a confirmed read index
	// from our own term then extends the lease to sentAt + lease.
	sentAt     int64
	leaderTerm uint64
}

// Replica is one range's replica. See the package doc for ownership.
type Replica struct {
	ID   keys.RangeID
	opts Options
	db   *pebble.DB

	// Driver-owned.
	rn            *raft.RawNode
	log           *raftlog.Log
	tomb          tombstone // of this node's earlier replicas of the range
	state         *cairnpb.RangeState
	waiters       map[uint64]*proposal
	orphans       []*proposal   // waiters from a lost leadership (handover.go)
	events        []watch.Event // applied, not yet handed to the store
	readSeq       uint64
	readsInflight map[uint64]*readBatch
	readsIndexed  []*readBatch
	lastLeader    uint64
	lastRenewal   int64 // when the last lease renewal went to raft
	leaseReplies  []raftpb.Message
	// applyingTerm is the term of the entry being applied (driver-owned).
	applyingTerm uint64
	// history is the key history retention of the command being applied
	// (its table's, as the command carries it; else the options').
	history historyPolicy
	// snapshotApplied is set by applySnapshot (see TakeSnapshotApplied).
	snapshotApplied bool
	// Quiescence (quiesce.go): whether the replica is quiesced, ticks
	// since the leader last saw activity, and messages made outside
	// Ready for the store to send.
	quiesced  bool
	idleTicks int
	// silentTicks counts ticks since the leader was last heard from.
	silentTicks int
	outbox      []raftpb.Message

	// Read by any goroutine.
	leader  atomic.Uint64
	term    atomic.Uint64
	commit  atomic.Uint64
	applied atomic.Uint64
	maxTS   atomic.Uint64 // state.MaxTimestamp as of the committed apply batches, for readers
	maxSeq  atomic.Uint64 // state.MaxSeq likewise, for watchers
	// intentFree: no transaction intent lies in the range's span in the
	// committed applied state, nor in the apply batch being built
	// (intents.go). Starts false (unknown).
	intentFree atomic.Bool
	// intentScanAt is when the driver last looked for intents (nowNanos).
	intentScanAt int64
	// approxBytes mirrors state.ApproxBytes for other goroutines.
	approxBytes atomic.Uint64
	destroyed   atomic.Bool
	desc        atomic.Pointer[cairnpb.RangeDescriptor]
	// frozen mirrors state.Frozen (merge.go) for readers.
	frozen atomic.Pointer[cairnpb.Frozen]
	// active is set by requests from any goroutine (markActive) and
	// consumed by Tick; quiescedFlag mirrors quiesced for them.
	active       atomic.Bool
	quiescedFlag atomic.Bool

	nextProposalID atomic.Uint64
	notify         func(keys.RangeID)

	// The read lease (lease.go): the clock's origin, the lease's end (ns
	// since base; 0: none) and term, whether a read used it since the last
	// renewal, and when votes start to be heard; the term in which this
	// leader started a leadership transfer (no lease for the rest of it).
	base        time.Time
	leaseUntil  atomic.Int64
	leaseTerm   atomic.Uint64
	leaseUsed   atomic.Bool
	votesAfter  int64
	noLeaseTerm atomic.Uint64

	mu struct {
		sync.Mutex
		proposals []*proposal
		reads     []*readWaiter
		// leaseReads wait for the apply of an index a lease read took.
		leaseReads []leaseRead
		// visible is the applied index whose apply batch is committed:
		// what a read of Pebble sees.
		visible uint64
		// fresh is the newest freshness proof (consistency.go).
		fresh freshness
		// transferTo is a leadership transfer TransferLeader asked for.
		transferTo uint64
	}
	// caughtUp is, on the leader, the replicas whose logs matched the
	// commit index at the last check (Tick); nil elsewhere.
	caughtUp atomic.Pointer[[]uint64]
	// lag is, on the leader, how far each other replica's log is behind
	// the commit index (noted with caughtUp).
	lag          atomic.Pointer[[]*cairnpb.ReplicaLag]
	progressTick int
	// visible mirrors mu.visible for lock-free readers (VisibleIndex).
	visible atomic.Uint64
	// wantFresh asks the driver for a read index round without waiters;
	// freshAskedAt (ns since base) rate-limits the asking.
	wantFresh    atomic.Bool
	freshAskedAt atomic.Int64
}

// WriteInitial writes the state of a new, empty range into b: its applied
// state at InitialIndex and an empty log truncated there.
func WriteInitial(b *pebble.Batch, desc *cairnpb.RangeDescriptor) error {
	cs := raftpb.ConfState{Voters: desc.Replicas}
	csb, err := cs.Marshal()
	if err != nil {
		return err
	}
	st := &cairnpb.RangeState{Desc: desc, AppliedIndex: InitialIndex, AppliedTerm: InitialTerm, ConfState: csb}
	if err := putState(b, keys.RangeID(desc.Id), st); err != nil {
		return err
	}
	return raftlog.WriteInitial(b, keys.RangeID(desc.Id), InitialIndex, InitialTerm)
}

// DestroyData deletes every key of a range (Raft state and, unless the
// replica is uninitialized and so owns no data, its data) in b. st is the
// replica's own applied state, never a descriptor from the catalog: only
// the local descriptor says which data this replica owns.
//
// It keeps a tombstone of the replica's raft position (read from db):
// see tombstone.
func DestroyData(db *pebble.DB, b *pebble.Batch, st *cairnpb.RangeState) error {
	if err := writeTombstone(db, b, keys.RangeID(st.Desc.Id)); err != nil {
		return err
	}
	ls, le := keys.RangeLocalSpan(keys.RangeID(st.Desc.Id))
	if err := b.DeleteRange(ls, le, nil); err != nil {
		return err
	}
	if st.AppliedIndex == 0 {
		return nil // uninitialized: owns no data
	}
	desc := st.Desc
	ds, de := keys.DataSpan(keys.TableID(desc.TableId), desc.Start, desc.End)
	if err := b.DeleteRange(ds, de, nil); err != nil {
		return err
	}
	hs, he := keys.HistorySpan(keys.TableID(desc.TableId), desc.Start, desc.End)
	if err := b.DeleteRange(hs, he, nil); err != nil {
		return err
	}
	// Intents go with the span; records only with the whole table (a
	// range that leaves a node while its table stays leaves its records,
	// which a later snapshot of the span clears: clearTxnKeys).
	is, ie := keys.IntentSpan(keys.TableID(desc.TableId), desc.Start, desc.End)
	if err := b.DeleteRange(is, ie, nil); err != nil {
		return err
	}
	if len(desc.Start) == 0 && len(desc.End) == 0 {
		// The whole table goes: so does its expiry index. (A table of
		// several ranges loses its index in store.reconcile; a range that
		// leaves a node while its table stays leaves stale entries, which
		// the expirer meets and drops through Raft.)
		is, ie := keys.ExpirySpan(keys.TableID(desc.TableId), -1)
		if err := b.DeleteRange(is, ie, nil); err != nil {
			return err
		}
		rs, re := keys.TxnRecordSpan(keys.TableID(desc.TableId))
		return b.DeleteRange(rs, re, nil)
	}
	return nil
}

// tombstone is what a node remembers of its destroyed replicas of a range
// (keys.TombstoneKey): the highest term their hard state reached, and the
// most up-to-date last log position (term, index) they had. Raft IDs are
// node IDs, so to raft a later replica of the range on this node is the
// same voter; it must keep its predecessors' promises: vote in no term
// they may have voted in (Open raises its term: raftlog.FloorTerm), and
// grant no vote to a candidate whose log is less up-to-date than theirs
// (step), since they may have acknowledged entries up to that position,
// which a quorum then counted on. Without the latter, a lagging replica
// whose configuration still lists this node elects itself with the vote
// of an empty newcomer and overwrites committed entries (RELIABILITY.md
// bug #17).
type tombstone struct {
	term, lastTerm, lastIndex uint64
}

// covers reports whether a log ending at (term, index) is at least as
// up-to-date as the tombstone's position (raft's comparison).
func (t tombstone) covers(term, index uint64) bool {
	return term > t.lastTerm || term == t.lastTerm && index >= t.lastIndex
}

// writeTombstone records in b range id's raft position in db, merged with
// the tombstone already there.
func writeTombstone(db *pebble.DB, b *pebble.Batch, id keys.RangeID) error {
	t, err := loadTombstone(db, id)
	if err != nil {
		return err
	}
	hs, lastIndex, lastTerm, found, err := raftlog.Position(db, id)
	if err != nil {
		return err
	}
	if found {
		t.term = max(t.term, hs.Term)
		if t.covers(lastTerm, lastIndex) {
			t.lastTerm, t.lastIndex = lastTerm, lastIndex
		}
	}
	if t == (tombstone{}) {
		return nil
	}
	v := binary.BigEndian.AppendUint64(nil, t.term)
	v = binary.BigEndian.AppendUint64(v, t.lastTerm)
	v = binary.BigEndian.AppendUint64(v, t.lastIndex)
	return b.Set(keys.TombstoneKey(id), v, nil)
}

// loadTombstone reads range id's tombstone (zero: none).
func loadTombstone(rd Reader, id keys.RangeID) (tombstone, error) {
	v, closer, err := rd.Get(keys.TombstoneKey(id))
	if errors.Is(err, pebble.ErrNotFound) {
		return tombstone{}, nil
	}
	if err != nil {
		return tombstone{}, err
	}
	defer closer.Close()
	if len(v) != 24 {
		return tombstone{}, fmt.Errorf("replica: range %d tombstone is %d bytes", id, len(v))
	}
	return tombstone{binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:]), binary.BigEndian.Uint64(v[16:])}, nil
}

// LoadState reads a range's applied state.
func LoadState(db *pebble.DB, id keys.RangeID) (*cairnpb.RangeState, error) {
	v, closer, err := db.Get(keys.RangeStateKey(id))
	if err != nil {
		return nil, fmt.Errorf("replica: range %d state: %w", id, err)
	}
	defer closer.Close()
	st := &cairnpb.RangeState{}
	if err := proto.Unmarshal(v, st); err != nil {
		return nil, fmt.Errorf("replica: range %d state: %w", id, err)
	}
	return st, nil
}

func putState(b *pebble.Batch, id keys.RangeID, st *cairnpb.RangeState) error {
	data, err := proto.Marshal(st)
	if err != nil {
		return err
	}
	return b.Set(keys.RangeStateKey(id), data, nil)
}

// Open loads a range's replica from db. notify is called (from any
// goroutine) when the replica has queued work for the driver.
func Open(db *pebble.DB, id keys.RangeID, opts Options, notify func(keys.RangeID)) (*Replica, error) {
	st, err := LoadState(db, id)
	if err != nil {
		return nil, err
	}
	var cs raftpb.ConfState
	if err := cs.Unmarshal(st.ConfState); err != nil {
		return nil, fmt.Errorf("replica: range %d conf state: %w", id, err)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	r := &Replica{
		ID: id, opts: opts, db: db, state: st,
		waiters:       map[uint64]*proposal{},
		readsInflight: map[uint64]*readBatch{},
		notify:        notify,
		base:          opts.Now(),
	}
	if !opts.HoldVotesUntil.IsZero() {
		r.votesAfter = int64(opts.HoldVotesUntil.Sub(r.base))
	}
	r.desc.Store(st.Desc)
	r.frozen.Store(st.Frozen)
	r.log, err = raftlog.Load(db, id, cs, r.snapshot)
	if err != nil {
		return nil, err
	}
	if r.tomb, err = loadTombstone(db, id); err != nil {
		return nil, err
	}
	r.log.FloorTerm(r.tomb.term, opts.NodeID)
	r.rn, err = raft.NewRawNode(&raft.Config{
		ID:                        opts.NodeID,
		ElectionTick:              opts.ElectionTicks,
		HeartbeatTick:             opts.HeartbeatTicks,
		Storage:                   r.log,
		Applied:                   st.AppliedIndex,
		MaxSizePerMsg:             1 << 20,
		MaxCommittedSizePerReady:  16 << 20,
		MaxUncommittedEntriesSize: 256 << 20,
		MaxInflightMsgs:           256,
		CheckQuorum:               true,
		PreVote:                   true,
		StepDownOnRemoval:         true,
		Logger:                    raftLogger{opts.Logger.With("range", uint64(id))},
	})
	if err != nil {
		return nil, fmt.Errorf("replica: range %d: %w", id, err)
	}
	r.applied.Store(st.AppliedIndex)
	r.approxBytes.Store(st.ApproxBytes)
	r.maxTS.Store(st.MaxTimestamp)
	r.maxSeq.Store(st.MaxSeq)
	hs := r.log.HardState() // Status before the first Ready changes it
	r.term.Store(hs.Term)
	r.commit.Store(hs.Commit)
	r.nextProposalID.Store(opts.ProposalIDSeed)
	// Read index contexts, like proposal IDs, must not repeat across
	// restarts: a late response to the previous run's read would release a
	// new read at an index from before it began.
	r.readSeq = opts.ProposalIDSeed
	return r, nil
}

// Campaign starts an election now instead of after an election timeout:
// used for a range just created by this node (its first leader is then
// known at once) and for a range whose only voter is this node. Driver
// only.
func (r *Replica) Campaign() error {
	r.unquiesce(false)
	return r.rn.Campaign()
}

// SoleVoter reports whether this node is the range's only voter.
func (r *Replica) SoleVoter() bool {
	var conf raftpb.ConfState
	if err := conf.Unmarshal(r.state.ConfState); err != nil {
		return false
	}
	return len(conf.Voters) == 1 && conf.Voters[0] == r.opts.NodeID
}

// Desc returns the range's descriptor.
func (r *Replica) Desc() *cairnpb.RangeDescriptor { return r.desc.Load() }

// Leader returns the node ID of the leader this replica knows (0: none).
func (r *Replica) Leader() uint64 { return r.leader.Load() }

// IsLeader reports whether this replica leads its range.
func (r *Replica) IsLeader() bool { return r.leader.Load() == r.opts.NodeID }

// Status returns term, commit and applied index.
func (r *Replica) Status() (term, commit, applied uint64) {
	return r.term.Load(), r.commit.Load(), r.applied.Load()
}

// Propose replicates cmd through Raft and waits until it is applied here.
func (r *Replica) Propose(ctx context.Context, cmd *cairnpb.Command) (Result, error) {
	done, err := r.ProposeAsync(cmd)
	if err != nil {
		return Result{}, err
	}
	select {
	case res := <-done:
		return res, nil
	case <-ctx.Done():
		return Result{}, kv.Errorf(kv.ErrTimeout, "range %d: write not applied in time: %v", r.ID, ctx.Err())
	}
}

// ProposeAsync queues cmd and returns the channel its Result arrives on
// once applied here (or failed). The simulator uses it to keep one
// goroutine; Propose wraps it.
func (r *Replica) ProposeAsync(cmd *cairnpb.Command) (<-chan Result, error) {
	if r.destroyed.Load() {
		return nil, kv.Errorf(kv.ErrNotLeader, "range %d was removed", r.ID)
	}
	p := &proposal{id: r.nextProposalID.Add(1), done: make(chan Result, 1)}
	cmd.NodeId, cmd.ProposalId = r.opts.NodeID, p.id
	data, err := proto.Marshal(cmd)
	if err != nil {
		return nil, kv.Errorf(kv.ErrInternal, "marshal command: %v", err)
	}
	p.data = data
	return r.enqueue(p)
}

// enqueue queues a proposal for the driver and returns the channel its
// Result arrives on.
func (r *Replica) enqueue(p *proposal) (<-chan Result, error) {
	r.mu.Lock()
	if len(r.mu.proposals) >= r.opts.MaxPending {
		r.mu.Unlock()
		return nil, kv.Errorf(kv.ErrUnavailable, "range %d: %d proposals queued", r.ID, r.opts.MaxPending)
	}
	r.mu.proposals = append(r.mu.proposals, p)
	r.mu.Unlock()
	r.notify(r.ID)
	return p.done, nil
}

// ReadBarrier returns once this replica has applied every write committed
// before the call (Raft ReadIndex). Works on followers too.
func (r *Replica) ReadBarrier(ctx context.Context) error {
	done, err := r.ReadBarrierAsync()
	if err != nil || done == nil {
		return err
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return kv.Errorf(kv.ErrUnavailable, "range %d: read index not confirmed in time: %v", r.ID, ctx.Err())
	}
}

// ReadBarrierAsync queues a read barrier and returns the channel its
// outcome arrives on (nil: safe to read local state now).
func (r *Replica) ReadBarrierAsync() (<-chan error, error) {
	if r.destroyed.Load() {
		return nil, kv.Errorf(kv.ErrNotLeader, "range %d was removed", r.ID)
	}
	if idx, ok := r.leaseReadIndex(); ok {
		return r.awaitApplied(idx)
	}
	w := &readWaiter{done: make(chan error, 1)}
	r.mu.Lock()
	if len(r.mu.reads) >= r.opts.MaxPending {
		r.mu.Unlock()
		return nil, kv.Errorf(kv.ErrUnavailable, "range %d: %d reads queued", r.ID, r.opts.MaxPending)
	}
	r.mu.reads = append(r.mu.reads, w)
	r.mu.Unlock()
	r.notify(r.ID)
	return w.done, nil
}

// DrainRequests hands queued proposals and reads to raft. Driver only.
func (r *Replica) DrainRequests() {
	r.mu.Lock()
	props, reads, transfer := r.mu.proposals, r.mu.reads, r.mu.transferTo
	r.mu.proposals, r.mu.reads, r.mu.transferTo = nil, nil, 0
	r.mu.Unlock()
	if len(props) > 0 || len(reads) > 0 || transfer != 0 || r.wantFresh.Load() || r.active.Load() {
		r.idleTicks = 0
		r.unquiesce(true)
	}
	st := r.rn.BasicStatus()
	lead := st.Lead
	if transfer != 0 && lead == r.opts.NodeID {
		r.endLeaseForTransfer()
		r.rn.TransferLeader(transfer)
	}
	for _, p := range props {
		if lead != r.opts.NodeID {
			r.stats().ProposalsDropped.Add(1)
			p.done <- Result{Err: kv.Errorf(kv.ErrNotLeader, "range %d: not the leader", r.ID)}
			continue
		}
		var err error
		if p.cc != nil {
			err = r.rn.ProposeConfChange(*p.cc)
		} else {
			err = r.rn.Propose(p.data)
		}
		if err != nil {
			r.stats().ProposalsDropped.Add(1)
			p.done <- Result{Err: kv.Errorf(kv.ErrNotLeader, "range %d: proposal dropped: %v", r.ID, err)}
			continue
		}
		r.stats().Proposals.Add(1)
		r.waiters[p.id] = p
	}
	if r.wantFresh.Swap(false) && lead != raft.None {
		r.sendReadIndex(&readBatch{}, st.Term)
	}
	if len(reads) == 0 {
		return
	}
	if lead == raft.None {
		for _, w := range reads {
			w.done <- kv.Errorf(kv.ErrUnavailable, "range %d: no leader", r.ID)
		}
		return
	}
	r.sendReadIndex(&readBatch{waiters: reads}, st.Term)
}

// sendReadIndex hands a read index request for rb to raft; term is the
// current term. Driver only.
func (r *Replica) sendReadIndex(rb *readBatch, term uint64) {
	rb.sentAt = r.nowNanos()
	if r.rn.BasicStatus().Lead == r.opts.NodeID {
		rb.leaderTerm = term
	}
	r.stats().ReadIndexRounds.Add(1)
	r.readSeq++
	r.readsInflight[r.readSeq] = rb
	// The context names this node too: the leader keeps one pending
	// request per context, so equal sequence numbers from two nodes would
	// otherwise collide and one read would be lost.
	rctx := binary.BigEndian.AppendUint64(make([]byte, 0, 16), r.opts.NodeID)
	r.rn.ReadIndex(binary.BigEndian.AppendUint64(rctx, r.readSeq))
}

// Tick advances the replica's logical clock by one tick. Driver only.
func (r *Replica) Tick() {
	if r.active.Swap(false) {
		r.idleTicks = 0
	} else {
		r.idleTicks++
	}
	r.ageOrphans()
	if r.maybeQuiesce() {
		return
	}
	r.pokeSilentLeader()
	r.rn.Tick()
	r.maybeRenewLease()
	if r.progressTick++; r.progressTick >= r.opts.ElectionTicks {
		r.progressTick = 0
		r.noteProgress()
	}
	limit := 3 * r.opts.ElectionTicks
	for seq, rb := range r.readsInflight {
		if rb.tickAge++; rb.tickAge > limit {
			failReads(rb, kv.Errorf(kv.ErrUnavailable, "range %d: read index lost", r.ID))
			delete(r.readsInflight, seq)
		}
	}
}

// Step delivers a Raft message. Driver only.
func (r *Replica) Step(m raftpb.Message) error {
	r.noteStep(m)
	if err := r.step(m); err != nil {
		return err
	}
	if isQuiesceMsg(m) {
		r.maybeQuiesceFollower(m)
	}
	return nil
}

func (r *Replica) step(m raftpb.Message) error {
	if (m.Type == raftpb.MsgVote || m.Type == raftpb.MsgPreVote) && r.nowNanos() < r.votesAfter {
		return nil // see lease.go: a restarted node must not vote at once
	}
	if (m.Type == raftpb.MsgVote || m.Type == raftpb.MsgPreVote) && !r.tomb.covers(m.LogTerm, m.Index) {
		return nil // an earlier replica here may have acknowledged more: see tombstone
	}
	if m.Type == raftpb.MsgHeartbeat && r.applied.Load() == 0 {
		// A replica that has nothing yet (a node rejoining a range, waiting
		// for its snapshot) can meet a heartbeat sent to the node's old
		// replica, whose leader knew it held entries: that commit index is
		// beyond this empty log, and raft would panic. The commit index is
		// only advice here; the snapshot brings the real one.
		if last, err := r.log.LastIndex(); err == nil && m.Commit > last {
			m.Commit = last
		}
	}
	if m.Type == raftpb.MsgReadIndex && r.answerFromLease(m) {
		return nil
	}
	if m.Type == raftpb.MsgTransferLeader {
		// A follower's transfer request: the leader starts it here.
		r.endLeaseForTransfer()
	}
	return r.rn.Step(m)
}

// HasReady reports whether Ready has work. Driver only.
func (r *Replica) HasReady() bool { return r.rn.HasReady() }

// Ready returns the Raft group's pending work. Driver only.
//
// The commit index readers see moves here, before any of the Ready's
// messages leave: a leader sends before its own fsync, so followers can
// learn (and apply, and serve) a commit index before the leader's
// AfterPersist. A lease read on the leader takes this index as its read
// index; were it the persisted one, it could be below what a follower
// already served, and the leader would answer with older data
// (tests/robustness kill-leader, seed 287746144, RELIABILITY.md #10).
func (r *Replica) Ready() raft.Ready {
	rd := r.rn.Ready()
	if !raft.IsEmptyHardState(rd.HardState) && rd.HardState.Commit > r.commit.Load() {
		r.commit.Store(rd.HardState.Commit)
	}
	return rd
}

// Advance acknowledges a Ready. Driver only.
func (r *Replica) Advance(rd raft.Ready) { r.rn.Advance(rd) }

// ReportUnreachable and ReportSnapshot pass transport outcomes to raft.
// Driver only.
func (r *Replica) ReportUnreachable(to uint64) { r.rn.ReportUnreachable(to) }

// ReportSnapshot reports whether a snapshot to a follower was sent.
func (r *Replica) ReportSnapshot(to uint64, ok bool) {
	st := raft.SnapshotFinish
	if !ok {
		st = raft.SnapshotFailure
	}
	r.rn.ReportSnapshot(to, st)
}

// Persist writes a Ready's snapshot, entries and hard state into b.
// Driver only; b is committed (with fsync if rd.MustSync) by the caller.
func (r *Replica) Persist(b *pebble.Batch, rd raft.Ready) error {
	if !raft.IsEmptySnap(rd.Snapshot) {
		if err := r.applySnapshot(b, rd.Snapshot); err != nil {
			return fmt.Errorf("range %d: apply snapshot: %w", r.ID, err)
		}
	}
	if err := r.log.Append(b, rd.Entries); err != nil {
		return err
	}
	r.noteIndexes(rd.Entries)
	if !raft.IsEmptyHardState(rd.HardState) {
		return r.log.SetHardState(b, rd.HardState)
	}
	return nil
}

// AfterPersist updates the status others read and handles ReadStates and
// leadership changes. Driver only; call after the Persist batch committed.
func (r *Replica) AfterPersist(rd raft.Ready) {
	if rd.SoftState != nil {
		r.leader.Store(rd.SoftState.Lead)
	}
	if !raft.IsEmptyHardState(rd.HardState) {
		r.term.Store(rd.HardState.Term)
		if rd.HardState.Commit > r.commit.Load() {
			r.commit.Store(rd.HardState.Commit)
		}
	}
	lead := r.leader.Load()
	if lead != r.lastLeader {
		r.leaseUntil.Store(0)
		r.stats().LeaderChanges.Add(1)
		if lead == r.opts.NodeID {
			r.stats().BecameLeader.Add(1)
		}
		if r.lastLeader == r.opts.NodeID {
			r.orphanWaiters()
		}
		for seq, rb := range r.readsInflight {
			failReads(rb, kv.Errorf(kv.ErrNotLeader, "range %d: leader changed", r.ID))
			delete(r.readsInflight, seq)
		}
		r.lastLeader = lead
	}
	for _, rs := range rd.ReadStates {
		if len(rs.RequestCtx) != 16 || binary.BigEndian.Uint64(rs.RequestCtx) != r.opts.NodeID {
			continue
		}
		seq := binary.BigEndian.Uint64(rs.RequestCtx[8:])
		if rb, ok := r.readsInflight[seq]; ok {
			delete(r.readsInflight, seq)
			rb.index = rs.Index
			r.extendLease(rb)
			r.noteFreshness(rb)
			r.readsIndexed = append(r.readsIndexed, rb)
		}
	}
}

func (r *Replica) failWaiters(err error) {
	for id, p := range r.waiters {
		p.done <- Result{Err: err}
		delete(r.waiters, id)
	}
	r.orphans = nil
}

func failReads(rb *readBatch, err error) {
	for _, w := range rb.waiters {
		w.done <- err
	}
}

// MaxSeq is the sequence number of the range's last change in the
// committed applied state: every change up to it is in Pebble (and was
// handed to the watchers' hub), every later one will have a larger one.
func (r *Replica) MaxSeq() uint64 { return r.maxSeq.Load() }

// ReleaseReads wakes reads whose index has been applied. Driver only; call
// after the apply batch committed.
func (r *Replica) ReleaseReads() {
	// The log time readers judge TTLs by moves only once the state it
	// belongs to is in Pebble: published earlier, a read could count a
	// key as expired by a command whose other writes it cannot see yet.
	r.maxTS.Store(r.state.MaxTimestamp)
	r.maxSeq.Store(r.state.MaxSeq)
	applied := r.applied.Load()
	kept := r.readsIndexed[:0]
	for _, rb := range r.readsIndexed {
		if rb.index <= applied {
			failReads(rb, nil)
			continue
		}
		kept = append(kept, rb)
	}
	for i := len(kept); i < len(r.readsIndexed); i++ {
		r.readsIndexed[i] = nil
	}
	r.readsIndexed = kept
	r.releaseLeaseReads(applied)
	r.scanIntents()
}

// Destroy fails every waiter; the store then drops the replica (its range
// was removed, or the node is stopping). Queued requests and reads fail
// with err; writes already handed to Raft fail with proposedErr, since they
// may still commit (on a stopping node: kv.ErrTimeout, outcome unknown).
// Driver only.
func (r *Replica) Destroy(err, proposedErr error) {
	r.destroyed.Store(true)
	r.failWaiters(proposedErr)
	for seq, rb := range r.readsInflight {
		failReads(rb, err)
		delete(r.readsInflight, seq)
	}
	for _, rb := range r.readsIndexed {
		failReads(rb, err)
	}
	r.readsIndexed = nil
	r.mu.Lock()
	props, reads, leaseReads := r.mu.proposals, r.mu.reads, r.mu.leaseReads
	r.mu.proposals, r.mu.reads, r.mu.leaseReads = nil, nil, nil
	r.mu.Unlock()
	for _, p := range props {
		p.done <- Result{Err: err}
	}
	for _, w := range reads {
		w.done <- err
	}
	for _, lr := range leaseReads {
		lr.w.done <- err
	}
}

// MaybeTruncate drops applied log entries beyond keep into b. Driver only.
func (r *Replica) MaybeTruncate(b *pebble.Batch, keep uint64) error {
	applied := r.state.AppliedIndex
	if applied < r.log.TruncIndex()+2*keep {
		return nil
	}
	return r.log.Truncate(b, applied-keep)
}

// DataSpan returns the storage span of the range's user data.
func (r *Replica) DataSpan() (start, end []byte) {
	d := r.Desc()
	return keys.DataSpan(keys.TableID(d.TableId), d.Start, d.End)
}

// snapshot builds a raft snapshot of the state machine at the applied
// index. Runs on the driver, between applies, so Pebble holds exactly the
// applied state.
func (r *Replica) snapshot() (raftpb.Snapshot, error) {
	sd := &cairnpb.SnapshotData{State: r.state}
	d := r.Desc()
	ds, de := keys.DataSpan(keys.TableID(d.TableId), d.Start, d.End)
	hs, he := keys.HistorySpan(keys.TableID(d.TableId), d.Start, d.End)
	for _, span := range [][2][]byte{{ds, de}, {hs, he}} {
		it, err := r.db.NewIter(&pebble.IterOptions{LowerBound: span[0], UpperBound: span[1]})
		if err != nil {
			return raftpb.Snapshot{}, err
		}
		for ok := it.First(); ok; ok = it.Next() {
			sd.Kvs = append(sd.Kvs, &cairnpb.SnapshotKV{
				Key:   append([]byte(nil), it.Key()...),
				Value: append([]byte(nil), it.Value()...),
			})
		}
		if err := it.Close(); err != nil {
			return raftpb.Snapshot{}, err
		}
	}
	var err error
	if sd.TxnKvs, err = txnSnapshotKVs(r.db, r.Desc()); err != nil {
		return raftpb.Snapshot{}, err
	}
	data, err := proto.Marshal(sd)
	if err != nil {
		return raftpb.Snapshot{}, err
	}
	var cs raftpb.ConfState
	if err := cs.Unmarshal(r.state.ConfState); err != nil {
		return raftpb.Snapshot{}, err
	}
	return raftpb.Snapshot{
		Data: data,
		Metadata: raftpb.SnapshotMetadata{
			Index: r.state.AppliedIndex, Term: r.state.AppliedTerm, ConfState: cs,
		},
	}, nil
}

func (r *Replica) applySnapshot(b *pebble.Batch, snap raftpb.Snapshot) error {
	r.unknownOrphans(snap.Metadata.Index)
	r.mayHaveIntents()
	sd := &cairnpb.SnapshotData{}
	if err := proto.Unmarshal(snap.Data, sd); err != nil {
		return err
	}
	if sd.State == nil || sd.State.Desc == nil || sd.State.Desc.Id != uint64(r.ID) {
		return fmt.Errorf("snapshot is for another range")
	}
	// Delete the data this replica owned (its old span; a snapshot from
	// after a split covers less) or, if it owned none yet, whatever lies in
	// the snapshot's span (the store refuses snapshots that overlap another
	// local replica, so nobody else owns it). A snapshot from after a merge
	// covers more: the store admits it only if the local replicas it
	// overlaps are the merged ones (frozen, reconcile destroys them next),
	// whose data is stale now, so the snapshot's span is cleared too.
	spans := []*cairnpb.RangeDescriptor{r.Desc()}
	if r.state.AppliedIndex == 0 {
		spans[0] = sd.State.Desc
	} else if !SpanWithin(spans[0], sd.State.Desc.Start, sd.State.Desc.End) {
		spans = append(spans, sd.State.Desc)
	}
	for _, owned := range spans {
		if err := clearSpan(b, r.db, owned); err != nil {
			return err
		}
	}
	for _, e := range sd.TxnKvs {
		if err := b.Set(e.Key, e.Value, nil); err != nil {
			return err
		}
	}
	for _, e := range sd.Kvs {
		if keys.IsHistoryKey(e.Key) {
			if _, err := storage.DecodeChange(e.Value); err != nil {
				return err
			}
			if err := b.Set(e.Key, e.Value, nil); err != nil {
				return err
			}
			continue
		}
		if _, _, err := storage.DecodeValue(e.Value); err != nil {
			return err
		}
		if err := b.Set(e.Key, e.Value, nil); err != nil {
			return err
		}
		if err := indexSnapshotValue(b, e.Key, e.Value); err != nil {
			return err
		}
	}
	st := sd.State
	st.AppliedIndex, st.AppliedTerm = snap.Metadata.Index, snap.Metadata.Term
	csb, err := snap.Metadata.ConfState.Marshal()
	if err != nil {
		return err
	}
	st.ConfState = csb
	if err := putState(b, r.ID, st); err != nil {
		return err
	}
	if err := r.log.ApplySnapshot(b, snap.Metadata); err != nil {
		return err
	}
	r.stats().SnapshotsApplied.Add(1)
	r.state = st
	r.desc.Store(st.Desc)
	r.frozen.Store(st.Frozen)
	r.applied.Store(st.AppliedIndex)
	r.approxBytes.Store(st.ApproxBytes)
	r.snapshotApplied = true
	return nil
}

// clearSpan deletes the data, history, expiry index entries and
// transaction keys of d's span, for a snapshot to replace them.
func clearSpan(b *pebble.Batch, db *pebble.DB, d *cairnpb.RangeDescriptor) error {
	start, end := keys.DataSpan(keys.TableID(d.TableId), d.Start, d.End)
	if err := b.DeleteRange(start, end, nil); err != nil {
		return err
	}
	start, end = keys.HistorySpan(keys.TableID(d.TableId), d.Start, d.End)
	if err := b.DeleteRange(start, end, nil); err != nil {
		return err
	}
	if err := clearExpiryIndex(b, db, d); err != nil {
		return err
	}
	return clearTxnKeys(b, db, d)
}

// TakeSnapshotApplied reports (and clears) whether a snapshot was applied
// since the last call: the store then reconciles, since a snapshot from
// after a split narrows the replica and frees span for ranges this node
// has not got. Driver only.
func (r *Replica) TakeSnapshotApplied() bool {
	ok := r.snapshotApplied
	r.snapshotApplied = false
	return ok
}
