package kv

// Tests of the consistency vocabulary: level and max_staleness parsing,
// the session token codec (one spelling per token), merging, and the
// Need rule that decides whether a replica may judge a token (the split
// cases of docs/design/reads.md, "Session tokens and splits").

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseConsistency(t *testing.T) {
	for _, s := range []string{"", "linearizable", "session", "stale"} {
		if got, err := ParseConsistency(s); err != nil || got != s {
			t.Errorf("ParseConsistency(%q) = %q, %v", s, got, err)
		}
	}
	for _, s := range []string{"Stale", "eventual", "bogus", strings.Repeat("x", 500)} {
		if _, err := ParseConsistency(s); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("ParseConsistency(%q) = %v, want invalid argument", s, err)
		}
	}
}

func TestParseMaxStaleness(t *testing.T) {
	good := map[string]time.Duration{"2s": 2 * time.Second, "500ms": 500 * time.Millisecond, "1500": 1500 * time.Millisecond, "1h": time.Hour, "10ms": 10 * time.Millisecond}
	for s, want := range good {
		if got, err := ParseMaxStaleness(s); err != nil || got != want {
			t.Errorf("ParseMaxStaleness(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "0", "9ms", "-1s", "2h", "abc", "1e3", "99999999999999999999", strings.Repeat("1", 40)} {
		if d, err := ParseMaxStaleness(s); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("ParseMaxStaleness(%q) = %v, %v; want invalid argument", s, d, err)
		}
	}
	if d, err := CheckMaxStaleness(0); err != nil || d != DefaultMaxStaleness {
		t.Errorf("CheckMaxStaleness(0) = %v, %v", d, err)
	}
	for _, ms := range []int64{-1, 5, 3600001, 1 << 62} {
		if _, err := CheckMaxStaleness(ms); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("CheckMaxStaleness(%d) = %v, want invalid argument", ms, err)
		}
	}
}

func TestSessionTokenRoundTripAndMerge(t *testing.T) {
	var tok SessionToken
	if tok.Encode() != "" {
		t.Fatal("empty token must encode to \"\"")
	}
	tok.Observe(SessionEntry{Table: 1, Range: 7, Generation: 2, Index: 40})
	tok.Observe(SessionEntry{Table: 1, Range: 3, Generation: 0, Index: 12})
	tok.Observe(SessionEntry{Table: 1, Range: 7, Generation: 1, Index: 30}) // older: no change
	s := tok.Encode()
	back, err := DecodeSessionToken(s)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Entries) != 2 || back.Entries[0].Range != 3 || back.Entries[1] != (SessionEntry{1, 7, 2, 40}) {
		t.Fatalf("decoded %+v", back)
	}
	other := SessionToken{Entries: []SessionEntry{{Table: 1, Range: 7, Generation: 2, Index: 55}, {Table: 2, Range: 9, Index: 11}}}
	m, err := MergeSessionTokens(s, other.Encode())
	if err != nil {
		t.Fatal(err)
	}
	mt, _ := DecodeSessionToken(m)
	if len(mt.Entries) != 3 || mt.Entries[1].Index != 55 || mt.Entries[2].Range != 9 {
		t.Fatalf("merged %+v", mt)
	}
	if _, err := MergeSessionTokens(s, "junk!"); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("merge with junk: %v", err)
	}
}

func TestSessionTokenTruncates(t *testing.T) {
	var tok SessionToken
	for i := uint64(1); i <= MaxSessionEntries+5; i++ {
		tok.Observe(SessionEntry{Table: 1, Range: i, Index: 100 + i})
	}
	if len(tok.Entries) != MaxSessionEntries || !tok.Truncated || tok.Entries[0].Range != 6 {
		t.Fatalf("got %d entries, truncated=%v, first %d", len(tok.Entries), tok.Truncated, tok.Entries[0].Range)
	}
	s := tok.Encode()
	if len(s) > MaxSessionTokenLength {
		t.Fatalf("a full token is %d bytes, over the decoder's limit", len(s))
	}
	if _, err := DecodeSessionToken(s); err != nil {
		t.Fatal(err)
	}
	// A dropped range cannot be judged; a kept one can.
	if _, err := tok.Need(1, 2, 0); !errors.Is(err, ErrSessionUnprovable) {
		t.Fatalf("dropped range: %v", err)
	}
	if n, err := tok.Need(1, 20, 0); err != nil || n != 120 {
		t.Fatalf("kept range: %d, %v", n, err)
	}
}

func TestSessionTokenRejectsOtherSpellings(t *testing.T) {
	valid := SessionToken{Entries: []SessionEntry{{Table: 1, Range: 5, Generation: 1, Index: 20}}}.Encode()
	for _, s := range []string{
		"!!!", valid + "A", valid + "=", "AQ", // too short
		"AgAA",     // version 2
		"AQIA",     // unknown flag
		"AQAA",     // zero entries, not truncated: spelled "" instead
		"AQABBQEB", // entry cut short
		SessionToken{Entries: []SessionEntry{{Range: 5}, {Range: 5}}}.Encode(), // duplicate (Encode keeps the given order) range
		SessionToken{Entries: []SessionEntry{{Range: 6}, {Range: 5}}}.Encode(), // unsorted
		strings.Repeat("A", MaxSessionTokenLength+1),
	} {
		if _, err := DecodeSessionToken(s); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("DecodeSessionToken(%q) = %v, want invalid argument", s, err)
		}
	}
	// Non-minimal varint for the count: 0x81 0x00 is 1.
	if _, err := DecodeSessionToken("AQCBAAUBARQ"); err == nil {
		t.Error("a non-minimal varint decoded")
	}
}

func TestSessionNeedAcrossSplits(t *testing.T) {
	// Range 5 (table 1) split at generation 1 -> 2 into 5 and 9.
	tok := SessionToken{Entries: []SessionEntry{{Table: 1, Range: 5, Generation: 1, Index: 30}}}
	cases := []struct {
		name           string
		tok            SessionToken
		table, id, gen uint64
		want           uint64
		unprovable     bool
	}{
		{"same range, same generation", tok, 1, 5, 1, 30, false},
		{"same range, replica split since", tok, 1, 5, 2, 30, false},
		{"child of the parent entry: nothing needed", tok, 1, 9, 2, 0, false},
		{"unrelated table", tok, 2, 4, 0, 0, false},
		{"replica behind a split the session saw", SessionToken{Entries: []SessionEntry{{Table: 1, Range: 5, Generation: 2, Index: 50}}}, 1, 5, 1, 0, true},
		{"session saw the right side; replica of the parent lags", SessionToken{Entries: []SessionEntry{{Table: 1, Range: 9, Generation: 2, Index: 12}}}, 1, 5, 1, 0, true},
		{"larger range of another table", SessionToken{Entries: []SessionEntry{{Table: 2, Range: 9, Generation: 4, Index: 12}}}, 1, 5, 1, 0, false},
		{"empty token", SessionToken{}, 1, 5, 1, 0, false},
	}
	for _, c := range cases {
		got, err := c.tok.Need(c.table, c.id, c.gen)
		if c.unprovable {
			if !errors.Is(err, ErrSessionUnprovable) {
				t.Errorf("%s: Need = %d, %v; want unprovable", c.name, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: Need = %d, %v; want %d", c.name, got, err, c.want)
		}
	}
}
