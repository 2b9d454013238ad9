package cli

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/cairn-db/cairn/client"
)

// maxStdinBytes bounds a value read from stdin; the server's limit (1 MiB
// by default) is usually lower and gives the clearer error.
const maxStdinBytes = 64 << 20

// versionOutput is the JSON output of put and del.
type versionOutput struct {
	Version uint64 `json:"version"`
}

func newPutCommand(a *app) *cobra.Command {
	var (
		table     string
		ifVersion uint64
		ifAbsent  bool
		ttl       time.Duration
	)
	cmd := &cobra.Command{
		Use:   "put KEY VALUE",
		Short: "Set the value of a key",
		Long: `Set KEY to VALUE and print the new version. VALUE "-" reads the value
from stdin. --if-version and --if-absent make the write conditional; when
the condition does not hold nothing is written and cairn exits 1. --ttl
makes the key expire that long after the write.`,
		Example: `  cairn put greeting hello
  cairn put --ttl 30m session/8f3a '{"user":"ana"}'

  cairn put --if-absent lock/job1 worker7
  cairn put --if-version 42 config/limits "$(cat limits.json)"
  cairn put --table blobs photo - < photo.jpg`,
		Args: cobra.ExactArgs(2),
	}
	cmd.Flags().StringVar(&table, "table", defaultTable, "table of the key")
	cmd.Flags().Uint64Var(&ifVersion, "if-version", 0, "write only if the key's current version is this")
	cmd.Flags().BoolVar(&ifAbsent, "if-absent", false, "write only if the key does not exist")
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "expire the key this long after the write (e.g. 30s, 24h)")
	cmd.MarkFlagsMutuallyExclusive("if-version", "if-absent")
	a.addClientFlags(cmd, false)
	a.addSessionFlag(cmd)
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		var opts []client.WriteOption
		if cmd.Flags().Changed("if-version") {
			if ifVersion == 0 {
				return usageErrorf("--if-version must be a version (> 0); use --if-absent for a new key")
			}
			opts = append(opts, client.IfVersion(ifVersion))
		}
		if ifAbsent {
			opts = append(opts, client.IfAbsent())
		}
		if cmd.Flags().Changed("ttl") {
			if ttl < time.Millisecond {
				return usageErrorf("--ttl must be at least 1ms; got %v", ttl)
			}
			opts = append(opts, client.WithTTL(ttl))
		}
		value := []byte(args[1])
		if args[1] == "-" {
			var err error
			if value, err = readValue(cmd.InOrStdin()); err != nil {
				return err
			}
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
		version, err := c.Put(cmd.Context(), table, []byte(args[0]), value, opts...)
		if err != nil {
			return err
		}
		printVersion(a, cmd.OutOrStdout(), version)
		return nil
	})
	return cmd
}

func readValue(r io.Reader) ([]byte, error) {
	value, err := io.ReadAll(io.LimitReader(r, maxStdinBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading the value from stdin: %w", err)
	}
	if len(value) > maxStdinBytes {
		return nil, usageErrorf("the value on stdin is over %d bytes", maxStdinBytes)
	}
	return value, nil
}

func printVersion(a *app, w io.Writer, version uint64) {
	if a.output == "json" {
		writeJSON(w, versionOutput{Version: version})
		return
	}
	fmt.Fprintf(w, "OK version=%d\n", version)
}
