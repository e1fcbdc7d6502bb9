package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/dproxy/dproxy/internal/auth"
	"github.com/dproxy/dproxy/internal/store"
	"github.com/dproxy/dproxy/internal/testregistry"
)

// upstreamUpdate runs containerVirtualRegistryUpstreamUpdate and returns
// credentialsCleared, the upstream as it now is, and the refusals.
func (te *tenantEnv) upstreamUpdate(token string, input map[string]any) (cleared bool, u vrUpstream, errs []string) {
	te.t.Helper()
	r := te.gql(token, `mutation($in: ContainerVirtualRegistryUpstreamUpdateInput!) {
		containerVirtualRegistryUpstreamUpdate(input: $in) { credentialsCleared errors
			containerVirtualRegistry { upstreams { id name url username passwordSet cacheValidityHours position } } } }`,
		map[string]any{"in": input})
	if len(r.Errors) > 0 {
		te.t.Fatalf("upstream update: %s", r.messages())
	}
	var data struct {
		P struct {
			CredentialsCleared       bool
			Errors                   []string
			ContainerVirtualRegistry *vrNode
		} `json:"containerVirtualRegistryUpstreamUpdate"`
	}
	if err := json.Unmarshal(r.Data, &data); err != nil {
		te.t.Fatal(err)
	}
	if data.P.ContainerVirtualRegistry != nil {
		for _, up := range data.P.ContainerVirtualRegistry.Upstreams {
			if strings.HasSuffix(up.ID, "/"+input["id"].(string)) {
				u = up
			}
		}
	}
	return data.P.CredentialsCleared, u, data.P.Errors
}

// A second owner points an upstream with stored credentials at a host of
// their own: the credentials stay behind, the new host never sees them,
// and the answer says they were cleared.
func TestUpstreamURLChangeClearsCredentials(t *testing.T) {
	t.Parallel()
	te := newTenantEnv(t, envOptions{})
	private := testregistry.New(t, testregistry.Options{Users: map[string]string{"bot": "b-pa55word"}, RequireAuth: true})
	private.PushRandomImage(t, "team/app", "v1", 1, 512)
	ctx := context.Background()
	u, err := te.app.Store.AddVirtualUpstream(ctx, store.VirtualUpstream{RegistryID: te.reg.ID, Name: "private",
		URL: private.URL, Username: "bot", Password: "b-pa55word", CacheValidityHours: 24}, 5)
	if err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprint(u.ID)
	if res, body, err := te.malloryGets(http.MethodGet, "team/app", "manifests", "v1"); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("pull with the stored credentials: %v %d %s", err, statusOf(res), body)
	}

	lying := newLyingRegistry(t)
	lying.set(func(l *lyingRegistry) { l.challenge = true })
	if p := te.vrMutate(te.malTok, "containerVirtualRegistryUpstreamUpdate", map[string]any{"id": id, "url": lying.URL}); len(p.Errors) > 0 {
		t.Fatalf("point the upstream elsewhere: %v", p.Errors)
	}
	te.malloryGets(http.MethodGet, "team/app", "manifests", "v2")
	if lying.sawSecret("b-pa55word") || lying.sawBasic() {
		t.Fatalf("the new host was sent the credentials stored for %s", private.URL)
	}
	stored, err := te.app.Store.VirtualUpstream(ctx, u.ID)
	if err != nil || stored.Username != "" || stored.Password != "" {
		t.Errorf("stored credentials after the host changed: %q/%q (%v), want none", stored.Username, stored.Password, err)
	}

	// Back to the first host: they were cleared and stay so.
	cleared, got, errs := te.upstreamUpdate(te.malTok, map[string]any{"id": id, "url": private.URL})
	if len(errs) > 0 || cleared || got.Username != "" || got.PasswordSet {
		t.Errorf("back to the first host: cleared %v, upstream %+v, errors %v; want nothing to clear and no credentials", cleared, got, errs)
	}
	// New credentials in the same change are kept.
	cleared, got, errs = te.upstreamUpdate(te.malTok, map[string]any{"id": id, "url": private.URL + "/", "username": "bot", "password": "b-pa55word"})
	if len(errs) > 0 || cleared || got.Username != "bot" || !got.PasswordSet {
		t.Fatalf("credentials given with the URL: cleared %v, upstream %+v, errors %v", cleared, got, errs)
	}
	// The same host with another path, or another name: kept.
	for _, in := range []map[string]any{{"url": private.URL + "/mirror"}, {"name": "renamed"}, {"url": private.URL}} {
		in["id"] = id
		if cleared, got, errs := te.upstreamUpdate(te.malTok, in); len(errs) > 0 || cleared || got.Username != "bot" || !got.PasswordSet {
			t.Errorf("%v: cleared %v, upstream %+v, errors %v; want the credentials kept", in, cleared, got, errs)
		}
	}
	// Another port of the same address is another host.
	pu, err := url.Parse(private.URL)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(pu.Port())
	other := fmt.Sprintf("http://%s:%d", pu.Hostname(), port%60000+1)
	cleared, got, errs = te.upstreamUpdate(te.malTok, map[string]any{"id": id, "url": other})
	if len(errs) > 0 || !cleared || got.Username != "" || got.PasswordSet {
		t.Errorf("another port: cleared %v, upstream %+v, errors %v; want cleared", cleared, got, errs)
	}
	// Half a pair with a new host is refused.
	_, _, errs = te.upstreamUpdate(te.malTok, map[string]any{"id": id, "url": lying.URL, "username": "bot"})
	if len(errs) == 0 || !strings.Contains(errs[0], "password") {
		t.Errorf("a username without a password for a new host: errors %v, want a refusal asking for both", errs)
	}
}

// anonymousGroup sets a group's Docker Hub credentials ("" for none) and
// turns anonymous pulls on for it.
func (e *env) anonymousGroup(group, identity, secret string) {
	e.t.Helper()
	ctx := context.Background()
	ps, err := e.app.Store.ProxySetting(ctx, e.groupID(group))
	if err != nil {
		e.t.Fatal(err)
	}
	ps.Identity, ps.Secret, ps.AllowAnonymousPull = identity, secret, true
	if err := e.app.Store.UpdateProxySetting(ctx, ps); err != nil {
		e.t.Fatal(err)
	}
}

// anonymousPull gets an anonymous token and GETs a manifest with it.
func (e *env) anonymousPull(group, image string) int {
	e.t.Helper()
	repo := group + "/dependency_proxy/containers/" + image
	status, tok, _ := e.tokenFor("", "", "repository:"+repo+":pull")
	if status != http.StatusOK {
		e.t.Fatalf("anonymous token: %d", status)
	}
	res, body := e.do(http.MethodGet, "/v2/"+repo+"/manifests/v1", tok)
	if res.StatusCode != http.StatusOK {
		e.t.Fatalf("anonymous pull of %s: %d %s", repo, res.StatusCode, body)
	}
	return res.StatusCode
}

// lastTokenUser is the username of the upstream's last token request.
func lastTokenUser(t *testing.T, up *testregistry.Upstream) string {
	t.Helper()
	reqs := up.TokenRequests()
	if len(reqs) == 0 {
		t.Fatal("the upstream issued no token")
	}
	return reqs[len(reqs)-1].Username
}

const anonSettingMutation = `mutation($in: UpdateDependencyProxySettingsInput!) {
	updateDependencyProxySettings(input: $in) { dependencyProxySetting { anonymousPullsUseCredentials } errors } }`

// Anonymous pulls go upstream anonymously, not with the group's or the
// instance's Docker Hub credentials, unless an instance admin lets them.
func TestAnonymousPullsGoUpstreamAnonymously(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{upstream: testregistry.Options{Users: map[string]string{"hubuser": "hub-s3cret", "default": "def-s3cret"}}})
	e.group("pub", "plain")
	for _, image := range []string{"library/one", "library/two", "library/three", "library/four"} {
		e.up.PushRandomImage(t, image, "v1", 1, 256)
	}
	e.anonymousGroup("pub", "hubuser", "hub-s3cret")
	e.anonymousGroup("plain", "", "")
	if err := e.app.Store.SetDefaultHubCredentials(context.Background(), store.HubCredentials{Identity: "default", Secret: "def-s3cret"}); err != nil {
		t.Fatal(err)
	}

	e.anonymousPull("pub", "one")
	if u := lastTokenUser(t, e.up); u != "" {
		t.Fatalf("an anonymous pull went upstream as %q, want anonymously", u)
	}
	e.anonymousPull("plain", "one")
	if u := lastTokenUser(t, e.up); u != "" {
		t.Errorf("an anonymous pull from a group without credentials went upstream as %q (the instance default), want anonymously", u)
	}
	// Signed-in pulls still use the group's credentials.
	tok := e.user("alice", "pub", store.RoleGuest)
	repo := "pub/dependency_proxy/containers/two"
	if res, _ := e.do(http.MethodGet, "/v2/"+repo+"/manifests/v1", e.jwt("alice", tok, repo)); res.StatusCode != http.StatusOK {
		t.Fatalf("signed-in pull: %d", res.StatusCode)
	}
	if u := lastTokenUser(t, e.up); u != "hubuser" {
		t.Errorf("a signed-in pull went upstream as %q, want hubuser", u)
	}

	// An owner who is not an instance admin cannot let anonymous pulls use
	// the credentials; turning it off is theirs to do.
	owner := e.user("olivia", "pub", store.RoleOwner, auth.ScopeAPI)
	r := e.gql(owner, anonSettingMutation, map[string]any{"in": map[string]any{"groupPath": "pub", "anonymousPullsUseCredentials": true}})
	if len(r.Errors) == 0 || !strings.Contains(r.messages(), "instance admin") {
		t.Errorf("owner turning anonymousPullsUseCredentials on: errors %q, want a refusal naming instance admins", r.messages())
	}
	if ps, _ := e.app.Store.ProxySetting(context.Background(), e.groupID("pub")); ps.AnonymousPullsUseCredentials {
		t.Fatal("the owner's refused change was stored")
	}
	e.anonymousPull("pub", "three")
	if u := lastTokenUser(t, e.up); u != "" {
		t.Errorf("after the owner's refused change, an anonymous pull went upstream as %q", u)
	}

	// The admin turns it on: anonymous pulls of the group use its credentials.
	var data struct {
		U struct {
			DependencyProxySetting struct{ AnonymousPullsUseCredentials bool }
			Errors                 []string
		} `json:"updateDependencyProxySettings"`
	}
	e.ok(e.adminToken(), anonSettingMutation, map[string]any{"in": map[string]any{"groupPath": "pub", "anonymousPullsUseCredentials": true}}, &data)
	if len(data.U.Errors) > 0 || !data.U.DependencyProxySetting.AnonymousPullsUseCredentials {
		t.Fatalf("admin turning it on: %+v", data.U)
	}
	e.anonymousPull("pub", "four")
	if u := lastTokenUser(t, e.up); u != "hubuser" {
		t.Errorf("with the admin's setting on, an anonymous pull went upstream as %q, want hubuser", u)
	}
	// The owner may turn it off again.
	r = e.gql(owner, anonSettingMutation, map[string]any{"in": map[string]any{"groupPath": "pub", "anonymousPullsUseCredentials": false}})
	if len(r.Errors) > 0 {
		t.Errorf("owner turning it off: %s", r.messages())
	}
	if ps, _ := e.app.Store.ProxySetting(context.Background(), e.groupID("pub")); ps.AnonymousPullsUseCredentials {
		t.Error("still on after the owner turned it off")
	}
}
