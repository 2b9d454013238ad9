package router

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/kv"
	"github.com/cairn-db/cairn/internal/replica"
)

// TxnLimits bound one transaction (docs/design/transactions.md, Limits).
type TxnLimits struct {
	// MaxOps is the most operations (keys) one transaction may have.
	MaxOps int
	// MaxBytes bounds the sum of the keys and values of a transaction.
	MaxBytes int
	// MaxDuration is the time from start to commit; after it, others may
	// abort the transaction if it is still pending.
	MaxDuration time.Duration
}

// EnsureDefaults fills unset limits.
func (l *TxnLimits) EnsureDefaults() {
	if l.MaxOps <= 0 {
		l.MaxOps = 1000
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = 4 << 20
	}
	if l.MaxDuration <= 0 {
		l.MaxDuration = 5 * time.Second
	}
}

// TxnHooks stop a coordinator at a step, as if its node died there: a
// hook that returns an error makes Txn return it at once, leaving the
// transaction's intents and record as they are, for recovery by others.
// Tests only.
type TxnHooks struct {
	// AfterPrewrite runs when every range's prewrite succeeded, before
	// the commit.
	AfterPrewrite func() error
	// AfterCommit runs when the record is committed, before any intent is
	// resolved.
	AfterCommit func() error
	// Prewrite runs before the prewrite of the i-th range (0: the
	// primary's); an error skips that prewrite and stops the coordinator
	// once the others are done (a crash midway through phase one).
	Prewrite func(i int) error
	// Resolve runs before the commit resolution of the i-th range; an
	// error skips it (a crash midway through resolving).
	Resolve func(i int) error
}

// SetTxnHooks replaces the router's crash hooks (tests only; safe while
// transactions run).
func (rt *Router) SetTxnHooks(h TxnHooks) { rt.txnHooks.Store(&h) }

func (rt *Router) hooks() *TxnHooks {
	if h := rt.txnHooks.Load(); h != nil {
		return h
	}
	return &rt.opts.TxnHooks
}

// txnAttempts is how many times Txn runs a transaction that met another
// one before it gives up with kv.ErrTxnConflict.
const txnAttempts = 4

var _ kv.Transactor = (*Router)(nil)

// Txn implements kv.Transactor: a transaction over any keys, all or
// nothing (docs/design/transactions.md). It coordinates two-phase commit
// from this node; a transaction whose keys lie in one range takes the
// one-phase path. Conflicts follow wait-die: an older transaction waits
// for a younger one while keeping its intents; a younger one aborts,
// waits holding nothing, and runs again with the same age, up to
// txnAttempts times.
func (rt *Router) Txn(ctx context.Context, req *cairnpb.TxnRequest) (*cairnpb.TxnResponse, error) {
	if err := rt.validateTxn(req); err != nil {
		return nil, err
	}
	ctx, cancel := rt.withTimeout(ctx)
	defer cancel()
	// Keys of hash tables travel as placement keys from here on (hash.go);
	// an error that names one names the user key again. NB: the request
	// is copied, not changed in place and restored as elsewhere: the
	// resolution of a committed transaction goes on after Txn returns
	// and reads the ops.
	var renames []keyRename
	placedReq := &cairnpb.TxnRequest{Ops: make([]*cairnpb.TxnOp, len(req.Ops))}
	for i, op := range req.Ops {
		t, err := rt.table(ctx, op.Table)
		if err != nil {
			return nil, err
		}
		placedReq.Ops[i] = op
		if IsHash(t) {
			c := proto.CloneOf(op)
			c.Key = placeKey(t, op.Key)
			placedReq.Ops[i] = c
			renames = append(renames, keyRename{placed: c.Key, user: op.Key})
		}
	}
	resp, err := rt.txnAttempts(ctx, placedReq)
	return resp, renameKeys(err, renames)
}

// txnAttempts runs a validated transaction whose keys are placement keys.
func (rt *Router) txnAttempts(ctx context.Context, req *cairnpb.TxnRequest) (*cairnpb.TxnResponse, error) {
	var err error
	startTS := uint64(rt.opts.Clock.Now())
	fresh := false
	for attempt := 0; attempt < txnAttempts; attempt++ {
		var resp *cairnpb.TxnResponse
		var conflict *txnConflict
		resp, conflict, err = rt.txnAttempt(ctx, req, startTS, fresh)
		if conflict == nil {
			if errors.Is(err, kv.ErrRangeKeyMismatch) && ctx.Err() == nil {
				// A split since routing: locate again from the local
				// replicas; not a conflict, so not an attempt.
				fresh = true
				attempt--
				sleep(ctx, 2*time.Millisecond)
				continue
			}
			if errors.Is(err, kv.ErrTxnAborted) && isReadOnly(req) && ctx.Err() == nil {
				// A read-only attempt whose record was aborted (it
				// expired while a prewrite waited) wrote nothing: run it
				// again.
				continue
			}
			return resp, err
		}
		// Wait out the other transaction, holding nothing.
		if herr := rt.handleIntent(ctx, conflict.table, conflict.key, conflict.intent); herr != nil {
			return nil, herr
		}
		sleep(ctx, time.Duration(rand.Int64N(int64(2*time.Millisecond<<attempt))))
	}
	if err == nil {
		err = kv.Errorf(kv.ErrTxnConflict, "gave up after %d attempts", txnAttempts)
	}
	return nil, err
}

// isReadOnly reports whether the transaction only reads.
func isReadOnly(req *cairnpb.TxnRequest) bool {
	for _, op := range req.Ops {
		if op.Kind == cairnpb.TxnOp_PUT || op.Kind == cairnpb.TxnOp_DELETE {
			return false
		}
	}
	return true
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func (rt *Router) validateTxn(req *cairnpb.TxnRequest) error {
	l := rt.opts.TxnLimits
	if len(req.Ops) == 0 {
		return kv.Errorf(kv.ErrInvalidArgument, "transaction is empty")
	}
	if len(req.Ops) > l.MaxOps {
		return kv.Errorf(kv.ErrInvalidArgument, "transaction has %d operations; the limit is %d", len(req.Ops), l.MaxOps)
	}
	seen := map[string]bool{}
	total := 0
	for i, op := range req.Ops {
		if err := kv.ValidateTableName(op.Table); err != nil {
			return fmt.Errorf("op %d: %w", i, err)
		}
		if err := rt.opts.Limits.ValidateKey(op.Key); err != nil {
			return fmt.Errorf("op %d: %w", i, err)
		}
		switch op.Kind {
		case cairnpb.TxnOp_READ, cairnpb.TxnOp_CHECK, cairnpb.TxnOp_PUT, cairnpb.TxnOp_DELETE:
		default:
			return kv.Errorf(kv.ErrInvalidArgument, "op %d: unknown kind %v", i, op.Kind)
		}
		if op.Kind == cairnpb.TxnOp_PUT {
			if err := rt.opts.Limits.ValidateValue(op.Value); err != nil {
				return fmt.Errorf("op %d: %w", i, err)
			}
		} else if len(op.Value) > 0 {
			return kv.Errorf(kv.ErrInvalidArgument, "op %d: only a put has a value", i)
		}
		if c := op.Condition; c != nil {
			n := 0
			for _, set := range []bool{c.Version != 0, c.Absent, c.Value != nil} {
				if set {
					n++
				}
			}
			if n > 1 {
				return kv.Errorf(kv.ErrInvalidArgument, "op %d: a condition sets one of version, absent, value", i)
			}
			if op.Kind == cairnpb.TxnOp_READ && n > 0 {
				return kv.Errorf(kv.ErrInvalidArgument, "op %d: a read has no condition (use a check)", i)
			}
			total += len(c.Value)
		}
		id := op.Table + "\x00" + string(op.Key)
		if seen[id] {
			return kv.Errorf(kv.ErrInvalidArgument, "op %d: key %q of table %q appears twice", i, op.Key, op.Table)
		}
		seen[id] = true
		total += len(op.Key) + len(op.Value)
	}
	if total > l.MaxBytes {
		return kv.Errorf(kv.ErrInvalidArgument, "transaction has %d bytes of keys and values; the limit is %d", total, l.MaxBytes)
	}
	return nil
}

// txnGroup is the part of a transaction on one range.
type txnGroup struct {
	table *cairnpb.Table
	desc  *cairnpb.RangeDescriptor
	idx   []int // positions in the request
	ops   []*cairnpb.TxnOp
	// prewritten: the prewrite may have applied (sent, outcome success or
	// unknown), so an abort must resolve this range.
	prewritten bool
	result     *cairnpb.TxnRangeResult
	err        error
}

// txnConflict is another transaction's intent met by a prewrite.
type txnConflict struct {
	table  string
	key    []byte
	intent *cairnpb.TxnIntent
}

// groupTxn splits ops by range, primary (ops[0]) first; fresh prefers the
// local replicas' descriptors to the catalog (after a range key mismatch).
func (rt *Router) groupTxn(ctx context.Context, ops []*cairnpb.TxnOp, fresh bool) ([]*txnGroup, error) {
	var groups []*txnGroup
	byRange := map[uint64]*txnGroup{}
	for i, op := range ops {
		t, d, err := rt.locate(ctx, op.Table, op.Key, fresh)
		if errors.Is(err, kv.ErrRangeKeyMismatch) {
			t, d, err = rt.locate(ctx, op.Table, op.Key, true)
		}
		if err != nil {
			return nil, err
		}
		g := byRange[d.Id]
		if g == nil {
			g = &txnGroup{table: t, desc: d}
			byRange[d.Id] = g
			groups = append(groups, g)
		}
		g.idx = append(g.idx, i)
		g.ops = append(g.ops, op)
	}
	return groups, nil
}

// txnAttempt runs the transaction once. A conflict is returned apart
// (with err nil) once this attempt is aborted and cleaned up.
func (rt *Router) txnAttempt(ctx context.Context, req *cairnpb.TxnRequest, startTS uint64, fresh bool) (*cairnpb.TxnResponse, *txnConflict, error) {
	groups, err := rt.groupTxn(ctx, req.Ops, fresh)
	if err != nil {
		return nil, nil, err
	}
	first := req.Ops[0]
	meta := &cairnpb.TxnMeta{
		Id:             make([]byte, keys.TxnIDLen),
		PrimaryTable:   first.Table,
		PrimaryTableId: groups[0].table.Id,
		PrimaryKey:     first.Key,
		ExpireAtMs:     rt.opts.Clock.Now().Millis() + rt.opts.TxnLimits.MaxDuration.Milliseconds(),
		StartTs:        startTS,
	}
	if _, err := crand.Read(meta.Id); err != nil {
		return nil, nil, kv.Errorf(kv.ErrInternal, "txn id: %v", err)
	}
	if len(groups) == 1 {
		g := groups[0]
		rt.prewrite(ctx, meta, g, false, true)
		if g.err == nil && g.result.Conflict != nil {
			return nil, conflictOf(g), nil
		}
		return assemble(req, groups), nil, g.err
	}
	readOnly := isReadOnly(req)
	if resp, conflict, err := rt.prewriteAll(ctx, meta, groups, req); resp == nil {
		return nil, conflict, err
	}
	if h := rt.hooks().AfterPrewrite; h != nil {
		if err := h(); err != nil {
			return nil, nil, err
		}
	}
	if readOnly {
		// The reads are one consistent state only if every lock was
		// held at once. A lock can be dropped before the last prewrite
		// is in: a prewrite that waited out another transaction can
		// take longer than this one's expiry, and a pusher (waiter, or
		// the background resolver) then aborts the record and resolves
		// the locks already taken, so writers slip in between the
		// reads. Pushers abort the record before they drop a lock, so
		// moving the record PENDING -> COMMITTED (nothing to write: the
		// locks are only dropped) proves that no lock was dropped
		// before now; a record found aborted fails the attempt.
		status, _, err := rt.endTxn(ctx, meta, cairnpb.TxnStatus_COMMITTED, 0, false)
		if err != nil {
			return nil, nil, kv.Errorf(kv.ErrTimeout, "read-only transaction end: %v", err)
		}
		committed := status == cairnpb.TxnStatus_COMMITTED
		go func() {
			rctx, cancel := context.WithTimeout(context.Background(), rt.opts.RequestTimeout)
			defer cancel()
			rt.resolveGroups(rctx, meta, groups, committed, 0)
		}()
		if !committed {
			return nil, nil, kv.Errorf(kv.ErrTxnAborted, "read-only transaction %x expired and was aborted before all its locks were held", meta.Id)
		}
		return assemble(req, groups), nil, nil
	}
	// Every write of the transaction gets one version, the largest any
	// prewrite reserved: a point in time then holds all or none of them.
	var commitVersion uint64
	for _, g := range groups {
		commitVersion = max(commitVersion, g.result.GetMaxReserved())
	}
	status, commitVersion, err := rt.endTxn(ctx, meta, cairnpb.TxnStatus_COMMITTED, commitVersion, false)
	if err != nil {
		// The commit may or may not have applied: the record decides,
		// and whoever meets an intent asks it.
		return nil, nil, kv.Errorf(kv.ErrTimeout, "transaction commit: %v", err)
	}
	if status != cairnpb.TxnStatus_COMMITTED {
		rt.resolveGroups(ctx, meta, groups, false, 0)
		return nil, nil, kv.Errorf(kv.ErrTxnAborted, "transaction %x expired and was aborted before its commit", meta.Id)
	}
	if h := rt.hooks().AfterCommit; h != nil {
		if err := h(); err != nil {
			return nil, nil, err
		}
	}
	go func() {
		rctx, cancel := context.WithTimeout(context.Background(), rt.opts.RequestTimeout)
		defer cancel()
		rt.resolveGroups(rctx, meta, groups, true, commitVersion)
	}()
	resp := assemble(req, groups)
	for i, op := range req.Ops {
		if op.Kind == cairnpb.TxnOp_PUT && commitVersion > 0 {
			resp.Results[i].Version = commitVersion
		}
	}
	return resp, nil, nil
}

// prewriteAll runs phase one on every range in parallel. On any failure
// it aborts the transaction (record and intents) before it returns a nil
// response with the conflict or the error.
func (rt *Router) prewriteAll(ctx context.Context, meta *cairnpb.TxnMeta, groups []*txnGroup, req *cairnpb.TxnRequest) (*cairnpb.TxnResponse, *txnConflict, error) {
	var wg sync.WaitGroup
	var crashed error
	for i, g := range groups {
		if h := rt.hooks().Prewrite; h != nil {
			if err := h(i); err != nil {
				crashed = err
				continue
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rt.prewrite(ctx, meta, g, i == 0, false)
		}()
	}
	wg.Wait()
	if crashed != nil {
		return nil, nil, crashed // a test hook: stop as a dead coordinator would
	}
	conflict, failure := rt.waitYounger(ctx, meta, groups)
	if conflict == nil && failure == nil {
		return assemble(req, groups), nil, nil
	}
	// Abort: the record, so that whoever waits on one of the intents
	// learns the outcome (and a prewrite of the primary whose outcome is
	// unknown cannot succeed later); and, at the same time, the intents.
	actx, cancel := context.WithTimeout(context.Background(), rt.opts.RequestTimeout)
	defer cancel()
	var aborted sync.WaitGroup
	aborted.Add(1)
	go func() {
		defer aborted.Done()
		if _, _, err := rt.endTxn(actx, meta, cairnpb.TxnStatus_ABORTED, 0, false); err != nil {
			rt.logf("txn: abort failed; left to recovery", "txn", fmt.Sprintf("%x", meta.Id), "err", err)
		}
	}()
	rt.resolveGroups(actx, meta, groups, false, 0)
	aborted.Wait()
	if failure != nil {
		return nil, nil, failure
	}
	return nil, conflict, nil
}

// waitYounger applies wait-die to the conflicts of phase one: while
// every conflict is with a younger transaction (or one already decided,
// whose intent only waits to be resolved), it waits for each (keeping
// its own intents) and prewrites that range again. It returns
// the first failure, or a conflict with an older (or same-age)
// transaction, for which this one must die.
func (rt *Router) waitYounger(ctx context.Context, meta *cairnpb.TxnMeta, groups []*txnGroup) (*txnConflict, error) {
	for {
		var waitFor []int
		for i, g := range groups {
			switch {
			case g.err != nil:
				return nil, g.err
			case g.result.Conflict == nil:
			case !older(meta, g.result.Conflict.GetMeta()) && !rt.decided(g.result.Conflict.GetMeta()):
				return conflictOf(g), nil
			default:
				waitFor = append(waitFor, i)
			}
		}
		if len(waitFor) == 0 {
			return nil, nil
		}
		for _, i := range waitFor {
			g := groups[i]
			if err := rt.handleIntent(ctx, g.table.Name, g.result.ConflictKey, g.result.Conflict); err != nil {
				return nil, err
			}
			g.result, g.err = nil, nil
			rt.prewrite(ctx, meta, g, i == 0, false)
		}
	}
}

// decided reports whether this node's replica of the record of meta's
// transaction says it is committed or aborted (final).
func (rt *Router) decided(meta *cairnpb.TxnMeta) bool {
	rec := rt.localRecord(meta)
	return rec != nil && rec.Status != cairnpb.TxnStatus_PENDING
}

// older reports whether transaction a started before b (wait-die age;
// IDs break ties).
func older(a, b *cairnpb.TxnMeta) bool {
	if a.StartTs != b.StartTs {
		return a.StartTs < b.StartTs
	}
	return bytes.Compare(a.Id, b.Id) < 0
}

func conflictOf(g *txnGroup) *txnConflict {
	return &txnConflict{table: g.table.Name, key: g.result.ConflictKey, intent: g.result.Conflict}
}

// assemble puts the groups' results back in request order.
func assemble(req *cairnpb.TxnRequest, groups []*txnGroup) *cairnpb.TxnResponse {
	out := &cairnpb.TxnResponse{Results: make([]*cairnpb.TxnResult, len(req.Ops))}
	for _, g := range groups {
		for j, i := range g.idx {
			if g.result != nil && j < len(g.result.Results) {
				out.Results[i] = g.result.Results[j]
			}
		}
	}
	for i := range out.Results {
		if out.Results[i] == nil {
			out.Results[i] = &cairnpb.TxnResult{}
		}
	}
	return out
}

// prewrite sends one range's prewrite (or the whole one-phase
// transaction) and records the outcome in g.
func (rt *Router) prewrite(ctx context.Context, meta *cairnpb.TxnMeta, g *txnGroup, primary, onePhase bool) {
	p := &cairnpb.TxnPrewrite{Table: g.table.Name, Meta: meta, Ops: g.ops, CreateRecord: primary, OnePhase: onePhase}
	g.prewritten = true
	resp, err := rt.route(ctx, keys.RangeID(g.desc.Id), &cairnpb.Request{Op: &cairnpb.Request_TxnPrewrite{TxnPrewrite: p}}, true,
		func(r *replica.Replica) (*cairnpb.Response, error) {
			return rt.localTxnCommand(ctx, r, g.table, &cairnpb.Command_TxnPrewrite{TxnPrewrite: p})
		})
	if err != nil {
		g.err = err
		return
	}
	g.result = resp.GetTxn()
	if g.result == nil {
		g.err = kv.Errorf(kv.ErrInternal, "prewrite of range %d: empty answer", g.desc.Id)
	}
}

// endTxn proposes a TxnEnd on the primary's range (commitVersion with a
// commit) and returns the record's status and commit version after it.
func (rt *Router) endTxn(ctx context.Context, meta *cairnpb.TxnMeta, status cairnpb.TxnStatus, commitVersion uint64, push bool) (cairnpb.TxnStatus, uint64, error) {
	e := &cairnpb.TxnEnd{Meta: meta, Status: status, Push: push, CommitVersion: commitVersion}
	var resp *cairnpb.Response
	err := rt.keyed(ctx, meta.PrimaryTable, meta.PrimaryKey, func(t *cairnpb.Table, d *cairnpb.RangeDescriptor) (err error) {
		if t.Id != meta.PrimaryTableId {
			return kv.Errorf(kv.ErrTableNotFound, "table %q was dropped", meta.PrimaryTable)
		}
		resp, err = rt.route(ctx, keys.RangeID(d.Id), &cairnpb.Request{Op: &cairnpb.Request_TxnEnd{TxnEnd: e}}, true,
			func(r *replica.Replica) (*cairnpb.Response, error) {
				return rt.localTxnCommand(ctx, r, t, &cairnpb.Command_TxnEnd{TxnEnd: e})
			})
		return err
	})
	if err != nil {
		return cairnpb.TxnStatus_TXN_STATUS_UNSPECIFIED, 0, err
	}
	return resp.GetTxn().GetStatus(), resp.GetTxn().GetCommitVersion(), nil
}

// resolveGroups resolves the transaction's intents on every prewritten
// range. Errors are left to recovery: whoever meets a leftover intent
// resolves it.
func (rt *Router) resolveGroups(ctx context.Context, meta *cairnpb.TxnMeta, groups []*txnGroup, commit bool, commitVersion uint64) {
	var wg sync.WaitGroup
	for i, g := range groups {
		if !g.prewritten {
			continue
		}
		if h := rt.hooks().Resolve; h != nil && commit {
			if err := h(i); err != nil {
				continue
			}
		}
		ks := make([][]byte, len(g.ops))
		for i, op := range g.ops {
			ks[i] = op.Key
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := rt.resolveKeys(ctx, g.table.Name, meta.Id, ks, commit, commitVersion); err != nil {
				rt.logf("txn: resolve failed; left to recovery", "txn", fmt.Sprintf("%x", meta.Id), "err", err)
			}
		}()
	}
	wg.Wait()
}

// resolveKeys resolves the intents of txn id on ks (keys of one table),
// range by range, following splits; a commit writes at commitVersion.
func (rt *Router) resolveKeys(ctx context.Context, table string, id []byte, ks [][]byte, commit bool, commitVersion uint64) error {
	for len(ks) > 0 {
		var done int
		err := rt.keyed(ctx, table, ks[0], func(t *cairnpb.Table, d *cairnpb.RangeDescriptor) error {
			var here [][]byte
			for _, k := range ks {
				if replica.DescContains(d, k) {
					here = append(here, k)
				}
			}
			res := &cairnpb.TxnResolve{Table: table, TxnId: id, Keys: here, Commit: commit, CommitVersion: commitVersion}
			_, err := rt.route(ctx, keys.RangeID(d.Id), &cairnpb.Request{Op: &cairnpb.Request_TxnResolve{TxnResolve: res}}, true,
				func(r *replica.Replica) (*cairnpb.Response, error) {
					return rt.localTxnCommand(ctx, r, t, &cairnpb.Command_TxnResolve{TxnResolve: res})
				})
			if err == nil {
				done = len(here)
				rest := ks[:0:0]
				for _, k := range ks {
					if !replica.DescContains(d, k) {
						rest = append(rest, k)
					}
				}
				ks = rest
			}
			return err
		})
		if err != nil {
			return err
		}
		if done == 0 {
			return kv.Errorf(kv.ErrInternal, "resolve made no progress")
		}
	}
	return nil
}

// localTxnCommand proposes a transaction command on the leader replica r.
func (rt *Router) localTxnCommand(ctx context.Context, r *replica.Replica, t *cairnpb.Table, op any) (*cairnpb.Response, error) {
	cmd := &cairnpb.Command{TableId: t.Id}
	switch o := op.(type) {
	case *cairnpb.Command_TxnPrewrite:
		if err := rt.checkQuota(r, t, prewriteGrowth(o.TxnPrewrite)); err != nil {
			return nil, err
		}
		cmd.Op = o
	case *cairnpb.Command_TxnEnd:
		cmd.Op = o
	case *cairnpb.Command_TxnResolve:
		cmd.Op = o
	default:
		return nil, kv.Errorf(kv.ErrInternal, "not a transaction command")
	}
	res, err := rt.propose(ctx, r, withHistory(t, cmd))
	if err != nil {
		return nil, err
	}
	txn := res.Txn
	if txn == nil {
		txn = &cairnpb.TxnRangeResult{}
	}
	return &cairnpb.Response{Op: &cairnpb.Response_Txn{Txn: txn}}, nil
}

// handleIntent deals with another transaction's intent on key of table,
// met by a read, a plain write or a prewrite: it waits until the
// transaction is decided (committed, aborted, or aborted by a push once
// expired), then resolves the intent accordingly. It returns
// kv.ErrTxnConflict if ctx ends first.
//
// Waiting reads this node's replicas where it has them: an intent gone
// from the key's leader here needs nothing more; a record found final
// here is final everywhere. The record is pushed through Raft (which
// also aborts it once expired) at most every pushInterval, so waiters do
// not load the range with writes.
func (rt *Router) handleIntent(ctx context.Context, table string, key []byte, in *cairnpb.TxnIntent) error {
	meta := in.GetMeta()
	if meta == nil {
		return kv.Errorf(kv.ErrInternal, "intent without transaction")
	}
	backoff := time.Millisecond
	// With the record's range here, polling it is enough at first: the
	// first push waits a pushInterval (or the expiry).
	var lastPush time.Time
	if rt.store.LocalRangeFor(meta.PrimaryTableId, meta.PrimaryKey) != nil {
		lastPush = time.Now()
	}
	for {
		if rt.localIntentGone(table, key, meta.Id) {
			return nil
		}
		status := cairnpb.TxnStatus_PENDING
		var commitVersion uint64
		if rec := rt.localRecord(meta); rec != nil && rec.Status != cairnpb.TxnStatus_PENDING {
			status, commitVersion = rec.Status, rec.CommitVersion
		} else if time.Since(lastPush) >= pushInterval || meta.ExpireAtMs <= rt.opts.Clock.Now().Millis() {
			lastPush = time.Now()
			var err error
			status, commitVersion, err = rt.endTxn(ctx, meta, cairnpb.TxnStatus_ABORTED, 0, true)
			switch {
			case err != nil && errors.Is(err, kv.ErrTableNotFound):
				status = cairnpb.TxnStatus_ABORTED // the record's table is gone
			case err != nil:
				if ctx.Err() != nil {
					return kv.Errorf(kv.ErrTxnConflict, "key %q is locked by transaction %x: %v", rt.shownKey(table, key), meta.Id, err)
				}
				status = cairnpb.TxnStatus_PENDING
			}
		}
		if status == cairnpb.TxnStatus_COMMITTED || status == cairnpb.TxnStatus_ABORTED {
			return rt.resolveKeys(ctx, table, meta.Id, [][]byte{key}, status == cairnpb.TxnStatus_COMMITTED, commitVersion)
		}
		select {
		case <-ctx.Done():
			return kv.Errorf(kv.ErrTxnConflict, "key %q is locked by pending transaction %x", rt.shownKey(table, key), meta.Id)
		case <-time.After(backoff):
		}
		if backoff *= 2; backoff > 20*time.Millisecond {
			backoff = 20 * time.Millisecond
		}
	}
}

// pushInterval is the least time between two pushes of one record by one
// waiter.
const pushInterval = 100 * time.Millisecond

// localIntentGone reports whether this node leads the range of key and
// its applied state has no intent of transaction id on key.
func (rt *Router) localIntentGone(table string, key []byte, id []byte) bool {
	t := rt.store.Table(table)
	if t == nil {
		return false
	}
	r := rt.store.LocalRangeFor(t.Id, key)
	if r == nil || !r.IsLeader() {
		return false
	}
	cur, err := replica.ReadIntent(rt.store.DB(), keys.TableID(t.Id), key)
	return err == nil && (cur == nil || !bytes.Equal(cur.GetMeta().GetId(), id))
}

// localRecord returns the record of meta's transaction as this node's
// replica of the primary's range has applied it, or nil.
func (rt *Router) localRecord(meta *cairnpb.TxnMeta) *cairnpb.TxnRecord {
	if rt.store.LocalRangeFor(meta.PrimaryTableId, meta.PrimaryKey) == nil {
		return nil
	}
	rec := &cairnpb.TxnRecord{}
	found, err := replica.GetProto(rt.store.DB(), keys.TxnRecordKey(keys.TableID(meta.PrimaryTableId), meta.Id, meta.PrimaryKey), rec)
	if err != nil || !found {
		return nil
	}
	return rec
}

// waitIntent is the read and plain-write side: if key of t has an intent
// that hides or blocks (any intent for a write, a put or delete intent
// for a read), handle it and report true, so the caller reads or writes
// again.
func (rt *Router) waitIntent(ctx context.Context, table string, t *cairnpb.Table, key []byte, write bool) (bool, error) {
	in, err := replica.ReadIntent(rt.store.DB(), keys.TableID(t.Id), key)
	if err != nil {
		return false, kv.Errorf(kv.ErrInternal, "read intent: %v", err)
	}
	if in == nil || (!write && in.Kind != cairnpb.TxnOp_PUT && in.Kind != cairnpb.TxnOp_DELETE) {
		return false, nil
	}
	return true, rt.handleIntent(ctx, table, key, in)
}

// proposeUnlocked proposes a plain write of ks on the leader r; while the
// write is refused because another transaction holds one of its keys, it
// waits that transaction out (handleIntent) and proposes again.
func (rt *Router) proposeUnlocked(ctx context.Context, r *replica.Replica, t *cairnpb.Table, cmd *cairnpb.Command, ks ...[]byte) (replica.Result, error) {
	withHistory(t, cmd)
	for {
		res, err := rt.propose(ctx, r, cmd)
		if !errors.Is(err, kv.ErrTxnConflict) {
			return res, err
		}
		for _, k := range ks {
			if _, werr := rt.waitIntent(ctx, t.Name, t, k, true); werr != nil {
				return res, werr
			}
		}
		if ctx.Err() != nil {
			return res, err
		}
	}
}

// resolveSpanIntents handles the put and delete intents on the keys
// [start, end) of t (at most 1000 per call, as of this node's Pebble) and
// returns how many it met.
func (rt *Router) resolveSpanIntents(ctx context.Context, t *cairnpb.Table, start, end []byte) (int, error) {
	d := &cairnpb.RangeDescriptor{TableId: t.Id, Start: start, End: end}
	ks, ins, err := replica.IntentsIn(rt.store.DB(), d, 1000)
	if err != nil {
		return 0, kv.Errorf(kv.ErrInternal, "read intents: %v", err)
	}
	n := 0
	for i, in := range ins {
		if in.Kind != cairnpb.TxnOp_PUT && in.Kind != cairnpb.TxnOp_DELETE {
			continue
		}
		n++
		if err := rt.handleIntent(ctx, t.Name, ks[i], in); err != nil {
			return n, err
		}
	}
	return n, nil
}

// RunTxnResolver, every interval until ctx ends, resolves the intents of
// expired transactions on the ranges this node leads (ResolveExpired).
func (rt *Router) RunTxnResolver(ctx context.Context, interval time.Duration) {
	every(ctx, interval, func() { rt.ResolveExpired(ctx) })
}

// ResolveExpired runs one pass of the background resolver: every intent,
// on a data range this node leads, of a transaction whose expiry has
// passed by this node's clock is pushed (aborting it if still pending)
// and resolved as its record says. So intents of a coordinator that died
// do not wait for a reader. It returns how many intents it resolved.
func (rt *Router) ResolveExpired(ctx context.Context) int {
	resolved := 0
	// One look per table skips every range of a table without intents
	// (see ExpireDue).
	has := func(t *cairnpb.Table) bool {
		start, end := keys.IntentSpan(keys.TableID(t.Id), nil, nil)
		return !spanEmpty(rt.store.DB(), start, end)
	}
	for _, l := range rt.ledDataRanges(has) {
		t, d := l.t, l.d
		ks, ins, err := replica.IntentsIn(rt.store.DB(), d, 256)
		if err != nil {
			rt.logf("txn resolver: scan failed", "range", d.Id, "err", err)
			continue
		}
		nowMs := rt.opts.Clock.Now().Millis()
		for i, in := range ins {
			if in.GetMeta().GetExpireAtMs() > nowMs {
				continue
			}
			hctx, cancel := context.WithTimeout(ctx, rt.opts.RequestTimeout)
			err := rt.handleIntent(hctx, t.Name, ks[i], in)
			cancel()
			if err != nil {
				rt.logf("txn resolver: resolve failed", "range", d.Id, "err", err)
				continue
			}
			resolved++
		}
	}
	return resolved
}

// withHistory puts t's key history retention into cmd, a write of t's
// keys (replica.historyOf: every replica trims the key's history as the
// command says, whatever its own catalog holds).
func withHistory(t *cairnpb.Table, cmd *cairnpb.Command) *cairnpb.Command {
	cmd.HistoryVersions, cmd.HistoryRetentionMs = t.HistoryVersions, t.HistoryRetentionMs
	return cmd
}
