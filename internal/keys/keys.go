// Package keys is the only package that knows how cairn lays out its keys
// in the node's single Pebble instance. Everything a node stores lives
// there, under distinct one-byte prefixes:
//
//	0x01 rangeID(8) 'h'            Raft hard state of a range
//	0x01 rangeID(8) 'l' index(8)   Raft log entry of a range
//	0x01 rangeID(8) 's'            applied RangeState of a range
//	0x01 rangeID(8) 't'            truncated state (index, term) of a range
//	0x02 "ident"                   this node's identity
//	0x02 "tomb" rangeID(8)         highest Raft term a destroyed replica of
//	                               the range reached on this node
//	0x03 tableID(8) userKey        user data (table 0 is the meta table)
//	0x04 tableID(8) expireAt(8) userKey
//	                               expiry index: keys with a TTL by time
//	0x05 tableID(8) userKey        transaction intent on userKey
//	0x06 tableID(8) txnID(16) primaryKey
//	                               transaction record (on the primary's range)
//	0x07 tableID(8) esc(userKey) version(8)
//	                               key history (see HistoryKey)
//
// Integers are big-endian so that byte order is numeric order: a range's
// log is one contiguous, ordered span, and so is a table's data. The meta
// table (tableID 0) holds the cluster's own records (nodes, tables,
// counters) in the same format as user data, so that the meta range is an
// ordinary range to Raft, snapshots and truncation.
package keys

import (
	"encoding/binary"
	"errors"
)

// RangeID names a range (a Raft group).
type RangeID uint64

// TableID names a table. MetaTableID is the cluster's own table.
type TableID uint64

// MetaTableID is the table the meta range holds.
const MetaTableID TableID = 0

const (
	prefixRange byte = 0x01
	prefixLocal byte = 0x02
	prefixData  byte = 0x03
	prefixTTL   byte = 0x04
	prefixLock  byte = 0x05
	prefixTxn   byte = 0x06
)

// TxnIDLen is the length of a transaction ID.
const TxnIDLen = 16

const (
	suffixHardState  byte = 'h'
	suffixLog        byte = 'l'
	suffixRangeState byte = 's'
	suffixTruncated  byte = 't'
)

// ErrMalformed is returned when a key does not decode.
var ErrMalformed = errors.New("keys: malformed key")

func rangeKey(id RangeID, suffix byte, extra int) []byte {
	b := make([]byte, 0, 1+8+1+extra)
	b = append(b, prefixRange)
	b = binary.BigEndian.AppendUint64(b, uint64(id))
	return append(b, suffix)
}

// HardStateKey is where a range's raftpb.HardState lives.
func HardStateKey(id RangeID) []byte { return rangeKey(id, suffixHardState, 0) }

// RangeStateKey is where a range's applied state lives.
func RangeStateKey(id RangeID) []byte { return rangeKey(id, suffixRangeState, 0) }

// TruncatedStateKey is where a range's truncated log position lives.
func TruncatedStateKey(id RangeID) []byte { return rangeKey(id, suffixTruncated, 0) }

// RaftLogKey is the key of entry index of a range's log.
func RaftLogKey(id RangeID, index uint64) []byte {
	return binary.BigEndian.AppendUint64(rangeKey(id, suffixLog, 8), index)
}

// RaftLogIndex decodes the index from a RaftLogKey.
func RaftLogIndex(key []byte) (uint64, error) {
	if len(key) != 1+8+1+8 || key[0] != prefixRange || key[9] != suffixLog {
		return 0, ErrMalformed
	}
	return binary.BigEndian.Uint64(key[10:]), nil
}

// RangeLocalSpan is [start, end) covering every Raft key of a range.
func RangeLocalSpan(id RangeID) (start, end []byte) {
	start = append([]byte{prefixRange}, binary.BigEndian.AppendUint64(nil, uint64(id))...)
	end = append([]byte{prefixRange}, binary.BigEndian.AppendUint64(nil, uint64(id)+1)...)
	return start, end
}

// RangeStateSpan is [start, end) over all ranges' keys; iterate it and
// keep suffix 's' keys (RangeStateID) to find the replicas a node holds.
func RangeStateSpan() (start, end []byte) { return []byte{prefixRange}, []byte{prefixRange + 1} }

// RangeStateID returns the range of a RangeStateKey, and false for any
// other key.
func RangeStateID(key []byte) (RangeID, bool) {
	if len(key) != 1+8+1 || key[0] != prefixRange || key[9] != suffixRangeState {
		return 0, false
	}
	return RangeID(binary.BigEndian.Uint64(key[1:9])), true
}

// IdentKey is where the node's identity lives.
func IdentKey() []byte { return []byte{prefixLocal, 'i', 'd', 'e', 'n', 't'} }

// TombstoneKey is where a node records the highest Raft term its
// destroyed replicas of range id reached (replica.DestroyData). It lives
// outside the range's local span, so destroying the replica keeps it.
func TombstoneKey(id RangeID) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefixLocal, 't', 'o', 'm', 'b'}, uint64(id))
}

// DataKey is the storage key of userKey in table.
func DataKey(table TableID, userKey []byte) []byte {
	b := make([]byte, 0, 1+8+len(userKey))
	b = append(b, prefixData)
	b = binary.BigEndian.AppendUint64(b, uint64(table))
	return append(b, userKey...)
}

// DecodeDataKey splits a DataKey. The returned userKey aliases key.
func DecodeDataKey(key []byte) (TableID, []byte, error) {
	if len(key) < 1+8 || key[0] != prefixData {
		return 0, nil, ErrMalformed
	}
	return TableID(binary.BigEndian.Uint64(key[1:9])), key[9:], nil
}

// DataSpan is [start, end) of the storage keys of the user keys [userStart,
// userEnd) of table; an empty userEnd means the end of the table.
func DataSpan(table TableID, userStart, userEnd []byte) (start, end []byte) {
	start = DataKey(table, userStart)
	if len(userEnd) == 0 {
		end = make([]byte, 0, 9)
		end = append(end, prefixData)
		end = binary.BigEndian.AppendUint64(end, uint64(table)+1)
		return start, end
	}
	return start, DataKey(table, userEnd)
}

// PrefixEnd returns the smallest key greater than every key with prefix p,
// or nil when there is none (p is empty or all 0xff).
func PrefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}

// ExpiryKey is the expiry index entry of userKey in table, which expires
// at expireAt (unix milliseconds). The index is per table, not per range,
// so that a range split moves none of it; a range's expirer skips the
// entries of keys outside its span.
func ExpiryKey(table TableID, expireAt int64, userKey []byte) []byte {
	b := make([]byte, 0, 1+8+8+len(userKey))
	b = append(b, prefixTTL)
	b = binary.BigEndian.AppendUint64(b, uint64(table))
	b = binary.BigEndian.AppendUint64(b, uint64(expireAt))
	return append(b, userKey...)
}

// DecodeExpiryKey splits an ExpiryKey. The returned userKey aliases key.
func DecodeExpiryKey(key []byte) (table TableID, expireAt int64, userKey []byte, err error) {
	if len(key) < 1+8+8 || key[0] != prefixTTL {
		return 0, 0, nil, ErrMalformed
	}
	return TableID(binary.BigEndian.Uint64(key[1:9])), int64(binary.BigEndian.Uint64(key[9:17])), key[17:], nil
}

// ExpirySpan is [start, end) of table's expiry index entries that expire
// at or before upTo; upTo < 0 means all of them.
func ExpirySpan(table TableID, upTo int64) (start, end []byte) {
	start = append([]byte{prefixTTL}, binary.BigEndian.AppendUint64(nil, uint64(table))...)
	if upTo < 0 {
		return start, append([]byte{prefixTTL}, binary.BigEndian.AppendUint64(nil, uint64(table)+1)...)
	}
	return start, binary.BigEndian.AppendUint64(append([]byte(nil), start...), uint64(upTo)+1)
}

// IntentKey is where a transaction's intent on userKey of table lives.
// Intents are per table and ordered by user key like data, so a range's
// intents are one span ([IntentSpan]) that follows splits without moving.
func IntentKey(table TableID, userKey []byte) []byte {
	b := make([]byte, 0, 1+8+len(userKey))
	b = append(b, prefixLock)
	b = binary.BigEndian.AppendUint64(b, uint64(table))
	return append(b, userKey...)
}

// DecodeIntentKey splits an IntentKey. The returned userKey aliases key.
func DecodeIntentKey(key []byte) (TableID, []byte, error) {
	if len(key) < 1+8 || key[0] != prefixLock {
		return 0, nil, ErrMalformed
	}
	return TableID(binary.BigEndian.Uint64(key[1:9])), key[9:], nil
}

// IntentSpan is [start, end) of the intents on the user keys [userStart,
// userEnd) of table; an empty userEnd means the end of the table.
func IntentSpan(table TableID, userStart, userEnd []byte) (start, end []byte) {
	start, end = DataSpan(table, userStart, userEnd)
	start[0], end[0] = prefixLock, prefixLock
	return start, end
}

// TxnRecordKey is where the record of transaction id lives: with the
// table and key of its primary, whose range owns it.
func TxnRecordKey(table TableID, id []byte, primaryKey []byte) []byte {
	b := make([]byte, 0, 1+8+len(id)+len(primaryKey))
	b = append(b, prefixTxn)
	b = binary.BigEndian.AppendUint64(b, uint64(table))
	b = append(b, id...)
	return append(b, primaryKey...)
}

// DecodeTxnRecordKey splits a TxnRecordKey. The returned slices alias key.
func DecodeTxnRecordKey(key []byte) (table TableID, id, primaryKey []byte, err error) {
	if len(key) < 1+8+TxnIDLen || key[0] != prefixTxn {
		return 0, nil, nil, ErrMalformed
	}
	return TableID(binary.BigEndian.Uint64(key[1:9])), key[9 : 9+TxnIDLen], key[9+TxnIDLen:], nil
}

// TxnRecordSpan is [start, end) of every transaction record of table (of
// all its ranges: a range picks its own by primary key).
func TxnRecordSpan(table TableID) (start, end []byte) {
	start = append([]byte{prefixTxn}, binary.BigEndian.AppendUint64(nil, uint64(table))...)
	return start, append([]byte{prefixTxn}, binary.BigEndian.AppendUint64(nil, uint64(table)+1)...)
}

// Key history: every change of a user key, kept per key (newest N):
//
//	0x07 tableID(8) esc(userKey) version(8)
//
// esc escapes 0x00 as 0x00 0xff and ends the key with 0x00 0x01, so that
// esc preserves order and no escaped key is a prefix of another's: the
// history of the user keys [a, b) is exactly the storage span
// [0x07 t esc(a), 0x07 t esc(b)), which lets snapshots and range
// destruction treat it as one more span, and the history of one key is
// one prefix.
const prefixHistory byte = 0x07

func appendEscaped(b, userKey []byte) []byte {
	for _, c := range userKey {
		if c == 0 {
			b = append(b, 0, 0xff)
			continue
		}
		b = append(b, c)
	}
	return b
}

func historyTable(table TableID, extra int) []byte {
	b := make([]byte, 0, 1+8+extra)
	b = append(b, prefixHistory)
	return binary.BigEndian.AppendUint64(b, uint64(table))
}

// HistoryKeyPrefix is the prefix of every history entry of userKey.
func HistoryKeyPrefix(table TableID, userKey []byte) []byte {
	b := appendEscaped(historyTable(table, len(userKey)+2+8), userKey)
	return append(b, 0, 1)
}

// HistoryKey is the history entry of userKey's change at version.
func HistoryKey(table TableID, userKey []byte, version uint64) []byte {
	return binary.BigEndian.AppendUint64(HistoryKeyPrefix(table, userKey), version)
}

// DecodeHistoryKey splits a HistoryKey; userKey is a fresh copy.
func DecodeHistoryKey(key []byte) (table TableID, userKey []byte, version uint64, err error) {
	if len(key) < 1+8+2+8 || key[0] != prefixHistory {
		return 0, nil, 0, ErrMalformed
	}
	table = TableID(binary.BigEndian.Uint64(key[1:9]))
	esc := key[9 : len(key)-8]
	version = binary.BigEndian.Uint64(key[len(key)-8:])
	userKey = make([]byte, 0, len(esc))
	for i := 0; i < len(esc); i++ {
		if esc[i] != 0 {
			userKey = append(userKey, esc[i])
			continue
		}
		if i+1 >= len(esc) {
			return 0, nil, 0, ErrMalformed
		}
		switch esc[i+1] {
		case 0xff:
			userKey = append(userKey, 0)
			i++
		case 1:
			if i+2 != len(esc) {
				return 0, nil, 0, ErrMalformed
			}
			return table, userKey, version, nil
		default:
			return 0, nil, 0, ErrMalformed
		}
	}
	return 0, nil, 0, ErrMalformed
}

// HistorySpan is [start, end) of the history of the user keys [userStart,
// userEnd) of table; an empty userEnd means the end of the table.
func HistorySpan(table TableID, userStart, userEnd []byte) (start, end []byte) {
	start = HistoryKeyPrefix(table, userStart)
	if len(userEnd) == 0 {
		return start, historyTable(TableID(uint64(table)+1), 0)
	}
	return start, HistoryKeyPrefix(table, userEnd)
}

// HistoryPrefixSpan is [start, end) of the history of every user key with
// the given prefix (all of the table's for an empty prefix).
func HistoryPrefixSpan(table TableID, prefix []byte) (start, end []byte) {
	start = appendEscaped(historyTable(table, len(prefix)), prefix)
	if end = PrefixEnd(start); end == nil || len(prefix) == 0 {
		end = historyTable(TableID(uint64(table)+1), 0)
	}
	return start, end
}

// IsHistoryKey reports whether key is a key history entry.
func IsHistoryKey(key []byte) bool { return len(key) > 0 && key[0] == prefixHistory }
