// Goal: check store.Bootstrap's contract: a new data dir gets the initial
// cluster state and the node's identity; a second call on the same dir
// returns the stored ID without rewriting anything; a dir of another node
// or a name missing from the initial cluster is refused; and every member
// writes byte-identical replicated state (so all replicas start equal).
// Method: Pebbles in temp dirs, compared key by key.
package store_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/storage"
	"github.com/cairn-db/cairn/internal/store"
)

func openPebble(t testing.TB) *pebble.DB {
	t.Helper()
	db, err := storage.Open(t.TempDir(), storage.Options{CacheBytes: 1 << 20, MemTableBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

var threeNodes = []*cairnpb.Node{
	{Id: 1, Name: "a", PeerAddress: "10.0.0.1:7001"},
	{Id: 2, Name: "b", PeerAddress: "10.0.0.2:7001"},
	{Id: 3, Name: "c", PeerAddress: "10.0.0.3:7001"},
}

// dump lists every key and value of db except the node's identity.
func dump(t testing.TB, db *pebble.DB) string {
	t.Helper()
	it, err := db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var sb strings.Builder
	for ok := it.First(); ok; ok = it.Next() {
		if bytes.Equal(it.Key(), keys.IdentKey()) {
			continue
		}
		fmt.Fprintf(&sb, "%x=%x\n", it.Key(), it.Value())
	}
	return sb.String()
}

func TestBootstrap(t *testing.T) {
	var dumps []string
	for _, n := range threeNodes {
		db := openPebble(t)
		id, err := store.Bootstrap(db, n.Name, threeNodes)
		if err != nil || id != n.Id {
			t.Fatalf("Bootstrap(%s) = %d, %v; want %d", n.Name, id, err, n.Id)
		}
		before := dump(t, db)
		if before == "" {
			t.Fatal("Bootstrap wrote nothing")
		}
		// Idempotent: the stored identity wins, even if the cluster list
		// given later differs.
		id, err = store.Bootstrap(db, n.Name, threeNodes[:1])
		if err != nil || id != n.Id {
			t.Fatalf("second Bootstrap(%s) = %d, %v", n.Name, id, err)
		}
		if after := dump(t, db); after != before {
			t.Fatal("second Bootstrap rewrote state")
		}
		// A dir belongs to one node.
		if _, err := store.Bootstrap(db, "zz", threeNodes); err == nil {
			t.Fatalf("Bootstrap of %s's dir as zz succeeded", n.Name)
		}
		dumps = append(dumps, before)
	}
	for i := 1; i < len(dumps); i++ {
		if dumps[i] != dumps[0] {
			t.Fatalf("node %d bootstrapped different state than node 1", i+1)
		}
	}
	// A name that is not in the initial cluster is refused, and nothing is
	// written.
	db := openPebble(t)
	if _, err := store.Bootstrap(db, "d", threeNodes); err == nil {
		t.Fatal("Bootstrap of a node outside the cluster succeeded")
	}
	if got := dump(t, db); got != "" {
		t.Fatalf("failed Bootstrap wrote state:\n%s", got)
	}
}

// TestNewOpensBootstrappedReplicas: store.New on a bootstrapped dir opens
// the meta and default ranges and loads the catalog.
func TestNewOpensBootstrappedReplicas(t *testing.T) {
	db := openPebble(t)
	id, err := store.Bootstrap(db, "b", threeNodes)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.New(db, store.Options{NodeID: id, TickInterval: tickInterval, ElectionTicks: 10, HeartbeatTicks: 1, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if st.NodeID() != 2 || st.Replica(1) == nil || st.Replica(2) == nil || st.Replica(3) != nil || len(st.Replicas()) != 2 {
		t.Fatalf("replicas after New: %d (node %d)", len(st.Replicas()), st.NodeID())
	}
	if len(st.Nodes()) != 3 || len(st.Tables()) != 1 || st.Table("default") == nil {
		t.Fatalf("catalog: %d nodes, %d tables", len(st.Nodes()), len(st.Tables()))
	}
	d := st.Replica(2).Desc()
	if d.TableId != 1 || len(d.Replicas) != 3 {
		t.Fatalf("default range descriptor %v", d)
	}
}
