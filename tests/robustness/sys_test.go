package robustness

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Names of what this package creates on the host, so that a later run can
// find and remove what a killed run left behind. <pid> is the test
// process's pid.
const (
	chainPrefix = "CRB-"              // iptables chains: CRB-<pid>-<n>-<suffix>
	runDirGlob  = "cairn-robust-run-" // $TMPDIR/cairn-robust-run-<pid>-*: data dirs, tmpfs mounts
	tcHandle    = "cb00:"             // our root qdisc on lo
	slowClass   = tcHandle + "1"      // its HTB class of slowed packets
	tcLockPath  = "/run/cairn-robust-tc.lock"
	keepMarker  = ".robustness-keep" // in a run dir kept for inspection
	// Node i (1-based) of a cluster runs as uid uidBlock()+i; that uid is
	// also the connmark of its connections. Test processes running at the
	// same time take different blocks of uids (a lock file per block), so
	// that their marks, and hence their faults, never touch each other's
	// nodes.
	uidFirstBlock = 47100
	uidBlockSize  = 20
	uidBlocks     = 50
	uidLockDir    = "/run/cairn-robust-uids"
)

var uidLease struct {
	once sync.Once
	base int
	f    *os.File // held open (and locked) for the life of the process
	err  error
}

// uidBlock returns the first uid of this process's block.
func uidBlock() (int, error) {
	uidLease.once.Do(func() {
		if err := os.MkdirAll(uidLockDir, 0o755); err != nil {
			uidLease.err = err
			return
		}
		for b := range uidBlocks {
			f, err := os.OpenFile(filepath.Join(uidLockDir, fmt.Sprintf("block-%02d.lock", b)), os.O_CREATE|os.O_RDWR, 0o600)
			if err != nil {
				uidLease.err = err
				return
			}
			if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
				uidLease.base, uidLease.f = uidFirstBlock+b*uidBlockSize, f
				return
			}
			f.Close()
		}
		uidLease.err = fmt.Errorf("all %d uid blocks in %s are taken by running test processes", uidBlocks, uidLockDir)
	})
	return uidLease.base, uidLease.err
}

var preflight struct {
	once sync.Once
	err  error
}

// requireFaultTools fails the test (never skips) when the host cannot
// inject the faults: not root, iptables or tc missing, or the kernel lacks
// a netfilter or qdisc feature the faults use.
func requireFaultTools(t testing.TB) {
	t.Helper()
	preflight.once.Do(func() { preflight.err = checkFaultTools() })
	if preflight.err != nil {
		t.Fatalf("robustness tests cannot inject faults on this host: %v", preflight.err)
	}
}

func checkFaultTools() error {
	if os.Geteuid() != 0 {
		return errors.New("they must run as root (iptables, tc, tmpfs mounts, per-node uids)")
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		return errors.New("iptables not found: install the Debian package iptables (apt-get install -y iptables)")
	}
	if _, err := exec.LookPath("tc"); err != nil {
		return errors.New("tc not found: install the Debian package iproute2 (apt-get install -y iproute2)")
	}
	// The netfilter matches and targets the partitions use.
	probe := fmt.Sprintf("%s%d-probe", chainPrefix, os.Getpid())
	defer func() {
		_ = ipt("-t", "mangle", "-F", probe)
		_ = ipt("-t", "mangle", "-X", probe)
	}()
	for _, args := range [][]string{
		{"-t", "mangle", "-N", probe},
		{"-t", "mangle", "-A", probe, "-m", "conntrack", "--ctstate", "NEW", "-m", "owner", "--uid-owner", "1", "-j", "CONNMARK", "--set-mark", "1"},
		{"-t", "mangle", "-A", probe, "-p", "tcp", "-m", "connmark", "--mark", "1", "--dport", "1", "-m", "statistic", "--mode", "random", "--probability", "0.5", "-j", "MARK", "--set-mark", "1"},
		{"-t", "mangle", "-A", probe, "-p", "tcp", "--sport", "1", "-j", "CLASSIFY", "--set-class", slowClass},
	} {
		if err := ipt(args...); err != nil {
			return fmt.Errorf("the kernel or iptables lacks a feature (owner, conntrack, connmark, statistic, MARK, CLASSIFY): %v", err)
		}
	}
	return nil
}

// ipt runs iptables with -w (wait for the xtables lock).
func ipt(args ...string) error {
	out, err := exec.Command("iptables", append([]string{"-w", "5"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("iptables %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(filterIptWarnings(out)))
	}
	return nil
}

func iptOut(args ...string) (string, error) {
	out, err := exec.Command("iptables", append([]string{"-w", "5"}, args...)...).Output()
	return string(out), err
}

// filterIptWarnings drops iptables-nft's "legacy tables present" noise.
func filterIptWarnings(out []byte) string {
	var keep []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "# Warning:") {
			continue
		}
		keep = append(keep, l)
	}
	return strings.Join(keep, "\n")
}

func tcRun(args ...string) error {
	out, err := exec.Command("tc", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("tc %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func pidAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// ownerPid parses the pid out of "CRB-<pid>-…" or "cairn-robust-run-<pid>-…".
func ownerPid(name, prefix string) int {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return 0
	}
	if i := strings.IndexByte(rest, '-'); i >= 0 {
		rest = rest[:i]
	}
	pid, _ := strconv.Atoi(rest)
	return pid
}

// cleanupStale removes chains, jumps, mounts, dirs and the lo qdisc that a
// killed earlier run of this package left behind (its pid is gone).
// Anything of a live process is left alone.
func cleanupStale() {
	if os.Geteuid() != 0 {
		return
	}
	for _, table := range []string{"mangle", "filter"} {
		out, err := iptOut("-t", table, "-S")
		if err != nil {
			continue
		}
		var stale []string
		for _, l := range strings.Split(out, "\n") {
			if name, ok := strings.CutPrefix(l, "-N "); ok && strings.HasPrefix(name, chainPrefix) {
				if pid := ownerPid(name, chainPrefix); pid != 0 && !pidAlive(pid) {
					stale = append(stale, name)
				}
			}
		}
		if len(stale) == 0 {
			continue
		}
		for _, l := range strings.Split(out, "\n") {
			for _, name := range stale {
				if strings.HasPrefix(l, "-A ") && strings.HasSuffix(l, " -j "+name) {
					_ = ipt(append([]string{"-t", table, "-D"}, strings.Fields(strings.TrimPrefix(l, "-A "))...)...)
				}
			}
		}
		for _, name := range stale {
			_ = ipt("-t", table, "-F", name)
		}
		for _, name := range stale {
			_ = ipt("-t", table, "-X", name)
		}
		fmt.Fprintf(os.Stderr, "robustness: removed stale iptables chains of dead runs in %s: %v\n", table, stale)
	}
	// A root qdisc of ours on lo whose lock nobody holds is stale.
	if out, err := exec.Command("tc", "qdisc", "show", "dev", "lo").Output(); err == nil && strings.Contains(string(out), "htb "+tcHandle+" root") {
		if f, err := os.OpenFile(tcLockPath, os.O_CREATE|os.O_RDWR, 0o600); err == nil {
			if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
				_ = tcRun("qdisc", "del", "dev", "lo", "root", "handle", tcHandle)
				fmt.Fprintln(os.Stderr, "robustness: removed a stale qdisc of a dead run from lo")
			}
			f.Close()
		}
	}
	// tmpfs mounts and run dirs.
	if mounts, err := readMounts(); err == nil {
		for _, mp := range mounts {
			base := filepath.Base(filepath.Dir(mp))
			if pid := ownerPid(base, runDirGlob); pid != 0 && !pidAlive(pid) {
				if err := syscall.Unmount(mp, 0); err != nil {
					_ = syscall.Unmount(mp, syscall.MNT_DETACH)
				}
			}
		}
	}
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), runDirGlob+"*"))
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, keepMarker)); err == nil {
			continue // kept on purpose (a failed run): remove it by hand
		}
		if pid := ownerPid(filepath.Base(d), runDirGlob); pid != 0 && !pidAlive(pid) {
			_ = os.RemoveAll(d)
		}
	}
}

// readMounts returns the mount points of the host.
func readMounts() ([]string, error) {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fs := strings.Fields(sc.Text()); len(fs) >= 2 {
			out = append(out, unescapeMount(fs[1]))
		}
	}
	return out, sc.Err()
}

func unescapeMount(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}

// mountTmpfs mounts a tmpfs of size bytes on dir, owned by uid.
func mountTmpfs(dir string, size int64, uid int) error {
	opts := fmt.Sprintf("size=%d,uid=%d,gid=%d,mode=0700", size, uid, uid)
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, opts); err != nil {
		return fmt.Errorf("mount -t tmpfs -o %s tmpfs %s: %w", opts, dir, err)
	}
	return nil
}

// unmount unmounts dir, lazily if it is still busy.
func unmount(dir string) error {
	var err error
	for range 20 {
		if err = syscall.Unmount(dir, 0); err == nil || errors.Is(err, syscall.EINVAL) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err2 := syscall.Unmount(dir, syscall.MNT_DETACH); err2 != nil {
		return fmt.Errorf("umount %s: %v; lazy: %v", dir, err, err2)
	}
	return nil
}

// fileLock is an exclusive flock held across processes.
type fileLock struct{ f *os.File }

// lockFile takes an exclusive lock on path, waiting up to timeout.
func lockFile(path string, timeout time.Duration) (*fileLock, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return &fileLock{f}, nil
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("lock %s held by another process for %v: %w", path, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (l *fileLock) unlock() {
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	l.f.Close()
}
