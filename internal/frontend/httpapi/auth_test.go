package httpapi

// Tests of the HTTP side of auth: the Authenticate hook runs before every
// route but the probes and /metrics, its error is a 401 with
// WWW-Authenticate and the JSON error body, the principal it returns
// reaches the service, and /v1/auth and /v1/auth/login decode protobuf
// JSON without echoing a malformed body (it may hold a password).

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/kv"
	"github.com/cairn-db/cairn/internal/kv/kvtest"
)

type ctxUser struct{}

type fakeAdmin struct{ got *cairnpb.AuthAdminRequest }

func (f *fakeAdmin) Do(ctx context.Context, req *cairnpb.AuthAdminRequest) (*cairnpb.AuthAdminResponse, error) {
	if ctx.Value(ctxUser{}) != "root" {
		return nil, kv.Errorf(kv.ErrPermissionDenied, "needs root")
	}
	f.got = req
	return &cairnpb.AuthAdminResponse{Enabled: true, Users: []*cairnpb.User{{Name: "bob"}}}, nil
}

func (f *fakeAdmin) Login(ctx context.Context, req *cairnpb.LoginRequest) (*cairnpb.LoginResponse, error) {
	return &cairnpb.LoginResponse{Token: "tok", ExpiresUnix: 1}, nil
}

// deniedGets refuses gets of users other than "reader".
type deniedGets struct{ *kvtest.MemService }

func (d deniedGets) Get(ctx context.Context, r *cairnpb.GetRequest) (*cairnpb.GetResponse, error) {
	if ctx.Value(ctxUser{}) != "reader" {
		return nil, kv.Errorf(kv.ErrPermissionDenied, "lacks read")
	}
	return d.MemService.Get(ctx, r)
}

func TestAuthHook(t *testing.T) {
	admin := &fakeAdmin{}
	authn := func(r *http.Request) (context.Context, error) {
		switch r.Header.Get("Authorization") {
		case "":
			return r.Context(), nil
		case "Bearer reader":
			return context.WithValue(r.Context(), ctxUser{}, "reader"), nil
		case "Bearer root":
			return context.WithValue(r.Context(), ctxUser{}, "root"), nil
		}
		return nil, kv.Errorf(kv.ErrUnauthenticated, "invalid token")
	}
	svc := deniedGets{kvtest.NewMemService()}
	h := New(svc, Options{Registerer: prometheus.NewRegistry(), Authenticate: authn, Admin: admin})
	do := func(method, path, auth, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	if w := do("GET", "/v1/kv/default/k", "Bearer wrong", ""); w.Code != 401 || w.Header().Get("WWW-Authenticate") == "" ||
		!strings.Contains(w.Body.String(), `"unauthenticated"`) {
		t.Fatalf("bad credentials: %d %v %s", w.Code, w.Header(), w.Body)
	}
	for _, p := range []string{"/healthz", "/metrics"} {
		if w := do("GET", p, "Bearer wrong", ""); w.Code != 200 {
			t.Fatalf("%s with bad credentials: %d (probes are not authenticated)", p, w.Code)
		}
	}
	if w := do("GET", "/v1/kv/default/k", "", ""); w.Code != 403 || !strings.Contains(w.Body.String(), "permission_denied") {
		t.Fatalf("anonymous get: %d %s", w.Code, w.Body)
	}
	if w := do("GET", "/v1/kv/default/k", "Bearer reader", ""); w.Code != 404 {
		t.Fatalf("reader get of an absent key: %d %s (the principal must reach the service)", w.Code, w.Body)
	}
	if w := do("POST", "/v1/auth", "Bearer reader", `{"list_users":{}}`); w.Code != 403 {
		t.Fatalf("reader admin: %d %s", w.Code, w.Body)
	}
	w := do("POST", "/v1/auth", "Bearer root", `{"add_user":{"name":"bob","password":"pw"}}`)
	if w.Code != 200 || admin.got.GetAddUser().GetPassword() != "pw" || !strings.Contains(w.Body.String(), `"bob"`) {
		t.Fatalf("root add_user: %d %s %v", w.Code, w.Body, admin.got)
	}
	w = do("POST", "/v1/auth", "Bearer root", `{"add_user":{"name":"bob","password":"SECRET-PASSWORD",}}`)
	if w.Code != 400 || strings.Contains(w.Body.String(), "SECRET") {
		t.Fatalf("malformed body: %d %s (must not echo the body)", w.Code, w.Body)
	}
	if w := do("GET", "/v1/auth", "Bearer root", ""); w.Code != 405 {
		t.Fatalf("GET /v1/auth: %d", w.Code)
	}
	w = do("POST", "/v1/auth/login", "Bearer reader", "")
	body, _ := io.ReadAll(w.Body)
	if w.Code != 200 || !strings.Contains(string(body), `"token":"tok"`) || w.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("login: %d %s %v", w.Code, body, w.Header())
	}
	if !errors.Is(kv.FromCode("permission_denied", "x"), kv.ErrPermissionDenied) {
		t.Fatal("permission_denied does not round-trip through FromCode")
	}
}
