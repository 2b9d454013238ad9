package sim

import (
	"math/rand/v2"
	"slices"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/replica"
)

// Moves: the simulation moves replicas under the same faults, with the
// steps the coordinator uses (internal/coord, replica/membership.go),
// from its one goroutine: a voter of a data range (never its leader) is
// removed; the repair half then adds it back as a learner and promotes it
// once the leader reports it caught up. Each step is a Raft configuration
// change of the range that applies only at the conf version it was planned
// against, and the new descriptor is recorded in the catalog (the meta
// updater repairs a lost record). A removed replica destroys itself when
// it applies its own removal, or when its catalog shows it moved away; one
// cut off in between lingers until then, which the checkers must survive.
//
// The repair runs always, also while the cluster settles, so every range
// ends with every node as a voter, as the final checks (every node reads
// every key) expect; removals stop while settling. One step is in flight
// at a time.
type mover struct {
	rng *rand.Rand
	// every is the mean number of steps between removals (0: no moves in
	// this seed).
	every    int64
	rangeID  keys.RangeID
	ch       <-chan replica.Result
	deadline int64
	moves    int // applied steps (for the result)
}

func newMover(seed uint64) *mover {
	m := &mover{rng: rand.New(rand.NewChaCha8(seedBytes(seed, 6)))}
	m.every = []int64{0, 0, 300, 900}[m.rng.IntN(4)]
	return m
}

// moveStep runs one step of the mover.
func (s *Sim) moveStep() {
	m := s.move
	if m.every == 0 {
		return
	}
	if m.ch != nil {
		select {
		case res := <-m.ch:
			m.ch = nil
			if res.Err != nil {
				s.ev("move-refused", uint64(m.rangeID))
				break
			}
			if res.Desc == nil {
				break
			}
			m.moves++
			s.ev("move-applied", uint64(m.rangeID), res.Desc.ConfVersion)
			if meta := s.metaLeader(); meta != nil {
				_, err := meta.ProposeAsync(&cairnpb.Command{Op: &cairnpb.Command_UpdateRanges{UpdateRanges: &cairnpb.UpdateRanges{
					TableId: res.Desc.TableId, Descs: []*cairnpb.RangeDescriptor{res.Desc},
				}}})
				s.ev("move-record", uint64(m.rangeID), boolInt(err == nil))
			}
		default:
			if s.now > m.deadline {
				m.ch = nil
				s.ev("move-abandon", uint64(m.rangeID))
			}
			return
		}
		return
	}
	leaders := s.dataLeaders()
	// Repair: a range without every node as a voter gets the missing one
	// back, as a learner first.
	for _, r := range leaders {
		d := r.Desc()
		for _, n := range s.nodes {
			switch {
			case slices.Contains(d.Replicas, n.id):
			case slices.Contains(d.Learners, n.id):
				if slices.Contains(r.CaughtUp(), n.id) {
					s.moveBegin(r, replica.OpPromote, n.id)
					return
				}
			default:
				// As the coordinator: a node that left the range rejoins
				// only after its old replica is gone (unfence) and in a
				// later term than the unfence (a leadership transfer).
				if !n.up {
					continue
				}
				if old := n.st.Replica(r.ID); old != nil && old.Initialized() {
					continue
				}
				term, _, _ := r.Status()
				if rr := removedOf(d, n.id); rr != nil {
					if rr.FenceTerm == 0 {
						s.moveUnfence(r, n.id)
						return
					}
					if term <= rr.FenceTerm {
						s.moveTransfer(r, d)
						return
					}
				}
				s.moveBegin(r, replica.OpAddLearner, n.id)
				return
			}
		}
	}
	if s.cl.stopIssuing || s.cl.calmFrom > 0 || len(leaders) == 0 || !every(m.rng, m.every) {
		return
	}
	r := leaders[m.rng.IntN(len(leaders))]
	d := r.Desc()
	var victims []uint64
	for _, v := range d.Replicas {
		if v != r.Leader() {
			victims = append(victims, v)
		}
	}
	if len(victims) == 0 || len(d.Learners) > 0 || len(d.Replicas) < len(s.nodes) {
		return
	}
	s.moveBegin(r, replica.OpRemove, victims[m.rng.IntN(len(victims))])
}

func (s *Sim) moveBegin(r *replica.Replica, op string, node uint64) {
	m := s.move
	ch, err := r.ChangeReplicasAsync(op, node, r.Desc().ConfVersion)
	if err != nil {
		return
	}
	m.rangeID, m.ch, m.deadline = r.ID, ch, s.now+opTimeout
	s.ev("move-begin", uint64(r.ID), node, uint64(len(op)))
}

// movesSettled reports whether no step is in flight and every data range
// has every node as a voter (as its leader sees it).
func (s *Sim) movesSettled() bool {
	if s.move.every == 0 {
		return true
	}
	if s.move.ch != nil {
		return false
	}
	for _, r := range s.dataLeaders() {
		if d := r.Desc(); len(d.Replicas) != len(s.nodes) || len(d.Learners) > 0 {
			return false
		}
	}
	return true
}

func removedOf(d *cairnpb.RangeDescriptor, node uint64) *cairnpb.RemovedReplica {
	for _, rr := range d.Removed {
		if rr.Node == node {
			return rr
		}
	}
	return nil
}

// moveUnfence proposes the command that records node's old replica gone.
func (s *Sim) moveUnfence(r *replica.Replica, node uint64) {
	m := s.move
	ch, err := r.ProposeAsync(&cairnpb.Command{TableId: r.Desc().TableId, Op: &cairnpb.Command_Unfence{Unfence: &cairnpb.Unfence{Node: node}}})
	if err != nil {
		return
	}
	m.rangeID, m.ch, m.deadline = r.ID, ch, s.now+opTimeout
	s.ev("move-unfence", uint64(r.ID), node)
}

// moveTransfer hands r's leadership to another voter: a new term.
func (s *Sim) moveTransfer(r *replica.Replica, d *cairnpb.RangeDescriptor) {
	for _, v := range d.Replicas {
		if v != r.Leader() {
			if r.TransferLeader(v) == nil {
				s.ev("move-transfer", uint64(r.ID), v)
			}
			return
		}
	}
}
