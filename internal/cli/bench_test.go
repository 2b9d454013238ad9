package cli

import (
	"strings"
	"testing"
	"time"
)

func TestBench(t *testing.T) {
	s := startServer(t)
	r := s.cli(t, "bench", "--clients", "4", "--duration", "300ms", "--keys", "50", "--value-size", "10", "--preload")
	r.expect(t, exitOK, "*")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 6 || !strings.HasPrefix(lines[0], "4 clients,") || !strings.HasPrefix(lines[1], "OP") ||
		!strings.HasPrefix(lines[2], "get") || !strings.HasPrefix(lines[3], "put") || !strings.HasPrefix(lines[4], "total") ||
		!strings.HasPrefix(lines[5], "routing: 0 direct") {
		t.Errorf("bench output:\n%s", r.stdout)
	}
	if s.svc.CallCount("Put") < 50 {
		t.Errorf("preload wrote %d keys, want 50", s.svc.CallCount("Put"))
	}

	r = s.cli(t, "bench", "--clients", "2", "--duration", "1s", "--keys", "10", "--read-ratio", "0.5", "-o", "json")
	r.expect(t, exitOK, "*")
	var sum benchSummary
	r.decode(t, &sum)
	get, put := sum.Ops["get"], sum.Ops["put"]
	if sum.Clients != 2 || get.Count == 0 || put.Count == 0 || sum.Errors != 0 || sum.OpsPerSec <= 0 ||
		get.P50Ms <= 0 || get.P50Ms > get.P99Ms || get.P99Ms > get.P999Ms {
		t.Errorf("bench JSON %+v", sum)
	}
	// The test server tells no routes: every operation goes through the
	// endpoint, with routing on or off.
	if sum.Routing.Direct != 0 || sum.Routing.Fallback < get.Count+put.Count {
		t.Errorf("bench routing %+v, want every operation through the endpoint", sum.Routing)
	}
	r = s.cli(t, "bench", "--clients", "2", "--duration", "300ms", "--keys", "10", "--no-key-routing", "-o", "json")
	r.expect(t, exitOK, "*")
	r.decode(t, &sum)
	if sum.Ops["get"].Count == 0 || sum.Errors != 0 || sum.Routing.Direct != 0 || sum.Routing.Fallback == 0 {
		t.Errorf("bench --no-key-routing JSON %+v", sum)
	}

	// Every operation failing is a failure.
	r = run(t, "", "bench", "--duration", "500ms", "--endpoints", "127.0.0.1:1")
	r.expect(t, exitFailure, "*")
	if !strings.Contains(r.stderr, "no operation succeeded") {
		t.Errorf("stderr %q", r.stderr)
	}

	// Stale gets spread over two endpoints (both the same test server).
	r = s.cli(t, "bench", "--clients", "2", "--duration", "300ms", "--keys", "10", "--read-ratio", "1",
		"--consistency", "stale", "--max-staleness", "1s", "--spread", "--endpoints", s.addr+","+s.addr, "-o", "json")
	r.expect(t, exitOK, "*")
	r.decode(t, &sum)
	if sum.Ops["get"].Count == 0 || sum.Errors != 0 {
		t.Errorf("stale bench JSON %+v", sum)
	}

	for _, bad := range [][]string{{"--clients", "0"}, {"--duration", "0s"}, {"--keys", "0"}, {"--read-ratio", "1.5"}, {"--value-size", "-1"},
		{"--consistency", "eventual"}, {"--max-staleness", "1s"}} {
		run(t, "", append([]string{"bench"}, bad...)...).expect(t, exitUsage, "")
	}
}

func TestHistogram(t *testing.T) {
	var h histogram
	if h.quantile(0.5) != 0 {
		t.Fatal("empty histogram has a median")
	}
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.99, 990 * time.Microsecond}, {0.999, 999 * time.Microsecond}, {1, time.Millisecond}} {
		got := h.quantile(tc.q)
		if got < tc.want || float64(got) > float64(tc.want)*1.02 {
			t.Errorf("quantile(%v) = %v, want within 2%% above %v", tc.q, got, tc.want)
		}
	}
	// Bucket bounds are monotonic and every value lies at or below its
	// bucket's maximum.
	for _, v := range []uint64{0, 1, 127, 128, 129, 1000, 1 << 20, 1<<63 - 1, 1<<64 - 1} {
		i := bucketOf(v)
		if i >= histogramBuckets || bucketMax(i) < v || (i > 0 && bucketMax(i-1) >= v) {
			t.Errorf("value %d: bucket %d max %d", v, i, bucketMax(i))
		}
	}
	var other histogram
	other.record(time.Second)
	h.merge(&other)
	if h.total != 1001 || h.quantile(1) < time.Second {
		t.Errorf("merge: total %d max %v", h.total, h.quantile(1))
	}
}
