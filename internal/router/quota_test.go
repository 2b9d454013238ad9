package router

import (
	"testing"
	"time"
)

// TestQuotaBucket: a range's bucket starts with a second's worth of
// writes, refills at its rate, never holds more than a second's worth,
// and keeps ranges apart.
func TestQuotaBucket(t *testing.T) {
	var q quotas
	t0 := time.Unix(1000, 0)
	n := 0
	for q.take(1, 5, t0) {
		n++
	}
	if n != 5 {
		t.Fatalf("burst of %d writes at 5/s, want 5", n)
	}
	if q.take(1, 5, t0.Add(100*time.Millisecond)) {
		t.Fatal("a write 100 ms later at 5/s (half a token refilled)")
	}
	if !q.take(1, 5, t0.Add(200*time.Millisecond)) || q.take(1, 5, t0.Add(200*time.Millisecond)) {
		t.Fatal("after 200 ms at 5/s: want exactly one write")
	}
	if !q.take(2, 5, t0) {
		t.Fatal("range 2 shares range 1's bucket")
	}
	n = 0
	for q.take(1, 5, t0.Add(time.Hour)) {
		n++
	}
	if n != 5 {
		t.Fatalf("after an idle hour: %d writes, want the burst of 5", n)
	}
	// A fractional rate still allows one write (burst at least 1).
	if !q.take(3, 0.5, t0) || q.take(3, 0.5, t0.Add(time.Second)) || !q.take(3, 0.5, t0.Add(2*time.Second)) {
		t.Fatal("0.5 writes/s: want one now, none a second later, one two seconds later")
	}
}
