package router

import (
	"fmt"
	"testing"

	"github.com/cairn-db/cairn/api/cairnpb"
)

// TestLoadSplitKey: the split key is the median of the sampled keys that
// lie strictly inside the range; no key when all samples sit on the
// range's first key (a single hot key cannot be split) or outside it.
func TestLoadSplitKey(t *testing.T) {
	d := &cairnpb.RangeDescriptor{Start: []byte("b"), End: []byte("y")}
	l := &rangeLoad{}
	for _, k := range []string{"a", "b", "c", "d", "e", "f", "g", "z"} {
		l.samples = append(l.samples, []byte(k))
	}
	// Inside (b, y): c d e f g; the median is e.
	if got := l.splitKey(d); string(got) != "e" {
		t.Errorf("split key %q, want e", got)
	}
	l.samples = [][]byte{[]byte("b"), []byte("b"), []byte("a")}
	if got := l.splitKey(d); got != nil {
		t.Errorf("split key %q of samples on and before the start, want none", got)
	}
	l.samples = nil
	if got := l.splitKey(d); got != nil {
		t.Errorf("split key %q without samples, want none", got)
	}
	// An unbounded range takes keys up to the end of the table.
	if got := (&rangeLoad{samples: [][]byte{[]byte("zz"), []byte("zy"), []byte("zx")}}).splitKey(&cairnpb.RangeDescriptor{}); string(got) != "zy" {
		t.Errorf("split key %q in an unbounded range, want zy", got)
	}
}

// TestLoadReservoir: the reservoir keeps at most loadSamples keys and, over
// many uniformly spread keys, a median near the middle of them.
func TestLoadReservoir(t *testing.T) {
	l := &rangeLoad{rng: 12345}
	const n = 100000
	for i := range n {
		l.offer([]byte(fmt.Sprintf("k%06d", i)))
	}
	if len(l.samples) != loadSamples {
		t.Fatalf("%d samples, want %d", len(l.samples), loadSamples)
	}
	m := l.splitKey(&cairnpb.RangeDescriptor{})
	var i int
	if _, err := fmt.Sscanf(string(m), "k%06d", &i); err != nil {
		t.Fatal(err)
	}
	if i < n/4 || i > 3*n/4 {
		t.Errorf("median sample k%06d is far from the middle of %d uniform keys", i, n)
	}
}
