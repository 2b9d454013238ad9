package respapi

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/kv"
	"github.com/cairn-db/cairn/internal/resp"
)

// redisVersion is the Redis version HELLO and INFO report: the command
// set and semantics cairn follows are Redis 7.0's (clients gate features
// such as GETDEL and SET GET on the version).
const redisVersion = "7.0.0"

func connectionCommands() []*command {
	conn := func(name string, arity int, flags []string, since, summary string, run func(*conn, [][]byte)) *command {
		return &command{name: name, arity: arity, flags: flags, group: "connection", since: since, summary: summary, run: run}
	}
	ping := conn("ping", -1, []string{"fast"}, "1.0.0", "Returns the server's liveliness response.", runPing)
	ping.exec = execPing
	echo := conn("echo", 2, []string{"fast"}, "1.0.0", "Returns the given string.", runEcho)
	echo.exec = execEcho
	return []*command{
		ping, echo,
		conn("hello", -1, []string{"noscript", "loading", "stale", "fast", "no-auth"}, "6.0.0", "Handshakes with the Redis server.", runHello),
		conn("auth", -2, []string{"noscript", "loading", "stale", "fast", "no-auth"}, "1.0.0", "Authenticates the connection.", runAuth),
		conn("client", -2, nil, "2.4.0", "A container for client connection commands.", runClient),
		conn("select", 2, []string{"loading", "stale", "fast"}, "1.0.0", "Changes the selected database (only 0 exists).", runSelect),
		{name: "quit", arity: -1, flags: []string{"noscript", "loading", "stale", "fast", "no-auth"}, group: "connection",
			since: "1.0.0", summary: "Closes the connection.", run: runQuit, txControl: true},
		conn("cairn.table", -1, []string{"fast"}, "0.1.0", "Selects the table of this connection (default \"default\"); with no argument, returns it.", runTable),
		conn("cairn.consistency", -1, []string{"fast"}, "0.1.0", "Sets the read consistency of this connection: linearizable, session, or stale [max_staleness].", runConsistency),
	}
}

func transactionCommands() []*command {
	tx := func(name string, arity int, since, summary string, run func(*conn, [][]byte)) *command {
		return &command{name: name, arity: arity, flags: []string{"noscript", "loading", "stale", "fast"},
			group: "transactions", since: since, summary: summary, run: run, txControl: true}
	}
	watch := tx("watch", -2, "2.2.0", "Monitors changes to keys to determine the execution of a transaction.", runWatch)
	watch.firstKey, watch.lastKey, watch.keyStep = 1, -1, 1
	unwatch := tx("unwatch", 1, "2.2.0", "Forgets about watched keys of a transaction.", runUnwatch)
	unwatch.txControl, unwatch.exec = false, execUnwatch
	return []*command{
		watch, unwatch,
		tx("multi", 1, "1.2.0", "Starts a transaction.", runMulti),
		tx("exec", 1, "1.2.0", "Executes all commands in a transaction.", runExec),
		tx("discard", 1, "2.0.0", "Discards a transaction.", runDiscard),
	}
}

func serverCommands() []*command {
	return []*command{
		{name: "info", arity: -1, flags: []string{"loading", "stale"}, group: "server", since: "1.0.0",
			summary: "Returns information and statistics about the server.", run: runInfo},
		{name: "config", arity: -2, group: "server", since: "2.0.0",
			summary: "A container for server configuration commands.", run: runConfig},
		{name: "command", arity: -1, flags: []string{"loading", "stale"}, group: "server", since: "2.8.13",
			summary: "Returns detailed information about all commands.", run: runCommand},
	}
}

// PING, ECHO

func runPing(c *conn, args [][]byte) { _ = execPing(&execCtx{w: &c.out}, args) }

func execPing(x *execCtx, args [][]byte) error {
	if len(args) > 2 {
		x.w.Error(wrongArgs("ping"))
		return nil
	}
	if len(args) == 2 {
		x.w.Bulk(args[1])
		return nil
	}
	x.w.SimpleString("PONG")
	return nil
}

func runEcho(c *conn, args [][]byte) { c.out.Bulk(args[1]) }

func execEcho(x *execCtx, args [][]byte) error {
	x.w.Bulk(args[1])
	return nil
}

// runQuit answers OK and closes the connection after the reply.
func runQuit(c *conn, _ [][]byte) {
	c.out.SimpleString("OK")
	c.closing = true
}

// AUTH, HELLO. Without Options.Auth, or while auth is disabled and the
// user does not exist, the front end answers as Redis without a password:
// the "default" user accepts any password and no other user exists. With
// users, AUTH checks the password and the connection then acts as that
// user (AUTH pass is user "default", as in Redis).

// checkAuth authenticates the connection; it returns the error reply, or "".
func (c *conn) checkAuth(user, pass []byte) string {
	a := c.srv.opts.Auth
	if a == nil || (!a.Enabled() && !a.UserExists(string(user))) {
		if string(user) != "default" {
			return msgWrongPass
		}
		return ""
	}
	ctx, err := a.PasswordContext(c.srv.ctx, string(user), string(pass), c.addr)
	if err != nil {
		// NB: the reason (unknown user, wrong password, locked out) is
		// not told apart, as in Redis.
		return msgWrongPass
	}
	c.ctx, c.authed = ctx, true
	return ""
}

func runAuth(c *conn, args [][]byte) {
	switch len(args) {
	case 2:
		a := c.srv.opts.Auth
		if a == nil || (!a.Enabled() && !a.UserExists("default")) {
			c.out.Error(msgNoPassword)
			return
		}
		if msg := c.checkAuth([]byte("default"), args[1]); msg != "" {
			c.out.Error(msg)
			return
		}
		c.out.SimpleString("OK")
	case 3:
		if msg := c.checkAuth(args[1], args[2]); msg != "" {
			c.out.Error(msg)
			return
		}
		c.out.SimpleString("OK")
	default:
		c.out.Error(msgSyntax)
	}
}

// runHello is HELLO [protover [AUTH user pass] [SETNAME name]].
func runHello(c *conn, args [][]byte) {
	proto := c.proto
	if len(args) > 1 {
		n, ok := resp.ParseInt(args[1])
		if !ok {
			c.out.Error("ERR Protocol version is not an integer or out of range")
			return
		}
		if n != 2 && n != 3 {
			c.out.Error("NOPROTO unsupported protocol version")
			return
		}
		proto = int(n)
	}
	var name []byte
	setName := false
	for i := 2; i < len(args); i++ {
		more := len(args) - i - 1
		switch opt := strings.ToLower(string(args[i])); {
		case opt == "auth" && more >= 2:
			if msg := c.checkAuth(args[i+1], args[i+2]); msg != "" {
				c.out.Error(msg)
				return
			}
			i += 2
		case opt == "setname" && more >= 1:
			name, setName = args[i+1], true
			i++
		default:
			c.out.Error("ERR Syntax error in HELLO option '" + string(cString(args[i], 128)) + "'")
			return
		}
	}
	if setName && !validClientName(name) {
		c.out.Error(msgClientName)
		return
	}
	if setName {
		c.updateInfo(func(i *clientInfo) { i.name = string(name) })
	}
	c.setProto(proto)
	w := &c.out
	w.MapHeader(7)
	w.BulkString("server")
	w.BulkString("redis")
	w.BulkString("version")
	w.BulkString(redisVersion)
	w.BulkString("proto")
	w.Integer(int64(proto))
	w.BulkString("id")
	w.Integer(c.id)
	w.BulkString("mode")
	w.BulkString("standalone")
	w.BulkString("role")
	w.BulkString("master")
	w.BulkString("modules")
	w.ArrayHeader(0)
}

func (c *conn) updateInfo(f func(*clientInfo)) {
	info := *c.info.Load()
	f(&info)
	c.info.Store(&info)
}

// validClientName: Redis refuses names with characters outside '!'..'~'.
func validClientName(name []byte) bool {
	for _, b := range name {
		if b < '!' || b > '~' {
			return false
		}
	}
	return true
}

// SELECT: there is one database, 0; tables are chosen with CAIRN.TABLE.
func runSelect(c *conn, args [][]byte) {
	n, ok := resp.ParseInt(args[1])
	switch {
	case !ok:
		c.out.Error(msgNotInteger)
	case n != 0:
		c.out.Error(msgDBIndex)
	default:
		c.out.SimpleString("OK")
	}
}

// CAIRN.TABLE [name]

func runTable(c *conn, args [][]byte) {
	switch len(args) {
	case 1:
		c.out.BulkString(c.table)
		return
	case 2:
	default:
		c.out.Error(wrongArgs("cairn.table"))
		return
	}
	name := string(args[1])
	if err := kv.ValidateTableName(name); err != nil {
		c.out.Error("ERR " + err.Error())
		return
	}
	if len(c.watched) > 0 && name != c.table {
		c.out.Error(msgTableWhileWatch)
		return
	}
	if _, err := c.srv.backend.GetTable(c.ctx, &cairnpb.GetTableRequest{Name: name}); err != nil {
		c.replyErr(err)
		return
	}
	c.table = name
	c.out.SimpleString("OK")
}

// CLIENT

func runClient(c *conn, args [][]byte) {
	sub := strings.ToLower(string(args[1]))
	arity := map[string]int{"setname": 3, "getname": 2, "id": 2, "info": 2, "list": -2, "setinfo": 4, "help": 2,
		"no-evict": 3, "no-touch": 3}
	n, known := arity[sub]
	switch {
	case !known:
		c.out.Error(unknownSubcommand(args[1], "client"))
		return
	case n >= 0 && len(args) != n, n < 0 && len(args) < -n:
		c.out.Error(wrongArgs("client|" + sub))
		return
	}
	info := c.info.Load()
	switch sub {
	case "setname":
		if !validClientName(args[2]) {
			c.out.Error(msgClientName)
			return
		}
		c.updateInfo(func(i *clientInfo) { i.name = string(args[2]) })
		c.out.SimpleString("OK")
	case "getname":
		if info.name == "" {
			c.out.Null()
			return
		}
		c.out.BulkString(info.name)
	case "id":
		c.out.Integer(c.id)
	case "info":
		c.out.Verbatim("txt", c.describe(time.Now()))
	case "list":
		clientList(c)
	case "setinfo":
		clientSetInfo(c, args)
	case "no-evict", "no-touch":
		c.out.SimpleString("OK")
	case "help":
		writeHelp(&c.out, "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
			"GETNAME", "    Return the name of the current connection.",
			"ID", "    Return the ID of the current connection.",
			"INFO", "    Return information about the current client connection.",
			"LIST", "    Return information about client connections.",
			"SETINFO <option> <value>", "    Set client meta attr. Options are LIB-NAME and LIB-VER.",
			"SETNAME <name>", "    Assign the name <name> to the current connection.",
			"HELP", "    Print this help.")
	}
}

func clientSetInfo(c *conn, args [][]byte) {
	attr := strings.ToLower(string(args[2]))
	if attr != "lib-name" && attr != "lib-ver" {
		c.out.Error("ERR Unrecognized option '" + string(cString(args[2], 128)) + "'")
		return
	}
	if !validClientName(args[3]) {
		c.out.Error("ERR " + attr + " cannot contain spaces, newlines or special characters.")
		return
	}
	v := string(args[3])
	c.updateInfo(func(i *clientInfo) {
		if attr == "lib-name" {
			i.libName = v
		} else {
			i.libVer = v
		}
	})
	c.out.SimpleString("OK")
}

func clientList(c *conn) {
	conns := c.srv.snapshotConns()
	sort.Slice(conns, func(i, j int) bool { return conns[i].id < conns[j].id })
	now := time.Now()
	var b strings.Builder
	for _, o := range conns {
		b.WriteString(o.describe(now))
	}
	c.out.Verbatim("txt", b.String())
}

// describe is the CLIENT INFO / CLIENT LIST line of c, in Redis's format
// (fields cairn does not track are 0). Safe from any goroutine.
func (c *conn) describe(now time.Time) string {
	info := c.info.Load()
	cmd := "NULL"
	if l := c.lastCmd.Load(); l != nil {
		cmd = l.name
	}
	idle := now.Sub(time.Unix(0, c.lastActive.Load()))
	return fmt.Sprintf("id=%d addr=%s laddr=%s fd=-1 name=%s age=%d idle=%d flags=N db=0 sub=0 psub=0 ssub=0 multi=-1 "+
		"qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd=%s "+
		"user=default redir=-1 resp=%d lib-name=%s lib-ver=%s\n",
		c.id, c.addr, c.laddr, info.name, int64(now.Sub(c.created).Seconds()), int64(idle.Seconds()), cmd,
		info.proto, info.libName, info.libVer)
}

// CONFIG GET: the parameters clients probe, with values that describe
// cairn. Nothing can be set: cairn is configured by its flags.

func (s *Server) configParams() map[string]string {
	port := ""
	s.mu.Lock()
	for ln := range s.mu.listeners {
		if a, ok := ln.Addr().(*net.TCPAddr); ok {
			port = strconv.Itoa(a.Port)
		}
	}
	s.mu.Unlock()
	idle := int64(s.opts.IdleTimeout / time.Second)
	return map[string]string{
		"save":                      "",
		"appendonly":                "yes", // every write is fsynced by a majority before it is acknowledged
		"appendfsync":               "always",
		"maxmemory":                 "0",
		"maxmemory-policy":          "noeviction",
		"databases":                 "1",
		"maxclients":                strconv.Itoa(s.opts.MaxConnections),
		"timeout":                   strconv.FormatInt(idle, 10),
		"proto-max-bulk-len":        strconv.Itoa(s.limits.MaxBulkBytes),
		"port":                      port,
		"cluster-enabled":           "no",
		"notify-keyspace-events":    "",
		"client-query-buffer-limit": strconv.Itoa(s.limits.MaxFrameBytes),
		"client-output-buffer-limit": "normal " + strconv.Itoa(s.opts.MaxOutputBufferBytes) + " " +
			strconv.Itoa(s.opts.MaxOutputBufferBytes) + " 0",
	}
}

func runConfig(c *conn, args [][]byte) {
	switch sub := strings.ToLower(string(args[1])); sub {
	case "get":
		if len(args) < 3 {
			c.out.Error(wrongArgs("config|get"))
			return
		}
		params := c.srv.configParams()
		var names []string
		for name := range params {
			for _, pat := range args[2:] {
				if globMatch(pat, []byte(name), true) {
					names = append(names, name)
					break
				}
			}
		}
		sort.Strings(names)
		c.out.MapHeader(len(names))
		for _, n := range names {
			c.out.BulkString(n)
			c.out.BulkString(params[n])
		}
	case "set", "rewrite":
		c.out.Error("ERR CONFIG " + strings.ToUpper(sub) + " is not supported: cairn is configured by the flags of `cairn server`")
	case "resetstat":
		c.out.SimpleString("OK")
	case "help":
		writeHelp(&c.out, "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
			"GET <pattern>", "    Return parameters matching the glob-like <pattern> and their values.",
			"RESETSTAT", "    Reset statistics reported by the INFO command.",
			"HELP", "    Print this help.")
	default:
		c.out.Error(unknownSubcommand(args[1], "config"))
	}
}

// INFO [section ...]: server, clients, persistence, stats, replication,
// keyspace; default, all and everything mean all of them.

var infoSections = []string{"server", "clients", "persistence", "stats", "replication", "keyspace"}

func runInfo(c *conn, args [][]byte) {
	want := map[string]bool{}
	for _, a := range args[1:] {
		s := strings.ToLower(string(a))
		if s == "default" || s == "all" || s == "everything" {
			for _, n := range infoSections {
				want[n] = true
			}
		}
		want[s] = true
	}
	if len(args) == 1 {
		for _, n := range infoSections {
			want[n] = true
		}
	}
	var b strings.Builder
	for _, sec := range infoSections {
		if !want[sec] {
			continue
		}
		if b.Len() > 0 {
			b.WriteString("\r\n")
		}
		if err := c.writeInfoSection(&b, sec); err != nil {
			c.replyErr(err)
			return
		}
	}
	c.out.Verbatim("txt", b.String())
}

func (c *conn) writeInfoSection(b *strings.Builder, sec string) error {
	s := c.srv
	line := func(k string, v any) { fmt.Fprintf(b, "%s:%v\r\n", k, v) }
	switch sec {
	case "server":
		b.WriteString("# Server\r\n")
		line("redis_version", redisVersion)
		line("redis_mode", "standalone")
		line("cairn_version", cairnVersion())
		line("cairn_node", s.opts.NodeName)
		line("os", runtime.GOOS+" "+runtime.GOARCH)
		line("arch_bits", strconv.IntSize)
		line("process_id", os.Getpid())
		port := ""
		if a, ok := c.nc.LocalAddr().(*net.TCPAddr); ok {
			port = strconv.Itoa(a.Port)
		}
		line("tcp_port", port)
		up := time.Since(s.started)
		line("uptime_in_seconds", int64(up.Seconds()))
		line("uptime_in_days", int64(up.Hours()/24))
	case "clients":
		b.WriteString("# Clients\r\n")
		line("connected_clients", s.connCount())
		line("maxclients", s.opts.MaxConnections)
	case "persistence":
		b.WriteString("# Persistence\r\n")
		line("loading", 0)
		line("rdb_bgsave_in_progress", 0)
		line("aof_enabled", 0)
	case "stats":
		b.WriteString("# Stats\r\n")
		line("total_connections_received", s.stats.connections.Load())
		line("total_commands_processed", s.stats.commands.Load())
		line("rejected_connections", s.stats.rejected.Load())
	case "replication":
		b.WriteString("# Replication\r\n")
		line("role", "master")
		line("connected_slaves", 0)
	case "keyspace":
		b.WriteString("# Keyspace\r\n")
		st, err := keyStats(c, c.table)
		if err != nil {
			return err
		}
		if st.keys > 0 {
			var avg int64
			if st.expires > 0 {
				avg = st.ttlSumMs / st.expires
			}
			fmt.Fprintf(b, "db0:keys=%d,expires=%d,avg_ttl=%d\r\n", st.keys, st.expires, avg)
		}
	}
	return nil
}

func cairnVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "unknown"
}

// COMMAND [COUNT | LIST | INFO [name ...] | DOCS [name ...] | HELP]

func runCommand(c *conn, args [][]byte) {
	if len(args) == 1 {
		c.out.ArrayHeader(len(commandNames))
		for _, n := range commandNames {
			writeCommandInfo(&c.out, commandTable[n])
		}
		return
	}
	sub := strings.ToLower(string(args[1]))
	switch {
	case sub == "count" && len(args) == 2:
		c.out.Integer(int64(len(commandNames)))
	case sub == "list" && len(args) == 2:
		c.out.ArrayHeader(len(commandNames))
		for _, n := range commandNames {
			c.out.BulkString(n)
		}
	case sub == "info":
		names := commandArgs(args[2:])
		c.out.ArrayHeader(len(names))
		for _, n := range names {
			if cmd := commandTable[n]; cmd != nil {
				writeCommandInfo(&c.out, cmd)
			} else {
				c.out.NullArray()
			}
		}
	case sub == "docs":
		writeCommandDocs(&c.out, commandArgs(args[2:]))
	case sub == "help" && len(args) == 2:
		writeHelp(&c.out, "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
			"(no subcommand)", "    Return details about all commands.",
			"COUNT", "    Return the total number of commands.",
			"DOCS [<command-name> ...]", "    Return documentary information about commands.",
			"INFO [<command-name> ...]", "    Return details about the specified commands.",
			"LIST", "    Return a list of all commands.",
			"HELP", "    Print this help.")
	case sub == "count" || sub == "list" || sub == "help":
		c.out.Error(wrongArgs("command|" + sub))
	default:
		c.out.Error(unknownSubcommand(args[1], "command"))
	}
}

// commandArgs lower-cases names; none means all commands.
func commandArgs(args [][]byte) []string {
	if len(args) == 0 {
		return commandNames
	}
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = string(bytes.ToLower(a))
	}
	return out
}

// writeCommandInfo writes Redis 7's ten-element command description.
func writeCommandInfo(w *resp.Writer, cmd *command) {
	w.ArrayHeader(10)
	w.BulkString(cmd.name)
	w.Integer(int64(cmd.arity))
	w.SetHeader(len(cmd.flags))
	for _, f := range cmd.flags {
		w.SimpleString(f)
	}
	w.Integer(int64(cmd.firstKey))
	w.Integer(int64(cmd.lastKey))
	w.Integer(int64(cmd.keyStep))
	w.SetHeader(1)
	w.SimpleString("@" + cmd.group)
	w.SetHeader(0) // tips
	w.SetHeader(0) // key specifications
	w.ArrayHeader(0)
}

// writeCommandDocs writes COMMAND DOCS: a map from name to summary,
// since and group (what redis-cli needs for its help); unknown names are
// left out, as Redis does.
func writeCommandDocs(w *resp.Writer, names []string) {
	var cmds []*command
	for _, n := range names {
		if cmd := commandTable[n]; cmd != nil {
			cmds = append(cmds, cmd)
		}
	}
	w.MapHeader(len(cmds))
	for _, cmd := range cmds {
		w.BulkString(cmd.name)
		w.MapHeader(4)
		w.BulkString("summary")
		w.BulkString(cmd.summary)
		w.BulkString("since")
		w.BulkString(cmd.since)
		w.BulkString("group")
		w.BulkString(cmd.group)
		w.BulkString("arguments")
		w.ArrayHeader(0)
	}
}
