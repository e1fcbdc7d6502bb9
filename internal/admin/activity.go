package admin

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/dproxy/dproxy/internal/store"
)

// ActivitySource is what the server keeps in memory about what it is
// doing: downloads in progress, recent pulls, per-second counts. Every
// method must be cheap (bounded by what is in flight or kept) and safe for
// concurrent use; the composition root adapts the cache and metrics.
type ActivitySource interface {
	// Downloads are the dependency proxy's blob downloads in progress;
	// their Owners are group ids.
	Downloads() []Download
	// UpstreamDownloads are the virtual registries' downloads in
	// progress; their Owners are virtual registry upstream ids.
	UpstreamDownloads() []Download
	// RecentPulls are the pulls kept after Seq after (0: all) that keep
	// selects, newest first, at most limit; it costs what is after after.
	RecentPulls(limit int, after int64, keep func(Pull) bool) []Pull
	// Totals are the counts since the start and over the last window.
	Totals(window time.Duration) (sinceStart, recent ActivityTotals)
	// Series is the last window in n buckets, oldest first.
	Series(window time.Duration, n int) []ActivityBucket
	// Started is when counting began.
	Started() time.Time
}

// Download is a blob download in progress.
type Download struct {
	Digest Digest
	// Image is the upstream repository of the client that started it.
	Image  string
	Owners []int64
	// Written counts the bytes received; Size is the whole, -1 if unknown.
	Written, Size int64
	// Readers counts the clients streaming from it now.
	Readers int
	Started time.Time
}

// ActiveDownload is a download as a caller may see it: the groups of its
// clients that the caller may read, or the virtual registry it serves.
type ActiveDownload struct {
	Download
	// Groups are the full paths of the groups served (dependency proxy).
	Groups []string
	// VirtualRegistry names the virtual registry served, VirtualGroup
	// its group; both "" for the dependency proxy.
	VirtualRegistry, VirtualGroup string
}

// Pull is a request for content a client made.
type Pull struct {
	// Seq numbers the pulls in the order they were recorded.
	Seq int64
	At  time.Time
	// Result is "hit", "miss" or "stale"; Kind "manifest" or "blob".
	Result, Kind     string
	Image, Reference string
	// GroupID and Group are the dependency proxy's; VirtualRegistryID the
	// virtual registry's (GroupID is then 0).
	GroupID           int64
	Group             string
	VirtualRegistryID int64
	Client            netip.Addr
	Principal         string
}

// RecentPull is a pull with the name of its virtual registry, if any.
type RecentPull struct {
	Pull
	VirtualRegistry, VirtualGroup string
}

// ActivityTotals are counts over a stretch of time; a stale answer counts
// as served from cache.
type ActivityTotals struct {
	Hits, Misses, Stale int64
	// Saved counts manifests served from cache with no upstream GET.
	Saved                     int64
	BytesCache, BytesUpstream int64
	UpstreamRequests          int64
}

// ActivityBucket is one bucket of a series; HubRemaining is the lowest
// Docker Hub pull count remaining seen in it, -1 when none was.
type ActivityBucket struct {
	Start time.Time
	ActivityTotals
	HubRemaining int
}

// ActivityStats are the instance's cache figures.
type ActivityStats struct {
	Started              time.Time
	SinceStart, Last5Min ActivityTotals
}

// RecentWindow is the "recent" window of ActivityStats.
const RecentWindow = 5 * time.Minute

// Series limits.
const (
	MaxSeriesMinutes = 60
	MaxSeriesBuckets = 600
)

// noActivity is the ActivitySource of a Service without one.
type noActivity struct{}

func (noActivity) Downloads() []Download                          { return nil }
func (noActivity) UpstreamDownloads() []Download                  { return nil }
func (noActivity) RecentPulls(int, int64, func(Pull) bool) []Pull { return nil }
func (noActivity) Totals(time.Duration) (a, b ActivityTotals)     { return }
func (noActivity) Series(time.Duration, int) []ActivityBucket     { return nil }
func (noActivity) Started() time.Time                             { return time.Time{} }

func (s *Service) activity() ActivitySource {
	if s.opts.Activity == nil {
		return noActivity{}
	}
	return s.opts.Activity
}

// Activity returns the instance's hit and byte counts since the start and
// over the last RecentWindow. They are instance-wide sums that name no
// group, image or user, so any signed-in caller may read them.
func (s *Service) Activity(a Actor) ActivityStats {
	all, recent := s.activity().Totals(RecentWindow)
	return ActivityStats{Started: s.activity().Started(), SinceStart: all, Last5Min: recent}
}

// ActivitySeries returns the last minutes (1 to MaxSeriesMinutes) in
// buckets (1 to MaxSeriesBuckets) of equal length, oldest first. Like
// Activity it names nothing and any signed-in caller may read it.
func (s *Service) ActivitySeries(a Actor, minutes, buckets int) ([]ActivityBucket, error) {
	if minutes < 1 || minutes > MaxSeriesMinutes {
		return nil, invalid("minutes is %d; the series covers 1 to %d minutes", minutes, MaxSeriesMinutes)
	}
	if buckets < 1 || buckets > MaxSeriesBuckets {
		return nil, invalid("buckets is %d; ask for 1 to %d", buckets, MaxSeriesBuckets)
	}
	return s.activity().Series(time.Duration(minutes)*time.Minute, buckets), nil
}

// activityScope says which groups and virtual registries a caller may see
// activity of. It reads the groups once and each virtual registry (and
// upstream) asked about once.
type activityScope struct {
	s        *Service
	ctx      context.Context
	readable map[int64]string // group id → path
	regs     map[int64]*store.VirtualRegistry
	ups      map[int64]int64 // upstream id → registry id (0: unknown)
}

func (s *Service) activityScope(ctx context.Context, a Actor) (*activityScope, error) {
	readable, _, err := s.readableGroups(ctx, a)
	if err != nil {
		return nil, err
	}
	sc := &activityScope{s: s, ctx: ctx, readable: make(map[int64]string, len(readable)),
		regs: map[int64]*store.VirtualRegistry{}, ups: map[int64]int64{}}
	for _, g := range readable {
		sc.readable[g.ID] = g.Path
	}
	return sc, nil
}

// lazyScope reads the caller's scope the first time a pull asks for it.
type lazyScope struct {
	s   *Service
	ctx context.Context
	a   Actor
	sc  *activityScope
	err error
}

func (l *lazyScope) get() (*activityScope, bool) {
	if l.sc == nil && l.err == nil {
		l.sc, l.err = l.s.activityScope(l.ctx, l.a)
	}
	return l.sc, l.err == nil
}

// registry returns virtual registry id when its group is readable.
func (sc *activityScope) registry(id int64) (store.VirtualRegistry, string, bool) {
	r, seen := sc.regs[id]
	if !seen {
		vr, err := sc.s.store.VirtualRegistry(sc.ctx, id)
		if err == nil {
			r = &vr
		} else if !errors.Is(err, store.ErrNotFound) {
			sc.s.log.WarnContext(sc.ctx, "activity: read a virtual registry", "id", id, "err", err)
		}
		sc.regs[id] = r
	}
	if r == nil {
		return store.VirtualRegistry{}, "", false
	}
	path, ok := sc.readable[r.GroupID]
	return *r, path, ok
}

// upstream returns the registry of upstream id when its group is readable.
func (sc *activityScope) upstream(id int64) (store.VirtualRegistry, string, bool) {
	reg, seen := sc.ups[id]
	if !seen {
		u, err := sc.s.store.VirtualUpstream(sc.ctx, id)
		if err == nil {
			reg = u.RegistryID
		}
		sc.ups[id] = reg
	}
	if reg == 0 {
		return store.VirtualRegistry{}, "", false
	}
	return sc.registry(reg)
}

// ActiveDownloads returns the blob downloads in progress that serve a
// group the caller may read (guest), or a virtual registry of one; an
// instance admin sees them all. Oldest first.
func (s *Service) ActiveDownloads(ctx context.Context, a Actor) ([]ActiveDownload, error) {
	src := s.activity()
	dls, ups := src.Downloads(), src.UpstreamDownloads()
	out := []ActiveDownload{}
	if len(dls)+len(ups) == 0 {
		return out, nil
	}
	sc, err := s.activityScope(ctx, a)
	if err != nil {
		return nil, err
	}
	for _, d := range dls {
		ad := ActiveDownload{Download: d}
		for _, id := range d.Owners {
			if path, ok := sc.readable[id]; ok {
				ad.Groups = append(ad.Groups, path)
			}
		}
		if len(ad.Groups) > 0 {
			out = append(out, ad)
		}
	}
	for _, d := range ups {
		for _, id := range d.Owners {
			if r, path, ok := sc.upstream(id); ok {
				out = append(out, ActiveDownload{Download: d, VirtualRegistry: r.Name, VirtualGroup: path})
				break
			}
		}
	}
	return out, nil
}

// RecentPulls returns up to limit recent pulls (0: all kept) after Seq
// after (0: all) into groups the caller may read, or their virtual
// registries, newest first; an instance admin sees them all. With nothing
// new after after it reads nothing.
func (s *Service) RecentPulls(ctx context.Context, a Actor, limit int, after int64) ([]RecentPull, error) {
	if limit < 0 {
		return nil, invalid("first is %d; ask for a positive number of pulls", limit)
	}
	if after < 0 {
		return nil, invalid("after is %d; give the seq of a pull seen, or 0", after)
	}
	lz := &lazyScope{s: s, ctx: ctx, a: a}
	pulls := s.activity().RecentPulls(limit, after, func(p Pull) bool {
		sc, ok := lz.get()
		if !ok {
			return false
		}
		if p.VirtualRegistryID != 0 {
			_, _, ok := sc.registry(p.VirtualRegistryID)
			return ok
		}
		_, ok = sc.readable[p.GroupID]
		return ok
	})
	if lz.err != nil {
		return nil, lz.err
	}
	out := make([]RecentPull, len(pulls))
	for i, p := range pulls {
		out[i] = RecentPull{Pull: p}
		if p.VirtualRegistryID != 0 {
			sc, _ := lz.get()
			r, path, _ := sc.registry(p.VirtualRegistryID)
			out[i].VirtualRegistry, out[i].VirtualGroup = r.Name, path
		}
	}
	return out, nil
}
