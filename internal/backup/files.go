package backup

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
)

// WriteFileAtomic writes name in dir by a temp file, fsync, rename and a
// directory fsync, so a crash leaves either no file or the whole file.
// It returns the file's record (checksum and size).
func WriteFileAtomic(dir, name string, fill func(w io.Writer) error) (File, error) {
	af, err := CreateAtomic(dir, name)
	if err != nil {
		return File{}, err
	}
	defer af.Abort() // no-op after Commit
	if err := fill(af); err != nil {
		return File{}, err
	}
	return af.Commit()
}

// AtomicFile is a file being written by WriteFileAtomic's rule, for
// writers that produce it piece by piece: Write, then Commit (fsync,
// rename, directory fsync) or Abort.
type AtomicFile struct {
	dir, name string
	tmp       *os.File
	h         hash.Hash
	cw        *countWriter
	done      bool
}

// CreateAtomic starts writing name in dir.
func CreateAtomic(dir, name string) (*AtomicFile, error) {
	tmp, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	return &AtomicFile{dir: dir, name: name, tmp: tmp, h: h, cw: &countWriter{w: io.MultiWriter(tmp, h)}}, nil
}

func (f *AtomicFile) Write(p []byte) (int, error) { return f.cw.Write(p) }

// Commit makes the file durable under its name and returns its record.
func (f *AtomicFile) Commit() (File, error) {
	if f.done {
		return File{}, fmt.Errorf("backup: %s committed or aborted already", f.name)
	}
	f.done = true
	defer os.Remove(f.tmp.Name()) // no-op after the rename
	if err := f.tmp.Sync(); err != nil {
		f.tmp.Close()
		return File{}, err
	}
	if err := f.tmp.Close(); err != nil {
		return File{}, err
	}
	if err := os.Rename(f.tmp.Name(), filepath.Join(f.dir, f.name)); err != nil {
		return File{}, err
	}
	if err := syncDir(f.dir); err != nil {
		return File{}, err
	}
	return File{Name: f.name, SHA256: hex.EncodeToString(f.h.Sum(nil)), Bytes: f.cw.n}, nil
}

// Abort drops the file; a no-op after Commit.
func (f *AtomicFile) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.tmp.Close()
	os.Remove(f.tmp.Name())
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// WriteManifest writes m as dir's manifest, atomically and last.
func WriteManifest(dir string, m *Manifest) error {
	b, err := m.Encode()
	if err != nil {
		return err
	}
	_, err = WriteFileAtomic(dir, ManifestName, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
	return err
}

// ReadManifest reads and parses dir's manifest; it also returns the
// manifest's SHA-256 (what a child names its parent by).
func ReadManifest(dir string) (*Manifest, string, error) {
	b, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		return nil, "", fmt.Errorf("backup: %s is not a complete backup: %w", dir, err)
	}
	m, err := ParseManifest(b)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", dir, err)
	}
	return m, SHA256Hex(b), nil
}

// VerifyFiles checks the size and SHA-256 of every file m names in dir.
func VerifyFiles(dir string, m *Manifest) error {
	var files []File
	for _, t := range m.Tables {
		files = append(files, t.Files...)
	}
	if m.Auth != nil {
		files = append(files, *m.Auth)
	}
	for _, f := range files {
		fh, err := os.Open(filepath.Join(dir, f.Name))
		if err != nil {
			return fmt.Errorf("backup: %s: %w", dir, err)
		}
		h := sha256.New()
		n, err := io.Copy(h, fh)
		fh.Close()
		if err != nil {
			return fmt.Errorf("backup: %s/%s: %w", dir, f.Name, err)
		}
		if got := hex.EncodeToString(h.Sum(nil)); n != f.Bytes || got != f.SHA256 {
			return fmt.Errorf("%w: %s/%s: %d bytes sha256 %s, manifest says %d bytes sha256 %s",
				ErrCorrupt, dir, f.Name, n, got, f.Bytes, f.SHA256)
		}
	}
	return nil
}

// Link is one backup of a chain: its directory and manifest.
type Link struct {
	Dir      string
	Manifest *Manifest
}

// maxChain bounds the length of an incremental chain.
const maxChain = 1000

// VerifyChain reads dir's manifest and its parents' (relative parent
// directories resolve against the child's), checks each link names its
// parent's exact manifest bytes and point in time, and verifies every
// file of every link. It returns the chain, full backup first. Nothing
// should be restored unless it succeeds.
func VerifyChain(dir string) ([]Link, error) {
	var chain []Link
	for len(chain) < maxChain {
		m, _, err := ReadManifest(dir)
		if err != nil {
			return nil, err
		}
		if err := VerifyFiles(dir, m); err != nil {
			return nil, err
		}
		chain = append([]Link{{Dir: dir, Manifest: m}}, chain...)
		if m.Parent == nil {
			return chain, nil
		}
		pdir := m.Parent.Dir
		if !filepath.IsAbs(pdir) {
			pdir = filepath.Join(dir, pdir)
		}
		pm, psum, err := ReadManifest(pdir)
		if err != nil {
			return nil, err
		}
		if psum != m.Parent.ManifestSHA256 || pm.AtVersion != m.Parent.AtVersion || pm.Cluster != m.Cluster {
			return nil, fmt.Errorf("%w: %s names parent %s (at %d, sha256 %s), which is a different backup",
				ErrCorrupt, dir, pdir, m.Parent.AtVersion, m.Parent.ManifestSHA256)
		}
		dir = pdir
	}
	return nil, fmt.Errorf("%w: incremental chain longer than %d", ErrCorrupt, maxChain)
}
