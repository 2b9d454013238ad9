package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromium finds Debian's headless-capable Chromium (scripts/deps.sh
// installs it): the binary itself, not Debian's launcher script.
func chromium(t *testing.T) string {
	if _, err := os.Stat("/usr/lib/chromium/chromium"); err == nil {
		return "/usr/lib/chromium/chromium"
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no chromium found: run scripts/deps.sh (apt-get install -y chromium)")
	return ""
}

// TestConsole drives the web console in headless Chromium against a real
// 3-node cluster with auth on: the page asks for a login, root (seeing the
// cluster needs admin) logs in, sees all three nodes and the map, browses a key written through the
// API, edits it (a conditional write the cluster acknowledges), sees the
// new version in its history, and a screenshot is saved as an artifact
// (CAIRN_ARTIFACTS, else the test's temp dir).
func TestConsole(t *testing.T) {
	exe := chromium(t)
	c := StartCluster(t, 3)
	n := c.Nodes[1]
	setupAuth(t, c.Nodes[0].Client)
	waitFor(t, 10*time.Second, "auth enabled", func() error {
		if r := n.Get("default", "x"); r.Status != 401 {
			return fmt.Errorf("anonymous get: %s", r)
		}
		return nil
	})
	writer := basic("writer", writerPassword)
	v1 := n.MustPut(t, "default", "console/greeting", []byte("hello"), writer...)

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.Headless, chromedp.DisableGPU,
		// Containers: no zygote process (it cannot start here as root
		// without a sandbox), no /dev/shm assumptions.
		chromedp.Flag("no-zygote", true), chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1200, 900))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()

	base := "http://" + n.Client
	// The first action starts the browser: no timeout on its context.
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/ui")); err != nil {
		t.Fatalf("console: %v", err)
	}
	tctx, tcancel := context.WithTimeout(ctx, 90*time.Second)
	defer tcancel()
	err := chromedp.Do(tctx,
		chromedp.WaitVisible(chromedp.ID("login-form")),
		chromedp.SendKeys(chromedp.ID("login-user"), "root"),
		chromedp.SendKeys(chromedp.ID("login-pass"), rootPassword),
		chromedp.Click(chromedp.ID("login-btn")),
		chromedp.WaitVisible(chromedp.ID("app")),
		chromedp.WaitVisible(chromedp.CSS(`#nodes li[data-node="n3"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#map-svg circle.leader`)),
	)
	if err != nil {
		t.Fatalf("console login: %v\npage: %s", err, page(ctx))
	}
	text := func(id string) string {
		s, err := chromedp.Run(tctx, chromedp.Text(chromedp.ID(id)))
		if err != nil {
			t.Fatalf("console: text of #%s: %v", id, err)
		}
		return s
	}
	nodes := text("nodes")
	err = chromedp.Do(tctx,
		chromedp.SetValue(chromedp.ID("prefix"), "console/"),
		chromedp.Submit(chromedp.ID("browse")),
		chromedp.WaitVisible(chromedp.CSS(`#keys li[data-key="console/greeting"]`)),
	)
	if err != nil {
		t.Fatalf("console browse: %v\npage: %s", err, page(ctx))
	}
	keys := text("keys")
	err = chromedp.Do(tctx,
		chromedp.Click(chromedp.CSS(`#keys li[data-key="console/greeting"]`)),
		chromedp.WaitVisible(chromedp.ID("detail")),
		chromedp.WaitVisible(chromedp.CSS(`#history li`)),
		chromedp.SetValue(chromedp.ID("value"), "hello, console"),
		chromedp.Click(chromedp.ID("save")),
		chromedp.WaitVisible(chromedp.CSS(`#status.ok`)),
	)
	if err != nil {
		t.Fatalf("console edit: %v\npage: %s", err, page(ctx))
	}
	status, version, history := text("status"), text("key-version"), text("history")
	// Draining n3 makes the coordinator act: its decisions, with reasons,
	// appear on the page.
	drain, _ := json.Marshal(map[string]any{"id": 3, "action": "drain"})
	if r := c.Nodes[0].Do(opTimeout, "POST", "/v1/cluster/nodes", drain, basic("root", rootPassword)...); r.Status != 200 {
		t.Fatalf("drain n3: %s", r)
	}
	err = chromedp.Do(tctx, chromedp.WaitVisible(chromedp.CSS(`#decisions tr`)))
	if err != nil {
		t.Fatalf("console decisions: %v\npage: %s", err, page(ctx))
	}
	decisions := text("decisions")
	if !strings.Contains(decisions, "draining") || !strings.Contains(text("nodes"), "[draining]") {
		t.Errorf("decisions %q / nodes %q do not show the drain of n3", decisions, text("nodes"))
	}
	shot, err := chromedp.Run(tctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	dir := os.Getenv("CAIRN_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err == nil {
		path := filepath.Join(dir, "console.png")
		if err := os.WriteFile(path, shot, 0o644); err != nil {
			t.Errorf("screenshot: %v", err)
		}
		t.Logf("screenshot: %s (%d bytes)", path, len(shot))
	}
	for _, name := range []string{"n1", "n2", "n3"} {
		if !strings.Contains(nodes, name+" (") || !strings.Contains(nodes, "up") {
			t.Errorf("node %s missing or down on the page: %q", name, nodes)
		}
	}
	if !strings.Contains(keys, "console/greeting") {
		t.Errorf("key list %q", keys)
	}
	if !strings.HasPrefix(status, "saved as version ") || strings.TrimPrefix(status, "saved as version ") != version {
		t.Errorf("status %q, version shown %q", status, version)
	}
	if !strings.Contains(history, "hello, console") || !strings.Contains(history, fmt.Sprintf("v%d put: hello", v1)) {
		t.Errorf("history on the page: %q", history)
	}
	// The edit is in the cluster, through another node.
	r := c.Nodes[2].Get("default", "console/greeting", writer...)
	if r.Status != 200 || string(r.Body) != "hello, console" {
		t.Fatalf("after the edit: %s", r)
	}
	if len(shot) < 1000 {
		t.Errorf("screenshot of %d bytes", len(shot))
	}
	// The profiler is for cluster admins only.
	if r := n.Do(opTimeout, "GET", "/debug/pprof/goroutine?debug=1", nil, writer...); r.Status != 403 {
		t.Errorf("pprof as writer: %s", r)
	}
	if r := n.Do(opTimeout, "GET", "/debug/pprof/goroutine?debug=1", nil, basic("root", rootPassword)...); r.Status != 200 || !strings.Contains(string(r.Body), "goroutine") {
		t.Errorf("pprof as root: %s", r)
	}
}

// page returns the body of the console's tab, for failure messages.
func page(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	html, err := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("body")))
	if err != nil {
		return err.Error()
	}
	return html
}
