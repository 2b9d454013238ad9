package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/cairn-db/cairn/client"
)

// maxPages bounds the pages `ls --all` follows, so a server that never
// ends a listing cannot keep the command running forever.
const maxPages = 1 << 20

// lsItem is one key in the JSON output of ls.
type lsItem struct {
	Key     string `json:"key"`
	Value   []byte `json:"value,omitempty"`
	Version uint64 `json:"version"`
}

// lsOutput is the JSON output of ls, shaped like the HTTP API's listing.
type lsOutput struct {
	Items         []lsItem `json:"items"`
	NextPageToken string   `json:"next_page_token"`
}

func newLsCommand(a *app) *cobra.Command {
	var (
		table string
		opts  client.ListOptions
		start string
		end   string
		all   bool
		rf    readFlags
	)
	cmd := &cobra.Command{
		Use:   "ls [PREFIX]",
		Short: "List keys in order",
		Long: `List the keys of a table in order, one per line; with --values, each
key is followed by a tab and its value. PREFIX, --start and --end (the
half-open span [start, end)) select the keys; all combine.

One call returns one page of at most --limit keys (0: the server's
default, 1000). When more keys follow, the token of the next page is
printed to stderr (in the JSON output: next_page_token); pass it to
--page-token. --all follows the pages to the end.`,
		Example: `  cairn ls
  cairn ls user/ --values
  cairn ls --start a --end m --limit 100 -o json
  cairn ls --table users --all`,
		Args: cobra.MaximumNArgs(1),
	}
	fs := cmd.Flags()
	fs.StringVar(&table, "table", defaultTable, "table to list")
	fs.StringVar(&start, "start", "", "first key of the span (inclusive)")
	fs.StringVar(&end, "end", "", "end of the span (exclusive); empty: no end")
	fs.IntVar(&opts.Limit, "limit", 0, "keys per page (0: the server's default)")
	fs.StringVar(&opts.PageToken, "page-token", "", "continue a listing after a previous page")
	fs.BoolVar(&opts.Values, "values", false, "print values too")
	fs.BoolVar(&all, "all", false, "follow pages to the end of the listing")
	addReadFlags(cmd, &rf)
	a.addClientFlags(cmd, false)
	a.addSessionFlag(cmd)
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		if opts.Limit < 0 {
			return usageErrorf("--limit %d: want 0 or more", opts.Limit)
		}
		if err := rf.check(); err != nil {
			return err
		}
		opts.Consistency, opts.MaxStaleness = rf.consistency, rf.maxStaleness
		if len(args) == 1 {
			opts.Prefix = []byte(args[0])
		}
		opts.Start, opts.End = []byte(start), []byte(end)
		c, err := a.newClient(cmd)
		if err != nil {
			return err
		}
		defer c.Close()
		if err := a.loadSession(cmd, c); err != nil {
			return err
		}
		defer a.saveSession(cmd, c)
		out := cmd.OutOrStdout()
		result := lsOutput{Items: []lsItem{}}
		for pages := 0; ; pages++ {
			page, err := c.List(cmd.Context(), table, opts)
			if err != nil {
				return err
			}
			if a.output == "json" {
				for _, it := range page.Items {
					result.Items = append(result.Items, lsItem{Key: string(it.Key), Value: it.Value, Version: it.Version})
				}
			} else {
				printItems(out, page.Items, opts.Values)
			}
			result.NextPageToken = page.NextPageToken
			if !all || page.NextPageToken == "" || page.NextPageToken == opts.PageToken || pages == maxPages {
				break
			}
			opts.PageToken = page.NextPageToken
		}
		if a.output == "json" {
			writeJSON(out, result)
		} else if result.NextPageToken != "" {
			fmt.Fprintf(cmd.ErrOrStderr(), "more keys follow: --page-token %s\n", result.NextPageToken)
		}
		return nil
	})
	return cmd
}

func printItems(w io.Writer, items []client.KeyValue, values bool) {
	for _, it := range items {
		line := append([]byte{}, it.Key...)
		if values {
			line = append(line, '\t')
			line = append(line, it.Value...)
		}
		line = append(line, '\n')
		_, _ = w.Write(line)
	}
}
