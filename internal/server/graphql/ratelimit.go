package graphql

import (
	"context"
	"sync/atomic"

	"github.com/dproxy/dproxy/internal/admin"
	"github.com/dproxy/dproxy/internal/server/graphql/generated"
)

// UpstreamRateLimits reports what the upstream client last saw; the admin
// service decides whose limits the principal may see.
func (q queryResolver) UpstreamRateLimits(ctx context.Context) ([]generated.UpstreamRateLimit, error) {
	out := []generated.UpstreamRateLimit{}
	for _, rl := range q.h.svc.RateLimits(principal(ctx)) {
		out = append(out, rateLimitNode(rl))
	}
	return out, nil
}

func rateLimitNode(rl admin.RateLimit) generated.UpstreamRateLimit {
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

// DockerHubRateLimit checks the upstream's limit for the credentials a
// pull in the group would use. The upstream URL is the server's own: a
// caller cannot point the server's secrets at another host. It sends
// upstream requests, so a request may ask it once.
func (q queryResolver) DockerHubRateLimit(ctx context.Context, groupPath *string) (*generated.DockerHubRateLimit, error) {
	if !takeUpstreamCall(ctx) {
		return nil, fail("dockerHubRateLimit may be asked once per request, as it sends upstream requests; send one request per group")
	}
	res, err := q.h.svc.CheckRateLimit(ctx, principal(ctx), deref(groupPath))
	if err != nil {
		return nil, err
	}
	out := &generated.DockerHubRateLimit{
		Upstream: res.Upstream, Unlimited: res.Unlimited, AuthenticatedAs: res.Credential,
		CredentialSource: res.Source, CredentialVerified: res.CredentialVerified, CheckedAt: res.CheckedAt.UTC(),
	}
	if !res.Unlimited {
		n := rateLimitNode(admin.RateLimit{RateLimit: res.RateLimit})
		out.Limit, out.Remaining, out.WindowSeconds, out.Source = &n.Limit, &n.Remaining, n.WindowSeconds, n.Source
	}
	return out, nil
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
