package app_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/dproxy/dproxy/internal/auth"
	"github.com/dproxy/dproxy/internal/config"
	"github.com/dproxy/dproxy/internal/store"
	"github.com/dproxy/dproxy/internal/testregistry"
)

// nsTransport adds ?ns=<ns> to every registry API request, as containerd
// does for a hosts.toml mirror and regctl for its mirror setting.
type nsTransport struct{ ns string }

func (t nsTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasPrefix(r.URL.Path, "/v2/") {
		r = r.Clone(r.Context())
		q := r.URL.Query()
		q.Set("ns", t.ns)
		r.URL.RawQuery = q.Encode()
	}
	return http.DefaultTransport.RoundTrip(r)
}

// nsOpts are go-containerregistry options for a mirror client that names
// registry ns, signed in as user (or anonymous when user is "").
func nsOpts(ns, user, secret string) []remote.Option {
	a := authn.Authenticator(authn.Anonymous)
	if user != "" {
		a = &authn.Basic{Username: user, Password: secret}
	}
	return []remote.Option{remote.WithAuth(a), remote.WithTransport(nsTransport{ns})}
}

// TestMirrorNamespaces: with --mirror-ns, a mirror request naming another
// registry (?ns=quay.io) pulls from the virtual registry mapped to it, by
// a virtual registry's rules, while Docker Hub's names (ns docker.io,
// registry-1.docker.io, index.docker.io, or none) keep going to the
// mirror group. Unmapped or unparsable ns values never fall back to
// Docker Hub.
func TestMirrorNamespaces(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{configure: func(c *config.Config) {
		allowCIDR("127.0.0.1/32")(c)
		c.MirrorGroup = "hub"
		// The first virtual registry of a new server is 1; 77 does not exist.
		c.MirrorNS = []string{"quay.io=1", "ghcr.io=77"}
	}})
	// Neither exists yet when the server starts: both are warned about.
	if logs := e.logs.String(); !strings.Contains(logs, "mirror-ns maps a registry to a virtual registry that does not exist") ||
		!strings.Contains(logs, "host=ghcr.io virtual_registry=77") || !strings.Contains(logs, "host=quay.io virtual_registry=1") {
		t.Errorf("start did not warn about quay.io=1 and ghcr.io=77:\n%s", logs)
	}
	e.group("hub", "acme")
	quay := testregistry.New(t, testregistry.Options{})
	ctx := context.Background()
	reg, err := e.app.Store.CreateVirtualRegistry(ctx, store.VirtualRegistry{GroupID: e.groupID("acme"), Name: "quay"}, 5)
	if err != nil || reg.ID != 1 {
		t.Fatalf("virtual registry %+v, %v; the test maps quay.io to id 1", reg, err)
	}
	if _, err := e.app.Store.AddVirtualUpstream(ctx, store.VirtualUpstream{RegistryID: reg.ID, Name: "quay", URL: quay.URL, CacheValidityHours: 24}, 5); err != nil {
		t.Fatal(err)
	}
	// The same name on both registries, with different content.
	fromQuay := imageDigest(t, quay.PushRandomImage(t, "coreos/etcd", "v3", 1, 1024))
	fromHub := imageDigest(t, e.up.PushRandomImage(t, "coreos/etcd", "v3", 1, 1024))
	alice := e.user("alice", "acme", store.RoleGuest, auth.ScopeReadVirtualRegistry, auth.ScopeReadRegistry)
	aliceRead := e.user("alice-read", "acme", store.RoleGuest, auth.ScopeReadRegistry)
	bob := e.user("bob", "hub", store.RoleGuest, auth.ScopeReadVirtualRegistry, auth.ScopeReadRegistry)
	e.allowAnonymous("hub", true)
	ref := e.host + "/coreos/etcd:v3"

	t.Run("quay.io pulls from its virtual registry", func(t *testing.T) {
		img := pullAll(t, ref, nsOpts("quay.io", "alice", alice))
		if d, _ := img.Digest(); d.String() != fromQuay {
			t.Errorf("digest %s, want quay's %s (Docker Hub's is %s)", d, fromQuay, fromHub)
		}
		// The same cache as the virtual registry path: no upstream request.
		before := upstreamRequests(quay)
		pullAll(t, e.host+"/virtual_registries/container/1/coreos/etcd:v3", pullOpts("alice", alice))
		if n := upstreamRequests(quay) - before; n != 0 {
			t.Errorf("the virtual registry path after the mirror pull made %d upstream requests, want 0", n)
		}
	})

	t.Run("Docker Hub's names go to the mirror group", func(t *testing.T) {
		for _, ns := range []string{"docker.io", "registry-1.docker.io", "index.docker.io"} {
			img := pullAll(t, ref, nsOpts(ns, "bob", bob))
			if d, _ := img.Digest(); d.String() != fromHub {
				t.Errorf("ns=%s: digest %s, want Docker Hub's %s", ns, d, fromHub)
			}
		}
	})

	header := func(user, secret string) []string { return []string{"Authorization", basic(user, secret)} }
	get := func(path string, hdr ...string) (*http.Response, []byte) {
		return e.do(http.MethodGet, path, "", hdr...)
	}
	manifest := "/v2/coreos/etcd/manifests/v3"

	t.Run("a token in a fixed header, as a node's hosts.toml", func(t *testing.T) {
		res, body := get(manifest+"?ns=quay.io", header("alice", alice)...)
		if res.StatusCode != http.StatusOK || res.Header.Get("Docker-Content-Digest") != fromQuay {
			t.Errorf("%d %s %s, want quay's %s", res.StatusCode, res.Header.Get("Docker-Content-Digest"), body, fromQuay)
		}
	})

	t.Run("a virtual registry's rules", func(t *testing.T) {
		for _, c := range []struct {
			name   string
			hdr    []string
			status int
			code   string
		}{
			{"a member of the mirror group only", header("bob", bob), 404, "NAME_UNKNOWN"},
			{"a token without read_virtual_registry", header("alice-read", aliceRead), 403, "DENIED"},
			{"anonymous, although the mirror group allows anonymous pulls", nil, 401, "UNAUTHORIZED"},
		} {
			res, body := get(manifest+"?ns=quay.io", c.hdr...)
			if code, _ := ociError(t, body); res.StatusCode != c.status || code != c.code {
				t.Errorf("%s: %d %s, want %d %s", c.name, res.StatusCode, body, c.status, c.code)
			}
		}
		if _, err := remote.Image(parseRef(t, ref), nsOpts("quay.io", "", "")...); err == nil {
			t.Error("an anonymous client pulled through quay.io's mirror")
		}
		if status, _, _ := e.tokenFor("", "", "repository:virtual_registries/container/1/coreos/etcd:pull"); status != http.StatusUnauthorized {
			t.Errorf("an anonymous token for the virtual registry: %d, want 401", status)
		}
		// Anonymous Docker Hub mirror pulls follow the mirror group's setting.
		if img := pullAll(t, ref, nsOpts("docker.io", "", "")); img == nil {
			t.Error("anonymous pull of docker.io through the mirror group failed")
		}
	})

	t.Run("never Docker Hub for another registry", func(t *testing.T) {
		e.up.ResetCounts()
		for _, c := range []struct{ query, says string }{
			{"ns=gcr.io", "--mirror-ns gcr.io=<virtual registry id>"},
			{"ns=quay.io.evil.example", "--mirror-ns"},
			{"ns=quay.io:443", "--mirror-ns"},
			{"ns=quay.io;x=1", "does not parse"},
			{"x=1;ns=quay.io", "does not parse"},
			{"ns=docker.io&ns=quay.io", "names the registries"},
			{"ns=ghcr.io", "virtual registry 77 does not exist"},
		} {
			res, body := get(manifest+"?"+c.query, header("bob", bob)...)
			code, msg := ociError(t, body)
			if res.StatusCode != http.StatusNotFound || code != "NAME_UNKNOWN" || !strings.Contains(msg, c.says) {
				t.Errorf("?%s: %d %s %q, want 404 NAME_UNKNOWN saying %q", c.query, res.StatusCode, code, msg, c.says)
			}
		}
		if n := e.up.Count(http.MethodGet, testregistry.KindManifest) + e.up.Count(http.MethodHead, testregistry.KindManifest); n != 0 {
			t.Errorf("requests for other registries reached Docker Hub %d times", n)
		}
	})
}
