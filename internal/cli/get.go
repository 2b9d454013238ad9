package cli

import (
	"github.com/spf13/cobra"

	"github.com/cairn-db/cairn/client"
)

// kvOutput is the JSON output of get, put and del. Value is base64, as in
// the HTTP API.
type kvOutput struct {
	Table   string `json:"table"`
	Key     string `json:"key"`
	Value   []byte `json:"value,omitempty"`
	Version uint64 `json:"version"`
	// How a get was served (get only): the level and the node ID.
	Consistency string `json:"consistency,omitempty"`
	ServedBy    uint64 `json:"served_by,omitempty"`
}

func newGetCommand(a *app) *cobra.Command {
	var table string
	var rf readFlags
	cmd := &cobra.Command{
		Use:   "get KEY",
		Short: "Print the value of a key",
		Long: `Print the value of KEY, followed by a newline. With -o json, print
{"table","key","value"(base64),"version"}. Exits 1 if the key is absent.

--consistency session reads your own writes and never goes back, served
by any replica that has caught up (keep the session between commands with
--session-file); --consistency stale --max-staleness 2s accepts data up
to that old, served by any replica that can prove it.`,
		Example: `  cairn get greeting
  cairn get --table users alice -o json
  cairn get --consistency stale --max-staleness 500ms greeting`,
		Args: cobra.ExactArgs(1),
	}
	cmd.Flags().StringVar(&table, "table", defaultTable, "table of the key")
	addReadFlags(cmd, &rf)
	a.addClientFlags(cmd, false)
	a.addSessionFlag(cmd)
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		if err := rf.check(); err != nil {
			return err
		}
		c, err := a.newClient(cmd)
		if err != nil {
			return err
		}
		defer c.Close()
		if err := a.loadSession(cmd, c); err != nil {
			return err
		}
		defer a.saveSession(cmd, c)
		var served client.Served
		value, version, err := c.Get(cmd.Context(), table, []byte(args[0]),
			client.WithConsistency(rf.consistency), client.WithMaxStaleness(rf.maxStaleness), client.WithServed(&served))
		if err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		if a.output == "json" {
			writeJSON(out, kvOutput{Table: table, Key: args[0], Value: value, Version: version,
				Consistency: served.Consistency, ServedBy: served.Node})
			return nil
		}
		_, err = out.Write(append(value, '\n'))
		return err
	})
	return cmd
}
