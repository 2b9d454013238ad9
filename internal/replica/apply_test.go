// Goal: check the replica's apply state machine deterministically: put and
// delete with their conditions, versions = max(proposer timestamp, range
// max version + 1) strictly increasing even when timestamps go backwards,
// rejection of commands for another table or outside the range, the meta
// commands (CreateTable allocates IDs and writes the new range's initial
// state, DropTable asks for the range's destruction), idempotent re-apply
// of applied indexes, and persistence across a reopen.
// Method: datadriven golden files (testdata/apply.txt) over replicas
// opened on a temp Pebble after replica.Bootstrap (one node, n1); each command builds
// raftpb.Entry values with marshaled cairnpb.Command payloads and drives
// Replica.Apply directly (no Raft), reading results through the waiters.
// Regenerate with -rewrite and read the diff.
package replica

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/kv"
	"github.com/cairn-db/cairn/internal/storage"
)

func testLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testOptions() Options {
	return Options{NodeID: 1, ElectionTicks: 10, HeartbeatTicks: 1, MaxPending: 100, ProposalIDSeed: 1000, Logger: testLogger(), HistoryVersions: 3}
}

// applyEnv is one node's Pebble with its replicas, driven by hand.
type applyEnv struct {
	t        testing.TB
	dir      string
	db       *pebble.DB
	replicas map[keys.RangeID]*Replica
	term     uint64
	nextProp uint64

	storageOpts storage.Options
}

// newApplyEnv opens a bootstrapped node with a small Pebble (1 MiB cache
// and memtable: tests create many).
func newApplyEnv(t testing.TB) *applyEnv {
	t.Helper()
	return newApplyEnvWith(t, storage.Options{CacheBytes: 1 << 20, MemTableBytes: 1 << 20})
}

func newApplyEnvWith(t testing.TB, opts storage.Options) *applyEnv {
	t.Helper()
	e := &applyEnv{t: t, dir: t.TempDir(), term: InitialTerm + 1, nextProp: 1, storageOpts: opts}
	e.open()
	b := e.db.NewIndexedBatch()
	if err := Bootstrap(b, []*cairnpb.Node{{Id: 1, Name: "n1", PeerAddress: "127.0.0.1:1"}}); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	b.Close()
	e.openReplica(MetaRangeID)
	e.openReplica(2)
	t.Cleanup(func() { e.db.Close() })
	return e
}

func (e *applyEnv) open() {
	e.t.Helper()
	db, err := storage.Open(e.dir, e.storageOpts)
	if err != nil {
		e.t.Fatal(err)
	}
	e.db = db
	e.replicas = map[keys.RangeID]*Replica{}
}

func (e *applyEnv) openReplica(id keys.RangeID) *Replica {
	e.t.Helper()
	r, err := Open(e.db, id, testOptions(), func(keys.RangeID) {})
	if err != nil {
		e.t.Fatalf("open range %d: %v", id, err)
	}
	e.replicas[id] = r
	return r
}

// reopen closes Pebble and opens it and every replica again.
func (e *applyEnv) reopen() {
	e.t.Helper()
	var ids []keys.RangeID
	for id := range e.replicas {
		ids = append(ids, id)
	}
	if err := e.db.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.open()
	for _, id := range ids {
		e.openReplica(id)
	}
}

func (e *applyEnv) replica(t testing.TB, td *datadriven.TestData, def keys.RangeID) *Replica {
	id := uint64(def)
	td.MaybeScanArgs(t, "range", &id)
	r := e.replicas[keys.RangeID(id)]
	if r == nil {
		td.Fatalf(t, "no replica of range %d", id)
	}
	return r
}

// entry is one command to apply: its replica, entry and result channel.
type entry struct {
	r    *Replica
	ent  raftpb.Entry
	done chan Result
	name string
}

// parseEntry turns a put/del/create-table/drop-table/empty directive into
// an entry for the next index of its replica (or index=N).
func (e *applyEnv) parseEntry(t testing.TB, td *datadriven.TestData, nextIndex map[keys.RangeID]uint64) entry {
	cmd := &cairnpb.Command{}
	var r *Replica
	switch td.Cmd {
	case "put", "del":
		r = e.replica(t, td, 2)
		var key, value, table string
		td.ScanArgs(t, "key", &key)
		td.MaybeScanArgs(t, "table", &table)
		cmd.TableId = r.Desc().TableId
		td.MaybeScanArgs(t, "table-id", &cmd.TableId)
		var cond *cairnpb.Condition
		if td.HasArg("if-version") {
			cond = &cairnpb.Condition{}
			td.ScanArgs(t, "if-version", &cond.Version)
		}
		if td.HasArg("if-absent") {
			if cond == nil {
				cond = &cairnpb.Condition{}
			}
			cond.Absent = true
		}
		if td.Cmd == "put" {
			td.ScanArgs(t, "value", &value)
			put := &cairnpb.PutRequest{Table: table, Key: []byte(key), Value: []byte(value), Condition: cond}
			td.MaybeScanArgs(t, "ttl-ms", &put.TtlMs)
			put.KeepTtl = td.HasArg("keep-ttl")
			cmd.Op = &cairnpb.Command_Put{Put: put}
		} else {
			cmd.Op = &cairnpb.Command_Delete{Delete: &cairnpb.DeleteRequest{Table: table, Key: []byte(key), Condition: cond}}
		}
	case "multi":
		// An atomic BatchRequest, one operation per input line: "put KEY VALUE [if-absent|if-version=N]"
		// or "del KEY [if-version=N]".
		r = e.replica(t, td, 2)
		cmd.TableId = r.Desc().TableId
		td.MaybeScanArgs(t, "table-id", &cmd.TableId)
		cmd.Op = &cairnpb.Command_Batch{Batch: parseBatch(t, td)}
	case "expire":
		// Input lines "KEY VERSION EXPIRE-AT-MS".
		r = e.replica(t, td, 2)
		cmd.TableId = r.Desc().TableId
		ex := &cairnpb.Expire{}
		for _, line := range strings.Split(strings.TrimSpace(td.Input), "\n") {
			k := &cairnpb.ExpireKey{}
			var key string
			if _, err := fmt.Sscanf(line, "%s %d %d", &key, &k.Version, &k.ExpireAtMs); err != nil {
				td.Fatalf(t, "bad expire line %q: %v", line, err)
			}
			k.Key = []byte(key)
			ex.Keys = append(ex.Keys, k)
		}
		cmd.Op = &cairnpb.Command_Expire{Expire: ex}
	case "create-table":
		r = e.replica(t, td, MetaRangeID)
		var name string
		td.ScanArgs(t, "name", &name)
		ct := &cairnpb.CreateTable{Name: name, Partitioning: "range"}
		if td.HasArg("hash-ranges") {
			// A hash table pre-split into that many hash intervals.
			td.ScanArgs(t, "hash-ranges", &ct.InitialRanges)
			ct.Partitioning = "hash"
		}
		td.MaybeScanArgs(t, "learners", &ct.Learners)
		cmd.Op = &cairnpb.Command_CreateTable{CreateTable: ct}
	case "update-table":
		r = e.replica(t, td, MetaRangeID)
		u := &cairnpb.UpdateTableRequest{}
		td.ScanArgs(t, "name", &u.Name)
		for _, a := range td.CmdArgs {
			switch a.Key {
			case "consistency":
				v := a.Vals[0]
				u.Consistency = &v
			case "replicas", "learners", "max-writes":
				n, err := strconv.ParseUint(a.Vals[0], 10, 32)
				if err != nil {
					td.Fatalf(t, "%s: %v", a.Key, err)
				}
				v := uint32(n)
				switch a.Key {
				case "replicas":
					u.Replicas = &v
				case "learners":
					u.Learners = &v
				default:
					u.MaxWritesPerSec = &v
				}
			case "max-bytes":
				n, err := strconv.ParseUint(a.Vals[0], 10, 64)
				if err != nil {
					td.Fatalf(t, "%s: %v", a.Key, err)
				}
				u.MaxBytes = &n
			}
		}
		cmd.Op = &cairnpb.Command_UpdateTable{UpdateTable: u}
	case "drop-table":
		r = e.replica(t, td, MetaRangeID)
		var name string
		td.ScanArgs(t, "name", &name)
		cmd.Op = &cairnpb.Command_DropTable{DropTable: &cairnpb.DropTable{Name: name}}
	case "split":
		r = e.replica(t, td, 2)
		sp := &cairnpb.Split{}
		var key string
		td.ScanArgs(t, "key", &key)
		sp.SplitKey = []byte(key)
		td.ScanArgs(t, "new", &sp.NewRangeId)
		td.ScanArgs(t, "gen", &sp.ExpectedGeneration)
		cmd.TableId = r.Desc().TableId
		cmd.Op = &cairnpb.Command_Split{Split: sp}
	case "freeze":
		r = e.replica(t, td, 3)
		f := &cairnpb.MergeFreeze{}
		td.ScanArgs(t, "left", &f.LeftId)
		td.ScanArgs(t, "lgen", &f.LeftGeneration)
		td.ScanArgs(t, "gen", &f.ExpectedGeneration)
		cmd.Op = &cairnpb.Command_MergeFreeze{MergeFreeze: f}
	case "unfreeze":
		r = e.replica(t, td, 3)
		u := &cairnpb.MergeUnfreeze{}
		td.ScanArgs(t, "left", &u.LeftId)
		td.ScanArgs(t, "lgen", &u.LeftGeneration)
		cmd.Op = &cairnpb.Command_MergeUnfreeze{MergeUnfreeze: u}
	case "merge-abort":
		r = e.replica(t, td, 2)
		a := &cairnpb.MergeAbort{LeftId: 2}
		var start string
		td.MaybeScanArgs(t, "left", &a.LeftId)
		td.ScanArgs(t, "lgen", &a.LeftGeneration)
		td.ScanArgs(t, "right-start", &start)
		a.RightStart = []byte(start)
		cmd.Op = &cairnpb.Command_MergeAbort{MergeAbort: a}
	case "merge":
		// The right range's state as stored here (the merge driver sends
		// the state its freeze returned).
		r = e.replica(t, td, 2)
		m := &cairnpb.Merge{}
		var right uint64
		td.ScanArgs(t, "right", &right)
		td.ScanArgs(t, "gen", &m.ExpectedGeneration)
		st, err := LoadState(e.db, keys.RangeID(right))
		if err != nil {
			td.Fatalf(t, "%v", err)
		}
		m.RightState = st
		cmd.Op = &cairnpb.Command_Merge{Merge: m}
	case "alloc-range-id":
		r = e.replica(t, td, MetaRangeID)
		cmd.Op = &cairnpb.Command_AllocRangeId{AllocRangeId: &cairnpb.AllocRangeID{}}
	case "update-ranges":
		// One descriptor per input line: "ID START END GEN" ("-" = empty).
		r = e.replica(t, td, MetaRangeID)
		u := &cairnpb.UpdateRanges{}
		td.ScanArgs(t, "table-id", &u.TableId)
		for _, line := range strings.Split(strings.TrimSpace(td.Input), "\n") {
			var id, gen uint64
			var start, end string
			if _, err := fmt.Sscanf(line, "%d %s %s %d", &id, &start, &end, &gen); err != nil {
				td.Fatalf(t, "bad descriptor line %q: %v", line, err)
			}
			d := &cairnpb.RangeDescriptor{Id: id, TableId: u.TableId, Replicas: []uint64{1}, Generation: gen}
			if start != "-" {
				d.Start = []byte(start)
			}
			if end != "-" {
				d.End = []byte(end)
			}
			u.Descs = append(u.Descs, d)
		}
		cmd.Op = &cairnpb.Command_UpdateRanges{UpdateRanges: u}
	case "empty":
		r = e.replica(t, td, 2)
		cmd = nil
	default:
		td.Fatalf(t, "unknown entry command %q", td.Cmd)
	}
	idx, ok := nextIndex[r.ID]
	if !ok {
		idx = r.state.AppliedIndex + 1
	}
	if td.HasArg("index") {
		td.ScanArgs(t, "index", &idx)
	}
	nextIndex[r.ID] = idx + 1
	en := entry{r: r, ent: raftpb.Entry{Type: raftpb.EntryNormal, Index: idx, Term: e.term}, name: td.Cmd}
	if cmd != nil {
		td.MaybeScanArgs(t, "ts", &cmd.Timestamp)
		if td.HasArg("ts-ms") {
			var ms uint64
			td.ScanArgs(t, "ts-ms", &ms)
			cmd.Timestamp = ms << 16
		}
		cmd.NodeId = 1
		td.MaybeScanArgs(t, "node", &cmd.NodeId)
		if td.HasArg("history-versions") {
			var n uint32
			td.ScanArgs(t, "history-versions", &n)
			cmd.HistoryVersions = &n
		}
		if td.HasArg("history-retention-ms") {
			var n uint64
			td.ScanArgs(t, "history-retention-ms", &n)
			cmd.HistoryRetentionMs = &n
		}
		cmd.ProposalId = e.nextProp
		e.nextProp++
		if cmd.NodeId == r.opts.NodeID {
			en.done = make(chan Result, 1)
			r.waiters[cmd.ProposalId] = &proposal{id: cmd.ProposalId, done: en.done}
		}
		data, err := proto.Marshal(cmd)
		if err != nil {
			t.Fatal(err)
		}
		en.ent.Data = data
	}
	return en
}

// apply applies entries (grouped per replica, in order) in one indexed
// batch, commits it and describes what happened. As the store would, it
// first makes new entries durable in the Raft log and marks them
// committed, so that a reopened replica's raft accepts the applied index;
// replays of applied indexes are already in the log.
func (e *applyEnv) apply(t testing.TB, ents []entry) string {
	rb := e.db.NewBatch()
	for _, en := range ents {
		last, _ := en.r.log.LastIndex()
		if en.ent.Index <= last {
			continue
		}
		if err := en.r.log.Append(rb, []raftpb.Entry{en.ent}); err != nil {
			t.Fatalf("log append: %v", err)
		}
		hs := en.r.log.HardState()
		hs.Term, hs.Commit = e.term, en.ent.Index
		if err := en.r.log.SetHardState(rb, hs); err != nil {
			t.Fatal(err)
		}
	}
	if err := rb.Commit(pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	rb.Close()

	b := e.db.NewIndexedBatch()
	var out Applied
	for i := 0; i < len(ents); {
		j := i
		var group []raftpb.Entry
		for ; j < len(ents) && ents[j].r == ents[i].r; j++ {
			group = append(group, ents[j].ent)
		}
		if err := ents[i].r.Apply(b, group, &out); err != nil {
			t.Fatalf("apply: %v", err)
		}
		i = j
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	b.Close()
	out.Fire()
	// After the commit, as the store does: reads wake, intents are looked for.
	for i, en := range ents {
		if i == 0 || ents[i-1].r != en.r {
			en.r.ReleaseReads()
		}
	}
	var sb strings.Builder
	for _, en := range ents {
		fmt.Fprintf(&sb, "index %d: ", en.ent.Index)
		if en.done == nil {
			sb.WriteString("(no local waiter)\n")
			continue
		}
		select {
		case res := <-en.done:
			sb.WriteString(describeResult(res))
		default:
			// Not applied (already applied index): drop the waiter.
			var pid uint64
			for id, p := range en.r.waiters {
				if p.done == en.done {
					pid = id
				}
			}
			delete(en.r.waiters, pid)
			sb.WriteString("not applied")
		}
		sb.WriteString("\n")
	}
	for _, ef := range out.Effects {
		switch {
		case ef.Create != nil && ef.Split:
			fmt.Fprintf(&sb, "effect: create by split %s\n", describeDesc(ef.Create))
		case ef.Create != nil:
			fmt.Fprintf(&sb, "effect: create %s\n", describeDesc(ef.Create))
		case ef.Destroy != nil:
			fmt.Fprintf(&sb, "effect: destroy %s\n", describeDesc(ef.Destroy))
		case ef.Merged != nil:
			fmt.Fprintf(&sb, "effect: merged %s\n", describeDesc(ef.Merged))
		}
	}
	fmt.Fprintf(&sb, "max-version: %d\n", out.MaxVersion)
	return sb.String()
}

func parseBatch(t testing.TB, td *datadriven.TestData) *cairnpb.BatchRequest {
	req := &cairnpb.BatchRequest{}
	for _, line := range strings.Split(strings.TrimSpace(td.Input), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			td.Fatalf(t, "bad batch line %q", line)
		}
		var cond *cairnpb.Condition
		rest := f[2:]
		if f[0] == "put" {
			if len(f) < 3 {
				td.Fatalf(t, "bad batch line %q", line)
			}
			rest = f[3:]
		}
		for _, a := range rest {
			switch {
			case a == "if-absent":
				cond = &cairnpb.Condition{Absent: true}
			case strings.HasPrefix(a, "if-version="):
				var v uint64
				if _, err := fmt.Sscanf(a, "if-version=%d", &v); err != nil {
					td.Fatalf(t, "bad %q", a)
				}
				cond = &cairnpb.Condition{Version: v}
			default:
				td.Fatalf(t, "bad batch argument %q", a)
			}
		}
		switch f[0] {
		case "put":
			req.Ops = append(req.Ops, &cairnpb.BatchOp{Op: &cairnpb.BatchOp_Put{Put: &cairnpb.PutRequest{Key: []byte(f[1]), Value: []byte(f[2]), Condition: cond}}})
		case "del":
			req.Ops = append(req.Ops, &cairnpb.BatchOp{Op: &cairnpb.BatchOp_Delete{Delete: &cairnpb.DeleteRequest{Key: []byte(f[1]), Condition: cond}}})
		default:
			td.Fatalf(t, "bad batch op %q", f[0])
		}
	}
	return req
}

func describeResult(res Result) string {
	if res.Err != nil {
		return fmt.Sprintf("error %s: %v", kv.Code(res.Err), res.Err)
	}
	if res.Batch != nil {
		var parts []string
		for _, b := range res.Batch {
			parts = append(parts, fmt.Sprintf("(version=%d found=%t)", b.Version, b.Found))
		}
		return "ok batch " + strings.Join(parts, " ")
	}
	if res.Split != nil {
		return fmt.Sprintf("ok split left=%s right=%s", describeDesc(res.Split.Left), describeDesc(res.Split.Right))
	}
	if res.RangeID != 0 {
		return fmt.Sprintf("ok range-id=%d", res.RangeID)
	}
	if res.State != nil {
		return fmt.Sprintf("ok frozen max-version=%d bytes=%d", res.State.MaxVersion, res.State.ApproxBytes)
	}
	if res.Desc != nil {
		return "ok " + describeDesc(res.Desc)
	}
	s := fmt.Sprintf("ok version=%d", res.Version)
	if res.Table != nil {
		s += " table=" + describeTable(res.Table)
	}
	return s
}

func describeTable(t *cairnpb.Table) string {
	var rs []string
	for _, d := range t.Ranges {
		rs = append(rs, describeDesc(d))
	}
	var settings string
	if t.Learners != 0 {
		settings += fmt.Sprintf(" learners=%d", t.Learners)
	}
	if t.Consistency != "" {
		settings += " consistency=" + t.Consistency
	}
	if t.MaxBytes != 0 || t.MaxWritesPerSec != 0 {
		settings += fmt.Sprintf(" quota=%d/%d", t.MaxBytes, t.MaxWritesPerSec)
	}
	return fmt.Sprintf("%s(id=%d replicas=%d%s ranges=[%s])", t.Name, t.Id, t.Replicas, settings, strings.Join(rs, ", "))
}

func describeDesc(d *cairnpb.RangeDescriptor) string {
	s := fmt.Sprintf("r%d/t%d", d.Id, d.TableId)
	if len(d.Start) > 0 || len(d.End) > 0 {
		s += fmt.Sprintf("[%q, %q)", d.Start, d.End)
	}
	if d.Generation > 0 {
		s += fmt.Sprintf(" gen=%d", d.Generation)
	}
	return s + fmt.Sprintf(" voters=%v", d.Replicas)
}

func describeState(db *pebble.DB, id keys.RangeID) string {
	st, err := LoadState(db, id)
	if err != nil {
		return fmt.Sprintf("range %d: %v\n", id, err)
	}
	var cs raftpb.ConfState
	_ = cs.Unmarshal(st.ConfState)
	s := fmt.Sprintf("range %d: %s applied=%d/%d max-version=%d conf-voters=%v",
		id, describeDesc(st.Desc), st.AppliedIndex, st.AppliedTerm, st.MaxVersion, cs.Voters)
	if st.ApproxBytes > 0 {
		s += fmt.Sprintf(" bytes=%d", st.ApproxBytes)
	}
	if st.Frozen != nil {
		s += fmt.Sprintf(" frozen-for=r%d@gen%d", st.Frozen.LeftId, st.Frozen.LeftGeneration)
	}
	return s + "\n"
}

func TestApply(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		e := newApplyEnv(t)
		datadriven.RunTest(t, path, func(t *testing.T, td *datadriven.TestData) string {
			return e.handle(t, td)
		})
	})
}

// handle runs one directive:
//
//	put key=K value=V [ts=N|ts-ms=N] [if-version=N] [if-absent] [ttl-ms=N] [keep-ttl] [table-id=N] [range=N] [index=N] [node=N]
//	expire [ts-ms=N]                 an Expire command; input lines
//	                                 "KEY VERSION EXPIRE-AT-MS"
//	scan-expiry [table=N]            the table's expiry index: "EXPIRE-AT KEY"
//	del key=K [if-version=N] [if-absent] [table-id=N] [range=N] [index=N]
//	create-table name=T [ts=N] [hash-ranges=N] [learners=N]
//	                                 (on the meta range)
//	update-table name=T [consistency=L] [replicas=N] [learners=N]
//	             [max-bytes=N] [max-writes=N]
//	drop-table name=T                (on the meta range)
//	empty [range=N] [index=N]        a new leader's empty entry
//	    each applies one entry at the replica's next index (or index=N)
//	    in its own batch and prints the local result, effects and the
//	    batch's max version.
//	batch                            one Apply batch; one entry directive
//	                                 per input line
//	get key=K [table=N]              the stored version and value
//	scan [table=N]                   all stored keys of a table
//	state [range=N]                  the persisted applied state
//	init-range id=N table=N [start=K] [end=K]
//	                                 write and open an extra range
//	open-range id=N                  open a replica (e.g. one create-table made)
//	reopen                           close Pebble, reopen it and all replicas
//	split key=K new=ID gen=G [range=R]  a Split entry (default range 2)
//	freeze left=L lgen=G gen=G [range=R]  a MergeFreeze entry (default range 3)
//	unfreeze left=L lgen=G [range=R]      a MergeUnfreeze entry
//	merge-abort lgen=G right-start=K [left=L] [range=N]  a MergeAbort entry (default 2)
//	merge right=R gen=G [range=L]    a Merge entry carrying R's stored state
//	contains key=K [range=R]         whether the replica serves the key now
//	subsumed range=R by=L            replica.Subsumed of the stored states
//	alloc-range-id                   an AllocRangeID entry on the meta range
//	update-ranges table-id=T         an UpdateRanges entry; input lines
//	                                 "ID START END GEN" ("-": empty)
//	multi [ts=N]                     one atomic BatchRequest entry; input
//	                                 lines "put K V [if-absent|if-version=N]"
//	                                 and "del K [if-version=N]"
func (e *applyEnv) handle(t *testing.T, td *datadriven.TestData) string {
	switch td.Cmd {
	case "put", "del", "multi", "expire", "create-table", "update-table", "drop-table", "empty", "split", "alloc-range-id", "update-ranges",
		"freeze", "unfreeze", "merge-abort", "merge":
		return e.apply(t, []entry{e.parseEntry(t, td, map[keys.RangeID]uint64{})})
	case "batch":
		next := map[keys.RangeID]uint64{}
		var ents []entry
		for _, line := range strings.Split(strings.TrimSpace(td.Input), "\n") {
			cmd, args, err := datadriven.ParseLine(line)
			if err != nil {
				td.Fatalf(t, "%v", err)
			}
			sub := &datadriven.TestData{Pos: td.Pos, Cmd: cmd, CmdArgs: args}
			ents = append(ents, e.parseEntry(t, sub, next))
		}
		return e.apply(t, ents)
	case "get":
		var key string
		table := uint64(1)
		td.ScanArgs(t, "key", &key)
		td.MaybeScanArgs(t, "table", &table)
		raw, closer, err := e.db.Get(keys.DataKey(keys.TableID(table), []byte(key)))
		if errors.Is(err, pebble.ErrNotFound) {
			return fmt.Sprintf("%s: not found\n", key)
		}
		if err != nil {
			td.Fatalf(t, "%v", err)
		}
		defer closer.Close()
		v, exp, val, err := storage.DecodeValueTTL(raw)
		if err != nil {
			td.Fatalf(t, "%v", err)
		}
		if exp != 0 {
			return fmt.Sprintf("%s: version=%d value=%s expire-at=%d\n", key, v, val, exp)
		}
		return fmt.Sprintf("%s: version=%d value=%s\n", key, v, val)
	case "scan-expiry":
		table := uint64(1)
		td.MaybeScanArgs(t, "table", &table)
		start, end := keys.ExpirySpan(keys.TableID(table), -1)
		it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: start, UpperBound: end})
		if err != nil {
			td.Fatalf(t, "%v", err)
		}
		defer it.Close()
		var sb strings.Builder
		for ok := it.First(); ok; ok = it.Next() {
			_, exp, uk, err := keys.DecodeExpiryKey(it.Key())
			if err != nil {
				td.Fatalf(t, "%v", err)
			}
			fmt.Fprintf(&sb, "%d %s\n", exp, uk)
		}
		if sb.Len() == 0 {
			return "(empty)\n"
		}
		return sb.String()
	case "scan":
		table := uint64(1)
		td.MaybeScanArgs(t, "table", &table)
		start, end := keys.DataSpan(keys.TableID(table), nil, nil)
		it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: start, UpperBound: end})
		if err != nil {
			td.Fatalf(t, "%v", err)
		}
		defer it.Close()
		var sb strings.Builder
		for ok := it.First(); ok; ok = it.Next() {
			_, uk, err := keys.DecodeDataKey(it.Key())
			if err != nil {
				td.Fatalf(t, "%v", err)
			}
			v, val, err := storage.DecodeValue(it.Value())
			if err != nil {
				td.Fatalf(t, "%v", err)
			}
			if table == uint64(keys.MetaTableID) {
				fmt.Fprintf(&sb, "%q: version=%d (%d bytes)\n", uk, v, len(val))
			} else {
				fmt.Fprintf(&sb, "%s: version=%d value=%s\n", uk, v, val)
			}
		}
		if sb.Len() == 0 {
			return "(empty)\n"
		}
		return sb.String()
	case "state":
		if td.HasArg("range") {
			var id uint64
			td.ScanArgs(t, "range", &id)
			return describeState(e.db, keys.RangeID(id))
		}
		var ids []keys.RangeID
		for id := range e.replicas {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		var sb strings.Builder
		for _, id := range ids {
			sb.WriteString(describeState(e.db, id))
		}
		return sb.String()
	case "init-range":
		var id, table uint64
		var start, end string
		td.ScanArgs(t, "id", &id)
		td.ScanArgs(t, "table", &table)
		td.MaybeScanArgs(t, "start", &start)
		td.MaybeScanArgs(t, "end", &end)
		desc := &cairnpb.RangeDescriptor{Id: id, TableId: table, Replicas: []uint64{1}}
		if start != "" {
			desc.Start = []byte(start)
		}
		if end != "" {
			desc.End = []byte(end)
		}
		b := e.db.NewBatch()
		if err := WriteInitial(b, desc); err != nil {
			td.Fatalf(t, "%v", err)
		}
		if err := b.Commit(pebble.NoSync); err != nil {
			td.Fatalf(t, "%v", err)
		}
		b.Close()
		e.openReplica(keys.RangeID(id))
		return describeState(e.db, keys.RangeID(id))
	case "contains":
		var key string
		td.ScanArgs(t, "key", &key)
		r := e.replica(t, td, 2)
		return fmt.Sprintf("range %d contains %q: %t\n", r.ID, key, r.Contains([]byte(key)))
	case "subsumed":
		var id, by uint64
		td.ScanArgs(t, "range", &id)
		td.ScanArgs(t, "by", &by)
		st, err := LoadState(e.db, keys.RangeID(id))
		if err != nil {
			td.Fatalf(t, "%v", err)
		}
		bst, err := LoadState(e.db, keys.RangeID(by))
		if err != nil {
			td.Fatalf(t, "%v", err)
		}
		return fmt.Sprintf("range %d subsumed by range %d: %t\n", id, by, Subsumed(st, bst.Desc))
	case "open-range":
		var id uint64
		td.ScanArgs(t, "id", &id)
		r := e.openReplica(keys.RangeID(id))
		_, _, applied := r.Status()
		return fmt.Sprintf("opened range %d: applied=%d\n", id, applied)
	case "reopen":
		e.reopen()
		var sb strings.Builder
		ids := slices.Sorted(func(yield func(keys.RangeID) bool) {
			for id := range e.replicas {
				if !yield(id) {
					return
				}
			}
		})
		for _, id := range ids {
			_, _, applied := e.replicas[id].Status()
			fmt.Fprintf(&sb, "range %d: applied=%d\n", id, applied)
		}
		return sb.String()
	}
	td.Fatalf(t, "unknown command %q", td.Cmd)
	return ""
}
