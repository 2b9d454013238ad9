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
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/config"
	"github.com/cairn-db/cairn/internal/frontend/grpcapi"
	"github.com/cairn-db/cairn/internal/frontend/httpapi"
	"github.com/cairn-db/cairn/internal/frontend/respapi"
	"github.com/cairn-db/cairn/internal/hlc"
	"github.com/cairn-db/cairn/internal/metrics"
	"github.com/cairn-db/cairn/internal/router"
	"github.com/cairn-db/cairn/internal/storage"
	"github.com/cairn-db/cairn/internal/store"
	"github.com/cairn-db/cairn/internal/transport"
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
func Run(ctx context.Context, cfg config.Config) error {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	if len(cfg.Join) > 0 {
		return errors.New("server: --join (adding a node to a running cluster) is not supported yet; start all members with the same --initial-cluster")
	}
	logger := NewLogger(cfg).With("node", cfg.Name)
	cluster := cfg.InitialCluster
	if len(cluster) == 0 {
		cluster = map[string]string{cfg.Name: cfg.AdvertisePeer}
	}

	// Bind the listeners first: a port in use is the commonest start-up
	// error and must not leave a half-bootstrapped data dir behind.
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
	nodeID, err := store.Bootstrap(db, cfg.Name, InitialNodes(cluster))
	if err != nil {
		return err
	}
	logger = logger.With("node_id", nodeID)
	clock := hlc.New(nil)
	st, err := store.New(db, store.Options{
		NodeID: nodeID, TickInterval: cfg.TickInterval, ElectionTicks: cfg.ElectionTicks,
		HeartbeatTicks: cfg.HeartbeatTicks, LogKeepEntries: cfg.LogKeepEntries, Logger: logger, Clock: clock,
	})
	if err != nil {
		return err
	}
	tr := transport.New(nodeID, st.TransportCallbacks(), logger)
	defer tr.Close()
	for _, n := range st.Nodes() {
		if err := tr.AddPeer(n.Id, n.PeerAddress); err != nil {
			return err
		}
	}
	st.SetTransport(tr)
	st.Start()
	defer st.Stop()

	limits := cfg.KVLimits()
	rt := router.New(st, tr, router.Options{Limits: limits, RequestTimeout: cfg.RequestTimeout, Clock: clock, Logger: logger})
	splitCtx, stopSplitter := context.WithCancel(context.Background())
	splitterDone := make(chan struct{})
	go func() {
		defer close(splitterDone)
		rt.RunSplitter(splitCtx, router.SplitterOptions{Interval: time.Second, SplitSizeBytes: cfg.SplitSizeBytes})
	}()
	defer func() { stopSplitter(); <-splitterDone }()
	expCtx, stopExpirer := context.WithCancel(context.Background())
	expDone := make(chan struct{})
	go func() { defer close(expDone); rt.RunExpirer(expCtx, expireInterval) }()
	defer func() { stopExpirer(); <-expDone }()

	peerSrv := grpc.NewServer(grpc.MaxRecvMsgSize(transport.MaxMessageBytes), grpc.MaxSendMsgSize(transport.MaxMessageBytes),
		// Peers ping every 2 s when idle (transport.DialOptions); the
		// default policy (5 min) would answer with GOAWAY and cut them off.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: time.Second, PermitWithoutStream: true}),
		// A peer that connects and goes silent must not hold a connection
		// in its handshake for gRPC's default 120 s: Stop waits for those.
		grpc.ConnectionTimeout(5*time.Second))
	cairnpb.RegisterPeerServer(peerSrv, &peerService{tr: tr, rt: rt})
	grpcDuration := registerMetrics(logger, st, db)
	clientGRPC := grpc.NewServer(grpc.MaxRecvMsgSize(limits.MaxValueBytes+limits.MaxKeyBytes+64<<10),
		grpc.ChainUnaryInterceptor(metrics.UnaryServerInterceptor(grpcDuration)))
	grpcapi.Register(clientGRPC, rt, grpcapi.WithLimits(limits))
	reflection.Register(clientGRPC)
	httpHandler := httpapi.New(rt, httpapi.Options{Limits: limits, Logger: logger})

	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
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
		respSrv = respapi.New(rt, respapi.Options{Limits: limits, NodeName: cfg.Name, Logger: logger})
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

// registerMetrics registers the node's collectors with the default
// Prometheus registry (which /metrics serves) and returns the gRPC latency
// histogram. A collector already registered (a second node in one test
// process) is reused.
func registerMetrics(logger *slog.Logger, st *store.Store, db *pebble.DB) *prometheus.HistogramVec {
	grpcDuration := metrics.GRPCDuration()
	cs := []prometheus.Collector{metrics.NewNodeCollector(st, db), grpcDuration}
	cs = append(cs, respapi.Collectors()...)
	cs = append(cs, router.Collectors()...)
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
	tr *transport.Transport
	rt *router.Router
}

func (p *peerService) Raft(st cairnpb.Peer_RaftServer) error { return p.tr.HandleStream(st) }

func (p *peerService) Forward(ctx context.Context, req *cairnpb.Request) (*cairnpb.Response, error) {
	return p.rt.Forward(ctx, req), nil
}
