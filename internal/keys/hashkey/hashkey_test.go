package hashkey

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"testing"
)

// The goal: the placement of a key never changes across builds (the hash
// is pinned to published xxHash64 values), encode and decode round-trip,
// and the interval arithmetic (initial bounds, midpoints) stays inside
// the hash space.

func TestHashVectors(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
	}{
		{"", 0xef46db3751d8e999}, // the xxHash64 reference value, seed 0
		{"abc", 0x44bc2cf5ad770999},
		{"key-000001", 0x46f3acac5cd825ec},
	} {
		if got := Hash([]byte(tc.in)); got != tc.want {
			t.Errorf("Hash(%q) = %#x, want %#x", tc.in, got, tc.want)
		}
	}
}

func TestEncodeDecode(t *testing.T) {
	for _, k := range []string{"", "a", "key-000001", string(make([]byte, 4096))} {
		p := Encode([]byte(k))
		if len(p) != len(k)+PrefixLen || binary.BigEndian.Uint64(p) != Hash([]byte(k)) {
			t.Fatalf("Encode(%q) = %x", k, p)
		}
		uk, err := Decode(p)
		if err != nil || string(uk) != k {
			t.Fatalf("Decode(Encode(%q)) = %q, %v", k, uk, err)
		}
		if string(Strip(p)) != k {
			t.Fatalf("Strip(Encode(%q)) = %q", k, Strip(p))
		}
	}
	for _, bad := range [][]byte{nil, {1, 2, 3}, append(Encode([]byte("a")), 'b'), {0, 0, 0, 0, 0, 0, 0, 0}} {
		if _, err := Decode(bad); err == nil {
			t.Errorf("Decode(%x) succeeded", bad)
		}
	}
}

func TestInitialBounds(t *testing.T) {
	if got := InitialBounds(1); len(got) != 0 {
		t.Fatalf("InitialBounds(1) = %x", got)
	}
	for _, n := range []int{2, 3, 4, 7, 8, 1024} {
		b := InitialBounds(n)
		if len(b) != n-1 {
			t.Fatalf("n=%d: %d bounds", n, len(b))
		}
		want := uint64(math.MaxUint64/uint64(n)) + 1
		prev := uint64(0)
		for i, p := range b {
			h, _ := PositionOf(p)
			if h <= prev && i > 0 {
				t.Fatalf("n=%d: bounds not increasing at %d", n, i)
			}
			// Every interval is within 1 of 2^64/n.
			if w := h - prev; w+1 < want || w > want+1 {
				t.Fatalf("n=%d: interval %d is %d wide, want about %d", n, i, w, want)
			}
			prev = h
		}
	}
	if got := InitialBounds(2); !bytes.Equal(got[0], Point(1<<63)) {
		t.Fatalf("InitialBounds(2) = %x", got)
	}
}

func TestIsInitialBound(t *testing.T) {
	for _, n := range []int{2, 3, 4, 7, 8, 1000, 1024} {
		for _, b := range InitialBounds(n) {
			if !IsInitialBound(b, n) {
				t.Fatalf("n=%d: bound %x not recognised", n, b)
			}
			h, _ := PositionOf(b)
			for _, near := range []uint64{h - 1, h + 1} {
				if IsInitialBound(Point(near), n) {
					t.Fatalf("n=%d: %x beside bound %x taken for a bound", n, near, h)
				}
			}
			if IsInitialBound(append(b, 'k'), n) {
				t.Fatalf("n=%d: a placement key %x taken for a bound", n, b)
			}
		}
	}
	// Splits halve intervals: their points are not initial bounds, except
	// where they coincide with one of a finer table.
	if b := Midpoint(nil, InitialBounds(4)[0]); IsInitialBound(b, 4) || !IsInitialBound(b, 8) {
		t.Fatalf("midpoint %x of the first quarter", b)
	}
	for _, tc := range []struct {
		k []byte
		n int
	}{{nil, 4}, {Point(0), 4}, {Point(1 << 63), 1}, {Point(1 << 63), 0}, {Point(1<<63 + 1), 2}} {
		if IsInitialBound(tc.k, tc.n) {
			t.Fatalf("IsInitialBound(%x, %d) = true", tc.k, tc.n)
		}
	}
	if !IsInitialBound(Point(1<<63), 2) {
		t.Fatal("the middle of the space is the bound of 2 ranges")
	}
}

func TestMidpoint(t *testing.T) {
	for _, tc := range []struct {
		start, end []byte
		want       []byte
	}{
		{nil, nil, Point(1 << 63)},
		{nil, Point(1 << 63), Point(1 << 62)},
		{Point(1 << 63), nil, Point(1<<63 + 1<<62)},
		{Point(10), Point(12), Point(11)},
		{Point(10), Point(11), nil},
		{Point(math.MaxUint64), nil, nil},
		{append(Point(10), 'x'), Point(11), nil}, // 10/"x" is past the midpoint 10
		{append(Point(10), 'x'), Point(14), Point(12)},
	} {
		got := Midpoint(tc.start, tc.end)
		if !bytes.Equal(got, tc.want) {
			t.Errorf("Midpoint(%x, %x) = %x, want %x", tc.start, tc.end, got, tc.want)
		}
	}
}

func TestParseAndFormat(t *testing.T) {
	k, err := ParseSplitKey("0x8000000000000000")
	if err != nil || !bytes.Equal(k, Point(1<<63)) {
		t.Fatalf("ParseSplitKey = %x, %v", k, err)
	}
	for _, bad := range []string{"", "0x", "8000000000000000", "0x80000000000000000", "0xzz00000000000000"} {
		if _, err := ParseSplitKey(bad); err == nil {
			t.Errorf("ParseSplitKey(%q) succeeded", bad)
		}
	}
	if got := FormatBound(Point(1 << 63)); got != "0x8000000000000000" {
		t.Errorf("FormatBound = %s", got)
	}
	if got := FormatBound(nil); got != "" {
		t.Errorf("FormatBound(nil) = %q", got)
	}
	if got := FormatBound(Encode([]byte("a"))); got != fmt.Sprintf("0x%016x/\"a\"", Hash([]byte("a"))) {
		t.Errorf("FormatBound(Encode(a)) = %s", got)
	}
}

// FuzzPlacementKey: Decode never panics, accepts exactly what Encode
// produces, and round-trips.
func FuzzPlacementKey(f *testing.F) {
	f.Add([]byte(""))
	f.Add([]byte("key-000001"))
	f.Add(Encode([]byte("key-000001")))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		p := Encode(b)
		uk, err := Decode(p)
		if err != nil || !bytes.Equal(uk, b) {
			t.Fatalf("Decode(Encode(%x)) = %x, %v", b, uk, err)
		}
		if uk, err := Decode(b); err == nil {
			if !bytes.Equal(Encode(uk), b) {
				t.Fatalf("Decode accepted %x, which is not Encode(%x)", b, uk)
			}
		}
		_ = Midpoint(b, p)
		_ = FormatBound(b)
	})
}

type fakeTable struct {
	partitioning string
	initial      uint32
}

func (f fakeTable) GetPartitioning() string  { return f.partitioning }
func (f fakeTable) GetInitialRanges() uint32 { return f.initial }

// TestKeepsBound: only a hash table's initial bounds are kept; a range
// table's keys never are, whatever they look like.
func TestKeepsBound(t *testing.T) {
	b := InitialBounds(4)[1]
	for _, tc := range []struct {
		t    Table
		end  []byte
		want bool
	}{
		{fakeTable{"hash", 4}, b, true},
		{fakeTable{"hash", 8}, b, true}, // 2/4 is 4/8
		{fakeTable{"hash", 3}, b, false},
		{fakeTable{"hash", 0}, b, false}, // created before initial_ranges was recorded
		{fakeTable{"range", 4}, b, false},
		{fakeTable{"hash", 4}, nil, false},
	} {
		if got := KeepsBound(tc.t, tc.end); got != tc.want {
			t.Errorf("KeepsBound(%v, %x) = %v, want %v", tc.t, tc.end, got, tc.want)
		}
	}
}
