// Goal: transactions across ranges led by different nodes keep the bank
// invariant while nodes die: accounts spread over six ranges of two tables
// on three nodes; concurrent transfers (a read-only transaction, then a
// two-key transaction conditional on the versions read) through random
// gateways; read-only transactions check the total all along; nodes are
// stopped (the coordinators on them die mid-flight) and restarted. The
// total never changes, no transaction is half applied, and at the end
// every intent is resolved (by readers and the background resolver) and
// every node reads the same balances.
// Method: the node harness (node_test.go) with a router per node serving
// forwarded requests over real loopback gRPC; Pebble on disk.
package store_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/router"
)

type account struct{ table, key string }

func readOp(a account) *cairnpb.TxnOp {
	return &cairnpb.TxnOp{Kind: cairnpb.TxnOp_READ, Table: a.table, Key: []byte(a.key)}
}

// anyNode runs f on the router of a random running node.
func anyNode(nodes []*testNode, rng *rand.Rand, f func(rt *router.Router)) bool {
	return nodes[rng.IntN(len(nodes))].use(f)
}

func sumOf(resp *cairnpb.TxnResponse) int {
	sum := 0
	for _, r := range resp.Results {
		n, _ := strconv.Atoi(string(r.Value))
		sum += n
	}
	return sum
}

func TestTxnBankWithKills(t *testing.T) {
	if testing.Short() {
		t.Skip("kills nodes; seconds long")
	}
	nodes := newCluster(t, "n1", "n2", "n3")
	leaderOf(t, nodes, 1)
	leaderOf(t, nodes, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rt := nodes[0].rt
	if _, err := rt.CreateTable(ctx, &cairnpb.CreateTableRequest{Name: "acct"}); err != nil {
		t.Fatal(err)
	}
	for _, sp := range []account{{"default", "d"}, {"default", "h"}, {"default", "p"}, {"acct", "k"}} {
		if _, err := rt.SplitRange(ctx, &cairnpb.SplitRangeRequest{Table: sp.table, Key: []byte(sp.key)}); err != nil {
			t.Fatalf("split %v: %v", sp, err)
		}
	}
	var accts []account
	for i := range 16 {
		accts = append(accts, account{[]string{"default", "acct"}[i%2], fmt.Sprintf("%c%02d", "bfjrvxcm"[i%8], i)})
	}
	for _, a := range accts {
		if _, err := rt.Put(ctx, &cairnpb.PutRequest{Table: a.table, Key: []byte(a.key), Value: []byte("100")}); err != nil {
			t.Fatal(err)
		}
	}
	const total = 1600
	all := &cairnpb.TxnRequest{}
	for _, a := range accts {
		all.Ops = append(all.Ops, readOp(a))
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var commits, failures, checks atomic.Int64
	leaders := map[uint64]bool{}
	var leadersMu sync.Mutex
	noteLeaders := func() {
		leadersMu.Lock()
		defer leadersMu.Unlock()
		for _, n := range nodes {
			n.use(func(*router.Router) {
				for _, r := range n.st.Replicas() {
					if r.Desc().TableId != 0 && r.IsLeader() {
						leaders[n.id] = true
					}
				}
			})
		}
	}
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for {
				select {
				case <-stop:
					return
				default:
				}
				i, j := rng.IntN(len(accts)), rng.IntN(len(accts))
				if i == j {
					continue
				}
				anyNode(nodes, rng, func(rt *router.Router) {
					tctx, cancel := context.WithTimeout(ctx, 3*time.Second)
					defer cancel()
					rd, err := rt.Txn(tctx, &cairnpb.TxnRequest{Ops: []*cairnpb.TxnOp{readOp(accts[i]), readOp(accts[j])}})
					if err != nil {
						failures.Add(1)
						return
					}
					fv, _ := strconv.Atoi(string(rd.Results[0].Value))
					tv, _ := strconv.Atoi(string(rd.Results[1].Value))
					amount := 1 + rng.IntN(10)
					_, err = rt.Txn(tctx, &cairnpb.TxnRequest{Ops: []*cairnpb.TxnOp{
						{Kind: cairnpb.TxnOp_PUT, Table: accts[i].table, Key: []byte(accts[i].key), Value: []byte(strconv.Itoa(fv - amount)),
							Condition: &cairnpb.Condition{Version: rd.Results[0].Version}},
						{Kind: cairnpb.TxnOp_PUT, Table: accts[j].table, Key: []byte(accts[j].key), Value: []byte(strconv.Itoa(tv + amount)),
							Condition: &cairnpb.Condition{Version: rd.Results[1].Version}},
					}})
					if err != nil {
						failures.Add(1) // conflict, condition, or outcome unknown (a node died)
						return
					}
					commits.Add(1)
				})
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(99, 7))
		for {
			select {
			case <-stop:
				return
			default:
			}
			anyNode(nodes, rng, func(rt *router.Router) {
				tctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				defer cancel()
				resp, err := rt.Txn(tctx, all)
				if err != nil {
					return
				}
				checks.Add(1)
				if sum := sumOf(resp); sum != total {
					t.Errorf("total %d, want %d", sum, total)
				}
			})
			time.Sleep(10 * time.Millisecond)
		}
	}()

	// Kill and restart two nodes, one after the other, mid-flight.
	time.Sleep(700 * time.Millisecond)
	noteLeaders()
	for range 2 {
		// The node that leads the most data ranges: its ranges get new
		// leaders, spread over the others.
		victim, most := 0, -1
		for i, n := range nodes {
			led := 0
			n.use(func(*router.Router) {
				for _, r := range n.st.Replicas() {
					if r.Desc().TableId != 0 && r.IsLeader() {
						led++
					}
				}
			})
			if led > most {
				victim, most = i, led
			}
		}
		nodes[victim].stop()
		time.Sleep(1200 * time.Millisecond)
		noteLeaders()
		nodes[victim].start(nil)
		time.Sleep(1200 * time.Millisecond)
		noteLeaders()
	}
	close(stop)
	wg.Wait()
	if t.Failed() {
		return
	}
	t.Logf("%d transfers committed, %d failed or unknown, %d total checks; leaders on nodes %v", commits.Load(), failures.Load(), checks.Load(), leaders)
	if commits.Load() < 10 || checks.Load() < 3 {
		t.Fatalf("too little happened: %d commits, %d checks", commits.Load(), checks.Load())
	}
	if len(leaders) < 2 {
		t.Fatalf("every range was led by one node (%v): no transaction crossed leaders", leaders)
	}

	// Recovery: past every transaction's expiry, the background resolver
	// leaves no intent; every node then reads the same balances summing to
	// the total.
	time.Sleep(2500 * time.Millisecond)
	waitFor(t, 20*time.Second, "every intent resolved", func() bool {
		left := 0
		for _, n := range nodes {
			n.use(func(rt *router.Router) {
				rt.ResolveExpired(ctx)
				left += countIntents(t, n.db)
			})
		}
		return left == 0
	})
	var final []string
	for _, n := range nodes {
		var got []string
		sum := 0
		n.use(func(rt *router.Router) {
			for _, a := range accts {
				resp, err := rt.Get(ctx, &cairnpb.GetRequest{Table: a.table, Key: []byte(a.key)})
				if err != nil {
					t.Fatalf("%s: get %v: %v", n.name, a, err)
				}
				got = append(got, string(resp.Value))
				v, _ := strconv.Atoi(string(resp.Value))
				sum += v
			}
		})
		if sum != total {
			t.Fatalf("%s: final total %d, want %d", n.name, sum, total)
		}
		if final != nil && fmt.Sprint(final) != fmt.Sprint(got) {
			t.Fatalf("%s reads %v, another node %v", n.name, got, final)
		}
		final = got
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatal("test deadline passed")
	}
}

// countIntents counts the intents in a node's Pebble.
func countIntents(t *testing.T, db *pebble.DB) int {
	t.Helper()
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{0x05}, UpperBound: []byte{0x06}})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	return n
}
