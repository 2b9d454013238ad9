package e2e

// BenchmarkHTTPGetAuth measures a whole linearizable GET over HTTP on a
// single real node, with auth off and then on (Basic credentials, whose
// argon2id verification is cached after the first request, plus the
// permission check). The difference is the cost of auth on a get.
//
//	go test -run='^$' -bench=HTTPGetAuth ./tests/e2e/

import (
	"testing"
)

func BenchmarkHTTPGetAuth(b *testing.B) {
	c := StartSingle(b)
	n := c.Nodes[0]
	if r := n.Put("default", "pub/bench", []byte("v")); r.Status != 200 {
		b.Fatal(r)
	}
	get := func(b *testing.B, hdr ...string) {
		for b.Loop() {
			if r := n.Get("default", "pub/bench", hdr...); r.Status != 200 {
				b.Fatal(r)
			}
		}
	}
	b.Run("auth=off", func(b *testing.B) { get(b) })
	setupAuthB(b, n.Client)
	b.Run("auth=on", func(b *testing.B) { get(b, basic("reader", readerPassword)...) })
	b.Run("auth=off-again", func(b *testing.B) {
		cairnCLIB(b, n.Client, "", rootEnv, "auth", "disable")
		get(b)
	})
}

func cairnCLIB(b *testing.B, endpoint, stdin string, env []string, args ...string) {
	b.Helper()
	if _, err := cairnCLIErr(endpoint, stdin, env, args...); err != nil {
		b.Fatalf("cairn %v: %v", args, err)
	}
}

func setupAuthB(b *testing.B, endpoint string) {
	cairnCLIB(b, endpoint, rootPassword+"\n", nil, "user", "add", "root")
	cairnCLIB(b, endpoint, readerPassword+"\n", nil, "user", "add", "reader")
	cairnCLIB(b, endpoint, "", nil, "role", "add", "pub-reader")
	cairnCLIB(b, endpoint, "", nil, "role", "grant", "pub-reader", "read", "default", "--prefix", "pub/")
	cairnCLIB(b, endpoint, "", nil, "user", "grant", "reader", "pub-reader")
	cairnCLIB(b, endpoint, "", nil, "auth", "enable")
}
