package bench

import (
	"slices"
	"testing"
	"time"

	"github.com/dproxy/dproxy/internal/auth"
	"github.com/dproxy/dproxy/internal/config"
	"github.com/dproxy/dproxy/internal/secretbox"
	"github.com/dproxy/dproxy/internal/store"
)

// TestPrepareDproxy checks the bench's seeding: a guest of acme and fresh
// whose token pulls, fresh's freshness window and the instance default
// credentials.
func TestPrepareDproxy(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	secret, err := prepareDproxy(ctx, dir, 30*time.Second, "hubuser", "hubpass")
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.DataDir = dir
	key, err := secretbox.LoadOrCreateKey(cfg.SecretKeyPath())
	if err != nil {
		t.Fatal(err)
	}
	box, err := secretbox.New(key)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenSQLite(ctx, cfg.DBPath(), box)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	p, err := auth.NewService(st, nil, auth.ServiceOptions{}).AuthenticateToken(ctx, secret)
	if err != nil || p.Name() != dproxyUser || !slices.Equal(p.Token.Scopes, []string{auth.ScopeReadRegistry}) {
		t.Fatalf("the seeded token signs in as %+v, %v", p, err)
	}
	for _, path := range []string{"acme", "fresh"} {
		g, err := st.GroupByPath(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		if r, err := st.EffectiveRole(ctx, p.User.ID, g.ID); err != nil || r != store.RoleGuest {
			t.Errorf("%s: role %v, %v; want guest", path, r, err)
		}
		s, err := st.ProxySetting(ctx, g.ID)
		want := time.Duration(0)
		if path == "fresh" {
			want = 30 * time.Second
		}
		if err != nil || s.FreshnessWindow != want || !s.Enabled {
			t.Errorf("%s: setting %+v, %v; want enabled with window %s", path, s, err, want)
		}
	}
	if c, err := st.DefaultHubCredentials(ctx); err != nil || c.Identity != "hubuser" || c.Secret != "hubpass" {
		t.Errorf("instance credentials = %+v, %v", c, err)
	}
}
