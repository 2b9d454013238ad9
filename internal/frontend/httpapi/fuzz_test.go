package httpapi

// FuzzHTTPRequest feeds random requests (method, target, header block, body)
// through net/http's own request parser and then the handler over
// kvtest.MemService. Properties: the handler never panics; it never answers 5xx
// unless the service returned an injected error for that request; every
// error reply is the JSON error shape; a 405 carries Allow. Small limits
// make the boundaries reachable.
//
//	go test -run='^$' -fuzz=FuzzHTTPRequest -fuzztime=10s ./internal/frontend/httpapi/

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairn-db/cairn/internal/kv"
	"github.com/cairn-db/cairn/internal/kv/kvtest"
)

var fuzzLimits = kv.Limits{MaxKeyBytes: 64, MaxValueBytes: 256, MaxListLimit: 20, DefaultListLimit: 5}

// unavailablePrefix marks keys whose requests fail with ErrUnavailable.
const unavailablePrefix = "!unavailable"

func FuzzHTTPRequest(f *testing.F) {
	tok := kv.EncodePageToken([]byte("a"))
	seeds := []struct {
		method, target, headers string
		body                    []byte
	}{
		{"PUT", "/v1/kv/default/a", "", []byte("value")},
		{"PUT", "/v1/kv/default/a", `If-Match: "1"`, []byte("v2")},
		{"PUT", "/v1/kv/default/a", "If-Match: 1", []byte("v2")},
		{"PUT", "/v1/kv/default/a", "If-Match: garbage", []byte("v2")},
		{"PUT", "/v1/kv/default/b", "If-None-Match: *", []byte("v")},
		{"PUT", "/v1/kv/default/a%2Fb/c%00", "Content-Length: 3", []byte("abc")},
		{"PUT", "/v1/kv/default/a?ttl=30s", "", []byte("v")},
		{"PUT", "/v1/kv/default/" + strings.Repeat("k", 65), "", []byte("v")},
		{"PUT", "/v1/kv/default/big", "", bytes.Repeat([]byte("v"), 257)},
		{"PUT", "/v1/kv/default/big", "Content-Length: 100000", []byte("v")},
		{"PUT", "/v1/kv/default/chunk", "Transfer-Encoding: chunked", []byte("!broken")},
		{"PUT", "/v1/kv/default/" + unavailablePrefix, "", []byte("v")},
		{"GET", "/v1/kv/default/a", "", nil},
		{"GET", "/v1/kv/default/a", `If-None-Match: "1", W/"2"`, nil},
		{"GET", "/v1/kv/default/a?consistency=stale", "", nil},
		{"GET", "/v1/kv/default/a?history=true&limit=3", "", nil},
		{"GET", "/v1/kv/default/a?version=1", "", nil},
		{"GET", "/v1/kv/default/a?version=x&history", "", nil},
		{"GET", "/v1/watch/default?prefix=a&start_version=3", "", nil},
		{"GET", "/v1/watch/default?key=a&resume_token=AQEAAA", "Last-Event-ID: x", nil},
		{"HEAD", "/v1/kv/default/a", "", nil},
		{"DELETE", "/v1/kv/default/a", `If-Match: "3"`, nil},
		{"DELETE", "/v1/kv/default/", "", nil},
		{"GET", "/v1/kv/default?prefix=a&limit=2&values=true", "", nil},
		{"GET", "/v1/kv/default?start=a&end=z&page_token=" + tok, "", nil},
		{"GET", "/v1/kv/default?limit=-1", "", nil},
		{"GET", "/v1/kv/default?page_token=AAAA", "", nil},
		{"GET", "/v1/kv/BAD", "", nil},
		{"POST", "/v1/tables", "Content-Type: application/json", []byte(`{"name":"t1","partitioning":"range"}`)},
		{"POST", "/v1/tables", "", []byte(`{"name":"t2","partitioning":"hash"}`)},
		{"POST", "/v1/tables", "", []byte(`{"name":"t3","x":1}`)},
		{"POST", "/v1/tables", "", []byte(`{"name":"t4","max_bytes":2048,"max_writes_per_sec":-1}`)},
		{"POST", "/v1/tables", "", []byte(`{"name":`)},
		{"GET", "/v1/tables", "", nil},
		{"GET", "/v1/tables/default", "", nil},
		{"PATCH", "/v1/tables/default", "", []byte(`{}`)},
		{"PATCH", "/v1/tables/default", "", []byte(`{"learners":1,"consistency":"stale","max_bytes":10}`)},
		{"DELETE", "/v1/tables/t1", "", nil},
		{"GET", "/v1/cluster", "", nil},
		{"GET", "/healthz", "", nil},
		{"GET", "/readyz", "", nil},
		{"OPTIONS", "/v1/kv/default/a", "", nil},
		{"BREW", "/v1/kv/default/a", "", nil},
		{"GET", "/nowhere/..//x", "", nil},
		{"GET", "*", "", nil},
		{"GET", "http://other/v1/kv/default/a", "", nil},
	}
	for _, s := range seeds {
		f.Add(s.method, s.target, s.headers, s.body)
	}

	svc := kvtest.NewMemService()
	// Keys under unavailablePrefix fail as a lost leader would.
	svc.SetFail(func(_ string, key []byte) error {
		if bytes.HasPrefix(key, []byte(unavailablePrefix)) {
			return kv.Errorf(kv.ErrUnavailable, "injected")
		}
		return nil
	})
	h := New(svc, Options{
		Limits:     fuzzLimits,
		Registerer: prometheus.NewRegistry(),
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	f.Fuzz(func(t *testing.T, method, target, headers string, body []byte) {
		r := fuzzRequest(method, target, headers, body)
		if r == nil {
			return // net/http itself would have refused it
		}
		before := svc.Injected()
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		injected := svc.Injected() != before

		if w.Code >= 500 && !injected {
			t.Fatalf("%s %q: status %d without an injected error: %s", method, target, w.Code, w.Body)
		}
		if w.Code == http.StatusMethodNotAllowed && w.Header().Get("Allow") == "" {
			t.Fatalf("405 without Allow")
		}
		if w.Code >= 400 && r.Method != http.MethodHead {
			var e errorJSON
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
				t.Fatalf("%s %q: status %d with body %q (%v)", method, target, w.Code, w.Body, err)
			}
		}
	})
}

// fuzzRequest parses a request the way net/http's server does. A body
// starting with '!' breaks off with an error, like a client that hangs up.
func fuzzRequest(method, target, headers string, body []byte) *http.Request {
	if strings.ContainsAny(method+target, " \r\n") {
		return nil
	}
	var raw strings.Builder
	raw.WriteString(method + " " + target + " HTTP/1.1\r\nHost: cairn\r\n")
	for _, line := range strings.Split(headers, "\n") {
		line = strings.TrimRight(line, "\r")
		if line != "" {
			raw.WriteString(line + "\r\n")
		}
	}
	raw.WriteString("\r\n")
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw.String())))
	if err != nil {
		return nil
	}
	var rd io.Reader = bytes.NewReader(body)
	if len(body) > 0 && body[0] == '!' {
		rd = io.MultiReader(rd, errReader{})
	}
	r.Body = io.NopCloser(rd)
	return r
}
