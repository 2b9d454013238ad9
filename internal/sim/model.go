package sim

import (
	"fmt"
	"os"
	"time"

	"github.com/anishathalye/porcupine"
)

// regState is the model of one key: a versioned register.
//
// Versions are part of the model: every write's version is larger than
// every version the key had before (a range's versions strictly increase
// in apply order), a get returns the version of the value it returns, and
// a delete returns the version it deleted. A write with an unknown outcome
// leaves a value whose version is unknown (Ver == 0) but above Floor.
type regState struct {
	Present bool
	Value   string
	Ver     uint64 // version of Value; 0: unknown
	Floor   uint64 // every version the key had so far is <= Floor
}

// condition is whether a conditional write's condition holds in a state.
type condition int

const (
	holds condition = iota
	fails
	maybe // depends on a version the model does not know
)

func (st regState) check(in input) condition {
	switch {
	case in.CondAbsent:
		if st.Present {
			return fails
		}
		return holds
	case in.CondVer != 0:
		if !st.Present {
			return fails
		}
		if st.Ver != 0 {
			if st.Ver == in.CondVer {
				return holds
			}
			return fails
		}
		if in.CondVer <= st.Floor {
			return fails // the unknown version is above Floor
		}
		return maybe
	}
	return holds
}

// verMatches reports whether v can be the version of the current value.
func (st regState) verMatches(v uint64) bool {
	if st.Ver != 0 {
		return st.Ver == v
	}
	return v > st.Floor
}

func (st regState) floor() uint64 { return max(st.Floor, st.Ver) }

// step returns every state the register can be in after in returned out.
func step(st regState, in input, out output) []any {
	one := func(s regState) []any { return []any{s} }
	switch in.Kind {
	case opGet:
		if out.Out == outNotFound {
			if st.Present {
				return nil
			}
			return one(st)
		}
		if out.Out != outOK || !st.Present || st.Value != out.Value || !st.verMatches(out.Version) {
			return nil
		}
		st.Ver, st.Floor = out.Version, max(st.Floor, out.Version)
		return one(st)
	case opPut:
		c := st.check(in)
		switch out.Out {
		case outUnknown:
			applied := regState{Present: true, Value: in.Value, Floor: st.floor()}
			switch c {
			case holds:
				return one(applied)
			case fails:
				return one(st)
			}
			return []any{st, applied}
		case outCondFailed:
			if c == holds {
				return nil
			}
			return one(st)
		case outOK:
			if c == fails || out.Version <= st.floor() {
				return nil
			}
			return one(regState{Present: true, Value: in.Value, Ver: out.Version, Floor: out.Version})
		}
		return nil
	case opDel:
		deleted := regState{Floor: st.floor()}
		c := st.check(in)
		switch out.Out {
		case outUnknown:
			if !st.Present || c == fails {
				return one(st)
			}
			if c == holds {
				return one(deleted)
			}
			return []any{st, deleted}
		case outNotFound:
			if st.Present {
				return nil
			}
			return one(st)
		case outCondFailed:
			if !st.Present || c == holds {
				return nil
			}
			return one(st)
		case outOK:
			if !st.Present || c == fails || !st.verMatches(out.Version) ||
				(in.CondVer != 0 && out.Version != in.CondVer) {
				return nil
			}
			deleted.Floor = max(deleted.Floor, out.Version)
			return one(deleted)
		}
	}
	return nil
}

func (in input) String() string {
	cond := ""
	switch {
	case in.CondAbsent:
		cond = " if absent"
	case in.CondVer != 0:
		cond = fmt.Sprintf(" if v%d", in.CondVer)
	}
	switch in.Kind {
	case opGet:
		return fmt.Sprintf("get(%s)", in.Key)
	case opPut:
		return fmt.Sprintf("put(%s, %s%s)", in.Key, in.Value, cond)
	}
	return fmt.Sprintf("del(%s%s)", in.Key, cond)
}

func (out output) String() string {
	switch out.Out {
	case outNotFound:
		return "not found"
	case outCondFailed:
		return "condition failed"
	case outUnknown:
		return "unknown"
	}
	if out.Value != "" {
		return fmt.Sprintf("%s@%d", out.Value, out.Version)
	}
	return fmt.Sprintf("@%d", out.Version)
}

// registerModel is the porcupine model of the store, partitioned by key.
func registerModel() porcupine.Model {
	nm := porcupine.NondeterministicModel{
		Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
			byKey := map[string]int{}
			var out [][]porcupine.Operation
			for _, o := range history {
				k := o.Input.(input).Key
				i, ok := byKey[k]
				if !ok {
					i = len(out)
					byKey[k] = i
					out = append(out, nil)
				}
				out[i] = append(out[i], o)
			}
			return out
		},
		Init: func() []any { return []any{regState{}} },
		Step: func(st, in, out any) []any {
			return step(st.(regState), in.(input), out.(output))
		},
		DescribeOperation: func(in, out any) string {
			return fmt.Sprintf("%v -> %v", in, out)
		},
		DescribeState: func(st any) string {
			s := st.(regState)
			if !s.Present {
				return fmt.Sprintf("absent (floor %d)", s.Floor)
			}
			if s.Ver == 0 {
				return fmt.Sprintf("%s@? (> %d)", s.Value, s.Floor)
			}
			return fmt.Sprintf("%s@%d", s.Value, s.Ver)
		},
	}
	return nm.ToModel()
}

// checkLinearizable runs porcupine over the history; on a violation it
// writes the HTML visualization to a temp file.
func checkLinearizable(s *Sim, history []*op) {
	var ops []porcupine.Operation
	end := s.cl.clock + 1
	for _, o := range history {
		ret := o.ret
		if o.out.Out == outUnknown {
			ret = end // may take effect at any time after its call
		}
		ops = append(ops, porcupine.Operation{ClientId: o.client, Input: o.in, Call: o.call, Output: o.out, Return: ret})
	}
	model := registerModel()
	res, info := porcupine.CheckOperationsVerbose(model, ops, 60*time.Second)
	s.res.Linearizable = string(res)
	switch res {
	case porcupine.Ok:
		return
	case porcupine.Unknown:
		s.logf("porcupine timed out; history not checked")
		return
	}
	f, err := os.CreateTemp("", fmt.Sprintf("cairn-sim-seed-%d-*.html", s.cfg.Seed))
	if err == nil {
		if err = porcupine.Visualize(model, info, f); err == nil {
			s.res.VisualizationPath = f.Name()
		}
		f.Close()
	}
	s.fail("history is not linearizable (porcupine: %s; visualization: %s)", res, s.res.VisualizationPath)
}
