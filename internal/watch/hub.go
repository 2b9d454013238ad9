package watch

import (
	"bytes"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/keys/hashkey"
)

var (
	// ErrOverflow ends a watcher that fell more than its buffer behind.
	// Retryable: resume from the last Position.
	ErrOverflow = errors.New("watch: watcher fell too far behind (buffer full); resume from the last position")
	// ErrReset ends watchers of keys whose replica was replaced by a
	// snapshot (the changes in between were not applied one by one).
	// Retryable: resume from the last Position; the history came with the
	// snapshot.
	ErrReset = errors.New("watch: the local replica was reset by a snapshot; resume from the last position")
	// ErrMoved ends a watch whose replay meets a key this node no longer
	// holds a replica of (it moved away while the watch started): the
	// client resumes, on a node that holds it.
	ErrMoved = errors.New("watch: this node no longer holds the watched keys; resume from the last position")
)

// Filter selects the changes of one table: of one key, or of every key
// with a prefix (Prefix true; an empty prefix is the whole table).
//
// Hashed marks a prefix filter on a hash table (docs/design/hashing.md):
// its stored keys are placement keys (8 bytes of hash, then the user
// key), so the prefix is matched against the user key after the hash and
// every range of the table may hold matching keys. A single-key filter
// on a hash table names the placement key and needs no flag.
//
// Bounded narrows a prefix filter to the stored keys in [Lo, Hi) (Hi
// empty: no upper bound): one part of a watch whose ranges no single node
// holds, each part served by a node that holds its ranges (the router's
// merged watch).
type Filter struct {
	Table   keys.TableID
	Key     []byte
	Prefix  bool
	Hashed  bool
	Bounded bool
	Lo, Hi  []byte
}

// inBounds reports whether key lies in the filter's bounds (always, when
// it has none).
func (f Filter) inBounds(key []byte) bool {
	return !f.Bounded || bytes.Compare(key, f.Lo) >= 0 && (len(f.Hi) == 0 || bytes.Compare(key, f.Hi) < 0)
}

// Match reports whether the filter selects key of table.
func (f Filter) Match(table keys.TableID, key []byte) bool {
	if table != f.Table || !f.inBounds(key) {
		return false
	}
	if f.Prefix {
		if f.Hashed {
			return len(key) >= hashkey.PrefixLen && bytes.HasPrefix(key[hashkey.PrefixLen:], f.Key)
		}
		return bytes.HasPrefix(key, f.Key)
	}
	return bytes.Equal(key, f.Key)
}

// overlaps reports whether the filter selects any key of [start, end).
func (f Filter) overlaps(table keys.TableID, start, end []byte) bool {
	if table != f.Table {
		return false
	}
	if f.Bounded && !((len(end) == 0 || bytes.Compare(f.Lo, end) < 0) && (len(f.Hi) == 0 || bytes.Compare(start, f.Hi) < 0)) {
		return false
	}
	if f.Prefix && f.Hashed {
		return true
	}
	lo, hi := f.Key, keys.PrefixEnd(f.Key)
	if !f.Prefix {
		hi = append(append([]byte(nil), f.Key...), 0)
	}
	return (len(end) == 0 || bytes.Compare(lo, end) < 0) && (hi == nil || bytes.Compare(start, hi) < 0)
}

// Hub fans applied changes out to the node's watchers. Publish never
// blocks the driver: a watcher whose buffer is full is ended instead.
type Hub struct {
	mu   sync.Mutex
	subs map[*Sub]struct{}
	n    atomic.Int32
}

// NewHub returns a Hub without watchers.
func NewHub() *Hub { return &Hub{subs: map[*Sub]struct{}{}} }

// Sub is one watcher's subscription.
type Sub struct {
	hub    *Hub
	filter Filter
	ch     chan Event
	done   chan struct{}
	once   sync.Once
	err    error // set before done closes
}

// Subscribe registers a watcher with a buffer of n events.
func (h *Hub) Subscribe(f Filter, n int) *Sub {
	s := &Sub{hub: h, filter: f, ch: make(chan Event, max(n, 1)), done: make(chan struct{})}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	h.n.Add(1)
	return s
}

// Watchers returns the number of registered watchers.
func (h *Hub) Watchers() int { return int(h.n.Load()) }

// Publish hands applied changes to the watchers they match. Call after
// the batch holding them is committed, in apply order.
func (h *Hub) Publish(evs []Event) {
	if len(evs) == 0 || h.n.Load() == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		for i := range evs {
			if !s.filter.Match(evs[i].Table, evs[i].Key) {
				continue
			}
			select {
			case s.ch <- evs[i]:
			default:
				s.endLocked(ErrOverflow)
			}
			if s.err != nil {
				break
			}
		}
	}
}

// Reset ends the watchers of any key in [start, end) of table: a snapshot
// replaced those keys' replica.
func (h *Hub) Reset(table keys.TableID, start, end []byte) {
	if h.n.Load() == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		if s.filter.overlaps(table, start, end) {
			s.endLocked(ErrReset)
		}
	}
}

// endLocked removes s and records why. h.mu held.
func (s *Sub) endLocked(err error) {
	if _, ok := s.hub.subs[s]; !ok {
		return
	}
	delete(s.hub.subs, s)
	s.hub.n.Add(-1)
	s.once.Do(func() {
		s.err = err
		close(s.done)
	})
}

// Close unregisters the watcher.
func (s *Sub) Close() {
	s.hub.mu.Lock()
	s.endLocked(nil)
	s.hub.mu.Unlock()
}

// Events is the watcher's buffer; Done closes when the hub ended it (Err
// says why). Events still buffered when Done closes were published before
// the end.
func (s *Sub) Events() <-chan Event  { return s.ch }
func (s *Sub) Done() <-chan struct{} { return s.done }

// Err is why the hub ended the watcher (nil after Close).
func (s *Sub) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}
