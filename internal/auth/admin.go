package auth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sort"
	"strings"
	"time"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/kv"
	"github.com/cairn-db/cairn/internal/replica"
)

// Proposer is what Admin needs of the router: propose an auth command on
// the meta leader, and a linearizable read point on the meta range.
type Proposer interface {
	Auth(ctx context.Context, cmd *cairnpb.AuthCommand) error
	MetaBarrier(ctx context.Context) error
}

// Admin serves the auth administration API (cairnpb.Auth) for every front
// end. Administration needs the root role once auth is enabled; before
// that anyone who reaches the (loopback-only, see protected mode) client
// port may set up users, as with etcd.
type Admin struct {
	a       *Authenticator
	prop    Proposer
	refresh func() error
	params  Argon2Params
}

// Token lifetimes.
const (
	DefaultLoginTTL = time.Hour
	MaxLoginTTL     = 24 * time.Hour
	DefaultAPITTL   = 90 * 24 * time.Hour
)

// NewAdmin returns the admin API. refresh reloads a's state from the
// local meta replica (called after a MetaBarrier).
func NewAdmin(a *Authenticator, prop Proposer, refresh func() error, params Argon2Params) *Admin {
	return &Admin{a: a, prop: prop, refresh: refresh, params: params}
}

// sync makes the local auth state at least as new as every committed
// change: a read of the auth records, or a token signed with the secret,
// reflects what was written before the call.
func (ad *Admin) sync(ctx context.Context) error {
	if err := ad.prop.MetaBarrier(ctx); err != nil {
		return err
	}
	return ad.refresh()
}

func validName(kind, n string) error {
	if n == "" || len(n) > 64 || strings.ContainsAny(n, " \t\r\n:/\x00") {
		return kv.Errorf(kv.ErrInvalidArgument, "%s name %q: 1-64 characters, no spaces, ':' or '/'", kind, n)
	}
	return nil
}

func (ad *Admin) propose(ctx context.Context, cmd *cairnpb.AuthCommand) error {
	cmd.SecretCandidate = make([]byte, 32)
	if _, err := rand.Read(cmd.SecretCandidate); err != nil {
		return kv.Errorf(kv.ErrInternal, "random: %v", err)
	}
	return ad.prop.Auth(outgoing(ctx, ctxPrincipal(ctx)), cmd)
}

// Do runs one admin operation for the principal of ctx.
func (ad *Admin) Do(ctx context.Context, req *cairnpb.AuthAdminRequest) (*cairnpb.AuthAdminResponse, error) {
	p := ctxPrincipal(ctx)
	if _, ok := req.Op.(*cairnpb.AuthAdminRequest_Status); ok {
		if err := ad.a.CheckAuthenticated(p); err != nil {
			return nil, err
		}
		if err := ad.sync(ctx); err != nil {
			return nil, err
		}
		return &cairnpb.AuthAdminResponse{Enabled: ad.a.Enabled()}, nil
	}
	if err := ad.a.CheckRoot(p); err != nil {
		return nil, err
	}
	switch op := req.Op.(type) {
	case *cairnpb.AuthAdminRequest_SetEnabled:
		return ad.change(ctx, &cairnpb.AuthCommand{Op: &cairnpb.AuthCommand_SetEnabled{SetEnabled: op.SetEnabled.Enabled}})
	case *cairnpb.AuthAdminRequest_AddUser:
		return ad.putUser(ctx, op.AddUser, true)
	case *cairnpb.AuthAdminRequest_SetPassword:
		return ad.putUser(ctx, op.SetPassword, false)
	case *cairnpb.AuthAdminRequest_RemoveUser:
		return ad.change(ctx, &cairnpb.AuthCommand{Op: &cairnpb.AuthCommand_RemoveUser{RemoveUser: op.RemoveUser}})
	case *cairnpb.AuthAdminRequest_AddRole:
		if err := validName("role", op.AddRole); err != nil {
			return nil, err
		}
		return ad.change(ctx, &cairnpb.AuthCommand{Op: &cairnpb.AuthCommand_AddRole{AddRole: op.AddRole}})
	case *cairnpb.AuthAdminRequest_RemoveRole:
		return ad.change(ctx, &cairnpb.AuthCommand{Op: &cairnpb.AuthCommand_RemoveRole{RemoveRole: op.RemoveRole}})
	case *cairnpb.AuthAdminRequest_Grant:
		if err := validGrant(op.Grant); err != nil {
			return nil, err
		}
		return ad.change(ctx, &cairnpb.AuthCommand{Op: &cairnpb.AuthCommand_Grant{Grant: op.Grant}})
	case *cairnpb.AuthAdminRequest_Revoke:
		if err := validGrant(op.Revoke); err != nil {
			return nil, err
		}
		return ad.change(ctx, &cairnpb.AuthCommand{Op: &cairnpb.AuthCommand_Revoke{Revoke: op.Revoke}})
	case *cairnpb.AuthAdminRequest_BindRole:
		return ad.change(ctx, &cairnpb.AuthCommand{Op: &cairnpb.AuthCommand_BindRole{BindRole: op.BindRole}})
	case *cairnpb.AuthAdminRequest_UnbindRole:
		return ad.change(ctx, &cairnpb.AuthCommand{Op: &cairnpb.AuthCommand_UnbindRole{UnbindRole: op.UnbindRole}})
	case *cairnpb.AuthAdminRequest_CreateToken:
		return ad.createToken(ctx, op.CreateToken)
	case *cairnpb.AuthAdminRequest_RevokeToken:
		return ad.change(ctx, &cairnpb.AuthCommand{Op: &cairnpb.AuthCommand_RemoveToken{RemoveToken: op.RevokeToken}})
	case *cairnpb.AuthAdminRequest_ListUsers, *cairnpb.AuthAdminRequest_ListRoles, *cairnpb.AuthAdminRequest_ListTokens:
		if err := ad.sync(ctx); err != nil {
			return nil, err
		}
		return ad.list(req), nil
	}
	return nil, kv.Errorf(kv.ErrInvalidArgument, "auth admin request has no operation")
}

func validGrant(rg *cairnpb.RoleGrant) error {
	if rg.Grant == nil {
		return kv.Errorf(kv.ErrInvalidArgument, "grant is empty")
	}
	if _, err := ParsePerm(rg.Grant.Permission); err != nil {
		return kv.Errorf(kv.ErrInvalidArgument, "%v", err)
	}
	if rg.Grant.Table != AllTables {
		if err := kv.ValidateTableName(rg.Grant.Table); err != nil {
			return err
		}
	}
	return nil
}

// change proposes cmd and returns the new state.
func (ad *Admin) change(ctx context.Context, cmd *cairnpb.AuthCommand) (*cairnpb.AuthAdminResponse, error) {
	if err := ad.propose(ctx, cmd); err != nil {
		return nil, err
	}
	if err := ad.sync(ctx); err != nil {
		return nil, err
	}
	return &cairnpb.AuthAdminResponse{Enabled: ad.a.Enabled()}, nil
}

func (ad *Admin) putUser(ctx context.Context, up *cairnpb.UserPassword, create bool) (*cairnpb.AuthAdminResponse, error) {
	if err := validName("user", up.Name); err != nil {
		return nil, err
	}
	hash, err := HashPassword(up.Password, ad.params)
	if err != nil {
		return nil, kv.Errorf(kv.ErrInvalidArgument, "%v", err)
	}
	rec := &cairnpb.UserRecord{Name: up.Name, PasswordHash: hash}
	cmd := &cairnpb.AuthCommand{Op: &cairnpb.AuthCommand_SetPassword{SetPassword: rec}}
	if create {
		cmd.Op = &cairnpb.AuthCommand_AddUser{AddUser: rec}
	}
	return ad.change(ctx, cmd)
}

func (ad *Admin) createToken(ctx context.Context, spec *cairnpb.TokenSpec) (*cairnpb.AuthAdminResponse, error) {
	ttl := time.Duration(spec.TtlSeconds) * time.Second
	if ttl <= 0 {
		ttl = DefaultAPITTL
	}
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return nil, kv.Errorf(kv.ErrInternal, "random: %v", err)
	}
	now := ad.a.opts.Now()
	rec := &cairnpb.TokenRecord{Id: hex.EncodeToString(id), User: spec.User, Name: spec.Name,
		CreatedUnix: now.Unix(), ExpiresUnix: now.Add(ttl).Unix()}
	if _, err := ad.change(ctx, &cairnpb.AuthCommand{Op: &cairnpb.AuthCommand_AddToken{AddToken: rec}}); err != nil {
		return nil, err
	}
	s := ad.a.snap.Load()
	tok := SignToken(s.secret, TokenClaims{Kind: TokenAPI, ID: rec.Id, User: rec.User, Expires: time.Unix(rec.ExpiresUnix, 0)})
	return &cairnpb.AuthAdminResponse{Enabled: s.enabled, Token: tok, TokenInfo: tokenInfo(rec)}, nil
}

func tokenInfo(t *cairnpb.TokenRecord) *cairnpb.TokenInfo {
	return &cairnpb.TokenInfo{Id: t.Id, User: t.User, Name: t.Name, CreatedUnix: t.CreatedUnix, ExpiresUnix: t.ExpiresUnix}
}

func (ad *Admin) list(req *cairnpb.AuthAdminRequest) *cairnpb.AuthAdminResponse {
	s := ad.a.snap.Load()
	out := &cairnpb.AuthAdminResponse{Enabled: s.enabled}
	switch req.Op.(type) {
	case *cairnpb.AuthAdminRequest_ListUsers:
		for _, u := range s.userRecords {
			out.Users = append(out.Users, &cairnpb.User{Name: u.Name, Roles: u.Roles})
		}
		sort.Slice(out.Users, func(i, j int) bool { return out.Users[i].Name < out.Users[j].Name })
	case *cairnpb.AuthAdminRequest_ListRoles:
		out.Roles = append(out.Roles, &cairnpb.Role{Name: replica.RootName, Grants: []*cairnpb.Grant{{Table: AllTables, Permission: "admin"}}})
		for _, r := range s.roles {
			out.Roles = append(out.Roles, &cairnpb.Role{Name: r.Name, Grants: r.Grants})
		}
		sort.Slice(out.Roles, func(i, j int) bool { return out.Roles[i].Name < out.Roles[j].Name })
	case *cairnpb.AuthAdminRequest_ListTokens:
		for _, t := range s.tokens {
			out.Tokens = append(out.Tokens, tokenInfo(t))
		}
		sort.Slice(out.Tokens, func(i, j int) bool { return out.Tokens[i].CreatedUnix < out.Tokens[j].CreatedUnix })
	}
	return out
}

// Login returns a short-lived token for the principal of ctx.
func (ad *Admin) Login(ctx context.Context, req *cairnpb.LoginRequest) (*cairnpb.LoginResponse, error) {
	p := ctxPrincipal(ctx)
	if p == nil {
		return nil, kv.Errorf(kv.ErrUnauthenticated, "login needs a user and password")
	}
	if p.Method == MethodToken {
		// Otherwise a stolen login token could be renewed forever.
		return nil, kv.Errorf(kv.ErrPermissionDenied, "login needs a password or a client certificate, not a token")
	}
	ttl := time.Duration(req.TtlSeconds) * time.Second
	if ttl <= 0 {
		ttl = DefaultLoginTTL
	}
	if ttl > MaxLoginTTL {
		return nil, kv.Errorf(kv.ErrInvalidArgument, "login tokens live at most %v; use cairn token create for longer", MaxLoginTTL)
	}
	s := ad.a.snap.Load()
	if len(s.secret) == 0 {
		return nil, kv.Errorf(kv.ErrInvalidArgument, "no token secret yet: add a user first")
	}
	id := make([]byte, 8)
	_, _ = rand.Read(id)
	exp := ad.a.opts.Now().Add(ttl)
	return &cairnpb.LoginResponse{Token: SignToken(s.secret, TokenClaims{Kind: TokenLogin, ID: hex.EncodeToString(id), User: p.User, Expires: exp}),
		ExpiresUnix: exp.Unix()}, nil
}
