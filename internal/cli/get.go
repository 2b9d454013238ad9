package cli

import (
	"github.com/spf13/cobra"
)

// kvOutput is the JSON output of get, put and del. Value is base64, as in
// the HTTP API.
type kvOutput struct {
	Table   string `json:"table"`
	Key     string `json:"key"`
	Value   []byte `json:"value,omitempty"`
	Version uint64 `json:"version"`
}

func newGetCommand(a *app) *cobra.Command {
	var table string
	cmd := &cobra.Command{
		Use:   "get KEY",
		Short: "Print the value of a key",
		Long: `Print the value of KEY, followed by a newline. With -o json, print
{"table","key","value"(base64),"version"}. Exits 1 if the key is absent.`,
		Example: `  cairn get greeting
  cairn get --table users alice -o json`,
		Args: cobra.ExactArgs(1),
	}
	cmd.Flags().StringVar(&table, "table", defaultTable, "table of the key")
	a.addClientFlags(cmd, false)
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		c, err := a.newClient(cmd)
		if err != nil {
			return err
		}
		defer c.Close()
		value, version, err := c.Get(cmd.Context(), table, []byte(args[0]))
		if err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		if a.output == "json" {
			writeJSON(out, kvOutput{Table: table, Key: args[0], Value: value, Version: version})
			return nil
		}
		_, err = out.Write(append(value, '\n'))
		return err
	})
	return cmd
}
