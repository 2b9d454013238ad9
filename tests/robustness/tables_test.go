package robustness

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// tableProbe is the outcome of one request of the table lifecycle test.
type tableProbe struct {
	what   string // "put after create via n2", ...
	status int
	code   string
	msg    string
	err    error
	took   time.Duration
}

func (p tableProbe) String() string {
	if p.err != nil {
		return fmt.Sprintf("%s: %v after %v", p.what, p.err, p.took.Round(time.Millisecond))
	}
	return fmt.Sprintf("%s: %d %s %q after %v", p.what, p.status, p.code, p.msg, p.took.Round(time.Millisecond))
}

// TestTableLifecycle creates tables and drops them while using them
// through every node at once, with no fault injected:
//
//   - once CreateTable is acknowledged, a put or get of the table through
//     any node must find it (never 404 table_not_found);
//   - once DropTable is acknowledged, no put through any node may succeed
//     (it would be an acknowledged write into a table already gone) and no
//     get may find the table;
//   - (logged, not failed: with no fault, nothing should be unavailable
//     or time out; a loaded machine can starve a node past a timeout).
func TestTableLifecycle(t *testing.T) {
	requireFaultTools(t)
	tl := &timeline{start: time.Now()}
	c := StartCluster(t, clusterOpts{nodes: 3}, tl)
	kc := newKVClient(newHistory(tl.start), "")
	defer kc.close()
	rounds := 20
	kinds := map[string][]string{}
	counts := map[string]int{}
	for i := range rounds {
		table := fmt.Sprintf("t%03d", i)
		creator, dropper := c.Nodes[i%3], c.Nodes[(i+1)%3]
		r := kc.do(creator, "POST", "/v1/tables", []byte(fmt.Sprintf(`{"name":%q}`, table)), nil)
		if r.err != nil || r.status != 201 {
			kinds["create not acknowledged (no fault injected)"] = append(kinds["create not acknowledged (no fault injected)"],
				fmt.Sprintf("create %s via %s: %d %s %v", table, creator.Name, r.status, strings.TrimSpace(string(r.body)), r.err))
			continue
		}
		for _, p := range probeAll(kc, c, table, "after create") {
			counts[fmt.Sprintf("after create: %s %d %s %s", strings.Fields(p.what)[0], p.status, p.code, digits.ReplaceAllString(p.msg, "N"))]++
			switch {
			case p.err == nil && p.status == 200:
			case p.err == nil && p.status == 404 && p.code == "table_not_found":
				kinds["404 table_not_found after the create was acknowledged"] = append(kinds["404 table_not_found after the create was acknowledged"],
					fmt.Sprintf("%s created via %s: %s", table, creator.Name, p))
			default:
				kinds["unavailable or timed out with no fault injected"] = append(kinds["unavailable or timed out with no fault injected"],
					fmt.Sprintf("%s created via %s: %s", table, creator.Name, p))
			}
		}
		r = kc.do(dropper, "DELETE", "/v1/tables/"+table, nil, nil)
		if r.err != nil || r.status != 200 {
			kinds["drop not acknowledged (no fault injected)"] = append(kinds["drop not acknowledged (no fault injected)"],
				fmt.Sprintf("drop %s via %s: %d %s %v", table, dropper.Name, r.status, strings.TrimSpace(string(r.body)), r.err))
			continue
		}
		for _, p := range probeAll(kc, c, table, "after drop") {
			counts[fmt.Sprintf("after drop: %s %d %s %s", strings.Fields(p.what)[0], p.status, p.code, digits.ReplaceAllString(p.msg, "N"))]++
			switch {
			case p.err == nil && p.status == 404 && p.code == "table_not_found":
			case p.err == nil && p.status < 300:
				kinds["success after the drop was acknowledged"] = append(kinds["success after the drop was acknowledged"],
					fmt.Sprintf("%s dropped via %s: %s", table, dropper.Name, p))
			default:
				kinds["unavailable or timed out with no fault injected"] = append(kinds["unavailable or timed out with no fault injected"],
					fmt.Sprintf("%s dropped via %s: %s", table, dropper.Name, p))
			}
		}
	}
	var lines []string
	for k, v := range counts {
		lines = append(lines, fmt.Sprintf("%5d  %s", v, k))
	}
	sortStrings(lines)
	t.Logf("%d rounds of create, use through every node, drop, use through every node:\n%s", rounds, strings.Join(lines, "\n"))
	for kind, list := range kinds {
		// Unavailability is reported, not failed: on a loaded CI machine
		// a starved node can miss an election timeout. Wrong answers fail.
		report := t.Errorf
		if strings.Contains(kind, "no fault injected") {
			report = t.Logf
		}
		report("%s: %d times; first ones:", kind, len(list))
		for i, a := range list {
			if i == 5 {
				break
			}
			report("    %s", a)
		}
	}
}

// probeAll sends a put and a get of table through every node at once.
func probeAll(kc *kvClient, c *Cluster, table, when string) []tableProbe {
	var mu sync.Mutex
	var out []tableProbe
	var wg sync.WaitGroup
	for _, n := range c.Nodes {
		for _, m := range []string{"PUT", "GET"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var body []byte
				if m == "PUT" {
					body = []byte("v")
				}
				start := time.Now()
				r := kc.do(n, m, "/v1/kv/"+table+"/k-"+n.Name, body, nil)
				p := tableProbe{what: fmt.Sprintf("%s %s via %s", strings.ToLower(m), when, n.Name), status: r.status,
					code: errCode(r.body), msg: errMessage(r.body), err: r.err, took: time.Since(start)}
				if m == "GET" && r.status == 404 && p.code == "not_found" && when == "after create" {
					p.status, p.code = 200, "(key not found)" // the table is there
				}
				mu.Lock()
				out = append(out, p)
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	return out
}

var digits = regexp.MustCompile(`[0-9]+`)

func errMessage(body []byte) string {
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	return e.Error.Message
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// TestConcurrentReadsThroughEveryNode sends one GET of the same key
// through every node at the same moment, round after round, with no fault
// injected: every read must succeed, and quickly. Regression test: every
// replica used to number its ReadIndex contexts 1, 2, 3, ..., and the
// leader (etcd raft's readOnly.addRequest) ignores a context it already
// has pending, so equal counters on two nodes lost one of the reads (503
// after the request timeout, on a third of the reads of a fresh cluster).
// Seeding the counters per process (971038b) made them disjoint.
func TestConcurrentReadsThroughEveryNode(t *testing.T) {
	requireFaultTools(t)
	tl := &timeline{start: time.Now()}
	c := StartCluster(t, clusterOpts{nodes: 3}, tl)
	kc := newKVClient(newHistory(tl.start), "default")
	defer kc.close()
	if r := kc.do(c.Nodes[0], "PUT", "/v1/kv/default/k", []byte("v"), nil); r.status != 200 {
		t.Fatalf("put: %d %s %v", r.status, r.body, r.err)
	}
	const rounds = 40
	var mu sync.Mutex
	var slow, failed []string
	for i := range rounds {
		var wg sync.WaitGroup
		for _, n := range c.Nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				r := kc.do(n, "GET", "/v1/kv/default/k", nil, nil)
				took := time.Since(start)
				mu.Lock()
				defer mu.Unlock()
				if r.err != nil || r.status != 200 {
					failed = append(failed, fmt.Sprintf("round %d via %s: %d %s %v after %v", i, n.Name, r.status, strings.TrimSpace(string(r.body)), r.err, took.Round(time.Millisecond)))
				} else if took > time.Second {
					slow = append(slow, fmt.Sprintf("round %d via %s: %v", i, n.Name, took.Round(time.Millisecond)))
				}
			}()
		}
		wg.Wait()
	}
	t.Logf("%d rounds of %d concurrent reads: %d failed, %d slower than 1s", rounds, len(c.Nodes), len(failed), len(slow))
	for _, f := range append(failed, slow...) {
		t.Log(f)
	}
	// The bug failed a third of the reads; a loaded CI machine may fail a
	// few (a starved node misses a heartbeat round).
	if total := rounds * len(c.Nodes); len(failed)+len(slow) > total/10 {
		t.Errorf("%d of %d concurrent reads failed or took over 1s with no fault injected", len(failed)+len(slow), total)
	}
}
