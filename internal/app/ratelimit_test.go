package app_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dproxy/dproxy/internal/config"
	"github.com/dproxy/dproxy/internal/store"
	"github.com/dproxy/dproxy/internal/testclock"
	"github.com/dproxy/dproxy/internal/testregistry"
)

// rlEnv is a server on a fake clock whose group acme pulls with Docker Hub
// credentials, so the upstream's token requests and rate limits belong to
// one credential.
type rlEnv struct {
	*env
	clock *testclock.Clock
	tok   string // alice's personal access token
}

func newRateLimitEnv(t *testing.T, window time.Duration, configure ...func(*config.Config)) rlEnv {
	t.Helper()
	clock := testclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	e := newEnv(t, envOptions{
		// The upstream's tokens outlive the 6 hours the tests span, so a
		// token request after the first is one the server made needlessly.
		upstream: testregistry.Options{Users: map[string]string{"hubuser": "hubsecret"}, TokenTTL: 7 * time.Hour},
		clock:    clock,
		// A revalidation that times out serves the cached copy without
		// confirming it, and the next pull revalidates again: a busy
		// machine must not turn HEADs into timeouts.
		revalidate: time.Minute,
		configure: func(c *config.Config) {
			for _, f := range configure {
				f(c)
			}
		},
	})
	e.group("acme")
	tok := e.user("alice", "acme", store.RoleGuest)
	ctx := context.Background()
	g, err := e.app.Store.GroupByPath(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	s, err := e.app.Store.ProxySetting(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	s.Identity, s.Secret, s.FreshnessWindow = "hubuser", "hubsecret", window
	if err := e.app.Store.UpdateProxySetting(ctx, s); err != nil {
		t.Fatal(err)
	}
	return rlEnv{env: e, clock: clock, tok: tok}
}

// manifest GETs image:ref through dproxy and returns the response.
func (e rlEnv) manifest(image, ref string) (*http.Response, []byte) {
	repo := "acme/dependency_proxy/containers/" + image
	return e.do(http.MethodGet, "/v2/"+repo+"/manifests/"+ref, e.jwt("alice", e.tok, repo))
}

// upstreamRequests counts every registry and token request the upstream saw.
func (e rlEnv) upstreamRequests() int {
	n := 0
	for _, c := range e.up.Counts() {
		n += c
	}
	return n
}

// Every pull of a cached tag costs one free upstream HEAD and no GET; the
// upstream token is fetched once and reused while it lasts.
func TestRevalidationSpendsHeadsNotPulls(t *testing.T) {
	t.Parallel()
	e := newRateLimitEnv(t, 0)
	e.up.PushRandomImage(t, "library/app", "v1", 1, 512)
	e.firstPull(t, "app", "v1")
	for i := range 359 {
		e.clock.Add(time.Minute)
		if res, body := e.manifest("app", "v1"); res.StatusCode != http.StatusOK {
			t.Fatalf("pull %d: %d %s", i+2, res.StatusCode, body)
		}
	}
	if got := e.up.Count(http.MethodHead, testregistry.KindManifest); got != 359 {
		t.Errorf("upstream manifest HEADs after the first pull = %d, want 359 (one a pull)", got)
	}
	if got := e.up.Count(http.MethodGet, testregistry.KindManifest); got != 0 {
		t.Errorf("upstream manifest GETs after the first pull = %d, want 0", got)
	}
	if got := len(e.up.TokenRequests()); got != 0 {
		t.Errorf("upstream token requests after the first pull = %d, want 0 (the token is cached)", got)
	}
}

// firstPull pulls a cold tag: one upstream token request and one manifest
// GET (sent once more after the upstream's 401 challenge, which is not a
// pull), then resets the upstream's counters.
func (e rlEnv) firstPull(t *testing.T, image, ref string) {
	t.Helper()
	if res, body := e.manifest(image, ref); res.StatusCode != http.StatusOK {
		t.Fatalf("first pull: %d %s", res.StatusCode, body)
	}
	if got := len(e.up.TokenRequests()); got != 1 {
		t.Errorf("upstream token requests of the first pull = %d, want 1", got)
	}
	if got := e.up.Count(http.MethodGet, testregistry.KindManifest); got != 2 {
		t.Errorf("upstream manifest GETs of the first pull = %d, want 2 (the 401 challenge, then the pull)", got)
	}
	e.up.ResetCounts()
}

// With a 5-minute freshness window, 360 pulls spread over 6 hours cost at
// most one HEAD per window.
func TestFreshnessWindowSpreadOverSixHours(t *testing.T) {
	t.Parallel()
	e := newRateLimitEnv(t, 5*time.Minute)
	e.up.PushRandomImage(t, "library/app", "v1", 1, 512)
	e.firstPull(t, "app", "v1")
	for i := range 359 {
		e.clock.Add(time.Minute)
		if res, body := e.manifest("app", "v1"); res.StatusCode != http.StatusOK {
			t.Fatalf("pull %d: %d %s", i+2, res.StatusCode, body)
		}
	}
	heads := e.up.Count(http.MethodHead, testregistry.KindManifest)
	if heads > 72 || heads == 0 {
		t.Errorf("upstream manifest HEADs over 6 hours = %d, want 1..72 (one per 5-minute window)", heads)
	}
	if got := e.up.Count(http.MethodGet, testregistry.KindManifest); got != 0 {
		t.Errorf("upstream manifest GETs after the first pull = %d, want 0", got)
	}
}

// At the reserve, a moved tag with a cached copy is served from cache
// without a GET; uncached content still goes upstream.
func TestRateLimitReserveServesCachedCopy(t *testing.T) {
	t.Parallel()
	e := newRateLimitEnv(t, 0)
	e.up.PushRandomImage(t, "library/app", "v1", 1, 512)
	e.up.SetRateLimit(100, 50)
	res, body := e.manifest("app", "v1")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("first pull: %d %s", res.StatusCode, body)
	}
	cached := res.Header.Get("Docker-Content-Digest")

	e.up.SetRateLimit(100, 10) // at the default reserve of 10
	e.manifest("app", "v1")    // a HEAD sees the new remaining count
	e.up.PushRandomImage(t, "library/app", "v1", 1, 512)
	e.up.ResetCounts()
	res, _ = e.manifest("app", "v1")
	if res.StatusCode != http.StatusOK || res.Header.Get("Docker-Content-Digest") != cached {
		t.Errorf("moved tag at the reserve: %d digest %s, want 200 with the cached %s", res.StatusCode, res.Header.Get("Docker-Content-Digest"), cached)
	}
	if got := e.up.Count(http.MethodGet, testregistry.KindManifest); got != 0 {
		t.Errorf("upstream manifest GETs at the reserve = %d, want 0", got)
	}
	if got := e.up.Count(http.MethodHead, testregistry.KindManifest); got != 1 {
		t.Errorf("upstream manifest HEADs at the reserve = %d, want 1 (HEADs are free)", got)
	}
	if !strings.Contains(e.logs.String(), "serving cached manifest instead of the upstream's") ||
		!strings.Contains(e.logs.String(), "pull rate limit is at the reserve") {
		t.Errorf("no log line saying the cached copy was served because of the reserve:\n%s", e.logs.String())
	}

	e.up.PushRandomImage(t, "library/other", "v1", 1, 512)
	if res, body := e.manifest("other", "v1"); res.StatusCode != http.StatusOK {
		t.Errorf("uncached image at the reserve: %d %s, want 200 from upstream", res.StatusCode, body)
	}
	if got := e.up.Count(http.MethodGet, testregistry.KindManifest); got != 1 {
		t.Errorf("upstream manifest GETs for the uncached image = %d, want 1", got)
	}

	exp := metricsText(t, e.env)
	for _, want := range []string{
		`dproxy_stale_served_total{kind="manifest",reason="rate_limit_reserve"} 1`,
		`dproxy_upstream_ratelimit_limit{credential="hubuser",upstream="` + e.up.Host() + `"} 100`,
		`dproxy_upstream_ratelimit_remaining{credential="hubuser",upstream="` + e.up.Host() + `"} 10`,
	} {
		if !strings.Contains(exp, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if !strings.Contains(e.logs.String(), "upstream pull rate limit at the reserve") {
		t.Errorf("no warning when remaining reached the reserve:\n%s", e.logs.String())
	}
}

// The reserve is configurable: at 3, a moved tag is fetched while 5 pulls
// remain and served from cache at 3; at 0 (off), it is fetched even with 1
// left, and no reserve warning is logged.
func TestRateLimitReserveConfigured(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		reserve        int
		fetchedAt      int // remaining count at which a moved tag is still fetched
		cachedAt       int // remaining count at which the cached copy is served; -1: never
		reserveWarning bool
	}{
		{reserve: 3, fetchedAt: 5, cachedAt: 3, reserveWarning: true},
		{reserve: 0, fetchedAt: 1, cachedAt: -1},
	} {
		t.Run(fmt.Sprintf("reserve %d", c.reserve), func(t *testing.T) {
			t.Parallel()
			e := newRateLimitEnv(t, 0, func(cfg *config.Config) { cfg.RateLimitReserve = c.reserve })
			e.up.PushRandomImage(t, "library/app", "v1", 1, 512)
			// moved pulls after the upstream reports remaining, with the
			// tag moved, and returns whether the new manifest was served.
			moved := func(remaining int) bool {
				t.Helper()
				e.up.SetRateLimit(100, remaining)
				e.manifest("app", "v1") // a HEAD sees the remaining count
				want := imageDigest(t, e.up.PushRandomImage(t, "library/app", "v1", 1, 512))
				res, body := e.manifest("app", "v1")
				if res.StatusCode != http.StatusOK {
					t.Fatalf("pull at %d remaining: %d %s", remaining, res.StatusCode, body)
				}
				return res.Header.Get("Docker-Content-Digest") == want
			}
			if !moved(c.fetchedAt) {
				t.Errorf("at %d remaining the moved tag was not fetched", c.fetchedAt)
			}
			if c.cachedAt >= 0 && moved(c.cachedAt) {
				t.Errorf("at %d remaining the moved tag was fetched, want the cached copy", c.cachedAt)
			}
			if got := strings.Contains(e.logs.String(), "at the reserve"); got != c.reserveWarning {
				t.Errorf("reserve warning logged = %v, want %v:\n%s", got, c.reserveWarning, e.logs.String())
			}
		})
	}
}

// After a 429 with Retry-After: 60, nothing goes upstream with that
// credential for 60 s: cached content is served, uncached requests get
// 429 TOOMANYREQUESTS with Retry-After; after that the upstream is asked again.
func TestTooManyRequestsBacksOff(t *testing.T) {
	t.Parallel()
	e := newRateLimitEnv(t, 0)
	e.up.PushRandomImage(t, "library/app", "v1", 1, 512)
	e.up.PushRandomImage(t, "library/other", "v1", 1, 512)
	if res, body := e.manifest("app", "v1"); res.StatusCode != http.StatusOK {
		t.Fatalf("first pull: %d %s", res.StatusCode, body)
	}

	e.up.Set429(true, 60*time.Second)
	e.up.ResetCounts()
	if res, body := e.manifest("app", "v1"); res.StatusCode != http.StatusOK {
		t.Fatalf("cached tag when the upstream answers 429: %d %s, want the cached copy", res.StatusCode, body)
	}
	if got := e.upstreamRequests(); got != 1 {
		t.Fatalf("upstream requests for the pull that met the 429 = %d, want 1", got)
	}

	e.up.ResetCounts()
	for _, step := range []time.Duration{0, 30 * time.Second, 29 * time.Second} {
		e.clock.Add(step)
		if res, body := e.manifest("app", "v1"); res.StatusCode != http.StatusOK {
			t.Errorf("cached tag while backing off: %d %s", res.StatusCode, body)
		}
		res, body := e.manifest("other", "v1")
		code, _ := ociError(t, body)
		if res.StatusCode != http.StatusTooManyRequests || code != "TOOMANYREQUESTS" {
			t.Errorf("uncached image while backing off: %d %s %s, want 429 TOOMANYREQUESTS", res.StatusCode, code, body)
		}
		ra, err := strconv.Atoi(res.Header.Get("Retry-After"))
		if err != nil || ra <= 0 || ra > 60 {
			t.Errorf("Retry-After = %q, want 1..60 seconds", res.Header.Get("Retry-After"))
		}
	}
	if got := e.upstreamRequests(); got != 0 {
		t.Errorf("upstream requests while backing off = %d, want 0", got)
	}

	e.up.Set429(false, 0)
	e.clock.Add(2 * time.Second) // 61 s after the 429
	if res, body := e.manifest("other", "v1"); res.StatusCode != http.StatusOK {
		t.Errorf("uncached image after the back-off: %d %s", res.StatusCode, body)
	}
	if got := e.up.Count(http.MethodGet, testregistry.KindManifest); got != 1 {
		t.Errorf("upstream manifest GETs after the back-off = %d, want 1", got)
	}
}

func metricsText(t *testing.T, e *env) string {
	t.Helper()
	return getMetrics(t, e.srv.URL, e.adminToken())
}

// upstreamRateLimits shows instance admins every credential's last seen
// limit, and everyone else the anonymous one only: the identities of other
// groups' Docker Hub accounts are not theirs to see.
func TestUpstreamRateLimitsVisibility(t *testing.T) {
	t.Parallel()
	e := newRateLimitEnv(t, 0)
	e.group("open")
	e.up.PushRandomImage(t, "library/app", "v1", 1, 512)
	e.up.SetRateLimit(100, 60)
	e.manifest("app", "v1") // as hubuser, acme's identity
	anon := e.user("anna", "open", store.RoleGuest)
	repo := "open/dependency_proxy/containers/app"
	if res, body := e.do(http.MethodGet, "/v2/"+repo+"/manifests/v1", e.jwt("anna", anon, repo)); res.StatusCode != http.StatusOK {
		t.Fatalf("anonymous pull: %d %s", res.StatusCode, body)
	}

	const q = `{ upstreamRateLimits { credential limit remaining } }`
	type entry struct {
		Credential       string
		Limit, Remaining int
	}
	var all struct{ UpstreamRateLimits []entry }
	e.ok(e.adminToken(), q, nil, &all)
	if len(all.UpstreamRateLimits) != 2 || all.UpstreamRateLimits[0].Credential != "anonymous" || all.UpstreamRateLimits[1].Credential != "hubuser" {
		t.Errorf("admin sees %+v, want anonymous and hubuser", all.UpstreamRateLimits)
	}
	owner := e.user("olga", "acme", store.RoleOwner, "api")
	var mine struct{ UpstreamRateLimits []entry }
	e.ok(owner, q, nil, &mine)
	if len(mine.UpstreamRateLimits) != 1 || mine.UpstreamRateLimits[0].Credential != "anonymous" || mine.UpstreamRateLimits[0].Limit != 100 {
		t.Errorf("non-admin sees %+v, want the anonymous entry only", mine.UpstreamRateLimits)
	}
}
