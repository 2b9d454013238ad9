package httpapi

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"unicode/utf8"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/kv"
)

// watchEventJSON is the data of one Server-Sent Event of a watch.
type watchEventJSON struct {
	Key         string `json:"key"`
	KeyBase64   string `json:"key_base64,omitempty"`
	Value       string `json:"value,omitempty"` // base64; puts only
	Version     uint64 `json:"version"`
	ExpiresAt   int64  `json:"expires_at_ms,omitempty"`
	PrevVersion uint64 `json:"prev_version,omitempty"`
}

// watch serves GET /v1/watch/{table}?key=K | ?prefix=P [&start_version=V]
// [&resume_token=T] as Server-Sent Events: one event per change ("put",
// "delete" or "expire"), each with the resume token as its id, and a
// "synced" event once the replay of history is done. A browser's
// EventSource resumes on its own: it sends the last id as Last-Event-ID.
// An error after the stream started is an "error" event with the same
// JSON as an error reply, and the end of the stream.
func (h *handler) watch(w *statusWriter, r *http.Request, table string) {
	req, err := watchRequest(r, table)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	wt, ok := h.svc.(kv.Watcher)
	if !ok {
		h.fail(w, r, kv.Errorf(kv.ErrInternal, "this server cannot watch"))
		return
	}
	flusher, _ := w.ResponseWriter.(http.Flusher)
	started := false
	err = wt.Watch(r.Context(), req, func(resp *cairnpb.WatchResponse) error {
		if !started {
			started = true
			hd := w.Header()
			hd.Set("Content-Type", "text/event-stream")
			hd.Set("Cache-Control", "no-store")
			hd.Set("X-Accel-Buffering", "no")
			w.WriteHeader(http.StatusOK)
		}
		var buf []byte
		if len(resp.Events) == 0 {
			buf = fmt.Appendf(buf, "id: %s\nevent: synced\ndata: {}\n\n", resp.ResumeToken)
		}
		for _, ev := range resp.Events {
			out := watchEventJSON{Key: string(ev.Key), Version: ev.Version, ExpiresAt: ev.ExpireAtMs, PrevVersion: ev.PrevVersion}
			if !utf8.Valid(ev.Key) {
				out.KeyBase64 = base64.StdEncoding.EncodeToString(ev.Key)
			}
			if ev.Type == cairnpb.WatchEvent_PUT {
				out.Value = base64.StdEncoding.EncodeToString(ev.Value)
			}
			data, err := json.Marshal(out)
			if err != nil {
				return err
			}
			kind := map[cairnpb.WatchEvent_Type]string{cairnpb.WatchEvent_PUT: "put", cairnpb.WatchEvent_DELETE: "delete", cairnpb.WatchEvent_EXPIRE: "expire"}[ev.Type]
			// Every event carries the token after it: a client that stops
			// anywhere resumes exactly there.
			buf = fmt.Appendf(buf, "id: %s\nevent: %s\ndata: %s\n\n", ev.ResumeToken, kind, data)
		}
		if _, err := w.Write(buf); err != nil {
			return err
		}
		if flusher != nil {
			flusher.Flush()
		}
		return nil
	})
	if err == nil || r.Context().Err() != nil {
		return
	}
	if !started {
		h.fail(w, r, err)
		return
	}
	status, code := statusOf(err)
	msg := err.Error()
	if status == http.StatusInternalServerError {
		h.log.Error("httpapi: watch failed", "path", r.URL.Path, "err", err)
		msg = "internal error"
	}
	data, _ := json.Marshal(errorJSON{Error: errorBody{Code: code, Message: msg}})
	_, _ = fmt.Fprintf(w, "event: error\ndata: %s\n\n", data)
}

// watchRequest decodes a watch's query and headers.
func watchRequest(r *http.Request, table string) (*cairnpb.WatchRequest, error) {
	q, err := parseQuery(r, "key", "prefix", "start_version", "resume_token")
	if err != nil {
		return nil, err
	}
	req := &cairnpb.WatchRequest{Table: table, EventTokens: true}
	key, hasKey := q["key"]
	prefix, hasPrefix := q["prefix"]
	switch {
	case hasKey && hasPrefix:
		return nil, kv.Errorf(kv.ErrInvalidArgument, "give key or prefix, not both")
	case hasKey:
		req.Key = []byte(key[0])
	case hasPrefix:
		req.Key, req.Prefix = []byte(prefix[0]), true
	default:
		return nil, kv.Errorf(kv.ErrInvalidArgument, "give key=K or prefix=P (prefix= watches the whole table)")
	}
	if v := firstValue(q, "start_version"); v != "" {
		if req.StartVersion, err = strconv.ParseUint(v, 10, 64); err != nil {
			return nil, kv.Errorf(kv.ErrInvalidArgument, "start_version %q is not a version", v)
		}
	}
	req.ResumeToken = firstValue(q, "resume_token")
	if id := r.Header.Get("Last-Event-ID"); id != "" && req.ResumeToken == "" {
		req.ResumeToken = id
	}
	return req, nil
}
