package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// CITrust is a trust policy for CI jobs' OpenID Connect ID tokens: a token
// from Issuer for Audience whose claims match every rule signs in and may
// pull, with Role, in its target group and the group's subgroups. The
// target is GroupID, or with GroupClaim the existing group whose path the
// token's claim of that name holds (then GroupID is 0).
type CITrust struct {
	ID          int64
	Name        string
	Issuer      string
	Audience    string
	GroupID     int64
	GroupClaim  string
	Role        Role
	Claims      []ClaimRule
	MaxLifetime time.Duration // upper bound of the registry tokens issued
	CreatedAt   time.Time
}

// ClaimRule is one condition of a CITrust: the token's claim Key, as a
// string, must match Glob, where * stands for any run of characters.
type ClaimRule struct {
	Key  string `json:"key"`
	Glob string `json:"glob"`
}

const ciTrustColumns = `id, name, issuer, audience, group_id, group_claim, role, claims, max_lifetime, created_at`

func scanCITrust(row interface{ Scan(...any) error }) (CITrust, error) {
	var (
		t       CITrust
		groupID sql.NullInt64
		claims  string
		life    int64
	)
	if err := row.Scan(&t.ID, &t.Name, &t.Issuer, &t.Audience, &groupID, &t.GroupClaim, &t.Role, &claims, &life, &t.CreatedAt); err != nil {
		return CITrust{}, err
	}
	if err := json.Unmarshal([]byte(claims), &t.Claims); err != nil {
		return CITrust{}, fmt.Errorf("ci-trust %s: decode claim rules: %w", t.Name, err)
	}
	t.GroupID = groupID.Int64
	t.MaxLifetime = time.Duration(life) * time.Second
	t.CreatedAt = t.CreatedAt.UTC()
	return t, nil
}

// CreateCITrust stores a trust (ID is ignored; a zero CreatedAt means now;
// MaxLifetime is kept in whole seconds) and returns it with its ID. Exactly
// one of GroupID and GroupClaim must be set. A name already taken is an
// error wrapping ErrConflict; a missing group wraps ErrNotFound.
func (s *Store) CreateCITrust(ctx context.Context, t CITrust) (CITrust, error) {
	if t.Name == "" || t.Issuer == "" || t.Audience == "" {
		return CITrust{}, errors.New("create ci-trust: a name, an issuer and an audience are needed")
	}
	if (t.GroupID == 0) == (t.GroupClaim == "") {
		return CITrust{}, fmt.Errorf("create ci-trust %s: exactly one of a group and a group claim is needed", t.Name)
	}
	if t.Claims == nil {
		t.Claims = []ClaimRule{}
	}
	claims, err := json.Marshal(t.Claims)
	if err != nil {
		return CITrust{}, fmt.Errorf("create ci-trust %s: %w", t.Name, err)
	}
	t.Claims = append([]ClaimRule{}, t.Claims...)
	t.CreatedAt = s.stamp(t.CreatedAt)
	t.MaxLifetime = t.MaxLifetime.Truncate(time.Second)
	err = s.w.QueryRowContext(ctx,
		`INSERT INTO ci_trusts (name, issuer, audience, group_id, group_claim, role, claims, max_lifetime, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id`,
		t.Name, t.Issuer, t.Audience, nullID(t.GroupID), t.GroupClaim, int(t.Role), string(claims),
		int64(t.MaxLifetime/time.Second), t.CreatedAt).Scan(&t.ID)
	switch {
	case s.isForeignKey(err):
		return CITrust{}, fmt.Errorf("create ci-trust %s: group %d: %w", t.Name, t.GroupID, ErrNotFound)
	case s.isUnique(err):
		return CITrust{}, fmt.Errorf("create ci-trust %s: %w", t.Name, ErrConflict)
	case err != nil:
		return CITrust{}, fmt.Errorf("create ci-trust %s: %w", t.Name, err)
	}
	return t, nil
}

// CITrustByName returns the trust called name, or an error wrapping
// ErrNotFound.
func (s *Store) CITrustByName(ctx context.Context, name string) (CITrust, error) {
	t, err := scanCITrust(s.readRow(ctx, `SELECT `+ciTrustColumns+` FROM ci_trusts WHERE name = $1`, name))
	if err != nil {
		return CITrust{}, notFound(err, "ci-trust "+name)
	}
	return t, nil
}

// CITrustByID returns the trust with id, or an error wrapping ErrNotFound.
func (s *Store) CITrustByID(ctx context.Context, id int64) (CITrust, error) {
	t, err := scanCITrust(s.readRow(ctx, `SELECT `+ciTrustColumns+` FROM ci_trusts WHERE id = $1`, id))
	if err != nil {
		return CITrust{}, notFound(err, fmt.Sprintf("ci-trust %d", id))
	}
	return t, nil
}

// CITrustsByIssuer returns the trusts of an ID token issuer, oldest first.
func (s *Store) CITrustsByIssuer(ctx context.Context, issuer string) ([]CITrust, error) {
	return s.ciTrusts(ctx, "list ci-trusts of issuer "+issuer,
		`SELECT `+ciTrustColumns+` FROM ci_trusts WHERE issuer = $1 ORDER BY id`, issuer)
}

// CITrusts returns every trust, by name.
func (s *Store) CITrusts(ctx context.Context) ([]CITrust, error) {
	return s.ciTrusts(ctx, "list ci-trusts", `SELECT `+ciTrustColumns+` FROM ci_trusts ORDER BY name`)
}

func (s *Store) ciTrusts(ctx context.Context, what, query string, args ...any) ([]CITrust, error) {
	return readAll(ctx, s, what, scanCITrust, query, args...)
}

// DeleteCITrust removes a trust. An unknown id is an error wrapping
// ErrNotFound. Registry tokens issued under it stop working, since they
// are checked against their trust on every request.
func (s *Store) DeleteCITrust(ctx context.Context, id int64) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM ci_trusts WHERE id = $1`, id)
	return affected(res, err, fmt.Sprintf("delete ci-trust %d", id))
}
