// Goal: check properties of the apply state machine that golden files
// cannot enumerate, and the snapshot path between two replicas; measure
// the apply path. Method: a rapid model test that applies random
// put/delete sequences (random proposer timestamps, conditions, batch
// splits) to a replica and to a plain map, comparing every result, the
// stored data and the version invariant (strictly increasing, at least the
// proposer's timestamp); a snapshot built by one replica and installed on
// another node's replica must reproduce data and applied state.
package replica

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
	"pgregory.net/rapid"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/kv"
	"github.com/cairn-db/cairn/internal/storage"
)

type modelValue struct {
	version uint64
	value   string
}

// TestApplyMatchesModel applies random writes to range 2 and checks each
// result against a map model.
func TestApplyMatchesModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		e := newApplyEnv(t)
		r := e.replicas[2]
		model := map[string]modelValue{}
		var maxVersion uint64
		keyGen := rapid.SampledFrom([]string{"a", "b", "c", "d"})
		steps := rapid.IntRange(1, 30).Draw(rt, "steps")
		index := r.state.AppliedIndex
		for step := 0; step < steps; step++ {
			// One Apply batch of 1..4 commands.
			n := rapid.IntRange(1, 4).Draw(rt, "batch")
			var ents []entry
			var want []Result
			var tss []uint64
			for i := 0; i < n; i++ {
				key := keyGen.Draw(rt, "key")
				cur, found := model[key]
				var cond *cairnpb.Condition
				switch rapid.IntRange(0, 3).Draw(rt, "cond") {
				case 1:
					cond = &cairnpb.Condition{Absent: true}
				case 2:
					v := cur.version
					if rapid.Bool().Draw(rt, "stale") || !found {
						v = rapid.Uint64Range(1, maxVersion+2).Draw(rt, "condVersion")
					}
					cond = &cairnpb.Condition{Version: v}
				}
				condErr := func() error {
					if cond == nil {
						return nil
					}
					if cond.Absent && found {
						return kv.ErrConditionFailed
					}
					if cond.Version != 0 && (!found || cur.version != cond.Version) {
						return kv.ErrConditionFailed
					}
					return nil
				}()
				cmd := &cairnpb.Command{NodeId: 1, ProposalId: e.nextProp, TableId: 1}
				e.nextProp++
				var res Result
				if rapid.IntRange(0, 2).Draw(rt, "op") < 2 {
					ts := rapid.OneOf(rapid.Just(uint64(0)), rapid.Uint64Range(1, maxVersion+3), rapid.Uint64Range(0, 1<<40)).Draw(rt, "ts")
					value := fmt.Sprintf("v%d.%d", step, i)
					cmd.Timestamp = ts
					cmd.Op = &cairnpb.Command_Put{Put: &cairnpb.PutRequest{Key: []byte(key), Value: []byte(value), Condition: cond}}
					if condErr != nil {
						res.Err = condErr
					} else {
						v := max(ts, maxVersion+1)
						maxVersion = v
						model[key] = modelValue{v, value}
						res.Version = v
					}
					tss = append(tss, ts)
				} else {
					cmd.Op = &cairnpb.Command_Delete{Delete: &cairnpb.DeleteRequest{Key: []byte(key), Condition: cond}}
					switch {
					case !found:
						res.Err = kv.ErrNotFound
					case condErr != nil:
						res.Err = condErr
					default:
						res.Version = cur.version
						delete(model, key)
						maxVersion++ // the delete's own version (its place in the key's history)
					}
					tss = append(tss, 0)
				}
				want = append(want, res)
				data, err := proto.Marshal(cmd)
				if err != nil {
					rt.Fatal(err)
				}
				index++
				done := make(chan Result, 1)
				r.waiters[cmd.ProposalId] = &proposal{id: cmd.ProposalId, done: done}
				ents = append(ents, entry{r: r, ent: raftpb.Entry{Index: index, Term: e.term, Data: data}, done: done})
			}
			var out Applied
			b := e.db.NewIndexedBatch()
			var raw []raftpb.Entry
			for _, en := range ents {
				raw = append(raw, en.ent)
			}
			if err := r.Apply(b, raw, &out); err != nil {
				rt.Fatal(err)
			}
			if err := b.Commit(pebble.NoSync); err != nil {
				rt.Fatal(err)
			}
			b.Close()
			out.Fire()
			for i, en := range ents {
				got := <-en.done
				if (got.Err == nil) != (want[i].Err == nil) || (got.Err != nil && !errors.Is(got.Err, want[i].Err)) || got.Version != want[i].Version {
					rt.Fatalf("step %d entry %d: result %s, want %s", step, i, describeResult(got), describeResult(want[i]))
				}
				if got.Err == nil && tss[i] > 0 && got.Version < tss[i] {
					rt.Fatalf("version %d below proposer timestamp %d", got.Version, tss[i])
				}
			}
			if out.MaxVersion != maxVersion || r.state.MaxVersion != maxVersion {
				rt.Fatalf("max version: applied %d, state %d, model %d", out.MaxVersion, r.state.MaxVersion, maxVersion)
			}
		}
		// The stored data equals the model.
		start, end := keys.DataSpan(1, nil, nil)
		it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: start, UpperBound: end})
		if err != nil {
			rt.Fatal(err)
		}
		defer it.Close()
		seen := 0
		for ok := it.First(); ok; ok = it.Next() {
			_, uk, _ := keys.DecodeDataKey(it.Key())
			v, val, err := storage.DecodeValue(it.Value())
			if err != nil {
				rt.Fatal(err)
			}
			if m, ok := model[string(uk)]; !ok || m.version != v || m.value != string(val) {
				rt.Fatalf("stored %s = %d/%s, model %+v (present %v)", uk, v, val, m, ok)
			}
			seen++
		}
		if seen != len(model) {
			rt.Fatalf("stored %d keys, model %d", seen, len(model))
		}
		st, err := LoadState(e.db, 2)
		if err != nil || st.AppliedIndex != index || st.MaxVersion != maxVersion {
			rt.Fatalf("persisted state %v, %v; want applied %d max version %d", st, err, index, maxVersion)
		}
	})
}

// TestSnapshotInstall: a snapshot of range 2 built on one node, installed
// on another node's empty replica, reproduces the data and applied state,
// replaces the receiver's divergent data, and later applies continue with
// versions above the snapshot's.
func TestSnapshotInstall(t *testing.T) {
	src := newApplyEnv(t)
	dst := newApplyEnv(t)
	var ents []entry
	next := map[keys.RangeID]uint64{}
	for _, line := range []string{"put key=a value=1 ts=100", "put key=b value=2", "put key=c value=3", "del key=b"} {
		ents = append(ents, src.parseEntry(t, mustTD(t, line), next))
	}
	src.apply(t, ents)
	// The receiver has a stale key the snapshot must remove.
	dst.apply(t, []entry{dst.parseEntry(t, mustTD(t, "put key=zz value=stale"), map[keys.RangeID]uint64{})})

	snap, err := src.replicas[2].snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if snap.Metadata.Index != 14 || snap.Metadata.Term != src.term {
		t.Fatalf("snapshot at %d/%d, want 14/%d", snap.Metadata.Index, snap.Metadata.Term, src.term)
	}
	r := dst.replicas[2]
	b := dst.db.NewBatch()
	if err := r.applySnapshot(b, snap); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if got, want := dumpTable(t, dst.db, 1), dumpTable(t, src.db, 1); got != want {
		t.Fatalf("after snapshot:\n%s\nwant:\n%s", got, want)
	}
	// The key history travels with the data: a watcher resuming on the
	// receiver finds the same changes (the stale key's history is gone).
	if got, want := dumpHistory(t, dst.db, 1), dumpHistory(t, src.db, 1); got != want || strings.Count(got, "\n") != 4 {
		t.Fatalf("history after snapshot:\n%s\nwant (4 changes):\n%s", got, want)
	}
	if got, want := describeState(dst.db, 2), describeState(src.db, 2); got != want {
		t.Fatalf("state after snapshot %q, want %q", got, want)
	}
	if _, _, applied := r.Status(); applied != 14 {
		t.Fatalf("applied %d after snapshot", applied)
	}
	if first, _ := r.log.FirstIndex(); first != 15 {
		t.Fatalf("log first index %d after snapshot", first)
	}
	out := dst.apply(t, []entry{dst.parseEntry(t, mustTD(t, "put key=d value=4"), map[keys.RangeID]uint64{})})
	if want := "index 15: ok version=104\n"; !bytes.HasPrefix([]byte(out), []byte(want)) {
		t.Fatalf("apply after snapshot: %q, want prefix %q", out, want)
	}

	// A snapshot for another range is refused.
	snap1, err := src.replicas[MetaRangeID].snapshot()
	if err != nil {
		t.Fatal(err)
	}
	b = dst.db.NewBatch()
	defer b.Close()
	if err := r.applySnapshot(b, snap1); err == nil {
		t.Fatal("snapshot of range 1 installed on range 2")
	}
}

func mustTD(t testing.TB, line string) *datadriven.TestData {
	t.Helper()
	cmd, args, err := datadriven.ParseLine(line)
	if err != nil {
		t.Fatal(err)
	}
	return &datadriven.TestData{Pos: line, Cmd: cmd, CmdArgs: args}
}

func dumpTable(t testing.TB, db *pebble.DB, table keys.TableID) string {
	t.Helper()
	start, end := keys.DataSpan(table, nil, nil)
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: start, UpperBound: end})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var buf bytes.Buffer
	for ok := it.First(); ok; ok = it.Next() {
		fmt.Fprintf(&buf, "%x=%x\n", it.Key(), it.Value())
	}
	return buf.String()
}

// dumpHistory prints table's key history entries.
func dumpHistory(t testing.TB, db *pebble.DB, table keys.TableID) string {
	t.Helper()
	start, end := keys.HistorySpan(table, nil, nil)
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: start, UpperBound: end})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var buf bytes.Buffer
	for ok := it.First(); ok; ok = it.Next() {
		_, k, v, err := keys.DecodeHistoryKey(it.Key())
		if err != nil {
			t.Fatal(err)
		}
		c, err := storage.DecodeChange(it.Value())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&buf, "%s@%d %s prev=%d %q\n", k, v, c.Kind, c.Prev, c.Value)
	}
	return buf.String()
}

// BenchmarkApply measures the apply path: one Apply call of batch put
// commands (unmarshal, read for the condition, version, write) into an
// indexed batch, committed without fsync, as the store's step 6 does.
// Pebble has the node's default options; puts overwrite 10k keys. Two
// history policies: the node's default (16 versions, 1 minute: every
// write is within the retention, nothing is trimmed) and trim (3
// versions, no retention: every write deletes its key's oldest entry).
//
//	go test -run='^$' -bench=Apply -benchmem ./internal/replica/
func BenchmarkApply(b *testing.B) {
	policies := []struct {
		name        string
		versions    uint32
		retentionMs uint64
	}{{"default", DefaultHistoryVersions, 60_000}, {"trim", 3, 0}}
	for _, batch := range []int{1, 64} {
		for _, valueBytes := range []int{100, 1024} {
			for _, pol := range policies {
				if pol.name == "trim" && (batch != 64 || valueBytes != 100) {
					continue
				}
				b.Run(fmt.Sprintf("batch=%d/valueBytes=%d/history=%s", batch, valueBytes, pol.name), func(b *testing.B) {
					e := newApplyEnvWith(b, storage.Options{})
					r := e.replicas[2]
					// A ring of marshaled commands over 10k keys.
					const ring = 4096
					datas := make([][]byte, ring)
					value := bytes.Repeat([]byte{'v'}, valueBytes)
					for i := range datas {
						cmd := &cairnpb.Command{NodeId: 2, ProposalId: uint64(i), TableId: 1, Timestamp: uint64(i),
							HistoryVersions: &pol.versions, HistoryRetentionMs: &pol.retentionMs,
							Op: &cairnpb.Command_Put{Put: &cairnpb.PutRequest{Key: fmt.Appendf(nil, "key-%08d", i*7919%10000), Value: value}}}
						d, err := proto.Marshal(cmd)
						if err != nil {
							b.Fatal(err)
						}
						datas[i] = d
					}
					ents := make([]raftpb.Entry, batch)
					index := r.state.AppliedIndex
					k := 0
					b.ReportAllocs()
					b.SetBytes(int64(batch * valueBytes))
					for b.Loop() {
						for i := range ents {
							index++
							ents[i] = raftpb.Entry{Index: index, Term: e.term, Data: datas[k%ring]}
							k++
						}
						applyCommitted(b, e.db, r, ents)
					}
				})
			}
		}
	}
}

// BenchmarkApplyHotKey measures puts that all overwrite one key, as
// redis-benchmark's default SET does, under two history policies (the
// default 16 versions): retention 0, where every write trims an entry,
// and retention 1m, where every entry is kept by age (the default). The
// cost per put must not grow with the number of earlier writes: trimmed
// entries stay as tombstones until a compaction, and entries kept by age
// pile up; storage.Change.Floor keeps the trimming iterator away from
// both.
//
//	go test -run='^$' -bench=ApplyHotKey -benchtime=20000x ./internal/replica/
func BenchmarkApplyHotKey(b *testing.B) {
	for _, retention := range []time.Duration{0, time.Minute} {
		b.Run(fmt.Sprintf("retention=%v", retention), func(b *testing.B) {
			e := newApplyEnvWith(b, storage.Options{})
			r := e.replicas[2]
			r.opts.HistoryRetention = retention
			value := bytes.Repeat([]byte{'v'}, 100)
			index := r.state.AppliedIndex
			ents := make([]raftpb.Entry, 8)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				for j := range ents {
					i++
					cmd := &cairnpb.Command{NodeId: 2, ProposalId: uint64(i), TableId: 1, Timestamp: uint64(i),
						Op: &cairnpb.Command_Put{Put: &cairnpb.PutRequest{Key: []byte("hot"), Value: value}}}
					d, err := proto.Marshal(cmd)
					if err != nil {
						b.Fatal(err)
					}
					index++
					ents[j] = raftpb.Entry{Index: index, Term: e.term, Data: d}
				}
				applyCommitted(b, e.db, r, ents)
			}
		})
	}
}

// applyCommitted applies ents to r in an indexed batch committed without
// fsync and wakes the waiters, as the store's step 6 does.
func applyCommitted(b *testing.B, db *pebble.DB, r *Replica, ents []raftpb.Entry) {
	ab := db.NewIndexedBatch()
	defer ab.Close()
	var out Applied
	if err := r.Apply(ab, ents, &out); err != nil {
		b.Fatal(err)
	}
	if err := ab.Commit(pebble.NoSync); err != nil {
		b.Fatal(err)
	}
	out.Fire()
	r.ReleaseReads()
}
