package backup

import (
	"bytes"
	"io"
	"reflect"
	"testing"
)

// FuzzParseManifest: never panics; whatever parses re-encodes to the same bytes.
func FuzzParseManifest(f *testing.F) {
	b, _ := sampleManifest().Encode()
	f.Add(b)
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := ParseManifest(in)
		if err != nil {
			return
		}
		out, err := m.Encode()
		if err != nil || !bytes.Equal(out, in) {
			t.Fatalf("accepted manifest does not re-encode to itself: %v", err)
		}
	})
}

// FuzzDataReader: never panics; every accepted file re-encodes to itself.
func FuzzDataReader(f *testing.F) {
	f.Add(encodeRecords(f, sampleRecords()))
	f.Add([]byte(dataMagic))
	f.Fuzz(func(t *testing.T, in []byte) {
		recs, err := readAll(in)
		if err != nil {
			return
		}
		var buf bytes.Buffer
		w, _ := NewWriter(&buf)
		for i := range recs {
			if err := w.Add(&recs[i]); err != nil {
				t.Fatalf("accepted record %d rejected by the writer: %v", i, err)
			}
		}
		if !bytes.Equal(buf.Bytes(), in) {
			t.Fatal("accepted data file does not re-encode to itself")
		}
		_ = io.EOF
	})
}

// FuzzParseAuth: never panics; whatever parses re-encodes to the same bytes.
func FuzzParseAuth(f *testing.F) {
	b, err := EncodeAuth(sampleAuth())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(authMagic))
	f.Fuzz(func(t *testing.T, in []byte) {
		a, err := ParseAuth(in)
		if err != nil {
			return
		}
		out, err := EncodeAuth(a)
		if err != nil || !bytes.Equal(out, in) {
			t.Fatalf("accepted auth file does not re-encode to itself: %v", err)
		}
	})
}

// FuzzParseTableSettings: never panics; accepted settings survive a
// round trip through Encode.
func FuzzParseTableSettings(f *testing.F) {
	f.Add([]byte((&TableSettings{Partitioning: "hash", InitialRanges: 4, Replicas: 3}).Encode()))
	f.Add([]byte(`{"partitioning":"range"}`))
	f.Add([]byte(`{"partitioning":"range","consistency":"","replicas":3,"initial_ranges":0,"max_bytes":0,"max_writes_per_sec":0,"learners":1,"history_versions":5,"history_retention_ms":60000}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := ParseTableSettings(in)
		if err != nil {
			return
		}
		again, err := ParseTableSettings(s.Encode())
		if err != nil || !reflect.DeepEqual(again, s) {
			t.Fatalf("settings %+v do not survive a round trip: %+v %v", s, again, err)
		}
	})
}
