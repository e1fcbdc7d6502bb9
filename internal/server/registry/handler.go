// Package registry serves the OCI distribution pull API of dproxy's
// dependency proxy and the Docker v2 token endpoint. Handlers return errors;
// one adapter renders every failure as an OCI error envelope.
//
// It depends on small interfaces that auth, cache and store satisfy, and
// must not import server, graphql, commands or tui.
package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/dproxy/dproxy/internal/auth"
	"github.com/dproxy/dproxy/internal/cache"
	"github.com/dproxy/dproxy/internal/metrics"
	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/store"
	"github.com/dproxy/dproxy/internal/upstream"
)

// Service is the token service name clients are challenged with.
const Service = "dependency_proxy"

// CacheHeader reports how a response was served: hit, miss or stale.
const CacheHeader = "X-Dproxy-Cache"

// authenticator checks credentials and permissions. Sign-ins carry the
// client's address, for throttling.
type authenticator interface {
	SignIn(ctx context.Context, from netip.Addr, username, secret string) (auth.Principal, error)
	SignInToken(ctx context.Context, from netip.Addr, username, secret string) (auth.Principal, error)
	CheckSignIn(username string, from netip.Addr) error
	PrincipalFromClaims(ctx context.Context, c auth.Claims) (auth.Principal, error)
	AuthorizePull(ctx context.Context, p auth.Principal, groupPath string) (store.Group, error)
	AuthorizeVirtualPull(ctx context.Context, p auth.Principal, id int64) (store.VirtualRegistry, error)
	GrantedActions(ctx context.Context, p auth.Principal, scope string) []string
}

// issuer mints and verifies the registry's JWTs.
type issuer interface {
	Mint(p auth.Principal, access []auth.Access) (token string, issuedAt, expiresAt time.Time, err error)
	MintRefresh(p auth.Principal) (string, error)
	Verify(token string) (auth.Claims, error)
	VerifyRefresh(token string) (auth.Claims, error)
}

// puller serves content through the cache.
type puller interface {
	Manifest(ctx context.Context, t cache.Target, ref oci.Reference) (cache.Manifest, error)
	Blob(ctx context.Context, t cache.Target, d oci.Digest) (*cache.Blob, error)
	StatBlob(ctx context.Context, t cache.Target, d oci.Digest) (int64, error)
}

// virtualPuller serves container virtual registries.
type virtualPuller interface {
	Manifest(ctx context.Context, registryID int64, image string, ref oci.Reference) (cache.Manifest, error)
	Blob(ctx context.Context, registryID int64, image string, d oci.Digest) (*cache.Blob, error)
	StatBlob(ctx context.Context, registryID int64, image string, d oci.Digest) (int64, error)
}

// settings reads a group's proxy setting, the instance defaults, and the
// auth generation: a number that changes with every committed change to
// what authorises a pull.
type settings interface {
	ProxySetting(ctx context.Context, groupID int64) (store.ProxySetting, error)
	DefaultHubCredentials(ctx context.Context) (store.HubCredentials, error)
	AuthGeneration(ctx context.Context) (int64, error)
}

// Options configure a Handler.
type Options struct {
	// ExternalURL is the URL clients reach this server at; the token realm
	// is ExternalURL + "/jwt/auth".
	ExternalURL string
	// MirrorGroup turns mirror mode on: plain Docker Hub repository names
	// ("library/alpine", "alpine", "bitnami/redis") are served through this
	// group's dependency proxy. "" turns it off.
	MirrorGroup string
	// Virtual serves /v2/virtual_registries/container/<id>/…; nil answers
	// NAME_UNKNOWN there.
	Virtual virtualPuller
	// Now is the clock remembered principals expire by; it must be the
	// clock auth judges token expiry by. Default time.Now.
	Now func() time.Time
	// TrustedProxies are the peers whose X-Forwarded-For names the client
	// (auth.ClientAddr); with none, the peer is the client.
	TrustedProxies []netip.Prefix
	Logger         *slog.Logger
	Metrics        *metrics.Metrics
}

// Handler serves /v2/ and /jwt/auth.
type Handler struct {
	auth     authenticator
	issuer   issuer
	cache    puller
	settings settings
	realm    string
	mirror   string
	virtual  virtualPuller
	proxies  []netip.Prefix
	log      *slog.Logger
	metrics  *metrics.Metrics
	now      func() time.Time
	decided  decisions
}

// New returns a Handler.
func New(a authenticator, iss issuer, c puller, s settings, opts Options) *Handler {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Handler{
		auth: a, issuer: iss, cache: c, settings: s,
		realm:   strings.TrimSuffix(opts.ExternalURL, "/") + "/jwt/auth",
		mirror:  opts.MirrorGroup,
		virtual: opts.Virtual,
		proxies: opts.TrustedProxies,
		log:     opts.Logger,
		metrics: opts.Metrics,
		now:     opts.Now,
	}
}

// V2 serves every /v2/ path.
func (h *Handler) V2(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Docker-Distribution-Api-Version", "registry/2.0")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if err := h.serveV2(w, r); err != nil {
		if errors.Is(err, oci.ErrUnauthorized) && w.Header().Get("WWW-Authenticate") == "" {
			h.challenge(w, "", "")
		}
		writeError(w, r, h.log, err)
	}
}

// Token serves the Docker v2 token endpoint.
func (h *Handler) Token(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if err := h.token(w, r); err != nil {
		writeError(w, r, h.log, err)
	}
}

// challenge sets the Bearer challenge of a 401, with the scope the client
// should ask for when the repository is known.
func (h *Handler) challenge(w http.ResponseWriter, name, errCode string) {
	c := fmt.Sprintf("Bearer realm=%q,service=%q", h.realm, Service)
	if name != "" {
		c += fmt.Sprintf(",scope=%q", "repository:"+name+":pull")
	}
	if errCode != "" {
		c += fmt.Sprintf(",error=%q", errCode)
	}
	w.Header().Set("WWW-Authenticate", c)
}

func (h *Handler) serveV2(w http.ResponseWriter, r *http.Request) error {
	if r.URL.Path == "/v2/" || r.URL.Path == "/v2" {
		if _, _, _, err := h.authenticate(r); err != nil {
			return err
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte("{}"))
		return nil
	}
	if err := checkRawPath(r.URL.RawPath, r.URL.Path); err != nil {
		return err
	}
	rt, ok := parsePath(r.URL.Path)
	if !ok {
		return fmt.Errorf("%w: %s is not a registry API path", oci.ErrNameUnknown, r.URL.Path)
	}
	if err := oci.ValidateName(rt.name); err != nil {
		if _, _, _, aerr := h.authenticate(r); aerr != nil {
			return aerr
		}
		return err
	}
	if err := h.checkNamespace(r, rt.name); err != nil {
		return err
	}
	claims, p, bearer, err := h.authenticate(r)
	if err != nil {
		h.challenge(w, rt.name, "")
		return err
	}
	if rt.kind != kindManifests && rt.kind != kindBlobs || r.Method != http.MethodGet && r.Method != http.MethodHead {
		return fmt.Errorf("%w: %s on %s; dproxy is a pull-through cache and serves only GET and HEAD of manifests and blobs", oci.ErrUnsupported, r.Method, rt.kind)
	}
	var ref oci.Reference
	if rt.kind == kindManifests {
		ref, err = oci.ParseReference(rt.arg)
	} else {
		ref.Digest, err = oci.ParseDigest(rt.arg)
	}
	if err != nil {
		return err
	}
	src, err := h.source(r.Context(), p, rt.name)
	if err != nil {
		return err
	}
	if bearer && !allows(claims, rt.name) {
		// A valid token for another repository: ask the client for a new one.
		h.challenge(w, rt.name, "insufficient_scope")
		return fmt.Errorf("%w: the token does not grant pull access to %s; request a token with scope repository:%s:pull", oci.ErrUnauthorized, rt.name, rt.name)
	}
	if rt.kind == kindManifests {
		return h.manifest(w, r, src, ref)
	}
	return h.blob(w, r, src, ref.Digest)
}

// source authorises a pull of repository name and says where it is served
// from: a container virtual registry, or a group's dependency proxy.
func (h *Handler) source(ctx context.Context, p principal, name string) (source, error) {
	if vr, ok, err := oci.ParseVirtualRepository(name); ok {
		if err != nil {
			return nil, err
		}
		if h.virtual == nil {
			return nil, fmt.Errorf("%w: this server has no virtual registries", oci.ErrNameUnknown)
		}
		if _, err := h.auth.AuthorizeVirtualPull(ctx, p.Principal, vr.RegistryID); err != nil {
			return nil, err
		}
		return virtualSource{v: h.virtual, id: vr.RegistryID, image: vr.Image}, nil
	}
	repo, err := h.pullRepository(name)
	if err != nil {
		return nil, err
	}
	t, err := h.target(ctx, p, repo)
	if err != nil {
		return nil, err
	}
	return proxySource{c: h.cache, t: t}, nil
}

// dockerHub is the only registry namespace mirror mode serves.
const dockerHub = "docker.io"

// pullRepository resolves a repository name to the group and image it
// pulls: a dependency proxy name as it says (such names always win), else,
// in mirror mode, a plain Docker Hub name through the mirror group.
func (h *Handler) pullRepository(name string) (oci.ProxyRepository, error) {
	repo, isProxy, err := oci.ParseProxyRepository(name)
	switch {
	case isProxy:
		return repo, err
	case h.mirror == "":
		return oci.ProxyRepository{}, fmt.Errorf("%w: %s; pull through <group>/dependency_proxy/containers/<image> (this server has no mirror group for plain Docker Hub names)", oci.ErrNameUnknown, name)
	}
	return oci.ProxyRepository{Group: h.mirror, Image: name}, nil
}

// checkNamespace refuses a mirror request for another registry than Docker
// Hub: containerd names the registry a hosts.toml mirror stands in for with
// ?ns=<registry>, and the mirror group serves Docker Hub content only.
// Dependency proxy names ignore ns.
func (h *Handler) checkNamespace(r *http.Request, name string) error {
	if _, isProxy, _ := oci.ParseProxyRepository(name); isProxy || h.mirror == "" {
		return nil
	}
	for _, ns := range r.URL.Query()["ns"] {
		if ns != dockerHub {
			return fmt.Errorf("%w: this server mirrors only %s, not %q; remove it from the hosts.toml of that registry, or pull through <group>/dependency_proxy/containers/<image>", oci.ErrNameUnknown, dockerHub, clipText(ns))
		}
	}
	return nil
}

// generation is the store's auth generation, read once per request when
// its credentials are checked; ok is false when it could not be read, and
// then no pull decision is reused or remembered.
type generation struct {
	n  int64
	ok bool
}

func (h *Handler) generation(ctx context.Context) generation {
	n, err := h.settings.AuthGeneration(ctx)
	return generation{n: n, ok: err == nil}
}

// principal is an authenticated principal, the key its decisions are
// remembered under, and the auth generation they hold for.
type principal struct {
	auth.Principal
	key string
	gen generation
}

// clientAddr is the address of the client behind r.
func (h *Handler) clientAddr(r *http.Request) netip.Addr {
	return auth.ClientAddr(r.RemoteAddr, r.Header.Values("X-Forwarded-For"), h.proxies)
}

// authenticate verifies the request's Bearer token and loads its principal
// as it is now, so a deleted or blocked user, a changed password or a
// revoked token stops working at once (a remembered principal holds only
// while nothing of the sort changed).
//
// Besides the registry token (Bearer) of the token flow, Basic credentials
// with a token as the password are accepted on every request, for daemons
// that can only send a fixed header (containerd's hosts.toml); such a
// request has no access list, and bearer is false. They are a sign-in:
// throttled, remembered or not, and counted when they fail.
func (h *Handler) authenticate(r *http.Request) (claims auth.Claims, p principal, bearer bool, err error) {
	ctx := r.Context()
	if user, secret, ok := r.BasicAuth(); ok {
		from := h.clientAddr(r)
		if err := h.auth.CheckSignIn(user, from); err != nil {
			return auth.Claims{}, principal{}, false, err
		}
		p, err = h.principal(ctx, basicKey(user, secret), basicTTL, func() (auth.Principal, error) {
			return h.auth.SignInToken(ctx, from, user, secret)
		})
		return auth.Claims{}, p, false, err
	}
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || raw == "" {
		return auth.Claims{}, principal{}, false, fmt.Errorf("%w: log in first, for example `docker login %s` with a username and a personal, group or deploy token", oci.ErrUnauthorized, hostOf(h.realm))
	}
	claims, err = h.issuer.Verify(strings.TrimSpace(raw))
	if err != nil {
		return auth.Claims{}, principal{}, false, err
	}
	p, err = h.principal(ctx, bearerKey(claims), bearerTTL, func() (auth.Principal, error) {
		return h.auth.PrincipalFromClaims(ctx, claims)
	})
	if err != nil {
		return auth.Claims{}, principal{}, false, err
	}
	return claims, p, true, nil
}

// principal reads the auth generation and returns the principal
// remembered for key under it, or loads it and remembers it for at most ttl.
func (h *Handler) principal(ctx context.Context, key string, ttl time.Duration, load func() (auth.Principal, error)) (principal, error) {
	p := principal{key: key, gen: h.generation(ctx)}
	now := h.now()
	if p.gen.ok {
		if ap, ok := h.decided.principal(p.gen.n, key, now); ok {
			p.Principal = ap
			return p, nil
		}
	}
	ap, err := load()
	if err != nil {
		return principal{}, err
	}
	if p.gen.ok {
		h.decided.rememberPrincipal(p.gen.n, key, ap, validUntil(ap, now, ttl))
	}
	p.Principal = ap
	return p, nil
}

// target authorises a pull from a group's dependency proxy and says where
// it goes, reusing the decision made under the same auth generation.
func (h *Handler) target(ctx context.Context, p principal, repo oci.ProxyRepository) (cache.Target, error) {
	t, ok := cache.Target{}, false
	if p.gen.ok {
		t, ok = h.decided.target(p.gen.n, p.key, repo.Group)
	}
	if !ok {
		var err error
		if t, err = h.loadTarget(ctx, p.Principal, repo.Group); err != nil {
			return cache.Target{}, err
		}
		if p.gen.ok {
			h.decided.rememberTarget(p.gen.n, p.key, repo.Group, t)
		}
	}
	t.Image = repo.Upstream()
	return t, nil
}

// loadTarget authorises a pull from group and reads its settings; the
// target has no image.
func (h *Handler) loadTarget(ctx context.Context, p auth.Principal, group string) (cache.Target, error) {
	g, err := h.auth.AuthorizePull(ctx, p, group)
	if err != nil {
		return cache.Target{}, err
	}
	s, err := h.settings.ProxySetting(ctx, g.ID)
	if err != nil {
		return cache.Target{}, fmt.Errorf("read dependency proxy setting of %s: %w", g.Path, err)
	}
	if !s.Enabled {
		return cache.Target{}, fmt.Errorf("%w: the dependency proxy is disabled for group %s; an owner of the group can enable it with `dproxy group enable %s`", oci.ErrDenied, g.Path, g.Path)
	}
	creds, err := h.upstreamCredentials(ctx, p, s)
	if err != nil {
		return cache.Target{}, err
	}
	return cache.Target{GroupID: g.ID, Creds: creds, FreshnessWindow: s.FreshnessWindow}, nil
}

// upstreamCredentials are what a pull by p from a group with setting s
// sends upstream: the group's Docker Hub credentials, else the instance
// default. An anonymous principal goes upstream anonymously unless an
// instance admin let the group's anonymous pulls use credentials.
func (h *Handler) upstreamCredentials(ctx context.Context, p auth.Principal, s store.ProxySetting) (upstream.Credentials, error) {
	if p.Anonymous && !s.AnonymousPullsUseCredentials {
		return upstream.Credentials{}, nil
	}
	if s.Identity != "" {
		return upstream.Credentials{Username: s.Identity, Password: s.Secret}, nil
	}
	def, err := h.settings.DefaultHubCredentials(ctx)
	if err != nil {
		return upstream.Credentials{}, fmt.Errorf("read default Docker Hub credentials: %w", err)
	}
	return upstream.InstanceDefault(def.Identity, def.Secret), nil
}

// allows reports whether the token's access list grants pull on name.
func allows(c auth.Claims, name string) bool {
	for _, a := range c.Access {
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

func hostOf(u string) string {
	u = strings.TrimPrefix(strings.TrimPrefix(u, "https://"), "http://")
	host, _, _ := strings.Cut(u, "/")
	return host
}
