package upstream

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
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
	rl.SeenAt = time.Now()
	c.mu.Lock()
	c.rateLimits[creds.ID()] = rl
	c.mu.Unlock()
	c.opts.Metrics.RateLimit(c.host, creds.ID(), rl.Limit, rl.Remaining)
	return rl, true
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
