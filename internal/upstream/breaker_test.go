package upstream

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/testclock"
	"github.com/dproxy/dproxy/internal/testregistry"
)

// sent counts the requests a client sends, whether or not they are answered.
type sent struct {
	mu    sync.Mutex
	n     map[string]int // "GET /v2/..." path kind → count
	inner http.RoundTripper
}

func (s *sent) RoundTrip(req *http.Request) (*http.Response, error) {
	s.mu.Lock()
	s.n[req.Method+" "+kindOfPath(req.URL.Path)]++
	s.mu.Unlock()
	return s.inner.RoundTrip(req)
}

func (s *sent) count(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n[key]
}

func kindOfPath(p string) string {
	switch {
	case p == "/v2/":
		return "ping"
	case strings.Contains(p, "/manifests/"):
		return "manifest"
	case strings.Contains(p, "/blobs/"):
		return "blob"
	}
	return "other" // the token service

}

// A failing upstream costs a caller with a cached copy (WithFallback) one
// attempt, without retries; the circuit breaker then refuses every request
// at once, without sending it, until the back-off has passed; the next
// request starts one probe of /v2/ in the background (and is refused
// itself); a probe that fails keeps the breaker open for twice the
// back-off, one that is answered closes it. Counted in requests sent, on
// an injected clock.
func TestBreaker(t *testing.T) {
	t.Parallel()
	for _, outage := range []struct {
		name string
		set  func(up *testregistry.Upstream, on bool)
	}{
		{"503", func(up *testregistry.Upstream, on bool) {
			if on {
				up.SetStatus(http.StatusServiceUnavailable)
			} else {
				up.SetStatus(0)
			}
		}},
		{"connection dropped", func(up *testregistry.Upstream, on bool) { up.SetDown(on) }},
		{"token service 503", func(up *testregistry.Upstream, on bool) {
			if on {
				up.SetTokenStatus(http.StatusServiceUnavailable)
				up.RevokeTokens()
			} else {
				up.SetTokenStatus(0)
			}
		}},
	} {
		t.Run(outage.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			up := testregistry.New(t, testregistry.Options{})
			up.PushRandomImage(t, "library/alpine", "3", 1, 512)
			clock := testclock.New(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
			tr := &sent{n: map[string]int{}, inner: http.DefaultTransport.(*http.Transport).Clone()}
			cl := newClient(t, up, Options{Now: clock.Now, Transport: tr, Retries: 3, BreakerBackoff: 2 * time.Second})
			defer cl.Close()
			if _, err := cl.HeadManifest(ctx, Credentials{}, "library/alpine", tag("3")); err != nil {
				t.Fatal(err)
			}
			if outage.name == "token service 503" {
				cl.mu.Lock()
				clear(cl.tokens) // the next request asks the token service
				cl.mu.Unlock()
			}
			heads, tokens := tr.count("HEAD manifest"), tr.count("GET other")

			outage.set(up, true)
			_, err := cl.HeadManifest(WithFallback(ctx), Credentials{}, "library/alpine", tag("3"))
			if !errors.Is(err, oci.ErrUnavailable) || errors.Is(err, ErrCircuitOpen) {
				t.Fatalf("the first request in the outage: %v, want the upstream's failure", err)
			}
			// One attempt: the HEAD, or the token request that fails before it.
			if n := tr.count("HEAD manifest") + tr.count("GET other") - heads - tokens; n != 1 {
				t.Errorf("requests sent for a caller with a fallback: %d, want 1 (no retries)", n)
			}
			if _, failing := cl.Failing(); !failing {
				t.Fatal("the breaker did not open after the failure")
			}
			// Open: a caller with a fallback is refused at once, nothing sent.
			heads = tr.count("HEAD manifest")
			_, err = cl.HeadManifest(WithFallback(ctx), Credentials{}, "library/alpine", tag("3"))
			if !errors.Is(err, ErrCircuitOpen) || !errors.Is(err, oci.ErrUnavailable) || !strings.Contains(err.Error(), "is failing since 2030-01-01T00:00:00Z") {
				t.Errorf("while open: %v, want an ErrCircuitOpen saying since when it fails", err)
			}
			if n := tr.count("HEAD manifest") - heads; n != 0 {
				t.Errorf("HEADs sent for a caller with a fallback while open: %d, want 0", n)
			}
			// One with nothing cached: sent once, no retries, told since when.
			before := tr.count("GET blob") + tr.count("GET other")
			_, _, err = cl.GetBlob(ctx, Credentials{}, "library/alpine", oci.FromBytes([]byte("x")))
			if errors.Is(err, ErrCircuitOpen) || !errors.Is(err, oci.ErrUnavailable) || !strings.Contains(err.Error(), "is failing since 2030-01-01T00:00:00Z") {
				t.Errorf("an uncached blob while open: %v, want the upstream's failure saying since when it fails", err)
			}
			if n := tr.count("GET blob") + tr.count("GET other") - before; n != 1 {
				t.Errorf("requests sent for an uncached blob while open: %d, want 1 (no retries)", n)
			}
			if _, failing := cl.Failing(); !failing {
				t.Fatal("the breaker closed after a failed request")
			}
			outage.set(up, false) // recovered, but nobody knows before the probe
			clock.Add(time.Second)
			if _, err := cl.HeadManifest(WithFallback(ctx), Credentials{}, "library/alpine", tag("3")); !errors.Is(err, ErrCircuitOpen) {
				t.Errorf("within the back-off: %v, want ErrCircuitOpen", err)
			}
			cl.Close() // no probe runs
			if n, p := tr.count("HEAD manifest")-heads, tr.count("GET ping"); n != 0 || p != 0 {
				t.Errorf("while open, within the back-off: %d HEADs and %d probes sent, want none", n, p)
			}

			// A failed probe doubles the back-off.
			outage.set(up, true)
			clock.Add(time.Second)
			if _, err := cl.HeadManifest(WithFallback(ctx), Credentials{}, "library/alpine", tag("3")); !errors.Is(err, ErrCircuitOpen) {
				t.Errorf("the request starting the probe: %v, want ErrCircuitOpen at once", err)
			}
			cl.Close() // waits for the probe
			if p := tr.count("GET ping"); p != 1 {
				t.Fatalf("probes after the back-off: %d, want 1", p)
			}
			failingProbe := outage.name != "token service 503" // /v2/ answers while only the token service fails
			if _, failing := cl.Failing(); failing != failingProbe {
				t.Fatalf("after a probe in the outage (%s): failing %v, want %v", outage.name, failing, failingProbe)
			}
			if failingProbe {
				clock.Add(3 * time.Second)
				cl.HeadManifest(WithFallback(ctx), Credentials{}, "library/alpine", tag("3"))
				cl.Close()
				if p := tr.count("GET ping"); p != 1 {
					t.Errorf("probes 3s after a failed probe: %d, want still 1 (the back-off doubled to 4s)", p)
				}
				outage.set(up, false)
				clock.Add(time.Second)
				cl.HeadManifest(WithFallback(ctx), Credentials{}, "library/alpine", tag("3"))
				cl.Close()
				if p := tr.count("GET ping"); p != 2 {
					t.Errorf("probes 4s after a failed probe: %d, want 2", p)
				}
			}
			outage.set(up, false)
			if _, failing := cl.Failing(); failing {
				t.Fatal("the breaker is still open after a probe the upstream answered")
			}
			if n := tr.count("HEAD manifest") - heads; n != 0 {
				t.Errorf("HEADs sent while the breaker was open: %d, want 0", n)
			}
			if _, err := cl.HeadManifest(ctx, Credentials{}, "library/alpine", tag("3")); err != nil {
				t.Errorf("after the breaker closed: %v", err)
			}
		})
	}
}

// A request of a caller with nothing cached is sent once while the breaker
// is open; when the upstream answers it (even "not found"), the breaker
// closes without a probe.
func TestBreakerClosedByAnAnsweredRequest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	up := testregistry.New(t, testregistry.Options{})
	up.PushRandomImage(t, "library/alpine", "3", 1, 512)
	clock := testclock.New(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	tr := &sent{n: map[string]int{}, inner: http.DefaultTransport.(*http.Transport).Clone()}
	cl := newClient(t, up, Options{Now: clock.Now, Transport: tr, Retries: 3})
	defer cl.Close()
	up.SetStatus(http.StatusServiceUnavailable)
	if _, err := cl.HeadManifest(WithFallback(ctx), Credentials{}, "library/alpine", tag("3")); err == nil {
		t.Fatal("no failure while the upstream answers 503")
	}
	if _, failing := cl.Failing(); !failing {
		t.Fatal("the breaker did not open")
	}
	up.SetStatus(0)
	// An answer that is not an outage, here a 404, shows the upstream serves.
	if _, err := cl.GetManifest(ctx, Credentials{}, "library/alpine", tag("absent")); !errors.Is(err, oci.ErrManifestUnknown) {
		t.Fatalf("unknown tag, upstream recovered: %v, want ErrManifestUnknown", err)
	}
	if _, failing := cl.Failing(); failing {
		t.Error("the breaker stays open after an answered request")
	}
	if p := tr.count("GET ping"); p != 0 {
		t.Errorf("probes: %d, want none", p)
	}
}
