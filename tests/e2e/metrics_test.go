package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cairn-db/cairn/client"
)

// TestMetrics: after requests through HTTP and RESP, /metrics shows the
// node's ranges and leaders, Raft counters that moved, Pebble's metrics,
// and the latency histograms of both interfaces.
func TestMetrics(t *testing.T) {
	c := StartSingle(t)
	n := c.Nodes[0]
	for i := range 10 {
		n.MustPut(t, "default", fmt.Sprintf("k%d", i), []byte("v"))
		n.MustGet(t, "default", fmt.Sprintf("k%d", i))
	}
	// One gRPC call, through the SDK.
	cl, err := client.New(client.Config{Endpoints: []string{n.Client}, RequestTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, _, err := cl.Get(context.Background(), "default", []byte("k1")); err != nil {
		t.Fatal(err)
	}
	// Two Redis commands over a raw connection.
	var respAddr string
	for i, a := range n.args {
		if a == "--listen-resp" {
			respAddr = n.args[i+1]
		}
	}
	conn, err := net.DialTimeout("tcp", respAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte("SET rk v\r\nGET rk\r\n")); err != nil {
		t.Fatal(err)
	}
	rd := bufio.NewReader(conn)
	for _, want := range []string{"+OK\r\n", "$1\r\n", "v\r\n"} {
		if line, err := rd.ReadString('\n'); err != nil || line != want {
			t.Fatalf("RESP reply %q, %v; want %q", line, err, want)
		}
	}

	r := n.Do(opTimeout, "GET", "/metrics", nil)
	if r.Status != 200 {
		t.Fatalf("/metrics: %s", r)
	}
	values := map[string]float64{}
	for _, line := range strings.Split(string(r.Body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		values[line[:i]] = v
	}
	for name, check := range map[string]func(float64) bool{
		"cairn_ranges":                                                                   func(v float64) bool { return v == 2 },
		"cairn_range_leaders":                                                            func(v float64) bool { return v == 2 },
		"cairn_raft_proposals_total":                                                     func(v float64) bool { return v >= 10 },
		"cairn_raft_entries_applied_total":                                               func(v float64) bool { return v >= 10 },
		"cairn_raft_became_leader_total":                                                 func(v float64) bool { return v >= 2 },
		"cairn_pebble_disk_usage_bytes":                                                  func(v float64) bool { return v > 0 },
		"cairn_pebble_wal_written_bytes_total":                                           func(v float64) bool { return v > 0 },
		`cairn_resp_command_duration_seconds_count{command="set"}`:                       func(v float64) bool { return v >= 1 },
		`cairn_resp_command_duration_seconds_count{command="get"}`:                       func(v float64) bool { return v >= 1 },
		`cairn_grpc_request_duration_seconds_count{code="OK",method="/cairn.v1.KV/Get"}`: func(v float64) bool { return v >= 1 },
		`cairn_http_request_duration_seconds_count{code="200",method="PUT",route="/v1/kv/{table}/{key}"}`: func(v float64) bool { return v >= 10 },
	} {
		v, ok := values[name]
		if !ok {
			t.Errorf("/metrics has no %s", name)
			continue
		}
		if !check(v) {
			t.Errorf("%s = %v", name, v)
		}
	}
	// Every metric the Grafana dashboard queries exists.
	dash, err := os.ReadFile("../../deploy/grafana/cairn-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range regexp.MustCompile(`cairn_[a-z_]+`).FindAllString(string(dash), -1) {
		if name == "cairn_overview" {
			continue
		}
		if !strings.Contains(string(r.Body), "# TYPE "+strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_count"), "_sum")+" ") {
			t.Errorf("the dashboard queries %s, which /metrics does not export", name)
		}
	}
	// Reads use the lease or ReadIndex rounds; either way one of them moved.
	if values["cairn_raft_lease_reads_total"]+values["cairn_raft_read_index_rounds_total"] == 0 {
		t.Error("neither lease reads nor read index rounds were counted")
	}
}
