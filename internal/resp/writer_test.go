package resp

// Table tests of the Writer: each reply type in RESP2 and RESP3, as
// Redis encodes it.

import (
	"math"
	"testing"
)

func TestWriter(t *testing.T) {
	tests := []struct {
		name         string
		write        func(w *Writer)
		resp2, resp3 string
	}{
		{"simple", func(w *Writer) { w.SimpleString("OK") }, "+OK\r\n", "+OK\r\n"},
		{"simple with newline", func(w *Writer) { w.SimpleString("a\r\nb") }, "+a  b\r\n", "+a  b\r\n"},
		{"error", func(w *Writer) { w.Error("ERR bad\nthing") }, "-ERR bad thing\r\n", "-ERR bad thing\r\n"},
		{"integer", func(w *Writer) { w.Integer(math.MinInt64) }, ":-9223372036854775808\r\n", ":-9223372036854775808\r\n"},
		{"bulk", func(w *Writer) { w.Bulk([]byte("a\r\nb")) }, "$4\r\na\r\nb\r\n", "$4\r\na\r\nb\r\n"},
		{"empty bulk", func(w *Writer) { w.BulkString("") }, "$0\r\n\r\n", "$0\r\n\r\n"},
		{"null", func(w *Writer) { w.Null() }, "$-1\r\n", "_\r\n"},
		{"null array", func(w *Writer) { w.NullArray() }, "*-1\r\n", "_\r\n"},
		{"map", func(w *Writer) { w.MapHeader(1); w.BulkString("k"); w.Integer(1) }, "*2\r\n$1\r\nk\r\n:1\r\n", "%1\r\n$1\r\nk\r\n:1\r\n"},
		{"set", func(w *Writer) { w.SetHeader(0) }, "*0\r\n", "~0\r\n"},
		{"push", func(w *Writer) { w.PushHeader(1); w.Integer(1) }, "*1\r\n:1\r\n", ">1\r\n:1\r\n"},
		{"double", func(w *Writer) { w.Double(1.5) }, "$3\r\n1.5\r\n", ",1.5\r\n"},
		{"double inf", func(w *Writer) { w.Double(math.Inf(-1)) }, "$4\r\n-inf\r\n", ",-inf\r\n"},
		{"bool", func(w *Writer) { w.Bool(true) }, ":1\r\n", "#t\r\n"},
		{"verbatim", func(w *Writer) { w.Verbatim("txt", "hi") }, "$2\r\nhi\r\n", "=6\r\ntxt:hi\r\n"},
	}
	for _, tt := range tests {
		for _, proto := range []int{2, 3} {
			w := Writer{Proto: proto}
			tt.write(&w)
			want := tt.resp2
			if proto == 3 {
				want = tt.resp3
			}
			if string(w.Bytes()) != want {
				t.Errorf("%s proto %d: %q, want %q", tt.name, proto, w.Bytes(), want)
			}
		}
	}
}

func TestWriterResetReleasesBigBuffers(t *testing.T) {
	var w Writer
	w.Bulk(make([]byte, 1<<20))
	w.Reset(64 << 10)
	if cap(w.buf) != 0 {
		t.Fatalf("kept %d bytes", cap(w.buf))
	}
	w.Integer(1)
	w.Reset(64 << 10)
	if cap(w.buf) == 0 || w.Len() != 0 {
		t.Fatalf("small buffer not kept or not emptied")
	}
}
