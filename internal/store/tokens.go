package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

const tokenColumns = `id, kind, name, user_id, group_id, username, role, scopes, hash,
	expires_at, revoked_at, created_at, last_used_at`

func scanToken(row interface{ Scan(...any) error }) (Token, error) {
	var (
		t                          Token
		userID, groupID            sql.NullInt64
		scopes                     string
		expires, revoked, lastUsed sql.NullTime
	)
	err := row.Scan(&t.ID, &t.Kind, &t.Name, &userID, &groupID, &t.Username, &t.Role, &scopes, &t.Hash,
		&expires, &revoked, &t.CreatedAt, &lastUsed)
	if err != nil {
		return Token{}, err
	}
	t.UserID, t.GroupID = userID.Int64, groupID.Int64
	if scopes != "" {
		t.Scopes = strings.Split(scopes, ",")
	}
	t.ExpiresAt, t.RevokedAt, t.LastUsedAt = timePtr(expires), timePtr(revoked), timePtr(lastUsed)
	t.CreatedAt = t.CreatedAt.UTC()
	return t, nil
}

// validateToken checks what the schema cannot explain well.
func validateToken(t Token) error {
	switch t.Kind {
	case TokenPersonal:
		if t.UserID == 0 {
			return errors.New("a personal token needs a user")
		}
	case TokenGroup, TokenDeploy:
		if t.GroupID == 0 {
			return fmt.Errorf("a %s token needs a group", t.Kind)
		}
		if t.Kind == TokenDeploy && t.Username == "" {
			return errors.New("a deploy token needs a username")
		}
	default:
		return fmt.Errorf("unknown token kind %q", t.Kind)
	}
	if len(t.Hash) == 0 {
		return errors.New("no token hash")
	}
	for _, sc := range t.Scopes {
		if sc == "" || strings.Contains(sc, ",") {
			return fmt.Errorf("invalid scope %q", sc)
		}
	}
	return nil
}

// CreateToken stores a token (ID is ignored; a zero CreatedAt means now)
// and returns it with its ID. A missing user or group is an error wrapping
// ErrNotFound; a hash already stored wraps ErrConflict.
func (s *Store) CreateToken(ctx context.Context, t Token) (Token, error) {
	if err := validateToken(t); err != nil {
		return Token{}, fmt.Errorf("create %s token %q: %w", t.Kind, t.Name, err)
	}
	t.CreatedAt = s.stamp(t.CreatedAt)
	t.Hash = append([]byte(nil), t.Hash...)
	t.Scopes = append([]string(nil), t.Scopes...)
	if t.ExpiresAt != nil {
		e := dbTime(*t.ExpiresAt)
		t.ExpiresAt = &e
	}
	if t.RevokedAt != nil {
		r := dbTime(*t.RevokedAt)
		t.RevokedAt = &r
	}
	t.LastUsedAt = nil
	err := s.w.QueryRowContext(ctx,
		`INSERT INTO tokens (kind, name, user_id, group_id, username, role, scopes, hash, expires_at, revoked_at, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id`,
		string(t.Kind), t.Name, nullID(t.UserID), nullID(t.GroupID), t.Username, int(t.Role),
		strings.Join(t.Scopes, ","), t.Hash, nullTime(t.ExpiresAt), nullTime(t.RevokedAt), t.CreatedAt).Scan(&t.ID)
	switch {
	case s.isForeignKey(err):
		return Token{}, fmt.Errorf("create %s token %q: user %d or group %d: %w", t.Kind, t.Name, t.UserID, t.GroupID, ErrNotFound)
	case s.isUnique(err):
		return Token{}, fmt.Errorf("create %s token %q: token hash %w", t.Kind, t.Name, ErrConflict)
	case err != nil:
		return Token{}, fmt.Errorf("create %s token %q: %w", t.Kind, t.Name, err)
	}
	return t, nil
}

// TokenByHash returns the token whose secret hashes to hash, or an error
// wrapping ErrNotFound. Expired and revoked tokens are returned too: the
// caller decides.
func (s *Store) TokenByHash(ctx context.Context, hash []byte) (Token, error) {
	t, err := scanToken(s.readRow(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE hash = $1`, hash))
	if err != nil {
		return Token{}, notFound(err, "token by hash")
	}
	return t, nil
}

// TokenByID returns the token with id, or an error wrapping ErrNotFound.
func (s *Store) TokenByID(ctx context.Context, id int64) (Token, error) {
	t, err := scanToken(s.readRow(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE id = $1`, id))
	if err != nil {
		return Token{}, notFound(err, fmt.Sprintf("token %d", id))
	}
	return t, nil
}

// TokensOfUser returns a user's personal tokens, oldest first.
func (s *Store) TokensOfUser(ctx context.Context, userID int64) ([]Token, error) {
	return s.tokens(ctx, fmt.Sprintf("list tokens of user %d", userID),
		`SELECT `+tokenColumns+` FROM tokens WHERE user_id = $1 ORDER BY id`, userID)
}

// TokensOfGroup returns a group's access and deploy tokens, oldest first.
func (s *Store) TokensOfGroup(ctx context.Context, groupID int64) ([]Token, error) {
	return s.tokens(ctx, fmt.Sprintf("list tokens of group %d", groupID),
		`SELECT `+tokenColumns+` FROM tokens WHERE group_id = $1 ORDER BY id`, groupID)
}

func (s *Store) tokens(ctx context.Context, what, query string, args ...any) ([]Token, error) {
	return readAll(ctx, s, what, scanToken, query, args...)
}

// RevokeToken marks a token revoked at at. Revoking a revoked token keeps
// the first revocation time. An unknown id is an error wrapping ErrNotFound.
func (s *Store) RevokeToken(ctx context.Context, id int64, at time.Time) error {
	res, err := s.w.ExecContext(ctx, `UPDATE tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2`,
		s.stamp(at), id)
	return affected(res, err, fmt.Sprintf("revoke token %d", id))
}

// TouchToken records that a token was used at at. An unknown id is an
// error wrapping ErrNotFound.
func (s *Store) TouchToken(ctx context.Context, id int64, at time.Time) error {
	res, err := s.w.ExecContext(ctx, `UPDATE tokens SET last_used_at = $1 WHERE id = $2`, s.stamp(at), id)
	return affected(res, err, fmt.Sprintf("record use of token %d", id))
}
