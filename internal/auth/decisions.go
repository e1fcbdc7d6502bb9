package auth

import (
	"crypto/sha256"
	"strconv"
	"sync"
	"time"
)

// decisions remembers the outcome of authorising pulls, so a warm request
// costs one read of the store's auth generation instead of loading the
// token, user, group, role and settings again: who a credential is, and
// where a principal's pull from a group goes.
//
// Every entry was made under one auth generation and holds only while the
// store reports that generation: the store bumps it in the same
// transaction as any change to users, groups, memberships, tokens or
// settings, so a revocation or a setting change (on any replica) applies
// to the next request, as without the cache. Only successes are kept;
// failures take the full path every time.
type decisions struct {
	mu         sync.Mutex
	gen        int64
	principals map[string]principalEntry
	targets    map[targetKey]Target
}

// principalEntry is a credential's principal, usable until until (the
// token's expiry; for Basic credentials also the next last-used record).
type principalEntry struct {
	p     Principal
	until time.Time
}

type targetKey struct{ principal, group string }

// maxDecisions bounds each map; a full map is emptied (entries are cheap
// to make again).
const maxDecisions = 10_000

// at drops every entry when the generation moved on from the one they were
// made under, and reports whether gen is the current one: a decision made
// under an older generation (by a request that read it before another
// request saw the change) is not remembered. It must be called with mu held.
func (d *decisions) at(gen int64) bool {
	if d.principals == nil || gen > d.gen {
		d.gen = gen
		d.principals = map[string]principalEntry{}
		d.targets = map[targetKey]Target{}
	}
	return gen == d.gen
}

// principal returns the principal remembered for key under gen.
func (d *decisions) principal(gen int64, key string, now time.Time) (Principal, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.at(gen) {
		return Principal{}, false
	}
	e, ok := d.principals[key]
	if !ok || !now.Before(e.until) {
		return Principal{}, false
	}
	return e.p, true
}

// rememberPrincipal keeps p for key under gen until until.
func (d *decisions) rememberPrincipal(gen int64, key string, p Principal, until time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.at(gen) {
		remember(d.principals, key, principalEntry{p: p, until: until})
	}
}

// target returns the target remembered for a principal's pull from group.
func (d *decisions) target(gen int64, principal, group string) (Target, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.at(gen) {
		return Target{}, false
	}
	t, ok := d.targets[targetKey{principal, group}]
	return t, ok
}

// rememberTarget keeps t for a principal's pull from group under gen.
func (d *decisions) rememberTarget(gen int64, principal, group string, t Target) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.at(gen) {
		remember(d.targets, targetKey{principal, group}, t)
	}
}

// remember puts v in m, emptying m first when it is full.
func remember[K comparable, V any](m map[K]V, k K, v V) {
	if len(m) >= maxDecisions {
		clear(m)
	}
	m[k] = v
}

// bearerKey and basicKey name a request's credential in the cache: a
// registry token by its subject and the credential version it was minted
// under (so a token minted before a password change never finds the
// principal of one minted after), a Basic password only by its SHA-256.
func bearerKey(c Claims) string {
	return "bearer\x00" + c.Subject + "\x00" + strconv.FormatInt(c.CredentialVersion, 10) +
		"\x00" + strconv.FormatInt(c.CITrust, 10) + "\x00" + strconv.FormatInt(c.CIGroup, 10)
}

func basicKey(user, secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return "basic\x00" + user + "\x00" + string(sum[:])
}

// basicTTL bounds how long Basic credentials are remembered, so the full
// path, which records the token's last use, runs at least that often.
// bearerTTL bounds a registry token's principal; the JWT itself expires
// sooner.
const (
	basicTTL  = time.Minute
	bearerTTL = 24 * time.Hour
)

// validUntil is how long a principal may be remembered from now: at most
// max, and never past its token's expiry.
func validUntil(p Principal, now time.Time, max time.Duration) time.Time {
	until := now.Add(max)
	if p.Token != nil && p.Token.ExpiresAt != nil && p.Token.ExpiresAt.Before(until) {
		until = *p.Token.ExpiresAt
	}
	if p.CI != nil && p.CI.NotAfter.Before(until) {
		until = p.CI.NotAfter
	}
	return until
}
