package httpapi

import (
	"net/http"
	"net/http/pprof"
	"strings"

	"github.com/cairn-db/cairn/internal/kv"
)

// pprof serves Go's profiler under /debug/pprof/ to cluster admins only:
// profiles show internals (and a CPU profile costs the node), so they are
// an admin operation like splitting ranges. The handlers are mounted here,
// not on http.DefaultServeMux, so nothing else can expose them.
func (h *handler) pprof(w *statusWriter, r *http.Request) {
	if h.pprofOK == nil {
		h.fail(w, r, kv.Errorf(errNoRoute, "%q", r.URL.Path))
		return
	}
	if err := h.pprofOK(r.Context()); err != nil {
		h.fail(w, r, err)
		return
	}
	switch name := strings.TrimPrefix(r.URL.Path, "/debug/pprof/"); name {
	case "cmdline":
		pprof.Cmdline(w, r)
	case "profile":
		pprof.Profile(w, r)
	case "symbol":
		pprof.Symbol(w, r)
	case "trace":
		pprof.Trace(w, r)
	default:
		pprof.Index(w, r) // the index, and named profiles (heap, goroutine, ...)
	}
}
