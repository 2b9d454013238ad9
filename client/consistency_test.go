package client

// Goal: the Client carries the session token by itself: writes and reads
// (a not-found read too, whose token comes as gRPC header metadata) fold
// their tokens in, Session reads send it, other levels do not, and
// Served reports how a read was served.
// Method: a loopback gRPC server over the in-memory kv.Service, which
// answers a token of one range whose index counts the writes.

import (
	"context"
	"errors"
	"testing"

	"github.com/cairn-db/cairn/internal/kv"
)

func TestSessionTokenCarried(t *testing.T) {
	n := startNode(t)
	c := newClient(t, n.addr)
	ctx := context.Background()
	if c.SessionToken() != "" {
		t.Fatal("a new client has a session token")
	}
	if _, err := c.Put(ctx, "default", []byte("a"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	afterPut := c.SessionToken()
	tok, err := kv.DecodeSessionToken(afterPut)
	if err != nil || len(tok.Entries) != 1 || tok.Entries[0].Index != 11 {
		t.Fatalf("token after a put: %+v, %v", tok, err)
	}
	var served Served
	if _, _, err := c.Get(ctx, "default", []byte("a"), WithConsistency(Session), WithServed(&served)); err != nil {
		t.Fatal(err)
	}
	if n.svc.LastGetToken() != afterPut {
		t.Fatalf("session get sent %q, want %q", n.svc.LastGetToken(), afterPut)
	}
	if served.Consistency != Session || served.Node != 1 {
		t.Fatalf("served %+v", served)
	}
	if _, _, err := c.Get(ctx, "default", []byte("a"), WithConsistency(Stale), WithServed(&served)); err != nil || served.Consistency != Stale {
		t.Fatalf("stale get: %+v, %v", served, err)
	}
	if n.svc.LastGetToken() != "" {
		t.Fatal("a stale read sent the session token")
	}

	// A second client learns the position from a not-found read.
	c2 := newClient(t, n.addr)
	if _, err := c.Put(ctx, "default", []byte("b"), []byte("2")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c2.Get(ctx, "default", []byte("absent"), WithConsistency(Session)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get of an absent key: %v", err)
	}
	if tok, err := kv.DecodeSessionToken(c2.SessionToken()); err != nil || len(tok.Entries) != 1 || tok.Entries[0].Index != 12 {
		t.Fatalf("token after a miss: %+v, %v", tok, err)
	}
	if err := c2.SetSessionToken("junk"); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("SetSessionToken(junk): %v", err)
	}
	if err := c2.SetSessionToken(afterPut); err != nil || c2.SessionToken() == afterPut {
		t.Fatalf("SetSessionToken of an older token: %v, now %q", err, c2.SessionToken())
	}
	// A node answering too_stale is skipped for one that can serve.
	stale := startNode(t)
	stale.svc.SetFail(func(string, []byte) error { return kv.Errorf(kv.ErrTooStale, "no proof") })
	c3 := newClient(t, stale.addr, n.addr)
	if v, _, err := c3.Get(ctx, "default", []byte("a"), WithConsistency(Stale)); err != nil || string(v) != "1" {
		t.Fatalf("stale get past a too_stale node: %q, %v", v, err)
	}
	only := newClient(t, stale.addr)
	if _, _, err := only.Get(ctx, "default", []byte("a"), WithConsistency(Stale)); !errors.Is(err, ErrTooStale) {
		t.Fatalf("stale get from a too_stale node alone: %v, want ErrTooStale", err)
	}

	page, err := c.List(ctx, "default", ListOptions{Consistency: Session})
	if err != nil || len(page.Items) != 2 || page.Served.Consistency != Session {
		t.Fatalf("session list: %+v, %v", page, err)
	}
}
