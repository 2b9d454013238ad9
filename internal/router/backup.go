package router

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"sort"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/backup"
	"github.com/cairn-db/cairn/internal/hlc"
	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/kv"
	"github.com/cairn-db/cairn/internal/replica"
	"github.com/cairn-db/cairn/internal/storage"
	"github.com/cairn-db/cairn/internal/watch"
)

// Backup and restore (docs/design/backup.md).
//
// Backup picks a point in time T from this node's clock and walks every
// table's ranges in stored-key order, as List walks a span: for each
// range (re-resolved on range key mismatch) the range's leader fences it
// at T (a Raft command raising max_version to T: every write applied
// later gets a version above T), resolves the span's intents, takes a
// Pebble snapshot and reads the state at T from key history
// (backup.ScanAt). A range answers a page of records at a time
// (backupPageBytes), so a forwarded answer stays small; the next page
// fences again, which is cheap and harmless.
//
// Restore creates the tables and imports the auth records through the
// meta range, then writes each table's records through Restore commands
// of a few hundred keys, each proposed to the range holding them.

var _ kv.Backuper = (*Router)(nil)

// backupPageBytes bounds the records of one BackupRange answer (one more
// record may pass it: values are up to 1 MiB).
const backupPageBytes = 512 << 10

// restoreBatchKeys and restoreBatchBytes bound one Restore command.
const (
	restoreBatchKeys  = 256
	restoreBatchBytes = 512 << 10
)

// errPageFull stops a scan when a page is full.
var errPageFull = errors.New("router: backup page full")

// Backup implements kv.Backuper.
func (rt *Router) Backup(ctx context.Context, req *cairnpb.BackupRequest, send func(*cairnpb.BackupChunk) error) error {
	mctx, cancel := rt.withTimeout(ctx)
	err := rt.metaBarrier(mctx)
	cancel()
	if err != nil {
		return err
	}
	at := uint64(rt.opts.Clock.Now())
	if req.SinceVersion >= at {
		return kv.Errorf(kv.ErrInvalidArgument, "incremental from version %d, which is not before now (%d)", req.SinceVersion, at)
	}
	var tables []*cairnpb.Table
	total := 0
	for _, t := range rt.store.Tables() {
		if t.Id == uint64(keys.MetaTableID) {
			continue
		}
		tables = append(tables, t)
		total += len(t.Ranges)
	}
	sort.Slice(tables, func(i, j int) bool { return tables[i].Name < tables[j].Name })
	authState, err := rt.exportAuth()
	if err != nil {
		return err
	}
	first := &cairnpb.BackupChunk{AtVersion: at, Tables: tables, Auth: authState, RangesTotal: uint32(total)}
	if err := send(first); err != nil {
		return err
	}
	done := 0
	for _, t := range tables {
		err := rt.backupTable(ctx, t, at, req.SinceVersion, func(recs []*cairnpb.BackupRecord, rangeDone bool) error {
			if rangeDone {
				done++
			}
			return send(&cairnpb.BackupChunk{AtVersion: at, Table: t.Name, Records: recs,
				RangesDone: uint32(done), RangesTotal: uint32(max(total, done))})
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// backupTable walks table t's ranges in stored-key order and passes each
// page of records on; rangeDone marks the last page of a range.
func (rt *Router) backupTable(ctx context.Context, t *cairnpb.Table, at, since uint64,
	emit func([]*cairnpb.BackupRecord, bool) error) error {
	var start []byte
	for {
		var resp *cairnpb.BackupRangeResponse
		var rangeEnd []byte
		err := func() error {
			rctx, cancel := rt.withTimeout(ctx)
			defer cancel()
			return rt.keyed(rctx, t.Name, start, func(t *cairnpb.Table, d *cairnpb.RangeDescriptor) error {
				rangeEnd = d.End
				sub := &cairnpb.BackupRangeRequest{Table: t.Name, Start: start, End: d.End, AtVersion: at,
					SinceVersion: since, MaxBytes: backupPageBytes}
				out, err := rt.route(rctx, keys.RangeID(d.Id), &cairnpb.Request{Op: &cairnpb.Request_BackupRange{BackupRange: sub}}, false,
					func(r *replica.Replica) (*cairnpb.Response, error) { return rt.localBackupRange(rctx, r, t, sub) })
				if err != nil {
					return err
				}
				resp = out.GetBackupRange()
				return nil
			})
		}()
		if err != nil {
			return err
		}
		last := len(resp.GetResume()) == 0 && len(rangeEnd) == 0
		if err := emit(resp.GetRecords(), len(resp.GetResume()) == 0); err != nil {
			return err
		}
		switch {
		case last:
			return nil
		case len(resp.GetResume()) > 0:
			start = resp.Resume
		default:
			start = rangeEnd
		}
	}
}

// localBackupRange serves one page of a range's backup on its leader:
// fence at the point in time, resolve the span's intents, snapshot, scan.
func (rt *Router) localBackupRange(ctx context.Context, r *replica.Replica, t *cairnpb.Table, req *cairnpb.BackupRangeRequest) (*cairnpb.Response, error) {
	if req.AtVersion == 0 || req.SinceVersion >= req.AtVersion {
		return nil, kv.Errorf(kv.ErrInvalidArgument, "backup at version %d since %d", req.AtVersion, req.SinceVersion)
	}
	if !r.KeepsHistory() {
		return nil, kv.Errorf(kv.ErrInvalidArgument, "backup reads key history, which node %d does not keep (--history-versions 0)", rt.store.NodeID())
	}
	if _, err := rt.propose(ctx, r, &cairnpb.Command{TableId: t.Id,
		Op: &cairnpb.Command_Fence{Fence: &cairnpb.Fence{AtVersion: req.AtVersion, Start: req.Start, End: req.End}}}); err != nil {
		return nil, err
	}
	for {
		// A transaction committed at or below the point in time but not
		// yet resolved would be missing: resolve first, as reads do. Any
		// intent written after the fence has a version above it.
		n, err := rt.resolveSpanIntents(ctx, t, req.Start, req.End)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			break
		}
	}
	snap := rt.store.DB().NewSnapshot()
	defer snap.Close()
	// The snapshot holds the span's data if the range still holds it now
	// (a replica's data goes only after its descriptor has changed).
	if d := r.Desc(); rt.store.Replica(r.ID) != r || !r.Initialized() || r.Frozen() || d.TableId != t.Id || !replica.SpanWithin(d, req.Start, req.End) {
		return nil, kv.Errorf(kv.ErrRangeKeyMismatch, "range %d no longer holds [%q, %q)", r.ID, req.Start, req.End)
	}
	if err := checkNoIntentsAt(snap, t, req); err != nil {
		return nil, err
	}
	out := &cairnpb.BackupRangeResponse{}
	size := 0
	maxBytes := int(req.MaxBytes)
	if maxBytes <= 0 {
		maxBytes = backupPageBytes
	}
	err := backup.ScanAt(snap, keys.TableID(t.Id), req.Start, req.End, req.AtVersion, func(rec *backup.Record) error {
		if size >= maxBytes {
			out.Resume = append(append([]byte(nil), out.Records[len(out.Records)-1].Key...), 0)
			return errPageFull
		}
		br := &cairnpb.BackupRecord{Key: append([]byte(nil), rec.Key...), Version: rec.Version, ExpireAtMs: rec.ExpireAtMs}
		if rec.Version > req.SinceVersion {
			br.HasValue, br.Value = true, append([]byte(nil), rec.Value...)
		}
		size += len(br.Key) + len(br.Value) + 32
		out.Records = append(out.Records, br)
		return nil
	})
	switch {
	case errors.Is(err, errPageFull):
	case errors.Is(err, watch.ErrCompacted):
		return nil, kv.Errorf(kv.ErrCompacted, "table %q: the state at version %d is no longer in key history (%v); take the backup again", t.Name, req.AtVersion, err)
	case err != nil:
		return nil, kv.Errorf(kv.ErrInternal, "backup scan: %v", err)
	}
	end := req.End
	if len(out.Resume) > 0 {
		end = out.Resume
	}
	if err := checkAgainstData(snap, t, req.Start, end, req.AtVersion, out.Records); err != nil {
		return nil, err
	}
	return &cairnpb.Response{Op: &cairnpb.Response_BackupRange{BackupRange: out}}, nil
}

// checkAgainstData cross-checks a page read from key history with the
// stored values of [start, end): every stored key whose value is at or
// below the point in time and not expired by it must be in recs with
// that version. A key stored without history (written while history was
// off) would otherwise be left out silently.
func checkAgainstData(snap replica.Reader, t *cairnpb.Table, start, end []byte, at uint64, recs []*cairnpb.BackupRecord) error {
	ls, le := keys.DataSpan(keys.TableID(t.Id), start, end)
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: ls, UpperBound: le})
	if err != nil {
		return kv.Errorf(kv.ErrInternal, "backup check: %v", err)
	}
	defer it.Close()
	atMs := hlc.Timestamp(at).Millis()
	i := 0
	for ok := it.First(); ok; ok = it.Next() {
		_, uk, err := keys.DecodeDataKey(it.Key())
		if err != nil {
			return kv.Errorf(kv.ErrInternal, "backup check: %v", err)
		}
		version, exp, _, err := storage.DecodeValueTTL(it.Value())
		if err != nil {
			return kv.Errorf(kv.ErrInternal, "backup check: %v", err)
		}
		if version > at || (exp != 0 && exp <= atMs) {
			continue
		}
		for i < len(recs) && bytes.Compare(recs[i].Key, uk) < 0 {
			i++
		}
		if i == len(recs) || !bytes.Equal(recs[i].Key, uk) || recs[i].Version != version {
			return kv.Errorf(kv.ErrInternal, "table %q: key %q (version %d) has no key history at version %d; was history off when it was written?", t.Name, uk, version, at)
		}
	}
	if err := it.Error(); err != nil {
		return kv.Errorf(kv.ErrInternal, "backup check: %v", err)
	}
	return nil
}

// checkNoIntentsAt fails (retryably, as unavailable) if the snapshot
// still holds an intent at or below the point in time: its transaction
// was resolved elsewhere but not yet here.
func checkNoIntentsAt(snap replica.Reader, t *cairnpb.Table, req *cairnpb.BackupRangeRequest) error {
	d := &cairnpb.RangeDescriptor{TableId: t.Id, Start: req.Start, End: req.End}
	_, ins, err := replica.IntentsIn(snap, d, 1000)
	if err != nil {
		return kv.Errorf(kv.ErrInternal, "read intents: %v", err)
	}
	for _, in := range ins {
		if (in.Kind == cairnpb.TxnOp_PUT || in.Kind == cairnpb.TxnOp_DELETE) && in.Version <= req.AtVersion {
			return kv.Errorf(kv.ErrUnavailable, "table %q: a transaction at or below version %d is still being resolved", t.Name, req.AtVersion)
		}
	}
	return nil
}

// exportAuth returns the auth records of this node's meta replica (read
// after a meta barrier) as a marshaled AuthBackup; nil when there are
// none. The token-signing secret is left out on purpose.
func (rt *Router) exportAuth() ([]byte, error) {
	db := rt.store.DB()
	a := &cairnpb.AuthBackup{}
	cfg := &cairnpb.AuthConfig{}
	if _, err := replica.GetProto(db, replica.MetaAuthConfigKey(), cfg); err != nil {
		return nil, kv.Errorf(kv.ErrInternal, "read auth config: %v", err)
	}
	a.Enabled = cfg.Enabled
	us, ue := replica.MetaAuthUserSpan()
	rs, re := replica.MetaAuthRoleSpan()
	ts, te := replica.MetaAuthTokenSpan()
	errs := []error{
		replica.ScanProtos(db, us, ue, func() *cairnpb.UserRecord { return &cairnpb.UserRecord{} }, func(u *cairnpb.UserRecord) { a.Users = append(a.Users, u) }),
		replica.ScanProtos(db, rs, re, func() *cairnpb.RoleRecord { return &cairnpb.RoleRecord{} }, func(r *cairnpb.RoleRecord) { a.Roles = append(a.Roles, r) }),
		replica.ScanProtos(db, ts, te, func() *cairnpb.TokenRecord { return &cairnpb.TokenRecord{} }, func(t *cairnpb.TokenRecord) { a.Tokens = append(a.Tokens, t) }),
	}
	if err := errors.Join(errs...); err != nil {
		return nil, kv.Errorf(kv.ErrInternal, "read auth records: %v", err)
	}
	if !a.Enabled && len(a.Users) == 0 && len(a.Roles) == 0 && len(a.Tokens) == 0 {
		return nil, nil
	}
	return proto.MarshalOptions{Deterministic: true}.Marshal(a)
}

// RestoreBegin implements kv.Backuper: refuse unless the cluster holds no
// table but an empty "default", then create the tables and import the
// auth records (auth is not switched on here: the caller does that last,
// so its own restore requests are not cut off).
func (rt *Router) RestoreBegin(ctx context.Context, req *cairnpb.RestoreBeginRequest) (*cairnpb.RestoreBeginResponse, error) {
	var ab *cairnpb.AuthBackup
	if len(req.Auth) > 0 {
		ab = &cairnpb.AuthBackup{}
		if err := proto.Unmarshal(req.Auth, ab); err != nil {
			return nil, kv.Errorf(kv.ErrInvalidArgument, "auth state: %v", err)
		}
	}
	for _, ct := range req.Tables {
		if err := kv.ValidateTableName(ct.Name); err != nil {
			return nil, err
		}
	}
	if err := rt.checkEmpty(ctx); err != nil {
		return nil, err
	}
	for _, ct := range req.Tables {
		if ct.Name == "default" {
			continue // exists in every cluster (and is empty: checked)
		}
		if _, err := rt.CreateTable(ctx, proto.Clone(ct).(*cairnpb.CreateTableRequest)); err != nil {
			return nil, err
		}
	}
	if ab != nil {
		if err := rt.importAuth(ctx, ab); err != nil {
			return nil, err
		}
	}
	return &cairnpb.RestoreBeginResponse{}, nil
}

// checkEmpty fails unless the only table is "default" and it has no key.
func (rt *Router) checkEmpty(ctx context.Context) error {
	ts, err := rt.ListTables(ctx, &cairnpb.ListTablesRequest{})
	if err != nil {
		return err
	}
	for _, t := range ts.Tables {
		if t.Name != "default" {
			return kv.Errorf(kv.ErrTableExists, "restore needs an empty cluster, and table %q exists", t.Name)
		}
	}
	l, err := rt.List(ctx, &cairnpb.ListRequest{Table: "default", Limit: 1})
	if err != nil {
		return err
	}
	if len(l.Items) > 0 {
		return kv.Errorf(kv.ErrTableExists, "restore needs an empty cluster, and table \"default\" holds keys")
	}
	return nil
}

// importAuth writes the auth records: roles and their grants, users with
// their password hashes and roles (a user that exists, like a root made
// to enable auth here, gets the backed-up password and roles), tokens.
func (rt *Router) importAuth(ctx context.Context, a *cairnpb.AuthBackup) error {
	do := func(cmd *cairnpb.AuthCommand, okIf error) error {
		cmd.SecretCandidate = make([]byte, 32)
		if _, err := rand.Read(cmd.SecretCandidate); err != nil {
			return err
		}
		if err := rt.Auth(ctx, cmd); err != nil && (okIf == nil || !errors.Is(err, okIf)) {
			return err
		}
		return nil
	}
	for _, r := range a.Roles {
		if r.Name != replica.RootName {
			if err := do(&cairnpb.AuthCommand{Op: &cairnpb.AuthCommand_AddRole{AddRole: r.Name}}, kv.ErrAlreadyExists); err != nil {
				return err
			}
		}
		for _, g := range r.Grants {
			if err := do(&cairnpb.AuthCommand{Op: &cairnpb.AuthCommand_Grant{Grant: &cairnpb.RoleGrant{Role: r.Name, Grant: g}}}, nil); err != nil {
				return err
			}
		}
	}
	for _, u := range a.Users {
		err := do(&cairnpb.AuthCommand{Op: &cairnpb.AuthCommand_AddUser{AddUser: u}}, nil)
		if !errors.Is(err, kv.ErrAlreadyExists) {
			if err != nil {
				return err
			}
			continue
		}
		if err := do(&cairnpb.AuthCommand{Op: &cairnpb.AuthCommand_SetPassword{SetPassword: u}}, nil); err != nil {
			return err
		}
		for _, role := range u.Roles {
			if err := do(&cairnpb.AuthCommand{Op: &cairnpb.AuthCommand_BindRole{BindRole: &cairnpb.UserRole{User: u.Name, Role: role}}}, nil); err != nil {
				return err
			}
		}
	}
	for _, t := range a.Tokens {
		if err := do(&cairnpb.AuthCommand{Op: &cairnpb.AuthCommand_AddToken{AddToken: t}}, nil); err != nil {
			return err
		}
	}
	return nil
}

// RestoreData implements kv.Backuper: the records (sorted stored keys of
// one table) go to their ranges in Restore commands.
func (rt *Router) RestoreData(ctx context.Context, req *cairnpb.RestoreDataRequest) (*cairnpb.RestoreDataResponse, error) {
	for i, rec := range req.Records {
		if !rec.HasValue || rec.Version == 0 || rec.ExpireAtMs < 0 {
			return nil, kv.Errorf(kv.ErrInvalidArgument, "record %d: no value, version 0 or negative expiry", i)
		}
		if i > 0 && bytes.Compare(req.Records[i-1].Key, rec.Key) >= 0 {
			return nil, kv.Errorf(kv.ErrInvalidArgument, "records not in strictly increasing key order at %d", i)
		}
	}
	ctx, cancel := rt.withTimeout(ctx)
	defer cancel()
	out := &cairnpb.RestoreDataResponse{}
	for i := 0; i < len(req.Records); {
		n := 0
		err := rt.keyed(ctx, req.Table, req.Records[i].Key, func(t *cairnpb.Table, d *cairnpb.RangeDescriptor) error {
			sub := &cairnpb.RestoreRangeRequest{Table: t.Name}
			size := 0
			for j := i; j < len(req.Records) && len(sub.Keys) < restoreBatchKeys && size < restoreBatchBytes; j++ {
				rec := req.Records[j]
				if !replica.DescContains(d, rec.Key) {
					break
				}
				sub.Keys = append(sub.Keys, &cairnpb.RestoredKey{Key: rec.Key, Value: rec.Value, Version: rec.Version, ExpireAtMs: rec.ExpireAtMs})
				size += len(rec.Key) + len(rec.Value)
			}
			resp, err := rt.route(ctx, keys.RangeID(d.Id), &cairnpb.Request{Op: &cairnpb.Request_RestoreRange{RestoreRange: sub}}, false,
				func(r *replica.Replica) (*cairnpb.Response, error) { return rt.localRestoreRange(ctx, r, t, sub) })
			if err != nil {
				return err
			}
			n = len(sub.Keys)
			out.Restored += resp.GetRestoreRange().GetRestored()
			return nil
		})
		if err != nil {
			return nil, err
		}
		i += n
	}
	return out, nil
}

// localRestoreRange proposes one Restore on the range's leader.
func (rt *Router) localRestoreRange(ctx context.Context, r *replica.Replica, t *cairnpb.Table, req *cairnpb.RestoreRangeRequest) (*cairnpb.Response, error) {
	if len(req.Keys) == 0 {
		return nil, kv.Errorf(kv.ErrInvalidArgument, "restore without keys")
	}
	res, err := rt.propose(ctx, r, &cairnpb.Command{TableId: t.Id, Op: &cairnpb.Command_Restore{Restore: &cairnpb.Restore{Keys: req.Keys}}})
	if err != nil {
		return nil, err
	}
	return &cairnpb.Response{Op: &cairnpb.Response_RestoreRange{RestoreRange: &cairnpb.RestoreDataResponse{Restored: res.Version}}}, nil
}
