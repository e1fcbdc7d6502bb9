// Package testregistry owns a Docker-Hub-like upstream registry for tests: a
// real in-memory registry (go-containerregistry's pkg/registry) behind a front
// that speaks the Docker v2 token flow, counts requests by kind, sends
// rate-limit headers and injects faults (latency, bandwidth caps, 429, 5xx,
// hangs, dropped connections, corrupted blobs, CDN redirects). It lists tags
// and referrers (OCI 1.1) as registries do, in pages when asked, and can
// act as a registry without the referrers API (lists.go).
//
// It serves only on 127.0.0.0/8. It is imported by tests and test programs
// (the end-to-end suite runs it as a process through Start) only, and must
// not import any other dproxy package.
package testregistry

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

// Service is the service name the token service announces and accepts.
const Service = "registry.test"

// Kind classifies a request reaching the front.
type Kind = string

// Request kinds counted by Count.
const (
	KindManifest  Kind = "manifest"
	KindBlob      Kind = "blob"
	KindTags      Kind = "tags"      // tag lists
	KindReferrers Kind = "referrers" // referrers lists (OCI 1.1)
	KindToken     Kind = "token"
	KindPing      Kind = "ping"
	KindOther     Kind = "other"
)

// Options configures the token service.
type Options struct {
	Users       map[string]string // username → password accepted by the token service (Basic)
	RequireAuth bool              // anonymous token requests are refused (401) when true
	TokenTTL    time.Duration     // expires_in of issued tokens (default 300s)
	// Now is the clock tokens are issued and expire by (default time.Now):
	// a test moves it past TokenTTL instead of waiting.
	Now func() time.Time
	// HubNotFound answers a request for a repository the registry does not
	// have as Docker Hub does: 401 with error="insufficient_scope", even to
	// a token the token service has just issued (which, as Docker Hub's,
	// grants any scope asked for). Without it, such a repository is a 404.
	HubNotFound bool
}

// TokenRequest is one request seen by the token service.
type TokenRequest struct {
	Username string   // "" when anonymous
	Scope    []string // the scope parameters, in order
	Method   string
}

// Upstream is a running test registry. All setters are safe while serving.
type Upstream struct {
	URL string // http://127.0.0.1:port

	opts  Options
	inner http.Handler
	front *httptest.Server
	push  *httptest.Server // the bare registry, for pushes
	cdn   *httptest.Server
	done  chan struct{} // closed when the upstream shuts down

	mu          sync.Mutex
	counts      map[string]int   // method + " " + kind
	blobCounts  map[string]int   // method + " " + digest
	holds       map[string]*Hold // digest → the hold of its next GETs
	tokenReqs   []TokenRequest
	tokens      map[string]issuedToken
	latency     time.Duration
	bandwidth   int64
	rlLimit     int
	rlRemaining int
	tooMany     bool
	retryAfter  time.Duration
	status      int
	tokenStatus int
	hang        chan struct{} // non-nil while hanging; closed to release
	down        bool
	corrupt     map[string]bool
	private     map[string][]string // repository → the users whose tokens may read it (SetPrivate)
	unsized     map[string]bool     // blob digests answered without Content-Length (HideBlobLength)
	redirect    bool
	cdnAuth     bool
	cdnRequests int
	noReferrers bool // the referrers API answers 404 (SetReferrersAPI)
	pageSize    int  // lists are cut into pages of this many entries; 0 = whole (SetListPaging)
	pageLinks   bool // cut lists name their next page in a Link header
}

type issuedToken struct {
	username string
	scopes   []string
	expires  time.Time
}

// New starts an upstream on 127.0.0.1; t.Cleanup stops it.
func New(t testing.TB, opts Options) *Upstream {
	t.Helper()
	u := Start(opts)
	t.Cleanup(u.Close)
	return u
}

// Start starts an upstream on 127.0.0.1 for a program that is not a test
// (a load generator); the caller must Close it.
func Start(opts Options) *Upstream {
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = 300 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	u := &Upstream{
		opts:       opts,
		inner:      registry.New(registry.Logger(log.New(io.Discard, "", 0)), registry.WithReferrersSupport(true)),
		done:       make(chan struct{}),
		counts:     map[string]int{},
		blobCounts: map[string]int{},
		holds:      map[string]*Hold{},
		tokens:     map[string]issuedToken{},
		corrupt:    map[string]bool{},
		private:    map[string][]string{},
	}
	u.front = httptest.NewServer(http.HandlerFunc(u.serveFront))
	u.URL = u.front.URL
	u.push = httptest.NewServer(http.HandlerFunc(u.servePush))
	u.cdn = httptest.NewServer(http.HandlerFunc(u.serveCDN))
	return u
}

// Close stops the upstream's servers and releases hanging requests.
func (u *Upstream) Close() {
	close(u.done)
	u.SetHang(false)
	for _, s := range []*httptest.Server{u.front, u.cdn, u.push} {
		s.CloseClientConnections()
		s.Close()
	}
}

// PushURL returns the base URL of the bare registry behind the front: no
// auth, no counting, no faults. Tests and the end-to-end suite push their
// images there.
func (u *Upstream) PushURL() string { return u.push.URL }

// Counts returns a copy of every request counter, keyed "<METHOD> <kind>"
// (as Count reads them).
func (u *Upstream) Counts() map[string]int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return maps.Clone(u.counts)
}

// Host returns "127.0.0.1:port" of the front.
func (u *Upstream) Host() string { return strings.TrimPrefix(u.URL, "http://") }

// CDNURL returns the base URL of the CDN that blob redirects point to. It
// names the host "localhost", not an IP literal: another host than the
// front's 127.0.0.1 (so clients must not send it the front's credentials),
// yet one go-containerregistry's SSRF guard lets a redirect reach.
func (u *Upstream) CDNURL() string {
	_, port, _ := net.SplitHostPort(u.cdn.Listener.Addr().String())
	return "http://localhost:" + port
}

// Count returns how many requests of that method and kind reached the front
// (pushes and connections dropped by SetDown are not counted).
func (u *Upstream) Count(method string, kind Kind) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.counts[method+" "+kind]
}

// CountBlob returns how many authorised requests of that method for blob
// digest d the front answered past its auth check: the requests that would
// transfer the blob. Challenges (401) and injected failures are not counted.
func (u *Upstream) CountBlob(method string, d string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.blobCounts[method+" "+d]
}

// ResetCounts zeroes the counters, the recorded token requests and the CDN records.
func (u *Upstream) ResetCounts() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.counts = map[string]int{}
	u.blobCounts = map[string]int{}
	u.tokenReqs = nil
	u.cdnAuth = false
	u.cdnRequests = 0
}

// TokenRequests returns the token requests seen since the last reset.
func (u *Upstream) TokenRequests() []TokenRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]TokenRequest(nil), u.tokenReqs...)
}

// RevokeTokens makes every token issued so far invalid, as if it had expired.
func (u *Upstream) RevokeTokens() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.tokens = map[string]issuedToken{}
}

// SetLatency delays every response of the front by d.
func (u *Upstream) SetLatency(d time.Duration) { u.set(func() { u.latency = d }) }

// SetBandwidth caps the throughput of blob bodies (front and CDN); 0 = unlimited.
func (u *Upstream) SetBandwidth(bytesPerSec int64) { u.set(func() { u.bandwidth = bytesPerSec }) }

// SetRateLimit adds Docker Hub's rate-limit headers to registry responses;
// limit 0 removes them.
func (u *Upstream) SetRateLimit(limit, remaining int) {
	u.set(func() { u.rlLimit, u.rlRemaining = limit, remaining })
}

// Set429 makes registry requests (not token requests) answer 429
// TOOMANYREQUESTS with Retry-After (whole seconds, omitted when 0).
func (u *Upstream) Set429(on bool, retryAfter time.Duration) {
	u.set(func() { u.tooMany, u.retryAfter = on, retryAfter })
}

// SetStatus makes registry requests answer status with an error body; 0 = normal.
func (u *Upstream) SetStatus(status int) { u.set(func() { u.status = status }) }

// SetTokenStatus makes the token service answer status; 0 = normal.
func (u *Upstream) SetTokenStatus(status int) { u.set(func() { u.tokenStatus = status }) }

// SetHang makes requests block until the client gives up or the hang is
// turned off.
func (u *Upstream) SetHang(on bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	switch {
	case on && u.hang == nil:
		u.hang = make(chan struct{})
	case !on && u.hang != nil:
		close(u.hang)
		u.hang = nil
	}
}

// SetDown makes the front close every connection without answering.
func (u *Upstream) SetDown(on bool) { u.set(func() { u.down = on }) }

// CorruptBlob makes GETs of blob d return the right length of wrong bytes.
func (u *Upstream) CorruptBlob(d string, on bool) { u.set(func() { u.corrupt[d] = on }) }

// SetPrivate makes repo private, as on Docker Hub: only tokens issued to
// one of readers may read it; every other request carrying a valid token
// (anonymous ones too) gets Docker Hub's answer for a repository it does
// not show, 401 with error="insufficient_scope".
func (u *Upstream) SetPrivate(repo string, readers ...string) {
	u.set(func() { u.private[repo] = append([]string{}, readers...) })
}

// SetPublic undoes SetPrivate.
func (u *Upstream) SetPublic(repo string) { u.set(func() { delete(u.private, repo) }) }

// RedirectBlobs makes blob GETs answer 307 to the CDN server (see CDNURL).
func (u *Upstream) RedirectBlobs(on bool) { u.set(func() { u.redirect = on }) }

// CDNSawAuthorization reports whether any CDN request since the last reset
// carried an Authorization header.
func (u *Upstream) CDNSawAuthorization() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.cdnAuth
}

// CDNRequests returns the number of requests the CDN received since the last reset.
func (u *Upstream) CDNRequests() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.cdnRequests
}

func (u *Upstream) set(f func()) {
	u.mu.Lock()
	defer u.mu.Unlock()
	f()
}

// classify returns the kind of a request and, for registry requests, the
// repository and the last path segment (tag or digest).
func classify(p string) (kind Kind, repo, ref string) {
	if p == "/token" {
		return KindToken, "", ""
	}
	if p == "/v2/" || p == "/v2" {
		return KindPing, "", ""
	}
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return KindOther, "", ""
	}
	s := strings.Split(rest, "/")
	n := len(s)
	switch {
	case n >= 3 && s[n-2] == "manifests":
		return KindManifest, strings.Join(s[:n-2], "/"), s[n-1]
	case n >= 3 && s[n-2] == "blobs":
		return KindBlob, strings.Join(s[:n-2], "/"), s[n-1]
	case n >= 4 && s[n-3] == "blobs" && s[n-2] == "uploads":
		return KindOther, strings.Join(s[:n-3], "/"), ""
	case n >= 3 && s[n-2] == "tags":
		return KindTags, strings.Join(s[:n-2], "/"), ""
	case n >= 3 && s[n-2] == "referrers":
		return KindReferrers, strings.Join(s[:n-2], "/"), s[n-1]
	}
	return KindOther, "", ""
}

func (u *Upstream) serveFront(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	down := u.down
	u.mu.Unlock()
	if down {
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				c.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	}

	kind, repo, ref := classify(r.URL.Path)
	u.mu.Lock()
	u.counts[r.Method+" "+kind]++
	hang, latency := u.hang, u.latency
	u.mu.Unlock()

	if hang != nil {
		select {
		case <-hang:
		case <-r.Context().Done():
			return
		case <-u.done:
			return
		}
	}
	if latency > 0 {
		select {
		case <-time.After(latency):
		case <-r.Context().Done():
			return
		case <-u.done:
			return
		}
	}

	if kind == KindToken {
		u.serveToken(w, r)
		return
	}
	u.serveRegistry(w, r, kind, repo, ref)
}

func (u *Upstream) serveToken(w http.ResponseWriter, r *http.Request) {
	user, pass, hasBasic := r.BasicAuth()
	scopes := r.URL.Query()["scope"]
	u.mu.Lock()
	u.tokenReqs = append(u.tokenReqs, TokenRequest{Username: user, Scope: scopes, Method: r.Method})
	status := u.tokenStatus
	u.mu.Unlock()

	if status != 0 {
		writeError(w, status, "UNAVAILABLE", "token service failure injected by the test")
		return
	}
	if r.Method != http.MethodGet {
		writeError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "the token service accepts GET only")
		return
	}
	switch {
	case hasBasic:
		if want, ok := u.opts.Users[user]; !ok || want != pass {
			writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", "incorrect username or password")
			return
		}
	case u.opts.RequireAuth:
		writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
		return
	}

	var b [24]byte
	_, _ = rand.Read(b[:])
	tok := hex.EncodeToString(b[:])
	now := u.opts.Now()
	u.mu.Lock()
	u.tokens[tok] = issuedToken{username: user, scopes: scopes, expires: now.Add(u.opts.TokenTTL)}
	u.mu.Unlock()

	secs := int((u.opts.TokenTTL + time.Second - 1) / time.Second)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"token":        tok,
		"access_token": tok,
		"expires_in":   secs,
		"issued_at":    now.UTC().Format(time.RFC3339),
	})
}

// token returns the unexpired token the request carries.
func (u *Upstream) token(r *http.Request) (issuedToken, bool) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return issuedToken{}, false
	}
	u.mu.Lock()
	it, ok := u.tokens[tok]
	u.mu.Unlock()
	if !ok || u.opts.Now().After(it.expires) {
		return issuedToken{}, false
	}
	return it, true
}

// authorized reports whether the request carries an unexpired token whose
// scopes grant pull on repo (any token suffices when repo is "").
func (u *Upstream) authorized(r *http.Request, repo string) bool {
	it, ok := u.token(r)
	if !ok {
		return false
	}
	if repo == "" {
		return true
	}
	for _, s := range it.scopes {
		for _, one := range strings.Fields(s) {
			parts := strings.Split(one, ":")
			if len(parts) == 3 && parts[0] == "repository" && parts[1] == repo &&
				strings.Contains(","+parts[2]+",", ",pull,") {
				return true
			}
		}
	}
	return false
}

func (u *Upstream) serveRegistry(w http.ResponseWriter, r *http.Request, kind Kind, repo, ref string) {
	u.mu.Lock()
	limit, remaining := u.rlLimit, u.rlRemaining
	status, tooMany, retryAfter := u.status, u.tooMany, u.retryAfter
	redirect, corrupt := u.redirect, u.corrupt[ref]
	u.mu.Unlock()

	h := w.Header()
	h.Set("Docker-Distribution-Api-Version", "registry/2.0")
	if limit > 0 {
		h.Set("RateLimit-Limit", fmt.Sprintf("%d;w=21600", limit))
		h.Set("RateLimit-Remaining", fmt.Sprintf("%d;w=21600", remaining))
		h.Set("Docker-RateLimit-Source", "127.0.0.1")
	}
	switch {
	case status != 0:
		writeError(w, status, "UNAVAILABLE", "failure injected by the test")
		return
	case tooMany:
		if retryAfter > 0 {
			h.Set("Retry-After", fmt.Sprint(int((retryAfter+time.Second-1)/time.Second)))
		}
		writeError(w, http.StatusTooManyRequests, "TOOMANYREQUESTS",
			"You have reached your pull rate limit. You may increase the limit by authenticating and upgrading")
		return
	}

	if !u.authorized(r, repo) {
		challenge := fmt.Sprintf(`Bearer realm="%s/token",service="%s"`, u.URL, Service)
		if repo != "" {
			challenge += fmt.Sprintf(`,scope="repository:%s:pull"`, repo)
		}
		h.Set("WWW-Authenticate", challenge)
		writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
		return
	}

	if repo != "" && u.hidden(r, repo) {
		h.Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="%s",scope="repository:%s:pull",error="insufficient_scope"`,
			u.URL, Service, repo))
		writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
		return
	}

	if kind == KindBlob {
		u.mu.Lock()
		u.blobCounts[r.Method+" "+ref]++
		u.mu.Unlock()
	}
	if kind == KindPing {
		h.Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, "{}")
		return
	}
	if kind == KindBlob && r.Method == http.MethodGet {
		if redirect {
			q := url.Values{"repo": {repo}, "digest": {ref}, "sig": {"test"}}
			http.Redirect(w, r, u.CDNURL()+"/blob?"+q.Encode(), http.StatusTemporaryRedirect)
			return
		}
		u.serveBlob(u.blobWriter(w, ref), r, repo, ref, corrupt)
		return
	}
	switch {
	case kind == KindTags && r.Method == http.MethodGet:
		u.serveTags(w, r, repo)
		return
	case kind == KindReferrers:
		u.serveReferrers(w, r, repo, ref)
		return
	}
	u.inner.ServeHTTP(w, r)
}

// hidden reports whether repo is one Docker Hub would not show to the
// token r carries: private to other users (SetPrivate), or, with
// HubNotFound, not in the registry at all.
func (u *Upstream) hidden(r *http.Request, repo string) bool {
	u.mu.Lock()
	readers, private := u.private[repo]
	u.mu.Unlock()
	if private {
		it, _ := u.token(r)
		return it.username == "" || !slices.Contains(readers, it.username)
	}
	if !u.opts.HubNotFound {
		return false
	}
	rec := httptest.NewRecorder()
	u.inner.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v2/"+repo+"/tags/list", nil))
	return rec.Code == http.StatusNotFound
}

// serveBlob serves a blob GET from the inner registry, throttling its body
// to the current bandwidth and inverting its bytes when corrupt.
func (u *Upstream) serveBlob(w http.ResponseWriter, r *http.Request, repo, d string, corrupt bool) {
	req := r.Clone(r.Context())
	req.URL = &url.URL{Path: "/v2/" + repo + "/blobs/" + d}
	req.RequestURI = ""
	req.Header.Del("Authorization")
	u.mu.Lock()
	hold := u.holds[d]
	u.mu.Unlock()
	var out io.Writer = &throttledWriter{w: w, u: u, done: r.Context().Done()}
	if hold != nil {
		out = &holdWriter{w: out, rw: w, h: hold, stop: r.Context().Done(), done: u.done}
	}
	if corrupt {
		out = flipWriter{out}
	}
	u.inner.ServeHTTP(&bodyWriter{ResponseWriter: w, body: out}, req)
}

func (u *Upstream) serveCDN(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	u.mu.Lock()
	u.cdnRequests++
	if r.Header.Get("Authorization") != "" {
		u.cdnAuth = true
	}
	corrupt := u.corrupt[q.Get("digest")]
	u.mu.Unlock()
	if r.URL.Path != "/blob" || q.Get("repo") == "" || q.Get("digest") == "" {
		http.NotFound(w, r)
		return
	}
	u.serveBlob(w, r, q.Get("repo"), q.Get("digest"), corrupt)
}

// bodyWriter sends the body through another writer, keeping headers and status.
type bodyWriter struct {
	http.ResponseWriter
	body io.Writer
}

func (b *bodyWriter) Write(p []byte) (int, error) { return b.body.Write(p) }

// flipWriter inverts every byte, so a corrupted body keeps its length.
type flipWriter struct{ w io.Writer }

func (f flipWriter) Write(p []byte) (int, error) {
	q := make([]byte, len(p))
	for i, c := range p {
		q[i] = ^c
	}
	return f.w.Write(q)
}

// throttledWriter writes in small chunks and paces them so the
// throughput stays at the upstream's current bandwidth setting, read again
// for every chunk. It paces against the time the stream started (a
// deadline per byte), so scheduling delays do not add up over a long body;
// a changed setting starts a new pace.
type throttledWriter struct {
	w    http.ResponseWriter
	u    *Upstream
	done <-chan struct{}

	bps   int64     // the setting the pace below was started with
	start time.Time // when the pace started
	sent  int64     // bytes written since start
}

func (t *throttledWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		t.u.mu.Lock()
		bps := t.u.bandwidth
		t.u.mu.Unlock()
		if bps <= 0 {
			n, err := t.w.Write(p)
			return written + n, err
		}
		if bps != t.bps {
			t.bps, t.start, t.sent = bps, time.Now(), 0
		}
		chunk := min(int64(32<<10), max(bps/20, 1), int64(len(p)))
		n, err := t.w.Write(p[:chunk])
		written += n
		t.sent += int64(n)
		if err != nil {
			return written, err
		}
		if f, ok := t.w.(http.Flusher); ok {
			f.Flush()
		}
		p = p[chunk:]
		due := t.start.Add(time.Duration(float64(t.sent) / float64(bps) * float64(time.Second)))
		wait := time.Until(due)
		if wait <= 0 {
			continue
		}
		select {
		case <-time.After(wait):
		case <-t.done:
			return written, http.ErrAbortHandler
		case <-t.u.done:
			return written, http.ErrAbortHandler
		}
	}
	return written, nil
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"errors": []map[string]string{{"code": code, "message": msg}},
	})
}
