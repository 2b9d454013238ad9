package auth

import (
	"bytes"
	"fmt"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/replica"
)

// Perm is a set of permissions.
type Perm uint8

// Permissions. Admin on a table implies read and write on it.
const (
	PermRead Perm = 1 << iota
	PermWrite
	PermAdmin
)

func (p Perm) String() string {
	switch p {
	case PermRead:
		return "read"
	case PermWrite:
		return "write"
	case PermAdmin:
		return "admin"
	case PermRead | PermWrite:
		return "read+write"
	}
	return fmt.Sprintf("perm(%d)", uint8(p))
}

// ParsePerm parses "read", "write" or "admin".
func ParsePerm(s string) (Perm, error) {
	switch s {
	case "read":
		return PermRead, nil
	case "write":
		return PermWrite, nil
	case "admin":
		return PermAdmin | PermRead | PermWrite, nil
	}
	return 0, fmt.Errorf("permission %q: want read, write or admin", s)
}

// AllTables is the table name of a grant on every table.
const AllTables = "*"

// grant is one compiled grant: perms on keys with prefix.
type grant struct {
	prefix []byte
	perms  Perm
}

// userPerms is a user's compiled permissions: the union of the grants of
// its roles, by table. Immutable once built.
type userPerms struct {
	name string
	hash string
	root bool
	// tables holds, for each table named in a grant, its grants followed
	// by the grants on AllTables; any other table has just all.
	tables map[string][]grant
	all    []grant
}

// grantsOf returns the grants that apply to table.
func (u *userPerms) grantsOf(table string) []grant {
	if gs, ok := u.tables[table]; ok {
		return gs
	}
	return u.all
}

// snapshot is the auth state as of one meta applied index. Immutable:
// a reload builds a new one and swaps a pointer, which is the only cache
// invalidation the hot path needs.
type snapshot struct {
	appliedIndex uint64
	enabled      bool
	secret       []byte
	users        map[string]*userPerms
	roles        map[string]*cairnpb.RoleRecord
	userRecords  map[string]*cairnpb.UserRecord
	tokens       map[string]*cairnpb.TokenRecord
}

var emptySnapshot = &snapshot{users: map[string]*userPerms{}, roles: map[string]*cairnpb.RoleRecord{},
	userRecords: map[string]*cairnpb.UserRecord{}, tokens: map[string]*cairnpb.TokenRecord{}}

// loadSnapshot reads every auth record from rd (use a Pebble snapshot so
// the records are of one applied state).
func loadSnapshot(rd replica.Reader) (*snapshot, error) {
	s := &snapshot{users: map[string]*userPerms{}, roles: map[string]*cairnpb.RoleRecord{},
		userRecords: map[string]*cairnpb.UserRecord{}, tokens: map[string]*cairnpb.TokenRecord{}}
	cfg := &cairnpb.AuthConfig{}
	if _, err := replica.GetProto(rd, replica.MetaAuthConfigKey(), cfg); err != nil {
		return nil, fmt.Errorf("auth: load config: %w", err)
	}
	s.enabled, s.secret = cfg.Enabled, cfg.Secret
	start, end := replica.MetaAuthRoleSpan()
	if err := replica.ScanProtos(rd, start, end, func() *cairnpb.RoleRecord { return &cairnpb.RoleRecord{} },
		func(r *cairnpb.RoleRecord) { s.roles[r.Name] = r }); err != nil {
		return nil, fmt.Errorf("auth: load roles: %w", err)
	}
	start, end = replica.MetaAuthUserSpan()
	if err := replica.ScanProtos(rd, start, end, func() *cairnpb.UserRecord { return &cairnpb.UserRecord{} },
		func(u *cairnpb.UserRecord) { s.userRecords[u.Name] = u }); err != nil {
		return nil, fmt.Errorf("auth: load users: %w", err)
	}
	start, end = replica.MetaAuthTokenSpan()
	if err := replica.ScanProtos(rd, start, end, func() *cairnpb.TokenRecord { return &cairnpb.TokenRecord{} },
		func(t *cairnpb.TokenRecord) { s.tokens[t.Id] = t }); err != nil {
		return nil, fmt.Errorf("auth: load tokens: %w", err)
	}
	s.compile()
	return s, nil
}

// buildSnapshot makes a snapshot from records (tests, and loadSnapshot).
func buildSnapshot(cfg *cairnpb.AuthConfig, users []*cairnpb.UserRecord, roles []*cairnpb.RoleRecord, tokens []*cairnpb.TokenRecord) *snapshot {
	s := &snapshot{enabled: cfg.Enabled, secret: cfg.Secret, users: map[string]*userPerms{}, roles: map[string]*cairnpb.RoleRecord{},
		userRecords: map[string]*cairnpb.UserRecord{}, tokens: map[string]*cairnpb.TokenRecord{}}
	for _, r := range roles {
		s.roles[r.Name] = r
	}
	for _, u := range users {
		s.userRecords[u.Name] = u
	}
	for _, t := range tokens {
		s.tokens[t.Id] = t
	}
	s.compile()
	return s
}

func (s *snapshot) compile() {
	for _, u := range s.userRecords {
		s.users[u.Name] = compileUser(u, s.roles)
	}
}

// compileUser folds the grants of u's roles into per-table lists. Unknown
// roles and grants with an unknown permission grant nothing (fail closed).
func compileUser(u *cairnpb.UserRecord, roles map[string]*cairnpb.RoleRecord) *userPerms {
	up := &userPerms{name: u.Name, hash: u.PasswordHash, root: u.Name == replica.RootName, tables: map[string][]grant{}}
	for _, rn := range u.Roles {
		if rn == replica.RootName {
			up.root = true
			continue
		}
		r := roles[rn]
		if r == nil {
			continue
		}
		for _, g := range r.Grants {
			p, err := ParsePerm(g.Permission)
			if err != nil {
				continue
			}
			if g.Table == AllTables {
				up.all = append(up.all, grant{prefix: g.Prefix, perms: p})
			} else {
				up.tables[g.Table] = append(up.tables[g.Table], grant{prefix: g.Prefix, perms: p})
			}
		}
	}
	for t, gs := range up.tables {
		up.tables[t] = append(gs, up.all...)
	}
	return up
}

// allows reports whether u holds all of need on key of table.
func (u *userPerms) allows(table string, key []byte, need Perm) bool {
	if u.root {
		return true
	}
	var have Perm
	for _, g := range u.grantsOf(table) {
		if bytes.HasPrefix(key, g.prefix) {
			if have |= g.perms; have&need == need {
				return true
			}
		}
	}
	return false
}

// allowsSpan reports whether u may read every key of table in [start,
// end) (an empty end is the end of the table): one grant's prefix must
// cover the whole span, since the permissions of several grants are not
// merged over a span.
func (u *userPerms) allowsSpan(table string, start, end []byte, need Perm) bool {
	if u.root {
		return true
	}
	var have Perm
	for _, g := range u.grantsOf(table) {
		if covers(g.prefix, start, end) {
			have |= g.perms
		}
	}
	return have&need == need
}

// covers reports whether [start, end) lies within the keys with prefix.
func covers(prefix, start, end []byte) bool {
	if len(prefix) == 0 {
		return true
	}
	if bytes.Compare(start, prefix) < 0 {
		return false
	}
	pe := keys.PrefixEnd(prefix)
	if len(end) == 0 {
		return pe == nil
	}
	return pe == nil || bytes.Compare(end, pe) <= 0
}

// anyGrant reports whether u holds any grant on table.
func (u *userPerms) anyGrant(table string) bool {
	return u.root || len(u.grantsOf(table)) > 0
}
