// Goal: regression test for a full work channel. Store.notify used to drop
// a range ID when the bounded work channel was full, so a request queued
// on that range was never handed to raft (it waited until its timeout).
// The store must still propose and apply such a request promptly.
// Method: an in-package single-node store. Once its ranges have leaders,
// the test parks the driver goroutine inside a report callback, fills
// s.work to capacity with the meta range's ID, and queues a put on range 2
// through Replica.Propose with an already-cancelled context: Propose
// queues the request and calls notify (which finds work full) before it
// returns, so the overflow has certainly happened when the driver is
// released. Nothing else notifies range 2 afterwards; the test then polls
// Pebble with a deadline until the put has been applied.
package store

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/hlc"
	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/kv"
	"github.com/cairn-db/cairn/internal/replica"
	"github.com/cairn-db/cairn/internal/storage"
	"github.com/cairn-db/cairn/internal/transport"
)

// pollUntil polls cond every few milliseconds until it holds or d passes.
func pollUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		<-tick.C
	}
}

func TestNotifyWithFullWorkChannel(t *testing.T) {
	const dataRange = keys.RangeID(2) // the default table's range
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	db, err := storage.Open(t.TempDir(), storage.Options{CacheBytes: 4 << 20, MemTableBytes: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("close pebble: %v", err)
		}
	})
	id, err := Bootstrap(db, "n1", []*cairnpb.Node{{Id: 1, Name: "n1", PeerAddress: "127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	clock := hlc.New(nil)
	s, err := New(db, Options{
		NodeID: id, TickInterval: 10 * time.Millisecond, ElectionTicks: 10, HeartbeatTicks: 1,
		LogKeepEntries: 5, Logger: logger, Clock: clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	tr := transport.New(id, s.TransportCallbacks(), logger)
	t.Cleanup(tr.Close)
	s.SetTransport(tr)
	s.Start()
	t.Cleanup(s.Stop) // runs after release below (cleanups are LIFO)

	pollUntil(t, 10*time.Second, "leaders of the meta and data ranges", func() bool {
		m, d := s.Replica(replica.MetaRangeID), s.Replica(dataRange)
		return m != nil && m.IsLeader() && d != nil && d.IsLeader()
	})
	r := s.Replica(dataRange)

	// Park the driver inside a report callback.
	entered, unblock := make(chan struct{}), make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(unblock) }) }
	t.Cleanup(release)
	s.report(func() {
		close(entered)
		<-unblock
	})
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the driver never ran the blocking report")
	}

	// Fill work to capacity with another range's ID.
	for full := false; !full; {
		select {
		case s.work <- replica.MetaRangeID:
		default:
			full = true
		}
	}
	if len(s.work) != cap(s.work) {
		t.Fatalf("work holds %d of %d IDs", len(s.work), cap(s.work))
	}

	// Queue a put on the data range. The context is already cancelled, so
	// Propose returns right after queueing the request and notifying.
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	cmd := &cairnpb.Command{TableId: 1, Timestamp: uint64(clock.Now()), Op: &cairnpb.Command_Put{Put: &cairnpb.PutRequest{
		Table: "default", Key: []byte("overflow"), Value: []byte("applied"),
	}}}
	if _, err := r.Propose(cancelled, cmd); !errors.Is(err, kv.ErrTimeout) {
		t.Fatalf("Propose with a cancelled context: %v, want a timeout after queueing", err)
	}
	if len(s.work) != cap(s.work) {
		t.Fatalf("work holds %d of %d IDs after the put's notify", len(s.work), cap(s.work))
	}

	// Let the driver go: the queued put must be proposed and applied.
	release()
	key := keys.DataKey(keys.TableID(1), []byte("overflow"))
	pollUntil(t, 5*time.Second, "the put queued while work was full to be applied", func() bool {
		v, closer, err := db.Get(key)
		if errors.Is(err, pebble.ErrNotFound) {
			return false
		}
		if err != nil {
			t.Fatalf("get: %v", err)
		}
		defer closer.Close()
		_, val, err := storage.DecodeValue(v)
		if err != nil || string(val) != "applied" {
			t.Fatalf("applied value %q, %v", val, err)
		}
		return true
	})
}
