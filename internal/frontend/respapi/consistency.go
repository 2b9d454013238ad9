package respapi

import (
	"context"
	"errors"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/kv"
)

// Read consistency over RESP (docs/design/reads.md, "Consistency
// levels"): CAIRN.CONSISTENCY linearizable|session|stale [max_staleness]
// sets the level of the connection's plain reads (GET, MGET, EXISTS,
// SCAN, ...). Reads inside MULTI/EXEC and of read-modify-write commands
// (INCR, SET ... GET) stay linearizable: their correctness rests on it.
// The connection keeps the session token: every reply's token, of writes
// (INCR and EXEC included) and reads alike, is merged in, so a session
// connection reads its own writes through any node.

// connLevel is the connection's read level.
type connLevel struct {
	consistency    string // "" is linearizable
	maxStalenessMs int64
}

// sessionToken is a connection's session token. Reads of one command may
// run in parallel (MGET), hence the lock.
type sessionToken struct {
	mu    sync.Mutex
	token string
}

func (s *sessionToken) get() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.token
}

func (s *sessionToken) observe(tok string) {
	if tok == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if tok == s.token {
		return // a read of the same state: nothing new (the common case)
	}
	if m, err := kv.MergeSessionTokens(s.token, tok); err == nil {
		s.token = m
	}
}

func (s *sessionToken) observeErr(err error) {
	var miss *kv.ReadMissError
	if errors.As(err, &miss) {
		s.observe(miss.SessionToken)
	}
}

// connBackend is the backend as one connection uses it: it merges reply
// tokens into the connection's session and, when reads is set, gives
// Get and List without a level the connection's level.
type connBackend struct {
	Backend
	c     *conn
	reads bool
}

// backend returns the connection's backend for plain commands;
// txnBackend the one for transactions (linearizable reads).
func (c *conn) backend() Backend    { return connBackend{Backend: c.srv.backend, c: c, reads: true} }
func (c *conn) txnBackend() Backend { return connBackend{Backend: c.srv.backend, c: c} }

func (b connBackend) Get(ctx context.Context, req *cairnpb.GetRequest) (*cairnpb.GetResponse, error) {
	if b.reads && req.Consistency == "" {
		// A copy, field by field (proto.Clone costs a reflective walk on
		// every GET); TestConnBackendGetCopiesEveryField keeps it whole.
		r := &cairnpb.GetRequest{Table: req.Table, Key: req.Key, Consistency: b.c.level.consistency,
			MaxStalenessMs: b.c.level.maxStalenessMs, SessionToken: req.SessionToken}
		if r.Consistency == kv.Session || r.Consistency == "" {
			// "" may be a table whose default is session.
			r.SessionToken = b.c.session.get()
		}
		req = r
	}
	resp, err := b.Backend.Get(ctx, req)
	b.c.session.observeErr(err)
	if err == nil {
		b.c.session.observe(resp.SessionToken)
	}
	return resp, err
}

func (b connBackend) List(ctx context.Context, req *cairnpb.ListRequest) (*cairnpb.ListResponse, error) {
	if b.reads && req.Consistency == "" {
		r := proto.Clone(req).(*cairnpb.ListRequest)
		r.Consistency, r.MaxStalenessMs = b.c.level.consistency, b.c.level.maxStalenessMs
		if r.Consistency == kv.Session || r.Consistency == "" {
			r.SessionToken = b.c.session.get()
		}
		req = r
	}
	resp, err := b.Backend.List(ctx, req)
	if err == nil {
		b.c.session.observe(resp.SessionToken)
	}
	return resp, err
}

func (b connBackend) Put(ctx context.Context, req *cairnpb.PutRequest) (*cairnpb.PutResponse, error) {
	resp, err := b.Backend.Put(ctx, req)
	if err == nil {
		b.c.session.observe(resp.SessionToken)
	}
	return resp, err
}

func (b connBackend) Delete(ctx context.Context, req *cairnpb.DeleteRequest) (*cairnpb.DeleteResponse, error) {
	resp, err := b.Backend.Delete(ctx, req)
	if err == nil {
		b.c.session.observe(resp.SessionToken)
	}
	return resp, err
}

func (b connBackend) Batch(ctx context.Context, req *cairnpb.BatchRequest) (*cairnpb.BatchResponse, error) {
	resp, err := b.Backend.Batch(ctx, req)
	if err == nil {
		b.c.session.observe(resp.SessionToken)
	}
	return resp, err
}

// CAIRN.CONSISTENCY [level [max_staleness]]

func runConsistency(c *conn, args [][]byte) {
	if len(args) == 1 {
		level := c.level.consistency
		if level == "" {
			level = kv.Linearizable
		}
		c.out.BulkString(level)
		return
	}
	if len(args) > 3 {
		c.out.Error(wrongArgs("cairn.consistency"))
		return
	}
	level, err := kv.ParseConsistency(strings.ToLower(string(args[1])))
	if err != nil || level == "" {
		c.out.Error("ERR unknown consistency level '" + string(cString(args[1], 128)) +
			"'; the levels are linearizable, session and stale")
		return
	}
	var ms int64
	if len(args) == 3 {
		if level != kv.Stale {
			c.out.Error("ERR max_staleness applies only to the stale level")
			return
		}
		d, err := kv.ParseMaxStaleness(string(args[2]))
		if err != nil {
			c.out.Error("ERR " + err.Error())
			return
		}
		ms = d.Milliseconds()
	}
	if level == kv.Linearizable {
		level = ""
	}
	c.level = connLevel{consistency: level, maxStalenessMs: ms}
	c.out.SimpleString("OK")
}

// Txn passes transactions through (kv.Transactor), so that MSET, MSETNX,
// DEL and EXEC commit across ranges through the connection's backend.
func (b connBackend) Txn(ctx context.Context, req *cairnpb.TxnRequest) (*cairnpb.TxnResponse, error) {
	tx, ok := b.Backend.(kv.Transactor)
	if !ok {
		return nil, kv.ErrMultiRange
	}
	return tx.Txn(ctx, req)
}
