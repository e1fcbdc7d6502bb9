package cache

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/dproxy/dproxy/internal/metrics"
	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/store"
	"github.com/dproxy/dproxy/internal/upstream"
)

// What the cache does for prewarming: the warmer brings a watched tag up
// to date ahead of clients through the same paths as a client pull (the
// manifest flight of the tag, the one download per blob), so a client
// asking meanwhile joins the warmer's work instead of repeating it.

// ErrReserve is returned by Warm when fetching a manifest would spend a
// pull while the credential's remaining pulls are at or below the reserve.
var ErrReserve = errors.New("the upstream pull rate limit is at the warm reserve")

// Reserve says how many pulls of a credential whose limit is limit must
// remain unspent by prewarming.
type Reserve func(limit int) int

// Warm brings the cached manifest of t.Image at ref up to date, as a pull
// would but without the freshness window: a tag is checked with an
// upstream HEAD (free against Docker Hub's limit); when it moved, or for a
// manifest not cached, the manifest is fetched only while the pulls last
// seen remaining for t.Creds are above reserve, else the error wraps
// ErrReserve. A cached digest costs nothing. The fetch is shared with
// client pulls of the same reference. Result is metrics.ResultHit when
// nothing was fetched, metrics.ResultMiss when a manifest GET was spent.
func (c *Cache) Warm(ctx context.Context, t Target, ref oci.Reference, reserve Reserve) (Manifest, error) {
	row, err := c.meta.Manifest(ctx, t.GroupID, t.Image, ref.String())
	if err == nil && !oci.IsManifestMediaType(row.MediaType) {
		err = store.ErrNotFound
	}
	switch {
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return Manifest{}, fmt.Errorf("look up manifest %s:%s: %w", t.Image, ref, err)
	case err == nil && ref.IsDigest():
		return fromRow(row, metrics.ResultHit), nil
	case !ref.IsDigest():
		// Asked even when nothing is cached: it is free, and it tells the
		// rate limit left before a pull is spent.
		hctx, cancel := context.WithTimeout(ctx, c.opts.RevalidateTimeout)
		desc, herr := c.remote.HeadManifest(hctx, t.Creds, t.Image, ref)
		cancel()
		if herr != nil {
			return Manifest{}, herr
		}
		if err == nil && desc.Digest == row.Digest && (desc.MediaType == "" || desc.MediaType == row.MediaType) {
			if err := c.meta.ConfirmManifest(ctx, row.ID, c.opts.Now()); err != nil {
				c.log.WarnContext(ctx, "record manifest revalidation", "image", t.Image, "ref", ref.String(), "err", err)
			}
			return fromRow(row, metrics.ResultHit), nil
		}
	}
	if err := c.spendable(t.Creds, reserve); err != nil {
		return Manifest{}, fmt.Errorf("fetch manifest %s%s%s: %w", t.Image, refSep(ref), ref, err)
	}
	m, err := c.shared(ctx, t, ref, func(ctx context.Context) (Manifest, error) { return c.fetch(ctx, t, ref) })
	if err == nil && m.Result == metrics.ResultMiss && !ref.IsDigest() {
		c.warmed.add(t.GroupID, t.Image, ref.String(), m.Digest)
	}
	return m, err
}

// spendable returns an error wrapping ErrReserve when the pulls last seen
// remaining for creds are at or below the reserve.
func (c *Cache) spendable(creds upstream.Credentials, reserve Reserve) error {
	rl, ok := c.remote.RateLimit(creds)
	if !ok {
		return nil // no limit seen: the upstream is not limited
	}
	keep := max(c.opts.RateLimitReserve, 0)
	if reserve != nil {
		keep += reserve(rl.Limit)
	}
	if rl.Remaining <= keep {
		return fmt.Errorf("%w: %d of %d pulls remaining for %s, reserve %d", ErrReserve, rl.Remaining, rl.Limit, creds.Named(), keep)
	}
	return nil
}

// Prefetch makes sure blob d of t.Image is stored for the group: a blob
// the group already has is left alone (fetched is false); otherwise it
// joins, or starts, the one download of d that client pulls share and
// waits until it is committed. The download goes on if ctx ends.
func (c *Cache) Prefetch(ctx context.Context, t Target, d oci.Digest) (size int64, fetched bool, err error) {
	if row, err := c.meta.Blob(ctx, t.GroupID, d); err == nil {
		if _, err := c.blobs.Stat(ctx, d); err == nil {
			return row.Size, false, nil
		}
	}
	b, err := c.Blob(ctx, t, d)
	if err != nil {
		return 0, false, err
	}
	defer b.Close()
	r, ok := b.ReadCloser.(*downloadReader)
	if !ok { // stored for another group and shared after a HEAD
		return b.Size, false, nil
	}
	select {
	case <-r.dl.done:
	case <-ctx.Done():
		return 0, false, ctx.Err()
	}
	r.dl.mu.Lock()
	written, derr := r.dl.written, r.dl.err
	r.dl.mu.Unlock()
	if derr != nil {
		return 0, false, fmt.Errorf("prefetch blob %s of %s: %w", d, t.Image, derr)
	}
	return written, true, nil
}

// warmedTags remembers the tags whose new manifest the warmer fetched,
// until a client pulls them: that pull is a warm hit.
type warmedTags struct {
	mu   sync.Mutex
	tags map[string]oci.Digest
}

func warmKey(groupID int64, image, tag string) string {
	return strconv.FormatInt(groupID, 10) + "\x00" + image + "\x00" + tag
}

func (w *warmedTags) add(groupID int64, image, tag string, d oci.Digest) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.tags == nil {
		w.tags = make(map[string]oci.Digest)
	}
	w.tags[warmKey(groupID, image, tag)] = d
}

// take reports whether a client pull of tag served d as the warmer left
// it, and forgets the tag.
func (w *warmedTags) take(groupID int64, image, tag string, d oci.Digest) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	k := warmKey(groupID, image, tag)
	got, ok := w.tags[k]
	if ok {
		delete(w.tags, k)
	}
	return ok && got == d
}
