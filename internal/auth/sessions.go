package auth

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/store"
)

// throttle is a sign-in's key in the Limiter, and the attempt begun for it.
type throttle struct {
	username string
	from     netip.Addr
	attempt  *Attempt
}

// SignIn is Authenticate for a client at address from, throttled by the
// service's Limiter:
//
//   - while username or from has too many failures in the window, it fails
//     with a *ThrottledError (wrapping oci.ErrTooManyRequests) before
//     looking at the credentials, so right credentials are refused too;
//   - a failure (an error wrapping oci.ErrUnauthorized) is counted for
//     both, and logged with the username and the address, never the secret;
//   - a password is checked only when a password-check slot is free and
//     the Limiter still allows it then.
func (s *Service) SignIn(ctx context.Context, from netip.Addr, username, secret string) (Principal, error) {
	if err := s.opts.Limiter.Check(username, from); err != nil {
		return Principal{}, s.refused(ctx, username, from, err)
	}
	if secret == "" {
		return Principal{}, s.failed(ctx, username, from, "password", errBadCredentials)
	}
	if LooksLikeIDToken(secret) {
		p, err := s.signInCI(ctx, secret)
		return p, s.failed(ctx, username, from, "id token", err)
	}
	p, err := s.authenticateToken(ctx, secret, &username)
	if !errors.Is(err, store.ErrNotFound) {
		return p, s.failed(ctx, username, from, "token", err)
	}
	t := &throttle{username: username, from: from}
	p, err = s.authenticatePassword(ctx, username, secret, t)
	if t.attempt == nil { // refused, or never checked
		return Principal{}, s.refused(ctx, username, from, err)
	}
	failed := errors.Is(err, oci.ErrUnauthorized)
	if t.attempt.End(failed) {
		s.throttledNow(ctx, username, from)
	}
	if failed {
		s.logFailure(ctx, username, from, "password", err)
	}
	return p, err
}

// SignInToken is AuthenticateTokenAs (Basic credentials sent with a
// registry request) for a client at address from, throttled and logged as
// SignIn.
func (s *Service) SignInToken(ctx context.Context, from netip.Addr, username, secret string) (Principal, error) {
	if err := s.opts.Limiter.Check(username, from); err != nil {
		return Principal{}, s.refused(ctx, username, from, err)
	}
	if LooksLikeIDToken(secret) {
		p, err := s.signInCI(ctx, secret)
		return p, s.failed(ctx, username, from, "id token", err)
	}
	p, err := s.AuthenticateTokenAs(ctx, username, secret)
	return p, s.failed(ctx, username, from, "token", err)
}

// CheckSignIn returns a *ThrottledError while username or from has too
// many failed sign-ins, else nil. A transport that remembers signed-in
// credentials calls it before using them, so throttling covers them too.
func (s *Service) CheckSignIn(username string, from netip.Addr) error {
	return s.opts.Limiter.Check(username, from)
}

// failed counts and logs err when it is a failed sign-in, and returns it.
func (s *Service) failed(ctx context.Context, username string, from netip.Addr, credential string, err error) error {
	if !errors.Is(err, oci.ErrUnauthorized) {
		return err
	}
	if s.opts.Limiter.Fail(username, from) {
		s.throttledNow(ctx, username, from)
	}
	s.logFailure(ctx, username, from, credential, err)
	return err
}

// refused logs a throttled sign-in (at debug level: a client that keeps
// trying would flood the log) and returns err.
func (s *Service) refused(ctx context.Context, username string, from netip.Addr, err error) error {
	var te *ThrottledError
	if errors.As(err, &te) {
		s.opts.Logger.DebugContext(ctx, "sign-in refused: too many failures", "username", clip(username), "address", from,
			"by_address", te.ByAddress, "retry_after", te.RetryAfter().Round(time.Second))
	}
	return err
}

func (s *Service) logFailure(ctx context.Context, username string, from netip.Addr, credential string, err error) {
	s.opts.Logger.WarnContext(ctx, "sign-in failed", "username", clip(username), "address", from,
		"credential", credential, "reason", strings.TrimPrefix(err.Error(), oci.ErrUnauthorized.Error()+": "))
}

func (s *Service) throttledNow(ctx context.Context, username string, from netip.Addr) {
	s.opts.Logger.WarnContext(ctx, "sign-ins throttled: too many failures", "username", clip(username), "address", from)
}

// ErrCurrentPassword means a password change needs the user's current
// password and it was missing or wrong.
var ErrCurrentPassword = errors.New("current password needed")

// AuthorizePasswordChange decides whether p, at address from, may set the
// password of target:
//
//   - instance admins may set anyone's;
//   - anyone else only their own (else an error wrapping oci.ErrDenied);
//   - signed in with a token, they must also give their current password
//     (else an error wrapping ErrCurrentPassword), so a stolen token cannot
//     take over the account. A user without a password cannot set one this
//     way: an instance admin sets the first.
//
// Checking the current password counts as a sign-in: it is throttled and a
// wrong one is counted and logged as SignIn does (a *ThrottledError while
// throttled).
func (s *Service) AuthorizePasswordChange(ctx context.Context, from netip.Addr, p Principal, target store.User, current string) error {
	switch {
	case p.IsAdmin():
		return nil
	case p.User == nil || p.User.ID != target.ID:
		return fmt.Errorf("%w: changing the password of %s needs an instance admin; you are %s", oci.ErrDenied, target.Username, p.Name())
	case p.Token == nil:
		return nil // signed in with the password itself
	case target.PasswordHash == "":
		return fmt.Errorf("%w: %s has no password yet; an instance admin sets the first one", ErrCurrentPassword, target.Username)
	case current == "":
		return fmt.Errorf("%w: changing your own password with a token needs your current password as well (currentPassword)", ErrCurrentPassword)
	}
	if err := s.opts.Limiter.Check(target.Username, from); err != nil {
		return s.refused(ctx, target.Username, from, err)
	}
	t := &throttle{username: target.Username, from: from}
	ok, err := s.checkPassword(ctx, target.PasswordHash, current, t)
	if t.attempt == nil {
		return s.refused(ctx, target.Username, from, err)
	}
	if t.attempt.End(!ok) {
		s.throttledNow(ctx, target.Username, from)
	}
	if !ok {
		err := fmt.Errorf("%w: the current password is wrong", ErrCurrentPassword)
		s.logFailure(ctx, target.Username, from, "current password", err)
		return err
	}
	return nil
}

// CheckTokenBounds checks that the principal p may create a token with
// scopes that expires at expiresAt (nil: never): a token cannot create a
// token that outlives it, or that has a scope it lacks (api counts as
// every scope, since it allows all that the others do). A principal
// without a token (signed in with a password) has no bounds. The error
// says what to change.
func CheckTokenBounds(p Principal, scopes []string, expiresAt *time.Time) error {
	if p.Token == nil {
		return nil
	}
	if limit := p.Token.ExpiresAt; limit != nil {
		at := limit.UTC().Format(time.RFC3339)
		switch {
		case expiresAt == nil:
			return fmt.Errorf("the token you are using expires at %s, so a token it creates must expire too: pass expiresAt at or before %s, or use a token that does not expire", at, at)
		case expiresAt.After(*limit):
			return fmt.Errorf("expiresAt %s is after %s, when the token you are using expires: pass expiresAt at or before %s, or use a token that lives longer",
				expiresAt.UTC().Format(time.RFC3339), at, at)
		}
	}
	if p.HasScope(ScopeAPI) {
		return nil
	}
	var wider []string
	for _, sc := range scopes {
		if !p.HasScope(sc) && !slices.Contains(wider, sc) {
			wider = append(wider, sc)
		}
	}
	if len(wider) > 0 {
		return fmt.Errorf("the token you are using has the scopes %s and cannot create a token with %s: leave them out, or use a token that has them",
			strings.Join(p.Token.Scopes, ", "), strings.Join(wider, ", "))
	}
	return nil
}
