package metrics

import (
	"net/netip"
	"sync"
	"time"
)

// Activity is what the server did lately, kept in memory for the admin
// API's activity queries: per-second counts over the last SeriesSeconds
// and the last RecentPullsKept pulls. Both are fixed-size rings written
// under one short mutex, with no allocation per request; totals since the
// start are kept alongside. The zero value is not usable; Metrics makes one.
type Activity struct {
	now     func() time.Time
	started time.Time

	mu      sync.Mutex
	hubHost string
	secs    [SeriesSeconds]Second
	total   Totals
	pulls   [RecentPullsKept]Pull
	next    int   // where the next pull goes
	nPulls  int   // pulls kept, up to RecentPullsKept
	seq     int64 // the Seq of the last pull
}

// SeriesSeconds is how far back the per-second counts go (one hour).
const SeriesSeconds = 3600

// RecentPullsKept bounds the recent pulls kept.
const RecentPullsKept = 500

// Totals are counts of a stretch of time. A stale answer (the upstream
// failed, the cached copy was served) counts as served from cache.
type Totals struct {
	// Hits, Misses and Stale count cache lookups of content clients asked
	// for (manifests, blobs, tag lists, referrers).
	Hits, Misses, Stale int64
	// Saved counts manifests served from cache without an upstream GET:
	// the pulls an upstream such as Docker Hub did not count.
	Saved int64
	// BytesCache and BytesUpstream are the bytes sent to clients from
	// storage and from downloads in progress.
	BytesCache, BytesUpstream int64
	// UpstreamRequests counts requests sent upstream (tokens included).
	UpstreamRequests int64
}

// Requests is the number of lookups counted.
func (t Totals) Requests() int64 { return t.Hits + t.Misses + t.Stale }

func (t *Totals) add(o Totals) {
	t.Hits += o.Hits
	t.Misses += o.Misses
	t.Stale += o.Stale
	t.Saved += o.Saved
	t.BytesCache += o.BytesCache
	t.BytesUpstream += o.BytesUpstream
	t.UpstreamRequests += o.UpstreamRequests
}

// Second is one second of the series.
type Second struct {
	// Unix is the second (Unix time) the counts are of.
	Unix int64
	Totals
	// HubRemaining is the lowest pull count remaining the Docker Hub
	// upstream reported in this second, for any credential; -1 when it
	// reported none.
	HubRemaining int
}

// Pull is one request for content a client made.
type Pull struct {
	// Seq numbers the pulls from 1 in the order they were recorded.
	Seq int64
	At  time.Time
	// Result is ResultHit, ResultMiss or ResultStale.
	Result string
	// Kind is "manifest" or "blob".
	Kind string
	// Image is the repository as the client named it inside its group or
	// virtual registry ("library/alpine"); Reference the tag or digest.
	Image, Reference string
	// GroupID and Group name the group whose dependency proxy served it;
	// VirtualRegistryID the virtual registry (then GroupID is 0).
	GroupID           int64
	Group             string
	VirtualRegistryID int64
	Client            netip.Addr
	// Principal is the puller's display name.
	Principal string
}

func newActivity(now func() time.Time) *Activity {
	return &Activity{now: now, started: now()}
}

// SetHubHost names the upstream host whose rate limit is Docker Hub's in
// the series (the instance upstream).
func (a *Activity) SetHubHost(host string) {
	a.mu.Lock()
	a.hubHost = host
	a.mu.Unlock()
}

// Started is when counting began (the server's start).
func (a *Activity) Started() time.Time { return a.started }

// slot returns the second of now, reset when it held an older second.
// The caller holds a.mu.
func (a *Activity) slot(now time.Time) *Second {
	u := now.Unix()
	s := &a.secs[u%SeriesSeconds]
	if s.Unix != u {
		*s = Second{Unix: u, HubRemaining: -1}
	}
	return s
}

// count adds d to the current second and to the totals.
func (a *Activity) count(d Totals) {
	now := a.now()
	a.mu.Lock()
	a.slot(now).add(d)
	a.total.add(d)
	a.mu.Unlock()
}

func (a *Activity) result(kind, result string) {
	var d Totals
	switch result {
	case ResultHit:
		d.Hits = 1
	case ResultMiss:
		d.Misses = 1
	case ResultStale:
		d.Stale = 1
	default:
		return
	}
	if kind == "manifest" && result != ResultMiss {
		d.Saved = 1
	}
	a.count(d)
}

func (a *Activity) rateLimit(host string, remaining int) {
	now := a.now()
	a.mu.Lock()
	if host == a.hubHost {
		s := a.slot(now)
		if s.HubRemaining < 0 || remaining < s.HubRemaining {
			s.HubRemaining = remaining
		}
	}
	a.mu.Unlock()
}

// Pull records a request for content; its Seq is set here.
func (a *Activity) Pull(p Pull) {
	a.mu.Lock()
	a.seq++
	p.Seq = a.seq
	a.pulls[a.next] = p
	a.next = (a.next + 1) % RecentPullsKept
	a.nPulls = min(a.nPulls+1, RecentPullsKept)
	a.mu.Unlock()
}

// RecentPulls returns the pulls kept after Seq after (0: all) that keep
// selects, newest first, at most limit of them (0: all kept). It costs a
// copy of the pulls after after: a caller that remembers the last Seq it
// saw pays for the new pulls only.
func (a *Activity) RecentPulls(limit int, after int64, keep func(Pull) bool) []Pull {
	if limit <= 0 || limit > RecentPullsKept {
		limit = RecentPullsKept
	}
	a.mu.Lock()
	n := min(a.nPulls, int(max(a.seq-after, 0)))
	kept := make([]Pull, n)
	for i := range n {
		kept[i] = a.pulls[(a.next-1-i+2*RecentPullsKept)%RecentPullsKept]
	}
	a.mu.Unlock()
	out := kept[:0]
	for _, p := range kept {
		if len(out) == limit {
			break
		}
		if keep == nil || keep(p) {
			out = append(out, p)
		}
	}
	return out
}

// Since returns the totals since the start and over the last window
// (at most SeriesSeconds, the current second included).
func (a *Activity) Since(window time.Duration) (sinceStart, recent Totals) {
	secs := min(int64(window/time.Second), SeriesSeconds)
	now := a.now().Unix()
	a.mu.Lock()
	defer a.mu.Unlock()
	for u := now - secs + 1; u <= now; u++ {
		if s := a.secs[((u%SeriesSeconds)+SeriesSeconds)%SeriesSeconds]; s.Unix == u {
			recent.add(s.Totals)
		}
	}
	return a.total, recent
}

// Series returns the last window (at most SeriesSeconds) in n buckets of
// equal length, oldest first; each bucket's Unix is its first second and
// its HubRemaining the lowest seen in it (-1: none).
func (a *Activity) Series(window time.Duration, n int) []Second {
	secs := min(int64(window/time.Second), SeriesSeconds)
	if n <= 0 || secs <= 0 {
		return nil
	}
	n = min(n, int(secs))
	now := a.now().Unix()
	first := now - secs + 1
	out := make([]Second, n)
	for i := range out {
		out[i] = Second{Unix: first + (int64(i)*secs+int64(n)-1)/int64(n), HubRemaining: -1}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for u := first; u <= now; u++ {
		s := a.secs[((u%SeriesSeconds)+SeriesSeconds)%SeriesSeconds]
		if s.Unix != u {
			continue
		}
		b := &out[(u-first)*int64(n)/secs]
		b.add(s.Totals)
		if s.HubRemaining >= 0 && (b.HubRemaining < 0 || s.HubRemaining < b.HubRemaining) {
			b.HubRemaining = s.HubRemaining
		}
	}
	return out
}
