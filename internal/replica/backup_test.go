// Goal: check the two backup commands of the state machine. Fence: after
// it applies at T, every later write gets a version above T even when
// its proposer's clock is behind; it never lowers max_version; it is
// refused (range key mismatch) when the range no longer holds the whole
// span, so a backup never trusts a fence of a range that split. Restore:
// keys get exactly their backed-up versions and expiry (the expiry index
// too), max_version rises above them so later writes sort after,
// re-applying is harmless, expired keys are skipped, and a key outside
// the range refuses the whole command.
// Method: drive Replica.Apply by hand (applyOne) on a one-node Pebble, as
// the other apply tests do, and read Pebble directly.
package replica

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/kv"
)

func fence(at uint64, start, end string) *cairnpb.Command {
	f := &cairnpb.Fence{AtVersion: at}
	if start != "" {
		f.Start = []byte(start)
	}
	if end != "" {
		f.End = []byte(end)
	}
	return &cairnpb.Command{Op: &cairnpb.Command_Fence{Fence: f}}
}

func putCmd(k, v string) *cairnpb.Command {
	return &cairnpb.Command{Op: &cairnpb.Command_Put{Put: &cairnpb.PutRequest{Table: "default", Key: []byte(k), Value: []byte(v)}}}
}

func splitCmd(r *Replica, at string, newID uint64) *cairnpb.Command {
	return &cairnpb.Command{Op: &cairnpb.Command_Split{Split: &cairnpb.Split{SplitKey: []byte(at), NewRangeId: newID,
		ExpectedGeneration: r.Desc().Generation}}}
}

func TestFence(t *testing.T) {
	e := newApplyEnv(t)
	r := e.replicas[2]
	const T = 500 << 16

	if res := e.applyOne(t, r, 100, putCmd("a", "1")); res.Err != nil || res.Version != 100<<16 {
		t.Fatalf("put before the fence: %+v", res)
	}
	if res := e.applyOne(t, r, 120, fence(T, "", "")); res.Err != nil || res.Version != T {
		t.Fatalf("fence: %+v, want max version %d", res, T)
	}
	// A proposer whose clock is behind T still writes above T.
	res := e.applyOne(t, r, 200, putCmd("b", "2"))
	if res.Err != nil || res.Version != T+1 {
		t.Fatalf("put after the fence: version %d err %v, want %d", res.Version, res.Err, T+1)
	}
	// An older fence does not lower max_version.
	if res := e.applyOne(t, r, 130, fence(300<<16, "", "")); res.Err != nil || res.Version != T+1 {
		t.Fatalf("older fence: %+v, want max version %d", res, T+1)
	}
	if res := e.applyOne(t, r, 130, fence(0, "", "")); !errors.Is(res.Err, kv.ErrInvalidArgument) {
		t.Fatalf("fence at 0: %v, want invalid argument", res.Err)
	}
	other := fence(T, "", "")
	other.TableId = 99
	if res := e.applyOne(t, r, 130, other); !errors.Is(res.Err, kv.ErrRangeKeyMismatch) {
		t.Fatalf("fence of another table: %v, want range key mismatch", res.Err)
	}

	// After a split at "m" the range holds [, m): fences of spans
	// reaching past m are refused; spans inside it are fenced.
	if res := e.applyOne(t, r, 210, splitCmd(r, "m", 3)); res.Err != nil {
		t.Fatalf("split: %v", res.Err)
	}
	for _, c := range []struct {
		start, end string
		ok         bool
	}{{"", "", false}, {"a", "z", false}, {"m", "", false}, {"", "m", true}, {"c", "d", true}, {"c", "m", true}} {
		res := e.applyOne(t, r, 220, fence(900<<16, c.start, c.end))
		if c.ok != (res.Err == nil) || (!c.ok && !errors.Is(res.Err, kv.ErrRangeKeyMismatch)) {
			t.Fatalf("fence [%q, %q) after split: %v, want ok=%v", c.start, c.end, res.Err, c.ok)
		}
	}
	if r.state.MaxVersion != 900<<16 {
		t.Fatalf("max version %d, want %d", r.state.MaxVersion, uint64(900<<16))
	}
	// max_version is persisted with the applied state.
	e.reopen()
	if st, err := LoadState(e.db, 2); err != nil || st.MaxVersion != 900<<16 {
		t.Fatalf("after reopen: %v %v", st, err)
	}
}

func restoreCmd(ks ...*cairnpb.RestoredKey) *cairnpb.Command {
	return &cairnpb.Command{Op: &cairnpb.Command_Restore{Restore: &cairnpb.Restore{Keys: ks}}}
}

func TestRestore(t *testing.T) {
	e := newApplyEnv(t)
	r := e.replicas[2]
	const far = int64(1) << 50 // unix ms far in the future
	ks := []*cairnpb.RestoredKey{
		{Key: []byte("a"), Value: []byte("va"), Version: 7000 << 16},
		{Key: []byte("b"), Value: []byte("vb"), Version: 6000 << 16, ExpireAtMs: far},
		{Key: []byte("c"), Value: []byte("vc"), Version: 5000 << 16, ExpireAtMs: 50}, // expired at log time 100 ms
	}
	res := e.applyOne(t, r, 100, restoreCmd(ks...))
	if res.Err != nil || res.Version != 2 {
		t.Fatalf("restore: %+v, want 2 keys written", res)
	}
	for _, k := range ks[:2] {
		v, ver, ok := readValue(t, e.db, string(k.Key))
		if !ok || v != string(k.Value) || ver != k.Version {
			t.Fatalf("key %s: %q@%d %v, want %q@%d", k.Key, v, ver, ok, k.Value, k.Version)
		}
	}
	if _, _, ok := readValue(t, e.db, "c"); ok {
		t.Fatal("expired key c was restored")
	}
	if _, closer, err := e.db.Get(keys.ExpiryKey(1, far, []byte("b"))); err != nil {
		t.Fatalf("expiry index entry of b: %v", err)
	} else {
		closer.Close()
	}
	// History starts at the restored version.
	if h := dumpHistory(t, e.db, 1); !strings.Contains(h, fmt.Sprintf(`a@%d put prev=0 "va"`, uint64(7000<<16))) {
		t.Fatalf("history:\n%s", h)
	}
	// max_version covers every restored version, expired ones too: a
	// write whose proposer's clock is far behind sorts after them.
	if res := e.applyOne(t, r, 200, putCmd("a", "new")); res.Err != nil || res.Version != 7000<<16+1 {
		t.Fatalf("put after restore: %+v, want version %d", res, 7000<<16+1)
	}
	// Re-applying (a retried proposal) leaves newer and equal versions.
	if res := e.applyOne(t, r, 210, restoreCmd(ks...)); res.Err != nil || res.Version != 0 {
		t.Fatalf("restore again: %+v, want 0 keys written", res)
	}
	if v, _, _ := readValue(t, e.db, "a"); v != "new" {
		t.Fatalf("a = %q after re-applied restore, want the newer write", v)
	}
	// All or nothing: a key outside the range refuses the command.
	if res := e.applyOne(t, r, 220, splitCmd(r, "m", 3)); res.Err != nil {
		t.Fatal(res.Err)
	}
	res = e.applyOne(t, r, 230, restoreCmd(&cairnpb.RestoredKey{Key: []byte("d"), Value: []byte("x"), Version: 1},
		&cairnpb.RestoredKey{Key: []byte("x"), Value: []byte("x"), Version: 1}))
	if !errors.Is(res.Err, kv.ErrRangeKeyMismatch) {
		t.Fatalf("restore across the split: %v, want range key mismatch", res.Err)
	}
	if _, _, ok := readValue(t, e.db, "d"); ok {
		t.Fatal("a refused restore wrote key d")
	}
	if res := e.applyOne(t, r, 240, restoreCmd(&cairnpb.RestoredKey{Key: []byte("d"), Value: []byte("x")})); !errors.Is(res.Err, kv.ErrInvalidArgument) {
		t.Fatalf("restore at version 0: %v", res.Err)
	}
}

// TestTxnCommitVersion: a committed transaction's writes all get its
// commit version (the largest its prewrites reserved, possibly on another
// range), deletes included, so a backup's point in time holds all of a
// transaction's writes or none; the record keeps the commit version for
// whoever resolves the intents later.
func TestTxnCommitVersion(t *testing.T) {
	e := newApplyEnv(t)
	r := e.replicas[2]
	if res := e.applyOne(t, r, 100, putCmd("b", "old")); res.Err != nil {
		t.Fatal(res.Err)
	}
	m := txnMeta(1, "a", 1<<40)
	del := &cairnpb.TxnOp{Kind: cairnpb.TxnOp_DELETE, Key: []byte("b")}
	res := e.applyOne(t, r, 200, prewrite(m, true, tput("a", "1"), del))
	if res.Err != nil || res.Txn.GetConflict() != nil {
		t.Fatalf("prewrite: %+v", res)
	}
	// Both intents reserved a version; the larger is reported.
	if got := res.Txn.MaxReserved; got != 200<<16+1 {
		t.Fatalf("max reserved %d, want %d", got, uint64(200<<16+1))
	}
	const commitV = 900 << 16 // reserved on another range of the transaction
	end := txnEnd(m, cairnpb.TxnStatus_COMMITTED, false)
	end.GetTxnEnd().CommitVersion = commitV
	if res := e.applyOne(t, r, 210, end); res.Txn.GetStatus() != cairnpb.TxnStatus_COMMITTED || res.Txn.GetCommitVersion() != commitV {
		t.Fatalf("commit: %+v", res.Txn)
	}
	// A later TxnEnd (a push by a reader) learns the commit version.
	if res := e.applyOne(t, r, 220, txnEnd(m, cairnpb.TxnStatus_ABORTED, true)); res.Txn.GetCommitVersion() != commitV {
		t.Fatalf("push after commit: %+v", res.Txn)
	}
	rs := resolve(m, true, "a", "b")
	rs.GetTxnResolve().CommitVersion = commitV
	if res := e.applyOne(t, r, 230, rs); res.Err != nil || res.Version != 2 {
		t.Fatalf("resolve: %+v", res)
	}
	if v, ver, ok := readValue(t, e.db, "a"); !ok || v != "1" || ver != commitV {
		t.Fatalf("a = %q@%d %v, want \"1\"@%d", v, ver, ok, uint64(commitV))
	}
	if _, _, ok := readValue(t, e.db, "b"); ok {
		t.Fatal("b not deleted")
	}
	h := dumpHistory(t, e.db, 1)
	for _, want := range []string{fmt.Sprintf(`a@%d put`, uint64(commitV)), fmt.Sprintf(`b@%d delete`, uint64(commitV))} {
		if !strings.Contains(h, want) {
			t.Fatalf("history lacks %q:\n%s", want, h)
		}
	}
	// Later writes sort after the commit version.
	if res := e.applyOne(t, r, 240, putCmd("c", "x")); res.Version != commitV+1 {
		t.Fatalf("put after commit: version %d, want %d", res.Version, uint64(commitV+1))
	}
}
