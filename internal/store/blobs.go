package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/dproxy/dproxy/internal/oci"
)

const blobColumns = `group_id, digest, size, created_at, read_at`

func scanBlob(row interface{ Scan(...any) error }) (Blob, error) {
	var b Blob
	var digest string
	if err := row.Scan(&b.OwnerID, &digest, &b.Size, &b.CreatedAt, &b.ReadAt); err != nil {
		return Blob{}, err
	}
	b.Digest = oci.Digest(digest)
	b.CreatedAt, b.ReadAt = b.CreatedAt.UTC(), b.ReadAt.UTC()
	return b, nil
}

// Blob returns a group's reference to the blob d, or an error wrapping
// ErrNotFound.
func (s *Store) Blob(ctx context.Context, groupID int64, d oci.Digest) (Blob, error) {
	return s.cachedBlob(ctx, &groupCache, groupID, d)
}

func (s *Store) cachedBlob(ctx context.Context, t *cacheTables, owner int64, d oci.Digest) (Blob, error) {
	b, err := scanBlob(s.readRow(ctx, t.blob, owner, string(d)))
	if err != nil {
		return Blob{}, notFound(err, fmt.Sprintf("blob %s of %s %d", d, t.owner, owner))
	}
	return b, nil
}

// PutBlob inserts or updates a group's reference to a blob. Zero times mean
// now; an existing reference keeps its CreatedAt. An unknown group is an
// error wrapping ErrNotFound.
func (s *Store) PutBlob(ctx context.Context, b Blob) error {
	return s.putBlob(ctx, &groupCache, b)
}

func (s *Store) putBlob(ctx context.Context, t *cacheTables, b Blob) error {
	_, err := s.insertBlob(ctx, t, b, t.putBlob)
	return err
}

// PutBlobUnpurged is PutBlob for a download that started when the group's
// purge generation (PurgeGeneration) was generation: when the group's cache
// was purged since, nothing is stored and added is false. The check and
// the insert are one statement, so a purge through any replica sharing the
// database either comes first (and wins) or removes the reference.
func (s *Store) PutBlobUnpurged(ctx context.Context, b Blob, generation int64) (added bool, _ error) {
	return s.insertBlob(ctx, &groupCache, b, groupCache.putBlobUnpurged, generation)
}

// PurgeGeneration returns how many times the group's cache was purged, or
// an error wrapping ErrNotFound.
func (s *Store) PurgeGeneration(ctx context.Context, groupID int64) (int64, error) {
	return s.purgeGeneration(ctx, &groupCache, groupID)
}

func (s *Store) purgeGeneration(ctx context.Context, t *cacheTables, owner int64) (int64, error) {
	var n int64
	if err := s.w.QueryRowContext(ctx, t.generation, owner).Scan(&n); err != nil {
		return 0, notFound(err, fmt.Sprintf("purge generation of %s %d", t.owner, owner))
	}
	return n, nil
}

// insertBlob runs query (putBlob or putBlobUnpurged, extra holding the
// latter's generation) and, in the same transaction, takes the blob off
// the list of unreferenced files when a reference was stored.
func (s *Store) insertBlob(ctx context.Context, t *cacheTables, b Blob, query string, extra ...any) (bool, error) {
	now := s.now()
	args := append([]any{b.OwnerID, string(b.Digest), b.Size, dbTime(orNow(b.CreatedAt, now)), dbTime(orNow(b.ReadAt, now))}, extra...)
	var added bool
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, query, args...)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil || n == 0 {
			return err
		}
		added = true
		_, err = tx.ExecContext(ctx, `DELETE FROM blob_unreferenced WHERE digest = $1`, string(b.Digest))
		return err
	})
	if s.isForeignKey(err) {
		return false, fmt.Errorf("store blob %s: %s %d: %w", b.Digest, t.owner, b.OwnerID, ErrNotFound)
	}
	if err != nil {
		return false, fmt.Errorf("store blob %s of %s %d: %w", b.Digest, t.owner, b.OwnerID, err)
	}
	return added, nil
}

// TouchBlobs sets the read time of the given blob references to at, in one
// transaction. References that no longer exist are skipped.
func (s *Store) TouchBlobs(ctx context.Context, keys []BlobKey, at time.Time) error {
	return s.touchBlobs(ctx, &groupCache, keys, at)
}

func (s *Store) touchBlobs(ctx context.Context, t *cacheTables, keys []BlobKey, at time.Time) error {
	if len(keys) == 0 {
		return nil
	}
	at = s.stamp(at)
	return s.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, t.touchBlob)
		if err != nil {
			return fmt.Errorf("record read time of %d blobs: %w", len(keys), err)
		}
		defer stmt.Close()
		for _, k := range keys {
			if _, err := stmt.ExecContext(ctx, at, k.OwnerID, string(k.Digest)); err != nil {
				return fmt.Errorf("record read time of blob %s of %s %d: %w", k.Digest, t.owner, k.OwnerID, err)
			}
		}
		return nil
	})
}

// DeleteBlob removes a group's reference to a blob. It is idempotent: a
// reference that is already gone is not an error, so concurrent healers and
// purges do not fail each other. The blob file is not touched.
func (s *Store) DeleteBlob(ctx context.Context, groupID int64, d oci.Digest) error {
	return s.deleteBlob(ctx, &groupCache, groupID, d)
}

func (s *Store) deleteBlob(ctx context.Context, t *cacheTables, owner int64, d oci.Digest) error {
	if _, err := s.w.ExecContext(ctx, t.deleteBlob, owner, string(d)); err != nil {
		return fmt.Errorf("delete blob %s of %s %d: %w", d, t.owner, owner, err)
	}
	return nil
}

// BlobReferenced reports whether any group or virtual registry upstream
// still references the blob d,
// i.e. whether its file must be kept.
func (s *Store) BlobReferenced(ctx context.Context, d oci.Digest) (bool, error) {
	var ok bool
	err := s.readRow(ctx, `SELECT EXISTS (SELECT 1 FROM blob_refs WHERE digest = $1)`, string(d)).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("is blob %s referenced: %w", d, err)
	}
	return ok, nil
}

// UnreferencedSince is garbage collection's first phase for the file of
// blob d: when something references d, it forgets any earlier finding and
// returns referenced; otherwise it returns since when the file is known to
// be unreferenced, recording now when this is the first time. A reference
// added later (PutBlob) clears the record.
func (s *Store) UnreferencedSince(ctx context.Context, d oci.Digest, now time.Time) (since time.Time, referenced bool, _ error) {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM blob_refs WHERE digest = $1)`, string(d)).Scan(&referenced); err != nil {
			return err
		}
		if referenced {
			_, err := tx.ExecContext(ctx, `DELETE FROM blob_unreferenced WHERE digest = $1`, string(d))
			return err
		}
		return tx.QueryRowContext(ctx, `INSERT INTO blob_unreferenced (digest, since) VALUES ($1, $2)
			ON CONFLICT (digest) DO UPDATE SET since = blob_unreferenced.since RETURNING since`,
			string(d), dbTime(now)).Scan(&since)
	})
	if err != nil {
		return time.Time{}, false, fmt.Errorf("is blob %s unreferenced: %w", d, err)
	}
	return since.UTC(), referenced, nil
}

// ForgetUnreferenced drops the record UnreferencedSince keeps of blob d,
// once its file is deleted.
func (s *Store) ForgetUnreferenced(ctx context.Context, d oci.Digest) error {
	if _, err := s.w.ExecContext(ctx, `DELETE FROM blob_unreferenced WHERE digest = $1`, string(d)); err != nil {
		return fmt.Errorf("forget unreferenced blob %s: %w", d, err)
	}
	return nil
}

// BlobsOfGroup returns up to limit of a group's blob references ordered by
// digest, starting after the digest after when it is non-empty.
func (s *Store) BlobsOfGroup(ctx context.Context, groupID int64, after oci.Digest, limit int) ([]Blob, error) {
	rows, err := s.read(ctx,
		`SELECT `+blobColumns+` FROM blobs WHERE group_id = $1 AND digest > $2 ORDER BY digest LIMIT $3`,
		groupID, string(after), listLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("list blobs of group %d: %w", groupID, err)
	}
	defer rows.Close()
	var out []Blob
	for rows.Next() {
		b, err := scanBlob(rows)
		if err != nil {
			return nil, fmt.Errorf("list blobs of group %d: %w", groupID, err)
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list blobs of group %d: %w", groupID, err)
	}
	return out, nil
}

// Usage is what a group's cache holds.
type Usage struct {
	Manifests int // rows: one per tag or digest an image was cached under
	// Images counts distinct images (image and digest): a pull by tag and
	// the pull by digest that follows it are one image.
	Images        int
	Blobs         int
	ManifestBytes int64
	BlobBytes     int64
}

// GroupUsage counts a group's cached manifests and blob references and
// adds up their sizes.
func (s *Store) GroupUsage(ctx context.Context, groupID int64) (Usage, error) {
	var u Usage
	err := s.readRow(ctx,
		`SELECT (SELECT COUNT(*) FROM manifests WHERE group_id = $1),
			(SELECT COUNT(DISTINCT image || '@' || digest) FROM manifests WHERE group_id = $1),
			(SELECT COALESCE(SUM(size), 0) FROM manifests WHERE group_id = $1),
			(SELECT COUNT(*) FROM blobs WHERE group_id = $1),
			(SELECT COALESCE(SUM(size), 0) FROM blobs WHERE group_id = $1)`, groupID).
		Scan(&u.Manifests, &u.Images, &u.ManifestBytes, &u.Blobs, &u.BlobBytes)
	if err != nil {
		return Usage{}, fmt.Errorf("cache usage of group %d: %w", groupID, err)
	}
	return u, nil
}

// groupUsagesSelect is GroupUsages' query up to its IN list.
const groupUsagesSelect = `SELECT g.id,
	(SELECT COUNT(*) FROM manifests WHERE group_id = g.id),
	(SELECT COUNT(DISTINCT image || '@' || digest) FROM manifests WHERE group_id = g.id),
	(SELECT COALESCE(SUM(size), 0) FROM manifests WHERE group_id = g.id),
	(SELECT COUNT(*) FROM blobs WHERE group_id = g.id),
	(SELECT COALESCE(SUM(size), 0) FROM blobs WHERE group_id = g.id)
	FROM groups g WHERE g.id IN `

// GroupUsages is GroupUsage of each of the groups, read together (one
// query per maxBatch ids). Unknown groups are absent from the result.
func (s *Store) GroupUsages(ctx context.Context, groupIDs []int64) (map[int64]Usage, error) {
	out := make(map[int64]Usage, len(groupIDs))
	err := inBatches(groupIDs, func(in string, args []any) error {
		rows, err := s.read(ctx, groupUsagesSelect+`(`+in+`)`, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id int64
			var u Usage
			if err := rows.Scan(&id, &u.Manifests, &u.Images, &u.ManifestBytes, &u.Blobs, &u.BlobBytes); err != nil {
				return err
			}
			out[id] = u
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("cache usage of %d groups: %w", len(groupIDs), err)
	}
	return out, nil
}

// PurgeGroupCache deletes all of a group's manifests, blob references and
// cached lists in one transaction, counts the purge (PurgeGeneration) and
// returns the digests of the blobs it referenced; the caller removes the files that BlobReferenced then
// reports as unused.
func (s *Store) PurgeGroupCache(ctx context.Context, groupID int64) ([]oci.Digest, error) {
	var digests []oci.Digest
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `DELETE FROM blobs WHERE group_id = $1 RETURNING digest`, groupID)
		if err != nil {
			return fmt.Errorf("purge blobs of group %d: %w", groupID, err)
		}
		defer rows.Close()
		for rows.Next() {
			var d string
			if err := rows.Scan(&d); err != nil {
				return fmt.Errorf("purge blobs of group %d: %w", groupID, err)
			}
			digests = append(digests, oci.Digest(d))
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("purge blobs of group %d: %w", groupID, err)
		}
		rows.Close()
		if _, err := tx.ExecContext(ctx, `DELETE FROM manifests WHERE group_id = $1`, groupID); err != nil {
			return fmt.Errorf("purge manifests of group %d: %w", groupID, err)
		}
		if err := purgeLists(ctx, tx, groupID); err != nil {
			return err
		}
		return bumpPurgeGeneration(ctx, tx, &groupCache, groupID)
	})
	if err != nil {
		return nil, err
	}
	return digests, nil
}

// Expired is what ExpireGroupCache removed.
type Expired struct {
	Manifests int64
	Blobs     []oci.Digest // digests whose reference was removed
}

// ExpireGroupCache deletes, in one transaction, a group's manifests, blob
// references and cached lists last read before before (the TTL policy's
// cut-off), and those of the upstreams of the group's virtual registries:
// the policy of a top-level group covers its virtual registries' caches
// too.
func (s *Store) ExpireGroupCache(ctx context.Context, groupID int64, before time.Time) (Expired, error) {
	var e Expired
	cut := dbTime(before)
	owners := []struct {
		manifests, blobs, lists, where string
	}{
		{"manifests", "blobs", "lists", `group_id = $1`},
		{"virtual_manifests", "virtual_blobs", "virtual_lists", `upstream_id IN (SELECT u.id FROM virtual_registry_upstreams u
			JOIN virtual_registries r ON r.id = u.registry_id WHERE r.group_id = $1)`},
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for _, o := range owners {
			res, err := tx.ExecContext(ctx, `DELETE FROM `+o.manifests+` WHERE `+o.where+` AND read_at < $2`, groupID, cut)
			if err != nil {
				return fmt.Errorf("expire %s of group %d: %w", o.manifests, groupID, err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("expire %s of group %d: %w", o.manifests, groupID, err)
			}
			e.Manifests += n
			ds, err := expireBlobs(ctx, tx, `DELETE FROM `+o.blobs+` WHERE `+o.where+` AND read_at < $2 RETURNING digest`, groupID, cut)
			if err != nil {
				return fmt.Errorf("expire %s of group %d: %w", o.blobs, groupID, err)
			}
			e.Blobs = append(e.Blobs, ds...)
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+o.lists+` WHERE `+o.where+` AND read_at < $2`, groupID, cut); err != nil {
				return fmt.Errorf("expire %s of group %d: %w", o.lists, groupID, err)
			}
		}
		return nil
	})
	if err != nil {
		return Expired{}, err
	}
	return e, nil
}

// expireBlobs runs a DELETE … RETURNING digest and returns the digests.
func expireBlobs(ctx context.Context, tx *sql.Tx, query string, args ...any) ([]oci.Digest, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []oci.Digest
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			return nil, err
		}
		out = append(out, oci.Digest(d))
	}
	return out, rows.Err()
}
