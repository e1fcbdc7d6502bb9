package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// hubCredentialsKey is the instance_settings row holding the instance-wide
// default Docker Hub credentials: identity in value, secret in value_sealed.
const hubCredentialsKey = "default_hub_credentials"

// proxySecretAD binds a sealed group secret to its row.
func proxySecretAD(groupID int64) string {
	return fmt.Sprintf("dependency_proxy_settings:%d:secret", groupID)
}

// instanceSecretAD binds a sealed instance secret to its row.
func instanceSecretAD(key string) string {
	return "instance_settings:" + key + ":value_sealed"
}

// seal encrypts a secret; "" is stored as NULL.
func (s *Store) seal(secret, ad string) (any, error) {
	if secret == "" {
		return nil, nil
	}
	return s.box.Seal([]byte(secret), ad)
}

// open decrypts a sealed secret; NULL is "".
func (s *Store) open(sealed []byte, ad string) (string, error) {
	if sealed == nil {
		return "", nil
	}
	pt, err := s.box.Open(sealed, ad)
	if err != nil {
		return "", fmt.Errorf("%w (was the secret key changed?)", err)
	}
	return string(pt), nil
}

// proxySettingColumns are the columns scanProxySetting reads.
const proxySettingColumns = `group_id, enabled, identity, secret_sealed, freshness_window_ms, allow_anonymous_pull,
	anonymous_pulls_use_credentials, updated_at`

// scanProxySetting reads a setting row and decrypts its secret.
func (s *Store) scanProxySetting(row interface{ Scan(...any) error }) (ProxySetting, error) {
	var p ProxySetting
	var sealed []byte
	var windowMS int64
	if err := row.Scan(&p.GroupID, &p.Enabled, &p.Identity, &sealed, &windowMS, &p.AllowAnonymousPull,
		&p.AnonymousPullsUseCredentials, &p.UpdatedAt); err != nil {
		return ProxySetting{}, err
	}
	p.FreshnessWindow = time.Duration(windowMS) * time.Millisecond
	p.UpdatedAt = p.UpdatedAt.UTC()
	var err error
	if p.Secret, err = s.open(sealed, proxySecretAD(p.GroupID)); err != nil {
		return ProxySetting{}, fmt.Errorf("docker hub secret of group %d: %w", p.GroupID, err)
	}
	return p, nil
}

// ProxySetting returns a group's dependency proxy setting with its secret
// decrypted, or an error wrapping ErrNotFound for an unknown group.
func (s *Store) ProxySetting(ctx context.Context, groupID int64) (ProxySetting, error) {
	p, err := s.scanProxySetting(s.readRow(ctx,
		`SELECT `+proxySettingColumns+` FROM dependency_proxy_settings WHERE group_id = $1`, groupID))
	if err != nil {
		return ProxySetting{}, notFound(err, fmt.Sprintf("dependency proxy setting of group %d", groupID))
	}
	return p, nil
}

// proxySettingsSelect is ProxySettings' query up to its IN list.
const proxySettingsSelect = `SELECT ` + proxySettingColumns + ` FROM dependency_proxy_settings WHERE group_id IN `

// ProxySettings is ProxySetting of each of the groups, read together (one
// query per maxBatch ids). Unknown groups are absent from the result.
func (s *Store) ProxySettings(ctx context.Context, groupIDs []int64) (map[int64]ProxySetting, error) {
	out := make(map[int64]ProxySetting, len(groupIDs))
	err := inBatches(groupIDs, func(in string, args []any) error {
		rows, err := s.read(ctx, proxySettingsSelect+`(`+in+`)`, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			p, err := s.scanProxySetting(rows)
			if err != nil {
				return err
			}
			out[p.GroupID] = p
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("dependency proxy settings of %d groups: %w", len(groupIDs), err)
	}
	return out, nil
}

// UpdateProxySetting replaces every field of a group's setting (an empty
// Secret clears it; a zero UpdatedAt means now). The freshness window is
// kept in milliseconds. An unknown group is an error wrapping ErrNotFound.
func (s *Store) UpdateProxySetting(ctx context.Context, p ProxySetting) error {
	if p.FreshnessWindow < 0 {
		return fmt.Errorf("update dependency proxy setting of group %d: negative freshness window %s", p.GroupID, p.FreshnessWindow)
	}
	sealed, err := s.seal(p.Secret, proxySecretAD(p.GroupID))
	if err != nil {
		return fmt.Errorf("update dependency proxy setting of group %d: seal secret: %w", p.GroupID, err)
	}
	_, err = s.w.ExecContext(ctx,
		`INSERT INTO dependency_proxy_settings
			(group_id, enabled, identity, secret_sealed, freshness_window_ms, allow_anonymous_pull, anonymous_pulls_use_credentials, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (group_id) DO UPDATE SET enabled = excluded.enabled, identity = excluded.identity,
			secret_sealed = excluded.secret_sealed, freshness_window_ms = excluded.freshness_window_ms,
			allow_anonymous_pull = excluded.allow_anonymous_pull,
			anonymous_pulls_use_credentials = excluded.anonymous_pulls_use_credentials, updated_at = excluded.updated_at`,
		p.GroupID, p.Enabled, p.Identity, sealed, p.FreshnessWindow.Milliseconds(), p.AllowAnonymousPull,
		p.AnonymousPullsUseCredentials, s.stamp(p.UpdatedAt))
	if s.isForeignKey(err) {
		return fmt.Errorf("update dependency proxy setting of group %d: group %w", p.GroupID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("update dependency proxy setting of group %d: %w", p.GroupID, err)
	}
	return nil
}

// ttlPolicyColumns are the columns scanTTLPolicy reads.
const ttlPolicyColumns = `group_id, enabled, ttl_days, created_at, updated_at`

func scanTTLPolicy(row interface{ Scan(...any) error }) (TTLPolicy, error) {
	var p TTLPolicy
	if err := row.Scan(&p.GroupID, &p.Enabled, &p.TTLDays, &p.CreatedAt, &p.UpdatedAt); err != nil {
		return TTLPolicy{}, err
	}
	p.CreatedAt, p.UpdatedAt = p.CreatedAt.UTC(), p.UpdatedAt.UTC()
	return p, nil
}

// TTLPolicy returns a group's image TTL policy, or an error wrapping
// ErrNotFound for an unknown group.
func (s *Store) TTLPolicy(ctx context.Context, groupID int64) (TTLPolicy, error) {
	p, err := scanTTLPolicy(s.readRow(ctx, `SELECT `+ttlPolicyColumns+` FROM ttl_policies WHERE group_id = $1`, groupID))
	if err != nil {
		return TTLPolicy{}, notFound(err, fmt.Sprintf("ttl policy of group %d", groupID))
	}
	return p, nil
}

// ttlPoliciesSelect is TTLPolicies' query up to its IN list.
const ttlPoliciesSelect = `SELECT ` + ttlPolicyColumns + ` FROM ttl_policies WHERE group_id IN `

// TTLPolicies is TTLPolicy of each of the groups, read together (one query
// per maxBatch ids). Unknown groups are absent from the result.
func (s *Store) TTLPolicies(ctx context.Context, groupIDs []int64) (map[int64]TTLPolicy, error) {
	out := make(map[int64]TTLPolicy, len(groupIDs))
	err := inBatches(groupIDs, func(in string, args []any) error {
		rows, err := s.read(ctx, ttlPoliciesSelect+`(`+in+`)`, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			p, err := scanTTLPolicy(rows)
			if err != nil {
				return err
			}
			out[p.GroupID] = p
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("ttl policies of %d groups: %w", len(groupIDs), err)
	}
	return out, nil
}

// UpdateTTLPolicy sets a group's TTL policy (a zero UpdatedAt means now;
// CreatedAt is kept). An unknown group is an error wrapping ErrNotFound.
func (s *Store) UpdateTTLPolicy(ctx context.Context, p TTLPolicy) error {
	if p.TTLDays < 0 {
		return fmt.Errorf("update ttl policy of group %d: negative ttl %d days", p.GroupID, p.TTLDays)
	}
	at := s.stamp(p.UpdatedAt)
	_, err := s.w.ExecContext(ctx,
		`INSERT INTO ttl_policies (group_id, enabled, ttl_days, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (group_id) DO UPDATE SET enabled = excluded.enabled, ttl_days = excluded.ttl_days,
			updated_at = excluded.updated_at`,
		p.GroupID, p.Enabled, p.TTLDays, s.stamp(p.CreatedAt), at)
	if s.isForeignKey(err) {
		return fmt.Errorf("update ttl policy of group %d: group %w", p.GroupID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("update ttl policy of group %d: %w", p.GroupID, err)
	}
	return nil
}

// DefaultHubCredentials returns the instance-wide Docker Hub credentials;
// the zero value and no error when none are set.
func (s *Store) DefaultHubCredentials(ctx context.Context) (HubCredentials, error) {
	var c HubCredentials
	var sealed []byte
	err := s.readRow(ctx, `SELECT value, value_sealed FROM instance_settings WHERE key = $1`,
		hubCredentialsKey).Scan(&c.Identity, &sealed)
	if errors.Is(err, sql.ErrNoRows) {
		return HubCredentials{}, nil
	}
	if err != nil {
		return HubCredentials{}, fmt.Errorf("read default docker hub credentials: %w", err)
	}
	if c.Secret, err = s.open(sealed, instanceSecretAD(hubCredentialsKey)); err != nil {
		return HubCredentials{}, fmt.Errorf("default docker hub secret: %w", err)
	}
	return c, nil
}

// SetDefaultHubCredentials sets the instance-wide Docker Hub credentials;
// the zero value clears them.
func (s *Store) SetDefaultHubCredentials(ctx context.Context, c HubCredentials) error {
	if c == (HubCredentials{}) {
		if _, err := s.w.ExecContext(ctx, `DELETE FROM instance_settings WHERE key = $1`, hubCredentialsKey); err != nil {
			return fmt.Errorf("clear default docker hub credentials: %w", err)
		}
		return nil
	}
	sealed, err := s.seal(c.Secret, instanceSecretAD(hubCredentialsKey))
	if err != nil {
		return fmt.Errorf("set default docker hub credentials: seal secret: %w", err)
	}
	_, err = s.w.ExecContext(ctx,
		`INSERT INTO instance_settings (key, value, value_sealed, updated_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value, value_sealed = excluded.value_sealed,
			updated_at = excluded.updated_at`,
		hubCredentialsKey, c.Identity, sealed, s.stamp(s.now()))
	if err != nil {
		return fmt.Errorf("set default docker hub credentials: %w", err)
	}
	return nil
}

// InstanceValue returns an instance setting, or an error wrapping
// ErrNotFound.
func (s *Store) InstanceValue(ctx context.Context, key string) (string, error) {
	var v string
	err := s.readRow(ctx, `SELECT value FROM instance_settings WHERE key = $1`, key).Scan(&v)
	if err != nil {
		return "", notFound(err, fmt.Sprintf("instance setting %q", key))
	}
	return v, nil
}

// SetInstanceValue sets an instance setting. The key
// "default_hub_credentials" is reserved for SetDefaultHubCredentials.
func (s *Store) SetInstanceValue(ctx context.Context, key, value string) error {
	if key == hubCredentialsKey {
		return fmt.Errorf("set instance setting %q: reserved key", key)
	}
	_, err := s.w.ExecContext(ctx,
		`INSERT INTO instance_settings (key, value, updated_at) VALUES ($1, $2, $3)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
		key, value, s.stamp(s.now()))
	if err != nil {
		return fmt.Errorf("set instance setting %q: %w", key, err)
	}
	return nil
}

// AuthGeneration returns the number of committed changes to users, groups,
// memberships, tokens (not their last use), dependency proxy settings and
// instance settings, counted by triggers in the changing transaction. While
// it is unchanged, every pull decision made under it still holds.
func (s *Store) AuthGeneration(ctx context.Context) (int64, error) {
	var n int64
	if err := s.readRow(ctx, `SELECT n FROM auth_generation WHERE id = 1`).Scan(&n); err != nil {
		return 0, fmt.Errorf("read the auth generation: %w", err)
	}
	return n, nil
}

// Generations are the store's change counters, read together.
type Generations struct {
	// Auth is AuthGeneration.
	Auth int64
	// BlobRefs counts committed removals of blob references (of groups and
	// of virtual registry upstreams) and changes of a reference's size,
	// bumped by triggers in the changing transaction. While it is
	// unchanged, every blob reference found under it still exists with the
	// size found. Adding a reference does not change it.
	BlobRefs int64
}

// Generations reads the auth and blob-reference generations in one query.
func (s *Store) Generations(ctx context.Context) (Generations, error) {
	var g Generations
	if err := s.readRow(ctx, `SELECT a.n, b.n FROM auth_generation a, blob_ref_generation b WHERE a.id = 1 AND b.id = 1`).Scan(&g.Auth, &g.BlobRefs); err != nil {
		return Generations{}, fmt.Errorf("read the store generations: %w", err)
	}
	return g, nil
}

// ProxySettingChange changes some fields of a group's dependency proxy
// setting; nil fields stay as they are.
type ProxySettingChange struct {
	Enabled *bool
	// Credentials replaces the identity and the secret together; empty
	// values clear them.
	Credentials                  *HubCredentials
	FreshnessWindow              *time.Duration
	AllowAnonymousPull           *bool
	AnonymousPullsUseCredentials *bool
}

// ChangeProxySetting applies c to a group's setting in one transaction and
// returns the setting as committed. Only the fields c gives are written,
// in one statement, so concurrent changes of different fields all
// survive. An unknown group is an error wrapping ErrNotFound.
func (s *Store) ChangeProxySetting(ctx context.Context, groupID int64, c ProxySettingChange) (ProxySetting, error) {
	if c.FreshnessWindow != nil && *c.FreshnessWindow < 0 {
		return ProxySetting{}, fmt.Errorf("change dependency proxy setting of group %d: negative freshness window %s", groupID, *c.FreshnessWindow)
	}
	var setCreds bool
	var identity string
	var sealed any
	if c.Credentials != nil {
		var err error
		setCreds, identity = true, c.Credentials.Identity
		if sealed, err = s.seal(c.Credentials.Secret, proxySecretAD(groupID)); err != nil {
			return ProxySetting{}, fmt.Errorf("change dependency proxy setting of group %d: seal secret: %w", groupID, err)
		}
	}
	var window any
	if c.FreshnessWindow != nil {
		window = c.FreshnessWindow.Milliseconds()
	}
	p := ProxySetting{GroupID: groupID}
	var windowMS int64
	var stored []byte
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx,
			`UPDATE dependency_proxy_settings SET
				enabled = COALESCE($2, enabled),
				identity = CASE WHEN $3 THEN $4 ELSE identity END,
				secret_sealed = CASE WHEN $3 THEN $5 ELSE secret_sealed END,
				freshness_window_ms = COALESCE($6, freshness_window_ms),
				allow_anonymous_pull = COALESCE($7, allow_anonymous_pull),
				anonymous_pulls_use_credentials = COALESCE($8, anonymous_pulls_use_credentials),
				updated_at = $9
			WHERE group_id = $1
			RETURNING enabled, identity, secret_sealed, freshness_window_ms, allow_anonymous_pull, anonymous_pulls_use_credentials, updated_at`,
			groupID, nullBool(c.Enabled), setCreds, identity, sealed, window, nullBool(c.AllowAnonymousPull),
			nullBool(c.AnonymousPullsUseCredentials), s.stamp(s.now())).
			Scan(&p.Enabled, &p.Identity, &stored, &windowMS, &p.AllowAnonymousPull, &p.AnonymousPullsUseCredentials, &p.UpdatedAt)
	})
	if err != nil {
		return ProxySetting{}, notFound(err, fmt.Sprintf("change dependency proxy setting of group %d", groupID))
	}
	p.FreshnessWindow = time.Duration(windowMS) * time.Millisecond
	p.UpdatedAt = p.UpdatedAt.UTC()
	if p.Secret, err = s.open(stored, proxySecretAD(groupID)); err != nil {
		return ProxySetting{}, fmt.Errorf("docker hub secret of group %d: %w", groupID, err)
	}
	return p, nil
}

// TTLPolicyChange changes some fields of a group's image TTL policy; nil
// fields stay as they are.
type TTLPolicyChange struct {
	Enabled *bool
	TTLDays *int
}

// ChangeTTLPolicy applies c to a group's TTL policy in one transaction, as
// ChangeProxySetting, and returns the policy as committed.
func (s *Store) ChangeTTLPolicy(ctx context.Context, groupID int64, c TTLPolicyChange) (TTLPolicy, error) {
	if c.TTLDays != nil && *c.TTLDays < 0 {
		return TTLPolicy{}, fmt.Errorf("change ttl policy of group %d: negative ttl %d days", groupID, *c.TTLDays)
	}
	var days any
	if c.TTLDays != nil {
		days = *c.TTLDays
	}
	p := TTLPolicy{GroupID: groupID}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx,
			`UPDATE ttl_policies SET enabled = COALESCE($2, enabled), ttl_days = COALESCE($3, ttl_days), updated_at = $4
			WHERE group_id = $1 RETURNING enabled, ttl_days, created_at, updated_at`,
			groupID, nullBool(c.Enabled), days, s.stamp(s.now())).
			Scan(&p.Enabled, &p.TTLDays, &p.CreatedAt, &p.UpdatedAt)
	})
	if err != nil {
		return TTLPolicy{}, notFound(err, fmt.Sprintf("change ttl policy of group %d", groupID))
	}
	p.CreatedAt, p.UpdatedAt = p.CreatedAt.UTC(), p.UpdatedAt.UTC()
	return p, nil
}

// nullBool is a nullable boolean argument.
func nullBool(b *bool) any {
	if b == nil {
		return nil
	}
	return *b
}
