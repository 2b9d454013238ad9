package robustness

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Timeouts of the harness; every wait is bounded by one of these.
const (
	readyTimeout  = 30 * time.Second // a started node answers /readyz 200
	exitTimeout   = 10 * time.Second // a SIGKILLed node has been reaped
	pollEvery     = 100 * time.Millisecond
	logTailLines  = 40
	serverTimeout = 3 * time.Second // --request-timeout of the nodes
)

// clusterOpts configures StartCluster.
type clusterOpts struct {
	nodes int
	// tmpfs lists nodes (1-based) whose data dir is a tmpfs of tmpfsSize.
	tmpfs     []int
	tmpfsSize int64
	// expectCrashes: nodes may exit on their own (disk full) and log
	// panics of the storage layer; the harness records, not fails, them.
	expectCrashes bool
	extraArgs     []string
}

// Cluster is the cairn processes of one test, their data, and the
// firewall of their links. Everything is torn down in t.Cleanup.
type Cluster struct {
	t      testing.TB
	dir    string
	Nodes  []*Node
	fw     *firewall
	opts   clusterOpts
	admin  *http.Client
	start  time.Time
	events *timeline

	crashMu sync.Mutex
	crashes []string // unexpected exits, as "n2: exit status 2 at 3.2s"
}

// Node is one cairn node: its process (if running), ports, data and uid.
type Node struct {
	c        *Cluster
	Name     string
	ID       uint64 // 1..N by sorted name, as the server assigns them
	UID      int
	Client   string // --listen
	Peer     string // --listen-peer
	PeerPort int
	DataDir  string
	LogPath  string
	args     []string

	mu     sync.Mutex
	proc   *proc
	paused atomic.Bool
}

type proc struct {
	pid      int
	done     chan struct{}
	state    *os.ProcessState
	expected atomic.Bool // the harness killed it
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// StartCluster starts opts.nodes nodes named n1..nN under uids
// uidBlock()+1..uidBlock()+N, bootstrapping one cluster, and waits until
// each answers /readyz.
func StartCluster(t testing.TB, opts clusterOpts, events *timeline) *Cluster {
	t.Helper()
	requireFaultTools(t)
	dir, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", runDirGlob, os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	// Cleanups run last-in first-out: the dir goes last, after the
	// processes are dead, the mounts gone and the logs saved.
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("CAIRN_ROBUST_KEEP") != "" {
			// The marker keeps later runs' stale cleanup off it.
			_ = os.WriteFile(filepath.Join(dir, keepMarker), nil, 0o644)
			t.Logf("keeping data dirs and logs in %s", dir)
			return
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c := &Cluster{t: t, dir: dir, opts: opts, start: events.start, events: events,
		admin: &http.Client{Transport: &http.Transport{
			DialContext:     (&net.Dialer{Timeout: time.Second}).DialContext,
			MaxIdleConns:    32,
			IdleConnTimeout: 10 * time.Second,
		}}}
	uids, err := uidBlock()
	if err != nil {
		t.Fatal(err)
	}
	ports := freePorts(t, 2*opts.nodes)
	var initial []string
	for i := range opts.nodes {
		n := &Node{
			c:        c,
			Name:     fmt.Sprintf("n%d", i+1),
			ID:       uint64(i + 1),
			UID:      uids + i + 1,
			Client:   fmt.Sprintf("127.0.0.1:%d", ports[2*i]),
			Peer:     fmt.Sprintf("127.0.0.1:%d", ports[2*i+1]),
			PeerPort: ports[2*i+1],
		}
		n.DataDir = filepath.Join(dir, n.Name)
		n.LogPath = filepath.Join(dir, n.Name+".log")
		initial = append(initial, n.Name+"="+n.Peer)
		c.Nodes = append(c.Nodes, n)
	}
	for _, n := range c.Nodes {
		if err := os.Mkdir(n.DataDir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(n.DataDir, n.UID, n.UID); err != nil {
			t.Fatal(err)
		}
		for _, i := range opts.tmpfs {
			if i == int(n.ID) {
				if err := mountTmpfs(n.DataDir, opts.tmpfsSize, n.UID); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() {
					if err := unmount(n.DataDir); err != nil {
						t.Errorf("cleanup: %v", err)
					}
				})
			}
		}
		n.args = []string{"server",
			"--name", n.Name,
			"--data-dir", n.DataDir,
			"--listen", n.Client,
			"--listen-peer", n.Peer,
			"--listen-resp", "",
			"--initial-cluster", strings.Join(initial, ","),
			"--tick-interval", "100ms",
			"--election-ticks", "10",
			"--request-timeout", serverTimeout.String(),
		}
		n.args = append(n.args, opts.extraArgs...)
	}
	c.fw = newFirewall(t, c.Nodes) // marks connections: before any node starts
	t.Cleanup(c.cleanup)
	for _, n := range c.Nodes {
		n.Start()
	}
	for _, n := range c.Nodes {
		if err := n.WaitReady(readyTimeout); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// cleanup kills every process (SIGKILL works on stopped ones too), scans
// the logs for panics and races, and prints their tails on failure.
func (c *Cluster) cleanup() {
	t := c.t
	for _, n := range c.Nodes {
		n.kill()
	}
	c.admin.CloseIdleConnections()
	for _, cr := range c.Crashes() {
		if c.opts.expectCrashes {
			t.Logf("node exit not caused by the harness (expected in this scenario): %s", cr)
		} else {
			t.Errorf("node exited on its own (crash): %s", cr)
		}
	}
	for _, n := range c.Nodes {
		data, err := os.ReadFile(n.LogPath)
		if err != nil {
			continue
		}
		for _, bad := range []string{"panic:", "DATA RACE", "fatal error:"} {
			i := bytes.Index(data, []byte(bad))
			if i < 0 {
				continue
			}
			msg := fmt.Sprintf("%s log contains %q:\n%s", n.Name, bad, excerpt(data, i, 25))
			if c.opts.expectCrashes && bad != "DATA RACE" && storageFailure(data) {
				t.Logf("(expected with a full disk) %s", msg)
			} else {
				t.Error(msg)
			}
		}
		if t.Failed() {
			t.Logf("---- tail of %s (%s) ----\n%s", n.Name, n.LogPath, tail(data, logTailLines))
		}
	}
}

// storageFailure reports whether a log shows the node stopping on a
// storage error (what a full disk must cause), rather than another crash.
func storageFailure(log []byte) bool {
	for _, s := range []string{"no space left on device", "fatal storage error"} {
		if bytes.Contains(log, []byte(s)) {
			return true
		}
	}
	return false
}

// countLog counts the lines of all node logs that contain s.
func (c *Cluster) countLog(s string) int {
	n := 0
	for _, nd := range c.Nodes {
		if data, err := os.ReadFile(nd.LogPath); err == nil {
			n += bytes.Count(data, []byte(s))
		}
	}
	return n
}

// Crashes returns the exits no fault of the harness caused.
func (c *Cluster) Crashes() []string {
	c.crashMu.Lock()
	defer c.crashMu.Unlock()
	return append([]string(nil), c.crashes...)
}

func (c *Cluster) since() time.Duration { return time.Since(c.start) }

// Start starts the node's process; it does not wait for readiness.
func (n *Node) Start() {
	t := n.c.t
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc != nil && !n.proc.exited() {
		t.Errorf("%s: start while running (pid %d)", n.Name, n.proc.pid)
		return
	}
	logf, err := os.OpenFile(n.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Errorf("%s: log file: %v", n.Name, err)
		return
	}
	cmd := exec.Command(binary, n.args...)
	cmd.Dir = n.c.dir
	cmd.Env = childEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:    true,            // own process group
		Pdeathsig:  syscall.SIGKILL, // dies with the test binary
		Credential: &syscall.Credential{Uid: uint32(n.UID), Gid: uint32(n.UID), NoSetGroups: true},
	}
	fmt.Fprintf(logf, "=== robustness %s: start %s %s\n", time.Now().Format(time.RFC3339Nano), binary, strings.Join(n.args, " "))
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Errorf("%s: start: %v", n.Name, err)
		return
	}
	p := &proc{pid: cmd.Process.Pid, done: make(chan struct{})}
	n.proc = p
	n.paused.Store(false)
	go func() {
		_ = cmd.Wait()
		p.state = cmd.ProcessState
		fmt.Fprintf(logf, "=== robustness %s: process %d exited: %v\n", time.Now().Format(time.RFC3339Nano), p.pid, cmd.ProcessState)
		logf.Close()
		close(p.done)
		if !p.expected.Load() {
			at := n.c.since()
			n.c.crashMu.Lock()
			n.c.crashes = append(n.c.crashes, fmt.Sprintf("%s: %v at %v", n.Name, p.state, at.Round(time.Millisecond)))
			n.c.crashMu.Unlock()
			n.c.events.add(at, at, n.Name, "exited on its own: "+p.state.String())
		}
	}()
}

func (n *Node) current() *proc {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc
}

// Running reports whether the node's process is alive (stopped or not).
func (n *Node) Running() bool {
	p := n.current()
	return p != nil && !p.exited()
}

// Serving reports whether the node is running and not stopped.
func (n *Node) Serving() bool { return n.Running() && !n.paused.Load() }

// Kill9 SIGKILLs the node's process group and waits until it is reaped.
func (n *Node) Kill9() { n.kill() }

func (n *Node) kill() {
	p := n.current()
	if p == nil {
		return
	}
	p.expected.Store(true)
	if !p.exited() {
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	}
	select {
	case <-p.done:
	case <-time.After(exitTimeout):
		n.c.t.Errorf("%s: pid %d did not exit %v after SIGKILL", n.Name, p.pid, exitTimeout)
	}
	n.paused.Store(false)
}

// Term sends SIGTERM and waits for the exit; anything but a clean exit
// (status 0) within exitTimeout is an error (the node is then killed).
func (n *Node) Term() error {
	p := n.current()
	if p == nil || p.exited() {
		return fmt.Errorf("%s: SIGTERM of a node that is not running", n.Name)
	}
	p.expected.Store(true)
	if err := syscall.Kill(p.pid, syscall.SIGTERM); err != nil {
		return fmt.Errorf("%s: SIGTERM: %w", n.Name, err)
	}
	select {
	case <-p.done:
	case <-time.After(exitTimeout):
		// SIGQUIT makes the Go runtime print every goroutine into the
		// node's log: the evidence of where the shutdown hangs.
		_ = syscall.Kill(p.pid, syscall.SIGQUIT)
		select {
		case <-p.done:
		case <-time.After(2 * time.Second):
		}
		n.kill()
		return fmt.Errorf("%s: still running %v after SIGTERM (goroutine dump by SIGQUIT in %s; killed)", n.Name, exitTimeout, n.LogPath)
	}
	if p.state == nil || !p.state.Exited() || p.state.ExitCode() != 0 {
		return fmt.Errorf("%s: exit after SIGTERM is %s, want status 0", n.Name, exitString(p))
	}
	return nil
}

// Pause stops the node's processes with SIGSTOP (a frozen VM, a long GC).
func (n *Node) Pause() error {
	p := n.current()
	if p == nil || p.exited() {
		return fmt.Errorf("%s: pause of a node that is not running", n.Name)
	}
	if err := syscall.Kill(-p.pid, syscall.SIGSTOP); err != nil {
		return fmt.Errorf("%s: SIGSTOP: %w", n.Name, err)
	}
	n.paused.Store(true)
	return nil
}

// Resume continues a paused node with SIGCONT.
func (n *Node) Resume() error {
	p := n.current()
	if p == nil || p.exited() {
		n.paused.Store(false)
		return nil
	}
	if err := syscall.Kill(-p.pid, syscall.SIGCONT); err != nil {
		return fmt.Errorf("%s: SIGCONT: %w", n.Name, err)
	}
	n.paused.Store(false)
	return nil
}

// WaitReady waits until the node answers /readyz with 200.
func (n *Node) WaitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		p := n.current()
		if p == nil || p.exited() {
			return fmt.Errorf("%s exited while waiting for readiness: %v", n.Name, exitString(p))
		}
		status, body, err := n.adminGet("/readyz", time.Second)
		if err == nil && status == 200 {
			return nil
		}
		last = fmt.Sprintf("%d %s %v", status, strings.TrimSpace(string(body)), err)
		time.Sleep(pollEvery)
	}
	return fmt.Errorf("%s: not ready within %v; last /readyz: %s", n.Name, timeout, last)
}

func (n *Node) adminGet(path string, timeout time.Duration) (int, []byte, error) {
	return n.admin("GET", path, nil, timeout)
}

func (n *Node) admin(method, path string, body []byte, timeout time.Duration) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+n.Client+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	resp, err := n.c.admin.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}

// rangeStatus is the part of GET /v1/cluster the harness reads.
type rangeStatus struct {
	ID           uint64 `json:"id"`
	Table        string `json:"table"`
	Start        string `json:"start"`
	Leader       uint64 `json:"leader"`
	Term         uint64 `json:"term"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
}

type clusterStatus struct {
	Ranges []rangeStatus `json:"ranges"`
}

func (n *Node) status(timeout time.Duration) (*clusterStatus, error) {
	code, body, err := n.adminGet("/v1/cluster", timeout)
	if err != nil {
		return nil, err
	}
	if code != 200 {
		return nil, fmt.Errorf("%s: /v1/cluster: %d %s", n.Name, code, body)
	}
	var st clusterStatus
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

func (st *clusterStatus) table(name string) *rangeStatus {
	for i := range st.Ranges {
		if st.Ranges[i].Table == name && st.Ranges[i].Start == "" {
			return &st.Ranges[i]
		}
	}
	return nil
}

// Leader returns the serving node that reports itself leader of table's
// first range (the one the workload uses), waiting up to timeout; nil if
// none does.
func (c *Cluster) Leader(table string, timeout time.Duration) *Node {
	return c.LeaderAmong(table, c.Nodes, timeout)
}

// LeaderAmong is Leader asking only these nodes.
func (c *Cluster) LeaderAmong(table string, nodes []*Node, timeout time.Duration) *Node {
	deadline := time.Now().Add(timeout)
	for {
		for _, n := range nodes {
			if !n.Serving() {
				continue
			}
			// Longer than the node's own wait for the coordinator's part
			// of the status (1 s, router.ClusterStatus): a node cut off
			// from the coordinator answers only after it, leader or not.
			st, err := n.status(1500 * time.Millisecond)
			if err != nil {
				continue
			}
			if r := st.table(table); r != nil && r.Leader == n.ID {
				return n
			}
		}
		if time.Now().After(deadline) {
			return nil
		}
		time.Sleep(pollEvery)
	}
}

// Serving returns the nodes running and not paused.
func (c *Cluster) Serving() []*Node {
	var out []*Node
	for _, n := range c.Nodes {
		if n.Serving() {
			out = append(out, n)
		}
	}
	return out
}

// Others returns every node but these.
func (c *Cluster) Others(not ...*Node) []*Node {
	var out []*Node
outer:
	for _, n := range c.Nodes {
		for _, x := range not {
			if n == x {
				continue outer
			}
		}
		out = append(out, n)
	}
	return out
}

// freePorts returns n distinct TCP ports free on 127.0.0.1, below the
// kernel's ephemeral range (so no outgoing connection takes the port of a
// node that is down for a restart).
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	lo, hi := 20000, ephemeralLow()
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	ports := make([]int, 0, n)
	for attempt := 0; len(ports) < n; attempt++ {
		if attempt > 1000 {
			t.Fatalf("no free port in [%d, %d) after %d tries", lo, hi, attempt)
		}
		p := lo + rand.IntN(hi-lo)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		lns = append(lns, ln)
		ports = append(ports, p)
	}
	return ports
}

func ephemeralLow() int {
	low := 32768
	if data, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(data)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil {
				low = v
			}
		}
	}
	return max(low, 21000)
}

func exitString(p *proc) string {
	if p == nil {
		return "never started"
	}
	if !p.exited() {
		return "running"
	}
	if p.state == nil {
		return "exited"
	}
	return p.state.String()
}

// childEnv is the environment without CAIRN_* variables, so that a
// developer's settings cannot change the servers under test.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CAIRN_") {
			env = append(env, kv)
		}
	}
	return env
}

func tail(data []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d lines before)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

func excerpt(data []byte, i, n int) string {
	start := bytes.LastIndexByte(data[:i], '\n') + 1
	sc := bufio.NewScanner(bytes.NewReader(data[start:]))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var out []string
	for len(out) < n && sc.Scan() {
		out = append(out, sc.Text())
	}
	return strings.Join(out, "\n")
}
