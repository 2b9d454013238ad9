package e2e

// Goal: a plain grpc-go client (the generated stubs, nothing of cairn's
// client library) and a reflection client such as grpcurl uses both work
// against the client port, which serves HTTP/JSON on the same socket.
// Method: a 3-node cluster; put through one node's gRPC, get through
// another's, list the services by server reflection, and check that the
// HTTP API on the same port still answers.

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/cairn-db/cairn/api/cairnpb"
)

func TestPlainGRPCClientAndReflection(t *testing.T) {
	c := StartCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dial := func(n *Node) *grpc.ClientConn {
		conn, err := grpc.NewClient(n.Client, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	a, b := dial(c.Nodes[0]), dial(c.Nodes[1])

	put, err := cairnpb.NewKVClient(a).Put(ctx, &cairnpb.PutRequest{Table: "default", Key: []byte("grpc-key"), Value: []byte("grpc-value")})
	if err != nil {
		t.Fatalf("put: %v", err)
	}
	got, err := cairnpb.NewKVClient(b).Get(ctx, &cairnpb.GetRequest{Table: "default", Key: []byte("grpc-key")})
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if string(got.Value) != "grpc-value" || got.Version != put.Version {
		t.Fatalf("get = %q v%d, want %q v%d", got.Value, got.Version, "grpc-value", put.Version)
	}
	_, err = cairnpb.NewKVClient(b).Get(ctx, &cairnpb.GetRequest{Table: "nope", Key: []byte("k")})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("get from an unknown table: %v, want NotFound", err)
	}
	_, err = cairnpb.NewKVClient(a).Put(ctx, &cairnpb.PutRequest{Table: "default", Key: []byte("grpc-key"), Value: []byte("x"),
		Condition: &cairnpb.Condition{Version: put.Version + 1}})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("put with a wrong version: %v, want FailedPrecondition", err)
	}

	// Server reflection, as grpcurl uses it.
	stream, err := reflectionpb.NewServerReflectionClient(a).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatalf("reflection: %v", err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{ListServices: ""},
	}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("reflection recv: %v", err)
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.Name)
	}
	for _, want := range []string{"cairn.v1.KV", "cairn.v1.Tables", "cairn.v1.Cluster"} {
		if !slices.Contains(names, want) {
			t.Errorf("reflection lists %v; %s is missing", names, want)
		}
	}
	_ = stream.CloseSend()

	// HTTP on the same port.
	hresp, err := http.Get("http://" + c.Nodes[0].Client + "/v1/kv/default/grpc-key")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(hresp.Body)
	hresp.Body.Close()
	if hresp.StatusCode != 200 || string(body) != "grpc-value" {
		t.Fatalf("HTTP get on the gRPC port: %d %q", hresp.StatusCode, body)
	}
}
