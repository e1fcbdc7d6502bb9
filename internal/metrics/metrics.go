// Package metrics owns dproxy's Prometheus collectors. Every other package
// records through the nil-safe methods of *Metrics, so a nil *Metrics (in
// tests) records nothing. It imports no other dproxy package.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Cache results recorded by CacheResult.
const (
	ResultHit   = "hit"
	ResultMiss  = "miss"
	ResultStale = "stale" // served from cache because the upstream failed
)

// Sources of served bytes recorded by BytesServed.
const (
	SourceCache    = "cache"
	SourceUpstream = "upstream"
)

// Metrics is the set of collectors of one server, registered on its own registry.
type Metrics struct {
	reg               *prometheus.Registry
	requests          *prometheus.CounterVec
	requestSeconds    *prometheus.HistogramVec
	cacheResults      *prometheus.CounterVec
	upstreamRequests  *prometheus.CounterVec
	bytesServed       *prometheus.CounterVec
	inflight          prometheus.Gauge
	rateLimitLimit    *prometheus.GaugeVec
	rateLimitRemain   *prometheus.GaugeVec
	revalidationFails *prometheus.CounterVec
	upstreamFailing   *prometheus.GaugeVec
	activity          *Activity
}

// New creates the collectors on a fresh registry, with Go and process collectors.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg:      reg,
		activity: newActivity(time.Now),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dproxy_http_requests_total", Help: "HTTP requests served, by route and status.",
		}, []string{"route", "method", "status"}),
		requestSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "dproxy_http_request_duration_seconds", Help: "Time to serve a request (headers and body), by route.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"route"}),
		cacheResults: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dproxy_cache_results_total", Help: "Cache lookups by kind (manifest, blob) and result (hit, miss, stale).",
		}, []string{"kind", "result"}),
		upstreamRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dproxy_upstream_requests_total", Help: "Requests sent upstream, by method, kind (manifest, blob, token, ping) and status (0 = no response).",
		}, []string{"method", "kind", "status"}),
		bytesServed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dproxy_served_bytes_total", Help: "Blob and manifest bytes sent to clients, by source (cache, upstream).",
		}, []string{"source"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dproxy_inflight_downloads", Help: "Upstream blob downloads in progress.",
		}),
		rateLimitLimit: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "dproxy_upstream_ratelimit_limit", Help: "Last RateLimit-Limit seen from the upstream, by upstream host and credential.",
		}, []string{"upstream", "credential"}),
		rateLimitRemain: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "dproxy_upstream_ratelimit_remaining", Help: "Last RateLimit-Remaining seen from the upstream, by upstream host and credential.",
		}, []string{"upstream", "credential"}),
		revalidationFails: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dproxy_stale_served_total", Help: "Cached content served instead of asking the upstream (it failed, answered 429, or its pull rate limit is at the reserve), by kind and reason.",
		}, []string{"kind", "reason"}),
		upstreamFailing: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "dproxy_upstream_failing", Help: "1 while the upstream's circuit breaker is open (it failed; requests fail at once and cached content is served until a probe reaches it), by upstream host.",
		}, []string{"upstream"}),
	}
	reg.MustRegister(m.requests, m.requestSeconds, m.cacheResults, m.upstreamRequests, m.bytesServed,
		m.inflight, m.rateLimitLimit, m.rateLimitRemain, m.revalidationFails, m.upstreamFailing,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Activity is the recent activity the counters below also feed; nil for
// a nil *Metrics.
func (m *Metrics) Activity() *Activity {
	if m == nil {
		return nil
	}
	return m.activity
}

// Pull records one request for content in the recent activity.
func (m *Metrics) Pull(p Pull) {
	if m == nil {
		return
	}
	m.activity.Pull(p)
}

// Registry exposes the registry, for tests that read values.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Register adds collectors owned by another package (for example a size
// gauge computed from the store on scrape).
func (m *Metrics) Register(c prometheus.Collector) error {
	if m == nil {
		return nil
	}
	return m.reg.Register(c)
}

// HTTPRequest records one served request.
func (m *Metrics) HTTPRequest(route, method string, status int, seconds float64) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.requestSeconds.WithLabelValues(route).Observe(seconds)
}

// CacheResult records a cache lookup for kind ("manifest", "blob").
func (m *Metrics) CacheResult(kind, result string) {
	if m == nil {
		return
	}
	m.cacheResults.WithLabelValues(kind, result).Inc()
	m.activity.result(kind, result)
}

// StaleServed records cached content served because the upstream failed.
func (m *Metrics) StaleServed(kind, reason string) {
	if m == nil {
		return
	}
	m.revalidationFails.WithLabelValues(kind, reason).Inc()
	m.cacheResults.WithLabelValues(kind, ResultStale).Inc()
	m.activity.result(kind, ResultStale)
}

// UpstreamRequest records one request sent upstream; status 0 means no response.
func (m *Metrics) UpstreamRequest(method, kind string, status int) {
	if m == nil {
		return
	}
	m.upstreamRequests.WithLabelValues(method, kind, strconv.Itoa(status)).Inc()
	m.activity.count(Totals{UpstreamRequests: 1})
}

// BytesServed adds n bytes sent to clients from source.
func (m *Metrics) BytesServed(source string, n int64) {
	if m == nil || n <= 0 {
		return
	}
	m.bytesServed.WithLabelValues(source).Add(float64(n))
	if source == SourceCache {
		m.activity.count(Totals{BytesCache: n})
	} else {
		m.activity.count(Totals{BytesUpstream: n})
	}
}

// InflightDownloads adds delta (+1 on start, -1 on end) to the in-flight gauge.
func (m *Metrics) InflightDownloads(delta int) {
	if m == nil {
		return
	}
	m.inflight.Add(float64(delta))
}

// RateLimit records the last rate-limit headers seen for a credential
// (a name, never a secret) at an upstream host.
func (m *Metrics) RateLimit(upstream, credential string, limit, remaining int) {
	if m == nil {
		return
	}
	m.rateLimitLimit.WithLabelValues(upstream, credential).Set(float64(limit))
	m.rateLimitRemain.WithLabelValues(upstream, credential).Set(float64(remaining))
	m.activity.rateLimit(upstream, remaining)
}

// UpstreamBreaker records whether the circuit breaker of an upstream host
// is open (the upstream is failing).
func (m *Metrics) UpstreamBreaker(upstream string, open bool) {
	if m == nil {
		return
	}
	v := 0.0
	if open {
		v = 1
	}
	m.upstreamFailing.WithLabelValues(upstream).Set(v)
}
