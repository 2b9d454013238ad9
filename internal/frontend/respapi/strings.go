package respapi

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/kv"
	"github.com/cairn-db/cairn/internal/resp"
)

// The string and keyspace commands. Each is an exec function over a view
// (what EXEC runs) plus the way it runs outside MULTI: a direct call for
// GET, a plain SET and DEL (the hot paths), the combiner for single-key
// read-modify-writes, a transaction of its own for the rest.

func stringCommands() []*command {
	str := func(name string, arity int, flags []string, first, last, step int, since, summary string) *command {
		return &command{name: name, arity: arity, flags: flags, firstKey: first, lastKey: last, keyStep: step,
			group: "string", since: since, summary: summary, reads: true}
	}
	get := str("get", 2, []string{"readonly", "fast"}, 1, 1, 1, "1.0.0", "Returns the string value of a key.")
	get.exec, get.run = execGet, runGet
	set := str("set", -3, []string{"write", "denyoom"}, 1, 1, 1, "1.0.0", "Sets the string value of a key. The key is created if it doesn't exist.")
	set.exec, set.run = execSet, runSet
	setnx := str("setnx", 3, []string{"write", "denyoom", "fast"}, 1, 1, 1, "1.0.0", "Set the string value of a key only when the key doesn't exist.")
	setnx.exec, setnx.run = execSetNX, (*conn).runRMWCmd
	getdel := str("getdel", 2, []string{"write", "fast"}, 1, 1, 1, "6.2.0", "Returns the string value of a key after deleting the key.")
	getdel.exec, getdel.run = execGetDel, (*conn).runRMWCmd
	mget := str("mget", -2, []string{"readonly", "fast"}, 1, -1, 1, "1.0.0", "Atomically returns the string values of one or more keys.")
	mget.exec, mget.run = execMGet, (*conn).runTxnCmd
	mset := str("mset", -3, []string{"write", "denyoom"}, 1, -1, 2, "1.0.1", "Atomically creates or modifies the string values of one or more keys.")
	mset.exec, mset.run, mset.reads = execMSet, (*conn).runTxnCmd, false
	msetnx := str("msetnx", -3, []string{"write", "denyoom"}, 1, -1, 2, "1.0.1", "Atomically modifies the string values of one or more keys only when all keys don't exist.")
	msetnx.exec, msetnx.run = execMSetNX, (*conn).runTxnCmd
	appendCmd := str("append", 3, []string{"write", "denyoom"}, 1, 1, 1, "2.0.0", "Appends a string to the value of a key. Creates the key if it doesn't exist.")
	appendCmd.exec, appendCmd.run = execAppend, (*conn).runRMWCmd
	strlen := str("strlen", 2, []string{"readonly", "fast"}, 1, 1, 1, "2.2.0", "Returns the length of a string value.")
	strlen.exec, strlen.run = execStrlen, (*conn).runTxnCmd
	setex := str("setex", 4, []string{"write", "denyoom"}, 1, 1, 1, "2.0.0", "Sets the string value and expiration time of a key. Creates the key if it doesn't exist.")
	setex.exec, setex.run, setex.reads = func(x *execCtx, args [][]byte) error { return execSetEx(x, args, "ex") }, (*conn).runTxnCmd, false
	psetex := str("psetex", 4, []string{"write", "denyoom"}, 1, 1, 1, "2.6.0", "Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn't exist.")
	psetex.exec, psetex.run, psetex.reads = func(x *execCtx, args [][]byte) error { return execSetEx(x, args, "px") }, (*conn).runTxnCmd, false
	getex := str("getex", -2, []string{"write", "fast"}, 1, 1, 1, "6.2.0", "Returns the string value of a key after setting its expiration time.")
	getex.exec, getex.run = execGetEx, (*conn).runRMWCmd
	cmds := []*command{get, set, setnx, getdel, mget, mset, msetnx, appendCmd, strlen, setex, psetex, getex}
	for _, c := range []struct {
		name    string
		arity   int
		sign    int64
		hasArg  bool
		summary string
	}{
		{"incr", 2, 1, false, "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist."},
		{"decr", 2, -1, false, "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist."},
		{"incrby", 3, 1, true, "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist."},
		{"decrby", 3, -1, true, "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist."},
	} {
		cmd := str(c.name, c.arity, []string{"write", "denyoom", "fast"}, 1, 1, 1, "1.0.0", c.summary)
		sign, hasArg := c.sign, c.hasArg
		cmd.exec = func(x *execCtx, args [][]byte) error { return execIncr(x, args, sign, hasArg) }
		cmd.run = (*conn).runRMWCmd
		cmds = append(cmds, cmd)
	}
	return cmds
}

func keyspaceCommands() []*command {
	key := func(name string, arity int, flags []string, first, last int, since, summary string) *command {
		return &command{name: name, arity: arity, flags: flags, firstKey: first, lastKey: last, keyStep: 1,
			group: "generic", since: since, summary: summary, reads: true, run: (*conn).runTxnCmd}
	}
	del := key("del", -2, []string{"write"}, 1, -1, "1.0.0", "Deletes one or more keys.")
	del.exec, del.run = execDel, runDel
	exists := key("exists", -2, []string{"readonly", "fast"}, 1, -1, "3.0.3", "Determines whether one or more keys exist.")
	exists.exec = execExists
	typ := key("type", 2, []string{"readonly", "fast"}, 1, 1, "1.0.0", "Determines the type of value stored at a key.")
	typ.exec = execType
	ttl := key("ttl", 2, []string{"readonly", "fast"}, 1, 1, "1.0.0", "Returns the expiration time in seconds of a key.")
	ttl.exec = execTTL
	pttl := key("pttl", 2, []string{"readonly", "fast"}, 1, 1, "2.6.0", "Returns the expiration time in milliseconds of a key.")
	pttl.exec = execTTL
	persist := key("persist", 2, []string{"write", "fast"}, 1, 1, "2.2.0", "Removes the expiration time of a key.")
	persist.exec, persist.run = execPersist, (*conn).runRMWCmd
	cmds := []*command{del, exists, typ, ttl, pttl, persist}
	for _, c := range []struct{ name, unit, since, summary string }{
		{"expire", "ex", "1.0.0", "Sets the expiration time of a key in seconds."},
		{"pexpire", "px", "2.6.0", "Sets the expiration time of a key in milliseconds."},
		{"expireat", "exat", "1.2.0", "Sets the expiration time of a key to a Unix timestamp."},
		{"pexpireat", "pxat", "2.6.0", "Sets the expiration time of a key to a Unix milliseconds timestamp."},
	} {
		cmd := key(c.name, -3, []string{"write", "fast"}, 1, 1, c.since, c.summary)
		unit := c.unit
		cmd.exec, cmd.run = func(x *execCtx, args [][]byte) error { return execExpire(x, args, unit) }, (*conn).runRMWCmd
		cmds = append(cmds, cmd)
	}
	scan := &command{name: "scan", arity: -2, flags: []string{"readonly"}, group: "generic", since: "2.8.0",
		summary: "Iterates over the key names in the database.", run: runScan}
	dbsize := &command{name: "dbsize", arity: 1, flags: []string{"readonly", "fast"}, group: "server", since: "1.0.0",
		summary: "Returns the number of keys in the database.", run: runDBSize}
	return append(cmds, scan, dbsize)
}

func (c *conn) runRMWCmd(args [][]byte) { c.runRMW(lookup(args[0]), args) }
func (c *conn) runTxnCmd(args [][]byte) { c.runTxn(lookup(args[0]), args) }

// GET

func execGet(x *execCtx, args [][]byte) error {
	if !x.checkKeys(args[1]) {
		return nil
	}
	e, err := x.v.get(args[1])
	if err != nil {
		return err
	}
	if !e.found {
		x.w.Null()
		return nil
	}
	x.w.Bulk(e.value)
	return nil
}

// runGet is GET outside MULTI: one linearizable read, no transaction.
func runGet(c *conn, args [][]byte) {
	x := c.execCtx(nil, &c.out)
	if !x.checkKeys(args[1]) {
		return
	}
	e, err := readKey(c.ctx, c.backend(), c.table, args[1])
	switch {
	case err != nil:
		c.replyErr(err)
	case !e.found:
		c.out.Null()
	case c.outputFull(len(e.value)):
		c.replyErr(errOutputLimit)
	default:
		c.out.Bulk(e.value)
	}
}

// SET key value [NX|XX] [GET] [EX s|PX ms|EXAT ts|PXAT ms-ts|KEEPTTL]

type setOptions struct {
	nx, xx, get, keepTTL bool
	expireOpt            string // "ex", "px", "exat", "pxat", or ""
	expireArg            []byte
	// expireAt is the expiry EX/PX/EXAT/PXAT give (unix ms); 0 for none.
	expireAt int64
}

// parseSet parses SET's options as Redis does (the same conflicts are
// syntax errors) and returns the error reply, or "".
func parseSet(args [][]byte) (setOptions, string) {
	var o setOptions
	for i := 3; i < len(args); i++ {
		opt := string(bytes.ToLower(args[i]))
		hasNext := i+1 < len(args)
		switch {
		case opt == "nx" && !o.xx:
			o.nx = true
		case opt == "xx" && !o.nx:
			o.xx = true
		case opt == "get":
			o.get = true
		case opt == "keepttl" && o.expireOpt == "":
			o.keepTTL = true
		case (opt == "ex" || opt == "px" || opt == "exat" || opt == "pxat") && !o.keepTTL &&
			(o.expireOpt == "" || o.expireOpt == opt) && hasNext:
			o.expireOpt, o.expireArg = opt, args[i+1]
			i++
		default:
			return o, msgSyntax
		}
	}
	if o.expireOpt != "" {
		at, msg := expiryArg(o.expireOpt, o.expireArg, "set", time.Now())
		if msg != "" {
			return o, msg
		}
		o.expireAt = at
	}
	return o, ""
}

// expiryArg turns the argument of EX, PX, EXAT or PXAT (unit says which)
// into an absolute expiry in unix ms, or an error reply. Like Redis, it
// refuses zero, negative and overflowing times.
func expiryArg(unit string, arg []byte, cmd string, now time.Time) (int64, string) {
	n, ok := resp.ParseInt(arg)
	if !ok {
		return 0, msgNotInteger
	}
	seconds := unit == "ex" || unit == "exat"
	if n <= 0 || seconds && n > math.MaxInt64/1000 {
		return 0, fmt.Sprintf(msgInvalidExpire, cmd)
	}
	if seconds {
		n *= 1000
	}
	if unit == "exat" || unit == "pxat" {
		return n, ""
	}
	nowMs := now.UnixMilli()
	if n > math.MaxInt64-nowMs {
		return 0, fmt.Sprintf(msgInvalidExpire, cmd)
	}
	return nowMs + n, ""
}

func execSet(x *execCtx, args [][]byte) error {
	o, msg := parseSet(args)
	if msg != "" {
		x.w.Error(msg)
		return nil
	}
	if !x.checkKeys(args[1]) || !x.checkValue(args[2]) {
		return nil
	}
	if !o.nx && !o.xx && !o.get && !o.keepTTL {
		x.v.set(args[1], args[2], o.expireAt)
		x.w.SimpleString("OK")
		return nil
	}
	e, err := x.v.get(args[1])
	if err != nil {
		return err
	}
	apply := !(o.nx && e.found) && !(o.xx && !e.found)
	if apply {
		at := o.expireAt
		if o.keepTTL {
			at = e.expireAt
		}
		x.v.set(args[1], args[2], at)
	}
	switch {
	case o.get && e.found:
		x.w.Bulk(e.value)
	case o.get, !apply:
		x.w.Null()
	default:
		x.w.SimpleString("OK")
	}
	return nil
}

// runSet is SET outside MULTI: a plain SET (with or without a TTL) is one
// unconditional Put; with NX, XX or GET it reads the key first, through
// the combiner.
func runSet(c *conn, args [][]byte) {
	o, msg := parseSet(args)
	x := c.execCtx(nil, &c.out)
	switch {
	case msg != "":
		c.out.Error(msg)
	case !x.checkKeys(args[1]) || !x.checkValue(args[2]):
	case o.nx || o.xx || o.get:
		c.runRMWFunc(execSet, args)
	default:
		req := &cairnpb.PutRequest{Table: c.table, Key: args[1], Value: args[2], KeepTtl: o.keepTTL}
		var err error
		if ttl, _, gone := putTTL(entry{}, false, o.expireAt, time.Now().UnixMilli()); gone {
			// An expiry in the past: the key is set and gone at once.
			_, err = c.backend().Delete(c.ctx, &cairnpb.DeleteRequest{Table: c.table, Key: args[1]})
			if errors.Is(err, kv.ErrNotFound) {
				err = nil
			}
		} else {
			req.TtlMs = ttl
			_, err = c.backend().Put(c.ctx, req)
		}
		if err != nil {
			c.replyErr(err)
			return
		}
		c.out.SimpleString("OK")
	}
}

// SETEX key seconds value, PSETEX key milliseconds value.
func execSetEx(x *execCtx, args [][]byte, unit string) error {
	name := "setex"
	if unit == "px" {
		name = "psetex"
	}
	at, msg := expiryArg(unit, args[2], name, time.Now())
	if msg != "" {
		x.w.Error(msg)
		return nil
	}
	if !x.checkKeys(args[1]) || !x.checkValue(args[3]) {
		return nil
	}
	x.v.set(args[1], args[3], at)
	x.w.SimpleString("OK")
	return nil
}

func execSetNX(x *execCtx, args [][]byte) error {
	if !x.checkKeys(args[1]) || !x.checkValue(args[2]) {
		return nil
	}
	e, err := x.v.get(args[1])
	if err != nil {
		return err
	}
	if e.found {
		x.w.Integer(0)
		return nil
	}
	x.v.set(args[1], args[2], 0)
	x.w.Integer(1)
	return nil
}

func execGetDel(x *execCtx, args [][]byte) error {
	if !x.checkKeys(args[1]) {
		return nil
	}
	e, err := x.v.get(args[1])
	if err != nil {
		return err
	}
	if !e.found {
		x.w.Null()
		return nil
	}
	x.v.del(args[1])
	x.w.Bulk(e.value)
	return nil
}

func execMGet(x *execCtx, args [][]byte) error {
	if !x.checkKeys(args[1:]...) {
		return nil
	}
	x.w.ArrayHeader(len(args) - 1)
	for _, k := range args[1:] {
		e, err := x.v.get(k)
		if err != nil {
			return err
		}
		if e.found {
			x.w.Bulk(e.value)
		} else {
			x.w.Null()
		}
		if x.w.Len() > x.maxReplyBytes {
			return errOutputLimit
		}
	}
	return nil
}

// checkPairs answers MSET and MSETNX with an odd number of arguments, and
// invalid keys or values.
func checkPairs(x *execCtx, args [][]byte) bool {
	if len(args)%2 != 1 {
		x.w.Error(wrongArgs(string(bytes.ToLower(args[0]))))
		return false
	}
	for i := 1; i < len(args); i += 2 {
		if !x.checkKeys(args[i]) || !x.checkValue(args[i+1]) {
			return false
		}
	}
	return true
}

func execMSet(x *execCtx, args [][]byte) error {
	if !checkPairs(x, args) {
		return nil
	}
	for i := 1; i < len(args); i += 2 {
		x.v.set(args[i], args[i+1], 0)
	}
	x.w.SimpleString("OK")
	return nil
}

func execMSetNX(x *execCtx, args [][]byte) error {
	if !checkPairs(x, args) {
		return nil
	}
	for i := 1; i < len(args); i += 2 {
		e, err := x.v.get(args[i])
		if err != nil {
			return err
		}
		if e.found {
			x.w.Integer(0)
			return nil
		}
	}
	for i := 1; i < len(args); i += 2 {
		x.v.set(args[i], args[i+1], 0)
	}
	x.w.Integer(1)
	return nil
}

// execIncr is INCR, DECR, INCRBY and DECRBY: sign is +1 or -1; hasArg
// says the amount is args[2].
func execIncr(x *execCtx, args [][]byte, sign int64, hasArg bool) error {
	delta := int64(1)
	if hasArg {
		n, ok := resp.ParseInt(args[2])
		if !ok {
			x.w.Error(msgNotInteger)
			return nil
		}
		if sign < 0 && n == math.MinInt64 {
			x.w.Error(msgDecrOverflow)
			return nil
		}
		delta = n
	}
	delta *= sign
	if !x.checkKeys(args[1]) {
		return nil
	}
	e, err := x.v.get(args[1])
	if err != nil {
		return err
	}
	var cur int64
	if e.found {
		n, ok := resp.ParseInt(e.value)
		if !ok {
			x.w.Error(msgNotInteger)
			return nil
		}
		cur = n
	}
	if delta > 0 && cur > math.MaxInt64-delta || delta < 0 && cur < math.MinInt64-delta {
		x.w.Error(msgOverflow)
		return nil
	}
	cur += delta
	x.v.set(args[1], strconv.AppendInt(nil, cur, 10), e.expireAt) // INCR keeps the TTL
	x.w.Integer(cur)
	return nil
}

func execAppend(x *execCtx, args [][]byte) error {
	if !x.checkKeys(args[1]) {
		return nil
	}
	e, err := x.v.get(args[1])
	if err != nil {
		return err
	}
	if len(e.value)+len(args[2]) > x.limits.MaxValueBytes {
		x.w.Error(msgStringTooLong)
		return nil
	}
	v := make([]byte, 0, len(e.value)+len(args[2]))
	v = append(append(v, e.value...), args[2]...)
	x.v.set(args[1], v, e.expireAt) // APPEND keeps the TTL
	x.w.Integer(int64(len(v)))
	return nil
}

func execStrlen(x *execCtx, args [][]byte) error {
	if !x.checkKeys(args[1]) {
		return nil
	}
	e, err := x.v.get(args[1])
	if err != nil {
		return err
	}
	x.w.Integer(int64(len(e.value)))
	return nil
}

// DEL, EXISTS, TYPE, TTL, PTTL, PERSIST, EXPIRE, PEXPIRE

func execDel(x *execCtx, args [][]byte) error {
	if !x.checkKeys(args[1:]...) {
		return nil
	}
	var n int64
	for _, k := range args[1:] {
		e, err := x.v.get(k)
		if err != nil {
			return err
		}
		if e.found {
			x.v.del(k)
			n++
		}
	}
	x.w.Integer(n)
	return nil
}

// runDel is DEL outside MULTI: deletes that need no read. One key is a
// Delete; more are batches of at most kv.MaxBatchOps deletes, each atomic,
// and a transaction when the keys lie in several ranges (NB: a DEL of
// more keys than kv.MaxBatchOps is not atomic as a whole).
func runDel(c *conn, args [][]byte) {
	x := c.execCtx(nil, &c.out)
	keys := args[1:]
	if !x.checkKeys(keys...) {
		return
	}
	if len(keys) == 1 {
		_, err := c.backend().Delete(c.ctx, &cairnpb.DeleteRequest{Table: c.table, Key: keys[0]})
		switch {
		case errors.Is(err, kv.ErrNotFound):
			c.out.Integer(0)
		case err != nil:
			c.replyErr(err)
		default:
			c.out.Integer(1)
		}
		return
	}
	var n int64
	for len(keys) > 0 {
		chunk := keys[:min(len(keys), kv.MaxBatchOps)]
		keys = keys[len(chunk):]
		ops := make([]*cairnpb.BatchOp, len(chunk))
		for i, k := range chunk {
			ops[i] = &cairnpb.BatchOp{Op: &cairnpb.BatchOp_Delete{Delete: &cairnpb.DeleteRequest{Key: k}}}
		}
		resp, err := c.backend().Batch(c.ctx, &cairnpb.BatchRequest{Table: c.table, Ops: ops})
		if tx, ok := c.backend().(kv.Transactor); ok && errors.Is(err, kv.ErrMultiRange) {
			// The keys lie in several ranges: one transaction.
			req := &cairnpb.TxnRequest{}
			seen := map[string]bool{}
			for _, k := range chunk {
				if !seen[string(k)] {
					seen[string(k)] = true
					req.Ops = append(req.Ops, &cairnpb.TxnOp{Kind: cairnpb.TxnOp_DELETE, Table: c.table, Key: k})
				}
			}
			tresp, terr := tx.Txn(c.ctx, req)
			if terr != nil {
				c.replyErr(terr)
				return
			}
			for _, r := range tresp.Results {
				if r.Found {
					n++
				}
			}
			continue
		}
		if errors.Is(err, kv.ErrMultiRange) {
			// The keys lie in several ranges: delete them one by one
			// (not atomic as a whole, like a DEL of over 1000 keys).
			for _, k := range chunk {
				_, err := c.backend().Delete(c.ctx, &cairnpb.DeleteRequest{Table: c.table, Key: k})
				switch {
				case errors.Is(err, kv.ErrNotFound):
				case err != nil:
					c.replyErr(err)
					return
				default:
					n++
				}
			}
			continue
		}
		if err != nil {
			c.replyErr(err)
			return
		}
		for _, r := range resp.Results {
			if r.Found {
				n++
			}
		}
	}
	c.out.Integer(n)
}

func execExists(x *execCtx, args [][]byte) error {
	if !x.checkKeys(args[1:]...) {
		return nil
	}
	var n int64
	for _, k := range args[1:] {
		e, err := x.v.get(k)
		if err != nil {
			return err
		}
		if e.found {
			n++
		}
	}
	x.w.Integer(n)
	return nil
}

func execType(x *execCtx, args [][]byte) error {
	if !x.checkKeys(args[1]) {
		return nil
	}
	e, err := x.v.get(args[1])
	if err != nil {
		return err
	}
	if e.found {
		x.w.SimpleString("string")
	} else {
		x.w.SimpleString("none")
	}
	return nil
}

// execTTL is TTL and PTTL: -2 for a key that does not exist, -1 for one
// without a TTL, else the time left (TTL rounds to the nearest second, as
// Redis does).
func execTTL(x *execCtx, args [][]byte) error {
	if !x.checkKeys(args[1]) {
		return nil
	}
	e, err := x.v.get(args[1])
	if err != nil {
		return err
	}
	switch {
	case !e.found:
		x.w.Integer(-2)
	case e.expireAt == 0:
		x.w.Integer(-1)
	default:
		left := max(e.expireAt-time.Now().UnixMilli(), 0)
		if bytes.EqualFold(args[0], []byte("ttl")) {
			left = (left + 500) / 1000
		}
		x.w.Integer(left)
	}
	return nil
}

// execPersist removes a key's TTL: 1 if it had one, else 0.
func execPersist(x *execCtx, args [][]byte) error {
	if !x.checkKeys(args[1]) {
		return nil
	}
	e, err := x.v.get(args[1])
	if err != nil {
		return err
	}
	if !e.found || e.expireAt == 0 {
		x.w.Integer(0)
		return nil
	}
	x.v.set(args[1], e.value, 0)
	x.w.Integer(1)
	return nil
}

// execExpire is EXPIRE, PEXPIRE, EXPIREAT and PEXPIREAT (unit is "ex",
// "px", "exat" or "pxat") with Redis 7's NX, XX, GT and LT: 1 if the
// expiry was set, 0 if the key does not exist or the option forbade it.
// An expiry in the past deletes the key.
func execExpire(x *execCtx, args [][]byte, unit string) error {
	name := string(bytes.ToLower(args[0]))
	n, ok := resp.ParseInt(args[2])
	if !ok {
		x.w.Error(msgNotInteger)
		return nil
	}
	var nx, xx, gt, lt bool
	for _, a := range args[3:] {
		switch string(bytes.ToLower(a)) {
		case "nx":
			nx = true
		case "xx":
			xx = true
		case "gt":
			gt = true
		case "lt":
			lt = true
		default:
			x.w.Error("ERR Unsupported option " + string(cString(a, 128)))
			return nil
		}
	}
	if nx && (xx || gt || lt) {
		x.w.Error("ERR NX and XX, GT or LT options at the same time are not compatible")
		return nil
	}
	if gt && lt {
		x.w.Error("ERR GT and LT options at the same time are not compatible")
		return nil
	}
	now := time.Now().UnixMilli()
	seconds := unit == "ex" || unit == "exat"
	if seconds && (n > math.MaxInt64/1000 || n < math.MinInt64/1000) {
		x.w.Error(fmt.Sprintf(msgInvalidExpire, name))
		return nil
	}
	if seconds {
		n *= 1000
	}
	at := n
	if unit == "ex" || unit == "px" {
		if n > 0 && n > math.MaxInt64-now || n < 0 && n < math.MinInt64+now {
			x.w.Error(fmt.Sprintf(msgInvalidExpire, name))
			return nil
		}
		at = now + n
	}
	if !x.checkKeys(args[1]) {
		return nil
	}
	e, err := x.v.get(args[1])
	if err != nil {
		return err
	}
	if !e.found {
		x.w.Integer(0)
		return nil
	}
	// No TTL counts as an infinite one for GT and LT.
	switch {
	case nx && e.expireAt != 0,
		xx && e.expireAt == 0,
		gt && (e.expireAt == 0 || at <= e.expireAt),
		lt && e.expireAt != 0 && at >= e.expireAt:
		x.w.Integer(0)
		return nil
	}
	if at <= now {
		x.v.del(args[1])
	} else {
		x.v.set(args[1], e.value, at)
	}
	x.w.Integer(1)
	return nil
}

// GETEX key [EX s|PX ms|EXAT ts|PXAT ms-ts|PERSIST]: GET that can change
// the TTL.
func execGetEx(x *execCtx, args [][]byte) error {
	var unit string
	var arg []byte
	persist := false
	for i := 2; i < len(args); i++ {
		opt := string(bytes.ToLower(args[i]))
		switch {
		case opt == "persist" && unit == "" && !persist:
			persist = true
		case (opt == "ex" || opt == "px" || opt == "exat" || opt == "pxat") && unit == "" && !persist && i+1 < len(args):
			unit, arg = opt, args[i+1]
			i++
		default:
			x.w.Error(msgSyntax)
			return nil
		}
	}
	var at int64
	if unit != "" {
		var msg string
		if at, msg = expiryArg(unit, arg, "getex", time.Now()); msg != "" {
			x.w.Error(msg)
			return nil
		}
	}
	if !x.checkKeys(args[1]) {
		return nil
	}
	e, err := x.v.get(args[1])
	if err != nil {
		return err
	}
	if !e.found {
		x.w.Null()
		return nil
	}
	switch {
	case unit != "" && at <= time.Now().UnixMilli():
		x.v.del(args[1])
	case unit != "":
		x.v.set(args[1], e.value, at)
	case persist && e.expireAt != 0:
		x.v.set(args[1], e.value, 0)
	}
	x.w.Bulk(e.value)
	return nil
}
