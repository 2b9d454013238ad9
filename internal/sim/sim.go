package sim

import (
	crand "crypto/rand"
	"encoding/binary"
	"fmt"
	"hash"
	"hash/fnv"
	"io"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/hlc"
	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/replica"
	"github.com/cairn-db/cairn/internal/storage"
	"github.com/cairn-db/cairn/internal/store"
)

const (
	// tickEvery is the number of steps (1 ms each) per Raft tick.
	tickEvery      = 10
	electionTicks  = 10
	heartbeatTicks = 1
	// logKeep is small so that logs truncate and snapshots are exercised.
	logKeep = 8
	// The default table created by Bootstrap: table 1 in range 2.
	tableID   = 1
	tableName = "default"
	dataRange = keys.RangeID(2)
	dataDir   = "/cairn"
)

// epoch is simulated time zero.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Bug selects a bug planted in the simulation (never in cairn itself) to
// prove that the checkers catch it.
type Bug int

const (
	// NoBug runs the real thing.
	NoBug Bug = iota
	// BugReadWithoutBarrier serves gets from the gateway's Pebble at once,
	// without a read barrier: a lagging follower answers stale data.
	BugReadWithoutBarrier
	// BugForgetSyncedWrites turns some crashes into a power failure of the
	// whole cluster whose disks lied about fsync: every node restarts from
	// the synced image it had at the last checkpoint (taken every
	// checkpointEvery steps), so writes acknowledged since then are gone
	// everywhere.
	BugForgetSyncedWrites
	// BugStaleWithoutProof serves the stale-read probes without a
	// freshness proof (Config.Probes).
	BugStaleWithoutProof
	// BugSessionIgnoresToken serves the session-read probes whatever the
	// session token needs (Config.Probes).
	BugSessionIgnoresToken
	// BugNoCatalogGapRepair leaves out the meta updater's rule that a
	// leaderless replica of a range missing from the catalog records
	// itself (router's maybeRecordGap; RELIABILITY.md #26).
	BugNoCatalogGapRepair
)

const checkpointEvery = 400

// Config describes one simulation run. Zero fields take defaults.
type Config struct {
	Seed    uint64
	Nodes   int // default 3
	Steps   int // steps of the faulty phase (1 ms each); default 3000
	Keys    int // default: 1 to 8, drawn per seed
	Clients int // concurrent clients; default 4
	// NoFaults disables crashes, partitions and message faults.
	NoFaults bool
	// NoSplits disables range splits (random and by size).
	NoSplits bool
	// NoMerges disables range merges.
	NoMerges bool
	// NoTransfers disables the leadership transfers of transfer.go (the
	// mover still transfers on its way to a replica change). The seeds
	// replayed as regression tests were found before those existed.
	NoTransfers bool
	// NoQuiesce keeps idle ranges ticking (store.Options.Quiesce).
	NoQuiesce bool
	// Probes adds session and bounded-stale read probes and their
	// checkers (consistency.go).
	Probes bool
	Bug    Bug
	// KeepGoing runs to the end (and the final checks) despite failures.
	KeepGoing bool
	// Trace, if set, receives one line per simulated event.
	Trace io.Writer
}

func (c *Config) defaults() {
	if c.Nodes == 0 {
		c.Nodes = 3
	}
	if c.Steps == 0 {
		c.Steps = 3000
	}
	if c.Clients == 0 {
		c.Clients = 4
	}
}

// Result is the outcome of a run.
type Result struct {
	Seed uint64
	// Failures lists every checker violation; empty means the seed passed.
	Failures []string
	// TraceHash is a hash of every simulated event: equal for equal seeds.
	TraceHash uint64
	Steps     int64
	// Ops counts client operations in the checked history; Unknown those
	// with an unknown outcome.
	Ops, Unknown int
	// Crashes, Partitions and Snapshots count injected faults and snapshot
	// messages sent.
	Crashes, Partitions, Snapshots int
	// Splits counts applied splits the simulation proposed; Moves the
	// applied replica changes (remove, add learner, promote).
	Splits, Moves int
	// Merges counts applied merges the simulation proposed.
	Merges int
	// Transfers counts leadership transfers the simulation asked for
	// (besides the mover's).
	Transfers int
	// Quiesces and Wakes count replicas that quiesced and woke again
	// (replica/quiesce.go), over all nodes and incarnations.
	Quiesces, Wakes int
	// StaleReads and SessionReads count the probes' reads (Config.Probes).
	StaleReads, SessionReads int
	// Linearizable is porcupine's verdict ("Ok", "Illegal", "Unknown").
	Linearizable string
	// VisualizationPath is porcupine's HTML rendering of a failed check.
	VisualizationPath string
}

// Failed reports whether any checker fired.
func (r *Result) Failed() bool { return len(r.Failures) > 0 }

type node struct {
	idx        int
	id         uint64
	name       string
	fs         *vfs.MemFS
	checkpoint *vfs.MemFS // synced disk image at the last checkpoint (BugForgetSyncedWrites)
	db         *pebble.DB
	st         *store.Store
	clock      *hlc.Clock
	skew       time.Duration
	up         bool
	inc        int // incarnation, bumped by every crash
	tickPhase  int64
	restartAt  int64
	// crashAtSend makes the node crash at its next Send, in the middle of
	// a Ready pass.
	crashAtSend bool

	// Checker state of this incarnation.
	cursor map[keys.RangeID]uint64 // last applied index checked
	// incarnation is the replica object the cursor follows: a replica
	// moved off the node and back is a new, empty one.
	incarnation map[keys.RangeID]*replica.Replica
	seenVer     map[string]uint64 // highest version seen per key
}

// Sim is one simulated cluster. It is single-goroutine and not reusable.
type Sim struct {
	cfg     Config
	prof    profile
	now     int64 // current step
	rngF    *rand.Rand
	rngN    *rand.Rand
	rngC    *rand.Rand
	members []*cairnpb.Node
	nodes   []*node
	// failKinds are the kinds of failure reported so far (see fail).
	failKinds map[string]bool
	net       network
	cl        *clients
	pr        *probes // nil without Config.Probes
	split     *splitter
	merge     *merger
	move      *mover
	xfer      *transferrer
	chk       *checker
	h         hash.Hash64
	res       Result
	toClose   []*pebble.DB
	logger    *slog.Logger
	// stopped is set on the first failure: the run ends after this step.
	stopped bool
}

// raftRandMu serializes runs: crypto/rand.Reader is process-global.
var raftRandMu sync.Mutex

// Run simulates one seed and checks it.
func Run(cfg Config) *Result {
	s, done := open(cfg)
	defer done()
	for s.now < int64(s.cfg.Steps) && !s.stopped {
		s.step(true)
	}
	if !s.stopped {
		s.settle()
	}
	s.res.TraceHash = s.h.Sum64()
	s.res.Steps = s.now
	return &s.res
}

// open builds and bootstraps a simulation; done closes it. In between,
// this goroutine owns crypto/rand.Reader (seeded for raft).
func open(cfg Config) (s *Sim, done func()) {
	cfg.defaults()
	raftRandMu.Lock()
	s = newSim(cfg)
	old := crand.Reader
	crand.Reader = rand.NewChaCha8(seedBytes(cfg.Seed, 0x7261667400000000))
	s.bootstrap()
	return s, func() {
		s.closeAll()
		crand.Reader = old
		raftRandMu.Unlock()
	}
}

func seedBytes(seed, salt uint64) [32]byte {
	var b [32]byte
	binary.LittleEndian.PutUint64(b[0:], seed)
	binary.LittleEndian.PutUint64(b[8:], salt)
	binary.LittleEndian.PutUint64(b[16:], seed^salt^0x9e3779b97f4a7c15)
	return b
}

func newSim(cfg Config) *Sim {
	s := &Sim{
		cfg:    cfg,
		rngF:   rand.New(rand.NewChaCha8(seedBytes(cfg.Seed, 1))),
		rngN:   rand.New(rand.NewChaCha8(seedBytes(cfg.Seed, 2))),
		rngC:   rand.New(rand.NewChaCha8(seedBytes(cfg.Seed, 3))),
		h:      fnv.New64a(),
		logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	s.res.Seed = cfg.Seed
	s.prof = newProfile(s.rngF, cfg.NoFaults)
	if s.cfg.Keys == 0 {
		// Few keys mean contention on each; more keys, longer histories.
		s.cfg.Keys = []int{1, 2, 4, 4, 8}[s.rngF.IntN(5)]
	}
	s.net.cut, s.net.clog = map[[2]int]bool{}, map[[2]int]bool{}
	s.chk = newChecker()
	s.cl = newClients(s)
	if cfg.Probes {
		s.pr = newProbes(s)
	}
	s.split = newSplitter(cfg.Seed, cfg.NoSplits)
	s.merge = newMerger(cfg.Seed, cfg.NoMerges)
	s.move = newMover(cfg.Seed)
	s.xfer = newTransferrer(cfg.Seed, cfg.NoTransfers)
	for i := 0; i < cfg.Nodes; i++ {
		s.members = append(s.members, &cairnpb.Node{Id: uint64(i + 1), Name: fmt.Sprintf("n%d", i+1), PeerAddress: fmt.Sprintf("sim:%d", i+1)})
	}
	return s
}

// ev records one event in the trace hash (and the trace, if any).
func (s *Sim) ev(kind string, args ...uint64) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(s.now))
	s.h.Write(b[:])
	s.h.Write([]byte(kind))
	for _, a := range args {
		binary.LittleEndian.PutUint64(b[:], a)
		s.h.Write(b[:])
	}
	if s.cfg.Trace != nil {
		fmt.Fprintf(s.cfg.Trace, "%6d %s %v\n", s.now, kind, args)
	}
}

func (s *Sim) logf(format string, args ...any) {
	if s.cfg.Trace != nil {
		fmt.Fprintf(s.cfg.Trace, "%6d %s\n", s.now, fmt.Sprintf(format, args...))
	}
}

// fail records a checker violation and stops the run after this step.
func (s *Sim) fail(format string, args ...any) {
	msg := fmt.Sprintf("step %d: %s", s.now, fmt.Sprintf(format, args...))
	// Keep the first failures, and past that one of each kind, so that a
	// flood of one checker's reports cannot hide another checker's.
	kind := strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return -1
		}
		return r
	}, msg)
	if s.failKinds == nil {
		s.failKinds = make(map[string]bool)
	}
	if (len(s.res.Failures) < 50 || !s.failKinds[kind]) && len(s.res.Failures) < 200 {
		s.res.Failures = append(s.res.Failures, msg)
	}
	s.failKinds[kind] = true
	s.logf("FAILURE: %s", msg)
	s.stopped = !s.cfg.KeepGoing
}

// guard runs f, a driver step of n; a panic in cairn or raft code is a
// failure, and the node dies as the real process would.
func (s *Sim) guard(n *node, what string, f func()) {
	defer func() {
		if p := recover(); p != nil {
			s.fail("%s panicked in %s: %v\n%s", n.name, what, p, debug.Stack())
			s.crash(n)
			s.closeCrashed()
		}
	}()
	f()
}

func (s *Sim) bootstrap() {
	for i, m := range s.members {
		n := &node{idx: i, id: m.Id, name: m.Name, fs: vfs.NewCrashableMem()}
		n.tickPhase = s.rngF.Int64N(tickEvery)
		s.nodes = append(s.nodes, n)
		s.start(n)
	}
}

// start opens n's store on its current disk image.
func (s *Sim) start(n *node) {
	db, err := storage.Open(dataDir, storage.Options{
		CacheBytes: 16 << 20, MemTableBytes: 4 << 20, FS: n.fs, DisableAutomaticCompactions: true,
	})
	if err != nil {
		s.fail("%s: open pebble: %v", n.name, err)
		return
	}
	id, err := store.Bootstrap(db, n.name, s.members)
	if err != nil || id != n.id {
		s.fail("%s: bootstrap: id %d, %v", n.name, id, err)
		db.Close()
		return
	}
	if !s.prof.none {
		n.skew = time.Duration(s.rngF.Int64N(600)-300) * time.Millisecond
	}
	now := s.nodeNow(n)
	n.clock = hlc.New(now)
	// store.New opens replicas in map order and each draws an election
	// timeout from crypto/rand: give them all the same draw, so that the
	// order does not matter (see the report on store.reconcile).
	seeded := crand.Reader
	crand.Reader = constReader(byte(s.rngF.IntN(electionTicks)))
	st, err := store.New(db, store.Options{
		NodeID: n.id, TickInterval: tickEvery * time.Millisecond, ElectionTicks: electionTicks,
		HeartbeatTicks: heartbeatTicks, LogKeepEntries: logKeep, Logger: s.logger,
		Clock: n.clock, Now: now, Quiesce: !s.cfg.NoQuiesce,
	})
	crand.Reader = seeded
	if err != nil {
		s.fail("%s: store.New: %v", n.name, err)
		db.Close()
		return
	}
	st.SetTransport(&sender{s: s, n: n, inc: n.inc})
	n.db, n.st, n.up = db, st, true
	n.cursor = map[keys.RangeID]uint64{}
	n.incarnation = map[keys.RangeID]*replica.Replica{}
	n.seenVer = map[string]uint64{}
	for _, r := range st.Replicas() {
		_, _, applied := r.Status()
		n.cursor[r.ID] = applied
		// The cursor follows this replica object: if the node destroys it
		// before the next check (the catalog it catches up on says it
		// moved off) and the range comes back empty, that is a new
		// incarnation, not an applied index going back (seed 1913).
		n.incarnation[r.ID] = r
	}
	s.ev("start", n.id, uint64(n.inc))
}

// nodeNow is n's wall clock: simulated time plus its skew.
func (s *Sim) nodeNow(n *node) func() time.Time {
	skew := n.skew
	return func() time.Time { return epoch.Add(time.Duration(s.now)*time.Millisecond + skew) }
}

type constReader byte

func (c constReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(c)
	}
	return len(p), nil
}

// crash kills n now: its disk keeps only what was synced. It may run in
// the middle of n's Ready pass (from Send); the store is then dropped
// after the pass returns.
func (s *Sim) crash(n *node) {
	if !n.up {
		return
	}
	// Half the crashes are process kills: the kernel keeps every write the
	// process made (model: sync the WAL, then clone). The others are power
	// failures: only what was fsynced survives.
	kill := !s.prof.none && s.rngF.IntN(2) == 0
	s.ev("crash", n.id, uint64(n.inc), boolInt(kill))
	s.res.Crashes++
	if kill {
		if err := n.db.LogData([]byte("kill"), pebble.Sync); err != nil {
			s.fail("%s: sync before a process kill: %v", n.name, err)
		}
	}
	n.fs = n.fs.CrashClone(vfs.CrashCloneCfg{})
	n.up = false
	n.crashAtSend = false
	n.inc++
	s.toClose = append(s.toClose, n.db)
	s.countQuiesces(n)
	n.db, n.st = nil, nil
	s.cl.nodeCrashed(n)
}

func (s *Sim) closeCrashed() {
	for _, db := range s.toClose {
		_ = db.Close()
	}
	s.toClose = s.toClose[:0]
}

func (s *Sim) closeAll() {
	s.closeCrashed()
	for _, n := range s.nodes {
		if n.up {
			s.countQuiesces(n)
			_ = n.db.Close()
			n.up = false
		}
	}
}

// countQuiesces adds n's quiescence counters to the result (before its
// store goes).
func (s *Sim) countQuiesces(n *node) {
	st := n.st.Stats()
	s.res.Quiesces += int(st.Quiesces.Load())
	s.res.Wakes += int(st.Unquiesces.Load())
}

func (s *Sim) upNodes() []*node {
	var out []*node
	for _, n := range s.nodes {
		if n.up {
			out = append(out, n)
		}
	}
	return out
}

func (s *Sim) nodeByID(id uint64) *node {
	if id == 0 || id > uint64(len(s.nodes)) {
		return nil
	}
	return s.nodes[id-1]
}

// step advances the simulation by one step (1 ms).
func (s *Sim) step(faults bool) {
	s.now++
	s.applyReports()
	if faults {
		s.injectFaults()
	}
	for _, n := range s.nodes {
		if !n.up && n.restartAt > 0 && s.now >= n.restartAt {
			n.restartAt = 0
			s.start(n)
		}
	}
	for _, n := range s.upNodes() {
		if (s.now+n.tickPhase)%tickEvery == 0 {
			s.guard(n, "Tick", n.st.Tick)
		}
	}
	s.deliver()
	s.cl.issue()
	s.churn()
	s.splitStep()
	s.mergeStep()
	s.moveStep()
	if faults {
		s.transferStep()
	}
	for _, n := range s.upNodes() {
		s.guard(n, "a Ready pass", func() { s.drive(n) })
	}
	s.closeCrashed()
	s.cl.poll()
	if s.pr != nil {
		s.pr.step()
	}
	s.chk.afterStep(s)
	s.traceStatus()
}

// drive runs n's driver steps as its run loop would: hand queued requests
// to raft, then Ready passes until none is left.
func (s *Sim) drive(n *node) {
	st := n.st
	st.DrainRequests()
	// A Ready pass may open replicas (store.reconcile, in map order), each
	// drawing an election timeout: give them all the same draw.
	seeded := crand.Reader
	crand.Reader = constReader(byte(n.idx*3) % electionTicks)
	defer func() { crand.Reader = seeded }()
	for i := 0; i < 64; i++ {
		more, err := st.ProcessReady()
		if !n.up || n.st != st {
			return // crashed in the middle of the pass
		}
		if err != nil {
			// The real driver panics on a storage error; here the node
			// dies and restarts, and the failure is recorded.
			s.fail("%s: ProcessReady: %v", n.name, err)
			s.crash(n)
			return
		}
		if !more {
			return
		}
	}
	s.fail("%s: Ready passes do not quiesce", n.name)
}

// traceStatus folds every node's Raft status into the trace hash.
func (s *Sim) traceStatus() {
	for _, n := range s.nodes {
		if !n.up {
			continue
		}
		for _, r := range n.st.Replicas() {
			term, commit, applied := r.Status()
			s.ev("status", n.id, uint64(r.ID), term, commit, applied, r.Leader())
		}
	}
}

// settle heals every fault, restarts every node, lets outstanding
// operations finish and the cluster converge, and runs the final checks.
func (s *Sim) settle() {
	s.logf("settle: healing all faults")
	s.prof.quiet()
	s.net.healAll(s)
	for _, n := range s.nodes {
		n.crashAtSend = false
		if !n.up {
			n.restartAt = 0
			s.start(n)
		}
	}
	s.cl.stopIssuing = true
	if !s.waitSettled() {
		return
	}
	s.chk.durable(s)
	// Calm phase: operations on a healed, settled cluster must all
	// succeed; one that times out or ends unknown is a liveness bug (a
	// lost read index, a proposal that never applies).
	s.logf("calm phase")
	s.cl.stopIssuing, s.cl.calmFrom = false, s.now
	for i := 0; i < calmSteps && !s.stopped; i++ {
		s.step(false)
	}
	s.cl.stopIssuing = true
	if s.waitSettled() {
		s.chk.final(s)
	}
}

const calmSteps = 500

// waitSettled steps until no operation is outstanding and the cluster has
// stayed converged for a while.
func (s *Sim) waitSettled() bool {
	stable := 0
	for i := 0; i < 5000 && !s.stopped; i++ {
		s.step(false)
		if s.cl.idle() && s.converged() {
			if stable++; stable >= 3*tickEvery*electionTicks {
				break
			}
		} else {
			stable = 0
		}
	}
	if s.stopped {
		return false
	}
	if stable == 0 {
		s.fail("liveness: the cluster did not settle within 5000 steps after healing (%s)", s.describeRanges())
		return false
	}
	return true
}

// converged reports whether every node is up and every range has one
// leader that all nodes follow, with equal commit and applied indexes.
func (s *Sim) converged() bool {
	for _, n := range s.nodes {
		if !n.up {
			return false
		}
	}
	if !s.movesSettled() || s.anyFrozen() {
		return false
	}
	// The leader's commit index is the one that counts (a follower learns
	// it a heartbeat later).
	var ids []keys.RangeID
	for _, r := range s.nodes[0].st.Replicas() {
		ids = append(ids, r.ID)
	}
	for _, n := range s.nodes[1:] {
		if len(n.st.Replicas()) != len(ids) {
			return false
		}
	}
	for _, id := range ids {
		var lead, applied0 uint64
		for i, n := range s.nodes {
			r := n.st.Replica(id)
			if r == nil {
				return false
			}
			_, _, applied := r.Status()
			if i == 0 {
				lead, applied0 = r.Leader(), applied
			}
			if lead == 0 || r.Leader() != lead || applied != applied0 {
				return false
			}
		}
		ln := s.nodeByID(lead)
		if _, commit, _ := ln.st.Replica(id).Status(); commit != applied0 || !ln.st.Replica(id).IsLeader() {
			return false
		}
	}
	return true
}

func (s *Sim) describeRanges() string {
	out := ""
	for _, n := range s.nodes {
		if !n.up {
			out += fmt.Sprintf("%s down; ", n.name)
			continue
		}
		for _, r := range n.st.Replicas() {
			term, commit, applied := r.Status()
			d := r.Desc()
			out += fmt.Sprintf("%s r%d term=%d lead=%d commit=%d applied=%d voters=%v learners=%v", n.name, r.ID, term, r.Leader(), commit, applied, d.Replicas, d.Learners)
			if r.IsQuiesced() {
				out += " quiesced"
			}
			if fr := r.FrozenFor(); fr != nil {
				out += fmt.Sprintf(" frozen-for=r%d@%d", fr.LeftId, fr.LeftGeneration)
			}
			out += "; "
		}
	}
	return out
}
