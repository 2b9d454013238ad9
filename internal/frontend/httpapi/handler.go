package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cairn-db/cairn/internal/frontend/ui"
	"github.com/cairn-db/cairn/internal/kv"
)

// maxTableBodyBytes bounds the JSON body of POST /v1/tables.
const maxTableBodyBytes = 64 << 10

// Options configure the handler built by New.
type Options struct {
	// Limits are checked on every request; zero fields take the values of
	// kv.DefaultLimits.
	Limits kv.Limits
	// Registerer receives the handler's metrics (default
	// prometheus.DefaultRegisterer). /metrics always serves the default
	// registry.
	Registerer prometheus.Registerer
	// Logger logs server-side failures (default slog.Default()).
	Logger *slog.Logger
	// Authenticate, when set, authenticates every request but /healthz,
	// /readyz and /metrics: it returns the request's context carrying its
	// principal (internal/auth), or an unauthenticated error (401).
	Authenticate func(r *http.Request) (context.Context, error)
	// Admin serves /v1/auth and /v1/auth/login; nil answers 404.
	Admin AuthAdmin
	// CheckClusterAdmin, when set, guards /debug/pprof/ (Go's profiler):
	// it returns nil for a principal with admin on every table. Unset,
	// /debug/pprof/ answers 404.
	CheckClusterAdmin func(ctx context.Context) error
}

// EnsureDefaults fills unset fields with their defaults.
func (o *Options) EnsureDefaults() {
	d := kv.DefaultLimits
	if o.Limits.MaxKeyBytes <= 0 {
		o.Limits.MaxKeyBytes = d.MaxKeyBytes
	}
	if o.Limits.MaxValueBytes <= 0 {
		o.Limits.MaxValueBytes = d.MaxValueBytes
	}
	if o.Limits.MaxListLimit <= 0 {
		o.Limits.MaxListLimit = d.MaxListLimit
	}
	if o.Limits.DefaultListLimit <= 0 {
		o.Limits.DefaultListLimit = d.DefaultListLimit
	}
	// A default over the maximum would refuse every list without ?limit=.
	o.Limits.DefaultListLimit = min(o.Limits.DefaultListLimit, o.Limits.MaxListLimit)
	if o.Registerer == nil {
		o.Registerer = prometheus.DefaultRegisterer
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// handler serves the HTTP API. It is safe for concurrent use: its fields are
// set by New and only read afterwards.
type handler struct {
	svc      kv.Service
	limits   kv.Limits
	log      *slog.Logger
	metrics  http.Handler
	duration *prometheus.HistogramVec
	authn    func(r *http.Request) (context.Context, error)
	admin    AuthAdmin
	ui       http.Handler // the web console's files (package ui)
	pprofOK  func(ctx context.Context) error
}

// New returns the HTTP/JSON API over svc. It registers the histogram
// cairn_http_request_duration_seconds{route,method,code} with
// opts.Registerer; registering twice on one registry reuses the first one.
func New(svc kv.Service, opts Options) http.Handler {
	opts.EnsureDefaults()
	h := &handler{
		svc:     svc,
		limits:  opts.Limits,
		log:     opts.Logger,
		metrics: promhttp.Handler(),
		authn:   opts.Authenticate,
		admin:   opts.Admin,
		ui:      ui.Handler(),
		pprofOK: opts.CheckClusterAdmin,
	}
	h.duration = registerDuration(opts.Registerer, opts.Logger)
	return h
}

func registerDuration(reg prometheus.Registerer, log *slog.Logger) *prometheus.HistogramVec {
	hv := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "cairn_http_request_duration_seconds",
		Help:    "Latency of HTTP API requests by route, method and status code.",
		Buckets: prometheus.ExponentialBucketsRange(0.0001, 10, 16),
	}, []string{"route", "method", "code"})
	if err := reg.Register(hv); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(*prometheus.HistogramVec); ok {
				return existing
			}
		}
		// NB: the handler still works; only its metrics are not exported.
		log.Error("httpapi: register metrics", "err", err)
	}
	return hv
}

// ServeHTTP routes one request and records its latency.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	t := parseTarget(r.URL.EscapedPath())
	h.serve(sw, r, t)
	h.duration.WithLabelValues(t.route.label(), methodLabel(r.Method), strconv.Itoa(sw.code())).
		Observe(time.Since(start).Seconds())
}

// serve checks the method against the route, then calls the route's
// handler for that method.
func (h *handler) serve(w *statusWriter, r *http.Request, t target) {
	if t.route == routeNone {
		h.fail(w, r, kv.Errorf(errNoRoute, "%q", r.URL.Path))
		return
	}
	allow := t.route.allow()
	if !methodAllowed(allow, r.Method) {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		if r.Method == http.MethodOptions {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		h.fail(w, r, kv.Errorf(errMethodNotAllowed, "%s is not allowed on %s; allowed: %s",
			r.Method, t.route.label(), strings.Join(allow, ", ")))
		return
	}
	if t.err != nil {
		h.fail(w, r, t.err)
		return
	}
	if h.authn != nil && t.route.needsAuth() {
		ctx, err := h.authn(r)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		r = r.WithContext(ctx)
	}
	switch t.route {
	case routeAuth:
		h.authAdmin(w, r)
	case routeLogin:
		h.login(w, r)
	case routeHealthz:
		writeText(w, r, http.StatusOK, "ok")
	case routeReadyz:
		h.readyz(w, r)
	case routeMetrics:
		h.metrics.ServeHTTP(w, r)
	case routeCluster:
		h.cluster(w, r)
	case routeSplit:
		h.splitRange(w, r)
	case routeMerge:
		h.mergeRange(w, r)
	case routeNodes:
		h.nodeAction(w, r)
	case routeTables:
		h.tables(w, r)
	case routeTable:
		h.table(w, r, t.table)
	case routeList:
		h.list(w, r, t.table)
	case routeKey:
		h.key(w, r, t.table, t.key)
	case routeWatch:
		h.watch(w, r, t.table)
	case routeUI:
		h.ui.ServeHTTP(w, r)
	case routePprof:
		h.pprof(w, r)
	case routeTxn:
		h.txn(w, r)
	}
}

// route names a family of paths; it is also the "route" metric label.
type route int

const (
	routeNone route = iota
	routeHealthz
	routeReadyz
	routeMetrics
	routeCluster
	routeSplit
	routeMerge
	routeTables
	routeTable
	routeList
	routeKey
	routeAuth
	routeLogin
	routeWatch
	routeTxn
	routeUI
	routePprof
	routeNodes
)

var routeInfo = [...]struct {
	label string
	allow []string
}{
	routeNone:    {"none", nil},
	routeHealthz: {"/healthz", []string{"GET", "HEAD"}},
	routeReadyz:  {"/readyz", []string{"GET", "HEAD"}},
	routeMetrics: {"/metrics", []string{"GET", "HEAD"}},
	routeCluster: {"/v1/cluster", []string{"GET", "HEAD"}},
	routeSplit:   {"/v1/ranges/split", []string{"POST"}},
	routeMerge:   {"/v1/ranges/merge", []string{"POST"}},
	routeNodes:   {"/v1/cluster/nodes", []string{"POST"}},
	routeTables:  {"/v1/tables", []string{"GET", "HEAD", "POST"}},
	routeTable:   {"/v1/tables/{name}", []string{"GET", "HEAD", "PATCH", "DELETE"}},
	routeList:    {"/v1/kv/{table}", []string{"GET", "HEAD"}},
	routeKey:     {"/v1/kv/{table}/{key}", []string{"GET", "HEAD", "PUT", "DELETE"}},
	routeAuth:    {"/v1/auth", []string{"POST"}},
	routeLogin:   {"/v1/auth/login", []string{"POST"}},
	routeWatch:   {"/v1/watch/{table}", []string{"GET"}},
	routeTxn:     {"/v1/txn", []string{"POST"}},
	routeUI:      {"/ui", []string{"GET", "HEAD"}},
	routePprof:   {"/debug/pprof", []string{"GET", "POST"}},
}

// needsAuth reports whether the route's requests are authenticated
// (probes and metrics are not: they reveal no data).
func (r route) needsAuth() bool {
	return r != routeHealthz && r != routeReadyz && r != routeMetrics && r != routeUI
}

func (r route) label() string   { return routeInfo[r].label }
func (r route) allow() []string { return routeInfo[r].allow }

func methodAllowed(allow []string, method string) bool {
	for _, m := range allow {
		if m == method {
			return true
		}
	}
	return false
}

// methodLabel bounds the metric's method label to the methods we know.
func methodLabel(m string) string {
	switch m {
	case "GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS":
		return m
	}
	return "other"
}

// target is a request path split into its route and decoded parameters.
type target struct {
	route route
	table string
	key   []byte
	// err is set when the path names a route but a parameter is invalid
	// (bad escape, bad table name, empty key); it is reported after the
	// method check so that 405 wins over 400.
	err error
}

// parseTarget routes an escaped path. Parameters are percent-decoded here,
// once: the table is the segment after /v1/kv/ (or /v1/tables/), the key is
// the whole rest of the path after /v1/kv/{table}/.
func parseTarget(escaped string) target {
	switch escaped {
	case "/healthz":
		return target{route: routeHealthz}
	case "/readyz":
		return target{route: routeReadyz}
	case "/metrics":
		return target{route: routeMetrics}
	case "/ui":
		return target{route: routeUI}
	case "/v1/cluster":
		return target{route: routeCluster}
	case "/v1/ranges/split":
		return target{route: routeSplit}
	case "/v1/ranges/merge":
		return target{route: routeMerge}
	case "/v1/cluster/nodes":
		return target{route: routeNodes}
	case "/v1/tables":
		return target{route: routeTables}
	case "/v1/auth":
		return target{route: routeAuth}
	case "/v1/auth/login":
		return target{route: routeLogin}
	case "/v1/txn":
		return target{route: routeTxn}
	}
	if strings.HasPrefix(escaped, "/ui/") {
		return target{route: routeUI}
	}
	if strings.HasPrefix(escaped, "/debug/pprof/") {
		return target{route: routePprof}
	}
	if rest, ok := strings.CutPrefix(escaped, "/v1/watch/"); ok {
		if strings.Contains(rest, "/") {
			return target{route: routeNone}
		}
		t := target{route: routeWatch}
		t.table, t.err = decodeTable(rest)
		return t
	}
	if rest, ok := strings.CutPrefix(escaped, "/v1/tables/"); ok {
		if strings.Contains(rest, "/") {
			return target{route: routeNone}
		}
		t := target{route: routeTable}
		t.table, t.err = decodeTable(rest)
		return t
	}
	rest, ok := strings.CutPrefix(escaped, "/v1/kv/")
	if !ok {
		return target{route: routeNone}
	}
	tableEsc, keyEsc, hasKey := strings.Cut(rest, "/")
	t := target{route: routeList}
	t.table, t.err = decodeTable(tableEsc)
	if !hasKey {
		return t
	}
	t.route = routeKey
	if t.err != nil {
		return t
	}
	key, err := url.PathUnescape(keyEsc)
	switch {
	case err != nil:
		t.err = kv.Errorf(kv.ErrInvalidArgument, "key in path is not valid percent-encoding")
	case key == "":
		t.err = kv.Errorf(kv.ErrInvalidArgument, "key is empty")
	default:
		t.key = []byte(key)
	}
	return t
}

func decodeTable(escaped string) (string, error) {
	name, err := url.PathUnescape(escaped)
	if err != nil {
		return "", kv.Errorf(kv.ErrInvalidArgument, "table name in path is not valid percent-encoding")
	}
	if err := kv.ValidateTableName(name); err != nil {
		return "", err
	}
	return name, nil
}

// statusWriter remembers the status code written, for the metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// statusClientClosed is the metric code of a request whose client went away
// before it was answered (nginx's convention; never sent).
const statusClientClosed = 499

func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}
