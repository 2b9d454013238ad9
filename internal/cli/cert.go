package cli

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cairn-db/cairn/internal/auth"
)

func newCertCommand() *cobra.Command {
	var dir, caDir, hosts string
	var validity time.Duration
	cmd := &cobra.Command{Use: "cert", Short: "Create a development CA and certificates (no openssl needed)",
		Long: `cairn cert ca creates DIR/ca.crt and DIR/ca.key; cairn cert node NAME creates a
node certificate (server and client auth, for --cert/--key and
--peer-cert/--peer-key) for --hosts; cairn cert client USER creates a client
certificate whose common name is USER. Existing files are never overwritten.`,
		Example: `  cairn cert ca --dir certs
  cairn cert node n1 --dir certs --hosts 127.0.0.1,localhost,node1.example
  cairn cert client alice --dir certs`,
		Args: cobra.NoArgs, RunE: showHelp}
	cmd.PersistentFlags().StringVar(&dir, "dir", "certs", "directory of the files")
	cmd.PersistentFlags().StringVar(&caDir, "ca-dir", "", "directory of ca.crt and ca.key (default --dir)")
	cmd.PersistentFlags().DurationVar(&validity, "validity", 365*24*time.Hour, "validity of the certificate")
	ca := &cobra.Command{Use: "ca", Short: "Create a CA", Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			if err := auth.CreateCA(dir, validity); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "OK %s %s\n", filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key"))
			return nil
		})}
	leaf := func(kind auth.CertKind) func(*cobra.Command, []string) error {
		return runE(func(cmd *cobra.Command, args []string) error {
			from := caDir
			if from == "" {
				from = dir
			}
			var hs []string
			for h := range strings.SplitSeq(hosts, ",") {
				if h = strings.TrimSpace(h); h != "" {
					hs = append(hs, h)
				}
			}
			if err := auth.CreateLeaf(from, dir, args[0], kind, hs, validity); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "OK %s %s\n", filepath.Join(dir, args[0]+".crt"), filepath.Join(dir, args[0]+".key"))
			return nil
		})
	}
	node := &cobra.Command{Use: "node NAME", Short: "Create a node certificate", Args: cobra.ExactArgs(1), RunE: leaf(auth.CertNode)}
	node.Flags().StringVar(&hosts, "hosts", "127.0.0.1,localhost", "comma-separated DNS names and IPs the node is reached at")
	client := &cobra.Command{Use: "client USER", Short: "Create a client certificate for a user", Args: cobra.ExactArgs(1), RunE: leaf(auth.CertClient)}
	cmd.AddCommand(ca, node, client)
	return cmd
}
