package watch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/storage"
)

// ErrCompacted: the history no longer holds every change after the
// Position (trimmed, or more than Options.MaxReplay changes behind). Not
// retryable: the client reads the keys afresh and watches from now.
var ErrCompacted = errors.New("watch: the requested history is compacted; read the keys again and watch from now")

// Options bound one watcher.
type Options struct {
	// Buffer is how many live events may wait for a slow client before the
	// watcher is ended with ErrOverflow.
	Buffer int
	// MaxReplay bounds the changes replayed from history on a resume.
	MaxReplay int
	// MaxBatch bounds the events of one Send.
	MaxBatch int
}

func (o *Options) defaults() {
	if o.Buffer <= 0 {
		o.Buffer = 4096
	}
	if o.MaxReplay <= 0 {
		o.MaxReplay = 100_000
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 256
	}
}

// Source is what a node offers a watcher: its history, its hub, and the
// local ranges of the watched table.
type Source struct {
	DB  pebble.Reader
	Hub *Hub
	// SpanOf returns the span of the local range holding key (ok false if
	// this node holds none).
	SpanOf func(key []byte) (start, end []byte, ok bool)
	// Now returns, for every local range overlapping the filter, its span
	// and its last change's sequence number: where a watch "from now"
	// starts.
	Now func() []RangeVersion
}

// RangeVersion is a local range's span and the sequence number of its
// last applied change (replica.MaxSeq).
type RangeVersion struct {
	Start, End []byte
	Version    uint64
}

// Start says where a watch begins: from now (both zero), after a version,
// or at a resume token's Position.
//
// Announce makes Run send the start Position (an empty batch) before
// anything else: a merged watch (one stream made of several nodes'
// streams, each over a part of the keys) needs every part's start to
// hand its client a Position that covers all of them.
type Start struct {
	AfterVersion uint64
	Position     *Position
	Announce     bool
}

// Run streams the changes selected by f to send, beginning at start, until
// ctx ends or an error (ErrOverflow, ErrReset, ErrCompacted, or send's)
// stops it. send gets events in delivery order and the Position after
// each (after[i] follows evs[i]; for an empty batch, after[0] is the
// current Position): the resume tokens to hand the client.
func Run(ctx context.Context, src Source, f Filter, start Start, opts Options, send func(evs []Event, after []Position) error) error {
	opts.defaults()
	sub := src.Hub.Subscribe(f, opts.Buffer)
	defer sub.Close()

	var pos Position
	switch {
	case start.Position != nil:
		pos = *start.Position
	case start.AfterVersion > 0:
		pos = NewPosition(start.AfterVersion)
	default:
		// From now: after what each local range has applied. Read after
		// subscribing, so a change applied in between is in the replay
		// below or in the buffer, never lost.
		pos = NewPosition(0)
		for _, r := range src.Now() {
			pos.Advance(r.Start, r.End, r.Version)
		}
	}
	if start.Announce {
		if err := send(nil, []Position{pos.clone()}); err != nil {
			return err
		}
	}
	replay, err := Replay(src.DB, f, pos, opts.MaxReplay)
	if err != nil {
		return err
	}
	for len(replay) > 0 {
		n := min(len(replay), opts.MaxBatch)
		batch := replay[:n]
		replay = replay[n:]
		after := make([]Position, len(batch))
		for i := range batch {
			s, e, ok := src.SpanOf(batch[i].Key)
			if !ok {
				return fmt.Errorf("%w (key %q)", ErrMoved, batch[i].Key)
			}
			batch[i].Start, batch[i].End = s, e
			pos.Advance(s, e, batch[i].Seq)
			after[i] = pos.clone()
		}
		if err := send(batch, after); err != nil {
			return err
		}
	}
	// Caught up: the client learns its Position.
	if err := send(nil, []Position{pos.clone()}); err != nil {
		return err
	}
	batch := make([]Event, 0, opts.MaxBatch)
	var after []Position
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-sub.Done():
			// Deliver what was published before the end, then report it.
			for {
				select {
				case ev := <-sub.Events():
					batch, after = appendLive(batch, after, &pos, ev)
					continue
				default:
				}
				break
			}
			if len(batch) > 0 {
				if err := send(batch, after); err != nil {
					return err
				}
			}
			if err := sub.Err(); err != nil {
				return err
			}
			return ctx.Err()
		case ev := <-sub.Events():
			batch, after = appendLive(batch[:0], after[:0], &pos, ev)
		drain:
			for len(batch) < opts.MaxBatch {
				select {
				case ev := <-sub.Events():
					batch, after = appendLive(batch, after, &pos, ev)
				default:
					break drain
				}
			}
			if len(batch) > 0 {
				if err := send(batch, after); err != nil {
					return err
				}
			}
			batch, after = batch[:0], after[:0]
		}
	}
}

// appendLive appends ev unless the replay (or an earlier event) already
// delivered it, and moves the Position past it.
func appendLive(batch []Event, after []Position, pos *Position, ev Event) ([]Event, []Position) {
	if ev.Seq <= pos.Floor(ev.Key) {
		return batch, after
	}
	pos.Advance(ev.Start, ev.End, ev.Seq)
	return append(batch, ev), append(after, pos.clone())
}

// Replay returns the retained changes selected by f after pos, in apply
// (sequence) order, or ErrCompacted when the history cannot prove it has
// all of them.
func Replay(db pebble.Reader, f Filter, pos Position, limit int) ([]Event, error) {
	var lo, hi []byte
	switch {
	case f.Prefix && f.Hashed:
		lo, hi = keys.HistoryPrefixSpan(f.Table, nil) // the whole table, filtered below
	case f.Prefix:
		lo, hi = keys.HistoryPrefixSpan(f.Table, f.Key)
	default:
		lo = keys.HistoryKeyPrefix(f.Table, f.Key)
		hi = keys.PrefixEnd(lo)
	}
	if f.Bounded {
		blo, bhi := keys.HistorySpan(f.Table, f.Lo, f.Hi)
		if bytes.Compare(blo, lo) > 0 {
			lo = blo
		}
		if bytes.Compare(bhi, hi) < 0 {
			hi = bhi
		}
		if bytes.Compare(lo, hi) >= 0 {
			return nil, nil
		}
	}
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []Event
	var curKey []byte
	var floor uint64
	first := true // the next entry is the first after floor of curKey
	for ok := it.First(); ok; ok = it.Next() {
		table, key, version, err := keys.DecodeHistoryKey(it.Key())
		if err != nil || table != f.Table {
			return nil, fmt.Errorf("watch: history key %x: %w", it.Key(), storage.ErrCorruptValue)
		}
		if (f.Hashed || f.Bounded) && !f.Match(table, key) {
			continue
		}
		if curKey == nil || string(key) != string(curKey) {
			curKey, floor, first = key, pos.Floor(key), true
		}
		c, err := storage.DecodeChange(it.Value())
		if err != nil {
			return nil, err
		}
		if c.Seq <= floor {
			continue
		}
		if first && c.PrevSeq > floor {
			// A change between the Position and this one was trimmed.
			return nil, fmt.Errorf("%w (key %q changed at version %d, no longer retained)", ErrCompacted, key, c.Prev)
		}
		first = false
		if len(out) >= limit {
			return nil, fmt.Errorf("%w (more than %d changes to replay)", ErrCompacted, limit)
		}
		c.Value = append([]byte(nil), c.Value...)
		out = append(out, Event{Table: table, Key: key, Version: version, Change: c})
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out, nil
}
