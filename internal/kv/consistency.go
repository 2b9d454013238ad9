package kv

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"slices"
	"sort"
	"strconv"
	"time"
)

// Read consistency levels (docs/design/reads.md, "Consistency levels").
// The names are the contract: HTTP ?consistency=, the gRPC field, the
// CLI flag and RESP CAIRN.CONSISTENCY all use them.
const (
	// Linearizable: the read sees every write acknowledged before it
	// started (lease read on the leader, else ReadIndex). The default.
	Linearizable = "linearizable"
	// Session: read-your-writes and monotonic reads for the holder of a
	// session token; any replica that has applied far enough serves.
	Session = "session"
	// Stale: the data is at most max_staleness behind (it reflects every
	// write acknowledged max_staleness before the read, or later); any
	// replica that can prove that serves.
	Stale = "stale"
)

// Bounds of max_staleness. Below MinMaxStaleness a stale read would need
// a fresh ReadIndex round nearly every time (a linearizable read is
// cheaper to ask for); above MaxMaxStaleness nothing is gained.
const (
	MinMaxStaleness = 10 * time.Millisecond
	MaxMaxStaleness = time.Hour
	// DefaultMaxStaleness applies to a stale read that names no bound.
	DefaultMaxStaleness = 5 * time.Second
)

// ParseConsistency checks a consistency level name; "" is the default
// (linearizable, unless the caller applies a table default).
func ParseConsistency(s string) (string, error) {
	switch s {
	case "", Linearizable, Session, Stale:
		return s, nil
	}
	return "", Errorf(ErrInvalidArgument, "consistency must be linearizable, session or stale; got %q", clip(s, 64))
}

// ParseMaxStaleness parses a max_staleness bound: a Go duration ("2s",
// "500ms") or a whole number of milliseconds ("1500"), between
// MinMaxStaleness and MaxMaxStaleness.
func ParseMaxStaleness(s string) (time.Duration, error) {
	if s == "" || len(s) > 32 {
		return 0, Errorf(ErrInvalidArgument, "max_staleness %q: want a duration such as 2s or 500ms", clip(s, 32))
	}
	var d time.Duration
	if ms, err := strconv.ParseUint(s, 10, 32); err == nil {
		d = time.Duration(ms) * time.Millisecond
	} else if d, err = time.ParseDuration(s); err != nil {
		return 0, Errorf(ErrInvalidArgument, "max_staleness %q: want a duration such as 2s or 500ms", clip(s, 32))
	}
	if d < MinMaxStaleness || d > MaxMaxStaleness {
		return 0, Errorf(ErrInvalidArgument, "max_staleness %v is outside [%v, %v]", d, MinMaxStaleness, MaxMaxStaleness)
	}
	return d, nil
}

// CheckMaxStaleness validates a bound given in milliseconds (the gRPC
// field); 0 means DefaultMaxStaleness.
func CheckMaxStaleness(ms int64) (time.Duration, error) {
	if ms == 0 {
		return DefaultMaxStaleness, nil
	}
	d := time.Duration(ms) * time.Millisecond
	if ms < 0 || d < MinMaxStaleness || d > MaxMaxStaleness {
		return 0, Errorf(ErrInvalidArgument, "max_staleness_ms %d is outside [%d, %d]", ms, MinMaxStaleness.Milliseconds(), MaxMaxStaleness.Milliseconds())
	}
	return d, nil
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// SessionEntry is what a session has observed of one range: writes and
// reads at the range's Raft log positions up to Index, while the range
// had generation Generation (or less).
type SessionEntry struct {
	Table      uint64
	Range      uint64
	Generation uint64
	Index      uint64
}

// SessionToken is a session's position: one entry per range it touched.
// Truncated says entries were dropped to stay within MaxSessionEntries;
// then a range without an entry cannot be judged (it may be one whose
// entry was dropped) and is read linearizably.
type SessionToken struct {
	Truncated bool
	// Entries, sorted by Range, at most one per range.
	Entries []SessionEntry
}

// Token limits: entries kept, and the encoded size a decoder accepts.
const (
	MaxSessionEntries     = 32
	MaxSessionTokenLength = 2048
	sessionTokenVersion   = 1
	sessionFlagTruncated  = 1
)

// Encode returns the token's text form: URL-safe unpadded base64 of
// version byte, flags byte, uvarint count, then per entry uvarints
// range, table, generation, index, in increasing range order. "" for
// an empty token.
func (t SessionToken) Encode() string {
	if len(t.Entries) == 0 && !t.Truncated {
		return ""
	}
	b := []byte{sessionTokenVersion, 0}
	if t.Truncated {
		b[1] = sessionFlagTruncated
	}
	b = binary.AppendUvarint(b, uint64(len(t.Entries)))
	for _, e := range t.Entries {
		b = binary.AppendUvarint(b, e.Range)
		b = binary.AppendUvarint(b, e.Table)
		b = binary.AppendUvarint(b, e.Generation)
		b = binary.AppendUvarint(b, e.Index)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

var errBadToken = Errorf(ErrInvalidArgument, "malformed session token")

// DecodeSessionToken parses a token from Encode. It accepts only the one
// spelling Encode produces (canonical base64 and varints, sorted unique
// ranges, nothing trailing), so a token has exactly one text form.
func DecodeSessionToken(s string) (SessionToken, error) {
	var t SessionToken
	if s == "" {
		return t, nil
	}
	if len(s) > MaxSessionTokenLength {
		return t, Errorf(ErrInvalidArgument, "session token is %d bytes, over %d", len(s), MaxSessionTokenLength)
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(b) < 3 || b[0] != sessionTokenVersion || b[1]&^sessionFlagTruncated != 0 {
		return SessionToken{}, errBadToken
	}
	t.Truncated = b[1] == sessionFlagTruncated
	rest := b[2:]
	next := func() (uint64, bool) {
		v, n := binary.Uvarint(rest)
		if n <= 0 {
			return 0, false
		}
		rest = rest[n:]
		return v, true
	}
	count, ok := next()
	if !ok || count > MaxSessionEntries {
		return SessionToken{}, errBadToken
	}
	for i := uint64(0); i < count; i++ {
		var e SessionEntry
		var ok1, ok2, ok3, ok4 bool
		e.Range, ok1 = next()
		e.Table, ok2 = next()
		e.Generation, ok3 = next()
		e.Index, ok4 = next()
		if !(ok1 && ok2 && ok3 && ok4) || (len(t.Entries) > 0 && t.Entries[len(t.Entries)-1].Range >= e.Range) {
			return SessionToken{}, errBadToken
		}
		t.Entries = append(t.Entries, e)
	}
	if len(rest) != 0 || (count == 0 && !t.Truncated) || t.Encode() != s {
		// Trailing bytes, an empty token spelled out, or a non-minimal
		// varint: not the one spelling.
		return SessionToken{}, errBadToken
	}
	return t, nil
}

// Observe folds e into t: the entry of e's range keeps the larger index
// and generation. Beyond MaxSessionEntries the entry of the smallest
// range ID goes and t becomes Truncated.
func (t *SessionToken) Observe(e SessionEntry) {
	i := sort.Search(len(t.Entries), func(i int) bool { return t.Entries[i].Range >= e.Range })
	if i < len(t.Entries) && t.Entries[i].Range == e.Range {
		have := &t.Entries[i]
		have.Index = max(have.Index, e.Index)
		have.Generation = max(have.Generation, e.Generation)
		have.Table = e.Table
		return
	}
	t.Entries = slices.Insert(t.Entries, i, e)
	if len(t.Entries) > MaxSessionEntries {
		t.Entries = t.Entries[1:]
		t.Truncated = true
	}
}

// Merge folds every entry of o into t.
func (t *SessionToken) Merge(o SessionToken) {
	t.Truncated = t.Truncated || o.Truncated
	for _, e := range o.Entries {
		t.Observe(e)
	}
}

// MergeSessionTokens merges two encoded tokens; a malformed one is an
// invalid argument.
func MergeSessionTokens(a, b string) (string, error) {
	if a == "" || a == b {
		return b, nil
	}
	if b == "" {
		return a, nil
	}
	ta, err := DecodeSessionToken(a)
	if err != nil {
		return "", err
	}
	tb, err := DecodeSessionToken(b)
	if err != nil {
		return "", err
	}
	ta.Merge(tb)
	return ta.Encode(), nil
}

// ErrSessionUnprovable: a replica cannot judge a session token locally
// (see SessionToken.Need); the read goes to the leader instead.
var ErrSessionUnprovable = errors.New("session token cannot be judged by this replica")

// Need returns the applied index the replica of range rangeID (table
// table, descriptor generation gen) must reach to serve a read of one
// of its keys to the holder of t, or ErrSessionUnprovable when it cannot
// judge:
//
//   - t's entry for this range comes from a later generation: this
//     replica has not applied a split the session has seen.
//   - t has an entry for a range of the same table with a larger ID and
//     a larger generation: it may have been split off this range after
//     the split this replica has applied last (range IDs are allocated
//     in increasing order), so the session may have seen writes to this
//     key there. A false alarm only costs a linearizable read.
//   - t is truncated and has no entry for this range.
//
// An entry for an ancestor (smaller ID, the range this one split from)
// needs nothing: every initialized replica of a range holds its parent's
// state as of the split, and the session saw this key in the parent only
// before the split.
func (t SessionToken) Need(table, rangeID, gen uint64) (uint64, error) {
	var need uint64
	found := false
	for _, e := range t.Entries {
		switch {
		case e.Range == rangeID:
			if e.Generation > gen {
				return 0, ErrSessionUnprovable
			}
			need, found = e.Index, true
		case e.Table == table && e.Range > rangeID && e.Generation > gen:
			return 0, ErrSessionUnprovable
		}
	}
	if !found && t.Truncated {
		return 0, ErrSessionUnprovable
	}
	return need, nil
}

// FormatServedBy renders the replica that served a read for headers:
// "n<node ID>".
func FormatServedBy(node uint64) string {
	if node == 0 {
		return ""
	}
	return "n" + strconv.FormatUint(node, 10)
}

// ReadMissError is the error of a read that found no key: it is
// ErrNotFound (errors.Is), and carries how the read was served, so a
// not-found reply still advances the session token (a session that saw a
// key absent must not see an older state where it exists).
type ReadMissError struct {
	SessionToken      string
	ServedConsistency string
	ServedBy          uint64
	StalenessMs       int64
}

func (e *ReadMissError) Error() string { return ErrNotFound.Error() }
func (e *ReadMissError) Unwrap() error { return ErrNotFound }
