package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/dproxy/dproxy/internal/oci"
)

// UpstreamCache is the cache of virtual registry upstreams, with the
// methods of the groups' cache: where those take a group id (OwnerID
// fields included), these take an upstream id. Blob files are shared, so
// BlobReferenced, UnreferencedSince, ForgetUnreferenced and DropBlob are
// the store's own.
type UpstreamCache struct{ s *Store }

// UpstreamCache returns the store's virtual registry upstream cache.
func (s *Store) UpstreamCache() UpstreamCache { return UpstreamCache{s} }

// Manifest returns an upstream's cached manifest, or an error wrapping ErrNotFound.
func (u UpstreamCache) Manifest(ctx context.Context, upstreamID int64, image, reference string) (Manifest, error) {
	return u.s.cachedManifest(ctx, &upstreamCache, upstreamID, image, reference)
}

// PutManifest stores a manifest of upstream m.OwnerID, as Store.PutManifest.
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

// PutBlob stores upstream b.OwnerID's reference to a blob.
func (u UpstreamCache) PutBlob(ctx context.Context, b Blob) error {
	return u.s.putBlob(ctx, &upstreamCache, b)
}

// PutBlobUnpurged stores upstream b.OwnerID's reference to a blob unless
// its cache was cleared since generation, as Store.PutBlobUnpurged.
func (u UpstreamCache) PutBlobUnpurged(ctx context.Context, b Blob, generation int64) (bool, error) {
	return u.s.insertBlob(ctx, &upstreamCache, b, upstreamCache.putBlobUnpurged, generation)
}

// PurgeGeneration returns how many times the upstream's cache was cleared.
func (u UpstreamCache) PurgeGeneration(ctx context.Context, upstreamID int64) (int64, error) {
	return u.s.purgeGeneration(ctx, &upstreamCache, upstreamID)
}

// DeleteBlob removes an upstream's reference to a blob; idempotent.
func (u UpstreamCache) DeleteBlob(ctx context.Context, upstreamID int64, d oci.Digest) error {
	return u.s.deleteBlob(ctx, &upstreamCache, upstreamID, d)
}

// TouchBlobs sets the read time of blob references (OwnerID: upstream id).
func (u UpstreamCache) TouchBlobs(ctx context.Context, keys []BlobKey, at time.Time) error {
	return u.s.touchBlobs(ctx, &upstreamCache, keys, at)
}

// BlobReferenced reports whether anything references blob d.
func (u UpstreamCache) BlobReferenced(ctx context.Context, d oci.Digest) (bool, error) {
	return u.s.BlobReferenced(ctx, d)
}

// UnreferencedSince is Store.UnreferencedSince.
func (u UpstreamCache) UnreferencedSince(ctx context.Context, d oci.Digest, now time.Time) (time.Time, bool, error) {
	return u.s.UnreferencedSince(ctx, d, now)
}

// ForgetUnreferenced is Store.ForgetUnreferenced.
func (u UpstreamCache) ForgetUnreferenced(ctx context.Context, d oci.Digest) error {
	return u.s.ForgetUnreferenced(ctx, d)
}

// DropBlob deletes every reference to blob d.
func (u UpstreamCache) DropBlob(ctx context.Context, d oci.Digest) (int64, error) {
	return u.s.DropBlob(ctx, d)
}

// VirtualCacheEntry is one thing an upstream's cache holds: a manifest
// ("<image>/manifests/<tag or digest>") or a blob ("blobs/<digest>").
type VirtualCacheEntry struct {
	Path   string
	Digest oci.Digest
	Size   int64
	// MediaType and ETag are a manifest's ("" for a blob).
	MediaType string
	ETag      string
	// CreatedAt is when the entry was stored; CheckedAt when the upstream
	// last confirmed it (a blob is immutable: when it was stored).
	CreatedAt time.Time
	CheckedAt time.Time
	ReadAt    time.Time
}

// virtualEntries is every cache entry of an upstream with its path.
const virtualEntries = `SELECT path, digest, size, media_type, etag, created_at, checked_at, read_at FROM (
	SELECT image || '/manifests/' || reference AS path, digest, size, media_type, etag, created_at, updated_at AS checked_at, read_at
		FROM virtual_manifests WHERE upstream_id = $1
	UNION ALL
	SELECT 'blobs/' || digest AS path, digest, size, '' AS media_type, '' AS etag, created_at, created_at AS checked_at, read_at
		FROM virtual_blobs WHERE upstream_id = $1) AS e`

// CacheEntryQuery selects cache entries of an upstream, ordered by path.
type CacheEntryQuery struct {
	// Search keeps the entries whose path contains it, ignoring case ("":
	// every entry).
	Search string
	// After keeps the entries whose path sorts after it ("": from the
	// first), for keyset paging.
	After string
	// Offset skips that many entries, for page paging.
	Offset int
	// Limit bounds the entries returned (0: the store's default page).
	Limit int
}

// likeContains is a LIKE pattern matching values that contain s, written
// for `lower(x) LIKE $n ESCAPE '\'`.
func likeContains(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(strings.ToLower(s)) + "%"
}

// VirtualCacheEntries returns an upstream's cache entries selected by q,
// ordered by path.
func (s *Store) VirtualCacheEntries(ctx context.Context, upstreamID int64, q CacheEntryQuery) ([]VirtualCacheEntry, error) {
	rows, err := s.read(ctx, virtualEntries+` WHERE path > $2 AND lower(path) LIKE $3 ESCAPE '\' ORDER BY path LIMIT $4 OFFSET $5`,
		upstreamID, q.After, likeContains(q.Search), listLimit(q.Limit), max(q.Offset, 0))
	if err != nil {
		return nil, fmt.Errorf("list cache entries of upstream %d: %w", upstreamID, err)
	}
	defer rows.Close()
	out := []VirtualCacheEntry{}
	for rows.Next() {
		var e VirtualCacheEntry
		var d string
		if err := rows.Scan(&e.Path, &d, &e.Size, &e.MediaType, &e.ETag, &e.CreatedAt, &e.CheckedAt, &e.ReadAt); err != nil {
			return nil, fmt.Errorf("list cache entries of upstream %d: %w", upstreamID, err)
		}
		e.Digest, e.CreatedAt, e.CheckedAt, e.ReadAt = oci.Digest(d), e.CreatedAt.UTC(), e.CheckedAt.UTC(), e.ReadAt.UTC()
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list cache entries of upstream %d: %w", upstreamID, err)
	}
	return out, nil
}

// CountVirtualCacheEntries counts an upstream's cache entries whose path
// contains search, ignoring case ("": every entry).
func (s *Store) CountVirtualCacheEntries(ctx context.Context, upstreamID int64, search string) (int, error) {
	var n int
	err := s.readRow(ctx, `SELECT COUNT(*) FROM (`+virtualEntries+` WHERE lower(path) LIKE $2 ESCAPE '\') AS c`,
		upstreamID, likeContains(search)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count cache entries of upstream %d: %w", upstreamID, err)
	}
	return n, nil
}

// DeleteVirtualCacheEntry deletes one entry of an upstream's cache by its
// path, or returns an error wrapping ErrNotFound.
func (s *Store) DeleteVirtualCacheEntry(ctx context.Context, upstreamID int64, path string) error {
	var res sql.Result
	var err error
	if d, ok := strings.CutPrefix(path, "blobs/"); ok {
		res, err = s.w.ExecContext(ctx, `DELETE FROM virtual_blobs WHERE upstream_id = $1 AND digest = $2`, upstreamID, d)
	} else if image, ref, found := strings.Cut(path, "/manifests/"); found {
		res, err = s.w.ExecContext(ctx, `DELETE FROM virtual_manifests WHERE upstream_id = $1 AND image = $2 AND reference = $3`, upstreamID, image, ref)
	} else {
		return fmt.Errorf("delete cache entry %q of upstream %d: %w", path, upstreamID, ErrNotFound)
	}
	return affected(res, err, fmt.Sprintf("delete cache entry %q of upstream %d", path, upstreamID))
}

// ClearVirtualCache deletes every cache entry of the given upstreams, and
// their cached lists, counts the clear in each upstream's purge generation
// (so that no download started before it adds a reference back), and returns how many entries (manifests and blobs)
// it deleted.
func (s *Store) ClearVirtualCache(ctx context.Context, upstreamIDs []int64) (int64, error) {
	var total int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for _, id := range upstreamIDs {
			for _, q := range []string{`DELETE FROM virtual_manifests WHERE upstream_id = $1`, `DELETE FROM virtual_blobs WHERE upstream_id = $1`} {
				res, err := tx.ExecContext(ctx, q, id)
				if err != nil {
					return fmt.Errorf("clear the cache of upstream %d: %w", id, err)
				}
				n, err := res.RowsAffected()
				if err != nil {
					return fmt.Errorf("clear the cache of upstream %d: %w", id, err)
				}
				total += n
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM virtual_lists WHERE upstream_id = $1`, id); err != nil {
				return fmt.Errorf("clear the cached lists of upstream %d: %w", id, err)
			}
			if err := bumpPurgeGeneration(ctx, tx, &upstreamCache, id); err != nil {
				return err
			}
		}
		return nil
	})
	return total, err
}
