package kv

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"unicode/utf8"

	"github.com/cairn-db/cairn/api/cairnpb"
)

// TxnJSON is the JSON form of a transaction: the body of POST /v1/txn and
// the input of `cairn txn` (docs/design/transactions.md).
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

// TxnOpJSON is one operation of TxnJSON.
type TxnOpJSON struct {
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

// TxnJSON is a transaction as JSON.
type TxnJSON struct {
	Ops []TxnOpJSON `json:"ops"`
}

// TxnResultJSON is one result of TxnReplyJSON.
type TxnResultJSON struct {
	Found   bool    `json:"found"`
	Value   *string `json:"value,omitempty"` // base64
	Version uint64  `json:"version"`
}

// TxnReplyJSON is the JSON reply to a transaction.
type TxnReplyJSON struct {
	Results []TxnResultJSON `json:"results"`
}

// DecodeTxnJSON parses and checks a transaction in JSON (TxnJSON): one
// object, no unknown fields, every op well-formed and within limits.
func DecodeTxnJSON(body []byte, limits Limits) (*cairnpb.TxnRequest, error) {
	var in TxnJSON
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return nil, Errorf(ErrInvalidArgument, "malformed transaction JSON: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, Errorf(ErrInvalidArgument, "malformed transaction JSON: data after the object")
	}
	if len(in.Ops) == 0 {
		return nil, Errorf(ErrInvalidArgument, "a transaction needs ops")
	}
	req := &cairnpb.TxnRequest{Ops: make([]*cairnpb.TxnOp, len(in.Ops))}
	for i, o := range in.Ops {
		op, err := decodeTxnOp(o, limits)
		if err != nil {
			return nil, Errorf(ErrInvalidArgument, "op %d: %v", i, err)
		}
		req.Ops[i] = op
	}
	return req, nil
}

func decodeTxnOp(o TxnOpJSON, limits Limits) (*cairnpb.TxnOp, error) {
	op := &cairnpb.TxnOp{Table: o.Table}
	if err := ValidateTableName(o.Table); err != nil {
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
			return nil, Errorf(ErrInvalidArgument, "give one of a version, absent and a value to compare")
		}
		if n == 0 {
			return nil, nil
		}
		return &cairnpb.Condition{Version: version, Absent: absent, Value: value}, nil
	}
	switch o.Op {
	case "read":
		if value != nil || o.Version != 0 || o.Absent || o.IfVersion != 0 || o.IfAbsent || o.IfValue != nil {
			return nil, Errorf(ErrInvalidArgument, "a read has only a table and a key")
		}
		op.Kind = cairnpb.TxnOp_READ
	case "check":
		if o.IfVersion != 0 || o.IfAbsent || o.IfValue != nil {
			return nil, Errorf(ErrInvalidArgument, "a check compares with version, absent or value")
		}
		op.Kind = cairnpb.TxnOp_CHECK
		if op.Condition, err = cond(o.Version, o.Absent, value); err != nil {
			return nil, err
		}
		if op.Condition == nil {
			return nil, Errorf(ErrInvalidArgument, "a check needs version, absent or value")
		}
	case "put", "delete":
		if o.Version != 0 || o.Absent {
			return nil, Errorf(ErrInvalidArgument, "a write's conditions are if_version, if_absent and if_value")
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
				return nil, Errorf(ErrInvalidArgument, "a put needs a value")
			}
			if err := limits.ValidateValue(value); err != nil {
				return nil, err
			}
			op.Value = value
		} else if value != nil {
			return nil, Errorf(ErrInvalidArgument, "a delete has no value")
		}
	default:
		return nil, Errorf(ErrInvalidArgument, "op must be read, check, put or delete, not %q", o.Op)
	}
	return op, nil
}

// bytesField returns the bytes of a field given as a UTF-8 string or in
// base64 (at most one of them); nil when neither is given.
func bytesField(name string, s, b64 *string, required bool) ([]byte, error) {
	switch {
	case s != nil && b64 != nil:
		return nil, Errorf(ErrInvalidArgument, "give %s or %s_base64, not both", name, name)
	case s != nil:
		if !utf8.ValidString(*s) {
			return nil, Errorf(ErrInvalidArgument, "%s is not valid UTF-8; use %s_base64", name, name)
		}
		return []byte(*s), nil
	case b64 != nil:
		b, err := base64.StdEncoding.Strict().DecodeString(*b64)
		if err != nil {
			return nil, Errorf(ErrInvalidArgument, "%s_base64: %v", name, err)
		}
		return b, nil
	case required:
		return nil, Errorf(ErrInvalidArgument, "%s is missing", name)
	}
	return nil, nil
}

// EncodeTxnReply is the JSON reply to req: values (base64) of reads and
// checks that found their key.
func EncodeTxnReply(req *cairnpb.TxnRequest, resp *cairnpb.TxnResponse) TxnReplyJSON {
	out := TxnReplyJSON{Results: make([]TxnResultJSON, len(resp.Results))}
	for i, res := range resp.Results {
		out.Results[i] = TxnResultJSON{Found: res.Found, Version: res.Version}
		if i >= len(req.Ops) {
			continue
		}
		if k := req.Ops[i].Kind; res.Found && (k == cairnpb.TxnOp_READ || k == cairnpb.TxnOp_CHECK) {
			v := base64.StdEncoding.EncodeToString(res.Value)
			out.Results[i].Value = &v
		}
	}
	return out
}
