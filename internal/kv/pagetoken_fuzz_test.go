package kv

// FuzzPageToken checks the page-token codec: DecodePageToken never panics
// on any string; what it accepts is within the key limit and re-encodes to
// a token that decodes to the same key; every key within the limit
// round-trips through EncodePageToken, and every key over it is refused.
//
//	go test -run='^$' -fuzz=FuzzPageToken -fuzztime=10s ./internal/kv/

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func FuzzPageToken(f *testing.F) {
	f.Add("", []byte("a"))
	f.Add(EncodePageToken([]byte("key")), []byte("key"))
	f.Add(EncodePageToken(nil), []byte{})
	f.Add(EncodePageToken([]byte{0, 0xff, '/'}), []byte{0xff})
	f.Add(EncodePageToken(bytes.Repeat([]byte("k"), 16)), bytes.Repeat([]byte("k"), 17))
	f.Add("AAAA", []byte("x"))
	f.Add("not base64!", []byte("x"))
	f.Add("AQFhAAAAAA", []byte("a"))
	f.Add(strings.Repeat("A", 100), []byte("x"))
	f.Add(EncodePageToken([]byte("key"))+"A", []byte("x"))

	small := Limits{MaxKeyBytes: 16}
	f.Fuzz(func(t *testing.T, tok string, key []byte) {
		for _, limits := range []Limits{small, DefaultLimits} {
			got, err := DecodePageToken(tok, limits)
			if err != nil {
				if !errors.Is(err, ErrInvalidArgument) {
					t.Fatalf("decode %q: error %v is not invalid_argument", tok, err)
				}
			} else {
				if len(got) > limits.MaxKeyBytes {
					t.Fatalf("decode %q: key of %d bytes over the limit %d", tok, len(got), limits.MaxKeyBytes)
				}
				if tok != "" {
					again, err := DecodePageToken(EncodePageToken(got), limits)
					if err != nil || !bytes.Equal(again, got) {
						t.Fatalf("decode %q = %q; re-encoded decodes to %q, %v", tok, got, again, err)
					}
				}
			}

			back, err := DecodePageToken(EncodePageToken(key), limits)
			switch {
			case len(key) > limits.MaxKeyBytes:
				if err == nil {
					t.Fatalf("key of %d bytes over the limit %d decoded", len(key), limits.MaxKeyBytes)
				}
			case err != nil:
				t.Fatalf("round trip of %q: %v", key, err)
			case !bytes.Equal(back, key) || back == nil:
				t.Fatalf("round trip of %q gave %q", key, back)
			}
		}
	})
}
