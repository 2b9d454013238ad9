package resp

// go-redis v9 against cairn and the reference redis-server, with RESP2
// and RESP3 (go-redis's default, through HELLO 3 and CLIENT SETINFO): the
// same calls must give the same results on both, except where cairn
// documents a difference (TTL; checked on cairn only).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func newClient(addr string, protocol int) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:         addr,
		Protocol:     protocol,
		DialTimeout:  5 * time.Second,
		ReadTimeout:  15 * time.Second, // above cairn's 10 s request timeout
		WriteTimeout: 5 * time.Second,
	})
}

// must fails the test on err.
func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func eq[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

// errText returns err's message ("" for nil, "nil" for redis.Nil).
func errText(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, redis.Nil):
		return "nil"
	}
	return err.Error()
}

func TestGoRedis(t *testing.T) {
	for _, tgt := range targets(t) {
		for _, protocol := range []int{2, 3} {
			t.Run(fmt.Sprintf("%s/resp%d", tgt.name, protocol), func(t *testing.T) {
				rdb := newClient(tgt.addr, protocol)
				defer rdb.Close()
				checkGoRedis(t, rdb, tgt, prefix(t))
			})
		}
	}
}

func checkGoRedis(t *testing.T, rdb *redis.Client, tgt target, p string) {
	ctx := context.Background()
	must(t, "PING", rdb.Ping(ctx).Err())
	hello, err := rdb.Do(ctx, "HELLO").Result()
	must(t, "HELLO", err)
	t.Logf("HELLO: %v", hello)

	// Strings.
	must(t, "SET", rdb.Set(ctx, p+"k", "v1", 0).Err())
	v, err := rdb.Get(ctx, p+"k").Result()
	eq(t, "GET", v+errText(err), "v1")
	_, err = rdb.Get(ctx, p+"missing").Result()
	eq(t, "GET missing", errText(err), "nil")
	ok, err := rdb.SetNX(ctx, p+"k", "x", 0).Result()
	eq(t, "SETNX existing", fmt.Sprintf("%v|%s", ok, errText(err)), "false|")
	old, err := rdb.SetArgs(ctx, p+"k", "v2", redis.SetArgs{Mode: "XX", Get: true}).Result()
	eq(t, "SET XX GET", old+errText(err), "v1")
	_, err = rdb.SetArgs(ctx, p+"absent", "v", redis.SetArgs{Mode: "XX"}).Result()
	eq(t, "SET XX absent", errText(err), "nil")
	n, err := rdb.Append(ctx, p+"k", "+").Result()
	eq(t, "APPEND", fmt.Sprintf("%v|%s", n, errText(err)), "3|")
	n, _ = rdb.StrLen(ctx, p+"k").Result()
	eq(t, "STRLEN", n, 3)
	v, err = rdb.GetDel(ctx, p+"k").Result()
	eq(t, "GETDEL", v+errText(err), "v2+")
	n, _ = rdb.Exists(ctx, p+"k").Result()
	eq(t, "EXISTS after GETDEL", n, 0)

	// Counters.
	n, _ = rdb.Incr(ctx, p+"c").Result()
	eq(t, "INCR", n, 1)
	n, _ = rdb.IncrBy(ctx, p+"c", 10).Result()
	eq(t, "INCRBY", n, 11)
	n, _ = rdb.DecrBy(ctx, p+"c", 20).Result()
	eq(t, "DECRBY", n, -9)
	must(t, "SET", rdb.Set(ctx, p+"s", "abc", 0).Err())
	eq(t, "INCR non-integer", errText(rdb.Incr(ctx, p+"s").Err()), "ERR value is not an integer or out of range")

	// Multi-key.
	must(t, "MSET", rdb.MSet(ctx, p+"a", "1", p+"b", "2").Err())
	vals, err := rdb.MGet(ctx, p+"a", p+"nope", p+"b").Result()
	must(t, "MGET", err)
	eq(t, "MGET", fmt.Sprint(vals), "[1 <nil> 2]")
	ok, _ = rdb.MSetNX(ctx, p+"a", "9", p+"z", "9").Result()
	eq(t, "MSETNX", ok, false)
	n, _ = rdb.Exists(ctx, p+"a", p+"b", p+"z").Result()
	eq(t, "EXISTS", n, 2)
	n, _ = rdb.Del(ctx, p+"a", p+"z").Result()
	eq(t, "DEL", n, 1)
	typ, _ := rdb.Type(ctx, p+"b").Result()
	eq(t, "TYPE", typ, "string")
	ttl, _ := rdb.TTL(ctx, p+"b").Result()
	eq(t, "TTL", ttl, time.Duration(-1))
	ttl, _ = rdb.PTTL(ctx, p+"nope").Result()
	eq(t, "PTTL missing", ttl, time.Duration(-2))

	// Pipelines: replies in order, errors in place.
	cmds, err := rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for i := range 20 {
			pipe.Set(ctx, fmt.Sprintf("%spipe:%d", p, i), i, 0)
		}
		pipe.Incr(ctx, p+"s")
		for i := range 20 {
			pipe.Get(ctx, fmt.Sprintf("%spipe:%d", p, i))
		}
		return nil
	})
	if err == nil || errText(err) != "ERR value is not an integer or out of range" {
		t.Errorf("pipeline error %v", err)
	}
	for i, c := range cmds[21:] {
		if got := c.(*redis.StringCmd).Val(); got != strconv.Itoa(i) {
			t.Errorf("pipelined GET %d = %q", i, got)
		}
	}

	// Transactions.
	res, err := rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		pipe.Set(ctx, p+"t", "1", 0)
		pipe.Incr(ctx, p+"t")
		pipe.Get(ctx, p+"t")
		return nil
	})
	must(t, "MULTI/EXEC", err)
	eq(t, "EXEC GET", res[2].(*redis.StringCmd).Val(), "2")

	// SCAN pages through every key once.
	seen := map[string]int{}
	iter := rdb.Scan(ctx, 0, p+"pipe:*", 3).Iterator()
	for iter.Next(ctx) {
		seen[iter.Val()]++
	}
	must(t, "SCAN", iter.Err())
	eq(t, "SCAN keys", len(seen), 20)
	for k, c := range seen {
		if c != 1 {
			t.Errorf("SCAN returned %s %d times", k, c)
		}
	}

	// Errors as Redis words them.
	eq(t, "unknown command", errText(rdb.Do(ctx, "NOSUCH", "x").Err()),
		"ERR unknown command 'NOSUCH', with args beginning with: 'x' ")
	eq(t, "arity", errText(rdb.Do(ctx, "GET").Err()), "ERR wrong number of arguments for 'get' command")
	cfg, err := rdb.ConfigGet(ctx, "maxmemory").Result()
	must(t, "CONFIG GET", err)
	eq(t, "CONFIG GET maxmemory", cfg["maxmemory"], "0")
	info, err := rdb.Info(ctx, "server").Result()
	must(t, "INFO", err)
	if len(info) == 0 {
		t.Error("INFO server is empty")
	}

	// TTLs, the same on both.
	must(t, "SET EX", rdb.Set(ctx, p+"e", "v", time.Minute).Err())
	ttl, _ = rdb.TTL(ctx, p+"e").Result()
	eq(t, "TTL after SET EX", ttl, time.Minute)
	must(t, "SET KEEPTTL", rdb.SetArgs(ctx, p+"e", "w", redis.SetArgs{KeepTTL: true}).Err())
	ttl, _ = rdb.TTL(ctx, p+"e").Result()
	eq(t, "TTL after KEEPTTL", ttl, time.Minute)
	ok, _ = rdb.Expire(ctx, p+"b", time.Hour).Result()
	eq(t, "EXPIRE", ok, true)
	ok, _ = rdb.ExpireNX(ctx, p+"b", time.Minute).Result()
	eq(t, "EXPIRE NX on a key with a TTL", ok, false)
	ok, _ = rdb.ExpireGT(ctx, p+"b", 2*time.Hour).Result()
	eq(t, "EXPIRE GT", ok, true)
	ttl, _ = rdb.TTL(ctx, p+"b").Result()
	eq(t, "TTL after EXPIRE GT", ttl, 2*time.Hour)
	n, _ = rdb.Incr(ctx, p+"b").Result()
	eq(t, "INCR of a key with a TTL", n, 3)
	ttl, _ = rdb.TTL(ctx, p+"b").Result()
	eq(t, "TTL after INCR", ttl, 2*time.Hour)
	ok, _ = rdb.Persist(ctx, p+"b").Result()
	eq(t, "PERSIST", ok, true)
	ttl, _ = rdb.TTL(ctx, p+"b").Result()
	eq(t, "TTL after PERSIST", ttl, time.Duration(-1))
	must(t, "SETEX", rdb.SetEx(ctx, p+"x", "v", 30*time.Second).Err())
	v, _ = rdb.GetEx(ctx, p+"x", 0).Result()
	eq(t, "GETEX", v, "v")
	ok, _ = rdb.ExpireAt(ctx, p+"x", time.Now().Add(-time.Second)).Result()
	eq(t, "EXPIREAT in the past", ok, true)
	n, _ = rdb.Exists(ctx, p+"x").Result()
	eq(t, "EXISTS after EXPIREAT in the past", n, 0)
	// A key with a short TTL is gone when it passes, also from SCAN.
	must(t, "SET PX", rdb.Set(ctx, p+"short", "v", 300*time.Millisecond).Err())
	v, _ = rdb.Get(ctx, p+"short").Result()
	eq(t, "GET before expiry", v, "v")
	time.Sleep(400 * time.Millisecond)
	_, err = rdb.Get(ctx, p+"short").Result()
	eq(t, "GET after expiry", errText(err), "nil")
	keys, _, err := rdb.Scan(ctx, 0, p+"short*", 100).Result()
	must(t, "SCAN after expiry", err)
	eq(t, "SCAN after expiry", len(keys), 0)

	if tgt.cairn {
		tbl, err := rdb.Do(ctx, "CAIRN.TABLE").Text()
		eq(t, "CAIRN.TABLE", tbl+errText(err), "default")
	}
}

// TestGoRedisWatchIncrRace: goroutines increment one counter with
// WATCH/GET/MULTI/SET/EXEC (go-redis's Watch with TxPipelined), retrying
// when EXEC aborts. The counter must end at the number of committed EXECs,
// and no EXEC may fail with anything but an abort.
func TestGoRedisWatchIncrRace(t *testing.T) {
	for _, tgt := range targets(t) {
		t.Run(tgt.name, func(t *testing.T) {
			ctx := context.Background()
			rdb := newClient(tgt.addr, 3)
			defer rdb.Close()
			key := prefix(t) + "counter"
			const workers, each = 6, 15
			var committed, aborted atomic.Int64
			var wg sync.WaitGroup
			for range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range each {
						err := rdb.Watch(ctx, func(tx *redis.Tx) error {
							n, err := tx.Get(ctx, key).Int()
							if err != nil && !errors.Is(err, redis.Nil) {
								return err
							}
							_, err = tx.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
								pipe.Set(ctx, key, n+1, 0)
								return nil
							})
							return err
						}, key)
						switch {
						case err == nil:
							committed.Add(1)
						case errors.Is(err, redis.TxFailedErr):
							aborted.Add(1)
						default:
							t.Errorf("WATCH transaction: %v", err)
						}
					}
				}()
			}
			wg.Wait()
			n, err := rdb.Get(ctx, key).Int64()
			must(t, "GET counter", err)
			if n != committed.Load() {
				t.Fatalf("counter %d, committed EXECs %d", n, committed.Load())
			}
			t.Logf("%d committed, %d aborted", committed.Load(), aborted.Load())
		})
	}
}

// TestGoRedisEveryNode: any node serves any key; a write through one is
// read through the others.
func TestGoRedisEveryNode(t *testing.T) {
	ctx := context.Background()
	p := prefix(t)
	for i, n := range shared.nodes {
		rdb := newClient(n.respURL, 3)
		must(t, "SET via "+n.name, rdb.Set(ctx, fmt.Sprint(p, i), n.name, 0).Err())
		rdb.Close()
	}
	for _, n := range shared.nodes {
		rdb := newClient(n.respURL, 2)
		for i, w := range shared.nodes {
			v, err := rdb.Get(ctx, fmt.Sprint(p, i)).Result()
			eq(t, "GET via "+n.name, v+errText(err), w.name)
		}
		rdb.Close()
	}
}

// TestMultiKeyAcrossRanges: after the table splits between two keys,
// MSET, MSETNX and MULTI/EXEC writing both commit atomically through a
// cross-range transaction (MSETNX refuses all when one key exists; a
// changed WATCHed key still aborts EXEC), a multi-key DEL deletes both in
// one transaction, and MSET within one range still works.
func TestMultiKeyAcrossRanges(t *testing.T) {
	ctx := context.Background()
	p := prefix(t)
	n := shared.nodes[0]
	body := fmt.Sprintf(`{"table":"default","key":%q}`, p+"m")
	resp, err := http.Post("http://"+n.client+"/v1/ranges/split", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("split at %sm: %d %s", p, resp.StatusCode, out)
	}
	rdb := newClient(n.respURL, 3)
	defer rdb.Close()
	must(t, "MSET across ranges", rdb.MSet(ctx, p+"a", "1", p+"z", "1").Err())
	vals, err := rdb.MGet(ctx, p+"a", p+"z").Result()
	must(t, "MGET after MSET", err)
	eq(t, "MGET after MSET across ranges", fmt.Sprint(vals), "[1 1]")
	ok, err := rdb.MSetNX(ctx, p+"y", "n", p+"z", "n").Result()
	must(t, "MSETNX with one key present", err)
	eq(t, "MSETNX with one key present", ok, false)
	n1, _ := rdb.Exists(ctx, p+"y").Result()
	eq(t, "EXISTS after the refused MSETNX", n1, 0)
	ok, err = rdb.MSetNX(ctx, p+"b", "n", p+"y", "n").Result()
	must(t, "MSETNX across ranges", err)
	eq(t, "MSETNX across ranges", ok, true)
	_, err = rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		pipe.Set(ctx, p+"a", "2", 0)
		pipe.Set(ctx, p+"z", "2", 0)
		return nil
	})
	must(t, "MULTI/EXEC across ranges", err)
	vals, err = rdb.MGet(ctx, p+"a", p+"z").Result()
	must(t, "MGET after EXEC", err)
	eq(t, "MGET after EXEC across ranges", fmt.Sprint(vals), "[2 2]")
	// A WATCHed key changed by another client: EXEC aborts, nothing applies.
	err = rdb.Watch(ctx, func(tx *redis.Tx) error {
		must(t, "SET by another client", newClient(n.respURL, 3).Set(ctx, p+"z", "other", 0).Err())
		_, err := tx.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
			pipe.Set(ctx, p+"a", "3", 0)
			pipe.Set(ctx, p+"z", "3", 0)
			return nil
		})
		return err
	}, p+"z")
	if !errors.Is(err, redis.TxFailedErr) {
		t.Fatalf("EXEC after a WATCHed key changed: %v", err)
	}
	vals, _ = rdb.MGet(ctx, p+"a", p+"z").Result()
	eq(t, "MGET after the aborted EXEC", fmt.Sprint(vals), "[2 other]")
	must(t, "SET a", rdb.Set(ctx, p+"a", "x", 0).Err())
	must(t, "SET z", rdb.Set(ctx, p+"z", "x", 0).Err())
	del, err := rdb.Del(ctx, p+"a", p+"z", p+"nope").Result()
	eq(t, "DEL across ranges", fmt.Sprintf("%d %s", del, errText(err)), "2 ")
	must(t, "MSET within one range", rdb.MSet(ctx, p+"a", "1", p+"b", "2").Err())
	vals, err = rdb.MGet(ctx, p+"a", p+"b", p+"z").Result()
	must(t, "MGET across ranges", err)
	eq(t, "MGET across ranges", fmt.Sprint(vals), "[1 2 <nil>]")
}
