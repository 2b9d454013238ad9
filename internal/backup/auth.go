package backup

import (
	"bytes"
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/cairn-db/cairn/api/cairnpb"
)

// authMagic opens the auth file.
const authMagic = "CAIRNAU1"

// AuthFileName is the auth file's name in a backup directory.
const AuthFileName = "auth.bin"

// maxAuthBytes bounds an auth file ParseAuth accepts.
const maxAuthBytes = 64 << 20

// EncodeAuth returns the auth file's bytes: the magic, then the
// deterministic protobuf encoding of a (users with password hashes, roles
// with grants, token records, whether auth is enforced; never the
// token-signing secret).
func EncodeAuth(a *cairnpb.AuthBackup) ([]byte, error) {
	if err := validateAuth(a); err != nil {
		return nil, err
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(a)
	if err != nil {
		return nil, err
	}
	return append([]byte(authMagic), b...), nil
}

// ParseAuth decodes an auth file, rejecting anything EncodeAuth would not
// have written (unknown fields included).
func ParseAuth(b []byte) (*cairnpb.AuthBackup, error) {
	if len(b) > maxAuthBytes {
		return nil, fmt.Errorf("%w: auth file is %d bytes, more than %d", ErrCorrupt, len(b), maxAuthBytes)
	}
	if !bytes.HasPrefix(b, []byte(authMagic)) {
		return nil, fmt.Errorf("%w: auth file does not start with %q", ErrCorrupt, authMagic)
	}
	a := &cairnpb.AuthBackup{}
	if err := proto.Unmarshal(b[len(authMagic):], a); err != nil {
		return nil, fmt.Errorf("%w: auth file: %v", ErrCorrupt, err)
	}
	if hasUnknown(a.ProtoReflect()) {
		return nil, fmt.Errorf("%w: auth file has unknown fields", ErrCorrupt)
	}
	canon, err := EncodeAuth(a)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(canon, b) {
		return nil, fmt.Errorf("%w: auth file is not in canonical form", ErrCorrupt)
	}
	return a, nil
}

// hasUnknown reports whether m or a message in it holds unknown fields.
func hasUnknown(m protoreflect.Message) bool {
	if len(m.GetUnknown()) > 0 {
		return true
	}
	found := false
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			for i := 0; i < v.List().Len() && !found; i++ {
				found = hasUnknown(v.List().Get(i).Message())
			}
		case fd.Message() != nil && !fd.IsMap():
			found = hasUnknown(v.Message())
		}
		return !found
	})
	return found
}

func validateAuth(a *cairnpb.AuthBackup) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: auth file: %s", ErrCorrupt, fmt.Sprintf(format, args...))
	}
	for i, u := range a.Users {
		if u.Name == "" {
			return bad("user %d has no name", i)
		}
	}
	for i, r := range a.Roles {
		if r.Name == "" {
			return bad("role %d has no name", i)
		}
		for j, g := range r.Grants {
			if g == nil {
				return bad("role %q: grant %d is empty", r.Name, j)
			}
		}
	}
	for i, t := range a.Tokens {
		if t.Id == "" || t.User == "" {
			return bad("token %d has no id or user", i)
		}
	}
	return nil
}

// TableSettings are a table's settings as a manifest records them
// (Table.Settings): what recreating the table needs.
type TableSettings struct {
	Partitioning    string `json:"partitioning"`
	Consistency     string `json:"consistency"`
	Replicas        uint32 `json:"replicas"`
	InitialRanges   uint32 `json:"initial_ranges"`
	MaxBytes        uint64 `json:"max_bytes"`
	MaxWritesPerSec uint32 `json:"max_writes_per_sec"`
	MaxReadsPerSec  uint32 `json:"max_reads_per_sec,omitempty"`
	// Read learners per range and key history retention (absent: none,
	// and the nodes' defaults).
	Learners           uint32  `json:"learners,omitempty"`
	HistoryVersions    *uint32 `json:"history_versions,omitempty"`
	HistoryRetentionMs *uint64 `json:"history_retention_ms,omitempty"`
}

// Encode returns the settings as a manifest's table settings object.
func (s *TableSettings) Encode() json.RawMessage {
	b, _ := json.Marshal(s) // cannot fail: fixed fields of plain types
	return b
}

// ParseTableSettings decodes a manifest's table settings, rejecting
// unknown fields and an unknown partitioning.
func ParseTableSettings(b []byte) (*TableSettings, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	s := &TableSettings{}
	if err := dec.Decode(s); err != nil {
		return nil, fmt.Errorf("%w: table settings: %v", ErrCorrupt, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: table settings: trailing data", ErrCorrupt)
	}
	if s.Partitioning != "range" && s.Partitioning != "hash" {
		return nil, fmt.Errorf("%w: table settings: partitioning %q", ErrCorrupt, s.Partitioning)
	}
	return s, nil
}

// RecordFromProto and RecordToProto convert between a data file record
// and its wire form. RecordFromProto keeps r's slices.
func RecordFromProto(r *cairnpb.BackupRecord) *Record {
	return &Record{Key: r.Key, Version: r.Version, ExpireAtMs: r.ExpireAtMs, HasValue: r.HasValue, Value: r.Value}
}
