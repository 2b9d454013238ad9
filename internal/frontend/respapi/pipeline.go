package respapi

import (
	"bytes"
	"errors"
	"time"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/kv"
)

// Pipelines: a client that sends many commands without waiting (redis-cli
// --pipe, redis-benchmark -P, client pipelines) would otherwise pay one
// Raft round per SET and one ReadIndex round per GET, one after another.
// Instead, a run of consecutive plain SETs and MSETs already received is
// written as one atomic batch, and a run of consecutive GETs is read in
// parallel.
//
// Both keep the semantics of running the commands one by one, in order:
// the writes of a run apply together (later ones win on the same key),
// which is one of the orders of running them in sequence (each MSET stays
// atomic: it is inside one atomic batch), and nothing else of the
// connection runs in between; the GETs of a run have no write of this
// connection between them, and concurrent reads of a client's pipeline may
// be ordered either way.
//
// A run ends at any other command, at maxRunOps keys or maxRunBytes, and
// when no further command is buffered (replies are never held back
// waiting for more input).

const (
	maxRunOps   = kv.MaxBatchOps
	maxRunBytes = 4 << 20
)

type runKind int

const (
	runNone runKind = iota
	runSets
	runGets
)

// pipelineRun is the run being collected; its args are copies, and
// commands[i] is the command of cmds[i] (for the metrics). ops counts its
// keys (one batch operation each).
type pipelineRun struct {
	kind     runKind
	cmds     [][][]byte
	commands []*command
	ops      int
	bytes    int
}

// runKindOf says whether args may join a run, as which command and with
// how many keys: a plain SET (no options), an MSET, or a GET, outside
// MULTI.
func (c *conn) runKindOf(args [][]byte) (runKind, *command, int) {
	if c.multi != nil {
		return runNone, nil, 0
	}
	switch {
	case len(args) == 3 && len(args[0]) == 3 && bytes.EqualFold(args[0], []byte("set")):
		return runSets, commandTable["set"], 1
	case len(args) >= 3 && len(args)%2 == 1 && len(args) <= 2*maxRunOps+1 && len(args[0]) == 4 &&
		bytes.EqualFold(args[0], []byte("mset")):
		return runSets, commandTable["mset"], len(args) / 2
	case len(args) == 2 && len(args[0]) == 3 && bytes.EqualFold(args[0], []byte("get")):
		return runGets, commandTable["get"], 1
	}
	return runNone, nil, 0
}

// collect handles a command read from a pipeline: it joins the current run
// (which then runs when full or when nothing more is buffered) or, when it
// cannot, the run runs and the command is dispatched.
func (c *conn) collect(args [][]byte) {
	kind, cmd, ops := c.runKindOf(args)
	if kind != runNone && c.refusal(cmd) != "" {
		kind = runNone // dispatch answers the refusal, after the run
	}
	if kind == runNone || (c.run.kind == runNone && c.r.Buffered() == 0) {
		c.flushRun()
		c.dispatch(args)
		return
	}
	if c.run.kind != kind || c.run.ops+ops > maxRunOps {
		c.flushRun()
	}
	c.run.kind = kind
	c.run.ops += ops
	cp := make([][]byte, len(args))
	for i, a := range args {
		cp[i] = bytes.Clone(a)
		c.run.bytes += len(a)
	}
	c.run.cmds = append(c.run.cmds, cp)
	c.run.commands = append(c.run.commands, cmd)
	if c.r.Buffered() == 0 || c.run.ops >= maxRunOps || c.run.bytes >= maxRunBytes {
		c.flushRun()
	}
}

// flushRun executes the collected run, if any.
func (c *conn) flushRun() {
	run := c.run
	c.run = pipelineRun{}
	switch {
	case len(run.cmds) == 0:
		return
	case len(run.cmds) == 1:
		c.dispatch(run.cmds[0])
		return
	}
	c.srv.stats.commands.Add(uint64(len(run.cmds)))
	c.lastCmd.Store(run.commands[len(run.commands)-1])
	start := time.Now()
	if run.kind == runSets {
		c.runSetBatch(run.cmds)
	} else {
		c.runGetBatch(run.cmds)
	}
	// Each command of the run took as long as the run.
	d := time.Since(start)
	for _, cmd := range run.commands {
		cmd.observe(d)
	}
}

// runSetBatch answers a run of plain SETs and MSETs with one atomic batch.
// A command with an invalid key or value gets its error and is left out
// whole, as it would fail alone. If the keys span ranges, the commands
// run one by one (each MSET atomic through the transaction layer).
func (c *conn) runSetBatch(cmds [][][]byte) {
	limits := &c.srv.opts.Limits
	invalid := make([]error, len(cmds))
	var ops []*cairnpb.BatchOp
	for i, args := range cmds {
		for j := 1; j < len(args) && invalid[i] == nil; j += 2 {
			if err := limits.ValidateKey(args[j]); err != nil {
				invalid[i] = err
			} else if err := limits.ValidateValue(args[j+1]); err != nil {
				invalid[i] = err
			}
		}
		if invalid[i] != nil {
			continue
		}
		for j := 1; j < len(args); j += 2 {
			ops = append(ops, batchPut(string(args[j]), args[j+1], nil))
		}
	}
	var err error
	if len(ops) > 0 {
		_, err = c.backend().Batch(c.ctx, &cairnpb.BatchRequest{Table: c.table, Ops: ops})
	}
	if errors.Is(err, kv.ErrInvalidArgument) {
		for _, args := range cmds {
			lookup(args[0]).run(c, args)
		}
		return
	}
	for i := range cmds {
		switch {
		case invalid[i] != nil:
			c.out.Error("ERR " + invalid[i].Error())
		case err != nil:
			c.replyErr(err)
		default:
			c.out.SimpleString("OK")
		}
	}
}

// runGetBatch answers a run of GETs from parallel reads.
func (c *conn) runGetBatch(cmds [][][]byte) {
	limits := &c.srv.opts.Limits
	var keys []string
	index := map[string]int{}
	for _, args := range cmds {
		k := string(args[1])
		if _, ok := index[k]; ok || limits.ValidateKey(args[1]) != nil {
			continue
		}
		index[k] = len(keys)
		keys = append(keys, k)
	}
	got, err := readKeys(c.ctx, c.backend(), c.table, keys)
	for _, args := range cmds {
		if verr := limits.ValidateKey(args[1]); verr != nil {
			c.out.Error("ERR " + verr.Error())
			continue
		}
		if err != nil {
			c.replyErr(err)
			continue
		}
		e := got[index[string(args[1])]]
		switch {
		case !e.found:
			c.out.Null()
		case c.outputFull(len(e.value)):
			c.replyErr(errOutputLimit)
			return
		default:
			c.out.Bulk(e.value)
		}
	}
}
