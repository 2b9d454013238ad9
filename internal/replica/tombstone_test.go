// Goal: a replica of a range this node held before keeps its
// predecessor's promises to raft (Raft IDs are node IDs): it votes in no
// term the predecessor may have voted in, and for no candidate whose log
// is less up-to-date than the predecessor's (RELIABILITY.md bug #17).
// Method: a replica with a log and a vote, destroyed; a new replica of the
// same range (as reconcile creates it from a stale catalog); vote requests
// stepped by hand and the votes read from Ready.
package replica

import (
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/raftlog"
	"github.com/cairn-db/cairn/internal/storage"
)

func TestTombstoneKeepsVotesAndLogPosition(t *testing.T) {
	db, err := storage.Open(t.TempDir(), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const id = keys.RangeID(7)
	desc := &cairnpb.RangeDescriptor{Id: uint64(id), TableId: 1, Replicas: []uint64{1, 2, 3}}
	commit := func(f func(b *pebble.Batch) error) {
		t.Helper()
		b := db.NewBatch()
		defer b.Close()
		if err := f(b); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	// The first replica: a log up to index 12 in term 8, having voted in
	// term 9.
	commit(func(b *pebble.Batch) error { return WriteInitial(b, desc) })
	commit(func(b *pebble.Batch) error {
		l, err := raftlog.Load(db, id, raftpb.ConfState{Voters: desc.Replicas}, nil)
		if err != nil {
			return err
		}
		var ents []raftpb.Entry
		for i := InitialIndex + 1; i <= 12; i++ {
			ents = append(ents, raftpb.Entry{Index: i, Term: 8, Type: raftpb.EntryNormal})
		}
		if err := l.Append(b, ents); err != nil {
			return err
		}
		return l.SetHardState(b, raftpb.HardState{Term: 9, Vote: 2, Commit: 11})
	})
	// Destroyed (moved away), twice: the tombstone keeps the maximum.
	for range 2 {
		commit(func(b *pebble.Batch) error { return DestroyData(db, b, &cairnpb.RangeState{Desc: desc}) })
	}
	// A new, empty replica of the range on this node.
	commit(func(b *pebble.Batch) error { return WriteUninitialized(b, desc) })
	r, err := Open(db, id, testOptions(), func(keys.RangeID) {})
	if err != nil {
		t.Fatal(err)
	}
	if term, _, _ := r.Status(); term != 9 {
		t.Fatalf("new replica starts at term %d, want the predecessor's 9", term)
	}
	votes := func(m raftpb.Message) (granted, answered bool) {
		t.Helper()
		if err := r.Step(m); err != nil {
			t.Fatal(err)
		}
		if !r.rn.HasReady() {
			return false, false
		}
		rd := r.rn.Ready()
		for _, out := range rd.Messages {
			if out.Type == raftpb.MsgVoteResp && out.To == m.From {
				granted, answered = !out.Reject, true
			}
		}
		r.rn.Advance(rd)
		return granted, answered
	}
	vote := func(from, term, logTerm, index uint64) raftpb.Message {
		return raftpb.Message{Type: raftpb.MsgVote, From: from, To: 1, Term: term, LogTerm: logTerm, Index: index}
	}
	// Term 9: the predecessor voted in it; no second vote.
	if granted, _ := votes(vote(3, 9, 8, 12)); granted {
		t.Fatal("voted again in term 9")
	}
	// Term 10, a candidate behind the predecessor's log (it may have
	// acknowledged entries 11-12 a quorum counted): no vote at all.
	if granted, answered := votes(vote(3, 10, 8, 11)); granted || answered {
		t.Fatalf("candidate at (8, 11) behind the predecessor's (8, 12): granted %v, answered %v", granted, answered)
	}
	// Term 10, a candidate as up-to-date as the predecessor: the vote.
	if granted, _ := votes(vote(2, 10, 8, 12)); !granted {
		t.Fatal("no vote for a candidate as up-to-date as the predecessor")
	}
}
