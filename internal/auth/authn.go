package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cairn-db/cairn/internal/kv"
	"github.com/cairn-db/cairn/internal/replica"
)

// Principal is an authenticated user. Its permissions are looked up on
// every check in the current snapshot, so a revoked grant applies to
// connections that authenticated before.
type Principal struct {
	User string
	// Method is how the user proved it: MethodPassword, MethodToken or
	// MethodCert ("" for a principal carried from another node).
	Method string
}

// Authentication methods of a Principal.
const (
	MethodPassword = "password"
	MethodToken    = "token"
	MethodCert     = "cert"
)

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	if p == nil {
		return ctx
	}
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal of ctx, or nil.
func PrincipalFrom(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}

// Options configures an Authenticator.
type Options struct {
	Logger *slog.Logger
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
	// MaxFailures failed logins per user or per client address within
	// FailureWindow lock that user or address out until the window ends.
	MaxFailures   int
	FailureWindow time.Duration
}

// Authenticator verifies credentials and holds the node's view of the
// auth state (an immutable snapshot of the meta range's auth records,
// swapped on every meta change; see Watch).
//
// Password verification is cached: argon2id costs tens of milliseconds
// by design, so each (user, password) pair that verified is remembered,
// keyed by an HMAC under a per-process random key (the cache holds no
// password), and valid only while the user's stored hash is unchanged.
type Authenticator struct {
	opts      Options
	snap      atomic.Pointer[snapshot]
	reloads   atomic.Uint64
	protected atomic.Bool

	cacheKey []byte
	mu       sync.Mutex // guards verified and failures
	verified map[[32]byte]string
	failures map[string]*failureWindow
}

type failureWindow struct {
	start time.Time
	count int
}

// maxVerifiedEntries bounds the password cache; when full it is cleared.
const maxVerifiedEntries = 10000

// NewAuthenticator returns an authenticator with an empty state (auth
// disabled, no users) until the first Reload.
func NewAuthenticator(opts Options) *Authenticator {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxFailures == 0 {
		opts.MaxFailures = 10
	}
	if opts.FailureWindow == 0 {
		opts.FailureWindow = 10 * time.Second
	}
	a := &Authenticator{opts: opts, verified: map[[32]byte]string{}, failures: map[string]*failureWindow{}}
	a.cacheKey = make([]byte, 32)
	if _, err := rand.Read(a.cacheKey); err != nil {
		panic(err)
	}
	a.snap.Store(emptySnapshot)
	return a
}

// Enabled reports whether auth is enforced (as of the last reload).
func (a *Authenticator) Enabled() bool { return a.snap.Load().enabled }

// Reload reads the auth records from rd and makes them current.
func (a *Authenticator) Reload(rd replica.Reader, appliedIndex uint64) error {
	s, err := loadSnapshot(rd)
	if err != nil {
		return err
	}
	s.appliedIndex = appliedIndex
	a.snap.Store(s)
	a.reloads.Add(1)
	return nil
}

// ReloadDB reloads from a consistent Pebble snapshot of db.
func (a *Authenticator) ReloadDB(db *pebble.DB, appliedIndex uint64) error {
	snap := db.NewSnapshot()
	defer snap.Close()
	return a.Reload(snap, appliedIndex)
}

// Watch reloads the state whenever the meta replica's applied index
// moves, polling every interval, until ctx ends. A revocation applied on
// this node is in force within about one interval.
func (a *Authenticator) Watch(ctx context.Context, db *pebble.DB, applied func() uint64, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	last := ^uint64(0)
	for {
		if idx := applied(); idx != last {
			if err := a.ReloadDB(db, idx); err != nil {
				a.opts.Logger.Error("auth: reload", "err", err)
			} else {
				last = idx
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Authenticate verifies credentials presented from client address addr
// (for rate limiting; may be ""). Empty credentials give a nil principal
// and no error: whether anonymous requests pass is the Guard's decision.
// Errors are kv.ErrUnauthenticated and never contain a secret.
func (a *Authenticator) Authenticate(c Credentials, addr string) (*Principal, error) {
	if c.Empty() {
		return nil, nil
	}
	s := a.snap.Load()
	var p *Principal
	var err error
	if c.Token != "" {
		p, err = a.verifyToken(s, c.Token)
	} else {
		p, err = a.verifyPassword(s, c.User, c.Password, addr)
	}
	if err != nil {
		authFailures.WithLabelValues("unauthenticated").Inc()
	}
	return p, err
}

// AuthenticateCert maps a verified client certificate's common name to a
// user, which must exist when auth is enabled.
func (a *Authenticator) AuthenticateCert(commonName string) (*Principal, error) {
	s := a.snap.Load()
	if commonName == "" {
		return nil, kv.Errorf(kv.ErrUnauthenticated, "client certificate has no common name")
	}
	if _, ok := s.users[commonName]; !ok && s.enabled {
		return nil, kv.Errorf(kv.ErrUnauthenticated, "client certificate names an unknown user")
	}
	return &Principal{User: commonName, Method: MethodCert}, nil
}

func (a *Authenticator) verifyToken(s *snapshot, tok string) (*Principal, error) {
	c, err := ParseToken(s.secret, tok)
	if err != nil {
		return nil, kv.Errorf(kv.ErrUnauthenticated, "invalid token")
	}
	if !a.opts.Now().Before(c.Expires) {
		return nil, kv.Errorf(kv.ErrUnauthenticated, "token expired")
	}
	if c.Kind == TokenAPI {
		rec, ok := s.tokens[c.ID]
		if !ok || rec.User != c.User {
			return nil, kv.Errorf(kv.ErrUnauthenticated, "token revoked")
		}
	}
	if _, ok := s.users[c.User]; !ok {
		return nil, kv.Errorf(kv.ErrUnauthenticated, "token of an unknown user")
	}
	return &Principal{User: c.User, Method: MethodToken}, nil
}

func (a *Authenticator) verifyPassword(s *snapshot, user, password, addr string) (*Principal, error) {
	if user == "" {
		user = DefaultUser
	}
	if a.lockedOut(user, addr) {
		return nil, kv.Errorf(kv.ErrUnauthenticated, "too many failed logins; retry in %v", a.opts.FailureWindow)
	}
	u, ok := s.users[user]
	if !ok || u.hash == "" {
		a.fail(user, addr)
		return nil, kv.Errorf(kv.ErrUnauthenticated, "invalid user name or password")
	}
	k := a.cacheEntry(user, password)
	a.mu.Lock()
	cached := a.verified[k]
	a.mu.Unlock()
	if cached != "" && hmac.Equal([]byte(cached), []byte(u.hash)) {
		return &Principal{User: user, Method: MethodPassword}, nil
	}
	if !VerifyPassword(u.hash, password) {
		a.fail(user, addr)
		return nil, kv.Errorf(kv.ErrUnauthenticated, "invalid user name or password")
	}
	a.mu.Lock()
	if len(a.verified) >= maxVerifiedEntries {
		clear(a.verified)
	}
	a.verified[k] = u.hash
	a.mu.Unlock()
	return &Principal{User: user, Method: MethodPassword}, nil
}

// DefaultUser is the user of a RESP "AUTH password" (no user name), as
// in Redis.
const DefaultUser = "default"

func (a *Authenticator) cacheEntry(user, password string) [32]byte {
	h := hmac.New(sha256.New, a.cacheKey)
	h.Write([]byte(user))
	h.Write([]byte{0})
	h.Write([]byte(password))
	var k [32]byte
	copy(k[:], h.Sum(nil))
	return k
}

func (a *Authenticator) lockedOut(user, addr string) bool {
	now := a.opts.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, k := range []string{"u:" + user, "a:" + addr} {
		if k == "a:" {
			continue
		}
		if w := a.failures[k]; w != nil && now.Sub(w.start) < a.opts.FailureWindow && w.count >= a.opts.MaxFailures {
			return true
		}
	}
	return false
}

func (a *Authenticator) fail(user, addr string) {
	now := a.opts.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.failures) > 100000 {
		clear(a.failures)
	}
	for _, k := range []string{"u:" + user, "a:" + addr} {
		if k == "a:" {
			continue
		}
		w := a.failures[k]
		if w == nil || now.Sub(w.start) >= a.opts.FailureWindow {
			w = &failureWindow{start: now}
			a.failures[k] = w
		}
		w.count++
	}
}
