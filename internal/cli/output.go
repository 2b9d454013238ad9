package cli

import (
	"encoding/json"
	"io"
	"strconv"
	"text/tabwriter"
	"unicode/utf8"

	"github.com/cairn-db/cairn/internal/keys/hashkey"
)

// writeJSON writes v as one line of JSON.
func writeJSON(w io.Writer, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// NB: only our own plain structs reach here, so this is a bug;
		// still print valid JSON.
		b, _ = json.Marshal(map[string]any{"error": map[string]string{"code": "internal", "message": "cli: encoding output: " + err.Error()}})
	}
	b = append(b, '\n')
	_, _ = w.Write(b)
}

// newTable returns a tabwriter for aligned text columns.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
}

// printable returns b as text for a table cell: as is if it is printable
// UTF-8, else Go-quoted; "-" if empty.
func printable(b []byte) string {
	if len(b) == 0 {
		return "-"
	}
	s := string(b)
	if utf8.ValidString(s) && strconv.Quote(s) == `"`+s+`"` && !containsSpace(s) {
		return s
	}
	return strconv.Quote(s)
}

func containsSpace(s string) bool {
	for _, r := range s {
		if r == ' ' || r == '\t' {
			return true
		}
	}
	return false
}

// printBound renders a range boundary; on a hash table its hash position
// in hex (the format "cairn range split" takes for hash tables).
func printBound(partitioning string, b []byte) string {
	if partitioning == "hash" && len(b) > 0 {
		return hashkey.FormatBound(b)
	}
	return printable(b)
}
