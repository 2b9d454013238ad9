package cli

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/cairn-db/cairn/client"
)

// historyOutput is one line of `cairn history -o json`. Value is base64.
type historyOutput struct {
	Type        string `json:"type"`
	Version     uint64 `json:"version"`
	Value       []byte `json:"value,omitempty"`
	PrevVersion uint64 `json:"prev_version,omitempty"`
	ExpiresAtMs int64  `json:"expires_at_ms,omitempty"`
}

func newHistoryCommand(a *app) *cobra.Command {
	var (
		table string
		at    uint64
		limit int
	)
	cmd := &cobra.Command{
		Use:   "history KEY",
		Short: "Print the retained versions of a key, or its value at a version",
		Long: `Print KEY's retained changes, newest first, one per line: "VERSION put
VALUE", "VERSION delete" or "VERSION expire". With --at V, print the value
the key had at version V (exit 1 if it did not exist then; an error if
that version is no longer retained). -o json prints one JSON object per
change. How much history is kept is the cluster's --history-versions and
--history-retention.`,
		Example: `  cairn history greeting
  cairn history greeting --at 117690633200599040`,
		Args: cobra.ExactArgs(1),
	}
	cmd.Flags().StringVar(&table, "table", defaultTable, "table of the key")
	cmd.Flags().Uint64Var(&at, "at", 0, "print the value at this version")
	cmd.Flags().IntVar(&limit, "limit", 0, "at most this many changes (0: the server's default)")
	a.addClientFlags(cmd, false)
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		c, err := a.newClient(cmd)
		if err != nil {
			return err
		}
		defer c.Close()
		out := cmd.OutOrStdout()
		if at > 0 {
			value, version, err := c.GetAt(cmd.Context(), table, []byte(args[0]), at)
			if err != nil {
				return err
			}
			if a.output == "json" {
				writeJSON(out, kvOutput{Table: table, Key: args[0], Value: value, Version: version})
				return nil
			}
			_, err = out.Write(append(value, '\n'))
			return err
		}
		changes, _, err := c.History(cmd.Context(), table, []byte(args[0]), limit)
		if err != nil {
			return err
		}
		for _, ch := range changes {
			if a.output == "json" {
				o := historyOutput{Type: ch.Type.String(), Version: ch.Version, Value: ch.Value, PrevVersion: ch.PrevVersion}
				if !ch.ExpireAt.IsZero() {
					o.ExpiresAtMs = ch.ExpireAt.UnixMilli()
				}
				writeJSON(out, o)
				continue
			}
			if ch.Type == client.EventPut {
				fmt.Fprintf(out, "%d put %s\n", ch.Version, ch.Value)
			} else {
				fmt.Fprintf(out, "%d %s\n", ch.Version, ch.Type)
			}
		}
		return nil
	})
	return cmd
}

func newRevertCommand(a *app) *cobra.Command {
	var (
		table string
		to    uint64
	)
	cmd := &cobra.Command{
		Use:   "revert KEY --to VERSION",
		Short: "Write a key's value at an earlier version again",
		Long: `Read the value KEY had at VERSION (from its retained history) and write
it as a new version, only if the key has not changed meanwhile (a
conditional write: it fails with a condition error, and changes nothing,
if another writer got there first). If the key did not exist at VERSION,
it is deleted. Prints the new version.`,
		Example: `  cairn revert greeting --to 117690633200599040`,
		Args:    cobra.ExactArgs(1),
	}
	cmd.Flags().StringVar(&table, "table", defaultTable, "table of the key")
	cmd.Flags().Uint64Var(&to, "to", 0, "the version to go back to (required)")
	_ = cmd.MarkFlagRequired("to")
	a.addClientFlags(cmd, false)
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		if to == 0 {
			return usageError{errors.New("--to must be a version")}
		}
		c, err := a.newClient(cmd)
		if err != nil {
			return err
		}
		defer c.Close()
		ctx, key := cmd.Context(), []byte(args[0])
		old, _, oldErr := c.GetAt(ctx, table, key, to)
		if oldErr != nil && !errors.Is(oldErr, client.ErrNotFound) {
			return oldErr
		}
		_, cur, err := c.Get(ctx, table, key)
		curAbsent := errors.Is(err, client.ErrNotFound)
		if err != nil && !curAbsent {
			return err
		}
		var version uint64
		switch {
		case oldErr != nil && curAbsent: // absent then and now
			return nil
		case oldErr != nil:
			version, err = c.Delete(ctx, table, key, client.IfVersion(cur))
		case curAbsent:
			version, err = c.Put(ctx, table, key, old, client.IfAbsent())
		default:
			version, err = c.Put(ctx, table, key, old, client.IfVersion(cur))
		}
		if err != nil {
			return err
		}
		if a.output == "json" {
			writeJSON(cmd.OutOrStdout(), kvOutput{Table: table, Key: args[0], Value: old, Version: version})
			return nil
		}
		_, err = fmt.Fprintln(cmd.OutOrStdout(), strconv.FormatUint(version, 10))
		return err
	})
	return cmd
}
