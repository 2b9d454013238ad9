// Goal: a peer that comes back after its connection was lost is reachable
// again (Connected) without anything being sent to it first: the router
// asks Connected before it forwards, so an idle channel that only an RPC
// would wake made a healed peer look unreachable for good (#21).
// Method: a real gRPC server on loopback, stopped (the transport sees the
// connection drop) and started again on the same address; nothing is sent.
package transport

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/keys"
)

type peerServer struct {
	cairnpb.UnimplementedPeerServer
}

func serve(t *testing.T, addr string) *grpc.Server {
	t.Helper()
	var lis net.Listener
	var err error
	for range 50 { // the old listener's port may take a moment to free
		if lis, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	cairnpb.RegisterPeerServer(s, peerServer{})
	go s.Serve(lis)
	return s
}

func waitConnected(t *testing.T, tr *Transport, want bool, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for tr.Connected(2) != want {
		if time.Now().After(deadline) {
			t.Fatalf("Connected(2) is not %v after %v", want, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestReconnectsWithoutTraffic(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	s := serve(t, addr)
	tr := quietTransport()
	defer tr.Close()
	if err := tr.AddPeer(2, addr); err != nil {
		t.Fatal(err)
	}
	waitConnected(t, tr, true, 5*time.Second)
	s.Stop()
	waitConnected(t, tr, false, 5*time.Second)
	s = serve(t, addr)
	defer s.Stop()
	waitConnected(t, tr, true, 5*time.Second)
}

// A peer re-added at a new address stops the old address's goroutines
// and closes its connection, instead of reconnecting to it forever.
func TestReplacedPeerStops(t *testing.T) {
	tr := quietTransport()
	defer tr.Close()
	if err := tr.AddPeer(2, "127.0.0.1:1"); err != nil {
		t.Fatal(err)
	}
	tr.mu.Lock()
	old := tr.mu.peers[2]
	tr.mu.Unlock()
	if err := tr.AddPeer(2, "127.0.0.1:2"); err != nil {
		t.Fatal(err)
	}
	if old.ctx.Err() == nil {
		t.Fatal("the replaced peer's goroutines were not stopped")
	}
	if st := old.conn.GetState(); st != connectivity.Shutdown {
		t.Fatalf("the replaced peer's connection is %v, want SHUTDOWN", st)
	}
}

// quietTransport is node 1's transport with callbacks that ignore
// everything, for tests of its connections only.
func quietTransport() *Transport {
	return New(1, Callbacks{
		Deliver:      func(context.Context, []RangeMessage) error { return nil },
		Unreachable:  func(keys.RangeID, uint64) {},
		SnapshotSent: func(keys.RangeID, uint64, bool) {},
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
}
