package router

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// lazyTimeout is a context.WithTimeout whose timer starts only when
// someone waits on it (Done). Most requests never wait: a lease read on
// the leaseholder answers from local state at once, and starting and
// stopping a timer for each is a measurable share of a GET's CPU
// (BENCHMARKS.md, 2026-11-29). Err and Deadline answer without the timer.
//
// Once Done is called, the context is a real context.WithDeadline of the
// parent (Value then resolves through it, so children made by the context
// package find its cancelCtx and need no goroutine of their own).
type lazyTimeout struct {
	parent   context.Context
	deadline time.Time
	canceled atomic.Bool
	inner    atomic.Pointer[lazyInner]
	mu       sync.Mutex // serializes start and cancel
}

type lazyInner struct {
	ctx    context.Context
	cancel context.CancelFunc
}

// withLazyTimeout returns a child of parent that expires after d (or at
// the parent's deadline, if earlier), and its cancel function.
func withLazyTimeout(parent context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	c := &lazyTimeout{parent: parent, deadline: time.Now().Add(d)}
	if pd, ok := parent.Deadline(); ok && pd.Before(c.deadline) {
		c.deadline = pd
	}
	return c, c.stop
}

func (c *lazyTimeout) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *lazyTimeout) Done() <-chan struct{} { return c.start().Done() }

func (c *lazyTimeout) Err() error {
	if in := c.inner.Load(); in != nil {
		return in.ctx.Err()
	}
	if err := c.parent.Err(); err != nil {
		return err
	}
	if c.canceled.Load() {
		return context.Canceled
	}
	if !time.Now().Before(c.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

func (c *lazyTimeout) Value(key any) any {
	if in := c.inner.Load(); in != nil {
		return in.ctx.Value(key)
	}
	return c.parent.Value(key)
}

// start turns the context into a real one with a timer, once.
func (c *lazyTimeout) start() context.Context {
	if in := c.inner.Load(); in != nil {
		return in.ctx
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if in := c.inner.Load(); in != nil {
		return in.ctx
	}
	ctx, cancel := context.WithDeadline(c.parent, c.deadline)
	if c.canceled.Load() {
		cancel()
	}
	c.inner.Store(&lazyInner{ctx: ctx, cancel: cancel})
	return ctx
}

// stop is the CancelFunc.
func (c *lazyTimeout) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.canceled.Store(true)
	if in := c.inner.Load(); in != nil {
		in.cancel()
	}
}
