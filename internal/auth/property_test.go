package auth

// Property tests (rapid) of the compiled permissions against a naive
// model: for random roles, grants and keys over a small alphabet,
//   - allows(table, key, need) holds iff the union of the permissions of
//     the grants on that table or "*" whose prefix starts the key covers
//     need (admin implying read and write);
//   - allowsSpan(table, start, end, read) implies allows(table, k, read)
//     for every key k in [start, end) that the test enumerates.

import (
	"bytes"
	"fmt"
	"testing"

	"pgregory.net/rapid"

	"github.com/cairn-db/cairn/api/cairnpb"
)

func genKey(t *rapid.T, label string) []byte {
	return []byte(rapid.StringOfN(rapid.SampledFrom([]rune{'a', 'b', '/'}), 0, 4, -1).Draw(t, label))
}

func TestPropertyAllowsMatchesModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		tables := []string{"t1", "t2", AllTables}
		perms := []string{"read", "write", "admin"}
		nRoles := rapid.IntRange(0, 3).Draw(t, "roles")
		var roles []*cairnpb.RoleRecord
		u := &cairnpb.UserRecord{Name: "u"}
		for i := range nRoles {
			r := &cairnpb.RoleRecord{Name: fmt.Sprintf("r%d", i)}
			for j := range rapid.IntRange(0, 3).Draw(t, "grants") {
				r.Grants = append(r.Grants, &cairnpb.Grant{
					Table:      rapid.SampledFrom(tables).Draw(t, fmt.Sprintf("table%d", j)),
					Prefix:     genKey(t, fmt.Sprintf("prefix%d", j)),
					Permission: rapid.SampledFrom(perms).Draw(t, fmt.Sprintf("perm%d", j)),
				})
			}
			roles = append(roles, r)
			u.Roles = append(u.Roles, r.Name)
		}
		s := buildSnapshot(&cairnpb.AuthConfig{Enabled: true}, []*cairnpb.UserRecord{u}, roles, nil)
		up := s.users["u"]
		table := rapid.SampledFrom([]string{"t1", "t2"}).Draw(t, "checked table")
		key := genKey(t, "key")
		need := rapid.SampledFrom([]Perm{PermRead, PermWrite, PermAdmin, PermRead | PermWrite}).Draw(t, "need")
		var model Perm
		for _, r := range roles {
			for _, g := range r.Grants {
				if (g.Table == table || g.Table == AllTables) && bytes.HasPrefix(key, g.Prefix) {
					p, _ := ParsePerm(g.Permission)
					model |= p
				}
			}
		}
		if got, want := up.allows(table, key, need), model&need == need; got != want {
			t.Fatalf("allows(%s, %q, %v) = %v, model says %v", table, key, need, got, want)
		}
		start, end := genKey(t, "start"), genKey(t, "end")
		if len(end) > 0 && bytes.Compare(start, end) >= 0 {
			return
		}
		if !up.allowsSpan(table, start, end, PermRead) {
			return
		}
		for _, k := range allKeys(4) {
			if bytes.Compare(k, start) >= 0 && (len(end) == 0 || bytes.Compare(k, end) < 0) && !up.allows(table, k, PermRead) {
				t.Fatalf("span [%q, %q) allowed but key %q in it is not readable", start, end, k)
			}
		}
	})
}

// allKeys enumerates every key over {a, b, /} of length up to n.
func allKeys(n int) [][]byte {
	out := [][]byte{{}}
	level := [][]byte{{}}
	for range n {
		var next [][]byte
		for _, k := range level {
			for _, c := range []byte("ab/") {
				next = append(next, append(append([]byte(nil), k...), c))
			}
		}
		out = append(out, next...)
		level = next
	}
	return out
}
