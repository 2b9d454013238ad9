package respapi

// Table tests of the pure parts: the error table, glob matching and
// literal prefixes, the command table, the cursor table, and the
// combiner's batching.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/kv"
)

func TestErrorTable(t *testing.T) {
	log := discardLogger()
	tests := []struct {
		err  error
		want string
	}{
		{kv.Errorf(kv.ErrUnavailable, "range 2 has no leader"), "TRYAGAIN cairn unavailable: range 2 has no leader (retry)"},
		{kv.Errorf(kv.ErrNotLeader, "x"), "TRYAGAIN cairn unavailable: not leader: x (retry)"},
		{kv.Errorf(kv.ErrTimeout, "forward failed"), "ERR cairn timeout: outcome unknown"},
		{fmt.Errorf("wrapped: %w", context.DeadlineExceeded), "ERR cairn timeout: outcome unknown"},
		{context.Canceled, "ERR cairn: request canceled; the node is shutting down"},
		{kv.Errorf(kv.ErrInvalidArgument, "key is empty"), "ERR invalid argument: key is empty"},
		{kv.Errorf(kv.ErrTableNotFound, "table %q does not exist", "t"), `ERR table not found: table "t" does not exist`},
		{kv.ErrTableExists, "ERR table already exists"},
		{kv.ErrNotFound, "ERR key not found"},
		{kv.ErrConditionFailed, "ERR condition failed"},
		{errContention, "ERR cairn: the keys kept changing during 20 attempts; retry"},
		{errConflict, "ERR cairn: the keys changed during the command; retry"},
		{fmt.Errorf("%w: 1001 keys", errTooManyKeys), "ERR respapi: too many keys: 1001 keys"},
		{kv.ErrInternal, "ERR cairn internal error"},
		{errors.New("anything else"), "ERR cairn internal error"},
	}
	for _, tt := range tests {
		if got := errorReply(tt.err, log); got != tt.want {
			t.Errorf("%v: %q, want %q", tt.err, got, tt.want)
		}
	}
	// Every row is reachable: no earlier row shadows it.
	for i, row := range errorTable {
		if got, want := errorReply(row.err, log), row.reply(row.err); got != want {
			t.Errorf("row %d (%v) is shadowed: %q", i, row.err, got)
		}
	}
}

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"*", "", true}, {"*", "abc", true}, {"a*", "abc", true}, {"a*", "bac", false},
		{"*c", "abc", true}, {"a*c", "ac", true}, {"a*b*c", "axxbyyc", true}, {"a*b*c", "axxbyy", false},
		{"?", "a", true}, {"?", "", false}, {"a?c", "abc", true}, {"a?c", "abbc", false},
		{"[abc]", "b", true}, {"[abc]", "d", false}, {"[^abc]", "d", true}, {"[^abc]", "a", false},
		{"[a-c]x", "bx", true}, {"[c-a]x", "bx", true}, {"[a-c]", "d", false},
		{`\*`, "*", true}, {`\*`, "a", false}, {`[\]]`, "]", true}, {"user:*", "user:1", true},
		{"*:2", "item:2", true}, {"[ab", "a", true}, {"a\\", "a\\", true},
		{strings.Repeat("*a", 20) + "b", strings.Repeat("a", 60), false},
	}
	for _, tt := range tests {
		if got := globMatch([]byte(tt.pattern), []byte(tt.s), false); got != tt.want {
			t.Errorf("globMatch(%q, %q) = %v", tt.pattern, tt.s, got)
		}
	}
	if !globMatch([]byte("MAX*"), []byte("maxclients"), true) || globMatch([]byte("MAX*"), []byte("maxclients"), false) {
		t.Error("nocase")
	}
}

func TestLiteralPrefix(t *testing.T) {
	for pattern, want := range map[string]string{
		"user:*": "user:", "*": "", "abc": "abc", `a\*b*`: "a*b", "a?": "a", "a[bc]": "a", `a\`: "a",
	} {
		if got := string(literalPrefix([]byte(pattern))); got != want {
			t.Errorf("literalPrefix(%q) = %q, want %q", pattern, got, want)
		}
	}
}

func TestCommandTable(t *testing.T) {
	if len(commandNames) != len(commandTable) {
		t.Fatalf("%d names, %d commands: a name is registered twice", len(commandNames), len(commandTable))
	}
	for _, n := range commandNames {
		cmd := commandTable[n]
		if cmd.run == nil || cmd.summary == "" || cmd.group == "" || cmd.since == "" || cmd.arity == 0 {
			t.Errorf("%s: incomplete entry", n)
		}
		if cmd.exec != nil && cmd.txControl {
			t.Errorf("%s: queueable and a transaction control command", n)
		}
		if cmd.reads && cmd.firstKey == 0 {
			t.Errorf("%s: reads keys but has no key positions", n)
		}
	}
	if lookup([]byte("GeT")) != commandTable["get"] || lookup([]byte(strings.Repeat("x", 100))) != nil {
		t.Error("lookup")
	}
	keys := commandTable["mset"].keys([][]byte{[]byte("mset"), []byte("a"), []byte("1"), []byte("b"), []byte("2")})
	if len(keys) != 2 || string(keys[0]) != "a" || string(keys[1]) != "b" {
		t.Errorf("mset keys %q", keys)
	}
}

func TestCursorTableForgetsOldest(t *testing.T) {
	ct := newCursorTable(3)
	var ids []uint64
	for i := range 5 {
		ids = append(ids, ct.put(scanCursor{table: "t", token: fmt.Sprint(i)}))
	}
	for i, id := range ids {
		_, ok := ct.get(id)
		if want := i >= 2; ok != want {
			t.Errorf("cursor %d: present %v, want %v", i, ok, want)
		}
		if id == 0 || id >= 1<<63 {
			t.Errorf("cursor %d out of range", id)
		}
	}
}

// slowPutBackend delays every Put, as Raft does.
type slowPutBackend struct{ *memBackend }

func (s slowPutBackend) Put(ctx context.Context, req *cairnpb.PutRequest) (*cairnpb.PutResponse, error) {
	time.Sleep(2 * time.Millisecond)
	return s.memBackend.Put(ctx, req)
}

// TestCombinerBatches: concurrent INCRs of one key share writes, and each
// gets a distinct result (they are ordered within their batch).
func TestCombinerBatches(t *testing.T) {
	b := newMemBackend()
	s := newTestServer(t, slowPutBackend{b}, Options{})
	const n = 200
	results := make(chan string, n)
	var wg sync.WaitGroup
	for range n {
		tc := s.newTestConn(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := tc.run([][]byte{[]byte("INCR"), []byte("k")})
			if err != nil {
				t.Error(err)
			}
			results <- v.String()
		}()
	}
	wg.Wait()
	close(results)
	seen := map[string]bool{}
	for r := range results {
		if seen[r] {
			t.Errorf("two INCRs returned %s", r)
		}
		seen[r] = true
	}
	for i := 1; i <= n; i++ {
		if !seen[fmt.Sprintf("(integer) %d", i)] {
			t.Errorf("no INCR returned %d", i)
		}
	}
	puts := b.CallCount("Put")
	t.Logf("%d INCRs, %d Puts", n, puts)
	if puts > n/4 {
		t.Errorf("%d Puts for %d concurrent INCRs: not combined", puts, n)
	}
}
