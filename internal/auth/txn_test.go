package auth

import (
	"context"
	"errors"
	"testing"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/kv"
)

type txnRecorder struct {
	Service
	calls int
}

func (r *txnRecorder) Txn(context.Context, *cairnpb.TxnRequest) (*cairnpb.TxnResponse, error) {
	r.calls++
	return &cairnpb.TxnResponse{}, nil
}

// TestTxnChecks: every key of a transaction is checked before it runs:
// read for reads and checks, write for writes (and read too when the
// write is conditional); a forwarded prewrite is checked again against
// its own table; ending and resolving transactions are node-internal.
func TestTxnChecks(t *testing.T) {
	a := newTestAuth(true)
	next := &txnRecorder{}
	g := NewGuard(a, next)
	as := func(user string) context.Context { return WithPrincipal(context.Background(), &Principal{User: user}) }
	op := func(kind cairnpb.TxnOp_Kind, table, key string, cond *cairnpb.Condition) *cairnpb.TxnOp {
		return &cairnpb.TxnOp{Kind: kind, Table: table, Key: []byte(key), Condition: cond}
	}
	cases := []struct {
		user string
		ops  []*cairnpb.TxnOp
		ok   bool
	}{
		{"reader", []*cairnpb.TxnOp{op(cairnpb.TxnOp_READ, "billing", "invoices/1", nil)}, true},
		{"reader", []*cairnpb.TxnOp{op(cairnpb.TxnOp_READ, "billing", "invoices/1", nil), op(cairnpb.TxnOp_READ, "billing", "secret", nil)}, false},
		{"reader", []*cairnpb.TxnOp{op(cairnpb.TxnOp_PUT, "billing", "invoices/1", nil)}, false},
		{"writer", []*cairnpb.TxnOp{op(cairnpb.TxnOp_PUT, "billing", "a", nil), op(cairnpb.TxnOp_CHECK, "billing", "b", &cairnpb.Condition{Absent: true})}, true},
		{"writer", []*cairnpb.TxnOp{op(cairnpb.TxnOp_PUT, "billing", "a", nil), op(cairnpb.TxnOp_READ, "logs", "b", nil)}, false},
		{"app", []*cairnpb.TxnOp{op(cairnpb.TxnOp_PUT, "logs", "a", nil)}, true},
		{"app", []*cairnpb.TxnOp{op(cairnpb.TxnOp_PUT, "logs", "a", &cairnpb.Condition{Value: []byte("x")})}, false},
		{"app", []*cairnpb.TxnOp{op(cairnpb.TxnOp_DELETE, "logs", "a", &cairnpb.Condition{Version: 2})}, false},
	}
	for _, c := range cases {
		before := next.calls
		_, err := g.Txn(as(c.user), &cairnpb.TxnRequest{Ops: c.ops})
		if c.ok != (err == nil) || (!c.ok && !errors.Is(err, kv.ErrPermissionDenied)) {
			t.Errorf("%s %v: %v", c.user, c.ops, err)
		}
		if !c.ok && next.calls != before {
			t.Errorf("%s %v: denied but ran", c.user, c.ops)
		}
	}
	pre := &cairnpb.Request{Op: &cairnpb.Request_TxnPrewrite{TxnPrewrite: &cairnpb.TxnPrewrite{Table: "billing",
		Ops: []*cairnpb.TxnOp{op(cairnpb.TxnOp_PUT, "ignored", "a", nil)}}}}
	if err := a.CheckRequest(&Principal{User: "writer"}, pre); err != nil {
		t.Errorf("forwarded prewrite by a writer: %v", err)
	}
	if err := a.CheckRequest(&Principal{User: "reader"}, pre); !errors.Is(err, kv.ErrPermissionDenied) {
		t.Errorf("forwarded prewrite by a reader: %v", err)
	}
	for _, r := range []*cairnpb.Request{
		{Op: &cairnpb.Request_TxnEnd{TxnEnd: &cairnpb.TxnEnd{}}},
		{Op: &cairnpb.Request_TxnResolve{TxnResolve: &cairnpb.TxnResolve{Table: "billing"}}},
	} {
		if err := a.CheckRequest(nil, r); err != nil {
			t.Errorf("internal %T: %v", r.Op, err)
		}
	}
}
