package respapi

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// commandDuration is the latency of Redis commands by command name: the
// time from dispatch to the reply being ready (queued in MULTI: EXEC's).
// Names come from the command table only, so the label set is bounded.
var commandDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
	Name:    "cairn_resp_command_duration_seconds",
	Help:    "Latency of Redis protocol commands by command.",
	Buckets: prometheus.ExponentialBucketsRange(0.00002, 10, 18),
}, []string{"command"})

func (cmd *command) observe(d time.Duration) {
	cmd.durationOnce.Do(func() { cmd.duration = commandDuration.WithLabelValues(cmd.name) })
	cmd.duration.Observe(d.Seconds())
}

// Collectors returns the package's metrics, for the node to register once.
func Collectors() []prometheus.Collector { return []prometheus.Collector{commandDuration} }
