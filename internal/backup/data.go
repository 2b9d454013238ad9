package backup

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// dataMagic opens every data file.
const dataMagic = "CAIRNBK1"

// Limits bound what a Reader accepts (the cluster's key and value limits).
type Limits struct {
	MaxKeyBytes   int
	MaxValueBytes int
}

// DefaultLimits are cairn's default key and value limits.
var DefaultLimits = Limits{MaxKeyBytes: 4 << 10, MaxValueBytes: 1 << 20}

// Record is one key at the backup's point in time. In an incremental
// backup a record with HasValue false says the key existed at that time
// with Version and its value is in the parent chain (Version is not above
// the parent's point in time); a key absent from an incremental was
// deleted since the parent.
type Record struct {
	Key        []byte
	Version    uint64
	ExpireAtMs int64 // unix ms, 0 = no TTL
	HasValue   bool
	Value      []byte
}

// record body: uvarint key length, key, version (8 bytes BE), expire_at
// (8 bytes BE), flags (1 = value follows), [uvarint value length, value].
func appendRecord(b []byte, r *Record) []byte {
	b = binary.AppendUvarint(b, uint64(len(r.Key)))
	b = append(b, r.Key...)
	b = binary.BigEndian.AppendUint64(b, r.Version)
	b = binary.BigEndian.AppendUint64(b, uint64(r.ExpireAtMs))
	if !r.HasValue {
		return append(b, 0)
	}
	b = append(b, 1)
	b = binary.AppendUvarint(b, uint64(len(r.Value)))
	return append(b, r.Value...)
}

// Writer writes a data file: the magic, then each record as a uvarint
// length and the record body. Keys must strictly increase.
type Writer struct {
	w       io.Writer
	buf     []byte
	lastKey []byte
	started bool
	Records int64
}

// NewWriter writes the magic to w and returns a Writer.
func NewWriter(w io.Writer) (*Writer, error) {
	if _, err := io.WriteString(w, dataMagic); err != nil {
		return nil, err
	}
	return &Writer{w: w}, nil
}

// Add appends r; its key must be above the previous record's.
func (w *Writer) Add(r *Record) error {
	if w.started && bytes.Compare(r.Key, w.lastKey) <= 0 {
		return fmt.Errorf("backup: record key %q not above previous %q", r.Key, w.lastKey)
	}
	if r.ExpireAtMs < 0 || r.Version == 0 {
		return fmt.Errorf("backup: record %q: version 0 or negative expire_at", r.Key)
	}
	body := appendRecord(nil, r)
	w.buf = binary.AppendUvarint(w.buf[:0], uint64(len(body)))
	w.buf = append(w.buf, body...)
	if _, err := w.w.Write(w.buf); err != nil {
		return err
	}
	w.lastKey = append(w.lastKey[:0], r.Key...)
	w.started = true
	w.Records++
	return nil
}

// Reader reads a data file written by Writer, rejecting anything else.
type Reader struct {
	r       *bufio.Reader
	limits  Limits
	lastKey []byte
	started bool
	body    []byte
	err     error
}

// NewReader checks the magic and returns a Reader.
func NewReader(r io.Reader, limits Limits) (*Reader, error) {
	br := bufio.NewReader(r)
	magic := make([]byte, len(dataMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != dataMagic {
		return nil, fmt.Errorf("%w: data file does not start with %q", ErrCorrupt, dataMagic)
	}
	return &Reader{r: br, limits: limits}, nil
}

// readUvarint reads a minimally encoded uvarint.
func readUvarint(r io.ByteReader) (uint64, int, error) {
	var buf [binary.MaxVarintLen64]byte
	for i := 0; i < len(buf); i++ {
		c, err := r.ReadByte()
		if err != nil {
			return 0, i, err
		}
		buf[i] = c
		if c < 0x80 {
			v, n := binary.Uvarint(buf[:i+1])
			if n <= 0 || len(binary.AppendUvarint(nil, v)) != n {
				return 0, i + 1, fmt.Errorf("%w: non-canonical varint", ErrCorrupt)
			}
			return v, n, nil
		}
	}
	return 0, len(buf), fmt.Errorf("%w: varint too long", ErrCorrupt)
}

// Next returns the next record, or io.EOF after the last one. The
// returned record's slices are valid until the next call.
func (rd *Reader) Next() (*Record, error) {
	if rd.err != nil {
		return nil, rd.err
	}
	rec, err := rd.next()
	if err != nil {
		rd.err = err
	}
	return rec, err
}

func (rd *Reader) next() (*Record, error) {
	n, read, err := readUvarint(rd.r)
	if err == io.EOF && read == 0 {
		return nil, io.EOF
	}
	if err != nil {
		if errors.Is(err, ErrCorrupt) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: truncated record length: %v", ErrCorrupt, err)
	}
	maxBody := uint64(binary.MaxVarintLen64*2 + rd.limits.MaxKeyBytes + 17 + rd.limits.MaxValueBytes)
	if n > maxBody {
		return nil, fmt.Errorf("%w: record of %d bytes exceeds the limit %d", ErrCorrupt, n, maxBody)
	}
	if cap(rd.body) < int(n) {
		rd.body = make([]byte, n)
	}
	rd.body = rd.body[:n]
	if _, err := io.ReadFull(rd.r, rd.body); err != nil {
		return nil, fmt.Errorf("%w: truncated record: %v", ErrCorrupt, err)
	}
	rec, err := decodeRecord(rd.body, rd.limits)
	if err != nil {
		return nil, err
	}
	if rd.started && bytes.Compare(rec.Key, rd.lastKey) <= 0 {
		return nil, fmt.Errorf("%w: key %q not above previous %q", ErrCorrupt, rec.Key, rd.lastKey)
	}
	rd.lastKey = append(rd.lastKey[:0], rec.Key...)
	rd.started = true
	return rec, nil
}

func decodeRecord(b []byte, limits Limits) (*Record, error) {
	br := bytes.NewReader(b)
	kl, _, err := readUvarint(br)
	if err != nil || kl == 0 || kl > uint64(limits.MaxKeyBytes) || kl > uint64(br.Len()) {
		return nil, fmt.Errorf("%w: bad key length", ErrCorrupt)
	}
	off := len(b) - br.Len()
	rec := &Record{Key: b[off : off+int(kl)]}
	rest := b[off+int(kl):]
	if len(rest) < 17 {
		return nil, fmt.Errorf("%w: record %q truncated", ErrCorrupt, rec.Key)
	}
	rec.Version = binary.BigEndian.Uint64(rest[0:8])
	rec.ExpireAtMs = int64(binary.BigEndian.Uint64(rest[8:16]))
	if rec.Version == 0 || rec.ExpireAtMs < 0 {
		return nil, fmt.Errorf("%w: record %q: version 0 or negative expire_at", ErrCorrupt, rec.Key)
	}
	switch rest[16] {
	case 0:
		if len(rest) != 17 {
			return nil, fmt.Errorf("%w: record %q: trailing bytes", ErrCorrupt, rec.Key)
		}
		return rec, nil
	case 1:
	default:
		return nil, fmt.Errorf("%w: record %q: unknown flags %d", ErrCorrupt, rec.Key, rest[16])
	}
	vr := bytes.NewReader(rest[17:])
	vl, _, err := readUvarint(vr)
	if err != nil || vl > uint64(limits.MaxValueBytes) || vl != uint64(vr.Len()) {
		return nil, fmt.Errorf("%w: record %q: bad value length", ErrCorrupt, rec.Key)
	}
	rec.HasValue = true
	rec.Value = rest[len(rest)-int(vl):]
	return rec, nil
}
