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
	meta metaStore
	now  func() time.Time
	log  *slog.Logger

	mu        sync.Mutex
	manifests map[int64]struct{}
	blobs     map[store.BlobKey]struct{}
}

func newToucher(meta metaStore, now func() time.Time, log *slog.Logger) *toucher {
	return &toucher{meta: meta, now: now, log: log,
		manifests: make(map[int64]struct{}), blobs: make(map[store.BlobKey]struct{})}
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
	clear(t.manifests)
	clear(t.blobs)
	t.mu.Unlock()

	at := t.now()
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
