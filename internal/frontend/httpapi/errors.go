package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/cairn-db/cairn/internal/kv"
)

// Errors only the HTTP front end produces. Their codes are not kv codes:
// they describe the HTTP request, not the operation.
var (
	errBodyTooLarge     = errors.New("request body too large")
	errMethodNotAllowed = errors.New("method not allowed")
	errNoRoute          = errors.New("no such path")
)

// errorTable is the one translation from errors to HTTP: status and JSON
// code. The first row whose err matches (errors.Is) wins; an error matching
// no row is internal (500). TestErrorTable walks it.
var errorTable = []struct {
	err    error
	status int
	code   string
}{
	{kv.ErrInvalidArgument, http.StatusBadRequest, "invalid_argument"},
	{kv.ErrNotFound, http.StatusNotFound, "not_found"},
	{kv.ErrTableNotFound, http.StatusNotFound, "table_not_found"},
	{kv.ErrTableExists, http.StatusConflict, "table_exists"},
	{kv.ErrConditionFailed, http.StatusPreconditionFailed, "condition_failed"},
	{kv.ErrUnavailable, http.StatusServiceUnavailable, "unavailable"},
	{kv.ErrTimeout, http.StatusGatewayTimeout, "timeout"},
	{kv.ErrNotLeader, http.StatusServiceUnavailable, "not_leader"},
	{kv.ErrRangeKeyMismatch, http.StatusServiceUnavailable, "range_key_mismatch"},
	{kv.ErrInternal, http.StatusInternalServerError, "internal"},
	{kv.ErrUnauthenticated, http.StatusUnauthorized, "unauthenticated"},
	{kv.ErrPermissionDenied, http.StatusForbidden, "permission_denied"},
	{kv.ErrAlreadyExists, http.StatusConflict, "already_exists"},
	{kv.ErrCompacted, http.StatusGone, "compacted"},
	{kv.ErrResourceExhausted, http.StatusTooManyRequests, "resource_exhausted"},
	{kv.ErrQuotaBytes, http.StatusInsufficientStorage, "quota_bytes"},
	{kv.ErrQuotaRate, http.StatusTooManyRequests, "quota_rate"},
	{kv.ErrTooStale, http.StatusServiceUnavailable, "too_stale"},
	{kv.ErrTxnConflict, http.StatusConflict, "txn_conflict"},
	{kv.ErrTxnAborted, http.StatusConflict, "txn_aborted"},
	{errBodyTooLarge, http.StatusRequestEntityTooLarge, "too_large"},
	{errMethodNotAllowed, http.StatusMethodNotAllowed, "method_not_allowed"},
	{errNoRoute, http.StatusNotFound, "no_route"},
	// A deadline set inside the node (not the client's) ran out while the
	// outcome was unknown.
	{context.DeadlineExceeded, http.StatusGatewayTimeout, "timeout"},
}

// statusOf returns the HTTP status and JSON code of err.
func statusOf(err error) (int, string) {
	for _, row := range errorTable {
		if errors.Is(err, row.err) {
			return row.status, row.code
		}
	}
	return http.StatusInternalServerError, "internal"
}

type errorJSON struct {
	Error errorBody `json:"error"`
}

type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// fail answers r with err translated by errorTable, unless the client went
// away, in which case it writes nothing. Server-side failures (5xx) are
// logged; their internal detail is not sent to the client.
func (h *handler) fail(w *statusWriter, r *http.Request, err error) {
	if errors.Is(r.Context().Err(), context.Canceled) {
		w.status = statusClientClosed
		h.log.Debug("httpapi: client went away", "method", r.Method, "path", r.URL.Path, "err", err)
		return
	}
	status, code := statusOf(err)
	msg := err.Error()
	switch {
	case status == http.StatusInternalServerError:
		h.log.Error("httpapi: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		msg = "internal error"
	case status >= 500:
		h.log.Warn("httpapi: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	// The Basic challenge makes a browser prompt for a password; a script
	// that asks for its own (the console sends X-Requested-With) gets the
	// bare 401 instead.
	if status == http.StatusUnauthorized && r.Header.Get("X-Requested-With") == "" {
		w.Header().Set("WWW-Authenticate", `Basic realm="cairn", charset="UTF-8"`)
	}
	writeJSON(w, r, status, errorJSON{Error: errorBody{Code: code, Message: msg}})
}

// writeJSON writes v as the JSON body with status. HEAD gets the headers
// only.
func writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// Keys and messages are data, not HTML; nosniff keeps browsers from
	// treating them as such.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only a bug in this package (an unencodable type) gets here.
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error":{"code":"internal","message":"internal error"}}` + "\n")
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json")
	hdr.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
}

// writeText writes a short plain-text body.
func writeText(w http.ResponseWriter, r *http.Request, status int, text string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write([]byte(text))
	}
}
