package replica

import (
	"testing"

	"github.com/cairn-db/cairn/api/cairnpb"
)

func TestCatalogGap(t *testing.T) {
	desc := func(id uint64, start, end string) *cairnpb.RangeDescriptor {
		d := &cairnpb.RangeDescriptor{Id: id, TableId: 1, Start: []byte(start)}
		if end != "" {
			d.End = []byte(end)
		}
		return d
	}
	tbl := &cairnpb.Table{Id: 1, Ranges: []*cairnpb.RangeDescriptor{desc(2, "", "c"), desc(5, "f", "")}}
	for _, tc := range []struct {
		d    *cairnpb.RangeDescriptor
		want bool
	}{
		{desc(7, "c", "f"), true},  // the hole a lost split record leaves
		{desc(7, "d", "e"), true},  // inside the hole
		{desc(7, "b", "f"), false}, // overlaps range 2
		{desc(7, "c", "g"), false}, // overlaps range 5
		{desc(7, "c", ""), false},  // to the end: overlaps range 5
		{desc(5, "c", "f"), false}, // the catalog has the range (elsewhere)
		{desc(2, "", "b"), false},  // the catalog has the range
	} {
		if got := CatalogGap(tbl, tc.d); got != tc.want {
			t.Errorf("range %d [%q, %q): CatalogGap = %v, want %v", tc.d.Id, tc.d.Start, tc.d.End, got, tc.want)
		}
	}
}

func TestSameReplicas(t *testing.T) {
	d := func(voters, learners []uint64) *cairnpb.RangeDescriptor {
		return &cairnpb.RangeDescriptor{Replicas: voters, Learners: learners}
	}
	for _, tc := range []struct {
		a, b *cairnpb.RangeDescriptor
		want bool
	}{
		{d([]uint64{1, 2, 3}, nil), d([]uint64{1, 2, 3}, nil), true},                 // as a split leaves them
		{d([]uint64{3, 1, 2}, []uint64{5}), d([]uint64{1, 2, 3}, []uint64{5}), true}, // another order
		{d([]uint64{1, 2, 3}, nil), d([]uint64{1, 2, 4}, nil), false},
		{d([]uint64{1, 2}, []uint64{3}), d([]uint64{1, 2, 3}, nil), false}, // a learner is no voter
		{d([]uint64{1, 2, 3}, nil), d([]uint64{1, 2}, nil), false},
	} {
		if got := SameReplicas(tc.a, tc.b); got != tc.want {
			t.Errorf("SameReplicas(%v/%v, %v/%v) = %v, want %v", tc.a.Replicas, tc.a.Learners, tc.b.Replicas, tc.b.Learners, got, tc.want)
		}
	}
}
