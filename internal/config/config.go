// Package config turns flags, a config file and CAIRN_* environment
// variables into a validated Config for `cairn server`.
//
// Every setting has one name, the flag name (e.g. "data-dir"), used three
// ways: as the flag (--data-dir), as the environment variable (CAIRN_ +
// the name in upper case with underscores: CAIRN_DATA_DIR) and as the key
// in the JSON config file given by --config ({"data-dir": "/var/lib/cairn"}).
// Precedence, highest first: flag, environment, file, default.
//
// Usage, in a cobra command:
//
//	cfg := config.Default()
//	config.BindFlags(cmd.Flags(), &cfg)
//	// ... after flag parsing:
//	cfg, err := config.Load(cmd.Flags(), os.LookupEnv)
//
// Load applies the file and the environment beneath the flags given on the
// command line, fills in derived defaults (EnsureDefaults) and validates
// (Validate), so a Config it returns is ready to use.
package config

import (
	"maps"
	"slices"
	"time"

	"github.com/cairn-db/cairn/internal/kv"
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
	// Quiesce (--quiesce, on by default) lets idle ranges stop ticking
	// (docs/design/quiescence.md). Each node decides for its own
	// replicas, so a cluster may mix settings.
	Quiesce bool

	// RequestTimeout bounds one client request inside the node.
	RequestTimeout time.Duration
	// MaxClockOffset bounds how far apart the nodes' wall clocks may be.
	// A request forwarded to another node carries its deadline, and the
	// receiver refuses it once more than this past (RELIABILITY.md #28);
	// 0 turns the check off. Leases and stale reads do not depend on it.
	MaxClockOffset time.Duration
	// SplitSizeBytes: a range whose data grows past it splits in two. A
	// cluster-wide setting: give every node the same value (the leader of
	// a range decides with its own).
	SplitSizeBytes uint64
	// SplitQPS: a range whose leader serves more requests a second than
	// this for 5 s splits at its median request key, and the halves'
	// leaders go to two nodes (0: no load-based splits).
	SplitQPS int
	// Merges (docs/design/merges.md): two adjacent ranges with the same
	// replicas whose data together stays under MergeSizeBytes (and under
	// half of SplitSizeBytes, so the merged range does not split again)
	// and that serve fewer than MergeQPS requests a second together, both
	// unchanged for MergeDelay, merge; never across the initial bounds
	// of a hash table. MergeSizeBytes 0: no automatic merges.
	// Cluster-wide settings, like SplitSizeBytes.
	MergeSizeBytes uint64
	MergeQPS       int
	MergeDelay     time.Duration
	// Input limits.
	MaxKeyBytes   int
	MaxValueBytes int
	// HistoryVersions is how many changes of each key its history keeps
	// at least, for watch resumption (0: none, so a watch cannot resume
	// after a gap); HistoryRetention keeps younger changes beyond those.
	// Cluster-wide settings, like SplitSizeBytes.
	HistoryVersions  int
	HistoryRetention time.Duration
	// WatchBuffer is how many changes may wait for a slow watcher before
	// it is cut off (it then resumes from history).
	WatchBuffer int
	// Transaction limits (docs/design/transactions.md): operations, bytes
	// of keys and values, and time from start to commit.
	TxnMaxKeys     int
	TxnMaxBytes    uint64
	TxnMaxDuration time.Duration
	// Placement (docs/design/placement.md): nodes report to the
	// coordinator every HeartbeatInterval; a node silent for
	// DeadNodeTimeout has its replicas rebuilt elsewhere; a table that
	// names no replication factor gets DefaultReplicas voters per range.
	HeartbeatInterval time.Duration
	DeadNodeTimeout   time.Duration
	DefaultReplicas   int

	// Insecure turns protected mode off: without it, a client listener
	// off loopback is refused while auth is disabled, and a peer listener
	// off loopback is refused without peer TLS.
	Insecure bool
	// CertFile and KeyFile enable TLS on the client listeners; CAFile
	// verifies client certificates (optional; CN = user).
	CertFile, KeyFile, CAFile string
	// PeerCertFile, PeerKeyFile and PeerCAFile enable mTLS between nodes.
	PeerCertFile, PeerKeyFile, PeerCAFile string

	// LogLevel is debug|info|warn|error; LogFormat is text|json.
	LogLevel  string
	LogFormat string

	// ConfigFile is the JSON file the settings were read from (--config),
	// or empty.
	ConfigFile string
}

// Upper bounds of the input limits: a key or value over these could not
// cross the peer transport in one message.
const (
	MaxKeyBytesLimit   = 64 << 10
	MaxValueBytesLimit = 64 << 20
)

// Default returns the defaults of the contract: a single node n1 with data
// in ./cairn-data, listening on 127.0.0.1 only.
func Default() Config {
	return Config{
		Name:              "n1",
		DataDir:           "./cairn-data",
		Listen:            "127.0.0.1:7379",
		ListenPeer:        "127.0.0.1:7380",
		ListenResp:        "127.0.0.1:7381",
		TickInterval:      100 * time.Millisecond,
		ElectionTicks:     10,
		HeartbeatTicks:    1,
		LogKeepEntries:    10000,
		RequestTimeout:    10 * time.Second,
		MaxClockOffset:    500 * time.Millisecond,
		SplitSizeBytes:    64 << 20,
		SplitQPS:          2500,
		MergeSizeBytes:    16 << 20,
		MergeQPS:          250,
		MergeDelay:        5 * time.Minute,
		MaxKeyBytes:       kv.DefaultLimits.MaxKeyBytes,
		MaxValueBytes:     kv.DefaultLimits.MaxValueBytes,
		HistoryVersions:   16,
		HistoryRetention:  time.Minute,
		WatchBuffer:       4096,
		TxnMaxKeys:        1000,
		TxnMaxBytes:       4 << 20,
		TxnMaxDuration:    5 * time.Second,
		HeartbeatInterval: time.Second,
		DeadNodeTimeout:   5 * time.Minute,
		DefaultReplicas:   3,
		Quiesce:           true,
		LogLevel:          "info",
		LogFormat:         "text",
	}
}

// EnsureDefaults fills zero fields with the defaults and derives the
// advertised addresses: Advertise defaults to Listen, and AdvertisePeer to
// this node's entry in InitialCluster or else to ListenPeer. ListenResp,
// InitialCluster and Join stay empty when empty (they mean "disabled",
// "single node" and "not joining").
func (c *Config) EnsureDefaults() {
	d := Default()
	setString := func(p *string, def string) {
		if *p == "" {
			*p = def
		}
	}
	setString(&c.Name, d.Name)
	setString(&c.DataDir, d.DataDir)
	setString(&c.Listen, d.Listen)
	setString(&c.ListenPeer, d.ListenPeer)
	setString(&c.LogLevel, d.LogLevel)
	setString(&c.LogFormat, d.LogFormat)
	setString(&c.Advertise, c.Listen)
	if c.AdvertisePeer == "" {
		if addr, ok := c.InitialCluster[c.Name]; ok {
			c.AdvertisePeer = addr
		} else {
			c.AdvertisePeer = c.ListenPeer
		}
	}
	if c.TickInterval == 0 {
		c.TickInterval = d.TickInterval
	}
	if c.ElectionTicks == 0 {
		c.ElectionTicks = d.ElectionTicks
	}
	if c.HeartbeatTicks == 0 {
		c.HeartbeatTicks = d.HeartbeatTicks
	}
	if c.LogKeepEntries == 0 {
		c.LogKeepEntries = d.LogKeepEntries
	}
	if c.SplitSizeBytes == 0 {
		c.SplitSizeBytes = d.SplitSizeBytes
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = d.RequestTimeout
	}
	if c.MaxKeyBytes == 0 {
		c.MaxKeyBytes = d.MaxKeyBytes
	}
	if c.MaxValueBytes == 0 {
		c.MaxValueBytes = d.MaxValueBytes
	}
	if c.WatchBuffer == 0 {
		c.WatchBuffer = d.WatchBuffer
	}
	if c.TxnMaxKeys == 0 {
		c.TxnMaxKeys = d.TxnMaxKeys
	}
	if c.TxnMaxBytes == 0 {
		c.TxnMaxBytes = d.TxnMaxBytes
	}
	if c.TxnMaxDuration == 0 {
		c.TxnMaxDuration = d.TxnMaxDuration
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = d.HeartbeatInterval
	}
	if c.DeadNodeTimeout == 0 {
		c.DeadNodeTimeout = d.DeadNodeTimeout
	}
	if c.DefaultReplicas == 0 {
		c.DefaultReplicas = d.DefaultReplicas
	}
}

// KVLimits returns the input limits of the config for the front ends.
func (c Config) KVLimits() kv.Limits {
	l := kv.DefaultLimits
	l.MaxKeyBytes = c.MaxKeyBytes
	l.MaxValueBytes = c.MaxValueBytes
	return l
}

// clone returns a copy of c that shares no map or slice with it.
func (c Config) clone() Config {
	c.InitialCluster = maps.Clone(c.InitialCluster)
	c.Join = slices.Clone(c.Join)
	return c
}
