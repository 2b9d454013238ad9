package httpapi

import (
	"encoding/base64"
	"net/http"
	"unicode/utf8"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/kv"
)

// POST /v1/txn: a transaction as JSON (docs/design/transactions.md).
//
//	{"ops": [
//	  {"op": "read",   "table": "default", "key": "a"},
//	  {"op": "check",  "table": "default", "key": "b", "version": 117690633200599040},
//	  {"op": "check",  "table": "default", "key": "c", "absent": true},
//	  {"op": "check",  "table": "default", "key": "d", "value": "on"},
//	  {"op": "put",    "table": "acct",    "key": "x", "value": "10", "if_version": 117690633200599041},
//	  {"op": "delete", "table": "acct",    "key": "y"}
//	]}
//
// Keys and values are UTF-8 strings; key_base64 / value_base64 carry any
// bytes instead. On a put, value is the value written and if_version /
// if_absent / if_value its condition; on a check, version / absent /
// value are the compare. The reply lists one result per op, in order:
// {"results": [{"found": true, "value": "<base64>", "version": V}]}
// (value only for reads and checks). 412 when a check or condition
// fails, 409 (code txn_conflict, retryable) on a conflict.

type txnOpJSON struct {
	Op          string  `json:"op"`
	Table       string  `json:"table"`
	Key         *string `json:"key"`
	KeyBase64   *string `json:"key_base64"`
	Value       *string `json:"value"`
	ValueBase64 *string `json:"value_base64"`
	Version     uint64  `json:"version"`
	Absent      bool    `json:"absent"`
	IfVersion   uint64  `json:"if_version"`
	IfAbsent    bool    `json:"if_absent"`
	IfValue     *string `json:"if_value"`
}

type txnJSON struct {
	Ops []txnOpJSON `json:"ops"`
}

type txnResultJSON struct {
	Found   bool    `json:"found"`
	Value   *string `json:"value,omitempty"` // base64
	Version uint64  `json:"version"`
}

type txnReplyJSON struct {
	Results []txnResultJSON `json:"results"`
}

// maxTxnBodyBytes bounds a POST /v1/txn body: the value limit times 16
// (the transaction limits proper are the router's).
func (h *handler) maxTxnBodyBytes() int { return 16*h.limits.MaxValueBytes + 64<<10 }

func (h *handler) txn(w *statusWriter, r *http.Request) {
	tx, ok := h.svc.(kv.Transactor)
	if !ok {
		h.fail(w, r, kv.Errorf(kv.ErrInternal, "transactions are not available"))
		return
	}
	body, err := readBody(w, r, h.maxTxnBodyBytes())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	req, err := decodeTxn(body, h.limits)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	resp, err := tx.Txn(r.Context(), req)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := txnReplyJSON{Results: make([]txnResultJSON, len(resp.Results))}
	for i, res := range resp.Results {
		out.Results[i] = txnResultJSON{Found: res.Found, Version: res.Version}
		if k := req.Ops[i].Kind; res.Found && (k == cairnpb.TxnOp_READ || k == cairnpb.TxnOp_CHECK) {
			v := base64.StdEncoding.EncodeToString(res.Value)
			out.Results[i].Value = &v
		}
	}
	writeJSON(w, r, http.StatusOK, out)
}

// decodeTxn parses and checks a POST /v1/txn body.
func decodeTxn(body []byte, limits kv.Limits) (*cairnpb.TxnRequest, error) {
	var in txnJSON
	if err := decodeStrict(body, &in); err != nil {
		return nil, err
	}
	if len(in.Ops) == 0 {
		return nil, kv.Errorf(kv.ErrInvalidArgument, "a transaction needs ops")
	}
	req := &cairnpb.TxnRequest{Ops: make([]*cairnpb.TxnOp, len(in.Ops))}
	for i, o := range in.Ops {
		op, err := decodeTxnOp(o, limits)
		if err != nil {
			return nil, kv.Errorf(kv.ErrInvalidArgument, "op %d: %v", i, err)
		}
		req.Ops[i] = op
	}
	return req, nil
}

func decodeTxnOp(o txnOpJSON, limits kv.Limits) (*cairnpb.TxnOp, error) {
	op := &cairnpb.TxnOp{Table: o.Table}
	if err := kv.ValidateTableName(o.Table); err != nil {
		return nil, err
	}
	key, err := bytesField("key", o.Key, o.KeyBase64, true)
	if err != nil {
		return nil, err
	}
	if err := limits.ValidateKey(key); err != nil {
		return nil, err
	}
	op.Key = key
	value, err := bytesField("value", o.Value, o.ValueBase64, false)
	if err != nil {
		return nil, err
	}
	cond := func(version uint64, absent bool, value []byte) (*cairnpb.Condition, error) {
		n := 0
		for _, set := range []bool{version != 0, absent, value != nil} {
			if set {
				n++
			}
		}
		if n > 1 {
			return nil, kv.Errorf(kv.ErrInvalidArgument, "give one of a version, absent and a value to compare")
		}
		if n == 0 {
			return nil, nil
		}
		return &cairnpb.Condition{Version: version, Absent: absent, Value: value}, nil
	}
	switch o.Op {
	case "read":
		if value != nil || o.Version != 0 || o.Absent || o.IfVersion != 0 || o.IfAbsent || o.IfValue != nil {
			return nil, kv.Errorf(kv.ErrInvalidArgument, "a read has only a table and a key")
		}
		op.Kind = cairnpb.TxnOp_READ
	case "check":
		if o.IfVersion != 0 || o.IfAbsent || o.IfValue != nil {
			return nil, kv.Errorf(kv.ErrInvalidArgument, "a check compares with version, absent or value")
		}
		op.Kind = cairnpb.TxnOp_CHECK
		if op.Condition, err = cond(o.Version, o.Absent, value); err != nil {
			return nil, err
		}
		if op.Condition == nil {
			return nil, kv.Errorf(kv.ErrInvalidArgument, "a check needs version, absent or value")
		}
	case "put", "delete":
		if o.Version != 0 || o.Absent {
			return nil, kv.Errorf(kv.ErrInvalidArgument, "a write's conditions are if_version, if_absent and if_value")
		}
		var ifValue []byte
		if o.IfValue != nil {
			ifValue = []byte(*o.IfValue)
		}
		if op.Condition, err = cond(o.IfVersion, o.IfAbsent, ifValue); err != nil {
			return nil, err
		}
		op.Kind = cairnpb.TxnOp_DELETE
		if o.Op == "put" {
			op.Kind = cairnpb.TxnOp_PUT
			if value == nil {
				return nil, kv.Errorf(kv.ErrInvalidArgument, "a put needs a value")
			}
			if err := limits.ValidateValue(value); err != nil {
				return nil, err
			}
			op.Value = value
		} else if value != nil {
			return nil, kv.Errorf(kv.ErrInvalidArgument, "a delete has no value")
		}
	default:
		return nil, kv.Errorf(kv.ErrInvalidArgument, "op must be read, check, put or delete, not %q", o.Op)
	}
	return op, nil
}

// bytesField returns the bytes of a field given as a UTF-8 string or in
// base64 (at most one of them); nil when neither is given.
func bytesField(name string, s, b64 *string, required bool) ([]byte, error) {
	switch {
	case s != nil && b64 != nil:
		return nil, kv.Errorf(kv.ErrInvalidArgument, "give %s or %s_base64, not both", name, name)
	case s != nil:
		if !utf8.ValidString(*s) {
			return nil, kv.Errorf(kv.ErrInvalidArgument, "%s is not valid UTF-8; use %s_base64", name, name)
		}
		return []byte(*s), nil
	case b64 != nil:
		b, err := base64.StdEncoding.Strict().DecodeString(*b64)
		if err != nil {
			return nil, kv.Errorf(kv.ErrInvalidArgument, "%s_base64: %v", name, err)
		}
		return b, nil
	case required:
		return nil, kv.Errorf(kv.ErrInvalidArgument, "%s is missing", name)
	}
	return nil, nil
}
