package watch

import (
	"testing"

	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/keys/hashkey"
)

// TestHashedFilter: a prefix filter on a hash table matches the user key
// after the 8-byte hash, overlaps every span of its table, and never
// matches a key shorter than the hash; a single-key filter names the
// placement key.
func TestHashedFilter(t *testing.T) {
	f := Filter{Table: 7, Key: []byte("user/"), Prefix: true, Hashed: true}
	for _, tc := range []struct {
		table uint64
		key   []byte
		want  bool
	}{
		{7, hashkey.Encode([]byte("user/1")), true},
		{7, hashkey.Encode([]byte("user/")), true},
		{7, hashkey.Encode([]byte("other")), false},
		{7, []byte("user/1"), false}, // shorter than the hash: not a placement key
		{7, []byte("abc"), false},
		{8, hashkey.Encode([]byte("user/1")), false},
	} {
		if got := f.Match(keys.TableID(tc.table), tc.key); got != tc.want {
			t.Errorf("Match(%d, %x) = %v, want %v", tc.table, tc.key, got, tc.want)
		}
	}
	if !f.overlaps(7, hashkey.Point(1<<62), hashkey.Point(1<<63)) || f.overlaps(8, nil, nil) {
		t.Error("a hashed prefix filter must overlap every span of its table, and only those")
	}
	all := Filter{Table: 7, Prefix: true, Hashed: true}
	if !all.Match(7, hashkey.Encode([]byte("x"))) {
		t.Error("the empty prefix must match every key of the table")
	}
	one := Filter{Table: 7, Key: hashkey.Encode([]byte("user/1"))}
	if !one.Match(7, hashkey.Encode([]byte("user/1"))) || one.Match(7, hashkey.Encode([]byte("user/2"))) {
		t.Error("a single-key filter on a placement key")
	}
}
