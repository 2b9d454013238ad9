package resp

// redis-cli against cairn and the reference redis-server: each command's
// formatted output (--no-raw, as in interactive use) must be the same on
// both where the semantics agree; the cairn-only expectations cover where
// they differ (TTL, one database, tables). Then -x, --pipe and --scan.

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// cli runs redis-cli against addr with args and returns its output.
func cli(t *testing.T, path, addr string, stdin []byte, args ...string) string {
	t.Helper()
	host, port := splitHostPort(addr)
	cmd := exec.Command(path, append([]string{"-h", host, "-p", port}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("redis-cli %v: %v", args, err)
	}
	return strings.TrimRight(string(out), "\n")
}

// prefix returns a key prefix unique to this run of a test.
func prefix(t *testing.T) string {
	return fmt.Sprintf("%s:%d:", strings.ToLower(t.Name()), time.Now().UnixNano())
}

// cliCase is a command (with {p} standing for the key prefix) and its
// expected redis-cli --no-raw output.
type cliCase struct{ cmd, want string }

var cliCommon = []cliCase{
	{"PING", "PONG"},
	{"ECHO hi", `"hi"`},
	{"SET {p}k hello", "OK"},
	{"GET {p}k", `"hello"`},
	{"APPEND {p}k _world", "(integer) 11"},
	{"STRLEN {p}k", "(integer) 11"},
	{"GETDEL {p}k", `"hello_world"`},
	{"GET {p}k", "(nil)"},
	{"STRLEN {p}k", "(integer) 0"},
	{"INCR {p}n", "(integer) 1"},
	{"INCRBY {p}n 41", "(integer) 42"},
	{"DECRBY {p}n 2", "(integer) 40"},
	{"DECR {p}n", "(integer) 39"},
	{"SETNX {p}n x", "(integer) 0"},
	{"SET {p}s abc", "OK"},
	{"INCR {p}s", "(error) ERR value is not an integer or out of range"},
	{"INCRBY {p}n 1.5", "(error) ERR value is not an integer or out of range"},
	{"SET {p}max 9223372036854775807", "OK"},
	{"INCR {p}max", "(error) ERR increment or decrement would overflow"},
	{"MSET {p}a 1 {p}b 2", "OK"},
	{"MGET {p}a {p}b {p}nope", "1) \"1\"\n2) \"2\"\n3) (nil)"},
	{"MSETNX {p}a 1 {p}c 3", "(integer) 0"},
	{"MSETNX {p}c 3 {p}d 4", "(integer) 1"},
	{"EXISTS {p}a {p}b {p}nope {p}a", "(integer) 3"},
	{"DEL {p}a {p}nope", "(integer) 1"},
	{"TYPE {p}b", "string"},
	{"TYPE {p}nope", "none"},
	{"TTL {p}b", "(integer) -1"},
	{"PTTL {p}nope", "(integer) -2"},
	{"PERSIST {p}b", "(integer) 0"},
	{"SET {p}x v NX", "OK"},
	{"SET {p}x v NX", "(nil)"},
	{"SET {p}x w XX GET", `"v"`},
	{"SET {p}y w XX", "(nil)"},
	{"SET {p}x v EX abc", "(error) ERR value is not an integer or out of range"},
	{"SET {p}x v EX 0", "(error) ERR invalid expire time in 'set' command"},
	{"SET {p}x v NX XX", "(error) ERR syntax error"},
	{"GET", "(error) ERR wrong number of arguments for 'get' command"},
	{"FOO bar", "(error) ERR unknown command 'FOO', with args beginning with: 'bar' "},
	{"CLIENT SETNAME 'a b'", "(error) ERR Client names cannot contain spaces, newlines or special characters."},
	{"CLIENT FOO", "(error) ERR unknown subcommand 'FOO'. Try CLIENT HELP."},
	{"CONFIG GET maxmemory", "1) \"maxmemory\"\n2) \"0\""},
	{"HELLO 4", "(error) NOPROTO unsupported protocol version"},
	{"AUTH x", "(error) ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"},
	{"AUTH default x", "OK"},
	{"SELECT 0", "OK"},
	{"SCAN 0 COUNT 0", "(error) ERR syntax error"},
	{"SCAN abc", "(error) ERR invalid cursor"},
	{"EXEC", "(error) ERR EXEC without MULTI"},
	{"DISCARD", "(error) ERR DISCARD without MULTI"},
	{"SET {p}t v EX 10", "OK"},
	{"TTL {p}t", "(integer) 10"},
	{"PERSIST {p}t", "(integer) 1"},
	{"TTL {p}t", "(integer) -1"},
	{"EXPIRE {p}t 10 XX", "(integer) 0"},
	{"EXPIRE {p}t 10", "(integer) 1"},
	{"EXPIRE {p}nope 10", "(integer) 0"},
}

var cliCairnOnly = []cliCase{
	{"SELECT 1", "(error) ERR DB index is out of range"},
	{"CAIRN.TABLE", `"default"`},
	{"CAIRN.TABLE default", "OK"},
	{"CAIRN.CONSISTENCY session", "OK"},
	{"CAIRN.CONSISTENCY stale 2s", "OK"},
	{"CAIRN.CONSISTENCY eventual", "(error) ERR unknown consistency level 'eventual'; the levels are linearizable, session and stale"},
	{"HGETALL {p}b", "(error) ERR unknown command 'HGETALL', with args beginning with: '{p}b' "},
	{"CONFIG GET appendfsync", "1) \"appendfsync\"\n2) \"always\""},
}

func TestRedisCLICommands(t *testing.T) {
	path := needTool(t, "redis-cli")
	for _, tgt := range targets(t) {
		t.Run(tgt.name, func(t *testing.T) {
			p := prefix(t)
			cases := cliCommon
			if tgt.cairn {
				cases = append(append([]cliCase(nil), cliCommon...), cliCairnOnly...)
			}
			for _, c := range cases {
				line := strings.ReplaceAll(c.cmd, "{p}", p)
				args := splitCLI(line)
				got := cli(t, path, tgt.addr, nil, append([]string{"--no-raw"}, args...)...)
				if want := strings.ReplaceAll(c.want, "{p}", p); got != want {
					t.Errorf("%s\n got: %q\nwant: %q", line, got, want)
				}
			}
		})
	}
}

// splitCLI splits a command line on spaces, keeping 'quoted words'.
func splitCLI(line string) []string {
	var out []string
	for len(line) > 0 {
		line = strings.TrimLeft(line, " ")
		if strings.HasPrefix(line, "'") {
			end := strings.Index(line[1:], "'") + 1
			out = append(out, line[1:end])
			line = line[end+1:]
			continue
		}
		word, rest, _ := strings.Cut(line, " ")
		out = append(out, word)
		line = rest
	}
	return out
}

func TestRedisCLIStdinArg(t *testing.T) {
	path := needTool(t, "redis-cli")
	for _, tgt := range targets(t) {
		t.Run(tgt.name, func(t *testing.T) {
			k := prefix(t) + "blob"
			payload := []byte("line one\nline two\x00binary\xff")
			if got := cli(t, path, tgt.addr, payload, "-x", "SET", k); got != "OK" {
				t.Fatalf("SET -x: %q", got)
			}
			if got := cli(t, path, tgt.addr, nil, "--raw", "STRLEN", k); got != fmt.Sprint(len(payload)) {
				t.Fatalf("STRLEN: %q", got)
			}
		})
	}
}

// TestRedisCLIPipeAndScan: redis-cli --pipe with a few thousand SETs
// (mass insertion), then --scan with a pattern finds exactly them.
func TestRedisCLIPipeAndScan(t *testing.T) {
	path := needTool(t, "redis-cli")
	const n = 3000
	for _, tgt := range targets(t) {
		t.Run(tgt.name, func(t *testing.T) {
			p := prefix(t)
			var in bytes.Buffer
			for i := range n {
				k, v := fmt.Sprintf("%spipe:%05d", p, i), fmt.Sprint(i)
				fmt.Fprintf(&in, "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", len(k), k, len(v), v)
			}
			out := cli(t, path, tgt.addr, in.Bytes(), "--pipe")
			if !strings.Contains(out, fmt.Sprintf("errors: 0, replies: %d", n)) {
				t.Fatalf("--pipe: %s", out)
			}
			if got := cli(t, path, tgt.addr, nil, "GET", p+"pipe:02999"); got != "2999" {
				t.Fatalf("GET: %q", got)
			}
			keys := strings.Split(cli(t, path, tgt.addr, nil, "--scan", "--pattern", p+"pipe:*"), "\n")
			seen := map[string]bool{}
			for _, k := range keys {
				if seen[k] {
					t.Fatalf("--scan returned %q twice", k)
				}
				seen[k] = true
			}
			if len(seen) != n || !seen[p+"pipe:00000"] || !seen[p+"pipe:02999"] {
				t.Fatalf("--scan found %d keys, want %d", len(seen), n)
			}
		})
	}
}
