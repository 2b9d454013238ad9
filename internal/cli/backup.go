package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/client"
	"github.com/cairn-db/cairn/internal/backup"
	"github.com/cairn-db/cairn/internal/keys/hashkey"
)

// backupMaxDuration bounds a whole backup or restore (each request inside
// it is bounded by --timeout on the server side).
const backupMaxDuration = 24 * time.Hour

// backupAttempts is how many times a backup starts again at a new point in
// time when the state at the old one was trimmed from key history
// (compacted) before the walk reached it.
const backupAttempts = 3

// backupOutput is the result line of `cairn backup -o json`.
type backupOutput struct {
	Dir       string `json:"dir"`
	AtVersion uint64 `json:"at_version"`
	Tables    int    `json:"tables"`
	Records   int64  `json:"records"`
	Bytes     int64  `json:"bytes"`
	Parent    string `json:"parent,omitempty"`
}

func newBackupCommand(a *app) *cobra.Command {
	var to, from string
	cmd := &cobra.Command{
		Use:   "backup --to DIR",
		Short: "Take a consistent online backup of every table",
		Long: `Write a consistent copy of every table at one point in time, its
settings, and the auth state (users with password hashes, roles, grants,
token records) into DIR, while the cluster keeps serving writes. Progress
goes to stderr; the result to stdout. DIR must not exist or be empty.

With --incremental-from PREV (a complete backup directory), only values
of keys changed since PREV's point in time are stored; restore needs the
whole chain. The token-signing secret is not backed up: tokens issued by
the old cluster do not work after a restore. Needs cluster admin.
See docs/design/backup.md.`,
		Example: `  cairn backup --to /backups/full-1
  cairn backup --to /backups/inc-1 --incremental-from /backups/full-1`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().StringVar(&to, "to", "", "directory to write the backup into (created)")
	cmd.Flags().StringVar(&from, "incremental-from", "", "a previous backup directory: store only what changed since it")
	a.addClientFlags(cmd, false)
	cmd.RunE = runE(func(cmd *cobra.Command, _ []string) error {
		if to == "" {
			return usageErrorf("--to DIR is required")
		}
		c, err := a.newClient(cmd)
		if err != nil {
			return err
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(cmd.Context(), backupMaxDuration)
		defer cancel()
		var w *backupWriter
		for attempt := 1; ; attempt++ {
			w = &backupWriter{dir: to, progress: newProgress(cmd.ErrOrStderr(), "backup")}
			if from != "" {
				if err := w.setParent(from); err != nil {
					return err
				}
			}
			if err := w.prepareDir(); err != nil {
				return err
			}
			err = c.Backup(ctx, w.since(), w.chunk)
			if err == nil {
				err = w.finish()
			}
			if err == nil {
				break
			}
			w.abort()
			if !errors.Is(err, client.ErrCompacted) || attempt == backupAttempts {
				return err
			}
			// The state at T left key history before the walk reached
			// it: start again at a new point in time, from an empty dir.
			w.progress.report(fmt.Sprintf("%v; starting again (attempt %d of %d)", err, attempt+1, backupAttempts), true)
			if err := w.clear(); err != nil {
				return err
			}
		}
		out := backupOutput{Dir: to, AtVersion: w.m.AtVersion, Tables: len(w.m.Tables), Records: w.records, Bytes: w.bytes}
		if w.m.Parent != nil {
			out.Parent = w.m.Parent.Dir
		}
		if a.output == "json" {
			writeJSON(cmd.OutOrStdout(), out)
			return nil
		}
		fmt.Fprintf(cmd.OutOrStdout(), "backup of %d tables at version %d: %d keys, %d bytes in %s\n",
			out.Tables, out.AtVersion, out.Records, out.Bytes, out.Dir)
		return nil
	})
	return cmd
}

// backupWriter turns the chunks of a backup stream into a backup
// directory: one data file per table (opened when the table's first
// chunk arrives, committed when the next table starts or the stream
// ends), the auth file, and the manifest last.
type backupWriter struct {
	dir      string
	m        backup.Manifest
	progress *progress

	cur     *backup.Table // the table being written
	file    *backup.AtomicFile
	w       *backup.Writer
	records int64
	bytes   int64
	tables  map[string]*cairnpb.Table
}

func (bw *backupWriter) since() uint64 {
	if bw.m.Parent == nil {
		return 0
	}
	return bw.m.Parent.AtVersion
}

// setParent checks the parent chain and records the parent, by a path
// relative to the new backup when possible (so the chain can move as a
// whole).
func (bw *backupWriter) setParent(prev string) error {
	chain, err := backup.VerifyChain(prev)
	if err != nil {
		return fmt.Errorf("--incremental-from: %w", err)
	}
	_, sum, err := backup.ReadManifest(prev)
	if err != nil {
		return err
	}
	dir := prev
	absTo, err1 := filepath.Abs(bw.dir)
	absPrev, err2 := filepath.Abs(prev)
	if err1 == nil && err2 == nil {
		if rel, err := filepath.Rel(absTo, absPrev); err == nil {
			dir = rel
		} else {
			dir = absPrev
		}
	}
	last := chain[len(chain)-1].Manifest
	bw.m.Parent = &backup.Parent{Dir: dir, AtVersion: last.AtVersion, ManifestSHA256: sum}
	bw.m.Cluster = last.Cluster
	return nil
}

func (bw *backupWriter) prepareDir() error {
	if err := os.MkdirAll(bw.dir, 0o755); err != nil {
		return err
	}
	ents, err := os.ReadDir(bw.dir)
	if err != nil {
		return err
	}
	if len(ents) > 0 {
		return usageErrorf("--to %s: directory is not empty", bw.dir)
	}
	return nil
}

func (bw *backupWriter) chunk(ch *cairnpb.BackupChunk) error {
	if bw.m.AtVersion == 0 {
		return bw.begin(ch)
	}
	if ch.Table != "" && (bw.cur == nil || bw.cur.Name != ch.Table) {
		if err := bw.startTable(ch.Table); err != nil {
			return err
		}
	}
	for _, r := range ch.Records {
		if err := bw.w.Add(backup.RecordFromProto(r)); err != nil {
			return err
		}
		bw.records++
		bw.bytes += int64(len(r.Key) + len(r.Value))
	}
	bw.progress.report(fmt.Sprintf("%d/%d ranges, %d keys, %d bytes", ch.RangesDone, ch.RangesTotal, bw.records, bw.bytes), false)
	return nil
}

// begin handles the first chunk: the point in time, tables and auth.
func (bw *backupWriter) begin(ch *cairnpb.BackupChunk) error {
	if ch.AtVersion == 0 {
		return errors.New("backup stream did not start with its point in time")
	}
	if p := bw.m.Parent; p != nil && p.AtVersion >= ch.AtVersion {
		return fmt.Errorf("the parent backup's point in time %d is not before this one's %d", p.AtVersion, ch.AtVersion)
	}
	bw.m.Format, bw.m.AtVersion, bw.m.Tables = backup.FormatV1, ch.AtVersion, []backup.Table{}
	bw.tables = map[string]*cairnpb.Table{}
	for _, t := range ch.Tables {
		bw.tables[t.Name] = t
	}
	if len(ch.Auth) > 0 {
		a := &cairnpb.AuthBackup{}
		if err := proto.Unmarshal(ch.Auth, a); err != nil {
			return fmt.Errorf("auth state: %w", err)
		}
		b, err := backup.EncodeAuth(a)
		if err != nil {
			return err
		}
		f, err := backup.WriteFileAtomic(bw.dir, backup.AuthFileName, func(w io.Writer) error {
			_, err := w.Write(b)
			return err
		})
		if err != nil {
			return err
		}
		f.Records = int64(len(a.Users) + len(a.Roles) + len(a.Tokens))
		bw.m.Auth = &f
	}
	// Every table gets a data file, empty ones too: the manifest lists
	// the tables to recreate. Tables arrive in name order.
	bw.progress.report(fmt.Sprintf("at version %d: %d tables, %d ranges", ch.AtVersion, len(ch.Tables), ch.RangesTotal), true)
	return nil
}

func tableSettings(t *cairnpb.Table) *backup.TableSettings {
	s := &backup.TableSettings{Partitioning: t.Partitioning, Consistency: t.Consistency, Replicas: t.Replicas,
		MaxBytes: t.MaxBytes, MaxWritesPerSec: t.MaxWritesPerSec, MaxReadsPerSec: t.MaxReadsPerSec,
		Learners: t.Learners, HistoryVersions: t.HistoryVersions, HistoryRetentionMs: t.HistoryRetentionMs}
	if s.Partitioning == "" {
		s.Partitioning = "range"
	}
	if s.Partitioning == "hash" {
		// The ranges it was created with, which merges keep; a table
		// created before cairn recorded them is restored pre-split as
		// it is now.
		s.InitialRanges = t.InitialRanges
		if s.InitialRanges == 0 {
			s.InitialRanges = uint32(min(max(len(t.Ranges), 1), hashkey.MaxInitialRanges))
		}
	}
	return s
}

func (bw *backupWriter) startTable(name string) error {
	if err := bw.endTable(); err != nil {
		return err
	}
	t := bw.tables[name]
	if t == nil {
		return fmt.Errorf("backup stream: records of table %q, which the first chunk did not name", name)
	}
	f, err := backup.CreateAtomic(bw.dir, name+".data")
	if err != nil {
		return err
	}
	w, err := backup.NewWriter(f)
	if err != nil {
		f.Abort()
		return err
	}
	bw.m.Tables = append(bw.m.Tables, backup.Table{Name: name, Settings: tableSettings(t).Encode(), Files: []backup.File{}})
	bw.cur, bw.file, bw.w = &bw.m.Tables[len(bw.m.Tables)-1], f, w
	return nil
}

func (bw *backupWriter) endTable() error {
	if bw.file == nil {
		return nil
	}
	f, err := bw.file.Commit()
	if err != nil {
		return err
	}
	f.Records = bw.w.Records
	bw.cur.Files = append(bw.cur.Files, f)
	bw.cur, bw.file, bw.w = nil, nil, nil
	return nil
}

// finish commits the last data file, adds the tables that had no chunk
// and writes the manifest.
func (bw *backupWriter) finish() error {
	if err := bw.endTable(); err != nil {
		return err
	}
	if bw.m.AtVersion == 0 {
		return errors.New("backup stream ended before it began")
	}
	done := map[string]bool{}
	for _, t := range bw.m.Tables {
		done[t.Name] = true
	}
	var names []string
	for name := range bw.tables {
		if !done[name] {
			names = append(names, name)
		}
	}
	for _, name := range names {
		if err := bw.startTable(name); err != nil {
			return err
		}
		if err := bw.endTable(); err != nil {
			return err
		}
	}
	sortTables(bw.m.Tables)
	if err := backup.WriteManifest(bw.dir, &bw.m); err != nil {
		return err
	}
	bw.progress.report(fmt.Sprintf("done: %d tables, %d keys, %d bytes", len(bw.m.Tables), bw.records, bw.bytes), true)
	return nil
}

func (bw *backupWriter) abort() {
	if bw.file != nil {
		bw.file.Abort()
	}
}

// clear removes what an attempt wrote (the directory was empty before).
func (bw *backupWriter) clear() error {
	ents, err := os.ReadDir(bw.dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(bw.dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

func sortTables(ts []backup.Table) {
	slices.SortFunc(ts, func(a, b backup.Table) int { return strings.Compare(a.Name, b.Name) })
}

// progress prints progress lines to w: on a terminal one line rewritten
// in place, else a plain line at most every progressInterval (and every
// final line).
type progress struct {
	w     io.Writer
	what  string
	tty   bool
	last  time.Time
	shown bool
}

const progressInterval = time.Second

func newProgress(w io.Writer, what string) *progress {
	p := &progress{w: w, what: what}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

// report shows msg; force shows it even if the last line was recent.
func (p *progress) report(msg string, force bool) {
	now := time.Now()
	if !force && now.Sub(p.last) < progressInterval {
		return
	}
	p.last = now
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s: %s", p.what, msg)
		if force {
			fmt.Fprintln(p.w)
		}
		return
	}
	fmt.Fprintf(p.w, "%s: %s\n", p.what, msg)
}
