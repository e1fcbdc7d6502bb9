// Package warm keeps watched tags of the groups' dependency proxies cached
// before clients ask for them (prewarming). For each due entry the warmer
// checks the tag upstream with a HEAD; when it moved, it fetches the new
// manifest and the layers and configs of the entry's platforms that are
// not cached yet, through the cache's own paths, so a client pulling
// meanwhile joins the download. It spends pulls only above the rate-limit
// reserve, backs off with the upstream client after a 429, never evicts
// anything and never passes the size cap. Of several replicas sharing a
// database, the one holding the cluster-wide "warm" lock runs it.
//
// It uses cache, store, upstream, oci and metrics; only app imports it.
package warm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dproxy/dproxy/internal/cache"
	"github.com/dproxy/dproxy/internal/metrics"
	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/store"
	"github.com/dproxy/dproxy/internal/upstream"
)

// metaStore is what the warmer reads and writes.
type metaStore interface {
	DueWarmEntries(ctx context.Context, at time.Time, limit int) ([]store.WarmEntry, error)
	NextWarmDue(ctx context.Context) (time.Time, bool, error)
	CountWarmEntries(ctx context.Context) (int, error)
	RecordWarmCheck(ctx context.Context, id int64, c store.WarmCheck) error
	StaleWarmAutos(ctx context.Context, before time.Time) ([]store.WarmAuto, error)
	TopPulledTags(ctx context.Context, groupID int64, since time.Time, limit int) ([]store.PulledTag, error)
	RefreshWarmAuto(ctx context.Context, a store.WarmAuto, tags []store.PulledTag, at time.Time) error
	PruneTagPulls(ctx context.Context, before time.Time) (int64, error)
	ProxySetting(ctx context.Context, groupID int64) (store.ProxySetting, error)
	DefaultHubCredentials(ctx context.Context) (store.HubCredentials, error)
	Manifest(ctx context.Context, groupID int64, image, reference string) (store.Manifest, error)
	Blob(ctx context.Context, groupID int64, d oci.Digest) (store.Blob, error)
	CachedBlobBytes(ctx context.Context) (int64, error)
	// TryLock takes a cluster-wide lock without waiting (store.TryLock).
	TryLock(ctx context.Context, name string) (unlock func(), ok bool, err error)
}

// pullCache is the dependency proxy cache (cache.Cache).
type pullCache interface {
	Warm(ctx context.Context, t cache.Target, ref oci.Reference, reserve cache.Reserve) (cache.Manifest, error)
	Prefetch(ctx context.Context, t cache.Target, d oci.Digest) (size int64, fetched bool, err error)
}

// lockName is the cluster-wide lock the running warmer holds.
const lockName = "warm"

// DefaultPlatform is warmed when an entry names no platform and none of
// the tag's platforms was pulled in the window.
const DefaultPlatform = "linux/amd64"

// Options tune a Warmer. Zero values take the defaults.
type Options struct {
	// Reserve is how many pulls of a credential whose limit is limit the
	// warmer leaves unspent, on top of the cache's rate-limit reserve.
	// Default: 20% of the limit.
	Reserve cache.Reserve
	// MaxSize is the cache's size cap (0: none). The warmer does not fetch
	// an image whose missing blobs would pass it.
	MaxSize int64
	// Poll bounds how long the warmer sleeps between looks at the entries
	// (new or made due elsewhere), and how often a replica without the
	// lock tries to take it. Default 30s.
	Poll time.Duration
	// Window is how far back pulls decide the default platforms. Default 7 days.
	Window time.Duration
	// AutoRefresh is how often auto-top entries are chosen again. Default 24h.
	AutoRefresh time.Duration
	Now         func() time.Time
	Logger      *slog.Logger
	Metrics     *metrics.Warm
	// OnRun, when set, is called after each run over the due entries with
	// what it did, on the replica that ran it.
	OnRun func(Run)
}

// Run is what one run over the due entries did.
type Run struct {
	Checked    int // entries checked
	Moved      int // entries whose tag had moved (or was not cached) and were fetched
	Pulls      int // manifest GETs spent
	Prefetched int // blobs downloaded
	Err        error
}

// Warmer runs the prewarming schedule.
type Warmer struct {
	meta  metaStore
	cache pullCache
	opts  Options
	log   *slog.Logger

	kick   chan struct{}
	pruned time.Time // when old pull counts were last dropped (schedule only)

	mu      sync.Mutex
	running bool // holds the lock and runs the schedule
}

// New returns a Warmer; Run starts its schedule.
func New(meta metaStore, c pullCache, opts Options) *Warmer {
	if opts.Reserve == nil {
		opts.Reserve = PercentReserve(20)
	}
	if opts.Poll <= 0 {
		opts.Poll = 30 * time.Second
	}
	if opts.Window <= 0 {
		opts.Window = 7 * 24 * time.Hour
	}
	if opts.AutoRefresh <= 0 {
		opts.AutoRefresh = 24 * time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Warmer{meta: meta, cache: c, opts: opts, log: opts.Logger, kick: make(chan struct{}, 1)}
}

// PercentReserve keeps pct percent of a credential's limit (rounded up).
func PercentReserve(pct int) cache.Reserve {
	return func(limit int) int { return (limit*pct + 99) / 100 }
}

// FixedReserve keeps n pulls of every credential.
func FixedReserve(n int) cache.Reserve {
	return func(int) int { return n }
}

// ParseReserve reads a warm reserve: a percentage of the limit ("20%") or
// a number of pulls ("50").
func ParseReserve(s string) (cache.Reserve, error) {
	v := strings.TrimSpace(s)
	if p, ok := strings.CutSuffix(v, "%"); ok {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 100 {
			return nil, fmt.Errorf("warm reserve %q: a percentage must be a whole number from 0%% to 100%%", s)
		}
		return PercentReserve(n), nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("warm reserve %q: want a percentage of the limit (20%%) or a number of pulls (50)", s)
	}
	return FixedReserve(n), nil
}

// Kick asks the running warmer to look at the entries now (after they
// were made due). It never blocks; on a replica not running the warmer,
// the one that does finds them within Poll.
func (w *Warmer) Kick() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// Running reports whether this replica holds the warm lock.
func (w *Warmer) Running() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.running
}

// Run takes the cluster-wide warm lock, waiting for it (trying every Poll)
// while another replica holds it, and runs the schedule until ctx ends.
func (w *Warmer) Run(ctx context.Context) {
	for {
		unlock, ok, err := w.meta.TryLock(ctx, lockName)
		if err != nil && ctx.Err() == nil {
			w.log.ErrorContext(ctx, "take the warm lock", "err", err)
		}
		if ok {
			w.log.InfoContext(ctx, "running the warmer on this replica")
			w.setRunning(true)
			w.schedule(ctx)
			w.setRunning(false)
			unlock()
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(w.opts.Poll):
		}
	}
}

func (w *Warmer) setRunning(on bool) {
	w.mu.Lock()
	w.running = on
	w.mu.Unlock()
}

// schedule runs the due entries, then sleeps until the next is due, Poll
// passes or Kick is called, until ctx ends.
func (w *Warmer) schedule(ctx context.Context) {
	for ctx.Err() == nil {
		w.refreshAuto(ctx)
		run := w.RunDue(ctx)
		if w.opts.OnRun != nil && ctx.Err() == nil {
			w.opts.OnRun(run)
		}
		wait := w.opts.Poll
		if at, ok, err := w.meta.NextWarmDue(ctx); err == nil && ok {
			// A past-due entry (its outcome could not be recorded) waits a
			// second rather than spinning.
			wait = min(wait, max(at.Sub(w.opts.Now()), time.Second))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-w.kick:
		case <-t.C:
		}
		t.Stop()
	}
}

// pullHistory is how long daily pull counts are kept: the longest
// auto-top window.
const pullHistory = 90 * 24 * time.Hour

// refreshAuto chooses again the auto-top entries of the groups whose
// choice is older than AutoRefresh (or was never made), and drops pull
// counts older than any window, once per AutoRefresh.
func (w *Warmer) refreshAuto(ctx context.Context) {
	now := w.opts.Now()
	if now.Sub(w.pruned) >= w.opts.AutoRefresh {
		if _, err := w.meta.PruneTagPulls(ctx, now.Add(-pullHistory)); err != nil {
			w.log.ErrorContext(ctx, "prune tag pull counts", "err", err)
		} else {
			w.pruned = now
		}
	}
	autos, err := w.meta.StaleWarmAutos(ctx, now.Add(-w.opts.AutoRefresh))
	if err != nil {
		w.log.ErrorContext(ctx, "list auto warm settings", "err", err)
		return
	}
	for _, a := range autos {
		tags, err := w.meta.TopPulledTags(ctx, a.GroupID, now.Add(-a.Window), a.Top)
		if err == nil {
			err = w.meta.RefreshWarmAuto(ctx, a, tags, now)
		}
		if err != nil {
			w.log.ErrorContext(ctx, "choose the most pulled tags to warm", "group_id", a.GroupID, "err", err)
			continue
		}
		w.log.InfoContext(ctx, "chose the most pulled tags to warm", "group_id", a.GroupID, "tags", len(tags))
	}
}

// dueBatch bounds the entries one run reads at once.
const dueBatch = 100

// RunDue checks every entry due now, one at a time.
func (w *Warmer) RunDue(ctx context.Context) Run {
	var run Run
	if n, err := w.meta.CountWarmEntries(ctx); err == nil {
		w.opts.Metrics.Entries(n)
	}
	start := w.opts.Now()
	seen := map[int64]bool{}
	for ctx.Err() == nil {
		due, err := w.meta.DueWarmEntries(ctx, start, dueBatch)
		if err != nil {
			run.Err = err
			break
		}
		progress := false
		for _, e := range due {
			if seen[e.ID] {
				continue
			}
			seen[e.ID] = true
			progress = true
			w.check(ctx, e, &run)
		}
		if !progress {
			break
		}
	}
	w.opts.Metrics.Run(run.Err)
	return run
}

// check warms one entry and records the outcome.
func (w *Warmer) check(ctx context.Context, e store.WarmEntry, run *Run) {
	run.Checked++
	out := w.warm(ctx, e, run)
	now := w.opts.Now()
	out.CheckedAt = now
	out.NextAt = nextRun(e, now)
	w.opts.Metrics.Check(out.State)
	switch out.State {
	case store.WarmFailed, store.WarmThrottled:
		w.log.WarnContext(ctx, "warm check", "group_id", e.GroupID, "image", e.Image, "tag", e.Tag, "state", out.State, "message", out.Message)
	default:
		w.log.InfoContext(ctx, "warm check", "group_id", e.GroupID, "image", e.Image, "tag", e.Tag, "state", out.State, "digest", out.Digest)
	}
	if err := w.meta.RecordWarmCheck(context.WithoutCancel(ctx), e.ID, out); err != nil && !errors.Is(err, store.ErrNotFound) {
		w.log.ErrorContext(ctx, "record warm check", "entry", e.ID, "err", err)
	}
}

// nextRun spreads the entries of one interval over it: each entry runs at
// its own phase of the interval (from its ID), the first such time after
// now.
func nextRun(e store.WarmEntry, now time.Time) time.Time {
	every := max(e.Every, time.Second)
	h := fnv.New64a()
	fmt.Fprintf(h, "%d", e.ID)
	phase := time.Duration(h.Sum64() % uint64(every))
	base := now.Truncate(every).Add(phase)
	for !base.After(now) {
		base = base.Add(every)
	}
	return base
}

// warm does the work of one check; the outcome has no times yet.
func (w *Warmer) warm(ctx context.Context, e store.WarmEntry, run *Run) store.WarmCheck {
	t, err := w.target(ctx, e)
	if err != nil {
		return store.WarmCheck{State: store.WarmFailed, Message: err.Error()}
	}
	tag := oci.Reference{Tag: e.Tag}
	var previous *store.Manifest
	if row, err := w.meta.Manifest(ctx, e.GroupID, e.Image, tag.String()); err == nil {
		previous = &row
	}
	m, err := w.cache.Warm(ctx, t, tag, w.opts.Reserve)
	if err != nil {
		return w.failure(ctx, e, err)
	}
	moved := m.Result == metrics.ResultMiss
	if moved {
		run.Pulls++
		w.opts.Metrics.Pulls(1)
	}
	// An unmoved tag already warmed is left to the LRU like any image.
	if !moved && e.State != store.WarmPending && e.Digest == string(m.Digest) {
		return store.WarmCheck{State: store.WarmCurrent, Digest: string(m.Digest), Message: "the tag has not moved"}
	}
	images := []cache.Manifest{m}
	if oci.IsIndex(m.MediaType) {
		platforms := e.Platforms
		if len(platforms) == 0 {
			platforms = w.pulledPlatforms(ctx, e, previous)
		}
		children, missing, err := childrenFor(m.Content, platforms)
		if err != nil {
			return store.WarmCheck{State: store.WarmFailed, Digest: string(m.Digest), Message: err.Error()}
		}
		if len(children) == 0 {
			return store.WarmCheck{State: store.WarmFailed, Digest: string(m.Digest),
				Message: fmt.Sprintf("the index has none of the platforms %s", strings.Join(missing, ", "))}
		}
		images = images[:0]
		for _, d := range children {
			cm, err := w.cache.Warm(ctx, t, oci.Reference{Digest: d}, w.opts.Reserve)
			if err != nil {
				return withDigest(w.failure(ctx, e, err), m.Digest)
			}
			if cm.Result == metrics.ResultMiss {
				run.Pulls++
				w.opts.Metrics.Pulls(1)
			}
			images = append(images, cm)
		}
	}
	blobs, need, err := w.missingBlobs(ctx, e.GroupID, images)
	if err != nil {
		return store.WarmCheck{State: store.WarmFailed, Digest: string(m.Digest), Message: err.Error()}
	}
	if w.opts.MaxSize > 0 && need > 0 {
		stored, err := w.meta.CachedBlobBytes(ctx)
		if err != nil {
			return store.WarmCheck{State: store.WarmFailed, Digest: string(m.Digest), Message: err.Error()}
		}
		if stored+need > w.opts.MaxSize {
			return store.WarmCheck{State: store.WarmSizeCap, Digest: string(m.Digest),
				Message: fmt.Sprintf("not prefetched: %d more bytes would pass the size cap (%d of %d stored)", need, stored, w.opts.MaxSize)}
		}
	}
	for _, b := range blobs {
		size, fetched, err := w.cache.Prefetch(ctx, t, b.Digest)
		if err != nil {
			return withDigest(w.failure(ctx, e, err), m.Digest)
		}
		if fetched {
			run.Prefetched++
			w.opts.Metrics.Prefetched(size)
		}
	}
	if moved {
		run.Moved++
	}
	if moved || len(blobs) > 0 {
		return store.WarmCheck{State: store.WarmWarmed, Digest: string(m.Digest),
			Message: fmt.Sprintf("fetched %d manifest(s) and %d blob(s)", boolInt(moved), len(blobs))}
	}
	return store.WarmCheck{State: store.WarmCurrent, Digest: string(m.Digest), Message: "already cached"}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func withDigest(c store.WarmCheck, d oci.Digest) store.WarmCheck {
	c.Digest = string(d)
	return c
}

// failure is the outcome of a check the cache refused or the upstream
// failed. The entry's message is read by every guest of the group: an
// upstream failure is told in general words there (upstream.Error.Public),
// and in full in the log.
func (w *Warmer) failure(ctx context.Context, e store.WarmEntry, err error) store.WarmCheck {
	msg := err.Error()
	var ue *upstream.Error
	if errors.As(err, &ue) {
		msg = ue.Op + " " + e.Image + ":" + e.Tag + ": " + ue.Public()
		w.log.WarnContext(ctx, "warm check failed upstream", "group_id", e.GroupID, "image", e.Image, "tag", e.Tag, "err", err)
	}
	switch {
	case errors.Is(err, cache.ErrReserve):
		return store.WarmCheck{State: store.WarmReserve, Message: "the tag moved; " + msg}
	case errors.Is(err, oci.ErrTooManyRequests):
		return store.WarmCheck{State: store.WarmThrottled, Message: msg}
	default:
		return store.WarmCheck{State: store.WarmFailed, Message: msg}
	}
}

// target is where the entry's pulls go: the group's dependency proxy with
// its Docker Hub credentials, else the instance default.
func (w *Warmer) target(ctx context.Context, e store.WarmEntry) (cache.Target, error) {
	ps, err := w.meta.ProxySetting(ctx, e.GroupID)
	if err != nil {
		return cache.Target{}, fmt.Errorf("read the dependency proxy setting: %w", err)
	}
	if !ps.Enabled {
		return cache.Target{}, errors.New("the dependency proxy of the group is disabled; enable it with `dproxy group enable <group>`")
	}
	t := cache.Target{GroupID: e.GroupID, Image: e.Image}
	if ps.Identity != "" {
		t.Creds = upstream.Credentials{Username: ps.Identity, Password: ps.Secret}
		return t, nil
	}
	def, err := w.meta.DefaultHubCredentials(ctx)
	if err != nil {
		return cache.Target{}, fmt.Errorf("read the default Docker Hub credentials: %w", err)
	}
	t.Creds = upstream.InstanceDefault(def.Identity, def.Secret)
	return t, nil
}

// pulledPlatforms are the platforms of the tag's previous index whose
// manifests clients read within the window, else DefaultPlatform.
func (w *Warmer) pulledPlatforms(ctx context.Context, e store.WarmEntry, previous *store.Manifest) []string {
	if previous == nil || !oci.IsIndex(previous.MediaType) {
		return []string{DefaultPlatform}
	}
	entries, err := platformsOf(previous.Content)
	if err != nil {
		return []string{DefaultPlatform}
	}
	since := w.opts.Now().Add(-w.opts.Window)
	var out []string
	for _, c := range entries {
		row, err := w.meta.Manifest(ctx, e.GroupID, e.Image, string(c.digest))
		if err == nil && row.ReadAt.After(since) && !slices.Contains(out, c.platform) {
			out = append(out, c.platform)
		}
	}
	if len(out) == 0 {
		return []string{DefaultPlatform}
	}
	return out
}

// missingBlobs are the blobs of images the group has not stored, and
// their size.
func (w *Warmer) missingBlobs(ctx context.Context, groupID int64, images []cache.Manifest) ([]oci.Descriptor, int64, error) {
	var (
		out  []oci.Descriptor
		need int64
		seen = map[oci.Digest]bool{}
	)
	for _, m := range images {
		c, err := oci.ParseContents(m.MediaType, m.Content)
		if err != nil {
			return nil, 0, err
		}
		for _, b := range c.Blobs {
			if seen[b.Digest] {
				continue
			}
			seen[b.Digest] = true
			if _, err := w.meta.Blob(ctx, groupID, b.Digest); err == nil {
				continue
			} else if !errors.Is(err, store.ErrNotFound) {
				return nil, 0, err
			}
			out = append(out, b)
			need += b.Size
		}
	}
	return out, need, nil
}

// child is a platform manifest of an index.
type child struct {
	digest   oci.Digest
	platform string // os/arch[/variant]
}

// platformsOf reads the platform manifests of an index.
func platformsOf(index []byte) ([]child, error) {
	var doc struct {
		Manifests []struct {
			Digest   oci.Digest `json:"digest"`
			Platform *struct {
				OS           string `json:"os"`
				Architecture string `json:"architecture"`
				Variant      string `json:"variant"`
			} `json:"platform"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal(index, &doc); err != nil {
		return nil, fmt.Errorf("read index: %w", err)
	}
	var out []child
	for _, m := range doc.Manifests {
		if m.Platform == nil || m.Platform.OS == "unknown" {
			continue
		}
		p := m.Platform.OS + "/" + m.Platform.Architecture
		if m.Platform.Variant != "" {
			p += "/" + m.Platform.Variant
		}
		out = append(out, child{digest: m.Digest, platform: p})
	}
	return out, nil
}

// childrenFor returns the digests of index's manifests for platforms, and
// the platforms it does not have. A platform without a variant matches
// any variant (the first listed).
func childrenFor(index []byte, platforms []string) (digests []oci.Digest, missing []string, _ error) {
	cs, err := platformsOf(index)
	if err != nil {
		return nil, nil, err
	}
	for _, p := range platforms {
		found := false
		for _, c := range cs {
			if c.platform == p || strings.HasPrefix(c.platform, p+"/") {
				if !slices.Contains(digests, c.digest) {
					digests = append(digests, c.digest)
				}
				found = true
				break
			}
		}
		if !found {
			missing = append(missing, p)
		}
	}
	return digests, missing, nil
}
