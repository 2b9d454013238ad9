package client

import (
	"sync"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/cairn-db/cairn/internal/kv"
)

// Read consistency levels (see the server's docs/design/reads.md).
const (
	// Linearizable reads see every write acknowledged before they
	// started. The default.
	Linearizable = "linearizable"
	// Session reads see this Client's own writes and never go back behind
	// what it has read; any replica that has caught up serves them. The
	// Client carries the session token itself.
	Session = "session"
	// Stale reads are at most a bound (WithMaxStaleness, default 5s)
	// behind; any replica that can prove it serves them. ErrTooStale when
	// none can (retryable).
	Stale = "stale"
)

// ReadOption sets how Get reads.
type ReadOption func(*readOptions)

type readOptions struct {
	consistency  string
	maxStaleness time.Duration
	served       *Served
}

// WithConsistency sets the read's level: Linearizable, Session or Stale.
func WithConsistency(level string) ReadOption {
	return func(o *readOptions) { o.consistency = level }
}

// WithMaxStaleness bounds a Stale read (10ms to 1h).
func WithMaxStaleness(d time.Duration) ReadOption {
	return func(o *readOptions) { o.maxStaleness = d }
}

// WithServed makes Get fill s with how the read was served.
func WithServed(s *Served) ReadOption {
	return func(o *readOptions) { o.served = s }
}

// Served says how a read was served: the level (Linearizable when a
// weaker read fell back to the leader), the node ID whose replica served
// it, and for stale reads the proven staleness bound.
type Served struct {
	Consistency string
	Node        uint64
	Staleness   time.Duration
}

// session is the Client's session token; every reply's token is merged in.
type session struct {
	mu    sync.Mutex
	token string
}

func (s *session) get() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.token
}

// observe merges a reply's token (a malformed one, which a server never
// sends, is ignored).
func (s *session) observe(tok string) {
	if tok == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if m, err := kv.MergeSessionTokens(s.token, tok); err == nil {
		s.token = m
	}
}

func (s *session) observeMD(md metadata.MD) {
	for _, tok := range md.Get("cairn-session") {
		s.observe(tok)
	}
}

// SessionToken returns the Client's session token, to hand a session to
// another Client (SetSessionToken) or process.
func (c *Client) SessionToken() string { return c.session.get() }

// SetSessionToken merges tok (from SessionToken or a Cairn-Session
// header) into the Client's session.
func (c *Client) SetSessionToken(tok string) error {
	if _, err := kv.DecodeSessionToken(tok); err != nil {
		return newError("invalid_argument", err.Error(), "")
	}
	c.session.observe(tok)
	return nil
}
