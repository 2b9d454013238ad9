// Package server assembles a node: it opens storage, bootstraps or loads
// the node's identity, starts the peer transport and the store's driver,
// and serves the front ends (gRPC and HTTP on --listen, the Redis
// protocol on --listen-resp, the peer API on --listen-peer). Run blocks
// until its context ends, then stops everything in reverse order: front
// ends first (no new requests), then the driver, then the transport, then
// Pebble.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/auth"
	"github.com/cairn-db/cairn/internal/config"
	"github.com/cairn-db/cairn/internal/coord"
	"github.com/cairn-db/cairn/internal/frontend/grpcapi"
	"github.com/cairn-db/cairn/internal/frontend/httpapi"
	"github.com/cairn-db/cairn/internal/frontend/respapi"
	"github.com/cairn-db/cairn/internal/hlc"
	"github.com/cairn-db/cairn/internal/kv"
	"github.com/cairn-db/cairn/internal/metrics"
	"github.com/cairn-db/cairn/internal/replica"
	"github.com/cairn-db/cairn/internal/router"
	"github.com/cairn-db/cairn/internal/storage"
	"github.com/cairn-db/cairn/internal/store"
	"github.com/cairn-db/cairn/internal/transport"
	"github.com/cairn-db/cairn/internal/watch"
)

// InitialNodes turns an --initial-cluster map into node records. IDs are
// assigned by sorted name, so every node computes the same IDs whatever
// the order of the flag's entries.
func InitialNodes(cluster map[string]string) []*cairnpb.Node {
	names := make([]string, 0, len(cluster))
	for n := range cluster {
		names = append(names, n)
	}
	sort.Strings(names)
	nodes := make([]*cairnpb.Node, len(names))
	for i, n := range names {
		nodes[i] = &cairnpb.Node{Id: uint64(i + 1), Name: n, PeerAddress: cluster[n]}
	}
	return nodes
}

// NewLogger builds the node's slog logger from the config.
func NewLogger(cfg config.Config) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// Run runs a node until ctx ends.
func Run(ctx context.Context, cfg config.Config) (err error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := checkPeerProtected(cfg); err != nil {
		return err
	}
	logger := NewLogger(cfg).With("node", cfg.Name)
	cluster := cfg.InitialCluster
	if len(cluster) == 0 {
		cluster = map[string]string{cfg.Name: cfg.AdvertisePeer}
	}

	// Bind the listeners first: a port in use is the commonest start-up
	// error and must not leave a half-bootstrapped data dir behind.
	var clientTLS, peerServerTLS, peerClientTLS *tls.Config
	if cfg.CertFile != "" {
		if clientTLS, err = auth.ServerTLS(cfg.CertFile, cfg.KeyFile, cfg.CAFile); err != nil {
			return err
		}
	}
	if cfg.PeerCertFile != "" {
		if peerServerTLS, peerClientTLS, err = auth.PeerTLS(cfg.PeerCertFile, cfg.PeerKeyFile, cfg.PeerCAFile); err != nil {
			return err
		}
	}
	clientLn, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("server: listen %s: %w", cfg.Listen, err)
	}
	defer clientLn.Close()
	peerLn, err := net.Listen("tcp", cfg.ListenPeer)
	if err != nil {
		return fmt.Errorf("server: listen-peer %s: %w", cfg.ListenPeer, err)
	}
	defer peerLn.Close()
	var respLn net.Listener
	if cfg.ListenResp != "" {
		if respLn, err = net.Listen("tcp", cfg.ListenResp); err != nil {
			return fmt.Errorf("server: listen-resp %s: %w", cfg.ListenResp, err)
		}
		defer respLn.Close()
	}

	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("server: data dir: %w", err)
	}
	db, err := storage.Open(cfg.DataDir, storage.Options{})
	if err != nil {
		return err
	}
	defer db.Close()
	// A new data dir with --join asks the cluster for a node ID; one with
	// an identity restarts as that node (--join is then ignored).
	var joinNodes []*cairnpb.Node
	ident, err := store.Identity(db)
	if err != nil {
		return err
	}
	if ident == nil && len(cfg.Join) > 0 {
		ident, joinNodes, err = join(ctx, cfg, peerClientTLS, logger)
		if err != nil {
			return err
		}
		if err := store.BootstrapJoined(db, ident); err != nil {
			return err
		}
	}
	nodeID, err := store.Bootstrap(db, cfg.Name, InitialNodes(cluster))
	if err != nil {
		return err
	}
	logger = logger.With("node_id", nodeID)
	clock := hlc.New(nil)
	// The transport learns of members as the catalog does (a node joins).
	var trRef atomic.Pointer[transport.Transport]
	addPeers := func(nodes []*cairnpb.Node) {
		tr := trRef.Load()
		if tr == nil {
			return
		}
		for _, n := range nodes {
			if replica.NodeState(n) == replica.NodeRemoved {
				continue
			}
			if err := tr.AddPeer(n.Id, n.PeerAddress); err != nil {
				logger.Warn("transport: add peer", "node", n.Id, "err", err)
			}
		}
	}
	st, err := store.New(db, store.Options{
		NodeID: nodeID, TickInterval: cfg.TickInterval, ElectionTicks: cfg.ElectionTicks,
		HeartbeatTicks: cfg.HeartbeatTicks, LogKeepEntries: cfg.LogKeepEntries, Logger: logger, Clock: clock,
		HistoryVersions: historyVersions(cfg.HistoryVersions), HistoryRetention: cfg.HistoryRetention,
		OnNodes: addPeers, Quiesce: cfg.Quiesce,
	})
	if err != nil {
		return err
	}
	tr := transport.New(nodeID, st.TransportCallbacks(), logger)
	defer tr.Close()
	if peerClientTLS != nil {
		tr.SetCredentials(credentials.NewTLS(peerClientTLS))
	}
	tr.SetDialOptions(grpc.WithChainUnaryInterceptor(auth.ForwardInterceptor(), transport.DeadlineClientInterceptor()),
		grpc.WithStreamInterceptor(auth.ForwardStreamInterceptor()))
	trRef.Store(tr)
	addPeers(joinNodes)
	addPeers(st.Nodes())
	st.SetTransport(tr)
	st.Start()
	defer st.Stop()

	limits := cfg.KVLimits()
	rt := router.New(st, tr, router.Options{Limits: limits, RequestTimeout: cfg.RequestTimeout, Clock: clock, Logger: logger,
		Watch:           watch.Options{Buffer: cfg.WatchBuffer},
		TxnLimits:       router.TxnLimits{MaxOps: cfg.TxnMaxKeys, MaxBytes: int(cfg.TxnMaxBytes), MaxDuration: cfg.TxnMaxDuration},
		DefaultReplicas: cfg.DefaultReplicas, SplitQPS: cfg.SplitQPS, ClientAddress: cfg.Advertise})
	// The coordinator plans while this node leads the meta range; every
	// node reports to it.
	co := coord.New(rt, coord.Options{Interval: cfg.HeartbeatInterval, DeadAfter: cfg.DeadNodeTimeout,
		DefaultReplicas: cfg.DefaultReplicas, Logger: logger,
		MergeSizeBytes: cfg.MergeSizeBytes, MergeQPS: cfg.MergeQPS, MergeDelay: cfg.MergeDelay, SplitSizeBytes: cfg.SplitSizeBytes})
	rt.SetCoordinator(co)
	coordCtx, stopCoord := context.WithCancel(context.Background())
	coordDone := make(chan struct{}, 2)
	go func() { defer func() { coordDone <- struct{}{} }(); co.Run(coordCtx) }()
	go func() {
		defer func() { coordDone <- struct{}{} }()
		runHeartbeats(coordCtx, rt, tr, co, cfg.HeartbeatInterval, logger)
	}()
	defer func() { stopCoord(); <-coordDone; <-coordDone }()
	splitCtx, stopSplitter := context.WithCancel(context.Background())
	splitterDone := make(chan struct{})
	go func() {
		defer close(splitterDone)
		rt.RunSplitter(splitCtx, router.SplitterOptions{Interval: time.Second, SplitSizeBytes: cfg.SplitSizeBytes,
			MergeSizeBytes: cfg.MergeSizeBytes, MergeQPS: cfg.MergeQPS, MergeDelay: cfg.MergeDelay})
	}()
	defer func() { stopSplitter(); <-splitterDone }()
	expCtx, stopExpirer := context.WithCancel(context.Background())
	expDone := make(chan struct{})
	go func() { defer close(expDone); rt.RunExpirer(expCtx, expireInterval) }()
	defer func() { stopExpirer(); <-expDone }()
	resolverCtx, stopResolver := context.WithCancel(context.Background())
	resolverDone := make(chan struct{})
	go func() { defer close(resolverDone); rt.RunTxnResolver(resolverCtx, txnResolveInterval) }()
	defer func() { stopResolver(); <-resolverDone }()

	// Auth: the node's view of users, roles and tokens follows its meta
	// replica (polled; a change is in force here within watchInterval).
	authn := auth.NewAuthenticator(auth.Options{Logger: logger})
	metaApplied := func() uint64 {
		if r := st.Replica(replica.MetaRangeID); r != nil {
			_, _, applied := r.Status()
			return applied
		}
		return 0
	}
	if err := authn.ReloadDB(db, metaApplied()); err != nil {
		return err
	}
	if err := checkProtected(cfg, authn.Enabled()); err != nil {
		return err
	}
	authn.SetProtected(!cfg.Insecure)
	watchCtx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	go authn.Watch(watchCtx, db, metaApplied, watchInterval)
	guard := auth.NewGuard(authn, rt)
	admin := auth.NewAdmin(authn, rt, func() error { return authn.ReloadDB(db, metaApplied()) }, auth.DefaultArgon2Params)

	peerOpts := []grpc.ServerOption{grpc.MaxRecvMsgSize(transport.MaxMessageBytes), grpc.MaxSendMsgSize(transport.MaxMessageBytes),
		// Peers ping every 2 s when idle (transport.DialOptions); the
		// default policy (5 min) would answer with GOAWAY and cut them off.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: time.Second, PermitWithoutStream: true}),
		// A peer that connects and goes silent must not hold a connection
		// in its handshake for gRPC's default 120 s: Stop waits for those.
		grpc.ConnectionTimeout(5 * time.Second),
		// A forwarded request that arrives after its sender gave up is
		// not executed (RELIABILITY.md #28).
		grpc.UnaryInterceptor(transport.DeadlineServerInterceptor(cfg.MaxClockOffset, nil))}
	if peerServerTLS != nil {
		peerOpts = append(peerOpts, grpc.Creds(credentials.NewTLS(peerServerTLS)))
	}
	peerSrv := grpc.NewServer(peerOpts...)
	cairnpb.RegisterPeerServer(peerSrv, &peerService{tr: tr, rt: rt, authn: authn, st: st, coord: co})
	grpcDuration := registerMetrics(logger, st, db)
	clientGRPC := grpc.NewServer(grpc.MaxRecvMsgSize(limits.MaxValueBytes+limits.MaxKeyBytes+64<<10),
		grpc.ChainUnaryInterceptor(metrics.UnaryServerInterceptor(grpcDuration), grpcapi.UnaryInterceptor(authn.GRPCContext)),
		grpc.ChainStreamInterceptor(grpcapi.StreamInterceptor(authn.GRPCContext)))
	grpcapi.Register(clientGRPC, guard, grpcapi.WithLimits(limits))
	grpcapi.RegisterWatch(clientGRPC, guard, grpcapi.WithLimits(limits))
	grpcapi.RegisterHistory(clientGRPC, guard, grpcapi.WithLimits(limits))
	grpcapi.RegisterAuth(clientGRPC, admin)
	grpcapi.RegisterBackup(clientGRPC, guard)
	reflection.Register(clientGRPC)
	httpHandler := httpapi.New(guard, httpapi.Options{Limits: limits, Logger: logger, Authenticate: authn.HTTPContext, Admin: admin,
		CheckClusterAdmin: guard.CheckClusterAdmin})

	var protocols http.Protocols
	protocols.SetHTTP1(true)
	if clientTLS != nil {
		protocols.SetHTTP2(true)
		clientTLS.NextProtos = []string{"h2", "http/1.1"}
		clientLn = tls.NewListener(clientLn, clientTLS)
		if respLn != nil {
			respLn = tls.NewListener(respLn, clientTLS.Clone())
		}
	} else {
		protocols.SetUnencryptedHTTP2(true)
	}
	httpSrv := &http.Server{
		Handler:           mux(clientGRPC, httpHandler),
		Protocols:         &protocols,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}

	errc := make(chan error, 3)
	go func() { errc <- peerSrv.Serve(peerLn) }()
	go func() { errc <- httpSrv.Serve(clientLn) }()
	var respSrv *respapi.Server
	if respLn != nil {
		respSrv = respapi.New(guard, respapi.Options{Limits: limits, NodeName: cfg.Name, Logger: logger, Auth: authn})
		go func() { errc <- respSrv.Serve(respLn) }()
	}
	logger.Info("cairn node started", "listen", cfg.Listen, "listen_peer", cfg.ListenPeer,
		"listen_resp", cfg.ListenResp, "data_dir", cfg.DataDir, "cluster_size", len(st.Nodes()))

	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case err := <-errc:
		logger.Error("listener failed", "err", err)
	}
	// Redis clients first: Close cancels their commands in flight and
	// waits for every connection, so none reaches the store after it stops.
	if respSrv != nil {
		respSrv.Close()
	}
	// Watch streams never end on their own: end them so that the drain
	// below waits only for requests.
	rt.StopWatches()
	// Drain client requests for a moment, then cut what is left (idle
	// connections that never sent a request would hold Shutdown for 5 s).
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := httpSrv.Shutdown(shutdownCtx); err != nil {
		_ = httpSrv.Close()
	}
	// Peer streams are long-lived, so a graceful stop would only wait for
	// other nodes to hang up: stop at once. Forwarded requests in flight
	// fail at their origin as unavailable or outcome unknown.
	peerSrv.Stop()
	return nil
}

// historyVersions maps the config's count (0: no history) to the store's
// (0: its default, negative: none).
func historyVersions(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// registerMetrics registers the node's collectors with the default
// Prometheus registry (which /metrics serves) and returns the gRPC latency
// histogram. A collector already registered (a second node in one test
// process) is reused.
func registerMetrics(logger *slog.Logger, st *store.Store, db *pebble.DB) *prometheus.HistogramVec {
	grpcDuration := metrics.GRPCDuration()
	cs := []prometheus.Collector{metrics.NewNodeCollector(st, db), grpcDuration}
	cs = append(cs, respapi.Collectors()...)
	cs = append(cs, router.Collectors()...)
	cs = append(cs, auth.Collectors()...)
	cs = append(cs, transport.Collectors()...)
	for i, c := range cs {
		if err := prometheus.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				if i == 1 {
					if h, ok := are.ExistingCollector.(*prometheus.HistogramVec); ok {
						grpcDuration = h
					}
				}
				continue
			}
			logger.Error("metrics: register", "err", err)
		}
	}
	return grpcDuration
}

// expireInterval is how often a node looks for due keys with a TTL in the
// ranges it leads (a get never returns an expired key in between: it
// expires it itself).
const expireInterval = 500 * time.Millisecond

// mux sends gRPC requests (HTTP/2 with a grpc content type) to the gRPC
// server and everything else to the HTTP API, so both share one port.
func mux(g *grpc.Server, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			g.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// peerService serves the Peer API.
type peerService struct {
	cairnpb.UnimplementedPeerServer
	tr    *transport.Transport
	rt    *router.Router
	authn *auth.Authenticator
	st    *store.Store
	coord *coord.Coordinator
}

func (p *peerService) Raft(st cairnpb.Peer_RaftServer) error { return p.tr.HandleStream(st) }

// Forward executes a request another node forwarded, after checking it
// against this node's own auth state with the principal the forwarding
// node attached (the peer channel is the only source of a principal; with
// --peer-cert it is mutually authenticated).
func (p *peerService) Forward(ctx context.Context, req *cairnpb.Request) (*cairnpb.Response, error) {
	if err := p.authn.CheckRequest(auth.PrincipalFromPeer(ctx), req); err != nil {
		return &cairnpb.Response{Error: &cairnpb.Error{Code: kv.Code(err), Message: err.Error()}}, nil
	}
	return p.rt.Forward(ctx, req), nil
}

// Watch serves a watch another node relays (it holds no replica of some
// of the watched keys), from this node's replicas only, after the same
// check as Forward. An error ends the stream with its kv code in the
// trailer (router.PeerStreamError reads it back).
func (p *peerService) Watch(req *cairnpb.WatchRequest, stream cairnpb.Peer_WatchServer) error {
	err := p.authn.CheckWatch(auth.PrincipalFromPeer(stream.Context()), req)
	if err == nil {
		err = p.rt.WatchLocal(stream.Context(), req, stream.Send)
	}
	if err == nil || stream.Context().Err() != nil {
		return err
	}
	stream.SetTrailer(metadata.Pairs(router.PeerStreamErrorKey, kv.Code(err)))
	return status.Error(codes.Unknown, err.Error())
}

// watchInterval is how often a node polls its meta replica for auth
// changes (token revocations, grants).
const watchInterval = 100 * time.Millisecond

// checkProtected is protected mode for the client listeners: with auth
// disabled, a listener reachable from other hosts would serve anyone.
func checkProtected(cfg config.Config, authEnabled bool) error {
	if cfg.Insecure || authEnabled {
		return nil
	}
	for _, l := range []struct{ flag, addr string }{{"listen", cfg.Listen}, {"listen-resp", cfg.ListenResp}} {
		if l.addr != "" && !auth.IsLoopback(l.addr) {
			return fmt.Errorf("server: protected mode: --%s %s is not a loopback address and auth is disabled, so anyone who can reach it could read and write every key. "+
				"Bind it to 127.0.0.1 and enable auth first (cairn user add root; cairn auth enable), or pass --insecure to serve without auth", l.flag, l.addr)
		}
	}
	return nil
}

// checkPeerProtected is protected mode for the peer listener: off
// loopback it needs mTLS, since the peer API trusts the principal of a
// forwarded request and carries every Raft message.
func checkPeerProtected(cfg config.Config) error {
	if cfg.Insecure || cfg.PeerCertFile != "" || auth.IsLoopback(cfg.ListenPeer) {
		return nil
	}
	return fmt.Errorf("server: protected mode: --listen-peer %s is not a loopback address and node-to-node TLS is off. "+
		"Give --peer-cert, --peer-key and --peer-ca (cairn cert ca; cairn cert node), or pass --insecure", cfg.ListenPeer)
}

// txnResolveInterval is how often a node scans the ranges it leads for
// intents of expired transactions (router.ResolveExpired).
const txnResolveInterval = time.Second
