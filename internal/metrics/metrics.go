// Package metrics exports a node's state to Prometheus: its ranges and
// leaders, the Raft counters its replicas keep (replica.Stats), and
// Pebble's own metrics. Front ends record their request latencies
// themselves (httpapi, grpcapi's interceptor here, respapi).
//
// Why collectors that read at scrape time instead of gauges updated on
// every change: the numbers already exist (atomics in the replicas and
// store, Pebble's Metrics), so a scrape costs one pass over the replicas
// and nothing is paid on the request path. Series are per node, never per
// range: a node may hold tens of thousands of ranges, and per-range detail
// is what GET /v1/cluster is for.
package metrics

import (
	"context"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/cairn-db/cairn/internal/replica"
	"github.com/cairn-db/cairn/internal/watch"
)

// Source is what the node collector reads: the store's replicas and
// counters.
type Source interface {
	Replicas() []*replica.Replica
	Stats() *replica.Stats
	Hub() *watch.Hub
}

// NodeCollector exports a node's ranges, Raft counters and Pebble metrics.
type NodeCollector struct {
	src Source
	db  *pebble.DB

	ranges, leaders, leases, applyLag, replicaLag *prometheus.Desc
	proposals, dropped, leaderChanges             *prometheus.Desc
	becameLeader, readIndex, leaseRead            *prometheus.Desc
	sessionRead, staleRead, staleRefused          *prometheus.Desc
	snapshots, applied, watchers                  *prometheus.Desc
	quiesced, quiesces, wakes, pokes              *prometheus.Desc

	diskUsage, memtable, walBytes, readAmp *prometheus.Desc
	compactions, flushes                   *prometheus.Desc
	cacheBytes, cacheHits, cacheMisses     *prometheus.Desc
}

// NewNodeCollector returns the collector of src's replicas and db.
func NewNodeCollector(src Source, db *pebble.DB) *NodeCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &NodeCollector{
		src: src, db: db,
		ranges:        d("cairn_ranges", "Ranges with a replica on this node."),
		leaders:       d("cairn_range_leaders", "Ranges whose leader is this node's replica."),
		leases:        d("cairn_range_leases", "Ranges whose leader on this node holds a valid read lease."),
		quiesced:      d("cairn_ranges_quiesced", "Ranges whose replica on this node is quiesced (not ticked; docs/design/quiescence.md)."),
		quiesces:      d("cairn_raft_quiesces_total", "Times a replica on this node quiesced."),
		wakes:         d("cairn_raft_wakes_total", "Times a quiesced replica on this node woke."),
		pokes:         d("cairn_raft_leader_pokes_total", "Times a replica on this node heard nothing from its leader for an election timeout and poked it."),
		applyLag:      d("cairn_range_apply_lag_entries_max", "Largest gap between commit and applied index over this node's replicas."),
		replicaLag:    d("cairn_range_replica_lag_entries_max", "Largest gap between a leader's commit index and another replica's log, over the ranges this node leads (learners included)."),
		proposals:     d("cairn_raft_proposals_total", "Commands handed to Raft."),
		dropped:       d("cairn_raft_proposals_dropped_total", "Commands refused: not the leader, or dropped by Raft."),
		leaderChanges: d("cairn_raft_leader_changes_total", "Leader changes seen by this node's replicas."),
		becameLeader:  d("cairn_raft_became_leader_total", "Times a replica on this node became leader."),
		readIndex:     d("cairn_raft_read_index_rounds_total", "ReadIndex requests handed to Raft (read batches and lease renewals)."),
		leaseRead:     d("cairn_raft_lease_reads_total", "Reads served under the leader's lease, without a round trip."),
		sessionRead:   d("cairn_session_reads_local_total", "Session reads served by a local replica that had applied the session's position."),
		staleRead:     d("cairn_stale_reads_local_total", "Bounded-stale reads served by a local replica on a freshness proof."),
		staleRefused:  d("cairn_stale_reads_refused_total", "Bounded-stale reads refused as too stale: the replica could not prove the bound."),
		snapshots:     d("cairn_raft_snapshots_applied_total", "Raft snapshots installed."),
		applied:       d("cairn_raft_entries_applied_total", "Raft log entries applied."),
		watchers:      d("cairn_watchers", "Watch streams open on this node."),
		diskUsage:     d("cairn_pebble_disk_usage_bytes", "Disk space used by Pebble."),
		memtable:      d("cairn_pebble_memtable_bytes", "Bytes in Pebble memtables."),
		walBytes:      d("cairn_pebble_wal_written_bytes_total", "Bytes written to Pebble's WAL."),
		readAmp:       d("cairn_pebble_read_amplification", "Pebble read amplification (sublevels and levels with data)."),
		compactions:   d("cairn_pebble_compactions_total", "Pebble compactions."),
		flushes:       d("cairn_pebble_flushes_total", "Pebble memtable flushes."),
		cacheBytes:    d("cairn_pebble_block_cache_bytes", "Bytes in Pebble's block cache."),
		cacheHits:     d("cairn_pebble_block_cache_hits_total", "Pebble block cache hits."),
		cacheMisses:   d("cairn_pebble_block_cache_misses_total", "Pebble block cache misses."),
	}
}

// Describe implements prometheus.Collector.
func (c *NodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.ranges, c.leaders, c.leases, c.applyLag, c.proposals, c.dropped,
		c.leaderChanges, c.becameLeader, c.readIndex, c.leaseRead, c.sessionRead, c.staleRead, c.staleRefused, c.snapshots, c.applied, c.watchers, c.diskUsage,
		c.memtable, c.walBytes, c.readAmp, c.compactions, c.flushes, c.cacheBytes, c.cacheHits, c.cacheMisses, c.quiesced, c.quiesces, c.wakes, c.pokes} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *NodeCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}

	var ranges, leaders, leases, lag, replicaLag, quiesced float64
	for _, r := range c.src.Replicas() {
		ranges++
		if r.IsQuiesced() {
			quiesced++
		}
		if r.IsLeader() {
			leaders++
			for _, l := range r.Lag() {
				replicaLag = max(replicaLag, float64(l.Entries))
			}
		}
		if r.HasLease() {
			leases++
		}
		if _, commit, applied := r.Status(); commit > applied && float64(commit-applied) > lag {
			lag = float64(commit - applied)
		}
	}
	gauge(c.ranges, ranges)
	gauge(c.leaders, leaders)
	gauge(c.leases, leases)
	gauge(c.quiesced, quiesced)
	gauge(c.applyLag, lag)
	gauge(c.replicaLag, replicaLag)
	gauge(c.watchers, float64(c.src.Hub().Watchers()))

	st := c.src.Stats()
	counter(c.proposals, float64(st.Proposals.Load()))
	counter(c.dropped, float64(st.ProposalsDropped.Load()))
	counter(c.leaderChanges, float64(st.LeaderChanges.Load()))
	counter(c.becameLeader, float64(st.BecameLeader.Load()))
	counter(c.readIndex, float64(st.ReadIndexRounds.Load()))
	counter(c.leaseRead, float64(st.LeaseReads.Load()))
	counter(c.sessionRead, float64(st.SessionReads.Load()))
	counter(c.staleRead, float64(st.StaleReads.Load()))
	counter(c.staleRefused, float64(st.StaleRefused.Load()))
	counter(c.snapshots, float64(st.SnapshotsApplied.Load()))
	counter(c.applied, float64(st.EntriesApplied.Load()))
	counter(c.quiesces, float64(st.Quiesces.Load()))
	counter(c.wakes, float64(st.Unquiesces.Load()))
	counter(c.pokes, float64(st.LeaderPokes.Load()))

	if c.db == nil {
		return
	}
	m := c.db.Metrics()
	gauge(c.diskUsage, float64(m.DiskSpaceUsage()))
	gauge(c.memtable, float64(m.MemTable.Size))
	counter(c.walBytes, float64(m.WAL.BytesWritten))
	gauge(c.readAmp, float64(m.ReadAmp()))
	counter(c.compactions, float64(m.Compact.Count))
	counter(c.flushes, float64(m.Flush.Count))
	gauge(c.cacheBytes, float64(m.BlockCache.Size))
	counter(c.cacheHits, float64(m.BlockCache.Hits))
	counter(c.cacheMisses, float64(m.BlockCache.Misses))
}

// GRPCDuration is the latency histogram of client gRPC calls by method and
// status code.
func GRPCDuration() *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "cairn_grpc_request_duration_seconds",
		Help:    "Latency of client gRPC calls by method and status code.",
		Buckets: prometheus.ExponentialBucketsRange(0.0001, 10, 16),
	}, []string{"method", "code"})
}

// UnaryServerInterceptor records each unary call in h.
func UnaryServerInterceptor(h *prometheus.HistogramVec) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		h.WithLabelValues(info.FullMethod, status.Code(err).String()).Observe(time.Since(start).Seconds())
		return resp, err
	}
}
