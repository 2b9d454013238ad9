package backup

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/api/cairnpb"
)

func sampleAuth() *cairnpb.AuthBackup {
	return &cairnpb.AuthBackup{
		Users:   []*cairnpb.UserRecord{{Name: "root", PasswordHash: "$argon2id$v=19$m=1,t=1,p=1$c2FsdA$aGFzaA", Roles: []string{"root"}}, {Name: "app", Roles: []string{"rw"}}},
		Roles:   []*cairnpb.RoleRecord{{Name: "rw", Grants: []*cairnpb.Grant{{Table: "orders", Prefix: []byte("eu/"), Permission: "write"}}}},
		Tokens:  []*cairnpb.TokenRecord{{Id: "t1", User: "app", Name: "ci", CreatedUnix: 1, ExpiresUnix: 2}},
		Enabled: true,
	}
}

// TestAuthRoundTrip: the auth file keeps users with their password
// hashes, roles with grants, tokens and the enabled flag; corrupt,
// truncated or non-canonical files are refused.
func TestAuthRoundTrip(t *testing.T) {
	b, err := EncodeAuth(sampleAuth())
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseAuth(b)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, sampleAuth()) {
		t.Fatalf("round trip: %v", got)
	}
	for name, in := range map[string][]byte{
		"no magic":  b[1:],
		"truncated": b[:len(b)-3],
		"trailing":  append(append([]byte(nil), b...), 0x08, 0x01),
		"empty":     nil,
	} {
		if _, err := ParseAuth(in); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
	if _, err := EncodeAuth(&cairnpb.AuthBackup{Users: []*cairnpb.UserRecord{{}}}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("user without a name: %v", err)
	}
}
