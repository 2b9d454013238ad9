package httpapi

// These tests put the handler behind a real net/http server on loopback:
// what the recorder cannot show (the client's URL encoding of keys, the
// server's handling of an oversized body, a client hanging up mid-request).

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/kv/kvtest"
)

func TestRealServer(t *testing.T) {
	e := newTestEnv(t)
	srv := httptest.NewServer(e.h)
	defer srv.Close()

	send := func(method, path string, body io.Reader) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, body)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}

	resp, _ := send("PUT", "/v1/kv/default/dir%2Ffile/..//x", strings.NewReader("v1"))
	if resp.StatusCode != 200 || resp.Header.Get("ETag") == "" {
		t.Fatalf("PUT: %d", resp.StatusCode)
	}
	resp, body := send("GET", "/v1/kv/default/dir%2Ffile/..//x", nil)
	if resp.StatusCode != 200 || body != "v1" {
		t.Fatalf("GET: %d %q", resp.StatusCode, body)
	}
	if _, err := e.svc.Get(context.Background(), &cairnpb.GetRequest{Table: "default", Key: []byte("dir/file/..//x")}); err != nil {
		t.Fatalf("key not stored verbatim: %v", err)
	}

	// An oversized body of unknown length: 413, and the server survives.
	big := io.MultiReader(bytes.NewReader(make([]byte, 1<<20)), strings.NewReader("x"))
	resp, body = send("PUT", "/v1/kv/default/big", big)
	if resp.StatusCode != 413 || !strings.Contains(body, `"too_large"`) {
		t.Fatalf("oversized PUT: %d %s", resp.StatusCode, body)
	}
	resp, _ = send("GET", "/healthz", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("healthz after 413: %d", resp.StatusCode)
	}
}

// blockingService blocks Get until the request's context ends.
type blockingService struct {
	*kvtest.MemService
	entered chan struct{}
}

func (b *blockingService) Get(ctx context.Context, _ *cairnpb.GetRequest) (*cairnpb.GetResponse, error) {
	close(b.entered)
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestRealServerClientGone(t *testing.T) {
	e := newTestEnv(t)
	svc := &blockingService{MemService: e.svc, entered: make(chan struct{})}
	h := New(svc, Options{Registerer: e.reg, Logger: slogTo(e.log)})
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(done)
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/v1/kv/default/k", nil)
	errc := make(chan error, 1)
	go func() {
		resp, err := srv.Client().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	<-svc.entered
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("request succeeded after cancel")
	}
	<-done
	if log := e.log.String(); strings.Contains(log, "level=ERROR") || strings.Contains(log, "level=WARN") {
		t.Fatalf("a client hanging up was logged as a failure:\n%s", log)
	}
}
