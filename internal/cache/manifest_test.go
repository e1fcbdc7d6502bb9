package cache_test

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dproxy/dproxy/internal/cache"
	"github.com/dproxy/dproxy/internal/metrics"
	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/testregistry"
	"github.com/dproxy/dproxy/internal/upstream"
)

// Concurrent requests for one tag share one upstream request: one GET when
// the tag is not cached, one HEAD when a cached tag is revalidated.
func TestConcurrentManifestRequestsShareOneUpstreamRequest(t *testing.T) {
	t.Parallel()
	const callers = 8
	for _, r := range []struct {
		name   string
		cached bool   // the tag is cached (and revalidated) before the callers come
		method string // the one upstream manifest request they share
	}{
		{"cold tag", false, http.MethodGet},
		{"cached tag revalidated", true, http.MethodHead},
	} {
		t.Run(r.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			upstreamCalls := newGate(t)
			var armed atomic.Bool
			h := newHarness(t, setup{intercept: func(req *http.Request, next http.RoundTripper) (*http.Response, error) {
				if armed.Load() && upstreamPath(req, r.method, "manifests") {
					if err := upstreamCalls.wait(req.Context()); err != nil {
						return nil, err
					}
				}
				return next.RoundTrip(req)
			}})
			img := h.push(t, "library/app", "v1", 1<<10)
			tg := h.target(t, "a", "library/app", upstream.Credentials{})
			ref := tag(t, "v1")
			// Learn the token first, so that one upstream request is one
			// request of the registry.
			if r.cached {
				if _, err := h.cache.Manifest(ctx, tg, ref); err != nil {
					t.Fatal(err)
				}
			} else if _, err := h.remote.HeadManifest(ctx, tg.Creds, tg.Image, ref); err != nil {
				t.Fatal(err)
			}
			h.up.ResetCounts()
			armed.Store(true)

			type result struct {
				m   cache.Manifest
				err error
			}
			waiting := make(chan struct{}, callers)
			results := make(chan result, callers)
			for range callers {
				go func() {
					m, err := h.cache.Manifest(&waitingCtx{Context: ctx, waiting: waiting}, tg, ref)
					results <- result{m, err}
				}()
			}
			// The upstream answers once every caller waits for the shared
			// request, or once every caller sent a request of its own.
			for joined, held := 0, 0; joined < callers && held < callers; {
				select {
				case <-waiting:
					joined++
				case <-upstreamCalls.arrived:
					held++
				case <-time.After(patience):
					t.Fatalf("after %s, %d callers wait for a shared request and %d requests reached the upstream, of %d callers", patience, joined, held, callers)
				}
			}
			upstreamCalls.release()
			for range callers {
				if res := <-results; res.err != nil || res.m.Digest != img.digest {
					t.Errorf("caller got %s, %v; want %s", res.m.Digest, res.err, img.digest)
				}
			}
			if n := h.up.Count(r.method, testregistry.KindManifest); n != 1 {
				t.Errorf("%d concurrent requests cost %d upstream manifest %ss, want 1", callers, n, r.method)
			}
			if n := h.requests(); n != 1 {
				t.Errorf("%d concurrent requests cost %d upstream requests in all (%v), want 1", callers, n, h.up.Counts())
			}
		})
	}
}

// When a cached tag moved upstream and the GET of its new manifest fails,
// the cached manifest is served (stale) and kept.
func TestMovedTagServedStaleWhenGetFails(t *testing.T) {
	t.Parallel()
	for _, r := range []struct {
		name string
		fail func(*testregistry.Upstream)
	}{
		{"503", func(u *testregistry.Upstream) { u.SetStatus(http.StatusServiceUnavailable) }},
		{"429", func(u *testregistry.Upstream) { u.Set429(true, 0) }},
		{"connection dropped", func(u *testregistry.Upstream) { u.SetDown(true) }},
	} {
		t.Run(r.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			var h *harness
			var armed atomic.Bool
			var gets atomic.Int32
			h = newHarness(t, setup{intercept: func(req *http.Request, next http.RoundTripper) (*http.Response, error) {
				if armed.Load() && upstreamPath(req, http.MethodGet, "manifests") {
					// The HEAD before answered; the upstream fails from here on.
					gets.Add(1)
					r.fail(h.up)
				}
				return next.RoundTrip(req)
			}})
			old := h.push(t, "library/app", "v1", 1<<10)
			tg := h.target(t, "a", "library/app", upstream.Credentials{})
			ref := tag(t, "v1")
			cached, err := h.cache.Manifest(ctx, tg, ref)
			if err != nil || cached.Digest != old.digest {
				t.Fatalf("first pull: %s, %v; want %s", cached.Digest, err, old.digest)
			}
			moved := h.push(t, "library/app", "v1", 1<<10)
			armed.Store(true)

			m, err := h.cache.Manifest(ctx, tg, ref)
			if err != nil {
				t.Fatalf("tag moved to %s, GET failed: %v; want the cached %s", moved.digest, err, old.digest)
			}
			if m.Digest != old.digest || m.Result != metrics.ResultStale || !bytes.Equal(m.Content, cached.Content) {
				t.Errorf("tag moved to %s, GET failed: served %s (%s); want the cached %s (%s)", moved.digest, m.Digest, m.Result, old.digest, metrics.ResultStale)
			}
			if gets.Load() == 0 {
				t.Errorf("no upstream GET of the moved tag was tried")
			}
			if row, err := h.store.Manifest(ctx, tg.GroupID, tg.Image, "v1"); err != nil || row.Digest != old.digest {
				t.Errorf("cached tag after the failed GET: %s, %v; want %s kept", row.Digest, err, old.digest)
			}
		})
	}
}

// A tag confirmed by the upstream less than FreshnessWindow ago is served
// without any upstream request; from the window on, it is revalidated
// with a HEAD (which restarts the window).
func TestFreshnessWindowBoundary(t *testing.T) {
	t.Parallel()
	const window = time.Minute
	type step struct {
		after time.Duration // since the tag was first fetched
		heads int           // upstream requests: HEADs of the manifest, nothing else
	}
	for _, r := range []struct {
		name  string
		steps []step
	}{
		{"just inside the window", []step{{window - time.Nanosecond, 0}}},
		{"at the window", []step{{window, 1}}},
		{"past the window", []step{{window + time.Hour, 1}}},
		{"a revalidation restarts the window", []step{{window, 1}, {2*window - time.Nanosecond, 0}, {2 * window, 1}}},
	} {
		t.Run(r.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			h := newHarness(t, setup{})
			img := h.push(t, "library/app", "v1", 1<<10)
			tg := h.target(t, "a", "library/app", upstream.Credentials{})
			tg.FreshnessWindow = window
			ref := tag(t, "v1")
			if _, err := h.cache.Manifest(ctx, tg, ref); err != nil {
				t.Fatal(err)
			}
			for _, s := range r.steps {
				h.up.ResetCounts()
				h.clock.Set(epoch.Add(s.after))
				m, err := h.cache.Manifest(ctx, tg, ref)
				if err != nil || m.Digest != img.digest || m.Result != metrics.ResultHit {
					t.Fatalf("%s after the fetch: %s (%s), %v; want %s (%s)", s.after, m.Digest, m.Result, err, img.digest, metrics.ResultHit)
				}
				heads := h.up.Count(http.MethodHead, testregistry.KindManifest)
				if heads != s.heads || h.requests() != s.heads {
					t.Errorf("%s after the fetch (window %s): %d manifest HEADs, %d upstream requests in all (%v); want %d and %d",
						s.after, window, heads, h.requests(), h.up.Counts(), s.heads, s.heads)
				}
			}
		})
	}
}

// When the upstream fails, a cached tag is served after one failed
// attempt (the client's retries are for callers with nothing cached); the
// upstream's circuit breaker then has cached tags served without any
// upstream request, and uncached content asked for once, without retries,
// and refused saying since when the upstream fails, until a probe after
// the back-off finds it answering again. Counted in requests sent, on the
// harness clock.
func TestStaleServedWithoutWaiting(t *testing.T) {
	t.Parallel()
	for _, r := range []struct {
		name string
		fail func(*testregistry.Upstream, bool)
	}{
		{"503", func(u *testregistry.Upstream, on bool) {
			if on {
				u.SetStatus(http.StatusServiceUnavailable)
			} else {
				u.SetStatus(0)
			}
		}},
		{"connection dropped", func(u *testregistry.Upstream, on bool) { u.SetDown(on) }},
	} {
		t.Run(r.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			var sent, tokens atomic.Int32
			m := metrics.New()
			h := newHarness(t, setup{
				remote:      upstream.Options{Retries: 3, BreakerBackoff: 2 * time.Second, Metrics: m},
				remoteClock: true,
				cache:       cache.Options{Metrics: m},
				intercept: func(req *http.Request, next http.RoundTripper) (*http.Response, error) {
					if strings.HasSuffix(req.URL.Path, "/token") {
						tokens.Add(1)
					} else {
						sent.Add(1)
					}
					return next.RoundTrip(req)
				},
			})
			defer h.remote.Close()
			img := h.push(t, "library/app", "v1", 1<<10)
			h.push(t, "library/other", "v1", 1<<10)
			tg := h.target(t, "a", "library/app", upstream.Credentials{})
			other := tg
			other.Image = "library/other"
			ref := tag(t, "v1")
			if _, err := h.cache.Manifest(ctx, tg, ref); err != nil {
				t.Fatal(err)
			}

			r.fail(h.up, true)
			before := sent.Load()
			got, err := h.cache.Manifest(ctx, tg, ref)
			if err != nil || got.Digest != img.digest || got.Result != metrics.ResultStale {
				t.Fatalf("cached tag, upstream failing: %s (%s), %v; want the cached %s stale", got.Digest, got.Result, err, img.digest)
			}
			if n := sent.Load() - before; n != 1 {
				t.Errorf("upstream requests before the cached tag was served: %d, want 1", n)
			}

			before = sent.Load()
			for range 3 {
				got, err = h.cache.Manifest(ctx, tg, ref)
				if err != nil || got.Result != metrics.ResultStale {
					t.Fatalf("cached tag, breaker open: %s, %v; want it stale", got.Result, err)
				}
			}
			if n := sent.Load() - before; n != 0 {
				t.Errorf("upstream requests for a cached tag while the breaker is open: %d, want 0", n)
			}
			before, beforeTokens := sent.Load(), tokens.Load()
			_, err = h.cache.Manifest(ctx, other, ref)
			if !errors.Is(err, oci.ErrUnavailable) || !strings.Contains(err.Error(), "is failing since") {
				t.Errorf("uncached tag, breaker open: %v; want ErrUnavailable saying since when the upstream fails", err)
			}
			// One attempt: a token for the other repository and the GET (or
			// only the token request, when it is refused).
			if n, tok := sent.Load()-before, tokens.Load()-beforeTokens; n > 1 || tok > 1 || n+tok == 0 {
				t.Errorf("upstream requests for an uncached tag while the breaker is open: %d and %d to the token service, want one attempt", n, tok)
			}
			checkMetrics(t, m, `dproxy_upstream_failing{upstream="`+h.up.Host()+`"} 1`)

			r.fail(h.up, false)
			h.clock.Add(2 * time.Second)
			got, err = h.cache.Manifest(ctx, tg, ref)
			if err != nil || got.Result != metrics.ResultStale {
				t.Fatalf("the request after the back-off: %s, %v; want it stale at once (the probe runs in the background)", got.Result, err)
			}
			h.remote.Close() // waits for the probe
			if _, failing := h.remote.Failing(); failing {
				t.Fatal("the upstream answers the probe, the breaker stays open")
			}
			if got, err = h.cache.Manifest(ctx, tg, ref); err != nil || got.Result != metrics.ResultHit {
				t.Errorf("after the probe: %s, %v; want the tag revalidated (hit)", got.Result, err)
			}

			checkMetrics(t, m,
				`dproxy_stale_served_total{kind="manifest",reason="unavailable"} 1`,
				`dproxy_stale_served_total{kind="manifest",reason="upstream_failing"} 4`,
				`dproxy_upstream_failing{upstream="`+h.up.Host()+`"} 0`)
		})
	}
}

// checkMetrics fails t unless m exposes every one of the lines want.
func checkMetrics(t *testing.T, m *metrics.Metrics, want ...string) {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, w := range want {
		if !strings.Contains(rec.Body.String(), w+"\n") {
			t.Errorf("metrics lack %s", w)
		}
	}
}
