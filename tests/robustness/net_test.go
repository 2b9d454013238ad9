package robustness

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var chainSeq atomic.Int64

// firewall owns the iptables chains (and, during a slow-link fault, the
// root qdisc of lo) of one cluster. Partitions are DROP rules in the
// filter chain; heal flushes it.
//
//	mangle <base>-M  (from OUTPUT)  new connections: CONNMARK = owner uid
//	mangle <base>-S  (from OUTPUT)  slow-link: CLASSIFY into our HTB class (flushable)
//	filter <base>-F  (from INPUT)   partitions and loss: DROP (flushable)
type firewall struct {
	t     testing.TB
	base  string
	nodes []*Node

	mu      sync.Mutex
	jumps   [][]string // rules inserted in built-in chains, to delete
	chains  [][2]string
	tcLock  *fileLock
	tcSetUp bool
	desc    string // the fault in force, "" when healed
}

func newFirewall(t testing.TB, nodes []*Node) *firewall {
	t.Helper()
	fw := &firewall{t: t, nodes: nodes, base: fmt.Sprintf("%s%d-%d", chainPrefix, os.Getpid(), chainSeq.Add(1))}
	t.Cleanup(fw.teardown)
	mk := func(table, suffix, from string) string {
		name := fw.base + "-" + suffix
		if err := ipt("-t", table, "-N", name); err != nil {
			t.Fatal(err)
		}
		fw.chains = append(fw.chains, [2]string{table, name})
		jump := []string{"-t", table, "-I", from, "-j", name}
		if err := ipt(jump...); err != nil {
			t.Fatal(err)
		}
		fw.jumps = append(fw.jumps, []string{"-t", table, "-D", from, "-j", name})
		return name
	}
	// Inserted at the top of OUTPUT: S first, so that M ends up above it
	// and a connection is marked before shaping looks at its mark.
	mk("mangle", "S", "OUTPUT")
	m := mk("mangle", "M", "OUTPUT")
	mk("filter", "F", "INPUT")
	for _, n := range nodes {
		u := strconv.Itoa(n.UID)
		if err := ipt("-t", "mangle", "-A", m, "-m", "conntrack", "--ctstate", "NEW",
			"-m", "owner", "--uid-owner", u, "-j", "CONNMARK", "--set-mark", u); err != nil {
			t.Fatal(err)
		}
	}
	return fw
}

// teardown heals everything and deletes the chains. It runs in
// t.Cleanup; errors are reported, never ignored silently.
func (fw *firewall) teardown() {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	fw.unslowLocked()
	for _, j := range fw.jumps {
		if err := ipt(j...); err != nil {
			fw.t.Errorf("cleanup: %v", err)
		}
	}
	fw.jumps = nil
	for _, c := range fw.chains {
		if err := ipt("-t", c[0], "-F", c[1]); err != nil {
			fw.t.Errorf("cleanup: %v", err)
		}
		if err := ipt("-t", c[0], "-X", c[1]); err != nil {
			fw.t.Errorf("cleanup: %v", err)
		}
	}
	fw.chains = nil
}

func (fw *firewall) chain(suffix string) string { return fw.base + "-" + suffix }

// dropRules returns the filter rules that drop every packet x sends to y
// on their peer connections: on x's connections to y's peer listener
// (connmark x, dport y), and x's replies on y's connections to x's
// listener (connmark y, sport x). extra is appended to each rule.
func dropRules(x, y *Node, extra ...string) [][]string {
	return [][]string{
		append([]string{"-p", "tcp", "-m", "connmark", "--mark", strconv.Itoa(x.UID), "--dport", strconv.Itoa(y.PeerPort)}, extra...),
		append([]string{"-p", "tcp", "-m", "connmark", "--mark", strconv.Itoa(y.UID), "--sport", strconv.Itoa(x.PeerPort)}, extra...),
	}
}

func (fw *firewall) addDrops(pairs [][2]*Node, extra ...string) error {
	f := fw.chain("F")
	for _, p := range pairs {
		for _, r := range dropRules(p[0], p[1], extra...) {
			if err := ipt(append(append([]string{"-A", f}, r...), "-j", "DROP")...); err != nil {
				return err
			}
		}
	}
	return nil
}

// Cut drops every packet from a node of from to a node of to (one way).
func (fw *firewall) Cut(from, to []*Node) error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	var pairs [][2]*Node
	for _, x := range from {
		for _, y := range to {
			if x != y {
				pairs = append(pairs, [2]*Node{x, y})
			}
		}
	}
	fw.desc = fmt.Sprintf("cut %s -> %s", names(from), names(to))
	return fw.addDrops(pairs)
}

// Partition cuts every pair of nodes in different groups, both ways.
// Nodes in no group keep every link (a bridge, when groups leave one out).
func (fw *firewall) Partition(groups ...[]*Node) error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	var pairs [][2]*Node
	var parts []string
	for i, g := range groups {
		parts = append(parts, names(g))
		for j, h := range groups {
			if i == j {
				continue
			}
			for _, x := range g {
				for _, y := range h {
					pairs = append(pairs, [2]*Node{x, y})
				}
			}
		}
	}
	fw.desc = "partition " + strings.Join(parts, " | ")
	return fw.addDrops(pairs)
}

// Heal removes every partition and loss rule and any slow link.
func (fw *firewall) Heal() error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	fw.desc = ""
	err := ipt("-F", fw.chain("F"))
	fw.unslowLocked()
	return err
}

// Slow shapes every peer packet to or from the given nodes: an HTB class
// of rate on lo (queueing delay: latency that grows with load) and random
// loss of the given fraction. Only one slow link per host at a time: the
// qdisc of lo is shared, so a file lock serializes test processes.
//
// The packets are put into the class by iptables (CLASSIFY sets
// skb->priority, which HTB reads before any filter), not by a tc filter:
// a u32 "match mark" filter silently matches every packet on kernels built
// without CONFIG_CLS_U32_MARK (ours), and then the fault throttled all
// loopback traffic of the host, every node's clients and any other test
// process included (RELIABILITY.md #24). Everything unclassified bypasses
// the shaping (HTB's direct queue: the qdisc has no default class).
func (fw *firewall) Slow(nodes []*Node, rate string, loss float64) error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if !fw.tcSetUp {
		l, err := lockFile(tcLockPath, 2*time.Minute)
		if err != nil {
			return err
		}
		out, err := exec.Command("tc", "qdisc", "show", "dev", "lo").CombinedOutput()
		if err != nil {
			l.unlock()
			return fmt.Errorf("tc qdisc show dev lo: %v: %s", err, out)
		}
		if s := string(out); !strings.HasPrefix(s, "qdisc noqueue 0: root") {
			l.unlock()
			return fmt.Errorf("lo has a root qdisc that is not ours (%q); the slow-link fault will not replace it", strings.TrimSpace(s))
		}
		// No default class and no filter: what iptables does not
		// classify bypasses the shaping.
		for _, args := range [][]string{
			{"qdisc", "add", "dev", "lo", "root", "handle", tcHandle, "htb"},
			{"class", "add", "dev", "lo", "parent", tcHandle, "classid", slowClass, "htb", "rate", rate, "ceil", rate},
		} {
			if err := tcRun(args...); err != nil {
				_ = tcRun("qdisc", "del", "dev", "lo", "root", "handle", tcHandle)
				l.unlock()
				return fmt.Errorf("%v (the kernel needs sch_htb)", err)
			}
		}
		fw.tcLock, fw.tcSetUp = l, true
	}
	s := fw.chain("S")
	for _, n := range nodes {
		for _, m := range [][]string{
			{"-m", "connmark", "--mark", strconv.Itoa(n.UID)},
			{"--dport", strconv.Itoa(n.PeerPort)},
			{"--sport", strconv.Itoa(n.PeerPort)},
		} {
			if err := ipt(append(append([]string{"-t", "mangle", "-A", s, "-p", "tcp"}, m...), "-j", "CLASSIFY", "--set-class", slowClass)...); err != nil {
				return err
			}
		}
	}
	if loss > 0 {
		f := fw.chain("F")
		for _, n := range nodes {
			for _, m := range [][]string{
				{"-m", "connmark", "--mark", strconv.Itoa(n.UID)},
				{"--dport", strconv.Itoa(n.PeerPort)},
				{"--sport", strconv.Itoa(n.PeerPort)},
			} {
				args := append(append([]string{"-A", f, "-p", "tcp"}, m...),
					"-m", "statistic", "--mode", "random", "--probability", strconv.FormatFloat(loss, 'f', 3, 64), "-j", "DROP")
				if err := ipt(args...); err != nil {
					return err
				}
			}
		}
	}
	fw.desc = fmt.Sprintf("slow %s: %s, %.0f%% loss", names(nodes), rate, loss*100)
	return nil
}

// Dropped returns the packets the partition and loss rules dropped since
// the last heal, and the packets the slow link shaped (a check that a
// fault took effect).
func (fw *firewall) Dropped() (dropped, shaped int64) {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if out, err := iptOut("-L", fw.chain("F"), "-v", "-x", "-n"); err == nil {
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) > 0 {
				if v, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					dropped += v
				}
			}
		}
	}
	if fw.tcSetUp {
		if out, err := exec.Command("tc", "-s", "class", "show", "dev", "lo", "classid", slowClass).Output(); err == nil {
			f := strings.Fields(string(out))
			// "Sent 1234 bytes 56 pkt (dropped 0, ...)"
			for i := 0; i+4 < len(f); i++ {
				if f[i] == "Sent" && f[i+4] == "pkt" {
					shaped, _ = strconv.ParseInt(f[i+3], 10, 64)
				}
			}
		}
	}
	return dropped, shaped
}

func (fw *firewall) unslowLocked() {
	if len(fw.chains) > 0 {
		if err := ipt("-t", "mangle", "-F", fw.chain("S")); err != nil {
			fw.t.Errorf("unslow: %v", err)
		}
	}
	if fw.tcSetUp {
		if err := tcRun("qdisc", "del", "dev", "lo", "root", "handle", tcHandle); err != nil {
			fw.t.Errorf("unslow: %v", err)
		}
		fw.tcLock.unlock()
		fw.tcSetUp, fw.tcLock = false, nil
	}
}

func names(nodes []*Node) string {
	var s []string
	for _, n := range nodes {
		s = append(s, n.Name)
	}
	return "{" + strings.Join(s, ",") + "}"
}
