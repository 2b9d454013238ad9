// Package hashkey maps the user keys of a hash-partitioned table to the
// placement keys its ranges and storage see, and back.
//
// A hash table spreads sequential keys ("key-000001", "key-000002", ...)
// over its ranges: the router stores and routes a user key k as its
// placement key
//
//	hash8(k) || k        hash8 = xxHash64(k, seed 0), 8 bytes big endian
//
// so the ranges of a hash table are intervals of the 64-bit hash space (a
// table created with N ranges starts as N equal intervals) and a split
// at an interval's midpoint halves it: consistent hashing built from
// ranges. Everything below the router (replicas, splits, snapshots, size
// accounting, history, intents, the TTL index) works on placement keys
// unchanged; only the router translates, and strips the prefix from every
// key it returns.
//
// The hash must never change for a table that exists: it decides where
// every stored key lives. xxHash64 is a published algorithm with fixed
// test vectors (https://xxhash.com), implemented by
// github.com/cespare/xxhash/v2, which Pebble already links; Go's maphash
// is seeded per process and must never be used here. TestHashVectors pins
// the values.
//
// Keeping the user key after the hash makes the mapping invertible
// without a lookup and keeps distinct keys distinct when hashes collide.
package hashkey

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/bits"

	"github.com/cespare/xxhash/v2"
)

// PrefixLen is the number of bytes a placement key adds to a user key.
const PrefixLen = 8

// ErrMalformed is returned for a placement key that does not decode.
var ErrMalformed = errors.New("hashkey: malformed placement key")

// Hash returns the position of userKey in the hash space.
func Hash(userKey []byte) uint64 { return xxhash.Sum64(userKey) }

// Encode returns the placement key of userKey (a new slice).
func Encode(userKey []byte) []byte {
	b := make([]byte, PrefixLen, PrefixLen+len(userKey))
	binary.BigEndian.PutUint64(b, Hash(userKey))
	return append(b, userKey...)
}

// Decode returns the user key of a placement key (aliasing p). It fails
// if p is shorter than the prefix or the prefix is not the user key's
// hash.
func Decode(p []byte) ([]byte, error) {
	if len(p) < PrefixLen {
		return nil, ErrMalformed
	}
	uk := p[PrefixLen:]
	if binary.BigEndian.Uint64(p) != Hash(uk) {
		return nil, ErrMalformed
	}
	return uk, nil
}

// Strip returns the user key of a placement key read from storage (it
// trusts the prefix). A key shorter than the prefix is returned as is.
func Strip(p []byte) []byte {
	if len(p) < PrefixLen {
		return p
	}
	return p[PrefixLen:]
}

// Point returns the 8-byte key that starts hash position h: the boundary
// keys of a hash table's ranges.
func Point(h uint64) []byte { return binary.BigEndian.AppendUint64(nil, h) }

// PositionOf returns the hash position a range boundary stands for: the
// first 8 bytes of k (zero-padded), or, for the unbounded end (empty k),
// ok = false.
func PositionOf(k []byte) (h uint64, ok bool) {
	if len(k) == 0 {
		return 0, false
	}
	var b [PrefixLen]byte
	copy(b[:], k)
	return binary.BigEndian.Uint64(b[:]), true
}

// MaxInitialRanges caps the number of ranges a hash table starts with.
const MaxInitialRanges = 1024

// InitialBounds returns the n-1 split points that cut the hash space into
// n equal intervals (n >= 1): interval i is [i*2^64/n, (i+1)*2^64/n).
func InitialBounds(n int) [][]byte {
	out := make([][]byte, 0, max(n-1, 0))
	for i := 1; i < n; i++ {
		q, _ := bits.Div64(uint64(i), 0, uint64(n)) // i * 2^64 / n; i < n
		out = append(out, Point(q))
	}
	return out
}

// IsInitialBound reports whether k is one of InitialBounds(n): the end
// of a hash table's initial interval other than the last. Merges never
// join ranges across such a bound, so the initial ranges are a floor.
func IsInitialBound(k []byte, n int) bool {
	if n <= 1 || len(k) != PrefixLen {
		return false
	}
	h, _ := PositionOf(k)
	// Bound i is floor(i*2^64/n), so h*n/2^64 lies in (i-1, i]: i is the
	// high word of h*n or one more.
	hi, _ := bits.Mul64(h, uint64(n))
	for _, i := range [2]uint64{hi, hi + 1} {
		if i == 0 || i >= uint64(n) {
			continue
		}
		if q, _ := bits.Div64(i, 0, uint64(n)); q == h {
			return true
		}
	}
	return false
}

// Table is what KeepsBound needs of a table (cairnpb.Table has both).
type Table interface {
	GetPartitioning() string
	GetInitialRanges() uint32
}

// KeepsBound reports whether end, a range's end key in table t, is one
// of the bounds t was created with as a hash table. Automatic merges
// (the splitter's and the coordinator's colocation) never cross one, so
// an idle hash table keeps its initial ranges.
func KeepsBound(t Table, end []byte) bool {
	return t.GetPartitioning() == "hash" && IsInitialBound(end, int(t.GetInitialRanges()))
}

// Midpoint returns the 8-byte key halving the hash interval [start, end)
// of a range (empty end: the end of the space), or nil when the interval
// is too narrow to halve. Only the first 8 bytes of the bounds count; the
// result lies strictly inside (start, end).
func Midpoint(start, end []byte) []byte {
	lo, _ := PositionOf(start)
	hi, bounded := PositionOf(end)
	var mid uint64
	if bounded {
		if hi <= lo {
			return nil
		}
		mid = lo + (hi-lo)/2
	} else {
		mid = lo + (math.MaxUint64-lo)/2 + 1
	}
	p := Point(mid)
	if bytes.Compare(p, start) <= 0 || (bounded && bytes.Compare(p, end) >= 0) {
		return nil
	}
	return p
}

// FormatBound renders a range boundary of a hash table: the hash position
// in hex, with the user key after it when there is one ("" for the
// unbounded start or end).
func FormatBound(k []byte) string {
	if len(k) == 0 {
		return ""
	}
	if len(k) <= PrefixLen {
		return "0x" + hex.EncodeToString(k)
	}
	return fmt.Sprintf("0x%s/%q", hex.EncodeToString(k[:PrefixLen]), k[PrefixLen:])
}

// ParseSplitKey reads the key of a manual split of a hash table: "0x"
// followed by 16 hex digits, a hash position.
func ParseSplitKey(s string) ([]byte, error) {
	if len(s) != 2+2*PrefixLen || (s[:2] != "0x" && s[:2] != "0X") {
		return nil, fmt.Errorf("hashkey: split key of a hash table must be 0x and 16 hex digits, got %q", s)
	}
	b, err := hex.DecodeString(s[2:])
	if err != nil {
		return nil, fmt.Errorf("hashkey: split key %q: %v", s, err)
	}
	return b, nil
}
