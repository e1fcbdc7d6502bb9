package app_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/dproxy/dproxy/internal/auth"
	"github.com/dproxy/dproxy/internal/config"
	"github.com/dproxy/dproxy/internal/metrics"
	"github.com/dproxy/dproxy/internal/store"
	"github.com/dproxy/dproxy/internal/testregistry"
)

// setHubCreds sets (or with identity "", clears) a group's Docker Hub
// credentials.
func (e *env) setHubCreds(group, identity, secret string) {
	e.t.Helper()
	ctx := context.Background()
	ps, err := e.app.Store.ProxySetting(ctx, e.groupID(group))
	if err != nil {
		e.t.Fatal(err)
	}
	ps.Identity, ps.Secret = identity, secret
	if err := e.app.Store.UpdateProxySetting(ctx, ps); err != nil {
		e.t.Fatal(err)
	}
}

// TestUpstreamNotFoundOrPrivate: Docker Hub answers a repository that does
// not exist, or is private, with 401 insufficient_scope to the token it
// has just issued. dproxy answers 404 NAME_UNKNOWN saying so and what to
// do, for manifests and blobs, GET and HEAD, on the proxy and mirror
// paths; hub-creds that can read a private repository make it pullable;
// a cached tag keeps being served; wrong credentials stay a 502.
func TestUpstreamNotFoundOrPrivate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{
		upstream:  testregistry.Options{Users: map[string]string{"hubbot": "hub-pw"}, HubNotFound: true},
		configure: func(c *config.Config) { c.MirrorGroup = "acme" },
	})
	e.group("acme")
	tok := e.user("alice", "acme", store.RoleGuest)
	img := e.up.PushRandomImage(t, "acme/secret", "v1", 1, 1024)
	e.up.SetPrivate("acme/secret", "hubbot")
	layers, _ := img.Layers()
	layer, _ := layers[0].Digest()
	upHost := strings.TrimPrefix(e.up.URL, "http://")

	wantNotFound := func(what string, res *http.Response, body []byte, repo, who string) {
		t.Helper()
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("%s: status %d, want 404: %s", what, res.StatusCode, body)
			return
		}
		if len(body) == 0 { // a HEAD
			return
		}
		code, msg := ociError(t, body)
		for _, s := range []string{"not found on " + upHost, repo + " does not exist there, or it is private and " + who + " may not read it",
			"if it is private, set hub-creds for the group", "dproxy hub-creds set acme "} {
			if code != "NAME_UNKNOWN" || !strings.Contains(msg, s) {
				t.Errorf("%s: %s %q, want NAME_UNKNOWN saying %q", what, code, msg, s)
			}
		}
	}

	for _, p := range []struct {
		name, path, repo string // the case, the repository asked for, the upstream's
	}{
		{"a typo, proxy path", "acme/dependency_proxy/containers/alpyne", "library/alpyne"},
		{"a typo, mirror path", "library/alpyne", "library/alpyne"},
		{"a private repository without hub-creds", "acme/dependency_proxy/containers/acme/secret", "acme/secret"},
	} {
		name := p.path
		jwt := e.jwt("alice", tok, name)
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			res, body := e.do(method, "/v2/"+name+"/manifests/v1", jwt)
			wantNotFound(method+" manifest, "+p.name, res, body, p.repo, "anonymous")
			res, body = e.do(method, "/v2/"+name+"/blobs/"+layer.String(), jwt)
			wantNotFound(method+" blob, "+p.name, res, body, p.repo, "anonymous")
		}
	}

	// hub-creds that can read it make the private repository pullable.
	e.setHubCreds("acme", "hubbot", "hub-pw")
	pullAll(t, e.ref("acme", "acme/secret:v1"), pullOpts("alice", tok))

	// Gone for these credentials: the cached tag is served stale, as for
	// any upstream failure; what was never cached is not found.
	e.up.SetPrivate("acme/secret", "someone-else")
	jwt := e.jwt("alice", tok, "acme/dependency_proxy/containers/acme/secret")
	res, body := e.do(http.MethodGet, "/v2/acme/dependency_proxy/containers/acme/secret/manifests/v1", jwt)
	if res.StatusCode != http.StatusOK || res.Header.Get("X-Dproxy-Cache") != metrics.ResultStale {
		t.Errorf("cached tag after the repository went away: %d %q, want 200 stale: %s", res.StatusCode, res.Header.Get("X-Dproxy-Cache"), body)
	}
	if !strings.Contains(e.logs.String(), "serving cached manifest instead of the upstream's") {
		t.Error("serving the cached tag stale was not logged")
	}
	res, body = e.do(http.MethodGet, "/v2/acme/dependency_proxy/containers/acme/secret/manifests/v2", jwt)
	wantNotFound("an uncached tag of it", res, body, "acme/secret", "hubbot")

	// A real credential failure at the token service stays what it was.
	e.setHubCreds("acme", "hubbot", "wrong-pw")
	res, body = e.do(http.MethodGet, "/v2/acme/dependency_proxy/containers/alpyne/manifests/v1", e.jwt("alice", tok, "acme/dependency_proxy/containers/alpyne"))
	if code, msg := ociError(t, body); res.StatusCode != http.StatusBadGateway || code != "UNAVAILABLE" || !strings.Contains(msg, "token service rejected the credentials of hubbot") {
		t.Errorf("wrong hub-creds: %d %s %q, want 502 UNAVAILABLE naming the rejected credentials", res.StatusCode, code, msg)
	}
}

// TestVirtualUpstreamNotFoundOrPrivate: in a virtual registry, an upstream
// answering insufficient_scope is skipped like one answering 404, and when
// no upstream has the image the 404 is NAME_UNKNOWN naming that upstream
// (never its URL) and saying to set its credentials.
func TestVirtualUpstreamNotFoundOrPrivate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{configure: allowCIDR("127.0.0.1/32")})
	hub := testregistry.New(t, testregistry.Options{HubNotFound: true})
	plain := testregistry.New(t, testregistry.Options{})
	e.group("acme")
	ctx := context.Background()
	reg, err := e.app.Store.CreateVirtualRegistry(ctx, store.VirtualRegistry{GroupID: e.groupID("acme"), Name: "all"}, 5)
	if err != nil {
		t.Fatal(err)
	}
	var hubID int64
	for _, u := range []store.VirtualUpstream{{Name: "hub", URL: hub.URL}, {Name: "plain", URL: plain.URL}} {
		u.RegistryID, u.CacheValidityHours = reg.ID, 24
		added, err := e.app.Store.AddVirtualUpstream(ctx, u, 5)
		if err != nil {
			t.Fatal(err)
		}
		if u.Name == "hub" {
			hubID = added.ID
		}
	}
	tok := e.user("alice", "acme", store.RoleGuest, auth.ScopeReadVirtualRegistry, auth.ScopeReadRegistry)
	want := imageDigest(t, plain.PushRandomImage(t, "team/app", "v1", 1, 512))
	repo := func(image string) string { return fmt.Sprintf("virtual_registries/container/%d/%s", reg.ID, image) }

	// In the second upstream only: the first one's "not found" moves on.
	res, body := e.do(http.MethodGet, "/v2/"+repo("team/app")+"/manifests/v1", e.jwt("alice", tok, repo("team/app")))
	if res.StatusCode != http.StatusOK || res.Header.Get("Docker-Content-Digest") != want {
		t.Fatalf("image in the second upstream: %d %s", res.StatusCode, body)
	}

	jwt := e.jwt("alice", tok, repo("team/typo"))
	for _, path := range []string{"/manifests/v1", "/blobs/sha256:" + strings.Repeat("a", 64)} {
		res, body := e.do(http.MethodGet, "/v2/"+repo("team/typo")+path, jwt)
		code, msg := ociError(t, body)
		if res.StatusCode != http.StatusNotFound || code != "NAME_UNKNOWN" {
			t.Errorf("%s: %d %s %q, want 404 NAME_UNKNOWN", path, res.StatusCode, code, msg)
		}
		for _, s := range []string{"none of the upstreams", "not found on upstream hub", "if it is private, set its credentials",
			fmt.Sprintf("dproxy virtual-registry upstream update %d ", hubID)} {
			if !strings.Contains(msg, s) {
				t.Errorf("%s: %q does not say %q", path, msg, s)
			}
		}
		for _, hidden := range []string{hub.Host(), plain.Host(), "upstream plain"} {
			if strings.Contains(msg, hidden) {
				t.Errorf("%s: %q names %q", path, msg, hidden)
			}
		}
	}
	// Both upstreams have the repository, neither the tag: MANIFEST_UNKNOWN as before.
	hub.PushRandomImage(t, "team/both", "x", 1, 256)
	plain.PushRandomImage(t, "team/both", "y", 1, 256)
	res, body = e.do(http.MethodGet, "/v2/"+repo("team/both")+"/manifests/v404", e.jwt("alice", tok, repo("team/both")))
	if code, _ := ociError(t, body); res.StatusCode != http.StatusNotFound || code != "MANIFEST_UNKNOWN" {
		t.Errorf("a missing tag of a known repository: %d %s, want 404 MANIFEST_UNKNOWN", res.StatusCode, code)
	}
}
