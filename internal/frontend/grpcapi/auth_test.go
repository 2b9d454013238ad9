package grpcapi

// TestUnaryInterceptor: the authentication hook runs before every call;
// its error becomes an Unauthenticated status with the cairn code, and the
// context it returns is the one the service sees. The Auth service maps
// admin errors like the others.

import (
	"context"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/kv"
)

type userKey struct{}

type ctxService struct{ fakeService }

func (s *ctxService) Get(ctx context.Context, req *cairnpb.GetRequest) (*cairnpb.GetResponse, error) {
	if ctx.Value(userKey{}) != "alice" {
		return nil, kv.Errorf(kv.ErrPermissionDenied, "lacks read")
	}
	return &cairnpb.GetResponse{Value: []byte("v")}, nil
}

type denyAdmin struct{}

func (denyAdmin) Do(context.Context, *cairnpb.AuthAdminRequest) (*cairnpb.AuthAdminResponse, error) {
	return nil, kv.Errorf(kv.ErrPermissionDenied, "needs root")
}

func (denyAdmin) Login(context.Context, *cairnpb.LoginRequest) (*cairnpb.LoginResponse, error) {
	return nil, kv.Errorf(kv.ErrUnauthenticated, "no credentials")
}

func TestUnaryInterceptor(t *testing.T) {
	authn := func(ctx context.Context) (context.Context, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		switch v := md.Get("authorization"); {
		case len(v) == 0:
			return ctx, nil
		case v[0] == "Bearer alice":
			return context.WithValue(ctx, userKey{}, "alice"), nil
		}
		return nil, kv.Errorf(kv.ErrUnauthenticated, "invalid token")
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(grpc.UnaryInterceptor(UnaryInterceptor(authn)))
	Register(s, &ctxService{})
	RegisterAuth(s, denyAdmin{})
	go func() { _ = s.Serve(lis) }()
	defer s.Stop()
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	kvc := cairnpb.NewKVClient(cc)
	as := func(h string) context.Context {
		return metadata.AppendToOutgoingContext(context.Background(), "authorization", h)
	}
	req := &cairnpb.GetRequest{Table: "default", Key: []byte("k")}
	if _, err := kvc.Get(as("Bearer bad"), req); status.Code(err) != codes.Unauthenticated || reasonOf(status.Convert(err)) != "unauthenticated" {
		t.Fatalf("bad token: %v", err)
	}
	if _, err := kvc.Get(context.Background(), req); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("anonymous: %v", err)
	}
	if got, err := kvc.Get(as("Bearer alice"), req); err != nil || string(got.Value) != "v" {
		t.Fatalf("alice: %v %v", got, err)
	}
	ac := cairnpb.NewAuthClient(cc)
	if _, err := ac.Admin(as("Bearer alice"), &cairnpb.AuthAdminRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("admin: %v", err)
	}
	if _, err := ac.Login(context.Background(), &cairnpb.LoginRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("login: %v", err)
	}
}
