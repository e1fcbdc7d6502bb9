package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// GroupSize is one group's cache size, as reported by a SizeFunc.
type GroupSize struct {
	Group string // the group's full path
	Bytes int64
}

// SizeFunc reports the cache size of every group and the bytes the stored
// blobs take (a blob shared by groups counted once). It runs on scrape.
type SizeFunc func(ctx context.Context) (groups []GroupSize, stored int64, err error)

// Lifecycle records the cache's background work: TTL expiry, garbage
// collection and size-cap eviction. A nil *Lifecycle records nothing.
type Lifecycle struct {
	expired   *prometheus.CounterVec
	gcBlobs   prometheus.Counter
	gcBytes   prometheus.Counter
	evicted   prometheus.Counter
	evictedB  prometheus.Counter
	runs      *prometheus.CounterVec
	lastRunTS *prometheus.GaugeVec
}

// NewLifecycle registers the lifecycle collectors on m's registry; sizes
// feeds the per-group size gauge (nil leaves it out). A nil m gives a nil
// *Lifecycle.
func NewLifecycle(m *Metrics, sizes SizeFunc) (*Lifecycle, error) {
	if m == nil {
		return nil, nil
	}
	l := &Lifecycle{
		expired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dproxy_ttl_expired_total", Help: "Cache entries removed by the TTL policy, by kind (manifest, blob).",
		}, []string{"kind"}),
		gcBlobs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dproxy_gc_deleted_blobs_total", Help: "Blob files deleted by garbage collection because no group referenced them.",
		}),
		gcBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dproxy_gc_freed_bytes_total", Help: "Bytes freed by garbage collection.",
		}),
		evicted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dproxy_cache_evictions_total", Help: "Blobs evicted (all groups' references removed) to keep the cache under its size cap.",
		}),
		evictedB: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dproxy_cache_evicted_bytes_total", Help: "Bytes of the blobs evicted for the size cap.",
		}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dproxy_lifecycle_runs_total", Help: "Runs of the background cache jobs, by job (ttl, gc, sizecap) and result (ok, error).",
		}, []string{"job", "result"}),
		lastRunTS: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "dproxy_lifecycle_last_success_timestamp_seconds", Help: "When each background cache job last succeeded (Unix time).",
		}, []string{"job"}),
	}
	cs := []prometheus.Collector{l.expired, l.gcBlobs, l.gcBytes, l.evicted, l.evictedB, l.runs, l.lastRunTS}
	if sizes != nil {
		cs = append(cs, &sizeCollector{sizes: sizes,
			group: prometheus.NewDesc("dproxy_cache_size_bytes",
				"Bytes of cached manifests and blobs each group accounts for (a blob shared by groups counts in each).", []string{"group"}, nil),
			stored: prometheus.NewDesc("dproxy_cache_stored_bytes",
				"Bytes of the stored blobs that groups reference, each blob counted once (what the size cap measures).", nil, nil),
		})
	}
	for _, c := range cs {
		if err := m.Register(c); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// Expired counts entries of kind ("manifest", "blob") removed by TTL.
func (l *Lifecycle) Expired(kind string, n int) {
	if l == nil || n <= 0 {
		return
	}
	l.expired.WithLabelValues(kind).Add(float64(n))
}

// Collected counts a blob file deleted by garbage collection.
func (l *Lifecycle) Collected(bytes int64) {
	if l == nil {
		return
	}
	l.gcBlobs.Inc()
	l.gcBytes.Add(float64(bytes))
}

// Evicted counts a blob evicted for the size cap.
func (l *Lifecycle) Evicted(bytes int64) {
	if l == nil {
		return
	}
	l.evicted.Inc()
	l.evictedB.Add(float64(bytes))
}

// Run records the end of a run of job ("ttl", "gc", "sizecap").
func (l *Lifecycle) Run(job string, err error, at time.Time) {
	if l == nil {
		return
	}
	if err != nil {
		l.runs.WithLabelValues(job, "error").Inc()
		return
	}
	l.runs.WithLabelValues(job, "ok").Inc()
	l.lastRunTS.WithLabelValues(job).Set(float64(at.Unix()))
}

// sizeCollector asks for the sizes on every scrape, so the gauge is never
// stale and costs nothing between scrapes.
type sizeCollector struct {
	sizes  SizeFunc
	group  *prometheus.Desc
	stored *prometheus.Desc
}

func (s *sizeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- s.group
	ch <- s.stored
}

func (s *sizeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	groups, stored, err := s.sizes(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(s.group, err)
		return
	}
	for _, g := range groups {
		ch <- prometheus.MustNewConstMetric(s.group, prometheus.GaugeValue, float64(g.Bytes), g.Group)
	}
	ch <- prometheus.MustNewConstMetric(s.stored, prometheus.GaugeValue, float64(stored))
}
