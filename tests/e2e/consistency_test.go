package e2e

// Goal: session and bounded-stale reads on real processes, under a
// leader kill. Session checker: a session (a client echoing the
// Cairn-Session header) never misses its own acknowledged writes and
// never sees a key go back to an older version, whichever node serves it,
// and followers do serve some of its reads themselves. Staleness checker:
// a stale read with bound D invoked at time t returns a value no older
// than the newest write acknowledged before t - D (acknowledgement times
// are the client's, which are later than the server's, so the check is
// conservative), and stale reads are served by followers.
// Method: a 3-node cluster over HTTP; sessions write their own keys and
// read own and shared keys through every node in turn; the leader of
// "default" is killed with SIGKILL mid-run and restarted (and, in the
// stale test, a follower is first frozen with SIGSTOP for 2 s, five times
// the bound).
// NB: a resumed follower catches up within milliseconds, before reads
// sent after the resume reach it, so this test does not catch a replica
// that ignores the age of its freshness proof (tried: it passes with the
// age check removed). internal/store's TestFollowerSessionAndStaleBarriers
// does; a peer-only partition (tests/robustness, netns) would here.

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// pauseNode stops n's process group with SIGSTOP and returns the function
// that resumes it (also run at cleanup, so a failing test leaves no
// stopped process behind).
func pauseNode(t *testing.T, n *Node) (resume func()) {
	t.Helper()
	p := n.current()
	if p == nil || p.exited() {
		t.Fatalf("%s: pause of a node that is not running", n.Name)
	}
	if err := syscall.Kill(-p.pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("%s: SIGSTOP: %v", n.Name, err)
	}
	resume = sync.OnceFunc(func() {
		if err := syscall.Kill(-p.pid, syscall.SIGCONT); err != nil && !p.exited() {
			t.Errorf("%s: SIGCONT: %v", n.Name, err)
		}
	})
	t.Cleanup(resume)
	return resume
}

// sessionClient is one session: its token and what it has seen.
type sessionClient struct {
	id    int
	token string
	// acked is the last acknowledged value (a sequence number) of the
	// session's own key; seen is the largest version seen per key.
	acked    int
	attempts int
	seen     map[string]uint64
}

type sessionStats struct {
	mu         sync.Mutex
	reads      int
	byFollower int            // session reads a follower served itself
	served     map[string]int // Cairn-Consistency -> count
	violations []string
}

func (s *sessionStats) violation(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.violations) < 20 {
		s.violations = append(s.violations, fmt.Sprintf(format, args...))
	}
}

func (sc *sessionClient) merge(r Reply) {
	if tok := r.Header.Get("Cairn-Session"); tok != "" {
		sc.token = tok
	}
}

// step writes the session's key once and reads it and a shared key
// through node n (session consistency).
func (sc *sessionClient) step(n *Node, leaderName string, st *sessionStats) {
	own := fmt.Sprintf("session-%d", sc.id)
	sc.attempts++
	w := n.Put("default", own, []byte(strconv.Itoa(sc.attempts)), "Cairn-Session", sc.token)
	if w.OK() {
		sc.merge(w)
		sc.acked = sc.attempts
	}
	for _, key := range []string{own, "shared"} {
		r := n.Do(opTimeout, "GET", kvPath("default", key)+"?consistency=session", nil, "Cairn-Session", sc.token)
		if r.Err != nil || (r.Status != 200 && r.Status != 404) {
			continue // unavailable under the fault: allowed
		}
		sc.merge(r)
		st.mu.Lock()
		st.reads++
		st.served[r.Header.Get("Cairn-Consistency")]++
		if r.Header.Get("Cairn-Consistency") == "session" && r.Header.Get("Cairn-Served-By") != "" && n.Name != leaderName {
			st.byFollower++
		}
		st.mu.Unlock()
		var version uint64
		if r.Status == 200 {
			v, err := r.ETag()
			if err != nil {
				st.violation("session %d: %v", sc.id, err)
				continue
			}
			version = v
		}
		if version < sc.seen[key] {
			st.violation("session %d: %s went back from version %d to %d via %s (%s)", sc.id, key, sc.seen[key], version, n.Name, r.Header.Get("Cairn-Served-By"))
		}
		sc.seen[key] = max(sc.seen[key], version)
		if key == own {
			got := 0
			if r.Status == 200 {
				got, _ = strconv.Atoi(string(r.Body))
			}
			if got < sc.acked || got > sc.attempts {
				st.violation("session %d: read own key %d via %s, last acknowledged write %d (attempted %d)", sc.id, got, n.Name, sc.acked, sc.attempts)
			}
		}
	}
}

func TestSessionReadsUnderLeaderKill(t *testing.T) {
	c := StartCluster(t, 3)
	leader := c.Leader("default")
	st := &sessionStats{served: map[string]int{}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	// A writer moves the shared key on, so sessions read a moving target.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if nodes := c.Ready(); len(nodes) > 0 {
				nodes[i%len(nodes)].Put("default", "shared", []byte(strconv.Itoa(i)))
			} else {
				time.Sleep(10 * time.Millisecond)
			}
		}
	}()
	for s := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc := &sessionClient{id: s, seen: map[string]uint64{}}
			for i := s; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				nodes := c.Ready()
				if len(nodes) == 0 {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				sc.step(nodes[i%len(nodes)], leader.Name, st)
			}
		}()
	}
	stopAll := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopAll()

	time.Sleep(3 * time.Second)
	t.Logf("killing %s, leader of default", leader.Name)
	leader.Kill9()
	time.Sleep(4 * time.Second)
	leader.Restart()
	time.Sleep(3 * time.Second)
	stopAll()

	st.mu.Lock()
	defer st.mu.Unlock()
	t.Logf("%d session reads; served as %v; %d served by a follower itself", st.reads, st.served, st.byFollower)
	for _, v := range st.violations {
		t.Error(v)
	}
	if st.reads < 100 {
		t.Errorf("only %d session reads completed", st.reads)
	}
	if st.byFollower == 0 {
		t.Error("no session read was served by a follower without a Raft round")
	}
}

// ackLog records when each value of the stale key was acknowledged.
type ackLog struct {
	mu   sync.Mutex
	acks []struct {
		seq  int
		done time.Time
	}
}

// newestBefore is the largest sequence number acknowledged before t.
func (a *ackLog) newestBefore(t time.Time) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	best := -1
	for _, x := range a.acks {
		if x.done.Before(t) && x.seq > best {
			best = x.seq
		}
	}
	return best
}

func TestStaleReadsWithinBound(t *testing.T) {
	const bound = 400 * time.Millisecond
	c := StartCluster(t, 3)
	leader := c.Leader("default")
	acks := &ackLog{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for seq := 0; ; seq++ {
			select {
			case <-stop:
				return
			default:
			}
			nodes := c.Ready()
			if len(nodes) == 0 {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			if r := nodes[seq%len(nodes)].Put("default", "stale-key", []byte(strconv.Itoa(seq))); r.OK() {
				acks.mu.Lock()
				acks.acks = append(acks.acks, struct {
					seq  int
					done time.Time
				}{seq, r.Done})
				acks.mu.Unlock()
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	var mu sync.Mutex
	var violations []string
	served := map[string]int{}
	tooStale, byFollower := 0, 0
	for g := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				nodes := c.Ready()
				if len(nodes) == 0 {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				n := nodes[i%len(nodes)]
				r := n.Do(opTimeout, "GET", kvPath("default", "stale-key")+"?consistency=stale&max_staleness="+bound.String(), nil)
				mu.Lock()
				switch {
				case r.Err != nil:
				case r.Status == 503 && r.ErrCode() == "too_stale":
					tooStale++
				case r.Status == 200:
					got, _ := strconv.Atoi(string(r.Body))
					if want := acks.newestBefore(r.Sent.Add(-bound)); got < want {
						violations = append(violations, fmt.Sprintf("stale read via %s (%s, staleness %s) returned %d; %d was acknowledged more than %v before the read",
							n.Name, r.Header.Get("Cairn-Consistency"), r.Header.Get("Cairn-Staleness"), got, want, bound))
					}
					served[r.Header.Get("Cairn-Consistency")]++
					if r.Header.Get("Cairn-Consistency") == "stale" && n.Name != leader.Name {
						byFollower++
					}
				}
				mu.Unlock()
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	stopAll := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopAll()

	time.Sleep(3 * time.Second)
	// A follower frozen for longer than the bound (a GC pause, a stopped
	// VM) wakes with an old proof and a stale copy: it must not serve
	// from them.
	var frozen *Node
	for _, n := range c.Nodes {
		if n != leader {
			frozen = n
			break
		}
	}
	t.Logf("pausing %s (a follower) for 2s", frozen.Name)
	resume := pauseNode(t, frozen)
	time.Sleep(2 * time.Second)
	resume()
	time.Sleep(3 * time.Second)
	t.Logf("killing %s, leader of default", leader.Name)
	leader.Kill9()
	time.Sleep(4 * time.Second)
	leader.Restart()
	time.Sleep(3 * time.Second)
	stopAll()

	mu.Lock()
	defer mu.Unlock()
	t.Logf("stale reads served as %v, %d by a follower, %d too_stale; %d writes acknowledged", served, byFollower, tooStale, len(acks.acks))
	for i, v := range violations {
		if i == 20 {
			break
		}
		t.Error(v)
	}
	if served["stale"] < 100 {
		t.Errorf("only %d stale reads served", served["stale"])
	}
	if byFollower == 0 {
		t.Error("no stale read was served by a follower")
	}
	// The metrics count them too.
	local := 0.0
	for _, n := range c.Ready() {
		r := n.Do(opTimeout, "GET", "/metrics", nil)
		for _, line := range strings.Split(string(r.Body), "\n") {
			var v float64
			if _, err := fmt.Sscanf(line, "cairn_stale_reads_local_total %g", &v); err == nil {
				local += v
			}
		}
	}
	if local < float64(served["stale"])/2 {
		t.Errorf("cairn_stale_reads_local_total sums to %v over the nodes, for %d stale reads served", local, served["stale"])
	}
}

// TestSessionReadsAcrossSplits: ranges split by size all the time (2 KiB)
// while sessions write keys spread over the key space and read them back
// through every node with session consistency: no read misses the
// session's own acknowledged write or sees a key's version go back, across
// the splits (the token's entries of parent ranges and the generation
// rules of docs/design/reads.md).
// NB: the window in which a follower serves a range before applying a
// split the session has seen is too short to hit here: with the
// generation rules of kv.SessionToken.Need removed this test still passes
// (tried twice). Those rules are covered by TestSessionNeedAcrossSplits
// and by internal/sim's TestSimProbes, which catches their removal.
func TestSessionReadsAcrossSplits(t *testing.T) {
	c := StartCluster(t, 3, "--split-size", "2KiB")
	pad := string(make([]byte, 60))
	var mu sync.Mutex
	var violations []string
	served := map[string]int{}
	reads := 0
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for s := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			token := ""
			acked, attempted := map[string]int{}, map[string]int{}
			seen := map[string]uint64{}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				nodes := c.Ready()
				if len(nodes) == 0 {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				key := fmt.Sprintf("%c%02d-s%d", 'a'+i%26, (i/26)%20, s)
				attempted[key]++
				w := nodes[i%len(nodes)].Put("default", key, []byte(strconv.Itoa(attempted[key])+"|"+pad), "Cairn-Session", token)
				if w.OK() {
					acked[key] = attempted[key]
					if tok := w.Header.Get("Cairn-Session"); tok != "" {
						token = tok
					}
				}
				// Read a key written earlier, through another node.
				rk := fmt.Sprintf("%c%02d-s%d", 'a'+(i*7)%26, ((i*7)/26)%20, s)
				n := nodes[(i+1)%len(nodes)]
				r := n.Do(opTimeout, "GET", kvPath("default", rk)+"?consistency=session", nil, "Cairn-Session", token)
				if r.Err != nil || (r.Status != 200 && r.Status != 404) {
					continue
				}
				if tok := r.Header.Get("Cairn-Session"); tok != "" {
					token = tok
				}
				var version uint64
				got := 0
				if r.Status == 200 {
					version, _ = r.ETag()
					fmt.Sscanf(string(r.Body), "%d|", &got)
				}
				mu.Lock()
				reads++
				served[r.Header.Get("Cairn-Consistency")]++
				if version < seen[rk] {
					violations = append(violations, fmt.Sprintf("session %d: %s went back from version %d to %d via %s", s, rk, seen[rk], version, n.Name))
				}
				if got < acked[rk] || got > attempted[rk] {
					violations = append(violations, fmt.Sprintf("session %d: %s read %d via %s, acknowledged %d, attempted %d", s, rk, got, n.Name, acked[rk], attempted[rk]))
				}
				mu.Unlock()
				seen[rk] = max(seen[rk], version)
			}
		}()
	}
	time.Sleep(10 * time.Second)
	close(stop)
	wg.Wait()

	var st ClusterStatus
	if r := c.Nodes[0].Do(opTimeout, "GET", "/v1/cluster", nil); r.OK() {
		_ = r.JSON(&st)
	}
	ranges := 0
	for _, rs := range st.Ranges {
		if rs.Table == "default" {
			ranges++
		}
	}
	t.Logf("%d session reads served as %v; default has %d ranges", reads, served, ranges)
	for i, v := range violations {
		if i == 20 {
			break
		}
		t.Error(v)
	}
	if ranges < 3 {
		t.Errorf("only %d ranges: the test did not exercise splits", ranges)
	}
	if served["session"] == 0 {
		t.Error("no read was served at session level")
	}
}
