package cache

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/dproxy/dproxy/internal/oci"
)

// What the cache does for the lifecycle of stored blobs: it knows which
// blobs are in use (downloading, being served, or gaining a reference) and
// is the only place that removes a blob file while serving, so that a file
// is never removed while a reference to it is being added.
//
// The protocol: every path that adds a reference to a stored file, or reads
// one, first pins the digest; RemoveUnusedBlob marks the digest as being
// deleted only when it is neither pinned nor downloading, re-checks in the
// store that no group references it (and has not for the grace period),
// deletes the file and clears the mark.
// A pin waits while the mark is set. So a reference is either added before
// the re-check (and the file is kept) or after the delete (and the file is
// fetched again by the download that then starts).

// pinSet counts the users of each digest. Guarded by Cache.mu.
type pinSet struct {
	count    map[oci.Digest]int
	deleting map[oci.Digest]chan struct{} // closed when the delete is over
}

func newPinSet() *pinSet {
	return &pinSet{count: make(map[oci.Digest]int), deleting: make(map[oci.Digest]chan struct{})}
}

// pin marks d in use, waiting for a delete of d in progress to finish.
// Call the returned function, once, when done.
func (c *Cache) pin(ctx context.Context, d oci.Digest) (func(), error) {
	for {
		c.mu.Lock()
		wait, ok := c.pins.deleting[d]
		if !ok {
			c.pins.count[d]++
			c.mu.Unlock()
			var once sync.Once
			return func() { once.Do(func() { c.unpin(d) }) }, nil
		}
		c.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (c *Cache) unpin(d oci.Digest) {
	c.mu.Lock()
	if c.pins.count[d]--; c.pins.count[d] <= 0 {
		delete(c.pins.count, d)
	}
	c.mu.Unlock()
}

// InUse reports whether blob d is being downloaded, served from storage or
// gaining a group's reference.
func (c *Cache) InUse(d oci.Digest) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.downloads[d] != nil || c.pins.count[d] > 0
}

// Idle reports whether no blob is being downloaded, served from storage or
// gaining a reference: a purge and a collection then leave no file behind.
func (c *Cache) Idle() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.downloads) == 0 && len(c.pins.count) == 0
}

// markDeleting sets the delete mark of d unless it is in use (or force is
// set and only a download would stop it). It returns the function that
// clears the mark, or nil when d is in use.
func (c *Cache) markDeleting(d oci.Digest, force bool) func() {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, deleting := c.pins.deleting[d]
	if deleting || c.downloads[d] != nil || (!force && c.pins.count[d] > 0) {
		return nil
	}
	done := make(chan struct{})
	c.pins.deleting[d] = done
	return func() {
		c.mu.Lock()
		delete(c.pins.deleting, d)
		c.mu.Unlock()
		close(done)
	}
}

// RemoveUnusedBlob deletes the file of blob d when no group references it,
// none has for at least grace (see store.UnreferencedSince; now is the
// time of this collection) and nothing in this process uses it, and
// reports whether it did. It is safe while the cache serves: see the
// protocol above. The grace period covers what other replicas sharing the
// database do: they only hand out a file that had a reference when they
// started, so one unreferenced for longer than any such operation is no
// longer in use anywhere.
func (c *Cache) RemoveUnusedBlob(ctx context.Context, d oci.Digest, now time.Time, grace time.Duration) (bool, error) {
	return removeUnused(ctx, []*Cache{c}, d, now, grace)
}

// removeUnused runs the delete protocol over caches that share the blob
// files and the store: the delete mark is set in each of them first, so a
// pin in any of them waits for the delete.
func removeUnused(ctx context.Context, caches []*Cache, d oci.Digest, now time.Time, grace time.Duration) (bool, error) {
	var clears []func()
	defer func() {
		for _, clear := range clears {
			clear()
		}
	}()
	for _, c := range caches {
		clear := c.markDeleting(d, false)
		if clear == nil {
			return false, nil
		}
		clears = append(clears, clear)
	}
	c := caches[0]
	since, referenced, err := c.meta.UnreferencedSince(ctx, d, now)
	if err != nil {
		return false, fmt.Errorf("remove unused blob %s: %w", d, err)
	}
	if referenced || now.Sub(since) < grace {
		return false, nil
	}
	for _, c := range caches {
		c.files.drop(d)
	}
	if err := c.blobs.Delete(ctx, d); err != nil {
		return false, fmt.Errorf("remove unused blob %s: %w", d, err)
	}
	if err := c.meta.ForgetUnreferenced(ctx, d); err != nil {
		return true, fmt.Errorf("remove unused blob %s: %w", d, err)
	}
	return true, nil
}

// discardCorrupt removes a stored blob file that does not match its digest
// and every reference to it, so that the next pull fetches it again.
// Readers holding the file open keep their descriptor.
func (c *Cache) discardCorrupt(ctx context.Context, d oci.Digest, why string) {
	c.log.WarnContext(ctx, "stored blob is corrupt, dropping it so the next pull fetches it again", "digest", d, "reason", why)
	ctx = context.WithoutCancel(ctx)
	if _, err := c.meta.DropBlob(ctx, d); err != nil {
		c.log.ErrorContext(ctx, "drop references of corrupt blob", "digest", d, "err", err)
		return
	}
	c.files.drop(d)
	clear := c.markDeleting(d, true)
	if clear == nil {
		return // a download of d is replacing it, or another delete runs
	}
	defer clear()
	if err := c.blobs.Delete(ctx, d); err != nil {
		c.log.ErrorContext(ctx, "delete corrupt blob file", "digest", d, "err", err)
	}
}
