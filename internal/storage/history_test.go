package storage

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func TestChangeRoundTrip(t *testing.T) {
	for _, c := range []Change{
		{Kind: ChangePut, Seq: 9, Prev: 7, PrevSeq: 7, ExpireAt: 1_700_000_000_000, Value: []byte("v")},
		{Kind: ChangePut, Seq: 9, Prev: 7, PrevSeq: 7, Floor: 3, Value: []byte("v")},
		{Kind: ChangeDelete, Seq: 10, Prev: 9, PrevSeq: 9, Floor: 9, Value: []byte{}},
		{Kind: ChangeExpire, Seq: 11, Value: []byte{}},
	} {
		got, err := DecodeChange(EncodeChange(c))
		if err != nil || !reflect.DeepEqual(got, c) {
			t.Errorf("round trip of %+v: %+v, %v", c, got, err)
		}
	}
	// The stored form without a floor is the one written before floors
	// existed: old history entries still decode, with Floor 0.
	old := EncodeChange(Change{Kind: ChangePut, Seq: 5, Prev: 4, PrevSeq: 4, Value: []byte("x")})
	if len(old) != changeHeader+1 || old[0] != byte(ChangePut) {
		t.Fatalf("a change without a floor is stored as %x", old)
	}
}

func TestDecodeChangeCorrupt(t *testing.T) {
	good := EncodeChange(Change{Kind: ChangePut, Seq: 1, Floor: 1})
	for _, b := range [][]byte{
		nil,
		good[:changeHeader-1],
		append([]byte{0}, good[1:]...), // kind 0
		append([]byte{4}, good[1:]...), // kind 4
		append([]byte{hasFloor | 4}, good[1:]...),         // kind 4 with a floor
		good[:changeHeader+7],                             // floor cut short
		append([]byte{hasFloor | 1}, make([]byte, 40)...), // floor 0 flagged
		EncodeChange(Change{Kind: ChangeDelete, Seq: 1, Value: []byte("v")}),
		EncodeChange(Change{Kind: ChangeExpire, Seq: 1, ExpireAt: 5}),
	} {
		if _, err := DecodeChange(b); !errors.Is(err, ErrCorruptValue) {
			t.Errorf("DecodeChange(%x): err = %v, want ErrCorruptValue", b, err)
		}
	}
}

func FuzzDecodeChange(f *testing.F) {
	f.Add([]byte{})
	f.Add(EncodeChange(Change{Kind: ChangePut, Seq: 3, Prev: 2, PrevSeq: 2, Value: []byte("v")}))
	f.Add(EncodeChange(Change{Kind: ChangePut, Seq: 3, Floor: 1, ExpireAt: 9, Value: []byte("v")}))
	f.Add(EncodeChange(Change{Kind: ChangeDelete, Seq: 4, Floor: 4}))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeChange(b)
		if err != nil {
			return
		}
		if got := EncodeChange(c); !bytes.Equal(got, b) {
			t.Fatalf("EncodeChange(DecodeChange(%x)) = %x", b, got)
		}
	})
}
