package e2e

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
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

// Timeouts of the harness. Every wait is bounded by one of these.
const (
	readyTimeout = 30 * time.Second // a started node answers /readyz 200
	exitTimeout  = 10 * time.Second // a signalled node has exited
	leaderWait   = 15 * time.Second // some node reports itself leader
	pollEvery    = 100 * time.Millisecond
	logTailLines = 60 // lines of each node's log printed on failure
)

// Cluster is a set of cairn processes started by one test. Every process is
// killed in t.Cleanup, whatever the outcome of the test.
type Cluster struct {
	t     testing.TB
	dir   string // data dirs and logs
	Nodes []*Node
	http  *httpClient
}

// Node is one cairn process (or its data dir and ports while it is down).
type Node struct {
	c       *Cluster
	Name    string
	ID      uint64 // as the server assigns it: 1..N by sorted name
	Client  string // --listen, host:port
	Peer    string // --listen-peer, host:port
	DataDir string
	LogPath string
	// args are the server's flags; ExtraArgs are appended on the next
	// (re)start only when set before it.
	args      []string
	ExtraArgs []string

	mu   sync.Mutex
	proc *proc // the current process; nil before the first start
	// ready is set when /readyz answered 200 after the last start, and
	// cleared when the harness stops the process.
	ready atomic.Bool
}

// proc is one run of a node's process.
type proc struct {
	cmd  *exec.Cmd
	pid  int
	done chan struct{} // closed when the process has exited and been reaped
	// After done: the exit state.
	state   *os.ProcessState
	waitErr error
	// expected is set before the harness signals the process, so that its
	// exit is not reported as a crash.
	expected bool
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// StartCluster starts n nodes named n1..nN that bootstrap one cluster with
// --initial-cluster, each with extraArgs, and waits until all are ready.
func StartCluster(t testing.TB, n int, extraArgs ...string) *Cluster {
	t.Helper()
	c := newCluster(t)
	ports := freePorts(t, 2*n)
	dir := c.dir
	var initial []string
	for i := range n {
		nd := &Node{
			c:      c,
			Name:   fmt.Sprintf("n%d", i+1),
			ID:     uint64(i + 1),
			Client: fmt.Sprintf("127.0.0.1:%d", ports[2*i]),
			Peer:   fmt.Sprintf("127.0.0.1:%d", ports[2*i+1]),
		}
		initial = append(initial, nd.Name+"="+nd.Peer)
		c.Nodes = append(c.Nodes, nd)
	}
	for _, nd := range c.Nodes {
		nd.DataDir = filepath.Join(dir, nd.Name)
		nd.LogPath = filepath.Join(dir, nd.Name+".log")
		nd.args = []string{"server",
			"--name", nd.Name,
			"--data-dir", nd.DataDir,
			"--listen", nd.Client,
			"--listen-peer", nd.Peer,
			"--listen-resp", "",
			"--initial-cluster", strings.Join(initial, ","),
		}
		nd.args = append(nd.args, extraArgs...)
	}
	for _, nd := range c.Nodes {
		nd.Start()
	}
	c.WaitReady()
	return c
}

// StartSingle starts `cairn server` with nothing but a data dir and free
// ports: the defaults of the contract otherwise (name n1, single node).
func StartSingle(t testing.TB) *Cluster {
	t.Helper()
	c := newCluster(t)
	ports := freePorts(t, 3)
	dir := c.dir
	nd := &Node{
		c:       c,
		Name:    "n1",
		ID:      1,
		Client:  fmt.Sprintf("127.0.0.1:%d", ports[0]),
		Peer:    fmt.Sprintf("127.0.0.1:%d", ports[1]),
		DataDir: filepath.Join(dir, "data"),
		LogPath: filepath.Join(dir, "n1.log"),
	}
	nd.args = []string{"server",
		"--data-dir", nd.DataDir,
		"--listen", nd.Client,
		"--listen-peer", nd.Peer,
		"--listen-resp", fmt.Sprintf("127.0.0.1:%d", ports[2]),
	}
	c.Nodes = []*Node{nd}
	nd.Start()
	c.WaitReady()
	return c
}

// Join starts a new node that joins the running cluster through via's peer
// address (server --join), with the flags of the cluster's first node
// minus --initial-cluster. Its ID is assigned by the cluster; the harness
// learns it from the node's log.
func (c *Cluster) Join(via *Node, extraArgs ...string) *Node {
	c.t.Helper()
	ports := freePorts(c.t, 2)
	i := len(c.Nodes) + 1
	nd := &Node{
		c:      c,
		Name:   fmt.Sprintf("n%d", i),
		Client: fmt.Sprintf("127.0.0.1:%d", ports[0]),
		Peer:   fmt.Sprintf("127.0.0.1:%d", ports[1]),
	}
	nd.DataDir = filepath.Join(c.dir, nd.Name)
	nd.LogPath = filepath.Join(c.dir, nd.Name+".log")
	nd.args = []string{"server", "--name", nd.Name, "--data-dir", nd.DataDir, "--listen", nd.Client,
		"--listen-peer", nd.Peer, "--listen-resp", "", "--join", via.Peer}
	// The first node's other flags (timing, split size) apply to all.
	if len(c.Nodes) > 0 {
		a := c.Nodes[0].args
		for j := 0; j < len(a); j++ {
			switch a[j] {
			case "server":
			case "--name", "--data-dir", "--listen", "--listen-peer", "--listen-resp", "--initial-cluster", "--join":
				j++
			default:
				nd.args = append(nd.args, a[j])
			}
		}
	}
	nd.args = append(nd.args, extraArgs...)
	c.Nodes = append(c.Nodes, nd)
	nd.Start()
	waitFor(c.t, readyTimeout, nd.Name+" admitted", func() error {
		data, _ := os.ReadFile(nd.LogPath)
		const marker = "joined the cluster"
		i := bytes.Index(data, []byte(marker))
		if i < 0 {
			return fmt.Errorf("no %q in its log yet", marker)
		}
		line := data[i:]
		if j := bytes.IndexByte(line, '\n'); j >= 0 {
			line = line[:j]
		}
		k := bytes.Index(line, []byte("node_id="))
		if k < 0 {
			return fmt.Errorf("no node_id in %q", line)
		}
		f := strings.Fields(string(line[k+len("node_id="):]))
		id, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return err
		}
		nd.ID = id
		return nil
	})
	nd.WaitReady()
	return nd
}

func newCluster(t testing.TB) *Cluster {
	// TempDir first: cleanups run last-in first-out, so the processes are
	// killed (and their logs read) before the directory is removed.
	c := &Cluster{t: t, dir: t.TempDir(), http: newHTTPClient()}
	t.Cleanup(c.cleanup)
	return c
}

// cleanup reports crashes, kills every process, prints log tails on
// failure and scans logs for panics and races.
func (c *Cluster) cleanup() {
	t := c.t
	for _, n := range c.Nodes {
		n.mu.Lock()
		p := n.proc
		n.mu.Unlock()
		if p != nil && p.exited() && !p.expected {
			t.Errorf("%s exited on its own (crash?): %v", n.Name, exitString(p))
		}
	}
	for _, n := range c.Nodes {
		n.kill()
	}
	c.http.close()
	dir := os.Getenv("CAIRN_E2E_LOGDIR")
	for _, n := range c.Nodes {
		data, err := os.ReadFile(n.LogPath)
		if err != nil {
			continue
		}
		for _, bad := range []string{"panic:", "DATA RACE", "fatal error:", "level=ERROR"} {
			if i := bytes.Index(data, []byte(bad)); i >= 0 {
				msg := fmt.Sprintf("%s log contains %q:\n%s", n.Name, bad, excerpt(data, i, 30))
				if bad == "level=ERROR" {
					t.Log(msg) // worth reading, not a failure by itself
				} else {
					t.Error(msg)
				}
			}
		}
		if t.Failed() {
			t.Logf("---- tail of %s (%s) ----\n%s", n.Name, n.LogPath, tail(data, logTailLines))
		}
		if dir != "" {
			_ = os.MkdirAll(dir, 0o755)
			name := strings.NewReplacer("/", "_").Replace(t.Name()) + "-" + n.Name + ".log"
			_ = os.WriteFile(filepath.Join(dir, name), data, 0o644)
		}
	}
}

// Start starts the node's process; it does not wait for readiness.
func (n *Node) Start() {
	t := n.c.t
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc != nil && !n.proc.exited() {
		t.Fatalf("%s: start while running (pid %d)", n.Name, n.proc.pid)
	}
	logf, err := os.OpenFile(n.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatalf("%s: log file: %v", n.Name, err)
	}
	args := append(append([]string(nil), n.args...), n.ExtraArgs...)
	cmd := exec.Command(binary, args...)
	cmd.Dir = n.c.dir
	cmd.Env = childEnv()
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:   true,            // own process group: kill -9 reaches all of it
		Pdeathsig: syscall.SIGKILL, // and it dies if the test binary dies
	}
	fmt.Fprintf(logf, "=== e2e %s: start %s %s\n", time.Now().Format(time.RFC3339Nano), binary, strings.Join(quoteArgs(args), " "))
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("%s: start: %v", n.Name, err)
	}
	p := &proc{cmd: cmd, pid: cmd.Process.Pid, done: make(chan struct{})}
	n.proc = p
	n.ready.Store(false)
	go func() {
		err := cmd.Wait()
		p.state, p.waitErr = cmd.ProcessState, err
		fmt.Fprintf(logf, "=== e2e %s: process %d exited: %v\n", time.Now().Format(time.RFC3339Nano), p.pid, cmd.ProcessState)
		logf.Close()
		close(p.done)
	}()
}

// Running reports whether the node's process is alive.
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc != nil && !n.proc.exited()
}

func (n *Node) current() *proc {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc
}

// Kill9 kills the node's process group with SIGKILL and waits for it.
func (n *Node) Kill9() {
	t := n.c.t
	t.Helper()
	p := n.current()
	if p == nil || p.exited() {
		t.Fatalf("%s: kill -9 of a node that is not running", n.Name)
	}
	n.kill()
	t.Logf("%s: killed with SIGKILL", n.Name)
}

// kill SIGKILLs the process group (if running) and waits for the exit.
func (n *Node) kill() {
	p := n.current()
	if p == nil {
		return
	}
	p.expected = true
	n.ready.Store(false)
	if !p.exited() {
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	}
	select {
	case <-p.done:
	case <-time.After(exitTimeout):
		n.c.t.Errorf("%s: pid %d did not exit %v after SIGKILL", n.Name, p.pid, exitTimeout)
	}
}

// Term sends SIGTERM and requires a clean exit (status 0) within
// exitTimeout. It returns how long the shutdown took.
func (n *Node) Term() time.Duration {
	t := n.c.t
	t.Helper()
	p := n.current()
	if p == nil || p.exited() {
		t.Fatalf("%s: SIGTERM of a node that is not running", n.Name)
	}
	p.expected = true
	n.ready.Store(false)
	start := time.Now()
	if err := syscall.Kill(p.pid, syscall.SIGTERM); err != nil {
		t.Fatalf("%s: SIGTERM: %v", n.Name, err)
	}
	select {
	case <-p.done:
	case <-time.After(exitTimeout):
		n.kill()
		t.Fatalf("%s: still running %v after SIGTERM (killed now)", n.Name, exitTimeout)
	}
	took := time.Since(start)
	if p.state == nil || !p.state.Exited() || p.state.ExitCode() != 0 {
		t.Fatalf("%s: exit after SIGTERM is %s, want status 0", n.Name, exitString(p))
	}
	t.Logf("%s: SIGTERM -> exit 0 in %v", n.Name, took.Round(time.Millisecond))
	return took
}

// Restart starts a stopped node again (same ports, same data) and waits
// until it is ready.
func (n *Node) Restart() {
	n.c.t.Helper()
	n.Start()
	n.WaitReady()
}

// WaitReady waits until the node answers /readyz with 200.
func (n *Node) WaitReady() {
	t := n.c.t
	t.Helper()
	start := time.Now()
	var last string
	for time.Since(start) < readyTimeout {
		p := n.current()
		if p == nil || p.exited() {
			t.Fatalf("%s: exited while waiting for readiness: %s", n.Name, exitString(p))
		}
		r := n.Do(time.Second, "GET", "/readyz", nil)
		if r.Status == 200 {
			n.ready.Store(true)
			return
		}
		last = r.String()
		time.Sleep(pollEvery)
	}
	t.Fatalf("%s: not ready within %v; last /readyz: %s", n.Name, readyTimeout, last)
}

// WaitReady waits for every running node.
func (c *Cluster) WaitReady() {
	c.t.Helper()
	for _, n := range c.Nodes {
		if n.Running() {
			n.WaitReady()
		}
	}
}

// Running returns the nodes whose process is alive.
func (c *Cluster) Running() []*Node {
	var out []*Node
	for _, n := range c.Nodes {
		if n.Running() {
			out = append(out, n)
		}
	}
	return out
}

// Ready returns the nodes that are running and were ready since their
// last start.
func (c *Cluster) Ready() []*Node {
	var out []*Node
	for _, n := range c.Nodes {
		if n.ready.Load() && n.Running() {
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

// Node returns the node with this server-assigned ID, or nil.
func (c *Cluster) Node(id uint64) *Node {
	for _, n := range c.Nodes {
		if n.ID == id {
			return n
		}
	}
	return nil
}

// Leader returns the running node that reports itself the leader of the
// (first) range of table, waiting up to leaderWait for one.
func (c *Cluster) Leader(table string) *Node {
	c.t.Helper()
	var n *Node
	waitFor(c.t, leaderWait, "a leader of table "+table, func() error {
		var views []string
		for _, cand := range c.Running() {
			st, err := cand.ClusterStatus(time.Second)
			if err != nil {
				views = append(views, fmt.Sprintf("%s: %v", cand.Name, err))
				continue
			}
			r := st.Range(table)
			if r == nil {
				views = append(views, cand.Name+": no range of the table")
				continue
			}
			if r.Leader == cand.ID {
				n = cand
				return nil
			}
			views = append(views, fmt.Sprintf("%s: leader %d term %d", cand.Name, r.Leader, r.Term))
		}
		return errors.New(strings.Join(views, "; "))
	})
	return n
}

// ClusterStatus is the JSON of GET /v1/cluster.
type ClusterStatus struct {
	Nodes []struct {
		ID              uint64 `json:"id"`
		Name            string `json:"name"`
		Address         string `json:"address"`
		Alive           bool   `json:"alive"`
		Ranges          uint32 `json:"ranges"`
		Leaders         uint32 `json:"leaders"`
		State           string `json:"state"`
		LastHeartbeatMs int64  `json:"last_heartbeat_ms"`
	} `json:"nodes"`
	Ranges      []RangeStatus `json:"ranges"`
	Coordinator uint64        `json:"coordinator"`
	Decisions   []Decision    `json:"decisions"`
}

// RangeStatus is one range of ClusterStatus.
type RangeStatus struct {
	ID           uint64   `json:"id"`
	Table        string   `json:"table"`
	Start        string   `json:"start"`
	End          string   `json:"end"`
	Replicas     []uint64 `json:"replicas"`
	Learners     []uint64 `json:"learners"`
	Leader       uint64   `json:"leader"`
	Term         uint64   `json:"term"`
	CommitIndex  uint64   `json:"commit_index"`
	AppliedIndex uint64   `json:"applied_index"`
	SizeBytes    uint64   `json:"size_bytes"`
	ConfVersion  uint64   `json:"conf_version"`
	Removed      []uint64 `json:"removed"`
	// Lag: per other replica's node ID, entries behind the leader.
	Lag map[string]uint64 `json:"lag"`
}

// Decision is one coordinator decision of ClusterStatus.
type Decision struct {
	Op      string `json:"op"`
	Range   uint64 `json:"range"`
	Node    uint64 `json:"node"`
	Reason  string `json:"reason"`
	Outcome string `json:"outcome"`
}

// Range returns the range of table that starts at "" (its first), or nil.
func (s *ClusterStatus) Range(table string) *RangeStatus {
	for i := range s.Ranges {
		if s.Ranges[i].Table == table && s.Ranges[i].Start == "" {
			return &s.Ranges[i]
		}
	}
	return nil
}

// ClusterStatus asks this node for its view of the cluster.
func (n *Node) ClusterStatus(timeout time.Duration) (*ClusterStatus, error) {
	r := n.Do(timeout, "GET", "/v1/cluster", nil)
	if r.Status != 200 {
		return nil, errors.New(r.String())
	}
	var st ClusterStatus
	if err := r.JSON(&st); err != nil {
		return nil, err
	}
	return &st, nil
}

// waitFor polls f until it returns nil, failing the test after timeout
// with f's last error.
func waitFor(t testing.TB, timeout time.Duration, what string, f func() error) {
	t.Helper()
	start := time.Now()
	var err error
	for {
		if err = f(); err == nil {
			return
		}
		if time.Since(start) > timeout {
			break
		}
		time.Sleep(pollEvery)
	}
	t.Fatalf("%s: not within %v: %v", what, timeout, err)
}

// freePorts returns n distinct TCP ports free on 127.0.0.1 now. All are
// held open together so none is handed out twice. They are chosen below
// the kernel's ephemeral range: a port from that range, free while its
// node is down for a restart, could meanwhile become the local port of
// some outgoing connection, and the restart would fail to bind it.
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
			continue // in use
		}
		lns = append(lns, ln)
		ports = append(ports, p)
	}
	return ports
}

// ephemeralLow returns the start of the kernel's ephemeral port range
// (32768 when unknown), but at least 21000.
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
		return fmt.Sprintf("wait: %v", p.waitErr)
	}
	return p.state.String()
}

func quoteArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\"'") {
			a = strconv.Quote(a)
		}
		out[i] = a
	}
	return out
}

// tail returns the last n lines of data.
func tail(data []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d lines before)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// excerpt returns up to n lines of data starting at the line holding i.
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

// childEnv is the test's environment without CAIRN_* variables, so that
// a developer's settings cannot change the servers under test.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CAIRN_") {
			env = append(env, kv)
		}
	}
	return env
}

// pick returns a random element of nodes.
func pick(rng *rand.Rand, nodes []*Node) *Node {
	return nodes[rng.IntN(len(nodes))]
}
