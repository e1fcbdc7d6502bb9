package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dproxy/dproxy/internal/metrics"
	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/store"
	"github.com/dproxy/dproxy/internal/upstream"
)

// Listings: a repository's tag list and the referrers lists of its
// manifests. They change whenever the upstream's repository does, so they
// follow the freshness rule of tags without the HEAD a manifest has: a
// stored list younger than the target's freshness window is served, an
// older one (every one, with a window of 0) is asked of the upstream again
// and replaced; when the upstream fails, the stored list is served stale.

// TagList is a repository's tags as served to a client.
type TagList struct {
	Tags []string // lexical order, no duplicates
	// Result is metrics.ResultHit, ResultMiss or ResultStale.
	Result string
}

// ReferrerList is the referrers list of a manifest as served to a client.
type ReferrerList struct {
	Referrers []oci.Referrer
	// Result is metrics.ResultHit, ResultMiss or ResultStale.
	Result string
}

// listReadEvery is how stale a stored list's read time may get before a
// read writes it: TTL policies count in days, so an hour is precise
// enough, and a warm list costs no write.
const listReadEvery = time.Hour

// Tags returns the tags of t.Image. A repository the upstream does not
// know is an error wrapping oci.ErrNameUnknown.
func (c *Cache) Tags(ctx context.Context, t Target) (TagList, error) {
	content, result, err := c.listing(ctx, t, store.ListTags, "", func(ctx context.Context) ([]byte, error) {
		tags, err := c.remote.Tags(ctx, t.Creds, t.Image)
		if err != nil {
			return nil, err
		}
		if tags == nil {
			tags = []string{}
		}
		return json.Marshal(tags)
	})
	if err != nil {
		return TagList{}, err
	}
	var tags []string
	if err := json.Unmarshal(content, &tags); err != nil {
		return TagList{}, fmt.Errorf("read the stored tag list of %s: %w", t.Image, err)
	}
	return TagList{Tags: tags, Result: result}, nil
}

// Referrers returns the manifests of t.Image whose subject is d: the
// upstream's referrers API, or its referrers tag schema, or none.
func (c *Cache) Referrers(ctx context.Context, t Target, d oci.Digest) (ReferrerList, error) {
	content, result, err := c.listing(ctx, t, store.ListReferrers, string(d), func(ctx context.Context) ([]byte, error) {
		r, err := c.remote.Referrers(ctx, t.Creds, t.Image, d)
		if err != nil {
			return nil, err
		}
		return oci.ReferrersIndex(r.Referrers), nil
	})
	if err != nil {
		return ReferrerList{}, err
	}
	refs, err := oci.ParseReferrersIndex(content)
	if err != nil {
		return ReferrerList{}, fmt.Errorf("read the stored referrers of %s@%s: %w", t.Image, d, err)
	}
	return ReferrerList{Referrers: refs, Result: result}, nil
}

// listing returns a stored list of t.Image, or fetches it (one fetch for
// all concurrent callers, detached from any one of them) and stores it.
func (c *Cache) listing(ctx context.Context, t Target, kind, subject string, fetch func(context.Context) ([]byte, error)) ([]byte, string, error) {
	row, err := c.meta.List(ctx, t.GroupID, t.Image, kind, subject)
	cached := err == nil
	switch {
	case cached && t.FreshnessWindow > 0 && c.opts.Now().Sub(row.UpdatedAt) < t.FreshnessWindow:
		return c.listServed(ctx, row, kind, metrics.ResultHit), metrics.ResultHit, nil
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return nil, "", fmt.Errorf("look up %s list of %s: %w", kind, t.Image, err)
	}
	key := "list\x00" + kind + "\x00" + strconv.FormatInt(t.GroupID, 10) + "\x00" + t.Image + "\x00" + subject
	ch := c.flights.DoChan(key, func() (any, error) {
		ctx := context.WithoutCancel(ctx)
		fctx, cancel := context.WithTimeout(ctx, c.opts.FetchTimeout)
		if cached {
			fctx = upstream.WithFallback(fctx) // the stored list is served after one failed attempt
		}
		content, err := fetch(fctx)
		cancel()
		if err != nil {
			return nil, err
		}
		now := c.opts.Now()
		if _, err := c.meta.PutList(ctx, store.List{OwnerID: t.GroupID, Image: t.Image, Kind: kind, Subject: subject,
			Content: content, UpdatedAt: now, ReadAt: now}); err != nil {
			// The client still gets the list; the next request asks again.
			c.log.ErrorContext(ctx, "store list", "kind", kind, "image", t.Image, "subject", subject, "err", err)
		}
		return content, nil
	})
	var res singleResult
	select {
	case r := <-ch:
		res = singleResult{r.Val, r.Err}
	case <-ctx.Done():
		return nil, "", ctx.Err()
	}
	if res.err != nil {
		if cached && listUpstreamFailed(res.err) {
			c.log.WarnContext(ctx, "serving cached list instead of the upstream's", "kind", kind, "image", t.Image,
				"subject", subject, "err", res.err)
			c.opts.Metrics.StaleServed(kind, reason(res.err))
			return c.listServed(ctx, row, kind, metrics.ResultStale), metrics.ResultStale, nil
		}
		return nil, "", res.err
	}
	c.opts.Metrics.CacheResult(kind, metrics.ResultMiss)
	return res.val.([]byte), metrics.ResultMiss, nil
}

type singleResult struct {
	val any
	err error
}

// listServed records a read of a stored list and returns its content.
func (c *Cache) listServed(ctx context.Context, row store.List, kind, result string) []byte {
	if result == metrics.ResultHit {
		c.opts.Metrics.CacheResult(kind, result)
	}
	if now := c.opts.Now(); now.Sub(row.ReadAt) >= listReadEvery {
		if err := c.meta.TouchList(ctx, row.ID, now); err != nil && !errors.Is(err, store.ErrNotFound) {
			c.log.WarnContext(ctx, "record read time of list", "kind", kind, "image", row.Image, "err", err)
		}
	}
	return row.Content
}

// Tags returns the tags of image in a virtual registry: the union of its
// upstreams' tags, without duplicates, in lexical order. An upstream that
// does not know the repository adds none; one that fails (with no stored
// list to serve) is left out, and the list is served stale, unless none
// answered: then its failure (or, when every upstream answered that it
// does not know the repository, NAME_UNKNOWN) is returned.
func (v *Virtual) Tags(ctx context.Context, registryID int64, image string) (TagList, error) {
	var out TagList
	result, err := unite(ctx, v, registryID, image, func(ctx context.Context, c *Cache, u store.VirtualUpstream) (string, error) {
		l, err := c.Tags(ctx, target(u, image))
		out.Tags = append(out.Tags, l.Tags...)
		return l.Result, err
	})
	if err != nil {
		return TagList{}, err
	}
	slices.Sort(out.Tags)
	out.Tags = slices.Compact(out.Tags)
	out.Result = result
	return out, nil
}

// Referrers returns the referrers of image@d in a virtual registry: the
// union of its upstreams' referrers lists, each manifest once, in the
// order of the upstreams. Failures count as for Tags; every upstream
// answering that it has none is an empty list.
func (v *Virtual) Referrers(ctx context.Context, registryID int64, image string, d oci.Digest) (ReferrerList, error) {
	var out ReferrerList
	seen := map[oci.Digest]bool{}
	result, err := unite(ctx, v, registryID, image, func(ctx context.Context, c *Cache, u store.VirtualUpstream) (string, error) {
		l, err := c.Referrers(ctx, target(u, image), d)
		for _, r := range l.Referrers {
			if !seen[r.Digest] {
				seen[r.Digest] = true
				out.Referrers = append(out.Referrers, r)
			}
		}
		return l.Result, err
	})
	if err != nil {
		return ReferrerList{}, err
	}
	out.Result = result
	return out, nil
}

// unite asks every upstream of a registry for its part of a list, in
// order, and says how the union was served: stale when an upstream's part
// was served stale or is missing because it failed, else a miss when any
// part came from an upstream, else a hit.
func unite(ctx context.Context, v *Virtual, registryID int64, image string,
	part func(ctx context.Context, c *Cache, u store.VirtualUpstream) (result string, err error),
) (string, error) {
	ups, err := v.registries.VirtualUpstreams(ctx, registryID)
	if err != nil {
		return "", err
	}
	if len(ups) == 0 {
		return "", fmt.Errorf("%w: virtual registry %d has no upstreams; an owner adds one with `dproxy virtual-registry upstream add %d <name> <url>`",
			oci.ErrNameUnknown, registryID, registryID)
	}
	var firstErr error
	answered, miss, stale := 0, false, false
	for _, u := range ups {
		c, err := v.cacheOf(u)
		result := ""
		if err == nil {
			result, err = part(ctx, c, u)
		}
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		switch {
		case err == nil:
			answered++
			miss = miss || result == metrics.ResultMiss
			stale = stale || result == metrics.ResultStale
		case notThere(err):
		default:
			stale = true
			if firstErr == nil {
				firstErr = v.publicError(ctx, u, err)
			}
		}
	}
	switch {
	case answered == 0 && firstErr != nil:
		return "", firstErr
	case answered == 0:
		names := make([]string, len(ups))
		for i, u := range ups {
			names[i] = u.Name
		}
		return "", fmt.Errorf("%w: %s is in none of the upstreams of virtual registry %d (%s)",
			oci.ErrNameUnknown, image, registryID, strings.Join(names, ", "))
	case firstErr != nil:
		if log := v.opts.Logger; log != nil {
			log.WarnContext(ctx, "virtual registry list served without a failing upstream", "registry", registryID, "image", image, "err", firstErr)
		}
	}
	switch {
	case stale:
		return metrics.ResultStale, nil
	case miss:
		return metrics.ResultMiss, nil
	}
	return metrics.ResultHit, nil
}

// The upstream client is the Remote of every cache.
var _ Remote = (*upstream.Client)(nil)

// listUpstreamFailed is upstreamFailed for listings: a 404 of the listing
// itself says the upstream does not know the repository, and no stored
// list is served for it. Docker Hub's insufficient_scope (a 401: not found
// or private) stays a failure, as for manifests.
func listUpstreamFailed(err error) bool {
	if e := (*upstream.Error)(nil); errors.As(err, &e) && e.Status == http.StatusNotFound {
		return false
	}
	return upstreamFailed(err)
}
