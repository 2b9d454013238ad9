package transport

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Absolute deadlines on peer calls (RELIABILITY.md #28).
//
// gRPC sends a call's deadline as a relative timeout that the receiver
// starts counting when the call arrives. A forwarded write that sat in a
// slow link's queue for seconds therefore arrived with its whole timeout
// still ahead, after the forwarding node had given up on it and told its
// client "outcome unknown", and was executed then: a write that took
// effect 11 s after its client's timeout. An unknown outcome may take
// effect at any time as far as linearizability goes, but not that late.
//
// So every unary peer call also carries its deadline as the caller's wall
// clock (DeadlineMetadataKey, Unix nanoseconds), and the receiver refuses
// a call that arrives more than --max-clock-offset past it, before doing
// anything, and otherwise ends its own context at that deadline plus the
// offset. A write forwarded to a leader is then proposed no later than
// the offset after its client's deadline, whatever the link did to it.
//
// This is the one place where cairn compares two nodes' clocks (leases
// and stale reads use only each node's own clock rate). If clocks differ
// by more than the offset, the only harm is liveness: a receiver whose
// clock runs ahead refuses calls that were still in time (the sender sees
// a clear DeadlineExceeded), one whose clock lags executes late calls as
// before. A zero offset turns the check off.

// lateCalls counts the calls DeadlineServerInterceptor refused.
var lateCalls = prometheus.NewCounter(prometheus.CounterOpts{
	Name: "cairn_peer_calls_late_total",
	Help: "Peer calls not executed because they arrived more than --max-clock-offset after their sender's deadline (a slow link, or clocks further apart than the offset).",
})

// Collectors returns the package's metrics, for registration.
func Collectors() []prometheus.Collector { return []prometheus.Collector{lateCalls} }

// DeadlineMetadataKey is the gRPC metadata key of a peer call's deadline:
// the caller's wall clock, in Unix nanoseconds.
const DeadlineMetadataKey = "cairn-deadline"

// DeadlineClientInterceptor attaches the call's context deadline, if
// any, as an absolute time (DeadlineMetadataKey).
func DeadlineClientInterceptor() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if d, ok := ctx.Deadline(); ok {
			ctx = metadata.AppendToOutgoingContext(ctx, DeadlineMetadataKey, strconv.FormatInt(d.UnixNano(), 10))
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}

// DeadlineServerInterceptor refuses a unary call that arrives more than
// maxOffset after the absolute deadline its caller attached, and bounds
// the handler's context by that deadline plus maxOffset. now is the
// node's wall clock (time.Now when nil); maxOffset 0 turns it off.
func DeadlineServerInterceptor(maxOffset time.Duration, now func() time.Time) grpc.UnaryServerInterceptor {
	if now == nil {
		now = time.Now
	}
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if maxOffset <= 0 {
			return handler(ctx, req)
		}
		deadline, ok := callerDeadline(ctx)
		if !ok {
			return handler(ctx, req)
		}
		left := deadline.Add(maxOffset).Sub(now())
		if left <= 0 {
			lateCalls.Inc()
			return nil, status.Errorf(codes.DeadlineExceeded,
				"%s arrived %v after its sender's deadline (allowed clock offset %v): not executed",
				info.FullMethod, (-left + maxOffset).Round(time.Millisecond), maxOffset)
		}
		ctx, cancel := context.WithTimeout(ctx, left)
		defer cancel()
		return handler(ctx, req)
	}
}

// callerDeadline reads DeadlineMetadataKey; a missing or malformed value
// is no deadline (older nodes send none).
func callerDeadline(ctx context.Context) (time.Time, bool) {
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return time.Time{}, false
	}
	v := md.Get(DeadlineMetadataKey)
	if len(v) != 1 {
		return time.Time{}, false
	}
	ns, err := strconv.ParseInt(v[0], 10, 64)
	if err != nil || ns <= 0 {
		return time.Time{}, false
	}
	return time.Unix(0, ns), true
}
