package cli

// Goal: `cairn backup` and `cairn restore` against a fake Backup service,
// deterministically: the backup directory a stream becomes (one data file
// per table, the auth file, the manifest; verifiable), an incremental
// whose unchanged keys carry no value, restore taking those values from
// the parent, the auth state imported switched off, refusal of a
// non-empty --to and of a chain with a corrupted file (before anything
// is sent to the cluster).

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/backup"
	"github.com/cairn-db/cairn/internal/frontend/grpcapi"
)

type fakeKey struct {
	version uint64
	value   string
	exp     int64
}

// fakeBackuper serves a fixed state: tables -> key -> fakeKey.
type fakeBackuper struct {
	mu       sync.Mutex
	at       uint64
	state    map[string]map[string]fakeKey
	begun    []*cairnpb.RestoreBeginRequest
	restored map[string][]*cairnpb.BackupRecord
	admin    []*cairnpb.AuthAdminRequest // Auth service calls
}

func (f *fakeBackuper) Do(_ context.Context, req *cairnpb.AuthAdminRequest) (*cairnpb.AuthAdminResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.admin = append(f.admin, req)
	return &cairnpb.AuthAdminResponse{}, nil
}

func (f *fakeBackuper) Login(context.Context, *cairnpb.LoginRequest) (*cairnpb.LoginResponse, error) {
	return &cairnpb.LoginResponse{}, nil
}

func (f *fakeBackuper) Backup(_ context.Context, req *cairnpb.BackupRequest, send func(*cairnpb.BackupChunk) error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	auth, _ := proto.Marshal(&cairnpb.AuthBackup{Users: []*cairnpb.UserRecord{{Name: "root", PasswordHash: "$h"}}, Enabled: true})
	first := &cairnpb.BackupChunk{AtVersion: f.at, Auth: auth, RangesTotal: 2,
		Tables: []*cairnpb.Table{{Name: "default", Partitioning: "range", Replicas: 3}, {Name: "h", Partitioning: "hash", Replicas: 3, Ranges: make([]*cairnpb.RangeDescriptor, 4)}}}
	if err := send(first); err != nil {
		return err
	}
	for i, table := range []string{"default", "h"} {
		var names []string
		for k := range f.state[table] {
			names = append(names, k)
		}
		slices.Sort(names)
		ch := &cairnpb.BackupChunk{AtVersion: f.at, Table: table, RangesDone: uint32(i + 1), RangesTotal: 2}
		for _, k := range names {
			v := f.state[table][k]
			r := &cairnpb.BackupRecord{Key: []byte(k), Version: v.version, ExpireAtMs: v.exp}
			if v.version > req.SinceVersion {
				r.HasValue, r.Value = true, []byte(v.value)
			}
			ch.Records = append(ch.Records, r)
		}
		if err := send(ch); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeBackuper) RestoreBegin(_ context.Context, req *cairnpb.RestoreBeginRequest) (*cairnpb.RestoreBeginResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.begun = append(f.begun, req)
	return &cairnpb.RestoreBeginResponse{}, nil
}

func (f *fakeBackuper) RestoreData(_ context.Context, req *cairnpb.RestoreDataRequest) (*cairnpb.RestoreDataResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.restored[req.Table] = append(f.restored[req.Table], req.Records...)
	return &cairnpb.RestoreDataResponse{Restored: uint64(len(req.Records))}, nil
}

func startBackupServer(t *testing.T, f *fakeBackuper) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	grpcapi.RegisterBackup(s, f)
	grpcapi.RegisterAuth(s, f)
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve(lis) }()
	t.Cleanup(func() { s.Stop(); <-done })
	return lis.Addr().String()
}

func TestBackupAndRestoreCommands(t *testing.T) {
	f := &fakeBackuper{at: 100, restored: map[string][]*cairnpb.BackupRecord{}, state: map[string]map[string]fakeKey{
		"default": {"a": {10, "1", 0}, "b": {20, "2", 5000}},
		"h":       {"x": {30, "x", 0}},
	}}
	addr := startBackupServer(t, f)
	dir := t.TempDir()
	d1, d2 := filepath.Join(dir, "full"), filepath.Join(dir, "inc")

	r := run(t, "", "backup", "--to", d1, "--endpoints", addr)
	r.expect(t, exitOK, "backup of 2 tables at version 100: 3 keys, 6 bytes in "+d1+"\n")
	if !strings.Contains(r.stderr, "backup: done: 2 tables, 3 keys") {
		t.Errorf("progress on stderr: %q", r.stderr)
	}
	chain, err := backup.VerifyChain(d1)
	if err != nil {
		t.Fatal(err)
	}
	m := chain[0].Manifest
	if len(m.Tables) != 2 || m.Auth == nil || m.Tables[0].Files[0].Records != 2 {
		t.Fatalf("manifest: %+v", m)
	}
	if s, err := backup.ParseTableSettings(m.Tables[1].Settings); err != nil || s.Partitioning != "hash" || s.InitialRanges != 4 {
		t.Fatalf("settings of h: %+v %v", s, err)
	}
	run(t, "", "backup", "--to", d1, "--endpoints", addr).expect(t, exitUsage, "")

	// After the full backup: a changes, b goes, c comes; x stays.
	f.at = 200
	f.state["default"] = map[string]fakeKey{"a": {150, "11", 0}, "c": {160, "3", 0}}
	run(t, "", "backup", "--to", d2, "--incremental-from", d1, "--endpoints", addr, "-o", "json").expect(t, exitOK, "*")
	if chain, err = backup.VerifyChain(d2); err != nil || len(chain) != 2 || chain[1].Manifest.Parent.Dir != "../full" {
		t.Fatalf("chain: %v %v", chain, err)
	}

	f.at = 300
	run(t, "", "restore", "--from", d2, "--endpoints", addr).expect(t, exitOK, "*")
	if len(f.begun) != 1 {
		t.Fatalf("%d RestoreBegin calls", len(f.begun))
	}
	b := f.begun[0]
	if len(b.Tables) != 2 || b.Tables[1].Partitioning != "hash" || b.Tables[1].InitialRanges != 4 || b.Tables[0].Replicas != 3 {
		t.Fatalf("tables to create: %v", b.Tables)
	}
	a := &cairnpb.AuthBackup{}
	if err := proto.Unmarshal(b.Auth, a); err != nil || a.Enabled || len(a.Users) != 1 || a.Users[0].PasswordHash != "$h" {
		t.Fatalf("auth to import: %v %v (imported switched off)", a, err)
	}
	// The backed-up cluster enforced auth: the restore switches it on.
	if len(f.admin) != 1 || !f.admin[0].GetSetEnabled().GetEnabled() {
		t.Fatalf("auth calls after the data: %v", f.admin)
	}
	got := map[string]string{}
	for table, recs := range f.restored {
		for _, r := range recs {
			got[table+"/"+string(r.Key)] = fmt.Sprintf("%s@%d", r.Value, r.Version)
		}
	}
	want := map[string]string{"default/a": "11@150", "default/c": "3@160", "h/x": "x@30"}
	if len(got) != len(want) {
		t.Fatalf("restored %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("restored %v, want %v", got, want)
		}
	}

	// A corrupted parent fails the restore before any call.
	data := filepath.Join(d1, "h.data")
	b1, err := os.ReadFile(data)
	if err != nil {
		t.Fatal(err)
	}
	b1[len(b1)-1] ^= 0xff
	if err := os.WriteFile(data, b1, 0o600); err != nil {
		t.Fatal(err)
	}
	r = run(t, "", "restore", "--from", d2, "--endpoints", addr)
	if r.code == exitOK || !strings.Contains(r.stderr, "corrupt") || len(f.begun) != 1 {
		t.Fatalf("restore of a corrupted chain: code %d, stderr %q, %d RestoreBegin calls", r.code, r.stderr, len(f.begun))
	}
	run(t, "", "restore", "--endpoints", addr).expect(t, exitUsage, "")
	run(t, "", "backup", "--endpoints", addr).expect(t, exitUsage, "")
}

// TestTableSettingsInitialRanges: a backup records the ranges a hash
// table was created with (the floor merges keep), or, for a table that
// has no record of them, the ranges it has.
func TestTableSettingsInitialRanges(t *testing.T) {
	five := make([]*cairnpb.RangeDescriptor, 5)
	for _, tc := range []struct {
		t    *cairnpb.Table
		want uint32
	}{
		{&cairnpb.Table{Partitioning: "hash", InitialRanges: 2, Ranges: five}, 2},
		{&cairnpb.Table{Partitioning: "hash", Ranges: five}, 5},
		{&cairnpb.Table{Partitioning: "range", Ranges: five}, 0},
	} {
		if got := tableSettings(tc.t).InitialRanges; got != tc.want {
			t.Errorf("%v: initial ranges %d, want %d", tc.t, got, tc.want)
		}
	}
}
