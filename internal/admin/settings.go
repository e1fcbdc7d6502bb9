package admin

import (
	"context"
	"time"

	"github.com/dproxy/dproxy/internal/store"
)

// ProxySetting returns the dependency proxy setting of a group the actor
// may read. The secret is never returned. Within a request scope the
// settings of every group of the group's cohort are read at once
// (batch.go).
func (s *Service) ProxySetting(ctx context.Context, a Actor, groupID int64) (ProxySetting, error) {
	g, err := s.readableGroup(ctx, a, groupID)
	if err != nil {
		return ProxySetting{}, err
	}
	c := cohortOf(ctx, a, g)
	p, err := batched(ctx, c, &c.settings, g.ID, s.store.ProxySettings)
	if err != nil {
		return ProxySetting{}, err
	}
	return settingOf(p), nil
}

// ProxySettingChange changes a group's dependency proxy setting; nil
// fields stay as they are. Identity and Secret come together (both empty
// strings clear them).
type ProxySettingChange struct {
	Enabled                      *bool
	Identity                     *string
	Secret                       *string
	FreshnessWindow              *time.Duration
	AllowAnonymousPull           *bool
	AnonymousPullsUseCredentials *bool
}

// UpdateProxySetting changes a group's dependency proxy setting (owner;
// letting anonymous pulls use credentials needs an instance admin, taking
// it back does not). Only the given fields are written, in one
// transaction, so concurrent changes of other fields survive.
func (s *Service) UpdateProxySetting(ctx context.Context, a Actor, groupPath string, c ProxySettingChange) (ProxySetting, error) {
	g, err := s.authorizeGroup(ctx, a, groupPath, store.RoleOwner, "changing the dependency proxy settings")
	if err != nil {
		return ProxySetting{}, err
	}
	// Anonymous pulls spend the group's or the instance's Docker Hub
	// credentials only when an instance admin says so; an owner may take
	// that back.
	if c.AnonymousPullsUseCredentials != nil && *c.AnonymousPullsUseCredentials {
		if err := s.requireAdmin(a, "letting anonymous pulls use Docker Hub credentials"); err != nil {
			return ProxySetting{}, err
		}
	}
	change := store.ProxySettingChange{
		Enabled: c.Enabled, AllowAnonymousPull: c.AllowAnonymousPull, AnonymousPullsUseCredentials: c.AnonymousPullsUseCredentials,
	}
	if c.Identity != nil || c.Secret != nil {
		if c.Identity == nil || c.Secret == nil {
			return ProxySetting{}, invalid("identity and secret are set together: pass both, or both as empty strings to clear them")
		}
		if err := validateCredentials(*c.Identity, *c.Secret); err != nil {
			return ProxySetting{}, err
		}
		change.Credentials = &store.HubCredentials{Identity: *c.Identity, Secret: *c.Secret}
	}
	if c.FreshnessWindow != nil {
		w := *c.FreshnessWindow
		if w < 0 || w > maxFreshness*time.Second {
			return ProxySetting{}, invalid("freshnessWindowSeconds must be between 0 and %d, got %d", maxFreshness, int64(w/time.Second))
		}
		change.FreshnessWindow = &w
	}
	p, err := s.store.ChangeProxySetting(ctx, g.ID, change)
	if err != nil {
		return ProxySetting{}, err
	}
	s.log.InfoContext(ctx, "dependency proxy setting changed", "group", g.Path, "by", a.Name(),
		"enabled", p.Enabled, "identity_set", p.Identity != "", "anonymous_pull", p.AllowAnonymousPull,
		"anonymous_pulls_use_credentials", p.AnonymousPullsUseCredentials)
	return settingOf(p), nil
}

// TTLPolicy returns the image TTL policy of a group the actor may read.
// Within a request scope the policies of every group of the group's
// cohort are read at once (batch.go).
func (s *Service) TTLPolicy(ctx context.Context, a Actor, groupID int64) (TTLPolicy, error) {
	g, err := s.readableGroup(ctx, a, groupID)
	if err != nil {
		return TTLPolicy{}, err
	}
	c := cohortOf(ctx, a, g)
	return batched(ctx, c, &c.ttl, g.ID, s.store.TTLPolicies)
}

// TTLPolicyChange changes a group's TTL policy; nil fields stay as they
// are.
type TTLPolicyChange struct {
	Enabled *bool
	// TTLDays is between 1 and 3650.
	TTLDays *int
}

// UpdateTTLPolicy changes a group's image TTL policy (owner), writing only
// the given fields in one transaction.
func (s *Service) UpdateTTLPolicy(ctx context.Context, a Actor, groupPath string, c TTLPolicyChange) (TTLPolicy, error) {
	g, err := s.authorizeGroup(ctx, a, groupPath, store.RoleOwner, "changing the image TTL policy")
	if err != nil {
		return TTLPolicy{}, err
	}
	if c.TTLDays != nil && (*c.TTLDays < minTTL || *c.TTLDays > maxTTL) {
		return TTLPolicy{}, invalid("ttl must be between %d and %d days, got %d", minTTL, maxTTL, *c.TTLDays)
	}
	p, err := s.store.ChangeTTLPolicy(ctx, g.ID, store.TTLPolicyChange{Enabled: c.Enabled, TTLDays: c.TTLDays})
	if err != nil {
		return TTLPolicy{}, err
	}
	s.log.InfoContext(ctx, "image TTL policy changed", "group", g.Path, "enabled", p.Enabled, "ttl_days", p.TTLDays, "by", a.Name())
	return p, nil
}

// InstanceHubCredentials returns the instance default Docker Hub
// credentials (instance admin). The secret is never returned.
func (s *Service) InstanceHubCredentials(ctx context.Context, a Actor) (HubCredentials, error) {
	if err := s.requireAdmin(a, "reading the instance Docker Hub credentials"); err != nil {
		return HubCredentials{}, err
	}
	c, err := s.store.DefaultHubCredentials(ctx)
	if err != nil {
		return HubCredentials{}, err
	}
	return HubCredentials{Identity: c.Identity, SecretSet: c.Secret != ""}, nil
}

// SetInstanceHubCredentials sets the instance default Docker Hub
// credentials (instance admin); both empty clear them.
func (s *Service) SetInstanceHubCredentials(ctx context.Context, a Actor, identity, secret string) (HubCredentials, error) {
	if err := s.requireAdmin(a, "changing the instance Docker Hub credentials"); err != nil {
		return HubCredentials{}, err
	}
	if err := validateCredentials(identity, secret); err != nil {
		return HubCredentials{}, err
	}
	if err := s.store.SetDefaultHubCredentials(ctx, store.HubCredentials{Identity: identity, Secret: secret}); err != nil {
		return HubCredentials{}, err
	}
	s.log.InfoContext(ctx, "instance Docker Hub credentials changed", "by", a.Name(), "identity_set", identity != "")
	return HubCredentials{Identity: identity, SecretSet: secret != ""}, nil
}
