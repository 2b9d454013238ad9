package cli

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cairn-db/cairn/client"
)

// Auth administration: cairn auth, user, role, login, token.

// clientRun wraps a command body that needs a client.
func (a *app) clientRun(f func(cmd *cobra.Command, c *client.Client, args []string) error) func(*cobra.Command, []string) error {
	return runE(func(cmd *cobra.Command, args []string) error {
		c, err := a.newClient(cmd)
		if err != nil {
			return err
		}
		defer c.Close()
		return f(cmd, c, args)
	})
}

// done prints "OK" (or {"ok":true}).
func (a *app) done(cmd *cobra.Command, what string) {
	if a.output == "json" {
		writeJSON(cmd.OutOrStdout(), map[string]any{"ok": true})
		return
	}
	fmt.Fprintln(cmd.OutOrStdout(), "OK "+what)
}

func newAuthCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "auth",
		Short: "Turn authentication and authorization on or off",
		Long: `With auth enabled every request needs credentials (--user/--password,
--token, or a client certificate) and is checked against the user's roles.
Enabling needs a user "root" (cairn user add root); disabling needs root.`,
		Args: cobra.NoArgs,
		RunE: showHelp,
	}
	a.addClientFlags(cmd, true)
	set := func(on bool) *cobra.Command {
		use, short := "disable", "Stop enforcing auth (root only)"
		if on {
			use, short = "enable", "Enforce auth (needs a user \"root\")"
		}
		return &cobra.Command{Use: use, Short: short, Args: cobra.NoArgs,
			RunE: a.clientRun(func(cmd *cobra.Command, c *client.Client, _ []string) error {
				if err := c.SetAuthEnabled(cmd.Context(), on); err != nil {
					return err
				}
				a.done(cmd, "auth "+use+"d")
				return nil
			})}
	}
	status := &cobra.Command{Use: "status", Short: "Show whether auth is enabled", Args: cobra.NoArgs,
		RunE: a.clientRun(func(cmd *cobra.Command, c *client.Client, _ []string) error {
			on, err := c.AuthEnabled(cmd.Context())
			if err != nil {
				return err
			}
			if a.output == "json" {
				writeJSON(cmd.OutOrStdout(), map[string]bool{"enabled": on})
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "enabled=%v\n", on)
			}
			return nil
		})}
	cmd.AddCommand(set(true), set(false), status)
	return cmd
}

// readPassword returns args[i] if given, else the first line of stdin.
func readPassword(cmd *cobra.Command, args []string, i int) (string, error) {
	if len(args) > i {
		return args[i], nil
	}
	line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		if err != nil {
			return "", usageErrorf("no password: give it on stdin (echo secret | cairn user add NAME)")
		}
		return "", usageErrorf("the password is empty")
	}
	return line, nil
}

func newUserCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "user", Short: "Manage users", Args: cobra.NoArgs, RunE: showHelp}
	a.addClientFlags(cmd, true)
	add := &cobra.Command{Use: "add NAME [PASSWORD]", Short: "Create a user (password from stdin when not given)",
		Example: `  echo "$ROOT_PASSWORD" | cairn user add root`, Args: cobra.RangeArgs(1, 2),
		RunE: a.clientRun(func(cmd *cobra.Command, c *client.Client, args []string) error {
			pw, err := readPassword(cmd, args, 1)
			if err != nil {
				return err
			}
			if err := c.AddUser(cmd.Context(), args[0], pw); err != nil {
				return err
			}
			a.done(cmd, "user="+args[0])
			return nil
		})}
	passwd := &cobra.Command{Use: "passwd NAME [PASSWORD]", Short: "Change a user's password (from stdin when not given)", Args: cobra.RangeArgs(1, 2),
		RunE: a.clientRun(func(cmd *cobra.Command, c *client.Client, args []string) error {
			pw, err := readPassword(cmd, args, 1)
			if err != nil {
				return err
			}
			if err := c.SetPassword(cmd.Context(), args[0], pw); err != nil {
				return err
			}
			a.done(cmd, "user="+args[0])
			return nil
		})}
	rm := &cobra.Command{Use: "rm NAME", Short: "Remove a user", Args: cobra.ExactArgs(1),
		RunE: a.clientRun(func(cmd *cobra.Command, c *client.Client, args []string) error {
			if err := c.RemoveUser(cmd.Context(), args[0]); err != nil {
				return err
			}
			a.done(cmd, "user="+args[0])
			return nil
		})}
	ls := &cobra.Command{Use: "ls", Short: "List users and their roles", Args: cobra.NoArgs,
		RunE: a.clientRun(func(cmd *cobra.Command, c *client.Client, _ []string) error {
			users, err := c.Users(cmd.Context())
			if err != nil {
				return err
			}
			if a.output == "json" {
				writeJSON(cmd.OutOrStdout(), map[string]any{"users": users})
				return nil
			}
			tw := newTable(cmd.OutOrStdout())
			fmt.Fprintln(tw, "USER\tROLES")
			for _, u := range users {
				fmt.Fprintf(tw, "%s\t%s\n", u.Name, strings.Join(u.Roles, ","))
			}
			return tw.Flush()
		})}
	bind := func(on bool) *cobra.Command {
		use, short := "revoke USER ROLE", "Take a role from a user"
		if on {
			use, short = "grant USER ROLE", "Give a user a role"
		}
		return &cobra.Command{Use: use, Short: short, Args: cobra.ExactArgs(2),
			RunE: a.clientRun(func(cmd *cobra.Command, c *client.Client, args []string) error {
				f := c.UnbindRole
				if on {
					f = c.BindRole
				}
				if err := f(cmd.Context(), args[0], args[1]); err != nil {
					return err
				}
				a.done(cmd, "user="+args[0]+" role="+args[1])
				return nil
			})}
	}
	cmd.AddCommand(add, passwd, rm, ls, bind(true), bind(false))
	return cmd
}

func newRoleCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "role", Short: "Manage roles and their grants", Args: cobra.NoArgs, RunE: showHelp,
		Long: `A role holds grants: read, write or admin on a table ("*" for every
table), optionally only on keys that start with a prefix. The role "root"
is built in and holds every permission.`}
	a.addClientFlags(cmd, true)
	add := &cobra.Command{Use: "add NAME", Short: "Create a role", Args: cobra.ExactArgs(1),
		RunE: a.clientRun(func(cmd *cobra.Command, c *client.Client, args []string) error {
			if err := c.AddRole(cmd.Context(), args[0]); err != nil {
				return err
			}
			a.done(cmd, "role="+args[0])
			return nil
		})}
	rm := &cobra.Command{Use: "rm NAME", Short: "Remove a role", Args: cobra.ExactArgs(1),
		RunE: a.clientRun(func(cmd *cobra.Command, c *client.Client, args []string) error {
			if err := c.RemoveRole(cmd.Context(), args[0]); err != nil {
				return err
			}
			a.done(cmd, "role="+args[0])
			return nil
		})}
	grant := func(on bool) *cobra.Command {
		var prefix string
		use, short := "revoke ROLE PERMISSION TABLE", "Remove a grant from a role"
		if on {
			use, short = "grant ROLE PERMISSION TABLE", "Add a grant to a role: PERMISSION is read, write or admin; TABLE a name or *"
		}
		c := &cobra.Command{Use: use, Short: short, Args: cobra.ExactArgs(3),
			Example: `  cairn role grant billing-reader read billing --prefix invoices/`,
			RunE: a.clientRun(func(cmd *cobra.Command, c *client.Client, args []string) error {
				g := client.Grant{Table: args[2], Permission: args[1]}
				if prefix != "" {
					g.Prefix = []byte(prefix)
				}
				f := c.Revoke
				if on {
					f = c.Grant
				}
				if err := f(cmd.Context(), args[0], g); err != nil {
					return err
				}
				a.done(cmd, "role="+args[0])
				return nil
			})}
		c.Flags().StringVar(&prefix, "prefix", "", "only keys starting with this prefix")
		return c
	}
	ls := &cobra.Command{Use: "ls", Short: "List roles and their grants", Args: cobra.NoArgs,
		RunE: a.clientRun(func(cmd *cobra.Command, c *client.Client, _ []string) error {
			roles, err := c.Roles(cmd.Context())
			if err != nil {
				return err
			}
			if a.output == "json" {
				writeJSON(cmd.OutOrStdout(), map[string]any{"roles": roles})
				return nil
			}
			tw := newTable(cmd.OutOrStdout())
			fmt.Fprintln(tw, "ROLE\tPERMISSION\tTABLE\tPREFIX")
			for _, r := range roles {
				if len(r.Grants) == 0 {
					fmt.Fprintf(tw, "%s\t-\t-\t-\n", r.Name)
				}
				for _, g := range r.Grants {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Name, g.Permission, g.Table, printable(g.Prefix))
				}
			}
			return tw.Flush()
		})}
	cmd.AddCommand(add, rm, grant(true), grant(false), ls)
	return cmd
}

func newLoginCommand(a *app) *cobra.Command {
	var ttl time.Duration
	cmd := &cobra.Command{Use: "login", Short: "Print a short-lived token for --user/--password",
		Example: `  export CAIRN_TOKEN=$(CAIRN_PASSWORD=secret cairn login --user alice)`, Args: cobra.NoArgs,
		RunE: a.clientRun(func(cmd *cobra.Command, c *client.Client, _ []string) error {
			tok, exp, err := c.Login(cmd.Context(), ttl)
			if err != nil {
				return err
			}
			if a.output == "json" {
				writeJSON(cmd.OutOrStdout(), map[string]any{"token": tok, "expires": exp.UTC()})
				return nil
			}
			fmt.Fprintln(cmd.OutOrStdout(), tok)
			return nil
		})}
	a.addClientFlags(cmd, false)
	cmd.Flags().DurationVar(&ttl, "ttl", time.Hour, "lifetime of the token (at most 24h)")
	return cmd
}

// parseTTL parses a duration that may be given in days ("90d").
func parseTTL(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		var n int
		if _, err := fmt.Sscanf(d, "%d", &n); err != nil || n <= 0 || fmt.Sprint(n) != d {
			return 0, fmt.Errorf("--ttl %q: want a duration like 90d or 12h", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	t, err := time.ParseDuration(s)
	if err != nil || t <= 0 {
		return 0, fmt.Errorf("--ttl %q: want a duration like 90d or 12h", s)
	}
	return t, nil
}

func newTokenCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Manage long-lived API tokens", Args: cobra.NoArgs, RunE: showHelp}
	a.addClientFlags(cmd, true)
	var name, ttl string
	create := &cobra.Command{Use: "create --user OWNER", Short: "Create an API token for a user (printed once)", Args: cobra.NoArgs,
		Long: `Create an API token for the user named by --user. Here --user names the
token's owner, not the caller: authenticate as an administrator with
CAIRN_USER and CAIRN_PASSWORD, with --password (user root), or with --token.`,
		Example: `  CAIRN_PASSWORD=$ROOT_PASSWORD cairn token create --user ci --ttl 90d`,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			owner := a.user
			if !cmd.Flags().Changed("user") || owner == "" {
				return usageErrorf("--user (the token's owner) is required")
			}
			d, err := parseTTL(ttl)
			if err != nil {
				return usageError{err}
			}
			a.user = os.Getenv("CAIRN_USER")
			c, err := a.newClient(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			tok, info, err := c.CreateToken(cmd.Context(), owner, name, d)
			if err != nil {
				return err
			}
			if a.output == "json" {
				writeJSON(cmd.OutOrStdout(), map[string]any{"token": tok, "info": info})
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\nid=%s expires=%s\n", tok, info.ID, info.Expires.Format(time.RFC3339))
			return nil
		})}
	create.Flags().StringVar(&name, "name", "", "a label for the token")
	create.Flags().StringVar(&ttl, "ttl", "90d", "lifetime, e.g. 90d or 12h")
	ls := &cobra.Command{Use: "ls", Short: "List API tokens", Args: cobra.NoArgs,
		RunE: a.clientRun(func(cmd *cobra.Command, c *client.Client, _ []string) error {
			ts, err := c.Tokens(cmd.Context())
			if err != nil {
				return err
			}
			if a.output == "json" {
				writeJSON(cmd.OutOrStdout(), map[string]any{"tokens": ts})
				return nil
			}
			tw := newTable(cmd.OutOrStdout())
			fmt.Fprintln(tw, "ID\tUSER\tNAME\tEXPIRES")
			for _, t := range ts {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.ID, t.User, t.Name, t.Expires.Format(time.RFC3339))
			}
			return tw.Flush()
		})}
	revoke := &cobra.Command{Use: "revoke ID", Short: "Revoke an API token cluster-wide", Args: cobra.ExactArgs(1),
		RunE: a.clientRun(func(cmd *cobra.Command, c *client.Client, args []string) error {
			if err := c.RevokeToken(cmd.Context(), args[0]); err != nil {
				return err
			}
			a.done(cmd, "token="+args[0])
			return nil
		})}
	cmd.AddCommand(create, ls, revoke)
	return cmd
}
