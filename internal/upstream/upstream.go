// Package upstream owns the client of a remote OCI registry (Docker Hub by
// default): the Docker v2 token flow with a token cache, retries with
// backoff, a circuit breaker that fails requests at once while the
// upstream is failing (breaker.go), CDN redirects that never carry our
// credentials to another host, rate-limit headers, and the mapping of
// upstream failures to oci sentinel errors.
//
// It imports only oci, metrics and netpolicy among dproxy packages; it
// knows nothing of storage, caching policy or the server.
package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/dproxy/dproxy/internal/metrics"
	"github.com/dproxy/dproxy/internal/netpolicy"
	"github.com/dproxy/dproxy/internal/oci"
)

// Request kinds, as recorded in metrics.
const (
	kindManifest = "manifest"
	kindBlob     = "blob"
	kindToken    = "token"
)

// Options configures a Client. Zero values take the defaults.
type Options struct {
	URL                   string            // base URL, e.g. "https://registry-1.docker.io"
	Transport             http.RoundTripper // default: an *http.Transport with the timeouts below
	ConnectTimeout        time.Duration     // default 10s
	ResponseHeaderTimeout time.Duration     // default 30s
	MaxManifestSize       int64             // default 10 MiB
	// Retries of a request after a network error or a 500/502/503/504
	// (not after a timeout or a 429), with exponential backoff from 100ms
	// (at most 5s).
	// Default 3; negative = none.
	Retries           int
	TokenExpiryMargin time.Duration // default 30s: tokens are dropped this long before they expire
	UserAgent         string
	// RateLimitReserve is the remaining pull count at or below which a
	// warning is logged (crossing 20 % of the limit is logged too).
	// Default 10; negative = no reserve (then only 20 % and exhaustion
	// are logged).
	RateLimitReserve int
	// TooManyRequestsBackoff is how long requests with a credential are not
	// sent after the upstream answered 429 without a Retry-After. Default 60s.
	TooManyRequestsBackoff time.Duration
	// BreakerBackoff is how long requests fail at once after the upstream
	// failed (no answer, a timeout, 500/502/503/504, its token service
	// failing) before a probe is sent; each failed probe doubles it, up to
	// 30s or BreakerBackoff if longer. Default 2s; negative = no breaker.
	BreakerBackoff time.Duration
	// Now is the clock of back-offs, rate-limit times and token lifetimes.
	// Default time.Now.
	Now     func() time.Time
	Logger  *slog.Logger     // nil discards
	Metrics *metrics.Metrics // nil records nothing
	// Policy, when set, checks every connection of the default transport
	// (to URL, its redirects and its token realms) against the upstream
	// address policy when it is made; a refused one is never opened.
	// nil checks nothing: for callers whose every address the operator
	// chose.
	Policy *netpolicy.Policy
	// Trusted marks URL as the operator's own (--upstream): connections
	// to its host:port skip the policy. Redirects and token realms on any
	// other host:port are still checked.
	Trusted bool
}

// Client talks to one upstream registry. It is safe for concurrent use.
type Client struct {
	opts Options
	base *url.URL
	host string
	hc   *http.Client
	log  *slog.Logger

	tokenGroup singleflight.Group

	mu             sync.Mutex
	challenge      challenge
	challengeKnown bool
	tokens         map[string]cachedToken // tokenKey → token
	rateLimits     map[string]RateLimit   // Credentials.ID → last seen
	blocked        map[string]time.Time   // Credentials.ID → no request before (after a 429)

	breaker breaker
	wg      sync.WaitGroup // probes in progress
}

// ParseURL checks a registry's base URL: http(s)://host[:port][/path]
// without credentials, query or fragment. The path loses trailing slashes.
func ParseURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("parse upstream url %q: %w", s, err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("upstream url %q must be http(s)://host[:port][/path] without credentials, query or fragment", s)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	return u, nil
}

// New returns a client of the registry at opts.URL.
func New(opts Options) (*Client, error) {
	u, err := ParseURL(opts.URL)
	if err != nil {
		return nil, err
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 10 * time.Second
	}
	if opts.ResponseHeaderTimeout <= 0 {
		opts.ResponseHeaderTimeout = 30 * time.Second
	}
	if opts.MaxManifestSize <= 0 {
		opts.MaxManifestSize = 10 << 20
	}
	if opts.Retries == 0 {
		opts.Retries = 3
	}
	opts.Retries = max(opts.Retries, 0)
	if opts.TokenExpiryMargin <= 0 {
		opts.TokenExpiryMargin = 30 * time.Second
	}
	if opts.RateLimitReserve == 0 {
		opts.RateLimitReserve = 10
	}
	if opts.TooManyRequestsBackoff <= 0 {
		opts.TooManyRequestsBackoff = time.Minute
	}
	if opts.BreakerBackoff == 0 {
		opts.BreakerBackoff = 2 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tr := opts.Transport
	if tr == nil {
		proxy := http.ProxyFromEnvironment
		dial := (&net.Dialer{Timeout: opts.ConnectTimeout, KeepAlive: 30 * time.Second}).DialContext
		if opts.Policy != nil {
			trusted := ""
			if opts.Trusted {
				trusted = netpolicy.HostPort(u)
			}
			d := opts.Policy.Dialer(opts.ConnectTimeout, 30*time.Second, trusted)
			proxy, dial = d.Proxy(proxy), d.DialContext
		}
		tr = &http.Transport{
			Proxy:                 proxy,
			DialContext:           dial,
			TLSHandshakeTimeout:   opts.ConnectTimeout,
			ResponseHeaderTimeout: opts.ResponseHeaderTimeout,
			ExpectContinueTimeout: time.Second,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          100,
			MaxIdleConnsPerHost:   32,
			IdleConnTimeout:       90 * time.Second,
		}
	}
	c := &Client{
		opts:       opts,
		base:       u,
		host:       u.Host,
		log:        log,
		tokens:     map[string]cachedToken{},
		rateLimits: map[string]RateLimit{},
		blocked:    map[string]time.Time{},
	}
	c.hc = &http.Client{Transport: tr, CheckRedirect: checkRedirect}
	return c, nil
}

// checkRedirect follows up to 10 redirects and never sends our
// Authorization header to a host:port other than the one first asked (a CDN
// gets a signed URL, not our token).
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	if req.URL.Host != via[0].URL.Host {
		req.Header.Del("Authorization")
	}
	return nil
}

// Host returns the upstream's host[:port].
func (c *Client) Host() string { return c.host }

// Descriptor describes upstream content from response headers.
type Descriptor struct {
	Digest    oci.Digest
	MediaType string
	Size      int64 // -1 when unknown
	ETag      string
}

// Manifest is a manifest as the upstream sent it.
type Manifest struct {
	Descriptor
	Content []byte
}

func (c *Client) op(name, kind, repo, ref string) op {
	return op{name: name, kind: kind, host: c.host, repo: repo, ref: ref}
}

// HeadManifest asks the upstream for the digest of repo:ref without
// downloading it (a HEAD does not count against Docker Hub's limit). If the
// upstream sends no usable Docker-Content-Digest, it GETs the manifest.
func (c *Client) HeadManifest(ctx context.Context, creds Credentials, repo string, ref oci.Reference) (Descriptor, error) {
	o := c.op("HEAD manifest", kindManifest, repo, ref.String())
	res, err := c.do(ctx, o, creds, http.MethodHead, "manifests/"+ref.String(), oci.AcceptManifests)
	if err != nil {
		return Descriptor{}, err
	}
	res.Body.Close()
	d, err := oci.ParseDigest(res.Header.Get("Docker-Content-Digest"))
	if err != nil {
		m, err := c.GetManifest(ctx, creds, repo, ref)
		return m.Descriptor, err
	}
	if ref.IsDigest() && d != ref.Digest {
		return Descriptor{}, o.error(oci.ErrUnavailable, res.StatusCode,
			fmt.Sprintf("manifest digest %s does not match requested %s for %s", d, ref.Digest, repo), nil)
	}
	return Descriptor{Digest: d, MediaType: headerMediaType(res.Header.Get("Content-Type")),
		Size: contentLength(res), ETag: res.Header.Get("ETag")}, nil
}

// GetManifest downloads repo:ref and checks its digest against ref (when a
// digest) and the Docker-Content-Digest header (when present), and that it
// is a manifest: JSON of a known manifest or index media type (see
// oci.ManifestMediaType) within MaxManifestSize. Anything else is an error
// wrapping oci.ErrManifestInvalid that says what was wrong.
func (c *Client) GetManifest(ctx context.Context, creds Credentials, repo string, ref oci.Reference) (Manifest, error) {
	o := c.op("GET manifest", kindManifest, repo, ref.String())
	res, err := c.do(ctx, o, creds, http.MethodGet, "manifests/"+ref.String(), oci.AcceptManifests)
	if err != nil {
		return Manifest{}, err
	}
	defer res.Body.Close()
	limit := c.opts.MaxManifestSize
	tooBig := func() error {
		return o.error(oci.ErrManifestInvalid, res.StatusCode,
			fmt.Sprintf("manifest is larger than the limit of %d bytes", limit), nil)
	}
	if res.ContentLength > limit {
		return Manifest{}, tooBig()
	}
	b, err := io.ReadAll(io.LimitReader(res.Body, limit+1))
	if err != nil {
		e := o.transportError(err)
		e.Message = "read manifest body"
		return Manifest{}, e
	}
	if int64(len(b)) > limit {
		return Manifest{}, tooBig()
	}
	d := oci.FromBytes(b)
	if ref.IsDigest() && d != ref.Digest {
		return Manifest{}, o.error(oci.ErrUnavailable, res.StatusCode,
			fmt.Sprintf("manifest digest %s does not match requested %s for %s", d, ref.Digest, repo), nil)
	}
	if h := res.Header.Get("Docker-Content-Digest"); h != "" && h != string(d) {
		return Manifest{}, o.error(oci.ErrUnavailable, res.StatusCode,
			fmt.Sprintf("manifest digest %s does not match Docker-Content-Digest %s for %s", d, h, repo), nil)
	}
	mt, err := oci.ManifestMediaType(res.Header.Get("Content-Type"), b)
	if err != nil {
		return Manifest{}, o.error(nil, res.StatusCode, "", err)
	}
	return Manifest{
		Descriptor: Descriptor{Digest: d, MediaType: mt, Size: int64(len(b)), ETag: res.Header.Get("ETag")},
		Content:    b,
	}, nil
}

// GetBlob opens blob d of repo, following redirects. It returns the body and
// its length (-1 if unknown); the caller verifies the digest and closes the
// body. ctx ends the download; nothing else limits its duration.
func (c *Client) GetBlob(ctx context.Context, creds Credentials, repo string, d oci.Digest) (io.ReadCloser, int64, error) {
	o := c.op("GET blob", kindBlob, repo, d.String())
	res, err := c.do(ctx, o, creds, http.MethodGet, "blobs/"+d.String(), "")
	if err != nil {
		return nil, 0, err
	}
	if h := res.Header.Get("Docker-Content-Digest"); h != "" && h != string(d) {
		res.Body.Close()
		return nil, 0, o.error(oci.ErrUnavailable, res.StatusCode,
			fmt.Sprintf("blob digest header %s does not match requested %s", h, d), nil)
	}
	return res.Body, res.ContentLength, nil
}

// HeadBlob asks the upstream for the size of blob d of repo.
func (c *Client) HeadBlob(ctx context.Context, creds Credentials, repo string, d oci.Digest) (Descriptor, error) {
	o := c.op("HEAD blob", kindBlob, repo, d.String())
	res, err := c.do(ctx, o, creds, http.MethodHead, "blobs/"+d.String(), "")
	if err != nil {
		return Descriptor{}, err
	}
	res.Body.Close()
	if h := res.Header.Get("Docker-Content-Digest"); h != "" && h != string(d) {
		return Descriptor{}, o.error(oci.ErrUnavailable, res.StatusCode,
			fmt.Sprintf("blob digest header %s does not match requested %s", h, d), nil)
	}
	return Descriptor{Digest: d, MediaType: res.Header.Get("Content-Type"), Size: contentLength(res),
		ETag: res.Header.Get("ETag")}, nil
}

const maxBackoff = 5 * time.Second

// do sends a registry request, retrying transient failures (not for a
// caller WithFallback, nor while the upstream is failing). It returns a
// 2xx response or an *Error. After a 429 the credentials back off:
// requests with them fail at once with a 429 *Error until Retry-After has
// passed. While the upstream is failing (the circuit breaker is open),
// requests WithFallback fail at once with an *Error matching
// ErrCircuitOpen; others are sent once.
func (c *Client) do(ctx context.Context, o op, creds Credentials, method, path, accept string) (*http.Response, error) {
	failing, err := c.admit(ctx, o)
	if err != nil {
		return nil, err
	}
	if err := c.backingOff(o, creds); err != nil {
		return nil, err
	}
	retries := c.opts.Retries
	if failing || hasFallback(ctx) {
		retries = 0
	}
	backoff := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		res, err := c.attempt(ctx, o, creds, method, path, accept)
		if err == nil {
			c.result(nil)
			return res, nil
		}
		if e := (*Error)(nil); errors.As(err, &e) && e.Status == http.StatusTooManyRequests {
			c.backOff(ctx, creds, e.RetryAfter())
		}
		if attempt >= retries || !retryable(err) || ctx.Err() != nil {
			c.result(err)
			if failing {
				err = c.failingSince(err)
			}
			return nil, err
		}
		c.log.DebugContext(ctx, "retrying upstream request", "op", o.name, "repo", o.repo, "ref", o.ref,
			"host", c.host, "attempt", attempt+1, "backoff", backoff, "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, err
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// retryable reports whether a failed request may succeed if sent again:
// network errors other than timeouts and refused addresses, and
// 500/502/503/504.
func retryable(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Status {
	case 0:
		return e.Err != nil && !isTimeout(e.Err) && !errors.Is(e.Err, context.Canceled) && !errors.Is(e.Err, netpolicy.ErrNotAllowed)
	case http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// attempt sends one request, answering a 401 by learning the challenge (or
// dropping a cached token) and sending it once more with a fresh token. A
// fresh token refused with error="insufficient_scope" is an *Error
// matching oci.ErrNameUnknown; any other refusal one matching
// oci.ErrUnavailable.
func (c *Client) attempt(ctx context.Context, o op, creds Credentials, method, path, accept string) (*http.Response, error) {
	auth, fromCache, err := c.authorization(ctx, o, creds)
	if err != nil {
		return nil, err
	}
	for round := 0; ; round++ {
		res, err := c.send(ctx, o, creds, method, path, accept, auth)
		if err != nil {
			return nil, err
		}
		if res.StatusCode >= 200 && res.StatusCode < 300 {
			return res, nil
		}
		if res.StatusCode != http.StatusUnauthorized && res.StatusCode != http.StatusForbidden {
			return nil, c.failure(o, res)
		}
		if round == 0 && (auth == "" || fromCache) {
			learned := false
			if res.StatusCode == http.StatusUnauthorized {
				if ch, ok := parseChallenge(res.Header.Values("WWW-Authenticate")); ok {
					c.mu.Lock()
					c.challenge, c.challengeKnown = ch, true
					c.mu.Unlock()
					learned = true
				}
			}
			if fromCache || learned {
				drain(res)
				if fromCache {
					c.dropToken(creds, o.repo, auth)
				}
				if auth, fromCache, err = c.authorization(ctx, o, creds); err != nil {
					return nil, err
				}
				if auth != "" {
					continue
				}
				// An anonymous client facing a Basic challenge has nothing to send.
			}
		}
		e := c.failure(o, res)
		// A Bearer token here is fresh: the token service issued it for
		// this request (a refused cached one was replaced above). Refused
		// with insufficient_scope, it is Docker Hub's "not found": the
		// repository does not exist, or these credentials may not see it.
		if res.StatusCode == http.StatusUnauthorized && strings.HasPrefix(auth, "Bearer ") &&
			insufficientScope(res.Header.Values("WWW-Authenticate")) {
			return nil, o.notFoundOrPrivate(e, creds)
		}
		msg := "the upstream rejected the credentials of " + creds.Named()
		if e.Message != "" && e.Message != http.StatusText(res.StatusCode) {
			msg += ": " + e.Message
		}
		e.Message = msg
		return nil, e
	}
}

// send sends one request with the Authorization header auth. path is
// relative to the repository and may carry a query ("tags/list?n=100").
func (c *Client) send(ctx context.Context, o op, creds Credentials, method, path, accept, auth string) (*http.Response, error) {
	u := *c.base
	path, u.RawQuery, _ = strings.Cut(path, "?")
	u.Path = c.base.Path + "/v2/" + o.repo + "/" + path
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return nil, o.error(oci.ErrUnavailable, 0, "build request", err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if c.opts.UserAgent != "" {
		req.Header.Set("User-Agent", c.opts.UserAgent)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		c.opts.Metrics.UpstreamRequest(method, o.kind, 0)
		return nil, o.transportError(err)
	}
	c.opts.Metrics.UpstreamRequest(method, o.kind, res.StatusCode)
	c.recordRateLimit(creds, res.Header)
	return res, nil
}

// failure turns a non-2xx response into an *Error and closes its body.
func (c *Client) failure(o op, res *http.Response) *Error {
	defer res.Body.Close()
	e := o.statusError(res)
	if res.StatusCode == http.StatusTooManyRequests {
		h := res.Header
		if rl, ok := ParseRateLimit(h.Get("RateLimit-Limit"), h.Get("RateLimit-Remaining"), h.Get("Docker-RateLimit-Source")); ok {
			e.Message += " (" + rl.String() + ")"
		}
	}
	return e
}

func drain(res *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	res.Body.Close()
}

func contentLength(res *http.Response) int64 {
	if n, err := strconv.ParseInt(res.Header.Get("Content-Length"), 10, 64); err == nil && n >= 0 {
		return n
	}
	return -1
}

// headerMediaType is a Content-Type without its parameters; "" when it
// does not parse.
func headerMediaType(contentType string) string {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return ""
	}
	return mt
}
