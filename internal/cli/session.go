package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/cairn-db/cairn/client"
	"github.com/cairn-db/cairn/internal/kv"
)

// Consistency of get and ls, and the session token across commands.
//
// A CLI command is one process, so its session token lives in a file:
// with --session-file (or $CAIRN_SESSION_FILE) get, put, del and ls read
// the token from the file before the request and write the merged token
// back after it, so `cairn get --consistency session` sees the writes of
// earlier commands that used the same file, whichever node serves it.

// readFlags are the consistency flags of get and ls.
type readFlags struct {
	consistency  string
	maxStaleness time.Duration
}

func addReadFlags(cmd *cobra.Command, rf *readFlags) {
	cmd.Flags().StringVar(&rf.consistency, "consistency", "", "read consistency: linearizable (default), session or stale")
	cmd.Flags().DurationVar(&rf.maxStaleness, "max-staleness", 0, "bound of a stale read, 10ms to 1h (default 5s)")
}

// check validates the flags.
func (rf *readFlags) check() error {
	level, err := kv.ParseConsistency(rf.consistency)
	if err != nil {
		return usageError{err}
	}
	if rf.maxStaleness != 0 {
		if level != kv.Stale {
			return usageErrorf("--max-staleness applies only to --consistency stale")
		}
		if _, err := kv.CheckMaxStaleness(rf.maxStaleness.Milliseconds()); err != nil || rf.maxStaleness%time.Millisecond != 0 {
			return usageErrorf("--max-staleness %v: want whole milliseconds from %v to %v", rf.maxStaleness, kv.MinMaxStaleness, kv.MaxMaxStaleness)
		}
	}
	return nil
}

func (a *app) addSessionFlag(cmd *cobra.Command) {
	cmd.Flags().StringVar(&a.sessionFile, "session-file", "", "file keeping the session token between commands ($CAIRN_SESSION_FILE)")
}

// sessionPath is --session-file, or $CAIRN_SESSION_FILE when the flag
// was not given.
func (a *app) sessionPath(cmd *cobra.Command) string {
	if f := cmd.Flags().Lookup("session-file"); f != nil && f.Changed {
		return a.sessionFile
	}
	if env, ok := os.LookupEnv("CAIRN_SESSION_FILE"); ok {
		return env
	}
	return a.sessionFile
}

// loadSession gives c the token of the session file, if one is set and
// exists.
func (a *app) loadSession(cmd *cobra.Command, c *client.Client) error {
	path := a.sessionPath(cmd)
	if path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return usageError{fmt.Errorf("--session-file: %w", err)}
	}
	if err := c.SetSessionToken(string(trimNewline(b))); err != nil {
		return usageError{fmt.Errorf("--session-file %s: %w", path, err)}
	}
	return nil
}

// saveSession writes c's token to the session file (atomically: a
// temporary file renamed over it). A failure is reported on stderr; the
// command's own outcome stands.
func (a *app) saveSession(cmd *cobra.Command, c *client.Client) {
	path := a.sessionPath(cmd)
	tok := c.SessionToken()
	if path == "" || tok == "" {
		return
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".cairn-session-*")
	if err == nil {
		_, err = tmp.WriteString(tok + "\n")
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(tmp.Name(), path)
		}
		if err != nil {
			_ = os.Remove(tmp.Name())
		}
	}
	if err != nil {
		fmt.Fprintf(cmd.ErrOrStderr(), "cairn: could not save the session token to %s: %v\n", path, err)
	}
}

func trimNewline(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}
