package replica

import (
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/kv"
)

// Auth records of the meta range (see docs/design/auth.md):
//
//	"auth/config"         -> cairnpb.AuthConfig (enabled, token secret)
//	"auth/user/" + name   -> cairnpb.UserRecord
//	"auth/role/" + name   -> cairnpb.RoleRecord
//	"auth/token/" + id    -> cairnpb.TokenRecord (long-lived API tokens)
//
// The built-in role "root" has no record: it is every permission. The
// user "root" always holds it. Auth can be enabled only while a user
// "root" with a password exists, and that user cannot be removed while
// auth is enabled, so an enabled cluster always has a way in.
const (
	metaAuthConfig      = "auth/config"
	metaAuthUserPrefix  = "auth/user/"
	metaAuthRolePrefix  = "auth/role/"
	metaAuthTokenPrefix = "auth/token/"

	// RootName is the name of the built-in root user and role.
	RootName = "root"
)

// MetaAuthSpan is the span of every auth record.
func MetaAuthSpan() (start, end []byte) {
	p := []byte("auth/")
	return keys.DataKey(keys.MetaTableID, p), keys.DataKey(keys.MetaTableID, keys.PrefixEnd(p))
}

func metaKey(s string) []byte { return keys.DataKey(keys.MetaTableID, []byte(s)) }

// MetaAuthConfigKey is the storage key of the auth config record.
func MetaAuthConfigKey() []byte { return metaKey(metaAuthConfig) }

// MetaAuthUserSpan, MetaAuthRoleSpan and MetaAuthTokenSpan are the spans
// of the user, role and token records.
func MetaAuthUserSpan() (start, end []byte)  { return metaPrefixSpan(metaAuthUserPrefix) }
func MetaAuthRoleSpan() (start, end []byte)  { return metaPrefixSpan(metaAuthRolePrefix) }
func MetaAuthTokenSpan() (start, end []byte) { return metaPrefixSpan(metaAuthTokenPrefix) }

func metaPrefixSpan(p string) (start, end []byte) {
	return metaKey(p), keys.DataKey(keys.MetaTableID, keys.PrefixEnd([]byte(p)))
}

// applyAuth applies one auth command. Every failure is a Result error,
// decided from the batch's state alone, so all replicas agree.
func (r *Replica) applyAuth(b *pebble.Batch, c *cairnpb.AuthCommand, ts uint64) (Result, error) {
	cfg := &cairnpb.AuthConfig{}
	if _, err := GetProto(b, MetaAuthConfigKey(), cfg); err != nil {
		return Result{}, err
	}
	if len(cfg.Secret) == 0 && len(c.SecretCandidate) >= 32 {
		cfg.Secret = c.SecretCandidate
		if err := putProto(b, MetaAuthConfigKey(), 0, cfg); err != nil {
			return Result{}, err
		}
	}
	v := r.nextVersion(ts)
	switch op := c.Op.(type) {
	case *cairnpb.AuthCommand_AddUser:
		return r.authPutUser(b, op.AddUser, v, true)
	case *cairnpb.AuthCommand_SetPassword:
		return r.authPutUser(b, op.SetPassword, v, false)
	case *cairnpb.AuthCommand_RemoveUser:
		if op.RemoveUser == RootName && cfg.Enabled {
			return Result{Err: kv.Errorf(kv.ErrInvalidArgument, "user %q cannot be removed while auth is enabled", RootName)}, nil
		}
		return r.authDelete(b, metaAuthUserPrefix, "user", op.RemoveUser)
	case *cairnpb.AuthCommand_AddRole:
		if op.AddRole == RootName {
			return Result{Err: kv.Errorf(kv.ErrAlreadyExists, "role %q is built in", RootName)}, nil
		}
		found, err := GetProto(b, metaKey(metaAuthRolePrefix+op.AddRole), &cairnpb.RoleRecord{})
		if err != nil {
			return Result{}, err
		}
		if found {
			return Result{Err: kv.Errorf(kv.ErrAlreadyExists, "role %q exists", op.AddRole)}, nil
		}
		return Result{Version: v}, putProto(b, metaKey(metaAuthRolePrefix+op.AddRole), v, &cairnpb.RoleRecord{Name: op.AddRole})
	case *cairnpb.AuthCommand_RemoveRole:
		if op.RemoveRole == RootName {
			return Result{Err: kv.Errorf(kv.ErrInvalidArgument, "role %q is built in", RootName)}, nil
		}
		return r.authDelete(b, metaAuthRolePrefix, "role", op.RemoveRole)
	case *cairnpb.AuthCommand_Grant:
		return r.authGrant(b, op.Grant, v, true)
	case *cairnpb.AuthCommand_Revoke:
		return r.authGrant(b, op.Revoke, v, false)
	case *cairnpb.AuthCommand_BindRole:
		return r.authBind(b, op.BindRole, v, true)
	case *cairnpb.AuthCommand_UnbindRole:
		return r.authBind(b, op.UnbindRole, v, false)
	case *cairnpb.AuthCommand_SetEnabled:
		if op.SetEnabled {
			root := &cairnpb.UserRecord{}
			found, err := GetProto(b, metaKey(metaAuthUserPrefix+RootName), root)
			if err != nil {
				return Result{}, err
			}
			if !found || root.PasswordHash == "" {
				return Result{Err: kv.Errorf(kv.ErrInvalidArgument, "auth cannot be enabled before a user %q with a password exists (cairn user add root)", RootName)}, nil
			}
		}
		cfg.Enabled = op.SetEnabled
		return Result{Version: v}, putProto(b, MetaAuthConfigKey(), v, cfg)
	case *cairnpb.AuthCommand_AddToken:
		found, err := GetProto(b, metaKey(metaAuthUserPrefix+op.AddToken.User), &cairnpb.UserRecord{})
		if err != nil {
			return Result{}, err
		}
		if !found {
			return Result{Err: kv.Errorf(kv.ErrNotFound, "user %q does not exist", op.AddToken.User)}, nil
		}
		return Result{Version: v}, putProto(b, metaKey(metaAuthTokenPrefix+op.AddToken.Id), v, op.AddToken)
	case *cairnpb.AuthCommand_RemoveToken:
		return r.authDelete(b, metaAuthTokenPrefix, "token", op.RemoveToken)
	}
	return Result{Err: kv.Errorf(kv.ErrInvalidArgument, "unknown auth command")}, nil
}

func (r *Replica) authPutUser(b *pebble.Batch, u *cairnpb.UserRecord, v uint64, create bool) (Result, error) {
	key := metaKey(metaAuthUserPrefix + u.Name)
	cur := &cairnpb.UserRecord{}
	found, err := GetProto(b, key, cur)
	if err != nil {
		return Result{}, err
	}
	switch {
	case create && found:
		return Result{Err: kv.Errorf(kv.ErrAlreadyExists, "user %q exists", u.Name)}, nil
	case !create && !found:
		return Result{Err: kv.Errorf(kv.ErrNotFound, "user %q does not exist", u.Name)}, nil
	}
	next := &cairnpb.UserRecord{Name: u.Name, PasswordHash: u.PasswordHash, Roles: cur.Roles}
	if create {
		next.Roles = u.Roles
	}
	return Result{Version: v}, putProto(b, key, v, next)
}

func (r *Replica) authDelete(b *pebble.Batch, prefix, kind, name string) (Result, error) {
	key := metaKey(prefix + name)
	_, closer, err := b.Get(key)
	if err != nil {
		if err == pebble.ErrNotFound {
			return Result{Err: kv.Errorf(kv.ErrNotFound, "%s %q does not exist", kind, name)}, nil
		}
		return Result{}, err
	}
	closer.Close()
	return Result{}, b.Delete(key, nil)
}

func (r *Replica) authGrant(b *pebble.Batch, rg *cairnpb.RoleGrant, v uint64, add bool) (Result, error) {
	if rg.Role == RootName {
		return Result{Err: kv.Errorf(kv.ErrInvalidArgument, "role %q is built in and holds every permission", RootName)}, nil
	}
	key := metaKey(metaAuthRolePrefix + rg.Role)
	role := &cairnpb.RoleRecord{}
	found, err := GetProto(b, key, role)
	if err != nil {
		return Result{}, err
	}
	if !found {
		return Result{Err: kv.Errorf(kv.ErrNotFound, "role %q does not exist", rg.Role)}, nil
	}
	i := slices.IndexFunc(role.Grants, func(g *cairnpb.Grant) bool { return proto.Equal(g, rg.Grant) })
	switch {
	case add && i < 0:
		role.Grants = append(role.Grants, rg.Grant)
	case !add && i >= 0:
		role.Grants = slices.Delete(role.Grants, i, i+1)
	case !add:
		return Result{Err: kv.Errorf(kv.ErrNotFound, "role %q has no such grant", rg.Role)}, nil
	}
	return Result{Version: v}, putProto(b, key, v, role)
}

func (r *Replica) authBind(b *pebble.Batch, ur *cairnpb.UserRole, v uint64, add bool) (Result, error) {
	key := metaKey(metaAuthUserPrefix + ur.User)
	u := &cairnpb.UserRecord{}
	found, err := GetProto(b, key, u)
	if err != nil {
		return Result{}, err
	}
	if !found {
		return Result{Err: kv.Errorf(kv.ErrNotFound, "user %q does not exist", ur.User)}, nil
	}
	if ur.Role != RootName {
		found, err := GetProto(b, metaKey(metaAuthRolePrefix+ur.Role), &cairnpb.RoleRecord{})
		if err != nil {
			return Result{}, err
		}
		if !found && add {
			return Result{Err: kv.Errorf(kv.ErrNotFound, "role %q does not exist", ur.Role)}, nil
		}
	}
	i := slices.Index(u.Roles, ur.Role)
	switch {
	case add && i < 0:
		u.Roles = append(u.Roles, ur.Role)
	case !add && i >= 0:
		u.Roles = slices.Delete(u.Roles, i, i+1)
	case !add:
		return Result{Err: kv.Errorf(kv.ErrNotFound, "user %q does not have role %q", ur.User, ur.Role)}, nil
	}
	return Result{Version: v}, putProto(b, key, v, u)
}
