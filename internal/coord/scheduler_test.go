package coord

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the scheduler's golden files")

// TestPlanGolden runs the scheduler on the cluster states of
// testdata/*.in and compares its plan with the .golden file next to each.
// Run with -update to rewrite them (then read the diff: every line is a
// decision an operator would see).
func TestPlanGolden(t *testing.T) {
	ins, err := filepath.Glob("testdata/*.in")
	if err != nil || len(ins) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, in := range ins {
		name := strings.TrimSuffix(filepath.Base(in), ".in")
		t.Run(name, func(t *testing.T) {
			nodes, ranges, lim := parseState(t, in)
			var b strings.Builder
			for _, op := range Plan(nodes, ranges, lim) {
				fmt.Fprintln(&b, op.String())
			}
			golden := strings.TrimSuffix(in, ".in") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got := b.String(); got != string(want) {
				t.Errorf("plan for %s:\n%s\nwant:\n%s", name, got, want)
			}
		})
	}
}

// TestPlanDeterministic: the same state always yields the same plan (the
// scheduler iterates no maps in an order that matters).
func TestPlanDeterministic(t *testing.T) {
	ins, _ := filepath.Glob("testdata/*.in")
	for _, in := range ins {
		nodes, ranges, lim := parseState(t, in)
		first := fmt.Sprint(Plan(nodes, ranges, lim))
		for range 20 {
			if got := fmt.Sprint(Plan(nodes, ranges, lim)); got != first {
				t.Fatalf("%s: plans differ:\n%s\n%s", in, first, got)
			}
		}
	}
}

// parseState reads a cluster state:
//
//	limits moves=4 balance=true mergesize=1000 mergeqps=10 mergedelay=5m
//	node ID STATE [up] [dead]
//	range ID [meta] voters=1,2,3 learners=4 want=3 wantlearners=1 leader=1 caught=1,2,3 holders=1,2,3,4 conf=7
//	      table=1 start=a end=m bytes=100 qps=2.5 cold=10m
//
// Merges are off (mergesize 0) unless limits say otherwise; start= with
// nothing after it is the table's first key, a missing end= its end.
// bytes=, qps= or cold= make the range's stats reported (by a leader).
func parseState(t *testing.T, path string) ([]NodeInfo, []RangeInfo, Limits) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lim := Limits{MaxMoves: 4, Balance: true}
	var nodes []NodeInfo
	var ranges []RangeInfo
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		bad := func(err error) { t.Fatalf("%s:%d: %v", path, line, err) }
		switch fields[0] {
		case "limits":
			for _, kv := range fields[1:] {
				k, v, _ := strings.Cut(kv, "=")
				switch k {
				case "moves":
					n, err := strconv.Atoi(v)
					if err != nil {
						bad(err)
					}
					lim.MaxMoves = n
				case "balance":
					lim.Balance = v == "true"
				case "mergesize":
					n, err := strconv.ParseUint(v, 10, 64)
					if err != nil {
						bad(err)
					}
					lim.Merge.SizeBytes = n
				case "mergeqps":
					q, err := strconv.ParseFloat(v, 64)
					if err != nil {
						bad(err)
					}
					lim.Merge.QPS = q
				case "mergedelay":
					d, err := time.ParseDuration(v)
					if err != nil {
						bad(err)
					}
					lim.Merge.Delay = d
				default:
					bad(fmt.Errorf("unknown limit %q", k))
				}
			}
		case "node":
			id, err := strconv.ParseUint(fields[1], 10, 64)
			if err != nil || len(fields) < 3 {
				bad(fmt.Errorf("node ID STATE [up] [dead]"))
			}
			n := NodeInfo{ID: id, State: fields[2]}
			for _, f := range fields[3:] {
				switch f {
				case "up":
					n.Up = true
				case "dead":
					n.Dead = true
				default:
					bad(fmt.Errorf("unknown node flag %q", f))
				}
			}
			nodes = append(nodes, n)
		case "range":
			id, err := strconv.ParseUint(fields[1], 10, 64)
			if err != nil {
				bad(err)
			}
			r := RangeInfo{ID: id}
			for _, f := range fields[2:] {
				if f == "meta" {
					r.Meta = true
					continue
				}
				k, v, _ := strings.Cut(f, "=")
				ids := func() []uint64 {
					var out []uint64
					for _, s := range strings.Split(v, ",") {
						if s == "" {
							continue
						}
						n, err := strconv.ParseUint(s, 10, 64)
						if err != nil {
							bad(err)
						}
						out = append(out, n)
					}
					return out
				}
				num := func() uint64 {
					n, err := strconv.ParseUint(v, 10, 64)
					if err != nil {
						bad(err)
					}
					return n
				}
				switch k {
				case "voters":
					r.Voters = ids()
				case "learners":
					r.Learners = ids()
				case "caught":
					r.CaughtUp = ids()
				case "holders":
					r.Holders = ids()
				case "removed": // node:fence,node:fence (fence 0: fenced)
					r.Removed = map[uint64]uint64{}
					for _, f := range strings.Split(v, ",") {
						a, b, _ := strings.Cut(f, ":")
						n, err1 := strconv.ParseUint(a, 10, 64)
						fence, err2 := strconv.ParseUint(cmpOr(b, "0"), 10, 64)
						if err1 != nil || err2 != nil {
							bad(fmt.Errorf("removed=%s", v))
						}
						r.Removed[n] = fence
					}
				case "term":
					r.Term = num()
				case "want":
					r.Want = int(num())
				case "wantlearners":
					r.WantLearners = int(num())
				case "leader":
					r.Leader = num()
				case "conf":
					r.ConfVersion = num()
				case "table":
					r.Table = num()
				case "start":
					r.Start = []byte(v)
				case "end":
					r.End = []byte(v)
				case "bytes":
					r.Bytes, r.Reported = num(), true
				case "qps":
					q, err := strconv.ParseFloat(v, 64)
					if err != nil {
						bad(err)
					}
					r.QPS, r.Reported = q, true
				case "cold":
					d, err := time.ParseDuration(v)
					if err != nil {
						bad(err)
					}
					r.ColdFor, r.Reported = d, true
				default:
					bad(fmt.Errorf("unknown range field %q", k))
				}
			}
			ranges = append(ranges, r)
		default:
			t.Fatalf("%s:%d: unknown line %q", path, line, sc.Text())
		}
	}
	return nodes, ranges, lim
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
