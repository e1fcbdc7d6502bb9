package upstream

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/dproxy/dproxy/internal/metrics"
	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/testclock"
	"github.com/dproxy/dproxy/internal/testregistry"
)

func newClient(t *testing.T, up *testregistry.Upstream, opts Options) *Client {
	t.Helper()
	opts.URL = up.URL
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func tag(s string) oci.Reference { return oci.Reference{Tag: s} }

func digestOf(t *testing.T, h interface{ Digest() (v1.Hash, error) }) oci.Digest {
	t.Helper()
	d, err := h.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return oci.Digest(d.String())
}

func rawManifest(t *testing.T, m interface{ RawManifest() ([]byte, error) }) []byte {
	t.Helper()
	b, err := m.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestNewValidatesURL(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"", "registry-1.docker.io", "ftp://x", "https://", "https://u:p@x", "https://x/?a=b", "://x"} {
		if _, err := New(Options{URL: u}); err == nil {
			t.Errorf("New(%q) accepted an invalid url", u)
		}
	}
	c, err := New(Options{URL: "https://registry-1.docker.io/"})
	if err != nil || c.Host() != "registry-1.docker.io" {
		t.Errorf("New(docker hub) = %v, %v", c, err)
	}
}

func TestTokenFlow(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		opts     testregistry.Options
		creds    Credentials
		wantUser string
	}{
		{"anonymous", testregistry.Options{}, Credentials{}, ""},
		{"basic", testregistry.Options{Users: map[string]string{"alice": "s3cret"}, RequireAuth: true},
			Credentials{Username: "alice", Password: "s3cret"}, "alice"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			up := testregistry.New(t, c.opts)
			img := up.PushRandomImage(t, "library/alpine", "latest", 1, 512)
			cl := newClient(t, up, Options{})

			d, err := cl.HeadManifest(context.Background(), c.creds, "library/alpine", tag("latest"))
			if err != nil {
				t.Fatalf("HeadManifest: %v", err)
			}
			if want := digestOf(t, img); d.Digest != want || d.Size != int64(len(rawManifest(t, img))) {
				t.Errorf("descriptor %+v, want digest %s", d, want)
			}
			reqs := up.TokenRequests()
			if len(reqs) != 1 || reqs[0].Username != c.wantUser || reqs[0].Method != http.MethodGet ||
				len(reqs[0].Scope) != 1 || reqs[0].Scope[0] != "repository:library/alpine:pull" {
				t.Errorf("token requests %+v, want one GET by %q for repository:library/alpine:pull", reqs, c.wantUser)
			}
			// Lazy: no ping, and the first request went out without a token.
			if n := up.Count("GET", testregistry.KindPing); n != 0 {
				t.Errorf("%d pings", n)
			}
			if n := up.Count("HEAD", testregistry.KindManifest); n != 2 {
				t.Errorf("%d manifest HEADs, want 2 (challenge, then with token)", n)
			}
		})
	}
}

func TestTokenIsCachedPerRepository(t *testing.T) {
	t.Parallel()
	up := testregistry.New(t, testregistry.Options{})
	up.PushRandomImage(t, "library/alpine", "latest", 1, 512)
	up.PushRandomImage(t, "library/node", "latest", 1, 512)
	cl := newClient(t, up, Options{})
	ctx := context.Background()
	for i := range 100 {
		if _, err := cl.HeadManifest(ctx, Credentials{}, "library/alpine", tag("latest")); err != nil {
			t.Fatalf("HeadManifest %d: %v", i, err)
		}
	}
	if n := up.Count("GET", testregistry.KindToken); n != 1 {
		t.Errorf("100 HEADs made %d token requests, want 1", n)
	}
	if n := up.Count("HEAD", testregistry.KindManifest); n != 101 {
		t.Errorf("100 HEADs made %d upstream HEADs, want 101 (one challenge)", n)
	}
	// Another repository needs its own token; other credentials too.
	if _, err := cl.HeadManifest(ctx, Credentials{}, "library/node", tag("latest")); err != nil {
		t.Fatal(err)
	}
	if n := up.Count("GET", testregistry.KindToken); n != 2 {
		t.Errorf("token requests after a second repository: %d, want 2", n)
	}
}

func TestConcurrentFirstCallsShareOneToken(t *testing.T) {
	t.Parallel()
	up := testregistry.New(t, testregistry.Options{})
	img := up.PushRandomImage(t, "library/alpine", "latest", 1, 512)
	// Latency on every response keeps the 20 calls overlapping.
	up.SetLatency(50 * time.Millisecond)
	cl := newClient(t, up, Options{})
	want := digestOf(t, img)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() {
			d, err := cl.HeadManifest(context.Background(), Credentials{}, "library/alpine", tag("latest"))
			if err == nil && d.Digest != want {
				err = errors.New("wrong digest " + string(d.Digest))
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := up.Count("GET", testregistry.KindToken); n != 1 {
		t.Errorf("20 concurrent calls made %d token requests, want 1", n)
	}
}

func TestTokenExpiry(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		ttl  time.Duration // the upstream's expires_in
		// after how long the client still sends the token, and from when it
		// asks for a new one
		kept, dropped time.Duration
	}{
		// Less than twice the 30 s margin: the token is kept for half its life.
		{"short-lived", 2 * time.Second, 900 * time.Millisecond, time.Second},
		// Longer: it is dropped 30 s before the upstream expires it.
		{"long-lived", 300 * time.Second, 269 * time.Second, 270 * time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			clock := testclock.New(time.Now()) // a part reading the real clock sees time stand still
			up := testregistry.New(t, testregistry.Options{TokenTTL: c.ttl, Now: clock.Now})
			up.PushRandomImage(t, "library/alpine", "latest", 1, 512)
			cl := newClient(t, up, Options{Now: clock.Now})
			ctx := context.Background()
			head := func(when string) {
				t.Helper()
				if _, err := cl.HeadManifest(ctx, Credentials{}, "library/alpine", tag("latest")); err != nil {
					t.Fatalf("%s: %v", when, err)
				}
			}
			head("first call")
			clock.Add(c.kept)
			head("while the token is kept")
			if n := up.Count("GET", testregistry.KindToken); n != 1 {
				t.Errorf("token requests before the token was dropped: %d, want 1", n)
			}
			clock.Add(c.dropped - c.kept)
			head("once the token is dropped")
			if n := up.Count("GET", testregistry.KindToken); n != 2 {
				t.Errorf("token requests %d, want 2", n)
			}
			// The token was replaced before the upstream would have refused
			// it: one challenge, then one HEAD per call.
			if n := up.Count("HEAD", testregistry.KindManifest); n != 4 {
				t.Errorf("manifest HEADs %d, want 4", n)
			}
		})
	}
}

func TestStaleTokenIsReplaced(t *testing.T) {
	t.Parallel()
	up := testregistry.New(t, testregistry.Options{})
	up.PushRandomImage(t, "library/alpine", "latest", 1, 512)
	cl := newClient(t, up, Options{})
	ctx := context.Background()
	if _, err := cl.HeadManifest(ctx, Credentials{}, "library/alpine", tag("latest")); err != nil {
		t.Fatal(err)
	}
	up.RevokeTokens()
	up.ResetCounts()
	if _, err := cl.HeadManifest(ctx, Credentials{}, "library/alpine", tag("latest")); err != nil {
		t.Fatalf("with a revoked token: %v", err)
	}
	if g, h := up.Count("GET", testregistry.KindToken), up.Count("HEAD", testregistry.KindManifest); g != 1 || h != 2 {
		t.Errorf("after revocation: %d token requests and %d HEADs, want 1 and 2", g, h)
	}
	// The new token is cached.
	up.ResetCounts()
	if _, err := cl.HeadManifest(ctx, Credentials{}, "library/alpine", tag("latest")); err != nil {
		t.Fatal(err)
	}
	if g, h := up.Count("GET", testregistry.KindToken), up.Count("HEAD", testregistry.KindManifest); g != 0 || h != 1 {
		t.Errorf("next call: %d token requests and %d HEADs, want 0 and 1", g, h)
	}
}

func TestGetManifest(t *testing.T) {
	t.Parallel()
	up := testregistry.New(t, testregistry.Options{})
	img := up.PushRandomImage(t, "library/alpine", "3", 1, 512)
	idx := up.PushIndex(t, "library/multi", "v1")
	cl := newClient(t, up, Options{})
	ctx := context.Background()

	imt, _ := img.MediaType()
	xmt, _ := idx.MediaType()
	cases := []struct {
		name      string
		repo      string
		ref       oci.Reference
		content   []byte
		mediaType string
	}{
		{"image by tag", "library/alpine", tag("3"), rawManifest(t, img), string(imt)},
		{"image by digest", "library/alpine", oci.Reference{Digest: digestOf(t, img)}, rawManifest(t, img), string(imt)},
		{"index by tag", "library/multi", tag("v1"), rawManifest(t, idx), string(xmt)},
		{"index by digest", "library/multi", oci.Reference{Digest: digestOf(t, idx)}, rawManifest(t, idx), string(xmt)},
	}
	for _, c := range cases {
		m, err := cl.GetManifest(ctx, Credentials{}, c.repo, c.ref)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !bytes.Equal(m.Content, c.content) {
			t.Errorf("%s: content differs from what was pushed", c.name)
		}
		if m.Digest != oci.FromBytes(c.content) || m.Size != int64(len(c.content)) || m.MediaType != c.mediaType {
			t.Errorf("%s: descriptor %+v, want %s %s", c.name, m.Descriptor, oci.FromBytes(c.content), c.mediaType)
		}
		h, err := cl.HeadManifest(ctx, Credentials{}, c.repo, c.ref)
		if err != nil || h.Digest != m.Digest || h.MediaType != m.MediaType || h.Size != m.Size {
			t.Errorf("%s: HEAD %+v %v, GET %+v", c.name, h, err, m.Descriptor)
		}
	}
	if !oci.IsIndex(string(xmt)) {
		t.Errorf("pushed index has media type %s", xmt)
	}
}

// tamper is a transport that rewrites upstream responses.
type tamper struct {
	inner  http.RoundTripper
	modify func(*http.Response)
}

func (t tamper) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := t.inner.RoundTrip(req)
	if err == nil {
		t.modify(res)
	}
	return res, err
}

func TestManifestVerification(t *testing.T) {
	t.Parallel()
	up := testregistry.New(t, testregistry.Options{})
	img := up.PushRandomImage(t, "library/alpine", "3", 1, 512)
	other := up.PushRandomImage(t, "library/alpine", "4", 1, 512)
	want := digestOf(t, img)
	otherBytes := rawManifest(t, other)
	ctx := context.Background()

	swapBody := func(res *http.Response) {
		if res.Request.Method == http.MethodGet && strings.Contains(res.Request.URL.Path, "/manifests/") && res.StatusCode == 200 {
			res.Body.Close()
			res.Body = io.NopCloser(bytes.NewReader(otherBytes))
			res.ContentLength = int64(len(otherBytes))
			res.Header.Del("Docker-Content-Digest")
		}
	}
	wrongHeader := func(res *http.Response) {
		if strings.Contains(res.Request.URL.Path, "/manifests/") && res.StatusCode == 200 {
			res.Header.Set("Docker-Content-Digest", string(digestOf(t, other)))
		}
	}
	cases := []struct {
		name   string
		modify func(*http.Response)
		ref    oci.Reference
		want   []string
	}{
		{"body differs from requested digest", swapBody, oci.Reference{Digest: want}, []string{string(want), string(digestOf(t, other)), "library/alpine"}},
		{"header differs from body", wrongHeader, tag("3"), []string{string(want), string(digestOf(t, other)), "Docker-Content-Digest"}},
	}
	for _, c := range cases {
		cl := newClient(t, up, Options{Transport: tamper{http.DefaultTransport, c.modify}})
		_, err := cl.GetManifest(ctx, Credentials{}, "library/alpine", c.ref)
		if !errors.Is(err, oci.ErrUnavailable) {
			t.Errorf("%s: err = %v, want ErrUnavailable", c.name, err)
			continue
		}
		for _, s := range c.want {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%s: error %q does not name %s", c.name, err, s)
			}
		}
	}
	// HEAD by digest checks the header too.
	cl := newClient(t, up, Options{Transport: tamper{http.DefaultTransport, wrongHeader}})
	if _, err := cl.HeadManifest(ctx, Credentials{}, "library/alpine", oci.Reference{Digest: want}); !errors.Is(err, oci.ErrUnavailable) {
		t.Errorf("HEAD with a wrong digest header: %v", err)
	}
}

func TestHeaderFallbacks(t *testing.T) {
	t.Parallel()
	up := testregistry.New(t, testregistry.Options{})
	img := up.PushRandomImage(t, "library/alpine", "3", 1, 512)
	mt, _ := img.MediaType()
	bare := tamper{http.DefaultTransport, func(res *http.Response) {
		if strings.Contains(res.Request.URL.Path, "/manifests/") {
			res.Header.Del("Docker-Content-Digest")
			res.Header.Set("Content-Type", "application/json")
		}
	}}
	cl := newClient(t, up, Options{Transport: bare})
	ctx := context.Background()

	m, err := cl.GetManifest(ctx, Credentials{}, "library/alpine", tag("3"))
	if err != nil || m.MediaType != string(mt) || m.Digest != digestOf(t, img) {
		t.Errorf("GET without Content-Type: %+v %v, want media type %s from the body", m.Descriptor, err, mt)
	}
	up.ResetCounts()
	d, err := cl.HeadManifest(ctx, Credentials{}, "library/alpine", tag("3"))
	if err != nil || d.Digest != digestOf(t, img) || d.MediaType != string(mt) {
		t.Errorf("HEAD without Docker-Content-Digest: %+v %v", d, err)
	}
	if g := up.Count("GET", testregistry.KindManifest); g != 1 {
		t.Errorf("HEAD without a digest header made %d GETs, want 1", g)
	}
}

// TestBasicChallenge uses a registry that asks for Basic credentials.
func TestBasicChallenge(t *testing.T) {
	t.Parallel()
	manifest := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}`)
	var mu sync.Mutex
	var auths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auths = append(auths, r.Header.Get("Authorization"))
		mu.Unlock()
		if u, p, ok := r.BasicAuth(); !ok || u != "alice" || p != "s3cret" {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", oci.MediaTypeOCIManifest)
		w.Write(manifest)
	}))
	t.Cleanup(srv.Close)
	cl, err := New(Options{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	alice := Credentials{Username: "alice", Password: "s3cret"}
	for i := range 2 {
		m, err := cl.GetManifest(ctx, alice, "library/alpine", tag("3"))
		if err != nil || !bytes.Equal(m.Content, manifest) {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	mu.Lock()
	if len(auths) != 3 || auths[0] != "" || !strings.HasPrefix(auths[2], "Basic ") {
		t.Errorf("Authorization headers %q, want none, then Basic twice", auths)
	}
	mu.Unlock()
	_, err = cl.GetManifest(ctx, Credentials{}, "library/alpine", tag("3"))
	checkErr(t, "anonymous", err, oci.ErrUnavailable, 401, "rejected the credentials of anonymous")
	_, err = cl.GetManifest(ctx, Credentials{Username: "alice", Password: "x"}, "library/alpine", tag("3"))
	checkErr(t, "wrong password", err, oci.ErrUnavailable, 401, "rejected the credentials of alice")
}

func TestManifestSizeLimit(t *testing.T) {
	t.Parallel()
	up := testregistry.New(t, testregistry.Options{})
	img := up.PushRandomImage(t, "library/alpine", "3", 1, 512)
	size := int64(len(rawManifest(t, img)))
	ctx := context.Background()

	cl := newClient(t, up, Options{MaxManifestSize: size - 1})
	_, err := cl.GetManifest(ctx, Credentials{}, "library/alpine", tag("3"))
	if !errors.Is(err, oci.ErrManifestInvalid) || !strings.Contains(err.Error(), strconv.FormatInt(size-1, 10)) {
		t.Errorf("over the limit: %v", err)
	}
	// Without Content-Length the limit still holds.
	noLength := tamper{http.DefaultTransport, func(res *http.Response) { res.ContentLength = -1 }}
	cl = newClient(t, up, Options{MaxManifestSize: size - 1, Transport: noLength})
	if _, err := cl.GetManifest(ctx, Credentials{}, "library/alpine", tag("3")); !errors.Is(err, oci.ErrManifestInvalid) {
		t.Errorf("over the limit without Content-Length: %v", err)
	}
	cl = newClient(t, up, Options{MaxManifestSize: size})
	if _, err := cl.GetManifest(ctx, Credentials{}, "library/alpine", tag("3")); err != nil {
		t.Errorf("at the limit: %v", err)
	}
}

func TestNotFound(t *testing.T) {
	t.Parallel()
	up := testregistry.New(t, testregistry.Options{})
	up.PushRandomImage(t, "library/alpine", "3", 1, 512)
	cl := newClient(t, up, Options{})
	ctx := context.Background()
	missing := oci.FromBytes([]byte("missing"))

	_, err := cl.GetManifest(ctx, Credentials{}, "library/alpine", tag("nope"))
	checkErr(t, "GET manifest", err, oci.ErrManifestUnknown, 404, "library/alpine:nope", up.Host())
	_, err = cl.HeadManifest(ctx, Credentials{}, "library/alpine", tag("nope"))
	checkErr(t, "HEAD manifest", err, oci.ErrManifestUnknown, 404, "library/alpine:nope", up.Host())
	_, _, err = cl.GetBlob(ctx, Credentials{}, "library/alpine", missing)
	checkErr(t, "GET blob", err, oci.ErrBlobUnknown, 404, "library/alpine@"+string(missing), up.Host())
	_, err = cl.HeadBlob(ctx, Credentials{}, "library/alpine", missing)
	checkErr(t, "HEAD blob", err, oci.ErrBlobUnknown, 404, "library/alpine@"+string(missing), up.Host())
	if n := up.Count("GET", testregistry.KindManifest); n != 2 {
		t.Errorf("404 was retried: %d manifest GETs, want 2 (challenge + one)", n)
	}
}

func checkErr(t *testing.T, name string, err, sentinel error, status int, contains ...string) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, sentinel) {
		t.Errorf("%s: err = %v, want *Error wrapping %v", name, err, sentinel)
		return nil
	}
	if e.Status != status {
		t.Errorf("%s: status %d, want %d", name, e.Status, status)
	}
	for _, s := range contains {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("%s: %q does not contain %q", name, err, s)
		}
	}
	return e
}

func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	return rec.Body.String()
}

func TestTooManyRequests(t *testing.T) {
	t.Parallel()
	up := testregistry.New(t, testregistry.Options{})
	up.PushRandomImage(t, "library/alpine", "3", 1, 512)
	m := metrics.New()
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	cl := newClient(t, up, Options{Metrics: m, Now: clock})
	ctx := context.Background()
	if _, ok := cl.RateLimit(Credentials{}); ok {
		t.Error("rate limit known before any request")
	}

	up.SetRateLimit(100, 0)
	up.Set429(true, 7*time.Second)
	_, err := cl.GetManifest(ctx, Credentials{}, "library/alpine", tag("3"))
	checkErr(t, "429", err, oci.ErrTooManyRequests, 429, "TOOMANYREQUESTS", "limit 100 per 6h0m0s, 0 remaining")
	if d, ok := oci.RetryAfter(err); !ok || d != 7*time.Second {
		t.Errorf("RetryAfter = %v %v, want 7s", d, ok)
	}
	if n := up.Count("GET", testregistry.KindManifest); n != 1 {
		t.Errorf("a 429 was retried: %d GETs", n)
	}
	rl, ok := cl.RateLimit(Credentials{})
	if !ok || rl.Limit != 100 || rl.Remaining != 0 || rl.Window != 6*time.Hour || rl.Source != "127.0.0.1" || rl.SeenAt.IsZero() {
		t.Errorf("RateLimit = %+v %v", rl, ok)
	}
	if _, ok := cl.RateLimit(Credentials{Username: "bob"}); ok {
		t.Error("rate limit recorded for credentials that made no request")
	}

	// The credentials back off for Retry-After: requests fail at once with
	// the time left, without reaching the upstream; others are not held.
	up.Set429(false, 0)
	mu.Lock()
	now = now.Add(5 * time.Second)
	mu.Unlock()
	_, err = cl.HeadManifest(ctx, Credentials{}, "library/alpine", tag("3"))
	checkErr(t, "backing off", err, oci.ErrTooManyRequests, 429, "asks it again after 2026-01-01T00:00:07Z")
	if d, ok := oci.RetryAfter(err); !ok || d != 2*time.Second {
		t.Errorf("RetryAfter while backing off = %v %v, want 2s", d, ok)
	}
	if n := up.Count("HEAD", testregistry.KindManifest); n != 0 {
		t.Errorf("%d HEADs reached the upstream while backing off", n)
	}
	mu.Lock()
	now = now.Add(2 * time.Second)
	mu.Unlock()

	// Recorded on successful responses too, and in metrics.
	up.SetRateLimit(100, 42)
	if _, err := cl.HeadManifest(ctx, Credentials{}, "library/alpine", tag("3")); err != nil {
		t.Fatal(err)
	}
	if rl, _ := cl.RateLimit(Credentials{}); rl.Remaining != 42 {
		t.Errorf("remaining after success = %d, want 42", rl.Remaining)
	}
	text := scrape(t, m)
	for _, want := range []string{
		`dproxy_upstream_ratelimit_remaining{credential="anonymous",upstream="` + up.Host() + `"} 42`,
		`dproxy_upstream_requests_total{kind="manifest",method="GET",status="429"} 1`,
		`dproxy_upstream_requests_total{kind="manifest",method="HEAD",status="200"} 1`,
		`dproxy_upstream_requests_total{kind="token",method="GET",status="200"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestServerErrorsAreRetried(t *testing.T) {
	t.Parallel()
	for _, status := range []int{500, 503} {
		up := testregistry.New(t, testregistry.Options{})
		up.PushRandomImage(t, "library/alpine", "3", 1, 512)
		up.SetStatus(status)
		cl := newClient(t, up, Options{Retries: 2})
		_, err := cl.GetManifest(context.Background(), Credentials{}, "library/alpine", tag("3"))
		checkErr(t, "status", err, oci.ErrUnavailable, status, "GET manifest library/alpine:3")
		if n := up.Count("GET", testregistry.KindManifest); n != 3 {
			t.Errorf("%d: %d attempts, want 3 (1 + 2 retries)", status, n)
		}
	}
	// A failure that clears during the backoff is not seen by the caller.
	up := testregistry.New(t, testregistry.Options{})
	up.PushRandomImage(t, "library/alpine", "3", 1, 512)
	up.SetStatus(502)
	cl := newClient(t, up, Options{Retries: 20})
	done := make(chan error, 1)
	go func() {
		_, err := cl.GetManifest(context.Background(), Credentials{}, "library/alpine", tag("3"))
		done <- err
	}()
	for up.Count("GET", testregistry.KindManifest) < 2 {
		select {
		case err := <-done:
			t.Fatalf("gave up before the upstream recovered: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	up.SetStatus(0)
	if err := <-done; err != nil {
		t.Errorf("after the upstream recovered: %v", err)
	}
}

func TestDown(t *testing.T) {
	t.Parallel()
	up := testregistry.New(t, testregistry.Options{})
	up.SetDown(true)
	cl := newClient(t, up, Options{Retries: 1})
	_, err := cl.HeadManifest(context.Background(), Credentials{}, "library/alpine", tag("3"))
	e := checkErr(t, "down", err, oci.ErrUnavailable, 0, up.Host())
	if errors.Is(err, oci.ErrTimeout) || e != nil && e.Err == nil {
		t.Errorf("down: %v should be unavailable with a cause", err)
	}
}

func TestHang(t *testing.T) {
	t.Parallel()
	up := testregistry.New(t, testregistry.Options{})
	up.PushRandomImage(t, "library/alpine", "3", 1, 512)
	up.SetHang(true)
	t.Cleanup(func() { up.SetHang(false) })

	// The caller's deadline.
	cl := newClient(t, up, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := cl.GetManifest(ctx, Credentials{}, "library/alpine", tag("3"))
	checkErr(t, "ctx deadline", err, oci.ErrTimeout, 0)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("the cause is not reachable: %v", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("returned after %v", d)
	}

	// The response-header timeout, not retried.
	cl = newClient(t, up, Options{ResponseHeaderTimeout: 200 * time.Millisecond})
	_, err = cl.HeadManifest(context.Background(), Credentials{}, "library/alpine", tag("3"))
	checkErr(t, "header timeout", err, oci.ErrTimeout, 0)
	if n := up.Count("HEAD", testregistry.KindManifest); n != 1 {
		t.Errorf("a timeout was retried: %d HEADs", n)
	}
}

func TestTokenServiceFailure(t *testing.T) {
	t.Parallel()
	up := testregistry.New(t, testregistry.Options{})
	up.PushRandomImage(t, "library/alpine", "3", 1, 512)
	up.SetTokenStatus(503)
	// Without the circuit breaker (TestBreaker): recovery is seen at once.
	cl := newClient(t, up, Options{Retries: 1, BreakerBackoff: -1})
	_, err := cl.HeadManifest(context.Background(), Credentials{}, "library/alpine", tag("3"))
	checkErr(t, "token 503", err, oci.ErrUnavailable, 503, "token service", "library/alpine:3")
	if n := up.Count("GET", testregistry.KindToken); n != 2 {
		t.Errorf("token requests %d, want 2 (retried once)", n)
	}
	up.SetTokenStatus(0)
	if _, err := cl.HeadManifest(context.Background(), Credentials{}, "library/alpine", tag("3")); err != nil {
		t.Errorf("after the token service recovered: %v", err)
	}
}

func TestRejectedCredentials(t *testing.T) {
	t.Parallel()
	up := testregistry.New(t, testregistry.Options{Users: map[string]string{"alice": "s3cret"}, RequireAuth: true})
	up.PushRandomImage(t, "library/alpine", "3", 1, 512)
	cl := newClient(t, up, Options{})
	ctx := context.Background()
	for _, c := range []struct {
		creds Credentials
		id    string
	}{
		{Credentials{Username: "alice", Password: "hunter2-wrong"}, "alice"},
		{Credentials{}, "anonymous"},
	} {
		_, err := cl.HeadManifest(ctx, c.creds, "library/alpine", tag("3"))
		checkErr(t, c.id, err, oci.ErrUnavailable, 401, "rejected the credentials of "+c.id)
		if c.creds.Password != "" && strings.Contains(err.Error(), c.creds.Password) {
			t.Errorf("the error reveals the password: %v", err)
		}
		if n := up.Count("GET", testregistry.KindToken); n == 0 || n > 2 {
			t.Errorf("%s: %d token requests", c.id, n)
		}
		up.ResetCounts()
	}
	// The right password works with the same client; a changed password is not served a cached token.
	if _, err := cl.HeadManifest(ctx, Credentials{Username: "alice", Password: "s3cret"}, "library/alpine", tag("3")); err != nil {
		t.Fatalf("right password: %v", err)
	}
	if _, err := cl.HeadManifest(ctx, Credentials{Username: "alice", Password: "other"}, "library/alpine", tag("3")); err == nil {
		t.Error("a wrong password reused the token of the right one")
	}
	if (Credentials{Username: "alice", Password: "x"}).ID() != "alice" || (Credentials{}).ID() != "anonymous" {
		t.Error("Credentials.ID")
	}
}

func TestRegistryRejectsFreshToken(t *testing.T) {
	t.Parallel()
	up := testregistry.New(t, testregistry.Options{})
	up.PushRandomImage(t, "library/alpine", "3", 1, 512)
	// Every registry request carrying a token is answered 401, as when the
	// upstream refuses the identity access to the repository.
	deny := tamper{http.DefaultTransport, func(res *http.Response) {
		if res.Request.Header.Get("Authorization") != "" && strings.HasPrefix(res.Request.URL.Path, "/v2/") {
			res.StatusCode = http.StatusUnauthorized
		}
	}}
	cl := newClient(t, up, Options{Transport: deny})
	_, err := cl.HeadManifest(context.Background(), Credentials{}, "library/alpine", tag("3"))
	checkErr(t, "401 with fresh token", err, oci.ErrUnavailable, 401, "rejected the credentials of anonymous")
	if n := up.Count("HEAD", testregistry.KindManifest); n != 2 {
		t.Errorf("%d HEADs, want 2 (challenge, fresh token)", n)
	}
}

// TestNotFoundOrPrivate: Docker Hub answers a repository that does not
// exist, or that the credentials may not read, with 401 insufficient_scope
// even to a token it has just issued. That is "not found"
// (oci.ErrNameUnknown), not a credential failure; a cached token refused
// so is first replaced, as any refused cached token.
func TestNotFoundOrPrivate(t *testing.T) {
	t.Parallel()
	up := testregistry.New(t, testregistry.Options{Users: map[string]string{"alice": "pw"}, HubNotFound: true})
	img := up.PushRandomImage(t, "library/alpine", "3", 1, 512)
	layers, _ := img.Layers()
	layer := digestOf(t, layers[0])
	cl := newClient(t, up, Options{})
	ctx := context.Background()
	anon := Credentials{}

	for name, call := range map[string]func(repo string) error{
		"HEAD manifest": func(repo string) error { _, err := cl.HeadManifest(ctx, anon, repo, tag("3")); return err },
		"GET manifest":  func(repo string) error { _, err := cl.GetManifest(ctx, anon, repo, tag("3")); return err },
		"HEAD blob":     func(repo string) error { _, err := cl.HeadBlob(ctx, anon, repo, layer); return err },
		"GET blob": func(repo string) error {
			rc, _, err := cl.GetBlob(ctx, anon, repo, layer)
			if err == nil {
				rc.Close()
			}
			return err
		},
	} {
		up.ResetCounts()
		err := call("library/typo")
		checkErr(t, name, err, oci.ErrNameUnknown, 401, "not found on "+up.Host(), "library/typo does not exist there, or it is private and anonymous may not read it")
		if errors.Is(err, oci.ErrUnavailable) {
			t.Errorf("%s: %v also matches ErrUnavailable", name, err)
		}
		if n := up.Count("GET", testregistry.KindToken); n != 1 {
			t.Errorf("%s: %d token requests, want 1", name, n)
		}
		var e *Error
		if errors.As(err, &e) && strings.Contains(e.Public(), up.Host()) {
			t.Errorf("%s: Public() names the host: %q", name, e.Public())
		}
	}

	// A repository that turned private: the cached token is refused, a
	// fresh one too, and only then is it "not found".
	if _, err := cl.HeadManifest(ctx, anon, "library/alpine", tag("3")); err != nil {
		t.Fatal(err)
	}
	up.SetPrivate("library/alpine", "alice")
	up.ResetCounts()
	_, err := cl.HeadManifest(ctx, anon, "library/alpine", tag("3"))
	checkErr(t, "turned private", err, oci.ErrNameUnknown, 401, "library/alpine does not exist there")
	if n := up.Count("GET", testregistry.KindToken); n != 1 {
		t.Errorf("turned private: %d token requests, want 1 (the cached token replaced once)", n)
	}
	if _, err := cl.HeadManifest(ctx, Credentials{Username: "alice", Password: "pw"}, "library/alpine", tag("3")); err != nil {
		t.Errorf("its reader: %v", err)
	}
	// Wrong credentials fail at the token service: still a credential failure.
	_, err = cl.HeadManifest(ctx, Credentials{Username: "alice", Password: "wrong"}, "library/alpine", tag("3"))
	checkErr(t, "wrong password", err, oci.ErrUnavailable, 401, "token service rejected the credentials of alice")
}

func TestBlobs(t *testing.T) {
	t.Parallel()
	up := testregistry.New(t, testregistry.Options{})
	img := up.PushRandomImage(t, "library/alpine", "3", 1, 64<<10)
	layers, _ := img.Layers()
	d := digestOf(t, layers[0])
	size, _ := layers[0].Size()
	cl := newClient(t, up, Options{})
	ctx := context.Background()

	desc, err := cl.HeadBlob(ctx, Credentials{}, "library/alpine", d)
	if err != nil || desc.Digest != d || desc.Size != size {
		t.Errorf("HeadBlob = %+v %v, want size %d", desc, err, size)
	}
	check := func(name string) {
		t.Helper()
		rc, n, err := cl.GetBlob(ctx, Credentials{}, "library/alpine", d)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil || oci.FromBytes(b) != d || (n != -1 && n != size) {
			t.Errorf("%s: %d bytes (announced %d), digest %s, err %v; want %s", name, len(b), n, oci.FromBytes(b), err, d)
		}
	}
	check("direct")
	up.RedirectBlobs(true)
	check("via CDN")
	if up.CDNRequests() != 1 || up.CDNSawAuthorization() {
		t.Errorf("CDN requests %d, saw Authorization %v; want 1, false", up.CDNRequests(), up.CDNSawAuthorization())
	}

	// A CDN on the same host name (another port) would get the header from
	// net/http; the client must strip it itself.
	cdn := strings.TrimPrefix(up.CDNURL(), "http://localhost")
	sameHost := tamper{http.DefaultTransport, func(res *http.Response) {
		if loc := res.Header.Get("Location"); loc != "" {
			res.Header.Set("Location", strings.Replace(loc, "localhost"+cdn, "127.0.0.1"+cdn, 1))
		}
	}}
	cl = newClient(t, up, Options{Transport: sameHost})
	up.ResetCounts()
	check("via CDN on 127.0.0.1")
	if up.CDNRequests() != 1 || up.CDNSawAuthorization() {
		t.Errorf("same-host CDN: requests %d, saw Authorization %v; want 1, false", up.CDNRequests(), up.CDNSawAuthorization())
	}

	// Cancelling the context ends the body.
	up.RedirectBlobs(false)
	up.SetBandwidth(8 << 10)
	cctx, cancel := context.WithCancel(ctx)
	rc, _, err := cl.GetBlob(cctx, Credentials{}, "library/alpine", d)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	cancel()
	if _, err := io.ReadAll(rc); !errors.Is(err, context.Canceled) {
		t.Errorf("read after cancel: %v, want context.Canceled", err)
	}
}

func TestParseRateLimit(t *testing.T) {
	t.Parallel()
	cases := []struct {
		limit, remaining, source string
		want                     RateLimit
		ok                       bool
	}{
		{"100;w=21600", "76;w=21600", "1.2.3.4", RateLimit{Limit: 100, Remaining: 76, Window: 6 * time.Hour, Source: "1.2.3.4"}, true},
		{"200", "0", "", RateLimit{Limit: 200, Remaining: 0}, true},
		{" 100 ; w=3600 ; comment=x", "5;w=3600", " acct ", RateLimit{Limit: 100, Remaining: 5, Window: time.Hour, Source: "acct"}, true},
		{"100;w=bad", "1;w=21600", "", RateLimit{Limit: 100, Remaining: 1, Window: 6 * time.Hour}, true},
		{"", "1;w=21600", "", RateLimit{}, false},
		{"100;w=21600", "", "", RateLimit{}, false},
		{"x;w=21600", "1", "", RateLimit{}, false},
		{"-1", "1", "", RateLimit{}, false},
	}
	for _, c := range cases {
		got, ok := ParseRateLimit(c.limit, c.remaining, c.source)
		if ok != c.ok || got != c.want {
			t.Errorf("ParseRateLimit(%q, %q, %q) = %+v %v, want %+v %v", c.limit, c.remaining, c.source, got, ok, c.want, c.ok)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := map[string]time.Duration{
		"30": 30 * time.Second, "0": 0, "": 0, "soon": 0, "-5": 0,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Minute).Format(http.TimeFormat):     0,
	}
	for in, want := range cases {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestParseChallenge(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   []string
		want challenge
		ok   bool
	}{
		{[]string{`Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"`},
			challenge{"bearer", "https://auth.docker.io/token", "registry.docker.io"}, true},
		{[]string{`bearer realm=https://a/t, service="s\"q"`}, challenge{"bearer", "https://a/t", `s"q`}, true},
		{[]string{`Basic realm="Registry Realm"`}, challenge{"basic", "Registry Realm", ""}, true},
		{[]string{`Negotiate`, `Basic realm="r"`}, challenge{"basic", "r", ""}, true},
		{[]string{`Bearer service="no realm"`}, challenge{}, false},
		{nil, challenge{}, false},
	}
	for _, c := range cases {
		got, ok := parseChallenge(c.in)
		if ok != c.ok || got != c.want {
			t.Errorf("parseChallenge(%q) = %+v %v, want %+v %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestErrorMessage(t *testing.T) {
	t.Parallel()
	e := &Error{Op: "GET manifest", Host: "h:1", Repo: "library/a", Ref: "sha256:" + strings.Repeat("0", 64),
		Status: 429, Code: "TOOMANYREQUESTS", Message: "slow down", sentinel: oci.ErrTooManyRequests, retryAfter: time.Second}
	want := "GET manifest library/a@sha256:" + strings.Repeat("0", 64) + " from h:1: status 429: TOOMANYREQUESTS: slow down (too many requests)"
	if e.Error() != want {
		t.Errorf("Error() = %q\nwant      %q", e.Error(), want)
	}
	if !errors.Is(e, oci.ErrTooManyRequests) || errors.Is(e, oci.ErrUnavailable) || e.RetryAfter() != time.Second {
		t.Error("Unwrap/RetryAfter")
	}
}

// A rate-limit check says whether the credentials were verified: only when
// the upstream asked for them and accepted them.
func TestCheckRateLimitCredentialVerified(t *testing.T) {
	t.Parallel()
	up := testregistry.New(t, testregistry.Options{Users: map[string]string{"alice": "s3cret"}})
	up.PushRandomImage(t, "ratelimitpreview/test", "latest", 1, 64)
	alice := Credentials{Username: "alice", Password: "s3cret"}
	tests := []struct {
		name  string
		url   string
		creds Credentials
		want  bool
	}{
		{"credentials the token service accepted", up.URL, alice, true},
		{"anonymous", up.URL, Credentials{}, false},
		{"an upstream that asks for no credentials", up.PushURL(), alice, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := New(Options{URL: tt.url})
			if err != nil {
				t.Fatal(err)
			}
			r, err := c.CheckRateLimit(context.Background(), tt.creds)
			if err != nil {
				t.Fatal(err)
			}
			if r.CredentialVerified != tt.want {
				t.Errorf("CredentialVerified = %v, want %v", r.CredentialVerified, tt.want)
			}
		})
	}
}
