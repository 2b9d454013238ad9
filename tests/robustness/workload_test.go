package robustness

import (
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"time"
)

// workload is the clients of one run: goroutines that send puts with
// unique values, conditional puts by version, deletes, gets and list scans
// through random nodes until stopped.
type workload struct {
	c       *Cluster
	kc      *kvClient
	keys    []string
	prefix  string
	clients int
	// sdkEvery: every sdkEvery-th client uses the Go SDK (0: none).
	sdkEvery int
	seed     uint64

	clientGroup
}

func workloadKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%02d", i)
	}
	return keys
}

func (w *workload) start() {
	for i := range w.clients {
		w.spawn(func() { w.client(i) })
	}
}

// pickNode returns a random node, avoiding for a while nodes that failed
// this client (as a client library would), unless all did. Now and then
// it tries any node: clients do not know which nodes are down or frozen.
func (w *workload) pickNode(rng *rand.Rand, avoid map[*Node]time.Time) *Node {
	if rng.IntN(20) == 0 {
		return w.c.Nodes[rng.IntN(len(w.c.Nodes))]
	}
	now := time.Now()
	var ok []*Node
	for _, n := range w.c.Nodes {
		if now.After(avoid[n]) {
			ok = append(ok, n)
		}
	}
	if len(ok) == 0 {
		ok = w.c.Nodes
	}
	return ok[rng.IntN(len(ok))]
}

// kvAPI is one way to send the workload's operations: HTTP to one node,
// or the Go SDK over gRPC to all of them.
type kvAPI interface {
	Put(o *Op) *Op
	Delete(o *Op) *Op
	Get(o *Op) *Op
	List(o *Op) *Op
}

// httpAt sends through the HTTP API of one node.
type httpAt struct {
	kc *kvClient
	n  *Node
}

func (h httpAt) Put(o *Op) *Op    { return h.kc.Put(h.n, o) }
func (h httpAt) Delete(o *Op) *Op { return h.kc.Delete(h.n, o) }
func (h httpAt) Get(o *Op) *Op    { return h.kc.Get(h.n, o) }
func (h httpAt) List(o *Op) *Op   { return h.kc.List(h.n, o) }

func (w *workload) client(id int) {
	rng := rand.New(rand.NewPCG(w.seed, uint64(id)+1))
	// Every sdkEvery-th client goes through the Go SDK.
	var sdk *sdkClient
	if w.sdkEvery > 0 && id%w.sdkEvery == w.sdkEvery-1 {
		var err error
		if sdk, err = newSDKClient(w.kc.h, w.c, w.kc.table, rng); err != nil {
			w.c.t.Errorf("client %d: SDK: %v", id, err)
			return
		}
		defer sdk.close()
	}
	known := map[string]uint64{} // the last version of each key this client saw
	seq := 0
	value := func() string {
		seq++
		return fmt.Sprintf("c%d-%d", id, seq)
	}
	avoid := map[*Node]time.Time{}
	for !w.stopped() {
		var api kvAPI = sdk
		var n *Node
		if sdk == nil {
			n = w.pickNode(rng, avoid)
			api = httpAt{w.kc, n}
		}
		key := w.keys[rng.IntN(len(w.keys))]
		learn := func(o *Op) {
			if o.Outcome == outUnknown || o.Outcome == outFailed {
				if n != nil {
					avoid[n] = time.Now().Add(time.Second + time.Duration(rng.Int64N(int64(time.Second))))
				}
				if o.Outcome == outFailed && o.Status == 0 {
					time.Sleep(10 * time.Millisecond) // refused: the node is down
				}
			}
			if o.Outcome == outOK && o.Version != 0 && o.Kind != "delete" {
				known[o.Key] = o.Version
			}
			if (o.Kind == "delete" && o.Outcome == outOK) || o.Outcome == outNotFound {
				delete(known, o.Key)
			}
		}
		switch p := rng.IntN(100); {
		case p < 30:
			learn(api.Put(&Op{Client: id, Key: key, Value: value()}))
		case p < 42:
			o := &Op{Client: id, Key: key, Value: value()}
			if v, ok := known[key]; ok {
				o.IfMatch = v
			} else {
				o.IfNoneMatch = true
			}
			learn(api.Put(o))
		case p < 46:
			learn(api.Put(&Op{Client: id, Key: key, Value: value(), IfNoneMatch: true}))
		case p < 54:
			o := &Op{Client: id, Key: key}
			if v, ok := known[key]; ok && rng.IntN(2) == 0 {
				o.IfMatch = v
			}
			learn(api.Delete(o))
		case p < 92:
			learn(api.Get(&Op{Client: id, Key: key}))
		default:
			// A scan of a few pages.
			after, limit := "", 2+rng.IntN(6)
			for page := 0; page < 3 && !w.stopped(); page++ {
				o := api.List(&Op{Client: id, Prefix: w.prefix, After: after, Limit: limit})
				learn(o)
				if o.Outcome != outOK || !o.More {
					break
				}
				for _, it := range o.Items {
					known[it.Key] = it.Version
				}
				after = o.Items[len(o.Items)-1].Key
			}
		}
	}
}

// stalePlant is a planted bug in the harness's own client, to prove the
// checkers catch what they are for: with CAIRN_ROBUST_PLANT=stale-read,
// some GETs are answered with an earlier reply to the same key instead of
// asking the cluster, as a follower serving reads from its stale state
// would. The forged operation is recorded like any other.
type stalePlant struct {
	mu   sync.Mutex
	rng  *rand.Rand
	past map[string][]*Op // key -> earlier replies (ok or not found)
}

func plantFromEnv(seed uint64) *stalePlant {
	switch v := os.Getenv("CAIRN_ROBUST_PLANT"); v {
	case "":
		return nil
	case "stale-read":
		return newStalePlant(seed)
	default:
		panic(fmt.Sprintf("CAIRN_ROBUST_PLANT=%q: the only planted bug is stale-read", v))
	}
}

func newStalePlant(seed uint64) *stalePlant {
	return &stalePlant{rng: rand.New(rand.NewPCG(seed, 0x57a1e)), past: map[string][]*Op{}}
}

// staleAge is how old a remembered reply must be to be served.
const staleAge = 300 * time.Millisecond

func (p *stalePlant) forge(h *History, n *Node, o *Op) *Op {
	if o.Final {
		return nil // the final check reads the real state
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.rng.IntN(5) != 0 {
		return nil
	}
	now := h.now()
	for _, old := range p.past[o.Key] {
		if now-old.Return < int64(staleAge) {
			break
		}
		f := *old
		f.Client, f.Node, f.Planted = o.Client, n.Name, true
		f.Call, f.Return = now, now+int64(time.Millisecond)
		time.Sleep(time.Millisecond)
		return &f
	}
	return nil
}

func (p *stalePlant) remember(o *Op) {
	if o.Outcome != outOK && o.Outcome != outNotFound {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	past := append(p.past[o.Key], o)
	if len(past) > 64 {
		past = past[len(past)-64:]
	}
	p.past[o.Key] = past
}

// clientGroup is a set of client goroutines (the workload's, the bank's,
// the readers') that run until halted: spawn starts one, stopped is what
// each polls, halt stops them all and waits (once; later calls return).
type clientGroup struct {
	init sync.Once
	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

func (g *clientGroup) stopCh() chan struct{} {
	g.init.Do(func() { g.stop = make(chan struct{}) })
	return g.stop
}

func (g *clientGroup) spawn(f func()) {
	g.stopCh()
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		f()
	}()
}

func (g *clientGroup) stopped() bool {
	select {
	case <-g.stopCh():
		return true
	default:
		return false
	}
}

func (g *clientGroup) halt() {
	g.once.Do(func() {
		close(g.stopCh())
		g.wg.Wait()
	})
}
