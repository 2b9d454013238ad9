package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/cairn-db/cairn/client"
)

func newRangeCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "range",
		Short: "List, split and merge ranges",
		Long: `A range holds the keys [start, end) of one table and is replicated by
its own Raft group. Ranges split by themselves when they grow past
--split-size, and small, cold neighbours merge (--merge-size); "range
split" and "range merge" do it by hand.`,
		Args: cobra.NoArgs,
		RunE: showHelp,
	}
	a.addClientFlags(cmd, true)
	cmd.AddCommand(newRangeLsCommand(a), newRangeSplitCommand(a), newRangeMergeCommand(a))
	return cmd
}

// rangesOutput is the JSON output of range ls.
type rangesOutput struct {
	Ranges []client.RangeStatus `json:"ranges"`
}

func newRangeLsCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ls [TABLE]",
		Short: "List ranges (of one table, or all)",
		Long: `List ranges in key order, as the answering node's replicas see them:
id, span, generation (its number of splits), leader, replicas and size.`,
		Args: cobra.MaximumNArgs(1),
	}
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		c, err := a.newClient(cmd)
		if err != nil {
			return err
		}
		defer c.Close()
		st, err := c.ClusterStatus(cmd.Context())
		if err != nil {
			return err
		}
		out := rangesOutput{Ranges: []client.RangeStatus{}}
		for _, r := range st.Ranges {
			if len(args) == 0 || r.Table == args[0] {
				out.Ranges = append(out.Ranges, r)
			}
		}
		if a.output == "json" {
			writeJSON(cmd.OutOrStdout(), out)
			return nil
		}
		printRanges(cmd.OutOrStdout(), out.Ranges)
		return nil
	})
	return cmd
}

func printRanges(w io.Writer, rs []client.RangeStatus) {
	tw := newTable(w)
	fmt.Fprintln(tw, "RANGE\tTABLE\tSTART\tEND\tGEN\tLEADER\tREPLICAS\tSIZE")
	for _, r := range rs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%d\t%v\t%d\n", r.ID, r.Table, printBound(r.Partitioning, r.Start), printBound(r.Partitioning, r.End),
			r.Generation, r.Leader, r.Replicas, r.SizeBytes)
	}
	_ = tw.Flush()
}

func newRangeSplitCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "split TABLE KEY",
		Short: "Split the range holding KEY at KEY",
		Long: `Split the range of TABLE that holds KEY into [start, KEY) and [KEY, end).

On a hash table KEY is a position in the hash space: 0x and 16 hex digits
(the bounds "cairn range ls" shows), e.g. 0x8000000000000000.`,
		Example: `  cairn range split default user/m
  cairn range split events 0x4000000000000000`,
		Args: cobra.ExactArgs(2),
	}
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		c, err := a.newClient(cmd)
		if err != nil {
			return err
		}
		defer c.Close()
		left, right, err := c.SplitRange(cmd.Context(), args[0], []byte(args[1]))
		if err != nil {
			return err
		}
		if a.output == "json" {
			writeJSON(cmd.OutOrStdout(), map[string]client.RangeSpan{"left": left, "right": right})
			return nil
		}
		partitioning := ""
		if t, err := c.GetTable(cmd.Context(), args[0]); err == nil {
			partitioning = t.Partitioning
		}
		fmt.Fprintf(cmd.OutOrStdout(), "OK left=%d [%s, %s) right=%d [%s, %s) generation=%d\n",
			left.ID, printBound(partitioning, left.Start), printBound(partitioning, left.End),
			right.ID, printBound(partitioning, right.Start), printBound(partitioning, right.End), right.Generation)
		return nil
	})
	return cmd
}

func newRangeMergeCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "merge TABLE KEY",
		Short: "Merge the range holding KEY with the range to its right",
		Long: `Merge the range of TABLE that holds KEY with the range that follows it.
Both must have their replicas on the same nodes (after a split they do).

On a hash table KEY is a position in the hash space: 0x and 16 hex digits.`,
		Example: `  cairn range merge default user/a`,
		Args:    cobra.ExactArgs(2),
	}
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		c, err := a.newClient(cmd)
		if err != nil {
			return err
		}
		defer c.Close()
		merged, err := c.MergeRange(cmd.Context(), args[0], []byte(args[1]))
		if err != nil {
			return err
		}
		if a.output == "json" {
			writeJSON(cmd.OutOrStdout(), map[string]client.RangeSpan{"merged": merged})
			return nil
		}
		partitioning := ""
		if t, err := c.GetTable(cmd.Context(), args[0]); err == nil {
			partitioning = t.Partitioning
		}
		fmt.Fprintf(cmd.OutOrStdout(), "OK merged=%d [%s, %s) generation=%d\n",
			merged.ID, printBound(partitioning, merged.Start), printBound(partitioning, merged.End), merged.Generation)
		return nil
	})
	return cmd
}
