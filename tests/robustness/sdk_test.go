package robustness

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/cairn-db/cairn/client"
)

// sdkClient sends a workload client's requests through the Go SDK
// (package client, gRPC on the nodes' client port) with every node as an
// endpoint: the SDK picks the node and fails over by its own rules, so
// this also checks that its failover never repeats a write that may have
// happened. Operations are recorded like the HTTP ones; Node is the
// endpoint the SDK reported, or "sdk" when it does not say.
type sdkClient struct {
	c     *client.Client
	h     *History
	table string
}

func newSDKClient(h *History, c *Cluster, table string, rng *rand.Rand) (*sdkClient, error) {
	var eps []string
	for _, n := range c.Nodes {
		eps = append(eps, n.Client)
	}
	rng.Shuffle(len(eps), func(i, j int) { eps[i], eps[j] = eps[j], eps[i] })
	sc, err := client.New(client.Config{Endpoints: eps, DialTimeout: time.Second, RequestTimeout: clientTimeout})
	if err != nil {
		return nil, err
	}
	return &sdkClient{c: sc, h: h, table: table}, nil
}

func (s *sdkClient) close() { _ = s.c.Close() }

// classifySDK sets o.Outcome from an SDK error, by the SDK's contract:
// ErrUnavailable means not executed, ErrTimeout (and a canceled call)
// outcome unknown.
func classifySDK(o *Op, err error) {
	if err == nil {
		o.Outcome = outOK
		return
	}
	o.Err = shorten(err.Error(), 200)
	var e *client.Error
	if errors.As(err, &e) {
		o.Code = e.Code
		if e.Endpoint != "" {
			o.Node = "sdk:" + e.Endpoint
		}
	}
	switch {
	case errors.Is(err, client.ErrNotFound):
		o.Outcome = outNotFound
	case errors.Is(err, client.ErrConditionFailed):
		o.Outcome = outCondition
	case errors.Is(err, client.ErrUnavailable):
		o.Outcome = outFailed
	case errors.Is(err, client.ErrTimeout), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		o.Outcome = outUnknown
	default:
		o.Outcome = outUnknown
		o.Err = "unexpected reply: " + o.Err
	}
}

func sdkConds(o *Op) []client.WriteOption {
	var opts []client.WriteOption
	if o.IfMatch != 0 {
		opts = append(opts, client.IfVersion(o.IfMatch))
	}
	if o.IfNoneMatch {
		opts = append(opts, client.IfAbsent())
	}
	return opts
}

func (s *sdkClient) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), clientTimeout)
}

func (s *sdkClient) Put(o *Op) *Op {
	o.Kind, o.Node = "put", "sdk"
	ctx, cancel := s.ctx()
	defer cancel()
	o.Call = s.h.now()
	v, err := s.c.Put(ctx, s.table, []byte(o.Key), []byte(o.Value), sdkConds(o)...)
	o.Return = s.h.now()
	classifySDK(o, err)
	if o.Outcome == outOK {
		o.Version = v
	}
	s.h.add(o)
	return o
}

func (s *sdkClient) Delete(o *Op) *Op {
	o.Kind, o.Node = "delete", "sdk"
	ctx, cancel := s.ctx()
	defer cancel()
	o.Call = s.h.now()
	v, err := s.c.Delete(ctx, s.table, []byte(o.Key), sdkConds(o)...)
	o.Return = s.h.now()
	classifySDK(o, err)
	if o.Outcome == outOK {
		o.Version = v
	}
	s.h.add(o)
	return o
}

func (s *sdkClient) Get(o *Op) *Op {
	o.Kind, o.Node = "get", "sdk"
	ctx, cancel := s.ctx()
	defer cancel()
	o.Call = s.h.now()
	val, v, err := s.c.Get(ctx, s.table, []byte(o.Key))
	o.Return = s.h.now()
	classifySDK(o, err)
	if o.Outcome == outOK {
		o.Read, o.Version = string(val), v
	}
	s.h.add(o)
	return o
}

func (s *sdkClient) List(o *Op) *Op {
	o.Kind, o.Node = "list", "sdk"
	ctx, cancel := s.ctx()
	defer cancel()
	opts := client.ListOptions{Prefix: []byte(o.Prefix), Limit: o.Limit, Values: true}
	if o.After != "" {
		opts.PageToken = pageToken(o.After)
	}
	o.Call = s.h.now()
	page, err := s.c.List(ctx, s.table, opts)
	o.Return = s.h.now()
	classifySDK(o, err)
	if o.Outcome == outOK {
		for _, it := range page.Items {
			o.Items = append(o.Items, ListItem{Key: string(it.Key), Value: string(it.Value), Version: it.Version})
		}
		o.More = page.NextPageToken != ""
		if len(o.Items) > o.Limit || (o.More && len(o.Items) == 0) {
			o.Outcome, o.Err = outUnknown, "unexpected reply: bad page"
		}
	}
	s.h.add(o)
	return o
}
