package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/store"
)

// Accounts is what the Service reads and writes: users, groups,
// memberships and tokens. *store.Store satisfies it. Lookups of missing
// rows return errors wrapping store.ErrNotFound.
type Accounts interface {
	UserByID(ctx context.Context, id int64) (store.User, error)
	UserByUsername(ctx context.Context, username string) (store.User, error)
	GroupByPath(ctx context.Context, path string) (store.Group, error)
	// EffectiveRole is the user's highest role in the group or any
	// ancestor, RoleNone when they have none.
	EffectiveRole(ctx context.Context, userID, groupID int64) (store.Role, error)
	// IsAncestorOrSelf reports whether groupID is ancestorID or below it.
	IsAncestorOrSelf(ctx context.Context, ancestorID, groupID int64) (bool, error)
	TokenByHash(ctx context.Context, hash []byte) (store.Token, error)
	TokenByID(ctx context.Context, id int64) (store.Token, error)
	TouchToken(ctx context.Context, id int64, at time.Time) error
	// ProxySetting is a group's dependency proxy setting: whether it
	// allows anonymous pulls, and where its pulls go (PullTarget).
	ProxySetting(ctx context.Context, groupID int64) (store.ProxySetting, error)
	// DefaultHubCredentials are the instance's Docker Hub credentials,
	// zero when unset.
	DefaultHubCredentials(ctx context.Context) (store.HubCredentials, error)
	VirtualRegistry(ctx context.Context, id int64) (store.VirtualRegistry, error)
	GroupByID(ctx context.Context, id int64) (store.Group, error)
	// Generations reads, in one query, the auth generation (Auth: a
	// number that changes, in the changing transaction, with every
	// committed change to what authorises a pull: users, groups,
	// memberships, tokens (not their last use) and settings; pull
	// decisions are remembered only while it holds) and the
	// blob-reference generation, which PullTarget passes on.
	Generations(ctx context.Context) (store.Generations, error)
}

// ServiceOptions configure a Service. Zero values mean the defaults.
type ServiceOptions struct {
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives failures that do not fail a request (recording a
	// token's last use). Default: discard.
	Logger *slog.Logger
	// TouchInterval is how stale a token's last-used time may get before a
	// sign-in records it again (default 1 minute), so busy tokens do not
	// turn every sign-in into a database write.
	TouchInterval time.Duration
	// MirrorGroup is the group serving plain Docker Hub repository names
	// (mirror mode); "" means such names are never granted.
	MirrorGroup string
	// MirrorNamespaces maps the registry a mirror request names (?ns=,
	// a lower-case host) to the container virtual registry serving it
	// (MirrorRepository).
	MirrorNamespaces map[string]int64
	// Limiter throttles failed sign-ins (SignIn, SignInToken) and checks
	// of a current password; default: NewLimiter with its defaults.
	Limiter *Limiter
	// PasswordChecks bounds the bcrypt comparisons that run at once
	// (default half of GOMAXPROCS, at least 1), so a flood of sign-ins
	// queues instead of taking every CPU from serving.
	PasswordChecks int
	// CITrusts are the trust policies for CI jobs' ID tokens; nil means
	// no ID token signs in (each is refused as from an unknown issuer).
	CITrusts CITrusts
	// CIClient fetches ID token issuers' discovery documents and keys; it
	// must apply the address policy (default http.DefaultClient, for
	// tests). CIFetchTimeout bounds one fetch (default 10 s).
	CIClient       *http.Client
	CIFetchTimeout time.Duration
}

// CITrusts reads CI trust policies. *store.Store satisfies it. Missing
// rows give errors wrapping store.ErrNotFound.
type CITrusts interface {
	CITrustsByIssuer(ctx context.Context, issuer string) ([]store.CITrust, error)
	CITrustByID(ctx context.Context, id int64) (store.CITrust, error)
}

// Service signs principals in and decides what they may pull. It is safe
// for concurrent use.
type Service struct {
	accounts Accounts
	issuer   *Issuer
	opts     ServiceOptions
	checks   chan struct{} // a slot per password check running
	decided  decisions     // registry callers and pull targets, per auth generation
	ci       *ciVerifier
}

// NewService returns a Service reading accounts from a and verifying JWTs
// with iss.
func NewService(a Accounts, iss *Issuer, opts ServiceOptions) *Service {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.TouchInterval <= 0 {
		opts.TouchInterval = time.Minute
	}
	if opts.Limiter == nil {
		opts.Limiter = NewLimiter(LimiterOptions{})
	}
	if opts.PasswordChecks <= 0 {
		opts.PasswordChecks = max(1, runtime.GOMAXPROCS(0)/2)
	}
	return &Service{accounts: a, issuer: iss, opts: opts, checks: make(chan struct{}, opts.PasswordChecks),
		ci: newCIVerifier(opts.CIClient, opts.CIFetchTimeout, opts.Now)}
}

// errBadCredentials is the one answer to every failed sign-in, so that
// nothing tells a wrong password from an unknown user or a revoked token.
var errBadCredentials = fmt.Errorf("%w: invalid username or password/token", oci.ErrUnauthorized)

// errBlocked refuses a blocked user's credentials, once they were found
// right.
func errBlocked(username string) error { return &blockedError{username: username} }

// blockedError is the refusal of a blocked user's credentials. It wraps
// oci.ErrUnauthorized.
type blockedError struct{ username string }

func (e *blockedError) Error() string {
	return fmt.Sprintf("%s: user %s is blocked; an instance admin can unblock it (dproxy user unblock %s)",
		oci.ErrUnauthorized, e.username, e.username)
}

func (e *blockedError) Unwrap() error { return oci.ErrUnauthorized }

// IsBlocked reports whether err refuses a blocked user's credentials.
func IsBlocked(err error) bool {
	var b *blockedError
	return errors.As(err, &b)
}

// Authenticate signs in with a username and a password or token secret.
// A token secret is tried first: a personal token needs its user's
// username, a deploy token its deploy username, a group access token any
// username (as GitLab). Otherwise password is the user's password.
// Unknown users, wrong passwords, wrong usernames, revoked and expired
// tokens all give the same error wrapping oci.ErrUnauthorized; a blocked
// user's right credentials give one saying so; other errors are the
// store's. The secret never appears in an error. It is not throttled:
// requests from clients go through SignIn.
func (s *Service) Authenticate(ctx context.Context, username, password string) (Principal, error) {
	if password == "" {
		return Principal{}, errBadCredentials
	}
	p, err := s.authenticateToken(ctx, password, &username)
	if !errors.Is(err, store.ErrNotFound) {
		return p, err
	}
	return s.authenticatePassword(ctx, username, password, nil)
}

// AuthenticateToken signs in with a token secret alone, as a Bearer
// credential (the admin API) carries it; no username is checked. Failures
// are errors wrapping oci.ErrUnauthorized.
func (s *Service) AuthenticateToken(ctx context.Context, secret string) (Principal, error) {
	if secret == "" {
		return Principal{}, errBadCredentials
	}
	p, err := s.authenticateToken(ctx, secret, nil)
	if errors.Is(err, store.ErrNotFound) {
		return Principal{}, errBadCredentials
	}
	return p, err
}

// AuthenticateTokenAs signs in with a username and a token secret, as Basic
// credentials sent with every registry request carry them (a daemon's
// fixed header). Passwords are refused here, since checking one costs a
// bcrypt per request: they go through the token endpoint. The username
// must match the token's, as at the token endpoint. Failures are errors
// wrapping oci.ErrUnauthorized.
func (s *Service) AuthenticateTokenAs(ctx context.Context, username, secret string) (Principal, error) {
	if !LooksLikeToken(secret) {
		return Principal{}, fmt.Errorf("%w: Basic credentials on the registry API must be a personal, group or deploy token (dpxp_…, dpxg_…, dpxd_…); sign in with a password through `docker login` instead", oci.ErrUnauthorized)
	}
	p, err := s.authenticateToken(ctx, secret, &username)
	if errors.Is(err, store.ErrNotFound) {
		return Principal{}, errBadCredentials
	}
	return p, err
}

// authenticateToken looks secret up as a token. It returns an error
// wrapping store.ErrNotFound when no token has that secret, so the caller
// can try it as a password. A non-nil username must match the token's.
func (s *Service) authenticateToken(ctx context.Context, secret string, username *string) (Principal, error) {
	t, err := s.accounts.TokenByHash(ctx, HashToken(secret))
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return Principal{}, err
		}
		return Principal{}, fmt.Errorf("sign in with a token: %w", err)
	}
	now := s.opts.Now()
	p, err := s.principalOfToken(ctx, t, now)
	if err != nil {
		return Principal{}, err
	}
	if username != nil {
		want := *username
		switch t.Kind {
		case store.TokenPersonal:
			want = p.User.Username
		case store.TokenDeploy:
			want = t.Username
		}
		if *username != want {
			return Principal{}, errBadCredentials
		}
	}
	s.touch(ctx, t, now)
	return p, nil
}

// authenticatePassword checks a user's password. With a non-nil throttle
// the check is begun in the throttle's Limiter once it has a slot to run
// in, and the caller must end it.
func (s *Service) authenticatePassword(ctx context.Context, username, password string, t *throttle) (Principal, error) {
	u, err := s.accounts.UserByUsername(ctx, username)
	if errors.Is(err, store.ErrNotFound) {
		// As slow as a wrong password, so the answer does not tell.
		if _, err := s.checkPassword(ctx, dummyHash, password, t); err != nil {
			return Principal{}, err
		}
		return Principal{}, errBadCredentials
	}
	if err != nil {
		return Principal{}, fmt.Errorf("sign in as %q: %w", username, err)
	}
	// An empty hash means password sign-in is disabled for this user.
	ok, err := s.checkPassword(ctx, u.PasswordHash, password, t)
	switch {
	case err != nil:
		return Principal{}, err
	case !ok:
		return Principal{}, errBadCredentials
	case u.Blocked:
		return Principal{}, errBlocked(u.Username)
	}
	return Principal{User: &u}, nil
}

// checkPassword compares pw with a bcrypt hash once one of the service's
// password-check slots is free; waiting ends with ctx. With a non-nil
// throttle, the check is begun in the Limiter first and may be refused.
func (s *Service) checkPassword(ctx context.Context, hash, pw string, t *throttle) (bool, error) {
	select {
	case s.checks <- struct{}{}:
	case <-ctx.Done():
		return false, fmt.Errorf("wait for a free password check: %w", ctx.Err())
	}
	defer func() { <-s.checks }()
	if t != nil {
		a, err := s.opts.Limiter.Begin(t.username, t.from)
		if err != nil {
			return false, err
		}
		t.attempt = a
	}
	return CheckPassword(hash, pw), nil
}

// touch records a token's use unless it was recorded recently. A failure
// is logged, not returned: bookkeeping must not fail a sign-in.
func (s *Service) touch(ctx context.Context, t store.Token, now time.Time) {
	if t.LastUsedAt != nil && now.Sub(*t.LastUsedAt) < s.opts.TouchInterval {
		return
	}
	if err := s.accounts.TouchToken(ctx, t.ID, now); err != nil {
		s.opts.Logger.WarnContext(ctx, "record token use", "token_id", t.ID, "err", err)
	}
}

// principalOfToken checks that t is usable at now and loads its user.
func (s *Service) principalOfToken(ctx context.Context, t store.Token, now time.Time) (Principal, error) {
	if t.RevokedAt != nil || (t.ExpiresAt != nil && !now.Before(*t.ExpiresAt)) {
		return Principal{}, errBadCredentials
	}
	p := Principal{Token: &t}
	if t.Kind != store.TokenPersonal {
		return p, nil
	}
	u, err := s.accounts.UserByID(ctx, t.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return Principal{}, errBadCredentials
	}
	if err != nil {
		return Principal{}, fmt.Errorf("load user %d of token %d: %w", t.UserID, t.ID, err)
	}
	if u.Blocked {
		return Principal{}, errBlocked(u.Username)
	}
	p.User = &u
	return p, nil
}

// PrincipalFromClaims loads the principal a verified JWT names (its
// subject, "user:<id>" or "token:<id>") as it is now. A deleted or blocked
// user, a revoked, expired or deleted token, and a user whose credential
// version moved on since the JWT was minted (a new password, a block) give
// an error wrapping oci.ErrUnauthorized.
func (s *Service) PrincipalFromClaims(ctx context.Context, c Claims) (Principal, error) {
	if c.CITrust != 0 {
		return s.principalOfCIClaims(ctx, c)
	}
	p, err := s.principalFromSubject(ctx, c.Subject)
	if err != nil {
		return Principal{}, err
	}
	if p.User != nil && p.User.CredentialVersion != c.CredentialVersion {
		return Principal{}, fmt.Errorf("%w: the credentials of %s changed after this token was issued (a new password, or the user was blocked); log in again", oci.ErrUnauthorized, p.User.Username)
	}
	return p, nil
}

func (s *Service) principalFromSubject(ctx context.Context, subject string) (Principal, error) {
	expired := fmt.Errorf("%w: the credentials this token was issued for are no longer valid; log in again", oci.ErrUnauthorized)
	if subject == subjectAnonymous {
		return AnonymousPrincipal, nil
	}
	if rest, ok := strings.CutPrefix(subject, subjectToken); ok {
		id, err := strconv.ParseInt(rest, 10, 64)
		if err != nil || id <= 0 {
			return Principal{}, fmt.Errorf("%w: malformed token subject %q", oci.ErrUnauthorized, clip(subject))
		}
		t, err := s.accounts.TokenByID(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return Principal{}, expired
		}
		if err != nil {
			return Principal{}, fmt.Errorf("load token %d: %w", id, err)
		}
		p, err := s.principalOfToken(ctx, t, s.opts.Now())
		if errors.Is(err, errBadCredentials) {
			return Principal{}, expired
		}
		return p, err
	}
	if rest, ok := strings.CutPrefix(subject, subjectUser); ok {
		id, err := strconv.ParseInt(rest, 10, 64)
		if err != nil || id <= 0 {
			return Principal{}, fmt.Errorf("%w: malformed user subject %q", oci.ErrUnauthorized, clip(subject))
		}
		u, err := s.accounts.UserByID(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return Principal{}, expired
		}
		if err != nil {
			return Principal{}, fmt.Errorf("load user %d: %w", id, err)
		}
		if u.Blocked {
			return Principal{}, errBlocked(u.Username)
		}
		return Principal{User: &u}, nil
	}
	return Principal{}, fmt.Errorf("%w: unknown token subject %q", oci.ErrUnauthorized, clip(subject))
}

// PrincipalFromAccessToken verifies an access JWT and loads its principal
// live (PrincipalFromClaims).
func (s *Service) PrincipalFromAccessToken(ctx context.Context, token string) (Claims, Principal, error) {
	c, err := s.issuer.Verify(token)
	if err != nil {
		return Claims{}, Principal{}, err
	}
	p, err := s.PrincipalFromClaims(ctx, c)
	if err != nil {
		return Claims{}, Principal{}, err
	}
	return c, p, nil
}

// PrincipalFromRefreshToken verifies a refresh JWT and loads its principal
// live (PrincipalFromClaims).
func (s *Service) PrincipalFromRefreshToken(ctx context.Context, token string) (Principal, error) {
	c, err := s.issuer.VerifyRefresh(token)
	if err != nil {
		return Principal{}, err
	}
	return s.PrincipalFromClaims(ctx, c)
}

// AuthorizePull decides whether p may pull from the dependency proxy of the
// group at groupPath, and returns the group.
//
//   - The token must allow pulling (see missingPullScope), else an error
//     wrapping oci.ErrDenied names the missing scope. A password sign-in
//     has every scope.
//   - An unknown group and a group p cannot see give the same error
//     wrapping oci.ErrNameUnknown. Instance admins see every group; users
//     see groups where their effective (inherited) role is at least
//     minimal access; group access and deploy tokens see their group and
//     its subgroups.
//   - A visible group with a role below guest (a minimal-access member, or
//     a group access token with such a role) gives oci.ErrDenied.
//
// The zero Principal gets oci.ErrUnauthorized. The anonymous principal may
// pull only from a group whose setting allows anonymous pulls (not
// inherited by subgroups); any other group, existing or not, gives the same
// oci.ErrUnauthorized, so the client is asked to log in.
func (s *Service) AuthorizePull(ctx context.Context, p Principal, groupPath string) (store.Group, error) {
	if p.IsZero() {
		return store.Group{}, fmt.Errorf("%w: log in to pull from group %s", oci.ErrUnauthorized, groupPath)
	}
	if p.Anonymous {
		return s.authorizeAnonymousPull(ctx, groupPath)
	}
	if msg := missingPullScope(p.HasScope); msg != "" {
		return store.Group{}, fmt.Errorf("%w: %s", oci.ErrDenied, msg)
	}
	unknown := fmt.Errorf("%w: group %s does not exist or you do not have access to it", oci.ErrNameUnknown, groupPath)
	g, err := s.accounts.GroupByPath(ctx, groupPath)
	if errors.Is(err, store.ErrNotFound) {
		return store.Group{}, unknown
	}
	if err != nil {
		return store.Group{}, fmt.Errorf("authorize pull from group %s: %w", groupPath, err)
	}

	var role store.Role
	switch {
	case p.IsAdmin():
		return g, nil
	case p.CI != nil:
		in, err := s.accounts.IsAncestorOrSelf(ctx, p.CI.GroupID, g.ID)
		if err != nil {
			return store.Group{}, fmt.Errorf("authorize pull of %s from group %s: %w", p.Name(), groupPath, err)
		}
		if !in {
			return store.Group{}, unknown
		}
		role = p.CI.Trust.Role
	case p.User != nil:
		if role, err = s.accounts.EffectiveRole(ctx, p.User.ID, g.ID); err != nil {
			return store.Group{}, fmt.Errorf("authorize pull of %s from group %s: %w", p.Name(), groupPath, err)
		}
		if role < store.RoleMinimalAccess {
			return store.Group{}, unknown
		}
	default: // a group access or deploy token
		in, err := s.accounts.IsAncestorOrSelf(ctx, p.Token.GroupID, g.ID)
		if err != nil {
			return store.Group{}, fmt.Errorf("authorize pull of %s from group %s: %w", p.Name(), groupPath, err)
		}
		if !in {
			return store.Group{}, unknown
		}
		if p.Token.Kind == store.TokenDeploy {
			return g, nil
		}
		role = p.Token.Role
	}
	if role < store.RoleGuest {
		return store.Group{}, fmt.Errorf("%w: pulling from the dependency proxy of group %s needs at least the guest role; %s has the %s role",
			oci.ErrDenied, g.Path, p.Name(), role)
	}
	return g, nil
}

// authorizeAnonymousPull lets a client without credentials pull from the
// group at groupPath when its setting allows anonymous pulls.
func (s *Service) authorizeAnonymousPull(ctx context.Context, groupPath string) (store.Group, error) {
	refused := fmt.Errorf("%w: log in to pull from group %s (anonymous pulls work only from a group whose owner allowed them)", oci.ErrUnauthorized, groupPath)
	g, err := s.accounts.GroupByPath(ctx, groupPath)
	if errors.Is(err, store.ErrNotFound) {
		return store.Group{}, refused
	}
	if err != nil {
		return store.Group{}, fmt.Errorf("authorize anonymous pull from group %s: %w", groupPath, err)
	}
	ps, err := s.accounts.ProxySetting(ctx, g.ID)
	if err != nil {
		return store.Group{}, fmt.Errorf("authorize anonymous pull from group %s: %w", groupPath, err)
	}
	if !ps.AllowAnonymousPull {
		return store.Group{}, refused
	}
	return g, nil
}

// GrantedActions returns the actions of a Docker token scope
// ("repository:<group>/dependency_proxy/containers/<image>:pull", or in
// mirror mode "repository:library/alpine:pull") that p is granted: the
// requested ones intersected with what p may do. Only "pull" (also asked
// for as "*") on a repository PullGroup resolves can be granted; malformed
// scopes, other resource types and repositories give none.
func (s *Service) GrantedActions(ctx context.Context, p Principal, scope string) []string {
	a, err := ParseScope(scope)
	if err != nil || a.Type != "repository" {
		return nil
	}
	if !slices.Contains(a.Actions, "pull") && !slices.Contains(a.Actions, "*") {
		return nil
	}
	repo, err := oci.ParseRepository(a.Name)
	if err != nil {
		return nil
	}
	if repo.Kind == oci.VirtualName {
		_, err = s.AuthorizeVirtualPull(ctx, p, repo.Virtual.RegistryID)
	} else if group, _, ok := s.proxyPull(repo); ok {
		_, err = s.AuthorizePull(ctx, p, group)
	} else {
		return nil
	}
	if err != nil {
		if !errors.Is(err, oci.ErrNameUnknown) && !errors.Is(err, oci.ErrDenied) && !errors.Is(err, oci.ErrUnauthorized) {
			s.opts.Logger.WarnContext(ctx, "authorize token scope", "scope", clip(scope), "principal", p.Subject(), "err", err)
		}
		return nil
	}
	return []string{"pull"}
}

// AuthorizeVirtualPull checks that p may pull from container virtual
// registry id: a token needs the api scope or read_virtual_registry with
// read_registry (write_virtual_registry with write_registry), as GitLab;
// and read access to the registry's group as for its dependency proxy. An
// unknown registry and one p may not see give the same NAME_UNKNOWN.
func (s *Service) AuthorizeVirtualPull(ctx context.Context, p Principal, id int64) (store.VirtualRegistry, error) {
	if p.IsZero() || p.Anonymous {
		return store.VirtualRegistry{}, fmt.Errorf("%w: log in to pull from virtual registry %d", oci.ErrUnauthorized, id)
	}
	if !p.HasScope(ScopeAPI) &&
		!(p.HasScope(ScopeReadVirtualRegistry) && p.HasScope(ScopeReadRegistry)) &&
		!(p.HasScope(ScopeWriteVirtualRegistry) && p.HasScope(ScopeWriteRegistry)) {
		return store.VirtualRegistry{}, fmt.Errorf("%w: pulling from a virtual registry needs a token with the read_virtual_registry and read_registry scopes (or api)", oci.ErrDenied)
	}
	unknown := fmt.Errorf("%w: virtual registry %d does not exist or you do not have access to it", oci.ErrNameUnknown, id)
	r, err := s.accounts.VirtualRegistry(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.VirtualRegistry{}, unknown
	}
	if err != nil {
		return store.VirtualRegistry{}, fmt.Errorf("authorize pull from virtual registry %d: %w", id, err)
	}
	g, err := s.accounts.GroupByID(ctx, r.GroupID)
	if err != nil {
		return store.VirtualRegistry{}, fmt.Errorf("authorize pull from virtual registry %d: %w", id, err)
	}
	if _, err := s.AuthorizePull(ctx, p, g.Path); err != nil {
		if errors.Is(err, oci.ErrNameUnknown) {
			return store.VirtualRegistry{}, unknown
		}
		return store.VirtualRegistry{}, err
	}
	return r, nil
}
