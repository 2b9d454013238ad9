package resp

import (
	"math"
	"strconv"
)

// Writer appends RESP replies to a buffer. Proto selects the encoding of
// the types RESP2 lacks: with 2 (or 0), a map is written as a flat array,
// a set as an array, a null as "$-1" or "*-1", a double or a verbatim
// string as a bulk string, a boolean as an integer. The zero Writer writes
// RESP2. It is not safe for concurrent use.
type Writer struct {
	buf   []byte
	Proto int
}

// Bytes returns the buffered replies; valid until the next write or Reset.
func (w *Writer) Bytes() []byte { return w.buf }

// Len returns the number of buffered bytes.
func (w *Writer) Len() int { return len(w.buf) }

// Reset empties the buffer, keeping its memory unless it grew over
// keepBytes (then it is released).
func (w *Writer) Reset(keepBytes int) {
	if cap(w.buf) > keepBytes {
		w.buf = nil
		return
	}
	w.buf = w.buf[:0]
}

// Truncate drops what was written after the first n bytes.
func (w *Writer) Truncate(n int) { w.buf = w.buf[:n] }

// Raw appends bytes that are already RESP (e.g. another Writer's).
func (w *Writer) Raw(b []byte) { w.buf = append(w.buf, b...) }

func (w *Writer) resp3() bool { return w.Proto >= 3 }

func (w *Writer) header(kind byte, n int64) {
	w.buf = append(w.buf, kind)
	w.buf = strconv.AppendInt(w.buf, n, 10)
	w.buf = append(w.buf, '\r', '\n')
}

// appendLine appends s with '\r' and '\n' replaced by spaces, so that a
// message can never break the framing.
func (w *Writer) appendLine(s string) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		w.buf = append(w.buf, c)
	}
	w.buf = append(w.buf, '\r', '\n')
}

// SimpleString writes +s (line breaks in s become spaces).
func (w *Writer) SimpleString(s string) {
	w.buf = append(w.buf, '+')
	w.appendLine(s)
}

// Error writes -msg (line breaks become spaces). msg starts with the
// error code: "ERR syntax error".
func (w *Writer) Error(msg string) {
	w.buf = append(w.buf, '-')
	w.appendLine(msg)
}

// Integer writes :n.
func (w *Writer) Integer(n int64) { w.header(':', n) }

// Bulk writes a bulk string.
func (w *Writer) Bulk(b []byte) {
	w.header('$', int64(len(b)))
	w.buf = append(w.buf, b...)
	w.buf = append(w.buf, '\r', '\n')
}

// BulkString writes a bulk string.
func (w *Writer) BulkString(s string) {
	w.header('$', int64(len(s)))
	w.buf = append(w.buf, s...)
	w.buf = append(w.buf, '\r', '\n')
}

// Null writes the null reply: "_" in RESP3, the null bulk string "$-1" in
// RESP2.
func (w *Writer) Null() {
	if w.resp3() {
		w.buf = append(w.buf, "_\r\n"...)
		return
	}
	w.buf = append(w.buf, "$-1\r\n"...)
}

// NullArray writes the null array: "_" in RESP3, "*-1" in RESP2.
func (w *Writer) NullArray() {
	if w.resp3() {
		w.buf = append(w.buf, "_\r\n"...)
		return
	}
	w.buf = append(w.buf, "*-1\r\n"...)
}

// ArrayHeader starts an array of n elements.
func (w *Writer) ArrayHeader(n int) { w.header('*', int64(n)) }

// MapHeader starts a map of n key-value pairs (RESP2: an array of 2n).
func (w *Writer) MapHeader(n int) {
	if w.resp3() {
		w.header('%', int64(n))
		return
	}
	w.header('*', 2*int64(n))
}

// SetHeader starts a set of n elements (RESP2: an array).
func (w *Writer) SetHeader(n int) {
	if w.resp3() {
		w.header('~', int64(n))
		return
	}
	w.header('*', int64(n))
}

// PushHeader starts a push of n elements (RESP2: an array).
func (w *Writer) PushHeader(n int) {
	if w.resp3() {
		w.header('>', int64(n))
		return
	}
	w.header('*', int64(n))
}

// Double writes a double (RESP2: a bulk string), formatted as Redis does
// for inf, -inf and nan.
func (w *Writer) Double(f float64) {
	var s string
	switch {
	case math.IsInf(f, 1):
		s = "inf"
	case math.IsInf(f, -1):
		s = "-inf"
	case math.IsNaN(f):
		s = "nan"
	default:
		s = strconv.FormatFloat(f, 'g', 17, 64)
	}
	if w.resp3() {
		w.buf = append(w.buf, ',')
		w.buf = append(w.buf, s...)
		w.buf = append(w.buf, '\r', '\n')
		return
	}
	w.BulkString(s)
}

// Bool writes a boolean (RESP2: the integer 1 or 0).
func (w *Writer) Bool(b bool) {
	switch {
	case w.resp3() && b:
		w.buf = append(w.buf, "#t\r\n"...)
	case w.resp3():
		w.buf = append(w.buf, "#f\r\n"...)
	case b:
		w.Integer(1)
	default:
		w.Integer(0)
	}
}

// Verbatim writes a verbatim string with a three-byte format such as
// "txt" (RESP2: a bulk string of s).
func (w *Writer) Verbatim(format, s string) {
	if !w.resp3() || len(format) != 3 {
		w.BulkString(s)
		return
	}
	w.header('=', int64(len(s)+4))
	w.buf = append(w.buf, format...)
	w.buf = append(w.buf, ':')
	w.buf = append(w.buf, s...)
	w.buf = append(w.buf, '\r', '\n')
}

// Value writes v exactly as its Kind says, whatever Proto is; strings
// are written as they are (a Value from ReadValue has no line break
// where one would break the framing).
func (w *Writer) Value(v Value) {
	switch v.Kind {
	case SimpleString, Error, Double, BigNumber:
		w.buf = append(w.buf, byte(v.Kind))
		w.buf = append(w.buf, v.Str...)
		w.buf = append(w.buf, '\r', '\n')
	case Integer:
		w.header(':', v.Int)
	case Null:
		w.buf = append(w.buf, "_\r\n"...)
	case Boolean:
		if v.Int != 0 {
			w.buf = append(w.buf, "#t\r\n"...)
		} else {
			w.buf = append(w.buf, "#f\r\n"...)
		}
	case BulkString, BlobError, Verbatim:
		if v.IsNull {
			w.header(byte(v.Kind), -1)
			return
		}
		n := len(v.Str)
		if v.Kind == Verbatim {
			n += 4
		}
		w.header(byte(v.Kind), int64(n))
		if v.Kind == Verbatim {
			w.buf = append(w.buf, v.Format...)
			w.buf = append(w.buf, ':')
		}
		w.buf = append(w.buf, v.Str...)
		w.buf = append(w.buf, '\r', '\n')
	case Array, Set, Push, Map:
		if v.IsNull {
			w.header(byte(v.Kind), -1)
			return
		}
		n := len(v.Elems)
		if v.Kind == Map {
			n /= 2
		}
		w.header(byte(v.Kind), int64(n))
		for _, e := range v.Elems[:n*(1+btoi(v.Kind == Map))] {
			w.Value(e)
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
