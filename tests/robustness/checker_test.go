package robustness

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// Synthetic histories prove that each checker can fail, and does not fail
// on what faults legitimately cause. Times are in milliseconds here.

const ms = int64(time.Millisecond)

func put(client int, key, value string, call, ret int64, outcome string, version uint64) *Op {
	return &Op{Client: client, Node: "n1", Kind: "put", Key: key, Value: value, Call: call * ms, Return: ret * ms, Outcome: outcome, Version: version}
}

func read(client int, key string, call, ret int64, value string, version uint64) *Op {
	o := &Op{Client: client, Node: "n1", Kind: "get", Key: key, Call: call * ms, Return: ret * ms, Outcome: outOK, Read: value, Version: version}
	if value == "" {
		o.Outcome, o.Version = outNotFound, 0
	}
	return o
}

func final(node, key string, at int64, value string, version uint64) *Op {
	o := read(finalClientBase+int(node[1]-'1'), key, at, at+1, value, version)
	o.Node, o.Final = node, true
	return o
}

func seq(ops ...*Op) []*Op {
	for i, o := range ops {
		o.Seq = i + 1
	}
	return ops
}

func expectViolation(t *testing.T, rep *Report, want string) {
	t.Helper()
	if rep.OK() {
		t.Fatalf("checker accepted a bad history: %s", rep.Summary())
	}
	for _, v := range rep.Violations {
		if strings.Contains(v, want) {
			t.Logf("flagged as expected: %s", v)
			return
		}
	}
	t.Fatalf("no violation mentions %q; got:\n%s", want, strings.Join(rep.Violations, "\n"))
}

func expectOK(t *testing.T, rep *Report) {
	t.Helper()
	if !rep.OK() {
		t.Fatalf("checker rejected a valid history:\n%s", strings.Join(rep.Violations, "\n"))
	}
}

// A stale follower serves a read: after b (v20) was acknowledged, a read
// returns a (v10).
func TestCheckerFlagsStaleRead(t *testing.T) {
	keys := []string{"k"}
	h := seq(
		put(0, "k", "a", 0, 10, outOK, 10),
		put(0, "k", "b", 20, 30, outOK, 20),
		read(1, "k", 40, 50, "a", 10),
		final("n1", "k", 100, "b", 20),
	)
	rep := Check(h, keys)
	expectViolation(t, rep, "not linearizable")
	expectViolation(t, rep, "went backwards")
	if rep.Results["k"] != porcupine.Illegal {
		t.Fatalf("porcupine: %s, want Illegal", rep.Results["k"])
	}
	// The artifacts of a failing run include the porcupine page.
	dir := t.TempDir()
	writeVisualizations(t, dir, rep, []event{{Start: 15 * ms, End: 35 * ms, Who: "net", What: "isolate leader"}})
	if _, err := os.Stat(filepath.Join(dir, "key-k-illegal.html")); err != nil {
		t.Fatal(err)
	}
}

// The same stale value, but read while b's write was in flight: fine.
func TestCheckerAcceptsConcurrentRead(t *testing.T) {
	h := seq(
		put(0, "k", "a", 0, 10, outOK, 10),
		put(0, "k", "b", 20, 60, outOK, 20),
		read(1, "k", 30, 40, "a", 10),
		read(1, "k", 45, 50, "b", 20),
		final("n1", "k", 100, "b", 20),
	)
	expectOK(t, Check(h, []string{"k"}))
}

// A write with an unknown outcome may have happened or not; and it may
// become visible long after its client gave up.
func TestCheckerAcceptsUnknownWrites(t *testing.T) {
	h := seq(
		put(0, "k", "a", 0, 10, outOK, 10),
		put(0, "k", "b", 20, 30, outUnknown, 0), // applied, seen later
		put(1, "k", "c", 25, 35, outUnknown, 0), // never applied
		read(2, "k", 40, 45, "a", 10),
		read(2, "k", 50, 55, "b", 20),
		final("n1", "k", 100, "b", 20),
		final("n2", "k", 101, "b", 20),
	)
	expectOK(t, Check(h, []string{"k"}))
}

// A write reported as not executed (503) must never become visible.
func TestCheckerFlagsFailedWriteThatHappened(t *testing.T) {
	h := seq(
		put(0, "k", "a", 0, 10, outOK, 10),
		put(0, "k", "b", 20, 30, outFailed, 0),
		read(1, "k", 40, 50, "b", 20),
		final("n1", "k", 100, "b", 20),
	)
	rep := Check(h, []string{"k"})
	expectViolation(t, rep, "reported as not executed")
	expectViolation(t, rep, "not linearizable")
}

// An acknowledged write missing at the end is lost.
func TestCheckerFlagsLostWrite(t *testing.T) {
	h := seq(
		put(0, "k", "a", 0, 10, outOK, 10),
		put(0, "k", "b", 20, 30, outOK, 20),
		final("n1", "k", 100, "a", 10),
		final("n2", "k", 101, "a", 10),
	)
	expectViolation(t, Check(h, []string{"k"}), "acknowledged write lost")

	// Absent at the end with no delete after the acked write.
	h = seq(
		put(0, "k", "a", 0, 10, outOK, 10),
		final("n1", "k", 100, "", 0),
	)
	expectViolation(t, Check(h, []string{"k"}), "acknowledged write lost")
}

// Nodes that disagree at the end have diverged.
func TestCheckerFlagsDivergence(t *testing.T) {
	h := seq(
		put(0, "k", "a", 0, 10, outOK, 10),
		put(0, "k", "b", 20, 30, outOK, 20),
		final("n1", "k", 100, "b", 20),
		final("n2", "k", 101, "a", 10),
	)
	expectViolation(t, Check(h, []string{"k"}), "nodes disagree")
}

// Conditional writes: an If-Match on a stale version must fail; one that
// succeeds although the version had changed is a violation.
func TestCheckerConditionalWrites(t *testing.T) {
	ok := seq(
		put(0, "k", "a", 0, 10, outOK, 10),
		put(0, "k", "b", 20, 30, outOK, 20),
		func() *Op { o := put(1, "k", "c", 40, 50, outCondition, 0); o.IfMatch = 10; return o }(),
		func() *Op { o := put(1, "k", "d", 60, 70, outOK, 30); o.IfMatch = 20; return o }(),
		func() *Op { o := put(1, "k", "e", 80, 90, outCondition, 0); o.IfNoneMatch = true; return o }(),
		final("n1", "k", 100, "d", 30),
	)
	expectOK(t, Check(ok, []string{"k"}))

	bad := seq(
		put(0, "k", "a", 0, 10, outOK, 10),
		put(0, "k", "b", 20, 30, outOK, 20),
		func() *Op { o := put(1, "k", "c", 40, 50, outOK, 30); o.IfMatch = 10; return o }(),
		final("n1", "k", 100, "c", 30),
	)
	expectViolation(t, Check(bad, []string{"k"}), "not linearizable")
}

// Deletes, and list pages as reads of every key in their span.
func TestCheckerDeletesAndLists(t *testing.T) {
	keys := []string{"k1", "k2", "k3"}
	del := &Op{Client: 0, Node: "n1", Kind: "delete", Key: "k1", Call: 20 * ms, Return: 30 * ms, Outcome: outOK, Version: 10}
	list := &Op{Client: 1, Node: "n2", Kind: "list", Prefix: "k", Limit: 10, Call: 40 * ms, Return: 50 * ms, Outcome: outOK,
		Items: []ListItem{{Key: "k2", Value: "b", Version: 11}}}
	ok := seq(
		put(0, "k1", "a", 0, 10, outOK, 10),
		put(0, "k2", "b", 0, 12, outOK, 11),
		del, list,
		final("n1", "k1", 100, "", 0), final("n1", "k2", 100, "b", 11), final("n1", "k3", 100, "", 0),
	)
	expectOK(t, Check(ok, keys))

	// The same list, but it still shows k1 after its delete was acked.
	stale := *list
	stale.Items = []ListItem{{Key: "k1", Value: "a", Version: 10}, {Key: "k2", Value: "b", Version: 11}}
	bad := seq(
		put(0, "k1", "a", 0, 10, outOK, 10),
		put(0, "k2", "b", 0, 12, outOK, 11),
		del, &stale,
		final("n1", "k1", 100, "", 0), final("n1", "k2", 100, "b", 11), final("n1", "k3", 100, "", 0),
	)
	expectViolation(t, Check(bad, keys), `key "k1": history is not linearizable`)

	// A page that ends early (more=true) says nothing about keys after it.
	page := *list
	page.Items, page.More, page.Limit = []ListItem{{Key: "k2", Value: "b", Version: 11}}, true, 1
	page.After = "k1"
	okPage := seq(
		put(0, "k1", "a", 0, 10, outOK, 10),
		put(0, "k2", "b", 0, 12, outOK, 11),
		put(0, "k3", "c", 0, 13, outOK, 12),
		&page,
		final("n1", "k1", 100, "a", 10), final("n1", "k2", 100, "b", 11), final("n1", "k3", 100, "c", 12),
	)
	expectOK(t, Check(okPage, keys))
}

// A version that goes down between two writes in real time.
func TestCheckerFlagsVersionRegression(t *testing.T) {
	h := seq(
		put(0, "k", "a", 0, 10, outOK, 20),
		put(0, "k", "b", 20, 30, outOK, 10),
		final("n1", "k", 100, "b", 10),
	)
	expectViolation(t, Check(h, []string{"k"}), "not linearizable")
}

// TestPlantedStaleReadIsCaught runs a real cluster with a leader being
// isolated, with the harness's planted stale-read bug on (as
// CAIRN_ROBUST_PLANT=stale-read does for every scenario), and requires the
// checkers to flag it and the artifacts to be written.
func TestPlantedStaleReadIsCaught(t *testing.T) {
	requireFaultTools(t)
	seed := cmpOr(*flagSeed, 1)
	var sc scenario
	for _, s := range scenarios {
		if s.name == "partition-leader" {
			sc = s
		}
	}
	dir := t.TempDir()
	st := runScenario(t, sc, seed, 6*time.Second, runOpts{plant: newStalePlant(seed), artifacts: dir, expectViolations: true})
	if st.report == nil {
		t.Fatal("no report")
	}
	if st.report.OK() {
		t.Fatalf("the planted stale reads went unnoticed: %s", st.report.Summary())
	}
	planted := 0
	for _, v := range st.report.Violations {
		if strings.Contains(v, "PLANTED") || strings.Contains(v, "not linearizable") {
			planted++
		}
	}
	if planted == 0 {
		t.Fatalf("violations do not point at the planted reads:\n%s", strings.Join(st.report.Violations, "\n"))
	}
	runs, _ := filepath.Glob(filepath.Join(dir, "*", "history.json"))
	pages, _ := filepath.Glob(filepath.Join(dir, "*", "key-*-illegal.html"))
	if len(runs) != 1 || len(pages) == 0 {
		t.Fatalf("artifacts: %d history files, %d porcupine pages in %s", len(runs), len(pages), dir)
	}
	t.Logf("caught: %d violations, %d illegal keys", len(st.report.Violations), len(pages))
}
