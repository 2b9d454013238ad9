package respapi

import (
	"crypto/tls"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairn-db/cairn/internal/resp"
)

// command is one entry of the command table.
type command struct {
	name  string // lower case, as COMMAND reports it
	arity int    // Redis's convention: n = exactly n arguments with the name, -n = at least n
	flags []string
	// Key positions, as COMMAND reports them: first and last argument
	// holding a key (last < 0 counts from the end) and the step.
	firstKey, lastKey, keyStep int
	group, since, summary      string

	// txControl commands (MULTI, EXEC, DISCARD, WATCH, QUIT) run at once
	// even inside MULTI.
	txControl bool
	// reads: exec reads its keys, so a transaction fetches them before
	// running it. False for blind writes (MSET).
	reads bool

	// run executes the command outside MULTI.
	run func(c *conn, args [][]byte)
	// exec is the command as a function of a view of the keys: set for
	// the data commands, which may be queued in MULTI (EXEC runs them
	// against one transaction) and which run uses through a transaction or
	// the read-modify-write combiner. It writes one reply to x.w; an error
	// it returns is a backend error that aborts the whole command.
	exec func(x *execCtx, args [][]byte) error

	// duration observes how long run takes (metrics.go); set lazily.
	duration     prometheus.Observer
	durationOnce sync.Once
}

// arityOK reports whether n arguments (with the name) fit the arity.
func (cmd *command) arityOK(n int) bool {
	if cmd.arity >= 0 {
		return n == cmd.arity
	}
	return n >= -cmd.arity
}

// keys returns the key arguments of args.
func (cmd *command) keys(args [][]byte) [][]byte {
	if cmd.firstKey == 0 || cmd.firstKey >= len(args) {
		return nil
	}
	last := cmd.lastKey
	if last < 0 {
		last = len(args) + last
	}
	var out [][]byte
	for i := cmd.firstKey; i <= last && i < len(args); i += cmd.keyStep {
		out = append(out, args[i])
	}
	return out
}

// commandTable maps lower-case names to commands. It is filled once by
// init and never changed.
var commandTable = map[string]*command{}

// commandNames is the table's names, sorted.
var commandNames []string

func register(cmds ...*command) {
	for _, cmd := range cmds {
		if cmd.keyStep == 0 && cmd.firstKey != 0 {
			cmd.keyStep = 1
		}
		commandTable[cmd.name] = cmd
		commandNames = append(commandNames, cmd.name)
	}
	sort.Strings(commandNames)
}

// maxCommandNameBytes is longer than every command name.
const maxCommandNameBytes = 32

// lookup finds the command named by name in any case.
func lookup(name []byte) *command {
	if len(name) > maxCommandNameBytes {
		return nil
	}
	var buf [maxCommandNameBytes]byte
	for i, c := range name {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	return commandTable[string(buf[:len(name)])]
}

// dispatch runs one command and appends exactly one reply to c.out.
func (c *conn) dispatch(args [][]byte) {
	c.srv.stats.commands.Add(1)
	c.lastActive.Store(time.Now().UnixNano())
	cmd := lookup(args[0])
	if cmd == nil {
		c.out.Error(unknownCommand(args))
		c.flagTransaction()
		return
	}
	c.lastCmd.Store(cmd)
	if !cmd.arityOK(len(args)) {
		c.out.Error(wrongArgs(cmd.name))
		c.flagTransaction()
		return
	}
	switch msg := c.refusal(cmd); msg {
	case "":
	case msgProtected:
		c.out.Error(msg)
		c.closing = true
		return
	default:
		c.out.Error(msg)
		c.flagTransaction()
		return
	}
	if c.multi != nil && !cmd.txControl {
		c.queue(cmd, args)
		return
	}
	start := time.Now()
	cmd.run(c, args)
	cmd.observe(time.Since(start))
}

// refusal is the reply that refuses cmd on this connection before it
// runs (protected mode, or -NOAUTH), or "". Every command passes it, in a
// pipeline run too (collect). The TLS client certificate is looked at
// first, once: the handshake is done once the first command was read.
func (c *conn) refusal(cmd *command) string {
	a := c.srv.opts.Auth
	if a == nil {
		return ""
	}
	if !c.certChecked {
		c.certChecked = true
		if tc, ok := c.nc.(*tls.Conn); ok {
			if ctx, ok := a.CertContext(c.srv.ctx, tc.ConnectionState()); ok {
				c.ctx, c.authed = ctx, true
			}
		}
	}
	switch {
	case a.ProtectedRefuses(c.addr):
		return msgProtected
	case !c.authed && a.Enabled() && !slices.Contains(cmd.flags, "no-auth"):
		return msgNoAuth
	}
	return ""
}

// wrongArgs is Redis's arity error; name is "get" or "client|setname".
func wrongArgs(name string) string {
	return "ERR wrong number of arguments for '" + name + "' command"
}

// unknownCommand is Redis's reply to an unknown command, byte for byte:
// the name and the first arguments, quoted, cut at 128 bytes each.
func unknownCommand(args [][]byte) string {
	var b strings.Builder
	b.WriteString("ERR unknown command '")
	b.Write(cString(args[0], 128))
	b.WriteString("', with args beginning with: ")
	n := 0
	for _, a := range args[1:] {
		if n >= 128 {
			break
		}
		s := cString(a, 128-n)
		b.WriteByte('\'')
		b.Write(s)
		b.WriteString("' ")
		n += len(s) + 3
	}
	return b.String()
}

// cString returns b as C's "%.*s" prints it: up to the first NUL, at
// most n bytes.
func cString(b []byte, n int) []byte {
	for i, c := range b {
		if c == 0 {
			b = b[:i]
			break
		}
	}
	if len(b) > n {
		b = b[:n]
	}
	return b
}

// unknownSubcommand is Redis's reply to an unknown subcommand.
func unknownSubcommand(sub []byte, cmd string) string {
	return fmt.Sprintf("ERR unknown subcommand '%s'. Try %s HELP.", cString(sub, 128), strings.ToUpper(cmd))
}

// writeHelp writes help lines as Redis does: an array of simple strings.
func writeHelp(w *resp.Writer, lines ...string) {
	w.ArrayHeader(len(lines))
	for _, l := range lines {
		w.SimpleString(l)
	}
}

func init() {
	register(connectionCommands()...)
	register(stringCommands()...)
	register(keyspaceCommands()...)
	register(transactionCommands()...)
	register(serverCommands()...)
}
