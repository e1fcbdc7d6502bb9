package store

import (
	"context"
	"time"

	"github.com/dproxy/dproxy/internal/oci"
)

// UpstreamCache is the cache of virtual registry upstreams, with the
// methods of the groups' cache: where those take a group id (GroupID
// fields included), these take an upstream id. Blob files are shared, so
// BlobReferenced and DropBlob are the store's own.
type UpstreamCache struct{ s *Store }

// UpstreamCache returns the store's virtual registry upstream cache.
func (s *Store) UpstreamCache() UpstreamCache { return UpstreamCache{s} }

// Manifest returns an upstream's cached manifest, or an error wrapping ErrNotFound.
func (u UpstreamCache) Manifest(ctx context.Context, upstreamID int64, image, reference string) (Manifest, error) {
	return u.s.cachedManifest(ctx, &upstreamCache, upstreamID, image, reference)
}

// PutManifest stores a manifest of upstream m.GroupID, as Store.PutManifest.
func (u UpstreamCache) PutManifest(ctx context.Context, m Manifest) (Manifest, error) {
	return u.s.putManifest(ctx, &upstreamCache, m)
}

// ConfirmManifest records that the upstream revalidated a manifest at at.
func (u UpstreamCache) ConfirmManifest(ctx context.Context, id int64, at time.Time) error {
	return u.s.confirmManifest(ctx, &upstreamCache, id, at)
}

// TouchManifests sets the read time of manifests.
func (u UpstreamCache) TouchManifests(ctx context.Context, ids []int64, at time.Time) error {
	return u.s.touchManifests(ctx, &upstreamCache, ids, at)
}

// Blob returns an upstream's reference to blob d, or an error wrapping ErrNotFound.
func (u UpstreamCache) Blob(ctx context.Context, upstreamID int64, d oci.Digest) (Blob, error) {
	return u.s.cachedBlob(ctx, &upstreamCache, upstreamID, d)
}

// PutBlob stores upstream b.GroupID's reference to a blob.
func (u UpstreamCache) PutBlob(ctx context.Context, b Blob) error {
	return u.s.putBlob(ctx, &upstreamCache, b)
}

// DeleteBlob removes an upstream's reference to a blob; idempotent.
func (u UpstreamCache) DeleteBlob(ctx context.Context, upstreamID int64, d oci.Digest) error {
	return u.s.deleteBlob(ctx, &upstreamCache, upstreamID, d)
}

// TouchBlobs sets the read time of blob references (GroupID: upstream id).
func (u UpstreamCache) TouchBlobs(ctx context.Context, keys []BlobKey, at time.Time) error {
	return u.s.touchBlobs(ctx, &upstreamCache, keys, at)
}

// BlobReferenced reports whether anything references blob d.
func (u UpstreamCache) BlobReferenced(ctx context.Context, d oci.Digest) (bool, error) {
	return u.s.BlobReferenced(ctx, d)
}

// DropBlob deletes every reference to blob d.
func (u UpstreamCache) DropBlob(ctx context.Context, d oci.Digest) (int64, error) {
	return u.s.DropBlob(ctx, d)
}
