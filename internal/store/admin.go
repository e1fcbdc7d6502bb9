package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/dproxy/dproxy/internal/oci"
)

// Queries the admin API needs beyond the pull path: user flags, a user's
// memberships, a counted purge and blob listings newest first.

// UpdateUser applies c to a user in one statement. A new password hash or
// blocking moves the user's credential version on in the same statement,
// so every token minted for the user before stops working. An unknown id
// is an error wrapping ErrNotFound.
func (s *Store) UpdateUser(ctx context.Context, id int64, c UserChange) error {
	var hash, adm, blocked any
	if c.PasswordHash != nil {
		hash = *c.PasswordHash
	}
	if c.Admin != nil {
		adm = *c.Admin
	}
	if c.Blocked != nil {
		blocked = *c.Blocked
	}
	bump := 0
	if c.endsSessions() {
		bump = 1
	}
	res, err := s.w.ExecContext(ctx,
		`UPDATE users SET password_hash = COALESCE($1, password_hash), admin = COALESCE($2, admin),
			blocked = COALESCE($3, blocked), credential_version = credential_version + $4 WHERE id = $5`,
		hash, adm, blocked, bump, id)
	return affected(res, err, fmt.Sprintf("update user %d", id))
}

// MembershipsOfUser returns a user's direct memberships (GroupID and Role
// set), in no particular order.
func (s *Store) MembershipsOfUser(ctx context.Context, userID int64) ([]Member, error) {
	rows, err := s.r.QueryContext(ctx,
		`SELECT m.group_id, m.user_id, u.username, m.role, m.created_at
		FROM members m JOIN users u ON u.id = m.user_id WHERE m.user_id = $1`, userID)
	if err != nil {
		return nil, fmt.Errorf("list memberships of user %d: %w", userID, err)
	}
	defer rows.Close()
	var out []Member
	for rows.Next() {
		var m Member
		if err := rows.Scan(&m.GroupID, &m.UserID, &m.Username, &m.Role, &m.CreatedAt); err != nil {
			return nil, fmt.Errorf("list memberships of user %d: %w", userID, err)
		}
		m.CreatedAt = m.CreatedAt.UTC()
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list memberships of user %d: %w", userID, err)
	}
	return out, nil
}

// Purged is what PurgeGroupCacheCounted removed.
type Purged struct {
	Manifests int
	Blobs     []oci.Digest // digests whose reference was removed
	// Bytes is the size of the removed manifests and blob references: what
	// is no longer accounted to the group.
	Bytes int64
}

// PurgeGroupCacheCounted deletes all of a group's manifests, blob
// references and cached lists, and says how many and how many bytes it
// removed. It first counts the purge (the group's purge generation, see
// PutBlobUnpurged), so no download that started before it adds a
// reference back, then deletes purgeBatch rows per transaction, so a
// large group never holds the writer for long and pulls that write go on
// between the batches; a purge that fails part-way has removed some rows
// and can be run again. Blob files are not touched: the garbage collector removes
// those BlobReferenced reports as unused.
func (s *Store) PurgeGroupCacheCounted(ctx context.Context, groupID int64) (Purged, error) {
	return s.purgeGroupCacheCounted(ctx, groupID, purgeBatch)
}

// purgeBatch is how many rows one transaction of a purge deletes.
const purgeBatch = 1000

func (s *Store) purgeGroupCacheCounted(ctx context.Context, groupID int64, batch int) (Purged, error) {
	var p Purged
	if err := s.inTx(ctx, func(tx *sql.Tx) error { return bumpPurgeGeneration(ctx, tx, &groupCache, groupID) }); err != nil {
		return Purged{}, err
	}
	// Each batch's DELETE … RETURNING yields its rows' digest (blobs; "" for
	// manifests) and size.
	purge := func(query, what string, row func(d string, size int64)) error {
		for {
			n := 0
			err := s.inTx(ctx, func(tx *sql.Tx) error {
				rows, err := tx.QueryContext(ctx, query, groupID, batch)
				if err != nil {
					return err
				}
				defer rows.Close()
				for rows.Next() {
					var d string
					var size int64
					if err := rows.Scan(&d, &size); err != nil {
						return err
					}
					row(d, size)
					n++
				}
				return rows.Err()
			})
			if err != nil {
				return fmt.Errorf("purge %s of group %d: %w", what, groupID, err)
			}
			if n < batch {
				return nil
			}
		}
	}
	err := purge(`DELETE FROM blobs WHERE group_id = $1 AND digest IN
		(SELECT digest FROM blobs WHERE group_id = $1 ORDER BY digest LIMIT $2) RETURNING digest, size`, "blobs",
		func(d string, size int64) { p.Blobs = append(p.Blobs, oci.Digest(d)); p.Bytes += size })
	if err != nil {
		return Purged{}, err
	}
	err = purge(`DELETE FROM manifests WHERE id IN
		(SELECT id FROM manifests WHERE group_id = $1 ORDER BY id LIMIT $2) RETURNING '', size`, "manifests",
		func(_ string, size int64) { p.Manifests++; p.Bytes += size })
	if err != nil {
		return Purged{}, err
	}
	if err := s.inTx(ctx, func(tx *sql.Tx) error { return purgeLists(ctx, tx, groupID) }); err != nil {
		return Purged{}, err
	}
	return p, nil
}

// BlobCursor is a position in BlobsOfGroupNewest: the last blob reference
// of the previous page.
type BlobCursor struct {
	CreatedAt time.Time
	Digest    oci.Digest
}

// BlobsOfGroupNewest returns up to limit of a group's blob references,
// newest first (ties by digest), starting after the cursor when it is not
// nil.
func (s *Store) BlobsOfGroupNewest(ctx context.Context, groupID int64, after *BlobCursor, limit int) ([]Blob, error) {
	query := `SELECT ` + blobColumns + ` FROM blobs WHERE group_id = $1 ORDER BY created_at DESC, digest LIMIT $2`
	args := []any{groupID, listLimit(limit)}
	if after != nil {
		query = `SELECT ` + blobColumns + ` FROM blobs WHERE group_id = $1
			AND (created_at < $3 OR (created_at = $3 AND digest > $4))
			ORDER BY created_at DESC, digest LIMIT $2`
		args = append(args, dbTime(after.CreatedAt), string(after.Digest))
	}
	rows, err := s.r.QueryContext(ctx, query, args...)
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

// NextTokenNumber returns one more than the highest token id: the number
// a default deploy-token username ("gitlab+deploy-token-<n>") is made of.
// It is a label, not a key; concurrent callers may get the same number.
func (s *Store) NextTokenNumber(ctx context.Context) (int64, error) {
	var n int64
	if err := s.r.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) + 1 FROM tokens`).Scan(&n); err != nil {
		return 0, fmt.Errorf("next token number: %w", err)
	}
	return n, nil
}
