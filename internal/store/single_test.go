// Goal: a full single-node cycle through the store: bootstrap, leader
// election of the RawNodes, proposals and linearizable reads, log
// truncation, CreateTable/DropTable opening and removing replicas, and a
// restart (Pebble closed and reopened) after which data, applied state and
// versions survive and new versions stay above old ones even when the
// wall clock is far behind. Also checks that a single node sends no Raft
// messages (its transport has no peers and reports none unreachable).
// Method: the node harness of node_test.go with one member; waits poll
// with a deadline.
package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/hlc"
	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/kv"
	"github.com/cairn-db/cairn/internal/replica"
)

func TestSingleNode(t *testing.T) {
	nodes := newCluster(t, "n1")
	n := nodes[0]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	if got := len(n.st.Replicas()); got != 2 {
		t.Fatalf("bootstrapped node has %d replicas, want 2 (meta and default)", got)
	}
	if tb := n.st.Table("default"); tb == nil || tb.Id != 1 || len(tb.Ranges) != 1 || tb.Ranges[0].Id != 2 {
		t.Fatalf("default table = %v", tb)
	}
	leaderOf(t, nodes, replica.MetaRangeID)
	leaderOf(t, nodes, 2)

	// Writes: versions strictly increase and are at least the proposer's
	// clock reading.
	var last uint64
	for i := 0; i < 30; i++ {
		before := uint64(n.clock.Now())
		res, err := n.propose(ctx, 2, putCmd(1, fmt.Sprintf("k%02d", i), fmt.Sprintf("v%d", i), nil))
		if err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
		if res.Version <= last || res.Version <= before {
			t.Fatalf("put %d: version %d, previous %d, clock before %d", i, res.Version, last, before)
		}
		last = res.Version
	}
	n.mustRead(t, 2, 1, "k07", "v7", 0)
	n.mustRead(t, 2, 1, "k29", "v29", last)

	// Conditional write failure comes back as the result's error.
	if _, err := n.propose(ctx, 2, putCmd(1, "k00", "x", &cairnpb.Condition{Absent: true})); !errors.Is(err, kv.ErrConditionFailed) {
		t.Fatalf("put-if-absent on an existing key: %v", err)
	}
	res, err := n.propose(ctx, 2, putCmd(1, "k00", "x", &cairnpb.Condition{Version: n.versionOf(t, 2, 1, "k00")}))
	if err != nil || res.Version <= last {
		t.Fatalf("conditional put: %v, version %d (last %d)", err, res.Version, last)
	}
	last = res.Version

	// Log truncation happened (LogKeepEntries = 5, 30+ entries applied).
	waitFor(t, 5*time.Second, "log truncation", func() bool {
		return n.firstLogIndex(t, 2) > replica.InitialIndex+1
	})

	// CreateTable through the meta range opens the new range's replica.
	res, err = n.propose(ctx, replica.MetaRangeID, &cairnpb.Command{Op: &cairnpb.Command_CreateTable{CreateTable: &cairnpb.CreateTable{Name: "t", Partitioning: "range"}}})
	if err != nil || res.Table == nil {
		t.Fatalf("create table: %v, %v", res, err)
	}
	tableID, rangeID := res.Table.Id, keys.RangeID(res.Table.Ranges[0].Id)
	if tableID != 2 || rangeID != 3 {
		t.Fatalf("new table %d range %d, want 2 and 3", tableID, rangeID)
	}
	waitFor(t, 5*time.Second, "the new table in the catalog", func() bool { return n.st.Table("t") != nil })
	leaderOf(t, nodes, rangeID)
	if _, err := n.propose(ctx, rangeID, putCmd(tableID, "tk", "tv", nil)); err != nil {
		t.Fatalf("put into new table: %v", err)
	}
	n.mustRead(t, rangeID, tableID, "tk", "tv", 0)
	// A put addressed to the default table but sent to the new range fails.
	if _, err := n.propose(ctx, rangeID, putCmd(1, "tk", "x", nil)); !errors.Is(err, kv.ErrTableNotFound) {
		t.Fatalf("put with a wrong table id: %v", err)
	}

	// DropTable removes the replica and its data.
	if _, err := n.propose(ctx, replica.MetaRangeID, &cairnpb.Command{Op: &cairnpb.Command_DropTable{DropTable: &cairnpb.DropTable{Name: "t"}}}); err != nil {
		t.Fatalf("drop table: %v", err)
	}
	waitFor(t, 5*time.Second, "the dropped table's replica to go", func() bool { return n.st.Replica(rangeID) == nil })
	if n.st.Table("t") != nil {
		t.Fatal("dropped table still in the catalog")
	}
	if n.hasKeys(t, func() ([]byte, []byte) { return keys.RangeLocalSpan(rangeID) }) {
		t.Fatal("raft state of the dropped range still in Pebble")
	}
	if n.hasKeys(t, func() ([]byte, []byte) { return keys.DataSpan(keys.TableID(tableID), nil, nil) }) {
		t.Fatal("data of the dropped table still in Pebble")
	}

	if got := n.unreachable.Load(); got != 0 {
		t.Fatalf("a single node reported %d unreachable messages", got)
	}

	// Restart with a wall clock far in the past: versions still increase.
	n.stop()
	n.clock = hlc.New(func() time.Time { return time.UnixMilli(1) })
	n.start(nil)
	if got := len(n.st.Replicas()); got != 2 {
		t.Fatalf("after restart %d replicas, want 2", got)
	}
	leaderOf(t, nodes, 2)
	n.mustRead(t, 2, 1, "k00", "x", last) // the conditional put's version
	n.mustRead(t, 2, 1, "k29", "v29", 0)
	res, err = n.propose(ctx, 2, putCmd(1, "after", "restart", nil))
	if err != nil {
		t.Fatal(err)
	}
	if res.Version <= last {
		t.Fatalf("version after restart %d not above %d", res.Version, last)
	}
	// The store folds applied versions into its clock.
	if now := uint64(n.clock.Now()); now <= res.Version {
		t.Fatalf("clock %d not above applied version %d", now, res.Version)
	}
	// Table IDs are not reused after a restart either.
	res, err = n.propose(ctx, replica.MetaRangeID, &cairnpb.Command{Op: &cairnpb.Command_CreateTable{CreateTable: &cairnpb.CreateTable{Name: "t2"}}})
	if err != nil || res.Table.Id != 3 || res.Table.Ranges[0].Id != 4 {
		t.Fatalf("create table after restart: %v, %v", res.Table, err)
	}
}

func (n *testNode) versionOf(t testing.TB, id keys.RangeID, table uint64, key string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, _, found, err := n.read(ctx, id, table, key)
	if err != nil || !found {
		t.Fatalf("%s: read %s: found %v, %v", n.name, key, found, err)
	}
	return v
}

func (n *testNode) hasKeys(t testing.TB, span func() ([]byte, []byte)) bool {
	t.Helper()
	start, end := span()
	it, err := n.db.NewIter(&pebble.IterOptions{LowerBound: start, UpperBound: end})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	return it.First()
}

func (n *testNode) firstLogIndex(t testing.TB, id keys.RangeID) uint64 {
	t.Helper()
	it, err := n.db.NewIter(&pebble.IterOptions{LowerBound: keys.RaftLogKey(id, 0), UpperBound: keys.RaftLogKey(id, ^uint64(0))})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	if !it.First() {
		return 0
	}
	idx, err := keys.RaftLogIndex(it.Key())
	if err != nil {
		t.Fatal(err)
	}
	return idx
}
