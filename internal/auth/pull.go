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
	"github.com/dproxy/dproxy/internal/upstream"
)

// Caller is a principal authenticated on a registry request, as
// BasicCaller or BearerCaller loaded it, ready for PullTarget. It carries
// the auth generation read for the request, so one request reads it once.
// A Caller made elsewhere (only its Principal set) is authorised in full
// on every PullTarget, never from remembered decisions.
type Caller struct {
	Principal
	// bearer is true for a registry token (the token flow); access is then
	// what the token grants. Basic credentials carry no access list and are
	// authorised as the token's JWT would be.
	bearer bool
	access []Access
	// key names the credential among remembered decisions.
	key string
	gen generation
}

// Target is where a pull goes, as PullTarget decided it. The transport
// hands it to the cache unchanged: a dependency proxy target to
// cache.Cache, a virtual registry target to cache.Virtual, which resolves
// the registry's upstreams and their credentials itself.
type Target struct {
	// GroupID is the group whose dependency proxy serves the pull; 0 for a
	// virtual registry. Group is its full path, for messages.
	GroupID int64
	Group   string
	// VirtualRegistryID is the container virtual registry serving the
	// pull; 0 for a dependency proxy.
	VirtualRegistryID int64
	// Image is the upstream repository of a dependency proxy pull
	// ("library/alpine" for "alpine"), the image as requested of a virtual
	// registry.
	Image string
	// Creds go upstream with a dependency proxy pull (zero: anonymously).
	Creds upstream.Credentials
	// FreshnessWindow is how long a dependency proxy tag confirmed upstream
	// is served without asking again.
	FreshnessWindow time.Duration
	// BlobRefs is the store's blob-reference generation, read in the same
	// query as the auth generation for this request, for the cache to
	// reuse the blob references it found under it; BlobRefsKnown is false
	// when it could not be read (the cache then reads every reference).
	BlobRefs      int64
	BlobRefsKnown bool
}

// Virtual reports whether t is a container virtual registry's.
func (t Target) Virtual() bool { return t.VirtualRegistryID != 0 }

// generation is the store's auth generation, read once per request when
// its credentials are checked; ok is false when it could not be read, and
// then no pull decision is reused or remembered. blobRefs, read with it,
// goes to the pull's Target.
type generation struct {
	n        int64
	blobRefs int64
	ok       bool
}

func (s *Service) generation(ctx context.Context) generation {
	g, err := s.accounts.Generations(ctx)
	return generation{n: g.Auth, blobRefs: g.BlobRefs, ok: err == nil}
}

// BasicCaller signs in with Basic credentials sent on a registry request,
// whose password must be a token (a daemon's fixed header, containerd's
// hosts.toml): a throttled sign-in (SignInToken), counted when it fails,
// whose principal is remembered for a minute under the auth generation.
// Throttling applies to remembered credentials too.
func (s *Service) BasicCaller(ctx context.Context, from netip.Addr, username, secret string) (Caller, error) {
	if err := s.CheckSignIn(username, from); err != nil {
		return Caller{}, err
	}
	return s.caller(ctx, basicKey(username, secret), basicTTL, func() (Principal, error) {
		return s.SignInToken(ctx, from, username, secret)
	})
}

// BearerCaller verifies a registry token (a JWT the token endpoint minted)
// and loads its principal as it is now (PrincipalFromClaims), so a deleted
// or blocked user, a changed password or a revoked token stops working at
// once; a remembered principal holds only while nothing of the sort
// changed, and never past its token's expiry.
func (s *Service) BearerCaller(ctx context.Context, token string) (Caller, error) {
	claims, err := s.issuer.Verify(token)
	if err != nil {
		return Caller{}, err
	}
	c, err := s.caller(ctx, bearerKey(claims), bearerTTL, func() (Principal, error) {
		return s.PrincipalFromClaims(ctx, claims)
	})
	if err != nil {
		return Caller{}, err
	}
	c.bearer, c.access = true, claims.Access
	return c, nil
}

// caller reads the auth generation and returns the principal remembered
// for key under it, or loads it and remembers it for at most ttl.
func (s *Service) caller(ctx context.Context, key string, ttl time.Duration, load func() (Principal, error)) (Caller, error) {
	c := Caller{key: key, gen: s.generation(ctx)}
	now := s.opts.Now()
	if c.gen.ok {
		if p, ok := s.decided.principal(c.gen.n, key, now); ok {
			c.Principal = p
			return c, nil
		}
	}
	p, err := load()
	if err != nil {
		return Caller{}, err
	}
	if c.gen.ok {
		s.decided.rememberPrincipal(c.gen.n, key, p, validUntil(p, now, ttl))
	}
	c.Principal = p
	return c, nil
}

// PullTarget authorises a pull of repo by c and says where it goes.
//
//   - A virtual registry name: AuthorizeVirtualPull.
//   - A dependency proxy name pulls from its group; a plain name from the
//     mirror group, else it is unknown (oci.ErrNameUnknown). AuthorizePull
//     decides, then the group's dependency proxy must be enabled
//     (oci.ErrDenied). Upstream credentials are the group's Docker Hub
//     credentials, else the instance default; an anonymous caller goes
//     upstream anonymously unless an instance admin let the group's
//     anonymous pulls use credentials. The decision is remembered under
//     the auth generation c was loaded under.
//   - A registry token must grant pull on repo.Name: otherwise the error
//     is an *InsufficientScopeError (wrapping oci.ErrUnauthorized), so the
//     client can be asked for a new token. Checked after the above, so a
//     repository the caller may not see looks the same with any token.
func (s *Service) PullTarget(ctx context.Context, c Caller, repo oci.Repository) (Target, error) {
	var (
		t   Target
		err error
	)
	if repo.Kind == oci.VirtualName {
		if _, err = s.AuthorizeVirtualPull(ctx, c.Principal, repo.Virtual.RegistryID); err == nil {
			t = Target{VirtualRegistryID: repo.Virtual.RegistryID, Image: repo.Virtual.Image}
		}
	} else {
		group, image, ok := s.proxyPull(repo)
		if !ok {
			return Target{}, fmt.Errorf("%w: %s; pull through <group>/dependency_proxy/containers/<image> (this server has no mirror group for plain Docker Hub names)", oci.ErrNameUnknown, repo.Name)
		}
		t, err = s.proxyTarget(ctx, c, group, image)
	}
	if err != nil {
		return Target{}, err
	}
	if c.bearer && !grantsPull(c.access, repo.Name) {
		return Target{}, &InsufficientScopeError{Repository: repo.Name}
	}
	t.BlobRefs, t.BlobRefsKnown = c.gen.blobRefs, c.gen.ok
	return t, nil
}

// dockerHubNamespaces are the ns values of mirror requests for Docker Hub:
// containerd's hosts.toml sends docker.io, regctl's mirror the registry's
// host.
var dockerHubNamespaces = []string{"docker.io", "registry-1.docker.io", "index.docker.io"}

// MirrorRepository says which repository a mirror request means: a plain
// name (mirror mode) with the registry it is for, ns (the ?ns= of
// containerd's hosts.toml and regctl's mirror; "" when none).
//
//   - No ns, or a Docker Hub name: repo itself, served by the mirror group.
//   - A host MirrorNamespaces maps: that virtual registry's repository
//     (virtual_registries/container/<id>/<name>), pulled by its rules, and
//     the name a registry token must grant.
//   - Any other: oci.ErrNameUnknown saying how to map it.
//
// Hosts match exactly, case aside. Names of another form ignore ns.
func (s *Service) MirrorRepository(repo oci.Repository, ns string) (oci.Repository, error) {
	if repo.Kind != oci.PlainName || ns == "" {
		return repo, nil
	}
	host := strings.ToLower(ns)
	if slices.Contains(dockerHubNamespaces, host) {
		return repo, nil
	}
	if id, ok := s.opts.MirrorNamespaces[host]; ok {
		return oci.VirtualRepository{RegistryID: id, Image: repo.Name}.Repository(), nil
	}
	return oci.Repository{}, fmt.Errorf("%w: this server mirrors no registry %q for %s; an operator serves it through a container virtual registry with --mirror-ns %s=<virtual registry id> (DPROXY_MIRROR_NS, mirror-ns in the config file); Docker Hub (docker.io, registry-1.docker.io, index.docker.io) is served by the mirror group",
		oci.ErrNameUnknown, clip(ns), repo.Name, clip(host))
}

// PullGroup returns the group a repository name pulls from: the group of
// a dependency proxy repository ("<group>/dependency_proxy/containers/<image>"),
// else the mirror group for a plain Docker Hub name ("library/alpine",
// "alpine") when mirror mode is on. ok is false when the name is neither.
func (s *Service) PullGroup(name string) (group string, ok bool) {
	repo, err := oci.ParseRepository(name)
	if err != nil {
		return "", false
	}
	group, _, ok = s.proxyPull(repo)
	return group, ok
}

// proxyPull returns the group a parsed name pulls from (as PullGroup) and
// the upstream image it asks for ("library/alpine" for "alpine"); ok is
// false for a virtual registry name, and for a plain name without mirror
// mode.
func (s *Service) proxyPull(repo oci.Repository) (group, image string, ok bool) {
	switch repo.Kind {
	case oci.ProxyName:
		return repo.Proxy.Group, repo.Proxy.Upstream(), true
	case oci.PlainName:
		return s.opts.MirrorGroup, oci.NormalizeImage(repo.Name), s.opts.MirrorGroup != ""
	}
	return "", "", false
}

// proxyTarget authorises c's pull from the dependency proxy of group and
// returns its target for image, reusing the decision made under the same
// auth generation.
func (s *Service) proxyTarget(ctx context.Context, c Caller, group, image string) (Target, error) {
	t, ok := Target{}, false
	if c.gen.ok {
		t, ok = s.decided.target(c.gen.n, c.key, group)
	}
	if !ok {
		var err error
		if t, err = s.loadProxyTarget(ctx, c.Principal, group); err != nil {
			return Target{}, err
		}
		if c.gen.ok {
			s.decided.rememberTarget(c.gen.n, c.key, group, t)
		}
	}
	t.Image = image
	return t, nil
}

// loadProxyTarget authorises p's pull from group and reads its settings;
// the target has no image.
func (s *Service) loadProxyTarget(ctx context.Context, p Principal, group string) (Target, error) {
	g, err := s.AuthorizePull(ctx, p, group)
	if err != nil {
		return Target{}, err
	}
	ps, err := s.accounts.ProxySetting(ctx, g.ID)
	if err != nil {
		return Target{}, fmt.Errorf("read dependency proxy setting of %s: %w", g.Path, err)
	}
	if !ps.Enabled {
		return Target{}, fmt.Errorf("%w: the dependency proxy is disabled for group %s; an owner of the group can enable it with `dproxy group enable %s`", oci.ErrDenied, g.Path, g.Path)
	}
	creds, err := s.upstreamCredentials(ctx, p, ps)
	if err != nil {
		return Target{}, err
	}
	return Target{GroupID: g.ID, Group: g.Path, Creds: creds, FreshnessWindow: ps.FreshnessWindow}, nil
}

// upstreamCredentials are what a pull by p from a group with setting ps
// sends upstream: the group's Docker Hub credentials, else the instance
// default. An anonymous principal goes upstream anonymously unless an
// instance admin let the group's anonymous pulls use credentials.
func (s *Service) upstreamCredentials(ctx context.Context, p Principal, ps store.ProxySetting) (upstream.Credentials, error) {
	if p.Anonymous && !ps.AnonymousPullsUseCredentials {
		return upstream.Credentials{}, nil
	}
	if ps.Identity != "" {
		return upstream.Credentials{Username: ps.Identity, Password: ps.Secret}, nil
	}
	def, err := s.accounts.DefaultHubCredentials(ctx)
	if err != nil {
		return upstream.Credentials{}, fmt.Errorf("read default Docker Hub credentials: %w", err)
	}
	return upstream.InstanceDefault(def.Identity, def.Secret), nil
}

// grantsPull reports whether a token's access list grants pull on name.
func grantsPull(access []Access, name string) bool {
	for _, a := range access {
		if a.Type == "repository" && a.Name == name {
			for _, act := range a.Actions {
				if act == "pull" || act == "*" {
					return true
				}
			}
		}
	}
	return false
}

// InsufficientScopeError refuses a valid registry token that was minted
// for other repositories; the client should ask for one with scope
// repository:<Repository>:pull. It wraps oci.ErrUnauthorized.
type InsufficientScopeError struct{ Repository string }

func (e *InsufficientScopeError) Error() string {
	return fmt.Sprintf("%s: the token does not grant pull access to %s; request a token with scope repository:%s:pull",
		oci.ErrUnauthorized, e.Repository, e.Repository)
}

func (e *InsufficientScopeError) Unwrap() error { return oci.ErrUnauthorized }

// IsInsufficientScope reports whether err is an *InsufficientScopeError.
func IsInsufficientScope(err error) bool {
	var e *InsufficientScopeError
	return errors.As(err, &e)
}
