package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/dproxy/dproxy/internal/oci"
)

// Queries that decide what the cache keeps and measure what it holds, for
// the cache's lifecycle: TTL policies, the size cap (sizes, least recently
// read, eviction), garbage collection and fsck (referenced blobs, dropping
// references). Expiry itself is ExpireGroupCache, in blobs.go.

// EnabledTTLPolicies returns the TTL policies that are enabled with a
// positive TTL, ordered by group ID.
func (s *Store) EnabledTTLPolicies(ctx context.Context) ([]TTLPolicy, error) {
	rows, err := s.r.QueryContext(ctx,
		`SELECT group_id, enabled, ttl_days, created_at, updated_at FROM ttl_policies
		WHERE enabled = $1 AND ttl_days > 0 ORDER BY group_id`, true)
	if err != nil {
		return nil, fmt.Errorf("list enabled ttl policies: %w", err)
	}
	defer rows.Close()
	var out []TTLPolicy
	for rows.Next() {
		var p TTLPolicy
		if err := rows.Scan(&p.GroupID, &p.Enabled, &p.TTLDays, &p.CreatedAt, &p.UpdatedAt); err != nil {
			return nil, fmt.Errorf("list enabled ttl policies: %w", err)
		}
		p.CreatedAt, p.UpdatedAt = p.CreatedAt.UTC(), p.UpdatedAt.UTC()
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list enabled ttl policies: %w", err)
	}
	return out, nil
}

// StoredBlob is a blob as the whole instance sees it: one digest, whatever
// number of groups reference it.
type StoredBlob struct {
	Digest oci.Digest
	Size   int64
	// ReadAt is the latest read time over every group's reference.
	ReadAt time.Time
}

// ReferencedBlobs returns up to limit digests that at least one group
// references, ordered by digest, starting after after when it is
// non-empty. ReadAt is left zero.
func (s *Store) ReferencedBlobs(ctx context.Context, after oci.Digest, limit int) ([]StoredBlob, error) {
	rows, err := s.r.QueryContext(ctx,
		`SELECT digest, MAX(size) FROM blob_refs WHERE digest > $1 GROUP BY digest ORDER BY digest LIMIT $2`,
		string(after), listLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("list referenced blobs: %w", err)
	}
	defer rows.Close()
	var out []StoredBlob
	for rows.Next() {
		var b StoredBlob
		var d string
		if err := rows.Scan(&d, &b.Size); err != nil {
			return nil, fmt.Errorf("list referenced blobs: %w", err)
		}
		b.Digest = oci.Digest(d)
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list referenced blobs: %w", err)
	}
	return out, nil
}

// CachedBlobBytes adds up the sizes of the referenced blobs, counting a blob
// shared by several groups once: the space the blob files take.
func (s *Store) CachedBlobBytes(ctx context.Context) (int64, error) {
	var n int64
	err := s.r.QueryRowContext(ctx,
		`SELECT COALESCE(SUM(size), 0) FROM (SELECT digest, MAX(size) AS size FROM blob_refs GROUP BY digest) AS d`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("add up cached blob sizes: %w", err)
	}
	return n, nil
}

// LeastRecentlyRead returns up to limit referenced blobs, least recently
// read first (ties by digest), where a blob's read time is the latest over
// all its references, starting after the blob after when it is not nil
// (the last one of the previous page). Each page walks an index from the
// cursor, so paging through every blob costs about one pass over the
// references, however many pages it takes.
func (s *Store) LeastRecentlyRead(ctx context.Context, after *StoredBlob, limit int) ([]StoredBlob, error) {
	var cut time.Time // zero: before any read time
	var afterDigest string
	if after != nil {
		cut, afterDigest = after.ReadAt, string(after.Digest)
	}
	// A reference is a blob's position when no other reference to the blob
	// was read later.
	rows, err := s.r.QueryContext(ctx,
		`SELECT b.digest, b.size, b.read_at FROM blob_refs b
		WHERE (b.read_at > $1 OR (b.read_at = $1 AND b.digest > $2))
			AND NOT EXISTS (SELECT 1 FROM blobs c WHERE c.digest = b.digest AND c.read_at > b.read_at)
			AND NOT EXISTS (SELECT 1 FROM virtual_blobs c WHERE c.digest = b.digest AND c.read_at > b.read_at)
		ORDER BY b.read_at, b.digest LIMIT $3`, dbTime(cut), afterDigest, listLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("list least recently read blobs: %w", err)
	}
	defer rows.Close()
	var out []StoredBlob
	for rows.Next() {
		var b StoredBlob
		var d string
		if err := rows.Scan(&d, &b.Size, &b.ReadAt); err != nil {
			return nil, fmt.Errorf("list least recently read blobs: %w", err)
		}
		b.Digest, b.ReadAt = oci.Digest(d), b.ReadAt.UTC()
		// Two owners may have read a blob at the same instant.
		if n := len(out); n > 0 && out[n-1].Digest == b.Digest {
			continue
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list least recently read blobs: %w", err)
	}
	return out, nil
}

// EvictBlob deletes every reference to blob d (groups' and virtual
// registry upstreams'), unless one of them was read after readAt (the blob
// was read since the caller chose it). It returns how many references it
// deleted. The file is not touched.
func (s *Store) EvictBlob(ctx context.Context, d oci.Digest, readAt time.Time) (int64, error) {
	n, err := s.EvictBlobs(ctx, []StoredBlob{{Digest: d, ReadAt: readAt}})
	if err != nil {
		return 0, err
	}
	return n[0], nil
}

// EvictBlobs is EvictBlob of each of blobs (Digest and ReadAt), in one
// transaction: n[i] is how many references of blobs[i] it deleted.
func (s *Store) EvictBlobs(ctx context.Context, blobs []StoredBlob) ([]int64, error) {
	n := make([]int64, len(blobs))
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for i, b := range blobs {
			var recent bool
			if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM blob_refs WHERE digest = $1 AND read_at > $2)`,
				string(b.Digest), dbTime(b.ReadAt)).Scan(&recent); err != nil {
				return fmt.Errorf("evict blob %s: %w", b.Digest, err)
			}
			if recent {
				continue
			}
			var err error
			if n[i], err = dropRefs(ctx, tx, b.Digest); err != nil {
				return fmt.Errorf("evict blob %s: %w", b.Digest, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return n, nil
}

// DropBlob deletes every reference to blob d (its file is missing or
// corrupt; the next pull fetches it again) and returns how many it
// deleted. The file is not touched.
func (s *Store) DropBlob(ctx context.Context, d oci.Digest) (int64, error) {
	var n int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		n, err = dropRefs(ctx, tx, d)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("drop blob %s: %w", d, err)
	}
	return n, nil
}

// dropRefs deletes the groups' and the upstreams' references to d.
func dropRefs(ctx context.Context, tx *sql.Tx, d oci.Digest) (int64, error) {
	var total int64
	for _, q := range []string{`DELETE FROM blobs WHERE digest = $1`, `DELETE FROM virtual_blobs WHERE digest = $1`} {
		res, err := tx.ExecContext(ctx, q, string(d))
		if err != nil {
			return 0, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}

// GroupCacheSize is the space a group's cache accounts for.
type GroupCacheSize struct {
	GroupID       int64
	Path          string
	ManifestBytes int64
	BlobBytes     int64 // a blob shared with other groups counts in each
}

// GroupCacheSizes returns the cache size of every group, ordered by path.
func (s *Store) GroupCacheSizes(ctx context.Context) ([]GroupCacheSize, error) {
	rows, err := s.r.QueryContext(ctx,
		`SELECT g.id, g.path,
			(SELECT COALESCE(SUM(m.size), 0) FROM manifests m WHERE m.group_id = g.id),
			(SELECT COALESCE(SUM(b.size), 0) FROM blobs b WHERE b.group_id = g.id)
		FROM groups g ORDER BY g.path`)
	if err != nil {
		return nil, fmt.Errorf("cache size of groups: %w", err)
	}
	defer rows.Close()
	var out []GroupCacheSize
	for rows.Next() {
		var u GroupCacheSize
		if err := rows.Scan(&u.GroupID, &u.Path, &u.ManifestBytes, &u.BlobBytes); err != nil {
			return nil, fmt.Errorf("cache size of groups: %w", err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cache size of groups: %w", err)
	}
	return out, nil
}
