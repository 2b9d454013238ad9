package robustness

import (
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// checkTimeout bounds porcupine's search on one key. A key whose check
// times out is reported (Unknown), not counted as a violation.
const checkTimeout = 60 * time.Second

// Report is the verdict of the checkers on one history.
type Report struct {
	Ops, Acked, Unknown, Failed, Reads int
	Keys                               int
	Violations                         []string
	// Per key: porcupine's result, and for Illegal or Unknown keys the
	// information to draw it.
	Results   map[string]porcupine.CheckResult
	infos     map[string]porcupine.LinearizationInfo
	models    map[string]porcupine.Model
	CheckTime time.Duration
}

// OK reports a history without violations (a porcupine timeout is not
// a violation, but is logged).
func (r *Report) OK() bool { return len(r.Violations) == 0 }

func (r *Report) violate(format string, args ...any) {
	r.Violations = append(r.Violations, fmt.Sprintf(format, args...))
}

// Summary is one line for the run's log.
func (r *Report) Summary() string {
	illegal, unknown := 0, 0
	for _, res := range r.Results {
		switch res {
		case porcupine.Illegal:
			illegal++
		case porcupine.Unknown:
			unknown++
		}
	}
	verdict := "OK"
	if !r.OK() {
		verdict = fmt.Sprintf("%d VIOLATIONS", len(r.Violations))
	}
	return fmt.Sprintf("ops=%d acked=%d unknown=%d failed=%d reads=%d keys=%d linearizable=%d/%d (illegal %d, check timed out %d) check=%v: %s",
		r.Ops, r.Acked, r.Unknown, r.Failed, r.Reads, r.Keys, len(r.Results)-illegal-unknown, len(r.Results), illegal, unknown,
		r.CheckTime.Round(time.Millisecond), verdict)
}

// kvInput and kvOutput are one operation on one key, for porcupine.
type kvInput struct {
	Kind        string // put, delete, get
	Value       string
	IfMatch     uint64
	IfNoneMatch bool
}

type kvOutput struct {
	Outcome string // ok, not_found, condition_failed, unknown
	Value   string
	Version uint64
}

// regState is the state of one key: absent, or a value. MaxVer is the
// highest version written on the way (0: none known): a write's version
// must exceed every earlier one, also across deletes.
type regState struct {
	Exists bool
	Value  string
	MaxVer uint64
}

// keyOps is what the checkers derive from a history for one key.
type keyOps struct {
	key   string
	ops   []porcupine.Operation
	puts  map[string]*Op // value -> the put that wrote it (any outcome)
	reads []keyRead
}

// keyRead is one observation of one key: a GET, or a key of a list page
// (present or, inside the page's span, absent).
type keyRead struct {
	op      *Op
	found   bool
	value   string
	version uint64
}

// Check runs every checker over a history of operations on keys. Final
// reads (Op.Final) must come after everything else.
func Check(ops []*Op, keys []string) *Report {
	start := time.Now()
	r := &Report{Results: map[string]porcupine.CheckResult{}, infos: map[string]porcupine.LinearizationInfo{},
		models: map[string]porcupine.Model{}, Keys: len(keys)}
	keySet := map[string]bool{}
	for _, k := range keys {
		keySet[k] = true
	}
	var end int64
	for _, o := range ops {
		end = max(end, o.Return)
	}
	pending := end + 1 // "returned" after everything: an unknown outcome
	per := map[string]*keyOps{}
	get := func(k string) *keyOps {
		if per[k] == nil {
			per[k] = &keyOps{key: k, puts: map[string]*Op{}}
		}
		return per[k]
	}
	for _, k := range keys {
		get(k)
	}
	for _, o := range ops {
		if !o.Final {
			r.Ops++
			switch o.Outcome {
			case outUnknown:
				r.Unknown++
			case outFailed:
				r.Failed++
			default:
				r.Acked++
			}
		}
		if strings.HasPrefix(o.Err, "unexpected reply") {
			r.violate("unexpected reply (neither success, 404, 412, 503 nor 504): %s", o)
		}
		switch o.Kind {
		case "put":
			ko := get(o.Key)
			if prev, dup := ko.puts[o.Value]; dup {
				r.violate("harness bug: value %q written twice (%s and %s)", o.Value, prev, o)
			}
			ko.puts[o.Value] = o
		case "list":
			if o.Outcome != outOK {
				continue
			}
			last := ""
			if n := len(o.Items); n > 0 {
				last = o.Items[n-1].Key
			}
			items := map[string]ListItem{}
			for _, it := range o.Items {
				items[it.Key] = it
				if !keySet[it.Key] {
					r.violate("list returned key %q that no client wrote: %s", it.Key, o)
				}
			}
			for _, k := range keys {
				if !strings.HasPrefix(k, o.Prefix) || k <= o.After || (o.More && k > last) {
					continue // outside the span of this page
				}
				it, found := items[k]
				get(k).reads = append(get(k).reads, keyRead{op: o, found: found, value: it.Value, version: it.Version})
			}
		case "get":
			if o.Outcome == outOK || o.Outcome == outNotFound {
				get(o.Key).reads = append(get(o.Key).reads, keyRead{op: o, found: o.Outcome == outOK, value: o.Read, version: o.Version})
			}
		}
	}
	for _, o := range ops {
		if o.Kind == "get" || o.Kind == "list" {
			if o.Outcome == outOK || o.Outcome == outNotFound {
				r.Reads++
			}
		}
	}

	// Versions of values: from acknowledged writes and from reads. Values
	// are unique, so each value has one version and each version one
	// value; a read of a value no client wrote, or of a write the node
	// reported as not executed, is a violation by itself.
	valVer := map[string]map[string]uint64{}
	verVal := map[string]map[uint64]string{}
	for _, k := range keys {
		ko := per[k]
		vv, vw := map[string]uint64{}, map[uint64]string{}
		valVer[k], verVal[k] = vv, vw
		learn := func(value string, version uint64, by *Op) {
			if v, ok := vv[value]; ok && v != version {
				r.violate("key %q: value %q seen with versions %d and %d (%s)", k, value, v, version, by)
			} else {
				vv[value] = version
			}
			if w, ok := vw[version]; ok && w != value {
				r.violate("key %q: version %d seen with values %q and %q (%s)", k, version, w, value, by)
			} else {
				vw[version] = value
			}
		}
		for _, o := range ko.puts {
			if o.Outcome == outOK {
				learn(o.Value, o.Version, o)
			}
		}
		for _, rd := range ko.reads {
			if !rd.found {
				continue
			}
			p, ok := ko.puts[rd.value]
			switch {
			case !ok:
				r.violate("key %q: read value %q that no client wrote: %s", k, rd.value, rd.op)
			case p.Outcome == outFailed:
				r.violate("key %q: read value %q whose write was reported as not executed (%d %s %s): write %s; read %s",
					k, rd.value, p.Status, p.Code, p.Err, p, rd.op)
			case p.Outcome == outCondition:
				r.violate("key %q: read value %q whose write was refused (412): write %s; read %s", k, rd.value, p, rd.op)
			case rd.op.Return < p.Call:
				r.violate("key %q: read value %q before its write was sent: write %s; read %s", k, rd.value, p, rd.op)
			}
			learn(rd.value, rd.version, rd.op)
		}
	}

	// Versions never go backwards in real time: a read returns a version
	// at least that of every write acknowledged, and every read returned,
	// before it was sent.
	for _, k := range keys {
		checkMonotonic(r, per[k])
	}

	// No acknowledged write lost: the final state holds every acked
	// write, or a version above it, or the key is absent and a delete
	// (acked or unknown) may have come after the write.
	checkFinal(r, ops, keys, per)

	// Linearizability per key.
	type job struct {
		key   string
		ops   []porcupine.Operation
		model porcupine.Model
	}
	var jobs []job
	for _, k := range keys {
		ko := per[k]
		ko.ops = buildPorcupineOps(ops, ko, pending)
		nm := registerModel(k, valVer[k], verVal[k])
		jobs = append(jobs, job{k, ko.ops, nm.ToModel()})
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for _, j := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			res, info := porcupine.CheckOperationsVerbose(j.model, j.ops, checkTimeout)
			mu.Lock()
			defer mu.Unlock()
			r.Results[j.key] = res
			if res != porcupine.Ok {
				r.infos[j.key] = info
				r.models[j.key] = j.model
			}
		}()
	}
	wg.Wait()
	for _, k := range keys {
		if r.Results[k] == porcupine.Illegal {
			r.violate("key %q: history is not linearizable (%d operations; see its porcupine visualization)", k, len(per[k].ops))
		}
	}
	r.CheckTime = time.Since(start)
	return r
}

// buildPorcupineOps turns the operations on one key into porcupine's.
// Writes with an unknown outcome stay pending to the end; writes not
// executed (503, refused) and failed reads carry no information and are
// left out.
func buildPorcupineOps(ops []*Op, ko *keyOps, pending int64) []porcupine.Operation {
	// Rows of the visualization: the clients, then the final reads (one
	// row per node), then one row per client for its pending operations,
	// which last to the end and would hide the client's later ones.
	clients, finals := 0, 0
	for _, o := range ops {
		if o.Final {
			finals = max(finals, o.Client-finalClientBase+1)
		} else {
			clients = max(clients, o.Client+1)
		}
	}
	var out []porcupine.Operation
	add := func(o *Op, in kvInput, outp kvOutput) {
		ret, row := o.Return, o.Client
		switch {
		case o.Final:
			row = clients + o.Client - finalClientBase
		case outp.Outcome == outUnknown:
			ret, row = pending, clients+finals+o.Client
		}
		out = append(out, porcupine.Operation{ClientId: row, Input: in, Call: o.Call, Output: outp, Return: ret, Metadata: o.Seq})
	}
	for _, o := range ops {
		if o.Key != ko.key || (o.Kind != "put" && o.Kind != "delete") {
			continue
		}
		if o.Outcome == outFailed {
			continue
		}
		in := kvInput{Kind: o.Kind, Value: o.Value, IfMatch: o.IfMatch, IfNoneMatch: o.IfNoneMatch}
		add(o, in, kvOutput{Outcome: o.Outcome, Version: o.Version})
	}
	for _, rd := range ko.reads {
		outp := kvOutput{Outcome: outNotFound}
		if rd.found {
			outp = kvOutput{Outcome: outOK, Value: rd.value, Version: rd.version}
		}
		add(rd.op, kvInput{Kind: "get"}, outp)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Call < out[j].Call })
	return out
}

// registerModel is one key as a register with versions. valVer and
// verVal map the values seen (acked or read) to their versions and back.
// It is nondeterministic: a write with an unknown outcome may or may not
// have happened.
func registerModel(key string, valVer map[string]uint64, verVal map[uint64]string) porcupine.NondeterministicModel {
	// matches reports whether the current version of s is v: versions are
	// unique per key, so that is "s holds the value seen with version v".
	matches := func(s regState, v uint64) bool {
		if !s.Exists {
			return false
		}
		if w, ok := verVal[v]; ok {
			return s.Value == w
		}
		if sv, ok := valVer[s.Value]; ok {
			return sv == v
		}
		return false
	}
	put := func(s regState, value string) (regState, bool) {
		v, known := valVer[value]
		if known && v <= s.MaxVer {
			return s, false // versions must grow
		}
		return regState{Exists: true, Value: value, MaxVer: max(s.MaxVer, v)}, true
	}
	return porcupine.NondeterministicModel{
		Init: func() []interface{} { return []interface{}{regState{}} },
		Step: func(state, input, output interface{}) []interface{} {
			s, in, out := state.(regState), input.(kvInput), output.(kvOutput)
			switch in.Kind {
			case "get":
				if out.Outcome == outNotFound {
					if !s.Exists {
						return []interface{}{s}
					}
					return nil
				}
				if s.Exists && s.Value == out.Value {
					return []interface{}{s}
				}
				return nil
			case "put":
				cond := true
				switch {
				case in.IfNoneMatch:
					cond = !s.Exists
				case in.IfMatch != 0:
					cond = matches(s, in.IfMatch)
				}
				switch out.Outcome {
				case outOK:
					if !cond {
						return nil
					}
					if ns, ok := put(s, in.Value); ok {
						return []interface{}{ns}
					}
					return nil
				case outCondition:
					if cond {
						return nil
					}
					return []interface{}{s}
				default: // unknown
					res := []interface{}{s}
					if cond {
						if ns, ok := put(s, in.Value); ok {
							res = append(res, ns)
						}
					}
					return res
				}
			case "delete":
				cond := in.IfMatch == 0 || matches(s, in.IfMatch)
				deleted := regState{MaxVer: s.MaxVer}
				switch out.Outcome {
				case outOK:
					if !s.Exists || !cond {
						return nil
					}
					if v, ok := valVer[s.Value]; ok && v != out.Version {
						return nil // deleted another version than the current
					}
					return []interface{}{deleted}
				case outNotFound:
					if s.Exists {
						return nil
					}
					return []interface{}{s}
				case outCondition:
					if !s.Exists || cond {
						return nil
					}
					return []interface{}{s}
				default: // unknown
					res := []interface{}{s}
					if s.Exists && cond {
						res = append(res, deleted)
					}
					return res
				}
			}
			return nil
		},
		Equal: func(a, b interface{}) bool { return a.(regState) == b.(regState) },
		DescribeOperation: func(input, output interface{}) string {
			in, out := input.(kvInput), output.(kvOutput)
			cond := ""
			if in.IfMatch != 0 {
				cond = fmt.Sprintf(" if-match %d", in.IfMatch)
			}
			if in.IfNoneMatch {
				cond = " if-none-match"
			}
			switch in.Kind {
			case "get":
				if out.Outcome == outOK {
					return fmt.Sprintf("get(%s) -> %s@%d", key, out.Value, out.Version)
				}
				return fmt.Sprintf("get(%s) -> %s", key, out.Outcome)
			case "put":
				if out.Outcome == outOK {
					return fmt.Sprintf("put(%s, %s%s) -> @%d", key, in.Value, cond, out.Version)
				}
				return fmt.Sprintf("put(%s, %s%s) -> %s", key, in.Value, cond, out.Outcome)
			default:
				if out.Outcome == outOK {
					return fmt.Sprintf("delete(%s%s) -> deleted @%d", key, cond, out.Version)
				}
				return fmt.Sprintf("delete(%s%s) -> %s", key, cond, out.Outcome)
			}
		},
		DescribeState: func(state interface{}) string {
			s := state.(regState)
			if !s.Exists {
				return fmt.Sprintf("absent (max v%d)", s.MaxVer)
			}
			if v, ok := valVer[s.Value]; ok {
				return fmt.Sprintf("%s@%d", s.Value, v)
			}
			return s.Value + "@?"
		},
		DescribeOperationMetadata: func(info interface{}) string {
			if seq, ok := info.(int); ok {
				return fmt.Sprintf("op #%d of history.json", seq)
			}
			return ""
		},
	}
}

// checkMonotonic: per key, the version a read returns is at least the
// version of every acknowledged write and every read that returned before
// the read was sent.
func checkMonotonic(r *Report, ko *keyOps) {
	type obs struct {
		call, ret int64
		version   uint64
		op        *Op
		read      bool
	}
	var all []obs
	for _, o := range ko.puts {
		if o.Outcome == outOK {
			all = append(all, obs{o.Call, o.Return, o.Version, o, false})
		}
	}
	for _, rd := range ko.reads {
		if rd.found {
			all = append(all, obs{rd.op.Call, rd.op.Return, rd.version, rd.op, true})
		}
	}
	byRet := append([]obs(nil), all...)
	sort.Slice(byRet, func(i, j int) bool { return byRet[i].ret < byRet[j].ret })
	byCall := append([]obs(nil), all...)
	sort.Slice(byCall, func(i, j int) bool { return byCall[i].call < byCall[j].call })
	var best obs
	i, n := 0, 0
	for _, o := range byCall {
		for i < len(byRet) && byRet[i].ret < o.call {
			if byRet[i].version > best.version {
				best = byRet[i]
			}
			i++
		}
		if o.read && o.version < best.version {
			if n++; n <= 5 {
				r.violate("key %q: version went backwards in real time: read v%d, but v%d was seen before it was sent: read %s; earlier %s",
					ko.key, o.version, best.version, o.op, best.op)
			}
		}
	}
	if n > 5 {
		r.violate("key %q: ... and %d more reads that went backwards", ko.key, n-5)
	}
}

// checkFinal compares the final reads of every node with the
// acknowledged writes.
func checkFinal(r *Report, ops []*Op, keys []string, per map[string]*keyOps) {
	final := map[string]map[string]*Op{} // node -> key -> last final get
	var nodes []string
	for _, o := range ops {
		if !o.Final || o.Kind != "get" || (o.Outcome != outOK && o.Outcome != outNotFound) {
			continue
		}
		if final[o.Node] == nil {
			final[o.Node] = map[string]*Op{}
			nodes = append(nodes, o.Node)
		}
		final[o.Node][o.Key] = o
	}
	if len(nodes) == 0 {
		r.violate("no final reads: cannot check for lost writes")
		return
	}
	sort.Strings(nodes)
	ref := nodes[0]
	for _, k := range keys {
		f := final[ref][k]
		if f == nil {
			r.violate("key %q: no final read through %s", k, ref)
			continue
		}
		for _, n := range nodes[1:] {
			g := final[n][k]
			if g == nil {
				r.violate("key %q: no final read through %s", k, n)
				continue
			}
			if g.Outcome != f.Outcome || g.Read != f.Read || g.Version != f.Version {
				r.violate("key %q: nodes disagree at the end: %s vs %s", k, f, g)
			}
		}
		for _, o := range ops {
			if o.Key != k || o.Final || o.Outcome != outOK {
				continue
			}
			switch o.Kind {
			case "put":
				if f.Outcome == outOK {
					if f.Version < o.Version {
						r.violate("key %q: acknowledged write lost: %s; final %s", k, o, f)
					} else if f.Version == o.Version && f.Read != o.Value {
						r.violate("key %q: final version %d holds %q, but %q was acknowledged with it", k, f.Version, f.Read, o.Value)
					}
					continue
				}
				// Absent at the end: some delete must have come after.
				overwritten := false
				for _, d := range ops {
					if d.Key == k && d.Kind == "delete" && !d.Final && (d.Outcome == outOK || d.Outcome == outUnknown) &&
						(d.Outcome == outUnknown || d.Return > o.Call) {
						overwritten = true
						break
					}
				}
				if !overwritten {
					r.violate("key %q: acknowledged write lost: %s; the key is absent at the end and no delete came after it", k, o)
				}
			case "delete":
				if f.Outcome == outOK && f.Version <= o.Version {
					r.violate("key %q: acknowledged delete lost: %s; final %s", k, o, f)
				}
			}
		}
	}
}
