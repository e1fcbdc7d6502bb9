// Package auth owns who may do what in dproxy: password hashing, API and
// registry token secrets, the registry's JWTs (minting and verification),
// signing in with a password or a token, the permission checks for
// pulling from a group's dependency proxy or a virtual registry, and
// pull-target resolution: where an authorised pull goes (the group's
// cache, its upstream credentials, its freshness window), remembered per
// auth generation so a warm request reads one row.
//
// It reads users, groups, memberships, tokens and settings through the
// small Accounts interface (which *store.Store satisfies) and uses only the
// store's data types, upstream's credentials and oci's names and sentinel
// errors. It must not import server, cache, blobstore, commands or tui.
// Secrets never leave this package in a log line, an error message or a
// JWT: only their SHA-256 goes to the store and only principal ids go into
// tokens; upstream credentials leave it only in a Target, for the cache.
package auth

import (
	"strconv"

	"github.com/dproxy/dproxy/internal/store"
)

// Principal is who a request acts as. A user signed in with a password has
// only User; a personal token has both User and Token; group access and
// deploy tokens have only Token. The zero Principal is nobody.
//
// Anonymous is a client that sent no credentials to the token endpoint of
// a group that allows anonymous pulls: it has no user, no token and no
// scope, and may only pull from groups whose dependency proxy setting
// allows anonymous pulls, checked on every request.
//
// CI is a CI job signed in with an OpenID Connect ID token under a trust
// policy: it has no user, no token, only the read_registry scope, and may
// pull from the trust's target group and its subgroups until NotAfter.
type Principal struct {
	User      *store.User
	Token     *store.Token
	CI        *CIIdentity
	Anonymous bool
}

// AnonymousPrincipal is the principal of a client without credentials.
var AnonymousPrincipal = Principal{Anonymous: true}

// Subject identifies the principal in a JWT: "token:<id>" for any token,
// "user:<id>" for a password sign-in, "ci:<trust>:<sub>" for a CI job (its
// trust and group go into their own claims), "" for the zero Principal. It never
// contains a secret.
func (p Principal) Subject() string {
	switch {
	case p.CI != nil:
		return p.Name()
	case p.Token != nil:
		return subjectToken + strconv.FormatInt(p.Token.ID, 10)
	case p.User != nil:
		return subjectUser + strconv.FormatInt(p.User.ID, 10)
	case p.Anonymous:
		return subjectAnonymous
	}
	return ""
}

// Name is the principal's display name: "ci:<trust>:<sub>" for a CI job,
// the username of a user or personal
// token, the username of a deploy token, "group-token-<id>" for a group
// access token.
func (p Principal) Name() string {
	switch {
	case p.CI != nil:
		return subjectCI + p.CI.Trust.Name + ":" + p.CI.Subject
	case p.User != nil:
		return p.User.Username
	case p.Token == nil && p.Anonymous:
		return subjectAnonymous
	case p.Token == nil:
		return ""
	case p.Token.Kind == store.TokenDeploy:
		return p.Token.Username
	}
	return "group-token-" + strconv.FormatInt(p.Token.ID, 10)
}

// IsZero reports whether p is nobody (not even an anonymous client).
func (p Principal) IsZero() bool {
	return p.User == nil && p.Token == nil && p.CI == nil && !p.Anonymous
}

// IsAdmin reports whether p acts for an instance admin (with a password or
// one of the admin's personal tokens).
func (p Principal) IsAdmin() bool { return p.User != nil && p.User.Admin }

// HasScope reports whether p may use scope: a password sign-in has every
// scope, a token only those it was created with, nobody has none.
func (p Principal) HasScope(scope string) bool {
	if p.CI != nil {
		return scope == ScopeReadRegistry
	}
	if p.Token == nil {
		return p.User != nil
	}
	for _, s := range p.Token.Scopes {
		if s == scope {
			return true
		}
	}
	return false
}

const (
	subjectUser      = "user:"
	subjectToken     = "token:"
	subjectAnonymous = "anonymous"
	subjectCI        = "ci:"
)
