// Tests of the backup format: round trips of manifests and data files,
// detection of corruption and of non-canonical input, and verification of
// an incremental chain before any restore.
package backup

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func sampleRecords() []Record {
	return []Record{
		{Key: []byte("a"), Version: 10, HasValue: true, Value: []byte("one")},
		{Key: []byte("b"), Version: 11, ExpireAtMs: 1700000000000, HasValue: true, Value: nil},
		{Key: []byte("c"), Version: 9},
	}
}

func encodeRecords(t testing.TB, recs []Record) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for i := range recs {
		if err := w.Add(&recs[i]); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func readAll(b []byte) ([]Record, error) {
	rd, err := NewReader(bytes.NewReader(b), DefaultLimits)
	if err != nil {
		return nil, err
	}
	var out []Record
	for {
		r, err := rd.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		c := *r
		c.Key = append([]byte(nil), r.Key...)
		if r.HasValue {
			c.Value = append([]byte{}, r.Value...)
		}
		out = append(out, c)
	}
}

func TestDataRoundTrip(t *testing.T) {
	recs := sampleRecords()
	got, err := readAll(encodeRecords(t, recs))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(recs) {
		t.Fatalf("got %d records, want %d", len(got), len(recs))
	}
	for i := range recs {
		w, g := recs[i], got[i]
		if !bytes.Equal(w.Key, g.Key) || w.Version != g.Version || w.ExpireAtMs != g.ExpireAtMs ||
			w.HasValue != g.HasValue || !bytes.Equal(w.Value, g.Value) {
			t.Fatalf("record %d: got %+v, want %+v", i, g, w)
		}
	}
}

func TestWriterRejectsUnsortedKeys(t *testing.T) {
	w, _ := NewWriter(io.Discard)
	if err := w.Add(&Record{Key: []byte("b"), Version: 1}); err != nil {
		t.Fatal(err)
	}
	if err := w.Add(&Record{Key: []byte("a"), Version: 1}); err == nil {
		t.Fatal("a key below the previous one was accepted")
	}
}

func TestDataCorruption(t *testing.T) {
	good := encodeRecords(t, sampleRecords())
	cases := map[string][]byte{
		"bad magic": append([]byte("XAIRNBK1"), good[8:]...),
		"truncated": good[:len(good)-2],
		"short":     good[:3],
		"unsorted":  encodeUnsorted(),
		"flags":     flipFlags(t),
	}
	for name, b := range cases {
		if _, err := readAll(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", name, err)
		}
	}
}

func encodeUnsorted() []byte {
	b := []byte(dataMagic)
	for _, k := range []string{"b", "a"} {
		body := appendRecord(nil, &Record{Key: []byte(k), Version: 1})
		b = append(append(b, byte(len(body))), body...)
	}
	return b
}

func flipFlags(t *testing.T) []byte {
	b := encodeRecords(t, []Record{{Key: []byte("k"), Version: 1}})
	b[len(b)-1] = 7
	return b
}

func sampleManifest() *Manifest {
	return &Manifest{Format: FormatV1, Cluster: "c1", AtVersion: 100,
		Tables: []Table{{Name: "t1", Settings: json.RawMessage(`{"name":"t1"}`),
			Files: []File{{Name: "t1-000001.data", SHA256: SHA256Hex(nil), Bytes: 0, Records: 0}}}}}
}

func TestManifestRoundTripAndCanonical(t *testing.T) {
	b, err := sampleManifest().Encode()
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	if m.AtVersion != 100 || m.Tables[0].Files[0].Name != "t1-000001.data" {
		t.Fatalf("round trip lost fields: %+v", m)
	}
	for name, bad := range map[string][]byte{
		"not canonical": bytes.ReplaceAll(b, []byte("  "), []byte(" ")),
		"unknown field": bytes.Replace(b, []byte(`"cluster"`), []byte(`"x":1,"cluster"`), 1),
		"format":        bytes.Replace(b, []byte(FormatV1), []byte("cairn-backup/9"), 1),
		"path escape":   bytes.Replace(b, []byte("t1-000001.data"), []byte("../etc/passwd"), 1),
		"empty":         nil,
	} {
		if _, err := ParseManifest(bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", name, err)
		}
	}
}

// writeBackup writes a one-table backup to dir (with parent if set).
func writeBackup(t *testing.T, dir string, at uint64, parent *Parent, recs []Record) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := WriteFileAtomic(dir, "t1-000001.data", func(w io.Writer) error {
		_, err := w.Write(encodeRecords(t, recs))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	f.Records = int64(len(recs))
	m := &Manifest{Format: FormatV1, Cluster: "c1", AtVersion: at, Parent: parent,
		Tables: []Table{{Name: "t1", Settings: json.RawMessage(`{}`), Files: []File{f}}}}
	if err := WriteManifest(dir, m); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyChain(t *testing.T) {
	root := t.TempDir()
	full, inc := filepath.Join(root, "full"), filepath.Join(root, "inc")
	writeBackup(t, full, 100, nil, sampleRecords())
	_, sum, err := ReadManifest(full)
	if err != nil {
		t.Fatal(err)
	}
	writeBackup(t, inc, 200, &Parent{Dir: "../full", AtVersion: 100, ManifestSHA256: sum}, sampleRecords()[:1])
	chain, err := VerifyChain(inc)
	if err != nil {
		t.Fatal(err)
	}
	if len(chain) != 2 || chain[0].Manifest.AtVersion != 100 || chain[1].Manifest.AtVersion != 200 {
		t.Fatalf("chain = %+v", chain)
	}
	// Corrupt one byte of the parent's data file: the whole chain fails.
	p := filepath.Join(full, "t1-000001.data")
	b, _ := os.ReadFile(p)
	b[len(b)-1] ^= 1
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyChain(inc); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("corrupt parent: err = %v, want ErrCorrupt", err)
	}
	// A parent replaced by another backup is refused.
	writeBackup(t, full, 100, nil, sampleRecords()[1:])
	if _, err := VerifyChain(inc); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("replaced parent: err = %v, want ErrCorrupt", err)
	}
}

func TestInterruptedBackupIsNotComplete(t *testing.T) {
	dir := t.TempDir()
	if _, err := WriteFileAtomic(dir, "t1-000001.data", func(w io.Writer) error { return errors.New("interrupted") }); err == nil {
		t.Fatal("fill error not returned")
	}
	if _, err := VerifyChain(dir); err == nil {
		t.Fatal("a directory without a manifest was accepted")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 0 {
		t.Fatalf("temp files left behind: %v", ents)
	}
}
