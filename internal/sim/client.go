package sim

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/kv"
	"github.com/cairn-db/cairn/internal/replica"
	"github.com/cairn-db/cairn/internal/storage"
)

const (
	// opTimeout is how long a client waits for an operation (steps); a
	// write still in flight then has an unknown outcome.
	opTimeout = 4 * tickEvery * electionTicks
	// calmLatency bounds an operation's latency once faults are over.
	calmLatency = electionTicks * tickEvery
	maxThink    = 30
)

type opKind uint8

const (
	opGet opKind = iota
	opPut
	opDel
)

// input is an operation as issued. A put or delete may carry a condition:
// CondAbsent (puts only) or CondVer (the key's current version).
type input struct {
	Kind       opKind
	Key        string
	Value      string
	CondAbsent bool
	CondVer    uint64
}

type outcome uint8

const (
	outOK outcome = iota
	outNotFound
	outCondFailed
	outUnknown // a write that may or may not have been applied
)

// output is what the client saw: Value and Version of a get, the new
// version of a put, the deleted version of a delete.
type output struct {
	Out     outcome
	Value   string
	Version uint64
}

// op is one client operation, in flight or in the history.
type op struct {
	id     int
	client int // porcupine client ID (a fresh one after an unknown op)
	in     input
	out    output
	call   int64 // history clock
	ret    int64
	start  int64 // step issued
	// Current attempt.
	node    *node
	inc     int
	rangeID keys.RangeID // the range the attempt went to
	wch     <-chan replica.Result
	rch     <-chan error
	retryAt int64
}

type clients struct {
	s           *Sim
	clock       int64 // history clock: one tick per call or return
	history     []*op
	active      []*op // per client slot
	clientID    []int
	nextClient  int
	idleUntil   []int64
	lastVer     map[string]uint64
	nextID      int
	stopIssuing bool
	// calmFrom, once set, is the step from which faults are over: every
	// operation issued since must succeed.
	calmFrom int64
}

func newClients(s *Sim) *clients {
	c := &clients{s: s, lastVer: map[string]uint64{}}
	for i := 0; i < s.cfg.Clients; i++ {
		c.active = append(c.active, nil)
		c.clientID = append(c.clientID, i)
		c.idleUntil = append(c.idleUntil, 0)
	}
	c.nextClient = s.cfg.Clients
	return c
}

func (c *clients) idle() bool {
	for _, o := range c.active {
		if o != nil {
			return false
		}
	}
	return true
}

// issue starts new operations and retries waiting ones.
func (c *clients) issue() {
	s := c.s
	for i, o := range c.active {
		if o == nil {
			if c.stopIssuing || s.now < c.idleUntil[i] {
				continue
			}
			o = c.newOp(i)
			c.active[i] = o
		}
		if o.wch == nil && o.rch == nil && s.now >= o.retryAt {
			c.attempt(o)
		}
	}
}

func (c *clients) newOp(slot int) *op {
	s, rng := c.s, c.s.rngC
	c.nextID++
	o := &op{id: c.nextID, client: c.clientID[slot], start: s.now}
	o.in.Key = fmt.Sprintf("k%d", rng.IntN(s.cfg.Keys))
	switch x := rng.IntN(100); {
	case x < 40:
		o.in.Kind = opGet
	case x < 85:
		o.in.Kind = opPut
		o.in.Value = fmt.Sprintf("v%d", o.id)
		switch y := rng.IntN(10); {
		case y < 2:
			o.in.CondAbsent = true
		case y < 5:
			o.in.CondVer = c.lastVer[o.in.Key]
			if o.in.CondVer == 0 || rng.IntN(8) == 0 {
				o.in.CondVer += uint64(rng.IntN(3)) // sometimes a wrong version
			}
		}
	default:
		o.in.Kind = opDel
		if rng.IntN(3) == 0 {
			o.in.CondVer = c.lastVer[o.in.Key] + uint64(rng.IntN(2))
		}
	}
	c.clock++
	o.call = c.clock
	s.ev("call", uint64(o.id), uint64(o.in.Kind), o.in.CondVer)
	if s.pr != nil {
		s.pr.issued(o.in)
	}
	return o
}

// attempt sends o to a random live node, as a client picks a gateway.
// A write goes to the leader the gateway knows (the router forwards it
// there) or, sometimes, to the gateway's own replica, which refuses it if
// it does not lead.
func (c *clients) attempt(o *op) {
	s, rng := c.s, c.s.rngC
	up := s.upNodes()
	if len(up) == 0 {
		o.retryAt = s.now + 10
		return
	}
	gw := up[rng.IntN(len(up))]
	// Route by key through the gateway's local descriptors, as the router
	// does after a range key mismatch.
	r := gw.st.LocalRangeFor(tableID, []byte(o.in.Key))
	if r == nil {
		o.retryAt = s.now + 10
		return
	}
	o.rangeID = r.ID
	if o.in.Kind == opGet {
		if s.cfg.Bug == BugReadWithoutBarrier {
			c.finishRead(o, gw)
			return
		}
		ch, err := r.ReadBarrierAsync()
		if err != nil {
			o.retryAt = s.now + 5
			return
		}
		if ch == nil { // a leader under a lease, already applied far enough
			o.node, o.inc = gw, gw.inc
			s.ev("lease-read", uint64(o.id), gw.id)
			c.readDone(o, nil)
			return
		}
		o.rch, o.node, o.inc = ch, gw, gw.inc
		s.ev("read", uint64(o.id), gw.id)
		return
	}
	target := gw
	// A client sends a write to its gateway's idea of the leader, but one
	// time in four it proposes on the gateway itself (exercising the
	// not-leader path), except in the calm phase, whose latency bound is
	// about cairn, not about a client that keeps picking followers.
	if !r.IsLeader() && (c.calmFrom > 0 || rng.IntN(4) != 0) {
		if ln := s.nodeByID(r.Leader()); ln != nil && ln.up &&
			!s.net.cut[[2]int{gw.idx, ln.idx}] && !s.net.cut[[2]int{ln.idx, gw.idx}] {
			target = ln
		}
	}
	cmd := &cairnpb.Command{TableId: tableID, Timestamp: uint64(target.clock.Now())}
	var cond *cairnpb.Condition
	if o.in.CondAbsent || o.in.CondVer != 0 {
		cond = &cairnpb.Condition{Absent: o.in.CondAbsent, Version: o.in.CondVer}
	}
	if o.in.Kind == opPut {
		cmd.Op = &cairnpb.Command_Put{Put: &cairnpb.PutRequest{Table: tableName, Key: []byte(o.in.Key), Value: []byte(o.in.Value), Condition: cond}}
	} else {
		cmd.Op = &cairnpb.Command_Delete{Delete: &cairnpb.DeleteRequest{Table: tableName, Key: []byte(o.in.Key), Condition: cond}}
	}
	tr := target.st.Replica(r.ID)
	if tr == nil {
		o.retryAt = s.now + 5
		return
	}
	ch, err := tr.ProposeAsync(cmd)
	if err != nil {
		o.retryAt = s.now + 5
		return
	}
	o.wch, o.node, o.inc = ch, target, target.inc
	s.ev("propose", uint64(o.id), target.id)
}

// poll collects outcomes and expires operations that took too long.
func (c *clients) poll() {
	s := c.s
	for _, o := range c.active {
		if o == nil {
			continue
		}
		switch {
		case o.wch != nil:
			select {
			case res := <-o.wch:
				o.wch = nil
				c.writeDone(o, res)
			default:
			}
		case o.rch != nil:
			select {
			case err := <-o.rch:
				o.rch = nil
				c.readDone(o, err)
			default:
			}
		}
		if c.slotOf(o) >= 0 && c.calmFrom > 0 && o.start >= c.calmFrom && s.now-o.start == calmLatency {
			s.fail("liveness: op %d %v issued at step %d still pending after %d steps in a settled, fault-free cluster",
				o.id, o.in, o.start, calmLatency)
		}
		if c.slotOf(o) >= 0 && s.now-o.start > opTimeout {
			if o.wch != nil {
				c.unknown(o, "timed out")
			} else {
				c.drop(o, "timed out")
			}
		}
	}
}

func (c *clients) slotOf(o *op) int {
	for i, a := range c.active {
		if a == o {
			return i
		}
	}
	return -1
}

func (c *clients) writeDone(o *op, res replica.Result) {
	s := c.s
	switch {
	case res.Err == nil:
		if s.pr != nil && o.node != nil && o.node.up && o.node.inc == o.inc {
			s.pr.acked(c.slotOf(o), o, res, o.node.st.Replica(o.rangeID))
		} else if s.pr != nil {
			s.pr.acked(-1, o, res, nil)
		}
		c.complete(o, output{Out: outOK, Value: o.in.Value, Version: res.Version})
	case errors.Is(res.Err, kv.ErrConditionFailed):
		c.complete(o, output{Out: outCondFailed})
	case errors.Is(res.Err, kv.ErrNotFound):
		c.complete(o, output{Out: outNotFound})
	case errors.Is(res.Err, kv.ErrNotLeader), errors.Is(res.Err, kv.ErrRangeKeyMismatch):
		// Never handed to raft (or dropped by it), or refused at apply by
		// a range that split: safe to retry.
		o.retryAt = s.now + 2 + s.rngC.Int64N(20)
		s.ev("retry", uint64(o.id))
	case errors.Is(res.Err, kv.ErrTimeout):
		c.unknown(o, res.Err.Error())
	default:
		s.fail("op %d: unexpected write error: %v", o.id, res.Err)
		c.unknown(o, res.Err.Error())
	}
}

func (c *clients) readDone(o *op, err error) {
	s := c.s
	switch {
	case err == nil:
		if !o.node.up || o.node.inc != o.inc {
			o.retryAt = s.now // the gateway died: ask another node
			return
		}
		// The stale-routing rule: after the barrier, the range must still
		// hold the key; a split since routing moved it to a range whose
		// writes this barrier does not cover.
		if r := o.node.st.Replica(o.rangeID); r == nil || !r.Contains([]byte(o.in.Key)) {
			o.retryAt = s.now + 1
			s.ev("retry-mismatch", uint64(o.id))
			return
		}
		c.finishRead(o, o.node)
	case errors.Is(err, kv.ErrUnavailable), errors.Is(err, kv.ErrNotLeader):
		c.checkCalm(o, "read barrier failed: "+err.Error())
		o.retryAt = s.now + 2 + s.rngC.Int64N(20)
		s.ev("retry", uint64(o.id))
	case errors.Is(err, kv.ErrRangeKeyMismatch):
		// The range was merged into its neighbour meanwhile (its replica
		// is gone): route again, as the router does.
		o.retryAt = s.now + 1
		s.ev("retry-mismatch", uint64(o.id))
	default:
		s.fail("op %d: unexpected read error: %v", o.id, err)
		c.drop(o, err.Error())
	}
}

// finishRead reads o's key from n's Pebble, as router.localGet does after
// its barrier.
func (c *clients) finishRead(o *op, n *node) {
	v, found, err := readKey(n, o.in.Key)
	if err != nil {
		c.s.fail("%s: read %s: %v", n.name, o.in.Key, err)
		c.drop(o, err.Error())
		return
	}
	if !found {
		c.complete(o, output{Out: outNotFound})
		return
	}
	c.complete(o, output{Out: outOK, Value: v.value, Version: v.version})
}

type versioned struct {
	value   string
	version uint64
}

func readKey(n *node, key string) (versioned, bool, error) {
	raw, closer, err := n.db.Get(keys.DataKey(tableID, []byte(key)))
	if errors.Is(err, pebble.ErrNotFound) {
		return versioned{}, false, nil
	}
	if err != nil {
		return versioned{}, false, err
	}
	defer closer.Close()
	ver, val, err := storage.DecodeValue(raw)
	if err != nil {
		return versioned{}, false, err
	}
	return versioned{value: string(val), version: ver}, true, nil
}

// nodeCrashed settles the operations n's crash interrupted: writes have
// an unknown outcome, reads go to another node.
func (c *clients) nodeCrashed(n *node) {
	for _, o := range c.active {
		if o == nil || o.node != n || o.inc == n.inc {
			continue
		}
		if o.wch != nil {
			c.unknown(o, "node crashed")
		} else if o.rch != nil {
			o.rch = nil
			o.retryAt = c.s.now + 1
		}
	}
}

func (c *clients) complete(o *op, out output) {
	c.clock++
	o.out, o.ret = out, c.clock
	if out.Out == outOK && out.Version > c.lastVer[o.in.Key] {
		c.lastVer[o.in.Key] = out.Version
	}
	c.s.ev("return", uint64(o.id), uint64(out.Out), out.Version)
	c.history = append(c.history, o)
	c.free(o, false)
}

// checkCalm fails the run if o, issued after the faults ended, did not
// complete.
func (c *clients) checkCalm(o *op, why string) {
	if c.calmFrom > 0 && o.start >= c.calmFrom {
		c.s.fail("liveness: op %d %v issued at step %d in a settled, fault-free cluster: %s", o.id, o.in, o.start, why)
	}
}

func (c *clients) unknown(o *op, why string) {
	c.checkCalm(o, "outcome unknown: "+why)
	o.out = output{Out: outUnknown}
	o.wch = nil
	c.s.ev("unknown", uint64(o.id))
	c.s.logf("op %d unknown: %s", o.id, why)
	c.history = append(c.history, o)
	c.free(o, true)
}

func (c *clients) drop(o *op, why string) {
	c.checkCalm(o, "dropped: "+why)
	c.s.ev("dropped", uint64(o.id))
	c.s.logf("op %d dropped: %s", o.id, why)
	c.free(o, false)
}

func (c *clients) free(o *op, fresh bool) {
	i := c.slotOf(o)
	c.active[i] = nil
	c.idleUntil[i] = c.s.now + c.s.rngC.Int64N(maxThink)
	if fresh {
		// The client gave up on an operation that may still happen: later
		// operations must not look sequential after it.
		c.clientID[i] = c.nextClient
		c.nextClient++
	}
}
