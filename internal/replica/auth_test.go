package replica

// TestApplyAuth applies a sequence of auth commands to the meta replica
// and checks each outcome: the invariants the state machine enforces
// (auth needs a root user, root cannot be removed while auth is on, the
// root role is built in), the existence checks, the secret drawn once,
// and that grant/bind are idempotent read-modify-writes.

import (
	"errors"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/kv"
)

func TestApplyAuth(t *testing.T) {
	e := newApplyEnv(t)
	r := e.replicas[MetaRangeID]
	b := e.db.NewIndexedBatch()
	defer b.Close()
	secret1 := make([]byte, 32)
	secret1[0] = 1
	secret2 := make([]byte, 32)
	secret2[0] = 2
	step := func(cmd *cairnpb.AuthCommand, want error) {
		t.Helper()
		if cmd.SecretCandidate == nil {
			cmd.SecretCandidate = secret2
		}
		res, err := r.applyAuth(b, cmd, 0)
		if err != nil {
			t.Fatalf("%v: storage error %v", cmd, err)
		}
		if want == nil && res.Err != nil || want != nil && !errors.Is(res.Err, want) {
			t.Fatalf("%v: result %v, want %v", cmd, res.Err, want)
		}
	}
	grant := &cairnpb.RoleGrant{Role: "r", Grant: &cairnpb.Grant{Table: "t", Prefix: []byte("p/"), Permission: "read"}}
	step(&cairnpb.AuthCommand{Op: &cairnpb.AuthCommand_SetEnabled{SetEnabled: true}, SecretCandidate: secret1}, kv.ErrInvalidArgument)
	step(&cairnpb.AuthCommand{Op: &cairnpb.AuthCommand_AddUser{AddUser: &cairnpb.UserRecord{Name: "alice", PasswordHash: "h"}}}, nil)
	step(&cairnpb.AuthCommand{Op: &cairnpb.AuthCommand_AddUser{AddUser: &cairnpb.UserRecord{Name: "alice", PasswordHash: "h"}}}, kv.ErrAlreadyExists)
	step(&cairnpb.AuthCommand{Op: &cairnpb.AuthCommand_SetPassword{SetPassword: &cairnpb.UserRecord{Name: "bob", PasswordHash: "h"}}}, kv.ErrNotFound)
	step(&cairnpb.AuthCommand{Op: &cairnpb.AuthCommand_AddRole{AddRole: "root"}}, kv.ErrAlreadyExists)
	step(&cairnpb.AuthCommand{Op: &cairnpb.AuthCommand_Grant{Grant: grant}}, kv.ErrNotFound)
	step(&cairnpb.AuthCommand{Op: &cairnpb.AuthCommand_AddRole{AddRole: "r"}}, nil)
	step(&cairnpb.AuthCommand{Op: &cairnpb.AuthCommand_Grant{Grant: grant}}, nil)
	step(&cairnpb.AuthCommand{Op: &cairnpb.AuthCommand_Grant{Grant: grant}}, nil) // idempotent
	step(&cairnpb.AuthCommand{Op: &cairnpb.AuthCommand_Grant{Grant: &cairnpb.RoleGrant{Role: "root", Grant: grant.Grant}}}, kv.ErrInvalidArgument)
	step(&cairnpb.AuthCommand{Op: &cairnpb.AuthCommand_BindRole{BindRole: &cairnpb.UserRole{User: "alice", Role: "nope"}}}, kv.ErrNotFound)
	step(&cairnpb.AuthCommand{Op: &cairnpb.AuthCommand_BindRole{BindRole: &cairnpb.UserRole{User: "alice", Role: "r"}}}, nil)
	step(&cairnpb.AuthCommand{Op: &cairnpb.AuthCommand_BindRole{BindRole: &cairnpb.UserRole{User: "alice", Role: "r"}}}, nil)
	step(&cairnpb.AuthCommand{Op: &cairnpb.AuthCommand_SetPassword{SetPassword: &cairnpb.UserRecord{Name: "alice", PasswordHash: "h2"}}}, nil)
	u := &cairnpb.UserRecord{}
	if _, err := GetProto(b, metaKey(metaAuthUserPrefix+"alice"), u); err != nil || u.PasswordHash != "h2" || len(u.Roles) != 1 || u.Roles[0] != "r" {
		t.Fatalf("alice = %v, %v (passwd must keep the roles; bind is idempotent)", u, err)
	}
	role := &cairnpb.RoleRecord{}
	if _, err := GetProto(b, metaKey(metaAuthRolePrefix+"r"), role); err != nil || len(role.Grants) != 1 {
		t.Fatalf("role r = %v, %v", role, err)
	}
	step(&cairnpb.AuthCommand{Op: &cairnpb.AuthCommand_AddToken{AddToken: &cairnpb.TokenRecord{Id: "t1", User: "ghost"}}}, kv.ErrNotFound)
	step(&cairnpb.AuthCommand{Op: &cairnpb.AuthCommand_AddToken{AddToken: &cairnpb.TokenRecord{Id: "t1", User: "alice"}}}, nil)
	step(&cairnpb.AuthCommand{Op: &cairnpb.AuthCommand_RemoveToken{RemoveToken: "t1"}}, nil)
	step(&cairnpb.AuthCommand{Op: &cairnpb.AuthCommand_RemoveToken{RemoveToken: "t1"}}, kv.ErrNotFound)
	step(&cairnpb.AuthCommand{Op: &cairnpb.AuthCommand_AddUser{AddUser: &cairnpb.UserRecord{Name: "root", PasswordHash: "h"}}}, nil)
	step(&cairnpb.AuthCommand{Op: &cairnpb.AuthCommand_SetEnabled{SetEnabled: true}}, nil)
	step(&cairnpb.AuthCommand{Op: &cairnpb.AuthCommand_RemoveUser{RemoveUser: "root"}}, kv.ErrInvalidArgument)
	step(&cairnpb.AuthCommand{Op: &cairnpb.AuthCommand_Revoke{Revoke: grant}}, nil)
	step(&cairnpb.AuthCommand{Op: &cairnpb.AuthCommand_Revoke{Revoke: grant}}, kv.ErrNotFound)
	step(&cairnpb.AuthCommand{Op: &cairnpb.AuthCommand_SetEnabled{SetEnabled: false}}, nil)
	step(&cairnpb.AuthCommand{Op: &cairnpb.AuthCommand_RemoveUser{RemoveUser: "root"}}, nil)
	step(&cairnpb.AuthCommand{}, kv.ErrInvalidArgument)
	cfg := &cairnpb.AuthConfig{}
	if _, err := GetProto(b, MetaAuthConfigKey(), cfg); err != nil || cfg.Enabled || cfg.Secret[0] != 1 {
		t.Fatalf("config = %v, %v: the first candidate secret must stay", cfg, err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
}
