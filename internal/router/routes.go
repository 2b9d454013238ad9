package router

import (
	"context"
	"slices"
	"time"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/kv"
)

// Client routing (Cluster.Routes).
//
// The Go client routes a key's request straight to the node leading its
// range instead of letting a node forward it (one network hop and one
// node's work less per request). Routes tells it where a table's keys
// live: the catalog's ranges of the table, each with the leader this node
// knows (its own replica's view, else the leader it last forwarded to,
// else the one the coordinator heard in heartbeats), and the client
// addresses of the nodes holding them (reported in heartbeats, so a node
// that restarts on another address is found again).
//
// The answer is a hint, never a promise: a range may have split or its
// leader moved since. Every node still serves every request (forwarding),
// so a stale route costs a hop, never a wrong answer; replies name the
// node that served them and the client refreshes when that is not the
// node it chose.

// routesStatusTimeout bounds the wait for the coordinator's view (node
// addresses and the leaders of ranges not held here).
const routesStatusTimeout = time.Second

var _ kv.RouteReader = (*Router)(nil)

// Routes implements kv.RouteReader.
func (rt *Router) Routes(ctx context.Context, req *cairnpb.RoutesRequest) (*cairnpb.RoutesResponse, error) {
	ctx, cancel := rt.withTimeout(ctx)
	defer cancel()
	t, err := rt.table(ctx, req.Table)
	if err != nil {
		return nil, err
	}
	cctx, ccancel := context.WithTimeout(ctx, routesStatusTimeout)
	cs := rt.coordinatorStatus(cctx)
	ccancel()
	reported := map[uint64]uint64{} // range ID -> leader, as the coordinator heard
	addrs := map[uint64]string{}    // node ID -> client address
	if cs != nil {
		for _, r := range cs.Ranges {
			reported[r.Id] = r.Leader
		}
		for _, n := range cs.Nodes {
			addrs[n.Id] = n.ClientAddress
		}
	}
	addrs[rt.store.NodeID()] = rt.opts.ClientAddress
	out := &cairnpb.RoutesResponse{Partitioning: t.Partitioning}
	var holders []uint64
	for _, d := range t.Ranges {
		out.Ranges = append(out.Ranges, &cairnpb.RangeStatus{Id: d.Id, Table: t.Name, Start: d.Start, End: d.End,
			Replicas: d.Replicas, Learners: d.Learners, Leader: rt.knownLeader(d.Id, reported[d.Id]), Generation: d.Generation})
		holders = append(holders, d.Replicas...)
		holders = append(holders, d.Learners...)
	}
	slices.Sort(holders)
	for _, id := range slices.Compact(holders) {
		out.Nodes = append(out.Nodes, &cairnpb.NodeStatus{Id: id, ClientAddress: addrs[id]})
	}
	return out, nil
}

// knownLeader is the leader of a range as this node knows it: its own
// replica's view, else the node it last forwarded to, else reported.
func (rt *Router) knownLeader(rangeID, reported uint64) uint64 {
	if r := rt.store.Replica(keys.RangeID(rangeID)); r != nil {
		if l := r.Leader(); l != 0 {
			return l
		}
	}
	if l, ok := rt.leaders.Load(keys.RangeID(rangeID)); ok {
		return l.(uint64)
	}
	return reported
}
