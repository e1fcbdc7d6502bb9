package admin

import (
	"context"

	"github.com/dproxy/dproxy/internal/store"
	"github.com/dproxy/dproxy/internal/upstream"
)

// RateLimits returns the upstream rate limits last seen. The identities of
// other credentials are instance configuration, so only instance admins
// see them; others see the anonymous one.
func (s *Service) RateLimits(a Actor) []RateLimit {
	out := []RateLimit{}
	if s.opts.RateLimits == nil {
		return out
	}
	for _, rl := range s.opts.RateLimits() {
		if !a.IsAdmin() && rl.Credential != upstream.AnonymousID {
			continue
		}
		out = append(out, rl)
	}
	return out
}

// Credential sources of a rate-limit check.
const (
	CredentialsGroup           = "GROUP"
	CredentialsInstanceDefault = "INSTANCE_DEFAULT"
	CredentialsAnonymous       = "ANONYMOUS"
)

// RateLimitResult is a rate-limit check and the credentials it used.
type RateLimitResult struct {
	RateLimitCheck
	// Source is CredentialsGroup, CredentialsInstanceDefault or
	// CredentialsAnonymous.
	Source string
}

// CheckRateLimit asks the server's own upstream for its rate limit with
// the credentials a pull in the group would use (a guest may ask), or the
// instance default when groupPath is "". The secret never leaves the
// server; only instance admins learn the instance default's identity.
func (s *Service) CheckRateLimit(ctx context.Context, a Actor, groupPath string) (RateLimitResult, error) {
	if s.opts.CheckRateLimit == nil {
		return RateLimitResult{}, fail(ErrUnavailable, "this server cannot check the upstream's rate limit")
	}
	var creds Credentials
	source := CredentialsAnonymous
	if groupPath != "" {
		g, err := s.authorizeGroup(ctx, a, groupPath, store.RoleGuest, "checking the rate limit of the group's Docker Hub credentials")
		if err != nil {
			return RateLimitResult{}, err
		}
		p, err := s.store.ProxySetting(ctx, g.ID)
		if err != nil {
			return RateLimitResult{}, err
		}
		if p.Identity != "" {
			creds, source = Credentials{Username: p.Identity, Password: p.Secret}, CredentialsGroup
		}
	}
	if source == CredentialsAnonymous {
		def, err := s.store.DefaultHubCredentials(ctx)
		if err != nil {
			return RateLimitResult{}, err
		}
		if def.Identity != "" {
			creds, source = upstream.InstanceDefault(def.Identity, def.Secret), CredentialsInstanceDefault
		}
	}
	res, err := s.opts.CheckRateLimit(ctx, creds)
	if err != nil {
		s.log.WarnContext(ctx, "rate-limit check failed", "credential", creds.ID(), "err", err)
		return RateLimitResult{}, fail(ErrUnavailable, "check the upstream's rate limit with the %s: %s", credentialWords(source), err)
	}
	if source == CredentialsInstanceDefault && !a.IsAdmin() {
		res.Credential = "instance default"
	}
	return RateLimitResult{RateLimitCheck: res, Source: source}, nil
}

func credentialWords(source string) string {
	switch source {
	case CredentialsGroup:
		return "group's Docker Hub credentials"
	case CredentialsInstanceDefault:
		return "instance default Docker Hub credentials"
	}
	return "anonymous identity"
}
