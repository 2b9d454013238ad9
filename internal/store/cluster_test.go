// Goal: a three-node cluster in one process elects leaders, replicates
// writes to every replica with identical versions, serves linearizable
// reads on followers, survives the loss of the leader (a new leader is
// elected among the two survivors and writes continue with larger
// versions), and lets the old leader rejoin and catch up from a snapshot
// after a restart.
// Method: three node harnesses (node_test.go) on their own Pebbles, talking
// through real transports over loopback gRPC; every wait polls with a
// deadline.
package store_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/kv"
	"github.com/cairn-db/cairn/internal/replica"
)

func TestThreeNodes(t *testing.T) {
	nodes := newCluster(t, "n1", "n2", "n3")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	leaderOf(t, nodes, replica.MetaRangeID)
	leader := leaderOf(t, nodes, 2)

	// A follower refuses proposals: the router must send them to the leader.
	for _, n := range nodes {
		if n != leader {
			if _, err := n.propose(ctx, 2, putCmd(1, "x", "y", nil)); !errors.Is(err, kv.ErrNotLeader) {
				t.Fatalf("%s (follower): propose: %v, want ErrNotLeader", n.name, err)
			}
			break
		}
	}

	var last uint64
	versions := map[string]uint64{}
	for i := 0; i < 20; i++ {
		key := fmt.Sprintf("k%02d", i)
		res, err := leader.propose(ctx, 2, putCmd(1, key, "v"+key, nil))
		if err != nil {
			t.Fatalf("put %s via %s: %v", key, leader.name, err)
		}
		if res.Version <= last {
			t.Fatalf("version %d not above %d", res.Version, last)
		}
		last, versions[key] = res.Version, res.Version
	}
	// Every replica, followers included, reads every write after a read
	// barrier, with the version the leader returned.
	for _, n := range nodes {
		for key, v := range versions {
			n.mustRead(t, 2, 1, key, "v"+key, v)
		}
	}

	// Stop the leader; the two survivors elect a new one and writes go on.
	old := leader
	_, _, oldApplied := old.st.Replica(2).Status()
	old.stop()
	leader = leaderOf(t, nodes, 2)
	if leader == old {
		t.Fatal("stopped node still leads")
	}
	res, err := leader.propose(ctx, 2, putCmd(1, "after", "failover", nil))
	if err != nil {
		t.Fatalf("put after failover via %s: %v", leader.name, err)
	}
	if res.Version <= last {
		t.Fatalf("version after failover %d not above %d", res.Version, last)
	}
	last = res.Version
	// Enough further writes that the survivors truncate their logs past
	// everything the stopped node has (LogKeepEntries = 5): it can only
	// catch up from a snapshot.
	for i := 0; i < 25; i++ {
		key := fmt.Sprintf("down%02d", i)
		r, err := leader.propose(ctx, 2, putCmd(1, key, "v"+key, nil))
		if err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
		versions[key] = r.Version
	}
	for _, n := range nodes {
		if n.running {
			if trunc := n.truncIndex(t, 2); trunc <= oldApplied+1 {
				t.Fatalf("%s: log truncated only to %d; %s could catch up without a snapshot (applied %d)", n.name, trunc, old.name, oldApplied)
			}
			n.mustRead(t, 2, 1, "after", "failover", last)
			n.mustRead(t, 2, 1, "k07", "vk07", versions["k07"])
		}
	}
	// The meta range fails over too: a table can be created.
	metaLeader := leaderOf(t, nodes, replica.MetaRangeID)
	res, err = metaLeader.propose(ctx, replica.MetaRangeID, &cairnpb.Command{Op: &cairnpb.Command_CreateTable{CreateTable: &cairnpb.CreateTable{Name: "t"}}})
	if err != nil {
		t.Fatalf("create table after failover: %v", err)
	}
	newRange := res.Table.Ranges[0]
	if len(newRange.Replicas) != 3 {
		t.Fatalf("new range replicas %v, want all three nodes", newRange.Replicas)
	}

	// The old leader restarts on its data and catches up: it sees the write
	// made while it was down and opens the table created meanwhile.
	old.start(nil)
	leaderOf(t, nodes, 2)
	old.mustRead(t, 2, 1, "after", "failover", last)
	for key, v := range versions {
		old.mustRead(t, 2, 1, key, "v"+key, v)
	}
	// It caught up from a snapshot: its log is now truncated past what it
	// had applied before it stopped.
	if trunc := old.truncIndex(t, 2); trunc <= oldApplied {
		t.Fatalf("%s: truncated index %d not past its old applied index %d: no snapshot", old.name, trunc, oldApplied)
	}
	waitFor(t, 10*time.Second, old.name+" opening the new table's replica", func() bool {
		return old.st.Table("t") != nil && old.st.Replica(3) != nil
	})
	tl := leaderOf(t, nodes, 3)
	if _, err := tl.propose(ctx, 3, putCmd(res.Table.Id, "tk", "tv", nil)); err != nil {
		t.Fatalf("put into new table: %v", err)
	}
	for _, n := range nodes {
		n.mustRead(t, 3, res.Table.Id, "tk", "tv", 0)
	}
}

// truncIndex reads the truncated log index of range id from n's Pebble.
func (n *testNode) truncIndex(t testing.TB, id keys.RangeID) uint64 {
	t.Helper()
	v, closer, err := n.db.Get(keys.TruncatedStateKey(id))
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	if len(v) != 16 {
		t.Fatalf("truncated state is %d bytes", len(v))
	}
	return binary.BigEndian.Uint64(v)
}
