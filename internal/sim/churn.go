package sim

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/replica"
)

// Table churn: besides the checked workload on the default table, the
// simulation creates and drops extra tables through the meta range and
// writes into them, so that meta apply, replica creation and destruction,
// reconcile on restart and meta snapshots all run under faults. Their
// writes are not in the linearizability history; the per-step checks
// (leaders, applied entries, state hashes) cover every range, and the end
// checks compare catalogs, replica sets and leftover data.

var churnTables = []string{"t1", "t2"}

func (s *Sim) churn() {
	rng := s.rngC
	if s.cl.stopIssuing || !every(rng, s.prof.churnEvery) {
		return
	}
	up := s.upNodes()
	if len(up) == 0 {
		return
	}
	name := churnTables[rng.IntN(len(churnTables))]
	if x := rng.IntN(10); x < 5 {
		s.churnWrite(up[rng.IntN(len(up))], name)
		return
	} else if x < 8 {
		s.proposeMeta(&cairnpb.Command{Op: &cairnpb.Command_CreateTable{CreateTable: &cairnpb.CreateTable{Name: name, Partitioning: "range"}}})
	} else {
		s.proposeMeta(&cairnpb.Command{Op: &cairnpb.Command_DropTable{DropTable: &cairnpb.DropTable{Name: name}}})
	}
}

// proposeMeta proposes cmd on the meta range's leader, if a live node
// leads it, and forgets the outcome.
func (s *Sim) proposeMeta(cmd *cairnpb.Command) {
	for _, n := range s.upNodes() {
		if r := n.st.Replica(replica.MetaRangeID); r != nil && r.IsLeader() {
			cmd.Timestamp = uint64(n.clock.Now())
			_, err := r.ProposeAsync(cmd)
			_, create := cmd.Op.(*cairnpb.Command_CreateTable)
			s.ev("meta", n.id, boolInt(err == nil), boolInt(create))
			return
		}
	}
}

// churnWrite puts a key into table name through the leader that gw knows.
func (s *Sim) churnWrite(gw *node, name string) {
	t := gw.st.Table(name)
	if t == nil || len(t.Ranges) == 0 {
		return
	}
	id := keys.RangeID(t.Ranges[0].Id)
	r := gw.st.Replica(id)
	if r == nil {
		return
	}
	ln := s.nodeByID(r.Leader())
	if ln == nil || !ln.up {
		return
	}
	lr := ln.st.Replica(id)
	if lr == nil {
		return
	}
	key := fmt.Sprintf("c%d", s.rngC.IntN(8))
	cmd := &cairnpb.Command{TableId: t.Id, Timestamp: uint64(ln.clock.Now()),
		Op: &cairnpb.Command_Put{Put: &cairnpb.PutRequest{Table: name, Key: []byte(key), Value: []byte(fmt.Sprintf("s%d", s.now))}}}
	_, err := lr.ProposeAsync(cmd)
	s.ev("churn-put", ln.id, uint64(id), boolInt(err == nil))
}

func boolInt(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// catalogOf describes n's catalog: table name, ID and range IDs, sorted.
func catalogOf(n *node) string {
	ts := n.st.Tables()
	slices.SortFunc(ts, func(a, b *cairnpb.Table) int { return cmp.Compare(a.Name, b.Name) })
	var buf bytes.Buffer
	for _, t := range ts {
		fmt.Fprintf(&buf, "%s=%d", t.Name, t.Id)
		for _, d := range t.Ranges {
			fmt.Fprintf(&buf, ":r%d%v", d.Id, d.Replicas)
		}
		buf.WriteByte(' ')
	}
	return buf.String()
}

// checkCatalogs is an end check: every node has the same catalog, exactly
// the replicas it lists (plus meta), and no data or Raft state of a range
// or table that no longer exists.
func (c *checker) checkCatalogs(s *Sim) {
	want := catalogOf(s.nodes[0])
	for _, n := range s.nodes {
		if got := catalogOf(n); got != want {
			s.fail("catalogs differ at the end: %s has %q, %s has %q", s.nodes[0].name, want, n.name, got)
			return
		}
		ranges := map[uint64]bool{uint64(replica.MetaRangeID): true}
		tables := map[uint64]bool{uint64(keys.MetaTableID): true}
		for _, t := range n.st.Tables() {
			tables[t.Id] = true
			for _, d := range t.Ranges {
				if slices.Contains(d.Replicas, n.id) {
					ranges[d.Id] = true
				}
			}
		}
		var have []uint64
		for _, r := range n.st.Replicas() {
			have = append(have, uint64(r.ID))
			if !ranges[uint64(r.ID)] {
				s.fail("%s has a replica of range %d, which its catalog does not list", n.name, r.ID)
			}
		}
		if len(have) != len(ranges) {
			s.fail("%s has replicas %v, its catalog lists ranges %v", n.name, have, ranges)
		}
		it, err := n.db.NewIter(&pebble.IterOptions{})
		if err != nil {
			s.fail("%s: %v", n.name, err)
			return
		}
		for ok := it.First(); ok; ok = it.Next() {
			k := it.Key()
			if id, ok := keys.RangeStateID(k); ok && !ranges[uint64(id)] {
				s.fail("%s: state of range %d survives its removal", n.name, id)
			}
			if len(k) >= 9 && k[0] == 0x01 && !ranges[binary.BigEndian.Uint64(k[1:9])] {
				s.fail("%s: Raft key %x of a removed range", n.name, k)
				break
			}
			if tid, _, err := keys.DecodeDataKey(k); err == nil && !tables[uint64(tid)] {
				s.fail("%s: data key %x of dropped table %d survives", n.name, k, tid)
				break
			}
		}
		if err := it.Close(); err != nil {
			s.fail("%s: %v", n.name, err)
		}
	}
}
