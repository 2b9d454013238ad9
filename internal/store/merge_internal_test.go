// Goal: reconcile's rules for replicas of ranges that merged away
// (mergedAway), decided from local states and the catalog alone: a frozen
// replica covered by a local replica of higher generation goes (Raft state
// only); one the catalog no longer lists while a newer range holds its
// start key goes like a moved replica, unless it is frozen and the local
// left range has yet to apply the merge (at or below the freeze's
// generation); a split's catalog gap (the right
// half recorded before the left) is not mistaken for a merge.
// Method: table-driven over hand-built states; no Raft, no Pebble.
package store

import (
	"testing"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/keys"
)

func TestMergedAway(t *testing.T) {
	desc := func(id uint64, start, end string, gen uint64) *cairnpb.RangeDescriptor {
		d := &cairnpb.RangeDescriptor{Id: id, TableId: 1, Generation: gen, Replicas: []uint64{1, 2, 3}}
		if start != "" {
			d.Start = []byte(start)
		}
		if end != "" {
			d.End = []byte(end)
		}
		return d
	}
	state := func(d *cairnpb.RangeDescriptor, frozenFor *cairnpb.Frozen) *cairnpb.RangeState {
		return &cairnpb.RangeState{Desc: d, AppliedIndex: 20, Frozen: frozenFor}
	}
	frozen := &cairnpb.Frozen{LeftId: 2, LeftGeneration: 1}
	for _, tc := range []struct {
		name    string
		have    []*cairnpb.RangeState
		catalog []*cairnpb.RangeDescriptor
		want    mergeFate // of the range with ID 3
	}{
		{
			name:    "frozen and covered by the merged local left range",
			have:    []*cairnpb.RangeState{state(desc(2, "", "", 2), nil), state(desc(3, "m", "", 1), frozen)},
			catalog: []*cairnpb.RangeDescriptor{desc(2, "", "m", 1), desc(3, "m", "", 1)},
			want:    mergedInto,
		},
		{
			name:    "frozen; the local left range has not applied the merge yet",
			have:    []*cairnpb.RangeState{state(desc(2, "", "m", 1), nil), state(desc(3, "m", "", 1), frozen)},
			catalog: []*cairnpb.RangeDescriptor{desc(2, "", "", 2)},
			want:    notMerged,
		},
		{
			name:    "frozen; the local left range moved on (abort or split), the catalog says merged",
			have:    []*cairnpb.RangeState{state(desc(2, "", "m", 2), nil), state(desc(3, "m", "", 1), frozen)},
			catalog: []*cairnpb.RangeDescriptor{desc(2, "", "", 3)},
			want:    mergedElsewhere,
		},
		{
			// Seed 2344: range 5 [g, m) and then range 3 [m, end) merged
			// into range 2 (generation 1, then 2, then 3), and the catalog
			// recorded both before this node's left replica applied the
			// first merge. Range 3 is frozen for generation 2, which the
			// local left replica has yet to reach; it will apply both
			// merges and read range 3's data. Destroying that data here
			// left the node's merged range without range 3's keys.
			name: "frozen for a generation the local left range has yet to reach (an earlier merge to apply first)",
			have: []*cairnpb.RangeState{
				state(desc(2, "", "g", 1), nil),
				state(desc(5, "g", "m", 1), &cairnpb.Frozen{LeftId: 2, LeftGeneration: 1}),
				state(desc(3, "m", "", 1), &cairnpb.Frozen{LeftId: 2, LeftGeneration: 2}),
			},
			catalog: []*cairnpb.RangeDescriptor{desc(2, "", "", 3)},
			want:    notMerged,
		},
		{
			name: "frozen for a later generation of a local left range the catalog moved off this node",
			have: []*cairnpb.RangeState{
				state(desc(2, "", "g", 1), nil),
				state(desc(3, "m", "", 1), &cairnpb.Frozen{LeftId: 2, LeftGeneration: 2}),
			},
			catalog: []*cairnpb.RangeDescriptor{{Id: 2, TableId: 1, Generation: 3, ConfVersion: 4, Replicas: []uint64{2, 3, 4}}},
			want:    mergedElsewhere,
		},
		{
			name:    "frozen, no local left range, the catalog says merged",
			have:    []*cairnpb.RangeState{state(desc(3, "m", "", 1), frozen)},
			catalog: []*cairnpb.RangeDescriptor{desc(2, "", "", 2)},
			want:    mergedElsewhere,
		},
		{
			name:    "a stale replica that left before the freeze",
			have:    []*cairnpb.RangeState{state(desc(3, "m", "", 1), nil)},
			catalog: []*cairnpb.RangeDescriptor{desc(2, "", "", 2)},
			want:    mergedElsewhere,
		},
		{
			name:    "uninitialized, created from an older catalog",
			have:    []*cairnpb.RangeState{{Desc: desc(3, "m", "", 1)}},
			catalog: []*cairnpb.RangeDescriptor{desc(2, "", "", 2)},
			want:    mergedElsewhere,
		},
		{
			name:    "listed in the catalog",
			have:    []*cairnpb.RangeState{state(desc(3, "m", "", 1), frozen)},
			catalog: []*cairnpb.RangeDescriptor{desc(2, "", "m", 1), desc(3, "m", "", 1)},
			want:    notMerged,
		},
		{
			// Range 3 [m, end) split at t; the catalog recorded the right
			// half 4 [t, end) first, which replaced 3's old descriptor. A
			// replica of 3 that has not applied the split overlaps 4 but
			// does not hand it its start key.
			name:    "a split's catalog gap",
			have:    []*cairnpb.RangeState{state(desc(3, "m", "", 1), nil)},
			catalog: []*cairnpb.RangeDescriptor{desc(2, "", "m", 1), desc(4, "t", "", 2)},
			want:    notMerged,
		},
		{
			name:    "another table's range over the same keys",
			have:    []*cairnpb.RangeState{state(desc(3, "m", "", 1), nil)},
			catalog: []*cairnpb.RangeDescriptor{{Id: 9, TableId: 7, Generation: 5, Replicas: []uint64{1}}},
			want:    notMerged,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			have := map[keys.RangeID]*cairnpb.RangeState{}
			for _, st := range tc.have {
				have[keys.RangeID(st.Desc.Id)] = st
			}
			catalog := map[keys.RangeID]*cairnpb.RangeDescriptor{}
			for _, d := range tc.catalog {
				catalog[keys.RangeID(d.Id)] = d
			}
			if got := mergedAway(3, have[3], have, catalog, 1); got != tc.want {
				t.Fatalf("mergedAway = %d, want %d", got, tc.want)
			}
		})
	}
}
