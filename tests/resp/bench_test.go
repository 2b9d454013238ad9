package resp

// redis-benchmark against one node of the cluster: its default SET, GET,
// INCR and MSET tests must run to the end without an error reply
// (redis-benchmark 7 exits at the first one). Then a leader kill during a
// SET benchmark: redis-benchmark may stop at an error, but only at a
// retryable or outcome-unknown one, and a checker writing and reading its
// own keys through another node sees no wrong reply.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

var rpsLine = regexp.MustCompile(`([A-Z]+(?: \(10 keys\))?): ([0-9.]+) requests per second`)

// benchmark runs redis-benchmark with args and returns its output with
// progress lines dropped, and each test's requests per second.
func benchmark(t *testing.T, path, addr string, args ...string) (string, map[string]float64, error) {
	t.Helper()
	host, port := splitHostPort(addr)
	out, err := exec.Command(path, append([]string{"-h", host, "-p", port}, args...)...).CombinedOutput()
	return summarize(out), parseRPS(out), err
}

// summarize keeps the lines of redis-benchmark's output that are not
// progress reports (those end in \r).
func summarize(out []byte) string {
	var keep []string
	for _, line := range strings.Split(string(out), "\n") {
		parts := strings.Split(line, "\r")
		if last := strings.TrimSpace(parts[len(parts)-1]); last != "" {
			keep = append(keep, last)
		}
	}
	return strings.Join(keep, "\n")
}

func parseRPS(out []byte) map[string]float64 {
	rps := map[string]float64{}
	for _, m := range rpsLine.FindAllSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(string(m[2]), 64)
		rps[string(m[1])] = v
	}
	return rps
}

func TestRedisBenchmark(t *testing.T) {
	path := needTool(t, "redis-benchmark")
	out, rps, err := benchmark(t, path, shared.nodes[1].respURL, "-t", "set,get,incr,mset", "-n", "20000", "-c", "20", "-q")
	t.Logf("redis-benchmark against %s:\n%s", shared.nodes[1].name, out)
	if err != nil || strings.Contains(out, "Error") || strings.Contains(out, "ERR") {
		t.Fatalf("redis-benchmark failed (%v):\n%s", err, out)
	}
	for _, test := range []string{"SET", "GET", "INCR", "MSET (10 keys)"} {
		if rps[test] <= 0 {
			t.Errorf("no result for %s", test)
		}
	}
	// The INCR test increments one key 20000 times: every INCR counted.
	rdb := newClient(shared.nodes[0].respURL, 3)
	defer rdb.Close()
	n, err := rdb.Get(context.Background(), "counter:__rand_int__").Int()
	if err != nil || n%20000 != 0 || n == 0 {
		t.Errorf("counter:__rand_int__ = %d (%v), want a multiple of 20000", n, err)
	}
}

// allowedFailure reports whether a failed command's error is one a client
// may see during a failover: retryable (TRYAGAIN), outcome unknown, or a
// client-side timeout.
func allowedFailure(msg string) bool {
	return strings.HasPrefix(msg, "TRYAGAIN ") || msg == "ERR cairn timeout: outcome unknown" ||
		strings.Contains(msg, "i/o timeout") || strings.Contains(msg, "context deadline exceeded")
}

func TestLeaderKillDuringBenchmark(t *testing.T) {
	path := needTool(t, "redis-benchmark")
	c := shared
	defer c.ensureRunning(t)
	leader := c.leader(t, "default")
	var via *node
	for _, n := range c.nodes {
		if n != leader {
			via = n
			break
		}
	}
	t.Logf("leader %s; redis-benchmark and the checker go through %s", leader.name, via.name)

	host, port := splitHostPort(via.respURL)
	var out bytes.Buffer
	bench := exec.Command(path, "-h", host, "-p", port, "-t", "set", "-n", "40000", "-c", "20", "-r", "1000", "-q")
	bench.Stdout, bench.Stderr = &out, &out
	if err := bench.Start(); err != nil {
		t.Fatal(err)
	}
	benchDone := make(chan error, 1)
	go func() { benchDone <- bench.Wait() }()

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	var wrong []string
	failures := map[string]int{}
	checked := 0
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := checkWrites(ctx, via.respURL, fmt.Sprintf("%s:w%d", prefix(t), w))
			mu.Lock()
			defer mu.Unlock()
			wrong = append(wrong, r.wrong...)
			for k, v := range r.failures {
				failures[k] += v
			}
			checked += r.checked
		}()
	}

	time.Sleep(1500 * time.Millisecond)
	leader.kill9()
	t.Logf("killed %s", leader.name)
	select {
	case <-benchDone:
	case <-time.After(15 * time.Second):
		_ = bench.Process.Signal(syscall.SIGINT)
		<-benchDone
	}
	time.Sleep(2 * time.Second) // the checker keeps going after the election
	stop()
	wg.Wait()

	summary := summarize(out.Bytes())
	t.Logf("redis-benchmark:\n%s", summary)
	if strings.Contains(summary, "Server closed the connection") {
		t.Errorf("the node redis-benchmark used closed its connection")
	}
	for _, line := range strings.Split(summary, "\n") {
		if msg, ok := strings.CutPrefix(line, "Error from server: "); ok && !allowedFailure(msg) {
			t.Errorf("redis-benchmark got a wrong reply: %s", msg)
		}
	}
	// After the election the surviving node serves a whole benchmark.
	after, _, err := benchmark(t, path, via.respURL, "-t", "set,get", "-n", "2000", "-c", "20", "-r", "1000", "-q")
	t.Logf("redis-benchmark after the failover:\n%s", after)
	if err != nil || strings.Contains(after, "Error") {
		t.Errorf("redis-benchmark after the failover failed (%v):\n%s", err, after)
	}
	t.Logf("checker: %d writes checked; failures %v", checked, failures)
	for _, w := range wrong {
		t.Error(w)
	}
	if checked < 20 {
		t.Errorf("the checker completed only %d writes", checked)
	}
}

type checkResult struct {
	checked  int
	failures map[string]int
	wrong    []string
}

// checkWrites writes 1, 2, 3... to one key through addr and reads the key
// back after each write. A read must return the last acknowledged value or
// one written after it whose outcome is unknown; a failure must be an
// allowed one.
func checkWrites(ctx context.Context, addr, key string) checkResult {
	rdb := redis.NewClient(&redis.Options{Addr: addr, Protocol: 3, MaxRetries: -1,
		ReadTimeout: 15 * time.Second, DialTimeout: 5 * time.Second})
	defer rdb.Close()
	res := checkResult{failures: map[string]int{}}
	acked := 0
	var unknown []int // values written since the last ack, outcome unknown
	fail := func(op string, err error) {
		msg := err.Error()
		if !allowedFailure(msg) {
			res.wrong = append(res.wrong, fmt.Sprintf("%s %s: unexpected error %q", op, key, msg))
		}
		res.failures[strings.SplitN(msg, ":", 2)[0]]++
	}
	for v := 1; ctx.Err() == nil; v++ {
		opCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := rdb.Set(opCtx, key, v, 0).Err()
		if err != nil {
			cancel()
			fail("SET", err)
			unknown = append(unknown, v)
			continue
		}
		acked, unknown = v, nil
		got, err := rdb.Get(opCtx, key).Int()
		cancel()
		switch {
		case errors.Is(err, redis.Nil):
			res.wrong = append(res.wrong, fmt.Sprintf("GET %s after SET %d acknowledged: nil", key, acked))
		case err != nil:
			fail("GET", err)
		case got != acked:
			res.wrong = append(res.wrong, fmt.Sprintf("GET %s = %d, want %d (acknowledged)", key, got, acked))
		default:
			res.checked++
		}
	}
	return res
}
