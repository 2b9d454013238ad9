package robustness

import (
	enc "encoding/binary"
	"io"
	"net"
	"strconv"
	"testing"
	"time"
)

// TestSlowLinkShapesOnlyItsNode checks the slow-link fault against the
// host: it shapes the traffic of the slowed node's peer port and nothing
// else. Before RELIABILITY.md #24 the tc filter meant to pick the slowed
// packets matched every packet on lo, so a "slow leader" fault throttled
// the whole host to 64 kbit/s, clients and other test processes included.
func TestSlowLinkShapesOnlyItsNode(t *testing.T) {
	requireFaultTools(t)
	base, err := uidBlock()
	if err != nil {
		t.Fatal(err)
	}
	slowed, other := sink(t), sink(t)
	n := &Node{Name: "slowed", UID: base + uidBlockSize - 1, PeerPort: port(t, slowed)}
	fw := newFirewall(t, []*Node{n})
	if err := fw.Slow([]*Node{n}, "64kbit", 0); err != nil {
		t.Fatal(err)
	}

	// 1 MiB to an unrelated port: 131 s at 64 kbit/s, about a millisecond
	// unshaped.
	if d, err := send(other, 1<<20, 10*time.Second); err != nil {
		t.Fatalf("unrelated traffic: %v after %v (the slow link shapes it)", err, d)
	}
	if _, shaped := fw.Dropped(); shaped != 0 {
		t.Fatalf("%d packets of unrelated traffic were shaped", shaped)
	}

	// To the slowed node's port: shaped, so 256 KiB (33 s) cannot get
	// through in a second.
	if d, err := send(slowed, 256<<10, time.Second); err == nil {
		t.Fatalf("256 KiB reached the slowed port in %v", d)
	}
	if _, shaped := fw.Dropped(); shaped == 0 {
		t.Fatal("no packet to the slowed port was shaped")
	}

	if err := fw.Heal(); err != nil {
		t.Fatal(err)
	}
	if d, err := send(slowed, 1<<20, 10*time.Second); err != nil {
		t.Fatalf("after heal: %v after %v", err, d)
	}
}

// sink listens on loopback; on every connection it reads a length (8
// bytes, big endian) and that many bytes, then answers one byte.
func sink(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var hdr [8]byte
				if _, err := io.ReadFull(c, hdr[:]); err != nil {
					return
				}
				if _, err := io.CopyN(io.Discard, c, int64(enc.BigEndian.Uint64(hdr[:]))); err != nil {
					return
				}
				_, _ = c.Write([]byte{1})
			}()
		}
	}()
	return l
}

func port(t *testing.T, l net.Listener) int {
	t.Helper()
	_, p, err := net.SplitHostPort(l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// send delivers size bytes to l on a new connection and waits for the
// answer, within timeout, and reports how long it took.
func send(l net.Listener, size int, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	c, err := net.DialTimeout("tcp", l.Addr().String(), timeout)
	if err != nil {
		return time.Since(start), err
	}
	defer c.Close()
	if err := c.SetDeadline(start.Add(timeout)); err != nil {
		return time.Since(start), err
	}
	msg := make([]byte, 8+size)
	enc.BigEndian.PutUint64(msg, uint64(size))
	if _, err := c.Write(msg); err != nil {
		return time.Since(start), err
	}
	_, err = io.ReadFull(c, make([]byte, 1))
	return time.Since(start), err
}
