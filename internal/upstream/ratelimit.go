package upstream

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dproxy/dproxy/internal/oci"
)

// RateLimit is the state of the upstream's pull rate limit for one
// credential, as announced by Docker Hub's headers.
type RateLimit struct {
	Limit     int
	Remaining int
	Window    time.Duration // 0 when the headers named none
	Source    string        // Docker-RateLimit-Source: the IP or account counted
	SeenAt    time.Time
}

func (r RateLimit) String() string {
	s := fmt.Sprintf("limit %d", r.Limit)
	if r.Window > 0 {
		s += " per " + r.Window.String()
	}
	s += fmt.Sprintf(", %d remaining", r.Remaining)
	if r.Source != "" {
		s += " for " + r.Source
	}
	return s
}

// ParseRateLimit parses RateLimit-Limit and RateLimit-Remaining header values
// such as "100;w=21600" (100 pulls per 21600 s). ok is false unless both
// carry a count. SeenAt is left zero.
func ParseRateLimit(limitHdr, remainingHdr, source string) (RateLimit, bool) {
	limit, w1, ok1 := parseRateValue(limitHdr)
	remaining, w2, ok2 := parseRateValue(remainingHdr)
	if !ok1 || !ok2 {
		return RateLimit{}, false
	}
	return RateLimit{Limit: limit, Remaining: remaining, Window: max(w1, w2), Source: strings.TrimSpace(source)}, true
}

// parseRateValue parses "<count>[;w=<seconds>][;other params]".
func parseRateValue(v string) (n int, window time.Duration, ok bool) {
	parts := strings.Split(v, ";")
	n, err := strconv.Atoi(strings.TrimSpace(parts[0]))
	if err != nil || n < 0 {
		return 0, 0, false
	}
	for _, p := range parts[1:] {
		k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
		if k != "w" {
			continue
		}
		if secs, err := strconv.Atoi(strings.TrimSpace(val)); err == nil && secs > 0 {
			window = time.Duration(secs) * time.Second
		}
	}
	return n, window, true
}

// RateLimit returns the last rate-limit headers seen for creds.
func (c *Client) RateLimit(creds Credentials) (RateLimit, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rl, ok := c.rateLimits[creds.ID()]
	return rl, ok
}

// recordRateLimit stores and reports the rate-limit headers of a registry
// response, if it has them.
func (c *Client) recordRateLimit(creds Credentials, h http.Header) (RateLimit, bool) {
	rl, ok := ParseRateLimit(h.Get("RateLimit-Limit"), h.Get("RateLimit-Remaining"), h.Get("Docker-RateLimit-Source"))
	if !ok {
		return RateLimit{}, false
	}
	rl.SeenAt = c.opts.Now()
	c.mu.Lock()
	prev, seen := c.rateLimits[creds.ID()]
	c.rateLimits[creds.ID()] = rl
	c.mu.Unlock()
	c.opts.Metrics.RateLimit(c.host, creds.ID(), rl.Limit, rl.Remaining)
	if lvl := c.lowLevel(rl); lvl != "" && (!seen || c.lowLevel(prev) != lvl) {
		c.log.Warn("upstream pull rate limit "+lvl, "upstream", c.host, "credential", creds.ID(),
			"remaining", rl.Remaining, "limit", rl.Limit, "window", rl.Window, "reserve", c.opts.RateLimitReserve)
	}
	return rl, true
}

// lowLevel names how close rl is to the wall: "" (not close), "below 20
// percent", "at the reserve" or "exhausted". A warning is logged when the
// level changes to a non-empty one, so crossing a threshold logs once.
func (c *Client) lowLevel(rl RateLimit) string {
	switch {
	case rl.Remaining == 0:
		return "exhausted"
	case rl.Remaining <= c.opts.RateLimitReserve:
		return "at the reserve"
	case rl.Remaining*5 <= rl.Limit:
		return "below 20 percent"
	}
	return ""
}

// backOff stops requests with creds for retryAfter (the upstream's
// Retry-After, or Options.TooManyRequestsBackoff when it sent none).
func (c *Client) backOff(ctx context.Context, creds Credentials, retryAfter time.Duration) {
	if retryAfter <= 0 {
		retryAfter = c.opts.TooManyRequestsBackoff
	}
	until := c.opts.Now().Add(retryAfter)
	c.mu.Lock()
	if until.After(c.blocked[creds.ID()]) {
		c.blocked[creds.ID()] = until
	}
	c.mu.Unlock()
	c.log.WarnContext(ctx, "upstream answered 429 Too Many Requests; not asking it again with this credential until the back-off ends",
		"upstream", c.host, "credential", creds.ID(), "until", until.UTC().Format(time.RFC3339))
}

// backingOff returns a 429 *Error, without any request, while creds are
// backing off after a 429; nil otherwise.
func (c *Client) backingOff(o op, creds Credentials) error {
	now := c.opts.Now()
	c.mu.Lock()
	until, ok := c.blocked[creds.ID()]
	if ok && !now.Before(until) {
		delete(c.blocked, creds.ID())
		ok = false
	}
	rl, seen := c.rateLimits[creds.ID()]
	c.mu.Unlock()
	if !ok {
		return nil
	}
	last := ""
	if seen {
		last = " (last seen: " + rl.String() + ")"
	}
	e := o.error(oci.ErrTooManyRequests, http.StatusTooManyRequests,
		fmt.Sprintf("the upstream's pull rate limit for %s was reached%s; dproxy asks it again after %s", creds.Named(), last, until.UTC().Format(time.RFC3339)), nil)
	e.retryAfter = until.Sub(now)
	return e
}

// RateLimitCheck is what CheckRateLimit found.
type RateLimitCheck struct {
	RateLimit            // zero when Unlimited
	Unlimited  bool      // the upstream sent no rate-limit headers
	Credential string    // Credentials.ID of the credentials checked with
	Upstream   string    // the upstream's host
	CheckedAt  time.Time // when the answer arrived
	// CredentialVerified: the answer came to a request authorised with
	// the credentials (a token issued for them, or Basic auth), so the
	// upstream accepted them. False when checking anonymously, and when the
	// upstream answered without asking for any: then the limit is not the
	// credential's, and the credentials are unchecked.
	CredentialVerified bool
}

// checkRepo is the repository Docker documents for checking the limit.
const checkRepo = "ratelimitpreview/test"

// CheckRateLimit asks the upstream for the pull rate limit of creds: a
// token for ratelimitpreview/test (when the upstream asks for one), then a
// HEAD of its latest manifest, which Docker Hub does not count as a pull.
// It ignores and does not start a 429 back-off.
func (c *Client) CheckRateLimit(ctx context.Context, creds Credentials) (RateLimitCheck, error) {
	o := c.op("HEAD manifest", kindManifest, checkRepo, "latest")
	res, err := c.attempt(ctx, o, creds, http.MethodHead, "manifests/latest", oci.AcceptManifests)
	if err != nil {
		var e *Error
		if errors.As(err, &e) && e.Status == http.StatusNotFound {
			return RateLimitCheck{}, fmt.Errorf("%w (the upstream has no %s:latest to check with; is it Docker Hub?)", err, checkRepo)
		}
		return RateLimitCheck{}, err
	}
	res.Body.Close()
	out := RateLimitCheck{Credential: creds.ID(), Upstream: c.host, CheckedAt: c.opts.Now(),
		CredentialVerified: !creds.anonymous() && res.Request != nil && res.Request.Header.Get("Authorization") != ""}
	h := res.Header
	rl, ok := ParseRateLimit(h.Get("RateLimit-Limit"), h.Get("RateLimit-Remaining"), h.Get("Docker-RateLimit-Source"))
	if !ok {
		out.Unlimited = true
		return out, nil
	}
	rl.SeenAt = out.CheckedAt
	out.RateLimit = rl
	return out, nil
}

// CredentialRateLimit is the last rate limit seen for one credential.
type CredentialRateLimit struct {
	Upstream   string // the upstream's host
	Credential string // Credentials.ID: "anonymous" or the username
	RateLimit
}

// RateLimits returns the last rate limit seen for every credential that
// has met one, ordered by credential.
func (c *Client) RateLimits() []CredentialRateLimit {
	c.mu.Lock()
	out := make([]CredentialRateLimit, 0, len(c.rateLimits))
	for id, rl := range c.rateLimits {
		out = append(out, CredentialRateLimit{Upstream: c.host, Credential: id, RateLimit: rl})
	}
	c.mu.Unlock()
	slices.SortFunc(out, func(a, b CredentialRateLimit) int { return strings.Compare(a.Credential, b.Credential) })
	return out
}
