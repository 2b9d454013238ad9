package httpapi

import (
	"encoding/base64"
	"math"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/kv"
)

type versionJSON struct {
	Version uint64 `json:"version"`
}

// itemJSON is one key of a list page. Key is the key as a JSON string; a key
// that is not valid UTF-8 cannot survive that (encoding/json replaces bad
// bytes with U+FFFD), so such a key also carries its exact bytes in
// key_base64.
type itemJSON struct {
	Key       string  `json:"key"`
	KeyBase64 string  `json:"key_base64,omitempty"`
	Value     *string `json:"value,omitempty"` // base64; only with values=true
	Version   uint64  `json:"version"`
	// ExpiresAt is when a key with a TTL expires (unix milliseconds).
	ExpiresAt int64 `json:"expires_at_ms,omitempty"`
}

type listJSON struct {
	Items []itemJSON `json:"items"` // never null
	// NextPageToken is "" on the last page.
	NextPageToken string `json:"next_page_token"`
}

// key serves /v1/kv/{table}/{key}.
func (h *handler) key(w *statusWriter, r *http.Request, table string, key []byte) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		h.get(w, r, table, key)
	case http.MethodPut:
		h.put(w, r, table, key)
	case http.MethodDelete:
		h.delete(w, r, table, key)
	}
}

func setVersion(w http.ResponseWriter, v uint64) {
	s := strconv.FormatUint(v, 10)
	w.Header().Set("ETag", `"`+s+`"`)
	w.Header().Set("Cairn-Version", s)
}

// get answers GET and HEAD with the value bytes. If-None-Match (304) and
// If-Match (412) are honoured as RFC 9110 asks, so HTTP caches work.
func (h *handler) get(w *statusWriter, r *http.Request, table string, key []byte) {
	if raw := r.URL.Query(); raw.Has("version") || raw.Has("history") {
		h.keyHistory(w, r, table, key)
		return
	}
	q, err := parseQuery(r, "consistency", "max_staleness")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	lv, err := parseReadLevel(q, r.Header)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	req := &cairnpb.GetRequest{Table: table, Key: key, Consistency: lv.consistency,
		MaxStalenessMs: lv.maxStalenessMs, SessionToken: lv.session}
	if err := h.limits.ValidateGet(req); err != nil {
		h.fail(w, r, err)
		return
	}
	resp, err := h.svc.Get(r.Context(), req)
	if err != nil {
		setMissHeaders(w, lv.session, err)
		h.fail(w, r, err)
		return
	}
	setSession(w, lv.session, resp.GetSessionToken())
	setServed(w, resp.GetServedConsistency(), resp.GetServedBy(), resp.GetStalenessMs())
	version := resp.GetVersion()
	if done, err := h.maybePrecondition(w, r, version); done || err != nil {
		if err != nil {
			h.fail(w, r, err)
		}
		return
	}
	value := resp.GetValue()
	setVersion(w, version)
	hdr := w.Header()
	if exp := resp.GetExpireAtMs(); exp != 0 {
		hdr.Set("Cairn-Expires-At", strconv.FormatInt(exp, 10))
	}
	hdr.Set("Content-Type", "application/octet-stream")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Content-Length", strconv.Itoa(len(value)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(value)
	}
}

// maybePrecondition answers a GET whose If-Match fails (412) or whose
// If-None-Match matches (304), and reports whether it did.
func (h *handler) maybePrecondition(w *statusWriter, r *http.Request, version uint64) (bool, error) {
	if list := r.Header.Get("If-Match"); list != "" {
		ok, err := etagMatches(list, version, false)
		if err != nil {
			return false, err
		}
		if !ok {
			return false, kv.Errorf(kv.ErrConditionFailed, "If-Match %s does not match version %d", list, version)
		}
	}
	if list := r.Header.Get("If-None-Match"); list != "" {
		match, err := etagMatches(list, version, true)
		if err != nil {
			return false, err
		}
		if match {
			setVersion(w, version)
			w.WriteHeader(http.StatusNotModified)
			return true, nil
		}
	}
	return false, nil
}

func firstValue(q map[string][]string, name string) string {
	if vs := q[name]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

func (h *handler) put(w *statusWriter, r *http.Request, table string, key []byte) {
	q, err := parseQuery(r, "ttl")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	ttl, err := parseTTL(q)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	cond, err := writeCondition(r.Header)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	session, err := sessionHeader(r.Header)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	// Check the key before reading a body that would be refused anyway.
	if err := h.limits.ValidateKey(key); err != nil {
		h.fail(w, r, err)
		return
	}
	value, err := readBody(w, r, h.limits.MaxValueBytes)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	req := &cairnpb.PutRequest{Table: table, Key: key, Value: value, Condition: cond, TtlMs: ttl}
	if err := h.limits.ValidatePut(req); err != nil {
		h.fail(w, r, err)
		return
	}
	resp, err := h.svc.Put(r.Context(), req)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	setSession(w, session, resp.GetSessionToken())
	setVersion(w, resp.GetVersion())
	writeJSON(w, r, http.StatusOK, versionJSON{Version: resp.GetVersion()})
}

func (h *handler) delete(w *statusWriter, r *http.Request, table string, key []byte) {
	if _, err := parseQuery(r); err != nil {
		h.fail(w, r, err)
		return
	}
	cond, err := writeCondition(r.Header)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	session, err := sessionHeader(r.Header)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	req := &cairnpb.DeleteRequest{Table: table, Key: key, Condition: cond}
	if err := h.limits.ValidateDelete(req); err != nil {
		h.fail(w, r, err)
		return
	}
	resp, err := h.svc.Delete(r.Context(), req)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	setSession(w, session, resp.GetSessionToken())
	writeJSON(w, r, http.StatusOK, versionJSON{Version: resp.GetVersion()})
}

// list serves GET /v1/kv/{table}.
func (h *handler) list(w *statusWriter, r *http.Request, table string) {
	req, err := h.listRequest(r, table)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	resp, err := h.svc.List(r.Context(), req)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	setSession(w, req.SessionToken, resp.GetSessionToken())
	setServed(w, resp.GetServedConsistency(), resp.GetServedBy(), resp.GetStalenessMs())
	out := listJSON{Items: make([]itemJSON, 0, len(resp.GetItems())), NextPageToken: resp.GetNextPageToken()}
	for _, kvp := range resp.GetItems() {
		k := kvp.GetKey()
		item := itemJSON{Key: string(k), Version: kvp.GetVersion(), ExpiresAt: kvp.GetExpireAtMs()}
		if !utf8.Valid(k) {
			item.KeyBase64 = base64.StdEncoding.EncodeToString(k)
		}
		if req.Values {
			v := base64.StdEncoding.EncodeToString(kvp.GetValue())
			item.Value = &v
		}
		out.Items = append(out.Items, item)
	}
	writeJSON(w, r, http.StatusOK, out)
}

// listRequest decodes and checks the query of a list. Empty parameters are
// unset; a bare ?values means values=true.
func (h *handler) listRequest(r *http.Request, table string) (*cairnpb.ListRequest, error) {
	q, err := parseQuery(r, "prefix", "start", "end", "limit", "page_token", "values", "consistency", "max_staleness")
	if err != nil {
		return nil, err
	}
	lv, err := parseReadLevel(q, r.Header)
	if err != nil {
		return nil, err
	}
	req := &cairnpb.ListRequest{
		Table:     table,
		Prefix:    bytesOrNil(firstValue(q, "prefix")),
		Start:     bytesOrNil(firstValue(q, "start")),
		End:       bytesOrNil(firstValue(q, "end")),
		PageToken: firstValue(q, "page_token"),

		Consistency: lv.consistency, MaxStalenessMs: lv.maxStalenessMs, SessionToken: lv.session,
	}
	if s := firstValue(q, "limit"); s != "" {
		n, err := parseDecimal(s)
		if err != nil {
			return nil, kv.Errorf(kv.ErrInvalidArgument, "limit must be a non-negative integer; got %q", s)
		}
		if n > uint64(h.limits.MaxListLimit) || n > math.MaxUint32 {
			return nil, kv.Errorf(kv.ErrInvalidArgument, "limit %s is over the maximum %d", s, h.limits.MaxListLimit)
		}
		req.Limit = uint32(n)
	}
	if vs, ok := q["values"]; ok && vs[0] != "" {
		v, err := strconv.ParseBool(vs[0])
		if err != nil {
			return nil, kv.Errorf(kv.ErrInvalidArgument, "values must be true or false; got %q", vs[0])
		}
		req.Values = v
	} else {
		req.Values = ok
	}
	n, err := h.limits.ValidateList(req)
	if err != nil {
		return nil, err
	}
	req.Limit = uint32(min(n, math.MaxUint32))
	if _, err := kv.DecodePageToken(req.PageToken, h.limits); err != nil {
		return nil, err
	}
	return req, nil
}

func bytesOrNil(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}

// parseTTL reads ?ttl=DURATION (Go syntax: 30s, 1h30m, 250ms) of a put
// into milliseconds; absent means no TTL.
func parseTTL(q map[string][]string) (int64, error) {
	vs, ok := q["ttl"]
	if !ok {
		return 0, nil
	}
	d, err := time.ParseDuration(vs[0])
	if err != nil {
		return 0, kv.Errorf(kv.ErrInvalidArgument, "ttl must be a duration such as 30s or 1h; got %q", vs[0])
	}
	if d < time.Millisecond {
		return 0, kv.Errorf(kv.ErrInvalidArgument, "ttl must be at least 1ms; got %q", vs[0])
	}
	return d.Milliseconds(), nil
}
