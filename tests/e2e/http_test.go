package e2e

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
	"syscall"
	"testing"
	"time"
)

// opTimeout bounds one ordinary request. The server's own request timeout
// is 10s by default; a client giving up first sees an unknown outcome,
// which the tests allow.
const opTimeout = 5 * time.Second

type httpClient struct {
	tr *http.Transport
	c  *http.Client
}

func newHTTPClient() *httpClient {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
	}
	return &httpClient{tr: tr, c: &http.Client{
		Transport: tr,
		// Never follow redirects: the API has none, and one would be a bug.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func (h *httpClient) close() { h.tr.CloseIdleConnections() }

// Reply is the outcome of one HTTP request: a status and body, or Err.
type Reply struct {
	Method, Path string
	Status       int // 0 when Err is set
	Header       http.Header
	Body         []byte
	Err          error
	Sent, Done   time.Time
}

func (r Reply) String() string {
	if r.Err != nil {
		return fmt.Sprintf("%s %s: %v", r.Method, shorten(r.Path, 80), r.Err)
	}
	return fmt.Sprintf("%s %s -> %d %s", r.Method, shorten(r.Path, 80), r.Status, shorten(strings.TrimSpace(string(r.Body)), 300))
}

// OK reports a 2xx reply.
func (r Reply) OK() bool { return r.Err == nil && r.Status >= 200 && r.Status < 300 }

// Refused reports that the request never reached a server (connection
// refused): its outcome is known, nothing happened.
func (r Reply) Refused() bool { return errors.Is(r.Err, syscall.ECONNREFUSED) }

// JSON decodes the body into v.
func (r Reply) JSON(v any) error {
	if err := json.Unmarshal(r.Body, v); err != nil {
		return fmt.Errorf("%s: bad JSON: %v", r.String(), err)
	}
	return nil
}

// ErrCode returns the "code" of a JSON error body, or "".
func (r Reply) ErrCode() string {
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(r.Body, &e) != nil {
		return ""
	}
	return e.Error.Code
}

// Version returns the version of a write reply ({"version":V}).
func (r Reply) Version() (uint64, error) {
	var v struct {
		Version *uint64 `json:"version"`
	}
	if err := r.JSON(&v); err != nil {
		return 0, err
	}
	if v.Version == nil {
		return 0, fmt.Errorf("%s: no version in reply", r.String())
	}
	return *v.Version, nil
}

// ETag returns the version in the ETag header of a read ("V").
func (r Reply) ETag() (uint64, error) {
	tag := r.Header.Get("ETag")
	s, err := strconv.Unquote(tag)
	if err != nil {
		return 0, fmt.Errorf("%s: ETag %q is not a quoted string", r.String(), tag)
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: ETag %q is not a version", r.String(), tag)
	}
	return v, nil
}

// Do sends one request to the node's client port, bounded by timeout.
// hdr is a list of header name, value pairs.
func (n *Node) Do(timeout time.Duration, method, path string, body []byte, hdr ...string) Reply {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	r := Reply{Method: method, Path: path}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+n.Client+path, rd)
	if err != nil {
		r.Err = err
		return r
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	r.Sent = time.Now()
	resp, err := n.c.http.c.Do(req)
	if err != nil {
		r.Err, r.Done = err, time.Now()
		return r
	}
	defer resp.Body.Close()
	r.Body, err = io.ReadAll(resp.Body)
	r.Done = time.Now()
	if err != nil {
		r.Err = fmt.Errorf("reading body after status %d: %w", resp.StatusCode, err)
		return r
	}
	r.Status, r.Header = resp.StatusCode, resp.Header
	return r
}

func kvPath(table, key string) string {
	return "/v1/kv/" + url.PathEscape(table) + "/" + url.PathEscape(key)
}

// Put writes key=value in table.
func (n *Node) Put(table, key string, value []byte, hdr ...string) Reply {
	return n.Do(opTimeout, "PUT", kvPath(table, key), value, hdr...)
}

// Get reads key of table.
func (n *Node) Get(table, key string, hdr ...string) Reply {
	return n.Do(opTimeout, "GET", kvPath(table, key), nil, hdr...)
}

// Del deletes key of table.
func (n *Node) Del(table, key string, hdr ...string) Reply {
	return n.Do(opTimeout, "DELETE", kvPath(table, key), nil, hdr...)
}

// MustPut writes and returns the acknowledged version, failing the test
// on anything but 200.
func (n *Node) MustPut(t testing.TB, table, key string, value []byte, hdr ...string) uint64 {
	t.Helper()
	return n.mustVersion(t, n.Put(table, key, value, hdr...))
}

// PutRetrying writes an unconditional put (idempotent: writing the same
// value again is harmless), retrying up to 3 times on a retryable answer
// (503, 504: an election or a stalled node on a loaded machine), as a
// client would; it fails the test on anything else or when the retries
// run out. For filling data before what a test measures.
func (n *Node) PutRetrying(t testing.TB, table, key string, value []byte) uint64 {
	t.Helper()
	return n.mustVersion(t, n.putRetrying(table, key, value))
}

// putRetrying is PutRetrying's request loop, without failing the test
// (for writers on other goroutines).
func (n *Node) putRetrying(table, key string, value []byte) Reply {
	var r Reply
	for range 4 {
		if r = n.Put(table, key, value); r.Status != 503 && r.Status != 504 && r.Err == nil {
			break
		}
	}
	return r
}

// mustVersion returns the version of a 200 write reply, failing the test
// on anything else.
func (n *Node) mustVersion(t testing.TB, r Reply) uint64 {
	t.Helper()
	if r.Status != 200 {
		t.Fatalf("%s: %s", n.Name, r)
	}
	v, err := r.Version()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// MustGet reads an existing key and returns its value and version.
func (n *Node) MustGet(t testing.TB, table, key string) ([]byte, uint64) {
	t.Helper()
	r := n.Get(table, key)
	if r.Status != 200 {
		t.Fatalf("%s: %s", n.Name, r)
	}
	v, err := r.ETag()
	if err != nil {
		t.Fatal(err)
	}
	return r.Body, v
}

// Item is one key of a list reply, value decoded.
type Item struct {
	Key     string
	Value   []byte
	Version uint64
}

// List reads every key of table under prefix with values, page by page
// (pageSize keys per request), up to maxPages pages.
func (n *Node) List(table, prefix string, pageSize int) ([]Item, error) {
	const maxPages = 10000
	var out []Item
	token := ""
	for range maxPages {
		q := url.Values{}
		q.Set("prefix", prefix)
		q.Set("limit", strconv.Itoa(pageSize))
		q.Set("values", "true")
		if token != "" {
			q.Set("page_token", token)
		}
		r := n.Do(opTimeout, "GET", "/v1/kv/"+url.PathEscape(table)+"?"+q.Encode(), nil)
		if r.Status != 200 {
			return out, fmt.Errorf("%s: %s", n.Name, r)
		}
		var page struct {
			Items []struct {
				Key     string  `json:"key"`
				Value   *string `json:"value"`
				Version uint64  `json:"version"`
			} `json:"items"`
			NextPageToken *string `json:"next_page_token"`
		}
		if err := r.JSON(&page); err != nil {
			return out, err
		}
		if page.NextPageToken == nil {
			return out, fmt.Errorf("%s: list reply without next_page_token", r)
		}
		if len(page.Items) > pageSize {
			return out, fmt.Errorf("%s: %d items in a page of limit %d", r, len(page.Items), pageSize)
		}
		for _, it := range page.Items {
			if it.Value == nil {
				return out, fmt.Errorf("%s: item %q without value despite values=true", r, it.Key)
			}
			v, err := base64.StdEncoding.DecodeString(*it.Value)
			if err != nil {
				return out, fmt.Errorf("%s: item %q: value is not base64: %v", r, it.Key, err)
			}
			out = append(out, Item{Key: it.Key, Value: v, Version: it.Version})
		}
		token = *page.NextPageToken
		if token == "" {
			return out, nil
		}
		if len(page.Items) == 0 {
			return out, fmt.Errorf("%s: empty page with a next_page_token", r)
		}
	}
	return out, fmt.Errorf("%s: list of %q did not end after %d pages", n.Name, prefix, maxPages)
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + fmt.Sprintf("...(%d bytes)", len(s))
}
