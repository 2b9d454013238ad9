package router

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/keys"
	"github.com/cairn-db/cairn/internal/replica"
)

// Load-based splitting (docs/design/splits.md): a range whose leader
// serves more than SplitQPS requests a second for loadSustain passes of
// the splitter in a row splits at the median of the keys its requests
// named, and the new right half's leadership goes to another voter, so
// the two halves' load lands on two nodes. Only the requests this node
// serves count: writes (all through the leader) and the reads served
// here; reads served by followers are theirs.

const (
	// loadSamples keys are kept per range (a reservoir sample of the
	// window's requests); one request in loadSampleEvery is offered.
	loadSamples     = 64
	loadSampleEvery = 4
	// loadSustain is how many splitter passes (seconds) in a row a range
	// must be over the threshold before it splits.
	loadSustain = 5
)

// rangeLoad counts one range's requests on this node and samples their
// keys.
type rangeLoad struct {
	n atomic.Uint64

	mu      sync.Mutex
	samples [][]byte
	offered uint64 // keys offered to the reservoir since the last reset
	rng     uint64 // xorshift state for the reservoir

	// Splitter-owned.
	lastN  uint64
	lastAt time.Time
	hot    int
}

// noteLoad counts a request for key (as the range stores it: hash tables'
// keys are hashed) served by this node's replica r.
func (rt *Router) noteLoad(r *replica.Replica, key []byte) {
	if rt.opts.SplitQPS <= 0 {
		return
	}
	v, ok := rt.load.Load(r.ID)
	if !ok {
		v, _ = rt.load.LoadOrStore(r.ID, &rangeLoad{rng: uint64(r.ID)*0x9e3779b97f4a7c15 | 1})
	}
	l := v.(*rangeLoad)
	if l.n.Add(1)%loadSampleEvery == 0 {
		l.offer(key)
	}
}

// offer puts key into the reservoir sample.
func (l *rangeLoad) offer(key []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.offered++
	if len(l.samples) < loadSamples {
		l.samples = append(l.samples, bytes.Clone(key))
		return
	}
	// Reservoir sampling: the offered-th key replaces a random slot with
	// probability loadSamples/offered.
	l.rng ^= l.rng << 13
	l.rng ^= l.rng >> 7
	l.rng ^= l.rng << 17
	if i := l.rng % l.offered; i < loadSamples {
		l.samples[i] = bytes.Clone(key)
	}
}

func (l *rangeLoad) reset() {
	l.mu.Lock()
	l.samples, l.offered = l.samples[:0], 0
	l.mu.Unlock()
	l.hot = 0
}

// splitKey returns the median sampled key strictly inside d (not its
// start), or nil: no samples, or all of them on the range's first key
// (one hot key cannot be split).
func (l *rangeLoad) splitKey(d *cairnpb.RangeDescriptor) []byte {
	l.mu.Lock()
	ks := slices.Clone(l.samples)
	l.mu.Unlock()
	ks = slices.DeleteFunc(ks, func(k []byte) bool {
		return bytes.Compare(k, d.Start) <= 0 || (len(d.End) > 0 && bytes.Compare(k, d.End) >= 0)
	})
	if len(ks) == 0 {
		return nil
	}
	slices.SortFunc(ks, bytes.Compare)
	return ks[len(ks)/2]
}

// maybeSplitByLoad is the splitter's load check of a range this node
// leads (once per pass).
func (rt *Router) maybeSplitByLoad(ctx context.Context, r *replica.Replica, now time.Time) {
	qps := rt.opts.SplitQPS
	v, ok := rt.load.Load(r.ID)
	if qps <= 0 || !ok {
		return
	}
	l := v.(*rangeLoad)
	n := l.n.Load()
	elapsed := now.Sub(l.lastAt).Seconds()
	first := l.lastAt.IsZero()
	rate := float64(n-l.lastN) / elapsed
	l.lastN, l.lastAt = n, now
	if first || elapsed <= 0 {
		return
	}
	if rate < float64(qps) {
		if l.hot > 0 {
			l.reset()
		}
		return
	}
	if l.hot++; l.hot < loadSustain {
		return
	}
	d := r.Desc()
	t := rt.store.TableByID(d.TableId)
	key := l.splitKey(d)
	l.reset()
	if t == nil || key == nil {
		return
	}
	cctx, cancel := rt.withTimeout(ctx)
	defer cancel()
	resp, err := rt.localSplit(cctx, r, t, key)
	if err != nil {
		rt.logf("splitter: load split failed", "range", d.Id, "err", err)
		return
	}
	right := resp.GetSplitRange().GetRight()
	rt.logf("splitter: split a hot range", "range", d.Id, "qps", int(rate), "right", right.GetId())
	rt.spreadLeader(cctx, keys.RangeID(right.GetId()), r)
}

// spreadLeader hands the leadership of a range just split off left (both
// led here) to another voter that left reports caught up, so that the
// two halves of a hot range are served by two nodes.
func (rt *Router) spreadLeader(ctx context.Context, id keys.RangeID, left *replica.Replica) {
	self := rt.store.NodeID()
	var to uint64
	for _, v := range left.CaughtUp() {
		if v != self && slices.Contains(left.Desc().Replicas, v) {
			to = v
			break
		}
	}
	if to == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if r := rt.store.Replica(id); r != nil && r.IsLeader() {
			if err := r.TransferLeader(to); err != nil {
				rt.logf("splitter: leader transfer of a hot range's half failed", "range", uint64(id), "to", to, "err", err)
			}
			return
		} else if r != nil && r.Leader() != 0 {
			return // another node leads it already
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// forgetLoad drops the counters of ranges no longer here.
func (rt *Router) forgetLoad() {
	rt.load.Range(func(k, _ any) bool {
		if rt.store.Replica(k.(keys.RangeID)) == nil {
			rt.load.Delete(k)
		}
		return true
	})
}
