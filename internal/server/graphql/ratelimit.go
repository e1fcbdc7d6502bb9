package graphql

import (
	"context"
	"sync/atomic"

	"github.com/dproxy/dproxy/internal/server/graphql/generated"
	"github.com/dproxy/dproxy/internal/store"
	"github.com/dproxy/dproxy/internal/upstream"
)

// UpstreamRateLimits reports what the upstream client last saw. The
// identities of other credentials are instance configuration, so only
// instance admins see them.
func (q queryResolver) UpstreamRateLimits(ctx context.Context) ([]generated.UpstreamRateLimit, error) {
	out := []generated.UpstreamRateLimit{}
	if q.h.opts.RateLimits == nil {
		return out, nil
	}
	admin := principal(ctx).IsAdmin()
	for _, rl := range q.h.opts.RateLimits() {
		if !admin && rl.Credential != upstream.AnonymousID {
			continue
		}
		out = append(out, rateLimitNode(rl))
	}
	return out, nil
}

func rateLimitNode(rl upstream.CredentialRateLimit) generated.UpstreamRateLimit {
	n := generated.UpstreamRateLimit{
		Upstream: rl.Upstream, Credential: rl.Credential,
		Limit: rl.Limit, Remaining: rl.Remaining, SeenAt: rl.SeenAt.UTC(),
	}
	if rl.Window > 0 {
		secs := int(rl.Window.Seconds())
		n.WindowSeconds = &secs
	}
	if rl.Source != "" {
		n.Source = &rl.Source
	}
	return n
}

// Credential sources of a rate-limit check.
const (
	credsGroup           = "GROUP"
	credsInstanceDefault = "INSTANCE_DEFAULT"
	credsAnonymous       = "ANONYMOUS"
)

// DockerHubRateLimit checks the upstream's limit for the credentials a
// pull in the group would use. The upstream URL is the server's own: a
// caller cannot point the server's secrets at another host.
func (q queryResolver) DockerHubRateLimit(ctx context.Context, groupPath *string) (*generated.DockerHubRateLimit, error) {
	if q.h.opts.CheckRateLimit == nil {
		return nil, fail("this server cannot check the upstream's rate limit")
	}
	if !takeUpstreamCall(ctx) {
		return nil, fail("dockerHubRateLimit may be asked once per request, as it sends upstream requests; send one request per group")
	}
	p := principal(ctx)
	var creds upstream.Credentials
	source := credsAnonymous
	if groupPath != nil && *groupPath != "" {
		g, _, err := q.h.auth.AuthorizeGroup(ctx, p, *groupPath, store.RoleGuest, "checking the rate limit of the group's Docker Hub credentials")
		if err != nil {
			return nil, err
		}
		s, err := q.h.store.ProxySetting(ctx, g.ID)
		if err != nil {
			return nil, err
		}
		if s.Identity != "" {
			creds, source = upstream.Credentials{Username: s.Identity, Password: s.Secret}, credsGroup
		}
	}
	if source == credsAnonymous {
		def, err := q.h.store.DefaultHubCredentials(ctx)
		if err != nil {
			return nil, err
		}
		if def.Identity != "" {
			creds, source = upstream.InstanceDefault(def.Identity, def.Secret), credsInstanceDefault
		}
	}
	res, err := q.h.opts.CheckRateLimit(ctx, creds)
	if err != nil {
		q.h.log.WarnContext(ctx, "rate-limit check failed", "credential", creds.ID(), "err", err)
		return nil, fail("check the upstream's rate limit with the " + credentialWords(source) + ": " + err.Error())
	}
	out := &generated.DockerHubRateLimit{
		Upstream: res.Upstream, Unlimited: res.Unlimited, AuthenticatedAs: res.Credential,
		CredentialSource: source, CredentialVerified: res.CredentialVerified, CheckedAt: res.CheckedAt.UTC(),
	}
	if source == credsInstanceDefault && !p.IsAdmin() {
		out.AuthenticatedAs = "instance default"
	}
	if !res.Unlimited {
		n := rateLimitNode(upstream.CredentialRateLimit{RateLimit: res.RateLimit})
		out.Limit, out.Remaining, out.WindowSeconds, out.Source = &n.Limit, &n.Remaining, n.WindowSeconds, n.Source
	}
	return out, nil
}

func credentialWords(source string) string {
	switch source {
	case credsGroup:
		return "group's Docker Hub credentials"
	case credsInstanceDefault:
		return "instance default Docker Hub credentials"
	}
	return "anonymous identity"
}

type upstreamBudgetKey struct{}

// withUpstreamBudget gives a request its budget of fields that send
// upstream requests: one, so that aliases cannot multiply them.
func withUpstreamBudget(ctx context.Context) context.Context {
	return context.WithValue(ctx, upstreamBudgetKey{}, new(atomic.Int32))
}

// takeUpstreamCall spends the request's upstream call; false when it was
// spent already.
func takeUpstreamCall(ctx context.Context) bool {
	n, ok := ctx.Value(upstreamBudgetKey{}).(*atomic.Int32)
	return ok && n.Add(1) == 1
}
