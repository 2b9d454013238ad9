package respapi

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairn-db/cairn/internal/kv"
	"github.com/cairn-db/cairn/internal/resp"
)

// Backend is what the Redis front end needs of a node: the key-value
// service and atomic batches (MSET, MSETNX, EXEC). The router implements
// both.
type Backend interface {
	kv.Service
	kv.Batcher
}

// Defaults of Options. Each is a limit of the front end, checked at the
// edge; zero fields of Options take these.
const (
	// DefaultMaxConnections is Redis's maxclients default. Connection
	// MaxConnections+1 is answered "-ERR max number of clients reached"
	// and closed.
	DefaultMaxConnections = 10000
	// DefaultMaxOutputBufferBytes bounds the replies one connection may
	// have buffered (and the values one command may hold in memory), at
	// least 4 times the value limit. A connection over it is closed.
	DefaultMaxOutputBufferBytes = 64 << 20
	// DefaultWriteTimeout: a client that does not take its replies within
	// this time (it never reads) is disconnected.
	DefaultWriteTimeout = 30 * time.Second
	// DefaultPartialCommandTimeout: a command whose first byte arrived must
	// arrive whole within this time, or the connection is closed.
	DefaultPartialCommandTimeout = 30 * time.Second
	// DefaultMaxArgs bounds the arguments of one command.
	DefaultMaxArgs = 1 << 16
	// DefaultMaxQueuedCommands bounds the commands queued in one MULTI.
	DefaultMaxQueuedCommands = 10000
	// DefaultMaxWatchedKeys bounds the keys one connection watches; EXEC
	// turns them into batch operations, so it is kv.MaxBatchOps.
	DefaultMaxWatchedKeys = kv.MaxBatchOps
	// bulkSlackBytes is added to the largest key or value to get the
	// largest bulk string the reader accepts: a value a little over the
	// limit gets a clear error reply; a much larger one is a protocol
	// error that closes the connection.
	bulkSlackBytes = 64 << 10
	// flushBytes: replies are written out when this much is buffered, or
	// when no further command is buffered (the end of a pipeline).
	flushBytes = 64 << 10
	// keepBufferBytes: buffers grown past this are released after use.
	keepBufferBytes = 64 << 10
)

// Options configure a Server. The zero value works: limits default to
// kv.DefaultLimits and the Default* constants.
type Options struct {
	// Limits are the key and value limits (MaxKeyBytes, MaxValueBytes) and
	// the List page limit (SCAN COUNT is capped at MaxListLimit).
	Limits kv.Limits
	// MaxConnections bounds concurrent client connections.
	MaxConnections int
	// MaxOutputBufferBytes bounds each connection's buffered replies.
	MaxOutputBufferBytes int
	// WriteTimeout bounds the wait for a client to take its replies.
	WriteTimeout time.Duration
	// PartialCommandTimeout bounds the arrival of a started command.
	PartialCommandTimeout time.Duration
	// IdleTimeout closes a connection that sends nothing for this long;
	// 0 (the default, as Redis's "timeout 0") never does.
	IdleTimeout time.Duration
	// MaxArgs bounds the arguments of one command.
	MaxArgs int
	// MaxQueuedCommands bounds the commands of one MULTI.
	MaxQueuedCommands int
	// MaxWatchedKeys bounds the keys one connection watches.
	MaxWatchedKeys int
	// NodeName is reported by INFO.
	NodeName string
	// Logger logs panics, dropped connections and internal errors
	// (default slog.Default()).
	Logger *slog.Logger
	// Auth, when set, backs AUTH and HELLO AUTH with the cluster's users;
	// while it reports auth enabled, every command but AUTH, HELLO and
	// QUIT needs an authenticated connection (-NOAUTH).
	Auth Authenticator
}

// Authenticator is what the Redis front end needs of internal/auth.
type Authenticator interface {
	Enabled() bool
	UserExists(name string) bool
	// ProtectedRefuses reports whether protected mode refuses a client at
	// addr (auth disabled, client not on loopback).
	ProtectedRefuses(addr string) bool
	// CertContext returns parent carrying the user named by the verified
	// client certificate of a TLS connection, or false.
	CertContext(parent context.Context, cs tls.ConnectionState) (context.Context, bool)
	// PasswordContext returns parent carrying the authenticated user, or
	// an unauthenticated error.
	PasswordContext(parent context.Context, user, password, addr string) (context.Context, error)
}

// EnsureDefaults fills zero fields with their defaults.
func (o *Options) EnsureDefaults() {
	d := kv.DefaultLimits
	if o.Limits.MaxKeyBytes <= 0 {
		o.Limits.MaxKeyBytes = d.MaxKeyBytes
	}
	if o.Limits.MaxValueBytes <= 0 {
		o.Limits.MaxValueBytes = d.MaxValueBytes
	}
	if o.Limits.MaxListLimit <= 0 {
		o.Limits.MaxListLimit = d.MaxListLimit
	}
	if o.Limits.DefaultListLimit <= 0 {
		o.Limits.DefaultListLimit = d.DefaultListLimit
	}
	if o.MaxConnections <= 0 {
		o.MaxConnections = DefaultMaxConnections
	}
	if o.MaxOutputBufferBytes <= 0 {
		o.MaxOutputBufferBytes = max(DefaultMaxOutputBufferBytes, 4*o.Limits.MaxValueBytes)
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.PartialCommandTimeout <= 0 {
		o.PartialCommandTimeout = DefaultPartialCommandTimeout
	}
	if o.MaxArgs <= 0 {
		o.MaxArgs = DefaultMaxArgs
	}
	if o.MaxQueuedCommands <= 0 {
		o.MaxQueuedCommands = DefaultMaxQueuedCommands
	}
	if o.MaxWatchedKeys <= 0 {
		o.MaxWatchedKeys = DefaultMaxWatchedKeys
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// readerLimits derives the protocol limits from the data limits: the
// largest bulk string is the largest key or value plus slack, the largest
// command what one atomic batch may carry (kv.Limits.ValidateBatch) plus
// slack for its keys and the command name.
func (o *Options) readerLimits() resp.Limits {
	bulk := max(o.Limits.MaxKeyBytes, o.Limits.MaxValueBytes) + bulkSlackBytes
	return resp.Limits{
		MaxBulkBytes:   bulk,
		MaxElements:    o.MaxArgs,
		MaxInlineBytes: 64 << 10,
		MaxDepth:       1,
		MaxFrameBytes:  16*o.Limits.MaxValueBytes + bulk + o.MaxArgs*8,
	}
}

// Server serves the Redis protocol on listeners. Create it with New, run
// Serve on a listener (in its own goroutine), stop it with Close.
type Server struct {
	backend Backend
	opts    Options
	log     *slog.Logger
	limits  resp.Limits
	started time.Time

	// ctx is the parent of every backend call; Close cancels it.
	ctx    context.Context
	cancel context.CancelFunc

	rmw     *combiner
	cursors *cursorTable
	nextID  atomic.Uint64
	stats   struct {
		connections atomic.Uint64 // accepted, ever
		rejected    atomic.Uint64 // refused at MaxConnections
		commands    atomic.Uint64 // dispatched
	}

	// wg counts the goroutines of Serve and of connections; Close waits.
	wg sync.WaitGroup
	mu struct {
		sync.Mutex
		closed    bool
		listeners map[net.Listener]struct{}
		conns     map[*conn]struct{}
	}
}

// New returns a Server over backend.
func New(backend Backend, opts Options) *Server {
	opts.EnsureDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		backend: backend,
		opts:    opts,
		log:     opts.Logger,
		limits:  opts.readerLimits(),
		started: time.Now(),
		ctx:     ctx,
		cancel:  cancel,
		cursors: newCursorTable(maxScanCursors),
	}
	s.rmw = &combiner{backend: backend, queues: map[rmwKey]*rmwQueue{}, log: s.log}
	s.mu.listeners = map[net.Listener]struct{}{}
	s.mu.conns = map[*conn]struct{}{}
	return s
}

// ErrServerClosed is returned by Serve after Close.
var ErrServerClosed = errors.New("respapi: server closed")

// Serve accepts connections on ln until Close; it always closes ln. It
// returns ErrServerClosed after Close, or the listener's error.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.mu.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.mu.listeners[ln] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	defer ln.Close()

	backoff := 5 * time.Millisecond
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Out of file descriptors and the like: wait, then go on.
			s.log.Warn("respapi: accept failed; retrying", "err", err, "backoff", backoff)
			select {
			case <-time.After(backoff):
			case <-s.ctx.Done():
				return ErrServerClosed
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		s.stats.connections.Add(1)
		c := newConn(s, nc)
		if !s.track(c) {
			s.reject(nc)
			continue
		}
		go c.serve()
	}
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.closed
}

// track registers c, unless the server is closed or full.
func (s *Server) track(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.closed || len(s.mu.conns) >= s.opts.MaxConnections {
		return false
	}
	s.mu.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.mu.conns, c)
}

// reject answers a connection over MaxConnections as Redis does, without
// waiting on the client, and closes it.
func (s *Server) reject(nc net.Conn) {
	s.stats.rejected.Add(1)
	_ = nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	_, _ = nc.Write([]byte("-ERR max number of clients reached\r\n"))
	nc.Close()
	s.log.Debug("respapi: connection refused: max number of clients reached", "remote", nc.RemoteAddr().String(),
		"max_connections", s.opts.MaxConnections)
}

// connCount returns the number of open client connections.
func (s *Server) connCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.mu.conns)
}

// snapshotConns returns the open connections (for CLIENT LIST).
func (s *Server) snapshotConns() []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*conn, 0, len(s.mu.conns))
	for c := range s.mu.conns {
		out = append(out, c)
	}
	return out
}

// Close stops accepting, cancels the backend calls in flight, closes every
// connection and waits until all of the server's goroutines have
// returned. A command in flight fails; its client sees the connection
// close. Close is idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.mu.closed {
		s.mu.Unlock()
		s.wg.Wait()
		return nil
	}
	s.mu.closed = true
	for ln := range s.mu.listeners {
		ln.Close()
	}
	for c := range s.mu.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	return nil
}
