// Goal: check the transaction commands of the state machine on real Pebble:
// prewrite locks keys with intents and creates the record, conflicts with
// another transaction's intent change nothing, plain writes are refused on
// locked keys, conditions (version, absent, value) are checked, the record
// moves PENDING -> COMMITTED | ABORTED only once (a push aborts only after
// the expiry by log time, an absent record becomes an ABORTED tombstone
// that a late prewrite cannot pass), resolve turns intents into values at
// the reserved version or drops them, the one-phase path writes at once,
// and intents and records travel in snapshots.
// Method: commands applied through Replica.Apply on the applyEnv (no Raft),
// results read from the waiters; state read back from Pebble.
package replica

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/kv"
	"github.com/cairn-db/cairn/internal/storage"
)

// applyOne applies cmd to r at the next index with timestamp ms<<16.
func (e *applyEnv) applyOne(t *testing.T, r *Replica, ms uint64, cmd *cairnpb.Command) Result {
	t.Helper()
	return e.applyMany(t, r, ms, cmd)[0]
}

// applyMany applies cmds to r at the next indexes, in one apply batch,
// with timestamp ms<<16, and returns their results.
func (e *applyEnv) applyMany(t *testing.T, r *Replica, ms uint64, cmds ...*cairnpb.Command) []Result {
	t.Helper()
	var ents []entry
	var dones []chan Result
	for i, cmd := range cmds {
		cmd.NodeId, cmd.ProposalId, cmd.Timestamp = 1, e.nextProp, ms<<16
		if cmd.TableId == 0 {
			cmd.TableId = r.Desc().TableId
		}
		e.nextProp++
		done := make(chan Result, 1)
		r.waiters[cmd.ProposalId] = &proposal{id: cmd.ProposalId, done: done}
		data, err := proto.Marshal(cmd)
		if err != nil {
			t.Fatal(err)
		}
		index := r.state.AppliedIndex + 1 + uint64(i)
		ents = append(ents, entry{r: r, ent: raftpb.Entry{Type: raftpb.EntryNormal, Index: index, Term: e.term, Data: data}}) // apply must not consume the result
		dones = append(dones, done)
	}
	e.apply(t, ents)
	results := make([]Result, len(dones))
	for i, done := range dones {
		select {
		case results[i] = <-done:
		default:
			t.Fatalf("command %d not applied", i)
		}
	}
	return results
}

func txnMeta(id byte, primary string, expireMs int64) *cairnpb.TxnMeta {
	return &cairnpb.TxnMeta{Id: bytes.Repeat([]byte{id}, keys.TxnIDLen), PrimaryTable: "default", PrimaryTableId: 1, PrimaryKey: []byte(primary), ExpireAtMs: expireMs}
}

func prewrite(m *cairnpb.TxnMeta, record bool, ops ...*cairnpb.TxnOp) *cairnpb.Command {
	return &cairnpb.Command{Op: &cairnpb.Command_TxnPrewrite{TxnPrewrite: &cairnpb.TxnPrewrite{Table: "default", Meta: m, Ops: ops, CreateRecord: record}}}
}

func tput(k, v string) *cairnpb.TxnOp {
	return &cairnpb.TxnOp{Kind: cairnpb.TxnOp_PUT, Key: []byte(k), Value: []byte(v)}
}

func txnEnd(m *cairnpb.TxnMeta, s cairnpb.TxnStatus, push bool) *cairnpb.Command {
	return &cairnpb.Command{Op: &cairnpb.Command_TxnEnd{TxnEnd: &cairnpb.TxnEnd{Meta: m, Status: s, Push: push}}}
}

func resolve(m *cairnpb.TxnMeta, commit bool, ks ...string) *cairnpb.Command {
	var bk [][]byte
	for _, k := range ks {
		bk = append(bk, []byte(k))
	}
	return &cairnpb.Command{Op: &cairnpb.Command_TxnResolve{TxnResolve: &cairnpb.TxnResolve{Table: "default", TxnId: m.Id, Keys: bk, Commit: commit}}}
}

func readValue(t *testing.T, db *pebble.DB, key string) (string, uint64, bool) {
	t.Helper()
	v, closer, err := db.Get(keys.DataKey(1, []byte(key)))
	if errors.Is(err, pebble.ErrNotFound) {
		return "", 0, false
	}
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	ver, _, val, err := storage.DecodeValueTTL(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(val), ver, true
}

func TestTxnPrewriteCommitResolve(t *testing.T) {
	e := newApplyEnv(t)
	r := e.replicas[2]
	if res := e.applyOne(t, r, 1000, &cairnpb.Command{Op: &cairnpb.Command_Put{Put: &cairnpb.PutRequest{Key: []byte("a"), Value: []byte("old")}}}); res.Err != nil {
		t.Fatal(res.Err)
	}
	_, oldVersion, _ := readValue(t, e.db, "a")

	m := txnMeta(1, "a", 5000)
	res := e.applyOne(t, r, 1001, prewrite(m, true, tput("a", "new"),
		&cairnpb.TxnOp{Kind: cairnpb.TxnOp_READ, Key: []byte("r")},
		&cairnpb.TxnOp{Kind: cairnpb.TxnOp_DELETE, Key: []byte("d")}))
	if res.Err != nil || res.Txn == nil || res.Txn.Conflict != nil {
		t.Fatalf("prewrite: %+v", res)
	}
	reserved := res.Txn.Results[0].Version
	if reserved <= oldVersion {
		t.Fatalf("reserved version %d not above %d", reserved, oldVersion)
	}
	// Not visible before commit; the key is locked.
	if v, _, _ := readValue(t, e.db, "a"); v != "old" {
		t.Fatalf("uncommitted value visible: %q", v)
	}
	if res := e.applyOne(t, r, 1002, &cairnpb.Command{Op: &cairnpb.Command_Put{Put: &cairnpb.PutRequest{Key: []byte("a"), Value: []byte("plain")}}}); !errors.Is(res.Err, kv.ErrTxnConflict) {
		t.Fatalf("plain put on a locked key: %v", res.Err)
	}
	if res := e.applyOne(t, r, 1002, &cairnpb.Command{Op: &cairnpb.Command_Delete{Delete: &cairnpb.DeleteRequest{Key: []byte("r")}}}); !errors.Is(res.Err, kv.ErrTxnConflict) {
		t.Fatalf("plain delete on a read-locked key: %v", res.Err)
	}
	// Another transaction conflicts and changes nothing.
	m2 := txnMeta(2, "z", 5000)
	res = e.applyOne(t, r, 1003, prewrite(m2, true, tput("z", "1"), tput("a", "other")))
	if res.Txn == nil || res.Txn.Conflict == nil || !bytes.Equal(res.Txn.Conflict.Meta.Id, m.Id) || string(res.Txn.ConflictKey) != "a" {
		t.Fatalf("conflict not reported: %+v", res)
	}
	if in, _ := ReadIntent(e.db, 1, []byte("z")); in != nil {
		t.Fatal("conflicting prewrite left an intent")
	}
	// A replay of the same prewrite is answered from the intents.
	res = e.applyOne(t, r, 1004, prewrite(m, true, tput("a", "new"), &cairnpb.TxnOp{Kind: cairnpb.TxnOp_READ, Key: []byte("r")}, &cairnpb.TxnOp{Kind: cairnpb.TxnOp_DELETE, Key: []byte("d")}))
	if res.Err != nil || res.Txn.Results[0].Version != reserved {
		t.Fatalf("replay: %+v", res)
	}
	// A push before the expiry leaves it PENDING; commit wins; a later
	// abort or push cannot change it.
	if res := e.applyOne(t, r, 1005, txnEnd(m, cairnpb.TxnStatus_ABORTED, true)); res.Txn.Status != cairnpb.TxnStatus_PENDING {
		t.Fatalf("early push: %v", res.Txn.Status)
	}
	if res := e.applyOne(t, r, 1006, txnEnd(m, cairnpb.TxnStatus_COMMITTED, false)); res.Txn.Status != cairnpb.TxnStatus_COMMITTED {
		t.Fatalf("commit: %v", res.Txn.Status)
	}
	if res := e.applyOne(t, r, 9000, txnEnd(m, cairnpb.TxnStatus_ABORTED, true)); res.Txn.Status != cairnpb.TxnStatus_COMMITTED {
		t.Fatalf("push after commit: %v", res.Txn.Status)
	}
	if res := e.applyOne(t, r, 9001, txnEnd(m, cairnpb.TxnStatus_ABORTED, false)); res.Txn.Status != cairnpb.TxnStatus_COMMITTED {
		t.Fatalf("abort after commit: %v", res.Txn.Status)
	}
	if res := e.applyOne(t, r, 9002, resolve(m, true, "a", "r", "d")); res.Err != nil || res.Version != 3 {
		t.Fatalf("resolve: %+v", res)
	}
	if v, ver, _ := readValue(t, e.db, "a"); v != "new" || ver != reserved {
		t.Fatalf("after resolve: %q@%d, want new@%d", v, ver, reserved)
	}
	for _, k := range []string{"a", "r", "d"} {
		if in, _ := ReadIntent(e.db, 1, []byte(k)); in != nil {
			t.Fatalf("intent on %q left", k)
		}
	}
	// Resolving again is a no-op; a later write gets a greater version.
	if res := e.applyOne(t, r, 9003, resolve(m, true, "a")); res.Version != 0 {
		t.Fatalf("second resolve resolved %d", res.Version)
	}
	res = e.applyOne(t, r, 10, &cairnpb.Command{Op: &cairnpb.Command_Put{Put: &cairnpb.PutRequest{Key: []byte("a"), Value: []byte("later")}}})
	if res.Err != nil || res.Version <= reserved {
		t.Fatalf("later put: %+v", res)
	}
}

func TestTxnAbortAndTombstone(t *testing.T) {
	e := newApplyEnv(t)
	r := e.replicas[2]
	m := txnMeta(3, "p", 2000)
	if res := e.applyOne(t, r, 1000, prewrite(m, true, tput("p", "1"))); res.Err != nil {
		t.Fatal(res.Err)
	}
	// Pushed after the expiry: aborted; a commit then fails to change it.
	if res := e.applyOne(t, r, 2000, txnEnd(m, cairnpb.TxnStatus_ABORTED, true)); res.Txn.Status != cairnpb.TxnStatus_ABORTED {
		t.Fatalf("push after expiry: %v", res.Txn.Status)
	}
	if res := e.applyOne(t, r, 2001, txnEnd(m, cairnpb.TxnStatus_COMMITTED, false)); res.Txn.Status != cairnpb.TxnStatus_ABORTED {
		t.Fatalf("commit after abort: %v", res.Txn.Status)
	}
	if res := e.applyOne(t, r, 2002, resolve(m, false, "p")); res.Version != 1 {
		t.Fatalf("abort resolve: %+v", res)
	}
	if _, _, found := readValue(t, e.db, "p"); found {
		t.Fatal("aborted write visible")
	}
	// An absent record pushed after its expiry becomes an ABORTED
	// tombstone; the late primary prewrite then fails.
	m4 := txnMeta(4, "q", 3000)
	if res := e.applyOne(t, r, 2500, txnEnd(m4, cairnpb.TxnStatus_ABORTED, true)); res.Txn.Status != cairnpb.TxnStatus_PENDING {
		t.Fatalf("push of an absent, unexpired record: %v", res.Txn.Status)
	}
	if res := e.applyOne(t, r, 3000, txnEnd(m4, cairnpb.TxnStatus_ABORTED, true)); res.Txn.Status != cairnpb.TxnStatus_ABORTED {
		t.Fatalf("push of an absent, expired record: %v", res.Txn.Status)
	}
	if res := e.applyOne(t, r, 3001, prewrite(m4, true, tput("q", "1"))); !errors.Is(res.Err, kv.ErrTxnAborted) {
		t.Fatalf("late prewrite: %+v", res)
	}
	if in, _ := ReadIntent(e.db, 1, []byte("q")); in != nil {
		t.Fatal("late prewrite left an intent")
	}
}

func TestTxnConditionsAndOnePhase(t *testing.T) {
	e := newApplyEnv(t)
	r := e.replicas[2]
	res := e.applyOne(t, r, 1000, &cairnpb.Command{Op: &cairnpb.Command_Put{Put: &cairnpb.PutRequest{Key: []byte("x"), Value: []byte("10")}}})
	xv := res.Version
	one := func(ms uint64, ops ...*cairnpb.TxnOp) Result {
		c := prewrite(txnMeta(5, "x", 9000), false, ops...)
		c.GetTxnPrewrite().OnePhase = true
		return e.applyOne(t, r, ms, c)
	}
	cond := func(c *cairnpb.Condition) *cairnpb.TxnOp {
		return &cairnpb.TxnOp{Kind: cairnpb.TxnOp_CHECK, Key: []byte("x"), Condition: c}
	}
	for _, c := range []*cairnpb.Condition{{Version: xv + 1}, {Absent: true}, {Value: []byte("11")}} {
		if res := one(1001, cond(c), tput("y", "1")); !errors.Is(res.Err, kv.ErrConditionFailed) {
			t.Fatalf("condition %v: %+v", c, res)
		}
	}
	if _, _, found := readValue(t, e.db, "y"); found {
		t.Fatal("failed transaction wrote")
	}
	res = one(1002, cond(&cairnpb.Condition{Version: xv}), cond(&cairnpb.Condition{Value: []byte("10")}), tput("z", "1"))
	if res.Err != nil || res.Txn.Results[0].Version != xv || !res.Txn.Results[1].Found {
		t.Fatalf("conditions that hold: %+v", res)
	}
	res = one(1003, &cairnpb.TxnOp{Kind: cairnpb.TxnOp_READ, Key: []byte("x")}, tput("y", "2"))
	if res.Err != nil || string(res.Txn.Results[0].Value) != "10" || res.Txn.Results[1].Version == 0 {
		t.Fatalf("one phase: %+v", res)
	}
	if v, _, _ := readValue(t, e.db, "y"); v != "2" {
		t.Fatalf("one-phase write: %q", v)
	}
	if in, _ := ReadIntent(e.db, 1, []byte("y")); in != nil {
		t.Fatal("one phase left an intent")
	}
}

func TestTxnSnapshotCarriesIntents(t *testing.T) {
	e := newApplyEnv(t)
	r := e.replicas[2]
	m := txnMeta(6, "k", 9000)
	if res := e.applyOne(t, r, 1000, prewrite(m, true, tput("k", "v"))); res.Err != nil {
		t.Fatal(res.Err)
	}
	kvs, err := txnSnapshotKVs(e.db, r.Desc())
	if err != nil {
		t.Fatal(err)
	}
	var intent, record bool
	for _, kv := range kvs {
		if _, _, err := keys.DecodeIntentKey(kv.Key); err == nil {
			intent = true
		}
		if _, _, pk, err := keys.DecodeTxnRecordKey(kv.Key); err == nil && string(pk) == "k" {
			record = true
		}
	}
	if !intent || !record || len(kvs) != 2 {
		t.Fatalf("snapshot txn kvs: %d (intent %v, record %v)", len(kvs), intent, record)
	}
	b := e.db.NewBatch()
	if err := clearTxnKeys(b, e.db, r.Desc()); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	if kvs, _ := txnSnapshotKVs(e.db, r.Desc()); len(kvs) != 0 {
		t.Fatalf("cleared, still %d", len(kvs))
	}
}

// TestIntentFree: a replica skips intent lookups only while its range
// holds no intent (intents.go): unknown at start, known free after a
// scan of the committed state, not free from the moment a prewrite is
// applied (a plain write of the key later in the same apply batch is
// still refused), free again once the intents are resolved and a scan
// finds none; a snapshot or a merge makes it unknown again.
func TestIntentFree(t *testing.T) {
	e := newApplyEnv(t)
	r := e.replicas[2]
	scan := func() {
		r.intentScanAt = 0 // due now
		r.ReleaseReads()
	}
	put := func(k, v string) *cairnpb.Command {
		return &cairnpb.Command{Op: &cairnpb.Command_Put{Put: &cairnpb.PutRequest{Key: []byte(k), Value: []byte(v)}}}
	}
	if r.IntentFree() {
		t.Fatal("a new replica claims to hold no intents before it looked")
	}
	if res := e.applyOne(t, r, 1000, put("a", "1")); res.Err != nil {
		t.Fatal(res.Err)
	}
	if !r.IntentFree() {
		t.Fatal("no intents in the range, but the replica does not know it after an apply")
	}

	m := txnMeta(7, "b", 9000)
	res := e.applyMany(t, r, 1001, prewrite(m, true, tput("b", "txn")), put("b", "plain"))
	if res[0].Err != nil {
		t.Fatalf("prewrite: %v", res[0].Err)
	}
	if !errors.Is(res[1].Err, kv.ErrTxnConflict) {
		t.Fatalf("a plain write of a key prewritten earlier in the same apply batch: %v, want a conflict", res[1].Err)
	}
	scan()
	if r.IntentFree() {
		t.Fatal("an intent is in the range, but the replica claims none")
	}
	if res := e.applyOne(t, r, 1002, put("b", "plain")); !errors.Is(res.Err, kv.ErrTxnConflict) {
		t.Fatalf("a plain write of a locked key: %v, want a conflict", res.Err)
	}

	if res := e.applyOne(t, r, 1003, txnEnd(m, cairnpb.TxnStatus_COMMITTED, false)); res.Err != nil {
		t.Fatal(res.Err)
	}
	if res := e.applyOne(t, r, 1004, resolve(m, true, "b")); res.Err != nil {
		t.Fatal(res.Err)
	}
	scan()
	if !r.IntentFree() {
		t.Fatal("every intent is resolved, but the replica does not know it")
	}
	if res := e.applyOne(t, r, 1005, put("b", "plain")); res.Err != nil {
		t.Fatalf("a plain write after the resolve: %v", res.Err)
	}

	snap, err := r.snapshot()
	if err != nil {
		t.Fatal(err)
	}
	b := e.db.NewBatch()
	defer b.Close()
	if err := r.applySnapshot(b, snap); err != nil {
		t.Fatal(err)
	}
	if r.IntentFree() {
		t.Fatal("a snapshot may bring intents, but the replica still claims none")
	}
}

// TestIntentFreeAfterMerge: a merge brings the right range's intents into
// the left range, which must not keep claiming it has none.
func TestIntentFreeAfterMerge(t *testing.T) {
	e := newApplyEnv(t)
	left := e.replicas[2]
	e.handle(t, mustTD(t, "split key=m new=3 gen=0"))
	e.handle(t, mustTD(t, "open-range id=3"))
	right := e.replicas[3]
	if res := e.applyOne(t, right, 1000, prewrite(txnMeta(8, "x", 9000), true, tput("x", "txn"))); res.Err != nil {
		t.Fatal(res.Err)
	}
	e.handle(t, mustTD(t, "freeze left=2 lgen=1 gen=1"))
	left.intentScanAt = 0
	left.ReleaseReads()
	if !left.IntentFree() {
		t.Fatal("the left range holds no intent before the merge, but does not know it")
	}
	if out := e.handle(t, mustTD(t, "merge right=3 gen=1")); !strings.Contains(out, "ok") {
		t.Fatalf("merge: %s", out)
	}
	left.intentScanAt = 0
	left.ReleaseReads()
	if left.IntentFree() {
		t.Fatal("the merged range holds the right range's intent, but claims none")
	}
}
