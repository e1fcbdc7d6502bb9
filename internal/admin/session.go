package admin

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/dproxy/dproxy/internal/auth"
	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/store"
)

// Authenticate signs in the caller of an admin request from its
// Authorization header ("Bearer <token>") or, as GitLab allows, its
// PRIVATE-TOKEN header, and checks it may use the admin API: a personal
// or group access token with the api scope. Every transport calls it.
// Refusals are ErrUnauthorized with a message saying what to do; the
// secret never appears in an error or a log line.
func (s *Service) Authenticate(ctx context.Context, authorization, privateToken string) (Actor, error) {
	secret := privateToken
	if authorization != "" {
		scheme, rest, _ := strings.Cut(authorization, " ")
		if !strings.EqualFold(scheme, "Bearer") {
			return Actor{}, fail(ErrUnauthorized, "the Authorization header must be `Bearer <token>`, with a personal or group access token that has the api scope")
		}
		secret = strings.TrimSpace(rest)
	}
	if secret == "" {
		return Actor{}, fromAuth(auth.AuthorizeAPI(auth.Principal{}))
	}
	p, err := s.auth.AuthenticateToken(ctx, secret)
	if auth.IsBlocked(err) {
		return Actor{}, fromAuth(err)
	}
	if errors.Is(err, oci.ErrUnauthorized) {
		return Actor{}, fail(ErrUnauthorized, "invalid token: it is unknown, revoked or expired; create a new one with `dproxy token create --scopes api`")
	}
	if err != nil {
		return Actor{}, fmt.Errorf("check an admin API token: %w", err)
	}
	if err := auth.AuthorizeAPI(p); err != nil {
		return Actor{}, fromAuth(err)
	}
	return p, nil
}

// ClientAddr is the address of the client behind a request: the peer, or
// the last address in X-Forwarded-For that no trusted proxy added. Password
// checks are throttled per client address.
func ClientAddr(remoteAddr string, forwardedFor []string, trusted []netip.Prefix) netip.Addr {
	return auth.ClientAddr(remoteAddr, forwardedFor, trusted)
}

// CurrentUser says who the actor is: a user or token's name, whether it is
// an instance admin, what it signed in with and its scopes (every scope
// for a password sign-in).
func (s *Service) CurrentUser(a Actor) Me {
	out := Me{Username: a.Name(), Admin: a.IsAdmin(), Kind: a.Kind(), Scopes: []string{}}
	if a.Token != nil {
		out.Scopes = append(out.Scopes, a.Token.Scopes...)
		if a.Token.Kind != store.TokenPersonal {
			out.Username = a.Token.Name
		}
	} else {
		out.Scopes = auth.ScopeNames()
	}
	return out
}

// System is the server acting on its own behalf: the first start's
// bootstrap and seeding, run by the operator. It is an instance admin
// that no sign-in yields.
var System = Actor{User: &store.User{Username: "dproxy", Admin: true}}

// Bootstrap creates the first instance admin ("admin", without a
// password) and a personal token for it with the api scope when the
// instance has no user yet, and returns the token's secret; "" when there
// were users already (or another replica sharing the database created
// them just now).
func (s *Service) Bootstrap(ctx context.Context) (string, error) {
	n, err := s.store.CountUsers(ctx)
	if err != nil {
		return "", fmt.Errorf("count users: %w", err)
	}
	if n > 0 {
		return "", nil
	}
	u, err := s.CreateUser(ctx, System, UserInput{Username: "admin", Admin: true})
	if errors.Is(err, ErrConflict) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("create admin user: %w", err)
	}
	_, secret, err := s.CreateToken(ctx, System, TokenInput{Kind: TokenPersonal, Name: "initial admin token",
		Username: &u.Username, Scopes: []string{auth.ScopeAPI}})
	if err != nil {
		return "", fmt.Errorf("create admin token: %w", err)
	}
	return secret, nil
}
