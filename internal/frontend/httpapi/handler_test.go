package httpapi

// These tests drive the handler with httptest over kvtest.MemService: every route,
// status, header and JSON shape of the contract, plus the bad inputs a
// client can send. They check the HTTP mapping, not the service semantics.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/kv"
	"github.com/cairn-db/cairn/internal/kv/kvtest"
)

type testEnv struct {
	h   http.Handler
	svc *kvtest.MemService
	reg *prometheus.Registry
	log *bytes.Buffer
}

func newTestEnv(t testing.TB) *testEnv {
	t.Helper()
	env := &testEnv{svc: kvtest.NewMemService(), reg: prometheus.NewRegistry(), log: &bytes.Buffer{}}
	env.h = New(env.svc, Options{
		Limits:     kv.DefaultLimits,
		Registerer: env.reg,
		Logger:     slogTo(env.log),
	})
	return env
}

// slogTo logs everything, debug included, as text to w.
func slogTo(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// do sends one request; headers are name/value pairs.
func (e *testEnv) do(t testing.TB, method, target string, body []byte, headers ...string) *httptest.ResponseRecorder {
	t.Helper()
	return e.doCtx(t, context.Background(), method, target, body, headers...)
}

func (e *testEnv) doCtx(t testing.TB, ctx context.Context, method, target string, body []byte, headers ...string) *httptest.ResponseRecorder {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	r := httptest.NewRequestWithContext(ctx, method, target, rd)
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Add(headers[i], headers[i+1])
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return w
}

func wantStatus(t testing.TB, w *httptest.ResponseRecorder, status int) {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status %d, want %d; body %s", w.Code, status, w.Body.String())
	}
}

// wantError checks status, the JSON error shape and its code; it returns
// the message.
func wantError(t testing.TB, w *httptest.ResponseRecorder, status int, code string) string {
	t.Helper()
	wantStatus(t, w, status)
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json", ct)
	}
	var e map[string]map[string]string
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil {
		t.Fatalf("error body %q: %v", w.Body.String(), err)
	}
	if len(e) != 1 || len(e["error"]) != 2 || e["error"]["message"] == "" {
		t.Fatalf("error body %q: want {\"error\":{\"code\",\"message\"}}", w.Body.String())
	}
	if got := e["error"]["code"]; got != code {
		t.Fatalf("code %q, want %q; body %s", got, code, w.Body.String())
	}
	return e["error"]["message"]
}

func decodeJSON(t testing.TB, w *httptest.ResponseRecorder, v any) {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json", ct)
	}
	if err := json.Unmarshal(w.Body.Bytes(), v); err != nil {
		t.Fatalf("body %q: %v", w.Body.String(), err)
	}
}

// jsonKeys returns the sorted field names of a JSON object.
func jsonKeys(t testing.TB, raw json.RawMessage) []string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func wantKeys(t testing.TB, raw json.RawMessage, want ...string) {
	t.Helper()
	sort.Strings(want)
	if got := jsonKeys(t, raw); !reflect.DeepEqual(got, want) {
		t.Fatalf("fields %v, want %v in %s", got, want, raw)
	}
}

func TestPutGetDelete(t *testing.T) {
	e := newTestEnv(t)

	w := e.do(t, "PUT", "/v1/kv/default/k1", []byte("hello"))
	wantStatus(t, w, 200)
	var v versionJSON
	decodeJSON(t, w, &v)
	if v.Version == 0 || w.Header().Get("ETag") != fmt.Sprintf(`"%d"`, v.Version) {
		t.Fatalf("version %d, ETag %q", v.Version, w.Header().Get("ETag"))
	}
	wantKeys(t, w.Body.Bytes(), "version")

	w = e.do(t, "GET", "/v1/kv/default/k1", nil)
	wantStatus(t, w, 200)
	if w.Body.String() != "hello" {
		t.Fatalf("body %q", w.Body.String())
	}
	for name, want := range map[string]string{
		"Content-Type":   "application/octet-stream",
		"ETag":           fmt.Sprintf(`"%d"`, v.Version),
		"Cairn-Version":  fmt.Sprint(v.Version),
		"Content-Length": "5",
	} {
		if got := w.Header().Get(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}

	w = e.do(t, "HEAD", "/v1/kv/default/k1", nil)
	wantStatus(t, w, 200)
	if w.Body.Len() != 0 || w.Header().Get("Cairn-Version") != fmt.Sprint(v.Version) {
		t.Fatalf("HEAD: body %q, headers %v", w.Body.String(), w.Header())
	}

	w = e.do(t, "PUT", "/v1/kv/default/k1", []byte(""))
	wantStatus(t, w, 200)
	var v2 versionJSON
	decodeJSON(t, w, &v2)
	if v2.Version <= v.Version {
		t.Fatalf("version %d after %d", v2.Version, v.Version)
	}
	w = e.do(t, "GET", "/v1/kv/default/k1", nil)
	wantStatus(t, w, 200)
	if w.Body.Len() != 0 || w.Header().Get("Content-Length") != "0" {
		t.Fatalf("empty value: %q %v", w.Body.String(), w.Header())
	}

	w = e.do(t, "DELETE", "/v1/kv/default/k1", nil)
	wantStatus(t, w, 200)
	var dv versionJSON
	decodeJSON(t, w, &dv)
	if dv.Version != v2.Version {
		t.Fatalf("deleted version %d, want %d", dv.Version, v2.Version)
	}
	wantError(t, e.do(t, "GET", "/v1/kv/default/k1", nil), 404, "not_found")
	wantError(t, e.do(t, "DELETE", "/v1/kv/default/k1", nil), 404, "not_found")
	w = e.do(t, "HEAD", "/v1/kv/default/k1", nil)
	wantStatus(t, w, 404)
	if w.Body.Len() != 0 {
		t.Fatalf("HEAD 404 has a body %q", w.Body.String())
	}
	wantError(t, e.do(t, "GET", "/v1/kv/nope/k1", nil), 404, "table_not_found")
}

func put(t testing.TB, e *testEnv, target, value string, headers ...string) uint64 {
	t.Helper()
	w := e.do(t, "PUT", target, []byte(value), headers...)
	wantStatus(t, w, 200)
	var v versionJSON
	decodeJSON(t, w, &v)
	return v.Version
}

func TestConditions(t *testing.T) {
	e := newTestEnv(t)
	const k = "/v1/kv/default/c"

	v1 := put(t, e, k, "a", "If-None-Match", "*")
	wantError(t, e.do(t, "PUT", k, []byte("b"), "If-None-Match", "*"), 412, "condition_failed")
	wantError(t, e.do(t, "PUT", k, []byte("b"), "If-Match", fmt.Sprintf(`"%d"`, v1+100)), 412, "condition_failed")
	v2 := put(t, e, k, "b", "If-Match", fmt.Sprintf(`"%d"`, v1))
	v3 := put(t, e, k, "c", "If-Match", fmt.Sprint(v2)) // unquoted
	v4 := put(t, e, k, "d", "If-Match", fmt.Sprintf(` "%d" `, v3))

	wantError(t, e.do(t, "DELETE", k, nil, "If-Match", fmt.Sprintf(`"%d"`, v1)), 412, "condition_failed")
	wantError(t, e.do(t, "DELETE", k, nil, "If-None-Match", "*"), 412, "condition_failed")
	wantStatus(t, e.do(t, "DELETE", k, nil, "If-Match", fmt.Sprintf(`"%d"`, v4)), 200)
	wantError(t, e.do(t, "PUT", k, []byte("x"), "If-Match", fmt.Sprintf(`"%d"`, v4)), 412, "condition_failed")
}

func TestBadConditions(t *testing.T) {
	e := newTestEnv(t)
	put(t, e, "/v1/kv/default/c", "a")
	for _, hdrs := range [][]string{
		{"If-Match", "abc"},
		{"If-Match", `"abc"`},
		{"If-Match", `"1`},
		{"If-Match", `""`},
		{"If-Match", `"0"`},
		{"If-Match", "-1"},
		{"If-Match", "+1"},
		{"If-Match", "1 2"},
		{"If-Match", `W/"1"`},
		{"If-Match", "*"},
		{"If-Match", `"1", "2"`},
		{"If-Match", "99999999999999999999999"},
		{"If-Match", `"1"`, "If-Match", `"1"`},
		{"If-None-Match", `"1"`},
		{"If-None-Match", "**"},
		{"If-Match", `"1"`, "If-None-Match", "*"},
	} {
		for _, m := range []string{"PUT", "DELETE"} {
			w := e.do(t, m, "/v1/kv/default/c", []byte("v"), hdrs...)
			if w.Code != 400 {
				t.Errorf("%s with %q: status %d, want 400: %s", m, hdrs, w.Code, w.Body)
			}
		}
	}
}

func TestGetPreconditions(t *testing.T) {
	e := newTestEnv(t)
	v := put(t, e, "/v1/kv/default/g", "a")
	etag := fmt.Sprintf(`"%d"`, v)

	w := e.do(t, "GET", "/v1/kv/default/g", nil, "If-None-Match", etag)
	wantStatus(t, w, 304)
	if w.Body.Len() != 0 || w.Header().Get("ETag") != etag {
		t.Fatalf("304: body %q ETag %q", w.Body, w.Header().Get("ETag"))
	}
	wantStatus(t, e.do(t, "GET", "/v1/kv/default/g", nil, "If-None-Match", `W/`+etag), 304)
	wantStatus(t, e.do(t, "GET", "/v1/kv/default/g", nil, "If-None-Match", `"1000", `+etag), 304)
	wantStatus(t, e.do(t, "GET", "/v1/kv/default/g", nil, "If-None-Match", "*"), 304)
	wantStatus(t, e.do(t, "GET", "/v1/kv/default/g", nil, "If-None-Match", `"1000"`), 200)
	wantStatus(t, e.do(t, "GET", "/v1/kv/default/g", nil, "If-Match", etag), 200)
	wantError(t, e.do(t, "GET", "/v1/kv/default/g", nil, "If-Match", `"1000"`), 412, "condition_failed")
	wantError(t, e.do(t, "GET", "/v1/kv/default/g", nil, "If-Match", `W/`+etag), 412, "condition_failed")
	wantError(t, e.do(t, "GET", "/v1/kv/default/g", nil, "If-None-Match", "garbage"), 400, "invalid_argument")
	// Preconditions do not apply to a key that is absent.
	wantError(t, e.do(t, "GET", "/v1/kv/default/absent", nil, "If-None-Match", etag), 404, "not_found")
}

func TestKeysInPath(t *testing.T) {
	e := newTestEnv(t)
	for _, tc := range []struct {
		path string
		key  string
	}{
		{"a/b/c", "a/b/c"},
		{"a%2Fb", "a/b"},
		{"a//b/", "a//b/"},
		{"..", ".."},
		{"x/../y", "x/../y"},
		{"%00%ff%FE", "\x00\xff\xfe"},
		{"sp%20ace+plus", "sp ace+plus"},
		{"%25", "%"},
		{"caf%C3%A9", "café"},
		{"q%3Fx", "q?x"},
	} {
		v := put(t, e, "/v1/kv/default/"+tc.path, tc.key)
		w := e.do(t, "GET", "/v1/kv/default/"+tc.path, nil)
		wantStatus(t, w, 200)
		if w.Body.String() != tc.key || w.Header().Get("Cairn-Version") != fmt.Sprint(v) {
			t.Errorf("%s: got value %q", tc.path, w.Body.String())
		}
		if _, err := e.svc.Get(context.Background(), &cairnpb.GetRequest{Table: "default", Key: []byte(tc.key)}); err != nil {
			t.Errorf("%s: key %q not stored: %v", tc.path, tc.key, err)
		}
	}
	wantError(t, e.do(t, "PUT", "/v1/kv/default/", []byte("v")), 400, "invalid_argument")
	wantError(t, e.do(t, "GET", "/v1/kv/default/", nil), 400, "invalid_argument")
	wantError(t, e.do(t, "DELETE", "/v1/kv/default/", nil), 400, "invalid_argument")
}

func TestLimits(t *testing.T) {
	e := newTestEnv(t)
	maxKey := strings.Repeat("k", kv.DefaultLimits.MaxKeyBytes)
	put(t, e, "/v1/kv/default/"+maxKey, "v")
	for _, m := range []string{"PUT", "GET", "DELETE"} {
		wantError(t, e.do(t, m, "/v1/kv/default/"+maxKey+"k", []byte("v")), 400, "invalid_argument")
	}
	wantError(t, e.do(t, "GET", "/v1/kv/default?prefix="+maxKey+"k", nil), 400, "invalid_argument")

	maxValue := bytes.Repeat([]byte("v"), kv.DefaultLimits.MaxValueBytes)
	put(t, e, "/v1/kv/default/big", string(maxValue))
	over := append(maxValue, 'v')
	wantError(t, e.do(t, "PUT", "/v1/kv/default/big", over), 413, "too_large")
	// Without a Content-Length the limit is found while reading.
	r := httptest.NewRequest("PUT", "/v1/kv/default/big", io.MultiReader(bytes.NewReader(over)))
	r.ContentLength = -1
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	wantError(t, w, 413, "too_large")

	for _, name := range []string{"Bad", "a.b", strings.Repeat("t", 65), "t%2Fu", "%41"} {
		wantError(t, e.do(t, "GET", "/v1/kv/"+name+"/k", nil), 400, "invalid_argument")
		wantError(t, e.do(t, "GET", "/v1/kv/"+name, nil), 400, "invalid_argument")
		wantError(t, e.do(t, "GET", "/v1/tables/"+name, nil), 400, "invalid_argument")
	}
	wantError(t, e.do(t, "GET", "/v1/kv/", nil), 400, "invalid_argument")
	wantError(t, e.do(t, "GET", "/v1/tables/", nil), 400, "invalid_argument")
}

func TestBrokenBody(t *testing.T) {
	e := newTestEnv(t)
	r := httptest.NewRequest("PUT", "/v1/kv/default/k", io.MultiReader(strings.NewReader("abc"), errReader{}))
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	wantError(t, w, 400, "invalid_argument")
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

// TestTTL: ?ttl= sets an expiry that GET reports in Cairn-Expires-At and
// list in expires_at_ms; once it passes the key is gone.
func TestTTL(t *testing.T) {
	e := newTestEnv(t)
	now := time.UnixMilli(1_700_000_000_000)
	e.svc.SetNow(func() time.Time { return now })
	wantStatus(t, e.do(t, "PUT", "/v1/kv/default/k?ttl=1m30s", []byte("v")), 200)
	w := e.do(t, "GET", "/v1/kv/default/k", nil)
	wantStatus(t, w, 200)
	if got, want := w.Header().Get("Cairn-Expires-At"), "1700000090000"; got != want {
		t.Fatalf("Cairn-Expires-At = %q, want %q", got, want)
	}
	w = e.do(t, "GET", "/v1/kv/default", nil)
	if !strings.Contains(w.Body.String(), `"expires_at_ms":1700000090000`) {
		t.Fatalf("list does not show the expiry: %s", w.Body.String())
	}
	put(t, e, "/v1/kv/default/plain", "v")
	if w := e.do(t, "GET", "/v1/kv/default/plain", nil); w.Header().Get("Cairn-Expires-At") != "" {
		t.Fatalf("a key without TTL has Cairn-Expires-At %q", w.Header().Get("Cairn-Expires-At"))
	}
	now = now.Add(90 * time.Second)
	wantError(t, e.do(t, "GET", "/v1/kv/default/k", nil), 404, "not_found")
}

func TestQueryParameters(t *testing.T) {
	e := newTestEnv(t)
	for _, bad := range []string{"", "30", "-1s", "0s", "500us", "abc", "9999999h"} {
		msg := wantError(t, e.do(t, "PUT", "/v1/kv/default/k?ttl="+bad, []byte("v")), 400, "invalid_argument")
		if !strings.Contains(msg, "ttl") {
			t.Fatalf("ttl=%q: message %q does not name the parameter", bad, msg)
		}
	}
	wantError(t, e.do(t, "PUT", "/v1/kv/default/k?bogus=1", []byte("v")), 400, "invalid_argument")
	wantError(t, e.do(t, "DELETE", "/v1/kv/default/k?x", nil), 400, "invalid_argument")
	wantError(t, e.do(t, "GET", "/v1/kv/default?prefx=a", nil), 400, "invalid_argument")
	wantError(t, e.do(t, "GET", "/v1/kv/default?prefix=a&prefix=b", nil), 400, "invalid_argument")
	wantError(t, e.do(t, "GET", "/v1/kv/default?prefix=%zz", nil), 400, "invalid_argument")
	put(t, e, "/v1/kv/default/k", "v")
	wantStatus(t, e.do(t, "GET", "/v1/kv/default/k?consistency=linearizable", nil), 200)
	wantStatus(t, e.do(t, "GET", "/v1/kv/default/k?consistency=stale&max_staleness=2s", nil), 200)
	wantError(t, e.do(t, "GET", "/v1/kv/default/k?consistency=bogus", nil), 400, "invalid_argument")
	wantError(t, e.do(t, "GET", "/v1/kv/default/k?max_staleness=2s", nil), 400, "invalid_argument")
	wantError(t, e.do(t, "GET", "/v1/kv/default/k?consistency=stale&max_staleness=1ms", nil), 400, "invalid_argument")
	wantError(t, e.do(t, "GET", "/v1/kv/default/k?consistency=session", nil, "Cairn-Session", "junk"), 400, "invalid_argument")
	wantError(t, e.do(t, "PUT", "/v1/kv/default/k", []byte("v"), "Cairn-Session", "junk"), 400, "invalid_argument")
}

// TestConsistencyHeaders: every read and write answers the merged
// session token; reads say the level served and by whom; a miss still
// carries the token.
func TestConsistencyHeaders(t *testing.T) {
	e := newTestEnv(t)
	w := e.do(t, "PUT", "/v1/kv/default/k", []byte("v"))
	wantStatus(t, w, 200)
	tok := w.Header().Get("Cairn-Session")
	wt, err := kv.DecodeSessionToken(tok)
	if err != nil || len(wt.Entries) != 1 {
		t.Fatalf("put token %q: %+v, %v", tok, wt, err)
	}
	w = e.do(t, "GET", "/v1/kv/default/k?consistency=session", nil, "Cairn-Session", tok)
	wantStatus(t, w, 200)
	if w.Header().Get("Cairn-Consistency") != "session" || w.Header().Get("Cairn-Served-By") != "n1" || w.Header().Get("Cairn-Session") == "" {
		t.Fatalf("session get headers %v", w.Header())
	}
	w = e.do(t, "GET", "/v1/kv/default/k?consistency=stale", nil)
	wantStatus(t, w, 200)
	if w.Header().Get("Cairn-Consistency") != "stale" || w.Header().Get("Cairn-Staleness") == "" {
		t.Fatalf("stale get headers %v", w.Header())
	}
	w = e.do(t, "GET", "/v1/kv/default/absent?consistency=session", nil, "Cairn-Session", tok)
	wantError(t, w, 404, "not_found")
	if w.Header().Get("Cairn-Session") == "" || w.Header().Get("Cairn-Consistency") != "session" {
		t.Fatalf("miss headers %v", w.Header())
	}
	// A token from another range merges with the reply's.
	var other kv.SessionToken
	other.Observe(kv.SessionEntry{Table: 1, Range: 9, Index: 77})
	w = e.do(t, "DELETE", "/v1/kv/default/k", nil, "Cairn-Session", other.Encode())
	wantStatus(t, w, 200)
	mt, err := kv.DecodeSessionToken(w.Header().Get("Cairn-Session"))
	if err != nil || len(mt.Entries) != 2 || mt.Entries[1].Index != 77 || mt.Entries[0].Index <= wt.Entries[0].Index {
		t.Fatalf("merged token %+v, %v", mt, err)
	}
	w = e.do(t, "GET", "/v1/kv/default?consistency=stale&max_staleness=500ms", nil)
	wantStatus(t, w, 200)
	if w.Header().Get("Cairn-Consistency") != "stale" || w.Header().Get("Cairn-Session") == "" {
		t.Fatalf("list headers %v", w.Header())
	}
}

type listPage struct {
	Items []struct {
		Key       string  `json:"key"`
		KeyBase64 string  `json:"key_base64"`
		Value     *string `json:"value"`
		Version   uint64  `json:"version"`
	} `json:"items"`
	NextPageToken string `json:"next_page_token"`
}

func listAll(t testing.TB, e *testEnv, query string) (keys []string, pages int) {
	t.Helper()
	tok := ""
	for {
		q := query
		if tok != "" {
			q += "&page_token=" + url.QueryEscape(tok)
		}
		w := e.do(t, "GET", "/v1/kv/default?"+q, nil)
		wantStatus(t, w, 200)
		var p listPage
		decodeJSON(t, w, &p)
		pages++
		for _, it := range p.Items {
			keys = append(keys, it.Key)
		}
		if p.NextPageToken == "" {
			return keys, pages
		}
		tok = p.NextPageToken
		if pages > 100 {
			t.Fatal("too many pages")
		}
	}
}

func TestList(t *testing.T) {
	e := newTestEnv(t)

	w := e.do(t, "GET", "/v1/kv/default", nil)
	wantStatus(t, w, 200)
	if got := strings.TrimSpace(w.Body.String()); got != `{"items":[],"next_page_token":""}` {
		t.Fatalf("empty list: %s", got)
	}

	var want []string
	for i := range 25 {
		k := fmt.Sprintf("p/%02d", i)
		want = append(want, k)
		put(t, e, "/v1/kv/default/"+k, "value-"+k)
	}
	put(t, e, "/v1/kv/default/q", "other")

	keys, pages := listAll(t, e, "prefix=p/&limit=10")
	if !slices.Equal(keys, want) || pages != 3 {
		t.Fatalf("pages %d, keys %v", pages, keys)
	}
	keys, _ = listAll(t, e, "start=p/05&end=p/08&limit=2")
	if !slices.Equal(keys, want[5:8]) {
		t.Fatalf("span: %v", keys)
	}
	keys, _ = listAll(t, e, "limit=0")
	if len(keys) != 26 {
		t.Fatalf("limit=0: %d keys", len(keys))
	}

	w = e.do(t, "GET", "/v1/kv/default?prefix=p/&limit=1&values=true", nil)
	wantStatus(t, w, 200)
	var raw struct {
		Items         []json.RawMessage `json:"items"`
		NextPageToken string            `json:"next_page_token"`
	}
	decodeJSON(t, w, &raw)
	wantKeys(t, w.Body.Bytes(), "items", "next_page_token")
	wantKeys(t, raw.Items[0], "key", "value", "version")
	var p listPage
	decodeJSON(t, w, &p)
	if got, _ := base64.StdEncoding.DecodeString(*p.Items[0].Value); string(got) != "value-p/00" || p.Items[0].Version == 0 {
		t.Fatalf("item %+v", p.Items[0])
	}
	w = e.do(t, "GET", "/v1/kv/default?prefix=p/&limit=1", nil)
	decodeJSON(t, w, &raw)
	wantKeys(t, raw.Items[0], "key", "version")
	w = e.do(t, "GET", "/v1/kv/default?prefix=p/&limit=1&values", nil)
	decodeJSON(t, w, &raw)
	wantKeys(t, raw.Items[0], "key", "value", "version")

	put(t, e, "/v1/kv/default/bin%ff", "x")
	w = e.do(t, "GET", "/v1/kv/default?prefix=bin", nil)
	decodeJSON(t, w, &p)
	if len(p.Items) != 1 || p.Items[0].KeyBase64 != base64.StdEncoding.EncodeToString([]byte("bin\xff")) {
		t.Fatalf("binary key: %s", w.Body)
	}

	for _, q := range []string{
		"limit=abc", "limit=-1", "limit=1.5", "limit=10001", "limit=99999999999999999999",
		"values=maybe", "page_token=garbage", "page_token=" + kv.EncodePageToken([]byte("k")) + "x",
	} {
		wantError(t, e.do(t, "GET", "/v1/kv/default?"+q, nil), 400, "invalid_argument")
	}
	wantError(t, e.do(t, "GET", "/v1/kv/missing", nil), 404, "table_not_found")
}

func TestTables(t *testing.T) {
	e := newTestEnv(t)

	w := e.do(t, "POST", "/v1/tables", []byte(`{"name":"users","partitioning":"range"}`))
	wantStatus(t, w, 201)
	if w.Header().Get("Location") != "/v1/tables/users" {
		t.Fatalf("Location %q", w.Header().Get("Location"))
	}
	wantKeys(t, w.Body.Bytes(), "name", "id", "partitioning", "replicas", "learners", "ranges", "consistency")
	var tbl struct {
		Name   string            `json:"name"`
		Ranges []json.RawMessage `json:"ranges"`
	}
	decodeJSON(t, w, &tbl)
	if tbl.Name != "users" || len(tbl.Ranges) != 1 {
		t.Fatalf("table %s", w.Body)
	}
	wantKeys(t, tbl.Ranges[0], "id", "start", "end", "replicas", "generation")

	wantStatus(t, e.do(t, "POST", "/v1/tables", []byte(`{"name":"plain"}`)), 201)
	w = e.do(t, "POST", "/v1/tables", []byte(`{"name":"sess","consistency":"session"}`))
	wantStatus(t, w, 201)
	if !strings.Contains(w.Body.String(), `"consistency":"session"`) {
		t.Fatalf("table with a default level: %s", w.Body)
	}
	wantError(t, e.do(t, "POST", "/v1/tables", []byte(`{"name":"users"}`)), 409, "table_exists")
	w = e.do(t, "POST", "/v1/tables", []byte(`{"name":"h","partitioning":"hash","initial_ranges":8}`))
	wantStatus(t, w, 201)
	if !strings.Contains(w.Body.String(), `"partitioning":"hash"`) {
		t.Fatalf("hash table: %s", w.Body)
	}
	for _, body := range []string{
		``, `{`, `[]`, `"x"`, `{"name":"x","bogus":1}`, `{"name":"x"} {}`, `{"name":"x"}x`,
		`{"name":"Bad"}`, `{"name":""}`, `null`, `{"name":"x","partitioning":"list"}`,
		`{"name":"x","replicas":0}`, `{"name":"x","replicas":8}`, `{"name":"x","replicas":"3"}`, `{"name":"x","replicas":1.5}`, `{"name":1}`, `{"name":"x","consistency":"eventual"}`, `{"name":"x","consistency":1}`,
	} {
		wantError(t, e.do(t, "POST", "/v1/tables", []byte(body)), 400, "invalid_argument")
	}
	big := []byte(`{"name":"x","partitioning":"` + strings.Repeat(" ", 64<<10) + `"}`)
	wantError(t, e.do(t, "POST", "/v1/tables", big), 413, "too_large")

	w = e.do(t, "GET", "/v1/tables", nil)
	wantStatus(t, w, 200)
	var list struct {
		Tables []struct {
			Name string `json:"name"`
		} `json:"tables"`
	}
	decodeJSON(t, w, &list)
	if len(list.Tables) != 5 || list.Tables[4].Name != "users" {
		t.Fatalf("tables %s", w.Body)
	}

	w = e.do(t, "GET", "/v1/tables/users", nil)
	wantStatus(t, w, 200)
	wantKeys(t, w.Body.Bytes(), "name", "id", "partitioning", "replicas", "learners", "ranges", "consistency")
	wantError(t, e.do(t, "GET", "/v1/tables/nope", nil), 404, "table_not_found")

	msg := wantError(t, e.do(t, "PATCH", "/v1/tables/users", []byte(`{}`)), 400, "invalid_argument")
	if !strings.Contains(msg, "nothing to change") {
		t.Fatalf("message %q", msg)
	}
	for _, bad := range []string{`{"learners":8}`, `{"replicas":0}`, `{"replicas":8}`, `{"consistency":"eventual"}`, `{"partitioning":"hash"}`, `{"learners":-1}`, `{"max_bytes":"1GiB"}`,
		`{"history_for":"1 day"}`, `{"history_for":"-1h"}`, `{"history_for":"721h"}`, `{"history_keep":10001}`} {
		wantError(t, e.do(t, "PATCH", "/v1/tables/users", []byte(bad)), 400, "invalid_argument")
	}
	wantError(t, e.do(t, "PATCH", "/v1/tables/nope", []byte(`{"learners":1}`)), 404, "table_not_found")
	w = e.do(t, "PATCH", "/v1/tables/users", []byte(`{"consistency":"stale","learners":2,"max_bytes":1000}`))
	wantStatus(t, w, 200)
	var patched struct {
		Consistency string `json:"consistency"`
		Learners    uint32 `json:"learners"`
		MaxBytes    uint64 `json:"max_bytes"`
	}
	decodeJSON(t, w, &patched)
	if patched.Consistency != "stale" || patched.Learners != 2 || patched.MaxBytes != 1000 {
		t.Fatalf("after PATCH: %s", w.Body)
	}
	// Only what is set changes.
	w = e.do(t, "PATCH", "/v1/tables/users", []byte(`{"consistency":"linearizable"}`))
	wantStatus(t, w, 200)
	decodeJSON(t, w, &patched)
	if patched.Consistency != "linearizable" || patched.Learners != 2 || patched.MaxBytes != 1000 {
		t.Fatalf("after second PATCH: %s", w.Body)
	}
	w = e.do(t, "PATCH", "/v1/tables/users", []byte(`{"history_keep":5,"history_for":"90m"}`))
	wantStatus(t, w, 200)
	if body := w.Body.String(); !strings.Contains(body, `"history_keep":5`) || !strings.Contains(body, `"history_for":"1h30m0s"`) {
		t.Fatalf("after history PATCH: %s", body)
	}

	w = e.do(t, "DELETE", "/v1/tables/users", nil)
	wantStatus(t, w, 200)
	if strings.TrimSpace(w.Body.String()) != "{}" {
		t.Fatalf("drop body %q", w.Body)
	}
	wantError(t, e.do(t, "DELETE", "/v1/tables/users", nil), 404, "table_not_found")
	wantError(t, e.do(t, "GET", "/v1/kv/users/k", nil), 404, "table_not_found")
	wantError(t, e.do(t, "GET", "/v1/tables/a/b", nil), 404, "no_route")
}

func TestCluster(t *testing.T) {
	e := newTestEnv(t)
	e.svc.SetClusterStatus(&cairnpb.ClusterStatus{
		Nodes: []*cairnpb.NodeStatus{{Id: 1, Name: "n1", Address: "127.0.0.1:7380", Alive: true, Ranges: 2, Leaders: 1}},
		Ranges: []*cairnpb.RangeStatus{
			{Id: 2, Table: "default", Start: []byte("a"), End: []byte("m"), Replicas: []uint64{1}, Leader: 1, Term: 3, CommitIndex: 12, AppliedIndex: 12, SizeBytes: 1024},
			{Id: 3, Table: "default", Start: []byte("m")},
		},
	})
	w := e.do(t, "GET", "/v1/cluster", nil)
	wantStatus(t, w, 200)
	var st struct {
		Nodes  []json.RawMessage `json:"nodes"`
		Ranges []json.RawMessage `json:"ranges"`
	}
	decodeJSON(t, w, &st)
	wantKeys(t, w.Body.Bytes(), "nodes", "ranges", "coordinator", "decisions")
	wantKeys(t, st.Nodes[0], "id", "name", "address", "alive", "ranges", "leaders", "state", "last_heartbeat_ms",
		"bytes", "reads_per_sec", "writes_per_sec")
	wantKeys(t, st.Ranges[0], "id", "table", "start", "end", "replicas", "learners", "leader", "term",
		"commit_index", "applied_index", "size_bytes", "generation", "conf_version")
	if !bytes.Contains(w.Body.Bytes(), []byte(`"start":"a","end":"m","replicas":[1]`)) ||
		!bytes.Contains(w.Body.Bytes(), []byte(`"start":"m","end":"","replicas":[]`)) {
		t.Fatalf("cluster %s", w.Body)
	}
}

func TestHealthAndReady(t *testing.T) {
	e := newTestEnv(t)
	w := e.do(t, "GET", "/healthz", nil)
	wantStatus(t, w, 200)
	if w.Body.String() != "ok" {
		t.Fatalf("healthz %q", w.Body)
	}
	w = e.do(t, "GET", "/readyz", nil)
	wantStatus(t, w, 200)
	if w.Body.String() != "ready" {
		t.Fatalf("readyz %q", w.Body)
	}
	e.svc.SetNotReady(kv.Errorf(kv.ErrUnavailable, "no leader for the meta range"))
	msg := wantError(t, e.do(t, "GET", "/readyz", nil), 503, "unavailable")
	if !strings.Contains(msg, "meta range") {
		t.Fatalf("message %q", msg)
	}
	// healthz does not depend on readiness.
	wantStatus(t, e.do(t, "GET", "/healthz", nil), 200)
}

func TestMethodsAndRoutes(t *testing.T) {
	e := newTestEnv(t)
	for _, tc := range []struct {
		method, path, allow string
	}{
		{"POST", "/v1/kv/default/k", "GET, HEAD, PUT, DELETE"},
		{"PATCH", "/v1/kv/default/k", "GET, HEAD, PUT, DELETE"},
		{"PUT", "/v1/kv/default", "GET, HEAD"},
		{"DELETE", "/v1/tables", "GET, HEAD, POST"},
		{"POST", "/v1/tables/x", "GET, HEAD, PATCH, DELETE"},
		{"POST", "/v1/cluster", "GET, HEAD"},
		{"DELETE", "/healthz", "GET, HEAD"},
		{"PUT", "/metrics", "GET, HEAD"},
		{"get", "/v1/kv/default/k", "GET, HEAD, PUT, DELETE"},
		// 405 wins over a bad parameter.
		{"POST", "/v1/kv/BAD/k", "GET, HEAD, PUT, DELETE"},
	} {
		w := e.do(t, tc.method, tc.path, nil)
		wantError(t, w, 405, "method_not_allowed")
		if got := w.Header().Get("Allow"); got != tc.allow {
			t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.path, got, tc.allow)
		}
	}
	w := e.do(t, "OPTIONS", "/v1/kv/default/k", nil)
	wantStatus(t, w, 204)
	if w.Header().Get("Allow") == "" {
		t.Fatal("OPTIONS without Allow")
	}
	for _, p := range []string{"/", "/v1", "/v1/kv", "/v2/kv/default/k", "/v1/clusters", "/healthz/", "/v1/tables/a/b", "/uix"} {
		wantError(t, e.do(t, "GET", p, nil), 404, "no_route")
		wantError(t, e.do(t, "PUT", p, nil), 404, "no_route")
	}
}

func TestMetrics(t *testing.T) {
	e := newTestEnv(t)
	put(t, e, "/v1/kv/default/k", "v")
	e.do(t, "GET", "/v1/kv/default/missing", nil)
	e.do(t, "GET", "/nowhere", nil)
	w := e.do(t, "GET", "/metrics", nil)
	wantStatus(t, w, 200)
	if !strings.Contains(w.Body.String(), "go_goroutines") {
		t.Fatalf("/metrics does not serve the default registry")
	}

	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for _, mf := range mfs {
		if mf.GetName() != "cairn_http_request_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			got[labels["route"]+" "+labels["method"]+" "+labels["code"]] += m.GetHistogram().GetSampleCount()
		}
	}
	want := map[string]uint64{
		"/v1/kv/{table}/{key} PUT 200": 1,
		"/v1/kv/{table}/{key} GET 404": 1,
		"none GET 404":                 1,
		"/metrics GET 200":             1,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("histogram counts %v, want %v", got, want)
	}

	// A second handler on the same registry reuses the histogram.
	New(e.svc, Options{Registerer: e.reg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

func TestClientGone(t *testing.T) {
	e := newTestEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	e.svc.SetFail(func(string, []byte) error { return context.Canceled })
	w := e.doCtx(t, ctx, "GET", "/v1/kv/default/k", nil)
	if w.Body.Len() != 0 || w.Header().Get("Content-Type") != "" {
		t.Fatalf("wrote a reply to a client that went away: %d %q", w.Code, w.Body)
	}
	if strings.Contains(e.log.String(), "level=ERROR") || strings.Contains(e.log.String(), "level=WARN") {
		t.Fatalf("logged as a failure: %s", e.log)
	}
	mfs, _ := e.reg.Gather()
	if !strings.Contains(fmt.Sprint(mfs), `value:"499"`) {
		t.Fatalf("metric code is not 499: %v", mfs)
	}
}

func TestOptionsEnsureDefaults(t *testing.T) {
	var o Options
	o.EnsureDefaults()
	if o.Limits != kv.DefaultLimits || o.Registerer == nil || o.Logger == nil {
		t.Fatalf("defaults %+v", o)
	}
	o = Options{Limits: kv.Limits{MaxKeyBytes: 10, MaxListLimit: 5}}
	o.EnsureDefaults()
	if o.Limits.MaxKeyBytes != 10 || o.Limits.MaxValueBytes != kv.DefaultLimits.MaxValueBytes ||
		o.Limits.MaxListLimit != 5 || o.Limits.DefaultListLimit != 5 {
		t.Fatalf("limits %+v", o.Limits)
	}
}

// TestConsoleFiles: /ui redirects to /ui/, which serves the embedded page
// and its script without credentials (they hold no data), with headers
// that keep the page from being framed or sniffed; other methods are 405.
func TestConsoleFiles(t *testing.T) {
	e := newTestEnv(t)
	wantStatus(t, e.do(t, "GET", "/ui", nil), 301)
	w := e.do(t, "GET", "/ui/", nil)
	wantStatus(t, w, 200)
	if !strings.Contains(w.Body.String(), `<script src="app.js">`) || w.Header().Get("X-Frame-Options") != "DENY" ||
		!strings.Contains(w.Header().Get("Content-Security-Policy"), "default-src 'self'") {
		t.Fatalf("console page: %v %q", w.Header(), w.Body.String()[:min(200, w.Body.Len())])
	}
	w = e.do(t, "GET", "/ui/app.js", nil)
	wantStatus(t, w, 200)
	if !strings.Contains(w.Header().Get("Content-Type"), "javascript") || !strings.Contains(w.Body.String(), "/v1/cluster") {
		t.Fatalf("app.js: %v", w.Header())
	}
	wantStatus(t, e.do(t, "GET", "/ui/nothing.js", nil), 404)
	wantError(t, e.do(t, "PUT", "/ui/app.js", nil), 405, "method_not_allowed")
}

// TestNoChallengeForScripts: a 401 carries the Basic challenge, except
// for a script that says it handles credentials itself (the console), so
// that browsers do not pop up their own password prompt.
func TestNoChallengeForScripts(t *testing.T) {
	e := newTestEnv(t)
	e.h = New(e.svc, Options{Limits: kv.DefaultLimits, Registerer: prometheus.NewRegistry(), Logger: slogTo(e.log),
		Authenticate: func(*http.Request) (context.Context, error) { return nil, kv.ErrUnauthenticated }})
	w := e.do(t, "GET", "/v1/cluster", nil)
	wantStatus(t, w, 401)
	if w.Header().Get("WWW-Authenticate") == "" {
		t.Fatal("no challenge for a plain client")
	}
	w = e.do(t, "GET", "/v1/cluster", nil, "X-Requested-With", "cairn-console")
	wantStatus(t, w, 401)
	if got := w.Header().Get("WWW-Authenticate"); got != "" {
		t.Fatalf("challenge %q for the console", got)
	}
}

// TestPprofForAdminsOnly: the profiler answers only when the node wires
// an admin check, and only to principals that pass it.
func TestPprofForAdminsOnly(t *testing.T) {
	e := newTestEnv(t)
	wantError(t, e.do(t, "GET", "/debug/pprof/", nil), 404, "no_route")
	allow := false
	e.h = New(e.svc, Options{Limits: kv.DefaultLimits, Registerer: prometheus.NewRegistry(), Logger: slogTo(e.log),
		CheckClusterAdmin: func(context.Context) error {
			if allow {
				return nil
			}
			return kv.Errorf(kv.ErrPermissionDenied, "admin on * needed")
		}})
	wantError(t, e.do(t, "GET", "/debug/pprof/goroutine?debug=1", nil), 403, "permission_denied")
	allow = true
	w := e.do(t, "GET", "/debug/pprof/goroutine?debug=1", nil)
	wantStatus(t, w, 200)
	if !strings.Contains(w.Body.String(), "goroutine") {
		t.Fatalf("goroutine profile: %q", w.Body.String()[:min(100, w.Body.Len())])
	}
	wantStatus(t, e.do(t, "GET", "/debug/pprof/", nil), 200)
}
