// Package config turns flags, a config file and CAIRN_* environment
// variables into a validated Config for `cairn server`.
package config

import (
	"time"
)

// Config is everything `cairn server` needs to start a node.
type Config struct {
	// Name is this node's name in --initial-cluster (default "n1").
	Name string
	// DataDir holds the node's Pebble store (default "./cairn-data").
	DataDir string
	// Listen is the client API address, gRPC and HTTP on one port.
	Listen string
	// ListenPeer is the node-to-node address.
	ListenPeer string
	// ListenResp is the Redis-protocol address; empty disables it.
	ListenResp string
	// Advertise and AdvertisePeer are the addresses others use to reach this
	// node; they default to Listen and ListenPeer.
	Advertise     string
	AdvertisePeer string
	// InitialCluster maps node names to peer addresses for bootstrapping.
	// Empty means a single-node cluster of {Name: AdvertisePeer}.
	InitialCluster map[string]string
	// Join lists peer addresses of running members (adding this node).
	Join []string

	// TickInterval is the Raft tick; ElectionTicks and HeartbeatTicks are
	// counted in ticks.
	TickInterval   time.Duration
	ElectionTicks  int
	HeartbeatTicks int
	// LogKeepEntries is how many applied entries each range keeps in its
	// Raft log before truncating (followers further behind get a snapshot).
	LogKeepEntries uint64

	// RequestTimeout bounds one client request inside the node.
	RequestTimeout time.Duration
	// Input limits.
	MaxKeyBytes   int
	MaxValueBytes int

	// LogLevel is debug|info|warn|error; LogFormat is text|json.
	LogLevel  string
	LogFormat string
}
