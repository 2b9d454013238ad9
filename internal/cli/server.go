package cli

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/cairn-db/cairn/internal/config"
	"github.com/cairn-db/cairn/internal/server"
)

func newServerCommand() *cobra.Command {
	cfg := config.Default()
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run a cairn node",
		Long: `Run a cairn node until SIGINT or SIGTERM.

With no flags: a single-node cluster named n1, data in ./cairn-data, the
client API (gRPC and HTTP) on 127.0.0.1:7379, peers on 127.0.0.1:7380 and
the Redis protocol on 127.0.0.1:7381.

Every flag can also be set by the environment variable CAIRN_<FLAG> (in
upper case, dashes as underscores: CAIRN_DATA_DIR) or in the JSON or YAML file
given by --config, whose keys are the flag names. A flag beats the
environment, which beats the file.`,
		Example: `  cairn server
  cairn server --name n1 --listen-peer 10.0.0.1:7380 --listen 0.0.0.0:7379 --advertise 10.0.0.1:7379 \
    --initial-cluster n1=10.0.0.1:7380,n2=10.0.0.2:7380,n3=10.0.0.3:7380
  cairn server --name n4 --listen-peer 10.0.0.4:7380 --join 10.0.0.1:7380
  CAIRN_DATA_DIR=/var/lib/cairn cairn server --config /etc/cairn.json`,
		Args: cobra.NoArgs,
	}
	config.BindFlags(cmd.Flags(), &cfg)
	cmd.RunE = runE(func(cmd *cobra.Command, _ []string) error {
		c, err := config.Load(cmd.Flags(), os.LookupEnv)
		if err != nil {
			return usageError{err}
		}
		ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return server.Run(ctx, c)
	})
	return cmd
}
