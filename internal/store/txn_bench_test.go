package store_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/kv"
)

// BenchmarkTxn compares single-key puts with two-key transactions whose
// keys lie in two ranges (led by different nodes where the elections put
// them), without contention (keys drawn from 10,000) and with it (from 4),
// on a three-node cluster in one process (real Pebble, loopback gRPC).
// Requests go through random gateways, 8 at a time. It reports ops/s,
// p50/p99 latency, the share of transactions that failed on a conflict
// (the caller would retry them) and the share that timed out.
//
//	go test ./internal/store/ -run '^$' -bench BenchmarkTxn -benchtime 2000x
func BenchmarkTxn(b *testing.B) {
	nodes := newCluster(b, "n1", "n2", "n3")
	leaderOf(b, nodes, 1)
	leaderOf(b, nodes, 2)
	ctx := context.Background()
	if _, err := nodes[0].rt.SplitRange(ctx, &cairnpb.SplitRangeRequest{Table: "default", Key: []byte("m")}); err != nil {
		b.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // let the new range elect
	for _, bc := range []struct {
		name string
		keys int
		txn  bool
	}{
		{"put/uncontended", 10000, false},
		{"txn2/uncontended", 10000, true},
		{"put/contended", 4, false},
		{"txn2/contended", 4, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			const workers = 8
			var mu sync.Mutex
			var lat []time.Duration
			var conflicts, timeouts atomic.Int64
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(uint64(w), 11))
					var mine []time.Duration
					for next.Add(1) <= int64(b.N) {
						i := rng.IntN(bc.keys)
						left, right := fmt.Sprintf("a%05d", i), fmt.Sprintf("z%05d", i)
						n := nodes[rng.IntN(len(nodes))]
						t0 := time.Now()
						var err error
						if bc.txn {
							_, err = n.rt.Txn(ctx, &cairnpb.TxnRequest{Ops: []*cairnpb.TxnOp{
								{Kind: cairnpb.TxnOp_PUT, Table: "default", Key: []byte(left), Value: []byte("v")},
								{Kind: cairnpb.TxnOp_PUT, Table: "default", Key: []byte(right), Value: []byte("v")},
							}})
						} else {
							_, err = n.rt.Put(ctx, &cairnpb.PutRequest{Table: "default", Key: []byte(left), Value: []byte("v")})
						}
						switch {
						case errors.Is(err, kv.ErrTxnConflict) || errors.Is(err, kv.ErrTxnAborted):
							conflicts.Add(1)
						case errors.Is(err, kv.ErrTimeout) || errors.Is(err, kv.ErrUnavailable):
							timeouts.Add(1) // an overloaded machine; reported
						case err != nil:
							b.Error(err)
							return
						}
						mine = append(mine, time.Since(t0))
					}
					mu.Lock()
					lat = append(lat, mine...)
					mu.Unlock()
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			if len(lat) == 0 {
				return
			}
			slices.Sort(lat)
			b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "ops/s")
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(conflicts.Load())/float64(len(lat)), "conflict-ratio")
			b.ReportMetric(float64(timeouts.Load())/float64(len(lat)), "timeout-ratio")
		})
	}
}
