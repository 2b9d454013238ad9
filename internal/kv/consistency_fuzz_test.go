package kv

// FuzzSessionToken checks the session token codec: DecodeSessionToken
// never panics; what it accepts re-encodes to the same string, has sorted
// unique ranges within MaxSessionEntries, and merging it with itself
// changes nothing.
//
//	go test -run='^$' -fuzz=FuzzSessionToken -fuzztime=10s ./internal/kv/
//
// FuzzMaxStaleness checks ParseMaxStaleness: never panics, accepts only
// bounds within [MinMaxStaleness, MaxMaxStaleness].

import (
	"errors"
	"testing"
)

func FuzzSessionToken(f *testing.F) {
	f.Add("")
	f.Add(SessionToken{Entries: []SessionEntry{{Table: 1, Range: 5, Generation: 1, Index: 20}}}.Encode())
	f.Add(SessionToken{Truncated: true}.Encode())
	f.Add(SessionToken{Entries: []SessionEntry{{1, 2, 3, 4}, {1, 1 << 40, 1 << 62, 1<<64 - 1}}}.Encode())
	f.Add("AQAA")
	f.Add("AQCBAAUBARQ")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := DecodeSessionToken(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("error %v is not an invalid argument", err)
			}
			return
		}
		if got := tok.Encode(); got != s {
			t.Fatalf("decode(%q) re-encodes as %q", s, got)
		}
		if len(tok.Entries) > MaxSessionEntries {
			t.Fatalf("%d entries", len(tok.Entries))
		}
		for i := 1; i < len(tok.Entries); i++ {
			if tok.Entries[i-1].Range >= tok.Entries[i].Range {
				t.Fatalf("unsorted entries %+v", tok.Entries)
			}
		}
		m, err := MergeSessionTokens(s, s)
		if err != nil || m != s {
			t.Fatalf("merge with itself: %q, %v", m, err)
		}
		for _, e := range tok.Entries {
			_, _ = tok.Need(e.Table, e.Range, e.Generation)
		}
	})
}

func FuzzMaxStaleness(f *testing.F) {
	for _, s := range []string{"2s", "500ms", "1500", "0", "-1s", "1h1ns", "9223372036854775807ns", "1e3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseMaxStaleness(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("error %v is not an invalid argument", err)
			}
			return
		}
		if d < MinMaxStaleness || d > MaxMaxStaleness {
			t.Fatalf("ParseMaxStaleness(%q) = %v accepted", s, d)
		}
	})
}
