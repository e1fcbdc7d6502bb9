package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// Kinds of cached listings.
const (
	// ListTags is a repository's tag list (Subject is "").
	ListTags = "tags"
	// ListReferrers is the referrers list of the manifest whose digest is
	// the Subject.
	ListReferrers = "referrers"
)

// List is a cached listing of an upstream repository: its tags, or the
// referrers of one of its manifests. Content is the listing as the cache
// serves it; the store does not read it.
type List struct {
	ID int64
	// OwnerID owns the row: a group, or a virtual registry upstream in
	// UpstreamCache.
	OwnerID int64
	Image   string
	Kind    string // ListTags or ListReferrers
	Subject string
	Content []byte
	// UpdatedAt is when the upstream last answered the listing; ReadAt is
	// when a client last read it (TTL policies expire on it).
	CreatedAt, UpdatedAt, ReadAt time.Time
}

// listTables holds the queries of one kind of list owner, as cacheTables
// does for manifests and blobs.
type listTables struct {
	owner           string
	get, put, touch string
}

var (
	groupLists    = newListTables("group", "lists", "group_id")
	upstreamLists = newListTables("virtual registry upstream", "virtual_lists", "upstream_id")
)

func newListTables(owner, table, ownerCol string) listTables {
	r := strings.NewReplacer("{l}", table, "{owner}", ownerCol)
	return listTables{
		owner: owner,
		get: r.Replace(`SELECT id, {owner}, image, kind, subject, content, created_at, updated_at, read_at
			FROM {l} WHERE {owner} = $1 AND image = $2 AND kind = $3 AND subject = $4`),
		put: r.Replace(`INSERT INTO {l} ({owner}, image, kind, subject, content, created_at, updated_at, read_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			ON CONFLICT ({owner}, image, kind, subject) DO UPDATE SET content = excluded.content,
				updated_at = excluded.updated_at, read_at = excluded.read_at
			RETURNING id, created_at`),
		touch: r.Replace(`UPDATE {l} SET read_at = $1 WHERE id = $2`),
	}
}

// List returns a group's cached listing, or an error wrapping ErrNotFound.
func (s *Store) List(ctx context.Context, groupID int64, image, kind, subject string) (List, error) {
	return s.cachedList(ctx, &groupLists, groupID, image, kind, subject)
}

// PutList inserts or replaces a group's listing (GroupID, Image, Kind,
// Subject) and returns the stored row. Zero times mean now; a replace
// keeps the original CreatedAt. An unknown group is an error wrapping
// ErrNotFound.
func (s *Store) PutList(ctx context.Context, l List) (List, error) {
	return s.putList(ctx, &groupLists, l)
}

// TouchList sets the read time of a group's listing. An unknown id is an
// error wrapping ErrNotFound.
func (s *Store) TouchList(ctx context.Context, id int64, at time.Time) error {
	return s.touchList(ctx, &groupLists, id, at)
}

// List returns an upstream's cached listing, or an error wrapping ErrNotFound.
func (u UpstreamCache) List(ctx context.Context, upstreamID int64, image, kind, subject string) (List, error) {
	return u.s.cachedList(ctx, &upstreamLists, upstreamID, image, kind, subject)
}

// PutList stores a listing of upstream l.GroupID, as Store.PutList.
func (u UpstreamCache) PutList(ctx context.Context, l List) (List, error) {
	return u.s.putList(ctx, &upstreamLists, l)
}

// TouchList sets the read time of an upstream's listing.
func (u UpstreamCache) TouchList(ctx context.Context, id int64, at time.Time) error {
	return u.s.touchList(ctx, &upstreamLists, id, at)
}

func (s *Store) cachedList(ctx context.Context, t *listTables, owner int64, image, kind, subject string) (List, error) {
	var l List
	err := s.readRow(ctx, t.get, owner, image, kind, subject).Scan(&l.ID, &l.OwnerID, &l.Image, &l.Kind, &l.Subject,
		&l.Content, &l.CreatedAt, &l.UpdatedAt, &l.ReadAt)
	if err != nil {
		return List{}, notFound(err, fmt.Sprintf("%s list %s %s of %s %d", kind, image, subject, t.owner, owner))
	}
	l.CreatedAt, l.UpdatedAt, l.ReadAt = l.CreatedAt.UTC(), l.UpdatedAt.UTC(), l.ReadAt.UTC()
	return l, nil
}

func (s *Store) putList(ctx context.Context, t *listTables, l List) (List, error) {
	if l.Kind != ListTags && l.Kind != ListReferrers {
		return List{}, fmt.Errorf("store list of %s: unknown kind %q", l.Image, l.Kind)
	}
	now := s.now()
	l.CreatedAt = dbTime(orNow(l.CreatedAt, now))
	l.UpdatedAt = dbTime(orNow(l.UpdatedAt, now))
	l.ReadAt = dbTime(orNow(l.ReadAt, now))
	l.Content = append(make([]byte, 0, len(l.Content)), l.Content...) // never nil: the column is NOT NULL
	err := s.w.QueryRowContext(ctx, t.put, l.OwnerID, l.Image, l.Kind, l.Subject, l.Content,
		l.CreatedAt, l.UpdatedAt, l.ReadAt).Scan(&l.ID, &l.CreatedAt)
	if s.isForeignKey(err) {
		return List{}, fmt.Errorf("store %s list of %s: %s %d: %w", l.Kind, l.Image, t.owner, l.OwnerID, ErrNotFound)
	}
	if err != nil {
		return List{}, fmt.Errorf("store %s list of %s of %s %d: %w", l.Kind, l.Image, t.owner, l.OwnerID, err)
	}
	l.CreatedAt = l.CreatedAt.UTC()
	return l, nil
}

func (s *Store) touchList(ctx context.Context, t *listTables, id int64, at time.Time) error {
	res, err := s.w.ExecContext(ctx, t.touch, s.stamp(at), id)
	return affected(res, err, fmt.Sprintf("record read time of %s list %d", t.owner, id))
}

// purgeLists deletes a group's cached lists within a purge.
func purgeLists(ctx context.Context, tx *sql.Tx, groupID int64) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM lists WHERE group_id = $1`, groupID); err != nil {
		return fmt.Errorf("purge cached lists of group %d: %w", groupID, err)
	}
	return nil
}
