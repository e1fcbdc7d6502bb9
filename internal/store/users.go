package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

const userColumns = `id, username, password_hash, admin, blocked, credential_version, created_at`

func scanUser(row interface{ Scan(...any) error }) (User, error) {
	var u User
	if err := row.Scan(&u.ID, &u.Username, &u.PasswordHash, &u.Admin, &u.Blocked, &u.CredentialVersion, &u.CreatedAt); err != nil {
		return User{}, err
	}
	u.CreatedAt = u.CreatedAt.UTC()
	return u, nil
}

// CreateUser inserts u (ID and CredentialVersion are ignored; a zero
// CreatedAt means now) and returns it with its ID. A taken username is an
// error wrapping ErrConflict.
func (s *Store) CreateUser(ctx context.Context, u User) (User, error) {
	if strings.TrimSpace(u.Username) == "" {
		return User{}, errors.New("create user: empty username")
	}
	u.CreatedAt = s.stamp(u.CreatedAt)
	u.CredentialVersion = 0
	err := s.w.QueryRowContext(ctx,
		`INSERT INTO users (username, password_hash, admin, blocked, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id`,
		u.Username, u.PasswordHash, u.Admin, u.Blocked, u.CreatedAt).Scan(&u.ID)
	if s.isUnique(err) {
		return User{}, fmt.Errorf("create user %q: username %w", u.Username, ErrConflict)
	}
	if err != nil {
		return User{}, fmt.Errorf("create user %q: %w", u.Username, err)
	}
	return u, nil
}

// UserByID returns the user with id, or an error wrapping ErrNotFound.
func (s *Store) UserByID(ctx context.Context, id int64) (User, error) {
	u, err := scanUser(s.readRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, id))
	if err != nil {
		return User{}, notFound(err, fmt.Sprintf("user %d", id))
	}
	return u, nil
}

// UserByUsername returns the user named username, or an error wrapping
// ErrNotFound. Usernames are compared exactly.
func (s *Store) UserByUsername(ctx context.Context, username string) (User, error) {
	u, err := scanUser(s.readRow(ctx, `SELECT `+userColumns+` FROM users WHERE username = $1`, username))
	if err != nil {
		return User{}, notFound(err, fmt.Sprintf("user %q", username))
	}
	return u, nil
}

// CountUsers returns the number of users.
func (s *Store) CountUsers(ctx context.Context) (int, error) {
	var n int
	if err := s.readRow(ctx, `SELECT COUNT(*) FROM users`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count users: %w", err)
	}
	return n, nil
}

// Users returns every user, ordered by username.
func (s *Store) Users(ctx context.Context) ([]User, error) {
	return readAll(ctx, s, "list users", scanUser, `SELECT `+userColumns+` FROM users ORDER BY username`)
}

// SetUserPassword replaces a user's bcrypt hash ("" disables password
// sign-in) and moves their credential version on, ending their sessions.
func (s *Store) SetUserPassword(ctx context.Context, id int64, passwordHash string) error {
	res, err := s.w.ExecContext(ctx,
		`UPDATE users SET password_hash = $1, credential_version = credential_version + 1 WHERE id = $2`, passwordHash, id)
	return affected(res, err, fmt.Sprintf("set password of user %d", id))
}

// DeleteUser deletes a user with their memberships and personal tokens.
func (s *Store) DeleteUser(ctx context.Context, id int64) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM users WHERE id = $1`, id)
	return affected(res, err, fmt.Sprintf("delete user %d", id))
}
