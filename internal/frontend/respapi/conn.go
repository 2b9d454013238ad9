package respapi

import (
	"context"
	"errors"
	"io"
	"net"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/cairn-db/cairn/internal/resp"
)

// conn is one client connection. Its goroutine (serve) owns every field
// but the atomics, which CLIENT LIST and INFO read from other connections.
//
// The loop: wait for the first byte of a command (idle deadline), read the
// whole command (partial-command deadline), dispatch it, append its reply
// to out; write out when no further command is buffered (the end of a
// pipeline) or out is large, with a write deadline. A protocol error is
// answered and closes the connection; a reply buffer over
// MaxOutputBufferBytes closes it; a panic closes it and is logged.
type conn struct {
	srv     *Server
	nc      net.Conn
	id      int64
	r       *resp.Reader
	created time.Time
	addr    string
	laddr   string

	// out holds replies not yet written. scratch holds the replies of a
	// command that may be retried (a transaction), copied to out once it
	// committed.
	out     resp.Writer
	scratch resp.Writer

	// ctx is the parent of the connection's backend calls: the server's
	// context, carrying the principal once AUTH succeeded.
	ctx context.Context
	// authed is set by a successful AUTH (or HELLO AUTH), or by a
	// verified client certificate naming a user (certChecked: looked at).
	authed      bool
	certChecked bool

	proto   int       // 2 or 3 (HELLO)
	table   string    // CAIRN.TABLE
	level   connLevel // CAIRN.CONSISTENCY
	session sessionToken
	multi   *multiState
	watched []watchedKey
	// closing is set by QUIT and by fatal errors: flush, then close.
	closing bool
	// run collects pipelined SETs or GETs (pipeline.go).
	run pipelineRun

	// Socket deadlines (armRead, armWrite): partial is set while a
	// command is being read, partialArmed once its deadline is set;
	// readDeadline and writeDeadline are the deadlines last set.
	partial, partialArmed       bool
	readDeadline, writeDeadline time.Time

	// Read by other connections (CLIENT LIST).
	info       atomic.Pointer[clientInfo]
	lastCmd    atomic.Pointer[command]
	lastActive atomic.Int64 // unix nanoseconds of the last command
}

// clientInfo is what CLIENT SETNAME, SETINFO and HELLO set; replaced as a
// whole so that other goroutines read a consistent copy.
type clientInfo struct {
	name, libName, libVer string
	proto                 int
}

func newConn(s *Server, nc net.Conn) *conn {
	now := time.Now()
	c := &conn{
		srv:     s,
		nc:      nc,
		id:      int64(s.nextID.Add(1)),
		created: now,
		addr:    nc.RemoteAddr().String(),
		laddr:   nc.LocalAddr().String(),
		ctx:     s.ctx,
		proto:   2,
		table:   "default",
	}
	c.r = resp.NewReader(connReader{c}, s.limits)
	c.info.Store(&clientInfo{proto: 2})
	c.lastActive.Store(now.UnixNano())
	return c
}

func (c *conn) setProto(p int) {
	c.proto = p
	c.out.Proto, c.scratch.Proto = p, p
	info := *c.info.Load()
	info.proto = p
	c.info.Store(&info)
}

// serve runs the connection until the client leaves, a limit or protocol
// error ends it, or the server closes.
func (c *conn) serve() {
	defer c.srv.wg.Done()
	defer c.srv.untrack(c)
	defer c.nc.Close()
	defer func() {
		if p := recover(); p != nil {
			c.srv.log.Error("respapi: panic while serving a connection; closing it", "conn", c.id,
				"remote", c.addr, "panic", p, "stack", string(debug.Stack()))
		}
	}()
	opts := &c.srv.opts
	for {
		c.partial = false
		if c.r.Buffered() == 0 {
			if !c.flush() {
				return
			}
			if err := c.r.WaitFrame(); err != nil {
				c.readFailed(err)
				return
			}
		}
		c.partial, c.partialArmed = true, false
		args, err := c.r.ReadCommand()
		if err != nil {
			c.flushRun() // the commands received whole still run
			c.readFailed(err)
			return
		}
		c.collect(args)
		if c.closing {
			c.flush()
			return
		}
		if c.out.Len() > opts.MaxOutputBufferBytes {
			c.srv.log.Warn("respapi: client output buffer over the limit; closing the connection", "conn", c.id,
				"remote", c.addr, "bytes", c.out.Len(), "limit", opts.MaxOutputBufferBytes)
			return
		}
		if c.out.Len() >= flushBytes && !c.flush() {
			return
		}
	}
}

// connReader is what the connection's resp.Reader reads from: the socket,
// with its read deadline armed only when a read is about to happen (most
// commands arrive whole in one read, and setting a deadline costs a
// runtime timer update).
type connReader struct{ c *conn }

func (r connReader) Read(p []byte) (int, error) {
	r.c.armRead()
	return r.c.nc.Read(p)
}

// armRead sets the read deadline for the read about to happen: a command
// whose first byte arrived must arrive whole within PartialCommandTimeout
// of its first read that had to wait; between commands the connection may
// idle for IdleTimeout (0: forever).
func (c *conn) armRead() {
	var want time.Time
	switch opts := &c.srv.opts; {
	case c.partial:
		if c.partialArmed {
			return
		}
		c.partialArmed = true
		want = time.Now().Add(opts.PartialCommandTimeout)
	case opts.IdleTimeout > 0:
		want = time.Now().Add(opts.IdleTimeout)
	}
	if want.IsZero() && c.readDeadline.IsZero() {
		return
	}
	c.readDeadline = want
	_ = c.nc.SetReadDeadline(want)
}

// armWrite sets the write deadline for a write about to happen to
// WriteTimeout from now, renewing it only once a sixteenth of the timeout
// has passed since it was last set: a client that takes no replies is
// cut after 15/16 to all of WriteTimeout.
func (c *conn) armWrite() {
	wt := c.srv.opts.WriteTimeout
	now := time.Now()
	if c.writeDeadline.Sub(now) > wt-wt/16 {
		return
	}
	c.writeDeadline = now.Add(wt)
	_ = c.nc.SetWriteDeadline(c.writeDeadline)
}

// flush writes out the buffered replies; false if the connection failed.
func (c *conn) flush() bool {
	if c.out.Len() == 0 {
		return true
	}
	c.armWrite()
	_, err := c.nc.Write(c.out.Bytes())
	c.out.Reset(keepBufferBytes)
	if err != nil {
		c.srv.log.Debug("respapi: write failed; closing the connection", "conn", c.id, "remote", c.addr, "err", err)
		return false
	}
	return true
}

// readFailed handles a read error: a protocol error is answered (the
// stream is out of sync, so the connection then closes, as in Redis).
func (c *conn) readFailed(err error) {
	var pe *resp.ProtocolError
	var ne net.Error
	switch {
	case errors.As(err, &pe):
		c.out.Error("ERR " + pe.Error())
		c.flush()
		c.srv.log.Debug("respapi: protocol error; closing the connection", "conn", c.id, "remote", c.addr, "err", err)
	case errors.As(err, &ne) && ne.Timeout():
		c.srv.log.Debug("respapi: read timed out (idle, or a command sent in part); closing the connection",
			"conn", c.id, "remote", c.addr)
	case err == io.EOF:
	default:
		c.srv.log.Debug("respapi: read failed; closing the connection", "conn", c.id, "remote", c.addr, "err", err)
	}
}

// outputFull reports whether the replies being built for this connection
// are over the output buffer limit (the connection will be closed).
func (c *conn) outputFull(extra int) bool {
	return c.out.Len()+extra > c.srv.opts.MaxOutputBufferBytes
}

// replyErr answers a backend error through the error table.
func (c *conn) replyErr(err error) {
	if errors.Is(err, errOutputLimit) {
		// Nothing useful can be sent: close, as Redis does for a client
		// over its output buffer limit.
		c.srv.log.Warn("respapi: a reply would exceed the client output buffer limit; closing the connection",
			"conn", c.id, "remote", c.addr, "limit", c.srv.opts.MaxOutputBufferBytes)
		c.closing = true
		return
	}
	c.out.Error(errorReply(err, c.srv.log))
}
