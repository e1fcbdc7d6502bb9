package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// Defaults of a new group's settings.
const (
	DefaultTTLDays = 90
)

const groupColumns = `id, parent_id, path, created_at`

func scanGroup(row interface{ Scan(...any) error }) (Group, error) {
	var g Group
	var parent sql.NullInt64
	if err := row.Scan(&g.ID, &parent, &g.Path, &g.CreatedAt); err != nil {
		return Group{}, err
	}
	g.ParentID = parent.Int64
	g.CreatedAt = g.CreatedAt.UTC()
	return g, nil
}

// parentPath returns the path of a group's parent, "" for a top-level group.
func parentPath(path string) string {
	i := strings.LastIndexByte(path, '/')
	if i < 0 {
		return ""
	}
	return path[:i]
}

// CreateGroup creates the group at path ("a/b/c" is a subgroup of "a/b",
// which must exist, else an error wrapping ErrNotFound names it). A taken
// path is an error wrapping ErrConflict. The group's dependency proxy
// setting (enabled) and TTL policy (enabled, 90 days) are created in the
// same transaction.
func (s *Store) CreateGroup(ctx context.Context, path string) (Group, error) {
	if path == "" || strings.HasPrefix(path, "/") || strings.HasSuffix(path, "/") || strings.Contains(path, "//") {
		return Group{}, fmt.Errorf("create group %q: path must be non-empty segments separated by /", path)
	}
	g := Group{Path: path, CreatedAt: s.stamp(s.now())}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if parent := parentPath(path); parent != "" {
			err := tx.QueryRowContext(ctx, `SELECT id FROM groups WHERE path = $1`, parent).Scan(&g.ParentID)
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("create group %q: parent group %q: %w", path, parent, ErrNotFound)
			}
			if err != nil {
				return fmt.Errorf("create group %q: look up parent %q: %w", path, parent, err)
			}
		}
		err := tx.QueryRowContext(ctx,
			`INSERT INTO groups (parent_id, path, created_at) VALUES ($1, $2, $3) RETURNING id`,
			nullID(g.ParentID), g.Path, g.CreatedAt).Scan(&g.ID)
		if s.isUnique(err) {
			return fmt.Errorf("create group %q: %w", path, ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("create group %q: %w", path, err)
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO dependency_proxy_settings (group_id, enabled, updated_at) VALUES ($1, $2, $3)`,
			g.ID, true, g.CreatedAt); err != nil {
			return fmt.Errorf("create group %q: dependency proxy setting: %w", path, err)
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO ttl_policies (group_id, enabled, ttl_days, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)`,
			g.ID, true, DefaultTTLDays, g.CreatedAt); err != nil {
			return fmt.Errorf("create group %q: ttl policy: %w", path, err)
		}
		return nil
	})
	if err != nil {
		return Group{}, err
	}
	return g, nil
}

// GroupByPath returns the group at path, or an error wrapping ErrNotFound.
func (s *Store) GroupByPath(ctx context.Context, path string) (Group, error) {
	g, err := scanGroup(s.readRow(ctx, `SELECT `+groupColumns+` FROM groups WHERE path = $1`, path))
	if err != nil {
		return Group{}, notFound(err, fmt.Sprintf("group %q", path))
	}
	return g, nil
}

// GroupByID returns the group with id, or an error wrapping ErrNotFound.
func (s *Store) GroupByID(ctx context.Context, id int64) (Group, error) {
	g, err := scanGroup(s.readRow(ctx, `SELECT `+groupColumns+` FROM groups WHERE id = $1`, id))
	if err != nil {
		return Group{}, notFound(err, fmt.Sprintf("group %d", id))
	}
	return g, nil
}

// Groups returns every group, ordered by path (so parents come before
// their subgroups).
func (s *Store) Groups(ctx context.Context) ([]Group, error) {
	return readAll(ctx, s, "list groups", scanGroup, `SELECT `+groupColumns+` FROM groups ORDER BY path`)
}

// DeleteGroup deletes a group, its subgroups and everything that belongs to
// them: settings, memberships, group tokens, manifests and blob references.
// Blob files are not touched; see BlobReferenced.
func (s *Store) DeleteGroup(ctx context.Context, id int64) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM groups WHERE id = $1`, id)
	return affected(res, err, fmt.Sprintf("delete group %d", id))
}

// ancestorsCTE lists a group ($1) and its ancestors as anc(id).
const ancestorsCTE = `WITH RECURSIVE anc (id, parent_id) AS (
	SELECT id, parent_id FROM groups WHERE id = $1
	UNION ALL
	SELECT g.id, g.parent_id FROM groups g JOIN anc ON g.id = anc.parent_id
) `

// SetMember gives a user a role in a group, replacing any role they had
// there. A missing group or user is an error wrapping ErrNotFound.
func (s *Store) SetMember(ctx context.Context, groupID, userID int64, role Role) error {
	if !role.Valid() {
		return fmt.Errorf("set member %d of group %d: invalid role %s", userID, groupID, role)
	}
	_, err := s.w.ExecContext(ctx,
		`INSERT INTO members (group_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (group_id, user_id) DO UPDATE SET role = excluded.role`,
		groupID, userID, int(role), s.stamp(s.now()))
	if s.isForeignKey(err) {
		return fmt.Errorf("set member %d of group %d: group or user: %w", userID, groupID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("set member %d of group %d: %w", userID, groupID, err)
	}
	return nil
}

// RemoveMember removes a user's membership of a group (not of its
// ancestors). No such membership is an error wrapping ErrNotFound.
func (s *Store) RemoveMember(ctx context.Context, groupID, userID int64) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM members WHERE group_id = $1 AND user_id = $2`, groupID, userID)
	return affected(res, err, fmt.Sprintf("remove member %d of group %d", userID, groupID))
}

// Members returns the direct members of a group, ordered by username.
func (s *Store) Members(ctx context.Context, groupID int64) ([]Member, error) {
	rows, err := s.read(ctx,
		`SELECT m.group_id, m.user_id, u.username, m.role, m.created_at
		FROM members m JOIN users u ON u.id = m.user_id
		WHERE m.group_id = $1 ORDER BY u.username`, groupID)
	if err != nil {
		return nil, fmt.Errorf("list members of group %d: %w", groupID, err)
	}
	defer rows.Close()
	var out []Member
	for rows.Next() {
		var m Member
		if err := rows.Scan(&m.GroupID, &m.UserID, &m.Username, &m.Role, &m.CreatedAt); err != nil {
			return nil, fmt.Errorf("list members of group %d: %w", groupID, err)
		}
		m.CreatedAt = m.CreatedAt.UTC()
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list members of group %d: %w", groupID, err)
	}
	return out, nil
}

// EffectiveRole returns the highest role the user has in the group or any
// of its ancestors; RoleNone (and no error) when they have none or the
// group does not exist.
func (s *Store) EffectiveRole(ctx context.Context, userID, groupID int64) (Role, error) {
	var role int
	err := s.readRow(ctx, ancestorsCTE+
		`SELECT COALESCE(MAX(m.role), 0) FROM members m JOIN anc ON m.group_id = anc.id WHERE m.user_id = $2`,
		groupID, userID).Scan(&role)
	if err != nil {
		return RoleNone, fmt.Errorf("effective role of user %d in group %d: %w", userID, groupID, err)
	}
	return Role(role), nil
}

// IsAncestorOrSelf reports whether groupID is ancestorID or one of its
// subgroups at any depth. Unknown ids give false.
func (s *Store) IsAncestorOrSelf(ctx context.Context, ancestorID, groupID int64) (bool, error) {
	var ok bool
	err := s.readRow(ctx, ancestorsCTE+`SELECT EXISTS (SELECT 1 FROM anc WHERE id = $2)`,
		groupID, ancestorID).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("is group %d within group %d: %w", groupID, ancestorID, err)
	}
	return ok, nil
}
