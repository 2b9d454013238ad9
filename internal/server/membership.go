package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/config"
	"github.com/cairn-db/cairn/internal/coord"
	"github.com/cairn-db/cairn/internal/kv"
	"github.com/cairn-db/cairn/internal/replica"
	"github.com/cairn-db/cairn/internal/router"
	"github.com/cairn-db/cairn/internal/transport"
)

// joinTimeout bounds how long a new node keeps asking to be admitted.
const joinTimeout = time.Minute

// join asks the members at cfg.Join, in turn, to admit this node; the
// meta leader records it under a new node ID. It returns the node's
// identity and the members it was told of.
func join(ctx context.Context, cfg config.Config, peerTLS *tls.Config, logger *slog.Logger) (*cairnpb.Node, []*cairnpb.Node, error) {
	ctx, cancel := context.WithTimeout(ctx, joinTimeout)
	defer cancel()
	opts := transport.DialOptions()
	if peerTLS != nil {
		opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(peerTLS)))
	} else {
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	var last error
	for attempt := 0; ; attempt++ {
		addr := cfg.Join[attempt%len(cfg.Join)]
		resp, err := joinOnce(ctx, addr, opts, &cairnpb.JoinRequest{Name: cfg.Name, PeerAddress: cfg.AdvertisePeer})
		if err == nil {
			logger.Info("joined the cluster", "via", addr, "node_id", resp.NodeId, "members", len(resp.Nodes))
			ident := &cairnpb.Node{Id: resp.NodeId, Name: cfg.Name, PeerAddress: cfg.AdvertisePeer, State: replica.NodeActive}
			return ident, resp.Nodes, nil
		}
		last = err
		if c := status.Code(err); c == codes.FailedPrecondition || c == codes.InvalidArgument {
			return nil, nil, fmt.Errorf("server: --join %s: %w", addr, err)
		}
		logger.Info("join: retrying", "via", addr, "err", err)
		select {
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("server: --join: not admitted within %v: %w", joinTimeout, last)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func joinOnce(ctx context.Context, addr string, opts []grpc.DialOption, req *cairnpb.JoinRequest) (*cairnpb.JoinResponse, error) {
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := cairnpb.NewPeerClient(conn).Join(cctx, req)
	if err != nil {
		return nil, err
	}
	if resp.NodeId == 0 {
		return nil, kv.Errorf(kv.ErrInternal, "join: no node ID in the reply")
	}
	return resp, nil
}

// Join admits a node: any member serves it, the meta leader decides.
func (p *peerService) Join(ctx context.Context, req *cairnpb.JoinRequest) (*cairnpb.JoinResponse, error) {
	n, err := p.rt.AddNode(ctx, req.Name, req.PeerAddress)
	if err != nil {
		return nil, toPeerStatus(err)
	}
	nodes := p.st.Nodes()
	nodes = append(nodes, n)
	return &cairnpb.JoinResponse{NodeId: n.Id, Nodes: nodes}, nil
}

// Heartbeat records a node's report on the meta leader, or passes it on
// to the leader this node knows (once).
func (p *peerService) Heartbeat(ctx context.Context, hb *cairnpb.NodeHeartbeat) (*cairnpb.HeartbeatReply, error) {
	if p.rt.IsMetaLeader() {
		p.coord.Heartbeat(hb)
		return &cairnpb.HeartbeatReply{RangeBytes: p.coord.RangeBytes()}, nil
	}
	if hb.Forwarded {
		return nil, toPeerStatus(kv.Errorf(kv.ErrNotLeader, "node %d does not lead the meta range", p.st.NodeID()))
	}
	leader := metaLeader(p.rt)
	c := p.tr.Client(leader)
	if leader == 0 || c == nil {
		return nil, toPeerStatus(kv.Errorf(kv.ErrUnavailable, "no meta leader known"))
	}
	hb.Forwarded = true
	return c.Heartbeat(ctx, hb)
}

// toPeerStatus maps a refusal to a gRPC code the joiner can tell from a
// transient failure.
func toPeerStatus(err error) error {
	switch {
	case errors.Is(err, kv.ErrConditionFailed):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, kv.ErrInvalidArgument):
		return status.Error(codes.InvalidArgument, err.Error())
	}
	return status.Error(codes.Unavailable, err.Error())
}

func metaLeader(rt *router.Router) uint64 {
	if r := rt.MetaReplica(); r != nil {
		return r.Leader()
	}
	return 0
}

// runHeartbeats reports this node to the coordinator every interval: to
// its own coordinator when it leads the meta range, else to the meta
// leader, else (a node that just joined knows no leader yet) to any peer,
// which passes it on.
func runHeartbeats(ctx context.Context, rt *router.Router, tr *transport.Transport, co *coord.Coordinator, interval time.Duration, logger *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var prev map[uint64]router.RangeCounts
	last := time.Now()
	next := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		hb, counts := rt.Heartbeat(prev, now.Sub(last).Seconds())
		prev, last = counts, now
		if rt.IsMetaLeader() {
			co.Heartbeat(hb)
			rt.SetRangeBytes(co.RangeBytes())
			continue
		}
		to := metaLeader(rt)
		if to == 0 || to == rt.NodeID() {
			peers := tr.Peers()
			if len(peers) == 0 {
				continue
			}
			ids := make([]uint64, 0, len(peers))
			for id := range peers {
				ids = append(ids, id)
			}
			next++
			to = ids[next%len(ids)]
		}
		c := tr.Client(to)
		if c == nil {
			continue
		}
		hctx, cancel := context.WithTimeout(ctx, interval)
		reply, err := c.Heartbeat(hctx, hb)
		cancel()
		if err != nil {
			logger.Debug("heartbeat", "to", to, "err", err)
			continue
		}
		rt.SetRangeBytes(reply.RangeBytes)
	}
}
