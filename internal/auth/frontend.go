package auth

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/cairn-db/cairn/internal/kv"
)

// hostOf is the host part of a remote address (rate limiting counts per
// client host, not per connection).
func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// certUser returns the common name of a verified client certificate, or "".
func certUser(cs *tls.ConnectionState) string {
	if cs == nil || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return ""
	}
	return cs.VerifiedChains[0][0].Subject.CommonName
}

// SetProtected turns on protected mode at run time: while auth is
// disabled, requests from non-loopback clients are refused. The server
// sets it unless --insecure; it matters when auth is disabled after a node
// started with a public listener (the start-up check covers the rest).
func (a *Authenticator) SetProtected(on bool) { a.protected.Store(on) }

// ProtectedRefuses reports whether protected mode refuses a client at
// addr: protected mode is on, auth is disabled, and addr is not loopback.
func (a *Authenticator) ProtectedRefuses(addr string) bool {
	if !a.protected.Load() || a.Enabled() {
		return false
	}
	ip := net.ParseIP(hostOf(addr))
	return ip == nil || !ip.IsLoopback()
}

// errProtected is the error of a request protected mode refuses.
var errProtected = kv.Errorf(kv.ErrPermissionDenied, "protected mode: auth is disabled, so only loopback clients are served; enable auth (cairn auth enable) or restart with --insecure")

// authenticate resolves a request's identity: explicit credentials
// (header or metadata) win over a client certificate.
func (a *Authenticator) authenticate(header string, cs *tls.ConnectionState, addr string) (*Principal, error) {
	if a.ProtectedRefuses(addr) {
		return nil, errProtected
	}
	c, err := ParseAuthorization(header)
	if err != nil {
		return nil, kv.Errorf(kv.ErrUnauthenticated, "%v", err)
	}
	if c.Empty() {
		if cn := certUser(cs); cn != "" {
			return a.AuthenticateCert(cn)
		}
		return nil, nil
	}
	return a.Authenticate(c, hostOf(addr))
}

// HTTPContext authenticates an HTTP request and returns its context with
// the principal (unchanged when there are no credentials).
func (a *Authenticator) HTTPContext(r *http.Request) (context.Context, error) {
	p, err := a.authenticate(r.Header.Get("Authorization"), r.TLS, r.RemoteAddr)
	if err != nil {
		return nil, err
	}
	return WithPrincipal(r.Context(), p), nil
}

// GRPCContext authenticates a gRPC call from its "authorization"
// metadata (same format as the HTTP header) or its TLS client
// certificate.
func (a *Authenticator) GRPCContext(ctx context.Context) (context.Context, error) {
	var header string
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("authorization"); len(v) > 0 {
			if len(v) > 1 {
				return nil, kv.Errorf(kv.ErrUnauthenticated, "several authorization values")
			}
			header = v[0]
		}
	}
	var cs *tls.ConnectionState
	addr := ""
	if pr, ok := peer.FromContext(ctx); ok {
		if pr.Addr != nil {
			addr = pr.Addr.String()
		}
		if ti, ok := pr.AuthInfo.(credentials.TLSInfo); ok {
			cs = &ti.State
		}
	}
	p, err := a.authenticate(header, cs, addr)
	if err != nil {
		return nil, err
	}
	return WithPrincipal(ctx, p), nil
}

// UserExists reports whether a user of that name exists.
func (a *Authenticator) UserExists(name string) bool {
	_, ok := a.snap.Load().users[name]
	return ok
}

// PasswordContext authenticates user and password (RESP AUTH) from
// client address addr and returns parent carrying the principal.
func (a *Authenticator) PasswordContext(parent context.Context, user, password, addr string) (context.Context, error) {
	p, err := a.Authenticate(Credentials{User: user, Password: password}, hostOf(addr))
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, kv.Errorf(kv.ErrUnauthenticated, "empty credentials")
	}
	return WithPrincipal(parent, p), nil
}

// CertContext authenticates a TLS connection by its verified client
// certificate (RESP): parent with the principal, or false when the
// connection has no such certificate or it names no user.
func (a *Authenticator) CertContext(parent context.Context, cs tls.ConnectionState) (context.Context, bool) {
	cn := certUser(&cs)
	if cn == "" {
		return nil, false
	}
	p, err := a.AuthenticateCert(cn)
	if err != nil {
		return nil, false
	}
	return WithPrincipal(parent, p), true
}
