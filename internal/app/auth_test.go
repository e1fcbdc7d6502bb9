package app_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dproxy/dproxy/internal/auth"
	"github.com/dproxy/dproxy/internal/config"
	"github.com/dproxy/dproxy/internal/store"
	"github.com/dproxy/dproxy/internal/testclock"
	"github.com/dproxy/dproxy/internal/testregistry"
)

const manifestPath = "/v2/%s/dependency_proxy/containers/alpine/manifests/latest"

func mpath(group string) string { return strings.Replace(manifestPath, "%s", group, 1) }

func TestRegistryAuthorization(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.group("a", "a/sub", "b", "off")
	e.up.PushRandomImage(t, "library/alpine", "latest", 1, 512)
	ctx := context.Background()
	st := e.app.Store

	guest := e.user("guest", "a", store.RoleGuest)
	minimal := e.user("minimal", "a", store.RoleMinimalAccess)
	noScope := e.user("noscope", "a", store.RoleOwner, auth.ScopeReadVirtualRegistry)
	virtual := e.user("virtual", "a", store.RoleGuest, auth.ScopeReadVirtualRegistry, auth.ScopeReadRegistry)
	offOwner := e.user("offowner", "off", store.RoleOwner)
	gOff, _ := st.GroupByPath(ctx, "off")
	ps, _ := st.ProxySetting(ctx, gOff.ID)
	ps.Enabled = false
	if err := st.UpdateProxySetting(ctx, ps); err != nil {
		t.Fatal(err)
	}
	gA, _ := st.GroupByPath(ctx, "a")
	deploySecret, deployHash := auth.NewTokenSecret(store.TokenDeploy)
	if _, err := st.CreateToken(ctx, store.Token{Kind: store.TokenDeploy, Name: "ci", GroupID: gA.ID, Username: "deploy-a", Scopes: []string{auth.ScopeReadRegistry}, Hash: deployHash}); err != nil {
		t.Fatal(err)
	}

	repo := func(g string) string { return g + "/dependency_proxy/containers/alpine" }
	cases := []struct {
		name, user, secret, group string
		status                    int
		code, says                string
	}{
		{"guest pulls", "guest", guest, "a", 200, "", ""},
		{"membership is inherited by subgroups", "guest", guest, "a/sub", 200, "", ""},
		{"non-member sees nothing", "guest", guest, "b", 404, "NAME_UNKNOWN", "b"},
		{"unknown group looks the same", "guest", guest, "nope", 404, "NAME_UNKNOWN", "nope"},
		{"below guest", "minimal", minimal, "a", 403, "DENIED", "guest"},
		{"token without a registry scope", "noscope", noScope, "a", 403, "DENIED", "read_registry"},
		{"virtual scope paired with read_registry", "virtual", virtual, "a", 200, "", ""},
		{"deploy token of its group", "deploy-a", deploySecret, "a", 200, "", ""},
		{"deploy token of a subgroup", "deploy-a", deploySecret, "a/sub", 200, "", ""},
		{"deploy token of another group", "deploy-a", deploySecret, "b", 404, "NAME_UNKNOWN", "b"},
		{"proxy disabled", "offowner", offOwner, "off", 403, "DENIED", "disabled"},
	}
	for _, c := range cases {
		check := func(t *testing.T, res *http.Response, body []byte) {
			t.Helper()
			if res.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, c.status, body)
			}
			if c.code == "" {
				return
			}
			code, msg := ociError(t, body)
			if code != c.code || !strings.Contains(msg, c.says) {
				t.Errorf("error %s %q, want %s mentioning %q", code, msg, c.code, c.says)
			}
		}
		t.Run(c.name, func(t *testing.T) {
			jwt := e.jwt(c.user, c.secret, repo(c.group))
			res, body := e.do(http.MethodGet, mpath(c.group), jwt)
			check(t, res, body)
		})
		// The same token as Basic credentials on the request itself (a
		// daemon's fixed header) is authorised the same way.
		t.Run(c.name+" (Basic)", func(t *testing.T) {
			res, body := e.do(http.MethodGet, mpath(c.group), "", "Authorization", basic(c.user, c.secret))
			check(t, res, body)
		})
	}

	t.Run("Basic credentials on the registry API", func(t *testing.T) {
		for _, c := range []struct{ name, user, secret, says string }{
			{"a password", "guest", "guest-password", "must be a personal, group or deploy token"},
			{"another user's name", "minimal", guest, "invalid"},
			{"an unknown token", "guest", "dpxp_" + strings.Repeat("x", 43), "invalid"},
		} {
			res, body := e.do(http.MethodGet, mpath("a"), "", "Authorization", basic(c.user, c.secret))
			code, msg := ociError(t, body)
			if res.StatusCode != 401 || code != "UNAUTHORIZED" || !strings.Contains(msg, c.says) || strings.Contains(msg, c.secret) {
				t.Errorf("%s: %d %s %q, want 401 UNAUTHORIZED mentioning %q", c.name, res.StatusCode, code, msg, c.says)
			}
		}
	})

	t.Run("no token gets the challenge", func(t *testing.T) {
		res, body := e.do(http.MethodGet, mpath("a"), "")
		if res.StatusCode != 401 {
			t.Fatalf("status %d", res.StatusCode)
		}
		want := `Bearer realm="` + e.srv.URL + `/jwt/auth",service="dependency_proxy"`
		if g := res.Header.Get("WWW-Authenticate"); !strings.HasPrefix(g, want) {
			t.Errorf("challenge %q, want prefix %q", g, want)
		}
		if code, _ := ociError(t, body); code != "UNAUTHORIZED" {
			t.Errorf("code %s", code)
		}
		if g := res.Header.Get("Docker-Distribution-Api-Version"); g != "registry/2.0" {
			t.Errorf("api version header %q", g)
		}
		res, _ = e.do(http.MethodGet, "/v2/", "")
		if res.StatusCode != 401 || res.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("/v2/ without token: %d %q", res.StatusCode, res.Header.Get("WWW-Authenticate"))
		}
		res, body = e.do(http.MethodGet, "/v2/", e.jwt("guest", guest, repo("a")))
		if res.StatusCode != 200 || string(body) != "{}" {
			t.Errorf("/v2/ with token: %d %s", res.StatusCode, body)
		}
	})

	t.Run("wrong password gets 401 JSON", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/jwt/auth?service=dependency_proxy&scope=repository:"+repo("a")+":pull", nil)
		req.SetBasicAuth("guest", "dpxp_wrong")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 401 {
			t.Fatalf("status %d", res.StatusCode)
		}
		if code, _ := ociError(t, body); code != "UNAUTHORIZED" {
			t.Errorf("code %s", code)
		}
	})

	t.Run("tampered and expired JWTs are refused", func(t *testing.T) {
		jwt := e.jwt("guest", guest, repo("a"))
		parts := strings.Split(jwt, ".")
		sig := []byte(parts[2])
		sig[5] ^= 1
		tampered := parts[0] + "." + parts[1] + "." + string(sig)
		if res, _ := e.do(http.MethodGet, mpath("a"), tampered); res.StatusCode != 401 {
			t.Errorf("tampered: status %d", res.StatusCode)
		}
		// Another signing key: a forged token.
		key, err := auth.LoadOrCreateSigningKey(filepath.Join(t.TempDir(), "jwt.pem"))
		if err != nil {
			t.Fatal(err)
		}
		p, _ := e.app.Auth.Authenticate(ctx, "guest", guest)
		forged, _, _, _ := auth.NewIssuer(key, auth.IssuerOptions{}).Mint(p, []auth.Access{{Type: "repository", Name: repo("a"), Actions: []string{"pull"}}})
		if res, _ := e.do(http.MethodGet, mpath("a"), forged); res.StatusCode != 401 {
			t.Errorf("forged: status %d", res.StatusCode)
		}
		// Same key, minted an hour ago with a 15-minute lifetime.
		own, err := auth.LoadOrCreateSigningKey(e.app.Config.JWTKeyPath())
		if err != nil {
			t.Fatal(err)
		}
		old := auth.NewIssuer(own, auth.IssuerOptions{Now: func() time.Time { return time.Now().Add(-time.Hour) }})
		expired, _, _, _ := old.Mint(p, []auth.Access{{Type: "repository", Name: repo("a"), Actions: []string{"pull"}}})
		if res, body := e.do(http.MethodGet, mpath("a"), expired); res.StatusCode != 401 {
			t.Errorf("expired: status %d %s", res.StatusCode, body)
		}
	})

	t.Run("a token for another repository asks for a new one", func(t *testing.T) {
		jwt := e.jwt("guest", guest, "a/dependency_proxy/containers/other")
		res, _ := e.do(http.MethodGet, mpath("a"), jwt)
		if res.StatusCode != 401 || !strings.Contains(res.Header.Get("WWW-Authenticate"), `scope="repository:`+repo("a")+`:pull"`) {
			t.Errorf("status %d challenge %q", res.StatusCode, res.Header.Get("WWW-Authenticate"))
		}
	})

	t.Run("a revoked token cannot mint JWTs", func(t *testing.T) {
		secret := e.user("leaver", "a", store.RoleGuest)
		tk, err := st.TokenByHash(ctx, auth.HashToken(secret))
		if err != nil {
			t.Fatal(err)
		}
		jwt := e.jwt("leaver", secret, repo("a"))
		if err := st.RevokeToken(ctx, tk.ID, time.Now()); err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/jwt/auth?scope=repository:"+repo("a")+":pull", nil)
		req.SetBasicAuth("leaver", secret)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 401 {
			t.Errorf("token request with a revoked token: %d", res.StatusCode)
		}
		// JWTs minted before the revocation stop working too.
		if res, _ := e.do(http.MethodGet, mpath("a"), jwt); res.StatusCode != 401 {
			t.Errorf("JWT of a revoked token: %d", res.StatusCode)
		}
	})
}

func TestTokenEndpointFlows(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.group("a", "b")
	secret := e.user("alice", "a", store.RoleGuest)
	ra, rb := "a/dependency_proxy/containers/x", "b/dependency_proxy/containers/x"

	decode := func(t *testing.T, res *http.Response) map[string]any {
		t.Helper()
		defer res.Body.Close()
		var m map[string]any
		if res.StatusCode != 200 {
			b, _ := io.ReadAll(res.Body)
			t.Fatalf("status %d: %s", res.StatusCode, b)
		}
		if err := json.NewDecoder(res.Body).Decode(&m); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"token", "access_token", "expires_in", "issued_at"} {
			if _, ok := m[k]; !ok {
				t.Errorf("answer lacks %s: %v", k, m)
			}
		}
		return m
	}
	access := func(t *testing.T, tok string) map[string][]string {
		t.Helper()
		claims, err := e.app.Issuer.Verify(tok)
		if err != nil {
			t.Fatalf("verify: %v", err)
		}
		got := map[string][]string{}
		for _, a := range claims.Access {
			got[a.Name] = a.Actions
		}
		return got
	}

	t.Run("GET with repeated scopes grants the intersection", func(t *testing.T) {
		q := url.Values{"service": {"dependency_proxy"}, "scope": {"repository:" + ra + ":pull,push", "repository:" + rb + ":pull"}, "offline_token": {"true"}}
		req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/jwt/auth?"+q.Encode(), nil)
		req.SetBasicAuth("alice", secret)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		m := decode(t, res)
		got := access(t, m["token"].(string))
		if len(got) != 1 || strings.Join(got[ra], ",") != "pull" {
			t.Errorf("access %v, want only pull on %s", got, ra)
		}
		if rt, _ := m["refresh_token"].(string); rt == "" {
			t.Errorf("offline_token=true gave no refresh_token")
		}
		if strings.Contains(m["token"].(string), secret) {
			t.Errorf("the JWT carries the raw token")
		}
	})

	t.Run("POST password then refresh_token", func(t *testing.T) {
		form := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {secret},
			"scope": {"repository:" + ra + ":pull"}, "service": {"dependency_proxy"}, "access_type": {"offline"}, "client_id": {"test"}}
		res, err := http.PostForm(e.srv.URL+"/jwt/auth", form)
		if err != nil {
			t.Fatal(err)
		}
		m := decode(t, res)
		if got := access(t, m["access_token"].(string)); strings.Join(got[ra], ",") != "pull" {
			t.Errorf("access %v", got)
		}
		refresh, _ := m["refresh_token"].(string)
		if refresh == "" {
			t.Fatal("no refresh token")
		}
		res, err = http.PostForm(e.srv.URL+"/jwt/auth", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh},
			"scope": {"repository:" + ra + ":pull"}, "service": {"dependency_proxy"}})
		if err != nil {
			t.Fatal(err)
		}
		m = decode(t, res)
		if got := access(t, m["access_token"].(string)); strings.Join(got[ra], ",") != "pull" {
			t.Errorf("refreshed access %v", got)
		}
		// A refresh token is not an access token.
		if r, _ := e.do(http.MethodGet, "/v2/", refresh); r.StatusCode != 401 {
			t.Errorf("refresh token accepted as access token: %d", r.StatusCode)
		}
	})

	t.Run("bad credentials", func(t *testing.T) {
		for _, form := range []url.Values{
			{"grant_type": {"password"}, "username": {"alice"}, "password": {"nope"}},
			{"grant_type": {"refresh_token"}, "refresh_token": {"garbage"}},
			{"grant_type": {"client_credentials"}},
		} {
			res, err := http.PostForm(e.srv.URL+"/jwt/auth", form)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != 401 {
				t.Errorf("%v: status %d", form, res.StatusCode)
			}
			ociError(t, body)
		}
	})
}

func TestBadInputIsRejected(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{configure: func(c *config.Config) { c.MaxManifestSize = 200 }})
	e.group("acme")
	tok := e.user("alice", "acme", store.RoleGuest)
	e.up.PushRandomImage(t, "library/alpine", "latest", 3, 512) // its manifest is over 200 bytes
	jwt := e.jwt("alice", tok, "acme/dependency_proxy/containers/alpine")
	e.up.ResetCounts()

	cases := []struct{ name, path, code string }{
		{"malformed digest", "/v2/acme/dependency_proxy/containers/alpine/blobs/sha256:xyz", "DIGEST_INVALID"},
		{"other algorithm", "/v2/acme/dependency_proxy/containers/alpine/blobs/md5:" + strings.Repeat("a", 32), "DIGEST_INVALID"},
		{"dot-dot", "/v2/acme/../acme/dependency_proxy/containers/alpine/manifests/latest", "NAME_INVALID"},
		{"encoded slash", "/v2/acme%2Fdependency_proxy/containers/alpine/manifests/latest", "NAME_INVALID"},
		{"upper case", "/v2/acme/dependency_proxy/containers/Alpine/manifests/latest", "NAME_INVALID"},
		{"over-long name", "/v2/acme/dependency_proxy/containers/" + strings.Repeat("a", 300) + "/manifests/latest", "NAME_INVALID"},
		{"malformed manifest digest", "/v2/acme/dependency_proxy/containers/alpine/manifests/sha256:xyz", "DIGEST_INVALID"},
		// The client asked for nothing wrong: the upstream's answer was.
		{"oversized manifest", "/v2/acme/dependency_proxy/containers/alpine/manifests/latest", "MANIFEST_INVALID"},
	}
	for _, c := range cases {
		res, body := e.do(http.MethodGet, c.path, jwt)
		want := http.StatusBadRequest
		if c.code == "MANIFEST_INVALID" {
			want = http.StatusBadGateway
		}
		if res.StatusCode != want {
			t.Errorf("%s: status %d, want %d (%s)", c.name, res.StatusCode, want, body)
			continue
		}
		if code, msg := ociError(t, body); code != c.code || msg == "" {
			t.Errorf("%s: code %s %q, want %s", c.name, code, msg, c.code)
		}
	}
	g, _ := e.app.Store.GroupByPath(context.Background(), "acme")
	if _, err := e.app.Store.Manifest(context.Background(), g.ID, "library/alpine", "latest"); err == nil {
		t.Errorf("an oversized manifest was stored")
	}
	if n := e.up.Count("GET", "blob") + e.up.Count("HEAD", "blob"); n != 0 {
		t.Errorf("invalid requests reached the upstream %d times", n)
	}
	res, _ := e.do(http.MethodDelete, "/v2/acme/dependency_proxy/containers/alpine/manifests/latest", jwt)
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("DELETE: status %d, want 405", res.StatusCode)
	}
}

func TestHubSecretStaysSecret(t *testing.T) {
	t.Parallel()
	const identity, secret = "hubuser", "hub-Secret-7c1e2f"
	e := newEnv(t, envOptions{upstream: testregistry.Options{Users: map[string]string{identity: secret}, RequireAuth: true}})
	e.group("acme")
	ctx := context.Background()
	g, _ := e.app.Store.GroupByPath(ctx, "acme")
	ps, _ := e.app.Store.ProxySetting(ctx, g.ID)
	ps.Identity, ps.Secret = identity, secret
	if err := e.app.Store.UpdateProxySetting(ctx, ps); err != nil {
		t.Fatal(err)
	}
	tok := e.user("alice", "acme", store.RoleGuest)
	e.up.PushRandomImage(t, "library/alpine", "latest", 1, 1024)
	pullAll(t, e.ref("acme", "alpine:latest"), pullOpts("alice", tok))

	var sawIdentity bool
	for _, r := range e.up.TokenRequests() {
		sawIdentity = sawIdentity || r.Username == identity
	}
	if !sawIdentity {
		t.Errorf("the upstream never saw the group's Docker Hub identity: %+v", e.up.TokenRequests())
	}
	e.close() // checkpoint the WAL into the database file
	err := filepath.WalkDir(e.app.Config.DataDir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.Contains(string(b), secret) {
			t.Errorf("%s contains the Docker Hub secret in plaintext", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(e.logs.String(), secret) || strings.Contains(e.logs.String(), tok) {
		t.Errorf("the server log contains a secret")
	}
}

// basic is the value of a Basic Authorization header.
func basic(user, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+secret))
}

// TestRememberedDecisionsFollowChanges: a warm pull reuses the decision of
// the last one (who the credential is, where the group's pulls go), and
// every change to what authorised it applies to the very next request, for
// a registry JWT and for Basic token credentials alike. Expiry is judged by
// the server's clock, which the test moves; it starts at the real time, so
// a part judging by the real clock sees no expiry.
func TestRememberedDecisionsFollowChanges(t *testing.T) {
	t.Parallel()
	clock := testclock.New(time.Now())
	e := newEnv(t, envOptions{clock: clock})
	e.up.PushRandomImage(t, "library/alpine", "latest", 1, 512)
	ctx := context.Background()
	st := e.app.Store
	type cred struct{ kind, bearer, basic string }
	// creds are a registry JWT and Basic credentials of a user's token.
	creds := func(user, secret, group string) []cred {
		return []cred{{"JWT", e.jwt(user, secret, group+"/dependency_proxy/containers/alpine"), ""}, {"Basic", "", basic(user, secret)}}
	}
	send := func(group string, cr cred) (*http.Response, []byte) {
		if cr.basic != "" {
			return e.do(http.MethodGet, mpath(group), "", "Authorization", cr.basic)
		}
		return e.do(http.MethodGet, mpath(group), cr.bearer)
	}
	// expect sends each credential n times and checks the answer.
	expect := func(t *testing.T, when, group string, crs []cred, n, status int, code string) {
		t.Helper()
		for _, cr := range crs {
			for range n {
				res, body := send(group, cr)
				if res.StatusCode != status {
					t.Fatalf("%s %s: %d %s, want %d %s", cr.kind, when, res.StatusCode, body, status, code)
				}
				if code == "" {
					continue
				}
				if got, _ := ociError(t, body); got != code {
					t.Fatalf("%s %s: %d %s, want %d %s", cr.kind, when, res.StatusCode, body, status, code)
				}
			}
		}
	}

	cases := []struct {
		name   string
		change func(t *testing.T, user store.User, g store.Group, tok store.Token)
		status int
		code   string
	}{
		{"token revoked", func(t *testing.T, _ store.User, _ store.Group, tok store.Token) {
			if err := st.RevokeToken(ctx, tok.ID, time.Now()); err != nil {
				t.Fatal(err)
			}
		}, 401, "UNAUTHORIZED"},
		{"user deleted", func(t *testing.T, u store.User, _ store.Group, _ store.Token) {
			if err := st.DeleteUser(ctx, u.ID); err != nil {
				t.Fatal(err)
			}
		}, 401, "UNAUTHORIZED"},
		{"membership removed", func(t *testing.T, u store.User, g store.Group, _ store.Token) {
			if err := st.RemoveMember(ctx, g.ID, u.ID); err != nil {
				t.Fatal(err)
			}
		}, 404, "NAME_UNKNOWN"},
		{"role lowered below guest", func(t *testing.T, u store.User, g store.Group, _ store.Token) {
			if err := st.SetMember(ctx, g.ID, u.ID, store.RoleMinimalAccess); err != nil {
				t.Fatal(err)
			}
		}, 403, "DENIED"},
		{"proxy disabled", func(t *testing.T, _ store.User, g store.Group, _ store.Token) {
			ps, err := st.ProxySetting(ctx, g.ID)
			if err != nil {
				t.Fatal(err)
			}
			ps.Enabled = false
			if err := st.UpdateProxySetting(ctx, ps); err != nil {
				t.Fatal(err)
			}
		}, 403, "DENIED"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			group, name := fmt.Sprintf("g%d", i), fmt.Sprintf("u%d", i)
			e.group(group)
			secret := e.user(name, group, store.RoleGuest)
			u, _ := st.UserByUsername(ctx, name)
			g, _ := st.GroupByPath(ctx, group)
			tok, err := st.TokenByHash(ctx, auth.HashToken(secret))
			if err != nil {
				t.Fatal(err)
			}
			crs := creds(name, secret, group)
			expect(t, "before the change", group, crs, 2, 200, "") // the second is served from the remembered decision
			c.change(t, u, g, tok)
			for _, cr := range crs {
				res, body := send(group, cr)
				if code, _ := ociError(t, body); res.StatusCode != c.status || code != c.code {
					t.Errorf("%s after the change: %d %s, want %d %s", cr.kind, res.StatusCode, body, c.status, c.code)
				}
			}
		})
	}

	// The token expires before the minute Basic credentials are remembered
	// for, and long before the JWT does: both stop at the token's expiry.
	t.Run("token expired", func(t *testing.T) {
		e.group("exp")
		secret, hash := auth.NewTokenSecret(store.TokenPersonal)
		u, err := st.CreateUser(ctx, store.User{Username: "expiring"})
		if err != nil {
			t.Fatal(err)
		}
		g, _ := st.GroupByPath(ctx, "exp")
		if err := st.SetMember(ctx, g.ID, u.ID, store.RoleGuest); err != nil {
			t.Fatal(err)
		}
		expires := clock.Now().Add(30 * time.Second)
		if _, err := st.CreateToken(ctx, store.Token{Kind: store.TokenPersonal, Name: "short", UserID: u.ID,
			Scopes: []string{auth.ScopeReadRegistry}, Hash: hash, ExpiresAt: &expires}); err != nil {
			t.Fatal(err)
		}
		crs := creds("expiring", secret, "exp")
		expect(t, "before expiry", "exp", crs, 2, 200, "")
		clock.Add(29 * time.Second)
		expect(t, "a second before expiry", "exp", crs, 1, 200, "")
		clock.Add(time.Second)
		expect(t, "at expiry", "exp", crs, 1, 401, "UNAUTHORIZED")
	})

	// A registry JWT of a token that does not expire ends with its own
	// lifetime (the server's token-expiry) and leeway.
	t.Run("registry token expired", func(t *testing.T) {
		e.group("jwtexp")
		secret := e.user("lasting", "jwtexp", store.RoleGuest)
		jwt := creds("lasting", secret, "jwtexp")[:1]
		expect(t, "when minted", "jwtexp", jwt, 2, 200, "")
		clock.Add(e.app.Config.TokenExpiry - time.Second)
		expect(t, "a second before it expires", "jwtexp", jwt, 1, 200, "")
		clock.Add(time.Second + auth.DefaultLeeway)
		expect(t, "past its expiry and leeway", "jwtexp", jwt, 1, 401, "UNAUTHORIZED")
	})
}
