package client

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/cairn-db/cairn/api/cairnpb"
)

// TxnOpKind is what one operation of a transaction does.
type TxnOpKind int

const (
	// TxnRead returns the key's value and version.
	TxnRead TxnOpKind = iota + 1
	// TxnCheck requires the op's condition (IfVersion, IfAbsent or
	// IfValue) to hold, or the whole transaction fails with
	// ErrConditionFailed.
	TxnCheck
	// TxnPut writes Value, if the op's condition holds.
	TxnPut
	// TxnDelete removes the key (absent keys are a no-op), if the op's
	// condition holds.
	TxnDelete
)

// TxnOp is one operation of a transaction (Client.Exec). At most one of
// IfVersion, IfAbsent and IfValue is set.
type TxnOp struct {
	Kind      TxnOpKind
	Table     string
	Key       []byte
	Value     []byte
	IfVersion uint64
	IfAbsent  bool
	IfValue   []byte
}

// TxnResult is the outcome of one operation: the value and version of a
// read or check (Found false if the key is absent), the version a put
// wrote, the version a delete removed.
type TxnResult struct {
	Found   bool
	Value   []byte
	Version uint64
}

func (o TxnOp) proto() *cairnpb.TxnOp {
	p := &cairnpb.TxnOp{Kind: cairnpb.TxnOp_Kind(o.Kind), Table: o.Table, Key: o.Key, Value: o.Value}
	if o.IfVersion != 0 || o.IfAbsent || o.IfValue != nil {
		p.Condition = &cairnpb.Condition{Version: o.IfVersion, Absent: o.IfAbsent, Value: o.IfValue}
	}
	return p
}

// Exec runs ops as one transaction, all or nothing, and returns one result
// per op. It fails with ErrConditionFailed when a check or condition does
// not hold and with ErrTxnConflict when it met another transaction (it
// changed nothing; run it again). It does not retry by itself: see Txn.
func (c *Client) Exec(ctx context.Context, ops []TxnOp) ([]TxnResult, error) {
	req := &cairnpb.TxnRequest{Ops: make([]*cairnpb.TxnOp, len(ops))}
	for i, o := range ops {
		req.Ops[i] = o.proto()
	}
	var resp *cairnpb.TxnResponse
	err := c.do(ctx, write, func(ctx context.Context, ep *endpoint) (err error) {
		resp, err = ep.kv.Txn(ctx, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]TxnResult, len(resp.Results))
	for i, r := range resp.Results {
		out[i] = TxnResult{Found: r.Found, Value: r.Value, Version: r.Version}
	}
	return out, nil
}

// Tx is a transaction being built by the function given to Client.Txn.
// Its reads go to the cluster at once (and see the transaction's own
// writes); its writes are buffered and sent at commit, together with a
// check of every key it read, so the commit fails if any of them changed
// since. Not safe for concurrent use.
type Tx struct {
	c     *Client
	ctx   context.Context
	reads map[txKey]TxnResult
	// writes in the order first written; a later write of a key replaces
	// the earlier one.
	writes []TxnOp
	index  map[txKey]int
}

type txKey struct{ table, key string }

// Get returns the value and version of key in table as this transaction
// sees it: its own write if it wrote the key, else what the cluster has
// (remembered, and checked again at commit). ErrNotFound if absent.
func (tx *Tx) Get(table string, key []byte) (value []byte, version uint64, err error) {
	k := txKey{table, string(key)}
	if i, ok := tx.index[k]; ok {
		w := tx.writes[i]
		if w.Kind == TxnDelete {
			return nil, 0, newError("not_found", ErrNotFound.Error(), "")
		}
		return w.Value, 0, nil
	}
	r, ok := tx.reads[k]
	if !ok {
		v, ver, err := tx.c.Get(tx.ctx, table, key)
		switch {
		case err == nil:
			r = TxnResult{Found: true, Value: v, Version: ver}
		case errors.Is(err, ErrNotFound):
			r = TxnResult{}
		default:
			return nil, 0, err
		}
		tx.reads[k] = r
	}
	if !r.Found {
		return nil, 0, newError("not_found", ErrNotFound.Error(), "")
	}
	return r.Value, r.Version, nil
}

// Put sets key in table to value when the transaction commits.
func (tx *Tx) Put(table string, key, value []byte) {
	tx.write(TxnOp{Kind: TxnPut, Table: table, Key: key, Value: value})
}

// Delete removes key from table when the transaction commits.
func (tx *Tx) Delete(table string, key []byte) {
	tx.write(TxnOp{Kind: TxnDelete, Table: table, Key: key})
}

func (tx *Tx) write(op TxnOp) {
	k := txKey{op.Table, string(op.Key)}
	if i, ok := tx.index[k]; ok {
		tx.writes[i] = op
		return
	}
	tx.index[k] = len(tx.writes)
	tx.writes = append(tx.writes, op)
}

// ops is the transaction to commit: the writes, conditional on the
// versions read, then a check of every key only read.
func (tx *Tx) ops() []TxnOp {
	var ops []TxnOp
	cond := func(op *TxnOp, r TxnResult) {
		if r.Found {
			op.IfVersion = r.Version
		} else {
			op.IfAbsent = true
		}
	}
	for _, w := range tx.writes {
		if r, ok := tx.reads[txKey{w.Table, string(w.Key)}]; ok {
			cond(&w, r)
		}
		ops = append(ops, w)
	}
	for k, r := range tx.reads {
		if _, written := tx.index[k]; written {
			continue
		}
		op := TxnOp{Kind: TxnCheck, Table: k.table, Key: []byte(k.key)}
		cond(&op, r)
		ops = append(ops, op)
	}
	return ops
}

// txnAttempts bounds how many times Txn runs its function.
const txnAttempts = 10

// Txn runs fn in a transaction and commits what it wrote, all or
// nothing and serializably: the commit fails if a key fn read has
// changed since. Then, or on a conflict with another transaction, Txn
// runs fn again on fresh reads (up to 10 times, with jittered backoff),
// so fn must have no effects besides the Tx's. An error from fn aborts
// the transaction (nothing is written) and is returned.
func (c *Client) Txn(ctx context.Context, fn func(tx *Tx) error) error {
	var err error
	backoff := 2 * time.Millisecond
	for range txnAttempts {
		tx := &Tx{c: c, ctx: ctx, reads: map[txKey]TxnResult{}, index: map[txKey]int{}}
		if err := fn(tx); err != nil {
			return err
		}
		ops := tx.ops()
		if len(ops) == 0 {
			return nil
		}
		if len(tx.writes) == 0 && len(tx.reads) == 1 {
			return nil // one read is consistent by itself
		}
		_, err = c.Exec(ctx, ops)
		if err == nil || !(errors.Is(err, ErrTxnConflict) || errors.Is(err, ErrConditionFailed)) {
			return err
		}
		select {
		case <-ctx.Done():
			return contextError(ctx, "")
		case <-time.After(backoff/2 + rand.N(backoff)):
		}
		backoff = min(2*backoff, 200*time.Millisecond)
	}
	return err
}
