package store_test

// Goal: the replica side of session and bounded-stale reads on a real
// 3-node multi-Raft cluster: a follower's session barrier passes once it
// has applied a write's index and times out (false, no error) for an
// index it has not reached; a follower's stale barrier proves a bound no
// larger than asked, refreshes an aged proof with one ReadIndex round,
// and, once cut off from a quorum, answers kv.ErrTooStale after its last
// proof ages past the bound instead of serving older data.
// Method: in-process nodes over real gRPC peer connections and Pebble;
// the cut-off is made by stopping two of the three nodes.

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cairn-db/cairn/internal/kv"
	"github.com/cairn-db/cairn/internal/replica"
)

func TestFollowerSessionAndStaleBarriers(t *testing.T) {
	nodes := newCluster(t, "n1", "n2", "n3")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	leaderOf(t, nodes, replica.MetaRangeID)
	leader := leaderOf(t, nodes, 2)
	var follower, other *testNode
	for _, n := range nodes {
		switch {
		case n == leader:
		case follower == nil:
			follower = n
		default:
			other = n
		}
	}
	res, err := leader.propose(ctx, 2, putCmd(1, "k", "v", nil))
	if err != nil {
		t.Fatal(err)
	}
	fr := follower.st.Replica(2)
	ok, err := fr.SessionBarrier(ctx, res.Index, 5*time.Second)
	if err != nil || !ok || fr.VisibleIndex() < res.Index {
		t.Fatalf("session barrier at the write's index %d: %v, %v (visible %d)", res.Index, ok, err, fr.VisibleIndex())
	}
	if e := fr.SessionEntry(); e.Range != 2 || e.Table != 1 || e.Index < res.Index {
		t.Fatalf("session entry %+v", e)
	}
	start := time.Now()
	ok, err = fr.SessionBarrier(ctx, res.Index+1_000_000, 50*time.Millisecond)
	if err != nil || ok || time.Since(start) < 50*time.Millisecond {
		t.Fatalf("session barrier past the log: %v, %v after %v", ok, err, time.Since(start))
	}

	const bound = 300 * time.Millisecond
	s, err := fr.StaleBarrier(ctx, bound)
	if err != nil || s > bound {
		t.Fatalf("stale barrier: %v, %v", s, err)
	}
	if fr.VisibleIndex() < res.Index {
		t.Fatalf("stale barrier passed at visible %d, before the write acknowledged earlier (%d)", fr.VisibleIndex(), res.Index)
	}
	// An aged proof is refreshed by a round, not used.
	time.Sleep(bound + 50*time.Millisecond)
	s, err = fr.StaleBarrier(ctx, bound)
	if err != nil || s > bound {
		t.Fatalf("stale barrier after the proof aged: %v, %v", s, err)
	}

	// Cut the follower off from any quorum: once its last proof is older
	// than the bound, it refuses.
	leader.stop()
	other.stop()
	time.Sleep(bound + 50*time.Millisecond)
	s, err = fr.StaleBarrier(ctx, bound)
	if !errors.Is(err, kv.ErrTooStale) {
		t.Fatalf("stale barrier without a quorum: %v, %v; want ErrTooStale", s, err)
	}
}
