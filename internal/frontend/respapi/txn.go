package respapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/kv"
	"github.com/cairn-db/cairn/internal/resp"
)

// entry is a key's state as read: its value and version, or absent.
type entry struct {
	value   []byte
	version uint64 // 0 when absent
	found   bool
	// expireAt is when the key expires (unix ms); 0 for no TTL.
	expireAt int64
	// token is the read's session token entry.
	token string
}

// condition returns the write condition that holds only while the key is
// still as e says.
func (e entry) condition() *cairnpb.Condition {
	if e.found {
		return &cairnpb.Condition{Version: e.version}
	}
	return &cairnpb.Condition{Absent: true}
}

// view is what a data command sees of the keys: reads, and writes that
// take effect when the command (or transaction) commits.
type view interface {
	get(key []byte) (entry, error)
	// set writes value with the expiry expireAt (unix ms; 0: none), as
	// Redis's SET does: a write without one removes the key's TTL.
	set(key, value []byte, expireAt int64)
	del(key []byte)
}

// putTTL returns the TTL fields of a put that moves a key from cur (as
// read; read is false for a blind write) to expiry expireAt, judged at
// nowMs; gone is true when expireAt has already passed (the write is a
// delete then).
func putTTL(cur entry, read bool, expireAt, nowMs int64) (ttlMs int64, keep, gone bool) {
	switch {
	case expireAt == 0:
		return 0, false, false
	case read && cur.found && cur.expireAt == expireAt:
		return 0, true, false // unchanged: keep it exactly
	case expireAt <= nowMs:
		return 0, false, true
	}
	return expireAt - nowMs, false, false
}

// execCtx is the environment of one data command: its view, where its
// reply goes, and the limits it checks at the edge.
type execCtx struct {
	v      view
	w      *resp.Writer
	limits *kv.Limits
	// maxReplyBytes bounds w (the output buffer limit).
	maxReplyBytes int
}

// checkKeys answers an invalid key (empty, or over the limit) with an
// error reply and returns false.
func (x *execCtx) checkKeys(keys ...[]byte) bool {
	for _, k := range keys {
		if err := x.limits.ValidateKey(k); err != nil {
			x.w.Error("ERR " + err.Error())
			return false
		}
	}
	return true
}

// checkValue answers a value over the limit and returns false.
func (x *execCtx) checkValue(v []byte) bool {
	if err := x.limits.ValidateValue(v); err != nil {
		x.w.Error("ERR " + err.Error())
		return false
	}
	return true
}

// Retries of optimistic commands: a conditional write that finds its keys
// changed is retried from the read, at most maxAttempts times, with a
// random pause of up to maxBackoff<<attempt (capped at maxBackoff).
const (
	maxAttempts = 20
	minBackoff  = 200 * time.Microsecond
	maxBackoff  = 20 * time.Millisecond
	// prefetchParallel bounds the concurrent reads of one command.
	prefetchParallel = 16
)

// backoff sleeps before attempt (0-based) of a retried command.
func backoff(ctx context.Context, attempt int) {
	d := min(minBackoff<<min(attempt, 16), maxBackoff)
	t := time.NewTimer(rand.N(d) + 1)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// readKey reads one key linearizably.
func readKey(ctx context.Context, b Backend, table string, key []byte) (entry, error) {
	resp, err := b.Get(ctx, &cairnpb.GetRequest{Table: table, Key: key})
	if errors.Is(err, kv.ErrNotFound) {
		var miss *kv.ReadMissError
		if errors.As(err, &miss) {
			return entry{token: miss.SessionToken}, nil
		}
		return entry{}, nil
	}
	if err != nil {
		return entry{}, err
	}
	return entry{value: resp.Value, version: resp.Version, found: true, expireAt: resp.ExpireAtMs, token: resp.SessionToken}, nil
}

// txn is an optimistic transaction over one table: reads go to the
// backend (each linearizable) and are remembered with their versions;
// writes are buffered. commit applies the writes atomically, conditioned
// on every key read being unchanged, and checks a read-only transaction of
// several keys by reading them again. A txn is used by one goroutine.
//
// Invariants:
//  1. A key is read from the backend at most once; later reads see the
//     transaction's own writes.
//  2. commit succeeds only if every key read still has the version read
//     at the moment the writes apply (for writes: through batch
//     conditions; for reads only: from two equal rounds of reads).
//  3. Nothing is applied unless commit returns nil, or an outcome-unknown
//     error (timeout).
type txn struct {
	ctx     context.Context
	backend Backend
	table   string
	// maxReadBytes bounds the values held (the output buffer limit).
	maxReadBytes int
	readBytes    int

	reads  map[string]entry
	writes map[string]*pending
	order  []string // keys of writes, first write first
}

// pending is a buffered write: a new value, or a delete.
type pending struct {
	value    []byte
	expireAt int64
	deleted  bool
}

func newTxn(ctx context.Context, b Backend, table string, maxReadBytes int) *txn {
	return &txn{ctx: ctx, backend: b, table: table, maxReadBytes: maxReadBytes,
		reads: map[string]entry{}, writes: map[string]*pending{}}
}

func (t *txn) remember(key string, e entry) error {
	t.reads[key] = e
	t.readBytes += len(e.value)
	if t.readBytes > t.maxReadBytes {
		return errOutputLimit
	}
	return nil
}

func (t *txn) get(key []byte) (entry, error) {
	if p, ok := t.writes[string(key)]; ok {
		if p.deleted {
			return entry{}, nil
		}
		return entry{value: p.value, found: true, expireAt: p.expireAt}, nil
	}
	if e, ok := t.reads[string(key)]; ok {
		return e, nil
	}
	e, err := readKey(t.ctx, t.backend, t.table, key)
	if err != nil {
		return entry{}, err
	}
	return e, t.remember(string(key), e)
}

func (t *txn) write(key []byte, p *pending) {
	k := string(key)
	if _, ok := t.writes[k]; !ok {
		t.order = append(t.order, k)
	}
	t.writes[k] = p
}

func (t *txn) set(key, value []byte, expireAt int64) {
	t.write(key, &pending{value: bytes.Clone(value), expireAt: expireAt})
}

func (t *txn) del(key []byte) { t.write(key, &pending{deleted: true}) }

// prefetch reads the keys not read yet, in parallel.
func (t *txn) prefetch(keys [][]byte) error {
	var todo []string
	seen := map[string]bool{}
	for _, k := range keys {
		s := string(k)
		if _, ok := t.reads[s]; ok || seen[s] {
			continue
		}
		seen[s] = true
		todo = append(todo, s)
	}
	got, err := readKeys(t.ctx, t.backend, t.table, todo)
	if err != nil {
		return err
	}
	for i, k := range todo {
		if err := t.remember(k, got[i]); err != nil {
			return err
		}
	}
	return nil
}

// readKeys reads keys concurrently, at most prefetchParallel at a time.
// A panic in a reader is returned as an internal error, not propagated:
// it must not take the node down.
func readKeys(ctx context.Context, b Backend, table string, keys []string) ([]entry, error) {
	out := make([]entry, len(keys))
	if len(keys) == 1 {
		e, err := readKey(ctx, b, table, []byte(keys[0]))
		out[0] = e
		return out, err
	}
	errs := make([]error, len(keys))
	sem := make(chan struct{}, prefetchParallel)
	var wg sync.WaitGroup
	for i, k := range keys {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			defer func() {
				if p := recover(); p != nil {
					errs[i] = kv.Errorf(kv.ErrInternal, "panic while reading a key: %v", p)
				}
			}()
			out[i], errs[i] = readKey(ctx, b, table, []byte(k))
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// commit applies the buffered writes atomically, conditioned on every key
// read. It returns errConflict when a key changed since it was read.
//
// Every key read and not written is asserted unchanged inside the same
// batch: an absent key by a conditional delete (a no-op), a present key by
// writing its value back under a version condition (NB: this gives it a
// new version, which other WATCHers see as a change).
func (t *txn) commit() error {
	if len(t.writes) == 0 {
		if len(t.reads) <= 1 {
			return nil // one linearizable read is its own snapshot
		}
		return t.validateReads()
	}
	ops := make([]*cairnpb.BatchOp, 0, len(t.order))
	nowMs := time.Now().UnixMilli()
	for _, k := range t.order {
		p := t.writes[k]
		e, read := t.reads[k]
		var cond *cairnpb.Condition
		if read {
			cond = e.condition()
		}
		ttl, keep, gone := putTTL(e, read, p.expireAt, nowMs)
		if p.deleted || gone {
			ops = append(ops, batchDelete(k, cond))
		} else {
			op := batchPut(k, p.value, cond)
			op.GetPut().TtlMs, op.GetPut().KeepTtl = ttl, keep
			ops = append(ops, op)
		}
	}
	asserted := make([]string, 0, len(t.reads))
	for k := range t.reads {
		if _, written := t.writes[k]; !written {
			asserted = append(asserted, k)
		}
	}
	sort.Strings(asserted)
	for _, k := range asserted {
		e := t.reads[k]
		if e.found {
			op := batchPut(k, e.value, e.condition())
			op.GetPut().KeepTtl = true // asserting a read must not change its TTL
			ops = append(ops, op)
		} else {
			ops = append(ops, batchDelete(k, e.condition()))
		}
	}
	if len(ops) > kv.MaxBatchOps {
		return fmt.Errorf("%w: the command touches %d keys; one atomic write holds at most %d", errTooManyKeys, len(ops), kv.MaxBatchOps)
	}
	if len(ops) == 1 {
		return t.commitOne(ops[0])
	}
	if tx, ok := t.backend.(kv.Transactor); ok && !hasTTL(ops[:len(t.order)]) {
		return t.commitTxn(tx, ops[:len(t.order)], asserted)
	}
	_, err := t.backend.Batch(t.ctx, &cairnpb.BatchRequest{Table: t.table, Ops: ops})
	if errors.Is(err, kv.ErrConditionFailed) {
		return errConflict
	}
	return err
}

// hasTTL reports whether a write of writes sets or keeps a TTL:
// transactions do not carry TTLs, so such writes take the batch (one
// range) instead.
func hasTTL(writes []*cairnpb.BatchOp) bool {
	for _, op := range writes {
		if p := op.GetPut(); p != nil && (p.TtlMs != 0 || p.KeepTtl) {
			return true
		}
	}
	return false
}

// commitTxn commits through a cross-range transaction: the writes,
// conditional on the versions read, and a check of every key only read
// (asserted; no write-back, so their versions do not change). So MSET,
// MSETNX and EXEC are atomic across ranges.
func (t *txn) commitTxn(tx kv.Transactor, writes []*cairnpb.BatchOp, asserted []string) error {
	req := &cairnpb.TxnRequest{}
	for _, w := range writes {
		op := &cairnpb.TxnOp{Table: t.table}
		if p := w.GetPut(); p != nil {
			op.Kind, op.Key, op.Value, op.Condition = cairnpb.TxnOp_PUT, p.Key, p.Value, p.Condition
		} else {
			d := w.GetDelete()
			op.Kind, op.Key, op.Condition = cairnpb.TxnOp_DELETE, d.Key, d.Condition
		}
		req.Ops = append(req.Ops, op)
	}
	for _, k := range asserted {
		req.Ops = append(req.Ops, &cairnpb.TxnOp{Kind: cairnpb.TxnOp_CHECK, Table: t.table, Key: []byte(k), Condition: t.reads[k].condition()})
	}
	_, err := tx.Txn(t.ctx, req)
	if errors.Is(err, kv.ErrConditionFailed) || errors.Is(err, kv.ErrTxnConflict) || errors.Is(err, kv.ErrTxnAborted) {
		return errConflict
	}
	return err
}

// commitOne applies a single write with the plain Put or Delete.
func (t *txn) commitOne(op *cairnpb.BatchOp) error {
	var err error
	switch o := op.Op.(type) {
	case *cairnpb.BatchOp_Put:
		o.Put.Table = t.table
		_, err = t.backend.Put(t.ctx, o.Put)
	case *cairnpb.BatchOp_Delete:
		c := o.Delete.Condition
		switch {
		case c != nil && c.Absent:
			return nil // deleting what was read absent: nothing changes
		case c == nil:
			o.Delete.Table = t.table
			if _, err = t.backend.Delete(t.ctx, o.Delete); errors.Is(err, kv.ErrNotFound) {
				return nil // a blind delete of an absent key
			}
		default:
			o.Delete.Table = t.table
			if _, err = t.backend.Delete(t.ctx, o.Delete); errors.Is(err, kv.ErrNotFound) {
				return errConflict // deleted meanwhile
			}
		}
	}
	if errors.Is(err, kv.ErrConditionFailed) {
		return errConflict
	}
	return err
}

// validateReads reads every key again: if all are as first read, the
// values were all current at the moment between the two rounds (versions
// never repeat). NB: a key absent in both rounds may have been created
// and deleted in between; that is not detected.
func (t *txn) validateReads() error {
	keys := make([]string, 0, len(t.reads))
	for k := range t.reads {
		keys = append(keys, k)
	}
	again, err := readKeys(t.ctx, t.backend, t.table, keys)
	if err != nil {
		return err
	}
	for i, k := range keys {
		e := t.reads[k]
		if again[i].found != e.found || again[i].version != e.version {
			return errConflict
		}
	}
	return nil
}

func batchPut(key string, value []byte, cond *cairnpb.Condition) *cairnpb.BatchOp {
	return &cairnpb.BatchOp{Op: &cairnpb.BatchOp_Put{Put: &cairnpb.PutRequest{Key: []byte(key), Value: value, Condition: cond}}}
}

func batchDelete(key string, cond *cairnpb.Condition) *cairnpb.BatchOp {
	return &cairnpb.BatchOp{Op: &cairnpb.BatchOp_Delete{Delete: &cairnpb.DeleteRequest{Key: []byte(key), Condition: cond}}}
}

func (c *conn) newTxn() *txn {
	return newTxn(c.ctx, c.txnBackend(), c.table, c.srv.opts.MaxOutputBufferBytes)
}

func (c *conn) execCtx(v view, w *resp.Writer) *execCtx {
	return &execCtx{v: v, w: w, limits: &c.srv.opts.Limits, maxReplyBytes: c.srv.opts.MaxOutputBufferBytes - c.out.Len()}
}

// runTxn runs a data command outside MULTI as a transaction of its own:
// read its keys, run it, commit; on a conflict, again from the reads.
func (c *conn) runTxn(cmd *command, args [][]byte) {
	var keys [][]byte
	if cmd.reads {
		keys = cmd.keys(args)
	}
	for attempt := 0; ; attempt++ {
		t := c.newTxn()
		c.scratch.Reset(keepBufferBytes)
		err := t.prefetch(keys)
		if err == nil {
			err = cmd.exec(c.execCtx(t, &c.scratch), args)
		}
		if err == nil {
			err = t.commit()
		}
		switch {
		case err == nil:
			c.out.Raw(c.scratch.Bytes())
			return
		case !errors.Is(err, errConflict):
			c.replyErr(err)
			return
		case attempt == maxAttempts-1:
			c.replyErr(errContention)
			return
		}
		backoff(c.ctx, attempt)
	}
}

// Transactions: MULTI queues commands, EXEC runs them as one optimistic
// transaction. Only data commands (those with an exec function) can be
// queued; the others are refused with Redis's "Command not allowed inside
// a transaction", which makes EXEC fail with EXECABORT, as any error
// while queueing does in Redis.

// multiState is a connection's MULTI in progress.
type multiState struct {
	queue []queued
	// dirty is set by an error while queueing: EXEC then aborts.
	dirty bool
}

type queued struct {
	cmd  *command
	args [][]byte // copies: the reader's buffer is reused
}

// watchedKey is a key WATCH recorded, with its version then (0: absent).
type watchedKey struct {
	key     string
	version uint64
}

// flagTransaction marks the MULTI in progress (if any) as failed.
func (c *conn) flagTransaction() {
	if c.multi != nil {
		c.multi.dirty = true
	}
}

func (c *conn) queue(cmd *command, args [][]byte) {
	if cmd.exec == nil {
		c.out.Error(msgNotInMulti)
		c.flagTransaction()
		return
	}
	if len(c.multi.queue) >= c.srv.opts.MaxQueuedCommands {
		c.out.Error(fmt.Sprintf("ERR a transaction holds at most %d commands", c.srv.opts.MaxQueuedCommands))
		c.flagTransaction()
		return
	}
	cp := make([][]byte, len(args))
	for i, a := range args {
		cp[i] = bytes.Clone(a)
	}
	c.multi.queue = append(c.multi.queue, queued{cmd: cmd, args: cp})
	c.out.SimpleString("QUEUED")
}

func runMulti(c *conn, _ [][]byte) {
	if c.multi != nil {
		c.out.Error("ERR MULTI calls can not be nested")
		return
	}
	c.multi = &multiState{}
	c.out.SimpleString("OK")
}

func runDiscard(c *conn, _ [][]byte) {
	if c.multi == nil {
		c.out.Error("ERR DISCARD without MULTI")
		return
	}
	c.multi, c.watched = nil, nil
	c.out.SimpleString("OK")
}

func runUnwatch(c *conn, _ [][]byte) {
	c.watched = nil
	c.out.SimpleString("OK")
}

// execUnwatch is UNWATCH queued in MULTI: EXEC has checked the watched
// keys already, so it only answers OK.
func execUnwatch(x *execCtx, _ [][]byte) error {
	x.w.SimpleString("OK")
	return nil
}

func runWatch(c *conn, args [][]byte) {
	if c.multi != nil {
		c.out.Error("ERR WATCH inside MULTI is not allowed")
		return
	}
	x := c.execCtx(nil, &c.out)
	if !x.checkKeys(args[1:]...) {
		return
	}
	if len(c.watched)+len(args)-1 > c.srv.opts.MaxWatchedKeys {
		c.out.Error(fmt.Sprintf("ERR at most %d keys can be watched", c.srv.opts.MaxWatchedKeys))
		return
	}
	t := c.newTxn()
	if err := t.prefetch(args[1:]); err != nil {
		c.replyErr(err)
		return
	}
	for _, k := range args[1:] {
		if !c.isWatched(string(k)) {
			c.watched = append(c.watched, watchedKey{key: string(k), version: t.reads[string(k)].version})
		}
	}
	c.out.SimpleString("OK")
}

func (c *conn) isWatched(key string) bool {
	for _, w := range c.watched {
		if w.key == key {
			return true
		}
	}
	return false
}

// runExec runs the queued commands as one transaction:
//
//  1. read every watched key and every key a queued command reads, in
//     parallel;
//  2. if a watched key's version differs from WATCH's, abort (null reply);
//  3. run the commands in order against the transaction: reads see the
//     earlier commands' writes; replies go to a scratch buffer;
//  4. commit: one atomic batch of the writes, conditioned on every key
//     read (watched ones included) being unchanged;
//  5. on a conflict, start again from 1 (a watched key that changed then
//     aborts at 2); after maxAttempts, fail with a retryable error.
//
// A command's own error (a wrong type of argument, a value that is not an
// integer) is its element of the reply and does not stop the others, as
// in Redis. A backend error fails the whole EXEC and nothing is applied
// (or, for a timeout during commit, the outcome is unknown).
func runExec(c *conn, _ [][]byte) {
	m := c.multi
	if m == nil {
		c.out.Error("ERR EXEC without MULTI")
		return
	}
	watched := c.watched
	c.multi, c.watched = nil, nil
	if m.dirty {
		c.out.Error(msgExecAbort)
		return
	}
	var keys [][]byte
	for _, w := range watched {
		keys = append(keys, []byte(w.key))
	}
	for _, q := range m.queue {
		if q.cmd.reads {
			keys = append(keys, q.cmd.keys(q.args)...)
		}
	}
	for attempt := 0; ; attempt++ {
		ok, err := c.execOnce(m, watched, keys)
		switch {
		case err == nil && !ok:
			c.out.NullArray()
			return
		case err == nil:
			c.out.Raw(c.scratch.Bytes())
			return
		case !errors.Is(err, errConflict):
			c.replyErr(err)
			return
		case attempt == maxAttempts-1:
			c.replyErr(errContention)
			return
		}
		backoff(c.ctx, attempt)
	}
}

// execOnce is one attempt of EXEC; ok is false when a watched key changed.
func (c *conn) execOnce(m *multiState, watched []watchedKey, keys [][]byte) (ok bool, err error) {
	t := c.newTxn()
	if err := t.prefetch(keys); err != nil {
		return false, err
	}
	for _, w := range watched {
		if t.reads[w.key].version != w.version {
			return false, nil
		}
	}
	c.scratch.Reset(keepBufferBytes)
	c.scratch.ArrayHeader(len(m.queue))
	x := c.execCtx(t, &c.scratch)
	for _, q := range m.queue {
		if err := q.cmd.exec(x, q.args); err != nil {
			return false, err
		}
		if c.scratch.Len() > x.maxReplyBytes {
			return false, errOutputLimit
		}
	}
	return true, t.commit()
}
