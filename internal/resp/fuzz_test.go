package resp

// FuzzReader feeds arbitrary bytes to both ReadCommand and ReadValue with
// small limits. Properties:
//
//  1. Neither panics; every error is a *ProtocolError or an EOF.
//  2. Memory stays bounded: no argument or string over the limits, and the
//     Reader's arena stays within a constant of the input size.
//  3. Whatever ReadValue accepts, the Writer re-encodes to bytes that
//     ReadValue parses back to an equal Value; whatever ReadCommand
//     accepts, written as an array of bulk strings, reads back the same.
//
//	go test -run='^$' -fuzz=FuzzReader -fuzztime=30s ./internal/resp/

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func FuzzReader(f *testing.F) {
	seeds := []string{
		"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
		"PING\r\nSET a \"b c\" 'd'\r\n",
		"*1\r\n$-1\r\n", "*3000000000\r\n", "*1\r\n$99999999\r\nabc",
		"%2\r\n+a\r\n:1\r\n+b\r\n*2\r\n#t\r\n_\r\n",
		"=7\r\ntxt:abc\r\n", ",1e3\r\n", "(-12\r\n", "!1\r\nx\r\n", ">1\r\n~1\r\n$0\r\n\r\n",
		strings.Repeat("*1\r\n", 40) + ":1\r\n",
		"*1\r\n$4\r\nPINGxx\r\n", "\"unbalanced\r\n", "set \"\\x41\\x4\"\r\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	limits := Limits{MaxBulkBytes: 1 << 10, MaxElements: 64, MaxInlineBytes: 256, MaxDepth: 8, MaxFrameBytes: 8 << 10}
	f.Fuzz(func(t *testing.T, in []byte) {
		checkCommands(t, in, limits)
		checkValues(t, in, limits)
	})
}

func checkErr(t *testing.T, err error) {
	var pe *ProtocolError
	if !errors.As(err, &pe) && err != io.EOF && err != io.ErrUnexpectedEOF {
		t.Fatalf("unexpected error type %T: %v", err, err)
	}
}

func checkCommands(t *testing.T, in []byte, limits Limits) {
	r := NewReader(bytes.NewReader(in), limits)
	for {
		args, err := r.ReadCommand()
		if err != nil {
			checkErr(t, err)
			return
		}
		if len(args) == 0 || len(args) > limits.MaxElements {
			t.Fatalf("%d args", len(args))
		}
		if c := cap(r.arena); c > 4*len(in)+2*bulkChunkBytes {
			t.Fatalf("arena of %d bytes for %d bytes of input", c, len(in))
		}
		var w Writer
		w.ArrayHeader(len(args))
		for _, a := range args {
			if len(a) > limits.MaxBulkBytes {
				t.Fatalf("arg of %d bytes", len(a))
			}
			w.Bulk(a)
		}
		back, err := NewReader(bytes.NewReader(w.Bytes()), limits).ReadCommand()
		if err != nil {
			t.Fatalf("re-read of %q: %v", w.Bytes(), err)
		}
		if len(back) != len(args) {
			t.Fatalf("re-read %d args, want %d", len(back), len(args))
		}
		for i := range back {
			if !bytes.Equal(back[i], args[i]) {
				t.Fatalf("arg %d: %q, want %q", i, back[i], args[i])
			}
		}
	}
}

func checkValues(t *testing.T, in []byte, limits Limits) {
	r := NewReader(bytes.NewReader(in), limits)
	for {
		v, err := r.ReadValue()
		if err != nil {
			checkErr(t, err)
			return
		}
		var w Writer
		w.Value(v)
		back, err := NewReader(bytes.NewReader(w.Bytes()), limits).ReadValue()
		if err != nil {
			t.Fatalf("re-read of %q (from %v): %v", w.Bytes(), v, err)
		}
		if !back.Equal(v) {
			t.Fatalf("re-read %v, want %v", back, v)
		}
	}
}
