package auth

import (
	"context"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/kv"
	"github.com/cairn-db/cairn/internal/router"
)

// errUnauthenticated is returned by every check when auth is enabled and
// the request has no principal.
var errUnauthenticated = kv.Errorf(kv.ErrUnauthenticated, "authentication required (user and password, or a token)")

// lookup returns the principal's compiled permissions, or nil and nil
// when auth is disabled (everything is allowed).
func (a *Authenticator) lookup(p *Principal) (*userPerms, error) {
	s := a.snap.Load()
	if !s.enabled {
		return nil, nil
	}
	if p == nil {
		authFailures.WithLabelValues("unauthenticated").Inc()
		return nil, errUnauthenticated
	}
	u := s.users[p.User]
	if u == nil {
		// Removed since it authenticated.
		return nil, kv.Errorf(kv.ErrUnauthenticated, "user %q no longer exists", p.User)
	}
	return u, nil
}

func denied(p *Principal, need Perm, table string) error {
	return denyf("user %q lacks %s permission on table %q", p.User, need, table)
}

// Check returns nil if p holds need on key of table. This is the hot
// path: an atomic load, two map lookups and a prefix compare per grant.
func (a *Authenticator) Check(p *Principal, table string, key []byte, need Perm) error {
	u, err := a.lookup(p)
	if u == nil || err != nil {
		return err
	}
	if !u.allows(table, key, need) {
		return denied(p, need, table)
	}
	return nil
}

// CheckSpan returns nil if p holds need on every key of table in
// [start, end) (empty end: the end of the table).
func (a *Authenticator) CheckSpan(p *Principal, table string, start, end []byte, need Perm) error {
	u, err := a.lookup(p)
	if u == nil || err != nil {
		return err
	}
	if !u.allowsSpan(table, start, end, need) {
		return denyf("user %q lacks %s permission on the whole requested span of table %q (list within a granted prefix)", p.User, need, table)
	}
	return nil
}

// CheckTableAdmin returns nil if p holds admin on table (on "*" to
// create tables that do not exist yet or to see the cluster).
func (a *Authenticator) CheckTableAdmin(p *Principal, table string) error {
	u, err := a.lookup(p)
	if u == nil || err != nil {
		return err
	}
	if !u.allowsSpan(table, nil, nil, PermAdmin) {
		return denied(p, PermAdmin, table)
	}
	return nil
}

// CheckRoot returns nil if p holds the root role (auth administration).
func (a *Authenticator) CheckRoot(p *Principal) error {
	u, err := a.lookup(p)
	if u == nil || err != nil {
		return err
	}
	if !u.root {
		return denyf("user %q lacks the root role", p.User)
	}
	return nil
}

// CheckAuthenticated returns nil if auth is off or p is a known user.
func (a *Authenticator) CheckAuthenticated(p *Principal) error {
	_, err := a.lookup(p)
	return err
}

// visible reports whether p may see that table exists.
func (a *Authenticator) visible(p *Principal, table string) bool {
	u, err := a.lookup(p)
	if err != nil {
		return false
	}
	return u == nil || u.anyGrant(table)
}

// needForCondition is what a write with condition c needs: a conditional
// write reveals whether the key exists and its version, so it needs read
// as well as write.
func needForCondition(c *cairnpb.Condition) Perm {
	if c != nil && (c.Absent || c.Version != 0 || c.Value != nil) {
		return PermRead | PermWrite
	}
	return PermWrite
}

// listSpan is the user-key span a list request covers, before paging.
func listSpan(req *cairnpb.ListRequest) (start, end []byte) {
	return router.ListSpan(req)
}

// CheckWatch authorizes a watch: read on the key, or on every key of the
// prefix.
func (a *Authenticator) CheckWatch(p *Principal, req *cairnpb.WatchRequest) error {
	if req.Prefix {
		return a.CheckSpan(p, req.Table, req.Key, keys.PrefixEnd(req.Key), PermRead)
	}
	return a.Check(p, req.Table, req.Key, PermRead)
}

// CheckRequest authorizes a request as the peer API carries it: the
// leader's own check of a forwarded request, with the principal the
// forwarding node authenticated.
func (a *Authenticator) CheckRequest(p *Principal, req *cairnpb.Request) error {
	switch op := req.Op.(type) {
	case *cairnpb.Request_Get:
		return a.Check(p, op.Get.Table, op.Get.Key, PermRead)
	case *cairnpb.Request_History:
		return a.Check(p, op.History.Table, op.History.Key, PermRead)
	case *cairnpb.Request_Put:
		return a.Check(p, op.Put.Table, op.Put.Key, needForCondition(op.Put.Condition))
	case *cairnpb.Request_Delete:
		return a.Check(p, op.Delete.Table, op.Delete.Key, needForCondition(op.Delete.Condition))
	case *cairnpb.Request_List:
		start, end := listSpan(op.List)
		return a.CheckSpan(p, op.List.Table, start, end, PermRead)
	case *cairnpb.Request_Batch:
		return a.checkBatch(p, op.Batch)
	case *cairnpb.Request_CreateTable:
		return a.CheckTableAdmin(p, op.CreateTable.Name)
	case *cairnpb.Request_DropTable:
		return a.CheckTableAdmin(p, op.DropTable.Name)
	case *cairnpb.Request_UpdateTable:
		return a.CheckTableAdmin(p, op.UpdateTable.Name)
	case *cairnpb.Request_Auth:
		return a.CheckRoot(p)
	case *cairnpb.Request_SplitRange:
		return a.CheckTableAdmin(p, op.SplitRange.Table)
	case *cairnpb.Request_MergeRange:
		return a.CheckTableAdmin(p, op.MergeRange.Table)
	case *cairnpb.Request_BackupRange, *cairnpb.Request_RestoreRange:
		// A backup reads, a restore writes, every key of a table: both
		// are cluster-admin operations, checked at the gateway and here.
		return a.CheckTableAdmin(p, AllTables)
	case *cairnpb.Request_TxnPrewrite:
		// Phase one of a transaction: it reads and locks keys, and writes
		// them on commit; the user's rights on every key are checked here
		// again, as for a batch.
		return a.checkTxnOps(p, op.TxnPrewrite.Ops, op.TxnPrewrite.Table)
	case *cairnpb.Request_TxnEnd, *cairnpb.Request_TxnResolve:
		// Node-internal: deciding and resolving transactions whose
		// prewrites were checked (above), by their coordinator or by any
		// node that meets their intents (recovery). They make visible
		// only what a checked prewrite wrote.
		return nil
	case *cairnpb.Request_Expire, *cairnpb.Request_AllocRangeId, *cairnpb.Request_UpdateRanges,
		*cairnpb.Request_MergeStep, *cairnpb.Request_MergeWait:
		// Node-internal requests: only nodes send them, over the peer
		// channel, on their own behalf (the expirer, the splitter) or as
		// part of a request already checked at its gateway (a get that
		// expires a key, an admin split or merge). None changes what any
		// user can see: Expire removes only keys the log already treats
		// as gone; the others maintain the catalog and the ranges (the
		// steps of a merge, which moves no data).
		return nil
	case *cairnpb.Request_ChangeReplicas, *cairnpb.Request_TransferLeader, *cairnpb.Request_AddNode,
		*cairnpb.Request_SetNodeState, *cairnpb.Request_ClusterStatus:
		// Node-internal too: the coordinator's steps (replica moves,
		// leadership transfers, membership), a joining node's record
		// (the peer channel admitted it: with --peer-cert only a node
		// holding a certificate of the peer CA can ask), and a drain or
		// status a gateway already checked for cluster admin. None reads
		// or writes a key.
		return nil
	}
	// Unknown requests are refused whenever auth is on (fail closed).
	if _, err := a.lookup(p); err != nil {
		return err
	}
	if a.Enabled() {
		return denyf("unknown request kind")
	}
	return nil
}

func (a *Authenticator) checkBatch(p *Principal, req *cairnpb.BatchRequest) error {
	for _, op := range req.Ops {
		var err error
		switch o := op.Op.(type) {
		case *cairnpb.BatchOp_Put:
			err = a.Check(p, req.Table, o.Put.Key, needForCondition(o.Put.Condition))
		case *cairnpb.BatchOp_Delete:
			err = a.Check(p, req.Table, o.Delete.Key, needForCondition(o.Delete.Condition))
		default:
			err = a.Check(p, req.Table, nil, PermWrite)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// checkTxnOps checks the operations of a transaction: read for reads and
// checks, write (and read when conditional) for puts and deletes. table,
// when not empty, overrides the operations' own table (a prewrite's ops
// all lie in its table).
func (a *Authenticator) checkTxnOps(p *Principal, ops []*cairnpb.TxnOp, table string) error {
	for _, op := range ops {
		t := op.Table
		if table != "" {
			t = table
		}
		need := PermRead
		if op.Kind == cairnpb.TxnOp_PUT || op.Kind == cairnpb.TxnOp_DELETE {
			need = needForCondition(op.Condition)
		}
		if err := a.Check(p, t, op.Key, need); err != nil {
			return err
		}
	}
	return nil
}

// ctxPrincipal is PrincipalFrom, kept short for the Guard.
func ctxPrincipal(ctx context.Context) *Principal { return PrincipalFrom(ctx) }
