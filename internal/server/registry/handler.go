// Package registry serves the OCI distribution pull API of dproxy's
// dependency proxy and virtual registries, and the Docker v2 token
// endpoint. A request is parsed once, authenticated, and sent where auth
// says (auth.Service.PullTarget) through the cache; handlers return
// errors, and one adapter renders every failure as an OCI error envelope.
//
// It depends on small interfaces that auth and cache satisfy, and must
// not import store, upstream, server, graphql, commands or tui.
package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/dproxy/dproxy/internal/auth"
	"github.com/dproxy/dproxy/internal/cache"
	"github.com/dproxy/dproxy/internal/metrics"
	"github.com/dproxy/dproxy/internal/oci"
)

// Service is the token service name clients are challenged with.
const Service = "dependency_proxy"

// CacheHeader reports how a response was served: hit, miss or stale.
const CacheHeader = "X-Dproxy-Cache"

// authenticator signs callers in and decides where their pulls go.
// Sign-ins carry the client's address, for throttling.
type authenticator interface {
	// BasicCaller and BearerCaller authenticate a registry request;
	// PullTarget authorises its pull and says where it goes.
	BasicCaller(ctx context.Context, from netip.Addr, username, secret string) (auth.Caller, error)
	BearerCaller(ctx context.Context, token string) (auth.Caller, error)
	PullTarget(ctx context.Context, c auth.Caller, repo oci.Repository) (auth.Target, error)
	// MirrorRepository resolves a mirror request's plain name with the
	// registry its ?ns= names.
	MirrorRepository(repo oci.Repository, ns string) (oci.Repository, error)

	// The token endpoint's.
	SignIn(ctx context.Context, from netip.Addr, username, secret string) (auth.Principal, error)
	PrincipalFromRefreshToken(ctx context.Context, token string) (auth.Principal, error)
	GrantedActions(ctx context.Context, p auth.Principal, scope string) []string
}

// issuer mints the registry's JWTs.
type issuer interface {
	Mint(p auth.Principal, access []auth.Access) (token string, issuedAt, expiresAt time.Time, err error)
	MintRefresh(p auth.Principal) (string, error)
}

// puller serves a group's dependency proxy.
type puller interface {
	Manifest(ctx context.Context, t cache.Target, ref oci.Reference) (cache.Manifest, error)
	Blob(ctx context.Context, t cache.Target, d oci.Digest) (*cache.Blob, error)
	StatBlob(ctx context.Context, t cache.Target, d oci.Digest) (int64, error)
	Tags(ctx context.Context, t cache.Target) (cache.TagList, error)
	Referrers(ctx context.Context, t cache.Target, d oci.Digest) (cache.ReferrerList, error)
}

// virtualPuller serves container virtual registries.
type virtualPuller interface {
	Manifest(ctx context.Context, registryID int64, image string, ref oci.Reference) (cache.Manifest, error)
	Blob(ctx context.Context, registryID int64, image string, d oci.Digest) (*cache.Blob, error)
	StatBlob(ctx context.Context, registryID int64, image string, d oci.Digest) (int64, error)
	Tags(ctx context.Context, registryID int64, image string) (cache.TagList, error)
	Referrers(ctx context.Context, registryID int64, image string, d oci.Digest) (cache.ReferrerList, error)
}

// Options configure a Handler.
type Options struct {
	// ExternalURL is the URL clients reach this server at; the token realm
	// is ExternalURL + "/jwt/auth".
	ExternalURL string
	// TrustedProxies are the peers whose X-Forwarded-For names the client
	// (auth.ClientAddr); with none, the peer is the client.
	TrustedProxies []netip.Prefix
	Logger         *slog.Logger
	Metrics        *metrics.Metrics
}

// Handler serves /v2/ and /jwt/auth.
type Handler struct {
	auth    authenticator
	issuer  issuer
	cache   puller
	virtual virtualPuller
	realm   string
	proxies []netip.Prefix
	log     *slog.Logger
	metrics *metrics.Metrics
}

// New returns a Handler that authenticates with a, mints tokens with iss,
// and serves dependency proxies from c and virtual registries from v.
func New(a authenticator, iss issuer, c puller, v virtualPuller, opts Options) *Handler {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Handler{
		auth: a, issuer: iss, cache: c, virtual: v,
		realm:   strings.TrimSuffix(opts.ExternalURL, "/") + "/jwt/auth",
		proxies: opts.TrustedProxies,
		log:     opts.Logger,
		metrics: opts.Metrics,
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

// serveV2 routes a /v2/ request: the path is checked and split, the
// repository name parsed once, the caller authenticated, and the pull
// authorised and resolved by auth before the cache serves it.
func (h *Handler) serveV2(w http.ResponseWriter, r *http.Request) error {
	if r.URL.Path == "/v2/" || r.URL.Path == "/v2" {
		if _, err := h.authenticate(r); err != nil {
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
	repo, err := oci.ParseRepository(rt.name)
	if err != nil {
		// An invalid name is reported only to a client that signed in;
		// anyone else is asked to log in.
		if _, aerr := h.authenticate(r); aerr != nil {
			return aerr
		}
		return err
	}
	if repo, err = h.mirrorRepository(r, repo); err != nil {
		return err
	}
	caller, err := h.authenticate(r)
	if err != nil {
		h.challenge(w, repo.Name, "")
		return err
	}
	if rt.kind == kindUploads || r.Method != http.MethodGet && r.Method != http.MethodHead {
		return fmt.Errorf("%w: %s on %s; dproxy is a pull-through cache and serves only GET and HEAD of manifests, blobs, tag lists and referrers", oci.ErrUnsupported, r.Method, rt.kind)
	}
	var ref oci.Reference
	var pg page
	switch rt.kind {
	case kindManifests:
		ref, err = manifestReference(rt.arg)
	case kindBlobs, kindReferrers:
		ref.Digest, err = oci.ParseDigest(rt.arg)
	case kindTags:
		pg, err = parsePage(r.URL.Query())
	}
	if err != nil {
		return err
	}
	t, err := h.auth.PullTarget(r.Context(), caller, repo)
	if err != nil {
		if auth.IsInsufficientScope(err) {
			// A valid token for another repository: ask the client for a new one.
			h.challenge(w, repo.Name, "insufficient_scope")
		}
		return err
	}
	src := h.source(t)
	switch rt.kind {
	case kindManifests:
		return h.manifest(w, r, src, ref, h.pullOf(r, caller, t))
	case kindTags:
		return h.tags(w, r, src, rt.name, pg)
	case kindReferrers:
		return h.referrers(w, r, src, ref.Digest)
	}
	return h.blob(w, r, src, ref.Digest, h.pullOf(r, caller, t))
}

// pullOf starts the activity record of a pull; the handler adds the
// result. Nothing is recorded without metrics.
func (h *Handler) pullOf(r *http.Request, c auth.Caller, t auth.Target) *metrics.Pull {
	if h.metrics == nil {
		return nil
	}
	return &metrics.Pull{At: time.Now(), Image: t.Image, GroupID: t.GroupID, Group: t.Group,
		VirtualRegistryID: t.VirtualRegistryID, Client: h.clientAddr(r), Principal: c.Name()}
}

// recordPull adds a finished pull to the recent activity.
func (h *Handler) recordPull(p *metrics.Pull, kind, reference, result string) {
	if p == nil {
		return
	}
	p.Kind, p.Reference, p.Result = kind, reference, result
	h.metrics.Pull(*p)
}

// source is the cache that serves target t.
func (h *Handler) source(t auth.Target) source {
	if t.Virtual() {
		return virtualSource{v: h.virtual, id: t.VirtualRegistryID, image: t.Image}
	}
	return proxySource{c: h.cache, t: cache.Target{GroupID: t.GroupID, Image: t.Image, Creds: t.Creds, FreshnessWindow: t.FreshnessWindow, BlobRefs: t.BlobRefs, BlobRefsKnown: t.BlobRefsKnown}, group: t.Group}
}

// mirrorRepository resolves a plain name (mirror mode) with the registry
// the request names: containerd's hosts.toml sends ?ns=<registry> with
// every request, regctl's mirror setting too. The query is parsed whole:
// one that does not parse ("ns=quay.io;x=1", which url.Values would drop
// silently, leaving no ns) is refused, not read as Docker Hub, and so are
// two different ns values. Other names ignore ns.
func (h *Handler) mirrorRepository(r *http.Request, repo oci.Repository) (oci.Repository, error) {
	if repo.Kind != oci.PlainName {
		return repo, nil
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return oci.Repository{}, fmt.Errorf("%w: the query %q does not parse (%v); a mirror request names its registry with ?ns=<host> alone", oci.ErrNameUnknown, clipText(r.URL.RawQuery), err)
	}
	ns := q["ns"]
	for _, v := range ns[min(len(ns), 1):] {
		if v != ns[0] {
			return oci.Repository{}, fmt.Errorf("%w: the query names the registries %q and %q; a mirror request names one with ?ns=<host>", oci.ErrNameUnknown, clipText(ns[0]), clipText(v))
		}
	}
	if len(ns) == 0 {
		return h.auth.MirrorRepository(repo, "")
	}
	return h.auth.MirrorRepository(repo, ns[0])
}

// clientAddr is the address of the client behind r.
func (h *Handler) clientAddr(r *http.Request) netip.Addr {
	return auth.ClientAddr(r.RemoteAddr, r.Header.Values("X-Forwarded-For"), h.proxies)
}

// authenticate loads the caller of a registry request: a registry token
// (Bearer) of the token flow, or Basic credentials with a token as the
// password, accepted on every request for daemons that can only send a
// fixed header (containerd's hosts.toml).
func (h *Handler) authenticate(r *http.Request) (auth.Caller, error) {
	if user, secret, ok := r.BasicAuth(); ok {
		return h.auth.BasicCaller(r.Context(), h.clientAddr(r), user, secret)
	}
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || raw == "" {
		return auth.Caller{}, fmt.Errorf("%w: log in first, for example `docker login %s` with a username and a personal, group or deploy token", oci.ErrUnauthorized, hostOf(h.realm))
	}
	return h.auth.BearerCaller(r.Context(), strings.TrimSpace(raw))
}

func hostOf(u string) string {
	u = strings.TrimPrefix(strings.TrimPrefix(u, "https://"), "http://")
	host, _, _ := strings.Cut(u, "/")
	return host
}
