// Package resp reads and writes the Redis serialization protocol, RESP2
// and RESP3: bytes in, values out, with no policy about what the values
// mean. The Redis front end (internal/frontend/respapi) reads commands with
// a Reader and writes replies with a Writer; tests use ReadValue to parse
// replies as a client would.
//
// # Reading
//
// A Reader wraps a byte stream. ReadCommand returns the next command as
// its arguments: either a multibulk frame (an array of bulk strings, what
// every client library sends) or an inline command (a line of words, what
// telnet and `redis-cli` scripts may send; quoting as in Redis's
// sdssplitargs). Commands are read one after another from the same buffer,
// so pipelined commands cost no extra system calls. ReadValue reads any
// RESP2 or RESP3 value (replies).
//
// # Limits
//
// Every length in the input is checked against Limits before anything is
// allocated for it, and even a length within the limits is not allocated
// up front: a bulk string's buffer grows as its bytes arrive, and an
// array's slice grows as its elements arrive. Memory per Reader is
// therefore bounded by the bytes actually received, and by
// Limits.MaxFrameBytes for one frame. A frame over a limit, or malformed,
// yields a *ProtocolError; after one the stream is out of sync and the
// caller should reply with the error and close the connection, as Redis
// does. The texts of malformed-input errors are Redis's own ("Protocol
// error: invalid bulk length").
//
// # Invariants
//
//  1. The Reader never panics and never allocates more than a constant
//     times the bytes it has read, plus its buffer.
//  2. Whatever a Writer emits, ReadValue parses back to an equal Value
//     (FuzzReader checks both).
//  3. The slices ReadCommand returns alias the Reader's buffer: they are
//     valid until the next call on the Reader. Copy what must outlive it.
//
// Usage:
//
//	r := resp.NewReader(conn, limits)
//	var w resp.Writer
//	for {
//		args, err := r.ReadCommand()
//		if err != nil { ... }
//		w.SimpleString("OK")
//		conn.Write(w.Bytes()); w.Reset()
//	}
package resp
