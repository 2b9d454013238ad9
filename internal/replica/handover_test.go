// Goal: a write whose leader loses leadership before the write applies
// gets its real outcome (handover.go): success when the new leader keeps
// the entry, kv.ErrNotLeader ("not applied", retried by the router) when
// the new leader's log replaces it, and kv.ErrTimeout only when a snapshot
// hides which happened.
// Method: three replicas of one range on three Pebbles, driven by hand
// like the store's driver; messages are delivered or dropped explicitly,
// and leadership moves by stepping MsgTimeoutNow into the chosen node.
package replica

import (
	"errors"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/kv"
	"github.com/cairn-db/cairn/internal/storage"
)

// group is three replicas of range 2, one per node, and the messages in
// flight between them.
type group struct {
	t     *testing.T
	dbs   map[uint64]*pebble.DB
	r     map[uint64]*Replica
	inbox []raftpb.Message
}

func newGroup(t *testing.T) *group { return newGroupWith(t, func(*Options) {}) }

// newGroupWith is newGroup with every replica's options changed by opt.
func newGroupWith(t *testing.T, opt func(*Options)) *group {
	g := &group{t: t, dbs: map[uint64]*pebble.DB{}, r: map[uint64]*Replica{}}
	nodes := []*cairnpb.Node{{Id: 1, Name: "n1"}, {Id: 2, Name: "n2"}, {Id: 3, Name: "n3"}}
	for _, n := range nodes {
		db, err := storage.Open(t.TempDir(), storage.Options{CacheBytes: 1 << 20, MemTableBytes: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		b := db.NewIndexedBatch()
		if err := Bootstrap(b, nodes); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(pebble.Sync); err != nil {
			t.Fatal(err)
		}
		b.Close()
		opts := testOptions()
		opts.NodeID, opts.ProposalIDSeed = n.Id, n.Id<<32
		opt(&opts)
		r, err := Open(db, 2, opts, func(keys.RangeID) {})
		if err != nil {
			t.Fatal(err)
		}
		g.dbs[n.Id], g.r[n.Id] = db, r
	}
	return g
}

// process runs node id's driver step: requests to raft, then every Ready
// (persist, apply, wake waiters); its messages join the inbox.
func (g *group) process(id uint64) {
	g.t.Helper()
	r, db := g.r[id], g.dbs[id]
	r.DrainRequests()
	for r.HasReady() {
		rd := r.Ready()
		b := db.NewBatch()
		if err := r.Persist(b, rd); err != nil {
			g.t.Fatal(err)
		}
		if err := b.Commit(pebble.Sync); err != nil {
			g.t.Fatal(err)
		}
		b.Close()
		r.AfterPersist(rd)
		g.inbox = append(g.inbox, rd.Messages...)
		ab := db.NewIndexedBatch()
		var out Applied
		if err := r.Apply(ab, rd.CommittedEntries, &out); err != nil {
			g.t.Fatal(err)
		}
		if err := ab.Commit(pebble.NoSync); err != nil {
			g.t.Fatal(err)
		}
		ab.Close()
		out.Fire()
		r.ReleaseReads()
		r.Advance(rd)
	}
}

// deliver steps the inbox's messages that keep allows (dropping the
// rest) and processes every node, until nothing is in flight.
func (g *group) deliver(keep func(raftpb.Message) bool) {
	g.t.Helper()
	for range 100 {
		for id := range g.r {
			g.process(id)
		}
		if len(g.inbox) == 0 {
			return
		}
		msgs := g.inbox
		g.inbox = nil
		for _, m := range msgs {
			if keep(m) {
				if err := g.r[m.To].Step(m); err != nil {
					g.t.Fatalf("step %v: %v", m.Type, err)
				}
			}
		}
	}
	g.t.Fatal("messages still in flight after 100 rounds")
}

func all(raftpb.Message) bool { return true }

// electLeader makes node id the leader by a transfer (which voters grant
// despite CheckQuorum's leader lease).
func (g *group) electLeader(id uint64, keep func(raftpb.Message) bool) {
	g.t.Helper()
	term, _, _ := g.r[id].Status()
	if err := g.r[id].Step(raftpb.Message{Type: raftpb.MsgTimeoutNow, From: id%3 + 1, To: id, Term: term}); err != nil {
		g.t.Fatal(err)
	}
	g.deliver(keep)
	if !g.r[id].IsLeader() {
		g.t.Fatalf("node %d did not become leader", id)
	}
}

// propose queues a put on node id and persists it there; the entry's
// messages stay in the inbox.
func (g *group) propose(id uint64, k, v string) <-chan Result {
	g.t.Helper()
	cmd := putCmd(k, v)
	cmd.TableId = 1
	done, err := g.r[id].ProposeAsync(cmd)
	if err != nil {
		g.t.Fatal(err)
	}
	g.process(id)
	return done
}

func result(t *testing.T, done <-chan Result) (Result, bool) {
	t.Helper()
	select {
	case res := <-done:
		return res, true
	case <-time.After(10 * time.Millisecond):
		return Result{}, false
	}
}

func TestHandoverKeptEntryAnswers(t *testing.T) {
	g := newGroup(t)
	g.electLeader(1, all)
	done := g.propose(1, "k", "v1")
	// Only node 2 receives the entry, and its ack is lost: node 1 cannot
	// commit it. Then node 2 takes over and commits it in its own term.
	var msgs []raftpb.Message
	msgs, g.inbox = g.inbox, nil
	for _, m := range msgs {
		if m.Type == raftpb.MsgApp && m.To == 2 {
			if err := g.r[2].Step(m); err != nil {
				t.Fatal(err)
			}
		}
	}
	g.process(2)
	g.inbox = nil
	if _, ok := result(t, done); ok {
		t.Fatal("the write answered before it committed")
	}
	g.electLeader(2, all)
	res, ok := result(t, done)
	if !ok {
		t.Fatal("the write kept by the new leader never answered")
	}
	if res.Err != nil || res.Version == 0 {
		t.Fatalf("the write kept by the new leader answered %+v, want its version", res)
	}
	if len(g.r[1].orphans) != 0 || len(g.r[1].waiters) != 0 {
		t.Fatalf("node 1 still holds %d orphans, %d waiters", len(g.r[1].orphans), len(g.r[1].waiters))
	}
}

func TestHandoverReplacedEntryIsNotApplied(t *testing.T) {
	g := newGroup(t)
	g.electLeader(1, all)
	done := g.propose(1, "k", "v1")
	g.inbox = nil // nobody else gets the entry
	// Node 2 takes over without it; node 1's log is longer, so only node
	// 3 votes for node 2, and node 2's first entry takes the index.
	g.electLeader(2, all)
	res, ok := result(t, done)
	if !ok {
		t.Fatal("the replaced write never answered")
	}
	if !errors.Is(res.Err, kv.ErrNotLeader) {
		t.Fatalf("the replaced write answered %+v, want ErrNotLeader (not applied)", res)
	}
	// And it is not there: a read on the new leader after a later write.
	if res, _ := result(t, g.propose(2, "k2", "x")); res.Err != nil {
		t.Fatal(res.Err)
	}
	g.deliver(all)
	for id := range g.r {
		if v, _, ok := readValue(t, g.dbs[id], "k"); ok {
			t.Fatalf("node %d holds the replaced write k=%q", id, v)
		}
		if v, _, _ := readValue(t, g.dbs[id], "k2"); v != "x" {
			t.Fatalf("node %d: k2=%q, want x", id, v)
		}
	}
}

func TestHandoverOrphanTimesOut(t *testing.T) {
	g := newGroup(t)
	g.electLeader(1, all)
	done := g.propose(1, "k", "v1")
	g.inbox = nil
	// Node 1 hears of a new leader and then nothing more: whether its
	// entry survives stays unknown, and the waiter must not wait forever.
	term, _, _ := g.r[1].Status()
	if err := g.r[1].Step(raftpb.Message{Type: raftpb.MsgHeartbeat, From: 2, To: 1, Term: term + 1}); err != nil {
		t.Fatal(err)
	}
	g.process(1)
	g.inbox = nil
	limit := orphanTicksPerElection * g.r[1].opts.ElectionTicks
	for i := 0; i <= limit; i++ {
		if _, ok := result(t, done); ok {
			t.Fatalf("the orphan answered after %d of %d ticks", i, limit)
		}
		g.r[1].Tick()
		g.process(1)
		g.inbox = nil
	}
	res, ok := result(t, done)
	if !ok {
		t.Fatal("the orphan never answered")
	}
	if !errors.Is(res.Err, kv.ErrTimeout) {
		t.Fatalf("answered %+v, want an unknown outcome (ErrTimeout)", res)
	}
}

func TestProposalOf(t *testing.T) {
	cmd := putCmd("k", "v")
	cmd.TableId, cmd.Timestamp, cmd.NodeId, cmd.ProposalId = 1, 99, 3, 1<<40+7
	data, err := proto.Marshal(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if node, id, ok := proposalOf(&raftpb.Entry{Type: raftpb.EntryNormal, Data: data}); !ok || node != 3 || id != 1<<40+7 {
		t.Fatalf("command: got node %d id %d ok %v", node, id, ok)
	}
	cctx, err := proto.Marshal(&cairnpb.ChangeReplicas{NodeId: 2, ProposalId: 5, ExpectedConfVersion: 4})
	if err != nil {
		t.Fatal(err)
	}
	cc := raftpb.ConfChangeV2{Changes: []raftpb.ConfChangeSingle{{Type: raftpb.ConfChangeAddLearnerNode, NodeID: 4}}, Context: cctx}
	ccData, err := cc.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if node, id, ok := proposalOf(&raftpb.Entry{Type: raftpb.EntryConfChangeV2, Data: ccData}); !ok || node != 2 || id != 5 {
		t.Fatalf("conf change: got node %d id %d ok %v", node, id, ok)
	}
	for _, e := range []raftpb.Entry{
		{Type: raftpb.EntryNormal},                                 // a new leader's empty entry
		{Type: raftpb.EntryNormal, Data: []byte{0xff, 0xff, 0xff}}, // garbage
		{Type: raftpb.EntryConfChangeV2, Data: []byte{0x0a, 0x05}}, // truncated
	} {
		if _, _, ok := proposalOf(&e); ok {
			t.Fatalf("entry %x: found a proposal", e.Data)
		}
	}
}

// TestTransferEndsLease: a leader that hands leadership over must stop
// serving reads from its lease at once, for voters grant the transferee's
// vote despite the lease. Node 1 holds a lease, transfers to node 2, and
// hears nothing more; node 2 wins and commits a write. A lease read on
// node 1 now would miss that write (RELIABILITY.md #25).
func TestTransferEndsLease(t *testing.T) {
	g := newGroupWith(t, func(o *Options) { o.TickInterval = time.Second }) // a 7 s lease
	g.electLeader(1, all)
	read, err := g.r[1].ReadBarrierAsync()
	if err != nil {
		t.Fatal(err)
	}
	g.deliver(all)
	if read != nil {
		if err := <-read; err != nil {
			t.Fatal(err)
		}
	}
	if !g.r[1].HasLease() {
		t.Fatal("setup: node 1 has no lease after a confirmed read index round")
	}

	if err := g.r[1].TransferLeader(2); err != nil {
		t.Fatal(err)
	}
	notTo1 := func(m raftpb.Message) bool { return m.To != 1 }
	g.process(1)
	g.deliver(notTo1)
	if !g.r[2].IsLeader() {
		t.Fatal("setup: node 2 did not take over")
	}
	done := g.propose(2, "k", "new")
	g.deliver(notTo1)
	if res, ok := result(t, done); !ok || res.Err != nil {
		t.Fatalf("setup: the new leader's write: %+v (answered %v)", res, ok)
	}
	if !g.r[1].IsLeader() {
		t.Fatal("setup: node 1 heard of the new leader")
	}

	if g.r[1].HasLease() {
		t.Fatal("node 1 still serves lease reads after handing leadership over")
	}
	read, err = g.r[1].ReadBarrierAsync()
	if err != nil {
		t.Fatal(err)
	}
	if read == nil {
		t.Fatal("node 1 admits a read at once after handing leadership over")
	}
	g.deliver(all) // node 1 learns of the new term
	if err := <-read; !errors.Is(err, kv.ErrNotLeader) {
		t.Fatalf("node 1's read after the transfer: %v, want ErrNotLeader", err)
	}
}
