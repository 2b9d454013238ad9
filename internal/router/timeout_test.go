package router

import (
	"context"
	"errors"
	"testing"
	"time"
)

type ctxKey struct{}

func closed(ch <-chan struct{}, within time.Duration) bool {
	select {
	case <-ch:
		return true
	case <-time.After(within):
		return false
	}
}

func TestLazyTimeoutExpiresWithoutTimer(t *testing.T) {
	ctx, cancel := withLazyTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := ctx.Err(); err != nil {
		t.Fatalf("fresh: Err = %v", err)
	}
	time.Sleep(30 * time.Millisecond)
	if err := ctx.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("past the deadline, never waited on: Err = %v, want DeadlineExceeded", err)
	}
	if !closed(ctx.Done(), time.Second) {
		t.Fatal("Done called past the deadline is not closed")
	}
}

func TestLazyTimeoutDoneFiresAtDeadline(t *testing.T) {
	ctx, cancel := withLazyTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	start := time.Now()
	if !closed(ctx.Done(), 5*time.Second) {
		t.Fatal("Done never closed")
	}
	if d := time.Since(start); d < 25*time.Millisecond {
		t.Fatalf("Done closed after %v, before the deadline", d)
	}
	if err := ctx.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Err = %v, want DeadlineExceeded", err)
	}
}

func TestLazyTimeoutCancel(t *testing.T) {
	// Canceled before anyone waited, and after.
	for _, waitFirst := range []bool{false, true} {
		ctx, cancel := withLazyTimeout(context.Background(), time.Hour)
		var done <-chan struct{}
		if waitFirst {
			done = ctx.Done()
		}
		cancel()
		if err := ctx.Err(); !errors.Is(err, context.Canceled) {
			t.Fatalf("waitFirst=%v: Err = %v, want Canceled", waitFirst, err)
		}
		if done == nil {
			done = ctx.Done()
		}
		if !closed(done, time.Second) {
			t.Fatalf("waitFirst=%v: Done not closed after cancel", waitFirst)
		}
		cancel() // idempotent
	}
}

func TestLazyTimeoutFollowsParent(t *testing.T) {
	parent, cancelParent := context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "v"))
	ctx, cancel := withLazyTimeout(parent, time.Hour)
	defer cancel()
	if got := ctx.Value(ctxKey{}); got != "v" {
		t.Fatalf("Value = %v, want the parent's", got)
	}
	// A child made by the context package before the parent is canceled.
	child, cancelChild := context.WithCancel(ctx)
	defer cancelChild()
	if got := child.Value(ctxKey{}); got != "v" {
		t.Fatalf("child Value = %v, want the parent's", got)
	}
	cancelParent()
	if !closed(child.Done(), time.Second) || !closed(ctx.Done(), time.Second) {
		t.Fatal("canceling the parent did not end the context and its child")
	}
	if err := ctx.Err(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Err = %v, want Canceled", err)
	}

	// Canceled parent, never waited on: Err says so without a timer.
	ctx2, cancel2 := withLazyTimeout(parent, time.Hour)
	defer cancel2()
	if err := ctx2.Err(); !errors.Is(err, context.Canceled) {
		t.Fatalf("child of a canceled parent: Err = %v", err)
	}
}

func TestLazyTimeoutDeadline(t *testing.T) {
	parent, cancelParent := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancelParent()
	pd, _ := parent.Deadline()
	ctx, cancel := withLazyTimeout(parent, time.Hour)
	defer cancel()
	if d, ok := ctx.Deadline(); !ok || !d.Equal(pd) {
		t.Fatalf("Deadline = %v, %v; want the parent's earlier %v", d, ok, pd)
	}
	ctx2, cancel2 := withLazyTimeout(context.Background(), time.Minute)
	defer cancel2()
	if d, ok := ctx2.Deadline(); !ok || time.Until(d) > time.Minute || time.Until(d) < 50*time.Second {
		t.Fatalf("Deadline = %v, %v; want about a minute from now", d, ok)
	}
	if !closed(ctx.Done(), 5*time.Second) {
		t.Fatal("the parent's deadline did not end the context")
	}
}

func BenchmarkRequestTimeout(b *testing.B) {
	b.Run("context.WithTimeout", func(b *testing.B) {
		for range b.N {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = ctx.Err()
			cancel()
		}
	})
	b.Run("withLazyTimeout", func(b *testing.B) {
		for range b.N {
			ctx, cancel := withLazyTimeout(context.Background(), time.Second)
			_ = ctx.Err()
			cancel()
		}
	})
}
