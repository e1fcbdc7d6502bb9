package graphql

import (
	"context"

	"github.com/dproxy/dproxy/internal/server/graphql/generated"
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
