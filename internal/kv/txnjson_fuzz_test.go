package kv

import (
	"errors"
	"testing"

	"github.com/cairn-db/cairn/api/cairnpb"
)

var fuzzTxnLimits = Limits{MaxKeyBytes: 64, MaxValueBytes: 256, MaxListLimit: 20, DefaultListLimit: 5}

// FuzzTxnJSON: decodeTxn never panics; what it accepts has at least one
// op, every op of a known kind, a valid table, a key and value within the
// limits, a value only on puts, and at most one compare per condition.
//
//	go test -run='^$' -fuzz=FuzzTxnJSON -fuzztime=10s ./internal/kv/
func FuzzTxnJSON(f *testing.F) {
	for _, s := range []string{
		`{"ops":[{"op":"read","table":"default","key":"a"}]}`,
		`{"ops":[{"op":"check","table":"t","key":"a","version":5},{"op":"put","table":"t","key_base64":"AA==","value":"v","if_value":"w"}]}`,
		`{"ops":[{"op":"delete","table":"t","key":"k","if_absent":true}]}`,
		`{"ops":[{"op":"check","table":"t","key":"k","value_base64":""}]}`,
		`{"ops":null}`, `{"ops":[{}]}`, `nul`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := DecodeTxnJSON(body, fuzzTxnLimits)
		if err != nil {
			if !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("error of the wrong kind: %v", err)
			}
			return
		}
		if len(req.Ops) == 0 {
			t.Fatal("accepted an empty transaction")
		}
		for _, op := range req.Ops {
			if ValidateTableName(op.Table) != nil || fuzzTxnLimits.ValidateKey(op.Key) != nil || fuzzTxnLimits.ValidateValue(op.Value) != nil {
				t.Fatalf("accepted an op over the limits: %v", op)
			}
			switch op.Kind {
			case cairnpb.TxnOp_PUT:
				if op.Value == nil {
					t.Fatalf("put without a value: %v", op)
				}
			case cairnpb.TxnOp_READ, cairnpb.TxnOp_CHECK, cairnpb.TxnOp_DELETE:
				if op.Value != nil {
					t.Fatalf("%v with a value", op.Kind)
				}
				if op.Kind == cairnpb.TxnOp_CHECK && op.Condition == nil {
					t.Fatal("check without a compare")
				}
			default:
				t.Fatalf("unknown kind %v", op.Kind)
			}
			if c := op.Condition; c != nil {
				n := 0
				for _, set := range []bool{c.Version != 0, c.Absent, c.Value != nil} {
					if set {
						n++
					}
				}
				if n != 1 {
					t.Fatalf("condition with %d compares: %v", n, c)
				}
			}
		}
	})
}

// TestValueConditionOnlyInTransactions: a plain put, delete or batch with
// a value compare is refused (the state machine checks value compares
// only in transactions, so it would otherwise write unconditionally).
func TestValueConditionOnlyInTransactions(t *testing.T) {
	c := &cairnpb.Condition{Value: []byte("x")}
	if err := DefaultLimits.ValidatePut(&cairnpb.PutRequest{Table: "t", Key: []byte("k"), Condition: c}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("put: %v", err)
	}
	if err := DefaultLimits.ValidateDelete(&cairnpb.DeleteRequest{Table: "t", Key: []byte("k"), Condition: c}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("delete: %v", err)
	}
	b := &cairnpb.BatchRequest{Table: "t", Ops: []*cairnpb.BatchOp{{Op: &cairnpb.BatchOp_Put{Put: &cairnpb.PutRequest{Key: []byte("k"), Condition: c}}}}}
	if err := DefaultLimits.ValidateBatch(b); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("batch: %v", err)
	}
}
