// Goal: pin down cairn's storage key layout, the contract every other
// package relies on: integers encode big-endian so numeric order is byte
// order, DataKey/DecodeDataKey and RaftLogKey/RaftLogIndex round-trip,
// spans bound exactly the keys they claim, and PrefixEnd handles its edge
// cases. Method: table tests for the fixed cases, fuzz targets for the
// decoders (never panic, round trip), and rapid properties for ordering.
package keys

import (
	"bytes"
	"encoding/binary"
	"math"
	"testing"

	"pgregory.net/rapid"
)

// interesting are integers around byte boundaries, where a little-endian
// or varint encoding would break numeric ordering.
var interesting = []uint64{0, 1, 2, 0xfe, 0xff, 0x100, 0x101, 0xffff, 0x10000, 1 << 32, 1<<32 + 1, 1 << 56, math.MaxUint64 - 1, math.MaxUint64}

func TestNumericOrderIsByteOrder(t *testing.T) {
	for _, a := range interesting {
		for _, b := range interesting {
			want := cmpU64(a, b)
			checks := []struct {
				name string
				ka   []byte
				kb   []byte
			}{
				{"RaftLogKey index", RaftLogKey(7, a), RaftLogKey(7, b)},
				{"HardStateKey range", HardStateKey(RangeID(a)), HardStateKey(RangeID(b))},
				{"RangeStateKey range", RangeStateKey(RangeID(a)), RangeStateKey(RangeID(b))},
				{"RaftLogKey range", RaftLogKey(RangeID(a), 5), RaftLogKey(RangeID(b), 5)},
				{"DataKey table", DataKey(TableID(a), []byte("k")), DataKey(TableID(b), []byte("k"))},
			}
			for _, c := range checks {
				if got := bytes.Compare(c.ka, c.kb); got != want {
					t.Errorf("%s: compare(%d, %d) = %d, want %d", c.name, a, b, got, want)
				}
			}
		}
	}
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func TestLayout(t *testing.T) {
	tests := []struct {
		name string
		got  []byte
		want []byte
	}{
		{"hard state", HardStateKey(0x0102), []byte{1, 0, 0, 0, 0, 0, 0, 1, 2, 'h'}},
		{"range state", RangeStateKey(1), []byte{1, 0, 0, 0, 0, 0, 0, 0, 1, 's'}},
		{"truncated", TruncatedStateKey(1), []byte{1, 0, 0, 0, 0, 0, 0, 0, 1, 't'}},
		{"log", RaftLogKey(1, 0x0a0b), []byte{1, 0, 0, 0, 0, 0, 0, 0, 1, 'l', 0, 0, 0, 0, 0, 0, 0x0a, 0x0b}},
		{"ident", IdentKey(), []byte{2, 'i', 'd', 'e', 'n', 't'}},
		{"data", DataKey(3, []byte("ab")), []byte{3, 0, 0, 0, 0, 0, 0, 0, 3, 'a', 'b'}},
		{"data empty user key", DataKey(0, nil), []byte{3, 0, 0, 0, 0, 0, 0, 0, 0}},
	}
	for _, tc := range tests {
		if !bytes.Equal(tc.got, tc.want) {
			t.Errorf("%s: got %x, want %x", tc.name, tc.got, tc.want)
		}
	}
}

// TestPrefixesDoNotInterleave checks that the three key families occupy
// disjoint, ordered parts of the keyspace: range-local < local < data.
func TestPrefixesDoNotInterleave(t *testing.T) {
	maxRange := RaftLogKey(math.MaxUint64, math.MaxUint64)
	minLocal := IdentKey()
	minData := DataKey(0, nil)
	if bytes.Compare(maxRange, minLocal) >= 0 || bytes.Compare(minLocal, minData) >= 0 {
		t.Fatalf("families interleave: %x %x %x", maxRange, minLocal, minData)
	}
	s, e := RangeStateSpan()
	for _, k := range [][]byte{HardStateKey(0), RangeStateKey(math.MaxUint64), maxRange} {
		if bytes.Compare(k, s) < 0 || bytes.Compare(k, e) >= 0 {
			t.Errorf("range key %x outside RangeStateSpan [%x, %x)", k, s, e)
		}
	}
	for _, k := range [][]byte{minLocal, minData} {
		if bytes.Compare(k, s) >= 0 && bytes.Compare(k, e) < 0 {
			t.Errorf("non-range key %x inside RangeStateSpan", k)
		}
	}
}

// RangeLocalSpan and DataSpan compute id+1 for the end bound, which wraps
// for math.MaxUint64 (end = the span of ID 0, below start). Range and table
// IDs come from counters starting at 1, so that ID is never allocated; the
// tests stop at MaxUint64-1.
func TestRangeLocalSpan(t *testing.T) {
	for _, id := range []RangeID{0, 1, 0xff, 0x100, math.MaxUint64 - 1} {
		s, e := RangeLocalSpan(id)
		in := [][]byte{HardStateKey(id), RangeStateKey(id), TruncatedStateKey(id), RaftLogKey(id, 0), RaftLogKey(id, math.MaxUint64)}
		for _, k := range in {
			if bytes.Compare(k, s) < 0 || bytes.Compare(k, e) >= 0 {
				t.Errorf("range %d: key %x outside its span [%x, %x)", id, k, s, e)
			}
		}
		out := [][]byte{HardStateKey(id + 1), RaftLogKey(id+1, 0), IdentKey(), DataKey(0, nil)}
		if id > 0 {
			out = append(out, RaftLogKey(id-1, math.MaxUint64), TruncatedStateKey(id-1))
		}
		for _, k := range out {
			if bytes.Compare(k, s) >= 0 && bytes.Compare(k, e) < 0 {
				t.Errorf("range %d: foreign key %x inside its span [%x, %x)", id, k, s, e)
			}
		}
	}
}

func TestRangeStateID(t *testing.T) {
	for _, id := range interesting {
		got, ok := RangeStateID(RangeStateKey(RangeID(id)))
		if !ok || got != RangeID(id) {
			t.Errorf("RangeStateID(RangeStateKey(%d)) = %d, %v", id, got, ok)
		}
	}
	for _, k := range [][]byte{
		nil, {}, HardStateKey(1), TruncatedStateKey(1), RaftLogKey(1, 1), IdentKey(), DataKey(1, []byte("s")),
		append(RangeStateKey(1), 0), RangeStateKey(1)[:9],
	} {
		if id, ok := RangeStateID(k); ok {
			t.Errorf("RangeStateID(%x) = %d, true; want false", k, id)
		}
	}
}

func TestRaftLogIndex(t *testing.T) {
	for _, idx := range interesting {
		got, err := RaftLogIndex(RaftLogKey(42, idx))
		if err != nil || got != idx {
			t.Errorf("RaftLogIndex(RaftLogKey(42, %d)) = %d, %v", idx, got, err)
		}
	}
	for _, k := range [][]byte{
		nil, HardStateKey(1), RangeStateKey(1), RaftLogKey(1, 1)[:17], append(RaftLogKey(1, 1), 0),
		DataKey(1, []byte("l0000000")), IdentKey(),
	} {
		if _, err := RaftLogIndex(k); err != ErrMalformed {
			t.Errorf("RaftLogIndex(%x): err = %v, want ErrMalformed", k, err)
		}
	}
}

func TestDecodeDataKey(t *testing.T) {
	for _, tc := range []struct {
		table TableID
		user  []byte
	}{{0, nil}, {0, []byte("table/x")}, {1, []byte{0}}, {math.MaxUint64, []byte{0xff, 0xff}}, {0x100, []byte("k")}} {
		tb, uk, err := DecodeDataKey(DataKey(tc.table, tc.user))
		if err != nil || tb != tc.table || !bytes.Equal(uk, tc.user) {
			t.Errorf("DecodeDataKey(DataKey(%d, %q)) = %d, %q, %v", tc.table, tc.user, tb, uk, err)
		}
	}
	for _, k := range [][]byte{nil, {3}, DataKey(1, nil)[:8], RangeStateKey(1), IdentKey(), {4, 0, 0, 0, 0, 0, 0, 0, 1}} {
		if _, _, err := DecodeDataKey(k); err != ErrMalformed {
			t.Errorf("DecodeDataKey(%x): err = %v, want ErrMalformed", k, err)
		}
	}
}

func TestDataSpan(t *testing.T) {
	in := func(k, s, e []byte) bool { return bytes.Compare(k, s) >= 0 && bytes.Compare(k, e) < 0 }
	for _, table := range []TableID{0, 1, 0xff, 0x100, math.MaxUint64 - 1} {
		// Empty end: the whole table, from the given start.
		s, e := DataSpan(table, nil, nil)
		for _, uk := range [][]byte{nil, {0}, []byte("a"), bytes.Repeat([]byte{0xff}, 64)} {
			if !in(DataKey(table, uk), s, e) {
				t.Errorf("table %d: key %q outside whole-table span", table, uk)
			}
		}
		for _, k := range [][]byte{DataKey(table+1, nil), DataKey(table+1, []byte("a")), IdentKey(), RangeStateKey(RangeID(table))} {
			if in(k, s, e) {
				t.Errorf("table %d: foreign key %x inside whole-table span", table, k)
			}
		}
		if table > 0 && in(DataKey(table-1, []byte{0xff, 0xff}), s, e) {
			t.Errorf("table %d: key of table %d inside span", table, table-1)
		}
		// Explicit bounds: [b, d).
		s, e = DataSpan(table, []byte("b"), []byte("d"))
		for uk, want := range map[string]bool{"a": false, "az": false, "b": true, "b\x00": true, "c": true, "cz\xff": true, "d": false, "d\x00": false, "e": false} {
			if got := in(DataKey(table, []byte(uk)), s, e); got != want {
				t.Errorf("table %d: %q in [b, d) = %v, want %v", table, uk, got, want)
			}
		}
		// Start given, end empty.
		s, e = DataSpan(table, []byte("m"), nil)
		for uk, want := range map[string]bool{"l": false, "m": true, "zzz": true, "\xff\xff\xff": true} {
			if got := in(DataKey(table, []byte(uk)), s, e); got != want {
				t.Errorf("table %d: %q in [m, end) = %v, want %v", table, uk, got, want)
			}
		}
	}
}

func TestPrefixEnd(t *testing.T) {
	for _, tc := range []struct {
		in, want []byte
	}{
		{nil, nil},
		{[]byte{}, nil},
		{[]byte{0xff}, nil},
		{[]byte{0xff, 0xff, 0xff}, nil},
		{[]byte{0}, []byte{1}},
		{[]byte("abc"), []byte("abd")},
		{[]byte{'a', 0xff}, []byte{'b'}},
		{[]byte{'a', 0xff, 0xff}, []byte{'b'}},
		{[]byte{0xfe, 0xff}, []byte{0xff}},
		{[]byte{1, 0xfe}, []byte{1, 0xff}},
		{[]byte("table/"), []byte("table0")},
	} {
		in := append([]byte(nil), tc.in...)
		got := PrefixEnd(in)
		if !bytes.Equal(got, tc.want) || (got == nil) != (tc.want == nil) {
			t.Errorf("PrefixEnd(%x) = %x, want %x", tc.in, got, tc.want)
		}
		if !bytes.Equal(in, tc.in) {
			t.Errorf("PrefixEnd(%x) modified its argument to %x", tc.in, in)
		}
	}
}

// TestPrefixEndProperty: for any p with a PrefixEnd e, every extension of p
// sorts before e and e itself does not start with p; e is the smallest such
// key (decrementing its last byte yields a key <= some extension of p).
func TestPrefixEndProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		p := rapid.SliceOf(rapid.Byte()).Draw(t, "p")
		ext := rapid.SliceOf(rapid.Byte()).Draw(t, "ext")
		e := PrefixEnd(p)
		k := append(append([]byte(nil), p...), ext...)
		if e == nil {
			for _, c := range p {
				if c != 0xff {
					t.Fatalf("PrefixEnd(%x) = nil but prefix is not all 0xff", p)
				}
			}
			return
		}
		if bytes.Compare(k, e) >= 0 {
			t.Fatalf("extension %x of %x not below PrefixEnd %x", k, p, e)
		}
		if bytes.HasPrefix(e, p) {
			t.Fatalf("PrefixEnd(%x) = %x has the prefix", p, e)
		}
		if bytes.Compare(e, p) <= 0 {
			t.Fatalf("PrefixEnd(%x) = %x not above the prefix", p, e)
		}
	})
}

// TestDataKeyOrder: within a table DataKey preserves user-key order, and
// the keys of two different tables never interleave.
func TestDataKeyOrder(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		table := TableID(rapid.OneOf(rapid.Uint64Range(0, 4), rapid.Uint64()).Draw(t, "table"))
		other := TableID(rapid.OneOf(rapid.Uint64Range(0, 4), rapid.Uint64()).Draw(t, "other"))
		a := rapid.SliceOf(rapid.Byte()).Draw(t, "a")
		b := rapid.SliceOf(rapid.Byte()).Draw(t, "b")
		if got, want := bytes.Compare(DataKey(table, a), DataKey(table, b)), bytes.Compare(a, b); got != want {
			t.Fatalf("table %d: order of %x, %x is %d, want %d", table, a, b, got, want)
		}
		if table != other {
			// Every key of the smaller table sorts before every key of the
			// larger one, whatever the user keys.
			lo, hi := table, other
			x, y := a, b
			if lo > hi {
				lo, hi = hi, lo
			}
			if bytes.Compare(DataKey(lo, x), DataKey(hi, y)) >= 0 {
				t.Fatalf("tables %d and %d interleave: %x >= %x", lo, hi, DataKey(lo, x), DataKey(hi, y))
			}
			if hi != math.MaxUint64 {
				if _, e := DataSpan(lo, nil, nil); bytes.Compare(e, DataKey(hi, y)) > 0 {
					t.Fatalf("span end of table %d above a key of table %d", lo, hi)
				}
			}
		}
	})
}

func FuzzDecodeDataKey(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{3})
	f.Add(DataKey(0, nil))
	f.Add(DataKey(1, []byte("hello")))
	f.Add(DataKey(math.MaxUint64, []byte{0xff, 0}))
	f.Add(RangeStateKey(1))
	f.Fuzz(func(t *testing.T, key []byte) {
		table, user, err := DecodeDataKey(key)
		if err != nil {
			if len(key) >= 9 && key[0] == prefixData {
				t.Fatalf("DecodeDataKey(%x) rejected a well-formed key: %v", key, err)
			}
			return
		}
		if got := DataKey(table, user); !bytes.Equal(got, key) {
			t.Fatalf("DataKey(DecodeDataKey(%x)) = %x", key, got)
		}
		// Encoding then decoding arbitrary input round-trips too.
		t2, u2, err := DecodeDataKey(DataKey(TableID(len(key)), key))
		if err != nil || t2 != TableID(len(key)) || !bytes.Equal(u2, key) {
			t.Fatalf("round trip of user key %x: %d, %x, %v", key, t2, u2, err)
		}
	})
}

func FuzzRaftLogIndex(f *testing.F) {
	f.Add([]byte{})
	f.Add(RaftLogKey(1, 0))
	f.Add(RaftLogKey(math.MaxUint64, math.MaxUint64))
	f.Add(HardStateKey(1))
	f.Add(DataKey(1, []byte("l\x00\x00\x00\x00\x00\x00\x00\x01")))
	f.Fuzz(func(t *testing.T, key []byte) {
		idx, err := RaftLogIndex(key)
		if err != nil {
			if len(key) == 18 && key[0] == prefixRange && key[9] == suffixLog {
				t.Fatalf("RaftLogIndex(%x) rejected a well-formed key: %v", key, err)
			}
			return
		}
		id := RangeID(binary.BigEndian.Uint64(key[1:9]))
		if got := RaftLogKey(id, idx); !bytes.Equal(got, key) {
			t.Fatalf("RaftLogIndex(%x) = %d, but RaftLogKey(%d, %d) = %x", key, idx, id, idx, got)
		}
		// RangeLocalSpan(MaxUint64) wraps around (see TestRangeLocalSpan).
		if s, e := RangeLocalSpan(id); id != math.MaxUint64 && (bytes.Compare(key, s) < 0 || bytes.Compare(key, e) >= 0) {
			t.Fatalf("log key %x outside its range's span [%x, %x)", key, s, e)
		}
	})
}

func TestExpiryIndex(t *testing.T) {
	// Entries order by table, then time, then key; the data family stays
	// below the index family.
	order := [][]byte{
		DataKey(math.MaxUint64-1, []byte{0xff}),
		ExpiryKey(1, 5, []byte("z")),
		ExpiryKey(1, 6, nil),
		ExpiryKey(1, 6, []byte("a")),
		ExpiryKey(1, 256, []byte("a")),
		ExpiryKey(2, 1, []byte("a")),
	}
	for i := 1; i < len(order); i++ {
		if bytes.Compare(order[i-1], order[i]) >= 0 {
			t.Errorf("key %d (%x) does not sort before key %d (%x)", i-1, order[i-1], i, order[i])
		}
	}
	s, e := ExpirySpan(1, 6)
	for _, tc := range []struct {
		key []byte
		in  bool
	}{
		{ExpiryKey(1, 0, nil), true},
		{ExpiryKey(1, 6, []byte{0xff, 0xff}), true},
		{ExpiryKey(1, 7, nil), false},
		{ExpiryKey(0, 1, nil), false},
		{ExpiryKey(2, 1, nil), false},
	} {
		if in := bytes.Compare(tc.key, s) >= 0 && bytes.Compare(tc.key, e) < 0; in != tc.in {
			t.Errorf("ExpirySpan(1, 6) contains %x = %v, want %v", tc.key, in, tc.in)
		}
	}
	s, e = ExpirySpan(1, -1)
	for _, k := range [][]byte{ExpiryKey(1, 0, nil), ExpiryKey(1, math.MaxInt64, []byte{0xff})} {
		if bytes.Compare(k, s) < 0 || bytes.Compare(k, e) >= 0 {
			t.Errorf("ExpirySpan(1, all) misses %x", k)
		}
	}
	if k := ExpiryKey(2, 0, nil); bytes.Compare(k, e) < 0 {
		t.Errorf("ExpirySpan(1, all) covers table 2's %x", k)
	}
}

func FuzzDecodeExpiryKey(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{4})
	f.Add(ExpiryKey(1, 1_700_000_000_000, []byte("k")))
	f.Add(DataKey(1, []byte("k")))
	f.Fuzz(func(t *testing.T, key []byte) {
		table, exp, user, err := DecodeExpiryKey(key)
		if err != nil {
			if len(key) >= 17 && key[0] == prefixTTL {
				t.Fatalf("DecodeExpiryKey(%x) rejected a well-formed key: %v", key, err)
			}
			return
		}
		if got := ExpiryKey(table, exp, user); !bytes.Equal(got, key) {
			t.Fatalf("ExpiryKey(DecodeExpiryKey(%x)) = %x", key, got)
		}
	})
}
