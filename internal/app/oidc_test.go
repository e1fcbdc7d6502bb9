package app_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/dproxy/dproxy/internal/config"
	"github.com/dproxy/dproxy/internal/testoidc"
	"github.com/dproxy/dproxy/internal/testregistry"
)

const createTrust = `mutation($in: CreateCiTrustInput!) { createCiTrust(input: $in) { errors ciTrust { name groupPath role maxLifetimeSeconds claims { key glob } } } }`

// trustInput is a trust of issuer for group acme, protected refs only.
func trustInput(name, issuer, aud string) map[string]any {
	return map[string]any{"in": map[string]any{
		"name": name, "issuer": issuer, "audience": aud, "groupPath": "acme",
		"claims": []map[string]any{{"key": "ref_protected", "glob": "true"}},
	}}
}

// ciJob is the claims of a job on a protected branch of acme/app.
func ciJob(o *testoidc.Issuer, aud string, protected string) map[string]any {
	c := o.Claims("project_path:acme/app:ref_type:branch:ref:main", aud, time.Now(), 5*time.Minute)
	c["project_path"], c["ref_protected"] = "acme/app", protected
	return c
}

// ciTokenAnswer asks the token endpoint with Basic credentials.
func ciTokenAnswer(t *testing.T, base, user, secret, repo string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/jwt/auth?service=dependency_proxy&scope=repository:"+repo+":pull", nil)
	req.SetBasicAuth(user, secret)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func TestOIDCSignInAndPull(t *testing.T) {
	t.Parallel()
	o := testoidc.New(t)
	// The issuer is on loopback: the operator allows it, as for a test
	// upstream.
	e := newEnv(t, envOptions{configure: allowCIDR("127.0.0.1/32")})
	e.group("acme", "other")
	admin := e.adminToken()
	aud := e.srv.URL
	var out struct {
		CreateCiTrust struct {
			Errors  []string
			CiTrust struct {
				Name, GroupPath, Role string
				MaxLifetimeSeconds    int
			}
		}
	}
	e.ok(admin, createTrust, trustInput("gitlab", o.URL, aud), &out)
	if errs := out.CreateCiTrust.Errors; len(errs) > 0 || out.CreateCiTrust.CiTrust.GroupPath != "acme" ||
		out.CreateCiTrust.CiTrust.Role != "guest" || out.CreateCiTrust.CiTrust.MaxLifetimeSeconds != 3600 {
		t.Fatalf("createCiTrust = %+v", out.CreateCiTrust)
	}

	img := e.up.PushRandomImage(t, "library/alpine", "v1", 1, 4<<10)
	idToken := o.Token(testoidc.RS256, ciJob(o, aud, "true"))
	// docker login / crane: the ID token is the password at the token endpoint.
	pullAll(t, e.ref("acme", "alpine:v1"), pullOpts("ci", idToken))

	// Basic credentials on a registry request (containerd hosts.toml).
	md, _ := img.Digest()
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/v2/acme/dependency_proxy/containers/alpine/manifests/"+md.String(), nil)
	req.Header.Set("Accept", "application/vnd.docker.distribution.manifest.v2+json")
	req.SetBasicAuth("ci", o.Token(testoidc.ES256, ciJob(o, aud, "true")))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("Basic ID token on a manifest GET: %d, want 200", res.StatusCode)
	}

	// Another group is not granted.
	if _, err := remote.Image(parseRef(t, e.ref("other", "alpine:v1")), pullOpts("ci", idToken)...); err == nil {
		t.Error("a job of acme pulled from group other")
	}

	// Refusals name the failed check and do not echo the token.
	refused := o.Token(testoidc.RS256, ciJob(o, aud, "false"))
	code, body := ciTokenAnswer(t, e.srv.URL, "ci", refused, "acme/dependency_proxy/containers/alpine")
	if code != http.StatusUnauthorized || !strings.Contains(body, "claim ref_protected") || strings.Contains(body, refused[:30]) {
		t.Errorf("unprotected ref: %d %s; want 401 naming claim ref_protected", code, body)
	}
	stranger := testoidc.New(t)
	code, body = ciTokenAnswer(t, e.srv.URL, "ci", stranger.Token(testoidc.ES256, ciJob(stranger, aud, "true")), "acme/dependency_proxy/containers/alpine")
	if code != http.StatusUnauthorized || !strings.Contains(body, "no ci-trust for issuer "+stranger.URL) {
		t.Errorf("unknown issuer: %d %s", code, body)
	}
	code, body = ciTokenAnswer(t, e.srv.URL, "ci", o.Token(testoidc.RS256, ciJob(o, "https://elsewhere", "true")), "acme/dependency_proxy/containers/alpine")
	if code != http.StatusUnauthorized || !strings.Contains(body, "audience") {
		t.Errorf("another audience: %d %s", code, body)
	}

	// The principal is logged by name; the ID token never.
	logs := e.logs.String()
	if strings.Contains(logs, idToken) || strings.Contains(logs, strings.Split(refused, ".")[2]) {
		t.Error("an ID token appears in the log")
	}

	// Removing the trust ends registry tokens issued under it.
	jwt := fetchJWT(t, e.srv.URL, "ci", idToken, "acme/dependency_proxy/containers/alpine")
	mpath := "/v2/acme/dependency_proxy/containers/alpine/manifests/" + md.String()
	if res, _ := e.do(http.MethodGet, mpath, jwt); res.StatusCode != http.StatusOK {
		t.Fatalf("registry token of the job: %d", res.StatusCode)
	}
	var del struct{ DeleteCiTrust struct{ Errors []string } }
	e.ok(admin, `mutation { deleteCiTrust(input: {name: "gitlab"}) { errors } }`, nil, &del)
	if res, _ := e.do(http.MethodGet, mpath, jwt); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("registry token after its trust was removed: %d, want 401", res.StatusCode)
	}
}

// Without the operator's allowance, an issuer on an internal address is
// refused when the trust is created.
func TestOIDCIssuerAddressPolicy(t *testing.T) {
	t.Parallel()
	o := testoidc.New(t)
	e := newEnv(t, envOptions{})
	e.group("acme")
	var out struct{ CreateCiTrust struct{ Errors []string } }
	e.ok(e.adminToken(), createTrust, trustInput("gitlab", o.URL, e.srv.URL), &out)
	if errs := out.CreateCiTrust.Errors; len(errs) != 1 || !strings.Contains(errs[0], "127.0.0.1") {
		t.Errorf("createCiTrust of a loopback issuer: %v, want a refusal by the address policy", errs)
	}
}

// A trust created through one replica is honoured by the other.
func TestOIDCScaleTrustAcrossReplicas(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	o := testoidc.New(t)
	up := testregistry.New(t, testregistry.Options{})
	rs := make([]*env, 2)
	for i := range rs {
		rs[i] = newEnv(t, envOptions{keepUpstream: up, configure: func(cfg *config.Config) {
			c.configure(cfg)
			cfg.UpstreamAllowCIDR = []string{"127.0.0.1/32"}
		}})
	}
	r1, r2 := rs[0], rs[1]
	r1.group("acme")
	up.PushRandomImage(t, "library/alpine", "v1", 1, 4<<10)
	var out struct{ CreateCiTrust struct{ Errors []string } }
	r1.ok(r1.adminToken(), createTrust, trustInput("gitlab", o.URL, "dproxy"), &out)
	if len(out.CreateCiTrust.Errors) > 0 {
		t.Fatal(out.CreateCiTrust.Errors)
	}
	pullAll(t, r2.ref("acme", "alpine:v1"), pullOpts("ci", o.Token(testoidc.ES256, ciJob(o, "dproxy", "true"))))
	var list struct{ CiTrusts []struct{ Name string } }
	r2.ok(r1.adminToken(), `{ ciTrusts { name } }`, nil, &list)
	if b, _ := json.Marshal(list); len(list.CiTrusts) != 1 || list.CiTrusts[0].Name != "gitlab" {
		t.Errorf("replica 2 lists %s", b)
	}
}
