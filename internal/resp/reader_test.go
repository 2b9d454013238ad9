package resp

// Table tests of the Reader: commands (multibulk, inline, pipelined),
// every protocol error with the text Redis uses where Redis has one, the
// limits, and ReadValue over every RESP3 type. The texts were checked
// against redis-server 7.0.

import (
	"bytes"
	"errors"
	"io"
	"math"
	"strings"
	"testing"
	"testing/iotest"
)

func readAll(t *testing.T, in string, limits Limits) ([]string, error) {
	t.Helper()
	r := NewReader(strings.NewReader(in), limits)
	var out []string
	for {
		args, err := r.ReadCommand()
		if err != nil {
			if err == io.EOF {
				return out, nil
			}
			return out, err
		}
		var words []string
		for _, a := range args {
			words = append(words, string(a))
		}
		out = append(out, strings.Join(words, "|"))
	}
}

func TestReadCommand(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
		err      string
	}{
		{"multibulk", "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", []string{"GET|k"}, ""},
		{"pipelined", "*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$0\r\n\r\nPING\r\n", []string{"PING", "ECHO|", "PING"}, ""},
		{"binary arg", "*2\r\n$3\r\nSET\r\n$4\r\n\x00\r\n\xff\r\n", []string{"SET|\x00\r\n\xff"}, ""},
		{"empty frames skipped", "*0\r\n*-1\r\n\r\n   \r\nPING\r\n", []string{"PING"}, ""},
		{"inline bare newline", "SET a b\nGET a\n", []string{"SET|a|b", "GET|a"}, ""},
		{"inline quotes", `SET "a b" 'c d' "\x41\n"` + "\r\n", []string{"SET|a b|c d|A\n"}, ""},
		{"inline quote mid word", `SET a"b c"d` + "\r\n", nil, "Protocol error: unbalanced quotes in request"},
		{"inline NUL ends the line", "ECHO a\x00 b\r\n", []string{"ECHO|a"}, ""},
		{"inline escaped single", `ECHO 'it\'s'` + "\r\n", []string{"ECHO|it's"}, ""},
		{"inline unbalanced", "SET \"a\r\n", nil, "Protocol error: unbalanced quotes in request"},
		{"inline closing quote glued", "SET \"a\"b\r\n", nil, "Protocol error: unbalanced quotes in request"},
		{"bad multibulk length", "*1x\r\n", nil, "Protocol error: invalid multibulk length"},
		{"plus sign", "*+1\r\n", nil, "Protocol error: invalid multibulk length"},
		{"leading zero", "*01\r\n", nil, "Protocol error: invalid multibulk length"},
		{"huge multibulk", "*3000000000\r\n", nil, "Protocol error: invalid multibulk length"},
		{"multibulk over limit", "*2000000\r\n", nil, "Protocol error: multibulk length 2000000 is over the limit of 1048576"},
		{"expected dollar", "*1\r\n:1\r\n", nil, "Protocol error: expected '$', got ':'"},
		{"negative bulk", "*1\r\n$-1\r\n", nil, "Protocol error: invalid bulk length"},
		{"bad bulk", "*1\r\n$4x\r\nPING\r\n", nil, "Protocol error: invalid bulk length"},
		{"bulk over limit", "*1\r\n$600000000\r\n", nil, "Protocol error: bulk length 600000000 is over the limit of 8388608"},
		{"bulk without crlf", "*1\r\n$4\r\nPINGxx\r\n", nil, "Protocol error: expected '\\r\\n' after bulk data"},
		{"too big count line", "*" + strings.Repeat("1", 40) + "\r\n", nil, "Protocol error: too big mbulk count string"},
		{"too big bulk line", "*1\r\n$" + strings.Repeat("1", 40) + "\r\n", nil, "Protocol error: too big bulk count string"},
		{"too big inline", strings.Repeat("a", 70<<10) + "\r\n", nil, "Protocol error: too big inline request"},
		{"truncated", "*2\r\n$3\r\nGET\r\n$1\r\n", nil, io.ErrUnexpectedEOF.Error()},
		{"truncated bulk", "*1\r\n$10\r\nabc", nil, io.ErrUnexpectedEOF.Error()},
		{"truncated inline", "PING", nil, io.ErrUnexpectedEOF.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readAll(t, tt.in, Limits{})
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("error %v, want %q (read %q)", err, tt.err, got)
				}
				var pe *ProtocolError
				if strings.HasPrefix(tt.err, "Protocol") != errors.As(err, &pe) {
					t.Fatalf("error %v: ProtocolError %v", err, errors.As(err, &pe))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestReadCommandLimits(t *testing.T) {
	l := Limits{MaxBulkBytes: 10, MaxElements: 3, MaxInlineBytes: 16, MaxFrameBytes: 15}
	tests := []struct{ in, err string }{
		{"*1\r\n$10\r\n0123456789\r\n", ""},
		{"*1\r\n$11\r\n", "Protocol error: bulk length 11 is over the limit of 10"},
		{"*4\r\n", "Protocol error: multibulk length 4 is over the limit of 3"},
		{"*2\r\n$10\r\n0123456789\r\n$6\r\n", "Protocol error: frame is over the limit of 15 bytes"},
		{"a b c d\r\n", "Protocol error: inline command has 4 arguments; the limit is 3"},
		{strings.Repeat("x", 17) + "\r\n", "Protocol error: too big inline request"},
		{strings.Repeat("x", 16) + "\r\n", ""},
	}
	for _, tt := range tests {
		_, err := readAll(t, tt.in, l)
		if (err == nil) != (tt.err == "") || (err != nil && err.Error() != tt.err) {
			t.Errorf("%q: error %v, want %q", tt.in, err, tt.err)
		}
	}
}

// TestReadBulkGrowsWithData checks that a declared length is not
// allocated before its bytes arrive: a 100 MB bulk string announced but
// never sent costs about the bulkChunkBytes of what was reserved.
func TestReadBulkGrowsWithData(t *testing.T) {
	in := "*1\r\n$100000000\r\n" + strings.Repeat("x", 1000)
	r := NewReader(strings.NewReader(in), Limits{MaxBulkBytes: 200 << 20, MaxFrameBytes: 200 << 20})
	_, err := r.ReadCommand()
	if err != io.ErrUnexpectedEOF {
		t.Fatalf("err %v", err)
	}
	if c := cap(r.arena); c > 2*bulkChunkBytes {
		t.Fatalf("arena grew to %d bytes for 1000 received", c)
	}
}

func TestReadCommandOneByteAtATime(t *testing.T) {
	in := "*2\r\n$3\r\nGET\r\n$5\r\nhello\r\nPING x\r\n"
	r := NewReader(iotest.OneByteReader(strings.NewReader(in)), Limits{})
	for _, want := range []string{"GET hello", "PING x"} {
		args, err := r.ReadCommand()
		if err != nil {
			t.Fatal(err)
		}
		if got := string(bytes.Join(args, []byte(" "))); got != want {
			t.Fatalf("got %q want %q", got, want)
		}
	}
}

func TestParseInt(t *testing.T) {
	ok := map[string]int64{"0": 0, "1": 1, "-1": -1, "9223372036854775807": math.MaxInt64,
		"-9223372036854775808": math.MinInt64, "10": 10}
	for s, want := range ok {
		if got, k := ParseInt([]byte(s)); !k || got != want {
			t.Errorf("ParseInt(%q) = %d, %v", s, got, k)
		}
	}
	for _, s := range []string{"", "-", "+1", "01", "-0", " 1", "1 ", "1.5", "9223372036854775808",
		"-9223372036854775809", "99999999999999999999", "123456789012345678901", "0x1", "1e3"} {
		if _, k := ParseInt([]byte(s)); k {
			t.Errorf("ParseInt(%q) accepted", s)
		}
	}
}

func TestReadValue(t *testing.T) {
	tests := []struct{ in, want string }{
		{"+OK\r\n", "OK"},
		{"-ERR x\r\n", "(error) ERR x"},
		{":-5\r\n", "(integer) -5"},
		{"$3\r\nabc\r\n", `"abc"`},
		{"$-1\r\n", "(nil)"},
		{"*-1\r\n", "(nil array)"},
		{"_\r\n", "(nil)"},
		{",1.5\r\n", "(double) 1.5"},
		{",inf\r\n", "(double) inf"},
		{"#t\r\n", "(true)"},
		{"!3\r\nbad\r\n", "(error) bad"},
		{"=7\r\ntxt:abc\r\n", `(verbatim txt) "abc"`},
		{"(123\r\n", "(big) 123"},
		{"*2\r\n:1\r\n*1\r\n+x\r\n", "[(integer) 1, [x]]"},
		{"%1\r\n+k\r\n:1\r\n", "{k: (integer) 1}"},
		{"~1\r\n+a\r\n", "~[a]"},
		{">2\r\n+message\r\n+x\r\n", ">[message, x]"},
	}
	for _, tt := range tests {
		v, err := NewReader(strings.NewReader(tt.in), Limits{}).ReadValue()
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		if v.String() != tt.want {
			t.Errorf("%q: %s, want %s", tt.in, v, tt.want)
		}
		var w Writer
		w.Value(v)
		if string(w.Bytes()) != tt.in {
			t.Errorf("%q re-encoded as %q", tt.in, w.Bytes())
		}
	}
	bad := []string{":1.5\r\n", "#x\r\n", "_x\r\n", ",abc\r\n", "(12a\r\n", "=2\r\nab\r\n", "|1\r\n", "?\r\n",
		"*-2\r\n", "%-1\r\n", "$-2\r\n"}
	for _, in := range bad {
		if _, err := NewReader(strings.NewReader(in), Limits{}).ReadValue(); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

func TestReadValueDepth(t *testing.T) {
	deep := strings.Repeat("*1\r\n", 5) + ":1\r\n"
	if _, err := NewReader(strings.NewReader(deep), Limits{MaxDepth: 5}).ReadValue(); err != nil {
		t.Fatal(err)
	}
	_, err := NewReader(strings.NewReader(deep), Limits{MaxDepth: 4}).ReadValue()
	if err == nil || err.Error() != "Protocol error: nesting is deeper than 4" {
		t.Fatalf("err %v", err)
	}
}

func TestSplitArgs(t *testing.T) {
	args, ok := SplitArgs([]byte(`set "a\tb" 'x y' plain "\x4"`))
	if !ok || len(args) != 5 || string(args[1]) != "a\tb" || string(args[2]) != "x y" || string(args[4]) != "x4" {
		t.Fatalf("%q %v", args, ok)
	}
}
