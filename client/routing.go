package client

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cairn-db/cairn/api/cairnpb"
)

// RoutingStats counts how the Client sent its keyed requests (Get, Put,
// Delete); see Client.RoutingStats.
type RoutingStats struct {
	// Direct requests went to the node the routes chose and were served
	// by it.
	Direct uint64
	// Redirected requests went to the node the routes chose but another
	// served them (it forwarded: the leader moved or the range split).
	Redirected uint64
	// Fallback requests went to a configured endpoint: routing is off, no
	// route was known, or the chosen node could not serve them.
	Fallback uint64
	// Refreshes counts the route lookups (Cluster.Routes calls) made.
	Refreshes uint64
}

// routingCounters are the atomic counters behind RoutingStats.
type routingCounters struct {
	direct, redirected, fallback, refreshes atomic.Uint64
}

// RoutingStats returns the counts of how keyed requests were sent since
// New.
func (c *Client) RoutingStats() RoutingStats {
	return RoutingStats{Direct: c.counters.direct.Load(), Redirected: c.counters.redirected.Load(),
		Fallback: c.counters.fallback.Load(), Refreshes: c.counters.refreshes.Load()}
}

// servedFunc runs one keyed call on an endpoint and returns the node that
// served it and the leader of the key's range as that node knew it (0:
// not reported).
type servedFunc func(ctx context.Context, ep *endpoint) (servedBy, leader uint64, err error)

// doKey runs a request on key of table: on the node the routes choose
// (the range's leader; anyReplica: any replica), else, or when that node
// cannot serve it and it provably did not execute, by do over the
// endpoints. See routes.go for the rules.
func (c *Client) doKey(ctx context.Context, kind callKind, table string, key []byte, anyReplica bool, fn servedFunc) error {
	if c.closed.Load() {
		return &Error{Code: "closed", Message: ErrClosed.Error(), kind: ErrClosed}
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.RequestTimeout)
		defer cancel()
	}
	if c.routes != nil {
		if t, ok := c.route(ctx, table, key, anyReplica); ok {
			if done, err := c.doRouted(ctx, kind, table, key, t, anyReplica, fn); done {
				return err
			}
		}
	}
	c.counters.fallback.Add(1)
	return c.do(ctx, kind, func(ctx context.Context, ep *endpoint) error {
		_, _, err := fn(ctx, ep)
		return err
	})
}

// route returns the node for a request on key of table. A table never
// looked up is looked up first (or its running lookup awaited), bounded by
// Config.DialTimeout; routes that are due are refreshed in the background
// while the old ones serve.
func (c *Client) route(ctx context.Context, table string, key []byte, anyReplica bool) (target, bool) {
	t, ok, refresh, missing := c.routes.lookup(table, key, anyReplica)
	if refresh && c.routes.beginRefresh(table) {
		if !missing {
			if !c.startBackground() {
				c.routes.finishRefresh(table, nil, false)
				return t, ok
			}
			go func() {
				defer c.bg.Done()
				ctx, cancel := context.WithTimeout(c.bgCtx, c.cfg.RequestTimeout)
				defer cancel()
				c.refreshRoutes(ctx, table)
			}()
			return t, ok
		}
		rctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
		defer cancel()
		c.refreshRoutes(rctx, table)
	} else if missing {
		ch := c.routes.pending(table)
		if ch == nil {
			return t, ok
		}
		timer := time.NewTimer(c.cfg.DialTimeout)
		defer timer.Stop()
		select {
		case <-ch:
		case <-timer.C:
			return t, ok
		case <-ctx.Done():
			return t, ok
		}
	} else {
		return t, ok
	}
	t, ok, _, _ = c.routes.lookup(table, key, anyReplica)
	return t, ok
}

// startBackground counts a background goroutine in c.bg unless the
// Client is closed.
func (c *Client) startBackground() bool {
	c.nodesMu.Lock()
	defer c.nodesMu.Unlock()
	if c.closed.Load() {
		return false
	}
	c.bg.Add(1)
	return true
}

// refreshRoutes asks the endpoints for table's routes and stores them;
// it must follow a true beginRefresh.
func (c *Client) refreshRoutes(ctx context.Context, table string) {
	c.counters.refreshes.Add(1)
	var resp *cairnpb.RoutesResponse
	var unimplemented bool
	err := c.do(ctx, read, func(ctx context.Context, ep *endpoint) (err error) {
		resp, err = ep.cluster.Routes(ctx, &cairnpb.RoutesRequest{Table: table})
		unimplemented = status.Code(err) == codes.Unimplemented
		return err
	})
	denied := unimplemented || errors.Is(err, ErrPermissionDenied) || errors.Is(err, ErrUnauthenticated)
	if err != nil {
		resp = nil
	}
	c.routes.finishRefresh(table, resp, denied)
}

// doRouted runs fn on the node t. done is false when the request was not
// served there and provably not executed (the failover rules of do): the
// caller sends it through the endpoints.
func (c *Client) doRouted(ctx context.Context, kind callKind, table string, key []byte, t target, anyReplica bool, fn servedFunc) (done bool, err error) {
	ep, err := c.nodeEndpoint(t.addr)
	if err != nil {
		c.routes.unreachable(table, t)
		return false, nil
	}
	var served, leader uint64
	callErr, failure := c.attempt(ctx, kind, ep, func(ctx context.Context, ep *endpoint) (err error) {
		served, leader, err = fn(ctx, ep)
		return err
	})
	switch {
	case failure != nil:
		if !errors.Is(failure, ErrTooStale) {
			c.routes.unreachable(table, t)
		}
		return false, nil
	case callErr != nil:
		return true, callErr
	case served == 0 || served == t.node:
		c.counters.direct.Add(1)
	default:
		c.counters.redirected.Add(1)
	}
	if !anyReplica && leader != 0 && leader != t.node {
		c.routes.servedElsewhere(table, key, t, leader)
	}
	return true, nil
}

// nodeEndpoint returns the connection to the node at addr: a configured
// endpoint of that address, else one made on first use and kept until
// Close, with the same credentials and TLS settings.
func (c *Client) nodeEndpoint(addr string) (*endpoint, error) {
	for _, ep := range c.endpoints {
		if ep.addr == addr {
			return ep, nil
		}
	}
	c.nodesMu.Lock()
	defer c.nodesMu.Unlock()
	if ep := c.nodes[addr]; ep != nil {
		return ep, nil
	}
	if c.closed.Load() {
		return nil, ErrClosed
	}
	ep, err := newEndpoint(addr, c.dialOpts)
	if err != nil {
		return nil, err
	}
	c.nodes[addr] = ep
	return ep, nil
}
