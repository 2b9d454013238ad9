package sim

import "math/rand/v2"

// Leadership transfers: in a real cluster the coordinator's balancer moves
// leaders all the time, and a transfer is the one election that voters
// grant despite the current leader's lease (MsgTimeoutNow). The mover
// transfers leaders only on its way to a replica change; this adds
// transfers of their own at a per-seed rate, under every fault, so that
// a lease that outlives its leader's handover shows as a stale read
// (RELIABILITY.md #25).

type transferrer struct {
	rng *rand.Rand
	// every is the mean number of steps between transfers (0: none).
	every     int64
	transfers int // transfers asked for (for the result)
}

func newTransferrer(seed uint64, noTransfers bool) *transferrer {
	t := &transferrer{rng: rand.New(rand.NewChaCha8(seedBytes(seed, 10)))}
	if !noTransfers {
		t.every = []int64{0, 100, 400}[t.rng.IntN(3)]
	}
	return t
}

// transferStep asks a random data range's leader to hand leadership to a
// random other voter. Not in runs without faults (the scenarios drive
// those by hand), nor while settling or in the calm phase, whose reads
// must find a leader at once.
func (s *Sim) transferStep() {
	t := s.xfer
	if s.prof.none || s.cl.stopIssuing || s.cl.calmFrom > 0 || !every(t.rng, t.every) {
		return
	}
	leaders := s.dataLeaders()
	if len(leaders) == 0 {
		return
	}
	r := leaders[t.rng.IntN(len(leaders))]
	var to []uint64
	for _, v := range r.Desc().Replicas {
		if v != r.Leader() {
			to = append(to, v)
		}
	}
	if len(to) == 0 {
		return
	}
	v := to[t.rng.IntN(len(to))]
	if r.TransferLeader(v) == nil {
		t.transfers++
		s.ev("transfer", uint64(r.ID), v)
	}
}
