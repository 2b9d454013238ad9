package auth

// Deterministic tests of the authorizer: grants on tables and prefixes,
// admin, root, the "*" table, disabled auth, list spans, batches and
// conditional writes, and cache invalidation (a new snapshot takes effect
// at once for principals that authenticated before). Method: build
// snapshots from records, as the meta range would hold them, and assert
// every allow and every deny.

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/kv"
)

func testRoles() []*cairnpb.RoleRecord {
	return []*cairnpb.RoleRecord{
		{Name: "billing-reader", Grants: []*cairnpb.Grant{{Table: "billing", Prefix: []byte("invoices/"), Permission: "read"}}},
		{Name: "billing-writer", Grants: []*cairnpb.Grant{{Table: "billing", Permission: "read"}, {Table: "billing", Permission: "write"}}},
		{Name: "ops", Grants: []*cairnpb.Grant{{Table: "*", Permission: "admin"}}},
		{Name: "appender", Grants: []*cairnpb.Grant{{Table: "logs", Permission: "write"}}},
		{Name: "bogus", Grants: []*cairnpb.Grant{{Table: "billing", Permission: "everything"}}},
	}
}

func testUsers() []*cairnpb.UserRecord {
	return []*cairnpb.UserRecord{
		{Name: "root", PasswordHash: "x"},
		{Name: "reader", Roles: []string{"billing-reader"}},
		{Name: "writer", Roles: []string{"billing-writer"}},
		{Name: "op", Roles: []string{"ops"}},
		{Name: "app", Roles: []string{"appender"}},
		{Name: "nobody"},
		{Name: "ghost", Roles: []string{"no-such-role", "bogus"}},
		{Name: "boss", Roles: []string{"root"}},
	}
}

func newTestAuth(enabled bool) *Authenticator {
	a := NewAuthenticator(Options{})
	a.snap.Store(buildSnapshot(&cairnpb.AuthConfig{Enabled: enabled, Secret: make([]byte, 32)}, testUsers(), testRoles(), nil))
	return a
}

func TestCheckMatrix(t *testing.T) {
	a := newTestAuth(true)
	cases := []struct {
		user  string
		table string
		key   string
		need  Perm
		allow bool
	}{
		{"root", "billing", "anything", PermRead | PermWrite | PermAdmin, true},
		{"boss", "secret", "k", PermWrite, true},
		{"reader", "billing", "invoices/1", PermRead, true},
		{"reader", "billing", "invoices/", PermRead, true},
		{"reader", "billing", "invoices", PermRead, false},
		{"reader", "billing", "payroll/1", PermRead, false},
		{"reader", "billing", "invoices/1", PermWrite, false},
		{"reader", "other", "invoices/1", PermRead, false},
		{"writer", "billing", "payroll/1", PermRead, true},
		{"writer", "billing", "payroll/1", PermWrite, true},
		{"writer", "billing", "payroll/1", PermRead | PermWrite, true},
		{"writer", "billing", "payroll/1", PermAdmin, false},
		{"writer", "default", "k", PermRead, false},
		{"op", "any-table", "k", PermRead | PermWrite | PermAdmin, true},
		{"app", "logs", "k", PermWrite, true},
		{"app", "logs", "k", PermRead, false},
		{"app", "logs", "k", PermRead | PermWrite, false},
		{"nobody", "default", "k", PermRead, false},
		{"ghost", "billing", "k", PermRead, false},
		{"unknown", "default", "k", PermRead, false},
	}
	for _, c := range cases {
		err := a.Check(&Principal{User: c.user}, c.table, []byte(c.key), c.need)
		if c.allow && err != nil {
			t.Errorf("%s %s %s/%s: denied: %v", c.user, c.need, c.table, c.key, err)
		}
		if !c.allow && err == nil {
			t.Errorf("%s %s %s/%s: allowed", c.user, c.need, c.table, c.key)
		}
		if !c.allow && err != nil && !errors.Is(err, kv.ErrPermissionDenied) && !errors.Is(err, kv.ErrUnauthenticated) {
			t.Errorf("%s: error %v is neither denied nor unauthenticated", c.user, err)
		}
	}
	if err := a.Check(&Principal{User: "unknown"}, "default", []byte("k"), PermRead); !errors.Is(err, kv.ErrUnauthenticated) {
		t.Errorf("removed user: %v, want unauthenticated", err)
	}
	if err := a.Check(nil, "default", []byte("k"), PermRead); !errors.Is(err, kv.ErrUnauthenticated) {
		t.Errorf("anonymous: %v, want unauthenticated", err)
	}
	if err := a.Check(&Principal{User: "reader"}, "billing", []byte("payroll/1"), PermRead); err == nil || !errors.Is(err, kv.ErrPermissionDenied) {
		t.Fatalf("want permission denied, got %v", err)
	} else if msg := err.Error(); !contains(msg, "read") || contains(msg, "payroll") {
		t.Errorf("denial %q must name the permission and not the key", msg)
	}
}

func contains(s, sub string) bool { return len(sub) == 0 || indexOf(s, sub) >= 0 }

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

func TestDisabledAllowsEverything(t *testing.T) {
	a := newTestAuth(false)
	if err := a.Check(nil, "billing", []byte("k"), PermRead|PermWrite|PermAdmin); err != nil {
		t.Fatal(err)
	}
	if err := a.CheckRoot(nil); err != nil {
		t.Fatal(err)
	}
	if err := a.CheckRequest(nil, &cairnpb.Request{Op: &cairnpb.Request_DropTable{DropTable: &cairnpb.DropTableRequest{Name: "x"}}}); err != nil {
		t.Fatal(err)
	}
}

func TestCheckSpan(t *testing.T) {
	a := newTestAuth(true)
	reader := &Principal{User: "reader"}
	list := func(prefix, start, end string) error {
		req := &cairnpb.ListRequest{Table: "billing", Prefix: []byte(prefix), Start: []byte(start), End: []byte(end)}
		s, e := listSpan(req)
		return a.CheckSpan(reader, "billing", s, e, PermRead)
	}
	for _, ok := range [][3]string{{"invoices/", "", ""}, {"invoices/2026", "", ""}, {"", "invoices/a", "invoices/b"}, {"invoices/", "invoices/x", ""}} {
		if err := list(ok[0], ok[1], ok[2]); err != nil {
			t.Errorf("list %q: %v", ok, err)
		}
	}
	for _, bad := range [][3]string{{"", "", ""}, {"invoice", "", ""}, {"", "invoices/a", ""}, {"", "a", "invoices/b"}, {"", "invoices/a", "z"}} {
		if err := list(bad[0], bad[1], bad[2]); !errors.Is(err, kv.ErrPermissionDenied) {
			t.Errorf("list %q: %v, want denied", bad, err)
		}
	}
	if err := a.CheckSpan(&Principal{User: "writer"}, "billing", nil, nil, PermRead); err != nil {
		t.Errorf("writer lists billing: %v", err)
	}
}

func TestRequestChecks(t *testing.T) {
	a := newTestAuth(true)
	app := &Principal{User: "app"}
	put := func(cond *cairnpb.Condition) *cairnpb.Request {
		return &cairnpb.Request{Op: &cairnpb.Request_Put{Put: &cairnpb.PutRequest{Table: "logs", Key: []byte("k"), Condition: cond}}}
	}
	if err := a.CheckRequest(app, put(nil)); err != nil {
		t.Errorf("plain put: %v", err)
	}
	// A conditional write reveals existence and version: it needs read.
	for _, c := range []*cairnpb.Condition{{Absent: true}, {Version: 3}} {
		if err := a.CheckRequest(app, put(c)); !errors.Is(err, kv.ErrPermissionDenied) {
			t.Errorf("conditional put %v by a write-only user: %v", c, err)
		}
	}
	del := &cairnpb.Request{Op: &cairnpb.Request_Delete{Delete: &cairnpb.DeleteRequest{Table: "logs", Key: []byte("k"), Condition: &cairnpb.Condition{Version: 1}}}}
	if err := a.CheckRequest(app, del); !errors.Is(err, kv.ErrPermissionDenied) {
		t.Errorf("conditional delete: %v", err)
	}
	batch := func(keys ...string) *cairnpb.Request {
		b := &cairnpb.BatchRequest{Table: "billing"}
		for _, k := range keys {
			b.Ops = append(b.Ops, &cairnpb.BatchOp{Op: &cairnpb.BatchOp_Put{Put: &cairnpb.PutRequest{Key: []byte(k)}}})
		}
		return &cairnpb.Request{Op: &cairnpb.Request_Batch{Batch: b}}
	}
	if err := a.CheckRequest(&Principal{User: "writer"}, batch("a", "b")); err != nil {
		t.Errorf("batch by writer: %v", err)
	}
	if err := a.CheckRequest(&Principal{User: "reader"}, batch("invoices/1")); !errors.Is(err, kv.ErrPermissionDenied) {
		t.Errorf("batch by reader: %v", err)
	}
	get := &cairnpb.Request{Op: &cairnpb.Request_Get{Get: &cairnpb.GetRequest{Table: "billing", Key: []byte("invoices/1")}}}
	if err := a.CheckRequest(&Principal{User: "reader"}, get); err != nil {
		t.Errorf("get by reader: %v", err)
	}
	if err := a.CheckRequest(nil, get); !errors.Is(err, kv.ErrUnauthenticated) {
		t.Errorf("forwarded get without principal: %v", err)
	}
	learners := uint32(1)
	update := &cairnpb.Request{Op: &cairnpb.Request_UpdateTable{UpdateTable: &cairnpb.UpdateTableRequest{Name: "billing", Learners: &learners}}}
	if err := a.CheckRequest(&Principal{User: "op"}, update); err != nil {
		t.Errorf("forwarded table update by ops: %v", err)
	}
	if err := a.CheckRequest(&Principal{User: "writer"}, update); !errors.Is(err, kv.ErrPermissionDenied) {
		t.Errorf("forwarded table update by a writer: %v, want permission denied", err)
	}
	create := &cairnpb.Request{Op: &cairnpb.Request_CreateTable{CreateTable: &cairnpb.CreateTableRequest{Name: "new"}}}
	if err := a.CheckRequest(&Principal{User: "op"}, create); err != nil {
		t.Errorf("create by ops: %v", err)
	}
	if err := a.CheckRequest(&Principal{User: "writer"}, create); !errors.Is(err, kv.ErrPermissionDenied) {
		t.Errorf("create by writer: %v", err)
	}
	authCmd := &cairnpb.Request{Op: &cairnpb.Request_Auth{Auth: &cairnpb.AuthCommand{}}}
	if err := a.CheckRequest(&Principal{User: "op"}, authCmd); !errors.Is(err, kv.ErrPermissionDenied) {
		t.Errorf("auth admin by a table admin: %v", err)
	}
	if err := a.CheckRequest(&Principal{User: "root"}, authCmd); err != nil {
		t.Errorf("auth admin by root: %v", err)
	}
	if err := a.CheckRequest(&Principal{User: "root"}, &cairnpb.Request{}); !errors.Is(err, kv.ErrPermissionDenied) {
		t.Errorf("empty request: %v", err)
	}
	// A split by hand needs admin on the table.
	split := &cairnpb.Request{Op: &cairnpb.Request_SplitRange{SplitRange: &cairnpb.SplitRangeRequest{Table: "billing", Key: []byte("m")}}}
	if err := a.CheckRequest(&Principal{User: "op"}, split); err != nil {
		t.Errorf("split by a table admin: %v", err)
	}
	for _, u := range []string{"writer", "reader"} {
		if err := a.CheckRequest(&Principal{User: u}, split); !errors.Is(err, kv.ErrPermissionDenied) {
			t.Errorf("split by %s: %v", u, err)
		}
	}
	// Node-internal requests pass with or without a principal.
	for _, r := range []*cairnpb.Request{
		{Op: &cairnpb.Request_Expire{Expire: &cairnpb.ExpireRequest{Table: "billing"}}},
		{Op: &cairnpb.Request_AllocRangeId{AllocRangeId: &cairnpb.AllocRangeID{}}},
		{Op: &cairnpb.Request_UpdateRanges{UpdateRanges: &cairnpb.UpdateRanges{}}},
	} {
		for _, p := range []*Principal{nil, {User: "reader"}} {
			if err := a.CheckRequest(p, r); err != nil {
				t.Errorf("internal request %T by %v: %v", r.Op, p, err)
			}
		}
	}
	// The guard checks splits too.
	g := NewGuard(a, nil)
	if _, err := g.SplitRange(WithPrincipal(context.Background(), &Principal{User: "writer"}), split.GetSplitRange()); !errors.Is(err, kv.ErrPermissionDenied) {
		t.Errorf("guarded split by a writer: %v", err)
	}
}

// TestSnapshotSwapInvalidates: a principal authenticated before a grant
// is revoked loses the permission with the next snapshot, and gains one
// granted later, with no other cache to flush.
func TestSnapshotSwapInvalidates(t *testing.T) {
	a := newTestAuth(true)
	p := &Principal{User: "app"}
	if err := a.Check(p, "logs", []byte("k"), PermWrite); err != nil {
		t.Fatal(err)
	}
	roles := testRoles()
	roles[3].Grants = nil // appender loses write on logs
	roles = append(roles, &cairnpb.RoleRecord{Name: "new", Grants: []*cairnpb.Grant{{Table: "metrics", Permission: "read"}}})
	users := testUsers()
	users[4].Roles = append(users[4].Roles, "new")
	a.snap.Store(buildSnapshot(&cairnpb.AuthConfig{Enabled: true}, users, roles, nil))
	if err := a.Check(p, "logs", []byte("k"), PermWrite); !errors.Is(err, kv.ErrPermissionDenied) {
		t.Errorf("after revoke: %v", err)
	}
	if err := a.Check(p, "metrics", []byte("k"), PermRead); err != nil {
		t.Errorf("after grant: %v", err)
	}
}

func TestTokens(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	a := NewAuthenticator(Options{Now: func() time.Time { return now }})
	secret := []byte("0123456789abcdef0123456789abcdef")
	users := []*cairnpb.UserRecord{{Name: "ci"}, {Name: "root", PasswordHash: "x"}}
	tokens := []*cairnpb.TokenRecord{{Id: "t1", User: "ci", ExpiresUnix: now.Add(time.Hour).Unix()}}
	a.snap.Store(buildSnapshot(&cairnpb.AuthConfig{Enabled: true, Secret: secret}, users, nil, tokens))
	api := SignToken(secret, TokenClaims{Kind: TokenAPI, ID: "t1", User: "ci", Expires: now.Add(time.Hour)})
	if p, err := a.Authenticate(Credentials{Token: api}, ""); err != nil || p.User != "ci" {
		t.Fatalf("api token: %v %v", p, err)
	}
	login := SignToken(secret, TokenClaims{Kind: TokenLogin, ID: "x", User: "ci", Expires: now.Add(time.Minute)})
	if _, err := a.Authenticate(Credentials{Token: login}, ""); err != nil {
		t.Fatalf("login token: %v", err)
	}
	bad := []string{
		SignToken(secret, TokenClaims{Kind: TokenAPI, ID: "t2", User: "ci", Expires: now.Add(time.Hour)}),   // no record
		SignToken(secret, TokenClaims{Kind: TokenAPI, ID: "t1", User: "root", Expires: now.Add(time.Hour)}), // record of another user
		SignToken(secret, TokenClaims{Kind: TokenLogin, ID: "x", User: "ci", Expires: now}),                 // expired
		SignToken(secret, TokenClaims{Kind: TokenLogin, ID: "x", User: "gone", Expires: now.Add(time.Hour)}),
		SignToken([]byte("another secret of 32 bytes......"), TokenClaims{Kind: TokenLogin, ID: "x", User: "ci", Expires: now.Add(time.Hour)}),
		api[:len(api)-2], api + "A", "cairn1.", "", "Bearer x",
	}
	for i, tok := range bad {
		if tok == "" {
			continue
		}
		if _, err := a.Authenticate(Credentials{Token: tok}, ""); !errors.Is(err, kv.ErrUnauthenticated) {
			t.Errorf("bad token %d accepted: %v", i, err)
		}
	}
	// Revocation: the record goes away with the next snapshot.
	a.snap.Store(buildSnapshot(&cairnpb.AuthConfig{Enabled: true, Secret: secret}, users, nil, nil))
	if _, err := a.Authenticate(Credentials{Token: api}, ""); !errors.Is(err, kv.ErrUnauthenticated) {
		t.Errorf("revoked token accepted: %v", err)
	}
}

func TestPasswordsAndCache(t *testing.T) {
	params := Argon2Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1, SaltBytes: 16, KeyBytes: 32}
	h1, err := HashPassword("hunter2", params)
	if err != nil {
		t.Fatal(err)
	}
	h2, _ := HashPassword("hunter2", params)
	if h1 == h2 {
		t.Fatal("two hashes of one password are equal: no random salt")
	}
	if !VerifyPassword(h1, "hunter2") || VerifyPassword(h1, "hunter3") || VerifyPassword(h1, "") {
		t.Fatal("VerifyPassword")
	}
	a := NewAuthenticator(Options{MaxFailures: 3, FailureWindow: time.Hour})
	a.snap.Store(buildSnapshot(&cairnpb.AuthConfig{Enabled: true}, []*cairnpb.UserRecord{{Name: "u", PasswordHash: h1}, {Name: "v", PasswordHash: h1}}, nil, nil))
	if _, err := a.Authenticate(Credentials{User: "u", Password: "hunter2"}, "1.2.3.4"); err != nil {
		t.Fatal(err)
	}
	if len(a.verified) != 1 {
		t.Fatalf("cache has %d entries", len(a.verified))
	}
	// A changed hash (passwd) invalidates the cached verification.
	h3, _ := HashPassword("new", params)
	a.snap.Store(buildSnapshot(&cairnpb.AuthConfig{Enabled: true}, []*cairnpb.UserRecord{{Name: "u", PasswordHash: h3}, {Name: "v", PasswordHash: h1}}, nil, nil))
	if _, err := a.Authenticate(Credentials{User: "u", Password: "hunter2"}, "1.2.3.4"); !errors.Is(err, kv.ErrUnauthenticated) {
		t.Fatalf("old password after passwd: %v", err)
	}
	// Lockout after MaxFailures per user (the earlier failure counts).
	for range 2 {
		_, _ = a.Authenticate(Credentials{User: "u", Password: "wrong"}, "5.6.7.8")
	}
	if _, err := a.Authenticate(Credentials{User: "u", Password: "new"}, "9.9.9.9"); err == nil {
		t.Fatal("locked-out user logged in")
	}
	// And per address: 1.2.3.4 has one failure; two more lock it for v.
	for range 2 {
		_, _ = a.Authenticate(Credentials{User: "v", Password: "wrong"}, "1.2.3.4")
	}
	if _, err := a.Authenticate(Credentials{User: "v", Password: "hunter2"}, "1.2.3.4"); err == nil {
		t.Fatal("locked-out address logged in")
	}
	// v itself has 2 failures, under the limit: from elsewhere it may log in.
	if _, err := a.Authenticate(Credentials{User: "v", Password: "hunter2"}, "10.0.0.1"); err != nil {
		t.Fatalf("v from another address: %v", err)
	}
}

// TestLogin: a password principal gets a token that authenticates as the
// same user; a token principal cannot renew itself; no principal is 401.
func TestLogin(t *testing.T) {
	a := newTestAuth(true)
	ad := NewAdmin(a, nil, func() error { return nil }, DefaultArgon2Params)
	ctx := WithPrincipal(context.Background(), &Principal{User: "writer", Method: MethodPassword})
	resp, err := ad.Login(ctx, &cairnpb.LoginRequest{TtlSeconds: 60})
	if err != nil {
		t.Fatal(err)
	}
	p, err := a.Authenticate(Credentials{Token: resp.Token}, "")
	if err != nil || p.User != "writer" || p.Method != MethodToken {
		t.Fatalf("login token authenticates as %+v, %v", p, err)
	}
	if _, err := ad.Login(WithPrincipal(context.Background(), p), &cairnpb.LoginRequest{}); !errors.Is(err, kv.ErrPermissionDenied) {
		t.Fatalf("renewal with a token: %v", err)
	}
	if _, err := ad.Login(context.Background(), &cairnpb.LoginRequest{}); !errors.Is(err, kv.ErrUnauthenticated) {
		t.Fatalf("anonymous login: %v", err)
	}
	if _, err := ad.Login(ctx, &cairnpb.LoginRequest{TtlSeconds: int64(48 * time.Hour / time.Second)}); !errors.Is(err, kv.ErrInvalidArgument) {
		t.Fatalf("48 h login token: %v", err)
	}
	// Admin operations need root once auth is on.
	if _, err := ad.Do(ctx, &cairnpb.AuthAdminRequest{Op: &cairnpb.AuthAdminRequest_ListUsers{ListUsers: &cairnpb.AuthEmpty{}}}); !errors.Is(err, kv.ErrPermissionDenied) {
		t.Fatalf("writer lists users: %v", err)
	}
}

func TestProtectedRefuses(t *testing.T) {
	a := newTestAuth(false)
	if a.ProtectedRefuses("10.0.0.1:5000") {
		t.Fatal("refused with protected mode off")
	}
	a.SetProtected(true)
	for addr, want := range map[string]bool{"10.0.0.1:5000": true, "127.0.0.1:5000": false, "[::1]:5000": false, "": true, "garbage": true} {
		if got := a.ProtectedRefuses(addr); got != want {
			t.Errorf("ProtectedRefuses(%q) = %v, want %v", addr, got, want)
		}
	}
	if _, err := a.authenticate("", nil, "10.0.0.1:5000"); !errors.Is(err, kv.ErrPermissionDenied) {
		t.Errorf("authenticate from a public address with auth off: %v", err)
	}
	b := newTestAuth(true)
	b.SetProtected(true)
	if b.ProtectedRefuses("10.0.0.1:5000") {
		t.Fatal("refused with auth enabled")
	}
}

// TestBackupNeedsClusterAdmin: a forwarded BackupRange or RestoreRange
// (the leader's own check of a backup or restore that a gateway already
// checked) needs admin on "*"; a writer of the table may not, an admin of
// every table may.
func TestBackupNeedsClusterAdmin(t *testing.T) {
	a := newTestAuth(true)
	reqs := []*cairnpb.Request{
		{Op: &cairnpb.Request_BackupRange{BackupRange: &cairnpb.BackupRangeRequest{Table: "billing", AtVersion: 1}}},
		{Op: &cairnpb.Request_RestoreRange{RestoreRange: &cairnpb.RestoreRangeRequest{Table: "billing",
			Keys: []*cairnpb.RestoredKey{{Key: []byte("k"), Version: 1}}}}},
	}
	for _, req := range reqs {
		for _, c := range []struct {
			user  string
			allow bool
		}{{"root", true}, {"boss", true}, {"op", true}, {"writer", false}, {"reader", false}, {"nobody", false}} {
			err := a.CheckRequest(&Principal{User: c.user}, req)
			if c.allow != (err == nil) || (err != nil && !errors.Is(err, kv.ErrPermissionDenied)) {
				t.Errorf("%T as %s: %v, want allowed=%v", req.Op, c.user, err, c.allow)
			}
		}
		if err := a.CheckRequest(nil, req); !errors.Is(err, kv.ErrUnauthenticated) {
			t.Errorf("%T anonymous: %v", req.Op, err)
		}
		if err := newTestAuth(false).CheckRequest(nil, req); err != nil {
			t.Errorf("%T with auth off: %v", req.Op, err)
		}
	}
}
