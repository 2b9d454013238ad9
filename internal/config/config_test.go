// Tests of config. Goal: the defaults are the contract's, every bad
// setting is rejected with a message naming its flag, the sources combine
// as flag > env > file > default, and the parsers never panic and read back
// what they write. Method: table tests over Config values and command
// lines, fuzz targets for the two parsers.
package config

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestDefault(t *testing.T) {
	c := Default()
	want := Config{
		Name: "n1", DataDir: "./cairn-data",
		Listen: "127.0.0.1:7379", ListenPeer: "127.0.0.1:7380", ListenResp: "127.0.0.1:7381",
		TickInterval: 100 * time.Millisecond, ElectionTicks: 10, HeartbeatTicks: 1, LogKeepEntries: 10000,
		RequestTimeout: 10 * time.Second, MaxClockOffset: 500 * time.Millisecond, SplitSizeBytes: 64 << 20, SplitQPS: 2500, MaxKeyBytes: 4096, MaxValueBytes: 1 << 20,
		MergeSizeBytes: 16 << 20, MergeQPS: 250, MergeDelay: 5 * time.Minute,
		HistoryVersions: 16, HistoryRetention: time.Minute, WatchBuffer: 4096,
		TxnMaxKeys: 1000, TxnMaxBytes: 4 << 20, TxnMaxDuration: 5 * time.Second,
		HeartbeatInterval: time.Second, DeadNodeTimeout: 5 * time.Minute, DefaultReplicas: 3, Quiesce: true,
		LogLevel: "info", LogFormat: "text",
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("Default() = %+v\nwant %+v", c, want)
	}
	c.EnsureDefaults()
	if c.Advertise != "127.0.0.1:7379" || c.AdvertisePeer != "127.0.0.1:7380" {
		t.Errorf("advertised addresses = %q %q", c.Advertise, c.AdvertisePeer)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	if l := c.KVLimits(); l.MaxKeyBytes != 4096 || l.MaxValueBytes != 1<<20 || l.DefaultListLimit == 0 {
		t.Errorf("KVLimits = %+v", l)
	}
}

func TestEnsureDefaults(t *testing.T) {
	var c Config
	c.EnsureDefaults()
	d := Default()
	d.ListenResp = ""                                    // empty means disabled and stays so
	d.HistoryVersions, d.HistoryRetention = 0, 0         // zero means no history and stays so
	d.SplitQPS = 0                                       // zero means no load-based splits and stays so
	d.MergeSizeBytes, d.MergeQPS, d.MergeDelay = 0, 0, 0 // zero means no automatic merges and stays so
	d.Quiesce = false                                    // a bool has no "unset": false stays off
	d.MaxClockOffset = 0                                 // zero means no deadline check and stays so
	d.Advertise, d.AdvertisePeer = d.Listen, d.ListenPeer
	if !reflect.DeepEqual(c, d) {
		t.Fatalf("EnsureDefaults of zero = %+v\nwant %+v", c, d)
	}

	c = Config{Name: "b", ListenPeer: "0.0.0.0:7380", InitialCluster: map[string]string{"a": "10.0.0.1:7380", "b": "10.0.0.2:7380"}}
	c.EnsureDefaults()
	if c.AdvertisePeer != "10.0.0.2:7380" {
		t.Errorf("AdvertisePeer = %q, want the node's initial-cluster address", c.AdvertisePeer)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		modify func(*Config)
		want   string // substring of the error; "" means valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"resp disabled", func(c *Config) { c.ListenResp = "" }, ""},
		{"all interfaces", func(c *Config) { c.Listen = ":7379"; c.Advertise = ":7379" }, ""},
		{"ipv6", func(c *Config) { c.Listen = "[::1]:7379"; c.Advertise = "[::1]:7379" }, ""},
		{"host name", func(c *Config) { c.ListenPeer = "node-1.example:7380"; c.AdvertisePeer = "node-1.example:7380" }, ""},
		{"port zero", func(c *Config) { c.Listen = "127.0.0.1:0"; c.ListenPeer = "127.0.0.1:0"; c.ListenResp = "127.0.0.1:0" }, ""},
		{"empty name", func(c *Config) { c.Name = "" }, "--name: node name is empty"},
		{"bad name", func(c *Config) { c.Name = "n 1" }, "--name: node name \"n 1\""},
		{"empty data dir", func(c *Config) { c.DataDir = "" }, "--data-dir: is empty"},
		{"listen no port", func(c *Config) { c.Listen = "127.0.0.1" }, "--listen: \"127.0.0.1\" is not host:port"},
		{"listen bad port", func(c *Config) { c.Listen = "127.0.0.1:99999" }, "--listen: \"127.0.0.1:99999\": port"},
		{"listen bad host", func(c *Config) { c.Listen = "a b:1" }, "neither an IP address nor a host name"},
		{"peer bad", func(c *Config) { c.ListenPeer = "x" }, "--listen-peer:"},
		{"resp bad", func(c *Config) { c.ListenResp = "x:y" }, "--listen-resp:"},
		{"same ports", func(c *Config) { c.ListenPeer = c.Listen }, "--listen-peer: \"127.0.0.1:7379\" conflicts with --listen"},
		{"same port all interfaces", func(c *Config) { c.ListenResp = "0.0.0.0:7379" }, "--listen-resp: \"0.0.0.0:7379\" conflicts with --listen"},
		{"advertise bad", func(c *Config) { c.Advertise = "nope" }, "--advertise:"},
		{"cluster without me", func(c *Config) {
			c.InitialCluster = map[string]string{"n2": "127.0.0.2:7380", "n3": "127.0.0.3:7380"}
		}, "--initial-cluster: has no entry for this node (--name \"n1\"); members are n2, n3"},
		{"cluster other address", func(c *Config) {
			c.InitialCluster = map[string]string{"n1": "127.0.0.9:7380", "n2": "127.0.0.2:7380"}
		}, "--advertise-peer: \"127.0.0.1:7380\" differs from this node's --initial-cluster address \"127.0.0.9:7380\""},
		{"cluster ok", func(c *Config) {
			c.InitialCluster = map[string]string{"n1": "127.0.0.1:7380", "n2": "127.0.0.2:7380"}
		}, ""},
		{"cluster bad entry", func(c *Config) {
			c.InitialCluster = map[string]string{"n1": "127.0.0.1:7380", "n2": "127.0.0.2"}
		}, "--initial-cluster: initial cluster member n2"},
		{"cluster unreachable advertise", func(c *Config) {
			c.ListenPeer, c.AdvertisePeer = "0.0.0.0:7380", "0.0.0.0:7380"
			c.InitialCluster = map[string]string{"n1": "0.0.0.0:7380", "n2": "127.0.0.2:7380"}
		}, "--advertise-peer: \"0.0.0.0:7380\": other nodes cannot reach it"},
		{"join and cluster", func(c *Config) {
			c.InitialCluster = map[string]string{"n1": "127.0.0.1:7380"}
			c.Join = []string{"127.0.0.2:7380"}
		}, "--join: cannot be combined with --initial-cluster"},
		{"join bad", func(c *Config) { c.Join = []string{"127.0.0.2"} }, "--join: \"127.0.0.2\" is not host:port"},
		{"join port zero", func(c *Config) { c.Join = []string{"127.0.0.2:0"} }, "--join: \"127.0.0.2:0\": other nodes need"},
		{"join ok", func(c *Config) { c.Join = []string{"127.0.0.2:7380"} }, ""},
		{"tick zero", func(c *Config) { c.TickInterval = 0 }, "--tick-interval: 0s is outside"},
		{"tick huge", func(c *Config) { c.TickInterval = time.Hour }, "--tick-interval"},
		{"heartbeat zero", func(c *Config) { c.HeartbeatTicks = 0 }, "--heartbeat-ticks: 0 is less than 1"},
		{"election not above heartbeat", func(c *Config) { c.HeartbeatTicks = 10 }, "--election-ticks: 10 must be greater than --heartbeat-ticks (10)"},
		{"election huge", func(c *Config) { c.ElectionTicks = 5000 }, "--election-ticks"},
		{"keep zero", func(c *Config) { c.LogKeepEntries = 0 }, "--log-keep-entries"},
		{"timeout negative", func(c *Config) { c.RequestTimeout = -time.Second }, "--request-timeout: -1s is not positive"},
		{"clock offset negative", func(c *Config) { c.MaxClockOffset = -time.Second }, "--max-clock-offset: -1s is negative"},
		{"key zero", func(c *Config) { c.MaxKeyBytes = 0 }, "--max-key-bytes: 0 is outside [1, 65536]"},
		{"value huge", func(c *Config) { c.MaxValueBytes = 1 << 30 }, "--max-value-bytes"},
		{"log level", func(c *Config) { c.LogLevel = "loud" }, "--log-level: \"loud\" is not one of"},
		{"log format", func(c *Config) { c.LogFormat = "xml" }, "--log-format"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			c.EnsureDefaults()
			tc.modify(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("no error, want %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestValidateReportsAll(t *testing.T) {
	c := Default()
	c.EnsureDefaults()
	c.Name, c.LogLevel = "", "x"
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "--name") || !strings.Contains(err.Error(), "--log-level") {
		t.Fatalf("Validate = %v, want both problems", err)
	}
}

func TestParseInitialCluster(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want map[string]string
		err  string
	}{
		{"", nil, ""},
		{"  ", nil, ""},
		{"n1=127.0.0.1:7380", map[string]string{"n1": "127.0.0.1:7380"}, ""},
		{" n1 = 10.0.0.1:7380 , n2=10.0.0.2:7380,n3=host-3:7380", map[string]string{
			"n1": "10.0.0.1:7380", "n2": "10.0.0.2:7380", "n3": "host-3:7380"}, ""},
		{"n1=[::1]:7380", map[string]string{"n1": "[::1]:7380"}, ""},
		{"n1", nil, "want name=host:port"},
		{"n1=a:1,", nil, "want name=host:port"},
		{"=a:1", nil, "node name is empty"},
		{"n/1=a:1", nil, "only A-Z"},
		{"n1=a", nil, "is not host:port"},
		{"n1=a:0", nil, "need a specific host and a non-zero port"},
		{"n1=:7380", nil, "need a specific host"},
		{"n1=0.0.0.0:7380", nil, "need a specific host"},
		{"n1=a:1,n1=b:1", nil, "appears twice"},
		{"n1=a:1,n2=a:1", nil, "the same address"},
	} {
		got, err := ParseInitialCluster(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseInitialCluster(%q) error = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseInitialCluster(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	if s := FormatInitialCluster(map[string]string{"b": "h:2", "a": "h:1"}); s != "a=h:1,b=h:2" {
		t.Errorf("FormatInitialCluster = %q", s)
	}
}

func TestFlagNames(t *testing.T) {
	fs := pflag.NewFlagSet("server", pflag.ContinueOnError)
	c := Default()
	BindFlags(fs, &c)
	var names []string
	fs.VisitAll(func(f *pflag.Flag) { names = append(names, f.Name) })
	want := []string{"name", "data-dir", "listen", "listen-peer", "listen-resp", "advertise", "advertise-peer",
		"initial-cluster", "join", "tick-interval", "election-ticks", "heartbeat-ticks", "log-keep-entries",
		"split-size", "split-qps", "merge-size", "merge-qps", "merge-delay", "request-timeout", "max-clock-offset", "max-key-bytes", "max-value-bytes", "log-level", "log-format", "config",
		"history-versions", "history-retention", "watch-buffer", "insecure", "cert", "key", "ca", "peer-cert", "peer-key", "peer-ca",
		"txn-max-keys", "txn-max-bytes", "txn-max-duration", "heartbeat-interval", "dead-node-timeout", "default-replicas", "quiesce"}
	slices.Sort(names)
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Fatalf("flags = %v\nwant %v", names, want)
	}
	if f := fs.Lookup("data-dir"); f.DefValue != "./cairn-data" || !strings.Contains(f.Usage, "$CAIRN_DATA_DIR") {
		t.Errorf("--data-dir default %q usage %q", f.DefValue, f.Usage)
	}
	if f := fs.Lookup("tick-interval"); f.DefValue != "100ms" {
		t.Errorf("--tick-interval default %q", f.DefValue)
	}
}

// load runs BindFlags, parses args and Loads with env as the environment.
func load(t *testing.T, args []string, env map[string]string) (Config, error) {
	t.Helper()
	fs := pflag.NewFlagSet("server", pflag.ContinueOnError)
	c := Default()
	BindFlags(fs, &c)
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	got, err := Load(fs, func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	})
	if err == nil && !reflect.DeepEqual(c, got) {
		t.Errorf("bound config %+v differs from the result %+v", c, got)
	}
	return got, err
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "cairn.json")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPrecedence(t *testing.T) {
	file := writeFile(t, `{"name": "file", "data-dir": "/file", "listen": "127.0.0.1:1001",
		"election-ticks": 30, "initial-cluster": {"file": "127.0.0.1:7380"}}`)
	env := map[string]string{
		"CAIRN_CONFIG":   file,
		"CAIRN_DATA_DIR": "/env",
		"CAIRN_LISTEN":   "127.0.0.1:2001",
		"CAIRN_OTHER":    "ignored",
	}
	c, err := load(t, []string{"--listen", "127.0.0.1:3001"}, env)
	if err != nil {
		t.Fatal(err)
	}
	for _, check := range []struct{ what, got, want string }{
		{"name (file)", c.Name, "file"},
		{"data-dir (env over file)", c.DataDir, "/env"},
		{"listen (flag over env and file)", c.Listen, "127.0.0.1:3001"},
		{"listen-peer (default)", c.ListenPeer, "127.0.0.1:7380"},
		{"advertise (derived)", c.Advertise, "127.0.0.1:3001"},
		{"config", c.ConfigFile, file},
	} {
		if check.got != check.want {
			t.Errorf("%s = %q, want %q", check.what, check.got, check.want)
		}
	}
	if c.ElectionTicks != 30 {
		t.Errorf("election-ticks = %d, want 30 from the file", c.ElectionTicks)
	}

	// --config beats $CAIRN_CONFIG; an empty variable disables RESP.
	other := writeFile(t, `{"name": "other"}`)
	c, err = load(t, []string{"--config=" + other}, map[string]string{"CAIRN_CONFIG": file, "CAIRN_LISTEN_RESP": ""})
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "other" || c.ListenResp != "" {
		t.Errorf("name %q listen-resp %q", c.Name, c.ListenResp)
	}
}

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"bad flag value", []string{"--election-ticks=x"}, nil, "invalid argument \"x\" for \"--election-ticks\""},
		{"bad duration flag", []string{"--tick-interval=5"}, nil, "not a duration"},
		{"bad cluster flag", []string{"--initial-cluster=n1"}, nil, "want name=host:port"},
		{"bad env", nil, map[string]string{"CAIRN_HEARTBEAT_TICKS": "many"}, "$CAIRN_HEARTBEAT_TICKS: \"many\" is not an integer"},
		{"missing file", []string{"--config=/nonexistent/cairn.json"}, nil, "no such file"},
		{"invalid result", []string{"--log-format=xml"}, nil, "--log-format"},
		{"bad join", []string{"--join=a:1,,b:2"}, nil, "empty entry"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(t, tc.args, tc.env)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := Load(pflag.NewFlagSet("x", pflag.ContinueOnError), nil); err == nil {
		t.Error("Load of an unbound FlagSet succeeded")
	}
}

func TestFlagsRoundTrip(t *testing.T) {
	args := []string{"--name=n2", "--data-dir=/d", "--listen=127.0.0.2:1", "--listen-peer=127.0.0.2:2",
		"--listen-resp=", "--advertise=127.0.0.2:1", "--initial-cluster=n1=127.0.0.1:2,n2=127.0.0.2:2",
		"--tick-interval=1.5s", "--election-ticks=3", "--heartbeat-ticks=2", "--log-keep-entries=7",
		"--request-timeout=1m", "--max-clock-offset=250ms", "--split-size=2KiB", "--split-qps=0", "--merge-size=1KiB", "--merge-qps=7", "--merge-delay=3s", "--max-key-bytes=10", "--max-value-bytes=20", "--log-level=warn", "--log-format=json",
		"--history-versions=3", "--history-retention=2s", "--watch-buffer=9",
		"--txn-max-keys=3", "--txn-max-bytes=1KiB", "--txn-max-duration=2s",
		"--heartbeat-interval=200ms", "--dead-node-timeout=3s", "--default-replicas=5", "--quiesce=false"}
	c, err := load(t, args, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Name: "n2", DataDir: "/d", Listen: "127.0.0.2:1", ListenPeer: "127.0.0.2:2",
		Advertise: "127.0.0.2:1", AdvertisePeer: "127.0.0.2:2",
		InitialCluster: map[string]string{"n1": "127.0.0.1:2", "n2": "127.0.0.2:2"},
		TickInterval:   1500 * time.Millisecond, ElectionTicks: 3, HeartbeatTicks: 2, LogKeepEntries: 7,
		RequestTimeout: time.Minute, MaxClockOffset: 250 * time.Millisecond, SplitSizeBytes: 2048, MergeSizeBytes: 1024, MergeQPS: 7, MergeDelay: 3 * time.Second, MaxKeyBytes: 10, MaxValueBytes: 20, LogLevel: "warn", LogFormat: "json",
		HistoryVersions: 3, HistoryRetention: 2 * time.Second, WatchBuffer: 9,
		TxnMaxKeys: 3, TxnMaxBytes: 1024, TxnMaxDuration: 2 * time.Second,
		HeartbeatInterval: 200 * time.Millisecond, DeadNodeTimeout: 3 * time.Second, DefaultReplicas: 5}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got  %+v\nwant %+v", c, want)
	}
	c, err = load(t, []string{"--join=127.0.0.5:7380, 127.0.0.6:7380"}, nil)
	if err != nil || !slices.Equal(c.Join, []string{"127.0.0.5:7380", "127.0.0.6:7380"}) {
		t.Fatalf("join = %v, %v", c.Join, err)
	}
}

func TestDecodeFile(t *testing.T) {
	c := Default()
	if err := LoadFile("testdata/three-nodes.json", &c); err != nil {
		t.Fatal(err)
	}
	c.EnsureDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Name != "n2" || c.AdvertisePeer != "10.0.0.2:7380" || len(c.InitialCluster) != 3 || c.ListenResp != "" ||
		c.TickInterval != 50*time.Millisecond || c.HeartbeatTicks != 2 || c.LogKeepEntries != 5000 || c.MaxValueBytes != 2<<20 {
		t.Fatalf("decoded %+v", c)
	}

	for _, tc := range []struct{ in, want string }{
		{``, "not a JSON object"},
		{`[]`, "not a JSON object"},
		{`{"nmae": "x"}`, "unknown key \"nmae\""},
		{`{"config": "x"}`, "unknown key \"config\""},
		{`{"name": "a", "name": "b"}`, "appears twice"},
		{`{"name": 5}`, "a string setting cannot be 5"},
		{`{"election-ticks": 1.5}`, "not an integer"},
		{`{"election-ticks": true}`, "cannot be true"},
		{`{"log-keep-entries": -1}`, "not a non-negative integer"},
		{`{"join": [1]}`, "want an array of strings"},
		{`{"join": ["a:1,b:1"]}`, "has a comma"},
		{`{"join": {"a": "b"}}`, "a list setting cannot be"},
		{`{"initial-cluster": {"n1": 1}}`, "want an object"},
		{`{"initial-cluster": {"n,1": "a:1"}}`, "only A-Z"},
		{`{"initial-cluster": ["n1=a:1"]}`, "a cluster setting cannot be"},
		{`{"name": null}`, "cannot be null"},
		{`{"name": "a"} {}`, "data after the JSON object"},
		{`{"name": "a"`, "config:"},
		{`{"name" "a"}`, "config:"},
	} {
		c := Default()
		err := DecodeFile([]byte(tc.in), &c)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("DecodeFile(%s) = %v, want %q", tc.in, err, tc.want)
		}
		if !reflect.DeepEqual(c, Default()) {
			t.Errorf("DecodeFile(%s) changed the config on error", tc.in)
		}
	}
}

func TestEncodeFileRoundTrip(t *testing.T) {
	c := Default()
	c.InitialCluster = map[string]string{"n1": "127.0.0.1:7380", "n2": "127.0.0.2:7380"}
	c.Join = []string{"127.0.0.3:7380"}
	c.TickInterval = 1234 * time.Microsecond
	var got Config
	if err := DecodeFile(EncodeFile(c), &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, c) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, c)
	}
}

func FuzzConfigFile(f *testing.F) {
	seed, err := os.ReadFile("testdata/three-nodes.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add(EncodeFile(Default()))
	f.Add([]byte(`{"join": ["a:1", "b:2"], "max-key-bytes": 10, "initial-cluster": "n1=a:1"}`))
	f.Add([]byte(`{"tick-interval": "-2562047h47m16.854775808s"}`))
	f.Add([]byte(`{"name": "\ud800", "log-keep-entries": 18446744073709551615}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c1 := Default()
		if err := DecodeFile(data, &c1); err != nil {
			return
		}
		enc := EncodeFile(c1)
		c2 := Default()
		c2.Name, c2.Join = "other", []string{"x"} // the file must override everything
		if err := DecodeFile(enc, &c2); err != nil {
			t.Fatalf("re-decoding %s: %v", enc, err)
		}
		if !reflect.DeepEqual(c1, c2) {
			t.Fatalf("round trip of %q:\n got %+v\nwant %+v", data, c2, c1)
		}
		c1.EnsureDefaults()
		_ = c1.Validate()
	})
}

func FuzzParseInitialCluster(f *testing.F) {
	for _, s := range []string{"", "n1=127.0.0.1:7380", "n1=a:1,n2=b:2,n3=[::1]:3", " x = y:1 ", "n1=a:1,n1=a:2", "=,=,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseInitialCluster(s)
		if err != nil {
			return
		}
		formatted := FormatInitialCluster(m)
		m2, err := ParseInitialCluster(formatted)
		if err != nil {
			t.Fatalf("re-parsing %q (from %q): %v", formatted, s, err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip of %q: %v != %v", s, m2, m)
		}
	})
}

func TestValidateReportsABadListenAddressOnce(t *testing.T) {
	c := Default()
	c.Listen = "bad"
	c.EnsureDefaults() // advertise = "bad" too
	err := c.Validate()
	if err == nil || strings.Count(err.Error(), `"bad"`) != 1 {
		t.Fatalf("Validate = %v, want one report of the bad address", err)
	}
}

// TestDecodeYAMLFile: the YAML file means the same as the JSON one, and
// refuses what the JSON decoder refuses plus YAML's own traps.
func TestDecodeYAMLFile(t *testing.T) {
	fromJSON, fromYAML := Default(), Default()
	if err := LoadFile("testdata/three-nodes.json", &fromJSON); err != nil {
		t.Fatal(err)
	}
	if err := LoadFile("testdata/three-nodes.yaml", &fromYAML); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromJSON, fromYAML) {
		t.Fatalf("YAML and JSON files differ:\nyaml %+v\njson %+v", fromYAML, fromJSON)
	}
	for _, tc := range []struct{ in, want string }{
		{``, "config: YAML"},
		{`- a`, "not a mapping"},
		{`name: a` + "\n---\nname: b", "more than one document"},
		{`nmae: x`, "unknown key \"nmae\""},
		{"name: a\nname: b", "config:"},
		{`name: 5`, "a string setting cannot be 5"},
		{`election-ticks: 1.5`, "not an integer"},
		{`join: [1]`, "want an array of strings"},
		{"a: &x 1\nname: *x", "config:"},
		{`{[1]: 2}`, "keys must be plain strings"},
		{"name:\n  a:\n    b:\n      c:\n        d:\n          e:\n            f:\n              g:\n                h:\n                  i: 1", "too deep"},
	} {
		c := Default()
		err := DecodeYAMLFile([]byte(tc.in), &c)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("DecodeYAMLFile(%q) = %v, want %q", tc.in, err, tc.want)
		}
		if !reflect.DeepEqual(c, Default()) {
			t.Errorf("DecodeYAMLFile(%q) changed the config on error", tc.in)
		}
	}
}

func FuzzConfigYAMLFile(f *testing.F) {
	seed, err := os.ReadFile("testdata/three-nodes.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte("join: [a:1, b:2]\nmax-key-bytes: 0x10\n"))
	f.Add([]byte("initial-cluster: n1=a:1\nelection-ticks: 1_0\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c1 := Default()
		if err := DecodeYAMLFile(data, &c1); err != nil {
			return
		}
		// Whatever YAML decodes, its JSON encoding decodes the same.
		c2 := Default()
		if err := DecodeFile(EncodeFile(c1), &c2); err != nil {
			t.Fatalf("re-decoding: %v", err)
		}
		if !reflect.DeepEqual(c1, c2) {
			t.Fatalf("round trip of %q:\n got %+v\nwant %+v", data, c2, c1)
		}
	})
}

// TestInsecureFlag: --insecure alone means true; the file and the
// environment take true/false.
func TestInsecureFlag(t *testing.T) {
	fs := pflag.NewFlagSet("server", pflag.ContinueOnError)
	c := Default()
	BindFlags(fs, &c)
	if err := fs.Parse([]string{"--insecure"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(fs, func(string) (string, bool) { return "", false })
	if err != nil || !cfg.Insecure {
		t.Fatalf("--insecure: %v, %v", cfg.Insecure, err)
	}
	var f Config
	if err := DecodeFile([]byte(`{"insecure": true}`), &f); err != nil || !f.Insecure {
		t.Fatalf("file: %v, %v", f.Insecure, err)
	}
	if err := DecodeFile([]byte(`{"insecure": "maybe"}`), &f); err == nil {
		t.Fatal("file: insecure \"maybe\" accepted")
	}
}
