package backup

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// FormatV1 is the manifest format this package writes and reads.
const FormatV1 = "cairn-backup/1"

// ManifestName is the manifest's file name in a backup directory.
const ManifestName = "MANIFEST.json"

// maxManifestBytes bounds a manifest ParseManifest accepts.
const maxManifestBytes = 64 << 20

// ErrCorrupt marks every rejection of a manifest or data file.
var ErrCorrupt = errors.New("backup: corrupt or non-canonical backup")

// Manifest describes one backup: the point in time AtVersion (an HLC
// version: everything committed at or below it is in, nothing above),
// the tables with their settings and data files, and the auth state.
type Manifest struct {
	Format    string `json:"format"`
	Cluster   string `json:"cluster"`
	AtVersion uint64 `json:"at_version"`
	// Parent is set on an incremental backup: its data files hold values
	// only for keys whose version is above Parent.AtVersion.
	Parent *Parent `json:"parent,omitempty"`
	Tables []Table `json:"tables"`
	Auth   *File   `json:"auth,omitempty"`
}

// Parent names the previous backup of an incremental chain.
type Parent struct {
	Dir            string `json:"dir"`
	AtVersion      uint64 `json:"at_version"`
	ManifestSHA256 string `json:"manifest_sha256"`
}

// Table is one table's settings (the table record as JSON, opaque here)
// and its data files, in key order.
type Table struct {
	Name     string          `json:"name"`
	Settings json.RawMessage `json:"settings"`
	Files    []File          `json:"files"`
}

// File is one file of the backup directory and its checksum.
type File struct {
	Name    string `json:"name"`
	SHA256  string `json:"sha256"`
	Bytes   int64  `json:"bytes"`
	Records int64  `json:"records"`
}

var (
	tableNameRE = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)
	fileNameRE  = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)
	sha256RE    = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// Encode returns the canonical bytes of m (indented JSON and a newline).
func (m *Manifest) Encode() ([]byte, error) {
	if err := m.validate(); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// ParseManifest decodes a manifest, rejecting unknown fields, an unknown
// format, invalid names and checksums, and any bytes that are not what
// Encode would write for the result.
func ParseManifest(b []byte) (*Manifest, error) {
	if len(b) > maxManifestBytes {
		return nil, fmt.Errorf("%w: manifest is %d bytes, more than %d", ErrCorrupt, len(b), maxManifestBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	m := &Manifest{}
	if err := dec.Decode(m); err != nil {
		return nil, fmt.Errorf("%w: manifest: %v", ErrCorrupt, err)
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	canon, err := m.Encode()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(canon, b) {
		return nil, fmt.Errorf("%w: manifest is not in canonical form", ErrCorrupt)
	}
	return m, nil
}

func (m *Manifest) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: manifest: %s", ErrCorrupt, fmt.Sprintf(format, args...))
	}
	if m.Format != FormatV1 {
		return bad("format %q, want %q", m.Format, FormatV1)
	}
	if m.AtVersion == 0 {
		return bad("at_version is 0")
	}
	if p := m.Parent; p != nil {
		if p.AtVersion == 0 || p.AtVersion >= m.AtVersion {
			return bad("parent at_version %d is not below %d", p.AtVersion, m.AtVersion)
		}
		if !sha256RE.MatchString(p.ManifestSHA256) {
			return bad("parent manifest_sha256 %q is not 64 lowercase hex digits", p.ManifestSHA256)
		}
		if p.Dir == "" || strings.ContainsRune(p.Dir, 0) {
			return bad("parent dir is empty or invalid")
		}
	}
	if m.Tables == nil {
		return bad("tables missing")
	}
	seen := map[string]bool{}
	for i, t := range m.Tables {
		if !tableNameRE.MatchString(t.Name) {
			return bad("table %d: invalid name %q", i, t.Name)
		}
		if i > 0 && m.Tables[i-1].Name >= t.Name {
			return bad("tables not in strictly increasing name order at %q", t.Name)
		}
		if len(t.Settings) == 0 || !json.Valid(t.Settings) || t.Settings[0] != '{' {
			return bad("table %q: settings are not a JSON object", t.Name)
		}
		if t.Files == nil {
			return bad("table %q: files missing", t.Name)
		}
		for _, f := range t.Files {
			if err := f.validate(seen); err != nil {
				return bad("table %q: %v", t.Name, err)
			}
		}
	}
	if m.Auth != nil {
		if err := m.Auth.validate(seen); err != nil {
			return bad("auth: %v", err)
		}
	}
	return nil
}

func (f *File) validate(seen map[string]bool) error {
	if !fileNameRE.MatchString(f.Name) || f.Name == "." || f.Name == ".." || f.Name == ManifestName {
		return fmt.Errorf("invalid file name %q", f.Name)
	}
	if seen[f.Name] {
		return fmt.Errorf("file %q named twice", f.Name)
	}
	seen[f.Name] = true
	if !sha256RE.MatchString(f.SHA256) {
		return fmt.Errorf("file %q: sha256 %q is not 64 lowercase hex digits", f.Name, f.SHA256)
	}
	if f.Bytes < 0 || f.Records < 0 {
		return fmt.Errorf("file %q: negative size or count", f.Name)
	}
	return nil
}

// SHA256Hex is the lowercase hex SHA-256 of b.
func SHA256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
