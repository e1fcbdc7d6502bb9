package store

import (
	"context"
	"database/sql"
	"fmt"
)

// VirtualRegistryChange changes some fields of a virtual registry; nil
// fields stay as they are.
type VirtualRegistryChange struct {
	Name        *string
	Description *string
}

// ChangeVirtualRegistry writes the fields c gives in one statement, so
// concurrent changes of different fields all survive, and returns the
// registry as committed. A name taken in the group is an error wrapping
// ErrConflict; an unknown registry one wrapping ErrNotFound.
func (s *Store) ChangeVirtualRegistry(ctx context.Context, id int64, c VirtualRegistryChange) (VirtualRegistry, error) {
	var name, desc any
	if c.Name != nil {
		name = *c.Name
	}
	if c.Description != nil {
		desc = *c.Description
	}
	var r VirtualRegistry
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		r, err = scanVirtualRegistry(tx.QueryRowContext(ctx,
			`UPDATE virtual_registries SET name = COALESCE($2, name), description = COALESCE($3, description), updated_at = $4
			WHERE id = $1 RETURNING `+virtualRegistryColumns, id, name, desc, s.stamp(s.now())))
		return err
	})
	if s.isUnique(err) {
		return VirtualRegistry{}, fmt.Errorf("rename virtual registry %d to %v: %w", id, name, ErrConflict)
	}
	if err != nil {
		return VirtualRegistry{}, notFound(err, fmt.Sprintf("change virtual registry %d", id))
	}
	return r, nil
}

// VirtualUpstreamChange changes some fields of an upstream; nil fields
// stay as they are. Password "" clears the password.
type VirtualUpstreamChange struct {
	Name               *string
	URL                *string
	Username           *string
	Password           *string
	CacheValidityHours *int
}

// Apply returns u with c applied, as ChangeVirtualUpstream writes it: a
// move to another origin without a password clears the credentials.
func (c VirtualUpstreamChange) Apply(u VirtualUpstream) VirtualUpstream {
	out := u
	for _, f := range []struct {
		to   *string
		from *string
	}{{&out.Name, c.Name}, {&out.URL, c.URL}, {&out.Username, c.Username}, {&out.Password, c.Password}} {
		if f.from != nil {
			*f.to = *f.from
		}
	}
	if c.CacheValidityHours != nil {
		out.CacheValidityHours = *c.CacheValidityHours
	}
	if c.Password == nil && !SameOrigin(u.URL, out.URL) {
		out.Username, out.Password = "", ""
	}
	return out
}

// ChangeVirtualUpstream applies c to upstream id in one transaction that
// reads the upstream, merges the change and writes it, holding the row
// throughout, so concurrent changes all survive. It returns the upstream
// as committed, and whether its credentials were cleared.
//
// Credentials stay with the host they were given for: when c moves the
// upstream to another origin (scheme, host or port) without a password,
// the stored username and password are cleared. check, when not nil, sees
// the upstream before and after the change (inside the transaction: it
// must not do I/O) and refuses it by returning an error, which is
// returned as is with nothing written. A name taken in the registry is an
// error wrapping ErrConflict; an unknown upstream one wrapping ErrNotFound.
func (s *Store) ChangeVirtualUpstream(ctx context.Context, id int64, c VirtualUpstreamChange, check func(before, after VirtualUpstream) error) (VirtualUpstream, bool, error) {
	now := s.stamp(s.now())
	var after VirtualUpstream
	var cleared bool
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		// Touching the row first locks it (PostgreSQL; SQLite has one
		// writer), so the read below is the row this change replaces.
		res, err := tx.ExecContext(ctx, `UPDATE virtual_registry_upstreams SET updated_at = $2 WHERE id = $1`, id, now)
		if err := affected(res, err, fmt.Sprintf("change upstream %d", id)); err != nil {
			return err
		}
		before, err := s.scanVirtualUpstream(tx.QueryRowContext(ctx, `SELECT `+virtualUpstreamColumns+` FROM virtual_registry_upstreams WHERE id = $1`, id))
		if err != nil {
			return notFound(err, fmt.Sprintf("change upstream %d", id))
		}
		after = c.Apply(before)
		setPassword := c.Password != nil
		if !setPassword && !SameOrigin(before.URL, after.URL) {
			cleared = before.Username != "" || before.Password != ""
			setPassword = true
		}
		if check != nil {
			if err := check(before, after); err != nil {
				return err
			}
		}
		after.UpdatedAt = now
		_, err = tx.ExecContext(ctx,
			`UPDATE virtual_registry_upstreams SET name = $2, url = $3, username = $4, cache_validity_hours = $5 WHERE id = $1`,
			id, after.Name, after.URL, after.Username, after.CacheValidityHours)
		if s.isUnique(err) {
			return fmt.Errorf("rename upstream %d to %q: %w", id, after.Name, ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("change upstream %d: %w", id, err)
		}
		if setPassword {
			return s.setUpstreamPassword(ctx, tx, id, after.Password)
		}
		return nil
	})
	if err != nil {
		return VirtualUpstream{}, false, err
	}
	return after, cleared, nil
}
