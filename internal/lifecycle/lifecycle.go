// Package lifecycle looks after the cache over time: it applies each
// group's TTL policy, deletes blob files no group references any more
// (garbage collection), keeps the stored blobs under an optional size cap
// by evicting the least recently read, checks a data dir for damage (fsck)
// and takes and restores backups.
//
// It uses store, blobstore, config, keyfile, secretbox, metrics and oci;
// only app and commands may import it.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/dproxy/dproxy/internal/metrics"
	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/store"
)

// metaStore is what the background jobs need of the store.
type metaStore interface {
	EnabledTTLPolicies(ctx context.Context) ([]store.TTLPolicy, error)
	ExpireGroupCache(ctx context.Context, groupID int64, before time.Time) (store.Expired, error)
	CachedBlobBytes(ctx context.Context) (int64, error)
	LeastRecentlyRead(ctx context.Context, after *store.StoredBlob, limit int) ([]store.StoredBlob, error)
	EvictBlobs(ctx context.Context, blobs []store.StoredBlob) ([]int64, error)
	// TryLock takes a cluster-wide lock without waiting (store.TryLock).
	TryLock(ctx context.Context, name string) (unlock func(), ok bool, err error)
}

// lockName is the cluster-wide lock under which the jobs run, so that of
// several replicas sharing a database one at a time does the work.
const lockName = "lifecycle"

// ErrElsewhere is returned by a job that did not run because another
// replica holds the lifecycle lock and is running one.
var ErrElsewhere = errors.New("another replica is running the cache's background jobs")

// blobFiles lists the stored blob files.
type blobFiles interface {
	Walk(ctx context.Context, fn func(d oci.Digest, size int64) error) error
}

// caches is every cache sharing the blob files (cache.All): they know
// which blobs are in use and remove files without racing a reference
// being added.
type caches interface {
	InUse(d oci.Digest) bool
	RemoveUnusedBlob(ctx context.Context, d oci.Digest, now time.Time, grace time.Duration) (bool, error)
	FlushReads(ctx context.Context)
	// Prune lets go of the caches of upstreams that no longer exist.
	Prune(ctx context.Context) error
}

// Options tune a Manager. Zero values take the defaults.
type Options struct {
	// TTLInterval is how often the TTL policies are applied. Default 24h.
	TTLInterval time.Duration
	// GCInterval is how often unreferenced blob files are deleted and the
	// size cap is enforced. Default 1h.
	GCInterval time.Duration
	// GCGrace is how long a blob file must have been unreferenced before it
	// is deleted (the first collection that finds it unreferenced records
	// when; a new reference clears that). Replicas sharing a database need
	// it longer than any pull they serve; 0 deletes at once.
	GCGrace time.Duration
	// MaxSize caps the bytes of stored blobs; 0 means no cap.
	MaxSize int64
	// SizeCapPage is how many eviction candidates the size cap reads at a
	// time, which bounds its memory. Default 500.
	SizeCapPage int
	Now         func() time.Time
	Logger      *slog.Logger
	Metrics     *metrics.Lifecycle
	// AfterDelete, when set, is called each time garbage collection has
	// deleted a blob file, before it goes on; ctx ends when the run does.
	// It lets a test stop a collection at a known point.
	AfterDelete func(ctx context.Context, d oci.Digest)
}

// Manager runs the cache's background jobs. Its methods may run
// concurrently with serving and with each other; the jobs are serialised,
// and across replicas sharing a database only one runs at a time (the
// others return ErrElsewhere).
type Manager struct {
	meta  metaStore
	files blobFiles
	cache caches
	opts  Options
	log   *slog.Logger

	mu      sync.Mutex // serialises the jobs
	kick    chan struct{}
	capKick chan struct{}
}

// capDelay is how long Run gathers KickSizeCap calls before enforcing the
// cap once for all of them: a burst of downloads costs one run.
const capDelay = 2 * time.Second

// New returns a Manager; Run starts its schedule.
func New(meta metaStore, files blobFiles, cache caches, opts Options) *Manager {
	if opts.TTLInterval <= 0 {
		opts.TTLInterval = 24 * time.Hour
	}
	if opts.GCInterval <= 0 {
		opts.GCInterval = time.Hour
	}
	if opts.SizeCapPage <= 0 {
		opts.SizeCapPage = 500
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Manager{meta: meta, files: files, cache: cache, opts: opts, log: opts.Logger,
		kick: make(chan struct{}, 1), capKick: make(chan struct{}, 1)}
}

// Run applies the TTL policies at start and every TTLInterval, and
// collects garbage and enforces the size cap every GCInterval and when
// Kick is called, until ctx ends. Failures are logged and retried at the
// next tick.
func (m *Manager) Run(ctx context.Context) {
	ttl := time.NewTicker(m.opts.TTLInterval)
	defer ttl.Stop()
	gc := time.NewTicker(m.opts.GCInterval)
	defer gc.Stop()
	m.runTTL(ctx)
	var capDue <-chan time.Time // set while a size-cap run is pending
	for {
		select {
		case <-ctx.Done():
			return
		case <-ttl.C:
			m.runTTL(ctx)
		case <-gc.C:
			m.runGC(ctx)
		case <-m.kick:
			m.runGC(ctx)
		case <-m.capKick:
			if capDue == nil {
				capDue = time.After(capDelay)
			}
		case <-capDue:
			capDue = nil
			_, err := m.EnforceSizeCap(ctx)
			m.logFailure(ctx, "enforce cache size cap", err)
		}
	}
}

// KickSizeCap asks Run to enforce the size cap within a few seconds, for
// example after new blobs were stored; calls in between are gathered into
// one run. With no cap it does nothing. It never blocks.
func (m *Manager) KickSizeCap() {
	if m.opts.MaxSize <= 0 {
		return
	}
	select {
	case m.capKick <- struct{}{}:
	default:
	}
}

// Kick asks Run to collect garbage and enforce the size cap soon, for
// example after a purge. It never blocks.
func (m *Manager) Kick() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// exclusive takes the cluster-wide lifecycle lock, or returns ErrElsewhere.
func (m *Manager) exclusive(ctx context.Context) (func(), error) {
	unlock, ok, err := m.meta.TryLock(ctx, lockName)
	if err != nil {
		return nil, fmt.Errorf("take the lifecycle lock: %w", err)
	}
	if !ok {
		return nil, ErrElsewhere
	}
	return unlock, nil
}

// logFailure logs a background job's failure; a job another replica runs
// is not one.
func (m *Manager) logFailure(ctx context.Context, what string, err error) {
	switch {
	case err == nil || ctx.Err() != nil:
	case errors.Is(err, ErrElsewhere):
		m.log.DebugContext(ctx, what+" skipped: another replica holds the lifecycle lock")
	default:
		m.log.ErrorContext(ctx, what, "err", err)
	}
}

func (m *Manager) runTTL(ctx context.Context) {
	_, err := m.Expire(ctx)
	m.logFailure(ctx, "apply ttl policies", err)
	m.runGC(ctx)
}

func (m *Manager) runGC(ctx context.Context) {
	_, err := m.EnforceSizeCap(ctx)
	m.logFailure(ctx, "enforce cache size cap", err)
	_, err = m.CollectGarbage(ctx)
	m.logFailure(ctx, "collect garbage", err)
}

// ExpireResult is what one application of the TTL policies removed.
type ExpireResult struct {
	Groups    int // groups with an enabled policy
	Manifests int64
	Blobs     int // blob references; their files go at the next GC
}

// Expire applies every enabled TTL policy once: a group's manifests and
// blob references not read for its ttl days are removed. Read times not
// yet written are flushed first, so a recent read always counts.
func (m *Manager) Expire(ctx context.Context) (ExpireResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	unlock, err := m.exclusive(ctx)
	if err != nil {
		return ExpireResult{}, err
	}
	defer unlock()
	var res ExpireResult
	err = m.expire(ctx, &res)
	m.opts.Metrics.Run("ttl", err, m.opts.Now())
	return res, err
}

func (m *Manager) expire(ctx context.Context, res *ExpireResult) error {
	m.cache.FlushReads(ctx)
	policies, err := m.meta.EnabledTTLPolicies(ctx)
	if err != nil {
		return err
	}
	now := m.opts.Now()
	var errs []error
	for _, p := range policies {
		res.Groups++
		cut := now.Add(-time.Duration(p.TTLDays) * 24 * time.Hour)
		e, err := m.meta.ExpireGroupCache(ctx, p.GroupID, cut)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		res.Manifests += e.Manifests
		res.Blobs += len(e.Blobs)
		m.opts.Metrics.Expired("manifest", int(e.Manifests))
		m.opts.Metrics.Expired("blob", len(e.Blobs))
		if e.Manifests > 0 || len(e.Blobs) > 0 {
			m.log.InfoContext(ctx, "expired cache entries", "group_id", p.GroupID, "ttl_days", p.TTLDays,
				"not_read_since", cut, "manifests", e.Manifests, "blobs", len(e.Blobs))
		}
	}
	return errors.Join(errs...)
}

// GCResult is what one garbage collection did.
type GCResult struct {
	Scanned    int
	Deleted    int
	FreedBytes int64
}

// CollectGarbage deletes every blob file that no group references, none
// has for GCGrace, and nothing uses (see cache.RemoveUnusedBlob for why
// that is race-free). Files found unreferenced for the first time are
// noted, and deleted by a collection once the grace period has passed.
func (m *Manager) CollectGarbage(ctx context.Context) (GCResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.cache.Prune(ctx); err != nil { // this replica's own state
		return GCResult{}, err
	}
	unlock, err := m.exclusive(ctx)
	if err != nil {
		return GCResult{}, err
	}
	defer unlock()
	res, err := m.collect(ctx)
	m.opts.Metrics.Run("gc", err, m.opts.Now())
	if res.Deleted > 0 {
		m.log.InfoContext(ctx, "garbage collection deleted unreferenced blob files",
			"scanned", res.Scanned, "deleted", res.Deleted, "freed_bytes", res.FreedBytes)
	}
	return res, err
}

func (m *Manager) collect(ctx context.Context) (GCResult, error) {
	var res GCResult
	now := m.opts.Now()
	err := m.files.Walk(ctx, func(d oci.Digest, size int64) error {
		res.Scanned++
		removed, err := m.cache.RemoveUnusedBlob(ctx, d, now, m.opts.GCGrace)
		if err != nil {
			return err
		}
		if removed {
			res.Deleted++
			res.FreedBytes += size
			m.opts.Metrics.Collected(size)
			m.log.DebugContext(ctx, "deleted unreferenced blob file", "digest", d, "size", size)
			if m.opts.AfterDelete != nil {
				m.opts.AfterDelete(ctx, d)
			}
		}
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("collect garbage: %w", err)
	}
	return res, nil
}

// CapResult is what one enforcement of the size cap did.
type CapResult struct {
	Before, After int64 // stored blob bytes
	Evicted       int
	EvictedBytes  int64
}

// EnforceSizeCap evicts the least recently read blobs, across all groups,
// until the stored blobs take at most MaxSize bytes; a blob shared by
// several groups counts once and is evicted from all of them at once. A
// blob in use is skipped. Evicted files are deleted at once, or with a
// grace period (GCGrace) by a later collection. With no cap it does
// nothing.
func (m *Manager) EnforceSizeCap(ctx context.Context) (CapResult, error) {
	if m.opts.MaxSize <= 0 {
		return CapResult{}, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	unlock, err := m.exclusive(ctx)
	if err != nil {
		return CapResult{}, err
	}
	defer unlock()
	res, err := m.enforce(ctx)
	m.opts.Metrics.Run("sizecap", err, m.opts.Now())
	if res.Evicted > 0 {
		m.log.InfoContext(ctx, "evicted least recently read blobs to stay under the cache size cap",
			"max_bytes", m.opts.MaxSize, "before_bytes", res.Before, "after_bytes", res.After,
			"evicted", res.Evicted, "evicted_bytes", res.EvictedBytes)
	}
	return res, err
}

func (m *Manager) enforce(ctx context.Context) (CapResult, error) {
	m.cache.FlushReads(ctx)
	total, err := m.meta.CachedBlobBytes(ctx)
	if err != nil {
		return CapResult{}, err
	}
	res := CapResult{Before: total, After: total}
	// One pass in read order, a page at a time: memory stays bounded by
	// the page, and a blob passed over (in use, or read since it was
	// listed) waits for the next run.
	var after *store.StoredBlob
	for res.After > m.opts.MaxSize {
		page, err := m.meta.LeastRecentlyRead(ctx, after, m.opts.SizeCapPage)
		if err != nil {
			return res, err
		}
		if len(page) == 0 {
			m.log.WarnContext(ctx, "cache is over its size cap but every remaining blob is in use or was read during the run",
				"max_bytes", m.opts.MaxSize, "stored_bytes", res.After)
			break
		}
		after = &page[len(page)-1]
		// The page's candidates, oldest first, up to what brings the
		// stored bytes under the cap, are evicted in one transaction.
		var picked []store.StoredBlob
		over := res.After - m.opts.MaxSize
		for _, c := range page {
			if over <= 0 {
				break
			}
			if m.cache.InUse(c.Digest) {
				continue
			}
			picked = append(picked, c)
			over -= c.Size
		}
		if len(picked) == 0 {
			continue
		}
		n, err := m.meta.EvictBlobs(ctx, picked)
		if err != nil {
			return res, err
		}
		for i, c := range picked {
			if n[i] == 0 {
				continue // read since we listed it
			}
			res.After -= c.Size
			res.Evicted++
			res.EvictedBytes += c.Size
			m.opts.Metrics.Evicted(c.Size)
			if _, err := m.cache.RemoveUnusedBlob(ctx, c.Digest, m.opts.Now(), m.opts.GCGrace); err != nil {
				return res, err
			}
		}
	}
	return res, nil
}
