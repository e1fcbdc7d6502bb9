package app_test

import (
	"context"
	"testing"

	"github.com/dproxy/dproxy/internal/config"
	"github.com/dproxy/dproxy/internal/store"
	"github.com/dproxy/dproxy/internal/testregistry"
)

// dockerHubRateLimit says whether the group's credentials were verified:
// only when the upstream asked for them and accepted them. An upstream
// that answers without asking has not checked them.
func TestRateLimitCheckSaysWhetherCredentialsWereVerified(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name     string
		open     bool // the server's upstream asks for no credentials
		verified bool
	}{
		{"upstream with a token service", false, true},
		{"upstream without authentication", true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			up := testregistry.New(t, testregistry.Options{Users: map[string]string{"hubuser": "hubsecret"}})
			up.PushRandomImage(t, "ratelimitpreview/test", "latest", 1, 64)
			e := newEnv(t, envOptions{keepUpstream: up, configure: func(c *config.Config) {
				if tt.open {
					c.Upstream = up.PushURL()
				}
			}})
			e.group("acme")
			ctx := context.Background()
			s, err := e.app.Store.ProxySetting(ctx, e.groupID("acme"))
			if err != nil {
				t.Fatal(err)
			}
			s.Identity, s.Secret = "hubuser", "hubsecret"
			if err := e.app.Store.UpdateProxySetting(ctx, s); err != nil {
				t.Fatal(err)
			}
			tok := e.user("alice", "acme", store.RoleGuest, "api")
			var got struct {
				DockerHubRateLimit struct {
					AuthenticatedAs    string
					CredentialSource   string
					CredentialVerified bool
				}
			}
			e.ok(tok, `query { dockerHubRateLimit(groupPath: "acme") { authenticatedAs credentialSource credentialVerified } }`, nil, &got)
			r := got.DockerHubRateLimit
			if r.AuthenticatedAs != "hubuser" || r.CredentialSource != "GROUP" || r.CredentialVerified != tt.verified {
				t.Errorf("dockerHubRateLimit = %+v, want hubuser from GROUP, verified %v", r, tt.verified)
			}
		})
	}
}
