package grpcapi

import (
	"context"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"google.golang.org/grpc"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/kv"
)

// Option configures Register.
type Option func(*options)

type options struct {
	limits kv.Limits
}

// WithLimits sets the input limits checked before a request reaches the
// service (default kv.DefaultLimits). Pass the node's configured limits.
func WithLimits(l kv.Limits) Option {
	return func(o *options) { o.limits = l }
}

func collect(opts []Option) options {
	o := options{limits: kv.DefaultLimits}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// Register registers the KV, Tables and Cluster services on s, each a thin
// adapter over svc.
func Register(s *grpc.Server, svc kv.Service, opts ...Option) {
	o := collect(opts)
	h := &handler{svc: svc, limits: o.limits}
	cairnpb.RegisterKVServer(s, &kvServer{h: h})
	cairnpb.RegisterTablesServer(s, &tablesServer{h: h})
	cairnpb.RegisterClusterServer(s, &clusterServer{h: h})
}

// handler holds what the three services share. It is immutable after
// Register, so the handlers need no locking.
type handler struct {
	svc    kv.Service
	limits kv.Limits
}

type kvServer struct {
	cairnpb.UnimplementedKVServer
	h *handler
}

func (s *kvServer) Get(ctx context.Context, req *cairnpb.GetRequest) (*cairnpb.GetResponse, error) {
	if err := s.h.limits.ValidateGet(req); err != nil {
		return nil, toStatus(err)
	}
	resp, err := s.h.svc.Get(ctx, req)
	setMissHeader(ctx, err)
	return resp, toStatus(err)
}

func (s *kvServer) Put(ctx context.Context, req *cairnpb.PutRequest) (*cairnpb.PutResponse, error) {
	if err := s.h.limits.ValidatePut(req); err != nil {
		return nil, toStatus(err)
	}
	resp, err := s.h.svc.Put(ctx, req)
	return resp, toStatus(err)
}

func (s *kvServer) Delete(ctx context.Context, req *cairnpb.DeleteRequest) (*cairnpb.DeleteResponse, error) {
	if err := s.h.limits.ValidateDelete(req); err != nil {
		return nil, toStatus(err)
	}
	resp, err := s.h.svc.Delete(ctx, req)
	return resp, toStatus(err)
}

func (s *kvServer) List(ctx context.Context, req *cairnpb.ListRequest) (*cairnpb.ListResponse, error) {
	if _, err := s.h.limits.ValidateList(req); err != nil {
		return nil, toStatus(err)
	}
	if _, err := kv.DecodePageToken(req.PageToken, s.h.limits); err != nil {
		return nil, toStatus(err)
	}
	resp, err := s.h.svc.List(ctx, req)
	return resp, toStatus(err)
}

type tablesServer struct {
	cairnpb.UnimplementedTablesServer
	h *handler
}

func (s *tablesServer) CreateTable(ctx context.Context, req *cairnpb.CreateTableRequest) (*cairnpb.Table, error) {
	if err := kv.ValidateTableName(req.Name); err != nil {
		return nil, toStatus(err)
	}
	resp, err := s.h.svc.CreateTable(ctx, req)
	return resp, toStatus(err)
}

func (s *tablesServer) GetTable(ctx context.Context, req *cairnpb.GetTableRequest) (*cairnpb.Table, error) {
	if err := kv.ValidateTableName(req.Name); err != nil {
		return nil, toStatus(err)
	}
	resp, err := s.h.svc.GetTable(ctx, req)
	return resp, toStatus(err)
}

func (s *tablesServer) ListTables(ctx context.Context, req *cairnpb.ListTablesRequest) (*cairnpb.ListTablesResponse, error) {
	resp, err := s.h.svc.ListTables(ctx, req)
	return resp, toStatus(err)
}

func (s *tablesServer) DropTable(ctx context.Context, req *cairnpb.DropTableRequest) (*cairnpb.DropTableResponse, error) {
	if err := kv.ValidateTableName(req.Name); err != nil {
		return nil, toStatus(err)
	}
	resp, err := s.h.svc.DropTable(ctx, req)
	return resp, toStatus(err)
}

func (s *tablesServer) UpdateTable(ctx context.Context, req *cairnpb.UpdateTableRequest) (*cairnpb.Table, error) {
	if err := kv.ValidateTableName(req.Name); err != nil {
		return nil, toStatus(err)
	}
	resp, err := s.h.svc.UpdateTable(ctx, req)
	return resp, toStatus(err)
}

type clusterServer struct {
	cairnpb.UnimplementedClusterServer
	h *handler
}

func (s *clusterServer) SplitRange(ctx context.Context, req *cairnpb.SplitRangeRequest) (*cairnpb.SplitRangeResponse, error) {
	sp, ok := s.h.svc.(kv.Splitter)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "this server cannot split ranges")
	}
	resp, err := sp.SplitRange(ctx, req)
	return resp, toStatus(err)
}

func (s *clusterServer) MergeRange(ctx context.Context, req *cairnpb.MergeRangeRequest) (*cairnpb.MergeRangeResponse, error) {
	m, ok := s.h.svc.(kv.Merger)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "this server cannot merge ranges")
	}
	resp, err := m.MergeRange(ctx, req)
	return resp, toStatus(err)
}

func (s *clusterServer) NodeAction(ctx context.Context, req *cairnpb.NodeActionRequest) (*cairnpb.NodeActionResponse, error) {
	op, ok := s.h.svc.(kv.NodeOperator)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "this server cannot manage nodes")
	}
	resp, err := op.NodeAction(ctx, req)
	return resp, toStatus(err)
}

func (s *clusterServer) Routes(ctx context.Context, req *cairnpb.RoutesRequest) (*cairnpb.RoutesResponse, error) {
	rr, ok := s.h.svc.(kv.RouteReader)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "this server cannot tell routes")
	}
	resp, err := rr.Routes(ctx, req)
	return resp, toStatus(err)
}

func (s *clusterServer) Status(ctx context.Context, _ *cairnpb.ClusterStatusRequest) (*cairnpb.ClusterStatus, error) {
	resp, err := s.h.svc.ClusterStatus(ctx)
	return resp, toStatus(err)
}

// UnaryInterceptor authenticates every call with authn (which returns the
// call's context with its principal) before the handler runs; its errors
// become statuses (Unauthenticated).
func UnaryInterceptor(authn func(context.Context) (context.Context, error)) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := authn(ctx)
		if err != nil {
			return nil, toStatus(err)
		}
		return handler(ctx, req)
	}
}

// AuthAdmin is what the Auth service needs (internal/auth.Admin).
type AuthAdmin interface {
	Do(ctx context.Context, req *cairnpb.AuthAdminRequest) (*cairnpb.AuthAdminResponse, error)
	Login(ctx context.Context, req *cairnpb.LoginRequest) (*cairnpb.LoginResponse, error)
}

// RegisterAuth registers the Auth service over admin.
func RegisterAuth(s *grpc.Server, admin AuthAdmin) {
	cairnpb.RegisterAuthServer(s, &authServer{admin: admin})
}

type authServer struct {
	cairnpb.UnimplementedAuthServer
	admin AuthAdmin
}

func (s *authServer) Login(ctx context.Context, req *cairnpb.LoginRequest) (*cairnpb.LoginResponse, error) {
	resp, err := s.admin.Login(ctx, req)
	return resp, toStatus(err)
}

func (s *authServer) Admin(ctx context.Context, req *cairnpb.AuthAdminRequest) (*cairnpb.AuthAdminResponse, error) {
	resp, err := s.admin.Do(ctx, req)
	return resp, toStatus(err)
}

// RegisterWatch registers the Watch service over w.
func RegisterWatch(s *grpc.Server, w kv.Watcher, opts ...Option) {
	o := collect(opts)
	cairnpb.RegisterWatchServer(s, &watchServer{w: w, limits: o.limits})
}

type watchServer struct {
	cairnpb.UnimplementedWatchServer
	w      kv.Watcher
	limits kv.Limits
}

func (s *watchServer) Watch(req *cairnpb.WatchRequest, stream grpc.ServerStreamingServer[cairnpb.WatchResponse]) error {
	if err := s.limits.ValidateWatch(req); err != nil {
		return toStatus(err)
	}
	return toStatus(s.w.Watch(stream.Context(), req, stream.Send))
}

// StreamInterceptor is UnaryInterceptor for streaming calls.
func StreamInterceptor(authn func(context.Context) (context.Context, error)) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := authn(ss.Context())
		if err != nil {
			return toStatus(err)
		}
		return handler(srv, &authedStream{ServerStream: ss, ctx: ctx})
	}
}

type authedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *authedStream) Context() context.Context { return s.ctx }

// RegisterHistory registers the History service over h.
func RegisterHistory(s *grpc.Server, h kv.Historian, opts ...Option) {
	o := collect(opts)
	cairnpb.RegisterHistoryServer(s, &historyServer{h: h, limits: o.limits})
}

type historyServer struct {
	cairnpb.UnimplementedHistoryServer
	h      kv.Historian
	limits kv.Limits
}

func (s *historyServer) History(ctx context.Context, req *cairnpb.HistoryRequest) (*cairnpb.HistoryResponse, error) {
	if err := s.limits.ValidateHistory(req); err != nil {
		return nil, toStatus(err)
	}
	resp, err := s.h.History(ctx, req)
	return resp, toStatus(err)
}

// Txn runs a transaction (docs/design/transactions.md). A conflict with
// another transaction is ABORTED, which clients retry.
func (s *kvServer) Txn(ctx context.Context, req *cairnpb.TxnRequest) (*cairnpb.TxnResponse, error) {
	tx, ok := s.h.svc.(kv.Transactor)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "transactions are not available")
	}
	resp, err := tx.Txn(ctx, req)
	return resp, toStatus(err)
}
