package cache

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/dproxy/dproxy/internal/metrics"
	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/store"
	"github.com/dproxy/dproxy/internal/upstream"
)

// Manifest is a manifest as served to a client: the upstream's exact bytes
// and headers, and where it came from.
type Manifest struct {
	Content   []byte
	Digest    oci.Digest
	MediaType string
	ETag      string
	// Result is metrics.ResultHit, ResultMiss or ResultStale.
	Result string
}

func fromRow(m store.Manifest, result string) Manifest {
	return Manifest{Content: m.Content, Digest: m.Digest, MediaType: m.MediaType, ETag: m.ETag, Result: result}
}

// Manifest returns the manifest of t.Image at ref. A digest reference that
// is cached never contacts the upstream. A cached tag is revalidated with an
// upstream HEAD (unless younger than t.FreshnessWindow); when the upstream
// fails (or answers with something that is not a manifest), the cached copy
// is served. Concurrent requests for the same tag share one upstream HEAD
// and at most one GET. Only manifests of a known media type are stored or
// served (oci.ManifestMediaType); a row of another type, stored by an
// older version, is fetched again.
func (c *Cache) Manifest(ctx context.Context, t Target, ref oci.Reference) (Manifest, error) {
	m, err := c.manifest(ctx, t, ref)
	if err == nil && !ref.IsDigest() {
		c.touch.pull(t.GroupID, t.Image, ref.Tag)
		if m.Result != metrics.ResultMiss && c.warmed.take(t.GroupID, t.Image, ref.String(), m.Digest) {
			c.opts.Warm.Hit()
		}
	}
	return m, err
}

func (c *Cache) manifest(ctx context.Context, t Target, ref oci.Reference) (Manifest, error) {
	row, err := c.meta.Manifest(ctx, t.GroupID, t.Image, ref.String())
	if err == nil && !oci.IsManifestMediaType(row.MediaType) {
		err = store.ErrNotFound
	}
	switch {
	case err == nil:
		if ref.IsDigest() || c.fresh(row, t.FreshnessWindow) {
			return c.served(row, metrics.ResultHit), nil
		}
		return c.shared(ctx, t, ref, func(ctx context.Context) (Manifest, error) { return c.revalidate(ctx, t, ref, row) })
	case errors.Is(err, store.ErrNotFound):
		return c.shared(ctx, t, ref, func(ctx context.Context) (Manifest, error) { return c.fetch(ctx, t, ref) })
	default:
		return Manifest{}, fmt.Errorf("look up manifest %s:%s: %w", t.Image, ref, err)
	}
}

func (c *Cache) fresh(row store.Manifest, window time.Duration) bool {
	return window > 0 && c.opts.Now().Sub(row.UpdatedAt) < window
}

// served records a read of a cached row and returns it.
func (c *Cache) served(row store.Manifest, result string) Manifest {
	c.touch.manifest(row.ID)
	c.opts.Metrics.CacheResult("manifest", result)
	return fromRow(row, result)
}

// shared runs fn once for all concurrent callers asking for the same
// manifest. fn runs detached from any one client, so a client that goes
// away does not fail the others; each caller still stops waiting when its
// own ctx ends.
func (c *Cache) shared(ctx context.Context, t Target, ref oci.Reference, fn func(context.Context) (Manifest, error)) (Manifest, error) {
	key := strconv.FormatInt(t.GroupID, 10) + "\x00" + t.Image + "\x00" + ref.String()
	ch := c.flights.DoChan(key, func() (any, error) {
		return fn(context.WithoutCancel(ctx))
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return Manifest{}, res.Err
		}
		return res.Val.(Manifest), nil
	case <-ctx.Done():
		return Manifest{}, ctx.Err()
	}
}

// revalidate asks the upstream whether a cached tag still points at the
// cached manifest, and replaces it when it moved. The cached copy is
// served after at most one failed upstream attempt (no retries), and at
// once while the upstream is known to be failing (upstream.ErrCircuitOpen).
func (c *Cache) revalidate(ctx context.Context, t Target, ref oci.Reference, row store.Manifest) (Manifest, error) {
	ctx = upstream.WithFallback(ctx)
	hctx, cancel := context.WithTimeout(ctx, c.opts.RevalidateTimeout)
	desc, err := c.remote.HeadManifest(hctx, t.Creds, t.Image, ref)
	cancel()
	if err != nil {
		if upstreamFailed(err) {
			return c.stale(ctx, row, err), nil
		}
		return Manifest{}, err
	}
	if desc.Digest == row.Digest && (desc.MediaType == "" || desc.MediaType == row.MediaType) {
		if err := c.meta.ConfirmManifest(ctx, row.ID, c.opts.Now()); err != nil {
			c.log.WarnContext(ctx, "record manifest revalidation", "image", t.Image, "ref", ref.String(), "err", err)
		}
		return c.served(row, metrics.ResultHit), nil
	}
	if rl, ok := c.remote.RateLimit(t.Creds); ok && rl.Remaining <= c.opts.RateLimitReserve {
		return c.stale(ctx, row, fmt.Errorf("%w: %d pulls remaining for %s, reserve %d; the tag moved to %s upstream",
			errReserve, rl.Remaining, t.Creds.Named(), c.opts.RateLimitReserve, desc.Digest)), nil
	}
	c.log.InfoContext(ctx, "tag moved upstream", "image", t.Image, "ref", ref.String(), "old", row.Digest, "new", desc.Digest)
	m, err := c.fetch(ctx, t, ref)
	if err != nil && upstreamFailed(err) {
		return c.stale(ctx, row, err), nil
	}
	return m, err
}

// errReserve is the cause of serving a cached manifest to keep the
// upstream's pull rate limit at its reserve.
var errReserve = errors.New("the upstream pull rate limit is at the reserve, serving the cached copy instead of a manifest GET")

// stale serves a cached row because the upstream failed or its rate limit
// is at the reserve.
func (c *Cache) stale(ctx context.Context, row store.Manifest, cause error) Manifest {
	c.log.WarnContext(ctx, "serving cached manifest instead of the upstream's",
		"image", row.Image, "ref", row.Reference, "digest", row.Digest, "err", cause)
	c.touch.manifest(row.ID)
	c.opts.Metrics.StaleServed("manifest", reason(cause))
	return fromRow(row, metrics.ResultStale)
}

// fetch GETs a manifest upstream, verifies it and stores it under the
// reference asked for and, for a tag, under its digest too (Docker clients
// HEAD the tag and then GET the digest).
func (c *Cache) fetch(ctx context.Context, t Target, ref oci.Reference) (Manifest, error) {
	fctx, cancel := context.WithTimeout(ctx, c.opts.FetchTimeout)
	defer cancel()
	um, err := c.remote.GetManifest(fctx, t.Creds, t.Image, ref)
	if err != nil {
		return Manifest{}, err
	}
	if ref.IsDigest() && um.Digest != ref.Digest {
		return Manifest{}, fmt.Errorf("%w: upstream manifest digest %s does not match requested %s for %s", oci.ErrUnavailable, um.Digest, ref.Digest, t.Image)
	}
	// The remote checked it; nothing else gets into the store either way.
	if _, err := oci.ManifestMediaType(um.MediaType, um.Content); err != nil {
		return Manifest{}, fmt.Errorf("upstream manifest %s%s%s: %w", t.Image, refSep(ref), ref, err)
	}
	c.opts.Metrics.CacheResult("manifest", metrics.ResultMiss)
	now := c.opts.Now()
	row := store.Manifest{
		OwnerID: t.GroupID, Image: t.Image, Reference: ref.String(),
		Digest: um.Digest, MediaType: um.MediaType, Size: int64(len(um.Content)),
		Content: um.Content, ETag: um.ETag, Status: store.StatusDefault,
		CreatedAt: now, UpdatedAt: now, ReadAt: now,
	}
	refs := []string{ref.String()}
	if !ref.IsDigest() {
		refs = append(refs, string(um.Digest))
	}
	for _, r := range refs {
		row.Reference = r
		if _, err := c.meta.PutManifest(ctx, row); err != nil {
			// The client still gets verified bytes; the next pull retries the write.
			c.log.ErrorContext(ctx, "store manifest", "image", t.Image, "ref", r, "err", err)
		}
	}
	return Manifest{Content: um.Content, Digest: um.Digest, MediaType: um.MediaType, ETag: um.ETag, Result: metrics.ResultMiss}, nil
}

// upstreamFailed reports whether err means the upstream could not answer
// or answered with something that is not a manifest (as opposed to
// answering "no such manifest"), so cached content may be served instead.
// The upstream's "repository not found or private" (oci.ErrNameUnknown,
// Docker Hub's insufficient_scope) counts as a failure: it cannot tell a
// deleted repository from credentials that lost access, and a cache keeps
// serving what it has while access is restored.
func upstreamFailed(err error) bool {
	return errors.Is(err, oci.ErrUnavailable) || errors.Is(err, oci.ErrTimeout) ||
		errors.Is(err, oci.ErrTooManyRequests) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, oci.ErrManifestInvalid) || errors.Is(err, oci.ErrNameUnknown)
}

// reason is a short label of an upstream failure for metrics.
func reason(err error) string {
	switch {
	case errors.Is(err, errReserve):
		return "rate_limit_reserve"
	case errors.Is(err, upstream.ErrCircuitOpen):
		return "upstream_failing"
	case errors.Is(err, oci.ErrTooManyRequests):
		return "rate_limited"
	case errors.Is(err, oci.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, oci.ErrManifestInvalid):
		return "invalid_manifest"
	case errors.Is(err, oci.ErrNameUnknown):
		return "not_found_or_private"
	default:
		return "unavailable"
	}
}
