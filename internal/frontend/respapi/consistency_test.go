package respapi

// Goal: CAIRN.CONSISTENCY sets the level of a connection's plain reads,
// and the connection carries the session token by itself: the token of
// a SET, of an INCR (through the combiner) and of a miss is sent with
// the next session GET; another connection has its own token; MULTI/EXEC
// reads stay linearizable.
// Method: a loopback server over the in-memory backend, which answers a
// token of one range whose index counts the writes; the backend records
// what each Get asked for.

import (
	"context"
	"sync"
	"testing"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/kv"
)

type levelRecorder struct {
	*memBackend
	mu   sync.Mutex
	gets []*cairnpb.GetRequest
}

func (l *levelRecorder) Get(ctx context.Context, req *cairnpb.GetRequest) (*cairnpb.GetResponse, error) {
	l.mu.Lock()
	l.gets = append(l.gets, req)
	l.mu.Unlock()
	return l.memBackend.Get(ctx, req)
}

func (l *levelRecorder) last(t *testing.T) *cairnpb.GetRequest {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.gets) == 0 {
		t.Fatal("no Get reached the backend")
	}
	return l.gets[len(l.gets)-1]
}

func tokenIndex(t *testing.T, s string) uint64 {
	t.Helper()
	tok, err := kv.DecodeSessionToken(s)
	if err != nil || len(tok.Entries) != 1 {
		t.Fatalf("token %q: %+v, %v", s, tok, err)
	}
	return tok.Entries[0].Index
}

func TestConnectionSession(t *testing.T) {
	b := &levelRecorder{memBackend: newMemBackend()}
	addr := startServer(t, New(b, Options{}))
	c := dial(t, addr)
	if got := c.do("CAIRN.CONSISTENCY", "session"); got != "OK" {
		t.Fatalf("CAIRN.CONSISTENCY session: %s", got)
	}
	c.do("SET", "k", "v") // write 1: index 11
	c.do("GET", "k")
	if r := b.last(t); r.Consistency != kv.Session || tokenIndex(t, r.SessionToken) != 11 {
		t.Fatalf("GET after SET asked %q with token %q", r.Consistency, r.SessionToken)
	}
	c.do("INCR", "n") // write 2 through the combiner: index 12
	c.do("GET", "absent")
	if r := b.last(t); tokenIndex(t, r.SessionToken) != 12 {
		t.Fatalf("GET after INCR carried %q", r.SessionToken)
	}

	// Another connection's session is its own: a write there moves
	// the position of that connection only, and a linearizable
	// connection sends no level.
	other := dial(t, addr)
	other.do("SET", "x", "1") // index 13
	other.do("GET", "x")
	// (It sends its own token: a table's default level may be session.)
	if r := b.last(t); r.Consistency != "" || tokenIndex(t, r.SessionToken) != 13 {
		t.Fatalf("a linearizable connection asked %q with token %q", r.Consistency, r.SessionToken)
	}
	c.do("GET", "k")
	if r := b.last(t); tokenIndex(t, r.SessionToken) != 12 {
		t.Fatalf("another connection's write moved this session to %d", tokenIndex(t, r.SessionToken))
	}

	// Transactions read linearizably whatever the connection's level.
	c.do("MULTI")
	c.do("GET", "k")
	c.do("EXEC")
	if r := b.last(t); r.Consistency != "" {
		t.Fatalf("a read in EXEC asked %q", r.Consistency)
	}
	if got := c.do("CAIRN.CONSISTENCY", "stale", "250ms"); got != "OK" {
		t.Fatal(got)
	}
	c.do("GET", "k")
	if r := b.last(t); r.Consistency != kv.Stale || r.MaxStalenessMs != 250 || r.SessionToken != "" {
		t.Fatalf("stale GET asked %+v", r)
	}
}

// connBackend.Get copies a GetRequest field by field; a field added to
// the message must be added to that copy (and here).
func TestConnBackendGetCopiesEveryField(t *testing.T) {
	fields := (&cairnpb.GetRequest{}).ProtoReflect().Descriptor().Fields()
	copied := map[string]bool{"table": true, "key": true, "consistency": true, "max_staleness_ms": true, "session_token": true}
	if fields.Len() != len(copied) {
		t.Fatalf("GetRequest has %d fields, connBackend.Get copies %d", fields.Len(), len(copied))
	}
	for i := range fields.Len() {
		if name := string(fields.Get(i).Name()); !copied[name] {
			t.Fatalf("GetRequest field %q is not copied by connBackend.Get", name)
		}
	}
	b := &levelRecorder{memBackend: newMemBackend()}
	c := &conn{level: connLevel{consistency: kv.Stale, maxStalenessMs: 250}}
	_, _ = connBackend{Backend: b, c: c, reads: true}.Get(context.Background(),
		&cairnpb.GetRequest{Table: "t", Key: []byte("k")})
	got := b.last(t)
	if got.Table != "t" || string(got.Key) != "k" || got.Consistency != kv.Stale || got.MaxStalenessMs != 250 {
		t.Fatalf("backend got %v", got)
	}
}
