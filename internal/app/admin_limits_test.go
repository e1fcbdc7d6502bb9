package app_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dproxy/dproxy/internal/app"
	"github.com/dproxy/dproxy/internal/config"
	"github.com/dproxy/dproxy/internal/store"
	"github.com/dproxy/dproxy/internal/testclock"
	"github.com/dproxy/dproxy/internal/testregistry"
)

// One GraphQL request with many aliases of an upstream-touching field sends
// one upstream request, and a credential's check is reused for 10 s.
func TestRateLimitCheckIsNotAmplified(t *testing.T) {
	t.Parallel()
	clock := testclock.New(time.Now())
	e := newEnv(t, envOptions{appOptions: []app.Option{app.WithClock(clock.Now)}})
	e.up.PushRandomImage(t, "ratelimitpreview/test", "latest", 1, 64)
	e.up.SetRateLimit(100, 77)
	e.group("acme")
	tok := e.user("alice", "acme", store.RoleGuest, "api")
	one := `query { dockerHubRateLimit(groupPath: "acme") { remaining } }`
	var got struct {
		DockerHubRateLimit struct{ Remaining int }
	}
	// The first check also meets the upstream's challenge; later ones cost
	// one HEAD each.
	e.ok(tok, one, nil, &got)
	clock.Add(11 * time.Second)
	base := e.up.Count(http.MethodHead, testregistry.KindManifest)
	heads := func() int { return e.up.Count(http.MethodHead, testregistry.KindManifest) - base }

	var q strings.Builder
	q.WriteString("query {")
	for i := range 1000 {
		fmt.Fprintf(&q, ` a%d: dockerHubRateLimit(groupPath: "acme") { remaining }`, i)
	}
	q.WriteString(" }")
	r := e.gql(tok, q.String(), nil)
	if n := heads(); n != 1 {
		t.Fatalf("1,000 aliases sent %d upstream HEADs, want 1", n)
	}
	if len(r.Errors) != 999 || !strings.Contains(r.Errors[0].Message, "once per request") {
		t.Errorf("want 999 errors saying the field may be asked once per request, got %d: %.200s", len(r.Errors), r.messages())
	}

	for range 5 {
		e.ok(tok, one, nil, &got)
	}
	if n := heads(); n != 1 {
		t.Errorf("5 more requests within 10 s sent %d upstream HEADs in all, want 1", n)
	}
	if got.DockerHubRateLimit.Remaining != 77 {
		t.Errorf("remaining = %d, want 77", got.DockerHubRateLimit.Remaining)
	}

	clock.Add(11 * time.Second)
	e.ok(tok, one, nil, &got)
	if n := heads(); n != 2 {
		t.Errorf("a request after another 11 s: %d upstream HEADs in all, want 2", n)
	}

	// An upstream without rate-limit headers is unlimited.
	e.up.SetRateLimit(0, 0)
	clock.Add(11 * time.Second)
	var unlimited struct {
		DockerHubRateLimit struct {
			Unlimited bool
			Remaining *int
		}
	}
	e.ok(tok, `query { dockerHubRateLimit(groupPath: "acme") { unlimited remaining } }`, nil, &unlimited)
	if u := unlimited.DockerHubRateLimit; !u.Unlimited || u.Remaining != nil {
		t.Errorf("no rate-limit headers: %+v, want unlimited", u)
	}
}

func TestOversizedAdminRequestAnswers413(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	big := `query { groups { nodes { fullPath } } }` + strings.Repeat(" ", 1<<20)
	r := e.gql(e.adminToken(), big, nil)
	if r.status != http.StatusRequestEntityTooLarge || !strings.Contains(r.messages(), "larger than") {
		t.Errorf("a 1 MiB+ operation: status %d, errors %q; want 413 saying it is too large", r.status, r.messages())
	}
}

// The instance default Docker Hub account is the operator's: a puller or a
// group owner whose pull fails with it learns that it failed, not its name.
func TestInstanceDefaultIdentityNotInClientErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{upstream: testregistry.Options{Users: map[string]string{"hub-operator-7": "right"}, RequireAuth: true}})
	e.up.PushRandomImage(t, "library/alpine", "3", 1, 64)
	e.up.PushRandomImage(t, "ratelimitpreview/test", "latest", 1, 64)
	if err := e.app.Store.SetDefaultHubCredentials(t.Context(), store.HubCredentials{Identity: "hub-operator-7", Secret: "wrong"}); err != nil {
		t.Fatal(err)
	}
	e.group("acme")
	tok := e.user("alice", "acme", store.RoleOwner, "api")

	res, body := e.do(http.MethodGet, "/v2/acme/dependency_proxy/containers/alpine/manifests/3", e.jwt("alice", tok, "acme/dependency_proxy/containers/alpine"))
	code, msg := ociError(t, body)
	if res.StatusCode < 400 || strings.Contains(msg, "hub-operator-7") || !strings.Contains(msg, "instance default credentials") {
		t.Errorf("pull with rejected default credentials: %d %s %q; want an error naming the credentials by role only", res.StatusCode, code, msg)
	}
	r := e.gql(tok, `query { dockerHubRateLimit(groupPath: "acme") { remaining authenticatedAs } }`, nil)
	if m := r.messages(); m == "" || strings.Contains(m, "hub-operator-7") || strings.Contains(string(r.Data), "hub-operator-7") {
		t.Errorf("rate-limit check with rejected default credentials: errors %q, data %s; want an error without the identity", m, r.Data)
	}
}

// /metrics names every group and its cache size: on the main address it
// needs an instance admin's api token; with --metrics-addr it is not there.
func TestMetricsNeedAnAdminToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.group("acme")
	owner := e.user("alice", "acme", store.RoleOwner, "api")
	for _, c := range []struct {
		name, token string
		want        int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"a group owner's api token", owner, http.StatusUnauthorized},
		{"an admin's api token", e.adminToken(), http.StatusOK},
	} {
		res, body := e.do(http.MethodGet, "/metrics", c.token)
		if res.StatusCode != c.want || (c.want == http.StatusOK) != strings.Contains(string(body), "dproxy_http_requests_total") {
			t.Errorf("/metrics with %s: %d %.100s, want %d", c.name, res.StatusCode, body, c.want)
		}
	}

	elsewhere := newEnv(t, envOptions{configure: func(c *config.Config) { c.MetricsAddr = "127.0.0.1:0" }})
	if res, _ := elsewhere.do(http.MethodGet, "/metrics", elsewhere.adminToken()); res.StatusCode != http.StatusNotFound {
		t.Errorf("/metrics on the main address with metrics-addr set: %d, want 404", res.StatusCode)
	}
}
