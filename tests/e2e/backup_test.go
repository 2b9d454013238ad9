package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-db/cairn/client"
	"github.com/cairn-db/cairn/internal/backup"
	"github.com/cairn-db/cairn/internal/keys/hashkey"
)

// Goal: backup and restore with real processes (docs/design/backup.md).
// TestBackupRestoreUnderLoad backs up a 3-node cluster (a range table
// that splits while being written, a hash table, keys with TTLs) with
// clients writing through every node the whole time: a full backup, then
// deletes, then an incremental. The full backup is restored into a fresh
// 1-node cluster, the incremental chain into a fresh 2-node cluster, and
// each restored cluster must hold exactly the state at its backup's point
// in time T as the clients saw it: for every key the acknowledged write
// with the largest version at or below T, with that value and version;
// no write above T; every write acknowledged before the backup started
// is at or below T; deleted keys are gone; a transaction over both
// tables is in whole or not at all. Expiry times survive: a backup
// of the restored cluster lists the same keys, versions and expire_at.
// TestBackupNeedsClusterAdmin checks the auth Guard and the auth state.

// model is what the clients know: every acknowledged put, and the keys
// whose outcome is unknown (a write that failed may have applied).
type model struct {
	mu      sync.Mutex
	puts    map[string][]ackedPut // table/key -> puts
	deleted map[string]time.Time  // table/key -> when its delete was acknowledged
	unknown map[string]bool
}

type ackedPut struct {
	version uint64
	value   string
	acked   time.Time
}

func newModel() *model {
	return &model{puts: map[string][]ackedPut{}, deleted: map[string]time.Time{}, unknown: map[string]bool{}}
}

func (m *model) put(table, key string, version uint64, value string, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		m.unknown[table+"/"+key] = true
		return
	}
	m.puts[table+"/"+key] = append(m.puts[table+"/"+key], ackedPut{version: version, value: value, acked: time.Now()})
}

// at returns the expected state at version T: table/key -> put, leaving
// out keys deleted before cutoff (deletes are done by the test between
// backups, on keys no writer touches).
func (m *model) at(T uint64, deletedBefore time.Time) map[string]ackedPut {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]ackedPut{}
	for k, ps := range m.puts {
		if d, ok := m.deleted[k]; ok && d.Before(deletedBefore) {
			continue
		}
		var best ackedPut
		for _, p := range ps {
			if p.version <= T && p.version > best.version {
				best = p
			}
		}
		if best.version != 0 {
			out[k] = best
		}
	}
	return out
}

// backupResult is `cairn backup -o json`.
type backupResult struct {
	Dir       string `json:"dir"`
	AtVersion uint64 `json:"at_version"`
	Tables    int    `json:"tables"`
	Records   int64  `json:"records"`
}

func runBackup(t *testing.T, endpoint string, env []string, args ...string) backupResult {
	t.Helper()
	out := cairnCLI(t, endpoint, "", env, append([]string{"backup", "-o", "json"}, args...)...)
	var r backupResult
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.AtVersion == 0 {
		t.Fatalf("backup output %q: %v", out, err)
	}
	return r
}

// dumpCluster lists every key of tables with value and version.
func dumpCluster(t *testing.T, cl *client.Client, tables ...string) map[string]ackedPut {
	t.Helper()
	out := map[string]ackedPut{}
	for _, table := range tables {
		token := ""
		for {
			page, err := cl.List(context.Background(), table, client.ListOptions{Values: true, Limit: 500, PageToken: token})
			if err != nil {
				t.Fatalf("list %s: %v", table, err)
			}
			for _, it := range page.Items {
				out[table+"/"+string(it.Key)] = ackedPut{version: it.Version, value: string(it.Value)}
			}
			if token = page.NextPageToken; token == "" {
				break
			}
		}
	}
	return out
}

// compareState checks got (a restored cluster) against the model at T.
func compareState(t *testing.T, what string, got map[string]ackedPut, m *model, T uint64, deletedBefore time.Time) {
	t.Helper()
	want := m.at(T, deletedBefore)
	m.mu.Lock()
	defer m.mu.Unlock()
	var bad []string
	for k, g := range got {
		if g.version > T {
			bad = append(bad, fmt.Sprintf("%s: version %d above T %d", k, g.version, T))
		}
		w, ok := want[k]
		switch {
		case m.unknown[k]:
			// An unacknowledged write may have applied: the key must
			// still hold a version at or below T (checked above).
		case !ok:
			bad = append(bad, fmt.Sprintf("%s: restored (version %d) but absent at T", k, g.version))
		case g.version != w.version || g.value != w.value:
			bad = append(bad, fmt.Sprintf("%s: restored %q@%d, want %q@%d", k, g.value, g.version, w.value, w.version))
		}
	}
	for k, w := range want {
		if _, ok := got[k]; !ok && !m.unknown[k] {
			bad = append(bad, fmt.Sprintf("%s: %q@%d (acked %s) missing", k, w.value, w.version, w.acked.Format("15:04:05.000")))
		}
	}
	if len(bad) > 0 {
		if len(bad) > 20 {
			bad = append(bad[:20], fmt.Sprintf("... and %d more", len(bad)-20))
		}
		t.Fatalf("%s: %d keys differ from the state at T=%d:\n%s", what, len(bad), T, strings.Join(bad, "\n"))
	}
	t.Logf("%s: %d keys match the state at T=%d (%d keys of unknown outcome)", what, len(got), T, len(m.unknown))
}

// ackedBefore checks that every put acknowledged before start has a
// version at or below T, and counts the puts above T.
func ackedBefore(t *testing.T, m *model, start time.Time, T uint64) (above int) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, ps := range m.puts {
		for _, p := range ps {
			if p.acked.Before(start) && p.version > T {
				t.Fatalf("%s: put acknowledged at %s, before the backup started, has version %d above T %d",
					k, p.acked.Format("15:04:05.000"), p.version, T)
			}
			if p.version > T {
				above++
			}
		}
	}
	return above
}

func TestBackupRestoreUnderLoad(t *testing.T) {
	c := StartCluster(t, 3, "--split-size", "32KiB")
	n1 := c.Nodes[0]
	for _, body := range []string{`{"name":"p","replicas":3}`, `{"name":"h","partitioning":"hash","initial_ranges":3,"learners":1,"history_keep":50,"history_for":"2m0s"}`} {
		if r := n1.Do(opTimeout, "POST", "/v1/tables", []byte(body)); r.Status != 201 {
			t.Fatalf("create table %s: %s", body, r)
		}
	}
	var eps []string
	for _, n := range c.Nodes {
		eps = append(eps, n.Client)
	}
	m := newModel()
	pad := strings.Repeat("v", 100)
	ctx := context.Background()

	// Preloaded keys: some with a TTL of an hour, some deleted at once.
	pre, err := client.New(client.Config{Endpoints: eps, RequestTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer pre.Close()
	for i := range 300 {
		table := []string{"p", "h"}[i%2]
		key, value := fmt.Sprintf("pre%04d", i), fmt.Sprintf("pre-%d-%s", i, pad)
		var opts []client.WriteOption
		if i%5 == 0 {
			opts = append(opts, client.WithTTL(time.Hour))
		}
		v, err := pre.Put(ctx, table, []byte(key), []byte(value), opts...)
		m.put(table, key, v, value, err)
	}
	deleteKeys := func(from, to int) {
		for i := from; i < to; i++ {
			table, key := []string{"p", "h"}[i%2], fmt.Sprintf("pre%04d", i)
			if _, err := pre.Delete(ctx, table, []byte(key)); err != nil {
				t.Fatalf("delete %s/%s: %v", table, key, err)
			}
			m.mu.Lock()
			m.deleted[table+"/"+key] = time.Now()
			m.mu.Unlock()
		}
	}
	deleteKeys(0, 20)

	// Writers through every node, until the end of the test's backups.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g, ep := range eps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl, err := client.New(client.Config{Endpoints: []string{ep}, RequestTimeout: 10 * time.Second})
			if err != nil {
				t.Error(err)
				return
			}
			defer cl.Close()
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				if seq%4 == 0 {
					// A transaction over both tables (ranges on
					// different nodes): its writes share one version,
					// so T holds both or neither.
					key, value := fmt.Sprintf("t%03d", rng.IntN(200)), fmt.Sprintf("txn-g%d-%d", g, seq)
					res, err := cl.Exec(ctx, []client.TxnOp{{Kind: client.TxnPut, Table: "p", Key: []byte(key), Value: []byte(value)},
						{Kind: client.TxnPut, Table: "h", Key: []byte(key), Value: []byte(value)}})
					if errors.Is(err, client.ErrTxnConflict) {
						continue // nothing written
					}
					if err == nil && res[0].Version != res[1].Version {
						t.Errorf("transaction wrote versions %d and %d", res[0].Version, res[1].Version)
					}
					for i, table := range []string{"p", "h"} {
						var v uint64
						if err == nil {
							v = res[i].Version
						}
						m.put(table, key, v, value, err)
					}
					continue
				}
				table := []string{"p", "h"}[rng.IntN(2)]
				key, value := fmt.Sprintf("w%04d", rng.IntN(600)), fmt.Sprintf("g%d-%d-%s", g, seq, pad)
				var opts []client.WriteOption
				if seq%7 == 0 {
					opts = append(opts, client.WithTTL(time.Hour))
				}
				v, err := cl.Put(ctx, table, []byte(key), []byte(value), opts...)
				m.put(table, key, v, value, err)
			}
		}()
	}
	stopWriters := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopWriters()
	time.Sleep(2 * time.Second)

	dir := t.TempDir()
	fullDir, incDir := filepath.Join(dir, "full"), filepath.Join(dir, "inc")
	fullStart := time.Now()
	full := runBackup(t, c.Nodes[1].Client, nil, "--to", fullDir)
	fullEnd := time.Now()
	time.Sleep(time.Second)
	deleteKeys(20, 40) // acknowledged after the full backup, before the incremental
	time.Sleep(time.Second)
	incStart := time.Now()
	inc := runBackup(t, c.Nodes[2].Client, nil, "--to", incDir, "--incremental-from", fullDir)
	time.Sleep(500 * time.Millisecond)
	stopWriters()

	if above := ackedBefore(t, m, fullStart, full.AtVersion); above == 0 {
		t.Fatal("no write after the full backup's point in time: the load was not concurrent")
	}
	if above := ackedBefore(t, m, incStart, inc.AtVersion); above == 0 {
		t.Fatal("no write after the incremental's point in time: the load was not concurrent")
	}
	if st, err := n1.ClusterStatus(opTimeout); err == nil {
		ranges := 0
		for _, r := range st.Ranges {
			if r.Table == "p" {
				ranges++
			}
		}
		t.Logf("table p has %d ranges; full backup T=%d (%d keys) took %s; incremental T=%d (%d keys)",
			ranges, full.AtVersion, full.Records, fullEnd.Sub(fullStart).Round(time.Millisecond), inc.AtVersion, inc.Records)
	}
	// The incremental stores values only for keys changed since the full.
	if inc.Records == 0 {
		t.Fatal("incremental backup lists no keys")
	}

	// The full backup into one node, the chain into two.
	one := StartCluster(t, 1)
	cairnCLI(t, one.Nodes[0].Client, "", nil, "restore", "--from", fullDir)
	clOne, err := client.New(client.Config{Endpoints: []string{one.Nodes[0].Client}, RequestTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer clOne.Close()
	compareState(t, "full backup restored into 1 node", dumpCluster(t, clOne, "p", "h"), m, full.AtVersion, fullEnd)

	two := StartCluster(t, 2)
	cairnCLI(t, two.Nodes[1].Client, "", nil, "restore", "--from", incDir)
	clTwo, err := client.New(client.Config{Endpoints: []string{two.Nodes[0].Client, two.Nodes[1].Client}, RequestTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer clTwo.Close()
	got := dumpCluster(t, clTwo, "p", "h")
	compareState(t, "incremental chain restored into 2 nodes", got, m, inc.AtVersion, incStart)
	for i := 20; i < 40; i++ {
		if k := fmt.Sprintf("%s/pre%04d", []string{"p", "h"}[i%2], i); got[k].version != 0 {
			t.Fatalf("%s was deleted before the incremental but is restored", k)
		}
	}

	// Settings and expiry survive: back up the restored cluster and
	// compare its records with the chain's state at T.
	if r := two.Nodes[0].Do(opTimeout, "GET", "/v1/tables/h", nil); r.Status != 200 || !bytes.Contains(r.Body, []byte(`"hash"`)) ||
		!bytes.Contains(r.Body, []byte(`"learners":1`)) || !bytes.Contains(r.Body, []byte(`"history_keep":50`)) || !bytes.Contains(r.Body, []byte(`"history_for":"2m0s"`)) {
		t.Fatalf("restored table h (settings: hash, learners 1, history 50 and 2m): %s", r)
	}
	again := filepath.Join(dir, "again")
	runBackup(t, two.Nodes[0].Client, nil, "--to", again)
	want, ttls := chainRecords(t, incDir)
	have, _ := chainRecords(t, again)
	if len(want) != len(have) {
		t.Fatalf("backup of the restored cluster: %d records, the chain has %d", len(have), len(want))
	}
	for k, w := range want {
		if h := have[k]; h != w {
			t.Fatalf("%s: restored record %+v, backed up %+v", k, h, w)
		}
	}
	if ttls == 0 {
		t.Fatal("no key with an expiry in the backup")
	}
	t.Logf("backup of the restored cluster matches the chain: %d records, %d with expiry", len(want), ttls)
}

// chainRecord is a record as restore resolves it.
type chainRecord struct {
	version  uint64
	expireAt int64
	value    string
}

// chainRecords resolves a backup chain into table/user key -> record, and
// counts the records with an expiry.
func chainRecords(t *testing.T, dir string) (map[string]chainRecord, int) {
	t.Helper()
	chain, err := backup.VerifyChain(dir)
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]string{} // table/key@version -> value, from every link
	var out map[string]chainRecord
	ttls := 0
	for _, l := range chain {
		out, ttls = map[string]chainRecord{}, 0
		for _, tb := range l.Manifest.Tables {
			for _, f := range tb.Files {
				fh, err := os.Open(filepath.Join(l.Dir, f.Name))
				if err != nil {
					t.Fatal(err)
				}
				rd, err := backup.NewReader(fh, backup.Limits{MaxKeyBytes: 8 << 10, MaxValueBytes: 1 << 20})
				if err != nil {
					t.Fatal(err)
				}
				for {
					rec, err := rd.Next()
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
					key := string(rec.Key)
					if strings.HasPrefix(f.Name, "h.") {
						key = string(hashkey.Strip(rec.Key))
					}
					id := fmt.Sprintf("%s/%s@%d", tb.Name, key, rec.Version)
					if rec.HasValue {
						values[id] = string(rec.Value)
					}
					v, ok := values[id]
					if !ok {
						t.Fatalf("%s: no value in the chain", id)
					}
					out[tb.Name+"/"+key] = chainRecord{version: rec.Version, expireAt: rec.ExpireAtMs, value: v}
					if rec.ExpireAtMs != 0 {
						ttls++
					}
				}
				fh.Close()
			}
		}
	}
	return out, ttls
}

// TestBackupNeedsClusterAdmin: with auth enabled, backup and restore go
// through the auth Guard: users without admin on "*" are refused (and
// leave no backup behind); root succeeds. The backup carries the auth
// state: restored into a fresh node, auth is on again, the old users log
// in with their old passwords and keep their grants, and token records
// are back (but the tokens themselves, signed with the old cluster's
// secret, are refused). A backup with a corrupted file is refused before
// anything is written, and a cluster that has tables refuses a restore.
func TestBackupNeedsClusterAdmin(t *testing.T) {
	src := StartSingle(t).Nodes[0]
	setupAuth(t, src.Client)
	writerEnv := []string{"CAIRN_USER=writer", "CAIRN_PASSWORD=" + writerPassword}
	readerEnv := []string{"CAIRN_USER=reader", "CAIRN_PASSWORD=" + readerPassword}
	for i := range 50 {
		cairnCLI(t, src.Client, "", writerEnv, "put", fmt.Sprintf("pub/%02d", i), fmt.Sprintf("v%d", i))
	}
	// Values near the 1 MiB limit: pages and restore requests stay under
	// the message limits.
	big := func(i int) []byte { return bytes.Repeat([]byte{byte('a' + i)}, 900<<10) }
	for i := range 3 {
		if r := src.Put("default", fmt.Sprintf("pub/big%d", i), big(i), basic("writer", writerPassword)...); r.Status != 200 {
			t.Fatalf("big put: %s", r)
		}
	}
	tokOut := cairnCLI(t, src.Client, "", rootEnv, "token", "create", "--user", "reader", "--name", "ci")
	token, _, _ := strings.Cut(tokOut, "\n")
	if r := src.Get("default", "pub/01", bearer(token)...); r.Status != 200 {
		t.Fatalf("token on the source: %s", r)
	}

	dir := t.TempDir()
	for _, who := range []struct {
		name string
		env  []string
	}{{"anonymous", nil}, {"reader", readerEnv}, {"writer", writerEnv}} {
		to := filepath.Join(dir, "by-"+who.name)
		_, err := cairnCLIErr(src.Client, "", who.env, "backup", "--to", to)
		if err == nil || !(strings.Contains(err.Error(), "permission denied") || strings.Contains(err.Error(), "unauthenticated")) {
			t.Fatalf("backup as %s: %v, want a refusal", who.name, err)
		}
		if _, err := os.Stat(filepath.Join(to, backup.ManifestName)); err == nil {
			t.Fatalf("a refused backup as %s left a manifest", who.name)
		}
	}
	full := filepath.Join(dir, "full")
	res := runBackup(t, src.Client, rootEnv, "--to", full)
	if res.Records != 53 {
		t.Fatalf("backup holds %d keys, want 53", res.Records)
	}

	dst := StartSingle(t).Nodes[0]
	// A corrupted copy is refused before anything is written.
	bad := filepath.Join(dir, "bad")
	if err := os.CopyFS(bad, os.DirFS(full)); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(bad, "default.data"))
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-1] ^= 1
	if err := os.WriteFile(filepath.Join(bad, "default.data"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := cairnCLIErr(dst.Client, "", nil, "restore", "--from", bad); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("restore of a corrupted backup: %v", err)
	}
	if r := dst.Get("default", "pub/01"); r.Status != 404 {
		t.Fatalf("after a refused restore: %s", r)
	}

	cairnCLI(t, dst.Client, "", nil, "restore", "--from", full)
	if r := dst.Get("default", "pub/01"); r.Status != 401 {
		t.Fatalf("anonymous get after restoring an auth-enabled backup: %s, want 401", r)
	}
	if r := dst.Get("default", "pub/07", basic("reader", readerPassword)...); r.Status != 200 || string(r.Body) != "v7" {
		t.Fatalf("reader with its old password: %s", r)
	}
	for i := range 3 {
		if r := dst.Get("default", fmt.Sprintf("pub/big%d", i), basic("reader", readerPassword)...); r.Status != 200 || !bytes.Equal(r.Body, big(i)) {
			t.Fatalf("big value %d after restore: status %d, %d bytes", i, r.Status, len(r.Body))
		}
	}
	if r := dst.Put("default", "pub/x", []byte("y"), basic("reader", readerPassword)...); r.Status != 403 {
		t.Fatalf("reader writing after restore: %s, want 403 (grants restored)", r)
	}
	if r := dst.Put("default", "pub/x", []byte("y"), basic("writer", writerPassword)...); r.Status != 200 {
		t.Fatalf("writer after restore: %s", r)
	}
	if out := cairnCLI(t, dst.Client, "", rootEnv, "token", "ls"); !strings.Contains(out, "reader") || !strings.Contains(out, "ci") {
		t.Fatalf("token records after restore:\n%s", out)
	}
	if r := dst.Get("default", "pub/01", bearer(token)...); r.Status != 401 {
		t.Fatalf("old token after restore: %s, want 401 (the signing secret is not backed up)", r)
	}
	// Restore, too, needs cluster admin, and an empty cluster.
	if _, err := cairnCLIErr(dst.Client, "", writerEnv, "restore", "--from", full); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("restore as writer: %v, want permission denied", err)
	}
	if _, err := cairnCLIErr(dst.Client, "", rootEnv, "restore", "--from", full); err == nil || !strings.Contains(err.Error(), "empty cluster") {
		t.Fatalf("restore into a cluster with keys: %v", err)
	}
}
