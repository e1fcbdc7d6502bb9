package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/dproxy/dproxy/internal/oci"
)

const manifestColumns = `id, group_id, image, reference, digest, media_type, size, image_size, content, etag, status,
	created_at, updated_at, read_at`

func scanManifest(row interface{ Scan(...any) error }) (Manifest, error) {
	var m Manifest
	var digest string
	err := row.Scan(&m.ID, &m.OwnerID, &m.Image, &m.Reference, &digest, &m.MediaType, &m.Size, &m.ImageSize, &m.Content,
		&m.ETag, &m.Status, &m.CreatedAt, &m.UpdatedAt, &m.ReadAt)
	if err != nil {
		return Manifest{}, err
	}
	m.Digest = oci.Digest(digest)
	m.CreatedAt, m.UpdatedAt, m.ReadAt = m.CreatedAt.UTC(), m.UpdatedAt.UTC(), m.ReadAt.UTC()
	return m, nil
}

// Manifest returns a group's cached manifest for image and reference (a
// tag or a digest), or an error wrapping ErrNotFound.
func (s *Store) Manifest(ctx context.Context, groupID int64, image, reference string) (Manifest, error) {
	return s.cachedManifest(ctx, &groupCache, groupID, image, reference)
}

func (s *Store) cachedManifest(ctx context.Context, t *cacheTables, owner int64, image, reference string) (Manifest, error) {
	m, err := scanManifest(s.readRow(ctx, t.manifest, owner, image, reference))
	if err != nil {
		return Manifest{}, notFound(err, fmt.Sprintf("manifest %s:%s of %s %d", image, reference, t.owner, owner))
	}
	return m, nil
}

// ManifestByID returns the manifest with id, or an error wrapping
// ErrNotFound.
func (s *Store) ManifestByID(ctx context.Context, id int64) (Manifest, error) {
	m, err := scanManifest(s.readRow(ctx, `SELECT `+manifestColumns+` FROM manifests WHERE id = $1`, id))
	if err != nil {
		return Manifest{}, notFound(err, fmt.Sprintf("manifest %d", id))
	}
	return m, nil
}

// PutManifest inserts or replaces the manifest for (GroupID, Image,
// Reference) and returns the stored row with its ID. Zero times mean now;
// on a replace the original CreatedAt is kept. An empty Status means
// StatusDefault, a zero Size means len(Content). ImageSize is computed
// from Content (imageSize). An unknown group is an
// error wrapping ErrNotFound.
func (s *Store) PutManifest(ctx context.Context, m Manifest) (Manifest, error) {
	return s.putManifest(ctx, &groupCache, m)
}

func (s *Store) putManifest(ctx context.Context, t *cacheTables, m Manifest) (Manifest, error) {
	now := s.now()
	m.CreatedAt = dbTime(orNow(m.CreatedAt, now))
	m.UpdatedAt = dbTime(orNow(m.UpdatedAt, now))
	m.ReadAt = dbTime(orNow(m.ReadAt, now))
	if m.Status == "" {
		m.Status = StatusDefault
	}
	if m.Size == 0 {
		m.Size = int64(len(m.Content))
	}
	m.ImageSize = imageSize(m.MediaType, m.Content)
	m.Content = append(make([]byte, 0, len(m.Content)), m.Content...) // never nil: the column is NOT NULL
	err := s.w.QueryRowContext(ctx, t.putManifest,
		m.OwnerID, m.Image, m.Reference, string(m.Digest), m.MediaType, m.Size, m.ImageSize, m.Content, m.ETag, m.Status,
		m.CreatedAt, m.UpdatedAt, m.ReadAt).Scan(&m.ID, &m.CreatedAt)
	if s.isForeignKey(err) {
		return Manifest{}, fmt.Errorf("store manifest %s:%s: %s %d: %w", m.Image, m.Reference, t.owner, m.OwnerID, ErrNotFound)
	}
	if err != nil {
		return Manifest{}, fmt.Errorf("store manifest %s:%s of %s %d: %w", m.Image, m.Reference, t.owner, m.OwnerID, err)
	}
	m.CreatedAt = m.CreatedAt.UTC()
	return m, nil
}

func orNow(t, now time.Time) time.Time {
	if t.IsZero() {
		return now
	}
	return t
}

// ConfirmManifest records that the upstream revalidated a manifest at at
// (UpdatedAt). An unknown id is an error wrapping ErrNotFound.
func (s *Store) ConfirmManifest(ctx context.Context, id int64, at time.Time) error {
	return s.confirmManifest(ctx, &groupCache, id, at)
}

func (s *Store) confirmManifest(ctx context.Context, t *cacheTables, id int64, at time.Time) error {
	res, err := s.w.ExecContext(ctx, t.confirmManifest, s.stamp(at), id)
	return affected(res, err, fmt.Sprintf("confirm manifest %d", id))
}

// SetManifestStatus sets a manifest's status (StatusDefault or
// StatusPendingDestruction). An unknown id is an error wrapping ErrNotFound.
func (s *Store) SetManifestStatus(ctx context.Context, id int64, status string) error {
	if status != StatusDefault && status != StatusPendingDestruction {
		return fmt.Errorf("set status of manifest %d: unknown status %q", id, status)
	}
	res, err := s.w.ExecContext(ctx, `UPDATE manifests SET status = $1 WHERE id = $2`, status, id)
	return affected(res, err, fmt.Sprintf("set status of manifest %d", id))
}

// DeleteManifest deletes a manifest. An unknown id is an error wrapping
// ErrNotFound.
func (s *Store) DeleteManifest(ctx context.Context, id int64) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM manifests WHERE id = $1`, id)
	return affected(res, err, fmt.Sprintf("delete manifest %d", id))
}

// TouchManifests sets the read time of the manifests with ids to at, in one
// transaction. Ids that no longer exist are skipped.
func (s *Store) TouchManifests(ctx context.Context, ids []int64, at time.Time) error {
	return s.touchManifests(ctx, &groupCache, ids, at)
}

func (s *Store) touchManifests(ctx context.Context, t *cacheTables, ids []int64, at time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	at = s.stamp(at)
	return s.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, t.touchManifest)
		if err != nil {
			return fmt.Errorf("record read time of %d manifests: %w", len(ids), err)
		}
		defer stmt.Close()
		for _, id := range ids {
			if _, err := stmt.ExecContext(ctx, at, id); err != nil {
				return fmt.Errorf("record read time of manifest %d: %w", id, err)
			}
		}
		return nil
	})
}

// listLimit bounds a list request: limit <= 0 means 100, at most 1000.
func listLimit(limit int) int {
	if limit <= 0 {
		return 100
	}
	return min(limit, 1000)
}

// ManifestsOfGroup returns up to limit of a group's manifests, newest
// (highest ID) first, starting below afterID when it is non-zero.
func (s *Store) ManifestsOfGroup(ctx context.Context, groupID, afterID int64, limit int) ([]Manifest, error) {
	after := afterID
	if after <= 0 {
		after = 1<<63 - 1
	}
	rows, err := s.read(ctx,
		`SELECT `+manifestColumns+` FROM manifests WHERE group_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3`,
		groupID, after, listLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("list manifests of group %d: %w", groupID, err)
	}
	defer rows.Close()
	var out []Manifest
	for rows.Next() {
		m, err := scanManifest(rows)
		if err != nil {
			return nil, fmt.Errorf("list manifests of group %d: %w", groupID, err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list manifests of group %d: %w", groupID, err)
	}
	return out, nil
}
