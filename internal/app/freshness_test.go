package app_test

import (
	"context"
	"testing"
	"time"

	"github.com/dproxy/dproxy/internal/store"
	"github.com/dproxy/dproxy/internal/testclock"
)

// A group's manifest freshness window skips the upstream HEAD for a tag
// confirmed less than the window ago; after it, one HEAD revalidates.
func TestFreshnessWindowSkipsRevalidation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name             string
		window           time.Duration
		headsWithin      int // upstream HEADs for two pulls 10 s after the first
		headsAfterWindow int // upstream HEADs for one pull 31 s later still
	}{
		{"no window: every pull revalidates", 0, 2, 1},
		{"30 s window", 30 * time.Second, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clock := testclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
			e := newEnv(t, envOptions{clock: clock})
			e.group("acme")
			tok := e.user("alice", "acme", store.RoleGuest)
			ctx := context.Background()
			g, err := e.app.Store.GroupByPath(ctx, "acme")
			if err != nil {
				t.Fatal(err)
			}
			s, err := e.app.Store.ProxySetting(ctx, g.ID)
			if err != nil {
				t.Fatal(err)
			}
			s.FreshnessWindow = tc.window
			if err := e.app.Store.UpdateProxySetting(ctx, s); err != nil {
				t.Fatal(err)
			}
			e.up.PushRandomImage(t, "library/app", "v1", 1, 1024)
			jwt := e.jwt("alice", tok, "acme/dependency_proxy/containers/app")
			pull := func() {
				t.Helper()
				if res, body := e.do("GET", "/v2/acme/dependency_proxy/containers/app/manifests/v1", jwt); res.StatusCode != 200 {
					t.Fatalf("manifest GET: %d %s", res.StatusCode, body)
				}
			}
			pull() // a miss: fetched and stored
			e.up.ResetCounts()

			clock.Add(10 * time.Second)
			pull()
			pull()
			if n := e.up.Count("HEAD", "manifest"); n != tc.headsWithin {
				t.Errorf("two pulls within the window: %d upstream HEADs, want %d", n, tc.headsWithin)
			}
			for _, kind := range []string{"manifest", "token"} {
				if n := e.up.Count("GET", kind); n != 0 {
					t.Errorf("two pulls within the window: %d upstream %s GETs, want 0", n, kind)
				}
			}

			e.up.ResetCounts()
			clock.Add(31 * time.Second)
			pull()
			if n := e.up.Count("HEAD", "manifest"); n != tc.headsAfterWindow {
				t.Errorf("a pull after the window: %d upstream HEADs, want %d", n, tc.headsAfterWindow)
			}
			if n := e.up.Count("GET", "manifest"); n != 0 {
				t.Errorf("a pull after the window: %d upstream manifest GETs, want 0", n)
			}
		})
	}
}
