// Package httpapi is cairn's HTTP/JSON front end: an [http.Handler] that
// turns the plain HTTP API of DESIGN.md ("Contract") into calls of
// [kv.Service], and the results and errors of those calls back into HTTP.
//
// # Place on the request path
//
//	client (curl, browser, any HTTP library)
//	  -> net/http server on --listen (shared with gRPC)
//	  -> httpapi: route, decode path/query/headers/body, check limits
//	  -> kv.Service (auth -> router -> replica -> storage)
//
// The package is a thin adapter. It owns no state besides its metrics and
// never retries: the router behind kv.Service forwards and retries.
//
// # Routes
//
//	PUT    /v1/kv/{table}/{key}   body = value; If-Match: "V" | If-None-Match: *
//	GET    /v1/kv/{table}/{key}   value bytes, ETag: "V", Cairn-Version: V (HEAD too);
//	                              ?consistency=linearizable|session|stale&max_staleness=2s;
//	                              Cairn-Session in and out (writes too), Cairn-Consistency,
//	                              Cairn-Served-By, Cairn-Staleness out (consistency.go)
//	DELETE /v1/kv/{table}/{key}   same conditions as PUT
//	GET    /v1/kv/{table}         ?prefix=&start=&end=&limit=&page_token=&values=true
//	POST   /v1/tables             {"name":"…","partitioning":"range"}
//	GET    /v1/tables, GET|PATCH|DELETE /v1/tables/{name}
//	GET    /v1/cluster, /healthz, /readyz, /metrics
//
// The key is everything after "/v1/kv/{table}/" in the escaped path,
// percent-decoded once, so keys may hold '/' (as itself or %2F) and any byte
// (%00-%FF). Routing is done on [url.URL.EscapedPath] by hand rather than by
// [http.ServeMux], which cleans paths ("a//b", "a/../b") and would redirect
// requests for such keys.
//
// # Invariants
//
//  1. Every input is checked at this edge against [Options.Limits] before
//     kv.Service sees it; a client's mistake is a 4xx, never a 5xx or a panic.
//  2. Errors are translated in one place, the table in errors.go, into a
//     status and the JSON body {"error":{"code":"…","message":"…"}}.
//  3. Bodies are read through [http.MaxBytesReader]: a value at most
//     MaxValueBytes, a table request at most 64 KiB; more is 413 "too_large".
//  4. A request whose client went away (its context canceled) is dropped
//     silently: nothing is written and nothing is logged as a failure.
//
// # Usage
//
//	h := httpapi.New(svc, httpapi.Options{
//		Limits:     kv.DefaultLimits,
//		Registerer: prometheus.DefaultRegisterer,
//		Logger:     logger,
//	})
//	srv := &http.Server{Addr: cfg.Listen, Handler: h}
package httpapi
