package adminclient_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/dproxy/dproxy/internal/adminclient"
	"github.com/dproxy/dproxy/internal/config"
	"github.com/dproxy/dproxy/internal/testregistry"
	"github.com/dproxy/dproxy/internal/testserver"
)

func ptr[T any](v T) *T { return &v }

// pull fetches image:tag of group through the proxy as the given user.
func pull(t *testing.T, s *testserver.Server, group, image, user, secret string) {
	t.Helper()
	ref, err := name.ParseReference(s.Host+"/"+group+"/dependency_proxy/containers/"+image, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(ref, remote.WithAuth(&authn.Basic{Username: user, Password: secret}))
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	if _, err := img.RawManifest(); err != nil {
		t.Fatalf("read manifest of %s: %v", ref, err)
	}
	layers, _ := img.Layers()
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatalf("pull layer: %v", err)
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			t.Fatalf("read layer: %v", err)
		}
	}
	s.WaitDownloads(t)
}

func newClient(t *testing.T, url, token string) *adminclient.Client {
	t.Helper()
	c, err := adminclient.New(url, token, adminclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestContract runs every method of the client against the real server.
// The steps build on each other, so they run in order.
func TestContract(t *testing.T) {
	t.Parallel()
	up := testregistry.New(t, testregistry.Options{Users: map[string]string{"hubuser": "hubsecret"}})
	s := testserver.New(t, testserver.Options{Upstream: up})
	ctx := context.Background()
	c := newClient(t, s.URL, s.AdminToken)
	s.Upstream.PushRandomImage(t, "library/alpine", "latest", 2, 512)

	me, err := c.CurrentUser(ctx)
	if err != nil || me.Username != "admin" || !me.Admin {
		t.Fatalf("CurrentUser = %+v, %v; want the admin", me, err)
	}

	for _, p := range []string{"acme", "acme/ci", "zeta"} {
		g, err := c.CreateGroup(ctx, p)
		if err != nil || g.FullPath != p {
			t.Fatalf("CreateGroup(%s) = %+v, %v", p, g, err)
		}
	}
	page, err := c.Groups(ctx, "", adminclient.Page{First: 2})
	if err != nil || len(page.Groups) != 2 || !page.PageInfo.HasNextPage || page.Groups[0].FullPath != "acme" {
		t.Fatalf("Groups(first 2) = %+v, %v", page, err)
	}
	all, err := c.AllGroups(ctx, "")
	if err != nil || len(all) != 3 || all[2].FullPath != "zeta" {
		t.Fatalf("AllGroups = %+v, %v", all, err)
	}
	found, err := c.AllGroups(ctx, "ci")
	if err != nil || len(found) != 1 || found[0].FullPath != "acme/ci" {
		t.Fatalf("AllGroups(search ci) = %+v, %v", found, err)
	}

	set, err := c.UpdateProxySettings(ctx, adminclient.ProxySettingsInput{
		GroupPath: "acme", Enabled: ptr(true), Identity: ptr("hubuser"), Secret: ptr("hubsecret"),
		FreshnessWindowSeconds: ptr(60), AllowAnonymousPull: ptr(false), AnonymousPullsUseCredentials: ptr(true),
	})
	if err != nil || !set.Enabled || set.Identity != "hubuser" || !set.SecretSet || set.FreshnessWindowSeconds != 60 || !set.AnonymousPullsUseCredentials {
		t.Fatalf("UpdateProxySettings = %+v, %v", set, err)
	}
	pol, err := c.UpdateTTLPolicy(ctx, adminclient.TTLPolicyInput{GroupPath: "acme", Enabled: ptr(true), TTL: ptr(7)})
	if err != nil || !pol.Enabled || pol.TTL != 7 {
		t.Fatalf("UpdateTTLPolicy = %+v, %v", pol, err)
	}

	g, err := c.Group(ctx, "acme")
	if err != nil {
		t.Fatalf("Group(acme): %v", err)
	}
	if g.Name != "acme" || g.Setting == nil || !g.Setting.Enabled || !g.Setting.AnonymousPullsUseCredentials || g.TTLPolicy == nil || g.TTLPolicy.TTL != 7 ||
		g.ImagePrefix != s.Host+"/acme/dependency_proxy/containers" || len(g.Subgroups) != 1 || g.Subgroups[0].FullPath != "acme/ci" {
		t.Fatalf("Group(acme) = %+v", g)
	}
	sub, err := c.Group(ctx, "acme/ci")
	if err != nil || sub.ParentPath != "acme" || sub.ImagePrefix != s.Host+"/acme/ci/dependency_proxy/containers" ||
		sub.DirectImagePrefix != s.Host+"/acme/ci/dependency_proxy/containers" {
		t.Fatalf("Group(acme/ci) = %+v, %v", sub, err)
	}

	u, err := c.CreateUser(ctx, adminclient.UserInput{Username: "alice", Password: ptr("correct horse battery")})
	if err != nil || u.Username != "alice" || !u.PasswordSet || u.Admin {
		t.Fatalf("CreateUser = %+v, %v", u, err)
	}
	if _, err := c.CreateUser(ctx, adminclient.UserInput{Username: "bob"}); err != nil {
		t.Fatalf("CreateUser(bob): %v", err)
	}
	users, err := c.AllUsers(ctx)
	if err != nil || len(users) != 3 {
		t.Fatalf("AllUsers = %+v, %v", users, err)
	}
	if up, err := c.UpdateUser(ctx, adminclient.UserInput{Username: "bob", Admin: ptr(true)}); err != nil || !up.Admin {
		t.Fatalf("UpdateUser = %+v, %v", up, err)
	}
	if got, err := c.User(ctx, "bob"); err != nil || !got.Admin {
		t.Fatalf("User(bob) = %+v, %v", got, err)
	}
	if up, err := c.UpdateUser(ctx, adminclient.UserInput{Username: "bob", Blocked: ptr(true)}); err != nil || !up.Blocked {
		t.Fatalf("UpdateUser(block) = %+v, %v", up, err)
	}
	if up, err := c.UpdateUser(ctx, adminclient.UserInput{Username: "bob", Blocked: ptr(false)}); err != nil || up.Blocked {
		t.Fatalf("UpdateUser(unblock) = %+v, %v", up, err)
	}
	// carol changes her own password with a token: with the current one.
	if _, err := c.CreateUser(ctx, adminclient.UserInput{Username: "carol", Password: ptr("carol's first 1")}); err != nil {
		t.Fatal(err)
	}
	carolAPI, err := c.CreateToken(ctx, adminclient.TokenInput{Kind: adminclient.TokenPersonal, Name: "api", Username: "carol", Scopes: []string{"api"}})
	if err != nil {
		t.Fatal(err)
	}
	asCarol := newClient(t, s.URL, carolAPI.Secret)
	_, err = asCarol.UpdateUser(ctx, adminclient.UserInput{Username: "carol", Password: ptr("stolen token 1")})
	if !isAPIError(err) || !strings.Contains(err.Error(), "--current-password") {
		t.Fatalf("UpdateUser(own password, no current one) = %v, want a refusal naming --current-password", err)
	}
	if _, err := asCarol.UpdateUser(ctx, adminclient.UserInput{Username: "carol", Password: ptr("carol's second 2"), CurrentPassword: ptr("carol's first 1")}); err != nil {
		t.Fatalf("UpdateUser(own password, current one) = %v", err)
	}
	m, err := c.AddMember(ctx, "acme", "alice", "GUEST")
	if err != nil || m.Role != "GUEST" || m.Username != "alice" || m.GroupPath != "acme" {
		t.Fatalf("AddMember = %+v, %v", m, err)
	}
	if _, err := c.AddMember(ctx, "acme", "bob", "REPORTER"); err != nil {
		t.Fatal(err)
	}
	members, err := c.Members(ctx, "acme")
	if err != nil || len(members) != 2 {
		t.Fatalf("Members = %+v, %v", members, err)
	}
	if err := c.RemoveMember(ctx, "acme", "bob"); err != nil {
		t.Fatalf("RemoveMember: %v", err)
	}
	if members, _ := c.Members(ctx, "acme"); len(members) != 1 {
		t.Fatalf("after RemoveMember: %+v", members)
	}

	tok, err := c.CreateToken(ctx, adminclient.TokenInput{Kind: adminclient.TokenPersonal, Name: "pull", Username: "alice", Scopes: []string{"read_registry"}, ExpiresAt: ptr(time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second))})
	if err != nil || tok.Secret == "" || tok.Token.ID == "" || tok.Token.ExpiresAt == nil {
		t.Fatalf("CreateToken = %+v, %v", tok, err)
	}
	dep, err := c.CreateToken(ctx, adminclient.TokenInput{Kind: adminclient.TokenDeploy, Name: "ci", GroupPath: "acme", Scopes: []string{"read_registry"}})
	if err != nil || dep.Token.DeployUsername == "" {
		t.Fatalf("CreateToken(deploy) = %+v, %v", dep, err)
	}
	toks, err := c.Tokens(ctx, adminclient.TokenFilter{Username: "alice"})
	if err != nil || len(toks) != 1 || toks[0].Name != "pull" || !toks[0].Active {
		t.Fatalf("Tokens(alice) = %+v, %v", toks, err)
	}
	if toks, err := c.Tokens(ctx, adminclient.TokenFilter{GroupPath: "acme"}); err != nil || len(toks) != 1 || toks[0].Kind != adminclient.TokenDeploy {
		t.Fatalf("Tokens(acme) = %+v, %v", toks, err)
	}
	if own, err := c.Tokens(ctx, adminclient.TokenFilter{}); err != nil || len(own) != 1 || own[0].Name != "initial admin token" {
		t.Fatalf("Tokens(own) = %+v, %v", own, err)
	}

	if rls, err := c.UpstreamRateLimits(ctx); err != nil || len(rls) != 0 {
		t.Fatalf("UpstreamRateLimits before any pull = %+v, %v; want none", rls, err)
	}
	s.Upstream.SetRateLimit(100, 97)
	pull(t, s, "acme", "alpine:latest", "alice", tok.Secret)
	rls, err := c.UpstreamRateLimits(ctx)
	if err != nil || len(rls) != 1 {
		t.Fatalf("UpstreamRateLimits = %+v, %v; want one credential", rls, err)
	}
	if rl := rls[0]; rl.Credential != "hubuser" || rl.Limit != 100 || rl.Remaining != 97 ||
		rl.WindowSeconds == nil || *rl.WindowSeconds != 21600 || rl.Source == nil || *rl.Source != "127.0.0.1" || rl.SeenAt.IsZero() {
		t.Fatalf("UpstreamRateLimits[0] = %+v; want hubuser 97/100 per 21600 s from 127.0.0.1", rl)
	}
	mp, err := c.Manifests(ctx, "acme", adminclient.Page{First: 10})
	var latest *adminclient.Manifest
	for i, m := range mp.Manifests {
		if m.Reference == "latest" {
			latest = &mp.Manifests[i]
		}
	}
	if err != nil || latest == nil || latest.Image != "library/alpine" || latest.ImageName != "alpine:latest" || latest.FileName != "alpine:latest.json" || latest.Size <= 0 || !strings.HasPrefix(latest.Digest, "sha256:") {
		t.Fatalf("Manifests = %+v, %v; want library/alpine:latest", mp, err)
	}
	// A pull returns before its downloads are recorded: wait for the
	// second blob reference (the config and the layer).
	var bp adminclient.BlobPage
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		bp, err = c.Blobs(ctx, "acme", adminclient.Page{First: 1})
		if err != nil || bp.PageInfo.HasNextPage || time.Now().After(deadline) {
			break
		}
	}
	if err != nil || len(bp.Blobs) != 1 || !bp.PageInfo.HasNextPage || bp.Blobs[0].Size <= 0 {
		t.Fatalf("Blobs(first 1) = %+v, %v", bp, err)
	}
	del, err := c.DeleteManifest(ctx, "acme", "alpine", "latest")
	if err != nil || del.Digest != latest.Digest {
		t.Fatalf("DeleteManifest = %+v, %v", del, err)
	}
	pull(t, s, "acme", "alpine:latest", "alice", tok.Secret)
	pr, err := c.PurgeCache(ctx, "acme")
	if err != nil || pr.ManifestCount != len(mp.Manifests) || pr.BlobCount != 2 || pr.FreedBytes <= 0 {
		t.Fatalf("PurgeCache = %+v, %v", pr, err)
	}
	if g, _ := c.Group(ctx, "acme"); g.ImageCount != 0 || g.TotalSizeBytes != 0 {
		t.Fatalf("after purge: %+v", g.GroupSummary)
	}

	rv, err := c.RevokeToken(ctx, tok.Token.ID)
	if err != nil || rv.Token.Active || rv.Token.RevokedAt == nil || rv.AlreadyRevoked {
		t.Fatalf("RevokeToken = %+v, %v", rv, err)
	}
	again, err := c.RevokeToken(ctx, tok.Token.ID)
	if err != nil || !again.AlreadyRevoked || again.Token.RevokedAt == nil || !again.Token.RevokedAt.Equal(*rv.Token.RevokedAt) {
		t.Fatalf("RevokeToken of a revoked token = %+v, %v; want alreadyRevoked with the first revokedAt %v", again, err, rv.Token.RevokedAt)
	}
	creds, err := c.UpdateInstanceDockerHubCredentials(ctx, "default", "s3cret")
	if err != nil || creds.Identity != "default" || !creds.SecretSet {
		t.Fatalf("UpdateInstanceDockerHubCredentials = %+v, %v", creds, err)
	}
	if creds, err := c.InstanceDockerHubCredentials(ctx); err != nil || creds.Identity != "default" {
		t.Fatalf("InstanceDockerHubCredentials = %+v, %v", creds, err)
	}
	if err := c.DeleteUser(ctx, "bob"); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	if err := c.DeleteGroup(ctx, "zeta"); err != nil {
		t.Fatalf("DeleteGroup: %v", err)
	}
	if _, err := c.Group(ctx, "zeta"); !isNotFound(err) {
		t.Fatalf("Group(zeta) after delete: %v, want not found", err)
	}
	if _, err := c.User(ctx, "bob"); !isNotFound(err) {
		t.Fatalf("User(bob) after delete: %v", err)
	}
	if strings.Contains(s.Logs(), "hubsecret") || strings.Contains(s.Logs(), "s3cret") {
		t.Fatal("a Docker Hub secret appears in the server log")
	}
}

// isNotFound reports a missing object: a null answer or the server's
// "not found" message.
func isNotFound(err error) bool {
	var nf *adminclient.NotFoundError
	return errors.As(err, &nf) || (isAPIError(err) && strings.Contains(err.Error(), "not found"))
}

func isAPIError(err error) bool {
	var ae *adminclient.APIError
	return errors.As(err, &ae)
}

// TestErrors checks that every kind of failure becomes an error that says
// what happened, carrying the server's message.
func TestErrors(t *testing.T) {
	t.Parallel()
	s := testserver.New(t, testserver.Options{})
	ctx := context.Background()
	admin := newClient(t, s.URL, s.AdminToken)
	if _, err := admin.CreateGroup(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	before, err := admin.Group(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	// The same dproxy behind TLS: its clients must speak https, and the
	// plain server's http.
	tlsSrv := httptest.NewTLSServer(s.App.Server.Handler())
	t.Cleanup(tlsSrv.Close)
	overTLS, err := adminclient.New(tlsSrv.URL, s.AdminToken, adminclient.Options{HTTPClient: tlsSrv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	if me, err := overTLS.CurrentUser(ctx); err != nil || me.Username != "admin" {
		t.Fatalf("CurrentUser over TLS = %+v, %v", me, err)
	}
	plainToTLS := newClient(t, strings.Replace(tlsSrv.URL, "https://", "http://", 1), s.AdminToken)
	tlsToPlain, err := adminclient.New(strings.Replace(s.URL, "http://", "https://", 1), s.AdminToken, adminclient.Options{HTTPClient: tlsSrv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	isScheme := func(serverTLS bool) func(error) bool {
		return func(err error) bool {
			var e *adminclient.SchemeError
			return errors.As(err, &e) && e.ServerTLS == serverTLS
		}
	}

	tests := []struct {
		name   string
		client *adminclient.Client
		call   func(*adminclient.Client) error
		check  func(error) bool
		want   string
	}{
		{"unreachable", newClient(t, closed, "x"), func(c *adminclient.Client) error { _, err := c.CurrentUser(ctx); return err },
			func(err error) bool { var e *adminclient.UnreachableError; return errors.As(err, &e) },
			"cannot reach dproxy at " + closed},
		{"wrong token", newClient(t, s.URL, "dpxp_wrong"), func(c *adminclient.Client) error { _, err := c.CurrentUser(ctx); return err },
			func(err error) bool { var e *adminclient.UnauthorizedError; return errors.As(err, &e) },
			"dproxy login"},
		{"no token", newClient(t, s.URL, ""), func(c *adminclient.Client) error { _, err := c.AllGroups(ctx, ""); return err },
			func(err error) bool { var e *adminclient.UnauthorizedError; return errors.As(err, &e) },
			"DPROXY_TOKEN"},
		{"http to an https server", plainToTLS, func(c *adminclient.Client) error { _, err := c.CurrentUser(ctx); return err },
			isScheme(true), "speaks HTTPS (TLS), not plain HTTP: use --server " + tlsSrv.URL},
		{"https to an http server", tlsToPlain, func(c *adminclient.Client) error { _, err := c.CurrentUser(ctx); return err },
			isScheme(false), "speaks plain HTTP, not HTTPS (TLS): use --server " + s.URL},
		{"unknown group", admin, func(c *adminclient.Client) error { _, err := c.Group(ctx, "nope"); return err },
			isNotFound,
			`group "nope" not found`},
		{"unknown group in a mutation", admin, func(c *adminclient.Client) error {
			_, err := c.UpdateProxySettings(ctx, adminclient.ProxySettingsInput{GroupPath: "nope", Enabled: ptr(true)})
			return err
		}, isAPIError, "nope"},
		{"refused input", admin, func(c *adminclient.Client) error {
			_, err := c.UpdateTTLPolicy(ctx, adminclient.TTLPolicyInput{GroupPath: "acme", TTL: ptr(0)})
			return err
		}, isAPIError, "ttl"},
		{"identity without secret", admin, func(c *adminclient.Client) error {
			_, err := c.UpdateProxySettings(ctx, adminclient.ProxySettingsInput{GroupPath: "acme", Identity: ptr("x")})
			return err
		}, isAPIError, "secret"},
		{"unknown scope", admin, func(c *adminclient.Client) error {
			_, err := c.CreateToken(ctx, adminclient.TokenInput{Kind: adminclient.TokenPersonal, Name: "x", Scopes: []string{"sudo"}})
			return err
		}, isAPIError, "sudo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call(tt.client)
			if err == nil || !tt.check(err) || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error = %v (%T), want one line containing %q", err, err, tt.want)
			}
		})
	}
	after, err := admin.Group(ctx, "acme")
	if err != nil || !reflect.DeepEqual(before, after) {
		t.Fatalf("refused calls changed acme:\n%+v\n%+v, %v", before, after, err)
	}
}

func TestNewRejectsBadURL(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"", "127.0.0.1:5000", "ftp://x", "http://"} {
		if _, err := adminclient.New(u, "", adminclient.Options{}); err == nil {
			t.Errorf("New(%q) succeeded", u)
		}
	}
}

// A server with admin-addr answers the admin API only there; a client
// pointed at the main address is told where to go.
func TestAdminAddrIsNamedOnTheMainAddress(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := testserver.New(t, testserver.Options{Configure: func(c *config.Config) { c.AdminAddr = "127.0.0.1:0" }})
	_, err := newClient(t, s.URL, s.AdminToken).CurrentUser(ctx)
	if err == nil || !strings.Contains(err.Error(), "use the server's admin address (admin-addr)") {
		t.Errorf("CurrentUser on the main address = %v, want an error naming admin-addr", err)
	}
	admin := httptest.NewServer(s.App.Server.AdminHandler())
	t.Cleanup(admin.Close)
	if me, err := newClient(t, admin.URL, s.AdminToken).CurrentUser(ctx); err != nil || me.Username != "admin" {
		t.Errorf("CurrentUser on the admin address = %+v, %v", me, err)
	}
}
