package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Warm records the prewarming of watched tags. A nil *Warm records nothing.
type Warm struct {
	entries    prometheus.Gauge
	runs       *prometheus.CounterVec
	checks     *prometheus.CounterVec
	pulls      prometheus.Counter
	prefetched prometheus.Counter
	bytes      prometheus.Counter
	hits       prometheus.Counter
}

// NewWarm registers the warm collectors on m's registry. A nil m gives a
// nil *Warm.
func NewWarm(m *Metrics) (*Warm, error) {
	if m == nil {
		return nil, nil
	}
	w := &Warm{
		entries: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dproxy_warm_entries", Help: "Tags kept warm, over all groups, as the warmer last counted them.",
		}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dproxy_warm_runs_total", Help: "Runs of the warmer over its due entries, by result (ok, error).",
		}, []string{"result"}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dproxy_warm_checks_total", Help: "Checks of warm entries, by state (current, warmed, reserve, size-cap, failed, throttled).",
		}, []string{"state"}),
		pulls: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dproxy_warm_pulls_total", Help: "Upstream manifest GETs (pulls against the rate limit) the warmer spent.",
		}),
		prefetched: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dproxy_warm_prefetched_blobs_total", Help: "Layers and configs the warmer downloaded before any client asked.",
		}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dproxy_warm_prefetched_bytes_total", Help: "Bytes of the blobs the warmer downloaded.",
		}),
		hits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dproxy_warm_hits_total", Help: "Client pulls of a tag whose new manifest the warmer had fetched (with its blobs) before the client asked.",
		}),
	}
	for _, c := range []prometheus.Collector{w.entries, w.runs, w.checks, w.pulls, w.prefetched, w.bytes, w.hits} {
		if err := m.Register(c); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// Entries sets the number of warm entries.
func (w *Warm) Entries(n int) {
	if w != nil {
		w.entries.Set(float64(n))
	}
}

// Run counts one run of the warmer.
func (w *Warm) Run(err error) {
	if w == nil {
		return
	}
	result := "ok"
	if err != nil {
		result = "error"
	}
	w.runs.WithLabelValues(result).Inc()
}

// Check counts one check of an entry that ended in state.
func (w *Warm) Check(state string) {
	if w != nil {
		w.checks.WithLabelValues(state).Inc()
	}
}

// Pulls counts manifest GETs spent warming.
func (w *Warm) Pulls(n int) {
	if w != nil {
		w.pulls.Add(float64(n))
	}
}

// Prefetched counts one blob of size bytes downloaded by the warmer.
func (w *Warm) Prefetched(size int64) {
	if w != nil {
		w.prefetched.Inc()
		w.bytes.Add(float64(size))
	}
}

// Hit counts a client pull served from what the warmer fetched.
func (w *Warm) Hit() {
	if w != nil {
		w.hits.Inc()
	}
}
