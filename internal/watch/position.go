package watch

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"sort"
)

// ErrBadPosition is returned for a resume token that does not decode.
var ErrBadPosition = errors.New("watch: malformed resume token")

// maxPositionSpans bounds a decoded Position (one span per range a watcher
// has seen change).
const maxPositionSpans = 4096

// span says: every change of a key in [Start, next span's Start) up to
// sequence number Version was delivered (storage.Change.Seq, which is the
// change's version but for transactions resolved late).
type span struct {
	Start   []byte
	Version uint64
}

// Position is a watcher's place in the change stream: a step function
// from keys to the version up to which their changes were delivered. The
// zero value is "from the beginning of the retained history".
type Position struct {
	spans []span // sorted by Start; spans[0].Start is empty
}

// NewPosition returns a Position at version v for every key.
func NewPosition(v uint64) Position { return Position{spans: []span{{Start: nil, Version: v}}} }

// Floor returns the version up to which key's changes were delivered.
func (p Position) Floor(key []byte) uint64 {
	if len(p.spans) == 0 {
		return 0
	}
	i := sort.Search(len(p.spans), func(i int) bool { return bytes.Compare(p.spans[i].Start, key) > 0 }) - 1
	return p.spans[i].Version
}

// Advance records that every change in [start, end) (end empty: to the end
// of the key space) up to v was delivered. Versions never go down.
func (p *Position) Advance(start, end []byte, v uint64) {
	if len(p.spans) == 0 {
		p.spans = []span{{Start: nil, Version: 0}}
	}
	p.split(start)
	if len(end) > 0 {
		p.split(end)
	}
	for i := range p.spans {
		s := p.spans[i].Start
		if bytes.Compare(s, start) >= 0 && (len(end) == 0 || bytes.Compare(s, end) < 0) && p.spans[i].Version < v {
			p.spans[i].Version = v
		}
	}
	// Merge neighbours with equal versions.
	out := p.spans[:1]
	for _, s := range p.spans[1:] {
		if s.Version != out[len(out)-1].Version {
			out = append(out, s)
		}
	}
	p.spans = out
}

// Splice makes p equal src on the keys [start, end) (end empty: to the
// end of the key space) and leaves it unchanged elsewhere: a merged
// watch's Position is its parts' Positions, each on its part's keys.
func (p *Position) Splice(src Position, start, end []byte) {
	if len(p.spans) == 0 {
		p.spans = []span{{Start: nil, Version: 0}}
	}
	p.split(start)
	if len(end) > 0 {
		p.split(end)
	}
	in := func(k []byte) bool {
		return bytes.Compare(k, start) >= 0 && (len(end) == 0 || bytes.Compare(k, end) < 0)
	}
	out := make([]span, 0, len(p.spans)+len(src.spans))
	for _, s := range p.spans {
		if !in(s.Start) {
			out = append(out, s)
			continue
		}
		if !bytes.Equal(s.Start, start) {
			continue // replaced by src's steps below
		}
		out = append(out, span{Start: s.Start, Version: src.Floor(start)})
		for _, t := range src.spans {
			if bytes.Compare(t.Start, start) > 0 && in(t.Start) {
				out = append(out, span{Start: append([]byte(nil), t.Start...), Version: t.Version})
			}
		}
	}
	// Merge neighbours with equal versions.
	p.spans = out[:1]
	for _, s := range out[1:] {
		if s.Version != p.spans[len(p.spans)-1].Version {
			p.spans = append(p.spans, s)
		}
	}
}

// split makes k the start of a span (a no-op if it already is one).
func (p *Position) split(k []byte) {
	i := sort.Search(len(p.spans), func(i int) bool { return bytes.Compare(p.spans[i].Start, k) >= 0 })
	if i < len(p.spans) && bytes.Equal(p.spans[i].Start, k) {
		return
	}
	prev := p.spans[i-1].Version // i >= 1: spans[0].Start is empty, <= any k
	p.spans = append(p.spans, span{})
	copy(p.spans[i+1:], p.spans[i:])
	p.spans[i] = span{Start: append([]byte(nil), k...), Version: prev}
}

// clone returns a copy that later Advances of p do not change.
func (p Position) clone() Position {
	return Position{spans: append([]span(nil), p.spans...)}
}

// Min returns the smallest version in the Position.
func (p Position) Min() uint64 {
	if len(p.spans) == 0 {
		return 0
	}
	m := p.spans[0].Version
	for _, s := range p.spans[1:] {
		m = min(m, s.Version)
	}
	return m
}

// Encode returns the Position as a resume token (URL-safe, no padding).
func (p Position) Encode() string {
	var b []byte
	b = append(b, 1) // format
	b = binary.AppendUvarint(b, uint64(len(p.spans)))
	for _, s := range p.spans {
		b = binary.AppendUvarint(b, uint64(len(s.Start)))
		b = append(b, s.Start...)
		b = binary.AppendUvarint(b, s.Version)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodePosition parses a resume token made by Encode.
func DecodePosition(tok string) (Position, error) {
	b, err := base64.RawURLEncoding.Strict().DecodeString(tok)
	if err != nil || len(b) < 2 || b[0] != 1 {
		return Position{}, ErrBadPosition
	}
	b = b[1:]
	n, w := binary.Uvarint(b)
	if w <= 0 || n == 0 || n > maxPositionSpans {
		return Position{}, ErrBadPosition
	}
	b = b[w:]
	p := Position{spans: make([]span, 0, n)}
	for i := uint64(0); i < n; i++ {
		l, w := binary.Uvarint(b)
		if w <= 0 || l > uint64(len(b)-w) {
			return Position{}, ErrBadPosition
		}
		start := append([]byte(nil), b[w:w+int(l)]...)
		b = b[w+int(l):]
		v, w2 := binary.Uvarint(b)
		if w2 <= 0 {
			return Position{}, ErrBadPosition
		}
		b = b[w2:]
		if i == 0 && len(start) != 0 || i > 0 && bytes.Compare(start, p.spans[i-1].Start) <= 0 {
			return Position{}, ErrBadPosition
		}
		p.spans = append(p.spans, span{Start: start, Version: v})
	}
	if len(b) != 0 || p.Encode() != tok {
		// Trailing bytes, or a varint spelled longer than it needs: one
		// position has one token.
		return Position{}, ErrBadPosition
	}
	return p, nil
}
