package e2e

// End-to-end tests of auth with real processes: users, roles and grants
// set up with the CLI; a reader cannot write and a writer can, over HTTP,
// gRPC and RESP, through every node (so through forwarding); an API token
// revoked on one node stops working on another within seconds; a login
// token works; protected mode refuses a public listener; peer mTLS keeps
// a node with a certificate of another CA out of the Raft traffic; client
// TLS with a client certificate authenticates as its common name.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/cairn-db/cairn/api/cairnpb"
)

const (
	rootPassword   = "root-secret-1"
	readerPassword = "reader-secret-1"
	writerPassword = "writer-secret-1"
)

// cairnCLI runs the cairn binary with args (and stdin) against endpoint
// and returns its stdout; it fails the test on a non-zero exit.
func cairnCLI(t *testing.T, endpoint, stdin string, env []string, args ...string) string {
	t.Helper()
	out, err := cairnCLIErr(endpoint, stdin, env, args...)
	if err != nil {
		t.Fatalf("cairn %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func cairnCLIErr(endpoint, stdin string, env []string, args ...string) (string, error) {
	if endpoint != "" {
		args = append(args, "--endpoints", endpoint)
	}
	cmd := exec.Command(binary, args...)
	cmd.Env = append(childEnv(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%v: %s", err, stderr.String())
	}
	return stdout.String(), nil
}

func basic(user, pass string) []string {
	return []string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))}
}

func bearer(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

var rootEnv = []string{"CAIRN_USER=root", "CAIRN_PASSWORD=" + rootPassword}

// setupAuth creates root, a reader (read on keys "pub/" of default), a
// writer (read and write on default) and enables auth, all with the CLI.
func setupAuth(t *testing.T, endpoint string) {
	cairnCLI(t, endpoint, rootPassword+"\n", nil, "user", "add", "root")
	cairnCLI(t, endpoint, readerPassword+"\n", nil, "user", "add", "reader")
	cairnCLI(t, endpoint, writerPassword+"\n", nil, "user", "add", "writer")
	cairnCLI(t, endpoint, "", nil, "role", "add", "pub-reader")
	cairnCLI(t, endpoint, "", nil, "role", "grant", "pub-reader", "read", "default", "--prefix", "pub/")
	cairnCLI(t, endpoint, "", nil, "role", "add", "default-writer")
	cairnCLI(t, endpoint, "", nil, "role", "grant", "default-writer", "read", "default")
	cairnCLI(t, endpoint, "", nil, "role", "grant", "default-writer", "write", "default")
	cairnCLI(t, endpoint, "", nil, "user", "grant", "reader", "pub-reader")
	cairnCLI(t, endpoint, "", nil, "user", "grant", "writer", "default-writer")
	cairnCLI(t, endpoint, "", nil, "auth", "enable")
}

func TestAuthEnableNeedsRoot(t *testing.T) {
	c := StartSingle(t)
	n := c.Nodes[0]
	if _, err := cairnCLIErr(n.Client, "", nil, "auth", "enable"); err == nil || !strings.Contains(err.Error(), "root") {
		t.Fatalf("auth enable without a root user: %v", err)
	}
	setupAuth(t, n.Client)
	// Disabling needs root.
	if _, err := cairnCLIErr(n.Client, "", []string{"CAIRN_USER=writer", "CAIRN_PASSWORD=" + writerPassword}, "auth", "disable"); err == nil {
		t.Fatal("a non-root user disabled auth")
	}
	if _, err := cairnCLIErr(n.Client, "", nil, "auth", "disable"); err == nil {
		t.Fatal("an anonymous client disabled auth")
	}
	if _, err := cairnCLIErr(n.Client, "", rootEnv, "user", "rm", "root"); err == nil {
		t.Fatal("root removed while auth is enabled")
	}
	cairnCLI(t, n.Client, "", rootEnv, "auth", "disable")
	if r := n.Put("default", "k", []byte("v")); r.Status != 200 {
		t.Fatalf("anonymous put after disable: %s", r)
	}
}

func TestAuthPermissionsAllNodes(t *testing.T) {
	c := StartCluster(t, 3)
	setupAuth(t, c.Nodes[0].Client)
	reader, writer := basic("reader", readerPassword), basic("writer", writerPassword)
	waitFor(t, 10*time.Second, "auth enabled on every node", func() error {
		for _, n := range c.Nodes {
			if r := n.Get("default", "pub/x"); r.Status != 401 {
				return fmt.Errorf("%s: anonymous get: %s", n.Name, r)
			}
		}
		return nil
	})
	for i, n := range c.Nodes {
		key := fmt.Sprintf("pub/%d", i)
		// HTTP: the writer writes through every node (two of them
		// forward to the leader); the reader reads but cannot write.
		if r := n.Put("default", key, []byte("v"), writer...); r.Status != 200 {
			t.Fatalf("%s: writer put: %s", n.Name, r)
		}
		if r := n.Get("default", key, reader...); r.Status != 200 || string(r.Body) != "v" {
			t.Fatalf("%s: reader get: %s", n.Name, r)
		}
		if r := n.Put("default", key, []byte("x"), reader...); r.Status != 403 || r.ErrCode() != "permission_denied" {
			t.Fatalf("%s: reader put: %s, want 403", n.Name, r)
		}
		if r := n.Del("default", key, reader...); r.Status != 403 {
			t.Fatalf("%s: reader delete: %s, want 403", n.Name, r)
		}
		if r := n.Get("default", "secret/1", reader...); r.Status != 403 {
			t.Fatalf("%s: reader get outside its prefix: %s, want 403", n.Name, r)
		}
		if r := n.Get("default", key, basic("reader", "wrong")...); r.Status != 401 || r.Header.Get("WWW-Authenticate") == "" {
			t.Fatalf("%s: wrong password: %s, want 401 with WWW-Authenticate", n.Name, r)
		}
		if r := n.Get("default", key); r.Status != 401 {
			t.Fatalf("%s: anonymous get: %s, want 401", n.Name, r)
		}
		if r := n.Put("default", key, []byte("x"), "Authorization", "Basic !!!"); r.Status != 401 {
			t.Fatalf("%s: malformed header: %s, want 401", n.Name, r)
		}
	}
	// Lists: denied unless within the reader's prefix.
	n := c.Nodes[1]
	if r := n.Do(5*time.Second, "GET", "/v1/kv/default?prefix=pub/", nil, reader...); r.Status != 200 {
		t.Fatalf("reader list pub/: %s", r)
	}
	if r := n.Do(5*time.Second, "GET", "/v1/kv/default", nil, reader...); r.Status != 403 {
		t.Fatalf("reader list of the whole table: %s, want 403", r)
	}
	// Cluster and table admin need admin.
	if r := n.Do(5*time.Second, "GET", "/v1/cluster", nil, writer...); r.Status != 403 {
		t.Fatalf("writer cluster status: %s, want 403", r)
	}
	if r := n.Do(5*time.Second, "GET", "/v1/cluster", nil, basic("root", rootPassword)...); r.Status != 200 {
		t.Fatalf("root cluster status: %s", r)
	}
	if r := n.Do(5*time.Second, "POST", "/v1/tables", []byte(`{"name":"t2"}`), writer...); r.Status != 403 {
		t.Fatalf("writer create table: %s, want 403", r)
	}

	// gRPC: metadata credentials; PermissionDenied and Unauthenticated.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := grpc.NewClient(c.Nodes[2].Client, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	kvc := cairnpb.NewKVClient(conn)
	as := func(h []string) context.Context { return metadata.AppendToOutgoingContext(ctx, "authorization", h[1]) }
	if _, err := kvc.Put(as(writer), &cairnpb.PutRequest{Table: "default", Key: []byte("pub/g"), Value: []byte("g")}); err != nil {
		t.Fatalf("grpc writer put: %v", err)
	}
	if _, err := kvc.Put(as(reader), &cairnpb.PutRequest{Table: "default", Key: []byte("pub/g"), Value: []byte("x")}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("grpc reader put: %v, want PermissionDenied", err)
	}
	if got, err := kvc.Get(as(reader), &cairnpb.GetRequest{Table: "default", Key: []byte("pub/g")}); err != nil || string(got.Value) != "g" {
		t.Fatalf("grpc reader get: %v %v", got, err)
	}
	if _, err := kvc.Get(ctx, &cairnpb.GetRequest{Table: "default", Key: []byte("pub/g")}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("grpc anonymous get: %v, want Unauthenticated", err)
	}

	// CLI: --user/--password flags and the exit status of a denial.
	out := cairnCLI(t, c.Nodes[1].Client, "", nil, "get", "pub/g", "--user", "reader", "--password", readerPassword)
	if strings.TrimSpace(out) != "g" {
		t.Fatalf("cli get = %q", out)
	}
	if _, err := cairnCLIErr(c.Nodes[1].Client, "", []string{"CAIRN_USER=reader", "CAIRN_PASSWORD=" + readerPassword}, "put", "pub/g", "x"); err == nil || !strings.Contains(err.Error(), "permission") {
		t.Fatalf("cli reader put: %v", err)
	}

	// Tokens: an API token created on node 1 works on node 3; revoked on
	// node 1, it stops working on node 3 within seconds.
	out = cairnCLI(t, c.Nodes[0].Client, "", rootEnv, "token", "create", "--user", "reader", "--ttl", "90d", "-o", "json")
	var created struct {
		Token string `json:"token"`
		Info  struct {
			ID string `json:"id"`
		} `json:"info"`
	}
	if err := jsonUnmarshal(out, &created); err != nil || created.Token == "" || created.Info.ID == "" {
		t.Fatalf("token create output %q: %v", out, err)
	}
	far := c.Nodes[2]
	waitFor(t, 10*time.Second, "new token accepted on another node", func() error {
		if r := far.Get("default", "pub/g", bearer(created.Token)...); r.Status != 200 {
			return fmt.Errorf("%s", r)
		}
		return nil
	})
	if ls := cairnCLI(t, c.Nodes[1].Client, "", rootEnv, "token", "ls"); !strings.Contains(ls, created.Info.ID) || strings.Contains(ls, created.Token) {
		t.Fatalf("token ls must list the ID and never the token: %q", ls)
	}
	cairnCLI(t, c.Nodes[0].Client, "", rootEnv, "token", "revoke", created.Info.ID)
	revoked := time.Now()
	waitFor(t, 5*time.Second, "revoked token refused on another node", func() error {
		if r := far.Get("default", "pub/g", bearer(created.Token)...); r.Status != 401 {
			return fmt.Errorf("%s", r)
		}
		return nil
	})
	t.Logf("revocation took effect on %s after %v", far.Name, time.Since(revoked).Round(time.Millisecond))

	// Login tokens.
	tok := strings.TrimSpace(cairnCLI(t, c.Nodes[0].Client, "", []string{"CAIRN_USER=writer", "CAIRN_PASSWORD=" + writerPassword}, "login", "--ttl", "10m"))
	if r := c.Nodes[1].Put("default", "w", []byte("v"), bearer(tok)...); r.Status != 200 {
		t.Fatalf("put with a login token: %s", r)
	}
	if r := c.Nodes[1].Put("default", "w", []byte("v"), bearer(tok+"x")...); r.Status != 401 {
		t.Fatalf("put with a mangled token: %s", r)
	}

	// Grants survive a restart of every node.
	for _, n := range c.Nodes {
		n.Term()
	}
	for _, n := range c.Nodes {
		n.Start()
	}
	c.WaitReady()
	waitFor(t, 15*time.Second, "permissions after restart", func() error {
		if r := c.Nodes[0].Put("default", "pub/after", []byte("v"), reader...); r.Status != 403 {
			return fmt.Errorf("reader put: %s", r)
		}
		if r := c.Nodes[0].Put("default", "pub/after", []byte("v"), writer...); r.Status != 200 {
			return fmt.Errorf("writer put: %s", r)
		}
		return nil
	})
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

// respCmd sends one command and returns its whole reply, flattened: the
// first line for simple replies and errors, the bulk string itself, or
// the elements of an array joined by spaces.
func respCmd(t *testing.T, rw *bufio.ReadWriter, args ...string) string {
	t.Helper()
	fmt.Fprintf(rw, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(rw, "$%d\r\n%s\r\n", len(a), a)
	}
	if err := rw.Flush(); err != nil {
		t.Fatal(err)
	}
	s, err := readReply(rw.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func readReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", fmt.Errorf("empty reply line")
	}
	switch line[0] {
	case '$':
		var n int
		if _, err := fmt.Sscanf(line, "$%d", &n); err != nil || n < 0 {
			return line, nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	case '*':
		var n int
		if _, err := fmt.Sscanf(line, "*%d", &n); err != nil || n < 0 {
			return line, nil
		}
		parts := make([]string, 0, n)
		for range n {
			p, err := readReply(r)
			if err != nil {
				return "", err
			}
			parts = append(parts, p)
		}
		return "[" + strings.Join(parts, " ") + "]", nil
	}
	return line, nil
}

func TestAuthRESP(t *testing.T) {
	c := StartSingle(t)
	n := c.Nodes[0]
	setupAuth(t, n.Client)
	respAddr := ""
	for i, a := range n.args {
		if a == "--listen-resp" {
			respAddr = n.args[i+1]
		}
	}
	dial := func() *bufio.ReadWriter {
		conn, err := net.DialTimeout("tcp", respAddr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
		return bufio.NewReadWriter(bufio.NewReader(conn), bufio.NewWriter(conn))
	}
	anon := dial()
	if got := respCmd(t, anon, "GET", "pub/k"); !strings.HasPrefix(got, "-NOAUTH") {
		t.Fatalf("GET before AUTH = %q, want -NOAUTH", got)
	}
	if got := respCmd(t, anon, "AUTH", "reader", "wrong"); !strings.HasPrefix(got, "-WRONGPASS") {
		t.Fatalf("AUTH with a wrong password = %q", got)
	}
	if got := respCmd(t, anon, "AUTH", "nopass"); !strings.HasPrefix(got, "-WRONGPASS") {
		t.Fatalf("AUTH pass without a default user = %q", got)
	}
	w := dial()
	if got := respCmd(t, w, "AUTH", "writer", writerPassword); got != "+OK" {
		t.Fatalf("AUTH writer = %q", got)
	}
	if got := respCmd(t, w, "SET", "pub/k", "v"); got != "+OK" {
		t.Fatalf("writer SET = %q", got)
	}
	r := dial()
	if got := respCmd(t, r, "AUTH", "reader", readerPassword); got != "+OK" {
		t.Fatalf("AUTH reader = %q", got)
	}
	if got := respCmd(t, r, "GET", "pub/k"); got != "v" {
		t.Fatalf("reader GET = %q", got)
	}
	if got := respCmd(t, r, "SET", "pub/k", "x"); !strings.HasPrefix(got, "-NOPERM") {
		t.Fatalf("reader SET = %q, want -NOPERM", got)
	}
	if got := respCmd(t, r, "INCR", "pub/n"); !strings.HasPrefix(got, "-NOPERM") {
		t.Fatalf("reader INCR = %q, want -NOPERM", got)
	}
	if got := respCmd(t, r, "MSET", "pub/a", "1", "pub/b", "2"); !strings.HasPrefix(got, "-NOPERM") {
		t.Fatalf("reader MSET = %q, want -NOPERM", got)
	}
	if got := respCmd(t, r, "GET", "secret"); !strings.HasPrefix(got, "-NOPERM") {
		t.Fatalf("reader GET outside its prefix = %q, want -NOPERM", got)
	}
	// AUTH pass authenticates the user "default".
	cairnCLI(t, n.Client, "default-secret\n", rootEnv, "user", "add", "default")
	d := dial()
	if got := respCmd(t, d, "AUTH", "default-secret"); got != "+OK" {
		t.Fatalf("AUTH pass for the default user = %q", got)
	}
	if got := respCmd(t, d, "GET", "pub/k"); !strings.HasPrefix(got, "-NOPERM") {
		t.Fatalf("default user without roles GET = %q, want -NOPERM", got)
	}
}

func TestProtectedMode(t *testing.T) {
	ports := freePorts(t, 3)
	dir := t.TempDir()
	run := func(extra ...string) (string, error) {
		args := append([]string{"server", "--data-dir", filepath.Join(dir, "d"),
			"--listen", fmt.Sprintf("0.0.0.0:%d", ports[0]), "--listen-peer", fmt.Sprintf("127.0.0.1:%d", ports[1]), "--listen-resp", ""}, extra...)
		cmd := exec.Command(binary, args...)
		cmd.Env = childEnv()
		out, err := runWithTimeout(cmd, 20*time.Second)
		return out, err
	}
	out, err := run()
	if err == nil || !strings.Contains(out, "protected mode") || !strings.Contains(out, "--insecure") {
		t.Fatalf("public --listen without auth: err=%v output:\n%s", err, out)
	}
	// The peer listener off loopback without mTLS is refused too.
	cmd := exec.Command(binary, "server", "--data-dir", filepath.Join(dir, "p"), "--listen", fmt.Sprintf("127.0.0.1:%d", ports[0]),
		"--listen-peer", fmt.Sprintf("0.0.0.0:%d", ports[1]), "--listen-resp", "")
	cmd.Env = childEnv()
	if out, err := runWithTimeout(cmd, 20*time.Second); err == nil || !strings.Contains(out, "--listen-peer") {
		t.Fatalf("public --listen-peer without mTLS: err=%v output:\n%s", err, out)
	}
	// With --insecure the node starts and serves.
	nd := &Node{Name: "n1", ID: 1, Client: fmt.Sprintf("127.0.0.1:%d", ports[0]), Peer: fmt.Sprintf("127.0.0.1:%d", ports[1]),
		DataDir: filepath.Join(dir, "i"), LogPath: filepath.Join(dir, "i.log")}
	c := newCluster(t)
	nd.c = c
	nd.args = []string{"server", "--data-dir", nd.DataDir, "--listen", fmt.Sprintf("0.0.0.0:%d", ports[0]),
		"--listen-peer", nd.Peer, "--listen-resp", "", "--insecure"}
	c.Nodes = []*Node{nd}
	nd.Start()
	nd.WaitReady()
}

func runWithTimeout(cmd *exec.Cmd, d time.Duration) (string, error) {
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return buf.String(), err
	case <-time.After(d):
		_ = cmd.Process.Kill()
		<-done
		return buf.String(), fmt.Errorf("did not exit within %v (started?)", d)
	}
}

// certs creates a CA and node and client certificates in dir with the CLI.
func certs(t *testing.T, dir string, clients ...string) {
	cairnCLI(t, "", "", nil, "cert", "ca", "--dir", dir)
	cairnCLI(t, "", "", nil, "cert", "node", "node", "--dir", dir, "--hosts", "127.0.0.1,localhost")
	for _, u := range clients {
		cairnCLI(t, "", "", nil, "cert", "client", u, "--dir", dir)
	}
}

func TestPeerMTLS(t *testing.T) {
	good, rogue := t.TempDir(), t.TempDir()
	certs(t, good)
	certs(t, rogue)
	c := newCluster(t)
	ports := freePorts(t, 6)
	var initial []string
	for i := range 3 {
		nd := &Node{c: c, Name: fmt.Sprintf("n%d", i+1), ID: uint64(i + 1),
			Client: fmt.Sprintf("127.0.0.1:%d", ports[2*i]), Peer: fmt.Sprintf("127.0.0.1:%d", ports[2*i+1])}
		nd.DataDir, nd.LogPath = filepath.Join(c.dir, nd.Name), filepath.Join(c.dir, nd.Name+".log")
		initial = append(initial, nd.Name+"="+nd.Peer)
		c.Nodes = append(c.Nodes, nd)
	}
	for i, nd := range c.Nodes {
		dir := good
		if i == 2 {
			dir = rogue // n3's certificate chains to another CA
		}
		nd.args = []string{"server", "--name", nd.Name, "--data-dir", nd.DataDir, "--listen", nd.Client,
			"--listen-peer", nd.Peer, "--listen-resp", "", "--initial-cluster", strings.Join(initial, ","),
			"--peer-cert", filepath.Join(dir, "node.crt"), "--peer-key", filepath.Join(dir, "node.key"), "--peer-ca", filepath.Join(dir, "ca.crt")}
		nd.Start()
	}
	c.Nodes[0].WaitReady()
	c.Nodes[1].WaitReady()
	// n1 and n2 form a majority over mTLS and serve writes.
	c.Nodes[0].MustPut(t, "default", "k", []byte("v"))
	// n3 never hears from them: it has no leader, and the others see it
	// as down.
	time.Sleep(3 * time.Second)
	if r := c.Nodes[2].Do(time.Second, "GET", "/readyz", nil); r.Status == 200 {
		t.Fatalf("n3 with a rogue peer certificate is ready: %s", r)
	}
	st, err := c.Nodes[0].ClusterStatus(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range st.Nodes {
		if ns.ID == 3 && ns.Alive {
			t.Fatalf("n1 sees n3 alive: %+v", ns)
		}
	}
	for _, rs := range st.Ranges {
		if rs.Leader == 3 {
			t.Fatalf("n3 leads range %d", rs.ID)
		}
	}
	// A client without a certificate cannot call the peer API at all.
	conn, err := grpc.NewClient(c.Nodes[0].Peer, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = cairnpb.NewPeerClient(conn).Forward(ctx, &cairnpb.Request{Op: &cairnpb.Request_Get{Get: &cairnpb.GetRequest{Table: "default", Key: []byte("k")}}})
	if err == nil {
		t.Fatal("plaintext Forward to an mTLS peer port succeeded")
	}
	// Nor with a certificate of another CA.
	cert, err := tls.LoadX509KeyPair(filepath.Join(rogue, "node.crt"), filepath.Join(rogue, "node.key"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(filepath.Join(good, "ca.crt"))
	pool.AppendCertsFromPEM(pem)
	conn2, err := grpc.NewClient(c.Nodes[0].Peer, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	if _, err = cairnpb.NewPeerClient(conn2).Forward(ctx, &cairnpb.Request{Op: &cairnpb.Request_Get{Get: &cairnpb.GetRequest{Table: "default", Key: []byte("k")}}}); err == nil {
		t.Fatal("Forward with a rogue certificate succeeded")
	}
	// The rogue node is expected to be unready; stop it so cleanup does
	// not report it.
	c.Nodes[2].Term()
}

func TestClientTLSAndCertUser(t *testing.T) {
	dir := t.TempDir()
	certs(t, dir, "alice", "root")
	c := newCluster(t)
	ports := freePorts(t, 3)
	nd := &Node{c: c, Name: "n1", ID: 1, Client: fmt.Sprintf("127.0.0.1:%d", ports[0]), Peer: fmt.Sprintf("127.0.0.1:%d", ports[1]),
		DataDir: filepath.Join(c.dir, "d"), LogPath: filepath.Join(c.dir, "n1.log")}
	respAddr := fmt.Sprintf("127.0.0.1:%d", ports[2])
	nd.args = []string{"server", "--data-dir", nd.DataDir, "--listen", nd.Client, "--listen-peer", nd.Peer, "--listen-resp", respAddr,
		"--cert", filepath.Join(dir, "node.crt"), "--key", filepath.Join(dir, "node.key"), "--ca", filepath.Join(dir, "ca.crt")}
	c.Nodes = []*Node{nd}
	nd.Start()
	tlsFlags := []string{"--cacert", filepath.Join(dir, "ca.crt")}
	asRootCert := append([]string{"--cert", filepath.Join(dir, "root.crt"), "--key", filepath.Join(dir, "root.key")}, tlsFlags...)
	waitFor(t, readyTimeout, "TLS node answers", func() error {
		_, err := cairnCLIErr(nd.Client, "", nil, append([]string{"table", "ls"}, tlsFlags...)...)
		return err
	})
	// Users root (password) and alice (certificate only), alice reads
	// table default; then auth on. The root user authenticates with its
	// client certificate from here on.
	cairnCLI(t, nd.Client, rootPassword+"\n", nil, append([]string{"user", "add", "root"}, tlsFlags...)...)
	cairnCLI(t, nd.Client, "unused-password\n", nil, append([]string{"user", "add", "alice"}, tlsFlags...)...)
	cairnCLI(t, nd.Client, "", nil, append([]string{"role", "add", "r"}, tlsFlags...)...)
	cairnCLI(t, nd.Client, "", nil, append([]string{"role", "grant", "r", "read", "default"}, tlsFlags...)...)
	cairnCLI(t, nd.Client, "", nil, append([]string{"user", "grant", "alice", "r"}, tlsFlags...)...)
	cairnCLI(t, nd.Client, "", nil, append([]string{"auth", "enable"}, tlsFlags...)...)
	cairnCLI(t, nd.Client, "", nil, append([]string{"put", "k", "v"}, asRootCert...)...)
	asAlice := append([]string{"--cert", filepath.Join(dir, "alice.crt"), "--key", filepath.Join(dir, "alice.key")}, tlsFlags...)
	if out := cairnCLI(t, nd.Client, "", nil, append([]string{"get", "k"}, asAlice...)...); strings.TrimSpace(out) != "v" {
		t.Fatalf("alice get = %q", out)
	}
	if _, err := cairnCLIErr(nd.Client, "", nil, append([]string{"put", "k", "x"}, asAlice...)...); err == nil || !strings.Contains(err.Error(), "permission") {
		t.Fatalf("alice put: %v", err)
	}
	if _, err := cairnCLIErr(nd.Client, "", nil, append([]string{"get", "k"}, tlsFlags...)...); err == nil {
		t.Fatal("anonymous TLS get succeeded with auth on")
	}
	// Plain HTTP to the TLS port fails; HTTPS with the CA works.
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	req, _ := http.NewRequest("GET", "https://"+nd.Client+"/v1/kv/default/k", nil)
	req.SetBasicAuth("root", rootPassword)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("https get as root: %d", resp.StatusCode)
	}
	// RESP over TLS: a client certificate authenticates as its CN.
	ac, err := tls.LoadX509KeyPair(filepath.Join(dir, "alice.crt"), filepath.Join(dir, "alice.key"))
	if err != nil {
		t.Fatal(err)
	}
	arc, err := tls.Dial("tcp", respAddr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", Certificates: []tls.Certificate{ac}})
	if err != nil {
		t.Fatalf("RESP over TLS as alice: %v", err)
	}
	defer arc.Close()
	_ = arc.SetDeadline(time.Now().Add(10 * time.Second))
	arw := bufio.NewReadWriter(bufio.NewReader(arc), bufio.NewWriter(arc))
	if got := respCmd(t, arw, "GET", "k"); got != "v" {
		t.Fatalf("RESP GET as alice by certificate: %q", got)
	}
	if got := respCmd(t, arw, "SET", "k", "x"); !strings.HasPrefix(got, "-NOPERM") {
		t.Fatalf("RESP SET as alice by certificate: %q", got)
	}
	// Without a certificate: AUTH with a password.
	rc, err := tls.Dial("tcp", respAddr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("RESP over TLS: %v", err)
	}
	defer rc.Close()
	_ = rc.SetDeadline(time.Now().Add(10 * time.Second))
	rrw := bufio.NewReadWriter(bufio.NewReader(rc), bufio.NewWriter(rc))
	if got := respCmd(t, rrw, "GET", "k"); !strings.HasPrefix(got, "-NOAUTH") {
		t.Fatalf("RESP over TLS before AUTH: %q", got)
	}
	if got := respCmd(t, rrw, "AUTH", "root", rootPassword); got != "+OK" {
		t.Fatalf("RESP over TLS AUTH: %q", got)
	}
	if got := respCmd(t, rrw, "GET", "k"); got != "v" {
		t.Fatalf("RESP over TLS GET: %q", got)
	}
	if plain, err := net.DialTimeout("tcp", respAddr, 5*time.Second); err == nil {
		_ = plain.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprint(plain, "PING\r\n")
		buf := make([]byte, 64)
		n, _ := plain.Read(buf)
		plain.Close()
		if strings.Contains(string(buf[:n]), "PONG") {
			t.Fatal("plaintext RESP answered on the TLS port")
		}
	}
	// TLS 1.1 is refused.
	old := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS11}}}
	if resp, err := old.Get("https://" + nd.Client + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatal("TLS 1.1 accepted")
	}
}
