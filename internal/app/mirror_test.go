package app_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/dproxy/dproxy/internal/config"
	"github.com/dproxy/dproxy/internal/store"
	"github.com/dproxy/dproxy/internal/testregistry"
)

// mirrorEnv is an env whose mirror group is "hub" (with the member alice,
// a guest) next to a group "other" (with its guest bob).
func mirrorEnv(t *testing.T) (e *env, alice, bob string) {
	t.Helper()
	e = newEnv(t, envOptions{configure: func(c *config.Config) { c.MirrorGroup = "hub" }})
	e.group("hub", "hub/sub", "other")
	return e, e.user("alice", "hub", store.RoleGuest), e.user("bob", "other", store.RoleGuest)
}

// allowAnonymous turns the anonymous-pull setting of group on or off.
func (e *env) allowAnonymous(group string, on bool) {
	e.t.Helper()
	ctx := context.Background()
	g, err := e.app.Store.GroupByPath(ctx, group)
	if err != nil {
		e.t.Fatal(err)
	}
	ps, err := e.app.Store.ProxySetting(ctx, g.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	ps.AllowAnonymousPull = on
	if err := e.app.Store.UpdateProxySetting(ctx, ps); err != nil {
		e.t.Fatal(err)
	}
}

// tokenFor asks /jwt/auth for the scopes, with Basic credentials unless
// user is "", and returns the status and the repositories granted pull.
func (e *env) tokenFor(user, secret string, scopes ...string) (status int, token string, pull []string) {
	e.t.Helper()
	q := url.Values{"service": {"dependency_proxy"}, "scope": scopes}
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/jwt/auth?"+q.Encode(), nil)
	if user != "" {
		req.SetBasicAuth(user, secret)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return res.StatusCode, "", nil
	}
	var body struct{ Token string }
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		e.t.Fatalf("decode token answer: %v", err)
	}
	claims, err := e.app.Issuer.Verify(body.Token)
	if err != nil {
		e.t.Fatalf("verify issued token: %v", err)
	}
	for _, a := range claims.Access {
		if a.Type == "repository" && slices.Contains(a.Actions, "pull") {
			pull = append(pull, a.Name)
		}
	}
	return res.StatusCode, body.Token, pull
}

func TestMirrorModeServesDockerHubNames(t *testing.T) {
	t.Parallel()
	e, alice, bob := mirrorEnv(t)
	alpine := e.up.PushRandomImage(t, "library/alpine", "latest", 2, 2048)
	redis := e.up.PushRandomImage(t, "bitnami/redis", "7", 1, 1024)
	e.up.PushIndex(t, "library/multi", "v1")

	alpineDigest, _ := alpine.Digest()
	redisDigest, _ := redis.Digest()

	cases := []struct {
		name, ref, want string
	}{
		{"official image with library/", "library/alpine:latest", alpineDigest.String()},
		{"official image without library/ is normalised", "alpine:latest", alpineDigest.String()},
		{"user image", "bitnami/redis:7", redisDigest.String()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			img := pullAll(t, e.host+"/"+c.ref, pullOpts("alice", alice))
			if d, _ := img.Digest(); d.String() != c.want {
				t.Errorf("digest %s, want the upstream's %s", d, c.want)
			}
		})
	}

	t.Run("multi-arch index and its children", func(t *testing.T) {
		idx, err := remote.Index(parseRef(t, e.host+"/library/multi:v1"), pullOpts("alice", alice)...)
		if err != nil {
			t.Fatalf("pull index: %v", err)
		}
		im, err := idx.IndexManifest()
		if err != nil || len(im.Manifests) == 0 {
			t.Fatalf("index manifest: %v, %d children", err, len(im.Manifests))
		}
		for _, m := range im.Manifests {
			pullAll(t, e.host+"/library/multi@"+m.Digest.String(), pullOpts("alice", alice))
		}
	})

	t.Run("the mirror shares the group's cache", func(t *testing.T) {
		pullAll(t, e.host+"/library/alpine:latest", pullOpts("alice", alice))
		gets := func() int {
			return e.up.Count(http.MethodGet, testregistry.KindBlob) + e.up.Count(http.MethodGet, testregistry.KindManifest)
		}
		before := gets()
		pullAll(t, e.ref("hub", "alpine:latest"), pullOpts("alice", alice))
		if n := gets() - before; n != 0 {
			t.Errorf("pulling the same image by its proxy path made %d upstream manifest or blob GETs, want 0", n)
		}
	})

	t.Run("dependency proxy paths keep working and win", func(t *testing.T) {
		img := pullAll(t, e.ref("other", "alpine:latest"), pullOpts("bob", bob))
		if d, _ := img.Digest(); d != alpineDigest {
			t.Errorf("digest %s", d)
		}
	})

	t.Run("a non-member of the mirror group is refused", func(t *testing.T) {
		_, err := remote.Image(parseRef(t, e.host+"/library/alpine:latest"), pullOpts("bob", bob)...)
		if err == nil {
			t.Fatal("bob, who is not a member of hub, pulled through the mirror")
		}
		_, _, pull := e.tokenFor("bob", bob, "repository:library/alpine:pull")
		if len(pull) != 0 {
			t.Errorf("bob was granted %v", pull)
		}
	})
}

func TestMirrorNamespace(t *testing.T) {
	t.Parallel()
	e, alice, _ := mirrorEnv(t)
	e.up.PushRandomImage(t, "library/alpine", "latest", 1, 512)
	jwt := e.jwt("alice", alice, "library/alpine")
	proxyJWT := e.jwt("alice", alice, "hub/dependency_proxy/containers/alpine")

	cases := []struct {
		name, path, token string
		status            int
		says              string
	}{
		{"containerd's ns=docker.io is accepted", "/v2/library/alpine/manifests/latest?ns=docker.io", jwt, 200, ""},
		{"no ns is accepted", "/v2/library/alpine/manifests/latest", jwt, 200, ""},
		{"another registry is refused", "/v2/library/alpine/manifests/latest?ns=ghcr.io", jwt, 404, "docker.io"},
		{"another registry is refused before any login", "/v2/library/alpine/manifests/latest?ns=quay.io", "", 404, "quay.io"},
		{"dependency proxy paths ignore ns", "/v2/hub/dependency_proxy/containers/alpine/manifests/latest?ns=ghcr.io", proxyJWT, 200, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, body := e.do(http.MethodGet, c.path, c.token)
			if res.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, c.status, body)
			}
			if c.says == "" {
				return
			}
			code, msg := ociError(t, body)
			if code != "NAME_UNKNOWN" || !strings.Contains(msg, c.says) {
				t.Errorf("error %s %q, want NAME_UNKNOWN mentioning %q", code, msg, c.says)
			}
		})
	}
}

func TestMirrorModeOff(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.group("hub")
	alice := e.user("alice", "hub", store.RoleOwner)
	e.up.PushRandomImage(t, "library/alpine", "latest", 1, 512)

	if _, _, pull := e.tokenFor("alice", alice, "repository:library/alpine:pull"); len(pull) != 0 {
		t.Errorf("without a mirror group a plain name was granted: %v", pull)
	}
	jwt := e.jwt("alice", alice, "hub/dependency_proxy/containers/alpine")
	res, body := e.do(http.MethodGet, "/v2/library/alpine/manifests/latest", jwt)
	if res.StatusCode != 404 {
		t.Fatalf("status %d, want 404: %s", res.StatusCode, body)
	}
	if code, msg := ociError(t, body); code != "NAME_UNKNOWN" || !strings.Contains(msg, "mirror") {
		t.Errorf("error %s %q, want NAME_UNKNOWN explaining there is no mirror group", code, msg)
	}
}

func TestAnonymousPull(t *testing.T) {
	t.Parallel()
	e, _, _ := mirrorEnv(t)
	img := e.up.PushRandomImage(t, "library/alpine", "latest", 1, 1024)
	want, _ := img.Digest()
	anon := []remote.Option{remote.WithAuth(authn.Anonymous)}
	mirrorScope := "repository:library/alpine:pull"
	hubScope := "repository:hub/dependency_proxy/containers/alpine:pull"
	subScope := "repository:hub/sub/dependency_proxy/containers/alpine:pull"
	otherScope := "repository:other/dependency_proxy/containers/alpine:pull"

	t.Run("off by default: 401", func(t *testing.T) {
		if status, _, _ := e.tokenFor("", "", mirrorScope); status != http.StatusUnauthorized {
			t.Errorf("anonymous token request: status %d, want 401", status)
		}
		if _, err := remote.Image(parseRef(t, e.host+"/library/alpine:latest"), anon...); err == nil {
			t.Error("anonymous pull through the mirror succeeded with the setting off")
		}
	})

	e.allowAnonymous("hub", true)
	var token string
	t.Run("on: only the group's repositories are granted", func(t *testing.T) {
		var status int
		var pull []string
		status, token, pull = e.tokenFor("", "", mirrorScope, hubScope, subScope, otherScope, "repository:bitnami/redis:push")
		if status != http.StatusOK {
			t.Fatalf("anonymous token request: status %d", status)
		}
		if wantPull := []string{"library/alpine", "hub/dependency_proxy/containers/alpine"}; !slices.Equal(pull, wantPull) {
			t.Errorf("granted pull on %v, want %v (no subgroup, no other group, no push)", pull, wantPull)
		}
		if status, _, _ := e.tokenFor("", "", otherScope); status != http.StatusUnauthorized {
			t.Errorf("anonymous token for another group only: status %d, want 401", status)
		}
		if status, _, _ := e.tokenFor("", ""); status != http.StatusUnauthorized {
			t.Errorf("anonymous token without a scope: status %d, want 401", status)
		}
	})

	t.Run("on: anonymous clients pull through the mirror and the proxy path", func(t *testing.T) {
		for _, ref := range []string{e.host + "/library/alpine:latest", e.ref("hub", "alpine:latest")} {
			got := pullAll(t, ref, anon)
			if d, _ := got.Digest(); d != want {
				t.Errorf("%s: digest %s, want %s", ref, d, want)
			}
		}
		if _, err := remote.Image(parseRef(t, e.ref("other", "alpine:latest")), anon...); err == nil {
			t.Error("anonymous pull from a group without the setting succeeded")
		}
	})

	t.Run("turning it off stops tokens already issued", func(t *testing.T) {
		e.allowAnonymous("hub", false)
		res, body := e.do(http.MethodGet, "/v2/library/alpine/manifests/latest", token)
		if res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status %d, want 401: %s", res.StatusCode, body)
		}
		if res.Header.Get("WWW-Authenticate") == "" {
			t.Error("401 without a challenge")
		}
	})

	t.Run("an anonymous token cannot use the admin API", func(t *testing.T) {
		e.allowAnonymous("hub", true)
		_, tok, _ := e.tokenFor("", "", mirrorScope)
		req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/api/graphql", strings.NewReader(`{"query":"{ currentUser { username } }"}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusUnauthorized {
			t.Errorf("admin API with an anonymous registry token: status %d, want 401", res.StatusCode)
		}
	})
}
