package respapi

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/kv"
	"github.com/cairn-db/cairn/internal/resp"
)

// combiner runs read-modify-write commands of one key (INCR, APPEND, SET
// with NX/XX/GET, SETNX, GETDEL) with group commit: the commands for a key
// that arrive while one batch of them is in flight wait, and then all run
// as the next batch, against one read of the key, in arrival order, with
// one conditional write of the final value.
//
// Why: a read-modify-write is a read and a write conditioned on the
// version read. Run independently, N concurrent INCRs of one key (what
// redis-benchmark does: every client increments "counter:__rand_int__")
// would conflict N-1 times per round of Raft; combined, they cost one read
// and one write per batch, however many there are.
//
// Each command's reply is computed from the state after the commands
// before it in the batch. That is linearizable: the commands of a batch
// are concurrent (all were waiting at once), and they take effect together
// at the moment of the write, in the order of the batch; a batch that
// writes nothing takes effect at its read.
//
// Invariants:
//  1. At most one batch per key is in flight on this node (the leader's);
//     a key is in queues exactly while a batch of it is in flight.
//  2. Every op queued is eventually woken, with a reply, an error, or the
//     lead of the next batch; a panic in a batch fails its ops, it does
//     not strand them.
//  3. Conflicts with writers elsewhere (other nodes, plain SETs, EXEC) are
//     caught by the write's condition and retried from the read, at most
//     maxAttempts times.
type combiner struct {
	backend Backend
	log     *slog.Logger
	mu      sync.Mutex
	queues  map[rmwKey]*rmwQueue // guarded by mu
}

type rmwKey struct{ table, key string }

type rmwQueue struct {
	ops []*rmwOp // waiting for the next batch; ops[0] leads it
}

// maxRMWBatch bounds the commands of one batch.
const maxRMWBatch = 1024

// rmwOp is one command waiting in a combiner.
type rmwOp struct {
	exec   func(x *execCtx, args [][]byte) error
	args   [][]byte
	limits *kv.Limits
	w      resp.Writer // the reply, in the client's protocol
	err    error       // a backend error, replacing w
	token  string      // the session token of the batch's read and write
	lead   bool        // woken to lead the next batch
	wake   chan struct{}
}

// do runs op on key of table and returns when its reply (op.w or op.err)
// is ready.
func (cb *combiner) do(ctx context.Context, table string, key []byte, op *rmwOp) {
	k := rmwKey{table: table, key: string(key)}
	op.wake = make(chan struct{}, 1)
	cb.mu.Lock()
	q, busy := cb.queues[k]
	if !busy {
		q = &rmwQueue{}
		cb.queues[k] = q
	}
	q.ops = append(q.ops, op)
	cb.mu.Unlock()
	if busy {
		<-op.wake
		if !op.lead {
			return
		}
	}
	cb.lead(ctx, k, q)
}

// lead runs the next batch of k (which starts with the caller's op), then
// hands the lead to the first op queued meanwhile, if any.
func (cb *combiner) lead(ctx context.Context, k rmwKey, q *rmwQueue) {
	cb.mu.Lock()
	n := min(len(q.ops), maxRMWBatch)
	batch := q.ops[:n:n]
	q.ops = append([]*rmwOp(nil), q.ops[n:]...)
	cb.mu.Unlock()

	cb.runBatch(ctx, k, batch)

	cb.mu.Lock()
	if len(q.ops) == 0 {
		delete(cb.queues, k)
	} else {
		next := q.ops[0]
		next.lead = true
		next.wake <- struct{}{}
	}
	cb.mu.Unlock()
	for _, op := range batch[1:] {
		op.wake <- struct{}{}
	}
}

// runBatch runs the ops against one read of the key and writes the final
// state under a condition on that read, retrying on a conflict.
func (cb *combiner) runBatch(ctx context.Context, k rmwKey, batch []*rmwOp) {
	defer func() {
		if p := recover(); p != nil {
			cb.log.Error("respapi: panic in a read-modify-write batch", "panic", p, "stack", string(debug.Stack()))
			for _, op := range batch {
				op.err = kv.Errorf(kv.ErrInternal, "panic: %v", p)
			}
		}
	}()
	key := []byte(k.key)
	fail := func(err error) {
		for _, op := range batch {
			op.err = err
		}
	}
	for attempt := 0; ; attempt++ {
		cur, err := readKey(ctx, cb.backend, k.table, key)
		if err != nil {
			fail(err)
			return
		}
		kvw := &keyView{key: key, state: cur}
		for _, op := range batch {
			op.w.Reset(keepBufferBytes)
			op.err = nil
			x := &execCtx{v: kvw, w: &op.w, limits: op.limits}
			if err := op.exec(x, op.args); err != nil {
				op.err = err
			}
		}
		for _, op := range batch {
			op.token = cur.token
		}
		if !kvw.dirty {
			return
		}
		var token string
		token, err = cb.write(ctx, k.table, key, cur, kvw.state)
		switch {
		case err == nil:
			for _, op := range batch {
				op.token, _ = kv.MergeSessionTokens(op.token, token)
			}
			return
		case !errors.Is(err, errConflict):
			fail(err)
			return
		case attempt == maxAttempts-1:
			fail(errContention)
			return
		}
		backoff(ctx, attempt)
	}
}

// write moves the key from cur (as read) to final, only if it is still at
// cur.
// It returns the write's session token.
func (cb *combiner) write(ctx context.Context, table string, key []byte, cur, final entry) (string, error) {
	var err error
	var token string
	ttl, keep, gone := putTTL(cur, true, final.expireAt, time.Now().UnixMilli())
	switch {
	case final.found && !gone:
		var resp *cairnpb.PutResponse
		resp, err = cb.backend.Put(ctx, &cairnpb.PutRequest{Table: table, Key: key, Value: final.value, Condition: cur.condition(),
			TtlMs: ttl, KeepTtl: keep})
		token = resp.GetSessionToken()
	case cur.found:
		var resp *cairnpb.DeleteResponse
		resp, err = cb.backend.Delete(ctx, &cairnpb.DeleteRequest{Table: table, Key: key, Condition: cur.condition()})
		if errors.Is(err, kv.ErrNotFound) {
			return "", errConflict
		}
		token = resp.GetSessionToken()
	default:
		return "", nil // absent before and after
	}
	if errors.Is(err, kv.ErrConditionFailed) {
		return "", errConflict
	}
	return token, err
}

// keyView is the view of a batch: the one key's state as the batch's
// commands change it.
type keyView struct {
	key   []byte
	state entry
	dirty bool
}

var errSecondKey = kv.Errorf(kv.ErrInternal, "a read-modify-write command touched a second key")

func (v *keyView) get(key []byte) (entry, error) {
	if !bytes.Equal(key, v.key) {
		return entry{}, errSecondKey
	}
	return v.state, nil
}

func (v *keyView) set(key, value []byte, expireAt int64) {
	if bytes.Equal(key, v.key) {
		v.state = entry{value: bytes.Clone(value), found: true, expireAt: expireAt}
		v.dirty = true
	}
}

func (v *keyView) del(key []byte) {
	if bytes.Equal(key, v.key) {
		v.state = entry{}
		v.dirty = true
	}
}

// runRMW runs a single-key read-modify-write command outside MULTI
// through the combiner.
func (c *conn) runRMW(cmd *command, args [][]byte) {
	c.runRMWFunc(cmd.exec, args)
}

func (c *conn) runRMWFunc(exec func(*execCtx, [][]byte) error, args [][]byte) {
	x := c.execCtx(nil, &c.out)
	if !x.checkKeys(args[1]) {
		return
	}
	op := &rmwOp{exec: exec, args: args, limits: &c.srv.opts.Limits, w: resp.Writer{Proto: c.proto}}
	c.srv.rmw.do(c.ctx, c.table, args[1], op)
	c.session.observe(op.token)
	if op.err != nil {
		c.replyErr(op.err)
		return
	}
	c.out.Raw(op.w.Bytes())
}
