package robustness

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Session and stale reads under the same faults as the workload (issue
// 7): the linearizable checker cannot judge them, since both may
// legitimately return older data than a linearizable read would.
//
// Each session client owns one key ("s<id>"), written by nobody else,
// and carries the Cairn-Session token from every reply to its next
// request, through random nodes. Its reads (?consistency=session) must
// return its latest acknowledged write or a later one (read-your-writes)
// and never a version below one it has read (monotonic reads). The stale
// readers read the same keys with ?consistency=stale&max_staleness=D: a
// read must reflect every write acknowledged more than D before it was
// sent; a replica that cannot prove that must refuse (a retryable
// error), never answer older data.
//
// The keys live in a table of their own with 3 voters per range and, on a
// cluster of more than 3 nodes, a read learner on every other node
// (--learners): the faults leave learners far behind, and the staleness
// check then shows that none is used beyond its bound. A run counts the
// reads that learners served (a sampler follows which nodes are learners)
// and fails if they served none, so the learners are really in the test.
type readers struct {
	c       *Cluster
	kc      *kvClient
	clients int
	bound   time.Duration // the stale readers' max_staleness
	seed    uint64

	mu         sync.Mutex
	acks       map[string][]ack // per key, in acknowledgement order
	violations []string

	sessionOK, staleOK, staleRefused atomic.Int64
	// learners is the table's learners per range (0 on 3 nodes);
	// learnerSet the nodes last seen holding a learner of it;
	// learnerReads the checked reads those nodes served.
	learners     int
	learnerSet   atomic.Pointer[map[uint64]bool]
	learnerReads atomic.Int64

	clientGroup
}

// readersTable is the readers' table.
const readersTable = "sessions"

// setup creates the readers' table (3 voters, a learner on every other
// node) and, if it has learners, waits until the coordinator has placed
// them, before any fault.
func (rd *readers) setup() error {
	rd.learners = max(len(rd.c.Nodes)-3, 0)
	n := rd.c.Nodes[0]
	body := fmt.Sprintf(`{"name":%q,"replicas":%d,"learners":%d}`, readersTable, min(3, len(rd.c.Nodes)), rd.learners)
	if r := rd.kc.do(n, "POST", "/v1/tables", []byte(body), nil); r.err != nil || r.status != 201 {
		return fmt.Errorf("create table %s: %d %v %s", readersTable, r.status, r.err, r.body)
	}
	if rd.learners == 0 {
		return nil
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		set, placed, err := rd.sampleLearners(n)
		if err == nil && placed {
			rd.learnerSet.Store(&set)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("learners of %s not placed within 30s (%v, last seen %v)", readersTable, err, set)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// sampleLearners asks n which nodes hold learners of the readers' table,
// and whether every range of it has all its learners.
func (rd *readers) sampleLearners(n *Node) (map[uint64]bool, bool, error) {
	r := rd.kc.do(n, "GET", "/v1/cluster", nil, nil)
	if r.err != nil || r.status != 200 {
		return nil, false, fmt.Errorf("GET /v1/cluster: %d %v", r.status, r.err)
	}
	var st struct {
		Ranges []struct {
			Table    string   `json:"table"`
			Learners []uint64 `json:"learners"`
		} `json:"ranges"`
	}
	if err := json.Unmarshal(r.body, &st); err != nil {
		return nil, false, err
	}
	set := map[uint64]bool{}
	ranges, placed := 0, true
	for _, rs := range st.Ranges {
		if rs.Table != readersTable {
			continue
		}
		ranges++
		placed = placed && len(rs.Learners) == rd.learners
		for _, id := range rs.Learners {
			set[id] = true
		}
	}
	return set, ranges > 0 && placed, nil
}

// followLearners keeps learnerSet current through the faults (the
// coordinator moves replicas; a node that cannot answer is skipped).
func (rd *readers) followLearners() {
	rng := rand.New(rand.NewPCG(rd.seed, 0x1ea7))
	for !rd.stopped() {
		if set, _, err := rd.sampleLearners(rd.c.Nodes[rng.IntN(len(rd.c.Nodes))]); err == nil && len(set) > 0 {
			rd.learnerSet.Store(&set)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// served counts a checked read that a learner served.
func (rd *readers) served(by string) {
	id, err := strconv.ParseUint(strings.TrimPrefix(by, "n"), 10, 64)
	if set := rd.learnerSet.Load(); err == nil && set != nil && (*set)[id] {
		rd.learnerReads.Add(1)
	}
}

func (rd *readers) keyPath(key string) string {
	return "/v1/kv/" + readersTable + "/" + key
}

// ack is an acknowledged write of a session client's key.
type ack struct {
	version uint64
	value   string
	at      time.Time // when the acknowledgement arrived
}

// sessionState is what one session client knows: its latest
// acknowledged write, the newest version it has read, and every value it
// has tried to write (a write with an unknown outcome may still land).
type sessionState struct {
	acked     ack
	seen      uint64
	attempted map[string]bool
}

// checkSessionRead returns what is wrong with a session read of the
// client's own key that found version and value ("" when found is
// false), or "".
func checkSessionRead(s *sessionState, found bool, version uint64, value string) string {
	switch {
	case !found && s.acked.version > 0:
		return fmt.Sprintf("session read found no value after its own write v%d was acknowledged", s.acked.version)
	case !found:
		return ""
	case version < s.acked.version:
		return fmt.Sprintf("session read v%d, older than its own acknowledged write v%d", version, s.acked.version)
	case version < s.seen:
		return fmt.Sprintf("session read v%d after having read v%d (not monotonic)", version, s.seen)
	case version == s.acked.version && value != s.acked.value:
		return fmt.Sprintf("session read v%d = %q, but its write v%d was %q", version, value, version, s.acked.value)
	case !s.attempted[value]:
		return fmt.Sprintf("session read v%d = %q, a value the client never wrote", version, value)
	}
	return ""
}

// checkStaleRead returns what is wrong with a stale read sent at call
// with bound max_staleness of a key whose acknowledged writes are acks,
// or "": the read must reflect every write acknowledged before call -
// bound.
func checkStaleRead(acks []ack, call time.Time, bound time.Duration, found bool, version uint64) string {
	var due *ack
	for i := range acks {
		if acks[i].at.Before(call.Add(-bound)) {
			due = &acks[i]
		}
	}
	switch {
	case due == nil:
		return ""
	case !found:
		return fmt.Sprintf("stale read (bound %v) found no value, though v%d was acknowledged %v before it was sent",
			bound, due.version, call.Sub(due.at).Round(time.Millisecond))
	case version < due.version:
		return fmt.Sprintf("stale read (bound %v) returned v%d, older than v%d acknowledged %v before it was sent",
			bound, version, due.version, call.Sub(due.at).Round(time.Millisecond))
	}
	return ""
}

func (rd *readers) start() {
	rd.acks = map[string][]ack{}
	if rd.learners > 0 {
		rd.spawn(rd.followLearners)
	}
	for i := range rd.clients {
		rd.spawn(func() { rd.session(i) })
		rd.spawn(func() { rd.staleReader(i) })
	}
}

func (rd *readers) violate(format string, args ...any) {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	rd.violations = append(rd.violations, fmt.Sprintf(format, args...))
}

// session is session client id.
func (rd *readers) session(id int) {
	rng := rand.New(rand.NewPCG(rd.seed, 0x5e55+uint64(id)))
	key := fmt.Sprintf("s%d", id)
	st := &sessionState{attempted: map[string]bool{}}
	token := ""
	for n := 0; !rd.stopped(); n++ {
		node := rd.c.Nodes[rng.IntN(len(rd.c.Nodes))]
		hdr := map[string]string{}
		if token != "" {
			hdr["Cairn-Session"] = token
		}
		if rng.IntN(5) < 2 {
			value := fmt.Sprintf("%s-%d", key, n)
			st.attempted[value] = true
			r := rd.kc.do(node, "PUT", rd.keyPath(key), []byte(value), hdr)
			if r.err != nil || r.status != 200 {
				pause(r)
				continue
			}
			var v struct {
				Version uint64 `json:"version"`
			}
			if err := json.Unmarshal(r.body, &v); err != nil || v.Version == 0 {
				rd.violate("%s: put %s: no version in %q", node.Name, key, r.body)
				continue
			}
			token = r.header.Get("Cairn-Session")
			a := ack{version: v.Version, value: value, at: time.Now()}
			st.acked = a
			rd.mu.Lock()
			rd.acks[key] = append(rd.acks[key], a)
			rd.mu.Unlock()
			pause(r)
			continue
		}
		r := rd.kc.do(node, "GET", rd.keyPath(key)+"?consistency=session", nil, hdr)
		found := r.err == nil && r.status == 200
		if !found && !(r.err == nil && r.status == 404 && errCode(r.body) == "not_found") {
			pause(r)
			continue
		}
		var version uint64
		var value string
		if found {
			var err error
			if version, err = etagVersion(r.header.Get("ETag")); err != nil {
				rd.violate("%s: session get %s: %v", node.Name, key, err)
				continue
			}
			value = string(r.body)
		}
		if msg := checkSessionRead(st, found, version, value); msg != "" {
			rd.violate("%s (client %d, key %s, served by %s): %s", node.Name, id, key, r.header.Get("Cairn-Served-By"), msg)
		}
		rd.served(r.header.Get("Cairn-Served-By"))
		st.seen = max(st.seen, version)
		if t := r.header.Get("Cairn-Session"); t != "" {
			token = t
		}
		rd.sessionOK.Add(1)
		pause(r)
	}
}

// staleReader reads the session clients' keys with a staleness bound.
func (rd *readers) staleReader(id int) {
	rng := rand.New(rand.NewPCG(rd.seed, 0x57a1e+uint64(id)))
	q := "?consistency=stale&max_staleness=" + rd.bound.String()
	for !rd.stopped() {
		node := rd.c.Nodes[rng.IntN(len(rd.c.Nodes))]
		key := fmt.Sprintf("s%d", rng.IntN(rd.clients))
		call := time.Now()
		r := rd.kc.do(node, "GET", rd.keyPath(key)+q, nil, nil)
		found := r.err == nil && r.status == 200
		if !found && !(r.err == nil && r.status == 404 && errCode(r.body) == "not_found") {
			if r.err == nil && r.status == 503 {
				rd.staleRefused.Add(1)
			}
			pause(r)
			continue
		}
		var version uint64
		if found {
			var err error
			if version, err = etagVersion(r.header.Get("ETag")); err != nil {
				rd.violate("%s: stale get %s: %v", node.Name, key, err)
				continue
			}
		}
		rd.mu.Lock()
		msg := checkStaleRead(rd.acks[key], call, rd.bound, found, version)
		rd.mu.Unlock()
		if msg != "" {
			rd.violate("%s (key %s, served by %s, staleness %s): %s", node.Name, key,
				r.header.Get("Cairn-Served-By"), r.header.Get("Cairn-Staleness"), msg)
		}
		rd.served(r.header.Get("Cairn-Served-By"))
		rd.staleOK.Add(1)
		pause(r)
	}
}

// pause paces the readers (10 ms between requests, 20 ms more after a
// failure such as a refused connection, which comes back at once): they
// check guarantees, they are not load, and unpaced they sent several
// times the workload's requests through the faults.
func pause(r reply) {
	time.Sleep(10 * time.Millisecond)
	if r.err != nil || r.status >= 500 {
		time.Sleep(20 * time.Millisecond)
	}
}

func etagVersion(tag string) (uint64, error) {
	s, err := strconv.Unquote(tag)
	if err != nil {
		return 0, fmt.Errorf("ETag %q", tag)
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v == 0 {
		return 0, fmt.Errorf("ETag %q", tag)
	}
	return v, nil
}

// check adds the readers' violations to r, and one if they never got a
// read through (a checker that checked nothing).
func (rd *readers) check(r *Report) {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	for _, v := range rd.violations {
		r.violate("%s", v)
	}
	if rd.sessionOK.Load() == 0 || rd.staleOK.Load() == 0 {
		r.violate("readers: nothing checked (%d session reads, %d stale reads)", rd.sessionOK.Load(), rd.staleOK.Load())
	}
	if rd.learners > 0 && rd.learnerReads.Load() == 0 {
		r.violate("readers: no read was served by a learner (%d learners per range)", rd.learners)
	}
}

// TestReaderCheckers: the session and staleness checks flag what they
// are for, and accept what the guarantees allow.
func TestReaderCheckers(t *testing.T) {
	st := &sessionState{acked: ack{version: 20, value: "b"}, seen: 25, attempted: map[string]bool{"a": true, "b": true, "c": true}}
	for _, tc := range []struct {
		name    string
		found   bool
		version uint64
		value   string
		bad     bool
	}{
		{"its own write", true, 25, "c", false},
		{"a later attempt", true, 30, "c", false},
		{"older than its write", true, 10, "a", true},
		{"backwards", true, 22, "c", true},
		{"its write's version, another value", true, 20, "a", true},
		{"a value never written", true, 30, "zz", true},
		{"gone after its write", false, 0, "", true},
	} {
		if got := checkSessionRead(st, tc.found, tc.version, tc.value) != ""; got != tc.bad {
			t.Errorf("session %s: flagged %v, want %v", tc.name, got, tc.bad)
		}
	}
	if msg := checkSessionRead(&sessionState{attempted: map[string]bool{}}, false, 0, ""); msg != "" {
		t.Errorf("not found before any write: %s", msg)
	}

	t0 := time.Unix(1000, 0)
	acks := []ack{{version: 10, at: t0}, {version: 20, at: t0.Add(time.Second)}, {version: 30, at: t0.Add(3 * time.Second)}}
	for _, tc := range []struct {
		name    string
		call    time.Duration // after t0
		found   bool
		version uint64
		bad     bool
	}{
		{"before any write was due", 500 * time.Millisecond, false, 0, false},
		{"the due write", 2500 * time.Millisecond, true, 20, false},
		{"older than the due write", 2500 * time.Millisecond, true, 10, true},
		{"newer than the due write", 2500 * time.Millisecond, true, 30, false},
		{"missing though due", 2500 * time.Millisecond, false, 0, true},
		{"within the bound", 1500 * time.Millisecond, true, 10, false},
	} {
		if got := checkStaleRead(acks, t0.Add(tc.call), time.Second, tc.found, tc.version) != ""; got != tc.bad {
			t.Errorf("stale %s: flagged %v, want %v", tc.name, got, tc.bad)
		}
	}
}
