package auth

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairn-db/cairn/internal/kv"
)

// authFailures counts refused requests: credentials that did not verify
// (or none where auth is on), and authenticated requests lacking a
// permission. A rising count is a misconfigured client or someone
// guessing.
var authFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "cairn_auth_failures_total",
	Help: "Requests refused by auth: reason unauthenticated (bad or missing credentials) or permission_denied.",
}, []string{"reason"})

func init() {
	// Export both series from the start, at 0.
	authFailures.WithLabelValues("unauthenticated")
	authFailures.WithLabelValues("permission_denied")
}

// Collectors returns the package's metrics, for the node to register once.
func Collectors() []prometheus.Collector { return []prometheus.Collector{authFailures} }

// denyf counts a permission denial and returns its error.
func denyf(format string, args ...any) error {
	authFailures.WithLabelValues("permission_denied").Inc()
	return kv.Errorf(kv.ErrPermissionDenied, format, args...)
}
