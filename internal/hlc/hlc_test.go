// Goal: check the hybrid logical clock's guarantees that versions depend
// on: Now strictly increases even when the wall clock stands still or steps
// back, it follows the wall clock when it moves forward, Update folds in
// remote timestamps (never moving the clock back), and all of this holds
// under concurrent use. Method: an injected, scripted wall clock; a
// concurrency test meant to run under -race.
package hlc

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeWall is a wall clock the test moves by hand; safe for concurrent use.
type fakeWall struct{ ms atomic.Int64 }

func (f *fakeWall) now() time.Time { return time.UnixMilli(f.ms.Load()) }

func ts(ms int64, logical uint64) Timestamp { return Timestamp(uint64(ms)<<logicalBits | logical) }

func TestNowFollowsWallClock(t *testing.T) {
	var w fakeWall
	w.ms.Store(1_000)
	c := New(w.now)
	if got := c.Now(); got != ts(1_000, 0) {
		t.Fatalf("first Now = %d, want %d", got, ts(1_000, 0))
	}
	if got := c.Now(); got != ts(1_000, 1) {
		t.Fatalf("same millisecond: Now = %d, want logical 1 (%d)", got, ts(1_000, 1))
	}
	w.ms.Store(2_000)
	got := c.Now()
	if got != ts(2_000, 0) {
		t.Fatalf("after wall advanced: Now = %d, want %d", got, ts(2_000, 0))
	}
	if p := got.Physical(); !p.Equal(time.UnixMilli(2_000)) {
		t.Fatalf("Physical = %v, want %v", p, time.UnixMilli(2_000))
	}
}

func TestNowStrictlyIncreasesWhenWallStepsBack(t *testing.T) {
	var w fakeWall
	c := New(w.now)
	// A scripted wall clock: forward, standing still, big step back, forward
	// again but still behind the high-water mark, then past it.
	script := []int64{5_000, 5_000, 5_001, 4_000, 3_000, 3_000, 4_500, 5_001, 5_002, 10, 6_000}
	var prev Timestamp
	for i, ms := range script {
		w.ms.Store(ms)
		for j := 0; j < 3; j++ {
			got := c.Now()
			if got <= prev {
				t.Fatalf("step %d (wall %d ms) call %d: Now = %d, not above previous %d", i, ms, j, got, prev)
			}
			// The physical part never goes behind the wall clock.
			if got.Physical().Before(time.UnixMilli(ms)) {
				t.Fatalf("step %d: Now physical %v behind wall %d ms", i, got.Physical(), ms)
			}
			prev = got
		}
	}
	// Once the wall clock passes the high-water mark, Now is wall time again.
	if prev != ts(6_000, 2) {
		t.Fatalf("final Now = %d, want %d", prev, ts(6_000, 2))
	}
}

// TestLogicalOverflowCarries: more than 2^16 readings in one millisecond
// carry into the physical part instead of wrapping.
func TestLogicalOverflowCarries(t *testing.T) {
	var w fakeWall
	w.ms.Store(7)
	c := New(w.now)
	prev := c.Now()
	for i := 0; i < 1<<logicalBits+10; i++ {
		got := c.Now()
		if got <= prev {
			t.Fatalf("reading %d: %d not above %d", i, got, prev)
		}
		prev = got
	}
	if !prev.Physical().After(time.UnixMilli(7)) {
		t.Fatalf("after 2^16 readings physical = %v, want past 7 ms", prev.Physical())
	}
}

func TestUpdate(t *testing.T) {
	var w fakeWall
	w.ms.Store(1_000)
	c := New(w.now)
	first := c.Now()

	// A remote timestamp ahead of us: the next Now is above it, even though
	// the wall clock has not moved.
	remote := ts(9_000, 17)
	c.Update(remote)
	if got := c.Now(); got != remote+1 {
		t.Fatalf("Now after Update(%d) = %d, want %d", remote, got, remote+1)
	}

	// A remote timestamp behind us changes nothing.
	before := c.Now()
	c.Update(first)
	c.Update(0)
	if got := c.Now(); got != before+1 {
		t.Fatalf("Update with an old timestamp moved the clock: Now = %d, want %d", got, before+1)
	}

	// Updating to exactly the last reading still gives a larger next one.
	last := c.Now()
	c.Update(last)
	if got := c.Now(); got <= last {
		t.Fatalf("Now after Update(last) = %d, want > %d", got, last)
	}

	// The wall clock catching up past the remote timestamp wins again.
	w.ms.Store(20_000)
	if got := c.Now(); got != ts(20_000, 0) {
		t.Fatalf("Now after wall passed remote = %d, want %d", got, ts(20_000, 0))
	}
}

func TestNewNilUsesWallClock(t *testing.T) {
	c := New(nil)
	before := time.Now().Add(-time.Second)
	got := c.Now().Physical()
	if got.Before(before) || got.After(time.Now().Add(time.Second)) {
		t.Fatalf("Now with the real clock = %v, want about %v", got, time.Now())
	}
}

// TestConcurrent: concurrent Now and Update calls never hand out the same
// timestamp twice, each goroutine sees strictly increasing readings, and
// every reading is above every Update that happened before it in the
// same goroutine. Run with -race.
func TestConcurrent(t *testing.T) {
	var w fakeWall
	w.ms.Store(1_000_000)
	c := New(w.now)
	const goroutines, perG = 8, 2000
	results := make([][]Timestamp, goroutines)
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			var prev Timestamp
			out := make([]Timestamp, 0, perG)
			for i := 0; i < perG; i++ {
				switch i % 5 {
				case 1:
					w.ms.Add(-3) // the wall clock jitters backwards
				case 2:
					w.ms.Add(4)
				case 3:
					u := ts(1_000_000+int64(i), uint64(g))
					c.Update(u)
					if got := c.Now(); got <= u {
						t.Errorf("goroutine %d: Now %d not above own Update %d", g, got, u)
						return
					}
				}
				got := c.Now()
				if got <= prev {
					t.Errorf("goroutine %d: Now %d not above previous %d", g, got, prev)
					return
				}
				prev = got
				out = append(out, got)
			}
			results[g] = out
		}(g)
	}
	wg.Wait()
	seen := map[Timestamp]int{}
	for g, out := range results {
		for _, x := range out {
			if h, dup := seen[x]; dup {
				t.Fatalf("timestamp %d handed out to goroutines %d and %d", x, h, g)
			}
			seen[x] = g
		}
	}
}
