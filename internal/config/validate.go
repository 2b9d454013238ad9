package config

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cairn-db/cairn/internal/kv"
)

// Bounds of the Raft timing settings.
const (
	minTickInterval  = time.Millisecond
	maxTickInterval  = time.Minute
	maxElectionTicks = 1000
)

// Validate reports every problem of c at once (joined), each naming the
// setting by its flag. Call EnsureDefaults first: Validate treats empty
// required fields as errors.
func (c Config) Validate() error {
	var errs []error
	add := func(flag string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("config: --%s: %w", flag, err))
		}
	}
	add("name", checkName(c.Name))
	if c.DataDir == "" {
		add("data-dir", errors.New("is empty"))
	}
	c.validateAddrs(add)
	c.validateCluster(add)
	c.validateNumbers(add)
	c.validateTLS(add)
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.LogLevel) {
		add("log-level", fmt.Errorf("%q is not one of debug, info, warn, error", c.LogLevel))
	}
	if !slices.Contains([]string{"text", "json"}, c.LogFormat) {
		add("log-format", fmt.Errorf("%q is not one of text, json", c.LogFormat))
	}
	return errors.Join(errs...)
}

// multiNode reports whether the node is meant to talk to other nodes.
func (c Config) multiNode() bool {
	return len(c.InitialCluster) > 1 || len(c.Join) > 0
}

func (c Config) validateAddrs(add func(string, error)) {
	type listener struct {
		flag, addr string
		hp         hostPort
	}
	var listeners []listener
	bad := map[string]bool{} // listen addresses that do not parse
	for _, l := range []listener{{flag: "listen", addr: c.Listen}, {flag: "listen-peer", addr: c.ListenPeer}, {flag: "listen-resp", addr: c.ListenResp}} {
		if l.addr == "" && l.flag == "listen-resp" {
			continue // disabled
		}
		hp, err := parseHostPort(l.addr)
		if err != nil {
			add(l.flag, err)
			bad[l.addr] = true
			continue
		}
		for _, o := range listeners {
			if sameListenAddr(hp, o.hp) {
				add(l.flag, fmt.Errorf("%q conflicts with --%s %q", l.addr, o.flag, o.addr))
			}
		}
		l.hp = hp
		listeners = append(listeners, l)
	}
	for _, a := range []struct{ flag, addr string }{{"advertise", c.Advertise}, {"advertise-peer", c.AdvertisePeer}} {
		if bad[a.addr] {
			continue // derived from a bad listen address, already reported
		}
		hp, err := parseHostPort(a.addr)
		switch {
		case err != nil:
			add(a.flag, err)
		case c.multiNode() && !hp.specific():
			add(a.flag, fmt.Errorf("%q: other nodes cannot reach it; give this node's reachable host:port", a.addr))
		}
	}
}

// sameListenAddr reports whether two listen addresses would collide: the
// same non-zero port on the same host or on all interfaces.
func sameListenAddr(a, b hostPort) bool {
	if a.port == 0 || a.port != b.port {
		return false
	}
	return a.host == b.host || !a.specificHost() || !b.specificHost()
}

func (a hostPort) specificHost() bool {
	return hostPort{host: a.host, port: 1}.specific()
}

func (c Config) validateCluster(add func(string, error)) {
	if len(c.InitialCluster) > 0 && len(c.Join) > 0 {
		add("join", errors.New("cannot be combined with --initial-cluster: a node either bootstraps a cluster or joins one"))
	}
	if len(c.InitialCluster) > 0 {
		// Re-check entries: the map may not come from ParseInitialCluster.
		if _, err := ParseInitialCluster(FormatInitialCluster(c.InitialCluster)); err != nil {
			add("initial-cluster", err)
		}
		addr, ok := c.InitialCluster[c.Name]
		switch {
		case !ok:
			names := make([]string, 0, len(c.InitialCluster))
			for n := range c.InitialCluster {
				names = append(names, n)
			}
			slices.Sort(names)
			add("initial-cluster", fmt.Errorf("has no entry for this node (--name %q); members are %s", c.Name, strings.Join(names, ", ")))
		case addr != c.AdvertisePeer:
			add("advertise-peer", fmt.Errorf("%q differs from this node's --initial-cluster address %q", c.AdvertisePeer, addr))
		}
	}
	for _, j := range c.Join {
		if err := checkPeerAddr(j); err != nil {
			add("join", err)
		}
	}
}

func (c Config) validateNumbers(add func(string, error)) {
	if c.TickInterval < minTickInterval || c.TickInterval > maxTickInterval {
		add("tick-interval", fmt.Errorf("%v is outside [%v, %v]", c.TickInterval, minTickInterval, maxTickInterval))
	}
	if c.HeartbeatTicks < 1 {
		add("heartbeat-ticks", fmt.Errorf("%d is less than 1", c.HeartbeatTicks))
	}
	if c.ElectionTicks <= c.HeartbeatTicks || c.ElectionTicks > maxElectionTicks {
		add("election-ticks", fmt.Errorf("%d must be greater than --heartbeat-ticks (%d) and at most %d", c.ElectionTicks, c.HeartbeatTicks, maxElectionTicks))
	}
	if c.LogKeepEntries < 1 {
		add("log-keep-entries", errors.New("must be at least 1"))
	}
	if c.RequestTimeout <= 0 {
		add("request-timeout", fmt.Errorf("%v is not positive", c.RequestTimeout))
	}
	if c.MaxClockOffset < 0 {
		add("max-clock-offset", fmt.Errorf("%v is negative", c.MaxClockOffset))
	}
	if c.MaxKeyBytes < 1 || c.MaxKeyBytes > MaxKeyBytesLimit {
		add("max-key-bytes", fmt.Errorf("%d is outside [1, %d]", c.MaxKeyBytes, MaxKeyBytesLimit))
	}
	if c.HistoryVersions < 0 || c.HistoryVersions > 1000 {
		add("history-versions", fmt.Errorf("%d is outside [0, 1000]", c.HistoryVersions))
	}
	if c.HistoryRetention < 0 || c.HistoryRetention > 24*time.Hour {
		add("history-retention", fmt.Errorf("%v is outside [0, 24h]", c.HistoryRetention))
	}
	if c.WatchBuffer < 1 || c.WatchBuffer > 1<<20 {
		add("watch-buffer", fmt.Errorf("%d is outside [1, %d]", c.WatchBuffer, 1<<20))
	}
	if c.MaxValueBytes < 1 || c.MaxValueBytes > MaxValueBytesLimit {
		add("max-value-bytes", fmt.Errorf("%d is outside [1, %d]", c.MaxValueBytes, MaxValueBytesLimit))
	}
	if c.TxnMaxKeys < 1 || c.TxnMaxKeys > 100000 {
		add("txn-max-keys", fmt.Errorf("%d is outside [1, 100000]", c.TxnMaxKeys))
	}
	if c.TxnMaxBytes > 256<<20 {
		add("txn-max-bytes", fmt.Errorf("%d is over 256 MiB", c.TxnMaxBytes))
	}
	if c.TxnMaxDuration < 10*time.Millisecond || c.TxnMaxDuration > 10*time.Minute {
		add("txn-max-duration", fmt.Errorf("%v is outside [10ms, 10m]", c.TxnMaxDuration))
	}
	if c.HeartbeatInterval < 10*time.Millisecond || c.HeartbeatInterval > time.Minute {
		add("heartbeat-interval", fmt.Errorf("%v is outside [10ms, 1m]", c.HeartbeatInterval))
	}
	if c.DeadNodeTimeout < 4*c.HeartbeatInterval {
		add("dead-node-timeout", fmt.Errorf("%v is under 4 heartbeat intervals (%v)", c.DeadNodeTimeout, 4*c.HeartbeatInterval))
	}
	if c.MergeQPS < 0 {
		add("merge-qps", fmt.Errorf("%d is negative", c.MergeQPS))
	}
	if c.MergeDelay < 0 {
		add("merge-delay", fmt.Errorf("%v is negative", c.MergeDelay))
	}
	if c.SplitQPS < 0 {
		add("split-qps", fmt.Errorf("%d is negative (0 turns load-based splits off)", c.SplitQPS))
	}
	if c.DefaultReplicas < 1 || c.DefaultReplicas > kv.MaxReplicas {
		add("default-replicas", fmt.Errorf("%d is outside [1, %d]", c.DefaultReplicas, kv.MaxReplicas))
	}
}

// validateTLS checks that TLS files come in complete sets.
func (c Config) validateTLS(add func(string, error)) {
	if (c.CertFile == "") != (c.KeyFile == "") {
		add("cert", errors.New("--cert and --key go together"))
	}
	if c.CAFile != "" && c.CertFile == "" {
		add("ca", errors.New("needs --cert and --key (client certificates are verified over TLS)"))
	}
	if (c.PeerCertFile == "") != (c.PeerKeyFile == "") || (c.PeerCertFile == "") != (c.PeerCAFile == "") {
		add("peer-cert", errors.New("--peer-cert, --peer-key and --peer-ca go together"))
	}
}
