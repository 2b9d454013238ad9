package cli

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/cairn-db/cairn/client"
	"github.com/cairn-db/cairn/internal/config"
)

func newTableCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "table",
		Short: "Create, list, describe and drop tables",
		Long: `Tables hold keys. The table "default" always exists; table names are
[a-z0-9_-]{1,64}.`,
		Args: cobra.NoArgs,
		RunE: showHelp,
	}
	a.addClientFlags(cmd, true)
	cmd.AddCommand(newTableCreateCommand(a), newTableLsCommand(a), newTableGetCommand(a), newTableSetCommand(a), newTableDropCommand(a))
	return cmd
}

func newTableCreateCommand(a *app) *cobra.Command {
	var partitioning, consistency, maxBytes string
	var initialRanges, maxWrites, maxReads, replicas, learners, historyKeep uint32
	var historyFor time.Duration
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a table",
		Long: `Create a table. Exits 1 if it exists. --max-bytes and
--max-writes-per-sec set quotas: writes that would grow the table past the
size, or come faster than the rate, are refused (docs/design/quotas.md).`,
		Example: `  cairn table create users --partitioning range
  cairn table create sessions --consistency session
  cairn table create uploads --max-bytes 10GiB --max-writes-per-sec 500
  cairn table create billing --replicas 5
  cairn table create catalog --learners 2 --consistency stale
  cairn table create config --history-keep 100 --history-for 720h`,
		Args: cobra.ExactArgs(1),
	}
	cmd.Flags().StringVar(&partitioning, "partitioning", "range", "how keys spread over ranges: range (sorted keys, cheap prefix scans) or hash")
	cmd.Flags().Uint32Var(&initialRanges, "initial-ranges", 0, "hash tables: ranges to start with, equal intervals of the hash space (default 4, at most 1024)")
	cmd.Flags().StringVar(&consistency, "consistency", "", "default read consistency of the table: linearizable (default), session or stale")
	cmd.Flags().StringVar(&maxBytes, "max-bytes", "0", "size quota of the table (bytes, or with KiB/MiB/GiB; 0: none)")
	cmd.Flags().Uint32Var(&maxWrites, "max-writes-per-sec", 0, "write rate quota of the table (0: none)")
	cmd.Flags().Uint32Var(&maxReads, "max-reads-per-sec", 0, "read rate quota of the table: gets and lists (0: none)")
	cmd.Flags().Uint32Var(&replicas, "replicas", 0, "voters per range, 1 to 7 (0: the cluster's --default-replicas)")
	cmd.Flags().Uint32Var(&learners, "learners", 0, "read learners per range, 0 to 7: asynchronous replicas on other nodes serving session and stale reads")
	cmd.Flags().Uint32Var(&historyKeep, "history-keep", 0, "key history: keep at least this many changes of each key (default: the nodes' --history-versions; 0: no history)")
	cmd.Flags().DurationVar(&historyFor, "history-for", 0, "key history: keep every change younger than this before the key's latest (default: the nodes' --history-retention; at most 720h)")
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		var quota uint64
		if maxBytes != "0" {
			q, err := config.ParseBytes(maxBytes)
			if err != nil {
				return usageError{fmt.Errorf("--max-bytes: %w", err)}
			}
			quota = q
		}
		c, err := a.newClient(cmd)
		if err != nil {
			return err
		}
		defer c.Close()
		opts := []client.TableOption{client.WithPartitioning(partitioning), client.WithInitialRanges(initialRanges), client.WithTableConsistency(consistency),
			client.WithQuota(quota, maxWrites), client.WithReadQuota(maxReads), client.WithReplicas(replicas), client.WithLearners(learners)}
		if cmd.Flags().Changed("history-keep") {
			opts = append(opts, client.WithHistoryKeep(historyKeep))
		}
		if cmd.Flags().Changed("history-for") {
			opts = append(opts, client.WithHistoryFor(historyFor))
		}
		t, err := c.CreateTable(cmd.Context(), args[0], opts...)
		if err != nil {
			return err
		}
		if a.output == "json" {
			writeJSON(cmd.OutOrStdout(), t)
			return nil
		}
		fmt.Fprintf(cmd.OutOrStdout(), "OK table=%s id=%d\n", t.Name, t.ID)
		return nil
	})
	return cmd
}

// tablesOutput is the JSON output of table ls.
type tablesOutput struct {
	Tables []*client.Table `json:"tables"`
}

func newTableLsCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List tables",
		Args:  cobra.NoArgs,
	}
	cmd.RunE = runE(func(cmd *cobra.Command, _ []string) error {
		c, err := a.newClient(cmd)
		if err != nil {
			return err
		}
		defer c.Close()
		tables, err := c.ListTables(cmd.Context())
		if err != nil {
			return err
		}
		if a.output == "json" {
			if tables == nil {
				tables = []*client.Table{}
			}
			writeJSON(cmd.OutOrStdout(), tablesOutput{Tables: tables})
			return nil
		}
		printTables(cmd.OutOrStdout(), tables)
		return nil
	})
	return cmd
}

func newTableGetCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "get NAME",
		Short: "Describe a table and its ranges",
		Long:  `Describe a table and its ranges. Exits 1 if it does not exist.`,
		Args:  cobra.ExactArgs(1),
	}
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		c, err := a.newClient(cmd)
		if err != nil {
			return err
		}
		defer c.Close()
		t, err := c.GetTable(cmd.Context(), args[0])
		if err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		if a.output == "json" {
			writeJSON(out, t)
			return nil
		}
		printTables(out, []*client.Table{t})
		if len(t.Ranges) > 0 {
			fmt.Fprintln(out)
			tw := newTable(out)
			fmt.Fprintln(tw, "RANGE\tSTART\tEND\tREPLICAS")
			for _, r := range t.Ranges {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%v\n", r.ID, printBound(t.Partitioning, r.Start), printBound(t.Partitioning, r.End), r.Replicas)
			}
			_ = tw.Flush()
		}
		return nil
	})
	return cmd
}

func newTableSetCommand(a *app) *cobra.Command {
	var consistency, maxBytes string
	var maxWrites, maxReads, replicas, learners, historyKeep uint32
	var historyFor time.Duration
	cmd := &cobra.Command{
		Use:   "set NAME",
		Short: "Change a table's settings",
		Long: `Change a table's settings: only the flags given change. A new
--replicas or --learners count is carried out by the coordinator in the
background (cairn cluster status shows the moves).`,
		Example: `  cairn table set users --consistency session
  cairn table set billing --replicas 5 --learners 1
  cairn table set uploads --max-bytes 20GiB --max-writes-per-sec 0
  cairn table set config --history-keep 10 --history-for 24h`,
		Args: cobra.ExactArgs(1),
	}
	cmd.Flags().StringVar(&consistency, "consistency", "", "default read consistency: linearizable, session or stale")
	cmd.Flags().StringVar(&maxBytes, "max-bytes", "", "size quota (bytes, or with KiB/MiB/GiB; 0: none)")
	cmd.Flags().Uint32Var(&maxWrites, "max-writes-per-sec", 0, "write rate quota (0: none)")
	cmd.Flags().Uint32Var(&maxReads, "max-reads-per-sec", 0, "read rate quota: gets and lists (0: none)")
	cmd.Flags().Uint32Var(&replicas, "replicas", 0, "voters per range, 1 to 7")
	cmd.Flags().Uint32Var(&learners, "learners", 0, "read learners per range, 0 to 7")
	cmd.Flags().Uint32Var(&historyKeep, "history-keep", 0, "key history: keep at least this many changes of each key (0: no history)")
	cmd.Flags().DurationVar(&historyFor, "history-for", 0, "key history: keep every change younger than this before the key's latest (at most 720h)")
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		var u client.TableUpdate
		set := func(name string) bool { return cmd.Flags().Changed(name) }
		if set("consistency") {
			u.Consistency = &consistency
		}
		if set("max-bytes") {
			q, err := config.ParseBytes(maxBytes)
			if err != nil {
				return usageError{fmt.Errorf("--max-bytes: %w", err)}
			}
			u.MaxBytes = &q
		}
		given := func(name string, v *uint32) *uint32 {
			if set(name) {
				return v
			}
			return nil
		}
		u.MaxWritesPerSec, u.MaxReadsPerSec = given("max-writes-per-sec", &maxWrites), given("max-reads-per-sec", &maxReads)
		u.Replicas, u.Learners, u.HistoryKeep = given("replicas", &replicas), given("learners", &learners), given("history-keep", &historyKeep)
		if set("history-for") {
			u.HistoryFor = &historyFor
		}
		if u == (client.TableUpdate{}) {
			return usageError{fmt.Errorf("nothing to change: give --consistency, --max-bytes, --max-writes-per-sec, --max-reads-per-sec, --replicas, --learners, --history-keep or --history-for")}
		}
		c, err := a.newClient(cmd)
		if err != nil {
			return err
		}
		defer c.Close()
		t, err := c.UpdateTable(cmd.Context(), args[0], u)
		if err != nil {
			return err
		}
		if a.output == "json" {
			writeJSON(cmd.OutOrStdout(), t)
			return nil
		}
		fmt.Fprintf(cmd.OutOrStdout(), "OK table=%s replicas=%d learners=%d\n", t.Name, t.Replicas, t.Learners)
		return nil
	})
	return cmd
}

func newTableDropCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "drop NAME",
		Short: "Delete a table and all its keys",
		Long:  `Delete a table and all its keys. Exits 1 if it does not exist.`,
		Args:  cobra.ExactArgs(1),
	}
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		c, err := a.newClient(cmd)
		if err != nil {
			return err
		}
		defer c.Close()
		if err := c.DropTable(cmd.Context(), args[0]); err != nil {
			return err
		}
		if a.output == "json" {
			writeJSON(cmd.OutOrStdout(), map[string]string{"dropped": args[0]})
			return nil
		}
		fmt.Fprintf(cmd.OutOrStdout(), "OK dropped table=%s\n", args[0])
		return nil
	})
	return cmd
}

func printTables(w io.Writer, tables []*client.Table) {
	tw := newTable(w)
	fmt.Fprintln(tw, "NAME\tID\tPARTITIONING\tREPLICAS\tRANGES")
	for _, t := range tables {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\n", t.Name, t.ID, t.Partitioning, t.Replicas, len(t.Ranges))
	}
	_ = tw.Flush()
}
