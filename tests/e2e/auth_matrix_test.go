package e2e

// TestAuthMatrix: users × operations × interfaces on one real node with
// auth on. Users: anonymous, reader (read on keys "pub/" of default),
// writer (read and write on default), appender (write only on default),
// root. Operations: get, put, conditional put (create-only), delete,
// list of "pub/", list of the whole table. Interfaces: HTTP, gRPC, RESP.
// Every cell asserts allow or deny (401/Unauthenticated/-NOAUTH for
// anonymous, 403/PermissionDenied/-NOPERM for a missing permission).

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/cairn-db/cairn/api/cairnpb"
)

type outcome int

const (
	allow outcome = iota
	unauth
	deny
)

func (o outcome) String() string {
	if o < 0 || int(o) > 2 {
		return "other"
	}
	return [...]string{"allow", "unauthenticated", "denied"}[o]
}

func TestAuthMatrix(t *testing.T) {
	c := StartSingle(t)
	n := c.Nodes[0]
	setupAuth(t, n.Client)
	const appenderPassword = "appender-secret-1"
	cairnCLI(t, n.Client, appenderPassword+"\n", rootEnv, "user", "add", "appender")
	cairnCLI(t, n.Client, "", rootEnv, "role", "add", "appender")
	cairnCLI(t, n.Client, "", rootEnv, "role", "grant", "appender", "write", "default")
	cairnCLI(t, n.Client, "", rootEnv, "user", "grant", "appender", "appender")
	if r := n.Put("default", "pub/seed", []byte("v"), basic("root", rootPassword)...); r.Status != 200 {
		t.Fatalf("seed: %s", r)
	}

	users := []struct{ name, password string }{
		{"", ""}, {"reader", readerPassword}, {"writer", writerPassword}, {"appender", appenderPassword}, {"root", rootPassword},
	}
	ops := []string{"get", "put", "put-if-absent", "delete", "list-pub", "list-all"}
	// want[user][op]
	want := map[string]map[string]outcome{
		"":         {"get": unauth, "put": unauth, "put-if-absent": unauth, "delete": unauth, "list-pub": unauth, "list-all": unauth},
		"reader":   {"get": allow, "put": deny, "put-if-absent": deny, "delete": deny, "list-pub": allow, "list-all": deny},
		"writer":   {"get": allow, "put": allow, "put-if-absent": allow, "delete": allow, "list-pub": allow, "list-all": allow},
		"appender": {"get": deny, "put": allow, "put-if-absent": deny, "delete": allow, "list-pub": deny, "list-all": deny},
		"root":     {"get": allow, "put": allow, "put-if-absent": allow, "delete": allow, "list-pub": allow, "list-all": allow},
	}

	respAddr := ""
	for i, a := range n.args {
		if a == "--listen-resp" {
			respAddr = n.args[i+1]
		}
	}
	conn, err := grpc.NewClient(n.Client, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	kvc := cairnpb.NewKVClient(conn)

	for _, u := range users {
		var hdr []string
		gctx := context.Background()
		if u.name != "" {
			hdr = basic(u.name, u.password)
			gctx = metadata.AppendToOutgoingContext(gctx, "authorization", hdr[1])
		}
		var rw *bufio.ReadWriter
		{
			nc, err := net.DialTimeout("tcp", respAddr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			_ = nc.SetDeadline(time.Now().Add(60 * time.Second))
			rw = bufio.NewReadWriter(bufio.NewReader(nc), bufio.NewWriter(nc))
			if u.name != "" {
				if got := respCmd(t, rw, "AUTH", u.name, u.password); got != "+OK" {
					t.Fatalf("RESP AUTH %s: %s", u.name, got)
				}
			}
		}
		for i, op := range ops {
			key := fmt.Sprintf("pub/%s-%d", u.name, i)
			w := want[u.name][op]
			check := func(iface string, got outcome, detail string) {
				t.Helper()
				if got != w {
					t.Errorf("%s %s %s: %v (%s), want %v", iface, nameOr(u.name), op, got, detail, w)
				}
			}
			seed := func(k string) {
				if r := n.Put("default", k, []byte("v"), basic("root", rootPassword)...); r.Status != 200 {
					t.Fatalf("seed %s: %s", k, r)
				}
			}
			// HTTP.
			hk := key + "-h"
			seed(hk)
			var r Reply
			switch op {
			case "get":
				r = n.Get("default", hk, hdr...)
			case "put":
				r = n.Put("default", hk, []byte("x"), hdr...)
			case "put-if-absent":
				r = n.Put("default", hk+"-new", []byte("x"), append([]string{"If-None-Match", "*"}, hdr...)...)
			case "delete":
				r = n.Del("default", hk, hdr...)
			case "list-pub":
				r = n.Do(5*time.Second, "GET", "/v1/kv/default?prefix=pub/", nil, hdr...)
			case "list-all":
				r = n.Do(5*time.Second, "GET", "/v1/kv/default", nil, hdr...)
			}
			check("http", httpOutcome(r), r.String())
			// gRPC.
			gk := []byte(key + "-g")
			seed(string(gk))
			ctx, cancel := context.WithTimeout(gctx, 10*time.Second)
			switch op {
			case "get":
				_, err = kvc.Get(ctx, &cairnpb.GetRequest{Table: "default", Key: gk})
			case "put":
				_, err = kvc.Put(ctx, &cairnpb.PutRequest{Table: "default", Key: gk, Value: []byte("x")})
			case "put-if-absent":
				_, err = kvc.Put(ctx, &cairnpb.PutRequest{Table: "default", Key: append(gk, "-new"...), Value: []byte("x"), Condition: &cairnpb.Condition{Absent: true}})
			case "delete":
				_, err = kvc.Delete(ctx, &cairnpb.DeleteRequest{Table: "default", Key: gk})
			case "list-pub":
				_, err = kvc.List(ctx, &cairnpb.ListRequest{Table: "default", Prefix: []byte("pub/")})
			case "list-all":
				_, err = kvc.List(ctx, &cairnpb.ListRequest{Table: "default"})
			}
			cancel()
			check("grpc", grpcOutcome(err), fmt.Sprint(err))
			// RESP.
			rk := key + "-r"
			seed(rk)
			var reply string
			switch op {
			case "get":
				reply = respCmd(t, rw, "GET", rk)
			case "put":
				reply = respCmd(t, rw, "SET", rk, "x")
			case "put-if-absent":
				reply = respCmd(t, rw, "SET", rk+"-new", "x", "NX")
			case "delete":
				reply = respCmd(t, rw, "DEL", rk)
			case "list-pub":
				reply = respCmd(t, rw, "SCAN", "0", "MATCH", "pub/*")
			case "list-all":
				reply = respCmd(t, rw, "SCAN", "0")
			}
			check("resp", respOutcome(reply), reply)
		}
	}
}

func nameOr(s string) string {
	if s == "" {
		return "anonymous"
	}
	return s
}

func httpOutcome(r Reply) outcome {
	switch r.Status {
	case 401:
		return unauth
	case 403:
		return deny
	}
	if r.OK() {
		return allow
	}
	return outcome(-1)
}

func grpcOutcome(err error) outcome {
	switch status.Code(err) {
	case codes.OK:
		return allow
	case codes.Unauthenticated:
		return unauth
	case codes.PermissionDenied:
		return deny
	}
	return outcome(-1)
}

func respOutcome(reply string) outcome {
	switch {
	case strings.HasPrefix(reply, "-NOAUTH"):
		return unauth
	case strings.HasPrefix(reply, "-NOPERM"):
		return deny
	case strings.HasPrefix(reply, "-"):
		return outcome(-1)
	}
	return allow
}
