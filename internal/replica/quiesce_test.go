// Goal: a replica left awake while its group sleeps never waits forever
// for a leader that quiesced (quiesce.go, invariant 4; RELIABILITY.md
// #20): after half an election timeout of silence it pokes its leader, or every
// voter when it knows no leader, and the poke wakes a quiesced leader.
// Method: three replicas driven by hand (handover_test.go's group); the
// leader's quiesce heartbeat to node 3 is dropped; ticks are counted.
package replica

import (
	"testing"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/cairn-db/cairn/internal/keys"
)

func TestSilentLeaderIsPoked(t *testing.T) {
	g := newGroupWith(t, func(o *Options) { o.Quiesce = true })
	g.electLeader(1, all)
	notTo3 := func(m raftpb.Message) bool { return m.To != 3 && m.From != 3 }
	// Idle ticks until the leader quiesces; node 3 misses it all.
	for i := 0; i < 5*g.r[1].opts.ElectionTicks && !g.r[1].Quiesced(); i++ {
		for _, id := range []uint64{1, 2} {
			g.r[id].Tick()
			g.inbox = append(g.inbox, g.r[id].TakeMessages()...)
		}
		g.deliver(notTo3)
	}
	if !g.r[1].Quiesced() || !g.r[2].Quiesced() || g.r[3].Quiesced() {
		t.Fatalf("quiesced: n1 %v n2 %v n3 %v, want n1 and n2 only", g.r[1].Quiesced(), g.r[2].Quiesced(), g.r[3].Quiesced())
	}
	pokes := func(id uint64) []uint64 {
		var to []uint64
		for _, m := range g.r[id].TakeMessages() {
			if m.Type == raftpb.MsgHeartbeatResp {
				to = append(to, m.To)
			}
		}
		return to
	}
	// Node 3 knows its leader: it pokes node 1 after half an election
	// timeout of silence (before its own election timer could fire), not
	// before.
	g.r[3].silentTicks = 0
	for i := 1; i < g.r[3].silentPokeTicks(); i++ {
		g.r[3].Tick()
		if to := pokes(3); len(to) > 0 {
			t.Fatalf("node 3 poked %v after %d silent ticks", to, i)
		}
	}
	g.r[3].Tick()
	to := pokes(3)
	if len(to) != 1 || to[0] != 1 {
		t.Fatalf("node 3 poked %v after half an election timeout, want [1]", to)
	}
	// The poke wakes the quiesced leader.
	if err := g.r[1].Step(raftpb.Message{Type: raftpb.MsgHeartbeatResp, From: 3, To: 1, Term: g.r[1].term.Load()}); err != nil {
		t.Fatal(err)
	}
	if g.r[1].Quiesced() {
		t.Fatal("the poke did not wake the leader")
	}
	// A replica that knows no leader (reopened) pokes every other voter.
	r3, err := Open(g.dbs[3], 2, g.r[3].opts, func(keys.RangeID) {})
	if err != nil {
		t.Fatal(err)
	}
	for range r3.silentPokeTicks() {
		r3.Tick()
	}
	var got []uint64
	for _, m := range r3.TakeMessages() {
		if m.Type == raftpb.MsgHeartbeatResp {
			got = append(got, m.To)
		}
	}
	if len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Fatalf("a leaderless replica poked %v, want [1 2]", got)
	}
}

// A quiesced follower that the store wakes because its leader's node went
// quiet pokes the leader at once: if it is alive after all, its heartbeat
// arrives before the follower's election timer fires (#23).
func TestWakeIfLeaderPokes(t *testing.T) {
	g := newGroupWith(t, func(o *Options) { o.Quiesce = true })
	g.electLeader(1, all)
	for i := 0; i < 5*g.r[1].opts.ElectionTicks && !g.r[2].Quiesced(); i++ {
		for id := range g.r {
			g.r[id].Tick()
			g.inbox = append(g.inbox, g.r[id].TakeMessages()...)
		}
		g.deliver(all)
	}
	if !g.r[2].Quiesced() {
		t.Fatal("node 2 never quiesced")
	}
	if g.r[2].WakeIfLeader(3) {
		t.Fatal("node 2 woke for a node that does not lead it")
	}
	if !g.r[2].WakeIfLeader(1) {
		t.Fatal("node 2 did not wake")
	}
	var to []uint64
	for _, m := range g.r[2].TakeMessages() {
		if m.Type == raftpb.MsgHeartbeatResp {
			to = append(to, m.To)
		}
	}
	if len(to) != 1 || to[0] != 1 {
		t.Fatalf("the woken follower poked %v, want [1]", to)
	}
}
