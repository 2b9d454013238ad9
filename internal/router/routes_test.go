// Goal: Cluster.Routes tells a client where a table's keys live (ranges
// in key order with their leaders, and the client addresses of the nodes
// holding them); writes name the node that executed them and reads the
// range's leader, so that a client routing by key can tell a stale route.
// Method: one real node (ttl_test.go's environment).
package router

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/keys/hashkey"
	"github.com/cairn-db/cairn/internal/kv"
)

func TestRoutes(t *testing.T) {
	e := newTTLEnv(t)
	e.rt.opts.ClientAddress = "127.0.0.1:7379"
	ctx := context.Background()
	resp, err := e.rt.Routes(ctx, &cairnpb.RoutesRequest{Table: "default"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Partitioning == "hash" || len(resp.Ranges) != 1 || resp.Ranges[0].Leader != 1 || len(resp.Nodes) != 1 ||
		resp.Nodes[0].Id != 1 || resp.Nodes[0].ClientAddress != "127.0.0.1:7379" {
		t.Fatalf("routes of default: %v", resp)
	}

	createHash(t, e.rt, "h4", 4)
	resp, err = e.rt.Routes(ctx, &cairnpb.RoutesRequest{Table: "h4"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Partitioning != "hash" || len(resp.Ranges) != 4 {
		t.Fatalf("routes of h4: %v", resp)
	}
	bounds := hashkey.InitialBounds(4)
	for i, r := range resp.Ranges {
		if i > 0 && !bytes.Equal(r.Start, bounds[i-1]) || r.Leader != 1 || len(r.Replicas) != 1 {
			t.Fatalf("range %d of h4: %v", i, r)
		}
	}

	if _, err := e.rt.Routes(ctx, &cairnpb.RoutesRequest{Table: "nope"}); !errors.Is(err, kv.ErrTableNotFound) {
		t.Fatalf("routes of a missing table: %v", err)
	}

	put, err := e.rt.Put(ctx, &cairnpb.PutRequest{Table: "h4", Key: []byte("k"), Value: []byte("v")})
	if err != nil || put.ServedBy != 1 {
		t.Fatalf("put: %v, %v; want served by node 1", put, err)
	}
	get, err := e.rt.Get(ctx, &cairnpb.GetRequest{Table: "h4", Key: []byte("k")})
	if err != nil || get.ServedBy != 1 || get.Leader != 1 {
		t.Fatalf("get: %v, %v; want served by node 1, leader 1", get, err)
	}
	del, err := e.rt.Delete(ctx, &cairnpb.DeleteRequest{Table: "h4", Key: []byte("k")})
	if err != nil || del.ServedBy != 1 {
		t.Fatalf("delete: %v, %v; want served by node 1", del, err)
	}
	if hb, _ := e.rt.Heartbeat(nil, 0); hb.ClientAddress != "127.0.0.1:7379" {
		t.Fatalf("heartbeat client address %q", hb.ClientAddress)
	}
}

// TestHeartbeatRates: a leader reports its range's applied entries and
// the requests it served a second (with load-based splits on), the
// coordinator's measure of a merge candidate's load; the first report,
// without earlier counters, has no rates.
func TestHeartbeatRates(t *testing.T) {
	e := newTTLEnv(t)
	e.rt.opts.SplitQPS = 1 << 30 // count requests, never split by load
	ctx := context.Background()
	find := func(hb *cairnpb.NodeHeartbeat, id uint64) *cairnpb.RangeHeartbeat {
		for _, rh := range hb.Ranges {
			if rh.RangeId == id {
				return rh
			}
		}
		t.Fatalf("range %d not in heartbeat %v", id, hb)
		return nil
	}
	routes, err := e.rt.Routes(ctx, &cairnpb.RoutesRequest{Table: "default"})
	if err != nil {
		t.Fatal(err)
	}
	id := routes.Ranges[0].Id
	hb, counts := e.rt.Heartbeat(nil, 0)
	if rh := find(hb, id); rh.WritesPerSec != 0 || rh.RequestsPerSec != 0 {
		t.Fatalf("first heartbeat has rates: %v", rh)
	}
	for i := range 10 {
		if _, err := e.rt.Put(ctx, &cairnpb.PutRequest{Table: "default", Key: []byte{'k', byte(i)}, Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.rt.Get(ctx, &cairnpb.GetRequest{Table: "default", Key: []byte{'k', byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	hb, _ = e.rt.Heartbeat(counts, 2)
	rh := find(hb, id)
	if !rh.Leader || rh.WritesPerSec < 5 || rh.RequestsPerSec < 10 {
		t.Fatalf("after 10 writes and 10 reads in 2 s: writes %v/s, requests %v/s; want at least 5 and 10", rh.WritesPerSec, rh.RequestsPerSec)
	}
}
