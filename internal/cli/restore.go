package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/client"
	"github.com/cairn-db/cairn/internal/backup"
	"github.com/cairn-db/cairn/internal/keys/hashkey"
)

// restoreBatchKeys and restoreBatchBytes bound one RestoreData request
// (the server's message limit is a value plus 64 KiB).
const (
	restoreBatchKeys  = 512
	restoreBatchBytes = 512 << 10
)

// restoreLimits bound the records a restore reads: well above the
// defaults (a cluster may be configured with larger keys and values, and
// a hash table's keys carry a placement prefix), only to stop a corrupt
// length from allocating without bound.
var restoreLimits = backup.Limits{MaxKeyBytes: 64<<10 + hashkey.PrefixLen, MaxValueBytes: 64 << 20}

// restoreOutput is the result line of `cairn restore -o json`.
type restoreOutput struct {
	From      string `json:"from"`
	AtVersion uint64 `json:"at_version"`
	Chain     int    `json:"chain"`
	Tables    int    `json:"tables"`
	Records   uint64 `json:"records"`
	Restored  uint64 `json:"restored"`
}

func newRestoreCommand(a *app) *cobra.Command {
	var from string
	cmd := &cobra.Command{
		Use:   "restore --from DIR",
		Short: "Restore a backup into an empty cluster",
		Long: `Restore the backup in DIR (with its whole incremental chain) into a
cluster that has no table but an empty "default". First every checksum of
every backup of the chain is verified; nothing is written if one fails.
Then the tables are created with their settings, the auth state is
imported, and every key is written with its original version and expiry.
If auth was enforced in the backed-up cluster it is switched on last.
The cluster may have any number of nodes. Needs cluster admin.`,
		Example: `  cairn restore --from /backups/inc-1`,
		Args:    cobra.NoArgs,
	}
	cmd.Flags().StringVar(&from, "from", "", "backup directory to restore (an incremental brings its parents)")
	a.addClientFlags(cmd, false)
	cmd.RunE = runE(func(cmd *cobra.Command, _ []string) error {
		if from == "" {
			return usageErrorf("--from DIR is required")
		}
		pr := newProgress(cmd.ErrOrStderr(), "restore")
		chain, err := backup.VerifyChain(from)
		if err != nil {
			return err
		}
		pr.report(fmt.Sprintf("verified %d backup(s) of the chain", len(chain)), true)
		last := chain[len(chain)-1]
		begin, enableAuth, err := restorePlan(last)
		if err != nil {
			return err
		}
		c, err := a.newClient(cmd)
		if err != nil {
			return err
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(cmd.Context(), backupMaxDuration)
		defer cancel()
		if err := c.RestoreBegin(ctx, begin); err != nil {
			return err
		}
		pr.report(fmt.Sprintf("created %d tables", len(begin.Tables)), true)
		out := restoreOutput{From: from, AtVersion: last.Manifest.AtVersion, Chain: len(chain), Tables: len(last.Manifest.Tables)}
		for _, t := range last.Manifest.Tables {
			if err := restoreTable(ctx, c, chain, t.Name, pr, &out); err != nil {
				return fmt.Errorf("table %q: %w", t.Name, err)
			}
		}
		if enableAuth {
			if err := c.SetAuthEnabled(ctx, true); err != nil {
				return fmt.Errorf("switch auth on: %w", err)
			}
		}
		pr.report(fmt.Sprintf("done: %d tables, %d keys", out.Tables, out.Records), true)
		if a.output == "json" {
			writeJSON(cmd.OutOrStdout(), out)
			return nil
		}
		fmt.Fprintf(cmd.OutOrStdout(), "restored %d tables, %d keys (%d written, the rest expired) at version %d from %s\n",
			out.Tables, out.Records, out.Restored, out.AtVersion, from)
		return nil
	})
	return cmd
}

// restorePlan reads the tables and auth state of the chain's last backup.
// Auth is imported switched off (enableAuth says to switch it on at the
// end), so the restore's own requests are not refused half way.
func restorePlan(last backup.Link) (req *cairnpb.RestoreBeginRequest, enableAuth bool, err error) {
	req = &cairnpb.RestoreBeginRequest{}
	for _, t := range last.Manifest.Tables {
		s, err := backup.ParseTableSettings(t.Settings)
		if err != nil {
			return nil, false, fmt.Errorf("table %q: %w", t.Name, err)
		}
		req.Tables = append(req.Tables, &cairnpb.CreateTableRequest{Name: t.Name, Partitioning: s.Partitioning, Consistency: s.Consistency,
			Replicas: s.Replicas, InitialRanges: s.InitialRanges, MaxBytes: s.MaxBytes, MaxWritesPerSec: s.MaxWritesPerSec, MaxReadsPerSec: s.MaxReadsPerSec,
			Learners: s.Learners, HistoryVersions: s.HistoryVersions, HistoryRetentionMs: s.HistoryRetentionMs})
	}
	if f := last.Manifest.Auth; f != nil {
		b, err := os.ReadFile(filepath.Join(last.Dir, f.Name))
		if err != nil {
			return nil, false, err
		}
		a, err := backup.ParseAuth(b)
		if err != nil {
			return nil, false, err
		}
		enableAuth, a.Enabled = a.Enabled, false
		if req.Auth, err = proto.Marshal(a); err != nil {
			return nil, false, err
		}
	}
	return req, enableAuth, nil
}

// linkReader reads one table's records of one backup of the chain, in key
// order, one record ahead.
type linkReader struct {
	files []backup.File
	dir   string
	f     *os.File
	rd    *backup.Reader
	cur   *backup.Record // nil at the end
}

func openLink(l backup.Link, table string) (*linkReader, error) {
	lr := &linkReader{dir: l.Dir}
	for _, t := range l.Manifest.Tables {
		if t.Name == table {
			lr.files = t.Files
		}
	}
	return lr, lr.next()
}

// next moves to the next record (across the table's files).
func (lr *linkReader) next() error {
	for {
		if lr.rd != nil {
			rec, err := lr.rd.Next()
			if err == nil {
				c := *rec
				c.Key, c.Value = bytes.Clone(rec.Key), bytes.Clone(rec.Value)
				lr.cur = &c
				return nil
			}
			lr.f.Close()
			lr.rd, lr.f = nil, nil
			if !errors.Is(err, io.EOF) {
				return err
			}
		}
		if len(lr.files) == 0 {
			lr.cur = nil
			return nil
		}
		f, err := os.Open(filepath.Join(lr.dir, lr.files[0].Name))
		if err != nil {
			return err
		}
		lr.files = lr.files[1:]
		rd, err := backup.NewReader(f, restoreLimits)
		if err != nil {
			f.Close()
			return err
		}
		lr.f, lr.rd = f, rd
	}
}

func (lr *linkReader) close() {
	if lr.f != nil {
		lr.f.Close()
	}
}

// seek moves to the first record with a key at or above k.
func (lr *linkReader) seek(k []byte) error {
	for lr.cur != nil && bytes.Compare(lr.cur.Key, k) < 0 {
		if err := lr.next(); err != nil {
			return err
		}
	}
	return nil
}

// restoreTable writes the records of table as the chain's last backup
// lists them; a record without a value takes it from the newest earlier
// backup that holds that key at that version (all files are sorted, so
// one pass over each).
func restoreTable(ctx context.Context, c *client.Client, chain []backup.Link, table string, pr *progress, out *restoreOutput) error {
	readers := make([]*linkReader, len(chain))
	for i, l := range chain {
		lr, err := openLink(l, table)
		if err != nil {
			return err
		}
		defer lr.close()
		readers[i] = lr
	}
	top := readers[len(readers)-1]
	var batch []*cairnpb.BackupRecord
	size := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		n, err := c.RestoreData(ctx, table, batch)
		if err != nil {
			return err
		}
		out.Restored += n
		out.Records += uint64(len(batch))
		batch, size = nil, 0
		pr.report(fmt.Sprintf("table %s: %d keys", table, out.Records), false)
		return nil
	}
	for top.cur != nil {
		rec := top.cur
		if !rec.HasValue {
			v, err := valueFromChain(readers[:len(readers)-1], rec)
			if err != nil {
				return err
			}
			rec.Value, rec.HasValue = v, true
		}
		// A request stays under the server's message limit (one value
		// plus 64 KiB): a record that would take the batch past
		// restoreBatchBytes goes in the next one.
		recBytes := len(rec.Key) + len(rec.Value) + 32
		if len(batch) >= restoreBatchKeys || (len(batch) > 0 && size+recBytes > restoreBatchBytes) {
			if err := flush(); err != nil {
				return err
			}
		}
		batch = append(batch, &cairnpb.BackupRecord{Key: rec.Key, Value: rec.Value, Version: rec.Version, ExpireAtMs: rec.ExpireAtMs, HasValue: true})
		size += recBytes
		if err := top.next(); err != nil {
			return err
		}
	}
	return flush()
}

// valueFromChain finds rec's value in the earlier backups, newest first.
func valueFromChain(older []*linkReader, rec *backup.Record) ([]byte, error) {
	for i := len(older) - 1; i >= 0; i-- {
		lr := older[i]
		if err := lr.seek(rec.Key); err != nil {
			return nil, err
		}
		if lr.cur != nil && bytes.Equal(lr.cur.Key, rec.Key) && lr.cur.Version == rec.Version && lr.cur.HasValue {
			return lr.cur.Value, nil
		}
	}
	return nil, fmt.Errorf("%w: key %q at version %d has no value in the chain", backup.ErrCorrupt, rec.Key, rec.Version)
}
