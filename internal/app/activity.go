package app

import (
	"time"

	"github.com/dproxy/dproxy/internal/admin"
	"github.com/dproxy/dproxy/internal/cache"
	"github.com/dproxy/dproxy/internal/metrics"
)

// activity is the admin service's view of the caches' downloads in
// progress and the metrics' recent activity.
type activity struct {
	main    *cache.Cache
	virtual *cache.Virtual
	rec     *metrics.Activity
}

func (a activity) Downloads() []admin.Download         { return downloadsOf(a.main.Downloads()) }
func (a activity) UpstreamDownloads() []admin.Download { return downloadsOf(a.virtual.Downloads()) }
func (a activity) Started() time.Time                  { return a.rec.Started() }

func downloadsOf(ds []cache.Download) []admin.Download {
	out := make([]admin.Download, len(ds))
	for i, d := range ds {
		out[i] = admin.Download{Digest: d.Digest, Image: d.Image, Owners: d.Owners, Written: d.Written, Size: d.Size,
			Readers: d.Readers, Started: d.Started}
	}
	return out
}

func (a activity) RecentPulls(limit int, after int64, keep func(admin.Pull) bool) []admin.Pull {
	ps := a.rec.RecentPulls(limit, after, func(p metrics.Pull) bool { return keep(admin.Pull(p)) })
	out := make([]admin.Pull, len(ps))
	for i, p := range ps {
		out[i] = admin.Pull(p)
	}
	return out
}

func totalsOf(t metrics.Totals) admin.ActivityTotals { return admin.ActivityTotals(t) }

func (a activity) Totals(window time.Duration) (sinceStart, recent admin.ActivityTotals) {
	all, last := a.rec.Since(window)
	return totalsOf(all), totalsOf(last)
}

func (a activity) Series(window time.Duration, n int) []admin.ActivityBucket {
	s := a.rec.Series(window, n)
	out := make([]admin.ActivityBucket, len(s))
	for i, b := range s {
		out[i] = admin.ActivityBucket{Start: time.Unix(b.Unix, 0).UTC(), ActivityTotals: totalsOf(b.Totals), HubRemaining: b.HubRemaining}
	}
	return out
}
