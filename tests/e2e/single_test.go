package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestSingleNodeDefaults starts `cairn server` with only a data dir and
// free ports and walks the basic HTTP contract: writes, reads, deletes,
// lists, versions, conditions, tables, limits and garbage on the wire.
func TestSingleNodeDefaults(t *testing.T) {
	start := time.Now()
	c := StartSingle(t)
	n := c.Nodes[0]
	step := func(what string) { t.Logf("%6.2fs -- %s", time.Since(start).Seconds(), what) }

	{
		step("put get delete")
		v1 := n.MustPut(t, "default", "alpha", []byte("one"))
		val, ver := n.MustGet(t, "default", "alpha")
		if string(val) != "one" || ver != v1 {
			t.Fatalf("get alpha = %q version %d; want %q version %d", val, ver, "one", v1)
		}
		v2 := n.MustPut(t, "default", "alpha", []byte("two"))
		if v2 <= v1 {
			t.Fatalf("second put of alpha got version %d, not above the first %d", v2, v1)
		}
		v3 := n.MustPut(t, "default", "alpha", []byte("three"))
		if v3 <= v2 {
			t.Fatalf("third put of alpha got version %d, not above the second %d", v3, v2)
		}
		if val, ver := n.MustGet(t, "default", "alpha"); string(val) != "three" || ver != v3 {
			t.Fatalf("get alpha = %q version %d; want %q version %d", val, ver, "three", v3)
		}
		// An empty value is a value.
		ve := n.MustPut(t, "default", "empty", nil)
		if val, ver := n.MustGet(t, "default", "empty"); len(val) != 0 || ver != ve {
			t.Fatalf("get empty = %q version %d; want empty version %d", val, ver, ve)
		}
		// Keys with slashes, spaces and arbitrary bytes survive the path.
		for _, k := range []string{"a/b/c", "with space", "pct%2Fliteral", "\x00\xff\x01", "ü"} {
			n.MustPut(t, "default", k, []byte("v:"+k))
			if val, _ := n.MustGet(t, "default", k); string(val) != "v:"+k {
				t.Fatalf("get %q = %q", k, val)
			}
		}
		if r := n.Del("default", "alpha"); r.Status != 200 {
			t.Fatalf("delete alpha: %s", r)
		}
		if r := n.Get("default", "alpha"); r.Status != 404 || r.ErrCode() != "not_found" {
			t.Fatalf("get of deleted alpha: %s; want 404 not_found", r)
		}
		// A key written again after its delete must not reuse old versions.
		v4 := n.MustPut(t, "default", "alpha", []byte("four"))
		if v4 <= v3 {
			t.Fatalf("put after delete got version %d, not above %d", v4, v3)
		}
	}

	{
		step("absent key and unknown table")
		if r := n.Get("default", "never-written"); r.Status != 404 || r.ErrCode() != "not_found" {
			t.Fatalf("get absent key: %s; want 404 not_found", r)
		}
		if r := n.Get("nosuchtable", "k"); r.Status != 404 {
			t.Fatalf("get in unknown table: %s; want 404", r)
		}
		if r := n.Put("nosuchtable", "k", []byte("v")); r.Status != 404 {
			t.Fatalf("put in unknown table: %s; want 404", r)
		}
		if r := n.Do(opTimeout, "GET", "/v1/kv/nosuchtable?prefix=", nil); r.Status != 404 {
			t.Fatalf("list of unknown table: %s; want 404", r)
		}
		if r := n.Do(opTimeout, "GET", "/v1/nosuchroute", nil); r.Status != 404 {
			t.Fatalf("unknown route: %s; want 404", r)
		}
	}

	{
		step("conditions")
		v := n.MustPut(t, "default", "cond", []byte("a"), "If-None-Match", "*")
		if r := n.Put("default", "cond", []byte("b"), "If-None-Match", "*"); r.Status != 412 || r.ErrCode() != "condition_failed" {
			t.Fatalf("create-only put of an existing key: %s; want 412 condition_failed", r)
		}
		if r := n.Put("default", "cond", []byte("b"), "If-Match", fmt.Sprintf(`"%d"`, v+1)); r.Status != 412 {
			t.Fatalf("put with a wrong If-Match: %s; want 412", r)
		}
		if r := n.Put("default", "cond-absent", []byte("b"), "If-Match", fmt.Sprintf(`"%d"`, v)); r.Status != 412 {
			t.Fatalf("put of an absent key with If-Match: %s; want 412", r)
		}
		if r := n.Del("default", "cond", "If-Match", fmt.Sprintf(`"%d"`, v+1)); r.Status != 412 {
			t.Fatalf("delete with a wrong If-Match: %s; want 412", r)
		}
		if val, ver := n.MustGet(t, "default", "cond"); string(val) != "a" || ver != v {
			t.Fatalf("after failed conditions: %q version %d; want %q version %d", val, ver, "a", v)
		}
		v2 := n.MustPut(t, "default", "cond", []byte("c"), "If-Match", fmt.Sprintf(`"%d"`, v))
		if v2 <= v {
			t.Fatalf("conditional put got version %d, not above %d", v2, v)
		}
		if r := n.Put("default", "cond", []byte("d"), "If-Match", fmt.Sprintf(`"%d"`, v)); r.Status != 412 {
			t.Fatalf("put with the previous version: %s; want 412", r)
		}
		if r := n.Del("default", "cond", "If-Match", fmt.Sprintf(`"%d"`, v2)); r.Status != 200 {
			t.Fatalf("delete with the right If-Match: %s", r)
		}
		if r := n.Get("default", "cond"); r.Status != 404 {
			t.Fatalf("get after conditional delete: %s; want 404", r)
		}
		// Once deleted, create-only succeeds again.
		n.MustPut(t, "default", "cond", []byte("e"), "If-None-Match", "*")
	}

	{
		step("list")
		want := map[string]uint64{}
		var keys []string
		for i := range 25 {
			k := fmt.Sprintf("list/%03d", i)
			keys = append(keys, k)
			want[k] = n.MustPut(t, "default", k, []byte("value-"+k))
		}
		n.MustPut(t, "default", "lisu", []byte("outside the prefix"))
		n.MustPut(t, "default", "list", []byte("outside the prefix too"))
		for _, size := range []int{1, 7, 25, 100} {
			items, err := n.List("default", "list/", size)
			if err != nil {
				t.Fatal(err)
			}
			if len(items) != len(keys) {
				t.Fatalf("list (page %d): %d items, want %d: %v", size, len(items), len(keys), items)
			}
			for i, it := range items {
				if it.Key != keys[i] || string(it.Value) != "value-"+keys[i] || it.Version != want[keys[i]] {
					t.Fatalf("list (page %d) item %d = %q %q v%d; want %q %q v%d", size, i,
						it.Key, it.Value, it.Version, keys[i], "value-"+keys[i], want[keys[i]])
				}
			}
		}
		r := n.Do(opTimeout, "GET", "/v1/kv/default?prefix=list/&limit=3", nil)
		if r.Status != 200 || !strings.Contains(string(r.Body), `"next_page_token"`) || strings.Contains(string(r.Body), `"value"`) {
			t.Fatalf("list without values: %s", r)
		}
		if r := n.Do(opTimeout, "GET", "/v1/kv/default?page_token=garbage!!", nil); r.Status != 400 {
			t.Fatalf("list with a garbage page token: %s; want 400", r)
		}
	}

	{
		step("tables")
		r := n.Do(opTimeout, "POST", "/v1/tables", []byte(`{"name":"t1"}`), "Content-Type", "application/json")
		if r.Status != 200 && r.Status != 201 {
			t.Fatalf("create table: %s", r)
		}
		if r := n.Do(opTimeout, "POST", "/v1/tables", []byte(`{"name":"t1"}`)); r.Status != 409 {
			t.Fatalf("create an existing table: %s; want 409", r)
		}
		v := n.MustPut(t, "t1", "k", []byte("in t1"))
		if val, ver := n.MustGet(t, "t1", "k"); string(val) != "in t1" || ver != v {
			t.Fatalf("get t1/k = %q v%d", val, ver)
		}
		if r := n.Get("default", "k"); r.Status != 404 {
			t.Fatalf("t1's key is visible in default: %s", r)
		}
		if r := n.Do(opTimeout, "GET", "/v1/tables", nil); r.Status != 200 || !strings.Contains(string(r.Body), `"t1"`) {
			t.Fatalf("list tables: %s", r)
		}
	}

	{
		step("bad input")
		if r := n.Put("default", strings.Repeat("k", 4096), []byte("v")); r.Status != 200 {
			t.Fatalf("put with a 4096-byte key: %s; want 200", r)
		}
		if r := n.Put("default", strings.Repeat("k", 4097), []byte("v")); r.Status != 400 {
			t.Fatalf("put with a 4097-byte key: %s; want 400", r)
		}
		if r := n.Get("default", strings.Repeat("k", 4097)); r.Status != 400 {
			t.Fatalf("get with a 4097-byte key: %s; want 400", r)
		}
		big := bytes.Repeat([]byte("x"), 1<<20)
		if r := n.Put("default", "big", big); r.Status != 200 {
			t.Fatalf("put of a 1 MiB value: %s; want 200", r)
		}
		if val, _ := n.MustGet(t, "default", "big"); !bytes.Equal(val, big) {
			t.Fatalf("get of the 1 MiB value returned %d bytes", len(val))
		}
		if r := n.Put("default", "toobig", append(big, 'x')); r.Status != 413 && r.Status != 400 {
			t.Fatalf("put of a 1 MiB + 1 value: %s; want 413 or 400", r)
		}
		if r := n.Get("default", "toobig"); r.Status != 404 {
			t.Fatalf("refused value was stored: %s", r)
		}
		if r := n.Do(opTimeout, "POST", "/v1/tables", []byte(`{"name":"Bad!"}`)); r.Status != 400 {
			t.Fatalf("create table Bad!: %s; want 400", r)
		}
		if r := n.Do(opTimeout, "POST", "/v1/tables", []byte(`{"name":"`+strings.Repeat("a", 65)+`"}`)); r.Status != 400 {
			t.Fatalf("create table with a 65-byte name: %s; want 400", r)
		}
		for _, body := range []string{`{"name":`, `not json`, ``, `{"name":"ok"} trailing`, `{"nome":"x"}`, `["t"]`} {
			if r := n.Do(opTimeout, "POST", "/v1/tables", []byte(body)); r.Status != 400 {
				t.Fatalf("create table with body %q: %s; want 400", body, r)
			}
		}
		if r := n.Put("Bad!", "k", []byte("v")); r.Status != 400 {
			t.Fatalf("put in table Bad!: %s; want 400", r)
		}
		if r := n.Put("default", "k", []byte("v"), "If-Match", "not-a-version"); r.Status != 400 {
			t.Fatalf("put with a malformed If-Match: %s; want 400", r)
		}
		if r := n.Do(opTimeout, "GET", "/v1/kv/default?limit=-1", nil); r.Status != 400 {
			t.Fatalf("list with limit=-1: %s; want 400", r)
		}
		if status, err := rawStatus(n.Client, "GET /v1/kv/default/%zz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil || status != 400 {
			t.Fatalf("get with a bad escape in the path: status %d, %v; want 400", status, err)
		}
		if r := n.Do(opTimeout, "PATCH", "/v1/kv/default/k", []byte("v")); r.Status != 405 {
			t.Fatalf("PATCH of a key: %s; want 405", r)
		}
		// Error replies are JSON with a code.
		r := n.Put("default", strings.Repeat("k", 4097), []byte("v"))
		if r.ErrCode() == "" {
			t.Fatalf("error reply without a JSON error code: %s", r)
		}
	}

	{
		step("garbage on the wire")
		rng := rand.New(rand.NewPCG(1, 2))
		payloads := [][]byte{
			randomBytes(rng, 4096),
			[]byte("GARBAGE / HTTP/9.9\r\n\r\n"),
			[]byte("PUT /v1/kv/default/x HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\nabc"),
			[]byte("GET /v1/kv/default/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzzzz\r\n"),
			append([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), randomBytes(rng, 1024)...), // h2c preface then junk
			[]byte("*1\r\n$4\r\nPING\r\n"),                         // RESP to the wrong port
			{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc}, // a TLS ClientHello start
		}
		for _, addr := range []string{n.Client, n.Peer} {
			for i, p := range payloads {
				if err := sendRaw(addr, p); err != nil {
					t.Logf("raw payload %d to %s: %v (fine, as long as the node lives)", i, addr, err)
				}
			}
			// A connection that says nothing and one that hangs up at once.
			if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				conn.Close()
			}
		}
		if !n.Running() {
			t.Fatal("the node died after garbage on the wire")
		}
		v := n.MustPut(t, "default", "after-garbage", []byte("still here"))
		if val, ver := n.MustGet(t, "default", "after-garbage"); string(val) != "still here" || ver != v {
			t.Fatalf("after garbage: get = %q v%d", val, ver)
		}
		if r := n.Do(time.Second, "GET", "/readyz", nil); r.Status != 200 {
			t.Fatalf("readyz after garbage: %s", r)
		}
	}

	{
		step("SIGTERM and restart keep the data")
		items, err := n.List("default", "", 1000)
		if err != nil {
			t.Fatal(err)
		}
		n.Term()
		n.Restart()
		after, err := n.List("default", "", 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(after) != len(items) {
			t.Fatalf("%d keys before the restart, %d after", len(items), len(after))
		}
		for i := range items {
			if items[i].Key != after[i].Key || !bytes.Equal(items[i].Value, after[i].Value) || items[i].Version != after[i].Version {
				t.Fatalf("key %d differs after restart: %q v%d -> %q v%d", i, items[i].Key, items[i].Version, after[i].Key, after[i].Version)
			}
		}
		// Versions keep growing across the restart.
		_, old := n.MustGet(t, "default", "alpha")
		if v := n.MustPut(t, "default", "alpha", []byte("five")); v <= old {
			t.Fatalf("put after restart got version %d, not above %d", v, old)
		}
	}
}

// sendRaw writes p to addr, then reads whatever comes back for a moment.
func sendRaw(addr string, p []byte) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := conn.Write(p); err != nil {
		return err
	}
	buf := make([]byte, 4096)
	_, _ = conn.Read(buf)
	return nil
}

// rawStatus sends a hand-written HTTP/1.1 request and returns the status
// code of the reply.
func rawStatus(addr, req string) (int, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(opTimeout))
	if _, err := conn.Write([]byte(req)); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.UintN(256))
	}
	return b
}
