package httpapi

// TestErrorTable walks errorTable: every kv error kind reaches the client
// with its status and stable code, through a real request to the handler.

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/cairn-db/cairn/internal/kv"
)

func TestErrorTable(t *testing.T) {
	want := []struct {
		err    error
		status int
		code   string
	}{
		{kv.ErrInvalidArgument, 400, "invalid_argument"},
		{kv.ErrNotFound, 404, "not_found"},
		{kv.ErrTableNotFound, 404, "table_not_found"},
		{kv.ErrTableExists, 409, "table_exists"},
		{kv.ErrConditionFailed, 412, "condition_failed"},
		{kv.ErrUnavailable, 503, "unavailable"},
		{kv.ErrTimeout, 504, "timeout"},
		{kv.ErrNotLeader, 503, "not_leader"},
		{kv.ErrInternal, 500, "internal"},
		{errBodyTooLarge, 413, "too_large"},
		{errMethodNotAllowed, 405, "method_not_allowed"},
		{errNoRoute, 404, "no_route"},
		{context.DeadlineExceeded, 504, "timeout"},
		{errors.New("something unexpected"), 500, "internal"},
	}
	for _, tc := range want {
		status, code := statusOf(kv.Errorf(tc.err, "wrapped"))
		if status != tc.status || code != tc.code {
			t.Errorf("%v: %d %q, want %d %q", tc.err, status, code, tc.status, tc.code)
		}
	}
	for _, row := range errorTable {
		// Every kv kind keeps its kv code, so HTTP and gRPC clients see one
		// vocabulary.
		isKind := kv.Code(row.err) != "internal" || row.err == kv.ErrInternal
		if isKind && kv.Code(row.err) != row.code {
			t.Errorf("%v: code %q, kv.Code %q", row.err, row.code, kv.Code(row.err))
		}
	}

	// The same through the handler, for each service error and route kind.
	requests := []struct{ method, path, body string }{
		{"GET", "/v1/kv/default/k", ""},
		{"PUT", "/v1/kv/default/k", "v"},
		{"DELETE", "/v1/kv/default/k", ""},
		{"GET", "/v1/kv/default", ""},
		{"POST", "/v1/tables", `{"name":"t"}`},
		{"GET", "/v1/tables", ""},
		{"GET", "/v1/tables/default", ""},
		{"DELETE", "/v1/tables/default", ""},
		{"PATCH", "/v1/tables/default", `{"learners":1}`},
		{"GET", "/v1/cluster", ""},
	}
	for _, tc := range want[:9] {
		e := newTestEnv(t)
		e.svc.SetFail(func(string, []byte) error { return kv.Errorf(tc.err, "detail-from-service") })
		for _, rq := range requests {
			w := e.do(t, rq.method, rq.path, []byte(rq.body))
			msg := wantError(t, w, tc.status, tc.code)
			if tc.status == http.StatusInternalServerError {
				if msg != "internal error" {
					t.Errorf("internal detail sent to the client: %q", msg)
				}
			} else if !strings.Contains(msg, "detail-from-service") {
				t.Errorf("%s %s: message %q lost the detail", rq.method, rq.path, msg)
			}
		}
		if tc.status >= 500 && !strings.Contains(e.log.String(), "detail-from-service") {
			t.Errorf("%v: 5xx not logged", tc.err)
		}
	}
}
