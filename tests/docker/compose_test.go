// Package docker tests the container packaging: the FROM scratch image
// (deploy/docker/Dockerfile) and the 3-node compose cluster
// (deploy/docker/compose.yaml), with a real Docker engine.
package docker

import (
	"bytes"
	"context"
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
)

// TestComposeCluster builds the image, starts the compose cluster on free
// host ports, writes through one node and reads through another, kills
// the first node's container (SIGKILL) and keeps writing through the
// others, restarts it and reads everything back through it.
func TestComposeCluster(t *testing.T) {
	if _, err := exec.LookPath("docker-compose"); err != nil {
		t.Skip("docker-compose is not installed: the container packaging test needs a Docker engine and docker-compose")
	}
	if out, err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		t.Skipf("no Docker engine answers (docker info: %v: %s): the container packaging test needs one", err, bytes.TrimSpace(out))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	suffix := fmt.Sprintf("%d", time.Now().UnixNano()%1e9)
	image, project := "cairn:test-"+suffix, "cairntest"+suffix

	// The image: the static binary next to the Dockerfile.
	build := t.TempDir()
	run(ctx, t, root, []string{"CGO_ENABLED=0"}, "go", "build", "-o", filepath.Join(build, "cairn"), "./cmd/cairn")
	df, err := os.ReadFile(filepath.Join(root, "deploy/docker/Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(build, "Dockerfile"), df, 0o644); err != nil {
		t.Fatal(err)
	}
	run(ctx, t, build, nil, "docker", "build", "-q", "-t", image, ".")
	t.Cleanup(func() { _ = exec.Command("docker", "rmi", "-f", image).Run() })

	ports := freePorts(t, 4)
	env := []string{
		"CAIRN_IMAGE=" + image,
		fmt.Sprintf("CAIRN_PORT_N1=%d", ports[0]), fmt.Sprintf("CAIRN_PORT_N2=%d", ports[1]),
		fmt.Sprintf("CAIRN_PORT_N3=%d", ports[2]), fmt.Sprintf("CAIRN_RESP_N1=%d", ports[3]),
	}
	compose := func(args ...string) string {
		return run(ctx, t, filepath.Join(root, "deploy/docker"), env, "docker-compose", append([]string{"-p", project}, args...)...)
	}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := exec.Command("docker-compose", "-p", project, "-f", filepath.Join(root, "deploy/docker/compose.yaml"), "logs", "--tail", "40").CombinedOutput()
			t.Logf("container logs:\n%s", out)
		}
		c := exec.Command("docker-compose", "-p", project, "down", "-v", "--timeout", "5")
		c.Dir, c.Env = filepath.Join(root, "deploy/docker"), append(os.Environ(), env...)
		_ = c.Run()
	})
	compose("up", "-d")

	n1 := fmt.Sprintf("127.0.0.1:%d", ports[0])
	n2 := fmt.Sprintf("127.0.0.1:%d", ports[1])
	n3 := fmt.Sprintf("127.0.0.1:%d", ports[2])
	for _, n := range []string{n1, n2, n3} {
		waitFor(ctx, t, "node "+n+" ready", func() error { return expect(n, "GET", "/readyz", nil, 200) })
	}
	for i := range 20 {
		if err := expect(n1, "PUT", fmt.Sprintf("/v1/kv/default/k%d", i), []byte("v"), 200); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 {
		if err := expectBody(n3, fmt.Sprintf("/v1/kv/default/k%d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	// The Redis protocol is published too.
	if err := respPing(fmt.Sprintf("127.0.0.1:%d", ports[3])); err != nil {
		t.Fatal(err)
	}

	// n1 dies; the others elect leaders and keep taking writes.
	compose("kill", "-s", "SIGKILL", "n1")
	for i := 20; i < 30; i++ {
		key := fmt.Sprintf("/v1/kv/default/k%d", i)
		waitFor(ctx, t, "a write through n2 with n1 down", func() error { return expect(n2, "PUT", key, []byte("w"), 200) })
	}
	compose("start", "n1")
	waitFor(ctx, t, "n1 ready after its restart", func() error { return expect(n1, "GET", "/readyz", nil, 200) })
	for i := range 30 {
		want := "v"
		if i >= 20 {
			want = "w"
		}
		key := fmt.Sprintf("/v1/kv/default/k%d", i)
		waitFor(ctx, t, "n1 serving "+key, func() error { return expectBody(n1, key, want) })
	}
}

func run(ctx context.Context, t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir, cmd.Env = dir, append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

func expect(addr, method, path string, body []byte, status int) error {
	req, err := http.NewRequest(method, "http://"+addr+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		return fmt.Errorf("%s %s on %s: %d %s", method, path, addr, resp.StatusCode, bytes.TrimSpace(b))
	}
	return nil
}

func expectBody(addr, path, want string) error {
	resp, err := httpClient.Get("http://" + addr + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(b) != want {
		return fmt.Errorf("GET %s on %s: %d %q, want 200 %q", path, addr, resp.StatusCode, b, want)
	}
	return nil
}

func respPing(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	buf := make([]byte, 7)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "+PONG\r\n" {
		return fmt.Errorf("PING on %s: %q, %v", addr, buf, err)
	}
	return nil
}

func waitFor(ctx context.Context, t *testing.T, what string, f func() error) {
	t.Helper()
	var err error
	for ctx.Err() == nil {
		if err = f(); err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s: %v", what, err)
}

func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}
