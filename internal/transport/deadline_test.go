// Goal: a forwarded request that reaches its receiver after its sender
// gave up is never executed (#28: a write forwarded over a slow link ran
// 8 s after its client's timeout, since gRPC's deadline counts from
// arrival). Method: a real gRPC client and server on loopback with the
// two interceptors; the receiver's clock is set ahead to stand for the
// time the request spent on the link.
package transport

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/cairn-db/cairn/api/cairnpb"
)

// forwardRecorder counts executed forwards and records the deadline each
// one's handler saw.
type forwardRecorder struct {
	cairnpb.UnimplementedPeerServer
	calls    atomic.Int64
	deadline atomic.Int64 // Unix nanoseconds of the last call's context deadline
}

func (f *forwardRecorder) Forward(ctx context.Context, _ *cairnpb.Request) (*cairnpb.Response, error) {
	f.calls.Add(1)
	if d, ok := ctx.Deadline(); ok {
		f.deadline.Store(d.UnixNano())
	}
	return &cairnpb.Response{}, nil
}

func TestForwardPastDeadlineIsRefused(t *testing.T) {
	const offset = 500 * time.Millisecond
	var skew atomic.Int64 // how far the receiver's clock runs ahead
	rec := &forwardRecorder{}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(DeadlineServerInterceptor(offset, func() time.Time {
		return time.Now().Add(time.Duration(skew.Load()))
	})))
	cairnpb.RegisterPeerServer(srv, rec)
	go srv.Serve(lis)
	defer srv.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUnaryInterceptor(DeadlineClientInterceptor()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	peer := cairnpb.NewPeerClient(conn)
	forward := func(ctx context.Context) error {
		_, err := peer.Forward(ctx, &cairnpb.Request{})
		return err
	}
	timed := func(d time.Duration) (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), d)
	}

	// In time: executed, and the handler's context ends no later than the
	// sender's deadline plus the offset (gRPC alone would give it the
	// whole 5 s from arrival, wherever it arrived).
	skew.Store(int64(4 * time.Second))
	ctx, cancel := timed(5 * time.Second)
	sent := time.Now()
	if err := forward(ctx); err != nil {
		t.Fatalf("a forward within its deadline failed: %v", err)
	}
	cancel()
	if rec.calls.Load() != 1 {
		t.Fatalf("executed %d forwards, want 1", rec.calls.Load())
	}
	// The receiver believes 4 s of the 5 s passed on the link: its
	// context has about 1.5 s left, not 5.
	if got := time.Unix(0, rec.deadline.Load()).Sub(sent); got > 2*time.Second {
		t.Fatalf("handler's context ran %v past the send, want at most about 1.5s", got)
	}

	// Arrived past the deadline and the offset: refused, not executed.
	skew.Store(int64(6 * time.Second))
	ctx, cancel = timed(5 * time.Second)
	late := testutil.ToFloat64(lateCalls)
	err = forward(ctx)
	cancel()
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("a forward that arrived 1s past its deadline: %v, want DeadlineExceeded", err)
	}
	if got := testutil.ToFloat64(lateCalls) - late; got != 1 {
		t.Fatalf("cairn_peer_calls_late_total grew by %v, want 1", got)
	}
	if rec.calls.Load() != 1 {
		t.Fatalf("a late forward was executed (%d calls)", rec.calls.Load())
	}

	// Within the offset: executed.
	skew.Store(int64(5*time.Second + offset/2))
	ctx, cancel = timed(5 * time.Second)
	if err := forward(ctx); err != nil {
		t.Fatalf("a forward within the clock offset failed: %v", err)
	}
	cancel()

	// No deadline, or one this node cannot read: executed as before.
	if err := forward(context.Background()); err != nil {
		t.Fatalf("a forward without a deadline failed: %v", err)
	}
	for _, bad := range []string{"", "x", "-5", "0", "99999999999999999999"} {
		md := metadata.Pairs(DeadlineMetadataKey, bad)
		_, err := cairnpb.NewPeerClient(conn).Forward(metadata.NewOutgoingContext(context.Background(), md), &cairnpb.Request{},
			grpc.WaitForReady(true))
		if err != nil {
			t.Fatalf("deadline %q: %v", bad, err)
		}
	}
	if got, want := rec.calls.Load(), int64(3+5); got != want {
		t.Fatalf("executed %d forwards, want %d", got, want)
	}
}

func TestDeadlineCheckOff(t *testing.T) {
	called := false
	ic := DeadlineServerInterceptor(0, func() time.Time { return time.Now().Add(time.Hour) })
	ctx := metadata.NewIncomingContext(context.Background(),
		metadata.Pairs(DeadlineMetadataKey, "1"))
	if _, err := ic(ctx, nil, &grpc.UnaryServerInfo{FullMethod: "/x"}, func(context.Context, any) (any, error) {
		called = true
		return nil, nil
	}); err != nil || !called {
		t.Fatalf("with offset 0 the check is off: err %v, called %v", err, called)
	}
}
