package cache

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/dproxy/dproxy/internal/store"
)

// toucher batches read-time updates so that a cache hit costs no write
// transaction: reads are collected in memory and written in one
// transaction per kind every interval, and once more on shutdown.
type toucher struct {
	meta  metaStore
	pulls pullCounter // nil: pulls are not counted
	now   func() time.Time
	log   *slog.Logger

	mu        sync.Mutex
	manifests map[int64]struct{}
	blobs     map[store.BlobKey]struct{}
	tags      map[pulledTag]int64
}

// pulledTag names a tag of a group's image, for pull counts.
type pulledTag struct {
	groupID    int64
	image, tag string
}

func newToucher(meta metaStore, pulls pullCounter, now func() time.Time, log *slog.Logger) *toucher {
	return &toucher{meta: meta, pulls: pulls, now: now, log: log,
		manifests: make(map[int64]struct{}), blobs: make(map[store.BlobKey]struct{}), tags: make(map[pulledTag]int64)}
}

// pull counts a client's pull of a tag.
func (t *toucher) pull(groupID int64, image, tag string) {
	if t.pulls == nil {
		return
	}
	t.mu.Lock()
	t.tags[pulledTag{groupID, image, tag}]++
	t.mu.Unlock()
}

func (t *toucher) manifest(id int64) {
	t.mu.Lock()
	t.manifests[id] = struct{}{}
	t.mu.Unlock()
}

func (t *toucher) blob(k store.BlobKey) {
	t.mu.Lock()
	t.blobs[k] = struct{}{}
	t.mu.Unlock()
}

// run flushes every interval until ctx ends, then flushes once more.
func (t *toucher) run(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			t.flush(ctx)
		case <-ctx.Done():
			t.flush(context.WithoutCancel(ctx))
			return
		}
	}
}

func (t *toucher) flush(ctx context.Context) {
	t.mu.Lock()
	ids := make([]int64, 0, len(t.manifests))
	for id := range t.manifests {
		ids = append(ids, id)
	}
	keys := make([]store.BlobKey, 0, len(t.blobs))
	for k := range t.blobs {
		keys = append(keys, k)
	}
	pulls := make([]store.TagPull, 0, len(t.tags))
	at := t.now()
	for k, n := range t.tags {
		pulls = append(pulls, store.TagPull{GroupID: k.groupID, Image: k.image, Tag: k.tag, Day: at, Pulls: n})
	}
	clear(t.manifests)
	clear(t.blobs)
	clear(t.tags)
	t.mu.Unlock()

	if len(pulls) > 0 {
		if err := t.pulls.CountTagPulls(ctx, pulls); err != nil {
			t.log.WarnContext(ctx, "record tag pull counts", "count", len(pulls), "err", err)
		}
	}
	if len(ids) > 0 {
		if err := t.meta.TouchManifests(ctx, ids, at); err != nil {
			t.log.WarnContext(ctx, "record manifest read times", "count", len(ids), "err", err)
		}
	}
	if len(keys) > 0 {
		if err := t.meta.TouchBlobs(ctx, keys, at); err != nil {
			t.log.WarnContext(ctx, "record blob read times", "count", len(keys), "err", err)
		}
	}
}

// FlushReads writes the read times collected since the last flush now,
// instead of at the next interval (for the size cap and for tests).
func (c *Cache) FlushReads(ctx context.Context) {
	c.touch.flush(ctx)
}
