package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/cairn-db/cairn/client"
)

// benchOptions are the flags of cairn bench.
type benchOptions struct {
	clients   int
	duration  time.Duration
	keys      int
	valueSize int
	readRatio float64
	table     string
	preload   bool
	seed      uint64
	// Reads: consistency level and bound; spread gives every endpoint its
	// own client (workers take them in turn), so reads reach every node
	// instead of the one the client prefers.
	consistency  string
	maxStaleness time.Duration
	spread       bool
	// noKeyRouting sends every operation to the endpoints (the nodes
	// forward) instead of to the leader of its key's range.
	noKeyRouting bool
}

func (o benchOptions) validate() error {
	switch {
	case o.clients < 1 || o.clients > 10000:
		return usageErrorf("--clients %d: want 1 to 10000", o.clients)
	case o.duration <= 0:
		return usageErrorf("--duration %v: want a positive duration", o.duration)
	case o.keys < 1:
		return usageErrorf("--keys %d: want at least 1", o.keys)
	case o.valueSize < 0 || o.valueSize > maxStdinBytes:
		return usageErrorf("--value-size %d: want 0 to %d", o.valueSize, maxStdinBytes)
	case !(o.readRatio >= 0 && o.readRatio <= 1):
		return usageErrorf("--read-ratio %v: want 0 to 1", o.readRatio)
	}
	rf := readFlags{consistency: o.consistency, maxStaleness: o.maxStaleness}
	return rf.check()
}

func newBenchCommand(a *app) *cobra.Command {
	var o benchOptions
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure throughput and latency of gets and puts",
		Long: `Drive a cluster with --clients concurrent workers for --duration. Each
operation is a get with probability --read-ratio and otherwise a put of a
--value-size value, on a key chosen uniformly among --keys keys
("bench-00000042"). --preload first writes every key once, so gets find
their keys.

Prints, per operation kind, the count, ops/s, p50/p99/p999 latency and the
errors; with -o json, one JSON line. A get of an absent key is counted as
not_found, not as an error. Ctrl-C stops early and prints the results so
far. Exits 3 if no operation succeeded.`,
		Example: `  cairn bench --preload
  cairn bench --clients 64 --duration 30s --read-ratio 0.5 -o json`,
		Args: cobra.NoArgs,
	}
	fs := cmd.Flags()
	fs.IntVar(&o.clients, "clients", 16, "concurrent workers")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long to run")
	fs.IntVar(&o.keys, "keys", 10000, "number of distinct keys")
	fs.IntVar(&o.valueSize, "value-size", 100, "bytes per value")
	fs.Float64Var(&o.readRatio, "read-ratio", 0.9, "fraction of operations that are gets")
	fs.StringVar(&o.table, "table", defaultTable, "table to use")
	fs.BoolVar(&o.preload, "preload", false, "write every key once before measuring")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the workers' random choices")
	fs.StringVar(&o.consistency, "consistency", "", "consistency of the gets: linearizable (default), session or stale")
	fs.DurationVar(&o.maxStaleness, "max-staleness", 0, "bound of stale gets (default 5s)")
	fs.BoolVar(&o.spread, "spread", false, "one client per endpoint, workers spread over them (reads reach every node)")
	fs.BoolVar(&o.noKeyRouting, "no-key-routing", false, "send operations to the endpoints, which forward them, instead of to the leader of each key's range")
	a.addClientFlags(cmd, false)
	cmd.RunE = runE(func(cmd *cobra.Command, _ []string) error {
		if err := o.validate(); err != nil {
			return err
		}
		a.keyRouting = !o.noKeyRouting
		c, err := a.newClient(cmd)
		if err != nil {
			return err
		}
		defer c.Close()
		workers := []*client.Client{c}
		if o.spread {
			workers = nil
			for _, e := range a.endpointList(cmd) {
				ec, err := a.dial(cmd, []string{e})
				if err != nil {
					return err
				}
				defer ec.Close()
				workers = append(workers, ec)
			}
		}
		ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if o.preload {
			if err := preload(ctx, c, o); err != nil {
				return fmt.Errorf("preload: %w", err)
			}
		}
		before := routingTotals(workers)
		r := runBench(ctx, workers, o)
		r.routing = routingTotals(workers).minus(before)
		if a.output == "json" {
			writeJSON(cmd.OutOrStdout(), r.summary(o))
		} else {
			r.print(cmd.OutOrStdout(), o)
		}
		if r.get.ok()+r.put.ok() == 0 {
			if r.firstErr == nil {
				// Nothing finished in time: as much a failure as errors.
				return fmt.Errorf("no operation succeeded: none completed within %v", o.duration)
			}
			return fmt.Errorf("no operation succeeded; first error: %w", r.firstErr)
		}
		if r.firstErr != nil && a.output != "json" {
			fmt.Fprintf(cmd.ErrOrStderr(), "first error: %v\n", r.firstErr)
		}
		return nil
	})
	return cmd
}

func benchKey(i int) []byte { return fmt.Appendf(nil, "bench-%08d", i) }

// preload writes every key once, with o.clients workers.
func preload(ctx context.Context, c *client.Client, o benchOptions) error {
	value := make([]byte, o.valueSize)
	keys := make(chan int)
	errs := make(chan error, o.clients)
	var wg sync.WaitGroup
	for range o.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range keys {
				if _, err := c.Put(ctx, o.table, benchKey(i), value); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var err error
feed:
	for i := range o.keys {
		select {
		case keys <- i:
		case err = <-errs:
			break feed
		}
	}
	close(keys)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errs:
		default:
		}
	}
	return err
}

// opStats are the results of one operation kind.
type opStats struct {
	latency  histogram
	errors   uint64
	notFound uint64
}

func (s *opStats) ok() uint64 { return s.latency.total }

func (s *opStats) merge(o *opStats) {
	s.latency.merge(&o.latency)
	s.errors += o.errors
	s.notFound += o.notFound
}

// benchResult is what the workers measured.
type benchResult struct {
	get, put opStats
	elapsed  time.Duration
	firstErr error
	routing  benchRouting
}

// benchRouting counts how the measured operations were sent
// (client.RoutingStats).
type benchRouting struct {
	Direct     uint64 `json:"direct"`
	Redirected uint64 `json:"redirected"`
	Fallback   uint64 `json:"fallback"`
}

// routingTotals sums the clients' routing counts.
func routingTotals(cs []*client.Client) benchRouting {
	var out benchRouting
	for _, c := range cs {
		s := c.RoutingStats()
		out.Direct += s.Direct
		out.Redirected += s.Redirected
		out.Fallback += s.Fallback
	}
	return out
}

func (b benchRouting) minus(o benchRouting) benchRouting {
	return benchRouting{Direct: b.Direct - o.Direct, Redirected: b.Redirected - o.Redirected, Fallback: b.Fallback - o.Fallback}
}

// runBench runs the workers until o.duration passes or ctx ends. Each
// worker owns its stats and its random source; they are merged at the end.
func runBench(ctx context.Context, cs []*client.Client, o benchOptions) *benchResult {
	ctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	results := make([]benchResult, o.clients)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range o.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			benchWorker(ctx, cs[w%len(cs)], o, rand.New(rand.NewPCG(o.seed, uint64(w))), &results[w])
		}()
	}
	wg.Wait()
	total := &benchResult{elapsed: time.Since(start)}
	for i := range results {
		total.get.merge(&results[i].get)
		total.put.merge(&results[i].put)
		if total.firstErr == nil {
			total.firstErr = results[i].firstErr
		}
	}
	return total
}

func benchWorker(ctx context.Context, c *client.Client, o benchOptions, rnd *rand.Rand, r *benchResult) {
	value := make([]byte, o.valueSize)
	// NB: near the deadline gRPC fails calls with DeadlineExceeded before
	// ctx.Err() reports it, so the end of the run is judged by the clock.
	deadline, _ := ctx.Deadline()
	for ctx.Err() == nil && time.Now().Before(deadline) {
		key := benchKey(rnd.IntN(o.keys))
		isGet := rnd.Float64() < o.readRatio
		stats := &r.put
		t0 := time.Now()
		var err error
		if isGet {
			stats = &r.get
			_, _, err = c.Get(ctx, o.table, key, client.WithConsistency(o.consistency), client.WithMaxStaleness(o.maxStaleness))
		} else {
			_, err = c.Put(ctx, o.table, key, value)
		}
		d := time.Since(t0)
		switch {
		case ctx.Err() != nil || !time.Now().Before(deadline):
			// Cut off by the end of the run: not a result.
		case err == nil:
			stats.latency.record(d)
		case isGet && errors.Is(err, client.ErrNotFound):
			stats.latency.record(d)
			stats.notFound++
		default:
			stats.errors++
			if r.firstErr == nil {
				r.firstErr = err
			}
		}
	}
}

// benchOpSummary is the JSON form of one operation kind's results.
type benchOpSummary struct {
	Count     uint64  `json:"count"`
	OpsPerSec float64 `json:"ops_per_sec"`
	P50Ms     float64 `json:"p50_ms"`
	P99Ms     float64 `json:"p99_ms"`
	P999Ms    float64 `json:"p999_ms"`
	Errors    uint64  `json:"errors"`
	NotFound  uint64  `json:"not_found,omitempty"`
}

// benchSummary is the JSON output of bench.
type benchSummary struct {
	Clients         int                       `json:"clients"`
	DurationSeconds float64                   `json:"duration_seconds"`
	Keys            int                       `json:"keys"`
	ValueSize       int                       `json:"value_size"`
	ReadRatio       float64                   `json:"read_ratio"`
	Table           string                    `json:"table"`
	Ops             map[string]benchOpSummary `json:"ops"`
	OpsPerSec       float64                   `json:"ops_per_sec"`
	Errors          uint64                    `json:"errors"`
	Routing         benchRouting              `json:"routing"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (s *opStats) summary(elapsed time.Duration) benchOpSummary {
	return benchOpSummary{
		Count:     s.ok(),
		OpsPerSec: float64(s.ok()) / elapsed.Seconds(),
		P50Ms:     ms(s.latency.quantile(0.50)),
		P99Ms:     ms(s.latency.quantile(0.99)),
		P999Ms:    ms(s.latency.quantile(0.999)),
		Errors:    s.errors,
		NotFound:  s.notFound,
	}
}

func (r *benchResult) summary(o benchOptions) benchSummary {
	return benchSummary{
		Clients:         o.clients,
		DurationSeconds: r.elapsed.Seconds(),
		Keys:            o.keys,
		ValueSize:       o.valueSize,
		ReadRatio:       o.readRatio,
		Table:           o.table,
		Ops:             map[string]benchOpSummary{"get": r.get.summary(r.elapsed), "put": r.put.summary(r.elapsed)},
		OpsPerSec:       float64(r.get.ok()+r.put.ok()) / r.elapsed.Seconds(),
		Errors:          r.get.errors + r.put.errors,
		Routing:         r.routing,
	}
}

func (r *benchResult) print(w io.Writer, o benchOptions) {
	fmt.Fprintf(w, "%d clients, %.1fs, %d keys, %d-byte values, read ratio %.2f, table %s\n",
		o.clients, r.elapsed.Seconds(), o.keys, o.valueSize, o.readRatio, o.table)
	tw := newTable(w)
	fmt.Fprintln(tw, "OP\tCOUNT\tOPS/S\tP50\tP99\tP999\tERRORS\tNOT_FOUND")
	for _, op := range []struct {
		name  string
		stats *opStats
	}{{"get", &r.get}, {"put", &r.put}} {
		s := op.stats.summary(r.elapsed)
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.3fms\t%.3fms\t%.3fms\t%d\t%d\n",
			op.name, s.Count, s.OpsPerSec, s.P50Ms, s.P99Ms, s.P999Ms, s.Errors, s.NotFound)
	}
	sum := r.summary(o)
	fmt.Fprintf(tw, "total\t%d\t%.0f\t\t\t\t%d\t\n", r.get.ok()+r.put.ok(), sum.OpsPerSec, sum.Errors)
	_ = tw.Flush()
	fmt.Fprintf(w, "routing: %d direct to the key's node, %d redirected, %d through the endpoints\n",
		r.routing.Direct, r.routing.Redirected, r.routing.Fallback)
}
