package kv

import (
	"context"

	"github.com/cairn-db/cairn/api/cairnpb"
)

// Service is the whole client-facing API of a node. Every node implements
// all of it: requests for ranges led elsewhere are forwarded.
//
// Errors are the sentinels of this package (wrapped with detail); callers
// classify them with errors.Is.
type Service interface {
	Get(ctx context.Context, req *cairnpb.GetRequest) (*cairnpb.GetResponse, error)
	Put(ctx context.Context, req *cairnpb.PutRequest) (*cairnpb.PutResponse, error)
	Delete(ctx context.Context, req *cairnpb.DeleteRequest) (*cairnpb.DeleteResponse, error)
	List(ctx context.Context, req *cairnpb.ListRequest) (*cairnpb.ListResponse, error)

	CreateTable(ctx context.Context, req *cairnpb.CreateTableRequest) (*cairnpb.Table, error)
	GetTable(ctx context.Context, req *cairnpb.GetTableRequest) (*cairnpb.Table, error)
	ListTables(ctx context.Context, req *cairnpb.ListTablesRequest) (*cairnpb.ListTablesResponse, error)
	DropTable(ctx context.Context, req *cairnpb.DropTableRequest) (*cairnpb.DropTableResponse, error)
	// UpdateTable changes the settings req sets (admin on the table).
	UpdateTable(ctx context.Context, req *cairnpb.UpdateTableRequest) (*cairnpb.Table, error)

	ClusterStatus(ctx context.Context) (*cairnpb.ClusterStatus, error)
	// Ready reports nil when this node can serve reads and writes through a
	// leader (it knows a leader for the meta range and the default table).
	Ready(ctx context.Context) error
}

// Splitter splits a range by hand (an admin operation). The router
// implements it; the gRPC Cluster service and POST /v1/ranges/split use it.
type Splitter interface {
	SplitRange(ctx context.Context, req *cairnpb.SplitRangeRequest) (*cairnpb.SplitRangeResponse, error)
}

// Merger merges a range with its right neighbour by hand (an admin
// operation). The router implements it; the gRPC Cluster service and POST
// /v1/ranges/merge use it.
type Merger interface {
	MergeRange(ctx context.Context, req *cairnpb.MergeRangeRequest) (*cairnpb.MergeRangeResponse, error)
}

// NodeOperator drains, removes or reactivates a node (an admin
// operation). The router implements it; the gRPC Cluster service and POST
// /v1/cluster/nodes use it.
type NodeOperator interface {
	NodeAction(ctx context.Context, req *cairnpb.NodeActionRequest) (*cairnpb.NodeActionResponse, error)
}

// RouteReader tells clients where a table's keys live (its ranges, their
// leaders and the nodes' client addresses) so that they can send each
// request to the leader of its key's range. The router implements it; the
// gRPC Cluster.Routes call uses it.
type RouteReader interface {
	Routes(ctx context.Context, req *cairnpb.RoutesRequest) (*cairnpb.RoutesResponse, error)
}

// Batcher writes several keys of one table atomically (all or nothing).
// The router implements it; the Redis front end needs it for MSET and
// MSETNX. It is not part of the HTTP/gRPC contract yet.
type Batcher interface {
	Batch(ctx context.Context, req *cairnpb.BatchRequest) (*cairnpb.BatchResponse, error)
}

// Watcher streams the changes of a key or a key prefix (see package
// watch). send is called with each batch; Watch returns when ctx ends or
// on an error (send's included). The router implements it; the gRPC Watch
// service and GET /v1/watch/{table} use it.
type Watcher interface {
	Watch(ctx context.Context, req *cairnpb.WatchRequest, send func(*cairnpb.WatchResponse) error) error
}

// Historian reads a key's retained changes (see package watch). The router
// implements it; the gRPC History service and GET /v1/kv/{table}/{key}
// with ?history or ?version use it.
type Historian interface {
	History(ctx context.Context, req *cairnpb.HistoryRequest) (*cairnpb.HistoryResponse, error)
}

// Backuper takes and restores backups (docs/design/backup.md): Backup
// streams the state of every table at one point in time (the first chunk
// names it, the tables and the auth state); RestoreBegin recreates tables
// and auth records in an empty cluster; RestoreData writes records with
// their versions. The router implements it; the gRPC Backup service uses
// it, and the auth Guard lets only cluster admins through.
type Backuper interface {
	Backup(ctx context.Context, req *cairnpb.BackupRequest, send func(*cairnpb.BackupChunk) error) error
	RestoreBegin(ctx context.Context, req *cairnpb.RestoreBeginRequest) (*cairnpb.RestoreBeginResponse, error)
	RestoreData(ctx context.Context, req *cairnpb.RestoreDataRequest) (*cairnpb.RestoreDataResponse, error)
}

// Transactor runs transactions: reads, checks and writes on any keys of
// any tables, all or nothing and serializable
// (docs/design/transactions.md). The router implements it; POST /v1/txn,
// gRPC KV.Txn and the Redis front end's MSET/MSETNX use it.
type Transactor interface {
	Txn(ctx context.Context, req *cairnpb.TxnRequest) (*cairnpb.TxnResponse, error)
}
