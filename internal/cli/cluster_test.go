package cli

import (
	"strings"
	"testing"

	"github.com/cairn-db/cairn/client"
)

func TestClusterStatus(t *testing.T) {
	s := startServer(t)
	r := s.cli(t, "cluster", "status")
	r.expect(t, exitOK, "*")
	for _, want := range []string{
		"NODE  ID  ADDRESS         ALIVE  STATE  RANGES  LEADERS  HEARTBEAT\nn1    1   127.0.0.1:7379  true          2       2        0s ago\n",
		"RANGE  TABLE    START  END  REPLICAS  LEARNERS  LEADER  TERM  COMMIT  APPLIED  SIZE  LAG\n1      default  -      -    [1]       []        1       2     10      10       4096  -\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("cluster status:\n%s\nlacks\n%s", r.stdout, want)
		}
	}
	r = s.cli(t, "cluster", "status", "-o", "json")
	r.expect(t, exitOK, "*")
	var st client.ClusterStatus
	r.decode(t, &st)
	if len(st.Nodes) != 1 || !st.Nodes[0].Alive || len(st.Ranges) != 1 || st.Ranges[0].Table != "default" {
		t.Errorf("JSON output %+v", st)
	}
	for _, field := range []string{`"nodes"`, `"name"`, `"address"`, `"alive"`, `"ranges"`, `"leaders"`, `"replicas"`, `"leader"`, `"size_bytes"`} {
		if !strings.Contains(r.stdout, field) {
			t.Errorf("JSON output lacks %s: %s", field, r.stdout)
		}
	}
}

func TestPrintLag(t *testing.T) {
	for _, c := range []struct {
		lag  map[uint64]uint64
		want string
	}{
		{nil, "-"},
		{map[uint64]uint64{5: 0, 4: 12}, "n4:12 n5:0"},
	} {
		if got := printLag(c.lag); got != c.want {
			t.Errorf("printLag(%v) = %q, want %q", c.lag, got, c.want)
		}
	}
}

func TestClusterNodeActionUsage(t *testing.T) {
	s := startServer(t)
	for _, args := range [][]string{{"cluster", "drain"}, {"cluster", "drain", "x"}, {"cluster", "remove", "0"}, {"cluster", "activate", "-3"}} {
		r := s.cli(t, args...)
		if r.code != exitUsage {
			t.Errorf("%v: exit %d, want %d (usage); stderr %s", args, r.code, exitUsage, r.stderr)
		}
	}
}
