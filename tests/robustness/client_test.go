package robustness

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cairn-db/cairn/internal/kv"
)

// clientTimeout bounds one request of the workload. It is longer than the
// nodes' request timeout, so a request a node gives up on ends in its
// 504, and shorter requests are unknown only when a node hangs (stopped)
// or dies under them.
const clientTimeout = serverTimeout + 2*time.Second

// Outcomes of an operation.
const (
	outOK        = "ok"               // 200
	outNotFound  = "not_found"        // 404 not_found
	outCondition = "condition_failed" // 412
	outFailed    = "failed"           // 503, connection refused: not executed
	outUnknown   = "unknown"          // 504, timeout, connection lost: maybe executed
)

// Op is one operation of the history, as a client saw it. Times are
// nanoseconds since the start of the run, on the monotonic clock.
type Op struct {
	Seq    int    `json:"seq"`
	Client int    `json:"client"`
	Node   string `json:"node"`
	Kind   string `json:"kind"` // put, get, delete, list
	Key    string `json:"key,omitempty"`
	// put
	Value string `json:"value,omitempty"`
	// put and delete conditions
	IfMatch     uint64 `json:"if_match,omitempty"`
	IfNoneMatch bool   `json:"if_none_match,omitempty"`
	// list: keys with Prefix after After (exclusive), at most Limit
	Prefix string `json:"prefix,omitempty"`
	After  string `json:"after,omitempty"`
	Limit  int    `json:"limit,omitempty"`

	Call   int64 `json:"call"`
	Return int64 `json:"return"`

	Outcome string `json:"outcome"`
	// put, delete: the version acknowledged; get: the version read
	Version uint64 `json:"version,omitempty"`
	// get: the value read (Outcome ok)
	Read string `json:"read,omitempty"`
	// list: the items of the page and whether a next page exists
	Items []ListItem `json:"items,omitempty"`
	More  bool       `json:"more,omitempty"`

	Status int    `json:"status,omitempty"`
	Code   string `json:"code,omitempty"`
	Err    string `json:"err,omitempty"`
	// Final marks the reads of the final check, after all faults healed.
	Final bool `json:"final,omitempty"`
	// Planted marks a reply the harness forged (CAIRN_ROBUST_PLANT).
	Planted bool `json:"planted,omitempty"`
}

// ListItem is one key of a list page.
type ListItem struct {
	Key     string `json:"key"`
	Value   string `json:"value"`
	Version uint64 `json:"version"`
}

func (o *Op) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "#%d c%d@%s %s", o.Seq, o.Client, o.Node, o.Kind)
	switch o.Kind {
	case "put":
		fmt.Fprintf(&b, " %s=%s", o.Key, o.Value)
	case "list":
		fmt.Fprintf(&b, " prefix=%q after=%q limit=%d", o.Prefix, o.After, o.Limit)
	default:
		fmt.Fprintf(&b, " %s", o.Key)
	}
	if o.IfMatch != 0 {
		fmt.Fprintf(&b, " if-match=%d", o.IfMatch)
	}
	if o.IfNoneMatch {
		b.WriteString(" if-none-match=*")
	}
	fmt.Fprintf(&b, " [%s..%s] -> %s", fmtNs(o.Call), fmtNs(o.Return), o.Outcome)
	if o.Version != 0 {
		fmt.Fprintf(&b, " v%d", o.Version)
	}
	if o.Kind == "get" && o.Outcome == outOK {
		fmt.Fprintf(&b, " %q", o.Read)
	}
	if o.Kind == "list" && o.Outcome == outOK {
		var its []string
		for _, it := range o.Items {
			its = append(its, fmt.Sprintf("%s=%s@%d", it.Key, it.Value, it.Version))
		}
		fmt.Fprintf(&b, " [%s] more=%v", strings.Join(its, " "), o.More)
	}
	if o.Status != 0 && o.Outcome != outOK {
		fmt.Fprintf(&b, " (%d %s)", o.Status, o.Code)
	}
	if o.Err != "" {
		fmt.Fprintf(&b, " (%s)", o.Err)
	}
	if o.Planted {
		b.WriteString(" PLANTED")
	}
	return b.String()
}

func fmtNs(ns int64) string {
	return fmt.Sprintf("%.3fs", float64(ns)/1e9)
}

// History is the operations of a run, appended as they return.
type History struct {
	start time.Time
	mu    sync.Mutex
	ops   []*Op
	seq   int
}

func newHistory(start time.Time) *History { return &History{start: start} }

func (h *History) now() int64 { return int64(time.Since(h.start)) }

func (h *History) add(o *Op) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seq++
	o.Seq = h.seq
	h.ops = append(h.ops, o)
}

// Ops returns a copy of the operations so far.
func (h *History) Ops() []*Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*Op(nil), h.ops...)
}

// kvClient sends the workload's requests. One per cluster; goroutines
// share it.
type kvClient struct {
	hc    *http.Client
	table string
	h     *History
	plant *stalePlant // nil unless CAIRN_ROBUST_PLANT=stale-read
}

func newKVClient(h *History, table string) *kvClient {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: time.Second}).DialContext,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
	}
	return &kvClient{h: h, table: table, hc: &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func (kc *kvClient) close() { kc.hc.CloseIdleConnections() }

type reply struct {
	status int
	header http.Header
	body   []byte
	err    error
}

func (kc *kvClient) do(n *Node, method, path string, body []byte, hdr map[string]string) reply {
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+n.Client+path, rd)
	if err != nil {
		return reply{err: err}
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := kc.hc.Do(req)
	if err != nil {
		return reply{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{err: fmt.Errorf("reading body after status %d: %w", resp.StatusCode, err)}
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

func errCode(body []byte) string {
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	return e.Error.Code
}

// classify sets o.Outcome (and Status, Code, Err) from a reply. A request
// refused at connect never reached the node: not executed. Any other
// transport error may have happened after the node executed it.
func classify(o *Op, r reply) {
	if r.err != nil {
		o.Err = shorten(r.err.Error(), 200)
		if errors.Is(r.err, syscall.ECONNREFUSED) {
			o.Outcome = outFailed
		} else {
			o.Outcome = outUnknown
		}
		return
	}
	o.Status, o.Code = r.status, errCode(r.body)
	switch {
	case r.status == 200:
		o.Outcome = outOK
	case r.status == 404 && o.Code == "not_found":
		o.Outcome = outNotFound
	case r.status == 412:
		o.Outcome = outCondition
	case r.status == 503:
		o.Outcome = outFailed
	case r.status == 504:
		o.Outcome = outUnknown
	default:
		// Anything else is a bug; for the model it is unknown (a write
		// may have happened), and the checker reports it.
		o.Outcome = outUnknown
		o.Err = "unexpected reply: " + shorten(strings.TrimSpace(string(r.body)), 200)
	}
}

func (kc *kvClient) keyPath(key string) string {
	return "/v1/kv/" + url.PathEscape(kc.table) + "/" + url.PathEscape(key)
}

func condHeaders(o *Op) map[string]string {
	hdr := map[string]string{}
	if o.IfMatch != 0 {
		hdr["If-Match"] = `"` + strconv.FormatUint(o.IfMatch, 10) + `"`
	}
	if o.IfNoneMatch {
		hdr["If-None-Match"] = "*"
	}
	return hdr
}

// Put writes o.Key = o.Value under o's conditions and records o.
func (kc *kvClient) Put(n *Node, o *Op) *Op {
	o.Kind, o.Node = "put", n.Name
	o.Call = kc.h.now()
	r := kc.do(n, "PUT", kc.keyPath(o.Key), []byte(o.Value), condHeaders(o))
	o.Return = kc.h.now()
	classify(o, r)
	if o.Outcome == outOK {
		o.Version = decodeVersion(o, r.body)
	}
	kc.h.add(o)
	return o
}

// Delete deletes o.Key under o's conditions and records o.
func (kc *kvClient) Delete(n *Node, o *Op) *Op {
	o.Kind, o.Node = "delete", n.Name
	o.Call = kc.h.now()
	r := kc.do(n, "DELETE", kc.keyPath(o.Key), nil, condHeaders(o))
	o.Return = kc.h.now()
	classify(o, r)
	if o.Outcome == outOK {
		o.Version = decodeVersion(o, r.body)
	}
	kc.h.add(o)
	return o
}

func decodeVersion(o *Op, body []byte) uint64 {
	var v struct {
		Version *uint64 `json:"version"`
	}
	if err := json.Unmarshal(body, &v); err != nil || v.Version == nil || *v.Version == 0 {
		o.Outcome = outUnknown
		o.Err = "unexpected reply: no version in " + shorten(string(body), 100)
		return 0
	}
	return *v.Version
}

// Get reads o.Key and records o.
func (kc *kvClient) Get(n *Node, o *Op) *Op {
	o.Kind, o.Node = "get", n.Name
	if kc.plant != nil {
		if forged := kc.plant.forge(kc.h, n, o); forged != nil {
			kc.h.add(forged)
			return forged
		}
	}
	o.Call = kc.h.now()
	r := kc.do(n, "GET", kc.keyPath(o.Key), nil, nil)
	o.Return = kc.h.now()
	classify(o, r)
	if o.Outcome == outOK {
		o.Read = string(r.body)
		tag := r.header.Get("ETag")
		s, err := strconv.Unquote(tag)
		if err == nil {
			o.Version, err = strconv.ParseUint(s, 10, 64)
		}
		if err != nil || o.Version == 0 {
			o.Outcome = outUnknown
			o.Err = fmt.Sprintf("unexpected reply: ETag %q", tag)
		}
	}
	if kc.plant != nil {
		kc.plant.remember(o)
	}
	kc.h.add(o)
	return o
}

// List reads one page of keys under o.Prefix after o.After and records o.
func (kc *kvClient) List(n *Node, o *Op) *Op {
	o.Kind, o.Node = "list", n.Name
	q := url.Values{}
	q.Set("prefix", o.Prefix)
	q.Set("limit", strconv.Itoa(o.Limit))
	q.Set("values", "true")
	if o.After != "" {
		q.Set("page_token", pageToken(o.After))
	}
	o.Call = kc.h.now()
	r := kc.do(n, "GET", "/v1/kv/"+url.PathEscape(kc.table)+"?"+q.Encode(), nil, nil)
	o.Return = kc.h.now()
	classify(o, r)
	if o.Outcome == outOK {
		if err := decodePage(o, r.body); err != nil {
			o.Outcome = outUnknown
			o.Err = "unexpected reply: " + err.Error()
		}
	}
	kc.h.add(o)
	return o
}

// pageToken encodes "continue after key" as the server does. The harness
// builds tokens itself, so that the span of each page is exact in the
// history.
func pageToken(after string) string { return kv.EncodePageToken([]byte(after)) }

func decodePage(o *Op, body []byte) error {
	var page struct {
		Items []struct {
			Key     string  `json:"key"`
			Value   *string `json:"value"`
			Version uint64  `json:"version"`
		} `json:"items"`
		NextPageToken *string `json:"next_page_token"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		return fmt.Errorf("bad JSON: %v", err)
	}
	if page.NextPageToken == nil {
		return errors.New("no next_page_token")
	}
	if len(page.Items) > o.Limit {
		return fmt.Errorf("%d items in a page of limit %d", len(page.Items), o.Limit)
	}
	prev := o.After
	for _, it := range page.Items {
		if it.Value == nil {
			return fmt.Errorf("item %q without value", it.Key)
		}
		v, err := base64.StdEncoding.DecodeString(*it.Value)
		if err != nil {
			return fmt.Errorf("item %q: %v", it.Key, err)
		}
		if !strings.HasPrefix(it.Key, o.Prefix) || it.Key <= prev {
			return fmt.Errorf("item %q out of order or outside prefix %q after %q", it.Key, o.Prefix, prev)
		}
		prev = it.Key
		o.Items = append(o.Items, ListItem{Key: it.Key, Value: string(v), Version: it.Version})
	}
	o.More = *page.NextPageToken != ""
	if o.More && len(o.Items) == 0 {
		return errors.New("empty page with a next_page_token")
	}
	return nil
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + fmt.Sprintf("...(%d bytes)", len(s))
}
