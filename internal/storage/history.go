package storage

import (
	"encoding/binary"
	"fmt"
)

// ChangeKind says what a change did to its key.
type ChangeKind byte

const (
	ChangePut    ChangeKind = 1
	ChangeDelete ChangeKind = 2
	// ChangeExpire is the removal of a key whose TTL ran out.
	ChangeExpire ChangeKind = 3
)

func (k ChangeKind) String() string {
	switch k {
	case ChangePut:
		return "put"
	case ChangeDelete:
		return "delete"
	case ChangeExpire:
		return "expire"
	}
	return fmt.Sprintf("change(%d)", byte(k))
}

// Change is one entry of a key's history (keys.HistoryKey names it by key
// and version). Seq is its place in its range's apply order (strictly
// increasing per range; equal to the version except for a transaction's
// write resolved after later ones). Prev and PrevSeq name the key's change
// before this one (0: none retained when this one was written), which
// lets a reader tell a complete history from one whose older entries were
// trimmed.
//
// Floor is a version at or below the key's oldest retained entry when
// this one was written (0: unknown, in entries written before cairn kept
// it): every older entry is deleted. The writer of the next change bounds
// its history iterator there, so it never walks the deleted entries
// (tombstones until a compaction removes them): without it, a key
// rewritten thousands of times a second paid for every trimmed entry on
// every write.
type Change struct {
	Kind          ChangeKind
	Seq           uint64
	Prev, PrevSeq uint64
	Floor         uint64
	ExpireAt      int64 // puts only: unix ms, 0 = no TTL
	Value         []byte
}

// changeHeader is the size of the fixed part of a stored change; a
// change with a Floor has 8 bytes more (flagged in the kind byte).
const (
	changeHeader = 1 + 8 + 8 + 8 + 8
	hasFloor     = 0x80
)

// EncodeChange returns the stored form: kind, seq, prev, prevSeq,
// expireAt (8 bytes each), then, when Floor is set (the kind's high bit),
// floor, then the value.
func EncodeChange(c Change) []byte {
	b := make([]byte, 0, changeHeader+8+len(c.Value))
	kind := byte(c.Kind)
	if c.Floor != 0 {
		kind |= hasFloor
	}
	b = append(b, kind)
	b = binary.BigEndian.AppendUint64(b, c.Seq)
	b = binary.BigEndian.AppendUint64(b, c.Prev)
	b = binary.BigEndian.AppendUint64(b, c.PrevSeq)
	b = binary.BigEndian.AppendUint64(b, uint64(c.ExpireAt))
	if c.Floor != 0 {
		b = binary.BigEndian.AppendUint64(b, c.Floor)
	}
	return append(b, c.Value...)
}

// DecodeChange splits a stored change; Value aliases b.
func DecodeChange(b []byte) (Change, error) {
	if len(b) < changeHeader {
		return Change{}, ErrCorruptValue
	}
	kind, floored := ChangeKind(b[0]&^hasFloor), b[0]&hasFloor != 0
	if kind < ChangePut || kind > ChangeExpire || (floored && len(b) < changeHeader+8) {
		return Change{}, ErrCorruptValue
	}
	c := Change{Kind: kind, Seq: binary.BigEndian.Uint64(b[1:9]), Prev: binary.BigEndian.Uint64(b[9:17]),
		PrevSeq: binary.BigEndian.Uint64(b[17:25]), ExpireAt: int64(binary.BigEndian.Uint64(b[25:33])), Value: b[33:]}
	if floored {
		c.Floor, c.Value = binary.BigEndian.Uint64(b[33:41]), b[41:]
		if c.Floor == 0 {
			return Change{}, ErrCorruptValue // written only when set
		}
	}
	if c.ExpireAt < 0 || (c.Kind != ChangePut && (c.ExpireAt != 0 || len(c.Value) > 0)) {
		return Change{}, ErrCorruptValue
	}
	return c, nil
}
