// Goal: check the stored value format (format byte, big-endian version,
// value) and that Open gives a working, reopenable Pebble; measure the
// storage path (batch commit with and without fsync, point reads).
// Method: table tests and a fuzz target for the value codec; a temp-dir
// Pebble for Open; benchmarks over a real Pebble in b.TempDir().
package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cairn-db/cairn/internal/keys"
)

func TestValueRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		version uint64
		value   []byte
	}{
		{0, nil},
		{1, []byte{}},
		{0x0102030405060708, []byte("hello")},
		{math.MaxUint64, bytes.Repeat([]byte{0xff}, 300)},
		{42, []byte{valueFormat, 0, 0}},
	} {
		enc := EncodeValue(tc.version, tc.value)
		if len(enc) != 9+len(tc.value) || enc[0] != valueFormat {
			t.Errorf("EncodeValue(%d, %q) = %x: bad header or length", tc.version, tc.value, enc)
		}
		v, val, err := DecodeValue(enc)
		if err != nil || v != tc.version || !bytes.Equal(val, tc.value) {
			t.Errorf("DecodeValue(EncodeValue(%d, %q)) = %d, %q, %v", tc.version, tc.value, v, val, err)
		}
	}
	// The version is big-endian, so byte order of encoded values with
	// equal payloads follows version order (useful for debugging dumps).
	if got := EncodeValue(0x0102, nil); !bytes.Equal(got, []byte{1, 0, 0, 0, 0, 0, 0, 1, 2}) {
		t.Errorf("EncodeValue(0x0102, nil) = %x", got)
	}
}

func TestValueTTLRoundTrip(t *testing.T) {
	for _, exp := range []int64{0, 1, 1_700_000_000_123, math.MaxInt64} {
		enc := EncodeValueTTL(9, exp, []byte("v"))
		wantLen, wantFmt := 1+8+1, valueFormat
		if exp != 0 {
			wantLen, wantFmt = 1+8+8+1, valueFormatTTL
		}
		if len(enc) != wantLen || enc[0] != wantFmt {
			t.Errorf("EncodeValueTTL(expireAt=%d) = %x: bad header or length", exp, enc)
		}
		v, gotExp, val, err := DecodeValueTTL(enc)
		if err != nil || v != 9 || gotExp != exp || string(val) != "v" {
			t.Errorf("DecodeValueTTL(EncodeValueTTL(9, %d, v)) = %d, %d, %q, %v", exp, v, gotExp, val, err)
		}
		if v, val, err := DecodeValue(enc); err != nil || v != 9 || string(val) != "v" {
			t.Errorf("DecodeValue of a TTL value = %d, %q, %v", v, val, err)
		}
	}
}

func TestDecodeValueCorrupt(t *testing.T) {
	for _, b := range [][]byte{
		nil, {}, {valueFormat}, {valueFormat, 0, 0, 0, 0, 0, 0, 0}, // short
		{0, 0, 0, 0, 0, 0, 0, 0, 1}, {0xff, 0, 0, 0, 0, 0, 0, 0, 0}, // format
		{valueFormatTTL, 0, 0, 0, 0, 0, 0, 0, 1, 'x'},                       // TTL format, short
		{valueFormatTTL, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0},    // TTL format, zero expiry
		{valueFormatTTL, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 0, 0, 0, 0, 0}, // TTL format, negative expiry
	} {
		if _, _, err := DecodeValue(b); !errors.Is(err, ErrCorruptValue) {
			t.Errorf("DecodeValue(%x): err = %v, want ErrCorruptValue", b, err)
		}
	}
}

func FuzzDecodeValue(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{valueFormat})
	f.Add(EncodeValue(0, nil))
	f.Add(EncodeValue(7, []byte("seven")))
	f.Add(EncodeValue(math.MaxUint64, []byte{0xff}))
	f.Add(EncodeValueTTL(7, 1_700_000_000_000, []byte("ttl")))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, exp, val, err := DecodeValueTTL(b)
		if err != nil {
			if len(b) >= 9 && b[0] == valueFormat {
				t.Fatalf("DecodeValueTTL(%x) rejected a well-formed value: %v", b, err)
			}
			return
		}
		if got := EncodeValueTTL(v, exp, val); !bytes.Equal(got, b) {
			t.Fatalf("EncodeValueTTL(DecodeValueTTL(%x)) = %x", b, got)
		}
		if v1, val1, err := DecodeValue(b); err != nil || v1 != v || !bytes.Equal(val1, val) {
			t.Fatalf("DecodeValue(%x) disagrees with DecodeValueTTL: %d %x %v", b, v1, val1, err)
		}
		// Arbitrary payloads round-trip.
		v2, val2, err := DecodeValue(EncodeValue(uint64(len(b)), b))
		if err != nil || v2 != uint64(len(b)) || !bytes.Equal(val2, b) {
			t.Fatalf("round trip of payload %x: %d, %x, %v", b, v2, val2, err)
		}
	})
}

func TestOpenReopen(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{CacheBytes: 1 << 20, MemTableBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	k := keys.DataKey(1, []byte("k"))
	if err := db.Set(k, EncodeValue(5, []byte("v")), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	// Enough data to force memtable flushes with a 1 MiB memtable.
	b := db.NewBatch()
	for i := 0; i < 3000; i++ {
		if err := b.Set(keys.DataKey(2, fmt.Appendf(nil, "%06d", i)), EncodeValue(uint64(i), bytes.Repeat([]byte{'x'}, 1000)), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db, err = Open(dir, Options{}) // defaults
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	raw, closer, err := db.Get(k)
	if err != nil {
		t.Fatalf("after reopen: %v", err)
	}
	v, val, err := DecodeValue(raw)
	closer.Close()
	if err != nil || v != 5 || string(val) != "v" {
		t.Fatalf("after reopen: %d, %q, %v", v, val, err)
	}
	raw, closer, err = db.Get(keys.DataKey(2, []byte("002999")))
	if err != nil {
		t.Fatalf("after reopen: %v", err)
	}
	v, _, err = DecodeValue(raw)
	closer.Close()
	if err != nil || v != 2999 {
		t.Fatalf("after reopen: version %d, %v", v, err)
	}
}

func TestOpenLockedDir(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// A second Open of a directory in use must fail (Pebble's LOCK file),
	// and the error names the directory.
	if db2, err := Open(dir, Options{}); err == nil {
		db2.Close()
		t.Fatal("second Open of a locked dir succeeded")
	} else if !bytes.Contains([]byte(err.Error()), []byte(dir)) {
		t.Errorf("error %q does not name the dir", err)
	}
	db.Close()
}

func TestEnsureDefaults(t *testing.T) {
	var o Options
	o.EnsureDefaults()
	if o.CacheBytes <= 0 || o.MemTableBytes == 0 {
		t.Fatalf("EnsureDefaults left zero fields: %+v", o)
	}
	o = Options{CacheBytes: 7, MemTableBytes: 9}
	o.EnsureDefaults()
	if o.CacheBytes != 7 || o.MemTableBytes != 9 {
		t.Fatalf("EnsureDefaults overwrote set fields: %+v", o)
	}
}

func openBench(b *testing.B) *pebble.DB {
	b.Helper()
	db, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

// BenchmarkBatchCommit measures the write path's unit: one Pebble batch of
// batchSize data puts, committed with or without fsync. sync=true is the
// cost of the Raft log append per Ready; per-op cost is ns/op / batchSize.
//
//	go test -run='^$' -bench=BatchCommit -benchmem ./internal/storage/
func BenchmarkBatchCommit(b *testing.B) {
	for _, sync := range []bool{true, false} {
		for _, batchSize := range []int{1, 64} {
			for _, valueBytes := range []int{100, 1024} {
				name := fmt.Sprintf("sync=%v/batchSize=%d/valueBytes=%d", sync, batchSize, valueBytes)
				b.Run(name, func(b *testing.B) {
					db := openBench(b)
					opt := pebble.NoSync
					if sync {
						opt = pebble.Sync
					}
					value := bytes.Repeat([]byte{'v'}, valueBytes)
					b.ReportAllocs()
					b.SetBytes(int64(batchSize * valueBytes))
					var n uint64
					for b.Loop() {
						batch := db.NewBatch()
						for j := 0; j < batchSize; j++ {
							n++
							k := keys.DataKey(1, fmt.Appendf(nil, "key-%012d", n))
							if err := batch.Set(k, EncodeValue(n, value), nil); err != nil {
								b.Fatal(err)
							}
						}
						if err := batch.Commit(opt); err != nil {
							b.Fatal(err)
						}
						batch.Close()
					}
				})
			}
		}
	}
}

// BenchmarkGet measures point reads of random existing keys from a
// preloaded Pebble with default options, compacted into sstables (so bloom
// filters and the warm block cache are on the path), including value
// decoding.
//
//	go test -run='^$' -bench=Get -benchmem ./internal/storage/
func BenchmarkGet(b *testing.B) {
	const nKeys = 100_000
	for _, valueBytes := range []int{100, 1024} {
		b.Run(fmt.Sprintf("keys=%d/valueBytes=%d", nKeys, valueBytes), func(b *testing.B) {
			db := openBench(b)
			value := bytes.Repeat([]byte{'v'}, valueBytes)
			batch := db.NewBatch()
			for i := 0; i < nKeys; i++ {
				if err := batch.Set(keys.DataKey(1, fmt.Appendf(nil, "key-%012d", i)), EncodeValue(uint64(i+1), value), nil); err != nil {
					b.Fatal(err)
				}
				if batch.Len() > 4<<20 {
					if err := batch.Commit(pebble.NoSync); err != nil {
						b.Fatal(err)
					}
					batch = db.NewBatch()
				}
			}
			if err := batch.Commit(pebble.NoSync); err != nil {
				b.Fatal(err)
			}
			// Compact fully so no background compaction runs while timing,
			// then warm the block cache with one pass over the keys read.
			start, end := keys.DataSpan(1, nil, nil)
			if err := db.Compact(context.Background(), start, end, true); err != nil {
				b.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(1, 2))
			ks := make([][]byte, 4096)
			for i := range ks {
				ks[i] = keys.DataKey(1, fmt.Appendf(nil, "key-%012d", rng.IntN(nKeys)))
				if _, closer, err := db.Get(ks[i]); err != nil {
					b.Fatal(err)
				} else {
					closer.Close()
				}
			}
			m0 := db.Metrics().BlockCache
			b.ReportAllocs()
			b.SetBytes(int64(valueBytes))
			i := 0
			for b.Loop() {
				raw, closer, err := db.Get(ks[i%len(ks)])
				if err != nil {
					b.Fatal(err)
				}
				if _, v, err := DecodeValue(raw); err != nil || len(v) != valueBytes {
					b.Fatalf("bad value: %d bytes, %v", len(v), err)
				}
				closer.Close()
				i++
			}
			// The block cache hit ratio while timing: Pebble reserves each
			// memtable (and one recycled memtable) from the block cache, so
			// a cache not much larger than two memtables holds no blocks.
			m := db.Metrics().BlockCache
			if lookups := (m.Hits - m0.Hits) + (m.Misses - m0.Misses); lookups > 0 {
				b.ReportMetric(float64(m.Hits-m0.Hits)/float64(lookups), "cache-hits/lookup")
			}
		})
	}
}
