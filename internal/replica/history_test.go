package replica

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/storage"
)

// TestHistoryTrimAndLinks: a key's history keeps its newest
// HistoryVersions changes (3 in these tests), each linked to the change
// before it even when that one was trimmed, deletes included (a delete
// takes a version of its own).
func TestHistoryTrimAndLinks(t *testing.T) {
	e := newApplyEnv(t)
	var ents []entry
	next := map[keys.RangeID]uint64{}
	for _, line := range []string{
		"put key=a value=1 ts=100", "put key=a value=2", "put key=b value=x", "put key=a value=3",
		"del key=a", "put key=a value=4",
	} {
		ents = append(ents, e.parseEntry(t, mustTD(t, line), next))
	}
	e.apply(t, ents)
	got := dumpHistory(t, e.db, 1)
	want := strings.Join([]string{
		`a@103 put prev=101 "3"`,
		`a@104 delete prev=103 ""`,
		`a@105 put prev=104 "4"`,
		`b@102 put prev=0 "x"`,
	}, "\n") + "\n"
	if got != want {
		t.Fatalf("history:\n%s\nwant:\n%s", got, want)
	}
}

// TestHistoryRetention: beyond the newest HistoryVersions changes (2
// here), a key keeps the changes younger than HistoryRetention (10 ms)
// before its latest one, measured in version (HLC) time, so replicas
// agree on what is kept.
func TestHistoryRetention(t *testing.T) {
	e := newApplyEnv(t)
	r := e.replicas[2]
	r.opts.HistoryVersions, r.opts.HistoryRetention = 2, 10*time.Millisecond
	ms := func(m uint64) string { return fmt.Sprint(m << 16) }
	var ents []entry
	next := map[keys.RangeID]uint64{}
	for _, at := range []uint64{100, 105, 108, 200, 201, 300, 301, 302, 303} {
		ents = append(ents, e.parseEntry(t, mustTD(t, "put key=a value=v ts="+ms(at)), next))
	}
	e.apply(t, ents)
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(dumpHistory(t, e.db, 1)), "\n") {
		at, _, _ := strings.Cut(strings.TrimPrefix(line, "a@"), " ")
		v, err := strconv.ParseUint(at, 10, 64)
		if err != nil {
			t.Fatal(line, err)
		}
		got = append(got, fmt.Sprint(v>>16))
	}
	if strings.Join(got, " ") != "300 301 302 303" {
		t.Fatalf("kept changes at ms %v, want 300 301 302 303", got)
	}
}

// TestTableHistoryPolicy: a command carrying its table's retention
// (history_versions, history_retention_ms) overrides the node's options
// for the key it writes, and a command without them keeps the node's.
func TestTableHistoryPolicy(t *testing.T) {
	for _, tc := range []struct {
		name, args string
		want       string
	}{
		// Node options: 2 versions, 10 ms.
		{"node defaults", "", "300 301 302 303"},
		// The table keeps 5 versions and nothing by age.
		{"table versions", " history-versions=5 history-retention-ms=0", "201 300 301 302 303"},
		// The table keeps 1 version and 150 ms: 201 is 102 ms before 303.
		{"table retention", " history-versions=1 history-retention-ms=150", "200 201 300 301 302 303"},
		// History off for the table.
		{"table without history", " history-versions=0", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newApplyEnv(t)
			r := e.replicas[2]
			r.opts.HistoryVersions, r.opts.HistoryRetention = 2, 10*time.Millisecond
			var ents []entry
			next := map[keys.RangeID]uint64{}
			for _, at := range []uint64{100, 105, 108, 200, 201, 300, 301, 302, 303} {
				ents = append(ents, e.parseEntry(t, mustTD(t, fmt.Sprintf("put key=a value=v ts=%d%s", at<<16, tc.args)), next))
			}
			e.apply(t, ents)
			var got []string
			for _, line := range strings.Split(strings.TrimSpace(dumpHistory(t, e.db, 1)), "\n") {
				if line == "" {
					continue
				}
				at, _, _ := strings.Cut(strings.TrimPrefix(line, "a@"), " ")
				v, err := strconv.ParseUint(at, 10, 64)
				if err != nil {
					t.Fatal(line, err)
				}
				got = append(got, fmt.Sprint(v>>16))
			}
			if strings.Join(got, " ") != tc.want {
				t.Fatalf("kept changes at ms %v, want %s", got, tc.want)
			}
		})
	}
}

// TestHistoryFloor: every change records a floor at or below its key's
// oldest retained entry (storage.Change.Floor) with every older entry
// deleted, and the floor rises as writes trim the history; the next
// write's iterator starts there instead of walking the deleted entries.
func TestHistoryFloor(t *testing.T) {
	e := newApplyEnv(t)
	r := e.replicas[2]
	r.opts.HistoryVersions, r.opts.HistoryRetention = 3, 0
	next := map[keys.RangeID]uint64{}
	var floors []uint64
	for i := range 200 {
		e.apply(t, []entry{e.parseEntry(t, mustTD(t, fmt.Sprintf("put key=a value=%d", i)), next)})
		live, newest := historyEntries(t, e.db)
		if len(live) != min(i+1, 3) {
			t.Fatalf("write %d: %d entries kept, want %d", i, len(live), min(i+1, 3))
		}
		if newest.Floor == 0 || newest.Floor > live[0] {
			t.Fatalf("write %d: floor %d, oldest kept entry %d", i, newest.Floor, live[0])
		}
		floors = append(floors, newest.Floor)
	}
	// Each write trims the one entry that fell out, down to the floor: the
	// floor follows right behind the oldest entry kept.
	for i := 4; i < len(floors); i++ {
		if floors[i] <= floors[i-1] {
			t.Fatalf("floor did not rise at write %d: %v", i, floors[i-2:i+1])
		}
	}
}

// TestHistoryBurstAgesOutOldestFirst: a burst of writes of one key, kept
// by age, goes once it ages out, maxTrimPerWrite entries per later write,
// oldest first: what is left is always the newest part of the history
// (no holes), and the floor rises with every trimming write, so no write
// walks over entries deleted before it. (Trimmed newest first, the
// deletions sat above the older entries and the floor stayed put: each
// write walked over every earlier write's deletions, and a burst of
// redis-benchmark SETs made forwarded writes wait seconds a minute later.)
func TestHistoryBurstAgesOutOldestFirst(t *testing.T) {
	e := newApplyEnv(t)
	r := e.replicas[2]
	r.opts.HistoryVersions, r.opts.HistoryRetention = 3, 10*time.Second
	next := map[keys.RangeID]uint64{}
	put := func(ms uint64) {
		e.apply(t, []entry{e.parseEntry(t, mustTD(t, fmt.Sprintf("put key=a value=x ts=%d", ms<<16)), next)})
	}
	live := func() ([]uint64, storage.Change) { return historyEntries(t, e.db) }
	const burst = 300
	var burstVersions []uint64
	for i := range burst {
		put(1000 + uint64(i))
		burstVersions = append(burstVersions, (1000+uint64(i))<<16)
	}
	if vs, _ := live(); len(vs) != burst {
		t.Fatalf("%d entries after the burst, want all %d (kept by age)", len(vs), burst)
	}
	// 20 s later the whole burst is past the retention.
	var floors []uint64
	for j := range 8 {
		put(1000 + burst + 20_000 + uint64(j))
		vs, newest := live()
		floors = append(floors, newest.Floor)
		// What is left of the burst is its newest part, from the floor up.
		var fromBurst []uint64
		for _, v := range vs {
			if v < (1000+burst)<<16 {
				fromBurst = append(fromBurst, v)
			}
		}
		wantLeft := max(burst-(j+1)*maxTrimPerWrite, 0)
		if len(fromBurst) != wantLeft || (len(fromBurst) > 0 && !slices.Equal(fromBurst, burstVersions[burst-len(fromBurst):])) {
			t.Fatalf("after aged write %d: %d burst entries left (want the newest %d, no holes): %v...", j, len(fromBurst), wantLeft, fromBurst[:min(len(fromBurst), 5)])
		}
		if n := len(fromBurst); n > 0 && (newest.Floor > fromBurst[0] || newest.Floor <= burstVersions[burst-n-1]) {
			t.Fatalf("after aged write %d: floor %d, want above the newest trimmed entry %d and at most the oldest left %d",
				j, newest.Floor, burstVersions[burst-n-1], fromBurst[0])
		}
	}
	for j := 1; j < 4; j++ {
		if floors[j] <= floors[j-1] {
			t.Fatalf("the floor did not rise with trimming write %d: %v", j, floors)
		}
	}
	// Left: the 8 later writes, all younger than the retention.
	if vs, _ := live(); len(vs) != 8 || vs[0] != (1000+burst+20_000)<<16 {
		t.Fatalf("%d entries left after the burst aged out (oldest %d), want the 8 later writes", len(vs), vs[0])
	}
}

// historyEntries returns the versions of table 1's history entries in
// key order, and the last entry's change.
func historyEntries(t *testing.T, db *pebble.DB) ([]uint64, storage.Change) {
	t.Helper()
	var vs []uint64
	var last storage.Change
	start, end := keys.HistorySpan(1, nil, nil)
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: start, UpperBound: end})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		_, _, v, err := keys.DecodeHistoryKey(it.Key())
		if err != nil {
			t.Fatal(err)
		}
		if last, err = storage.DecodeChange(it.Value()); err != nil {
			t.Fatal(err)
		}
		vs = append(vs, v)
	}
	return vs, last
}
