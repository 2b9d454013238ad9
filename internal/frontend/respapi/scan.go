package respapi

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/resp"
)

// SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]
//
// A page of SCAN is a page of List: COUNT keys (default 10, at most the
// List page limit) after the last key of the previous page, filtered by
// MATCH. The literal prefix of the pattern (up to its first wildcard)
// narrows the List.
//
// Cursors: List resumes from a page token naming the last key, but Redis
// clients parse the cursor as an unsigned 64-bit number (go-redis's
// ScanCmd, redis-cli --scan's strtoull) and stop at "0". So the cursor is
// a random number naming the page token in a node-wide table of recent
// cursors (cursorTable): any connection to the same node may continue a
// scan, as go-redis's connection pool does. A cursor forgotten (over
// maxScanCursors newer ones were issued since) or issued by another node
// is refused with a clear error: start again from 0. The guarantee is
// List's: every key present during the whole scan is returned exactly
// once (Redis's is "at least once").

// maxScanCursors bounds the cursor table; the oldest cursor is forgotten
// first.
const maxScanCursors = 16384

// defaultScanCount is Redis's COUNT default.
const defaultScanCount = 10

type scanCursor struct {
	table string
	token string
}

// cursorTable maps cursor numbers to page tokens. Safe for concurrent use.
type cursorTable struct {
	mu   sync.Mutex
	byID map[uint64]scanCursor // guarded by mu
	ring []uint64              // issued cursors, oldest at next once full; guarded by mu
	next int                   // guarded by mu
	// newID returns a candidate cursor number (tests make it
	// deterministic).
	newID func() uint64
}

func newCursorTable(capacity int) *cursorTable {
	return &cursorTable{byID: map[uint64]scanCursor{}, ring: make([]uint64, 0, capacity),
		newID: func() uint64 { return rand.Uint64() >> 1 }}
}

// put registers a cursor and returns its number: random, non-zero, below
// 2^63 (some clients parse it as a signed number).
func (t *cursorTable) put(sc scanCursor) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var id uint64
	for id == 0 || t.byID[id] != (scanCursor{}) {
		id = t.newID()
	}
	if len(t.ring) < cap(t.ring) {
		t.ring = append(t.ring, id)
	} else {
		delete(t.byID, t.ring[t.next])
		t.ring[t.next] = id
		t.next = (t.next + 1) % len(t.ring)
	}
	t.byID[id] = sc
	return id
}

func (t *cursorTable) get(id uint64) (scanCursor, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	sc, ok := t.byID[id]
	return sc, ok
}

type scanArgs struct {
	cursor  uint64
	match   []byte
	count   int
	typ     string
	errText string
}

func parseScan(args [][]byte) scanArgs {
	a := scanArgs{count: defaultScanCount}
	cursor, err := strconv.ParseUint(string(args[1]), 10, 64)
	if err != nil {
		a.errText = msgInvalidCursor
		return a
	}
	a.cursor = cursor
	for i := 2; i < len(args); i += 2 {
		if i+1 >= len(args) {
			a.errText = msgSyntax
			return a
		}
		switch strings.ToLower(string(args[i])) {
		case "match":
			a.match = args[i+1]
		case "count":
			n, ok := resp.ParseInt(args[i+1])
			if !ok {
				a.errText = msgNotInteger
				return a
			}
			if n < 1 {
				a.errText = msgSyntax
				return a
			}
			a.count = int(min(n, 1<<30))
		case "type":
			a.typ = strings.ToLower(string(args[i+1]))
		default:
			a.errText = msgSyntax
			return a
		}
	}
	return a
}

func runScan(c *conn, args [][]byte) {
	a := parseScan(args)
	if a.errText != "" {
		c.out.Error(a.errText)
		return
	}
	sc := scanCursor{table: c.table}
	if a.cursor != 0 {
		var ok bool
		if sc, ok = c.srv.cursors.get(a.cursor); !ok {
			c.out.Error(msgUnknownCursor)
			return
		}
	}
	resp, err := c.backend().List(c.ctx, &cairnpb.ListRequest{
		Table:     sc.table,
		Prefix:    literalPrefix(a.match),
		Limit:     uint32(min(a.count, c.srv.opts.Limits.MaxListLimit)),
		PageToken: sc.token,
	})
	if err != nil {
		c.replyErr(err)
		return
	}
	var keys [][]byte
	for _, it := range resp.Items {
		if (a.match == nil || globMatch(a.match, it.Key, false)) && (a.typ == "" || a.typ == "string") {
			keys = append(keys, it.Key)
		}
	}
	next := "0"
	if resp.NextPageToken != "" {
		next = strconv.FormatUint(c.srv.cursors.put(scanCursor{table: sc.table, token: resp.NextPageToken}), 10)
	}
	c.out.ArrayHeader(2)
	c.out.BulkString(next)
	c.out.ArrayHeader(len(keys))
	for _, k := range keys {
		c.out.Bulk(k)
	}
}

// DBSIZE counts the keys of the connection's table, a List page at a time.
func runDBSize(c *conn, _ [][]byte) {
	n, err := countKeys(c, c.table)
	if err != nil {
		c.replyErr(err)
		return
	}
	c.out.Integer(n)
}

func countKeys(c *conn, table string) (int64, error) {
	st, err := keyStats(c, table)
	return st.keys, err
}

// keyspaceStats are INFO keyspace's numbers for a table.
type keyspaceStats struct {
	keys, expires int64
	ttlSumMs      int64 // remaining TTL summed over the keys with one
}

func keyStats(c *conn, table string) (keyspaceStats, error) {
	var st keyspaceStats
	token := ""
	now := time.Now().UnixMilli()
	for {
		resp, err := c.backend().List(c.ctx, &cairnpb.ListRequest{
			Table: table, Limit: uint32(c.srv.opts.Limits.MaxListLimit), PageToken: token,
		})
		if err != nil {
			return st, err
		}
		st.keys += int64(len(resp.Items))
		for _, it := range resp.Items {
			if it.ExpireAtMs != 0 {
				st.expires++
				st.ttlSumMs += max(it.ExpireAtMs-now, 0)
			}
		}
		if resp.NextPageToken == "" {
			return st, nil
		}
		token = resp.NextPageToken
	}
}

// literalPrefix returns the bytes every match of a glob pattern starts
// with: the pattern up to its first wildcard, unescaped.
func literalPrefix(pattern []byte) []byte {
	var out []byte
	for i := 0; i < len(pattern); i++ {
		switch c := pattern[i]; c {
		case '*', '?', '[':
			return out
		case '\\':
			if i+1 == len(pattern) {
				return out
			}
			i++
			out = append(out, pattern[i])
		default:
			out = append(out, c)
		}
	}
	return out
}

// globMatch reports whether s matches a Redis glob pattern: * any bytes,
// ? one byte, [abc] [^abc] [a-z] a class, \x the byte x. It backtracks
// only to the last star, so it runs in O(len(pattern)*len(s)).
func globMatch(pattern, s []byte, nocase bool) bool {
	p, i := 0, 0
	starP, starI := -1, -1
	for i < len(s) || p < len(pattern) {
		if p < len(pattern) {
			if pattern[p] == '*' {
				starP, starI = p, i
				p++
				continue
			}
			if i < len(s) {
				if width, ok := matchOne(pattern[p:], s[i], nocase); ok {
					p += width
					i++
					continue
				}
			}
		}
		if starP < 0 || starI >= len(s) {
			return false
		}
		starI++
		p, i = starP+1, starI
	}
	return true
}

// matchOne matches c against the pattern element at the start of p and
// returns the element's width.
func matchOne(p []byte, c byte, nocase bool) (int, bool) {
	switch p[0] {
	case '?':
		return 1, true
	case '\\':
		if len(p) >= 2 {
			return 2, eqByte(p[1], c, nocase)
		}
		return 1, eqByte('\\', c, nocase)
	case '[':
		return matchClass(p, c, nocase)
	}
	return 1, eqByte(p[0], c, nocase)
}

// matchClass matches c against the class at the start of p ("[...]"), as
// Redis's stringmatchlen does (an unterminated class runs to the end).
func matchClass(p []byte, c byte, nocase bool) (int, bool) {
	i := 1
	not := i < len(p) && p[i] == '^'
	if not {
		i++
	}
	match := false
	for i < len(p) && p[i] != ']' {
		switch {
		case p[i] == '\\' && i+1 < len(p):
			match = match || eqByte(p[i+1], c, nocase)
			i += 2
		case i+2 < len(p) && p[i+1] == '-':
			lo, hi := p[i], p[i+2]
			if lo > hi {
				lo, hi = hi, lo
			}
			x := c
			if nocase {
				lo, hi, x = lower(lo), lower(hi), lower(c)
			}
			match = match || (x >= lo && x <= hi)
			i += 3
		default:
			match = match || eqByte(p[i], c, nocase)
			i++
		}
	}
	width := i + 1
	if i >= len(p) {
		width = len(p)
	}
	return width, match != not
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func eqByte(a, b byte, nocase bool) bool {
	if nocase {
		return lower(a) == lower(b)
	}
	return a == b
}
