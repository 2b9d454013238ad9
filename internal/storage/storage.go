// Package storage opens the node's Pebble instance and encodes stored
// values. One Pebble holds the Raft logs, hard states, applied states and
// user data of every range on the node (see package keys for the layout),
// so that an apply batch can update data and applied index atomically and
// one fsync commits the log appends of many ranges (group commit).
//
// Why Pebble (an LSM) and not a B-tree such as bbolt: a replicated store's
// write path is sequential log appends plus random data writes; an LSM
// turns both into sequential I/O and compacts in the background, so write
// throughput stays flat as data grows, and deleting a Raft log prefix or a
// dropped table is one range tombstone instead of page-by-page frees. The
// price is read amplification (mitigated by bloom filters and the block
// cache) and background compaction CPU.
package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Options configures Open.
type Options struct {
	// CacheBytes is the block cache size.
	CacheBytes int64
	// MemTableBytes is the size of one memtable.
	MemTableBytes uint64
	// FS is the filesystem (default the OS's); the simulator passes
	// Pebble's in-memory, crashable one.
	FS vfs.FS
	// DisableAutomaticCompactions keeps Pebble's background work out of
	// deterministic runs; the simulator compacts at seeded steps.
	DisableAutomaticCompactions bool
}

// EnsureDefaults fills zero fields.
func (o *Options) EnsureDefaults() {
	// NB: Pebble reserves every memtable (the live one and a recycled one)
	// out of the block cache, so the cache must be well above twice the
	// memtable size or no data blocks stay cached at all.
	if o.CacheBytes == 0 {
		o.CacheBytes = 256 << 20
	}
	if o.MemTableBytes == 0 {
		o.MemTableBytes = 32 << 20
	}
}

// Open opens (creating if needed) the Pebble store in dir.
func Open(dir string, opts Options) (*pebble.DB, error) {
	opts.EnsureDefaults()
	cache := pebble.NewCache(opts.CacheBytes)
	defer cache.Unref()
	po := &pebble.Options{
		Cache:        cache,
		MemTableSize: opts.MemTableBytes,
		Logger:       quietLogger{},
		FS:           opts.FS,

		DisableAutomaticCompactions: opts.DisableAutomaticCompactions,
		EventListener:               stallLogger(),
	}
	po.Levels[0].FilterPolicy = bloom.FilterPolicy(10)
	po.EnsureDefaults()
	for i := range po.Levels {
		po.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	db, err := pebble.Open(dir, po)
	if err != nil {
		return nil, fmt.Errorf("storage: open %s: %w", dir, err)
	}
	return db, nil
}

// stallLogger logs Pebble's write stalls (too many memtables waiting to
// be flushed, or too many files in L0): every write of the node, Raft log
// appends included, waits while one lasts, so a stall shows as seconds of
// latency on every range at once.
func stallLogger() *pebble.EventListener {
	var began atomic.Int64
	return &pebble.EventListener{
		WriteStallBegin: func(info pebble.WriteStallBeginInfo) {
			began.Store(time.Now().UnixNano())
			slog.Warn("pebble: write stall began", "reason", info.Reason)
		},
		WriteStallEnd: func() {
			slog.Warn("pebble: write stall ended", "took", time.Duration(time.Now().UnixNano()-began.Load()).Round(time.Millisecond))
		},
	}
}

type quietLogger struct{}

func (quietLogger) Infof(string, ...interface{}) {}
func (quietLogger) Errorf(format string, args ...interface{}) {
	slog.Error("pebble", "msg", fmt.Sprintf(format, args...))
}
func (quietLogger) Fatalf(format string, args ...interface{}) {
	panic(fmt.Sprintf("pebble: "+format, args...))
}

// ErrCorruptValue marks a stored value that does not decode: corruption.
var ErrCorruptValue = errors.New("storage: corrupt value")

// Value formats: 1 is format, version, value; 2 adds the expiry time of a
// key with a TTL (unix milliseconds, decided by the Raft command that
// wrote it) between version and value. Keys without a TTL keep format 1,
// so TTL costs nothing to those who do not use it.
const (
	valueFormat    byte = 1
	valueFormatTTL byte = 2
)

// EncodeValue returns the stored form of a user value with its version:
// format byte, version (8 bytes, big-endian), value.
func EncodeValue(version uint64, value []byte) []byte {
	return EncodeValueTTL(version, 0, value)
}

// EncodeValueTTL is EncodeValue for a value that expires at expireAt (unix
// milliseconds); 0 means never.
func EncodeValueTTL(version uint64, expireAt int64, value []byte) []byte {
	if expireAt == 0 {
		b := make([]byte, 0, 1+8+len(value))
		b = append(b, valueFormat)
		b = binary.BigEndian.AppendUint64(b, version)
		return append(b, value...)
	}
	b := make([]byte, 0, 1+8+8+len(value))
	b = append(b, valueFormatTTL)
	b = binary.BigEndian.AppendUint64(b, version)
	b = binary.BigEndian.AppendUint64(b, uint64(expireAt))
	return append(b, value...)
}

// DecodeValue splits a stored value, ignoring its expiry. The returned
// value aliases b.
func DecodeValue(b []byte) (version uint64, value []byte, err error) {
	version, _, value, err = DecodeValueTTL(b)
	return version, value, err
}

// DecodeValueTTL splits a stored value; expireAt is 0 for a value without
// a TTL. The returned value aliases b.
func DecodeValueTTL(b []byte) (version uint64, expireAt int64, value []byte, err error) {
	switch {
	case len(b) >= 9 && b[0] == valueFormat:
		return binary.BigEndian.Uint64(b[1:9]), 0, b[9:], nil
	case len(b) >= 17 && b[0] == valueFormatTTL:
		expireAt = int64(binary.BigEndian.Uint64(b[9:17]))
		if expireAt <= 0 {
			return 0, 0, nil, ErrCorruptValue
		}
		return binary.BigEndian.Uint64(b[1:9]), expireAt, b[17:], nil
	}
	return 0, 0, nil, ErrCorruptValue
}
