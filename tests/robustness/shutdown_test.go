package robustness

import (
	"net"
	"testing"
	"time"
)

// TestSIGTERMWithStalledPeerConnection: a peer that opened a connection
// to a node's peer port and then went silent (frozen, or cut off by a
// partition right after the TCP handshake) must not hold up the node's
// graceful shutdown: SIGTERM still ends in a clean exit within
// exitTimeout. Found by the chaos scenario (a SIGTERM during a split hung
// past 10 s); the silent peer here is a bare TCP connection from the test.
// grpc.Server.Stop waits for connections still in their HTTP/2 handshake,
// which gRPC bounds by 120 s unless told otherwise (fixed in 6cddd38: 5 s).
func TestSIGTERMWithStalledPeerConnection(t *testing.T) {
	requireFaultTools(t)
	tl := &timeline{start: time.Now()}
	c := StartCluster(t, clusterOpts{nodes: 3}, tl)
	n := c.Nodes[0]
	conn, err := net.DialTimeout("tcp", n.Peer, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	time.Sleep(200 * time.Millisecond) // accepted; the server now waits for the HTTP/2 preface
	start := time.Now()
	err = n.Term()
	t.Logf("SIGTERM of %s with a silent connection on its peer port: %v after %v", n.Name, err, time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Error(err)
	}
}
