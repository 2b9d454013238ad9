package client

import (
	"context"
	"time"

	"github.com/cairn-db/cairn/api/cairnpb"
)

// Table describes a table.
type Table struct {
	Name string `json:"name"`
	ID   uint64 `json:"id"`
	// Partitioning is "range" or "hash".
	Partitioning string `json:"partitioning"`
	Replicas     uint32 `json:"replicas"`
	// Learners is the read learners per range (asynchronous replicas
	// serving session and stale reads).
	Learners uint32  `json:"learners,omitempty"`
	Ranges   []Range `json:"ranges,omitempty"`
	// Key history retention (nil: the nodes' defaults): at least the
	// newest HistoryKeep changes of each key, and those younger than
	// HistoryFor before its latest.
	HistoryKeep *uint32        `json:"history_keep,omitempty"`
	HistoryFor  *time.Duration `json:"history_for,omitempty"`
	// Consistency is the default read level of the table's gets and
	// lists ("" is Linearizable).
	Consistency string `json:"consistency,omitempty"`
	// Quotas (0: none): size in bytes, writes per second.
	MaxBytes        uint64 `json:"max_bytes,omitempty"`
	MaxWritesPerSec uint32 `json:"max_writes_per_sec,omitempty"`
	MaxReadsPerSec  uint32 `json:"max_reads_per_sec,omitempty"`
}

// Range describes one range of a table: the keys in [Start, End); an empty
// End means the end of the table.
type Range struct {
	ID       uint64   `json:"id"`
	TableID  uint64   `json:"table_id"`
	Start    []byte   `json:"start"`
	End      []byte   `json:"end"`
	Replicas []uint64 `json:"replicas"`
	Learners []uint64 `json:"learners,omitempty"`
}

// TableOption sets a property of a new table.
type TableOption func(*cairnpb.CreateTableRequest)

// WithPartitioning sets how the table's keys are spread over ranges:
// "range" (sorted keys, cheap prefix scans; the default) or "hash".
func WithPartitioning(p string) TableOption {
	return func(r *cairnpb.CreateTableRequest) { r.Partitioning = p }
}

// WithInitialRanges sets the number of ranges a hash table starts with:
// equal intervals of the hash space (default 4, at most 1024).
func WithInitialRanges(n uint32) TableOption {
	return func(r *cairnpb.CreateTableRequest) { r.InitialRanges = n }
}

// WithTableConsistency sets the table's default read level (Linearizable,
// Session or Stale), used by reads that name none.
func WithTableConsistency(level string) TableOption {
	return func(r *cairnpb.CreateTableRequest) { r.Consistency = level }
}

// WithQuota sets a new table's quotas: its size in bytes and its writes
// per second (0: none). Writes over them fail with ErrQuotaExceeded.
func WithQuota(maxBytes uint64, maxWritesPerSec uint32) TableOption {
	return func(r *cairnpb.CreateTableRequest) { r.MaxBytes, r.MaxWritesPerSec = maxBytes, maxWritesPerSec }
}

// WithReadQuota sets a new table's quota on reads per second (gets and
// lists; 0: none). Reads over it fail with ErrQuotaExceeded.
func WithReadQuota(maxReadsPerSec uint32) TableOption {
	return func(r *cairnpb.CreateTableRequest) { r.MaxReadsPerSec = maxReadsPerSec }
}

// WithReplicas sets a new table's replication factor: voters per range
// (1 to 7; 0 or unset: the cluster's --default-replicas, 3). A cluster
// with fewer active nodes keeps fewer until nodes join.
func WithReplicas(n uint32) TableOption {
	return func(r *cairnpb.CreateTableRequest) { r.Replicas = n }
}

// WithLearners gives each of a new table's ranges n read learners (0 to
// 7): asynchronous replicas on other nodes that serve session and stale
// reads and never slow a write. A cluster with too few nodes keeps fewer.
func WithLearners(n uint32) TableOption {
	return func(r *cairnpb.CreateTableRequest) { r.Learners = n }
}

// WithHistoryKeep sets how many changes of each key a new table's key
// history keeps at least (default: the nodes' --history-versions; 0 turns
// history off for the table).
func WithHistoryKeep(n uint32) TableOption {
	return func(r *cairnpb.CreateTableRequest) { r.HistoryVersions = &n }
}

// WithHistoryFor makes a new table's key history keep every change younger
// than d before the key's latest (default: the nodes'
// --history-retention; at most 30 days).
func WithHistoryFor(d time.Duration) TableOption {
	return func(r *cairnpb.CreateTableRequest) { r.HistoryRetentionMs = durationMs(&d) }
}

func durationMs(d *time.Duration) *uint64 {
	if d == nil {
		return nil
	}
	ms := uint64(max(*d, 0) / time.Millisecond)
	return &ms
}

func tableFromProto(t *cairnpb.Table) *Table {
	out := &Table{Name: t.Name, ID: t.Id, Partitioning: t.Partitioning, Replicas: t.Replicas, Learners: t.Learners, HistoryKeep: t.HistoryVersions, Consistency: t.Consistency,
		MaxBytes: t.MaxBytes, MaxWritesPerSec: t.MaxWritesPerSec, MaxReadsPerSec: t.MaxReadsPerSec}
	if t.HistoryRetentionMs != nil {
		d := time.Duration(*t.HistoryRetentionMs) * time.Millisecond
		out.HistoryFor = &d
	}
	for _, r := range t.Ranges {
		out.Ranges = append(out.Ranges, Range{ID: r.Id, TableID: r.TableId, Start: r.Start, End: r.End, Replicas: r.Replicas, Learners: r.Learners})
	}
	return out
}

// CreateTable creates a table; ErrTableExists if the name is taken.
func (c *Client) CreateTable(ctx context.Context, name string, opts ...TableOption) (*Table, error) {
	req := &cairnpb.CreateTableRequest{Name: name}
	for _, o := range opts {
		o(req)
	}
	var resp *cairnpb.Table
	err := c.do(ctx, write, func(ctx context.Context, ep *endpoint) (err error) {
		resp, err = ep.tables.CreateTable(ctx, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	return tableFromProto(resp), nil
}

// GetTable describes a table; ErrTableNotFound if it does not exist.
func (c *Client) GetTable(ctx context.Context, name string) (*Table, error) {
	req := &cairnpb.GetTableRequest{Name: name}
	var resp *cairnpb.Table
	err := c.do(ctx, read, func(ctx context.Context, ep *endpoint) (err error) {
		resp, err = ep.tables.GetTable(ctx, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	return tableFromProto(resp), nil
}

// ListTables describes all tables.
func (c *Client) ListTables(ctx context.Context) ([]*Table, error) {
	var resp *cairnpb.ListTablesResponse
	err := c.do(ctx, read, func(ctx context.Context, ep *endpoint) (err error) {
		resp, err = ep.tables.ListTables(ctx, &cairnpb.ListTablesRequest{})
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]*Table, len(resp.Tables))
	for i, t := range resp.Tables {
		out[i] = tableFromProto(t)
	}
	return out, nil
}

// TableUpdate names the settings UpdateTable changes; nil fields keep
// their value.
type TableUpdate struct {
	Consistency     *string
	MaxBytes        *uint64
	MaxWritesPerSec *uint32
	MaxReadsPerSec  *uint32
	Replicas        *uint32
	Learners        *uint32
	HistoryKeep     *uint32
	HistoryFor      *time.Duration
}

// UpdateTable changes a table's settings and returns the table. A new
// replicas or learners count is carried out by the coordinator after
// this returns (watch ClusterStatus).
func (c *Client) UpdateTable(ctx context.Context, name string, u TableUpdate) (*Table, error) {
	req := &cairnpb.UpdateTableRequest{Name: name, Consistency: u.Consistency, MaxBytes: u.MaxBytes,
		MaxWritesPerSec: u.MaxWritesPerSec, MaxReadsPerSec: u.MaxReadsPerSec, Replicas: u.Replicas, Learners: u.Learners, HistoryVersions: u.HistoryKeep,
		HistoryRetentionMs: durationMs(u.HistoryFor)}
	var out *Table
	err := c.do(ctx, write, func(ctx context.Context, ep *endpoint) error {
		t, err := ep.tables.UpdateTable(ctx, req)
		if err != nil {
			return err
		}
		out = tableFromProto(t)
		return nil
	})
	return out, err
}

// DropTable deletes a table and all its keys; ErrTableNotFound if it does
// not exist.
func (c *Client) DropTable(ctx context.Context, name string) error {
	req := &cairnpb.DropTableRequest{Name: name}
	return c.do(ctx, write, func(ctx context.Context, ep *endpoint) error {
		_, err := ep.tables.DropTable(ctx, req)
		return err
	})
}
