package upstream

import (
	"context"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// CheckCache remembers rate-limit checks per credential for a while and
// lets concurrent checks of one credential share one upstream request, so
// callers who may ask often (the admin API) cannot turn their requests into
// a flood of upstream requests made with the server's credentials.
type CheckCache struct {
	check func(context.Context, Credentials) (RateLimitCheck, error)
	ttl   time.Duration
	now   func() time.Time

	flights singleflight.Group
	mu      sync.Mutex
	results map[string]checkResult // Credentials.cacheKey → last answer
}

type checkResult struct {
	check RateLimitCheck
	err   error
	at    time.Time
}

// NewCheckCache returns a CheckCache that keeps each answer of check,
// failures included, for ttl (at least 10 s). now is the clock (nil:
// time.Now).
func NewCheckCache(check func(context.Context, Credentials) (RateLimitCheck, error), ttl time.Duration, now func() time.Time) *CheckCache {
	if now == nil {
		now = time.Now
	}
	return &CheckCache{check: check, ttl: max(ttl, 10*time.Second), now: now, results: map[string]checkResult{}}
}

// Check returns the answer of a check of creds made less than the TTL ago,
// or makes one. The check runs detached from ctx, so a caller that gives
// up does not fail the others waiting for it.
func (c *CheckCache) Check(ctx context.Context, creds Credentials) (RateLimitCheck, error) {
	key := creds.cacheKey()
	c.mu.Lock()
	r, ok := c.results[key]
	c.mu.Unlock()
	if ok && c.now().Sub(r.at) < c.ttl {
		return r.check, r.err
	}
	ch := c.flights.DoChan(key, func() (any, error) {
		res, err := c.check(context.WithoutCancel(ctx), creds)
		c.mu.Lock()
		now := c.now()
		for k, old := range c.results { // keep the map to live entries
			if now.Sub(old.at) >= c.ttl {
				delete(c.results, k)
			}
		}
		c.results[key] = checkResult{check: res, err: err, at: now}
		c.mu.Unlock()
		return res, err
	})
	select {
	case out := <-ch:
		if out.Err != nil {
			return RateLimitCheck{}, out.Err
		}
		return out.Val.(RateLimitCheck), nil
	case <-ctx.Done():
		return RateLimitCheck{}, ctx.Err()
	}
}
