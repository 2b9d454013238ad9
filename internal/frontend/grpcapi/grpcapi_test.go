// Tests of the gRPC front end. Goal: every kv error kind reaches a gRPC
// client as the code of the error table with its kv code attached, requests
// and responses pass through the adapters unchanged, and bad input is
// rejected before the service sees it. Method: a fake kv.Service behind a
// real grpc.Server on a loopback listener, called with the generated
// clients.
package grpcapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/kv"
)

// fakeService answers every method with err when it is set, and otherwise
// with a response derived from the request. calls counts the requests that
// reached it.
type fakeService struct {
	err   error
	calls atomic.Int64
}

func (f *fakeService) Get(_ context.Context, req *cairnpb.GetRequest) (*cairnpb.GetResponse, error) {
	f.calls.Add(1)
	if f.err != nil {
		return nil, f.err
	}
	return &cairnpb.GetResponse{Value: append([]byte(req.Table+"/"), req.Key...), Version: 7}, nil
}

func (f *fakeService) Put(_ context.Context, req *cairnpb.PutRequest) (*cairnpb.PutResponse, error) {
	f.calls.Add(1)
	if f.err != nil {
		return nil, f.err
	}
	return &cairnpb.PutResponse{Version: req.GetCondition().GetVersion() + 1}, nil
}

func (f *fakeService) Delete(_ context.Context, req *cairnpb.DeleteRequest) (*cairnpb.DeleteResponse, error) {
	f.calls.Add(1)
	if f.err != nil {
		return nil, f.err
	}
	return &cairnpb.DeleteResponse{Version: req.GetCondition().GetVersion()}, nil
}

func (f *fakeService) List(_ context.Context, req *cairnpb.ListRequest) (*cairnpb.ListResponse, error) {
	f.calls.Add(1)
	if f.err != nil {
		return nil, f.err
	}
	return &cairnpb.ListResponse{
		Items:         []*cairnpb.KeyValue{{Key: req.Prefix, Version: uint64(req.Limit)}},
		NextPageToken: kv.EncodePageToken(req.Prefix),
	}, nil
}

func (f *fakeService) CreateTable(_ context.Context, req *cairnpb.CreateTableRequest) (*cairnpb.Table, error) {
	f.calls.Add(1)
	if f.err != nil {
		return nil, f.err
	}
	return &cairnpb.Table{Name: req.Name, Partitioning: req.Partitioning, Id: 2}, nil
}

func (f *fakeService) GetTable(_ context.Context, req *cairnpb.GetTableRequest) (*cairnpb.Table, error) {
	f.calls.Add(1)
	if f.err != nil {
		return nil, f.err
	}
	return &cairnpb.Table{Name: req.Name, Id: 3}, nil
}

func (f *fakeService) ListTables(context.Context, *cairnpb.ListTablesRequest) (*cairnpb.ListTablesResponse, error) {
	f.calls.Add(1)
	if f.err != nil {
		return nil, f.err
	}
	return &cairnpb.ListTablesResponse{Tables: []*cairnpb.Table{{Name: "default", Id: 1}}}, nil
}

func (f *fakeService) UpdateTable(_ context.Context, req *cairnpb.UpdateTableRequest) (*cairnpb.Table, error) {
	f.calls.Add(1)
	if f.err != nil {
		return nil, f.err
	}
	return &cairnpb.Table{Name: req.Name}, nil
}

func (f *fakeService) DropTable(context.Context, *cairnpb.DropTableRequest) (*cairnpb.DropTableResponse, error) {
	f.calls.Add(1)
	if f.err != nil {
		return nil, f.err
	}
	return &cairnpb.DropTableResponse{}, nil
}

func (f *fakeService) ClusterStatus(context.Context) (*cairnpb.ClusterStatus, error) {
	f.calls.Add(1)
	if f.err != nil {
		return nil, f.err
	}
	return &cairnpb.ClusterStatus{Nodes: []*cairnpb.NodeStatus{{Id: 1, Name: "n1", Alive: true}}}, nil
}

func (f *fakeService) Ready(context.Context) error { return f.err }

// clients are the generated clients of one test server.
type clients struct {
	kv      cairnpb.KVClient
	tables  cairnpb.TablesClient
	cluster cairnpb.ClusterClient
}

// startServer serves svc on a loopback port until the test ends.
func startServer(t testing.TB, svc kv.Service, opts ...Option) clients {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	Register(s, svc, opts...)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(lis)
	}()
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cc.Close()
		s.Stop()
		<-done
	})
	return clients{
		kv:      cairnpb.NewKVClient(cc),
		tables:  cairnpb.NewTablesClient(cc),
		cluster: cairnpb.NewClusterClient(cc),
	}
}

// reasonOf returns the ErrorInfo reason of a status, or "".
func reasonOf(st *status.Status) string {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.Domain == ErrorDomain {
			return info.Reason
		}
	}
	return ""
}

func TestErrorTable(t *testing.T) {
	for _, e := range errorTable {
		t.Run(kv.Code(e.err), func(t *testing.T) {
			err := toStatus(kv.Errorf(e.err, "detail %d", 42))
			st, ok := status.FromError(err)
			if !ok {
				t.Fatalf("toStatus returned a non-status error %v", err)
			}
			if st.Code() != e.code {
				t.Errorf("code = %v, want %v", st.Code(), e.code)
			}
			want := kv.Code(e.err) + ": " + e.err.Error() + ": detail 42"
			if st.Message() != want {
				t.Errorf("message = %q, want %q", st.Message(), want)
			}
			if r := reasonOf(st); r != kv.Code(e.err) {
				t.Errorf("reason = %q, want %q", r, kv.Code(e.err))
			}
		})
	}
}

func TestErrorTableCoversEveryKVCode(t *testing.T) {
	// Every code kv knows must have its own row, so that a new kv kind is
	// not silently reported as internal.
	known := map[string]bool{}
	for _, e := range errorTable {
		known[kv.Code(e.err)] = true
	}
	for _, c := range []string{"invalid_argument", "not_found", "table_not_found", "table_exists",
		"condition_failed", "unavailable", "timeout", "not_leader", "internal", "txn_conflict", "txn_aborted"} {
		if !known[c] {
			t.Errorf("kv code %q has no row in errorTable", c)
		}
		if kv.Code(kv.FromCode(c, "")) != c {
			t.Errorf("kv.FromCode(%q) does not round-trip", c)
		}
	}
}

func TestToStatusOtherErrors(t *testing.T) {
	for _, tc := range []struct {
		err    error
		code   codes.Code
		reason string
	}{
		{nil, codes.OK, ""},
		{errors.New("disk on fire"), codes.Internal, "internal"},
		{context.Canceled, codes.Canceled, "canceled"},
		{fmt.Errorf("propose: %w", context.DeadlineExceeded), codes.DeadlineExceeded, "timeout"},
		{kv.FromCode("condition_failed", "version is 3"), codes.FailedPrecondition, "condition_failed"},
		{status.Error(codes.ResourceExhausted, "busy"), codes.ResourceExhausted, ""},
	} {
		st := status.Convert(toStatus(tc.err))
		if st.Code() != tc.code || reasonOf(st) != tc.reason {
			t.Errorf("toStatus(%v) = %v reason %q, want %v reason %q", tc.err, st.Code(), reasonOf(st), tc.code, tc.reason)
		}
	}
}

func TestPassThrough(t *testing.T) {
	svc := &fakeService{}
	c := startServer(t, svc)
	ctx := context.Background()

	get, err := c.kv.Get(ctx, &cairnpb.GetRequest{Table: "t1", Key: []byte("k")})
	if err != nil || string(get.Value) != "t1/k" || get.Version != 7 {
		t.Errorf("Get = %v, %v", get, err)
	}
	put, err := c.kv.Put(ctx, &cairnpb.PutRequest{Table: "t1", Key: []byte("k"), Value: []byte("v"),
		Condition: &cairnpb.Condition{Version: 4}})
	if err != nil || put.Version != 5 {
		t.Errorf("Put = %v, %v", put, err)
	}
	del, err := c.kv.Delete(ctx, &cairnpb.DeleteRequest{Table: "t1", Key: []byte("k"), Condition: &cairnpb.Condition{Version: 9}})
	if err != nil || del.Version != 9 {
		t.Errorf("Delete = %v, %v", del, err)
	}
	list, err := c.kv.List(ctx, &cairnpb.ListRequest{Table: "t1", Prefix: []byte("p"), Limit: 3})
	if err != nil || len(list.Items) != 1 || string(list.Items[0].Key) != "p" || list.Items[0].Version != 3 ||
		list.NextPageToken != kv.EncodePageToken([]byte("p")) {
		t.Errorf("List = %v, %v", list, err)
	}
	tbl, err := c.tables.CreateTable(ctx, &cairnpb.CreateTableRequest{Name: "t2", Partitioning: "range"})
	if err != nil || !proto.Equal(tbl, &cairnpb.Table{Name: "t2", Partitioning: "range", Id: 2}) {
		t.Errorf("CreateTable = %v, %v", tbl, err)
	}
	tbl, err = c.tables.GetTable(ctx, &cairnpb.GetTableRequest{Name: "t2"})
	if err != nil || tbl.Name != "t2" || tbl.Id != 3 {
		t.Errorf("GetTable = %v, %v", tbl, err)
	}
	tbls, err := c.tables.ListTables(ctx, &cairnpb.ListTablesRequest{})
	if err != nil || len(tbls.Tables) != 1 || tbls.Tables[0].Name != "default" {
		t.Errorf("ListTables = %v, %v", tbls, err)
	}
	if _, err := c.tables.DropTable(ctx, &cairnpb.DropTableRequest{Name: "t2"}); err != nil {
		t.Errorf("DropTable: %v", err)
	}
	cs, err := c.cluster.Status(ctx, &cairnpb.ClusterStatusRequest{})
	if err != nil || len(cs.Nodes) != 1 || cs.Nodes[0].Name != "n1" {
		t.Errorf("Status = %v, %v", cs, err)
	}
	if n := svc.calls.Load(); n != 9 {
		t.Errorf("service saw %d calls, want 9", n)
	}
}

// TestErrorsOverTheWire checks that each method carries service errors to
// the client with the table's code and the kv code.
func TestErrorsOverTheWire(t *testing.T) {
	svc := &fakeService{}
	c := startServer(t, svc)
	ctx := context.Background()
	calls := map[string]func() error{
		"Get": func() error {
			_, err := c.kv.Get(ctx, &cairnpb.GetRequest{Table: "t", Key: []byte("k")})
			return err
		},
		"Put": func() error {
			_, err := c.kv.Put(ctx, &cairnpb.PutRequest{Table: "t", Key: []byte("k")})
			return err
		},
		"Delete": func() error {
			_, err := c.kv.Delete(ctx, &cairnpb.DeleteRequest{Table: "t", Key: []byte("k")})
			return err
		},
		"List": func() error {
			_, err := c.kv.List(ctx, &cairnpb.ListRequest{Table: "t"})
			return err
		},
		"CreateTable": func() error {
			_, err := c.tables.CreateTable(ctx, &cairnpb.CreateTableRequest{Name: "t"})
			return err
		},
		"GetTable": func() error {
			_, err := c.tables.GetTable(ctx, &cairnpb.GetTableRequest{Name: "t"})
			return err
		},
		"ListTables": func() error {
			_, err := c.tables.ListTables(ctx, &cairnpb.ListTablesRequest{})
			return err
		},
		"DropTable": func() error {
			_, err := c.tables.DropTable(ctx, &cairnpb.DropTableRequest{Name: "t"})
			return err
		},
		"Status": func() error {
			_, err := c.cluster.Status(ctx, &cairnpb.ClusterStatusRequest{})
			return err
		},
	}
	for _, e := range errorTable {
		svc.err = kv.Errorf(e.err, "from the fake")
		for name, call := range calls {
			st := status.Convert(call())
			if st.Code() != e.code || reasonOf(st) != kv.Code(e.err) ||
				!strings.HasPrefix(st.Message(), kv.Code(e.err)+": ") {
				t.Errorf("%s with %v: got %v %q reason %q", name, e.err, st.Code(), st.Message(), reasonOf(st))
			}
		}
	}
}

func TestInvalidInputRejectedAtTheEdge(t *testing.T) {
	svc := &fakeService{}
	limits := kv.DefaultLimits
	limits.MaxKeyBytes = 8
	limits.MaxValueBytes = 16
	c := startServer(t, svc, WithLimits(limits))
	ctx := context.Background()
	for name, call := range map[string]func() error{
		"bad table": func() error {
			_, err := c.kv.Get(ctx, &cairnpb.GetRequest{Table: "Bad Name", Key: []byte("k")})
			return err
		},
		"empty key": func() error {
			_, err := c.kv.Get(ctx, &cairnpb.GetRequest{Table: "t"})
			return err
		},
		"long key": func() error {
			_, err := c.kv.Put(ctx, &cairnpb.PutRequest{Table: "t", Key: []byte("123456789")})
			return err
		},
		"long value": func() error {
			_, err := c.kv.Put(ctx, &cairnpb.PutRequest{Table: "t", Key: []byte("k"), Value: make([]byte, 17)})
			return err
		},
		"two conditions": func() error {
			_, err := c.kv.Delete(ctx, &cairnpb.DeleteRequest{Table: "t", Key: []byte("k"),
				Condition: &cairnpb.Condition{Version: 1, Absent: true}})
			return err
		},
		"list limit": func() error {
			_, err := c.kv.List(ctx, &cairnpb.ListRequest{Table: "t", Limit: 1 << 30})
			return err
		},
		"page token": func() error {
			_, err := c.kv.List(ctx, &cairnpb.ListRequest{Table: "t", PageToken: "!!"})
			return err
		},
		"create table name": func() error {
			_, err := c.tables.CreateTable(ctx, &cairnpb.CreateTableRequest{Name: strings.Repeat("a", 65)})
			return err
		},
		"drop table name": func() error {
			_, err := c.tables.DropTable(ctx, &cairnpb.DropTableRequest{Name: ""})
			return err
		},
		"get table name": func() error {
			_, err := c.tables.GetTable(ctx, &cairnpb.GetTableRequest{Name: "a/b"})
			return err
		},
	} {
		st := status.Convert(call())
		if st.Code() != codes.InvalidArgument || reasonOf(st) != "invalid_argument" {
			t.Errorf("%s: got %v %q", name, st.Code(), st.Message())
		}
	}
	if n := svc.calls.Load(); n != 0 {
		t.Errorf("service saw %d calls of invalid requests", n)
	}
}
