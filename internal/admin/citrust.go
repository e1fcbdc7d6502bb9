package admin

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/dproxy/dproxy/internal/store"
)

// CITrustStore holds CI trust policies. *store.Store satisfies it.
type CITrustStore interface {
	CreateCITrust(ctx context.Context, t store.CITrust) (store.CITrust, error)
	CITrustByName(ctx context.Context, name string) (store.CITrust, error)
	CITrusts(ctx context.Context) ([]store.CITrust, error)
	DeleteCITrust(ctx context.Context, id int64) error
}

// ClaimRule is a condition of a CI trust: the claim Key, as a string,
// matches Glob (* for any run of characters).
type ClaimRule = store.ClaimRule

// ParseRole parses a role name as the CLI and the CI trust API write it
// (guest, reporter, …).
func ParseRole(s string) (Role, error) { return store.ParseRole(s) }

// CITrust is a trust policy for CI jobs' OpenID Connect ID tokens, as the
// admin API shows it. GroupPath is the fixed target group, "" when the
// target comes from the token's GroupClaim.
type CITrust struct {
	Name        string
	Issuer      string
	Audience    string
	GroupPath   string
	GroupClaim  string
	Role        store.Role
	Claims      []store.ClaimRule
	MaxLifetime time.Duration
	CreatedAt   time.Time
}

// NewCITrust is what CreateCITrust needs. Exactly one of GroupPath and
// GroupClaim; a zero Role means guest, a zero MaxLifetime one hour.
type NewCITrust struct {
	Name, Issuer, Audience string
	GroupPath, GroupClaim  string
	Role                   store.Role
	Claims                 []store.ClaimRule
	MaxLifetime            time.Duration
}

// DefaultCITrustLifetime and MaxCITrustLifetime bound the registry tokens
// a trust's jobs get.
const (
	DefaultCITrustLifetime = time.Hour
	MaxCITrustLifetime     = 24 * time.Hour
)

var (
	ciTrustName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	claimKey    = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,64}$`)
)

func (s *Service) ciTrusts() (CITrustStore, error) {
	if s.opts.CITrusts == nil {
		return nil, fail(ErrUnavailable, "CI trust policies are not available on this server")
	}
	return s.opts.CITrusts, nil
}

// CreateCITrust adds a trust policy. An instance admin may target any
// group; a group owner only a group they own. A trust whose target comes
// from a token claim (GroupClaim) can reach any group, so only an instance
// admin may create one. The issuer must be an http(s) URL the address
// policy allows: dproxy fetches its discovery document and keys.
func (s *Service) CreateCITrust(ctx context.Context, a Actor, n NewCITrust) (CITrust, error) {
	st, err := s.ciTrusts()
	if err != nil {
		return CITrust{}, err
	}
	t, err := s.validCITrust(ctx, a, n)
	if err != nil {
		return CITrust{}, err
	}
	if n.GroupClaim != "" {
		if err := s.requireAdmin(a, "creating a ci-trust that takes its group from a token claim"); err != nil {
			return CITrust{}, err
		}
	} else {
		g, err := s.authorizeGroup(ctx, a, n.GroupPath, store.RoleOwner, "creating a ci-trust")
		if err != nil {
			return CITrust{}, err
		}
		t.GroupID = g.ID
	}
	if err := s.checkAddress(ctx, a, t.Issuer); err != nil {
		return CITrust{}, err
	}
	t, err = st.CreateCITrust(ctx, t)
	switch {
	case errors.Is(err, store.ErrConflict):
		return CITrust{}, refuse(ErrConflict, "ci-trust %s already exists; pick another name or remove it first", t.Name)
	case errors.Is(err, store.ErrNotFound):
		return CITrust{}, refuse(ErrNotFound, "group %s not found", n.GroupPath)
	case err != nil:
		return CITrust{}, err
	}
	s.log.InfoContext(ctx, "ci-trust created", "name", t.Name, "issuer", t.Issuer, "group", n.GroupPath,
		"group_claim", t.GroupClaim, "role", t.Role.String(), "by", a.Name())
	return s.ciTrustOf(ctx, t)
}

func (s *Service) validCITrust(_ context.Context, _ Actor, n NewCITrust) (store.CITrust, error) {
	if !ciTrustName.MatchString(n.Name) {
		return store.CITrust{}, invalid("ci-trust name %q: use 1-63 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit", clip(n.Name))
	}
	u, err := url.Parse(n.Issuer)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return store.CITrust{}, invalid("issuer %q: give the issuer's URL as its ID tokens name it (iss), e.g. https://gitlab.example.com", clip(n.Issuer))
	}
	if strings.TrimSpace(n.Audience) == "" {
		return store.CITrust{}, invalid("audience is empty: give the aud the CI job requests, usually this server's external URL")
	}
	if (n.GroupPath == "") == (n.GroupClaim == "") {
		return store.CITrust{}, invalid("give either a group (--group) or a group claim (--group-claim), not both or neither")
	}
	if n.GroupClaim != "" && !claimKey.MatchString(n.GroupClaim) {
		return store.CITrust{}, invalid("group claim %q is not a claim name", clip(n.GroupClaim))
	}
	role := n.Role
	if role == store.RoleNone {
		role = store.RoleGuest
	}
	if !role.Valid() || role < store.RoleGuest {
		return store.CITrust{}, invalid("role %s cannot pull; use guest or higher", role)
	}
	life := n.MaxLifetime
	if life == 0 {
		life = DefaultCITrustLifetime
	}
	if life < time.Minute || life > MaxCITrustLifetime {
		return store.CITrust{}, invalid("max lifetime %s: use between 1m and %s", life, MaxCITrustLifetime)
	}
	for _, r := range n.Claims {
		if !claimKey.MatchString(r.Key) || r.Glob == "" {
			return store.CITrust{}, invalid("claim rule %q=%q: give KEY=GLOB with a claim name and a non-empty glob", clip(r.Key), clip(r.Glob))
		}
	}
	return store.CITrust{Name: n.Name, Issuer: n.Issuer, Audience: n.Audience, GroupClaim: n.GroupClaim,
		Role: role, Claims: n.Claims, MaxLifetime: life}, nil
}

// CITrusts lists the trusts the actor may see, by name: every trust for an
// instance admin, else those targeting groups the actor owns.
func (s *Service) CITrusts(ctx context.Context, a Actor) ([]CITrust, error) {
	st, err := s.ciTrusts()
	if err != nil {
		return nil, err
	}
	if a.IsZero() || a.CI != nil {
		return nil, fail(ErrUnauthorized, "sign in to list ci-trusts")
	}
	all, err := st.CITrusts(ctx)
	if err != nil {
		return nil, err
	}
	out := []CITrust{}
	for _, t := range all {
		if ok, err := s.mayManageCITrust(ctx, a, t); err != nil {
			return nil, err
		} else if ok {
			c, err := s.ciTrustOf(ctx, t)
			if err != nil {
				return nil, err
			}
			out = append(out, c)
		}
	}
	return out, nil
}

// CITrust returns one trust the actor may see; others are not found.
func (s *Service) CITrust(ctx context.Context, a Actor, name string) (CITrust, error) {
	t, err := s.visibleCITrust(ctx, a, name)
	if err != nil {
		return CITrust{}, err
	}
	return s.ciTrustOf(ctx, t)
}

// DeleteCITrust removes a trust the actor may manage (as CreateCITrust).
// Registry tokens issued under it stop working at once.
func (s *Service) DeleteCITrust(ctx context.Context, a Actor, name string) (CITrust, error) {
	t, err := s.visibleCITrust(ctx, a, name)
	if err != nil {
		return CITrust{}, err
	}
	out, err := s.ciTrustOf(ctx, t)
	if err != nil {
		return CITrust{}, err
	}
	if err := s.opts.CITrusts.DeleteCITrust(ctx, t.ID); errors.Is(err, store.ErrNotFound) {
		return CITrust{}, refuse(ErrNotFound, "ci-trust %s not found", name)
	} else if err != nil {
		return CITrust{}, err
	}
	s.log.InfoContext(ctx, "ci-trust removed", "name", t.Name, "by", a.Name())
	return out, nil
}

func (s *Service) visibleCITrust(ctx context.Context, a Actor, name string) (store.CITrust, error) {
	st, err := s.ciTrusts()
	if err != nil {
		return store.CITrust{}, err
	}
	if a.IsZero() || a.CI != nil {
		return store.CITrust{}, fail(ErrUnauthorized, "sign in to manage ci-trusts")
	}
	notFound := refuse(ErrNotFound, "ci-trust %s not found", clip(name))
	t, err := st.CITrustByName(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return store.CITrust{}, notFound
	}
	if err != nil {
		return store.CITrust{}, err
	}
	ok, err := s.mayManageCITrust(ctx, a, t)
	if err != nil {
		return store.CITrust{}, err
	}
	if !ok {
		return store.CITrust{}, notFound
	}
	return t, nil
}

// mayManageCITrust: instance admins any trust, owners of its fixed group
// theirs.
func (s *Service) mayManageCITrust(ctx context.Context, a Actor, t store.CITrust) (bool, error) {
	if a.IsAdmin() {
		return true, nil
	}
	if t.GroupID == 0 {
		return false, nil
	}
	g, err := s.store.GroupByID(ctx, t.GroupID)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	role, err := s.auth.GroupRole(ctx, a, g)
	if err != nil {
		return false, fmt.Errorf("role of %s in %s: %w", a.Name(), g.Path, err)
	}
	return role >= store.RoleOwner, nil
}

func (s *Service) ciTrustOf(ctx context.Context, t store.CITrust) (CITrust, error) {
	out := CITrust{Name: t.Name, Issuer: t.Issuer, Audience: t.Audience, GroupClaim: t.GroupClaim, Role: t.Role,
		Claims: append([]store.ClaimRule{}, t.Claims...), MaxLifetime: t.MaxLifetime, CreatedAt: t.CreatedAt}
	if t.GroupID != 0 {
		g, err := s.store.GroupByID(ctx, t.GroupID)
		if err != nil {
			return CITrust{}, err
		}
		out.GroupPath = g.Path
	}
	return out, nil
}
