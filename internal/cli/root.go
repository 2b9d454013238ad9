package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cairn-db/cairn/client"
)

// Version is the version `cairn version` prints; release builds set it with
// -ldflags "-X github.com/cairn-db/cairn/internal/cli.Version=v1.2.3".
var Version = "dev"

// Exit codes; see the package doc.
const (
	exitOK       = 0
	exitNo       = 1
	exitUsage    = 2
	exitFailure  = 3
	defaultTable = "default"
)

// Main runs the cairn command line with the process's arguments and
// standard streams and returns the exit code.
func Main() int {
	return Run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
}

// Run runs the command line args (without the program name) and returns
// the exit code. Errors are printed to stderr.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{}
	root := newRootCommand(a)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	code := exitCode(err)
	a.printError(stderr, cmd, err, code)
	return code
}

// app holds the settings shared by the client commands of one run.
type app struct {
	endpoints string
	output    string
	timeout   time.Duration

	// Credentials and TLS of the client commands (flags or CAIRN_USER,
	// CAIRN_PASSWORD, CAIRN_TOKEN, CAIRN_CACERT, CAIRN_CERT, CAIRN_KEY).
	user, password, token string
	caCert, cert, key     string
	// sessionFile keeps the session token between commands (session.go).
	sessionFile string
	// keyRouting lets the client route Get, Put and Delete to the leader
	// of the key's range. Only bench sets it: the other commands make one
	// request, which a route lookup would only double.
	keyRouting bool
}

func newRootCommand(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "cairn",
		Short: "cairn: a distributed, strongly consistent key-value database",
		Long: `cairn is a distributed, strongly consistent key-value database.

Start a single-node database with "cairn server", then use the client
commands ("cairn put greeting hello", "cairn get greeting") or any gRPC
or HTTP client.`,
		Args:          cobra.NoArgs,
		RunE:          showHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		newServerCommand(),
		newGetCommand(a),
		newPutCommand(a),
		newTxnCommand(a),
		newDelCommand(a),
		newLsCommand(a),
		newTableCommand(a),
		newClusterCommand(a),
		newRangeCommand(a),
		newWatchCommand(a),
		newHistoryCommand(a),
		newRevertCommand(a),
		newBenchCommand(a),
		newBackupCommand(a),
		newRestoreCommand(a),
		newVersionCommand(a),
		newAuthCommand(a),
		newUserCommand(a),
		newRoleCommand(a),
		newLoginCommand(a),
		newTokenCommand(a),
		newCertCommand(),
	)
	return root
}

// showHelp is the body of commands that only group subcommands. Giving
// them a body makes cobra check their arguments, so that an unknown
// subcommand is a usage error rather than a help page.
func showHelp(cmd *cobra.Command, _ []string) error {
	return cmd.Help()
}

// addClientFlags adds the flags of the client commands to fs.
func (a *app) addClientFlags(cmd *cobra.Command, persistent bool) {
	fs := cmd.Flags()
	if persistent {
		fs = cmd.PersistentFlags()
	}
	fs.StringVar(&a.endpoints, "endpoints", "127.0.0.1:7379", "comma-separated client addresses of cluster nodes ($CAIRN_ENDPOINTS)")
	fs.DurationVar(&a.timeout, "timeout", 10*time.Second, "time limit of each request")
	fs.StringVar(&a.user, "user", "", "user name ($CAIRN_USER)")
	fs.StringVar(&a.password, "password", "", "password of --user ($CAIRN_PASSWORD; prefer the variable: flags show in ps)")
	fs.StringVar(&a.token, "token", "", "token from cairn login or cairn token create ($CAIRN_TOKEN)")
	fs.StringVar(&a.caCert, "cacert", "", "CA (PEM) to verify the server's certificate; enables TLS ($CAIRN_CACERT)")
	fs.StringVar(&a.cert, "cert", "", "client certificate (PEM) for mTLS; its common name is the user ($CAIRN_CERT)")
	fs.StringVar(&a.key, "key", "", "private key (PEM) of --cert ($CAIRN_KEY)")
	a.addOutputFlag(cmd, persistent)
}

func (a *app) addOutputFlag(cmd *cobra.Command, persistent bool) {
	fs := cmd.Flags()
	if persistent {
		fs = cmd.PersistentFlags()
	}
	fs.StringVarP(&a.output, "output", "o", "text", "output format: text or json")
}

// json reports whether the output is JSON; it fails on unknown formats.
func (a *app) json() (bool, error) {
	switch a.output {
	case "text":
		return false, nil
	case "json":
		return true, nil
	}
	return false, usageErrorf("--output %q: want text or json", a.output)
}

// newClient connects to the endpoints of --endpoints (or $CAIRN_ENDPOINTS
// when the flag was not given).
func (a *app) newClient(cmd *cobra.Command) (*client.Client, error) {
	if _, err := a.json(); err != nil {
		return nil, err
	}
	list := a.endpointList(cmd)
	if len(list) == 0 {
		return nil, usageErrorf("--endpoints is empty")
	}
	return a.dial(cmd, list)
}

// endpointList returns the endpoints of --endpoints (or $CAIRN_ENDPOINTS).
func (a *app) endpointList(cmd *cobra.Command) []string {
	endpoints := a.endpoints
	if f := cmd.Flags().Lookup("endpoints"); f != nil && !f.Changed {
		if env, ok := os.LookupEnv("CAIRN_ENDPOINTS"); ok {
			endpoints = env
		}
	}
	var list []string
	for e := range strings.SplitSeq(endpoints, ",") {
		if e = strings.TrimSpace(e); e != "" {
			list = append(list, e)
		}
	}
	return list
}

// dial makes a client of the given endpoints with the command's
// credentials, TLS and timeout.
func (a *app) dial(cmd *cobra.Command, list []string) (*client.Client, error) {
	if a.timeout <= 0 {
		return nil, usageErrorf("--timeout %v: want a positive duration", a.timeout)
	}
	cfg := client.Config{
		Endpoints:      list,
		DialTimeout:    min(a.timeout, client.DefaultDialTimeout),
		RequestTimeout: a.timeout,
		User:           a.flagOrEnv(cmd, "user", a.user),
		Password:       a.flagOrEnv(cmd, "password", a.password),
		Token:          a.flagOrEnv(cmd, "token", a.token),

		DisableKeyRouting: !a.keyRouting,
	}
	if cfg.Password != "" && cfg.User == "" {
		cfg.User = "root"
	}
	tlsCfg, err := clientTLS(a.flagOrEnv(cmd, "cacert", a.caCert), a.flagOrEnv(cmd, "cert", a.cert), a.flagOrEnv(cmd, "key", a.key))
	if err != nil {
		return nil, usageError{err}
	}
	cfg.TLS = tlsCfg
	c, err := client.New(cfg)
	if err != nil {
		return nil, usageError{err}
	}
	return c, nil
}

// usageError is an error in how cairn was called (exit code 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// runError is an error of a command that ran (exit code by its kind).
type runError struct{ err error }

func (e runError) Error() string { return e.err.Error() }
func (e runError) Unwrap() error { return e.err }

// runE adapts a command body: errors other than usage errors become run
// errors. Errors that reach Run without passing through here come from
// cobra's own checks of arguments and flags, so they are usage errors.
func runE(f func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		err := f(cmd, args)
		if err == nil || errors.As(err, new(usageError)) {
			return err
		}
		return runError{err}
	}
}

// exitCode classifies an error returned by a command.
func exitCode(err error) int {
	if !errors.As(err, new(runError)) {
		return exitUsage
	}
	switch {
	case errors.Is(err, client.ErrNotFound),
		errors.Is(err, client.ErrTableNotFound),
		errors.Is(err, client.ErrConditionFailed),
		errors.Is(err, client.ErrTableExists):
		return exitNo
	case errors.Is(err, client.ErrInvalidArgument):
		return exitUsage
	}
	return exitFailure
}

// errorCode is the stable code of err for JSON output.
func errorCode(err error, exit int) string {
	if ce := (*client.Error)(nil); errors.As(err, &ce) {
		return ce.Code
	}
	if exit == exitUsage {
		return "usage"
	}
	return "error"
}

func (a *app) printError(w io.Writer, cmd *cobra.Command, err error, exit int) {
	if a.output == "json" {
		writeJSON(w, map[string]any{"error": map[string]string{"code": errorCode(err, exit), "message": err.Error()}})
		return
	}
	fmt.Fprintf(w, "Error: %v\n", err)
	if exit == exitUsage && !errors.As(err, new(runError)) && cmd != nil {
		fmt.Fprintf(w, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
}

// flagOrEnv returns the flag's value, or $CAIRN_<NAME> when the flag was
// not given.
func (a *app) flagOrEnv(cmd *cobra.Command, name, value string) string {
	if f := cmd.Flags().Lookup(name); f != nil && f.Changed {
		return value
	}
	if env, ok := os.LookupEnv("CAIRN_" + strings.ToUpper(name)); ok {
		return env
	}
	return value
}

// clientTLS builds the client's TLS config: nil without --cacert and
// --cert (plaintext).
func clientTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	if caFile == "" && certFile == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--cacert: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--cacert %s holds no PEM certificate", caFile)
		}
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("--cert/--key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
