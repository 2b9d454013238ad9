package e2e

// TestProtectedModeAtRunTime: a node restarted on 0.0.0.0 after auth was
// enabled (the README's path to a public node) serves loopback and
// non-loopback clients with credentials; once auth is disabled, clients
// from a non-loopback address are refused (HTTP 403, RESP -DENIED) while
// loopback clients are served. Needs a non-loopback IPv4 address on this
// machine (a container's eth0); without one the test fails.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func publicIPv4(t *testing.T) string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() {
			return ipn.IP.String()
		}
	}
	t.Fatal("no non-loopback IPv4 address on this machine: protected mode cannot be tested")
	return ""
}

func TestProtectedModeAtRunTime(t *testing.T) {
	ip := publicIPv4(t)
	c := newCluster(t)
	ports := freePorts(t, 3)
	nd := &Node{c: c, Name: "n1", ID: 1, Client: fmt.Sprintf("127.0.0.1:%d", ports[0]), Peer: fmt.Sprintf("127.0.0.1:%d", ports[1]),
		DataDir: filepath.Join(c.dir, "d"), LogPath: filepath.Join(c.dir, "n1.log")}
	resp := fmt.Sprintf("%d", ports[2])
	nd.args = []string{"server", "--data-dir", nd.DataDir, "--listen", nd.Client, "--listen-peer", nd.Peer, "--listen-resp", "127.0.0.1:" + resp}
	c.Nodes = []*Node{nd}
	nd.Start()
	nd.WaitReady()
	setupAuth(t, nd.Client)
	nd.Term()
	nd.args = []string{"server", "--data-dir", nd.DataDir, "--listen", fmt.Sprintf("0.0.0.0:%d", ports[0]), "--listen-peer", nd.Peer,
		"--listen-resp", "0.0.0.0:" + resp}
	nd.Start()
	nd.WaitReady()

	public := fmt.Sprintf("http://%s:%d/v1/kv/default/pub/k", ip, ports[0])
	get := func(url string, auth bool) int {
		req, _ := http.NewRequest("GET", url, nil)
		if auth {
			req.SetBasicAuth("writer", writerPassword)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode
	}
	if r := nd.Put("default", "pub/k", []byte("v"), basic("writer", writerPassword)...); r.Status != 200 {
		t.Fatalf("put: %s", r)
	}
	if code := get(public, true); code != 200 {
		t.Fatalf("public client with credentials, auth on: %d", code)
	}
	if code := get(public, false); code != 401 {
		t.Fatalf("public client without credentials, auth on: %d", code)
	}
	cairnCLI(t, nd.Client, "", rootEnv, "auth", "disable")
	if code := get(public, false); code != 403 {
		t.Fatalf("public client, auth off: %d, want 403 (protected mode)", code)
	}
	if r := nd.Get("default", "pub/k"); r.Status != 200 {
		t.Fatalf("loopback client, auth off: %s", r)
	}
	nc, err := net.DialTimeout("tcp", ip+":"+resp, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	rw := bufio.NewReadWriter(bufio.NewReader(nc), bufio.NewWriter(nc))
	if got := respCmd(t, rw, "GET", "pub/k"); !strings.HasPrefix(got, "-DENIED") {
		t.Fatalf("public RESP client, auth off: %q, want -DENIED", got)
	}
}
