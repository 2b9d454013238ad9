package resp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
)

// Limits bound what a Reader accepts. Zero fields take the values of
// DefaultLimits (see EnsureDefaults).
type Limits struct {
	// MaxBulkBytes is the longest bulk string (also blob error and
	// verbatim string).
	MaxBulkBytes int
	// MaxElements is the most elements of one aggregate: arguments of a
	// command, elements of an array, set or push, keys plus values of a map.
	MaxElements int
	// MaxInlineBytes is the longest line: an inline command, a simple
	// string, an error.
	MaxInlineBytes int
	// MaxDepth is the deepest nesting of aggregates; a command is depth 1.
	MaxDepth int
	// MaxFrameBytes bounds the memory of one frame: the bytes of all its
	// strings, plus elementOverheadBytes per element of ReadValue.
	MaxFrameBytes int
}

// DefaultLimits suit a client reading replies; a server sets its own.
// MaxInlineBytes is Redis's PROTO_INLINE_MAX_SIZE.
var DefaultLimits = Limits{
	MaxBulkBytes:   8 << 20,
	MaxElements:    1 << 20,
	MaxInlineBytes: 64 << 10,
	MaxDepth:       32,
	MaxFrameBytes:  64 << 20,
}

// EnsureDefaults fills zero fields with DefaultLimits.
func (l *Limits) EnsureDefaults() {
	d := DefaultLimits
	if l.MaxBulkBytes <= 0 {
		l.MaxBulkBytes = d.MaxBulkBytes
	}
	if l.MaxElements <= 0 {
		l.MaxElements = d.MaxElements
	}
	if l.MaxInlineBytes <= 0 {
		l.MaxInlineBytes = d.MaxInlineBytes
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = d.MaxDepth
	}
	if l.MaxFrameBytes <= 0 {
		l.MaxFrameBytes = d.MaxFrameBytes
	}
}

// ProtocolError is malformed or over-limit input. The stream is out of
// sync after it: reply with Error() and close the connection.
type ProtocolError struct {
	Msg string
}

func (e *ProtocolError) Error() string { return "Protocol error: " + e.Msg }

func protoErr(format string, args ...any) error {
	return &ProtocolError{Msg: fmt.Sprintf(format, args...)}
}

const (
	// ReadBufferBytes is the Reader's buffer: pipelined commands up to
	// this size are parsed from one read system call.
	ReadBufferBytes = 8 << 10
	// maxNumberLineBytes bounds a length line ("*3", "$5"): an int64 has
	// at most 20 characters.
	maxNumberLineBytes = 32
	// bulkChunkBytes is how much of a bulk string is reserved before its
	// bytes arrive; beyond it the buffer doubles with what was received.
	bulkChunkBytes = 64 << 10
	// keepArenaBytes: a Reader drops buffers grown over this after the
	// frame that needed them, so an idle connection holds little memory.
	keepArenaBytes = 64 << 10
	keepArgs       = 1024
	// elementOverheadBytes is charged to MaxFrameBytes per element of
	// ReadValue: a Value is about this big.
	elementOverheadBytes = 64
)

var errTooLong = errors.New("resp: line too long")

// Reader reads RESP from a byte stream. It is not safe for concurrent use.
type Reader struct {
	br     *bufio.Reader
	limits Limits
	// arena holds the bytes of the current command's arguments; args
	// slices it.
	arena []byte
	args  [][]byte
	// line assembles a line longer than br's buffer.
	line []byte
	// frameBytes counts the current frame against MaxFrameBytes.
	frameBytes int
}

// NewReader returns a Reader of rd with limits (zero fields defaulted).
func NewReader(rd io.Reader, limits Limits) *Reader {
	limits.EnsureDefaults()
	return &Reader{br: bufio.NewReaderSize(rd, ReadBufferBytes), limits: limits}
}

// Buffered returns how many bytes are buffered: more than 0 means the
// next frame has (partly) arrived.
func (r *Reader) Buffered() int { return r.br.Buffered() }

// WaitFrame blocks until at least one byte of the next frame is
// available, or the stream fails.
func (r *Reader) WaitFrame() error {
	_, err := r.br.Peek(1)
	return err
}

func (r *Reader) resetFrame() {
	r.frameBytes = 0
	if cap(r.arena) > keepArenaBytes {
		r.arena = nil
	}
	r.arena = r.arena[:0]
	if cap(r.args) > keepArgs {
		r.args = nil
	}
	r.args = r.args[:0]
	if cap(r.line) > keepArenaBytes {
		r.line = nil
	}
}

// unexpected turns an EOF inside a frame into io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// readLine returns the next line without its "\r\n" (a bare "\n" is
// accepted too, as Redis does for inline commands). The slice is valid
// until the next read. A line over max bytes is errTooLong.
func (r *Reader) readLine(max int) ([]byte, error) {
	line, err := r.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		r.line = append(r.line[:0], line...)
		for err == bufio.ErrBufferFull {
			if len(r.line) > max+2 {
				return nil, errTooLong
			}
			line, err = r.br.ReadSlice('\n')
			r.line = append(r.line, line...)
		}
		line = r.line
	}
	if err != nil {
		return nil, unexpected(err)
	}
	n := len(line) - 1
	if n > 0 && line[n-1] == '\r' {
		n--
	}
	if n > max {
		return nil, errTooLong
	}
	return line[:n], nil
}

// chargeFrame adds n bytes to the frame's budget.
func (r *Reader) chargeFrame(n int) error {
	r.frameBytes += n
	if r.frameBytes > r.limits.MaxFrameBytes {
		return protoErr("frame is over the limit of %d bytes", r.limits.MaxFrameBytes)
	}
	return nil
}

// readBulk reads size bytes and the "\r\n" after them into the arena and
// returns the bytes. The arena grows as bytes arrive, never by more than
// what was received so far plus bulkChunkBytes.
func (r *Reader) readBulk(size int) ([]byte, error) {
	start := len(r.arena)
	need := size + 2
	for got := 0; got < need; {
		chunk := need - got
		if limit := max(bulkChunkBytes, got); chunk > limit {
			chunk = limit
		}
		r.arena = slices.Grow(r.arena, chunk)
		m := len(r.arena)
		r.arena = r.arena[:m+chunk]
		if _, err := io.ReadFull(r.br, r.arena[m:]); err != nil {
			return nil, unexpected(err)
		}
		got += chunk
	}
	end := start + size
	if r.arena[end] != '\r' || r.arena[end+1] != '\n' {
		return nil, protoErr("expected '\\r\\n' after bulk data")
	}
	r.arena = r.arena[:end]
	return r.arena[start:end:end], nil
}

// readLength reads a length line: the count of an aggregate or the size
// of a bulk string. It returns ok=false for a malformed number.
func (r *Reader) readLength(tooLong string) (n int64, ok bool, err error) {
	line, err := r.readLine(maxNumberLineBytes)
	if err == errTooLong {
		return 0, false, protoErr("%s", tooLong)
	}
	if err != nil {
		return 0, false, err
	}
	n, ok = ParseInt(line)
	return n, ok, nil
}

// ReadCommand reads the next command and returns its arguments, at least
// one. Empty frames (an empty line, "*0", "*-1") are skipped, as Redis
// does. The slices are valid until the next call. At the end of the
// stream between frames it returns io.EOF; inside a frame,
// io.ErrUnexpectedEOF; on bad input, a *ProtocolError.
func (r *Reader) ReadCommand() ([][]byte, error) {
	for {
		c, err := r.br.ReadByte()
		if err != nil {
			return nil, err
		}
		r.resetFrame()
		if c != '*' {
			_ = r.br.UnreadByte()
			args, err := r.readInline()
			if err != nil || len(args) > 0 {
				return args, err
			}
			continue
		}
		n, ok, err := r.readLength("too big mbulk count string")
		if err != nil {
			return nil, unexpected(err)
		}
		if !ok || n > math.MaxInt32 {
			return nil, protoErr("invalid multibulk length")
		}
		if n <= 0 {
			continue
		}
		if n > int64(r.limits.MaxElements) {
			return nil, protoErr("multibulk length %d is over the limit of %d", n, r.limits.MaxElements)
		}
		return r.readArgs(int(n))
	}
}

// readArgs reads n bulk strings of a multibulk command.
func (r *Reader) readArgs(n int) ([][]byte, error) {
	for range n {
		c, err := r.br.ReadByte()
		if err != nil {
			return nil, unexpected(err)
		}
		if c != '$' {
			return nil, protoErr("expected '$', got '%c'", c)
		}
		size, ok, err := r.readLength("too big bulk count string")
		if err != nil {
			return nil, unexpected(err)
		}
		if !ok || size < 0 {
			return nil, protoErr("invalid bulk length")
		}
		if size > int64(r.limits.MaxBulkBytes) {
			return nil, protoErr("bulk length %d is over the limit of %d", size, r.limits.MaxBulkBytes)
		}
		if err := r.chargeFrame(int(size)); err != nil {
			return nil, err
		}
		arg, err := r.readBulk(int(size))
		if err != nil {
			return nil, err
		}
		r.args = append(r.args, arg)
	}
	return r.args, nil
}

func (r *Reader) readInline() ([][]byte, error) {
	line, err := r.readLine(r.limits.MaxInlineBytes)
	if err == errTooLong {
		return nil, protoErr("too big inline request")
	}
	if err != nil {
		return nil, unexpected(err)
	}
	args, arena, ok := splitArgs(line, r.args[:0], r.arena[:0])
	r.args, r.arena = args, arena
	if !ok {
		return nil, protoErr("unbalanced quotes in request")
	}
	if len(args) > r.limits.MaxElements {
		return nil, protoErr("inline command has %d arguments; the limit is %d", len(args), r.limits.MaxElements)
	}
	return args, nil
}

// SplitArgs splits an inline command line into arguments as Redis's
// sdssplitargs does: words separated by white space; "double quotes" with
// \n \r \t \b \a \xHH and \<any> escapes; 'single quotes' with \'. A
// closing quote must be followed by white space or the end. ok is false
// for unbalanced quotes.
func SplitArgs(line []byte) (args [][]byte, ok bool) {
	args, _, ok = splitArgs(line, nil, nil)
	return args, ok
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

func hexVal(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// splitArgs appends the words of line to args, their bytes to arena.
func splitArgs(line []byte, args [][]byte, arena []byte) ([][]byte, []byte, bool) {
	// NB: Redis splits a C string: a NUL byte ends the line.
	if i := bytes.IndexByte(line, 0); i >= 0 {
		line = line[:i]
	}
	p := 0
	for {
		for p < len(line) && isSpace(line[p]) {
			p++
		}
		if p == len(line) {
			return args, arena, true
		}
		start := len(arena)
		var ok bool
		arena, p, ok = splitWord(line, p, arena)
		if !ok {
			return args, arena, false
		}
		args = append(args, arena[start:len(arena):len(arena)])
	}
}

// splitWord appends one word starting at line[p] to arena and returns
// the position after it.
func splitWord(line []byte, p int, arena []byte) ([]byte, int, bool) {
	inDouble, inSingle := false, false
	for {
		var c byte // 0 stands for the end of the line, as in C
		if p < len(line) {
			c = line[p]
		}
		end := p >= len(line)
		switch {
		case inDouble:
			switch {
			case end:
				return arena, p, false
			case c == '\\' && p+3 < len(line) && line[p+1] == 'x':
				hi, ok1 := hexVal(line[p+2])
				lo, ok2 := hexVal(line[p+3])
				if ok1 && ok2 {
					arena = append(arena, hi<<4|lo)
					p += 3
				} else {
					arena = append(arena, 'x')
					p++
				}
			case c == '\\' && p+1 < len(line):
				p++
				arena = append(arena, unescape(line[p]))
			case c == '"':
				if p+1 < len(line) && !isSpace(line[p+1]) {
					return arena, p, false
				}
				return arena, p + 1, true
			default:
				arena = append(arena, c)
			}
		case inSingle:
			switch {
			case end:
				return arena, p, false
			case c == '\\' && p+1 < len(line) && line[p+1] == '\'':
				p++
				arena = append(arena, '\'')
			case c == '\'':
				if p+1 < len(line) && !isSpace(line[p+1]) {
					return arena, p, false
				}
				return arena, p + 1, true
			default:
				arena = append(arena, c)
			}
		default:
			switch {
			case end || c == ' ' || c == '\n' || c == '\r' || c == '\t':
				return arena, p, true
			case c == '"':
				inDouble = true
			case c == '\'':
				inSingle = true
			default:
				arena = append(arena, c)
			}
		}
		p++
	}
}

func unescape(c byte) byte {
	switch c {
	case 'n':
		return '\n'
	case 'r':
		return '\r'
	case 't':
		return '\t'
	case 'b':
		return '\b'
	case 'a':
		return '\a'
	}
	return c
}

// ParseInt parses a decimal int64 as Redis's string2ll does: an optional
// '-', no '+', no leading zeros, no spaces, nothing else.
func ParseInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	if len(b) == 1 && b[0] == '0' {
		return 0, true
	}
	neg := b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || b[0] < '1' || b[0] > '9' {
		return 0, false
	}
	var u uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		if u > (math.MaxUint64-9)/10 {
			return 0, false
		}
		u = u*10 + uint64(c-'0')
	}
	if neg {
		if u > 1<<63 {
			return 0, false
		}
		return -int64(u-1) - 1, true
	}
	if u > math.MaxInt64 {
		return 0, false
	}
	return int64(u), true
}

// ReadValue reads the next value of any RESP2 or RESP3 type. Unlike
// ReadCommand's, the Values it returns own their memory. RESP3
// attributes ('|') are refused.
func (r *Reader) ReadValue() (Value, error) {
	c, err := r.br.ReadByte()
	if err != nil {
		return Value{}, err
	}
	r.resetFrame()
	r.arena = nil // the returned Values keep their bytes
	v, err := r.readValue(c, 0)
	if err != nil {
		return Value{}, unexpected(err)
	}
	return v, nil
}

func (r *Reader) readValue(c byte, depth int) (Value, error) {
	k := Kind(c)
	switch k {
	case SimpleString, Error, Double, BigNumber, Integer, Boolean, Null:
		return r.readLineValue(k)
	case BulkString, BlobError, Verbatim:
		return r.readBulkValue(k)
	case Array, Set, Push, Map:
		return r.readAggregate(k, depth+1)
	}
	return Value{}, protoErr("unknown type byte %q", c)
}

func (r *Reader) readLineValue(k Kind) (Value, error) {
	line, err := r.readLine(r.limits.MaxInlineBytes)
	if err == errTooLong {
		return Value{}, protoErr("%s is over the limit of %d bytes", k, r.limits.MaxInlineBytes)
	}
	if err != nil {
		return Value{}, err
	}
	if err := r.chargeFrame(len(line)); err != nil {
		return Value{}, err
	}
	v := Value{Kind: k}
	switch k {
	case Integer:
		n, ok := ParseInt(line)
		if !ok {
			return Value{}, protoErr("invalid integer %q", line)
		}
		v.Int = n
		return v, nil
	case Boolean:
		switch string(line) {
		case "t":
			v.Int = 1
		case "f":
		default:
			return Value{}, protoErr("invalid boolean %q", line)
		}
		return v, nil
	case Null:
		if len(line) != 0 {
			return Value{}, protoErr("invalid null")
		}
		return v, nil
	case Double:
		if _, err := strconv.ParseFloat(string(line), 64); err != nil && !isRangeError(err) {
			return Value{}, protoErr("invalid double %q", line)
		}
	case BigNumber:
		if !isBigNumber(line) {
			return Value{}, protoErr("invalid big number %q", line)
		}
	}
	v.Str = slices.Clone(line)
	if v.Str == nil {
		v.Str = []byte{}
	}
	return v, nil
}

func isRangeError(err error) bool {
	var ne *strconv.NumError
	return errors.As(err, &ne) && ne.Err == strconv.ErrRange
}

func isBigNumber(b []byte) bool {
	if len(b) > 0 && b[0] == '-' {
		b = b[1:]
	}
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func (r *Reader) readBulkValue(k Kind) (Value, error) {
	n, ok, err := r.readLength("too big bulk count string")
	if err != nil {
		return Value{}, err
	}
	if ok && n == -1 && k == BulkString {
		return Value{Kind: k, IsNull: true}, nil
	}
	if !ok || n < 0 {
		return Value{}, protoErr("invalid bulk length")
	}
	if n > int64(r.limits.MaxBulkBytes) {
		return Value{}, protoErr("bulk length %d is over the limit of %d", n, r.limits.MaxBulkBytes)
	}
	if err := r.chargeFrame(int(n)); err != nil {
		return Value{}, err
	}
	b, err := r.readBulk(int(n))
	if err != nil {
		return Value{}, err
	}
	v := Value{Kind: k, Str: b}
	if k == Verbatim {
		if len(b) < 4 || b[3] != ':' {
			return Value{}, protoErr("verbatim string without a format")
		}
		v.Format, v.Str = string(b[:3]), b[4:]
	}
	return v, nil
}

func (r *Reader) readAggregate(k Kind, depth int) (Value, error) {
	n, ok, err := r.readLength("too big mbulk count string")
	if err != nil {
		return Value{}, err
	}
	if ok && n == -1 && k == Array {
		return Value{Kind: k, IsNull: true}, nil
	}
	if !ok || n < 0 || n > math.MaxInt32 {
		return Value{}, protoErr("invalid multibulk length")
	}
	if k == Map {
		n *= 2
	}
	if n > int64(r.limits.MaxElements) {
		return Value{}, protoErr("%s of %d elements is over the limit of %d", k, n, r.limits.MaxElements)
	}
	if depth > r.limits.MaxDepth {
		return Value{}, protoErr("nesting is deeper than %d", r.limits.MaxDepth)
	}
	v := Value{Kind: k, Elems: make([]Value, 0, min(int(n), 16))}
	for range n {
		if err := r.chargeFrame(elementOverheadBytes); err != nil {
			return Value{}, err
		}
		c, err := r.br.ReadByte()
		if err != nil {
			return Value{}, err
		}
		e, err := r.readValue(c, depth)
		if err != nil {
			return Value{}, err
		}
		v.Elems = append(v.Elems, e)
	}
	return v, nil
}
