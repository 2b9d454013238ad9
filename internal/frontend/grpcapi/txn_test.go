package grpcapi

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/kv"
	"github.com/cairn-db/cairn/internal/kv/kvtest"
)

// TestTxn: KV.Txn passes a transaction through, FAILED_PRECONDITION for a
// failed check, ABORTED (reason txn_conflict) for a conflict, and
// UNIMPLEMENTED over a service without transactions.
func TestTxn(t *testing.T) {
	svc := kvtest.NewMemService()
	c := startServer(t, svc)
	ctx := context.Background()
	resp, err := c.kv.Txn(ctx, &cairnpb.TxnRequest{Ops: []*cairnpb.TxnOp{
		{Kind: cairnpb.TxnOp_PUT, Table: "default", Key: []byte("a"), Value: []byte("1")},
		{Kind: cairnpb.TxnOp_READ, Table: "default", Key: []byte("b")},
	}})
	if err != nil || len(resp.Results) != 2 || resp.Results[0].Version == 0 || resp.Results[1].Found {
		t.Fatalf("txn: %v %v", resp, err)
	}
	_, err = c.kv.Txn(ctx, &cairnpb.TxnRequest{Ops: []*cairnpb.TxnOp{
		{Kind: cairnpb.TxnOp_CHECK, Table: "default", Key: []byte("a"), Condition: &cairnpb.Condition{Absent: true}},
	}})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("failed check: %v", err)
	}
	svc.SetFail(func(method string, _ []byte) error {
		if method == "Txn" {
			return kv.Errorf(kv.ErrTxnConflict, "locked")
		}
		return nil
	})
	_, err = c.kv.Txn(ctx, &cairnpb.TxnRequest{Ops: []*cairnpb.TxnOp{{Kind: cairnpb.TxnOp_READ, Table: "default", Key: []byte("a")}}})
	if st, _ := status.FromError(err); st.Code() != codes.Aborted || reasonOf(st) != "txn_conflict" {
		t.Fatalf("conflict: %v", err)
	}
	plain := startServer(t, &fakeService{})
	if _, err := plain.kv.Txn(ctx, &cairnpb.TxnRequest{}); status.Code(err) != codes.Unimplemented {
		t.Fatalf("without transactions: %v", err)
	}
}
