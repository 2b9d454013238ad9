package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// kind is the type of a setting's value, which decides the JSON types the
// config file accepts for it.
type kind int

const (
	kindString kind = iota
	kindInt
	kindUint
	kindDuration
	kindList    // comma-separated; a JSON array in the file
	kindCluster // name=addr,...; a JSON object in the file
	kindBool    // true|false; --flag alone means true
)

func (k kind) String() string {
	return [...]string{"string", "int", "uint", "duration", "list", "cluster", "bool"}[k]
}

// option is one setting. get and set convert between the Config field and
// the setting's text form (the flag and environment syntax); set(get(c))
// leaves c unchanged, which Load relies on to apply flags last.
type option struct {
	name  string
	usage string
	kind  kind
	get   func(*Config) string
	set   func(*Config, string) error
}

// configOption is the --config setting; it names the file, so it cannot be
// set in the file.
const configOption = "config"

// options lists every setting in the order of --help and of EncodeFile.
var options = []option{
	stringOption("name", "node name, as in --initial-cluster", func(c *Config) *string { return &c.Name }),
	stringOption("data-dir", "directory of the node's data", func(c *Config) *string { return &c.DataDir }),
	stringOption("listen", "client API address, gRPC and HTTP (host:port)", func(c *Config) *string { return &c.Listen }),
	stringOption("listen-peer", "node-to-node address (host:port)", func(c *Config) *string { return &c.ListenPeer }),
	stringOption("listen-resp", "Redis protocol address (host:port); empty disables it", func(c *Config) *string { return &c.ListenResp }),
	stringOption("advertise", "client address others use to reach this node (default --listen)", func(c *Config) *string { return &c.Advertise }),
	stringOption("advertise-peer", "peer address others use to reach this node (default --listen-peer)", func(c *Config) *string { return &c.AdvertisePeer }),
	{
		name:  "initial-cluster",
		usage: "bootstrap a cluster of these nodes: name=peeraddr,name=peeraddr,... (default: this node alone)",
		kind:  kindCluster,
		get:   func(c *Config) string { return FormatInitialCluster(c.InitialCluster) },
		set: func(c *Config, s string) (err error) {
			c.InitialCluster, err = ParseInitialCluster(s)
			return err
		},
	},
	{
		name:  "join",
		usage: "join a running cluster through these peer addresses (comma-separated)",
		kind:  kindList,
		get:   func(c *Config) string { return strings.Join(c.Join, ",") },
		set: func(c *Config, s string) (err error) {
			c.Join, err = parseList(s)
			return err
		},
	},
	durationOption("tick-interval", "Raft tick", func(c *Config) *time.Duration { return &c.TickInterval }),
	intOption("election-ticks", "Raft election timeout in ticks", func(c *Config) *int { return &c.ElectionTicks }),
	intOption("heartbeat-ticks", "Raft heartbeat interval in ticks", func(c *Config) *int { return &c.HeartbeatTicks }),
	{
		name:  "log-keep-entries",
		usage: "applied Raft entries each range keeps before truncating its log",
		kind:  kindUint,
		get:   func(c *Config) string { return strconv.FormatUint(c.LogKeepEntries, 10) },
		set: func(c *Config, s string) (err error) {
			c.LogKeepEntries, err = strconv.ParseUint(s, 10, 64)
			if err != nil {
				return fmt.Errorf("%q is not a non-negative integer", s)
			}
			return nil
		},
	},
	{
		name:  "split-size",
		usage: "a range splits when its data grows past this size (bytes, or with KiB/MiB/GiB); same on every node",
		kind:  kindUint,
		get:   func(c *Config) string { return strconv.FormatUint(c.SplitSizeBytes, 10) },
		set: func(c *Config, s string) (err error) {
			c.SplitSizeBytes, err = ParseBytes(s)
			return err
		},
	},
	{
		name:  "merge-size",
		usage: "adjacent ranges merge (the coordinator first moves them onto the same nodes) when their data together stays under this size and under half of --split-size (bytes, or with KiB/MiB/GiB; 0: never); same on every node",
		kind:  kindUint,
		get:   func(c *Config) string { return strconv.FormatUint(c.MergeSizeBytes, 10) },
		set: func(c *Config, s string) (err error) {
			if s == "0" {
				c.MergeSizeBytes = 0 // no automatic merges
				return nil
			}
			c.MergeSizeBytes, err = ParseBytes(s)
			return err
		},
	},
	intOption("merge-qps", "adjacent small ranges merge only while they serve fewer requests a second than this together", func(c *Config) *int { return &c.MergeQPS }),
	durationOption("merge-delay", "how long two adjacent ranges must stay small, cold and unchanged (no split, no move) before they merge", func(c *Config) *time.Duration { return &c.MergeDelay }),
	intOption("split-qps", "a range whose leader serves more requests a second than this for 5 s splits at its median request key (0: never); same on every node", func(c *Config) *int { return &c.SplitQPS }),
	durationOption("request-timeout", "time limit of one client request inside the node", func(c *Config) *time.Duration { return &c.RequestTimeout }),
	durationOption("max-clock-offset", "largest difference between two nodes' wall clocks: a forwarded request that reaches its node more than this after its deadline is not executed (0: no check)", func(c *Config) *time.Duration { return &c.MaxClockOffset }),
	intOption("max-key-bytes", "largest key accepted", func(c *Config) *int { return &c.MaxKeyBytes }),
	intOption("max-value-bytes", "largest value accepted", func(c *Config) *int { return &c.MaxValueBytes }),
	intOption("history-versions", "changes of each key kept for watch resumption (0: none); same on every node", func(c *Config) *int { return &c.HistoryVersions }),
	durationOption("history-retention", "changes younger than this (before a key's latest) are kept beyond --history-versions; same on every node", func(c *Config) *time.Duration { return &c.HistoryRetention }),
	intOption("watch-buffer", "changes that may wait for a slow watcher before it is cut off (it then resumes from history)", func(c *Config) *int { return &c.WatchBuffer }),
	intOption("txn-max-keys", "most operations (keys) in one transaction", func(c *Config) *int { return &c.TxnMaxKeys }),
	{
		name:  "txn-max-bytes",
		usage: "most bytes of keys and values in one transaction (bytes, or with KiB/MiB/GiB)",
		kind:  kindUint,
		get:   func(c *Config) string { return strconv.FormatUint(c.TxnMaxBytes, 10) },
		set: func(c *Config, s string) (err error) {
			c.TxnMaxBytes, err = ParseBytes(s)
			return err
		},
	},
	durationOption("txn-max-duration", "time from a transaction's start to its commit; after it others may abort it", func(c *Config) *time.Duration { return &c.TxnMaxDuration }),
	durationOption("heartbeat-interval", "how often this node reports to the coordinator (and the coordinator plans)", func(c *Config) *time.Duration { return &c.HeartbeatInterval }),
	durationOption("dead-node-timeout", "a node silent this long has its replicas rebuilt on other nodes", func(c *Config) *time.Duration { return &c.DeadNodeTimeout }),
	intOption("default-replicas", "voters per range of a table created without --replicas (fewer while the cluster has fewer nodes)", func(c *Config) *int { return &c.DefaultReplicas }),
	boolOption("quiesce", "let idle ranges stop their Raft heartbeats and election timers (woken by any request or message, or when their leader's node goes quiet); --quiesce=false keeps every range ticking", func(c *Config) *bool { return &c.Quiesce }),
	boolOption("insecure", "allow a client listener (--listen, --listen-resp) off loopback without auth, and a peer listener off loopback without --peer-cert (protected mode is off)", func(c *Config) *bool { return &c.Insecure }),
	stringOption("cert", "TLS certificate (PEM) of the client listeners; with --key enables TLS 1.2+", func(c *Config) *string { return &c.CertFile }),
	stringOption("key", "TLS private key (PEM) of --cert", func(c *Config) *string { return &c.KeyFile }),
	stringOption("ca", "CA (PEM) that signs client certificates; a verified certificate authenticates as the user named by its common name", func(c *Config) *string { return &c.CAFile }),
	stringOption("peer-cert", "TLS certificate (PEM) of this node for node-to-node mTLS (both server and client)", func(c *Config) *string { return &c.PeerCertFile }),
	stringOption("peer-key", "TLS private key (PEM) of --peer-cert", func(c *Config) *string { return &c.PeerKeyFile }),
	stringOption("peer-ca", "CA (PEM) that every node's peer certificate must chain to", func(c *Config) *string { return &c.PeerCAFile }),
	stringOption("log-level", "debug, info, warn or error", func(c *Config) *string { return &c.LogLevel }),
	stringOption("log-format", "text or json", func(c *Config) *string { return &c.LogFormat }),
	stringOption(configOption, "config file, JSON or YAML (.yaml/.yml); its keys are these flag names", func(c *Config) *string { return &c.ConfigFile }),
}

func lookupOption(name string) *option {
	for i := range options {
		if options[i].name == name {
			return &options[i]
		}
	}
	return nil
}

// envName is the environment variable of a setting: CAIRN_DATA_DIR for
// data-dir.
func envName(name string) string {
	return "CAIRN_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

func stringOption(name, usage string, field func(*Config) *string) option {
	return option{
		name: name, usage: usage, kind: kindString,
		get: func(c *Config) string { return *field(c) },
		set: func(c *Config, s string) error { *field(c) = s; return nil },
	}
}

func intOption(name, usage string, field func(*Config) *int) option {
	return option{
		name: name, usage: usage, kind: kindInt,
		get: func(c *Config) string { return strconv.Itoa(*field(c)) },
		set: func(c *Config, s string) error {
			v, err := strconv.Atoi(s)
			if err != nil {
				return fmt.Errorf("%q is not an integer", s)
			}
			*field(c) = v
			return nil
		},
	}
}

func durationOption(name, usage string, field func(*Config) *time.Duration) option {
	return option{
		name: name, usage: usage, kind: kindDuration,
		get: func(c *Config) string { return field(c).String() },
		set: func(c *Config, s string) error {
			v, err := time.ParseDuration(s)
			if err != nil {
				return fmt.Errorf("%q is not a duration like 100ms or 10s", s)
			}
			*field(c) = v
			return nil
		},
	}
}

// parseList splits a comma-separated list, trimming spaces; "" is nil.
func parseList(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []string
	for e := range strings.SplitSeq(s, ",") {
		e = strings.TrimSpace(e)
		if e == "" {
			return nil, fmt.Errorf("list %q has an empty entry", s)
		}
		out = append(out, e)
	}
	return out, nil
}

// ParseBytes parses a byte size: a plain integer, or one with a KiB, MiB
// or GiB suffix.
func ParseBytes(s string) (uint64, error) {
	mult := uint64(1)
	num := s
	for _, u := range []struct {
		suffix string
		mult   uint64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if strings.HasSuffix(s, u.suffix) {
			num, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseUint(strings.TrimSpace(num), 10, 64)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not a positive size (bytes, or with KiB, MiB or GiB)", s)
	}
	return n * mult, nil
}

func boolOption(name, usage string, field func(*Config) *bool) option {
	return option{
		name: name, usage: usage, kind: kindBool,
		get: func(c *Config) string { return strconv.FormatBool(*field(c)) },
		set: func(c *Config, s string) error {
			v, err := strconv.ParseBool(s)
			if err != nil {
				return fmt.Errorf("%q is not true or false", s)
			}
			*field(c) = v
			return nil
		},
	}
}
