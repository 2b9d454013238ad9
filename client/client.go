package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/cairn-db/cairn/api/cairnpb"
)

// Defaults of Config.
const (
	DefaultDialTimeout    = 5 * time.Second
	DefaultRequestTimeout = 10 * time.Second
)

// maxResponseBytes bounds one response. gRPC's default of 4 MiB would
// refuse values under the server's configurable limit (up to 64 MiB) and
// pages of large values.
const maxResponseBytes = 128 << 20

// maxReconnectDelay caps the backoff between attempts to reconnect to an
// endpoint, so that a node that comes back is used again soon.
const maxReconnectDelay = 2 * time.Second

// Config configures a Client.
type Config struct {
	// Endpoints are the client addresses (--listen or --advertise) of some
	// of the cluster's nodes, as host:port. At least one is required.
	Endpoints []string
	// DialTimeout bounds one attempt to connect to an endpoint (default
	// DefaultDialTimeout). After it the call fails over to the next one.
	DialTimeout time.Duration
	// RequestTimeout bounds a whole call, failovers included, when its
	// context has no deadline (default DefaultRequestTimeout).
	RequestTimeout time.Duration
	// User and Password, or Token, authenticate every call (HTTP-style
	// "authorization" metadata: Basic or Bearer). Without TLS they cross
	// the network in clear: use TLS off loopback.
	User     string
	Password string
	Token    string
	// TLS, when set, makes the connections use TLS with this config
	// (server verification against its RootCAs; a client certificate in
	// Certificates authenticates as the user named by its common name).
	TLS *tls.Config
	// DialOptions are added to the client's own gRPC dial options; the
	// last wins. For tests and for transport settings not covered here.
	DialOptions []grpc.DialOption
	// DisableKeyRouting makes Get, Put and Delete go to the endpoints (the
	// nodes forward them) instead of straight to the node leading the
	// key's range (package doc, "Routing and failover").
	DisableKeyRouting bool
}

// Client is a connection to a cairn cluster. It is safe for concurrent use;
// make one and share it.
type Client struct {
	cfg       Config
	dialOpts  []grpc.DialOption
	endpoints []*endpoint
	// preferred is the index of the endpoint that answered last; calls
	// start there.
	preferred atomic.Uint32
	closed    atomic.Bool
	session   session

	// routes caches where tables' keys live (nil: DisableKeyRouting).
	routes   *routeCache
	counters routingCounters
	// nodes are the connections to nodes found by routing that are not
	// configured endpoints, by client address. nodesMu also orders the
	// start of background refreshes (bg.Add) before Close's bg.Wait.
	nodesMu sync.Mutex
	nodes   map[string]*endpoint
	// bgCtx ends at Close; bg counts the background route refreshes.
	bgCtx    context.Context
	bgCancel context.CancelFunc
	bg       sync.WaitGroup
}

// endpoint is the connection to one node. Connections are made lazily, on
// the first call that needs them, and re-made after failures by gRPC.
type endpoint struct {
	addr    string
	cc      *grpc.ClientConn
	kv      cairnpb.KVClient
	tables  cairnpb.TablesClient
	cluster cairnpb.ClusterClient
	auth    cairnpb.AuthClient
	watch   cairnpb.WatchClient
	history cairnpb.HistoryClient
	backup  cairnpb.BackupClient
}

// New returns a Client for cfg. It does not connect: a node that is down is
// noticed by the first call.
func New(cfg Config) (*Client, error) {
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	var addrs []string
	for _, e := range cfg.Endpoints {
		if e = strings.TrimSpace(e); e != "" {
			addrs = append(addrs, e)
		}
	}
	if len(addrs) == 0 {
		return nil, newError("invalid_argument", "client: no endpoints", "")
	}
	creds := insecure.NewCredentials()
	if cfg.TLS != nil {
		creds = credentials.NewTLS(cfg.TLS)
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxResponseBytes)),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{
				BaseDelay:  100 * time.Millisecond,
				Multiplier: 1.6,
				Jitter:     0.2,
				MaxDelay:   maxReconnectDelay,
			},
			MinConnectTimeout: cfg.DialTimeout,
		}),
	}
	if cfg.Token != "" || cfg.User != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(newCallCredentials(cfg)))
	}
	opts = append(opts, cfg.DialOptions...)
	c := &Client{cfg: cfg, dialOpts: opts, nodes: map[string]*endpoint{}}
	c.bgCtx, c.bgCancel = context.WithCancel(context.Background())
	if !cfg.DisableKeyRouting {
		c.routes = newRouteCache(time.Now)
	}
	for _, addr := range addrs {
		ep, err := newEndpoint(addr, opts)
		if err != nil {
			_ = c.Close()
			return nil, newError("invalid_argument", fmt.Sprintf("client: endpoint %q: %v", addr, err), addr)
		}
		c.endpoints = append(c.endpoints, ep)
	}
	return c, nil
}

// newEndpoint makes the (lazy) connection to the node at addr.
func newEndpoint(addr string, opts []grpc.DialOption) (*endpoint, error) {
	cc, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, err
	}
	return &endpoint{
		addr:    addr,
		cc:      cc,
		kv:      cairnpb.NewKVClient(cc),
		tables:  cairnpb.NewTablesClient(cc),
		cluster: cairnpb.NewClusterClient(cc),
		auth:    cairnpb.NewAuthClient(cc),
		watch:   cairnpb.NewWatchClient(cc),
		history: cairnpb.NewHistoryClient(cc),
		backup:  cairnpb.NewBackupClient(cc),
	}, nil
}

// Close closes the connections. Calls after Close fail with ErrClosed.
func (c *Client) Close() error {
	c.nodesMu.Lock() // no background refresh starts after this
	c.closed.Store(true)
	c.nodesMu.Unlock()
	c.bgCancel()
	c.bg.Wait()
	var errs []error
	for _, ep := range c.endpoints {
		errs = append(errs, ep.cc.Close())
	}
	c.nodesMu.Lock()
	defer c.nodesMu.Unlock()
	for _, ep := range c.nodes {
		errs = append(errs, ep.cc.Close())
	}
	return errors.Join(errs...)
}

// Endpoints returns the configured endpoints.
func (c *Client) Endpoints() []string {
	out := make([]string, len(c.endpoints))
	for i, ep := range c.endpoints {
		out[i] = ep.addr
	}
	return out
}

// callKind says whether a call may be repeated on another endpoint after it
// was sent.
type callKind int

const (
	// read calls have no effect: repeat them after any Unavailable.
	read callKind = iota
	// write calls are repeated only when they were provably not executed.
	write
)

// do runs fn against the endpoints, starting at the preferred one and
// trying each at most once, by the failover rules of the package doc; when
// none could serve it, against the nodes found by routing (so that a
// Client whose configured endpoints are all down keeps working).
func (c *Client) do(ctx context.Context, kind callKind, fn func(context.Context, *endpoint) error) error {
	if c.closed.Load() {
		return &Error{Code: "closed", Message: ErrClosed.Error(), kind: ErrClosed}
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.RequestTimeout)
		defer cancel()
	}
	n := len(c.endpoints)
	start := int(c.preferred.Load()) % n
	var failures []*Error // one per endpoint that could not serve the call
	for i := range n {
		idx := (start + i) % n
		err, failure := c.attempt(ctx, kind, c.endpoints[idx], fn)
		if failure == nil {
			if err == nil {
				c.preferred.Store(uint32(idx))
				return nil
			}
			return err
		}
		failures = append(failures, failure)
	}
	for _, ep := range c.discovered() {
		err, failure := c.attempt(ctx, kind, ep, fn)
		if failure == nil {
			if err == nil {
				return nil
			}
			return err
		}
		failures = append(failures, failure)
	}
	return unavailable(failures)
}

// attempt runs fn on ep. failure is set when ep could not serve the call
// and another endpoint may be tried; otherwise err is the call's outcome.
func (c *Client) attempt(ctx context.Context, kind callKind, ep *endpoint, fn func(context.Context, *endpoint) error) (err, failure *Error) {
	if err := ep.waitReady(ctx, c.cfg.DialTimeout); err != nil {
		if ctx.Err() != nil {
			return contextError(ctx, ep.addr), nil
		}
		return nil, newError("unavailable", fmt.Sprintf("cannot connect to %s: %v", ep.addr, err), ep.addr)
	}
	callErr := fn(ctx, ep)
	if callErr == nil {
		return nil, nil
	}
	e, fromNode := fromStatus(callErr, ep.addr)
	if kind == read && errors.Is(e, ErrTooStale) {
		// Another node's replica may prove the bound.
		return nil, e
	}
	if !errors.Is(e, ErrUnavailable) {
		return e, nil
	}
	if kind == write && !(fromNode && notExecuted(e)) {
		// The request left on a ready connection that then failed: it
		// may have been executed.
		return newError("timeout", fmt.Sprintf("connection to %s failed after the request was sent; outcome unknown: %s", ep.addr, e.Message), ep.addr), nil
	}
	return nil, e
}

// discovered returns the connections to nodes found by routing that are
// not configured endpoints, in address order.
func (c *Client) discovered() []*endpoint {
	c.nodesMu.Lock()
	defer c.nodesMu.Unlock()
	out := make([]*endpoint, 0, len(c.nodes))
	for _, ep := range c.nodes {
		out = append(out, ep)
	}
	slices.SortFunc(out, func(a, b *endpoint) int { return strings.Compare(a.addr, b.addr) })
	return out
}

// unavailable is the error of a call no endpoint could serve: the one
// failure, or a summary of all.
func unavailable(failures []*Error) *Error {
	if len(failures) == 1 {
		return failures[0]
	}
	msgs := make([]string, len(failures))
	for i, f := range failures {
		msgs[i] = f.Message
	}
	last := failures[len(failures)-1]
	return newError(last.Code, fmt.Sprintf("no endpoint could serve the request: %s", strings.Join(msgs, "; ")), last.Endpoint)
}

// waitReady connects ep if needed and waits up to timeout for the
// connection to be ready. It fails at once if the last attempt to connect
// failed and gRPC has not yet made a new one.
func (ep *endpoint) waitReady(ctx context.Context, timeout time.Duration) error {
	s := ep.cc.GetState()
	if s == connectivity.Ready {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ep.cc.Connect()
	for {
		switch s = ep.cc.GetState(); s {
		case connectivity.Ready:
			return nil
		case connectivity.TransientFailure:
			return errors.New("connection failed")
		case connectivity.Shutdown:
			return ErrClosed
		}
		if !ep.cc.WaitForStateChange(ctx, s) {
			return fmt.Errorf("no connection after %v", timeout)
		}
	}
}

// contextError is the error of a call whose context ended.
func contextError(ctx context.Context, endpoint string) *Error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return newError("canceled", ctx.Err().Error(), endpoint)
	}
	return newError("timeout", "deadline exceeded before an endpoint answered", endpoint)
}
