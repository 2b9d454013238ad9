// Package router implements kv.Service on a node: it validates a request,
// resolves its table to a range, and either executes it on the local
// replica when that replica leads the range, or forwards it to the node
// that does (over the peer connection, one hop: the receiving node never
// forwards again but answers "not leader", and the router here retries).
// Linearizable reads are the exception: any local replica serves them
// after a Raft ReadIndex barrier (see Router.read).
//
// The router is also the coordinator of transactions (txn.go): two-phase
// commit over the ranges a transaction touches, and the recovery of
// transactions whose coordinator died (docs/design/transactions.md).
//
// Hash-partitioned tables (hash.go, docs/design/hashing.md) are the
// router's alone: it routes their keys by placement key (a hash prefix
// and the key) and strips the prefix from every key it returns, so the
// layers below see ordinary ranges.
//
// Table resolution uses the node's applied copy of the meta range (fast,
// possibly a little stale). A miss is confirmed with a linearizable
// ReadBarrier on the meta replica before answering "table not found", so
// a table created through another node is visible at once.
package router

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/coord"
	"github.com/cairn-db/cairn/internal/hlc"
	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/kv"
	"github.com/cairn-db/cairn/internal/replica"
	"github.com/cairn-db/cairn/internal/storage"
	"github.com/cairn-db/cairn/internal/store"
	"github.com/cairn-db/cairn/internal/transport"
	"github.com/cairn-db/cairn/internal/watch"
)

// Options configures a Router.
type Options struct {
	Limits         kv.Limits
	RequestTimeout time.Duration
	Clock          *hlc.Clock
	Logger         *slog.Logger
	// Watch bounds each watcher (zero values: the package's defaults).
	Watch watch.Options
	// TxnLimits bound transactions; unset fields get defaults.
	TxnLimits TxnLimits
	// TxnHooks stop transaction coordinators at a step (tests only).
	TxnHooks TxnHooks
	// DefaultReplicas is the voters per range of a table created without
	// a replication factor (0: 3).
	DefaultReplicas int
	// SplitQPS: a range whose leader serves more requests a second than
	// this for a few seconds splits at its median request key (0: never;
	// load.go).
	SplitQPS int
	// ClientAddress is this node's client API address (--advertise),
	// reported in heartbeats so that clients can route to it (routes.go).
	ClientAddress string
}

// Router is the node's kv.Service.
type Router struct {
	opts      Options
	txnHooks  atomic.Pointer[TxnHooks] // set by SetTxnHooks; else opts.TxnHooks
	store     *store.Store
	transport *transport.Transport

	coord atomic.Pointer[coord.Coordinator]
	// rangeBytes are the ranges' sizes as the coordinator last reported.
	rangeBytes atomic.Pointer[map[uint64]uint64]
	// leaders caches, for ranges without a local replica, the node that
	// last led them (keys.RangeID -> uint64).
	leaders sync.Map
	// load counts requests per local range (*rangeLoad by keys.RangeID)
	// for load-based splits.
	load sync.Map

	stopWatches     chan struct{} // closed by StopWatches
	stopWatchesOnce sync.Once
	quotas          quotas
	readQuotas      quotas
}

var _ kv.Service = (*Router)(nil)

// New returns a router over a store and its transport.
func New(s *store.Store, t *transport.Transport, opts Options) *Router {
	opts.TxnLimits.EnsureDefaults()
	return &Router{opts: opts, store: s, transport: t, stopWatches: make(chan struct{})}
}

// withTimeout bounds a request by RequestTimeout (timeout.go: the timer
// starts only if the request waits).
func (rt *Router) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return withLazyTimeout(ctx, rt.opts.RequestTimeout)
}

// table resolves a table name, confirming a miss linearizably.
func (rt *Router) table(ctx context.Context, name string) (*cairnpb.Table, error) {
	if t := rt.store.Table(name); t != nil {
		return t, nil
	}
	if err := rt.metaBarrier(ctx); err != nil {
		return nil, err
	}
	if t := rt.store.Table(name); t != nil {
		return t, nil
	}
	return nil, kv.Errorf(kv.ErrTableNotFound, "table %q does not exist", name)
}

func (rt *Router) metaBarrier(ctx context.Context) error {
	meta := rt.store.Replica(replica.MetaRangeID)
	if meta == nil {
		return kv.Errorf(kv.ErrInternal, "no meta replica")
	}
	return retry(ctx, func() error { return meta.ReadBarrier(ctx) })
}

// retry runs f until it succeeds, fails with a non-retryable error, or ctx
// ends. Retryable: not leader, and unavailable (no leader yet).
func retry(ctx context.Context, f func() error) error {
	backoff := 10 * time.Millisecond
	for {
		err := f()
		if err == nil || !(errors.Is(err, kv.ErrNotLeader) || errors.Is(err, kv.ErrUnavailable)) {
			return err
		}
		select {
		case <-ctx.Done():
			if errors.Is(err, kv.ErrNotLeader) {
				return kv.Errorf(kv.ErrUnavailable, "no leader reachable: %v", err)
			}
			return err
		case <-time.After(backoff):
		}
		if backoff *= 2; backoff > 200*time.Millisecond {
			backoff = 200 * time.Millisecond
		}
	}
}

// rangeFor returns the range of table t holding key: a binary search over
// the table's descriptors, which the meta range keeps sorted by start key
// and free of overlaps. nil when no recorded range holds key (the catalog
// lags behind a split; the caller refreshes and retries).
func rangeFor(t *cairnpb.Table, key []byte) *cairnpb.RangeDescriptor {
	// The last range whose start is <= key.
	i := sort.Search(len(t.Ranges), func(i int) bool { return bytes.Compare(t.Ranges[i].Start, key) > 0 }) - 1
	if i < 0 {
		return nil
	}
	if d := t.Ranges[i]; replica.DescContains(d, key) {
		return d
	}
	return nil
}

// slowRoute: a request that spends longer in route is logged with what
// its attempts met.
const slowRoute = time.Second

// route runs local on the leader replica of rangeID, or forwards req to
// the leader's node. write says whether a failed forward may have
// executed (then its outcome is unknown and it is not retried).
//
// A node without a replica of the range (replicas are placed on some
// nodes only; docs/design/placement.md) forwards to the leader it last
// heard of, else to the voters the catalog lists, learning the leader
// from their not-leader answers.
func (rt *Router) route(ctx context.Context, rangeID keys.RangeID, req *cairnpb.Request, write bool,
	local func(r *replica.Replica) (*cairnpb.Response, error)) (*cairnpb.Response, error) {
	var resp *cairnpb.Response
	attempt, hints := 0, 0
	const maxHints = 3
	start := time.Now()
	var trail []string // what the retries met, for the slow-request log
	defer func() {
		if d := time.Since(start); d > slowRoute {
			rt.logf("router: slow request", "range", uint64(rangeID), "took", d.Round(time.Millisecond), "write", write, "trail", trail)
		}
	}()
	err := retry(ctx, func() (err error) {
		defer func() {
			if err != nil && len(trail) < 20 {
				trail = append(trail, fmt.Sprintf("%s %v", time.Since(start).Round(time.Millisecond), err))
			}
		}()
		r := rt.store.Replica(rangeID)
		var leader uint64
		if r != nil {
			if r.IsLeader() {
				var err error
				resp, err = local(r)
				return err
			}
			leader = r.Leader()
			if leader == 0 && r.Initialized() {
				// An election is under way: wait for it.
				return kv.Errorf(kv.ErrUnavailable, "range %d has no leader", rangeID)
			}
		}
		// Without a local replica that knows its leader (none here, or a
		// new learner still waiting for its first message): ask the
		// others.
		remote := leader == 0
		if remote {
			d := rt.store.CatalogRange(rangeID)
			var others []uint64
			if d != nil {
				for _, id := range d.Replicas {
					if id != rt.store.NodeID() {
						others = append(others, id)
					}
				}
			}
			switch {
			case len(others) == 0 && r != nil:
				return kv.Errorf(kv.ErrUnavailable, "range %d has no leader", rangeID)
			case len(others) == 0 || attempt > 2*len(others):
				// Not created here yet, removed, or nowhere to be found:
				// the caller re-resolves the key.
				return kv.Errorf(kv.ErrRangeKeyMismatch, "range %d is not on this node", rangeID)
			}
			if l, ok := rt.leaders.Load(rangeID); ok && attempt == 0 && l.(uint64) != rt.store.NodeID() {
				leader = l.(uint64)
			} else {
				leader = others[attempt%len(others)]
			}
		}
		next := func(err error) error {
			if !remote {
				return err
			}
			// Another holder may know better: try it.
			attempt++
			rt.leaders.Delete(rangeID)
			return kv.Errorf(kv.ErrUnavailable, "%v", err)
		}
		c := rt.transport.Client(leader)
		if c == nil || !rt.transport.Connected(leader) {
			return next(kv.Errorf(kv.ErrUnavailable, "leader %d of range %d is unreachable", leader, rangeID))
		}
		req.RangeId = uint64(rangeID)
		out, err := c.Forward(ctx, req)
		if err != nil {
			if write && status.Code(err) != codes.Canceled {
				return kv.Errorf(kv.ErrTimeout, "forward to node %d failed: %v", leader, err)
			}
			return next(kv.Errorf(kv.ErrUnavailable, "forward to node %d failed: %v", leader, err))
		}
		if out.Error != nil {
			err := kv.FromCode(out.Error.Code, out.Error.Message)
			if remote && errors.Is(err, kv.ErrNotLeader) {
				if h := out.Error.LeaderHint; h != 0 && h != leader && hints < maxHints {
					// Follow the hint (a few times: hints can be stale).
					hints++
					rt.leaders.Store(rangeID, h)
					attempt = 0
					return err
				}
				return next(err)
			}
			// A range key mismatch (the range split or the key moved) goes
			// back to the caller, which resolves the key again.
			return err
		}
		if remote {
			rt.leaders.Store(rangeID, leader)
		}
		resp = out
		return nil
	})
	return resp, err
}

// read serves a linearizable read on the local replica of rangeID, leader
// or follower: local runs a ReadBarrier (Raft ReadIndex; on a follower the
// leader confirms its commit index and the follower waits until it has
// applied that far), then reads the local Pebble. This spreads reads over
// all replicas and ships a small ReadIndex message instead of the request
// and the value. Without a local replica the request is forwarded.
func (rt *Router) read(ctx context.Context, rangeID keys.RangeID, req *cairnpb.Request,
	local func(r *replica.Replica) (*cairnpb.Response, error)) (*cairnpb.Response, error) {
	r := rt.store.Replica(rangeID)
	if r == nil || !r.Initialized() {
		return rt.route(ctx, rangeID, req, false, local)
	}
	var resp *cairnpb.Response
	err := retry(ctx, func() error {
		var err error
		if cur := rt.store.Replica(rangeID); cur != r {
			// The replica moved off this node (or was replaced) meanwhile.
			resp, err = rt.route(ctx, rangeID, req, false, local)
			return err
		}
		resp, err = local(r)
		return err
	})
	return resp, err
}

// Forward executes a request forwarded by another node; it never forwards
// again (local-only), answering ErrNotLeader instead.
func (rt *Router) Forward(ctx context.Context, req *cairnpb.Request) *cairnpb.Response {
	ctx, cancel := rt.withTimeout(ctx)
	defer cancel()
	resp, err := rt.forwarded(ctx, req)
	if err != nil {
		e := &cairnpb.Error{Code: kv.Code(err), Message: err.Error()}
		if errors.Is(err, kv.ErrNotLeader) && req.RangeId != 0 {
			if r := rt.store.Replica(keys.RangeID(req.RangeId)); r != nil {
				e.LeaderHint = r.Leader()
			}
		}
		return &cairnpb.Response{Error: e}
	}
	return resp
}

func (rt *Router) forwarded(ctx context.Context, req *cairnpb.Request) (*cairnpb.Response, error) {
	onLeader := func(id keys.RangeID, f func(*replica.Replica) (*cairnpb.Response, error)) (*cairnpb.Response, error) {
		r := rt.store.Replica(id)
		if r == nil {
			// Moved away (or not here yet): the sender tries the range's
			// other replicas.
			return nil, kv.Errorf(kv.ErrNotLeader, "range %d is not on node %d", id, rt.store.NodeID())
		}
		if !r.IsLeader() {
			return nil, kv.Errorf(kv.ErrNotLeader, "node %d does not lead range %d", rt.store.NodeID(), id)
		}
		return f(r)
	}
	// keyed runs f on the range the sender chose (RangeId), or on the
	// range the catalog here names for key.
	keyed := func(table string, key []byte, f func(*cairnpb.Table, *replica.Replica) (*cairnpb.Response, error)) (*cairnpb.Response, error) {
		t, err := rt.table(ctx, table)
		if err != nil {
			return nil, err
		}
		id := keys.RangeID(req.RangeId)
		if id == 0 {
			d := rangeFor(t, key)
			if d == nil {
				return nil, kv.Errorf(kv.ErrRangeKeyMismatch, "table %q has no recorded range for the key yet", table)
			}
			id = keys.RangeID(d.Id)
		}
		return onLeader(id, func(r *replica.Replica) (*cairnpb.Response, error) { return f(t, r) })
	}
	switch op := req.Op.(type) {
	case *cairnpb.Request_Get:
		return keyed(op.Get.Table, op.Get.Key, func(t *cairnpb.Table, r *replica.Replica) (*cairnpb.Response, error) {
			return rt.localGet(ctx, r, t, op.Get)
		})
	case *cairnpb.Request_History:
		return keyed(op.History.Table, op.History.Key, func(t *cairnpb.Table, r *replica.Replica) (*cairnpb.Response, error) {
			return rt.localHistory(ctx, r, t, op.History)
		})
	case *cairnpb.Request_Put:
		return keyed(op.Put.Table, op.Put.Key, func(t *cairnpb.Table, r *replica.Replica) (*cairnpb.Response, error) {
			return rt.localPut(ctx, r, t, op.Put)
		})
	case *cairnpb.Request_Delete:
		return keyed(op.Delete.Table, op.Delete.Key, func(t *cairnpb.Table, r *replica.Replica) (*cairnpb.Response, error) {
			return rt.localDelete(ctx, r, t, op.Delete)
		})
	case *cairnpb.Request_List:
		start, _ := listSpan(op.List, nil)
		return keyed(op.List.Table, start, func(t *cairnpb.Table, r *replica.Replica) (*cairnpb.Response, error) {
			return rt.localList(ctx, r, t, op.List)
		})
	case *cairnpb.Request_Batch:
		if len(op.Batch.Ops) == 0 {
			return &cairnpb.Response{Op: &cairnpb.Response_Batch{Batch: &cairnpb.BatchResponse{}}}, nil
		}
		key, _ := batchKeyOf(op.Batch.Ops[0])
		return keyed(op.Batch.Table, key, func(t *cairnpb.Table, r *replica.Replica) (*cairnpb.Response, error) {
			return rt.localBatch(ctx, r, t, op.Batch)
		})
	case *cairnpb.Request_SplitRange:
		return keyed(op.SplitRange.Table, op.SplitRange.Key, func(t *cairnpb.Table, r *replica.Replica) (*cairnpb.Response, error) {
			return rt.localSplit(ctx, r, t, op.SplitRange.Key)
		})
	case *cairnpb.Request_MergeRange:
		return keyed(op.MergeRange.Table, op.MergeRange.Key, func(t *cairnpb.Table, r *replica.Replica) (*cairnpb.Response, error) {
			return rt.localMerge(ctx, r, t)
		})
	case *cairnpb.Request_MergeStep:
		return onLeader(keys.RangeID(op.MergeStep.RangeId), func(r *replica.Replica) (*cairnpb.Response, error) {
			return rt.localMergeStep(ctx, r, op.MergeStep)
		})
	case *cairnpb.Request_MergeWait:
		// Any replica answers for itself, leader or not.
		if err := rt.localMergeWait(ctx, keys.RangeID(op.MergeWait.RangeId), op.MergeWait.Index); err != nil {
			return nil, err
		}
		return &cairnpb.Response{}, nil
	case *cairnpb.Request_Expire:
		if len(op.Expire.GetExpire().GetKeys()) == 0 {
			return nil, kv.Errorf(kv.ErrInvalidArgument, "expire request without keys")
		}
		return keyed(op.Expire.Table, op.Expire.Expire.Keys[0].Key, func(t *cairnpb.Table, r *replica.Replica) (*cairnpb.Response, error) {
			return rt.localExpire(ctx, r, t, op.Expire.Expire)
		})
	case *cairnpb.Request_TxnPrewrite:
		p := op.TxnPrewrite
		if len(p.Ops) == 0 {
			return nil, kv.Errorf(kv.ErrInvalidArgument, "prewrite without keys")
		}
		return keyed(p.Table, p.Ops[0].Key, func(t *cairnpb.Table, r *replica.Replica) (*cairnpb.Response, error) {
			return rt.localTxnCommand(ctx, r, t, &cairnpb.Command_TxnPrewrite{TxnPrewrite: p})
		})
	case *cairnpb.Request_TxnEnd:
		m := op.TxnEnd.GetMeta()
		return keyed(m.GetPrimaryTable(), m.GetPrimaryKey(), func(t *cairnpb.Table, r *replica.Replica) (*cairnpb.Response, error) {
			return rt.localTxnCommand(ctx, r, t, &cairnpb.Command_TxnEnd{TxnEnd: op.TxnEnd})
		})
	case *cairnpb.Request_TxnResolve:
		res := op.TxnResolve
		if len(res.Keys) == 0 {
			return nil, kv.Errorf(kv.ErrInvalidArgument, "resolve without keys")
		}
		return keyed(res.Table, res.Keys[0], func(t *cairnpb.Table, r *replica.Replica) (*cairnpb.Response, error) {
			return rt.localTxnCommand(ctx, r, t, &cairnpb.Command_TxnResolve{TxnResolve: res})
		})
	case *cairnpb.Request_BackupRange:
		return keyed(op.BackupRange.Table, op.BackupRange.Start, func(t *cairnpb.Table, r *replica.Replica) (*cairnpb.Response, error) {
			return rt.localBackupRange(ctx, r, t, op.BackupRange)
		})
	case *cairnpb.Request_RestoreRange:
		if len(op.RestoreRange.Keys) == 0 {
			return nil, kv.Errorf(kv.ErrInvalidArgument, "restore without keys")
		}
		return keyed(op.RestoreRange.Table, op.RestoreRange.Keys[0].Key, func(t *cairnpb.Table, r *replica.Replica) (*cairnpb.Response, error) {
			return rt.localRestoreRange(ctx, r, t, op.RestoreRange)
		})
	case *cairnpb.Request_CreateTable:
		return onLeader(replica.MetaRangeID, func(r *replica.Replica) (*cairnpb.Response, error) {
			return rt.localCreateTable(ctx, r, op.CreateTable)
		})
	case *cairnpb.Request_DropTable:
		return onLeader(replica.MetaRangeID, func(r *replica.Replica) (*cairnpb.Response, error) { return rt.localDropTable(ctx, r, op.DropTable) })
	case *cairnpb.Request_UpdateTable:
		return onLeader(replica.MetaRangeID, func(r *replica.Replica) (*cairnpb.Response, error) {
			return rt.localUpdateTable(ctx, r, op.UpdateTable)
		})
	case *cairnpb.Request_AllocRangeId:
		return onLeader(replica.MetaRangeID, func(r *replica.Replica) (*cairnpb.Response, error) { return rt.localAllocRangeID(ctx, r) })
	case *cairnpb.Request_UpdateRanges:
		return onLeader(replica.MetaRangeID, func(r *replica.Replica) (*cairnpb.Response, error) {
			return rt.localUpdateRanges(ctx, r, op.UpdateRanges)
		})
	case *cairnpb.Request_Auth:
		return onLeader(replica.MetaRangeID, func(r *replica.Replica) (*cairnpb.Response, error) { return rt.localAuth(ctx, r, op.Auth) })
	case *cairnpb.Request_ChangeReplicas:
		return onLeader(keys.RangeID(op.ChangeReplicas.RangeId), func(r *replica.Replica) (*cairnpb.Response, error) {
			return rt.localChangeReplicas(ctx, r, op.ChangeReplicas)
		})
	case *cairnpb.Request_TransferLeader:
		return onLeader(keys.RangeID(op.TransferLeader.RangeId), func(r *replica.Replica) (*cairnpb.Response, error) {
			return &cairnpb.Response{}, r.TransferLeader(op.TransferLeader.To)
		})
	case *cairnpb.Request_AddNode:
		return onLeader(replica.MetaRangeID, func(r *replica.Replica) (*cairnpb.Response, error) {
			return rt.localMetaCommand(ctx, r, &cairnpb.Command{Op: &cairnpb.Command_AddNode{AddNode: op.AddNode}})
		})
	case *cairnpb.Request_SetNodeState:
		return onLeader(replica.MetaRangeID, func(r *replica.Replica) (*cairnpb.Response, error) {
			return rt.localMetaCommand(ctx, r, &cairnpb.Command{Op: &cairnpb.Command_SetNodeState{SetNodeState: op.SetNodeState}})
		})
	case *cairnpb.Request_ClusterStatus:
		return onLeader(replica.MetaRangeID, func(r *replica.Replica) (*cairnpb.Response, error) {
			c := rt.coord.Load()
			if c == nil {
				return nil, kv.Errorf(kv.ErrUnavailable, "no coordinator on node %d", rt.store.NodeID())
			}
			return &cairnpb.Response{Op: &cairnpb.Response_ClusterStatus{ClusterStatus: c.Status()}}, nil
		})
	}
	return nil, kv.Errorf(kv.ErrInvalidArgument, "unknown forwarded request")
}

// Get implements kv.Service.
func (rt *Router) Get(ctx context.Context, req *cairnpb.GetRequest) (*cairnpb.GetResponse, error) {
	if err := rt.opts.Limits.ValidateGet(req); err != nil {
		return nil, err
	}
	if _, err := parseReadLevel(req.Consistency, "", req.MaxStalenessMs, req.SessionToken); err != nil {
		return nil, err
	}
	ctx, cancel := rt.withTimeout(ctx)
	defer cancel()
	restore, err := rt.placed(ctx, req.Table, &req.Key)
	if err != nil {
		return nil, err
	}
	defer restore()
	var t *cairnpb.Table
	var d *cairnpb.RangeDescriptor
	get := func() (*cairnpb.GetResponse, error) {
		var resp *cairnpb.Response
		err := rt.keyed(ctx, req.Table, req.Key, func(kt *cairnpb.Table, kd *cairnpb.RangeDescriptor) (err error) {
			t, d = kt, kd
			resp, err = rt.read(ctx, keys.RangeID(kd.Id), &cairnpb.Request{Op: &cairnpb.Request_Get{Get: req}},
				func(r *replica.Replica) (*cairnpb.Response, error) { return rt.localGet(ctx, r, kt, req) })
			return err
		})
		if err != nil {
			return nil, err
		}
		return resp.GetGet(), nil
	}
	expired := func(resp *cairnpb.GetResponse) bool {
		return resp.ExpireAtMs != 0 && resp.ExpireAtMs <= rt.opts.Clock.Now().Millis()
	}
	resp, err := get()
	if err != nil || !expired(resp) {
		return foundOrMiss(resp, err)
	}
	if resp.ServedConsistency == kv.Linearizable {
		// Expired by this node's clock but not yet by the log: expire it
		// through Raft, then read again. (If the range split meanwhile,
		// the Expire does nothing or is refused; the second read
		// re-routes.) A session or stale read answers from a replica's
		// state and skips this: the key is gone by this node's clock.
		if err := rt.expire(ctx, t, d, []*cairnpb.ExpireKey{{Key: req.Key, Version: resp.Version, ExpireAtMs: resp.ExpireAtMs}}); err != nil && !errors.Is(err, kv.ErrRangeKeyMismatch) {
			return nil, err
		}
		if resp, err = get(); err != nil || !expired(resp) {
			return foundOrMiss(resp, err)
		}
	}
	resp.Version = 0 // gone by this node's clock
	return foundOrMiss(resp, nil)
}

// foundOrMiss turns the internal "absent" answer of localGet (version 0:
// no written key has it) into a *kv.ReadMissError.
func foundOrMiss(resp *cairnpb.GetResponse, err error) (*cairnpb.GetResponse, error) {
	if err != nil || resp.Version != 0 {
		return resp, err
	}
	return nil, &kv.ReadMissError{SessionToken: resp.SessionToken, ServedConsistency: resp.ServedConsistency,
		ServedBy: resp.ServedBy, StalenessMs: resp.StalenessMs}
}

// localGet reads req.Key on r at the request's consistency level. An
// absent key is answered with version 0 (not an error), so that the
// answer still carries how it was served; Get turns it into a
// *kv.ReadMissError.
func (rt *Router) localGet(ctx context.Context, r *replica.Replica, t *cairnpb.Table, req *cairnpb.GetRequest) (*cairnpb.Response, error) {
	rt.noteLoad(r, req.Key)
	if err := rt.checkReadQuota(r, t); err != nil {
		return nil, err
	}
	lv, err := parseReadLevel(req.Consistency, t.Consistency, req.MaxStalenessMs, req.SessionToken)
	if err != nil {
		return nil, err
	}
	sv, err := barrier(ctx, r, lv)
	if err != nil {
		return nil, err
	}
	// After the barrier: a split applied since routing moved the key to
	// another range, whose writes this barrier does not cover.
	if d := r.Desc(); d.TableId != t.Id || !r.Contains(req.Key) {
		return nil, kv.Errorf(kv.ErrRangeKeyMismatch, "range %d no longer holds the key", r.ID)
	}
	// The intent first, then the value: a transaction acknowledged
	// before this read either still has its intent here or has resolved
	// it into the value. A range without intents skips the lookup
	// (replica/intents.go).
	if !r.IntentFree() {
		if waited, err := rt.waitIntent(ctx, req.Table, t, req.Key, false); err != nil || waited {
			if err != nil {
				return nil, err
			}
			return rt.localGet(ctx, r, t, req)
		}
	}
	out := &cairnpb.GetResponse{SessionToken: tokenOf(sv.entry), ServedConsistency: sv.level,
		ServedBy: rt.store.NodeID(), StalenessMs: sv.staleness.Milliseconds(), Leader: r.Leader()}
	resp := &cairnpb.Response{Op: &cairnpb.Response_Get{Get: out}}
	v, closer, err := rt.store.DB().Get(keys.DataKey(keys.TableID(t.Id), req.Key))
	if errors.Is(err, pebble.ErrNotFound) {
		return resp, nil
	}
	if err != nil {
		return nil, kv.Errorf(kv.ErrInternal, "read: %v", err)
	}
	defer closer.Close()
	version, exp, value, err := storage.DecodeValueTTL(v)
	if err != nil {
		return nil, kv.Errorf(kv.ErrInternal, "read: %v", err)
	}
	if replica.Expired(exp, r.LogTime()) {
		return resp, nil
	}
	out.Value, out.Version, out.ExpireAtMs = append([]byte(nil), value...), version, exp
	return resp, nil
}

// Put implements kv.Service.
func (rt *Router) Put(ctx context.Context, req *cairnpb.PutRequest) (*cairnpb.PutResponse, error) {
	if err := rt.opts.Limits.ValidatePut(req); err != nil {
		return nil, err
	}
	ctx, cancel := rt.withTimeout(ctx)
	defer cancel()
	restore, err := rt.placed(ctx, req.Table, &req.Key)
	if err != nil {
		return nil, err
	}
	defer restore()
	var resp *cairnpb.Response
	err = rt.keyed(ctx, req.Table, req.Key, func(t *cairnpb.Table, d *cairnpb.RangeDescriptor) (err error) {
		resp, err = rt.route(ctx, keys.RangeID(d.Id), &cairnpb.Request{Op: &cairnpb.Request_Put{Put: req}}, true,
			func(r *replica.Replica) (*cairnpb.Response, error) { return rt.localPut(ctx, r, t, req) })
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp.GetPut(), nil
}

func (rt *Router) propose(ctx context.Context, r *replica.Replica, cmd *cairnpb.Command) (replica.Result, error) {
	cmd.Timestamp = uint64(rt.opts.Clock.Now())
	res, err := r.Propose(ctx, cmd)
	if err != nil {
		return res, err
	}
	return res, res.Err
}

func (rt *Router) localPut(ctx context.Context, r *replica.Replica, t *cairnpb.Table, req *cairnpb.PutRequest) (*cairnpb.Response, error) {
	rt.noteLoad(r, req.Key)
	if err := rt.checkQuota(r, t, putGrowth(req.Key, req.Value)); err != nil {
		return nil, err
	}
	res, err := rt.proposeUnlocked(ctx, r, t, &cairnpb.Command{TableId: t.Id, Op: &cairnpb.Command_Put{Put: req}}, req.Key)
	if err != nil {
		return nil, err
	}
	return &cairnpb.Response{Op: &cairnpb.Response_Put{Put: &cairnpb.PutResponse{Version: res.Version, SessionToken: writeToken(r, res.Index),
		ServedBy: rt.store.NodeID()}}}, nil
}

// Delete implements kv.Service.
func (rt *Router) Delete(ctx context.Context, req *cairnpb.DeleteRequest) (*cairnpb.DeleteResponse, error) {
	if err := rt.opts.Limits.ValidateDelete(req); err != nil {
		return nil, err
	}
	ctx, cancel := rt.withTimeout(ctx)
	defer cancel()
	restore, err := rt.placed(ctx, req.Table, &req.Key)
	if err != nil {
		return nil, err
	}
	defer restore()
	var resp *cairnpb.Response
	err = rt.keyed(ctx, req.Table, req.Key, func(t *cairnpb.Table, d *cairnpb.RangeDescriptor) (err error) {
		resp, err = rt.route(ctx, keys.RangeID(d.Id), &cairnpb.Request{Op: &cairnpb.Request_Delete{Delete: req}}, true,
			func(r *replica.Replica) (*cairnpb.Response, error) { return rt.localDelete(ctx, r, t, req) })
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp.GetDelete(), nil
}

func (rt *Router) localDelete(ctx context.Context, r *replica.Replica, t *cairnpb.Table, req *cairnpb.DeleteRequest) (*cairnpb.Response, error) {
	rt.noteLoad(r, req.Key)
	res, err := rt.proposeUnlocked(ctx, r, t, &cairnpb.Command{TableId: t.Id, Op: &cairnpb.Command_Delete{Delete: req}}, req.Key)
	if err != nil {
		return nil, err
	}
	return &cairnpb.Response{Op: &cairnpb.Response_Delete{Delete: &cairnpb.DeleteResponse{Version: res.Version, SessionToken: writeToken(r, res.Index),
		ServedBy: rt.store.NodeID()}}}, nil
}

var _ kv.Batcher = (*Router)(nil)

// Batch implements kv.Batcher: an atomic write of several keys that lie in
// one range.
func (rt *Router) Batch(ctx context.Context, req *cairnpb.BatchRequest) (*cairnpb.BatchResponse, error) {
	if err := rt.opts.Limits.ValidateBatch(req); err != nil {
		return nil, err
	}
	ctx, cancel := rt.withTimeout(ctx)
	defer cancel()
	if len(req.Ops) == 0 {
		return &cairnpb.BatchResponse{}, nil
	}
	for _, op := range req.Ops {
		var restore func()
		var err error
		switch o := op.Op.(type) {
		case *cairnpb.BatchOp_Put:
			restore, err = rt.placed(ctx, req.Table, &o.Put.Key)
		case *cairnpb.BatchOp_Delete:
			restore, err = rt.placed(ctx, req.Table, &o.Delete.Key)
		default:
			continue
		}
		if err != nil {
			return nil, err
		}
		defer restore()
	}
	first, _ := batchKeyOf(req.Ops[0])
	var resp *cairnpb.Response
	err := rt.keyed(ctx, req.Table, first, func(t *cairnpb.Table, d *cairnpb.RangeDescriptor) (err error) {
		for _, op := range req.Ops {
			if k, _ := batchKeyOf(op); !replica.DescContains(d, k) {
				return kv.ErrMultiRange
			}
		}
		resp, err = rt.route(ctx, keys.RangeID(d.Id), &cairnpb.Request{Op: &cairnpb.Request_Batch{Batch: req}}, true,
			func(r *replica.Replica) (*cairnpb.Response, error) { return rt.localBatch(ctx, r, t, req) })
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp.GetBatch(), nil
}

// batchKeyOf returns the key of a batch operation.
func batchKeyOf(op *cairnpb.BatchOp) ([]byte, bool) {
	switch o := op.Op.(type) {
	case *cairnpb.BatchOp_Put:
		return o.Put.Key, true
	case *cairnpb.BatchOp_Delete:
		return o.Delete.Key, true
	}
	return nil, false
}

func (rt *Router) localBatch(ctx context.Context, r *replica.Replica, t *cairnpb.Table, req *cairnpb.BatchRequest) (*cairnpb.Response, error) {
	if len(req.Ops) > 0 {
		if k, ok := batchKeyOf(req.Ops[0]); ok {
			rt.noteLoad(r, k)
		}
	}
	if err := rt.checkQuota(r, t, batchGrowth(req)); err != nil {
		return nil, err
	}
	ks := make([][]byte, 0, len(req.Ops))
	for _, op := range req.Ops {
		k, _ := batchKeyOf(op)
		ks = append(ks, k)
	}
	res, err := rt.proposeUnlocked(ctx, r, t, &cairnpb.Command{TableId: t.Id, Op: &cairnpb.Command_Batch{Batch: req}}, ks...)
	if err != nil {
		return nil, err
	}
	return &cairnpb.Response{Op: &cairnpb.Response_Batch{Batch: &cairnpb.BatchResponse{Results: res.Batch, SessionToken: writeToken(r, res.Index)}}}, nil
}

// List implements kv.Service.
func (rt *Router) List(ctx context.Context, req *cairnpb.ListRequest) (*cairnpb.ListResponse, error) {
	if _, err := rt.opts.Limits.ValidateList(req); err != nil {
		return nil, err
	}
	if _, err := kv.DecodePageToken(req.PageToken, rt.opts.Limits); err != nil {
		return nil, err
	}
	if _, err := parseReadLevel(req.Consistency, "", req.MaxStalenessMs, req.SessionToken); err != nil {
		return nil, err
	}
	ctx, cancel := rt.withTimeout(ctx)
	defer cancel()
	limit, _ := rt.opts.Limits.ValidateList(req)
	after, _ := kv.DecodePageToken(req.PageToken, rt.opts.Limits)
	if t, err := rt.table(ctx, req.Table); err != nil {
		return nil, err
	} else if IsHash(t) {
		return rt.listHashed(ctx, req, limit, after)
	}
	start, end := listSpan(req, after)
	out := &cairnpb.ListResponse{}
	// Walk the ranges in key order: each step lists [start, subEnd), the
	// part of the span one range holds, and moves start to that range's
	// end. A range that split meanwhile answers "range key mismatch" and
	// keyed re-resolves start.
	for len(end) == 0 || bytes.Compare(start, end) < 0 {
		var sub *cairnpb.ListResponse
		var subEnd []byte
		err := rt.keyed(ctx, req.Table, start, func(t *cairnpb.Table, d *cairnpb.RangeDescriptor) error {
			subEnd = end
			if len(d.End) > 0 && (len(end) == 0 || bytes.Compare(d.End, end) < 0) {
				subEnd = d.End
			}
			subReq := &cairnpb.ListRequest{Table: req.Table, Start: start, End: subEnd,
				Limit: uint32(limit - len(out.Items)), Values: req.Values,
				Consistency: req.Consistency, MaxStalenessMs: req.MaxStalenessMs, SessionToken: req.SessionToken}
			resp, err := rt.read(ctx, keys.RangeID(d.Id), &cairnpb.Request{Op: &cairnpb.Request_List{List: subReq}},
				func(r *replica.Replica) (*cairnpb.Response, error) { return rt.localList(ctx, r, t, subReq) })
			if err != nil {
				return err
			}
			sub = resp.GetList()
			return nil
		})
		if err != nil {
			return nil, err
		}
		if err := mergeListPart(out, sub); err != nil {
			return nil, err
		}
		out.Items = append(out.Items, sub.Items...)
		if sub.NextPageToken != "" {
			out.NextPageToken = sub.NextPageToken
			break
		}
		if len(subEnd) == 0 || (len(end) > 0 && bytes.Compare(subEnd, end) >= 0) {
			break // the last range of the span
		}
		start = subEnd
		if len(out.Items) == limit {
			// Full at a range boundary: more may follow (the next page may
			// then be empty).
			out.NextPageToken = kv.EncodePageToken(out.Items[len(out.Items)-1].Key)
			break
		}
	}
	return out, nil
}

// ListSpan is the user-key span [start, end) a list request covers
// before paging (auth checks it against the caller's grants).
func ListSpan(req *cairnpb.ListRequest) (start, end []byte) { return listSpan(req, nil) }

// listSpan computes the user-key span [start, end) of a list request: the
// intersection of [Start, End), the prefix, and "after the page token".
func listSpan(req *cairnpb.ListRequest, after []byte) (start, end []byte) {
	start, end = req.Start, req.End
	if len(req.Prefix) > 0 {
		if bytes.Compare(req.Prefix, start) > 0 {
			start = req.Prefix
		}
		if pe := keys.PrefixEnd(req.Prefix); pe != nil && (len(end) == 0 || bytes.Compare(pe, end) < 0) {
			end = pe
		}
	}
	if after != nil {
		next := append(append([]byte(nil), after...), 0)
		if bytes.Compare(next, start) > 0 {
			start = next
		}
	}
	return start, end
}

func (rt *Router) localList(ctx context.Context, r *replica.Replica, t *cairnpb.Table, req *cairnpb.ListRequest) (*cairnpb.Response, error) {
	if err := rt.checkReadQuota(r, t); err != nil {
		return nil, err
	}
	if IsHash(t) != req.Hashed {
		// A part of a hash table's List names the user span apart from
		// the placement span; anything else on a hash table would scan
		// placement keys as if they were user keys.
		return nil, kv.Errorf(kv.ErrRangeKeyMismatch, "list of table %q: partitioning changed", t.Name)
	}
	var limit int
	var after []byte
	var err error
	if req.Hashed {
		limit = max(int(req.Limit), 1)
	} else {
		if limit, err = rt.opts.Limits.ValidateList(req); err != nil {
			return nil, err
		}
		if after, err = kv.DecodePageToken(req.PageToken, rt.opts.Limits); err != nil {
			return nil, err
		}
	}
	lv, err := parseReadLevel(req.Consistency, t.Consistency, req.MaxStalenessMs, req.SessionToken)
	if err != nil {
		return nil, err
	}
	start, end := listSpan(req, after)
	var sv served
	for {
		// Committed transactions whose intents are not yet resolved
		// must show: resolve the span's intents, then read again.
		if sv, err = barrier(ctx, r, lv); err != nil {
			return nil, err
		}
		n, err := rt.resolveSpanIntents(ctx, t, start, end)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			break
		}
	}
	// Expired keys are left out: those the log time has passed, and, so
	// that a list agrees with gets (which expire such keys through Raft
	// first), those this node's clock has passed.
	logTime, nowMs := r.LogTime(), rt.opts.Clock.Now().Millis()
	out := &cairnpb.ListResponse{SessionToken: tokenOf(sv.entry), ServedConsistency: sv.level,
		ServedBy: rt.store.NodeID(), StalenessMs: sv.staleness.Milliseconds()}
	if len(end) > 0 && bytes.Compare(start, end) >= 0 {
		return &cairnpb.Response{Op: &cairnpb.Response_List{List: out}}, nil
	}
	// After the barrier, the range must still hold the whole span: the
	// router asks each range only for its own part.
	if d := r.Desc(); !r.Initialized() || r.Frozen() || d.TableId != t.Id || !replica.DescContains(d, start) ||
		(len(d.End) > 0 && (len(end) == 0 || bytes.Compare(end, d.End) > 0)) {
		return nil, kv.Errorf(kv.ErrRangeKeyMismatch, "range %d no longer holds [%q, %q)", r.ID, start, end)
	}
	if req.Hashed {
		keep := func(exp int64) bool { return exp == 0 || !(replica.Expired(exp, logTime) || exp <= nowMs) }
		if err := rt.scanHashed(out, t, req, start, end, limit, keep); err != nil {
			return nil, err
		}
		return &cairnpb.Response{Op: &cairnpb.Response_List{List: out}}, nil
	}
	ls, le := keys.DataSpan(keys.TableID(t.Id), start, end)
	it, err := rt.store.DB().NewIter(&pebble.IterOptions{LowerBound: ls, UpperBound: le})
	if err != nil {
		return nil, kv.Errorf(kv.ErrInternal, "list: %v", err)
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		if len(out.Items) == limit {
			out.NextPageToken = kv.EncodePageToken(out.Items[len(out.Items)-1].Key)
			break
		}
		_, uk, err := keys.DecodeDataKey(it.Key())
		if err != nil {
			return nil, kv.Errorf(kv.ErrInternal, "list: %v", err)
		}
		version, exp, value, err := storage.DecodeValueTTL(it.Value())
		if err != nil {
			return nil, kv.Errorf(kv.ErrInternal, "list: %v", err)
		}
		if exp != 0 && (replica.Expired(exp, logTime) || exp <= nowMs) {
			continue
		}
		item := &cairnpb.KeyValue{Key: append([]byte(nil), uk...), Version: version, ExpireAtMs: exp}
		if req.Values {
			item.Value = append([]byte(nil), value...)
		}
		out.Items = append(out.Items, item)
	}
	if err := it.Error(); err != nil {
		return nil, kv.Errorf(kv.ErrInternal, "list: %v", err)
	}
	return &cairnpb.Response{Op: &cairnpb.Response_List{List: out}}, nil
}

// CreateTable implements kv.Service.
func (rt *Router) CreateTable(ctx context.Context, req *cairnpb.CreateTableRequest) (*cairnpb.Table, error) {
	if err := kv.ValidateTableName(req.Name); err != nil {
		return nil, err
	}
	if err := validatePartitioning(req); err != nil {
		return nil, err
	}
	level, err := kv.ParseConsistency(req.Consistency)
	if err != nil {
		return nil, err
	}
	if req.Replicas > kv.MaxReplicas {
		return nil, kv.Errorf(kv.ErrInvalidArgument, "replicas %d: at most %d voters per range", req.Replicas, kv.MaxReplicas)
	}
	if req.Learners > kv.MaxLearners {
		return nil, kv.Errorf(kv.ErrInvalidArgument, "learners %d: at most %d read learners per range", req.Learners, kv.MaxLearners)
	}
	if err := kv.ValidateHistory(req.HistoryVersions, req.HistoryRetentionMs); err != nil {
		return nil, err
	}
	if level == kv.Linearizable {
		level = "" // the default, stored as such
	}
	req.Consistency = level
	ctx, cancel := rt.withTimeout(ctx)
	defer cancel()
	resp, err := rt.route(ctx, replica.MetaRangeID, &cairnpb.Request{Op: &cairnpb.Request_CreateTable{CreateTable: req}}, true,
		func(r *replica.Replica) (*cairnpb.Response, error) { return rt.localCreateTable(ctx, r, req) })
	if err != nil {
		return nil, err
	}
	return resp.GetTable(), nil
}

func (rt *Router) localCreateTable(ctx context.Context, r *replica.Replica, req *cairnpb.CreateTableRequest) (*cairnpb.Response, error) {
	rf, placement := rt.place(req.Replicas)
	res, err := rt.propose(ctx, r, &cairnpb.Command{Op: &cairnpb.Command_CreateTable{CreateTable: &cairnpb.CreateTable{Name: req.Name, Partitioning: req.Partitioning,
		Consistency: req.Consistency, MaxBytes: req.MaxBytes, MaxWritesPerSec: req.MaxWritesPerSec, InitialRanges: req.InitialRanges,
		Replicas: rf, Placement: placement, Learners: req.Learners, HistoryVersions: req.HistoryVersions, HistoryRetentionMs: req.HistoryRetentionMs,
		MaxReadsPerSec: req.MaxReadsPerSec}}})
	if err != nil {
		return nil, err
	}
	return &cairnpb.Response{Op: &cairnpb.Response_Table{Table: res.Table}}, nil
}

// UpdateTable implements kv.Service: the settings req sets change, on the
// meta range's leader.
func (rt *Router) UpdateTable(ctx context.Context, req *cairnpb.UpdateTableRequest) (*cairnpb.Table, error) {
	if err := kv.ValidateTableName(req.Name); err != nil {
		return nil, err
	}
	if err := kv.ValidateTableUpdate(req); err != nil {
		return nil, err
	}
	ctx, cancel := rt.withTimeout(ctx)
	defer cancel()
	resp, err := rt.route(ctx, replica.MetaRangeID, &cairnpb.Request{Op: &cairnpb.Request_UpdateTable{UpdateTable: req}}, true,
		func(r *replica.Replica) (*cairnpb.Response, error) { return rt.localUpdateTable(ctx, r, req) })
	if err != nil {
		return nil, err
	}
	return resp.GetTable(), nil
}

func (rt *Router) localUpdateTable(ctx context.Context, r *replica.Replica, req *cairnpb.UpdateTableRequest) (*cairnpb.Response, error) {
	res, err := rt.propose(ctx, r, &cairnpb.Command{Op: &cairnpb.Command_UpdateTable{UpdateTable: req}})
	if err != nil {
		return nil, err
	}
	return &cairnpb.Response{Op: &cairnpb.Response_Table{Table: res.Table}}, nil
}

// DropTable implements kv.Service.
func (rt *Router) DropTable(ctx context.Context, req *cairnpb.DropTableRequest) (*cairnpb.DropTableResponse, error) {
	if err := kv.ValidateTableName(req.Name); err != nil {
		return nil, err
	}
	ctx, cancel := rt.withTimeout(ctx)
	defer cancel()
	_, err := rt.route(ctx, replica.MetaRangeID, &cairnpb.Request{Op: &cairnpb.Request_DropTable{DropTable: req}}, true,
		func(r *replica.Replica) (*cairnpb.Response, error) { return rt.localDropTable(ctx, r, req) })
	if err != nil {
		return nil, err
	}
	return &cairnpb.DropTableResponse{}, nil
}

func (rt *Router) localDropTable(ctx context.Context, r *replica.Replica, req *cairnpb.DropTableRequest) (*cairnpb.Response, error) {
	if _, err := rt.propose(ctx, r, &cairnpb.Command{Op: &cairnpb.Command_DropTable{DropTable: &cairnpb.DropTable{Name: req.Name}}}); err != nil {
		return nil, err
	}
	return &cairnpb.Response{Op: &cairnpb.Response_DropTable{DropTable: &cairnpb.DropTableResponse{}}}, nil
}

// GetTable implements kv.Service.
func (rt *Router) GetTable(ctx context.Context, req *cairnpb.GetTableRequest) (*cairnpb.Table, error) {
	if err := kv.ValidateTableName(req.Name); err != nil {
		return nil, err
	}
	ctx, cancel := rt.withTimeout(ctx)
	defer cancel()
	if err := rt.metaBarrier(ctx); err != nil {
		return nil, err
	}
	if t := rt.store.Table(req.Name); t != nil {
		return t, nil
	}
	return nil, kv.Errorf(kv.ErrTableNotFound, "table %q does not exist", req.Name)
}

// ListTables implements kv.Service.
func (rt *Router) ListTables(ctx context.Context, _ *cairnpb.ListTablesRequest) (*cairnpb.ListTablesResponse, error) {
	ctx, cancel := rt.withTimeout(ctx)
	defer cancel()
	if err := rt.metaBarrier(ctx); err != nil {
		return nil, err
	}
	ts := rt.store.Tables()
	sort.Slice(ts, func(i, j int) bool { return ts[i].Name < ts[j].Name })
	return &cairnpb.ListTablesResponse{Tables: ts}, nil
}

// ClusterStatus implements kv.Service. Ranges held here are reported as
// this node sees them (leader, term, indexes: each node's own view, which
// tests compare); ranges held elsewhere as the catalog records them. The
// nodes' liveness, load and the recent decisions come from the
// coordinator (the meta leader) when it answers in time.
func (rt *Router) ClusterStatus(ctx context.Context) (*cairnpb.ClusterStatus, error) {
	out := &cairnpb.ClusterStatus{}
	names := map[uint64]string{uint64(keys.MetaTableID): "(meta)"}
	parts := map[uint64]string{}
	for _, t := range rt.store.Tables() {
		names[t.Id], parts[t.Id] = t.Name, t.Partitioning
	}
	leaders := map[uint64]uint32{}
	ranges := map[uint64]uint32{}
	local := map[uint64]bool{}
	count := func(leader uint64, d *cairnpb.RangeDescriptor) {
		if leader != 0 {
			leaders[leader]++
		}
		for _, id := range d.Replicas {
			ranges[id]++
		}
		for _, id := range d.Learners {
			ranges[id]++
		}
	}
	for _, r := range rt.store.Replicas() {
		d := r.Desc()
		term, commit, applied := r.Status()
		start, end := r.DataSpan()
		size := r.ApproxBytes()
		if d.TableId == uint64(keys.MetaTableID) {
			size, _ = rt.store.DB().EstimateDiskUsage(start, end)
		}
		out.Ranges = append(out.Ranges, &cairnpb.RangeStatus{
			Id: d.Id, Table: names[d.TableId], Start: d.Start, End: d.End, Replicas: d.Replicas, Learners: d.Learners,
			Leader: r.Leader(), Term: term, CommitIndex: commit, AppliedIndex: applied, SizeBytes: size,
			Generation: d.Generation, ConfVersion: d.ConfVersion, Partitioning: parts[d.TableId], Removed: replica.RemovedNodes(d),
			Lag: r.Lag(),
		})
		local[d.Id] = true
		count(r.Leader(), d)
	}
	for _, t := range rt.store.Tables() {
		for _, d := range t.Ranges {
			if local[d.Id] {
				continue
			}
			var leader uint64
			if l, ok := rt.leaders.Load(keys.RangeID(d.Id)); ok {
				leader = l.(uint64)
			}
			out.Ranges = append(out.Ranges, &cairnpb.RangeStatus{
				Id: d.Id, Table: t.Name, Start: d.Start, End: d.End, Replicas: d.Replicas, Learners: d.Learners,
				Leader: leader, Generation: d.Generation, ConfVersion: d.ConfVersion, Partitioning: t.Partitioning, Removed: replica.RemovedNodes(d),
			})
			count(leader, d)
		}
	}
	sort.Slice(out.Ranges, func(i, j int) bool {
		a, b := out.Ranges[i], out.Ranges[j]
		if a.Table != b.Table {
			return a.Table < b.Table
		}
		return bytes.Compare(a.Start, b.Start) < 0
	})
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	cs := rt.coordinatorStatus(cctx)
	seen := map[uint64]*cairnpb.NodeStatus{}
	if cs != nil {
		out.Coordinator, out.Decisions = cs.Coordinator, cs.Decisions
		for _, n := range cs.Nodes {
			seen[n.Id] = n
		}
		// Replication lag as the ranges' leaders reported it; a range
		// led here has its own, fresher.
		lag := map[uint64][]*cairnpb.ReplicaLag{}
		for _, r := range cs.Ranges {
			lag[r.Id] = r.Lag
		}
		for _, r := range out.Ranges {
			if r.Lag == nil {
				r.Lag = lag[r.Id]
			}
		}
	}
	for _, n := range rt.store.Nodes() {
		alive := n.Id == rt.store.NodeID() || rt.transport.Connected(n.Id)
		ns := &cairnpb.NodeStatus{
			Id: n.Id, Name: n.Name, Address: n.PeerAddress, Alive: alive, State: replica.NodeState(n),
			Ranges: ranges[n.Id], Leaders: leaders[n.Id], LastHeartbeatMs: -1,
		}
		if c := seen[n.Id]; c != nil {
			ns.LastHeartbeatMs, ns.Bytes, ns.ReadsPerSec, ns.WritesPerSec = c.LastHeartbeatMs, c.Bytes, c.ReadsPerSec, c.WritesPerSec
			ns.Leaders, ns.ClientAddress = c.Leaders, c.ClientAddress
		}
		if n.Id == rt.store.NodeID() {
			ns.ClientAddress = rt.opts.ClientAddress
		}
		out.Nodes = append(out.Nodes, ns)
	}
	sort.Slice(out.Nodes, func(i, j int) bool { return out.Nodes[i].Id < out.Nodes[j].Id })
	return out, nil
}

// Ready implements kv.Service: the meta range and the default table's
// ranges held here have a leader this node knows.
func (rt *Router) Ready(ctx context.Context) error {
	meta := rt.store.Replica(replica.MetaRangeID)
	if meta == nil || meta.Leader() == 0 {
		return kv.Errorf(kv.ErrUnavailable, "meta range has no leader")
	}
	t := rt.store.Table("default")
	if t == nil {
		return kv.Errorf(kv.ErrUnavailable, "default table not known yet")
	}
	for _, d := range t.Ranges {
		if !slices.Contains(d.Replicas, rt.store.NodeID()) && !slices.Contains(d.Learners, rt.store.NodeID()) {
			continue // held elsewhere: requests are forwarded
		}
		r := rt.store.Replica(keys.RangeID(d.Id))
		if r == nil || r.Leader() == 0 {
			return kv.Errorf(kv.ErrUnavailable, "range %d has no leader", d.Id)
		}
	}
	return nil
}

// Auth proposes a change of the auth records on the meta range's leader
// (forwarding as needed). Authorization is the caller's (internal/auth).
func (rt *Router) Auth(ctx context.Context, cmd *cairnpb.AuthCommand) error {
	ctx, cancel := rt.withTimeout(ctx)
	defer cancel()
	_, err := rt.route(ctx, replica.MetaRangeID, &cairnpb.Request{Op: &cairnpb.Request_Auth{Auth: cmd}}, true,
		func(r *replica.Replica) (*cairnpb.Response, error) { return rt.localAuth(ctx, r, cmd) })
	return err
}

func (rt *Router) localAuth(ctx context.Context, r *replica.Replica, cmd *cairnpb.AuthCommand) (*cairnpb.Response, error) {
	if _, err := rt.propose(ctx, r, &cairnpb.Command{Op: &cairnpb.Command_Auth{Auth: cmd}}); err != nil {
		return nil, err
	}
	return &cairnpb.Response{}, nil
}

// MetaBarrier waits until this node's meta replica has applied everything
// committed before the call (a linearizable read point for meta records).
func (rt *Router) MetaBarrier(ctx context.Context) error {
	ctx, cancel := rt.withTimeout(ctx)
	defer cancel()
	return rt.metaBarrier(ctx)
}
