package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// ErrLimit is returned when creating something would pass a configured
// maximum (virtual registries per group, upstreams per registry).
var ErrLimit = errors.New("limit reached")

// VirtualRegistry is a container virtual registry of a top-level group:
// one pull address over an ordered list of upstream registries.
type VirtualRegistry struct {
	ID          int64
	GroupID     int64
	Name        string
	Description string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// VirtualUpstream is one upstream registry of a virtual registry. Password
// is sealed at rest and decrypted on read; it is never logged or returned
// by the admin API.
type VirtualUpstream struct {
	ID         int64
	RegistryID int64
	// Position orders the upstreams of a registry: 0, 1, … without gaps.
	Position int
	Name     string
	URL      string
	Username string
	Password string
	// CacheValidityHours is how long a cached copy is served without asking
	// this upstream again; 0 means never ask again.
	CacheValidityHours int
	CreatedAt          time.Time
	UpdatedAt          time.Time
}

// DefaultCacheValidityHours is an upstream's cache validity unless set.
const DefaultCacheValidityHours = 24

// upstreamPasswordAD binds a sealed upstream password to its row.
func upstreamPasswordAD(id int64) string {
	return fmt.Sprintf("virtual_registry_upstreams:%d:password", id)
}

const virtualRegistryColumns = `id, group_id, name, description, created_at, updated_at`

func scanVirtualRegistry(row interface{ Scan(...any) error }) (VirtualRegistry, error) {
	var r VirtualRegistry
	err := row.Scan(&r.ID, &r.GroupID, &r.Name, &r.Description, &r.CreatedAt, &r.UpdatedAt)
	r.CreatedAt, r.UpdatedAt = r.CreatedAt.UTC(), r.UpdatedAt.UTC()
	return r, err
}

// CreateVirtualRegistry creates a registry in group r.GroupID, refusing
// with ErrLimit when the group has max already and ErrConflict when the
// name is taken. The count and the insert are one transaction that locks
// the group row, so concurrent creates cannot pass max.
func (s *Store) CreateVirtualRegistry(ctx context.Context, r VirtualRegistry, max int) (VirtualRegistry, error) {
	now := s.stamp(s.now())
	r.CreatedAt, r.UpdatedAt = now, now
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		// A no-op update takes the group's row lock on PostgreSQL; SQLite
		// has one writer anyway.
		res, err := tx.ExecContext(ctx, `UPDATE groups SET path = path WHERE id = $1`, r.GroupID)
		if err != nil {
			return fmt.Errorf("create virtual registry %q: lock group %d: %w", r.Name, r.GroupID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("create virtual registry %q: group %d: %w", r.Name, r.GroupID, ErrNotFound)
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM virtual_registries WHERE group_id = $1`, r.GroupID).Scan(&n); err != nil {
			return fmt.Errorf("create virtual registry %q: count: %w", r.Name, err)
		}
		if n >= max {
			return fmt.Errorf("create virtual registry %q: the group has %d of at most %d: %w", r.Name, n, max, ErrLimit)
		}
		err = tx.QueryRowContext(ctx,
			`INSERT INTO virtual_registries (group_id, name, description, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $4) RETURNING id`, r.GroupID, r.Name, r.Description, now).Scan(&r.ID)
		if s.isUnique(err) {
			return fmt.Errorf("create virtual registry %q: %w", r.Name, ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("create virtual registry %q: %w", r.Name, err)
		}
		return nil
	})
	if err != nil {
		return VirtualRegistry{}, err
	}
	return r, nil
}

// VirtualRegistry returns a registry by id, or an error wrapping ErrNotFound.
func (s *Store) VirtualRegistry(ctx context.Context, id int64) (VirtualRegistry, error) {
	r, err := scanVirtualRegistry(s.readRow(ctx, `SELECT `+virtualRegistryColumns+` FROM virtual_registries WHERE id = $1`, id))
	if err != nil {
		return VirtualRegistry{}, notFound(err, fmt.Sprintf("virtual registry %d", id))
	}
	return r, nil
}

// VirtualRegistriesOfGroup returns a group's registries ordered by name.
func (s *Store) VirtualRegistriesOfGroup(ctx context.Context, groupID int64) ([]VirtualRegistry, error) {
	rows, err := s.read(ctx, `SELECT `+virtualRegistryColumns+` FROM virtual_registries WHERE group_id = $1 ORDER BY name`, groupID)
	if err != nil {
		return nil, fmt.Errorf("list virtual registries of group %d: %w", groupID, err)
	}
	defer rows.Close()
	out := []VirtualRegistry{}
	for rows.Next() {
		r, err := scanVirtualRegistry(rows)
		if err != nil {
			return nil, fmt.Errorf("list virtual registries of group %d: %w", groupID, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list virtual registries of group %d: %w", groupID, err)
	}
	return out, nil
}

// UpdateVirtualRegistry changes a registry's name and description.
func (s *Store) UpdateVirtualRegistry(ctx context.Context, r VirtualRegistry) (VirtualRegistry, error) {
	r.UpdatedAt = s.stamp(s.now())
	res, err := s.w.ExecContext(ctx, `UPDATE virtual_registries SET name = $2, description = $3, updated_at = $4 WHERE id = $1`,
		r.ID, r.Name, r.Description, r.UpdatedAt)
	if s.isUnique(err) {
		return VirtualRegistry{}, fmt.Errorf("rename virtual registry %d to %q: %w", r.ID, r.Name, ErrConflict)
	}
	if err != nil {
		return VirtualRegistry{}, fmt.Errorf("update virtual registry %d: %w", r.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return VirtualRegistry{}, fmt.Errorf("update virtual registry %d: %w", r.ID, ErrNotFound)
	}
	return s.VirtualRegistry(ctx, r.ID)
}

// DeleteVirtualRegistry deletes a registry and its upstreams.
func (s *Store) DeleteVirtualRegistry(ctx context.Context, id int64) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM virtual_registries WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("delete virtual registry %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("delete virtual registry %d: %w", id, ErrNotFound)
	}
	return nil
}

const virtualUpstreamColumns = `id, registry_id, position, name, url, username, password_sealed, cache_validity_hours, created_at, updated_at`

func (s *Store) scanVirtualUpstream(row interface{ Scan(...any) error }) (VirtualUpstream, error) {
	var u VirtualUpstream
	var sealed []byte
	if err := row.Scan(&u.ID, &u.RegistryID, &u.Position, &u.Name, &u.URL, &u.Username, &sealed,
		&u.CacheValidityHours, &u.CreatedAt, &u.UpdatedAt); err != nil {
		return VirtualUpstream{}, err
	}
	u.CreatedAt, u.UpdatedAt = u.CreatedAt.UTC(), u.UpdatedAt.UTC()
	var err error
	if u.Password, err = s.open(sealed, upstreamPasswordAD(u.ID)); err != nil {
		return VirtualUpstream{}, fmt.Errorf("password of upstream %d: %w", u.ID, err)
	}
	return u, nil
}

// AddVirtualUpstream appends an upstream to a registry, refusing with
// ErrLimit when the registry has max already and ErrConflict when the name
// is taken there.
func (s *Store) AddVirtualUpstream(ctx context.Context, u VirtualUpstream, max int) (VirtualUpstream, error) {
	now := s.stamp(s.now())
	u.CreatedAt, u.UpdatedAt = now, now
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE virtual_registries SET updated_at = $2 WHERE id = $1`, u.RegistryID, now)
		if err != nil {
			return fmt.Errorf("add upstream %q: lock registry %d: %w", u.Name, u.RegistryID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("add upstream %q: virtual registry %d: %w", u.Name, u.RegistryID, ErrNotFound)
		}
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM virtual_registry_upstreams WHERE registry_id = $1`,
			u.RegistryID).Scan(&u.Position); err != nil {
			return fmt.Errorf("add upstream %q: count: %w", u.Name, err)
		}
		if u.Position >= max {
			return fmt.Errorf("add upstream %q: the registry has %d of at most %d: %w", u.Name, u.Position, max, ErrLimit)
		}
		err = tx.QueryRowContext(ctx,
			`INSERT INTO virtual_registry_upstreams (registry_id, position, name, url, username, cache_validity_hours, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id`,
			u.RegistryID, u.Position, u.Name, u.URL, u.Username, u.CacheValidityHours, now).Scan(&u.ID)
		if s.isUnique(err) {
			return fmt.Errorf("add upstream %q: %w", u.Name, ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("add upstream %q: %w", u.Name, err)
		}
		// The password's AD names the row, so it is sealed once the id exists.
		return s.setUpstreamPassword(ctx, tx, u.ID, u.Password)
	})
	if err != nil {
		return VirtualUpstream{}, err
	}
	return u, nil
}

func (s *Store) setUpstreamPassword(ctx context.Context, tx *sql.Tx, id int64, password string) error {
	sealed, err := s.seal(password, upstreamPasswordAD(id))
	if err != nil {
		return fmt.Errorf("seal password of upstream %d: %w", id, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE virtual_registry_upstreams SET password_sealed = $2 WHERE id = $1`, id, sealed); err != nil {
		return fmt.Errorf("store password of upstream %d: %w", id, err)
	}
	return nil
}

// VirtualUpstream returns an upstream by id with its password decrypted.
func (s *Store) VirtualUpstream(ctx context.Context, id int64) (VirtualUpstream, error) {
	u, err := s.scanVirtualUpstream(s.readRow(ctx, `SELECT `+virtualUpstreamColumns+` FROM virtual_registry_upstreams WHERE id = $1`, id))
	if err != nil {
		return VirtualUpstream{}, notFound(err, fmt.Sprintf("virtual registry upstream %d", id))
	}
	return u, nil
}

// VirtualUpstreams returns a registry's upstreams in order.
func (s *Store) VirtualUpstreams(ctx context.Context, registryID int64) ([]VirtualUpstream, error) {
	rows, err := s.read(ctx, `SELECT `+virtualUpstreamColumns+` FROM virtual_registry_upstreams WHERE registry_id = $1 ORDER BY position, id`, registryID)
	if err != nil {
		return nil, fmt.Errorf("list upstreams of virtual registry %d: %w", registryID, err)
	}
	defer rows.Close()
	out := []VirtualUpstream{}
	for rows.Next() {
		u, err := s.scanVirtualUpstream(rows)
		if err != nil {
			return nil, fmt.Errorf("list upstreams of virtual registry %d: %w", registryID, err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list upstreams of virtual registry %d: %w", registryID, err)
	}
	return out, nil
}

// VirtualUpstreamsOfGroup returns the upstreams of every virtual registry
// of a group, by id.
func (s *Store) VirtualUpstreamsOfGroup(ctx context.Context, groupID int64) ([]VirtualUpstream, error) {
	rows, err := s.read(ctx, `SELECT u.`+strings.ReplaceAll(virtualUpstreamColumns, ", ", ", u.")+`
		FROM virtual_registry_upstreams u JOIN virtual_registries r ON r.id = u.registry_id
		WHERE r.group_id = $1 ORDER BY u.id`, groupID)
	if err != nil {
		return nil, fmt.Errorf("list upstreams of group %d: %w", groupID, err)
	}
	defer rows.Close()
	out := []VirtualUpstream{}
	for rows.Next() {
		u, err := s.scanVirtualUpstream(rows)
		if err != nil {
			return nil, fmt.Errorf("list upstreams of group %d: %w", groupID, err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list upstreams of group %d: %w", groupID, err)
	}
	return out, nil
}

// UpdateVirtualUpstream changes an upstream's name, URL, username and cache
// validity, and its password when setPassword ("" clears it).
//
// Credentials stay with the host they were given for: when u.URL is on
// another origin (scheme, host or port) than the URL stored now and
// setPassword is false, the stored username and password are cleared in
// the same transaction, whatever u.Username says. A caller that means to
// keep credentials across a change of host passes them with setPassword.
func (s *Store) UpdateVirtualUpstream(ctx context.Context, u VirtualUpstream, setPassword bool) (VirtualUpstream, error) {
	now := s.stamp(s.now())
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		// Touching the row first locks it and reads the URL the stored
		// credentials belong to.
		var stored string
		err := tx.QueryRowContext(ctx, `UPDATE virtual_registry_upstreams SET updated_at = $2 WHERE id = $1 RETURNING url`, u.ID, now).Scan(&stored)
		if err != nil {
			return notFound(err, fmt.Sprintf("update upstream %d", u.ID))
		}
		if !setPassword && !SameOrigin(stored, u.URL) {
			u.Username, u.Password, setPassword = "", "", true
		}
		_, err = tx.ExecContext(ctx,
			`UPDATE virtual_registry_upstreams SET name = $2, url = $3, username = $4, cache_validity_hours = $5, updated_at = $6 WHERE id = $1`,
			u.ID, u.Name, u.URL, u.Username, u.CacheValidityHours, now)
		if s.isUnique(err) {
			return fmt.Errorf("rename upstream %d to %q: %w", u.ID, u.Name, ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("update upstream %d: %w", u.ID, err)
		}
		if setPassword {
			return s.setUpstreamPassword(ctx, tx, u.ID, u.Password)
		}
		return nil
	})
	if err != nil {
		return VirtualUpstream{}, err
	}
	return s.VirtualUpstream(ctx, u.ID)
}

// SameOrigin reports whether two upstream URLs have the same scheme, host
// and port (the port a scheme implies counts as given; host names compare
// without case). Credentials stored for one URL are sent only to URLs of
// its origin. URLs that do not parse are of no origin.
func SameOrigin(a, b string) bool {
	oa, okA := origin(a)
	ob, okB := origin(b)
	return okA && okB && oa == ob
}

func origin(s string) (string, bool) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return "", false
	}
	port := u.Port()
	if port == "" {
		switch u.Scheme {
		case "https":
			port = "443"
		case "http":
			port = "80"
		}
	}
	return u.Scheme + "://" + strings.ToLower(u.Hostname()) + ":" + port, true
}

// MoveVirtualUpstream puts an upstream at position (0 is first; past the
// end means last) and returns the registry's upstreams in their new order.
func (s *Store) MoveVirtualUpstream(ctx context.Context, id int64, position int) ([]VirtualUpstream, error) {
	var registryID int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT registry_id FROM virtual_registry_upstreams WHERE id = $1`, id).Scan(&registryID); err != nil {
			return notFound(err, fmt.Sprintf("move upstream %d", id))
		}
		ids, err := upstreamOrder(ctx, tx, registryID)
		if err != nil {
			return err
		}
		i := slices.Index(ids, id)
		ids = slices.Delete(ids, i, i+1)
		ids = slices.Insert(ids, min(max(position, 0), len(ids)), id)
		return writeUpstreamOrder(ctx, tx, ids, s.stamp(s.now()))
	})
	if err != nil {
		return nil, err
	}
	return s.VirtualUpstreams(ctx, registryID)
}

// DeleteVirtualUpstream deletes an upstream; those after it move up.
func (s *Store) DeleteVirtualUpstream(ctx context.Context, id int64) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		var registryID int64
		err := tx.QueryRowContext(ctx, `DELETE FROM virtual_registry_upstreams WHERE id = $1 RETURNING registry_id`, id).Scan(&registryID)
		if err != nil {
			return notFound(err, fmt.Sprintf("delete upstream %d", id))
		}
		ids, err := upstreamOrder(ctx, tx, registryID)
		if err != nil {
			return err
		}
		return writeUpstreamOrder(ctx, tx, ids, s.stamp(s.now()))
	})
}

// upstreamOrder returns the ids of a registry's upstreams in order.
func upstreamOrder(ctx context.Context, tx *sql.Tx, registryID int64) ([]int64, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id FROM virtual_registry_upstreams WHERE registry_id = $1 ORDER BY position, id`, registryID)
	if err != nil {
		return nil, fmt.Errorf("order upstreams of virtual registry %d: %w", registryID, err)
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("order upstreams of virtual registry %d: %w", registryID, err)
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// writeUpstreamOrder numbers the upstreams 0, 1, … in the order of ids.
func writeUpstreamOrder(ctx context.Context, tx *sql.Tx, ids []int64, at time.Time) error {
	for pos, id := range ids {
		if _, err := tx.ExecContext(ctx, `UPDATE virtual_registry_upstreams SET position = $2, updated_at = $3 WHERE id = $1 AND position <> $2`,
			id, pos, at); err != nil {
			return fmt.Errorf("reorder upstream %d: %w", id, err)
		}
	}
	return nil
}
