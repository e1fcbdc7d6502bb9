package store

import (
	"context"
	"errors"
	"fmt"
)

// SharedSecret returns the instance secret named key, sealed at rest with
// the store's secret box. When there is none yet, create makes one and it is
// stored, unless a concurrent caller (another replica starting at the same
// time) stored its own first: every caller gets the one value that was
// stored. Replicas use it to share keys, such as the JWT signing key,
// through the database.
func (s *Store) SharedSecret(ctx context.Context, key string, create func() ([]byte, error)) ([]byte, error) {
	if key == hubCredentialsKey {
		return nil, fmt.Errorf("shared secret %q: reserved key", key)
	}
	if v, err := s.sharedSecret(ctx, key); err == nil || !errors.Is(err, ErrNotFound) {
		return v, err
	}
	fresh, err := create()
	if err != nil {
		return nil, fmt.Errorf("create shared secret %q: %w", key, err)
	}
	if len(fresh) == 0 {
		return nil, fmt.Errorf("create shared secret %q: empty value", key)
	}
	sealed, err := s.seal(string(fresh), instanceSecretAD(key))
	if err != nil {
		return nil, fmt.Errorf("create shared secret %q: seal: %w", key, err)
	}
	if _, err := s.w.ExecContext(ctx,
		`INSERT INTO instance_settings (key, value, value_sealed, updated_at) VALUES ($1, '', $2, $3)
		ON CONFLICT (key) DO NOTHING`, key, sealed, s.stamp(s.now())); err != nil {
		return nil, fmt.Errorf("store shared secret %q: %w", key, err)
	}
	return s.sharedSecret(ctx, key)
}

func (s *Store) sharedSecret(ctx context.Context, key string) ([]byte, error) {
	var sealed []byte
	// Read through the writer: right after an insert, a SQLite reader may
	// not see it yet.
	err := s.w.QueryRowContext(ctx, `SELECT value_sealed FROM instance_settings WHERE key = $1`, key).Scan(&sealed)
	if err != nil {
		return nil, notFound(err, fmt.Sprintf("shared secret %q", key))
	}
	if sealed == nil {
		return nil, fmt.Errorf("shared secret %q: the setting exists but holds no sealed value", key)
	}
	v, err := s.open(sealed, instanceSecretAD(key))
	if err != nil {
		return nil, fmt.Errorf("shared secret %q: %w (was secret-key changed?)", key, err)
	}
	return []byte(v), nil
}
