package auth

// Benchmarks of the permission check on the hot path. The check must
// cost under 5% of a get; compare with BenchmarkGet in internal/storage
// (one local Pebble point read, the cheapest part of a get, which also
// pays a Raft ReadIndex round). Results are in BENCHMARKS.md.
//
//	go test -run='^$' -bench=. -benchmem ./internal/auth/

import (
	"context"
	"fmt"
	"testing"

	"google.golang.org/grpc/metadata"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/kv/kvtest"
)

// benchAuth has a user with 4 roles of 3 grants each, as a realistic
// worst-ish case; the checked key matches the last grant.
func benchAuth() *Authenticator {
	var roles []*cairnpb.RoleRecord
	u := &cairnpb.UserRecord{Name: "svc"}
	for i := range 4 {
		r := &cairnpb.RoleRecord{Name: fmt.Sprintf("r%d", i)}
		for j := range 3 {
			r.Grants = append(r.Grants, &cairnpb.Grant{Table: "orders", Prefix: fmt.Appendf(nil, "tenant-%d-%d/", i, j), Permission: "read"})
		}
		roles = append(roles, r)
		u.Roles = append(u.Roles, r.Name)
	}
	a := NewAuthenticator(Options{})
	a.snap.Store(buildSnapshot(&cairnpb.AuthConfig{Enabled: true}, []*cairnpb.UserRecord{u}, roles, nil))
	return a
}

func BenchmarkCheck(b *testing.B) {
	a := benchAuth()
	p := &Principal{User: "svc"}
	key := []byte("tenant-3-2/order-000123")
	b.ReportAllocs()
	for b.Loop() {
		if err := a.Check(p, "orders", key, PermRead); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGuardGet is the whole authorization overhead of a get: the
// principal lookup in a context as deep as a gRPC handler's, the check,
// and the outgoing metadata that carries the principal if forwarded,
// minus the in-memory service's own Get (BenchmarkMemGet).
func BenchmarkGuardGet(b *testing.B) {
	a := benchAuth()
	mem := kvtest.NewMemService()
	ctx := context.Background()
	for i := range 8 {
		ctx = context.WithValue(ctx, struct{ n int }{i}, i)
	}
	ctx = metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", "x"))
	ctx = WithPrincipal(ctx, &Principal{User: "svc"})
	g := NewGuard(a, memBatcher{mem})
	req := &cairnpb.GetRequest{Table: "orders", Key: []byte("tenant-3-2/order-000123")}
	b.ReportAllocs()
	for b.Loop() {
		_, _ = g.Get(ctx, req)
	}
}

func BenchmarkMemGet(b *testing.B) {
	mem := kvtest.NewMemService()
	req := &cairnpb.GetRequest{Table: "orders", Key: []byte("tenant-3-2/order-000123")}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_, _ = mem.Get(ctx, req)
	}
}

type memBatcher struct{ *kvtest.MemService }

func (memBatcher) Batch(context.Context, *cairnpb.BatchRequest) (*cairnpb.BatchResponse, error) {
	return nil, nil
}

// BenchmarkAuthenticateBasicCached is the per-request cost of HTTP Basic
// or RESP AUTH after the first verification: an HMAC of the pair and a
// map lookup, not argon2id.
func BenchmarkAuthenticateBasicCached(b *testing.B) {
	params := Argon2Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1, SaltBytes: 16, KeyBytes: 32}
	h, err := HashPassword("secret", params)
	if err != nil {
		b.Fatal(err)
	}
	a := NewAuthenticator(Options{})
	a.snap.Store(buildSnapshot(&cairnpb.AuthConfig{Enabled: true}, []*cairnpb.UserRecord{{Name: "svc", PasswordHash: h}}, nil, nil))
	c := Credentials{User: "svc", Password: "secret"}
	if _, err := a.Authenticate(c, "10.0.0.1"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Authenticate(c, "10.0.0.1"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkArgon2id is one uncached verification with the default
// parameters (what the cache saves).
func BenchmarkArgon2id(b *testing.B) {
	h, err := HashPassword("secret", DefaultArgon2Params)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if !VerifyPassword(h, "secret") {
			b.Fatal("no match")
		}
	}
}
