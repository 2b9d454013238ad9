package keys

import (
	"bytes"
	"testing"

	"pgregory.net/rapid"
)

// TestHistoryKeyOrder: history keys sort by (user key, version), a key's
// history lies inside the span of any user-key interval holding the key
// and outside every interval that does not, and prefix spans hold exactly
// the keys with the prefix. These are what snapshots, splits and watch
// resumption rely on.
func TestHistoryKeyOrder(t *testing.T) {
	key := rapid.SliceOfN(rapid.SampledFrom([]byte{0, 1, 2, 0xfe, 0xff, 'a'}), 0, 6)
	rapid.Check(t, func(t *rapid.T) {
		table := TableID(rapid.Uint64Range(0, 3).Draw(t, "table"))
		a, b := key.Draw(t, "a"), key.Draw(t, "b")
		va, vb := rapid.Uint64().Draw(t, "va"), rapid.Uint64().Draw(t, "vb")
		ha, hb := HistoryKey(table, a, va), HistoryKey(table, b, vb)
		want := bytes.Compare(a, b)
		if want == 0 {
			want = cmpUint(va, vb)
		}
		if got := bytes.Compare(ha, hb); got != want {
			t.Fatalf("order of (%x,%d) and (%x,%d): got %d want %d", a, va, b, vb, got, want)
		}
		// Spans of user-key intervals.
		lo, hi := key.Draw(t, "lo"), key.Draw(t, "hi")
		s, e := HistorySpan(table, lo, hi)
		in := bytes.Compare(ha, s) >= 0 && bytes.Compare(ha, e) < 0
		wantIn := bytes.Compare(a, lo) >= 0 && (len(hi) == 0 || bytes.Compare(a, hi) < 0)
		if in != wantIn {
			t.Fatalf("key %x in span [%x,%x): got %v want %v", a, lo, hi, in, wantIn)
		}
		// Prefix spans.
		p := key.Draw(t, "p")
		s, e = HistoryPrefixSpan(table, p)
		in = bytes.Compare(ha, s) >= 0 && bytes.Compare(ha, e) < 0
		if in != bytes.HasPrefix(a, p) {
			t.Fatalf("key %x in prefix span of %x: got %v", a, p, in)
		}
		// Other tables never fall inside.
		other := HistoryKey(table+1, a, va)
		if bytes.Compare(other, e) < 0 && bytes.Compare(other, s) >= 0 {
			t.Fatalf("a key of table %d inside table %d's span", table+1, table)
		}
		// Round trip.
		gt, gk, gv, err := DecodeHistoryKey(ha)
		if err != nil || gt != table || !bytes.Equal(gk, a) || gv != va {
			t.Fatalf("decode %x: %d %x %d %v", ha, gt, gk, gv, err)
		}
	})
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func FuzzDecodeHistoryKey(f *testing.F) {
	f.Add(HistoryKey(3, []byte("a\x00b"), 42))
	f.Add([]byte{prefixHistory, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, k []byte) {
		table, userKey, v, err := DecodeHistoryKey(k)
		if err != nil {
			return
		}
		if again := HistoryKey(table, userKey, v); !bytes.Equal(again, k) {
			t.Fatalf("decoded %x re-encodes to %x", k, again)
		}
	})
}
