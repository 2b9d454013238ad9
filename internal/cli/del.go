package cli

import (
	"github.com/spf13/cobra"

	"github.com/cairn-db/cairn/client"
)

func newDelCommand(a *app) *cobra.Command {
	var (
		table     string
		ifVersion uint64
	)
	cmd := &cobra.Command{
		Use:   "del KEY",
		Short: "Delete a key",
		Long: `Delete KEY and print the version of the deleted value. Exits 1 if the
key is absent, or if --if-version is given and the key is at another
version (then nothing is deleted).`,
		Example: `  cairn del greeting
  cairn del --if-version 42 lock/job1`,
		Args: cobra.ExactArgs(1),
	}
	cmd.Flags().StringVar(&table, "table", defaultTable, "table of the key")
	cmd.Flags().Uint64Var(&ifVersion, "if-version", 0, "delete only if the key's current version is this")
	a.addClientFlags(cmd, false)
	a.addSessionFlag(cmd)
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		var opts []client.WriteOption
		if cmd.Flags().Changed("if-version") {
			if ifVersion == 0 {
				return usageErrorf("--if-version must be a version (> 0)")
			}
			opts = append(opts, client.IfVersion(ifVersion))
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
		version, err := c.Delete(cmd.Context(), table, []byte(args[0]), opts...)
		if err != nil {
			return err
		}
		printVersion(a, cmd.OutOrStdout(), version)
		return nil
	})
	return cmd
}
