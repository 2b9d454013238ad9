package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-db/cairn/client"
)

// TestWatchAcrossKillAndSplit: a Go client watches a prefix through one
// node while writers put and delete its keys through the others; the
// range splits in the middle of the keys and then the watched node is
// killed, so the client resumes on another node from its token. Every
// acknowledged put and delete must arrive exactly once, per key in
// version order; nothing may arrive that was never written.
func TestWatchAcrossKillAndSplit(t *testing.T) {
	c := StartCluster(t, 3)
	watched := c.Nodes[0]
	eps := []string{watched.Client, c.Nodes[1].Client, c.Nodes[2].Client}
	cl, err := client.New(client.Config{Endpoints: eps, RequestTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream := cl.Watch(ctx, "default", []byte("w/"), client.WatchPrefix())
	if first := <-stream; first.Err != nil || len(first.Events) != 0 {
		t.Fatalf("first response: %+v", first)
	}

	type key struct {
		k string
		v uint64
	}
	var mu sync.Mutex
	puts := map[key]bool{}    // acknowledged puts
	deletes := map[key]bool{} // acknowledged deletes, by the version they deleted
	unknown := map[string]bool{}
	var got []client.WatchEvent
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		for r := range stream {
			if r.Err != nil {
				if ctx.Err() == nil {
					t.Errorf("watch ended: %v", r.Err)
				}
				return
			}
			mu.Lock()
			got = append(got, r.Events...)
			mu.Unlock()
		}
	}()

	writers := c.Nodes[1:]
	const ops = 300
	for i := range ops {
		n := writers[i%len(writers)]
		k := fmt.Sprintf("w/%d", i%10)
		switch {
		case i == 100:
			body, _ := json.Marshal(map[string]string{"table": "default", "key": "w/5"})
			if r := n.Do(opTimeout, "POST", "/v1/ranges/split", body); r.Status != 200 {
				t.Fatalf("split: %s", r)
			}
		case i == 200:
			watched.Kill9()
		}
		if i%7 == 3 {
			r := n.Del("default", k)
			switch r.Status {
			case 200:
				v, err := r.Version()
				if err != nil {
					t.Fatal(err)
				}
				mu.Lock()
				deletes[key{k, v}] = true
				mu.Unlock()
			case 404:
			default:
				mu.Lock()
				unknown[k] = true
				mu.Unlock()
			}
			continue
		}
		r := n.Put("default", k, []byte(fmt.Sprint(i)))
		if r.Status != 200 {
			mu.Lock()
			unknown[k] = true // the write may or may not have happened
			mu.Unlock()
			continue
		}
		v, err := r.Version()
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		puts[key{k, v}] = true
		mu.Unlock()
	}

	// Every acknowledged change arrives.
	waitFor(t, 30*time.Second, "every acknowledged change in the watch", func() error {
		mu.Lock()
		defer mu.Unlock()
		seenPut, seenDel := map[key]bool{}, map[key]bool{}
		for _, e := range got {
			switch e.Type {
			case client.EventPut:
				seenPut[key{string(e.Key), e.Version}] = true
			case client.EventDelete:
				seenDel[key{string(e.Key), e.PrevVersion}] = true
			}
		}
		for p := range puts {
			if !seenPut[p] {
				return fmt.Errorf("put %s@%d not delivered (%d events so far)", p.k, p.v, len(got))
			}
		}
		for d := range deletes {
			if !seenDel[d] {
				return fmt.Errorf("delete of %s@%d not delivered", d.k, d.v)
			}
		}
		return nil
	})
	cancel()
	<-recvDone

	mu.Lock()
	defer mu.Unlock()
	last := map[string]uint64{}
	seen := map[key]bool{}
	for _, e := range got {
		k := key{string(e.Key), e.Version}
		if seen[k] {
			t.Errorf("%s@%d delivered twice", k.k, k.v)
		}
		seen[k] = true
		if e.Version <= last[k.k] {
			t.Errorf("%s: version %d after %d", k.k, e.Version, last[k.k])
		}
		last[k.k] = e.Version
		if e.Type == client.EventPut && !puts[k] && !unknown[k.k] {
			t.Errorf("put %s@%d was never acknowledged nor in doubt", k.k, k.v)
		}
		if !strings.HasPrefix(k.k, "w/") {
			t.Errorf("event of key %q outside the prefix", k.k)
		}
	}
	t.Logf("%d events for %d acknowledged puts and %d deletes; %d keys had writes in doubt",
		len(got), len(puts), len(deletes), len(unknown))
}

// sseEvent is one Server-Sent Event.
type sseEvent struct {
	id, event, data string
}

// readSSE reads n events (or until the stream ends) from GET path on node.
func readSSE(t *testing.T, n *Node, path string, want int, hdr ...string) ([]sseEvent, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+n.Client+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, resp.StatusCode
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	var out []sseEvent
	scanSSE(resp.Body, func(e sseEvent) bool {
		out = append(out, e)
		return len(out) < want
	})
	return out, resp.StatusCode
}

// sseResult is what readSSE returned.
type sseResult struct {
	evs    []sseEvent
	status int
}

// readSSEAsync runs readSSE in the background; its result arrives on the
// channel.
func readSSEAsync(t *testing.T, n *Node, path string, want int) <-chan sseResult {
	done := make(chan sseResult, 1)
	go func() {
		evs, status := readSSE(t, n, path, want)
		done <- sseResult{evs, status}
	}()
	return done
}

// scanSSE parses Server-Sent Events from r and hands each to emit until
// emit returns false or r ends.
func scanSSE(r io.Reader, emit func(sseEvent) bool) {
	var cur sseEvent
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if !emit(cur) {
				return
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, "id: "):
			cur.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			cur.event = line[7:]
		case strings.HasPrefix(line, "data: "):
			cur.data = line[6:]
		}
	}
}

// TestWatchSSE: the HTTP watch replays history after a version, marks the
// catch-up, resumes after Last-Event-ID with exactly the changes after
// it, and answers a resume the trimmed history cannot serve with 410.
func TestWatchSSE(t *testing.T) {
	// Count-only trimming, so that 20 quick writes overflow a history of 16.
	c := StartCluster(t, 1, "--history-retention", "0s")
	n := c.Nodes[0]
	v1 := n.MustPut(t, "default", "s", []byte("one"))
	n.MustPut(t, "default", "s", []byte("two"))
	if r := n.Del("default", "s"); r.Status != 200 {
		t.Fatal(r)
	}
	evs, status := readSSE(t, n, fmt.Sprintf("/v1/watch/default?key=s&start_version=%d", v1-1), 4)
	if status != 200 || len(evs) != 4 {
		t.Fatalf("status %d, events %+v", status, evs)
	}
	kinds := []string{evs[0].event, evs[1].event, evs[2].event, evs[3].event}
	if strings.Join(kinds, ",") != "put,put,delete,synced" {
		t.Fatalf("events %v", kinds)
	}
	var first struct {
		Key, Value string
		Version    uint64
	}
	if err := json.Unmarshal([]byte(evs[0].data), &first); err != nil || first.Key != "s" || first.Value != "b25l" || first.Version != v1 {
		t.Fatalf("first event %s (%v)", evs[0].data, err)
	}
	// Resume after the first event: exactly the two later changes.
	n.MustPut(t, "default", "s", []byte("three"))
	evs2, _ := readSSE(t, n, "/v1/watch/default?key=s", 4, "Last-Event-ID", evs[0].id)
	kinds = nil
	for _, e := range evs2 {
		kinds = append(kinds, e.event)
	}
	if strings.Join(kinds, ",") != "put,delete,put,synced" {
		t.Fatalf("resumed events %v", kinds)
	}
	// A key rewritten past its history (16 changes kept, no retention by
	// age here): resuming from its first version is refused, not served
	// with a gap.
	for i := range 20 {
		n.MustPut(t, "default", "hot", []byte(fmt.Sprint(i)))
	}
	if _, status := readSSE(t, n, "/v1/watch/default?key=hot&start_version=1", 1); status != http.StatusGone {
		t.Fatalf("resume over trimmed history: status %d, want 410", status)
	}
	if _, status := readSSE(t, n, "/v1/watch/default?key=s&resume_token=garbage", 1); status != http.StatusBadRequest {
		t.Fatalf("bad token: status %d, want 400", status)
	}
}

// TestWatchCLI: `cairn watch --prefix P -o json` prints every change of
// the prefix as a JSON line with a resume token, and `--resume` continues
// exactly after a line.
func TestWatchCLI(t *testing.T) {
	c := StartCluster(t, 3)
	n := c.Nodes[0]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "watch", "--prefix", "cli/", "-o", "json", "--endpoints", c.Nodes[1].Client)
	cmd.Env = childEnv()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	lines := bufio.NewScanner(out)
	type line struct {
		Type, Key   string
		Value       []byte
		Version     uint64
		ResumeToken string `json:"resume_token"`
	}
	next := func() line {
		t.Helper()
		if !lines.Scan() {
			t.Fatalf("cairn watch ended: %v", lines.Err())
		}
		var l line
		if err := json.Unmarshal(lines.Bytes(), &l); err != nil {
			t.Fatalf("line %q: %v", lines.Text(), err)
		}
		return l
	}
	// The watch starts from now: give it a moment to subscribe, then write.
	time.Sleep(time.Second)
	v1 := n.MustPut(t, "default", "cli/a", []byte("1"))
	n.MustPut(t, "default", "other", []byte("x"))
	v2 := n.MustPut(t, "default", "cli/b", []byte("2"))
	if r := n.Del("default", "cli/a"); r.Status != 200 {
		t.Fatal(r)
	}
	first, second, third := next(), next(), next()
	if first.Type != "put" || first.Key != "cli/a" || string(first.Value) != "1" || first.Version != v1 ||
		second.Key != "cli/b" || second.Version != v2 || third.Type != "delete" || third.Key != "cli/a" {
		t.Fatalf("lines %+v %+v %+v", first, second, third)
	}
	// Resume after the first line: exactly the two later changes.
	rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer rcancel()
	rc := exec.CommandContext(rctx, binary, "watch", "--prefix", "cli/", "--resume", first.ResumeToken, "--endpoints", c.Nodes[2].Client)
	rc.Env = childEnv()
	rout, err := rc.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { rcancel(); _ = rc.Wait() }()
	rl := bufio.NewScanner(rout)
	var got []string
	for len(got) < 2 && rl.Scan() {
		got = append(got, rl.Text())
	}
	if strings.Join(got, "|") != "put cli/b 2|delete cli/a" {
		t.Fatalf("resumed watch printed %q", got)
	}
}

// TestWatchThroughNodeWithoutReplica: on a 4-node cluster a table with 3
// replicas leaves one node without any; a watch through that node runs on
// a node that holds the keys and is relayed: history replay, the synced
// mark and live changes arrive in order, and an error of the serving node
// (a resume past the trimmed history) reaches the client as itself (410),
// not as a generic failure.
func TestWatchThroughNodeWithoutReplica(t *testing.T) {
	c := StartCluster(t, 3, append(placementArgs, "--history-retention", "0s")...)
	c.Join(c.Nodes[0])
	n1 := c.Nodes[0]
	if r := n1.Do(opTimeout, "POST", "/v1/tables", []byte(`{"name":"wt","replicas":3}`)); r.Status != 201 {
		t.Fatalf("create table: %s", r)
	}
	var rs *RangeStatus
	waitFor(t, 10*time.Second, "the range of wt in the catalog", func() error {
		st, err := n1.ClusterStatus(opTimeout)
		if err != nil {
			return err
		}
		if rs = st.Range("wt"); rs == nil || len(rs.Replicas) != 3 {
			return fmt.Errorf("range of wt: %+v", rs)
		}
		return nil
	})
	var outsider, holder *Node
	for _, n := range c.Nodes {
		if slices.Contains(rs.Replicas, n.ID) || slices.Contains(rs.Learners, n.ID) {
			holder = n
		} else {
			outsider = n
		}
	}
	if outsider == nil {
		t.Fatalf("every node holds wt: %+v", rs)
	}
	var versions []uint64
	for i := range 10 {
		versions = append(versions, holder.MustPut(t, "wt", fmt.Sprintf("p/%d", i), []byte(fmt.Sprint(i))))
	}
	done := readSSEAsync(t, outsider, fmt.Sprintf("/v1/watch/wt?prefix=p/&start_version=%d", versions[0]-1), 16)
	time.Sleep(500 * time.Millisecond)
	for i := 10; i < 15; i++ {
		versions = append(versions, holder.MustPut(t, "wt", fmt.Sprintf("p/%d", i), []byte(fmt.Sprint(i))))
	}
	res := <-done
	if res.status != 200 || len(res.evs) != 16 {
		t.Fatalf("watch through %s (no replica): status %d, %d events: %+v", outsider.Name, res.status, len(res.evs), res.evs)
	}
	var puts []uint64
	for i, e := range res.evs {
		if e.event == "synced" {
			if i != 10 {
				t.Errorf("synced after %d events, want after the 10 replayed", i)
			}
			continue
		}
		var ev struct {
			Key     string
			Version uint64
		}
		if err := json.Unmarshal([]byte(e.data), &ev); err != nil || e.event != "put" {
			t.Fatalf("event %d: %+v (%v)", i, e, err)
		}
		if want := fmt.Sprintf("p/%d", len(puts)); ev.Key != want || ev.Version != versions[len(puts)] {
			t.Errorf("event %d: %s@%d, want %s@%d", i, ev.Key, ev.Version, want, versions[len(puts)])
		}
		puts = append(puts, ev.Version)
	}
	// 20 quick writes of one key overflow its history (16 kept, no
	// retention by age): a resume from its first version is refused by the
	// serving node, and the relay says so.
	first := holder.MustPut(t, "wt", "hot", []byte("0"))
	for i := 1; i < 20; i++ {
		holder.MustPut(t, "wt", "hot", []byte(fmt.Sprint(i)))
	}
	if _, status := readSSE(t, outsider, fmt.Sprintf("/v1/watch/wt?key=hot&start_version=%d", first-1), 1); status != http.StatusGone {
		t.Fatalf("relayed resume over trimmed history: status %d, want 410", status)
	}
}

// TestMergedWatchAcrossNodes: a prefix watch whose ranges no single node
// holds (tables with one replica per range, spread by the balancer) is
// served through every node as one merged stream of the holders' streams:
// the replay after a version, one catch-up marker, live changes, and a
// resume (Last-Event-ID) through another node with exactly the changes
// after the event; for a range table cut by hand and a hash table, whose
// prefix spans every range.
func TestMergedWatchAcrossNodes(t *testing.T) {
	c := StartCluster(t, 3, append(placementArgs, "--history-retention", "0s")...)
	n1 := c.Nodes[0]
	for _, body := range []string{`{"name":"mw","replicas":1}`, `{"name":"mh","replicas":1,"partitioning":"hash","initial_ranges":4}`} {
		if r := n1.Do(opTimeout, "POST", "/v1/tables", []byte(body)); r.Status != 201 {
			t.Fatalf("create table %s: %s", body, r)
		}
	}
	for _, k := range []string{"p/2", "p/4", "p/6"} {
		split, _ := json.Marshal(map[string]string{"table": "mw", "key": k})
		if r := n1.Do(opTimeout, "POST", "/v1/ranges/split", split); r.Status != 200 {
			t.Fatalf("split mw at %s: %s", k, r)
		}
	}
	// The balancer spreads the single replicas over the nodes, until no
	// node holds every range of either table.
	waitFor(t, 90*time.Second, "no node holding every range of mw or of mh", func() error {
		st, err := n1.ClusterStatus(opTimeout)
		if err != nil {
			return err
		}
		for _, table := range []string{"mw", "mh"} {
			held := map[uint64]int{}
			n := 0
			for _, r := range st.Ranges {
				if r.Table != table {
					continue
				}
				n++
				for _, id := range append(slices.Clone(r.Replicas), r.Learners...) {
					held[id]++
				}
			}
			for id, k := range held {
				if k == n {
					return fmt.Errorf("%s: node %d holds all %d ranges (%v)", table, id, n, held)
				}
			}
			if n != 4 {
				return fmt.Errorf("%s: %d ranges", table, n)
			}
		}
		return nil
	})
	type change struct {
		Key     string
		Version uint64
	}
	parse := func(evs []sseEvent) (changes []string, synced int) {
		for _, e := range evs {
			if e.event == "synced" {
				synced++
				continue
			}
			var ch change
			if err := json.Unmarshal([]byte(e.data), &ch); err != nil || e.event != "put" {
				t.Fatalf("event %+v (%v)", e, err)
			}
			changes = append(changes, fmt.Sprintf("%s@%d", ch.Key, ch.Version))
		}
		return changes, synced
	}
	for _, table := range []string{"mw", "mh"} {
		var written []string
		var first uint64
		for i := range 8 {
			v := n1.PutRetrying(t, table, fmt.Sprintf("p/%d", i), []byte("v"))
			if i == 0 {
				first = v
			}
			written = append(written, fmt.Sprintf("p/%d@%d", i, v))
		}
		n1.PutRetrying(t, table, "other", []byte("v")) // outside the prefix
		for _, n := range c.Nodes {
			// 503 while the balancer still moves a part's replica: the
			// watch is refused, not wrong; retry as a client would.
			var evs []sseEvent
			status := 0
			for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
				evs, status = readSSE(t, n, fmt.Sprintf("/v1/watch/%s?prefix=p/&start_version=%d", table, first-1), 9)
				if status != http.StatusServiceUnavailable || time.Now().After(deadline) {
					break
				}
			}
			if status != 200 {
				t.Fatalf("%s: watch %s through %s: status %d", table, "p/", n.Name, status)
			}
			got, synced := parse(evs)
			if synced != 1 || evs[8].event != "synced" {
				t.Fatalf("%s through %s: %d caught-up markers, last event %+v; want one after the 8 replayed", table, n.Name, synced, evs[8])
			}
			sameChanges(t, fmt.Sprintf("%s through %s", table, n.Name), got, written)
			// Resume after the fourth event through the next node: exactly
			// the four after it.
			other := c.Nodes[(slices.Index(c.Nodes, n)+1)%len(c.Nodes)]
			var rest []sseEvent
			for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
				rest, status = readSSE(t, other, fmt.Sprintf("/v1/watch/%s?prefix=p/", table), 5, "Last-Event-ID", evs[3].id)
				if status != http.StatusServiceUnavailable || time.Now().After(deadline) {
					break
				}
			}
			if status != 200 {
				t.Fatalf("%s: resume through %s: status %d", table, other.Name, status)
			}
			restChanges, _ := parse(rest)
			sameChanges(t, fmt.Sprintf("%s resumed through %s", table, other.Name), restChanges, got[4:])
		}
		// From now: only the changes made after the catch-up marker.
		evs := sseStream(t, c.Nodes[2], fmt.Sprintf("/v1/watch/%s?prefix=p/", table))
		if e := <-evs; e.event != "synced" {
			t.Fatalf("%s from now: first event %+v, want the caught-up marker", table, e)
		}
		var fresh []string
		for _, k := range []string{"p/1", "p/5", "p/7"} {
			fresh = append(fresh, fmt.Sprintf("%s@%d", k, n1.PutRetrying(t, table, k, []byte("w"))))
		}
		got, _ := parse([]sseEvent{<-evs, <-evs, <-evs})
		sameChanges(t, table+" from now", got, fresh)
	}
	// The watches above were merged from parts (no node holds every
	// range of either table), not relayed from one holder.
	merged := 0.0
	for _, n := range c.Nodes {
		merged += metricValue(n, "cairn_watches_merged_total")
	}
	if merged < 8 {
		t.Fatalf("cairn_watches_merged_total summed over the nodes = %v, want at least 8 (the watches of both tables through every node)", merged)
	}
}

// sseStream follows a watch's Server-Sent Events in the background
// (retrying while the node answers 503); the channel closes when the stream ends (at the latest 30 s after the test
// started it, or when the test ends).
func sseStream(t *testing.T, n *Node, path string) <-chan sseEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	var resp *http.Response
	for {
		req, err := http.NewRequestWithContext(ctx, "GET", "http://"+n.Client+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp, err = http.DefaultClient.Do(req); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode == 200 {
			break
		}
		resp.Body.Close()
		// 503: a watched range is moving (a retryable refusal).
		if resp.StatusCode != http.StatusServiceUnavailable || ctx.Err() != nil {
			t.Fatalf("watch %s through %s: status %d", path, n.Name, resp.StatusCode)
		}
		time.Sleep(200 * time.Millisecond)
	}
	out := make(chan sseEvent, 64)
	go func() {
		defer close(out)
		defer resp.Body.Close()
		scanSSE(resp.Body, func(e sseEvent) bool {
			select {
			case out <- e:
				return true
			case <-ctx.Done():
				return false
			}
		})
	}()
	return out
}

// sameChanges: got holds exactly want's changes ("key@version"), each
// key's in want's order (keys of different ranges may interleave).
func sameChanges(t *testing.T, what string, got, want []string) {
	t.Helper()
	perKey := func(evs []string) map[string][]string {
		m := map[string][]string{}
		for _, e := range evs {
			k := e[:strings.LastIndexByte(e, '@')]
			m[k] = append(m[k], e)
		}
		return m
	}
	if len(got) != len(want) || fmt.Sprint(perKey(got)) != fmt.Sprint(perKey(want)) {
		t.Fatalf("%s: got %v, want %v (per key, in order)", what, got, want)
	}
}

// TestWatchSyncedOnLaggingFollower: a watch served by a follower that has
// not yet applied writes acknowledged before the watch began still
// replays them all before its "synced" mark (a read barrier on the
// watched ranges comes first). The follower is frozen (SIGSTOP) while
// ten writes are acknowledged by the others, and the watch request is
// sent to it while it is frozen, so that it handles the watch and the
// leader's appends together when it resumes.
func TestWatchSyncedOnLaggingFollower(t *testing.T) {
	c := StartCluster(t, 3)
	leader := c.Leader("default")
	follower := c.Others(leader)[0]
	first := leader.MustPut(t, "default", "lag/first", []byte("0"))
	for _, n := range c.Nodes { // every replica has applied the first write
		waitFor(t, 10*time.Second, "the first write on "+n.Name, func() error {
			if r := n.Do(opTimeout, "GET", "/v1/kv/default/lag/first?consistency=stale&max_staleness=1h", nil); !r.OK() {
				return fmt.Errorf("%s", r)
			}
			return nil
		})
	}
	resume := pauseNode(t, follower)
	var versions []uint64
	for i := range 10 {
		versions = append(versions, leader.MustPut(t, "default", fmt.Sprintf("lag/%d", i), []byte(fmt.Sprint(i))))
	}
	done := readSSEAsync(t, follower, fmt.Sprintf("/v1/watch/default?prefix=lag/&start_version=%d", first), 11)
	time.Sleep(300 * time.Millisecond) // the request waits in the frozen node's socket
	resume()
	res := <-done
	if res.status != 200 || len(res.evs) != 11 {
		t.Fatalf("watch on %s: status %d, %d events: %+v", follower.Name, res.status, len(res.evs), res.evs)
	}
	for i, e := range res.evs {
		if i == 10 {
			if e.event != "synced" {
				t.Fatalf("event 10 is %+v, want the synced mark after the 10 writes acknowledged before the watch", e)
			}
			break
		}
		var ev struct {
			Key     string
			Version uint64
		}
		if err := json.Unmarshal([]byte(e.data), &ev); err != nil || e.event != "put" {
			t.Fatalf("event %d: %+v (%v): synced before the writes acknowledged before the watch began", i, e, err)
		}
		if want := fmt.Sprintf("lag/%d", i); ev.Key != want || ev.Version != versions[i] {
			t.Fatalf("event %d: %s@%d, want %s@%d", i, ev.Key, ev.Version, want, versions[i])
		}
	}
}
