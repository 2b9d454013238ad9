package client

import (
	"context"
	"encoding/base64"
	"time"

	"github.com/cairn-db/cairn/api/cairnpb"
)

// callCredentials puts the Config's credentials on every call as the
// "authorization" metadata, in the HTTP header's format.
type callCredentials struct {
	header string
	tls    bool
}

func newCallCredentials(cfg Config) *callCredentials {
	h := "Bearer " + cfg.Token
	if cfg.Token == "" {
		h = "Basic " + base64.StdEncoding.EncodeToString([]byte(cfg.User+":"+cfg.Password))
	}
	return &callCredentials{header: h, tls: cfg.TLS != nil}
}

func (c *callCredentials) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": c.header}, nil
}

// RequireTransportSecurity is false so that credentials work on a
// loopback development node without TLS; the server refuses a
// non-loopback listener without TLS unless --insecure (protected mode).
func (c *callCredentials) RequireTransportSecurity() bool { return false }

// Grant is a permission of a role: "read", "write" or "admin" on a table
// ("*" for all), optionally only on keys starting with Prefix.
type Grant struct {
	Table      string `json:"table"`
	Prefix     []byte `json:"prefix,omitempty"`
	Permission string `json:"permission"`
}

// User is a user and its roles.
type User struct {
	Name  string   `json:"name"`
	Roles []string `json:"roles"`
}

// Role is a role and its grants.
type Role struct {
	Name   string  `json:"name"`
	Grants []Grant `json:"grants"`
}

// TokenInfo describes a long-lived API token (never the token itself).
type TokenInfo struct {
	ID      string    `json:"id"`
	User    string    `json:"user"`
	Name    string    `json:"name,omitempty"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
}

func (c *Client) admin(ctx context.Context, req *cairnpb.AuthAdminRequest, kind callKind) (*cairnpb.AuthAdminResponse, error) {
	var out *cairnpb.AuthAdminResponse
	err := c.do(ctx, kind, func(ctx context.Context, ep *endpoint) error {
		var err error
		out, err = ep.auth.Admin(ctx, req)
		return err
	})
	return out, err
}

// Login returns a short-lived token (ttl 0: the server's default of one
// hour) for the client's user and password.
func (c *Client) Login(ctx context.Context, ttl time.Duration) (string, time.Time, error) {
	var out *cairnpb.LoginResponse
	err := c.do(ctx, read, func(ctx context.Context, ep *endpoint) error {
		var err error
		out, err = ep.auth.Login(ctx, &cairnpb.LoginRequest{TtlSeconds: int64(ttl / time.Second)})
		return err
	})
	if err != nil {
		return "", time.Time{}, err
	}
	return out.Token, time.Unix(out.ExpiresUnix, 0), nil
}

// AuthEnabled reports whether the cluster enforces auth.
func (c *Client) AuthEnabled(ctx context.Context) (bool, error) {
	out, err := c.admin(ctx, &cairnpb.AuthAdminRequest{Op: &cairnpb.AuthAdminRequest_Status{Status: &cairnpb.AuthEmpty{}}}, read)
	if err != nil {
		return false, err
	}
	return out.Enabled, nil
}

// SetAuthEnabled turns auth on (needs a user "root") or off (needs root).
func (c *Client) SetAuthEnabled(ctx context.Context, on bool) error {
	_, err := c.admin(ctx, &cairnpb.AuthAdminRequest{Op: &cairnpb.AuthAdminRequest_SetEnabled{SetEnabled: &cairnpb.AuthEnable{Enabled: on}}}, write)
	return err
}

// AddUser creates a user with a password.
func (c *Client) AddUser(ctx context.Context, name, password string) error {
	_, err := c.admin(ctx, &cairnpb.AuthAdminRequest{Op: &cairnpb.AuthAdminRequest_AddUser{AddUser: &cairnpb.UserPassword{Name: name, Password: password}}}, write)
	return err
}

// SetPassword changes a user's password.
func (c *Client) SetPassword(ctx context.Context, name, password string) error {
	_, err := c.admin(ctx, &cairnpb.AuthAdminRequest{Op: &cairnpb.AuthAdminRequest_SetPassword{SetPassword: &cairnpb.UserPassword{Name: name, Password: password}}}, write)
	return err
}

// RemoveUser deletes a user.
func (c *Client) RemoveUser(ctx context.Context, name string) error {
	_, err := c.admin(ctx, &cairnpb.AuthAdminRequest{Op: &cairnpb.AuthAdminRequest_RemoveUser{RemoveUser: name}}, write)
	return err
}

// Users lists the users.
func (c *Client) Users(ctx context.Context) ([]User, error) {
	out, err := c.admin(ctx, &cairnpb.AuthAdminRequest{Op: &cairnpb.AuthAdminRequest_ListUsers{ListUsers: &cairnpb.AuthEmpty{}}}, read)
	if err != nil {
		return nil, err
	}
	users := make([]User, 0, len(out.Users))
	for _, u := range out.Users {
		users = append(users, User{Name: u.Name, Roles: append([]string{}, u.Roles...)})
	}
	return users, nil
}

// AddRole creates a role without grants.
func (c *Client) AddRole(ctx context.Context, name string) error {
	_, err := c.admin(ctx, &cairnpb.AuthAdminRequest{Op: &cairnpb.AuthAdminRequest_AddRole{AddRole: name}}, write)
	return err
}

// RemoveRole deletes a role.
func (c *Client) RemoveRole(ctx context.Context, name string) error {
	_, err := c.admin(ctx, &cairnpb.AuthAdminRequest{Op: &cairnpb.AuthAdminRequest_RemoveRole{RemoveRole: name}}, write)
	return err
}

func grantProto(g Grant) *cairnpb.Grant {
	return &cairnpb.Grant{Table: g.Table, Prefix: g.Prefix, Permission: g.Permission}
}

// Grant adds a grant to a role.
func (c *Client) Grant(ctx context.Context, role string, g Grant) error {
	_, err := c.admin(ctx, &cairnpb.AuthAdminRequest{Op: &cairnpb.AuthAdminRequest_Grant{Grant: &cairnpb.RoleGrant{Role: role, Grant: grantProto(g)}}}, write)
	return err
}

// Revoke removes a grant from a role.
func (c *Client) Revoke(ctx context.Context, role string, g Grant) error {
	_, err := c.admin(ctx, &cairnpb.AuthAdminRequest{Op: &cairnpb.AuthAdminRequest_Revoke{Revoke: &cairnpb.RoleGrant{Role: role, Grant: grantProto(g)}}}, write)
	return err
}

// Roles lists the roles, the built-in "root" included.
func (c *Client) Roles(ctx context.Context) ([]Role, error) {
	out, err := c.admin(ctx, &cairnpb.AuthAdminRequest{Op: &cairnpb.AuthAdminRequest_ListRoles{ListRoles: &cairnpb.AuthEmpty{}}}, read)
	if err != nil {
		return nil, err
	}
	roles := make([]Role, 0, len(out.Roles))
	for _, r := range out.Roles {
		role := Role{Name: r.Name, Grants: []Grant{}}
		for _, g := range r.Grants {
			role.Grants = append(role.Grants, Grant{Table: g.Table, Prefix: g.Prefix, Permission: g.Permission})
		}
		roles = append(roles, role)
	}
	return roles, nil
}

// BindRole gives a user a role.
func (c *Client) BindRole(ctx context.Context, user, role string) error {
	_, err := c.admin(ctx, &cairnpb.AuthAdminRequest{Op: &cairnpb.AuthAdminRequest_BindRole{BindRole: &cairnpb.UserRole{User: user, Role: role}}}, write)
	return err
}

// UnbindRole takes a role from a user.
func (c *Client) UnbindRole(ctx context.Context, user, role string) error {
	_, err := c.admin(ctx, &cairnpb.AuthAdminRequest{Op: &cairnpb.AuthAdminRequest_UnbindRole{UnbindRole: &cairnpb.UserRole{User: user, Role: role}}}, write)
	return err
}

func tokenInfo(t *cairnpb.TokenInfo) TokenInfo {
	return TokenInfo{ID: t.Id, User: t.User, Name: t.Name, Created: time.Unix(t.CreatedUnix, 0).UTC(), Expires: time.Unix(t.ExpiresUnix, 0).UTC()}
}

// CreateToken creates a long-lived API token for user; the token is
// returned once (only its ID is stored).
func (c *Client) CreateToken(ctx context.Context, user, name string, ttl time.Duration) (string, TokenInfo, error) {
	out, err := c.admin(ctx, &cairnpb.AuthAdminRequest{Op: &cairnpb.AuthAdminRequest_CreateToken{CreateToken: &cairnpb.TokenSpec{User: user, Name: name, TtlSeconds: int64(ttl / time.Second)}}}, write)
	if err != nil {
		return "", TokenInfo{}, err
	}
	return out.Token, tokenInfo(out.TokenInfo), nil
}

// Tokens lists the API tokens.
func (c *Client) Tokens(ctx context.Context) ([]TokenInfo, error) {
	out, err := c.admin(ctx, &cairnpb.AuthAdminRequest{Op: &cairnpb.AuthAdminRequest_ListTokens{ListTokens: &cairnpb.AuthEmpty{}}}, read)
	if err != nil {
		return nil, err
	}
	ts := make([]TokenInfo, 0, len(out.Tokens))
	for _, t := range out.Tokens {
		ts = append(ts, tokenInfo(t))
	}
	return ts, nil
}

// RevokeToken revokes an API token by ID, cluster-wide.
func (c *Client) RevokeToken(ctx context.Context, id string) error {
	_, err := c.admin(ctx, &cairnpb.AuthAdminRequest{Op: &cairnpb.AuthAdminRequest_RevokeToken{RevokeToken: id}}, write)
	return err
}
