package robustness

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// bank moves money between accounts spread over two ranges of the
// "bank" table with cross-range transactions (POST /v1/txn through random
// nodes, which coordinate them: a node killed or cut off mid-transaction
// is a gateway dying mid-flight), while a checker reads every account in
// one read-only transaction: the total must never change, in any read and
// at the end on every node (issue 8's bank invariant, under the fault
// suite's kills, partitions and pauses).
type bank struct {
	c     *Cluster
	hc    *http.Client
	accts []string
	total int
	seed  uint64

	clientGroup

	transfers, checks atomic.Int64
	mu                sync.Mutex
	bad               []string
}

const bankTable = "bank"

type bankReply struct {
	Results []struct {
		Value   *string `json:"value"`
		Version uint64  `json:"version"`
	} `json:"results"`
}

func (b *bank) txn(n *Node, ops []string) (*bankReply, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", "http://"+n.Client+"/v1/txn",
		bytes.NewReader([]byte(`{"ops":[`+strings.Join(ops, ",")+`]}`)))
	if err != nil {
		return nil, 0, err
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, resp.StatusCode, nil
	}
	var out bankReply
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, resp.StatusCode, err
	}
	return &out, 200, nil
}

func (b *bank) readAll() []string {
	ops := make([]string, len(b.accts))
	for i, a := range b.accts {
		ops[i] = fmt.Sprintf(`{"op":"read","table":%q,"key":%q}`, bankTable, a)
	}
	return ops
}

func bankBalance(v *string) int {
	if v == nil {
		return 0
	}
	raw, _ := base64.StdEncoding.DecodeString(*v)
	n, _ := strconv.Atoi(string(raw))
	return n
}

// setup creates the table, splits it in two ranges and deposits 100 in
// each of 8 accounts, before any fault.
func (b *bank) setup() error {
	n := b.c.Nodes[0]
	do := func(path, body string) (int, error) {
		ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+n.Client+path, strings.NewReader(body))
		resp, err := b.hc.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if st, err := do("/v1/tables", `{"name":"`+bankTable+`"}`); err != nil || st >= 300 {
		return fmt.Errorf("create table: %d %v", st, err)
	}
	if st, err := do("/v1/ranges/split", `{"table":"`+bankTable+`","key":"m"}`); err != nil || st != 200 {
		return fmt.Errorf("split: %d %v", st, err)
	}
	var deposit []string
	for i := range 8 {
		a := fmt.Sprintf("%c%d", "bgpx"[i%4], i) // both sides of "m"
		b.accts = append(b.accts, a)
		deposit = append(deposit, fmt.Sprintf(`{"op":"put","table":%q,"key":%q,"value":"100"}`, bankTable, a))
	}
	b.total = 800
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, st, err := b.txn(n, deposit)
		if st == 200 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("deposit: %d %v", st, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (b *bank) start() {
	for w := range 2 {
		rng := rand.New(rand.NewPCG(b.seed, uint64(w)+0xba2c))
		b.spawn(func() { b.transferer(rng) })
	}
	rng := rand.New(rand.NewPCG(b.seed, 0xc4ec))
	b.spawn(func() { b.checker(rng) })
}

func (b *bank) transferer(rng *rand.Rand) {
	for !b.stopped() {
		i, j := rng.IntN(len(b.accts)), rng.IntN(len(b.accts))
		if i == j {
			continue
		}
		n := b.c.Nodes[rng.IntN(len(b.c.Nodes))]
		rd, st, _ := b.txn(n, []string{b.readAll()[i], b.readAll()[j]})
		if st != 200 {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		amount := 1 + rng.IntN(10)
		put := func(k int, v int, ver uint64) string {
			return fmt.Sprintf(`{"op":"put","table":%q,"key":%q,"value":"%d","if_version":%d}`, bankTable, b.accts[k], v, ver)
		}
		if _, st, _ := b.txn(n, []string{put(i, bankBalance(rd.Results[0].Value)-amount, rd.Results[0].Version),
			put(j, bankBalance(rd.Results[1].Value)+amount, rd.Results[1].Version)}); st == 200 {
			b.transfers.Add(1)
		}
	}
}

func (b *bank) checker(rng *rand.Rand) {
	for !b.stopped() {
		time.Sleep(50 * time.Millisecond)
		n := b.c.Nodes[rng.IntN(len(b.c.Nodes))]
		rd, st, _ := b.txn(n, b.readAll())
		if st != 200 {
			continue
		}
		b.checks.Add(1)
		if sum := b.sum(rd); sum != b.total {
			b.mu.Lock()
			b.bad = append(b.bad, fmt.Sprintf("a read-only transaction through %s saw a total of %d, not %d", n.Name, sum, b.total))
			b.mu.Unlock()
		}
	}
}

func (b *bank) sum(rd *bankReply) int {
	s := 0
	for _, r := range rd.Results {
		s += bankBalance(r.Value)
	}
	return s
}

// check reports the violations seen, then reads every account through
// every node after healing (retrying while the cluster recovers the
// transactions whose coordinators died): the same total everywhere.
func (b *bank) check(r *Report) {
	b.mu.Lock()
	for _, v := range b.bad {
		r.violate("bank: %s", v)
	}
	b.mu.Unlock()
	for _, n := range b.c.Nodes {
		deadline := time.Now().Add(30 * time.Second)
		for {
			rd, st, err := b.txn(n, b.readAll())
			if st == 200 {
				if sum := b.sum(rd); sum != b.total {
					r.violate("bank: the final total through %s is %d, not %d", n.Name, sum, b.total)
				}
				break
			}
			if time.Now().After(deadline) {
				r.violate("bank: no final read through %s within 30s after healing: %d %v", n.Name, st, err)
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}
