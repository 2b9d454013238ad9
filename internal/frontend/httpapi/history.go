package httpapi

import (
	"encoding/base64"
	"net/http"
	"strconv"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/kv"
)

type historyJSON struct {
	Key      string       `json:"key"`
	Versions []changeJSON `json:"versions"` // newest first, never null
	// Complete: the list reaches back to the key's first change.
	Complete bool `json:"complete"`
}

type changeJSON struct {
	Type        string  `json:"type"` // put, delete, expire
	Version     uint64  `json:"version"`
	Value       *string `json:"value,omitempty"` // base64; puts only
	ExpiresAt   int64   `json:"expires_at_ms,omitempty"`
	PrevVersion uint64  `json:"prev_version,omitempty"`
}

var changeTypes = map[cairnpb.WatchEvent_Type]string{
	cairnpb.WatchEvent_PUT: "put", cairnpb.WatchEvent_DELETE: "delete", cairnpb.WatchEvent_EXPIRE: "expire",
}

// keyHistory serves GET /v1/kv/{table}/{key}?version=V (the value the key
// had at version V: 404 if it did not exist then, 410 if that version is
// no longer retained) and ?history[=true][&limit=N] (the retained changes,
// newest first, as JSON).
func (h *handler) keyHistory(w *statusWriter, r *http.Request, table string, key []byte) {
	q, err := parseQuery(r, "version", "history", "limit")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	hs, ok := h.svc.(kv.Historian)
	if !ok {
		h.fail(w, r, kv.Errorf(kv.ErrInternal, "this server cannot read history"))
		return
	}
	req := &cairnpb.HistoryRequest{Table: table, Key: key}
	if v, ok := q["version"]; ok {
		if _, both := q["history"]; both {
			h.fail(w, r, kv.Errorf(kv.ErrInvalidArgument, "give version=V or history, not both"))
			return
		}
		if req.AtVersion, err = strconv.ParseUint(v[0], 10, 64); err != nil || req.AtVersion == 0 {
			h.fail(w, r, kv.Errorf(kv.ErrInvalidArgument, "version %q is not a version", v[0]))
			return
		}
	} else if hv := firstValue(q, "history"); hv != "" && hv != "true" {
		h.fail(w, r, kv.Errorf(kv.ErrInvalidArgument, "history takes no value but true; got %q", hv))
		return
	}
	if l := firstValue(q, "limit"); l != "" {
		n, err := strconv.ParseUint(l, 10, 32)
		if err != nil || n == 0 {
			h.fail(w, r, kv.Errorf(kv.ErrInvalidArgument, "limit %q is not a positive integer", l))
			return
		}
		req.Limit = uint32(n)
	}
	if err := h.limits.ValidateHistory(req); err != nil {
		h.fail(w, r, err)
		return
	}
	resp, err := hs.History(r.Context(), req)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if req.AtVersion > 0 {
		if len(resp.Changes) != 1 {
			h.fail(w, r, kv.Errorf(kv.ErrInternal, "history at a version returned %d changes", len(resp.Changes)))
			return
		}
		c := resp.Changes[0]
		setVersion(w, c.Version)
		hdr := w.Header()
		if c.ExpireAtMs != 0 {
			hdr.Set("Cairn-Expires-At", strconv.FormatInt(c.ExpireAtMs, 10))
		}
		hdr.Set("Content-Type", "application/octet-stream")
		hdr.Set("X-Content-Type-Options", "nosniff")
		hdr.Set("Content-Length", strconv.Itoa(len(c.Value)))
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			_, _ = w.Write(c.Value)
		}
		return
	}
	out := historyJSON{Key: string(key), Versions: make([]changeJSON, 0, len(resp.Changes)), Complete: resp.Complete}
	for _, c := range resp.Changes {
		cj := changeJSON{Type: changeTypes[c.Type], Version: c.Version, ExpiresAt: c.ExpireAtMs, PrevVersion: c.PrevVersion}
		if c.Type == cairnpb.WatchEvent_PUT {
			v := base64.StdEncoding.EncodeToString(c.Value)
			cj.Value = &v
		}
		out.Versions = append(out.Versions, cj)
	}
	writeJSON(w, r, http.StatusOK, out)
}
