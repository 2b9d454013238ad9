package cli

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cairn-db/cairn/client"
)

func newClusterCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Inspect the cluster; drain, remove or reactivate nodes",
		Args:  cobra.NoArgs,
		RunE:  showHelp,
	}
	a.addClientFlags(cmd, true)
	status := &cobra.Command{
		Use:   "status",
		Short: "Show the nodes and ranges of the cluster",
		Long: `Show the nodes and ranges of the cluster as the answering node sees
them. With -o json: {"nodes":[...],"ranges":[...]} (start and end base64).`,
		Args: cobra.NoArgs,
	}
	status.RunE = runE(func(cmd *cobra.Command, _ []string) error {
		c, err := a.newClient(cmd)
		if err != nil {
			return err
		}
		defer c.Close()
		st, err := c.ClusterStatus(cmd.Context())
		if err != nil {
			return err
		}
		if a.output == "json" {
			writeJSON(cmd.OutOrStdout(), st)
			return nil
		}
		printClusterStatus(cmd.OutOrStdout(), st)
		return nil
	})
	cmd.AddCommand(status)
	for _, act := range []struct{ name, short, long string }{
		{"drain", "Move every replica off a node (it stays a member)",
			"Mark node NODE (its ID) draining: the coordinator moves its replicas to other nodes,\none step at a time, without losing a quorum. Follow it with cairn cluster status."},
		{"remove", "Move everything off a node, then take it out of the cluster",
			"Mark node NODE (its ID) for removal: the coordinator drains it, then marks it removed.\nA removed node's ID is never reused; to bring the machine back, join it as a new node."},
		{"activate", "Undo a drain", "Mark a draining node NODE active again: it takes its share of replicas back."},
	} {
		sub := &cobra.Command{Use: act.name + " NODE", Short: act.short, Long: act.long, Args: cobra.ExactArgs(1)}
		action := act.name
		sub.RunE = runE(func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseUint(args[0], 10, 64)
			if err != nil || id == 0 {
				return usageErrorf("NODE must be a node ID (a positive number; see cairn cluster status); got %q", args[0])
			}
			c, err := a.newClient(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			n, err := c.NodeAction(cmd.Context(), id, action)
			if err != nil {
				return err
			}
			if a.output == "json" {
				writeJSON(cmd.OutOrStdout(), n)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "node %d (%s) is %s\n", n.ID, n.Name, n.State)
			return nil
		})
		cmd.AddCommand(sub)
	}
	return cmd
}

func printClusterStatus(w io.Writer, st *client.ClusterStatus) {
	tw := newTable(w)
	fmt.Fprintln(tw, "NODE\tID\tADDRESS\tALIVE\tSTATE\tRANGES\tLEADERS\tHEARTBEAT")
	for _, n := range st.Nodes {
		hb := "-"
		if n.LastHeartbeat >= 0 {
			hb = n.LastHeartbeat.Round(time.Millisecond).String() + " ago"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%t\t%s\t%d\t%d\t%s\n", n.Name, n.ID, n.Address, n.Alive, n.State, n.Ranges, n.Leaders, hb)
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
	tw = newTable(w)
	fmt.Fprintln(tw, "RANGE\tTABLE\tSTART\tEND\tREPLICAS\tLEARNERS\tLEADER\tTERM\tCOMMIT\tAPPLIED\tSIZE\tLAG")
	for _, r := range st.Ranges {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%v\t%v\t%d\t%d\t%d\t%d\t%d\t%s\n", r.ID, r.Table, printBound(r.Partitioning, r.Start), printBound(r.Partitioning, r.End),
			r.Replicas, r.Learners, r.Leader, r.Term, r.CommitIndex, r.AppliedIndex, r.SizeBytes, printLag(r.Lag))
	}
	_ = tw.Flush()
	if len(st.Decisions) == 0 {
		return
	}
	fmt.Fprintf(w, "\nRECENT DECISIONS (coordinator: node %d)\n", st.Coordinator)
	tw = newTable(w)
	fmt.Fprintln(tw, "AT\tOP\tRANGE\tNODE\tOUTCOME\tREASON")
	for _, d := range st.Decisions {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\n", d.At.Format(time.TimeOnly), d.Op, d.Range, d.Node, d.Outcome, d.Reason)
	}
	_ = tw.Flush()
}

// printLag shows the replicas behind their leader: "n4:12 n5:0", or "-"
// without a report.
func printLag(lag map[uint64]uint64) string {
	if len(lag) == 0 {
		return "-"
	}
	var parts []string
	for _, id := range slices.Sorted(maps.Keys(lag)) {
		parts = append(parts, fmt.Sprintf("n%d:%d", id, lag[id]))
	}
	return strings.Join(parts, " ")
}
