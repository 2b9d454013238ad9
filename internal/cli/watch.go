package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cairn-db/cairn/client"
)

// watchOutput is one line of `cairn watch -o json`. Value is base64.
type watchOutput struct {
	Type        string `json:"type"`
	Key         string `json:"key"`
	Value       []byte `json:"value,omitempty"`
	Version     uint64 `json:"version"`
	PrevVersion uint64 `json:"prev_version,omitempty"`
	ExpiresAtMs int64  `json:"expires_at_ms,omitempty"`
	ResumeToken string `json:"resume_token"`
}

func newWatchCommand(a *app) *cobra.Command {
	var (
		table  string
		prefix bool
		after  uint64
		resume string
	)
	cmd := &cobra.Command{
		Use:   "watch KEY",
		Short: "Print every change of a key or a key prefix as it happens",
		Long: `Print the changes of KEY (of every key starting with KEY, with
--prefix; an empty KEY with --prefix watches the whole table), one line
each: "put KEY VALUE", "delete KEY" or "expire KEY", until interrupted.
With -o json each line is {"type","key","value"(base64),"version",
"prev_version","expires_at_ms","resume_token"}; pass a line's resume_token
to --resume to continue after it without gaps. The watch moves to another
endpoint on its own when a node fails.`,
		Example: `  cairn watch greeting
  cairn watch --prefix users/ -o json
  cairn watch --prefix "" --after-version 117690633200599040`,
		Args: cobra.ExactArgs(1),
	}
	cmd.Flags().StringVar(&table, "table", defaultTable, "table of the keys")
	cmd.Flags().BoolVar(&prefix, "prefix", false, "watch every key with KEY as prefix")
	cmd.Flags().Uint64Var(&after, "after-version", 0, "begin with the retained changes after this version")
	cmd.Flags().StringVar(&resume, "resume", "", "begin after this resume token (from -o json output)")
	a.addClientFlags(cmd, false)
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		c, err := a.newClient(cmd)
		if err != nil {
			return err
		}
		defer c.Close()
		var opts []client.WatchOption
		if prefix {
			opts = append(opts, client.WatchPrefix())
		}
		if after > 0 {
			opts = append(opts, client.WatchAfterVersion(after))
		}
		if resume != "" {
			opts = append(opts, client.WatchResume(resume))
		}
		out := cmd.OutOrStdout()
		for resp := range c.Watch(cmd.Context(), table, []byte(args[0]), opts...) {
			if resp.Err != nil {
				if cmd.Context().Err() != nil {
					return nil // interrupted: a normal end
				}
				return resp.Err
			}
			for _, ev := range resp.Events {
				if a.output == "json" {
					o := watchOutput{Type: ev.Type.String(), Key: string(ev.Key), Value: ev.Value, Version: ev.Version,
						PrevVersion: ev.PrevVersion, ResumeToken: resp.ResumeToken}
					if !ev.ExpireAt.IsZero() {
						o.ExpiresAtMs = ev.ExpireAt.UnixMilli()
					}
					writeJSON(out, o)
					continue
				}
				switch ev.Type {
				case client.EventPut:
					fmt.Fprintf(out, "put %s %s\n", ev.Key, ev.Value)
				default:
					fmt.Fprintf(out, "%s %s\n", ev.Type, ev.Key)
				}
			}
		}
		return nil
	})
	return cmd
}
