package e2e

import (
	"encoding/base64"
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

type txnReply struct {
	Results []struct {
		Found   bool    `json:"found"`
		Value   *string `json:"value"`
		Version uint64  `json:"version"`
	} `json:"results"`
}

type bankAccount struct{ table, key string }

// txn posts a transaction of ops (JSON objects) to n.
func txn(n *Node, ops ...string) (txnReply, Reply) {
	var out txnReply
	r := n.Do(opTimeout, "POST", "/v1/txn", []byte(`{"ops":[`+strings.Join(ops, ",")+`]}`))
	if r.Status == 200 {
		if err := json.Unmarshal(r.Body, &out); err != nil {
			r.Status, r.Err = 0, err
		}
	}
	return out, r
}

func readJSON(a bankAccount) string {
	return fmt.Sprintf(`{"op":"read","table":%q,"key":%q}`, a.table, a.key)
}

func balance(v *string) int {
	if v == nil {
		return 0
	}
	b, _ := base64.StdEncoding.DecodeString(*v)
	n, _ := strconv.Atoi(string(b))
	return n
}

// TestTxnBankKillNode: money moves between accounts on four ranges of two
// tables through POST /v1/txn on random nodes (a read, then both writes
// conditional on the versions read), while read-only transactions check
// the total; the node leading the "default" table is killed with SIGKILL
// mid-flight (its in-flight transactions lose their coordinator) and
// restarted. The total never changes; at the end, once the expired
// transactions are recovered, every node reads the same total.
func TestTxnBankKillNode(t *testing.T) {
	c := StartCluster(t, 3)
	n := c.Nodes[0]
	if r := n.Do(opTimeout, "POST", "/v1/tables", []byte(`{"name":"acct"}`)); r.Status != 200 && r.Status != 201 {
		t.Fatalf("create table: %v", r)
	}
	for _, sp := range []string{`{"table":"default","key":"m"}`, `{"table":"acct","key":"m"}`} {
		if r := n.Do(opTimeout, "POST", "/v1/ranges/split", []byte(sp)); r.Status != 200 {
			t.Fatalf("split %s: %v", sp, r)
		}
	}
	var accts []bankAccount
	var init []string
	for i := range 8 {
		a := bankAccount{[]string{"default", "acct"}[i%2], fmt.Sprintf("%c%d", "bfpx"[i%4], i)}
		accts = append(accts, a)
		init = append(init, fmt.Sprintf(`{"op":"put","table":%q,"key":%q,"value":"100"}`, a.table, a.key))
	}
	waitFor(t, 20*time.Second, "the initial deposit", func() error {
		if _, r := txn(n, init...); r.Status != 200 {
			return fmt.Errorf("%v", r)
		}
		return nil
	})
	const total = 800
	var all []string
	for _, a := range accts {
		all = append(all, readJSON(a))
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var commits, checks atomic.Int64
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 5))
			for {
				select {
				case <-stop:
					return
				default:
				}
				i, j := rng.IntN(len(accts)), rng.IntN(len(accts))
				node := pick(rng, c.Running())
				if i == j || node == nil {
					continue
				}
				rd, r := txn(node, readJSON(accts[i]), readJSON(accts[j]))
				if r.Status != 200 {
					continue
				}
				amount := 1 + rng.IntN(10)
				_, r = txn(node,
					fmt.Sprintf(`{"op":"put","table":%q,"key":%q,"value":"%d","if_version":%d}`, accts[i].table, accts[i].key, balance(rd.Results[0].Value)-amount, rd.Results[0].Version),
					fmt.Sprintf(`{"op":"put","table":%q,"key":%q,"value":"%d","if_version":%d}`, accts[j].table, accts[j].key, balance(rd.Results[1].Value)+amount, rd.Results[1].Version))
				if r.Status == 200 {
					commits.Add(1)
				}
			}
		}()
	}
	var mu sync.Mutex
	var bad []string
	wg.Add(1)
	go func() {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(9, 5))
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			node := pick(rng, c.Running())
			if node == nil {
				continue
			}
			rd, r := txn(node, all...)
			if r.Status != 200 {
				continue
			}
			checks.Add(1)
			sum := 0
			for _, res := range rd.Results {
				sum += balance(res.Value)
			}
			if sum != total {
				mu.Lock()
				bad = append(bad, fmt.Sprintf("total %d via %s", sum, node.Name))
				mu.Unlock()
			}
		}
	}()

	time.Sleep(2 * time.Second)
	victim := c.Leader("default")
	t.Logf("killing %s (leader of default) after %d transfers", victim.Name, commits.Load())
	victim.Kill9()
	time.Sleep(3 * time.Second)
	victim.Restart()
	victim.WaitReady()
	time.Sleep(2 * time.Second)
	close(stop)
	wg.Wait()
	if len(bad) > 0 {
		t.Fatalf("the total changed: %v", bad)
	}
	if commits.Load() == 0 || checks.Load() == 0 {
		t.Fatalf("nothing happened: %d transfers, %d checks", commits.Load(), checks.Load())
	}
	t.Logf("%d transfers committed, %d total checks", commits.Load(), checks.Load())
	// Every node, after recovery: the same total, the same balances.
	var first []int
	for _, node := range c.Nodes {
		var got []int
		waitFor(t, 30*time.Second, "a full read on "+node.Name, func() error {
			rd, r := txn(node, all...)
			if r.Status != 200 {
				return fmt.Errorf("%v", r)
			}
			got = got[:0]
			sum := 0
			for _, res := range rd.Results {
				got = append(got, balance(res.Value))
				sum += balance(res.Value)
			}
			if sum != total {
				t.Fatalf("%s: final total %d, want %d", node.Name, sum, total)
			}
			return nil
		})
		if first != nil && fmt.Sprint(first) != fmt.Sprint(got) {
			t.Fatalf("%s reads %v, another node %v", node.Name, got, first)
		}
		first = append([]int(nil), got...)
	}
}
