package cache

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/store"
	"github.com/dproxy/dproxy/internal/upstream"
)

// Virtual serves container virtual registries: one pull address over an
// ordered list of upstream registries. Each upstream has a Cache of its
// own (its own tables through store.UpstreamCache, its own upstream
// client), so every guarantee of the dependency proxy holds per upstream:
// exact bytes, verification, one fetch per blob, streaming, serve-stale.
//
// Resolution of a manifest: a cached copy from any upstream, in order,
// wins while it is valid for that upstream (cache_validity_hours; 0 =
// always), then a HEAD to that upstream decides; a 404 there moves on.
// Uncached content is asked of the upstreams in order: a 404 or a failure
// moves on to the next one; when none has it, the first failure (naming
// its upstream) or a 404 is returned.
//
// An upstream is chosen by a group owner, so its HEAD proves nothing: a
// blob file stored for a group or another upstream is served through an
// upstream only after that upstream served the same bytes (downloaded and
// verified; the commit keeps the one file). The exception is an upstream
// at the operator's instance upstream URL, whose HEAD is trusted as for
// the dependency proxy (Options.TrustHead).
type Virtual struct {
	registries upstreamLister
	meta       metaStore
	blobs      blobStore
	newRemote  func(url string) (Remote, error)
	instance   string // the operator's upstream URL
	opts       Options

	mu     sync.Mutex
	caches map[int64]*upstreamCache // upstream id → its cache
	closed bool
}

// upstreamLister reads a registry's upstreams in order, and one upstream.
type upstreamLister interface {
	VirtualUpstreams(ctx context.Context, registryID int64) ([]store.VirtualUpstream, error)
	VirtualUpstream(ctx context.Context, id int64) (store.VirtualUpstream, error)
}

// upstreamCache is the cache of one upstream, for one URL.
type upstreamCache struct {
	url string
	c   *Cache
}

// neverStale is the freshness window of an upstream whose cached copies
// are never checked again (cache_validity_hours 0).
const neverStale = time.Duration(1<<63 - 1)

// NewVirtual returns the resolver of virtual registries. meta is the
// upstreams' cache store (store.UpstreamCache); newRemote makes the client
// of an upstream URL; instanceUpstream is the URL of the operator's
// upstream (the dependency proxy's). opts.TrustHead is ignored: it holds
// only for upstreams at instanceUpstream.
func NewVirtual(registries upstreamLister, meta metaStore, blobs blobStore, newRemote func(url string) (Remote, error), instanceUpstream string, opts Options) *Virtual {
	return &Virtual{registries: registries, meta: meta, blobs: blobs, newRemote: newRemote, instance: instanceUpstream,
		opts: opts, caches: map[int64]*upstreamCache{}}
}

// Close stops every upstream cache.
func (v *Virtual) Close() {
	v.mu.Lock()
	v.closed = true
	caches := v.caches
	v.caches = map[int64]*upstreamCache{}
	v.mu.Unlock()
	for _, uc := range caches {
		uc.c.Close()
	}
}

// cacheOf returns the cache of upstream u, made on first use and made
// again when its URL changed.
func (v *Virtual) cacheOf(u store.VirtualUpstream) (*Cache, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return nil, fmt.Errorf("%w: the server is shutting down", oci.ErrUnavailable)
	}
	if uc, ok := v.caches[u.ID]; ok && uc.url == u.URL {
		return uc.c, nil
	} else if ok {
		go uc.c.Close() // the URL changed: stop the old client's downloads
	}
	remote, err := v.newRemote(u.URL)
	if err != nil {
		return nil, fmt.Errorf("%w: upstream %s: %w", oci.ErrUnavailable, u.Name, err)
	}
	opts := v.opts
	opts.TrustHead = sameRegistry(u.URL, v.instance)
	c := New(v.meta, v.blobs, remote, opts)
	v.caches[u.ID] = &upstreamCache{url: u.URL, c: c}
	return c, nil
}

// sameRegistry reports whether two upstream URLs name the same registry:
// the same origin (store.SameOrigin) and path.
func sameRegistry(a, b string) bool {
	ua, errA := upstream.ParseURL(a)
	ub, errB := upstream.ParseURL(b)
	return errA == nil && errB == nil && store.SameOrigin(a, b) && ua.Path == ub.Path
}

// ForgetUpstream drops what the cache of an upstream remembers of its
// entries (downloads in flight stop adding references for it), before they
// are deleted.
func (v *Virtual) ForgetUpstream(id int64) {
	v.mu.Lock()
	uc, ok := v.caches[id]
	v.mu.Unlock()
	if ok {
		uc.c.ForgetGroup(id)
	}
}

// Prune closes the caches of upstreams that no longer exist (deleted here
// or on another replica), stopping their downloads.
func (v *Virtual) Prune(ctx context.Context) error {
	v.mu.Lock()
	ids := make([]int64, 0, len(v.caches))
	for id := range v.caches {
		ids = append(ids, id)
	}
	v.mu.Unlock()
	for _, id := range ids {
		_, err := v.registries.VirtualUpstream(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			v.mu.Lock()
			uc, ok := v.caches[id]
			delete(v.caches, id)
			v.mu.Unlock()
			if ok {
				uc.c.Close()
			}
		} else if err != nil {
			return fmt.Errorf("prune virtual registry caches: %w", err)
		}
	}
	return nil
}

// all returns every upstream cache made so far.
func (v *Virtual) all() []*Cache {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make([]*Cache, 0, len(v.caches))
	for _, uc := range v.caches {
		out = append(out, uc.c)
	}
	return out
}

// target is the request of image to upstream u.
func target(u store.VirtualUpstream, image string) Target {
	window := neverStale
	if u.CacheValidityHours > 0 {
		window = time.Duration(u.CacheValidityHours) * time.Hour
	}
	return Target{GroupID: u.ID, Image: upstreamImage(u.URL, image),
		Creds: upstream.Credentials{Username: u.Username, Password: u.Password}, FreshnessWindow: window}
}

// upstreamImage is the repository to ask an upstream for: Docker Hub (and
// its mirror mirror.gcr.io) keeps official images under library/, other
// registries take the name as is.
func upstreamImage(url, image string) string {
	host := strings.TrimPrefix(strings.TrimPrefix(url, "https://"), "http://")
	host, _, _ = strings.Cut(host, "/")
	switch host {
	case "registry-1.docker.io", "index.docker.io", "docker.io", "registry.hub.docker.com", "mirror.gcr.io":
		return oci.NormalizeImage(image)
	}
	return image
}

// notThere reports whether err means the upstream does not have it.
func notThere(err error) bool {
	return errors.Is(err, oci.ErrManifestUnknown) || errors.Is(err, oci.ErrBlobUnknown) || errors.Is(err, oci.ErrNameUnknown)
}

// resolve asks the upstreams of a registry for something: first those that
// have it cached (cached reports that), in order, then all of them in order.
//
// When no upstream has it and none failed, the error is missing (a
// MANIFEST_UNKNOWN or BLOB_UNKNOWN error) naming the upstreams; when one
// of them answered that the repository does not exist or is private
// (Docker Hub's insufficient_scope), it is NAME_UNKNOWN naming those
// upstreams and saying to set their credentials.
func resolve[T any](ctx context.Context, v *Virtual, registryID int64, what string, missing error,
	cached func(ctx context.Context, u store.VirtualUpstream) bool,
	get func(ctx context.Context, c *Cache, u store.VirtualUpstream) (T, error),
) (T, error) {
	var zero T
	ups, err := v.registries.VirtualUpstreams(ctx, registryID)
	if err != nil {
		return zero, err
	}
	if len(ups) == 0 {
		return zero, fmt.Errorf("%w: virtual registry %d has no upstreams; an owner adds one with `dproxy virtual-registry upstream add %d <name> <url>`",
			oci.ErrNameUnknown, registryID, registryID)
	}
	var firstErr error
	var private []store.VirtualUpstream // answered "not found or private"
	tried := make(map[int64]bool, len(ups))
	for pass := 0; pass < 2; pass++ {
		for _, u := range ups {
			if tried[u.ID] || (pass == 0 && !cached(ctx, u)) {
				continue
			}
			tried[u.ID] = true
			c, err := v.cacheOf(u)
			if err == nil {
				var out T
				if out, err = get(ctx, c, u); err == nil {
					return out, nil
				}
			}
			if ctx.Err() != nil {
				return zero, err
			}
			if !notThere(err) && firstErr == nil {
				firstErr = v.publicError(ctx, u, err)
			}
			if errors.Is(err, oci.ErrNameUnknown) {
				private = append(private, u)
			}
		}
	}
	if firstErr != nil {
		return zero, firstErr
	}
	names := make([]string, len(ups))
	for i, u := range ups {
		names[i] = u.Name
	}
	if len(private) > 0 {
		// The upstream's name and id only: its URL is the owner's secret
		// to keep (see publicError).
		hints := make([]string, len(private))
		for i, u := range private {
			hints[i] = fmt.Sprintf("not found on upstream %s: the repository does not exist there, or it is private; if it is private, set its credentials (`dproxy virtual-registry upstream update %d --username NAME --password-stdin`)", u.Name, u.ID)
		}
		return zero, fmt.Errorf("%w: %s is in none of the upstreams of virtual registry %d (%s); %s",
			oci.ErrNameUnknown, what, registryID, strings.Join(names, ", "), strings.Join(hints, "; "))
	}
	return zero, fmt.Errorf("%w: %s is in none of the upstreams of virtual registry %d (%s)",
		missing, what, registryID, strings.Join(names, ", "))
}

// Manifest returns image:ref of a virtual registry.
func (v *Virtual) Manifest(ctx context.Context, registryID int64, image string, ref oci.Reference) (Manifest, error) {
	return resolve(ctx, v, registryID, image+refSep(ref)+ref.String(), oci.ErrManifestUnknown,
		func(ctx context.Context, u store.VirtualUpstream) bool {
			_, err := v.meta.Manifest(ctx, u.ID, upstreamImage(u.URL, image), ref.String())
			return err == nil
		},
		func(ctx context.Context, c *Cache, u store.VirtualUpstream) (Manifest, error) {
			return c.Manifest(ctx, target(u, image), ref)
		})
}

// Blob returns blob d of image in a virtual registry.
func (v *Virtual) Blob(ctx context.Context, registryID int64, image string, d oci.Digest) (*Blob, error) {
	return resolve(ctx, v, registryID, "blob "+string(d), oci.ErrBlobUnknown,
		func(ctx context.Context, u store.VirtualUpstream) bool {
			_, err := v.meta.Blob(ctx, u.ID, d)
			return err == nil
		},
		func(ctx context.Context, c *Cache, u store.VirtualUpstream) (*Blob, error) {
			return c.Blob(ctx, target(u, image), d)
		})
}

// StatBlob returns the size of blob d of image in a virtual registry.
func (v *Virtual) StatBlob(ctx context.Context, registryID int64, image string, d oci.Digest) (int64, error) {
	return resolve(ctx, v, registryID, "blob "+string(d), oci.ErrBlobUnknown,
		func(ctx context.Context, u store.VirtualUpstream) bool {
			_, err := v.meta.Blob(ctx, u.ID, d)
			return err == nil
		},
		func(ctx context.Context, c *Cache, u store.VirtualUpstream) (int64, error) {
			return c.StatBlob(ctx, target(u, image), d)
		})
}

func refSep(ref oci.Reference) string {
	if ref.IsDigest() {
		return "@"
	}
	return ":"
}

// All is the set of every cache sharing the blob files and the store: the
// dependency proxy's (Main) and those of the virtual registry upstreams.
// The lifecycle asks it which blobs are in use, and has it remove a file
// only when no cache uses it.
type All struct {
	Main    *Cache
	Virtual *Virtual
}

func (a All) caches() []*Cache {
	return append([]*Cache{a.Main}, a.Virtual.all()...)
}

// InUse reports whether any cache downloads, serves or references blob d.
func (a All) InUse(d oci.Digest) bool {
	for _, c := range a.caches() {
		if c.InUse(d) {
			return true
		}
	}
	return false
}

// FlushReads writes every cache's pending read times.
func (a All) FlushReads(ctx context.Context) {
	for _, c := range a.caches() {
		c.FlushReads(ctx)
	}
}

// Prune closes the caches of virtual registry upstreams that no longer
// exist.
func (a All) Prune(ctx context.Context) error {
	return a.Virtual.Prune(ctx)
}

// RemoveUnusedBlob deletes the file of blob d when nothing references it
// and has not for grace, and no cache uses it (see Cache.RemoveUnusedBlob).
func (a All) RemoveUnusedBlob(ctx context.Context, d oci.Digest, now time.Time, grace time.Duration) (bool, error) {
	return removeUnused(ctx, a.caches(), d, now, grace)
}

// Idle reports whether no cache of a virtual registry upstream uses a blob
// (see Cache.Idle).
func (v *Virtual) Idle() bool {
	for _, c := range v.all() {
		if !c.Idle() {
			return false
		}
	}
	return true
}

// InFlight returns the number of blob downloads in progress from the
// upstreams of virtual registries.
func (v *Virtual) InFlight() int {
	n := 0
	for _, c := range v.all() {
		n += c.InFlight()
	}
	return n
}

// Downloads returns the blob downloads in progress from the upstreams of
// virtual registries; their Owners are upstream ids (VirtualUpstream.ID).
func (v *Virtual) Downloads() []Download {
	var out []Download
	for _, c := range v.all() {
		out = append(out, c.Downloads()...)
	}
	slices.SortFunc(out, func(a, b Download) int { return a.Started.Compare(b.Started) })
	return out
}
