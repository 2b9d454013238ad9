package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/cairn-db/cairn/client"
)

func newClusterCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Inspect the cluster",
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
	return cmd
}

func printClusterStatus(w io.Writer, st *client.ClusterStatus) {
	tw := newTable(w)
	fmt.Fprintln(tw, "NODE\tID\tADDRESS\tALIVE\tRANGES\tLEADERS")
	for _, n := range st.Nodes {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%t\t%d\t%d\n", n.Name, n.ID, n.Address, n.Alive, n.Ranges, n.Leaders)
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
	tw = newTable(w)
	fmt.Fprintln(tw, "RANGE\tTABLE\tSTART\tEND\tREPLICAS\tLEADER\tTERM\tCOMMIT\tAPPLIED\tSIZE")
	for _, r := range st.Ranges {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%v\t%d\t%d\t%d\t%d\t%d\n", r.ID, r.Table, printBound(r.Partitioning, r.Start), printBound(r.Partitioning, r.End),
			r.Replicas, r.Leader, r.Term, r.CommitIndex, r.AppliedIndex, r.SizeBytes)
	}
	_ = tw.Flush()
}
