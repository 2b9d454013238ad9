// Package hlc is a hybrid logical clock. A timestamp is a uint64: the wall
// time in milliseconds since the Unix epoch in the upper 48 bits and a
// logical counter in the lower 16. Timestamps from one clock strictly
// increase, even if the wall clock steps back, and Update folds in
// timestamps seen from other nodes so that causally later events get
// larger timestamps. cairn uses them as the floor of a write's version:
// versions are comparable across ranges and roughly tell wall time.
package hlc

import (
	"sync"
	"time"
)

// Timestamp is an HLC reading.
type Timestamp uint64

const logicalBits = 16

// Physical returns the wall-clock part of t.
func (t Timestamp) Physical() time.Time {
	return time.UnixMilli(int64(uint64(t) >> logicalBits))
}

// Clock is a hybrid logical clock; safe for concurrent use.
type Clock struct {
	now func() time.Time
	mu  struct {
		sync.Mutex
		last Timestamp
	}
}

// New returns a clock reading wall time from now (time.Now when nil).
func New(now func() time.Time) *Clock {
	if now == nil {
		now = time.Now
	}
	return &Clock{now: now}
}

// Now returns a timestamp greater than every one returned or observed before.
func (c *Clock) Now() Timestamp {
	phys := Timestamp(uint64(c.now().UnixMilli()) << logicalBits)
	c.mu.Lock()
	defer c.mu.Unlock()
	if phys > c.mu.last {
		c.mu.last = phys
	} else {
		c.mu.last++
	}
	return c.mu.last
}

// Update records a timestamp seen elsewhere (a version applied by Raft).
func (c *Clock) Update(t Timestamp) {
	c.mu.Lock()
	if t > c.mu.last {
		c.mu.last = t
	}
	c.mu.Unlock()
}

// Millis returns the wall-clock part of t in milliseconds since the Unix
// epoch.
func (t Timestamp) Millis() int64 { return int64(uint64(t) >> logicalBits) }
