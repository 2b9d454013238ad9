package cli

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/client"
	"github.com/cairn-db/cairn/internal/kv"
)

func newTxnCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "txn [FILE]",
		Short: "Run a transaction of reads, checks and writes on any keys",
		Long: `Run a transaction read as JSON from FILE (or stdin when FILE is absent or
"-"): all its writes apply or none does. The JSON is that of POST /v1/txn:

  {"ops": [
    {"op": "read",   "table": "default", "key": "a"},
    {"op": "check",  "table": "default", "key": "b", "version": 42},
    {"op": "check",  "table": "default", "key": "c", "absent": true},
    {"op": "put",    "table": "acct",    "key": "x", "value": "10", "if_version": 7},
    {"op": "delete", "table": "acct",    "key": "y"}
  ]}

A check compares with "version", "absent" or "value"; a put or delete may
carry "if_version", "if_absent" or "if_value". Keys and values may be given
in base64 as "key_base64" / "value_base64". Prints one line per op (found,
version, value of reads and checks); with -o json the reply of POST /v1/txn.
When a check or condition fails nothing is written and cairn exits 1; on a
conflict with another transaction it exits 1 too (run it again).`,
		Example: `  echo '{"ops":[{"op":"put","table":"default","key":"a","value":"1"},
                {"op":"put","table":"default","key":"b","value":"2"}]}' | cairn txn
  cairn txn transfer.json -o json`,
		Args: cobra.MaximumNArgs(1),
	}
	a.addClientFlags(cmd, false)
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		var in io.Reader = cmd.InOrStdin()
		if len(args) == 1 && args[0] != "-" {
			f, err := os.Open(args[0])
			if err != nil {
				return usageErrorf("%v", err)
			}
			defer f.Close()
			in = f
		}
		body, err := readValue(in)
		if err != nil {
			return err
		}
		req, err := kv.DecodeTxnJSON(body, kv.DefaultLimits)
		if err != nil {
			return usageErrorf("%v", err)
		}
		ops := make([]client.TxnOp, len(req.Ops))
		for i, op := range req.Ops {
			ops[i] = client.TxnOp{Kind: client.TxnOpKind(op.Kind), Table: op.Table, Key: op.Key, Value: op.Value}
			if c := op.Condition; c != nil {
				ops[i].IfVersion, ops[i].IfAbsent, ops[i].IfValue = c.Version, c.Absent, c.Value
			}
		}
		c, err := a.newClient(cmd)
		if err != nil {
			return err
		}
		defer c.Close()
		results, err := c.Exec(cmd.Context(), ops)
		if err != nil {
			return err
		}
		resp := &cairnpb.TxnResponse{}
		for _, r := range results {
			resp.Results = append(resp.Results, &cairnpb.TxnResult{Found: r.Found, Value: r.Value, Version: r.Version})
		}
		printTxn(a, cmd.OutOrStdout(), req, resp)
		return nil
	})
	return cmd
}

func printTxn(a *app, w io.Writer, req *cairnpb.TxnRequest, resp *cairnpb.TxnResponse) {
	if a.output == "json" {
		writeJSON(w, kv.EncodeTxnReply(req, resp))
		return
	}
	for i, r := range resp.Results {
		op := req.Ops[i]
		line := fmt.Sprintf("%s %s/%s found=%v version=%d", kindName(op.Kind), op.Table, printable(op.Key), r.Found, r.Version)
		if r.Found && (op.Kind == cairnpb.TxnOp_READ || op.Kind == cairnpb.TxnOp_CHECK) {
			line += " value=" + printable(r.Value)
		}
		fmt.Fprintln(w, line)
	}
}

func kindName(k cairnpb.TxnOp_Kind) string {
	switch k {
	case cairnpb.TxnOp_READ:
		return "read"
	case cairnpb.TxnOp_CHECK:
		return "check"
	case cairnpb.TxnOp_PUT:
		return "put"
	case cairnpb.TxnOp_DELETE:
		return "delete"
	}
	return "?"
}
