package kv

import (
	"encoding/base64"
	"encoding/binary"
	"hash/crc32"
)

// A page token resumes a List after the last key of the previous page. It
// names a key, not an offset, so pages stay complete and free of duplicates
// while keys are written: every key present during the whole listing is
// returned exactly once, in order.
//
// Format (base64url, no padding): version byte 1, uvarint key length, key,
// CRC-32C of all preceding bytes (4 bytes, big endian). The checksum turns a
// mangled token into a clear error rather than a silently wrong page.

const pageTokenVersion = 1

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// EncodePageToken returns the token that resumes after lastKey.
func EncodePageToken(lastKey []byte) string {
	b := make([]byte, 0, 1+binary.MaxVarintLen64+len(lastKey)+4)
	b = append(b, pageTokenVersion)
	b = binary.AppendUvarint(b, uint64(len(lastKey)))
	b = append(b, lastKey...)
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodePageToken returns the key a token resumes after. An empty token
// decodes to (nil, nil): start from the beginning.
func DecodePageToken(tok string, limits Limits) ([]byte, error) {
	if tok == "" {
		return nil, nil
	}
	if len(tok) > base64.RawURLEncoding.EncodedLen(1+binary.MaxVarintLen64+limits.MaxKeyBytes+4) {
		return nil, Errorf(ErrInvalidArgument, "page token is too long")
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return nil, Errorf(ErrInvalidArgument, "page token is not valid base64url")
	}
	if len(b) < 1+1+4 {
		return nil, Errorf(ErrInvalidArgument, "page token is truncated")
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, crcTable) != sum {
		return nil, Errorf(ErrInvalidArgument, "page token checksum mismatch")
	}
	if body[0] != pageTokenVersion {
		return nil, Errorf(ErrInvalidArgument, "page token version %d is unknown", body[0])
	}
	n, w := binary.Uvarint(body[1:])
	if w <= 0 || n != uint64(len(body)-1-w) || int(n) > limits.MaxKeyBytes {
		return nil, Errorf(ErrInvalidArgument, "page token is malformed")
	}
	return body[1+w:], nil
}
