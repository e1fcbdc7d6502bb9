package admin

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dproxy/dproxy/internal/auth"
	"github.com/dproxy/dproxy/internal/store"
)

func ptr[T any](v T) *T { return &v }

// fixture is a harness with group acme, a member of each role, an
// outsider and an instance admin.
func fixture(t *testing.T) *vrFixture { return newVRFixture(t, Options{}) }

func TestCreateGroupRules(t *testing.T) {
	t.Parallel()
	f := fixture(t)
	ctx := t.Context()
	_, err := f.svc.CreateGroup(ctx, f.owner, "globex")
	wantKind(t, "an owner creates a top-level group", err, ErrForbidden, false, "creating a top-level group needs an instance admin; you are olga")
	_, err = f.svc.CreateGroup(ctx, f.maintainer, "acme/ci")
	wantKind(t, "a maintainer creates a subgroup", err, ErrForbidden, false, "creating a subgroup of acme needs the owner role")
	_, err = f.svc.CreateGroup(ctx, f.outsider, "acme/ci")
	wantKind(t, "an outsider creates a subgroup", err, ErrNotFound, false, `group "acme" not found`)
	for path, want := range map[string]string{
		"acme/dependency_proxy":            `"dependency_proxy" is reserved`,
		"acme/virtual_registries":          `"virtual_registries" is reserved`,
		"acme/Upper":                       "use lower-case letters",
		"acme/" + strings.Repeat("a", 200): "the limit is 200",
	} {
		_, err := f.svc.CreateGroup(ctx, f.owner, path)
		wantKind(t, "create "+clip(path), err, ErrInvalid, true, want)
	}
	g, err := f.svc.CreateGroup(ctx, f.owner, " acme/ci ")
	if err != nil || g.Path != "acme/ci" || g.ParentPath() != "acme" || g.Name() != "ci" {
		t.Fatalf("an owner creates a subgroup: %+v, %v", g, err)
	}
	_, err = f.svc.CreateGroup(ctx, f.owner, "acme/ci")
	wantKind(t, "create it again", err, ErrConflict, true, `group "acme/ci" already exists`)
	if g, err := f.svc.CreateGroup(ctx, f.adm, "globex"); err != nil || g.ParentID != 0 {
		t.Errorf("an admin creates a top-level group: %+v, %v", g, err)
	}
	if !strings.Contains(f.log.String(), `msg="group created" group=acme/ci by=olga`) {
		t.Errorf("no audit line for the subgroup:\n%s", f.log)
	}
}

// TestPurgeAndDeleteConsistency checks the order of every removal of a
// group's cached content: the cache forgets, the rows go, the cache hears
// of the release.
func TestPurgeAndDeleteConsistency(t *testing.T) {
	t.Parallel()
	f := fixture(t)
	ctx := t.Context()
	sub := f.group("acme/ci")
	f.st.manifests[100] = store.Manifest{ID: 100, OwnerID: f.acme.ID, Image: "library/alpine", Reference: "latest", Size: 10}
	f.st.blobs[store.BlobKey{OwnerID: f.acme.ID, Digest: "sha256:aa"}] = store.Blob{OwnerID: f.acme.ID, Digest: "sha256:aa", Size: 90}
	check := func(what string, want ...string) {
		t.Helper()
		if !slices.Equal(*f.calls, want) {
			t.Errorf("%s: calls %q, want %q", what, *f.calls, want)
		}
		f.resetCalls()
	}
	f.resetCalls()

	_, err := f.svc.Purge(ctx, f.maintainer, "acme")
	wantKind(t, "a maintainer purges", err, ErrForbidden, false, "purging the dependency proxy cache of acme needs the owner role")
	check("refused purge")
	p, err := f.svc.Purge(ctx, f.owner, "acme")
	if err != nil || p != (Purged{Manifests: 1, Blobs: 1, Bytes: 100}) {
		t.Errorf("Purge = %+v, %v", p, err)
	}
	check("Purge", fmtCall("forget group %d", f.acme.ID), fmtCall("purge group %d", f.acme.ID), "released")

	r := f.registry("hub")
	u := f.upstream(r, "docker", "https://registry-1.docker.io")
	f.resetCalls()
	if err := f.svc.DeleteGroup(ctx, f.owner, "acme"); err != nil {
		t.Fatal(err)
	}
	check("DeleteGroup", fmtCall("forget group %d", f.acme.ID), fmtCall("forget group %d", sub.ID),
		fmtCall("forget upstream %d", u.ID), fmtCall("delete group %d", f.acme.ID), "released")
	if !strings.Contains(f.log.String(), `msg="group deleted" group=acme by=olga`) {
		t.Errorf("no audit line for the deletion:\n%s", f.log)
	}
}

func TestDeleteImage(t *testing.T) {
	t.Parallel()
	f := fixture(t)
	ctx := t.Context()
	f.st.manifests[100] = store.Manifest{ID: 100, OwnerID: f.acme.ID, Image: "library/alpine", Reference: "3.20"}
	_, err := f.svc.DeleteImage(ctx, f.owner, "acme", "Alpine", "3.20")
	wantKind(t, "upper-case image", err, ErrInvalid, true, `image name "Alpine": use a lower-case image name`)
	_, err = f.svc.DeleteImage(ctx, f.owner, "acme", "alpine", "bad ref!")
	wantKind(t, "bad reference", err, ErrInvalid, true, `reference "bad ref!" is neither a tag nor a sha256 digest`)
	_, err = f.svc.DeleteImage(ctx, f.owner, "acme", "alpine", "latest")
	wantKind(t, "not cached", err, ErrNotFound, true, "alpine:latest is not cached in group acme")
	_, err = f.svc.DeleteImage(ctx, f.reporter, "acme", "alpine", "3.20")
	wantKind(t, "a reporter deletes", err, ErrForbidden, false, "needs the owner role")
	f.resetCalls()
	m, err := f.svc.DeleteImage(ctx, f.owner, "acme", "alpine", "3.20") // library/ is implied
	if err != nil || m.ID != 100 {
		t.Fatalf("DeleteImage = %+v, %v", m, err)
	}
	// Its blobs stay cached: nothing to forget or release.
	if !slices.Equal(*f.calls, []string{"delete manifest 100"}) {
		t.Errorf("calls %q", *f.calls)
	}
}

func TestUpdateUserRules(t *testing.T) {
	t.Parallel()
	f := fixture(t)
	ctx := t.Context()
	from := netip.MustParseAddr("192.0.2.1")
	root2 := f.user("root2", true)

	_, err := f.svc.UpdateUser(ctx, f.adm, from, "root", UserChange{Admin: ptr(false)})
	wantKind(t, "an admin removes their own flag", err, ErrForbidden, true, "you cannot remove your own admin flag or block yourself")
	_, err = f.svc.UpdateUser(ctx, f.adm, from, "root", UserChange{Blocked: ptr(true)})
	wantKind(t, "an admin blocks themself", err, ErrForbidden, true, "you cannot remove your own admin flag or block yourself")
	if u, err := f.svc.UpdateUser(ctx, root2, from, "root", UserChange{Admin: ptr(false)}); err != nil || u.Admin {
		t.Errorf("another admin removes the flag: %+v, %v", u, err)
	}
	_, err = f.svc.UpdateUser(ctx, f.owner, from, "gina", UserChange{Blocked: ptr(true)})
	wantKind(t, "a non-admin blocks another", err, ErrForbidden, false, "needs an instance admin; you are olga")
	_, err = f.svc.UpdateUser(ctx, f.owner, from, "olga", UserChange{Admin: ptr(true)})
	wantKind(t, "a non-admin makes themself admin", err, ErrForbidden, false, "needs an instance admin")
	_, err = f.svc.UpdateUser(ctx, root2, from, "nobody", UserChange{Blocked: ptr(true)})
	wantKind(t, "unknown user", err, ErrNotFound, false, `user "nobody" not found`)
	_, err = f.svc.UpdateUser(ctx, f.owner, from, "olga", UserChange{CurrentPassword: ptr("x")})
	wantKind(t, "current password alone", err, ErrInvalid, true, "currentPassword goes with password")
	_, err = f.svc.UpdateUser(ctx, f.owner, from, "olga", UserChange{Password: ptr("short")})
	wantKind(t, "short password", err, ErrInvalid, true, "at least 8 characters")

	// Signed in with a password, a user sets their own.
	u, err := f.svc.UpdateUser(ctx, f.owner, from, "olga", UserChange{Password: ptr("correct horse")})
	if err != nil || !u.PasswordSet {
		t.Fatalf("own password with a password sign-in = %+v, %v", u, err)
	}
	// With a token, the current password is needed too.
	_, secret, err := f.svc.CreateToken(ctx, f.owner, TokenInput{Kind: TokenPersonal, Name: "cli", Scopes: []string{auth.ScopeAPI}})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := f.svc.Authenticate(ctx, "Bearer "+secret, "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.UpdateUser(ctx, tok, from, "olga", UserChange{Password: ptr("battery staple")})
	wantKind(t, "own password with a token, no current one", err, ErrForbidden, true, "needs your current password as well (currentPassword) (on the command line: dproxy user set-password olga --current-password)")
	_, err = f.svc.UpdateUser(ctx, tok, from, "olga", UserChange{Password: ptr("battery staple"), CurrentPassword: ptr("wrong one")})
	wantKind(t, "own password with a token, wrong current one", err, ErrForbidden, true, "the current password is wrong")
	if _, err := f.svc.UpdateUser(ctx, tok, from, "olga", UserChange{Password: ptr("battery staple"), CurrentPassword: ptr("correct horse")}); err != nil {
		t.Errorf("own password with a token and the current one: %v", err)
	}
	if strings.Contains(f.log.String(), "correct horse") || strings.Contains(f.log.String(), "battery staple") {
		t.Errorf("the audit log shows a password:\n%s", f.log)
	}

	err = f.svc.DeleteUser(ctx, root2, "root2")
	wantKind(t, "an admin deletes themself", err, ErrForbidden, true, "you cannot delete yourself")
	err = f.svc.DeleteUser(ctx, f.owner, "gina")
	wantKind(t, "a non-admin deletes", err, ErrForbidden, false, "deleting users needs an instance admin")
	if err := f.svc.DeleteUser(ctx, root2, "gina"); err != nil {
		t.Errorf("an admin deletes another: %v", err)
	}
	_, err = f.svc.User(ctx, f.owner, "mara")
	wantKind(t, "a non-admin reads another user", err, ErrNotFound, false, `user "mara" not found`)
}

func TestCreateTokenRules(t *testing.T) {
	t.Parallel()
	f := fixture(t)
	ctx := t.Context()
	acme := "acme"
	for _, c := range []struct {
		name string
		in   TokenInput
		kind error
		want string
	}{
		{"personal with a group", TokenInput{Kind: TokenPersonal, Name: "x", GroupPath: &acme, Scopes: []string{"api"}}, ErrInvalid, "a personal token belongs to a user: pass username, not groupPath"},
		{"group without a group", TokenInput{Kind: TokenGroup, Name: "x", Scopes: []string{"api"}}, ErrInvalid, "a group_access token needs groupPath"},
		{"deploy without a group", TokenInput{Kind: TokenDeploy, Name: "x", Scopes: []string{"read_registry"}}, ErrInvalid, "a deploy token needs groupPath"},
		{"deploy with api", TokenInput{Kind: TokenDeploy, Name: "x", GroupPath: &acme, Scopes: []string{"read_registry", "api"}}, ErrInvalid, "deploy tokens cannot have the api scope"},
		{"no scope", TokenInput{Kind: TokenGroup, Name: "x", GroupPath: &acme}, ErrInvalid, "a token needs at least one scope"},
		{"unknown scope", TokenInput{Kind: TokenGroup, Name: "x", GroupPath: &acme, Scopes: []string{"sudo"}}, ErrInvalid, `unknown token scope "sudo"`},
		{"blank name", TokenInput{Kind: TokenGroup, Name: " ", GroupPath: &acme, Scopes: []string{"api"}}, ErrInvalid, "the token name is empty"},
		{"expired", TokenInput{Kind: TokenGroup, Name: "x", GroupPath: &acme, Scopes: []string{"api"}, ExpiresAt: ptr(f.now.Add(-time.Hour))}, ErrInvalid, "is in the past"},
		{"role on a deploy token", TokenInput{Kind: TokenDeploy, Name: "x", GroupPath: &acme, Scopes: []string{"read_registry"}, Role: ptr(RoleOwner)}, ErrInvalid, "role is only for group access tokens"},
		{"deploy username on a group token", TokenInput{Kind: TokenGroup, Name: "x", GroupPath: &acme, Scopes: []string{"api"}, DeployUsername: ptr("bot")}, ErrInvalid, "deployUsername is only for deploy tokens"},
		{"bad deploy username", TokenInput{Kind: TokenDeploy, Name: "x", GroupPath: &acme, Scopes: []string{"read_registry"}, DeployUsername: ptr("a b")}, ErrInvalid, `deploy username "a b": use letters`},
	} {
		_, secret, err := f.svc.CreateToken(ctx, f.owner, c.in)
		wantKind(t, c.name, err, c.kind, true, c.want)
		if secret != "" {
			t.Errorf("%s: a refused token has a secret", c.name)
		}
	}
	_, _, err := f.svc.CreateToken(ctx, f.maintainer, TokenInput{Kind: TokenGroup, Name: "x", GroupPath: &acme, Scopes: []string{"api"}})
	wantKind(t, "a maintainer creates a group token", err, ErrForbidden, false, "creating tokens of acme needs the owner role")
	_, _, err = f.svc.CreateToken(ctx, f.owner, TokenInput{Kind: TokenPersonal, Name: "x", Username: ptr("gina"), Scopes: []string{"api"}})
	wantKind(t, "a token for another user", err, ErrForbidden, false, "creating a personal token for another user needs an instance admin")

	// Deploy tokens are numbered as GitLab's.
	for i, want := range []string{"gitlab+deploy-token-1", "gitlab+deploy-token-2"} {
		tok, secret, err := f.svc.CreateToken(ctx, f.owner, TokenInput{Kind: TokenDeploy, Name: "ci", GroupPath: &acme, Scopes: []string{"read_registry"}})
		if err != nil || tok.DeployUsername != want || !strings.HasPrefix(secret, "dpxd_") || tok.GroupPath != "acme" || !tok.Active {
			t.Errorf("deploy token %d = %+v, %q, %v; want %s", i, tok, secret, err, want)
		}
	}
	g, _, err := f.svc.CreateToken(ctx, f.owner, TokenInput{Kind: TokenGroup, Name: "bot", GroupPath: &acme, Scopes: []string{"read_registry", "read_registry"}})
	if err != nil || g.Role != RoleGuest || !slices.Equal(g.Scopes, []string{"read_registry"}) {
		t.Errorf("group token = %+v, %v; want guest with the scope once", g, err)
	}

	// A token cannot create a token wider or longer-lived than itself.
	_, secret, err := f.svc.CreateToken(ctx, f.owner, TokenInput{Kind: TokenPersonal, Name: "narrow", Scopes: []string{"api"}, ExpiresAt: ptr(f.now.Add(time.Hour))})
	if err != nil {
		t.Fatal(err)
	}
	narrow, err := f.svc.Authenticate(ctx, "", secret)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = f.svc.CreateToken(ctx, narrow, TokenInput{Kind: TokenPersonal, Name: "longer", Scopes: []string{"api"}})
	wantKind(t, "a token outliving its creator", err, ErrInvalid, true, "a token it creates must expire too")

	// Revoking: someone else's personal token looks unknown; owners revoke
	// their group's tokens.
	mine, _, err := f.svc.CreateToken(ctx, f.guest, TokenInput{Kind: TokenPersonal, Name: "mine", Scopes: []string{"read_registry"}})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = f.svc.RevokeToken(ctx, f.owner, mine.ID)
	wantKind(t, "revoke another's personal token", err, ErrNotFound, false, "not found")
	_, _, err = f.svc.RevokeToken(ctx, f.guest, g.ID)
	wantKind(t, "a guest revokes a group token", err, ErrForbidden, false, "revoking tokens of acme needs the owner role")
	_, _, err = f.svc.RevokeToken(ctx, f.outsider, g.ID)
	wantKind(t, "an outsider revokes a group token", err, ErrNotFound, false, "not found")
	if r, _, err := f.svc.RevokeToken(ctx, f.owner, g.ID); err != nil || r.Active || r.RevokedAt == nil {
		t.Errorf("the owner revokes = %+v, %v", r, err)
	}
	if r, _, err := f.svc.RevokeToken(ctx, f.guest, mine.ID); err != nil || r.Active {
		t.Errorf("revoke one's own = %+v, %v", r, err)
	}
	toks, err := f.svc.Tokens(ctx, f.owner, nil, &acme)
	if err != nil || len(toks) != 3 || toks[0].ID != g.ID {
		t.Errorf("Tokens(acme) = %+v, %v; want 3, newest first", toks, err)
	}
	_, err = f.svc.Tokens(ctx, f.owner, ptr("olga"), &acme)
	wantKind(t, "tokens of a user and a group", err, ErrInvalid, false, "pass username or groupPath, not both")
}

func TestProxySettingRules(t *testing.T) {
	t.Parallel()
	f := fixture(t)
	ctx := t.Context()
	_, err := f.svc.UpdateProxySetting(ctx, f.maintainer, "acme", ProxySettingChange{Enabled: ptr(false)})
	wantKind(t, "a maintainer changes it", err, ErrForbidden, false, "changing the dependency proxy settings of acme needs the owner role")
	_, err = f.svc.UpdateProxySetting(ctx, f.owner, "acme", ProxySettingChange{AnonymousPullsUseCredentials: ptr(true)})
	wantKind(t, "an owner lets anonymous pulls use credentials", err, ErrForbidden, false, "letting anonymous pulls use Docker Hub credentials needs an instance admin")
	_, err = f.svc.UpdateProxySetting(ctx, f.owner, "acme", ProxySettingChange{Identity: ptr("bot")})
	wantKind(t, "identity alone", err, ErrInvalid, true, "identity and secret are set together")
	_, err = f.svc.UpdateProxySetting(ctx, f.owner, "acme", ProxySettingChange{Identity: ptr(""), Secret: ptr("s3cret-value")})
	wantKind(t, "secret without identity", err, ErrInvalid, true, "a secret needs an identity")
	_, err = f.svc.UpdateProxySetting(ctx, f.owner, "acme", ProxySettingChange{FreshnessWindow: ptr(8 * 24 * time.Hour)})
	wantKind(t, "window too long", err, ErrInvalid, true, "freshnessWindowSeconds must be between 0 and 604800, got 691200")
	_, err = f.svc.UpdateTTLPolicy(ctx, f.owner, "acme", TTLPolicyChange{TTLDays: ptr(0)})
	wantKind(t, "ttl 0", err, ErrInvalid, true, "ttl must be between 1 and 3650 days, got 0")

	p, err := f.svc.UpdateProxySetting(ctx, f.adm, "acme", ProxySettingChange{AnonymousPullsUseCredentials: ptr(true), Identity: ptr("bot"), Secret: ptr("s3cret-value")})
	if err != nil || !p.AnonymousPullsUseCredentials || !p.SecretSet || p.Identity != "bot" || !p.Enabled {
		t.Fatalf("an admin's change = %+v, %v", p, err)
	}
	// An owner may take it back, and changes only what they name.
	p, err = f.svc.UpdateProxySetting(ctx, f.owner, "acme", ProxySettingChange{AnonymousPullsUseCredentials: ptr(false)})
	if err != nil || p.AnonymousPullsUseCredentials || p.Identity != "bot" || !p.SecretSet {
		t.Errorf("an owner takes it back = %+v, %v", p, err)
	}
	if strings.Contains(f.log.String(), "s3cret-value") || !strings.Contains(f.log.String(), "identity_set=true") {
		t.Errorf("the audit log shows the secret or not the change:\n%s", f.log)
	}
	if got, err := f.svc.ProxySetting(ctx, f.guest, f.acme.ID); err != nil || got != p {
		t.Errorf("a guest reads it: %+v, %v; want %+v", got, err, p)
	}
	_, err = f.svc.ProxySetting(ctx, f.outsider, f.acme.ID)
	wantKind(t, "an outsider reads it", err, ErrNotFound, false, "not found")

	_, err = f.svc.SetInstanceHubCredentials(ctx, f.owner, "bot", "s3cret")
	wantKind(t, "an owner sets the instance credentials", err, ErrForbidden, false, "needs an instance admin")
	if c, err := f.svc.SetInstanceHubCredentials(ctx, f.adm, "bot", "s3cret"); err != nil || c != (HubCredentials{Identity: "bot", SecretSet: true}) {
		t.Errorf("SetInstanceHubCredentials = %+v, %v", c, err)
	}
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	f := fixture(t)
	ctx := t.Context()
	_, api, _ := f.svc.CreateToken(ctx, f.owner, TokenInput{Kind: TokenPersonal, Name: "api", Scopes: []string{"api"}})
	_, pull, _ := f.svc.CreateToken(ctx, f.owner, TokenInput{Kind: TokenPersonal, Name: "pull", Scopes: []string{"read_registry"}})
	_, deploy, _ := f.svc.CreateToken(ctx, f.owner, TokenInput{Kind: TokenDeploy, Name: "d", GroupPath: ptr("acme"), Scopes: []string{"read_registry"}})
	for _, c := range []struct {
		name, authorization, private, want string
	}{
		{"nothing", "", "", "the admin API needs an access token with the api scope"},
		{"basic", "Basic b2xnYTpwdw==", "", "the Authorization header must be `Bearer <token>`"},
		{"unknown", "Bearer dpxp_nope", "", "invalid token: it is unknown, revoked or expired"},
		{"no api scope", "Bearer " + pull, "", "the token lacks the api scope"},
		{"deploy token", "", deploy, "deploy tokens cannot use the admin API"},
	} {
		_, err := f.svc.Authenticate(ctx, c.authorization, c.private)
		wantKind(t, c.name, err, ErrUnauthorized, false, c.want)
	}
	for _, h := range [][2]string{{"Bearer " + api, ""}, {"bearer  " + api, ""}, {"", api}} {
		a, err := f.svc.Authenticate(ctx, h[0], h[1])
		if err != nil || a.Name() != "olga" {
			t.Errorf("Authenticate(%q, %q) = %v, %v", clip(h[0]), clip(h[1]), a.Name(), err)
		}
		me := f.svc.CurrentUser(a)
		if me.Kind != "PERSONAL_ACCESS_TOKEN" || !slices.Equal(me.Scopes, []string{"api"}) || me.Admin {
			t.Errorf("CurrentUser = %+v", me)
		}
	}
}

// A request scope remembers what one actor may read; another actor using
// the same context gains nothing from it.
func TestRequestScopeIsPerActor(t *testing.T) {
	t.Parallel()
	f := fixture(t)
	ctx := WithRequestScope(t.Context())
	if _, err := f.svc.Groups(ctx, f.guest, GroupQuery{}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Usage(ctx, f.guest, f.acme.ID); err != nil {
		t.Errorf("the guest reads a listed group: %v", err)
	}
	_, err := f.svc.Usage(ctx, f.outsider, f.acme.ID)
	wantKind(t, "an outsider in the guest's scope", err, ErrNotFound, false, "not found")
}

func TestBootstrap(t *testing.T) {
	t.Parallel()
	h := newHarness(t, Options{})
	ctx := t.Context()
	secret, err := h.svc.Bootstrap(ctx)
	if err != nil || secret == "" {
		t.Fatalf("Bootstrap = %q, %v", secret, err)
	}
	a, err := h.svc.Authenticate(ctx, "Bearer "+secret, "")
	if err != nil || a.Name() != "admin" || !a.IsAdmin() || !slices.Equal(a.Token.Scopes, []string{"api"}) || a.Token.Name != "initial admin token" {
		t.Errorf("the bootstrap token signs in as %+v, %v", a, err)
	}
	if strings.Contains(h.log.String(), secret) {
		t.Errorf("the log shows the token:\n%s", h.log)
	}
	if again, err := h.svc.Bootstrap(ctx); err != nil || again != "" {
		t.Errorf("a second Bootstrap = %q, %v; want nothing done", again, err)
	}
}
