package auth

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/kv"
)

// PrincipalMetadataKey is the gRPC metadata key that carries the
// authenticated user of a forwarded request over the peer channel. Only
// the peer API reads it; the client API ignores it, so a client cannot
// claim a principal.
const PrincipalMetadataKey = "cairn-principal"

// Service is what the Guard wraps: the router's kv.Service and Batcher.
type Service interface {
	kv.Service
	kv.Batcher
}

// Guard is kv.Service with authorization: every method checks the
// principal of its context (put there by the front end that
// authenticated the request) against the node's auth snapshot, then
// calls the wrapped service with the principal in the outgoing gRPC
// metadata, so a request the router forwards arrives at the leader with
// it (and the leader checks again, see CheckRequest).
type Guard struct {
	a    *Authenticator
	next Service
}

var (
	_ kv.Service    = (*Guard)(nil)
	_ kv.Batcher    = (*Guard)(nil)
	_ kv.Splitter   = (*Guard)(nil)
	_ kv.Transactor = (*Guard)(nil)
	_ kv.Backuper   = (*Guard)(nil)
)

// NewGuard returns next guarded by a.
func NewGuard(a *Authenticator, next Service) *Guard { return &Guard{a: a, next: next} }

// outgoing returns ctx for the wrapped service. The principal is already
// in ctx (WithPrincipal); ForwardInterceptor copies it into the metadata
// of a peer call only when the router actually forwards, which keeps the
// allocation off the path of local requests.
func outgoing(ctx context.Context, _ *Principal) context.Context { return ctx }

// ForwardInterceptor is the peer connections' client interceptor: it
// attaches the principal of the call's context as PrincipalMetadataKey.
// Install it on the transport (Transport.SetDialOptions).
func ForwardInterceptor() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if p := PrincipalFrom(ctx); p != nil {
			ctx = metadata.AppendToOutgoingContext(ctx, PrincipalMetadataKey, p.User)
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}

// ForwardStreamInterceptor is ForwardInterceptor for streams (a watch
// relayed to the node that holds the watched keys).
func ForwardStreamInterceptor() grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		if p := PrincipalFrom(ctx); p != nil {
			ctx = metadata.AppendToOutgoingContext(ctx, PrincipalMetadataKey, p.User)
		}
		return streamer(ctx, desc, cc, method, opts...)
	}
}

// PrincipalFromPeer returns the principal a forwarding node attached to
// an incoming peer call, or nil.
func PrincipalFromPeer(ctx context.Context) *Principal {
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return nil
	}
	v := md.Get(PrincipalMetadataKey)
	if len(v) != 1 || v[0] == "" {
		return nil
	}
	return &Principal{User: v[0]}
}

// Get implements kv.Service.
func (g *Guard) Get(ctx context.Context, req *cairnpb.GetRequest) (*cairnpb.GetResponse, error) {
	p := ctxPrincipal(ctx)
	if err := g.a.Check(p, req.Table, req.Key, PermRead); err != nil {
		return nil, err
	}
	return g.next.Get(outgoing(ctx, p), req)
}

// Put implements kv.Service.
func (g *Guard) Put(ctx context.Context, req *cairnpb.PutRequest) (*cairnpb.PutResponse, error) {
	p := ctxPrincipal(ctx)
	if err := g.a.Check(p, req.Table, req.Key, needForCondition(req.Condition)); err != nil {
		return nil, err
	}
	return g.next.Put(outgoing(ctx, p), req)
}

// Delete implements kv.Service.
func (g *Guard) Delete(ctx context.Context, req *cairnpb.DeleteRequest) (*cairnpb.DeleteResponse, error) {
	p := ctxPrincipal(ctx)
	if err := g.a.Check(p, req.Table, req.Key, needForCondition(req.Condition)); err != nil {
		return nil, err
	}
	return g.next.Delete(outgoing(ctx, p), req)
}

// List implements kv.Service. A list is allowed only when one read grant
// covers the whole requested span (see docs/design/auth.md: denied, not
// filtered, so that pages and counts never depend on hidden keys).
func (g *Guard) List(ctx context.Context, req *cairnpb.ListRequest) (*cairnpb.ListResponse, error) {
	p := ctxPrincipal(ctx)
	start, end := listSpan(req)
	if err := g.a.CheckSpan(p, req.Table, start, end, PermRead); err != nil {
		return nil, err
	}
	return g.next.List(outgoing(ctx, p), req)
}

// Batch implements kv.Batcher: every operation is checked.
func (g *Guard) Batch(ctx context.Context, req *cairnpb.BatchRequest) (*cairnpb.BatchResponse, error) {
	p := ctxPrincipal(ctx)
	if err := g.a.checkBatch(p, req); err != nil {
		return nil, err
	}
	return g.next.Batch(outgoing(ctx, p), req)
}

// Txn implements kv.Transactor: every key is checked (read for reads and
// checks, write for writes), before anything runs. It fails when the
// wrapped service has no transactions.
func (g *Guard) Txn(ctx context.Context, req *cairnpb.TxnRequest) (*cairnpb.TxnResponse, error) {
	p := ctxPrincipal(ctx)
	if err := g.a.checkTxnOps(p, req.Ops, ""); err != nil {
		return nil, err
	}
	tx, ok := g.next.(kv.Transactor)
	if !ok {
		return nil, kv.Errorf(kv.ErrInternal, "transactions are not available")
	}
	return tx.Txn(outgoing(ctx, p), req)
}

// CreateTable implements kv.Service; it needs admin on the new table's
// name or on "*".
func (g *Guard) CreateTable(ctx context.Context, req *cairnpb.CreateTableRequest) (*cairnpb.Table, error) {
	p := ctxPrincipal(ctx)
	if err := g.a.CheckTableAdmin(p, req.Name); err != nil {
		return nil, err
	}
	return g.next.CreateTable(outgoing(ctx, p), req)
}

// GetTable implements kv.Service; it needs some grant on the table.
func (g *Guard) GetTable(ctx context.Context, req *cairnpb.GetTableRequest) (*cairnpb.Table, error) {
	p := ctxPrincipal(ctx)
	if err := g.a.CheckAuthenticated(p); err != nil {
		return nil, err
	}
	if !g.a.visible(p, req.Name) {
		return nil, kv.Errorf(kv.ErrPermissionDenied, "user %q has no grant on table %q", p.User, req.Name)
	}
	return g.next.GetTable(outgoing(ctx, p), req)
}

// ListTables implements kv.Service; it lists only the tables on which the
// user holds some grant.
func (g *Guard) ListTables(ctx context.Context, req *cairnpb.ListTablesRequest) (*cairnpb.ListTablesResponse, error) {
	p := ctxPrincipal(ctx)
	if err := g.a.CheckAuthenticated(p); err != nil {
		return nil, err
	}
	resp, err := g.next.ListTables(outgoing(ctx, p), req)
	if err != nil {
		return nil, err
	}
	out := &cairnpb.ListTablesResponse{}
	for _, t := range resp.Tables {
		if g.a.visible(p, t.Name) {
			out.Tables = append(out.Tables, t)
		}
	}
	return out, nil
}

// DropTable implements kv.Service; it needs admin on the table.
func (g *Guard) DropTable(ctx context.Context, req *cairnpb.DropTableRequest) (*cairnpb.DropTableResponse, error) {
	p := ctxPrincipal(ctx)
	if err := g.a.CheckTableAdmin(p, req.Name); err != nil {
		return nil, err
	}
	return g.next.DropTable(outgoing(ctx, p), req)
}

// UpdateTable implements kv.Service; it needs admin on the table.
func (g *Guard) UpdateTable(ctx context.Context, req *cairnpb.UpdateTableRequest) (*cairnpb.Table, error) {
	p := ctxPrincipal(ctx)
	if err := g.a.CheckTableAdmin(p, req.Name); err != nil {
		return nil, err
	}
	return g.next.UpdateTable(outgoing(ctx, p), req)
}

// ClusterStatus implements kv.Service; it needs admin on "*".
func (g *Guard) ClusterStatus(ctx context.Context) (*cairnpb.ClusterStatus, error) {
	p := ctxPrincipal(ctx)
	if err := g.a.CheckTableAdmin(p, AllTables); err != nil {
		return nil, err
	}
	return g.next.ClusterStatus(outgoing(ctx, p))
}

var _ kv.RouteReader = (*Guard)(nil)

// Routes implements kv.RouteReader; it needs read on the whole table,
// because the ranges' bounds are keys of the table. A client without it
// lets the nodes forward its requests instead.
func (g *Guard) Routes(ctx context.Context, req *cairnpb.RoutesRequest) (*cairnpb.RoutesResponse, error) {
	p := ctxPrincipal(ctx)
	if err := g.a.CheckSpan(p, req.Table, nil, nil, PermRead); err != nil {
		return nil, err
	}
	rr, ok := g.next.(kv.RouteReader)
	if !ok {
		return nil, kv.Errorf(kv.ErrInvalidArgument, "this server cannot tell routes")
	}
	return rr.Routes(outgoing(ctx, p), req)
}

// NodeAction implements kv.NodeOperator: draining or removing a node
// needs admin on "*".
func (g *Guard) NodeAction(ctx context.Context, req *cairnpb.NodeActionRequest) (*cairnpb.NodeActionResponse, error) {
	p := ctxPrincipal(ctx)
	if err := g.a.CheckTableAdmin(p, AllTables); err != nil {
		return nil, err
	}
	op, ok := g.next.(kv.NodeOperator)
	if !ok {
		return nil, kv.Errorf(kv.ErrInvalidArgument, "this server cannot manage nodes")
	}
	return op.NodeAction(outgoing(ctx, p), req)
}

// CheckClusterAdmin returns nil when the request's principal may operate
// the whole cluster (admin on "*"): the profiling endpoints need it.
func (g *Guard) CheckClusterAdmin(ctx context.Context) error {
	return g.a.CheckTableAdmin(ctxPrincipal(ctx), AllTables)
}

// SplitRange implements kv.Splitter: splitting a table's range needs
// admin on the table.
func (g *Guard) SplitRange(ctx context.Context, req *cairnpb.SplitRangeRequest) (*cairnpb.SplitRangeResponse, error) {
	if err := g.a.CheckTableAdmin(ctxPrincipal(ctx), req.Table); err != nil {
		return nil, err
	}
	sp, ok := g.next.(kv.Splitter)
	if !ok {
		return nil, kv.Errorf(kv.ErrInternal, "range splits are not available")
	}
	return sp.SplitRange(ctx, req)
}

// MergeRange implements kv.Merger: merging a table's ranges needs admin
// on the table.
func (g *Guard) MergeRange(ctx context.Context, req *cairnpb.MergeRangeRequest) (*cairnpb.MergeRangeResponse, error) {
	if err := g.a.CheckTableAdmin(ctxPrincipal(ctx), req.Table); err != nil {
		return nil, err
	}
	m, ok := g.next.(kv.Merger)
	if !ok {
		return nil, kv.Errorf(kv.ErrInternal, "range merges are not available")
	}
	return m.MergeRange(ctx, req)
}

// Ready implements kv.Service. Readiness is not secret (load balancers
// probe it without credentials).
func (g *Guard) Ready(ctx context.Context) error { return g.next.Ready(ctx) }

// Watch implements kv.Watcher: watching needs read on the key, or on the
// whole prefix.
func (g *Guard) Watch(ctx context.Context, req *cairnpb.WatchRequest, send func(*cairnpb.WatchResponse) error) error {
	p := ctxPrincipal(ctx)
	if err := g.a.CheckWatch(p, req); err != nil {
		return err
	}
	w, ok := g.next.(kv.Watcher)
	if !ok {
		return kv.Errorf(kv.ErrInternal, "this server cannot watch")
	}
	return w.Watch(ctx, req, send)
}

// History implements kv.Historian: reading a key's history needs read on
// the key.
func (g *Guard) History(ctx context.Context, req *cairnpb.HistoryRequest) (*cairnpb.HistoryResponse, error) {
	p := ctxPrincipal(ctx)
	if err := g.a.Check(p, req.Table, req.Key, PermRead); err != nil {
		return nil, err
	}
	h, ok := g.next.(kv.Historian)
	if !ok {
		return nil, kv.Errorf(kv.ErrInternal, "this server cannot read history")
	}
	return h.History(outgoing(ctx, p), req)
}

// Backup implements kv.Backuper: taking a backup reads every table and the
// auth records, so it needs cluster admin (admin on "*").
func (g *Guard) Backup(ctx context.Context, req *cairnpb.BackupRequest, send func(*cairnpb.BackupChunk) error) error {
	b, err := g.backuper(ctx)
	if err != nil {
		return err
	}
	return b.Backup(outgoing(ctx, ctxPrincipal(ctx)), req, send)
}

// RestoreBegin implements kv.Backuper; it needs cluster admin.
func (g *Guard) RestoreBegin(ctx context.Context, req *cairnpb.RestoreBeginRequest) (*cairnpb.RestoreBeginResponse, error) {
	b, err := g.backuper(ctx)
	if err != nil {
		return nil, err
	}
	return b.RestoreBegin(outgoing(ctx, ctxPrincipal(ctx)), req)
}

// RestoreData implements kv.Backuper; it needs cluster admin.
func (g *Guard) RestoreData(ctx context.Context, req *cairnpb.RestoreDataRequest) (*cairnpb.RestoreDataResponse, error) {
	b, err := g.backuper(ctx)
	if err != nil {
		return nil, err
	}
	return b.RestoreData(outgoing(ctx, ctxPrincipal(ctx)), req)
}

func (g *Guard) backuper(ctx context.Context) (kv.Backuper, error) {
	if err := g.CheckClusterAdmin(ctx); err != nil {
		return nil, err
	}
	b, ok := g.next.(kv.Backuper)
	if !ok {
		return nil, kv.Errorf(kv.ErrInternal, "this server cannot back up or restore")
	}
	return b, nil
}
