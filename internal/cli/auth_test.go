package cli

// Tests of the auth commands in-process: the admin commands reach the
// Auth service with the right request and print OK or the listing;
// credentials from flags and the environment reach the server as the
// authorization metadata; a denial exits 3 with the message; token
// create takes --user as the owner; cert writes a CA and certificates
// that verify against it; --ttl accepts days.

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/frontend/grpcapi"
	"github.com/cairn-db/cairn/internal/kv"
	"github.com/cairn-db/cairn/internal/kv/kvtest"
)

// recordingAdmin records the requests and the authorization metadata.
type recordingAdmin struct {
	reqs  []*cairnpb.AuthAdminRequest
	auths []string
}

func (r *recordingAdmin) Do(ctx context.Context, req *cairnpb.AuthAdminRequest) (*cairnpb.AuthAdminResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	auth := strings.Join(md.Get("authorization"), ",")
	r.reqs, r.auths = append(r.reqs, req), append(r.auths, auth)
	if auth == "Bearer denied" {
		return nil, kv.Errorf(kv.ErrPermissionDenied, "user %q lacks the root role", "x")
	}
	switch req.Op.(type) {
	case *cairnpb.AuthAdminRequest_ListUsers:
		return &cairnpb.AuthAdminResponse{Users: []*cairnpb.User{{Name: "alice", Roles: []string{"r1", "r2"}}}}, nil
	case *cairnpb.AuthAdminRequest_CreateToken:
		return &cairnpb.AuthAdminResponse{Token: "cairn1.tok", TokenInfo: &cairnpb.TokenInfo{Id: "id1", User: req.GetCreateToken().User}}, nil
	}
	return &cairnpb.AuthAdminResponse{}, nil
}

func (r *recordingAdmin) Login(ctx context.Context, req *cairnpb.LoginRequest) (*cairnpb.LoginResponse, error) {
	return &cairnpb.LoginResponse{Token: "cairn1.login", ExpiresUnix: 1}, nil
}

func startAuthServer(t *testing.T) (string, *recordingAdmin) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	admin := &recordingAdmin{}
	s := grpc.NewServer()
	grpcapi.Register(s, kvtest.NewMemService())
	grpcapi.RegisterAuth(s, admin)
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	return lis.Addr().String(), admin
}

func TestAuthCommands(t *testing.T) {
	addr, admin := startAuthServer(t)
	run(t, "pw1\n", "user", "add", "alice", "--endpoints", addr).expect(t, exitOK, "OK user=alice\n")
	if got := admin.reqs[0].GetAddUser(); got.GetName() != "alice" || got.GetPassword() != "pw1" {
		t.Fatalf("user add sent %v", admin.reqs[0])
	}
	run(t, "", "user", "add", "bob", "--endpoints", addr).expect(t, exitUsage, "")
	run(t, "", "role", "grant", "r1", "read", "billing", "--prefix", "invoices/", "--endpoints", addr, "--user", "root", "--password", "rootpw").expect(t, exitOK, "OK role=r1\n")
	g := admin.reqs[len(admin.reqs)-1].GetGrant()
	if g.GetRole() != "r1" || g.GetGrant().GetTable() != "billing" || string(g.GetGrant().GetPrefix()) != "invoices/" || g.GetGrant().GetPermission() != "read" {
		t.Fatalf("role grant sent %v", g)
	}
	if want := "Basic " + base64.StdEncoding.EncodeToString([]byte("root:rootpw")); admin.auths[len(admin.auths)-1] != want {
		t.Fatalf("credentials sent as %q, want %q", admin.auths[len(admin.auths)-1], want)
	}
	t.Setenv("CAIRN_TOKEN", "denied")
	r := run(t, "", "user", "ls", "--endpoints", addr)
	if r.code != exitFailure || !strings.Contains(r.stderr, "root role") {
		t.Fatalf("denied user ls: %+v", r)
	}
	t.Setenv("CAIRN_TOKEN", "ok")
	run(t, "", "user", "ls", "--endpoints", addr).expect(t, exitOK, "USER   ROLES\nalice  r1,r2\n")
	run(t, "", "user", "grant", "alice", "r1", "--endpoints", addr).expect(t, exitOK, "OK user=alice role=r1\n")
	if b := admin.reqs[len(admin.reqs)-1].GetBindRole(); b.GetUser() != "alice" || b.GetRole() != "r1" {
		t.Fatalf("user grant sent %v", b)
	}
	t.Setenv("CAIRN_TOKEN", "")
	t.Setenv("CAIRN_USER", "root")
	t.Setenv("CAIRN_PASSWORD", "rootpw")
	r = run(t, "", "token", "create", "--user", "ci", "--ttl", "90d", "--endpoints", addr)
	if r.code != exitOK || !strings.HasPrefix(r.stdout, "cairn1.tok\n") {
		t.Fatalf("token create: %+v", r)
	}
	ct := admin.reqs[len(admin.reqs)-1].GetCreateToken()
	if ct.GetUser() != "ci" || ct.GetTtlSeconds() != 90*24*3600 {
		t.Fatalf("token create sent %v", ct)
	}
	if want := "Basic " + base64.StdEncoding.EncodeToString([]byte("root:rootpw")); admin.auths[len(admin.auths)-1] != want {
		t.Fatalf("token create authenticated as %q, want root", admin.auths[len(admin.auths)-1])
	}
	run(t, "", "token", "create", "--endpoints", addr).expect(t, exitUsage, "")
	run(t, "", "auth", "enable", "--endpoints", addr).expect(t, exitOK, "OK auth enabled\n")
	if !admin.reqs[len(admin.reqs)-1].GetSetEnabled().GetEnabled() {
		t.Fatal("auth enable did not ask for enabled")
	}
	run(t, "", "login", "--endpoints", addr).expect(t, exitOK, "cairn1.login\n")
}

func TestParseTTL(t *testing.T) {
	for in, want := range map[string]time.Duration{"90d": 90 * 24 * time.Hour, "1d": 24 * time.Hour, "12h": 12 * time.Hour, "30m": 30 * time.Minute} {
		if got, err := parseTTL(in); err != nil || got != want {
			t.Errorf("parseTTL(%q) = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "0d", "-1d", "d", "1.5d", "x", "-5h", "01d"} {
		if _, err := parseTTL(bad); err == nil {
			t.Errorf("parseTTL(%q) accepted", bad)
		}
	}
}

func TestCertCommands(t *testing.T) {
	dir := t.TempDir()
	run(t, "", "cert", "ca", "--dir", dir).expect(t, exitOK, "OK "+filepath.Join(dir, "ca.crt")+" "+filepath.Join(dir, "ca.key")+"\n")
	if r := run(t, "", "cert", "ca", "--dir", dir); r.code == exitOK {
		t.Fatal("cert ca overwrote an existing CA")
	}
	run(t, "", "cert", "node", "n1", "--dir", dir, "--hosts", "10.0.0.1,db.example").expect(t, exitOK, "OK "+filepath.Join(dir, "n1.crt")+" "+filepath.Join(dir, "n1.key")+"\n")
	run(t, "", "cert", "client", "alice", "--dir", dir).expect(t, exitOK, "OK "+filepath.Join(dir, "alice.crt")+" "+filepath.Join(dir, "alice.key")+"\n")
	pool := x509.NewCertPool()
	pool.AddCert(readCert(t, filepath.Join(dir, "ca.crt")))
	node := readCert(t, filepath.Join(dir, "n1.crt"))
	if _, err := node.Verify(x509.VerifyOptions{Roots: pool, DNSName: "db.example", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Fatalf("node certificate for db.example: %v", err)
	}
	if _, err := node.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("node certificate as a client (peer mTLS): %v", err)
	}
	alice := readCert(t, filepath.Join(dir, "alice.crt"))
	if _, err := alice.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil || alice.Subject.CommonName != "alice" {
		t.Fatalf("client certificate: CN %q, %v", alice.Subject.CommonName, err)
	}
	if _, err := alice.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Fatal("a client certificate verifies as a server")
	}
	if fi, err := os.Stat(filepath.Join(dir, "alice.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", fi.Mode(), err)
	}
}

func readCert(t *testing.T, path string) *x509.Certificate {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
