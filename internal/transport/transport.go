// Package transport carries Raft messages between nodes over gRPC streams
// (the Peer.Raft RPC on --listen-peer) and holds the per-peer gRPC
// connections that forwarded requests reuse.
//
// Outbound: one queue and one sender goroutine per destination node. The
// store hands messages of all ranges to Send, which never blocks: each
// message goes into its destination's bounded queue, or is dropped and
// reported unreachable when the queue is full (Raft retransmits; a slow
// peer must not stall the node's single Ready loop). The sender drains its
// queue into batches of up to maxBatchMsgs messages / maxBatchBytes bytes
// per stream Send, so a busy node sends few, large gRPC messages.
//
// Inbound: each stream's batches are decoded and passed to the Deliver
// callback, which blocks while the store's inbox is full; gRPC flow
// control then slows the sender (backpressure instead of unbounded
// buffering).
package transport

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/keys"
)

const (
	queueMsgs     = 4096
	maxBatchMsgs  = 512
	maxBatchBytes = 4 << 20
	// MaxMessageBytes bounds one gRPC message on the peer port: large
	// enough for a snapshot of a range at its size limit.
	MaxMessageBytes = 512 << 20
)

// RangeMessage is a Raft message of one range.
type RangeMessage struct {
	RangeID keys.RangeID
	Msg     raftpb.Message
}

// Callbacks connect the transport to the store.
type Callbacks struct {
	// Deliver receives inbound messages; it may block (backpressure).
	Deliver func(ctx context.Context, msgs []RangeMessage) error
	// Unreachable reports that messages to a node could not be sent.
	Unreachable func(rangeID keys.RangeID, to uint64)
	// SnapshotSent reports the outcome of sending a MsgSnap.
	SnapshotSent func(rangeID keys.RangeID, to uint64, ok bool)
}

// Transport is a node's peer transport.
type Transport struct {
	nodeID uint64
	cb     Callbacks
	logger *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// creds secures connections to peers (mTLS); nil is plaintext. Set
	// before the first AddPeer.
	creds credentials.TransportCredentials
	extra []grpc.DialOption

	mu struct {
		sync.Mutex
		peers map[uint64]*peer
	}
}

// SetCredentials makes connections to peers use creds (node-to-node
// mTLS). Call before AddPeer.
func (t *Transport) SetCredentials(creds credentials.TransportCredentials) { t.creds = creds }

// SetDialOptions adds gRPC options to connections to peers (for
// instance the interceptor that attaches a forwarded request's
// principal). Call before AddPeer.
func (t *Transport) SetDialOptions(opts ...grpc.DialOption) { t.extra = opts }

type peer struct {
	id    uint64
	addr  string
	conn  *grpc.ClientConn
	queue chan RangeMessage
	// ctx ends the peer's goroutines: when the transport closes, or when
	// AddPeer replaces the peer (a new address).
	ctx    context.Context
	cancel context.CancelFunc
}

// New returns a transport for node nodeID.
func New(nodeID uint64, cb Callbacks, logger *slog.Logger) *Transport {
	ctx, cancel := context.WithCancel(context.Background())
	t := &Transport{nodeID: nodeID, cb: cb, logger: logger, ctx: ctx, cancel: cancel}
	t.mu.peers = map[uint64]*peer{}
	return t
}

// DialOptions are the gRPC options for connections to peers.
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageBytes), grpc.MaxCallSendMsgSize(MaxMessageBytes)),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 2 * time.Second, Timeout: 2 * time.Second, PermitWithoutStream: true}),
		// gRPC's default reconnect backoff grows to 120 s: a peer that was
		// down for a minute would stay unreachable long after it restarts.
		// Peers are few and known, so retry them often.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: 2 * time.Second,
		}),
	}
}

// AddPeer registers node id at its peer address and starts its sender.
func (t *Transport) AddPeer(id uint64, addr string) error {
	if id == t.nodeID {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if p, ok := t.mu.peers[id]; ok && p.addr == addr {
		return nil
	}
	opts := DialOptions()
	if t.creds != nil {
		opts = append(opts, grpc.WithTransportCredentials(t.creds))
	}
	opts = append(opts, t.extra...)
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return fmt.Errorf("transport: peer %d at %s: %w", id, addr, err)
	}
	p := &peer{id: id, addr: addr, conn: conn, queue: make(chan RangeMessage, queueMsgs)}
	p.ctx, p.cancel = context.WithCancel(t.ctx)
	if old := t.mu.peers[id]; old != nil {
		old.cancel() // its sender and reconnector stop
		old.conn.Close()
	}
	t.mu.peers[id] = p
	t.wg.Add(2)
	go func() {
		defer t.wg.Done()
		t.runSender(p)
	}()
	go func() {
		defer t.wg.Done()
		t.keepConnected(p)
	}()
	return nil
}

// keepConnected reconnects p's connection whenever it goes idle. gRPC
// (pick_first) leaves a channel idle after a lost connection until the
// next RPC, but callers ask Connected before they send one, and a node
// that shares no range with the peer has no Raft traffic for it: after a
// partition the peer would look unreachable for good (RELIABILITY.md
// #21).
func (t *Transport) keepConnected(p *peer) {
	for {
		st := p.conn.GetState()
		if st == connectivity.Idle {
			p.conn.Connect()
		}
		if !p.conn.WaitForStateChange(p.ctx, st) {
			return // closed
		}
	}
}

// Client returns a Peer client for node id, or nil if it is unknown.
func (t *Transport) Client(id uint64) cairnpb.PeerClient {
	t.mu.Lock()
	p := t.mu.peers[id]
	t.mu.Unlock()
	if p == nil {
		return nil
	}
	return cairnpb.NewPeerClient(p.conn)
}

// Peers returns the known peers' IDs and addresses.
func (t *Transport) Peers() map[uint64]string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[uint64]string, len(t.mu.peers))
	for id, p := range t.mu.peers {
		out[id] = p.addr
	}
	return out
}

// Connected reports whether the connection to node id is up.
func (t *Transport) Connected(id uint64) bool {
	t.mu.Lock()
	p := t.mu.peers[id]
	t.mu.Unlock()
	return p != nil && p.conn.GetState() == connectivity.Ready
}

// Send queues messages of one range; it never blocks.
func (t *Transport) Send(rangeID keys.RangeID, msgs []raftpb.Message) {
	for _, m := range msgs {
		t.mu.Lock()
		p := t.mu.peers[m.To]
		t.mu.Unlock()
		if p == nil {
			t.cb.Unreachable(rangeID, m.To)
			continue
		}
		select {
		case p.queue <- RangeMessage{RangeID: rangeID, Msg: m}:
		default:
			t.failed(RangeMessage{RangeID: rangeID, Msg: m})
		}
	}
}

func (t *Transport) failed(m RangeMessage) {
	t.cb.Unreachable(m.RangeID, m.Msg.To)
	if m.Msg.Type == raftpb.MsgSnap {
		t.cb.SnapshotSent(m.RangeID, m.Msg.To, false)
	}
}

// runSender owns p's stream: it (re)connects with backoff and sends
// batches drained from p's queue.
func (t *Transport) runSender(p *peer) {
	backoff := 50 * time.Millisecond
	for p.ctx.Err() == nil {
		err := t.stream(p)
		if p.ctx.Err() != nil {
			return
		}
		t.logger.Debug("peer stream ended", "peer", p.id, "addr", p.addr, "err", err)
		// Drop what queued while disconnected: raft will resend.
		for drained := false; !drained; {
			select {
			case m := <-p.queue:
				t.failed(m)
			default:
				drained = true
			}
		}
		select {
		case <-p.ctx.Done():
			return
		case <-time.After(backoff):
		}
		if backoff *= 2; backoff > time.Second {
			backoff = time.Second
		}
	}
}

func (t *Transport) stream(p *peer) error {
	ctx, cancel := context.WithCancel(p.ctx)
	defer cancel()
	st, err := cairnpb.NewPeerClient(p.conn).Raft(ctx)
	if err != nil {
		return err
	}
	var pending []RangeMessage
	for {
		pending = pending[:0]
		select {
		case <-ctx.Done():
			return ctx.Err()
		case m := <-p.queue:
			pending = append(pending, m)
		}
		size := pending[0].Msg.Size()
	drain:
		for len(pending) < maxBatchMsgs && size < maxBatchBytes {
			select {
			case m := <-p.queue:
				pending = append(pending, m)
				size += m.Msg.Size()
			default:
				break drain
			}
		}
		batch := &cairnpb.RaftBatch{FromNode: t.nodeID, ToNode: p.id, Msgs: make([]*cairnpb.RaftMessage, 0, len(pending))}
		for _, m := range pending {
			data, err := m.Msg.Marshal()
			if err != nil {
				return err
			}
			batch.Msgs = append(batch.Msgs, &cairnpb.RaftMessage{RangeId: uint64(m.RangeID), Msg: data})
		}
		if err := st.Send(batch); err != nil {
			for _, m := range pending {
				t.failed(m)
			}
			return err
		}
		for _, m := range pending {
			if m.Msg.Type == raftpb.MsgSnap {
				t.cb.SnapshotSent(m.RangeID, m.Msg.To, true)
			}
		}
	}
}

// HandleStream serves one inbound Peer.Raft stream.
func (t *Transport) HandleStream(st cairnpb.Peer_RaftServer) error {
	for {
		batch, err := st.Recv()
		if err != nil {
			return err
		}
		if batch.ToNode != t.nodeID {
			return fmt.Errorf("transport: batch for node %d reached node %d", batch.ToNode, t.nodeID)
		}
		msgs := make([]RangeMessage, 0, len(batch.Msgs))
		for _, rm := range batch.Msgs {
			var m raftpb.Message
			if err := m.Unmarshal(rm.Msg); err != nil {
				return fmt.Errorf("transport: bad raft message from node %d: %w", batch.FromNode, err)
			}
			if m.To != t.nodeID || m.From != batch.FromNode {
				return fmt.Errorf("transport: message %d->%d in a batch %d->%d", m.From, m.To, batch.FromNode, batch.ToNode)
			}
			msgs = append(msgs, RangeMessage{RangeID: keys.RangeID(rm.RangeId), Msg: m})
		}
		if err := t.cb.Deliver(st.Context(), msgs); err != nil {
			return err
		}
	}
}

// Close stops all senders and closes connections.
func (t *Transport) Close() {
	t.cancel()
	t.wg.Wait()
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, p := range t.mu.peers {
		p.conn.Close()
	}
}
