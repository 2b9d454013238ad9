// Package ui is the web console at /ui: static files embedded in the
// binary (no build step, no npm), which talk to the node's own HTTP API
// with the user's credentials. It shows the cluster as a map (nodes,
// ranges, replicas, leaders, sizes, apply lag) and browses, edits and
// shows the history of keys, within the user's grants: every request the
// page makes is checked by the API like any other client's, so the
// console can show nothing the user could not read with curl.
//
// The files hold no data, so serving them needs no authentication; the
// page asks for credentials when the API answers 401, trades them for a
// login token (POST /v1/auth/login) and keeps only the token, in the
// tab's sessionStorage.
package ui

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed static
var static embed.FS

// Handler serves the console under /ui/ (and redirects /ui there).
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.StripPrefix("/ui/", http.FileServer(http.FS(sub)))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ui" {
			http.Redirect(w, r, "/ui/", http.StatusMovedPermanently)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; img-src 'self' data:")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		if strings.HasSuffix(r.URL.Path, "/") || strings.HasSuffix(r.URL.Path, ".html") {
			h.Set("Cache-Control", "no-store")
		}
		files.ServeHTTP(w, r)
	})
}
