package resp

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// Kind is the type of a RESP value: its first byte on the wire.
type Kind byte

// The RESP2 and RESP3 types.
const (
	SimpleString Kind = '+'
	Error        Kind = '-'
	Integer      Kind = ':'
	BulkString   Kind = '$'
	Array        Kind = '*'
	Null         Kind = '_' // RESP3
	Double       Kind = ',' // RESP3
	Boolean      Kind = '#' // RESP3
	BlobError    Kind = '!' // RESP3
	Verbatim     Kind = '=' // RESP3
	BigNumber    Kind = '(' // RESP3
	Map          Kind = '%' // RESP3
	Set          Kind = '~' // RESP3
	Push         Kind = '>' // RESP3
)

func (k Kind) String() string {
	switch k {
	case SimpleString:
		return "simple-string"
	case Error:
		return "error"
	case Integer:
		return "integer"
	case BulkString:
		return "bulk-string"
	case Array:
		return "array"
	case Null:
		return "null"
	case Double:
		return "double"
	case Boolean:
		return "boolean"
	case BlobError:
		return "blob-error"
	case Verbatim:
		return "verbatim"
	case BigNumber:
		return "big-number"
	case Map:
		return "map"
	case Set:
		return "set"
	case Push:
		return "push"
	}
	return fmt.Sprintf("kind(%q)", byte(k))
}

// Value is one RESP value as read by ReadValue.
type Value struct {
	Kind Kind
	// Str holds the text of SimpleString, Error, BulkString, BlobError,
	// Verbatim (without its format prefix), BigNumber and Double (as sent,
	// e.g. "1.5", "inf").
	Str []byte
	// Format is the three-byte format of a Verbatim string ("txt").
	Format string
	// Int holds an Integer, and a Boolean as 0 or 1.
	Int int64
	// Elems holds the elements of Array, Set and Push, and the keys and
	// values of a Map, alternating.
	Elems []Value
	// IsNull marks the RESP2 nulls: a BulkString "$-1" or an Array "*-1".
	IsNull bool
}

// IsAggregate reports whether k holds elements.
func (k Kind) IsAggregate() bool {
	return k == Array || k == Map || k == Set || k == Push
}

// Equal reports whether v and o are the same value. A nil and an empty
// Str or Elems are equal.
func (v Value) Equal(o Value) bool {
	if v.Kind != o.Kind || v.IsNull != o.IsNull || v.Int != o.Int || v.Format != o.Format ||
		!bytes.Equal(v.Str, o.Str) || len(v.Elems) != len(o.Elems) {
		return false
	}
	for i := range v.Elems {
		if !v.Elems[i].Equal(o.Elems[i]) {
			return false
		}
	}
	return true
}

// String describes v in one line, in a notation close to redis-cli's:
// "OK", (error) ERR x, (integer) 1, "bulk", (nil), [a, b], {k: v}.
func (v Value) String() string {
	var b strings.Builder
	v.describe(&b)
	return b.String()
}

func (v Value) describe(b *strings.Builder) {
	switch v.Kind {
	case SimpleString:
		b.WriteString(string(v.Str))
	case Error, BlobError:
		b.WriteString("(error) ")
		b.WriteString(string(v.Str))
	case Integer:
		b.WriteString("(integer) ")
		b.WriteString(strconv.FormatInt(v.Int, 10))
	case BulkString, Verbatim:
		if v.IsNull {
			b.WriteString("(nil)")
			return
		}
		if v.Kind == Verbatim {
			b.WriteString("(verbatim " + v.Format + ") ")
		}
		b.WriteString(strconv.Quote(string(v.Str)))
	case Null:
		b.WriteString("(nil)")
	case Double:
		b.WriteString("(double) ")
		b.WriteString(string(v.Str))
	case BigNumber:
		b.WriteString("(big) ")
		b.WriteString(string(v.Str))
	case Boolean:
		if v.Int != 0 {
			b.WriteString("(true)")
		} else {
			b.WriteString("(false)")
		}
	case Array, Set, Push:
		if v.IsNull {
			b.WriteString("(nil array)")
			return
		}
		open, close := "[", "]"
		if v.Kind == Set {
			open, close = "~[", "]"
		} else if v.Kind == Push {
			open, close = ">[", "]"
		}
		b.WriteString(open)
		for i, e := range v.Elems {
			if i > 0 {
				b.WriteString(", ")
			}
			e.describe(b)
		}
		b.WriteString(close)
	case Map:
		b.WriteString("{")
		for i := 0; i+1 < len(v.Elems); i += 2 {
			if i > 0 {
				b.WriteString(", ")
			}
			v.Elems[i].describe(b)
			b.WriteString(": ")
			v.Elems[i+1].describe(b)
		}
		b.WriteString("}")
	default:
		b.WriteString(v.Kind.String())
	}
}
