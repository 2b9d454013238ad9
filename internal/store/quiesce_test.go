// Goal: quiescence (replica/quiesce.go, store/liveness.go) does what it
// promises on real stores: an idle range quiesces on every replica and
// then sends no Raft message and is not ticked; a write or a read wakes it
// and is served correctly; a quiesced follower whose leader's node goes
// down campaigns and the range keeps its data; with Quiesce off nothing
// quiesces.
// Method: three stores on in-memory Pebbles driven by hand from the test
// goroutine (Tick, Deliver, DrainRequests, ProcessReady, as internal/sim
// does) through an in-memory network that can take a node down; time is a
// fake clock advanced one tick per step, and raft's randomness is seeded,
// so every run is the same.
package store_test

import (
	"bytes"
	crand "crypto/rand"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/hlc"
	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/replica"
	"github.com/cairn-db/cairn/internal/storage"
	"github.com/cairn-db/cairn/internal/store"
	"github.com/cairn-db/cairn/internal/transport"
)

const (
	qTick          = 10 * time.Millisecond
	qElectionTicks = 10
	dataRange      = keys.RangeID(2) // the default table's range
)

type qNode struct {
	id    uint64
	db    *pebble.DB
	st    *store.Store
	clock *hlc.Clock
	up    bool
}

type qMsg struct {
	from, to uint64
	msg      transport.RangeMessage
}

// qCluster is a hand-driven cluster: one step is one tick of every node.
type qCluster struct {
	t     testing.TB
	now   time.Time
	nodes []*qNode
	queue []qMsg
	// sent counts messages sent per range since the last reset.
	sent map[keys.RangeID]int
}

type qSender struct {
	c    *qCluster
	from uint64
}

func (x qSender) Send(id keys.RangeID, msgs []raftpb.Message) {
	c := x.c
	for _, m := range msgs {
		data, err := m.Marshal()
		if err != nil {
			c.t.Fatal(err)
		}
		var cp raftpb.Message
		if err := cp.Unmarshal(data); err != nil {
			c.t.Fatal(err)
		}
		c.sent[id]++
		c.queue = append(c.queue, qMsg{from: x.from, to: m.To, msg: transport.RangeMessage{RangeID: id, Msg: cp}})
	}
}

func newQCluster(t *testing.T, quiesce bool) *qCluster {
	t.Helper()
	// raft draws election timeouts from crypto/rand: seed it (the store
	// tests do not run in parallel).
	old := crand.Reader
	crand.Reader = rand.NewChaCha8([32]byte{7})
	t.Cleanup(func() { crand.Reader = old })
	c := &qCluster{t: t, now: time.Unix(1_700_000_000, 0), sent: map[keys.RangeID]int{}}
	var members []*cairnpb.Node
	for i, name := range []string{"n1", "n2", "n3"} {
		members = append(members, &cairnpb.Node{Id: uint64(i + 1), Name: name, PeerAddress: name})
	}
	for _, m := range members {
		db, err := storage.Open("data", storage.Options{CacheBytes: 1 << 20, MemTableBytes: 1 << 20, FS: vfs.NewMem(), DisableAutomaticCompactions: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		if _, err := store.Bootstrap(db, m.Name, members); err != nil {
			t.Fatal(err)
		}
		n := &qNode{id: m.Id, db: db, up: true}
		nowFn := func() time.Time { return c.now }
		n.clock = hlc.New(nowFn)
		st, err := store.New(db, store.Options{
			NodeID: m.Id, TickInterval: qTick, ElectionTicks: qElectionTicks, HeartbeatTicks: 1,
			LogKeepEntries: 100, Logger: testLogger(), Clock: n.clock, Now: nowFn, Quiesce: quiesce,
		})
		if err != nil {
			t.Fatal(err)
		}
		st.SetTransport(qSender{c: c, from: m.Id})
		n.st = st
		c.nodes = append(c.nodes, n)
	}
	return c
}

// step advances time by one tick: every running node ticks, the messages
// sent so far are delivered (those to or from a down node are lost), and
// every node runs its Ready passes.
func (c *qCluster) step() {
	c.now = c.now.Add(qTick)
	for _, n := range c.nodes {
		if n.up {
			n.st.Tick()
		}
	}
	c.flush()
}

// flush delivers queued messages and runs Ready passes until the network
// is quiet, without advancing time (bounded).
func (c *qCluster) flush() {
	for round := 0; round < 20; round++ {
		c.drive()
		if len(c.queue) == 0 {
			return
		}
		q := c.queue
		c.queue = nil
		batches := map[uint64][]transport.RangeMessage{}
		for _, m := range q {
			if c.node(m.from).up && c.node(m.to) != nil && c.node(m.to).up {
				batches[m.to] = append(batches[m.to], m.msg)
			}
		}
		for _, n := range c.nodes {
			if b := batches[n.id]; len(b) > 0 {
				n.st.Deliver(b)
			}
		}
	}
}

func (c *qCluster) drive() {
	for _, n := range c.nodes {
		if !n.up {
			continue
		}
		n.st.DrainRequests()
		for i := 0; ; i++ {
			more, err := n.st.ProcessReady()
			if err != nil {
				c.t.Fatal(err)
			}
			if !more {
				break
			}
			if i > 100 {
				c.t.Fatal("Ready passes do not end")
			}
		}
	}
}

func (c *qCluster) node(id uint64) *qNode {
	if id == 0 || id > uint64(len(c.nodes)) {
		return nil
	}
	return c.nodes[id-1]
}

// stepUntil steps until cond holds, at most max steps.
func (c *qCluster) stepUntil(max int, what string, cond func() bool) {
	c.t.Helper()
	for i := 0; i < max; i++ {
		if cond() {
			return
		}
		c.step()
	}
	if !cond() {
		c.t.Fatalf("after %d ticks: still waiting for %s", max, what)
	}
}

// leader returns the running node whose replica of id leads and whom
// every running replica follows, or nil.
func (c *qCluster) leader(id keys.RangeID) *qNode {
	var lead *qNode
	for _, n := range c.nodes {
		if !n.up {
			continue
		}
		r := n.st.Replica(id)
		if r == nil || r.Leader() == 0 {
			return nil
		}
		if lead == nil {
			lead = c.node(r.Leader())
		} else if lead.id != r.Leader() {
			return nil
		}
	}
	if lead == nil || !lead.up || !lead.st.Replica(id).IsLeader() {
		return nil
	}
	return lead
}

func (c *qCluster) waitLeader(id keys.RangeID) *qNode {
	c.t.Helper()
	var lead *qNode
	c.stepUntil(20*qElectionTicks, "a leader", func() bool { lead = c.leader(id); return lead != nil })
	return lead
}

// quiesced reports whether every running node's replica of id is quiesced.
func (c *qCluster) quiesced(id keys.RangeID) bool {
	for _, n := range c.nodes {
		if n.up && !n.st.Replica(id).IsQuiesced() {
			return false
		}
	}
	return true
}

// put writes key=value through n's replica of the data range.
func (c *qCluster) put(n *qNode, key, value string) replica.Result {
	c.t.Helper()
	cmd := putCmd(1, key, value, nil)
	cmd.Timestamp = uint64(n.clock.Now())
	done, err := n.st.Replica(dataRange).ProposeAsync(cmd)
	if err != nil {
		c.t.Fatal(err)
	}
	for i := 0; i < 10*qElectionTicks; i++ {
		c.flush()
		select {
		case res := <-done:
			if res.Err != nil {
				c.t.Fatalf("put %s on n%d: %v", key, n.id, res.Err)
			}
			return res
		default:
		}
		c.step()
	}
	c.t.Fatalf("put %s on n%d: not applied", key, n.id)
	return replica.Result{}
}

// read does a linearizable read of key on n (read barrier, then Pebble).
func (c *qCluster) read(n *qNode, key string) (value string, version uint64) {
	c.t.Helper()
	done, err := n.st.Replica(dataRange).ReadBarrierAsync()
	if err != nil {
		c.t.Fatal(err)
	}
	for i := 0; done != nil; i++ {
		c.flush()
		select {
		case err := <-done:
			if err != nil {
				c.t.Fatalf("read %s on n%d: %v", key, n.id, err)
			}
			done = nil
			continue
		default:
		}
		if i > 10*qElectionTicks {
			c.t.Fatalf("read %s on n%d: barrier not released", key, n.id)
		}
		c.step()
	}
	raw, closer, err := n.db.Get(keys.DataKey(1, []byte(key)))
	if errors.Is(err, pebble.ErrNotFound) {
		return "", 0
	}
	if err != nil {
		c.t.Fatal(err)
	}
	defer closer.Close()
	v, val, err := storage.DecodeValue(raw)
	if err != nil {
		c.t.Fatal(err)
	}
	return string(bytes.Clone(val)), v
}

func (c *qCluster) settleQuiesced(id keys.RangeID) {
	c.t.Helper()
	c.stepUntil(5*qElectionTicks, "every replica of the range to quiesce", func() bool { return c.quiesced(id) })
}

func TestQuiesceIdleRange(t *testing.T) {
	c := newQCluster(t, true)
	lead := c.waitLeader(dataRange)
	c.put(lead, "k", "v1")
	c.settleQuiesced(dataRange)

	// Quiesced: for many election timeouts, not one Raft message of the
	// range, no election, and only the meta range is ticked.
	term, _, _ := lead.st.Replica(dataRange).Status()
	clear(c.sent)
	for i := 0; i < 10*qElectionTicks; i++ {
		c.step()
	}
	if n := c.sent[dataRange]; n != 0 {
		t.Fatalf("quiesced range sent %d messages in %d ticks", n, 10*qElectionTicks)
	}
	if c.sent[replica.MetaRangeID] == 0 || c.sent[0] == 0 {
		t.Fatalf("meta range (%d messages) and node heartbeats (%d) should keep going", c.sent[replica.MetaRangeID], c.sent[0])
	}
	for _, n := range c.nodes {
		if got := n.st.AwakeReplicas(); got != 1 {
			t.Fatalf("n%d: %d awake replicas, want 1 (the meta range)", n.id, got)
		}
		if t2, _, _ := n.st.Replica(dataRange).Status(); t2 != term {
			t.Fatalf("n%d: term %d, want %d: an election happened while quiesced", n.id, t2, term)
		}
	}
}

func TestQuiesceWakesOnWriteAndRead(t *testing.T) {
	c := newQCluster(t, true)
	lead := c.waitLeader(dataRange)
	first := c.put(lead, "k", "v1")
	c.settleQuiesced(dataRange)
	// Long enough for the lease to lapse: the read needs a round.
	for i := 0; i < 3*qElectionTicks; i++ {
		c.step()
	}
	if lead.st.Replica(dataRange).HasLease() {
		t.Fatal("quiesced leader still holds a lease after three election timeouts")
	}

	// A read on a follower wakes the group and sees the write.
	var follower *qNode
	for _, n := range c.nodes {
		if n != lead {
			follower = n
			break
		}
	}
	if v, ver := c.read(follower, "k"); v != "v1" || ver != first.Version {
		t.Fatalf("follower read k = %q@%d, want v1@%d", v, ver, first.Version)
	}
	if c.quiesced(dataRange) {
		t.Fatal("a read did not wake the range")
	}
	c.settleQuiesced(dataRange)

	// A write wakes it; reads right after, on every node, see it.
	second := c.put(lead, "k", "v2")
	if second.Version <= first.Version {
		t.Fatalf("version %d not above %d", second.Version, first.Version)
	}
	for _, n := range c.nodes {
		if v, ver := c.read(n, "k"); v != "v2" || ver != second.Version {
			t.Fatalf("n%d: read k = %q@%d after waking write, want v2@%d", n.id, v, ver, second.Version)
		}
	}
	c.settleQuiesced(dataRange)

	// A read on the quiesced leader (lease lapsed) wakes it too.
	for i := 0; i < 3*qElectionTicks; i++ {
		c.step()
	}
	if v, _ := c.read(lead, "k"); v != "v2" {
		t.Fatalf("leader read k = %q, want v2", v)
	}
	if !lead.st.Replica(dataRange).HasLease() {
		t.Fatal("the read round after waking did not renew the lease")
	}
}

func TestQuiescedFollowersCampaignWhenLeaderNodeDies(t *testing.T) {
	c := newQCluster(t, true)
	lead := c.waitLeader(dataRange)
	first := c.put(lead, "k", "v1")
	c.settleQuiesced(dataRange)
	oldTerm, _, _ := lead.st.Replica(dataRange).Status()

	lead.up = false // the leader's node dies: no ticks, no messages
	var next *qNode
	c.stepUntil(6*qElectionTicks, "a new leader among the survivors", func() bool {
		next = c.leader(dataRange)
		return next != nil
	})
	if term, _, _ := next.st.Replica(dataRange).Status(); term <= oldTerm {
		t.Fatalf("new leader n%d in term %d, not above %d", next.id, term, oldTerm)
	}
	for _, n := range c.nodes {
		if n.up && !n.st.NodeDown(lead.id) {
			t.Fatalf("n%d does not consider n%d down", n.id, lead.id)
		}
	}
	// Data survives and writes go on.
	if v, ver := c.read(next, "k"); v != "v1" || ver != first.Version {
		t.Fatalf("read k = %q@%d on the new leader, want v1@%d", v, ver, first.Version)
	}
	second := c.put(next, "k", "v2")
	for _, n := range c.nodes {
		if n.up {
			if v, ver := c.read(n, "k"); v != "v2" || ver != second.Version {
				t.Fatalf("n%d: read k = %q@%d, want v2@%d", n.id, v, ver, second.Version)
			}
		}
	}
	// The two survivors quiesce again (the dead follower is not caught
	// up, so they do not: a range with a dead replica keeps ticking).
	for i := 0; i < 5*qElectionTicks; i++ {
		c.step()
	}
	if c.quiesced(dataRange) {
		t.Fatal("range quiesced with a replica down")
	}
}

func TestQuiesceOff(t *testing.T) {
	c := newQCluster(t, false)
	lead := c.waitLeader(dataRange)
	c.put(lead, "k", "v1")
	clear(c.sent)
	for i := 0; i < 5*qElectionTicks; i++ {
		c.step()
	}
	if c.quiesced(dataRange) || lead.st.Replica(dataRange).IsQuiesced() {
		t.Fatal("quiesced with Quiesce off")
	}
	if c.sent[dataRange] == 0 || c.sent[0] != 0 {
		t.Fatalf("with Quiesce off: %d range messages (want heartbeats), %d node heartbeats (want none)", c.sent[dataRange], c.sent[0])
	}
}
