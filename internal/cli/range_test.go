package cli

import (
	"strings"
	"testing"

	"github.com/cairn-db/cairn/api/cairnpb"
)

func TestRangeLs(t *testing.T) {
	s := startServer(t)
	s.svc.SetClusterStatus(&cairnpb.ClusterStatus{Ranges: []*cairnpb.RangeStatus{
		{Id: 1, Table: "(meta)", Replicas: []uint64{1}, Leader: 1},
		{Id: 2, Table: "default", End: []byte("m"), Replicas: []uint64{1, 2}, Leader: 2, SizeBytes: 100, Generation: 1},
		{Id: 5, Table: "default", Start: []byte("m"), Replicas: []uint64{1, 2}, Leader: 1, SizeBytes: 50, Generation: 1},
	}})
	r := s.cli(t, "range", "ls", "default")
	r.expect(t, exitOK, "*")
	want := "RANGE  TABLE    START  END  GEN  LEADER  REPLICAS  SIZE\n" +
		"2      default  -      m    1    2       [1 2]     100\n" +
		"5      default  m      -    1    1       [1 2]     50\n"
	if r.stdout != want {
		t.Errorf("range ls default:\n%s\nwant\n%s", r.stdout, want)
	}
	r = s.cli(t, "range", "ls", "-o", "json")
	r.expect(t, exitOK, "*")
	var out rangesOutput
	r.decode(t, &out)
	if len(out.Ranges) != 3 || out.Ranges[2].Generation != 1 || string(out.Ranges[2].Start) != "m" {
		t.Errorf("range ls -o json: %+v", out)
	}
}

func TestRangeSplit(t *testing.T) {
	s := startServer(t)
	r := s.cli(t, "range", "split", "default", "m")
	r.expect(t, exitOK, "*")
	if !strings.Contains(r.stdout, "OK left=1 [-, m) right=2 [m, -) generation=1") {
		t.Errorf("range split: %q", r.stdout)
	}
	// A boundary that exists is refused, with the server's message.
	r = s.cli(t, "range", "split", "default", "m")
	if r.code == exitOK || !strings.Contains(r.stderr, "already the start") {
		t.Errorf("second split at m: code %d stderr %q", r.code, r.stderr)
	}
	r = s.cli(t, "range", "split", "nosuch", "m")
	if r.code == exitOK {
		t.Errorf("split of a missing table succeeded: %q", r.stdout)
	}
	r = s.cli(t, "range", "split", "default")
	if r.code == exitOK {
		t.Error("split without a key succeeded")
	}
}
