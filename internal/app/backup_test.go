package app_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/dproxy/dproxy/internal/store"
	"github.com/dproxy/dproxy/internal/testregistry"
)

func TestBackupWhilePullingRestoresEverything(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.group("acme")
	tok := e.user("alice", "acme", store.RoleGuest)
	opts := pullOpts("alice", tok)
	ctx := context.Background()
	for i := range 3 {
		e.up.PushRandomImage(t, fmt.Sprintf("library/img%d", i), "v1", 2, 64<<10)
		pullAll(t, e.ref("acme", fmt.Sprintf("img%d:v1", i)), opts)
	}
	for i := range 4 {
		e.up.PushRandomImage(t, fmt.Sprintf("library/busy%d", i), "v1", 2, 64<<10)
	}
	e.settle()
	g, _ := e.app.Store.GroupByPath(ctx, "acme")
	if err := e.app.Store.UpdateTTLPolicy(ctx, store.TTLPolicy{GroupID: g.ID, Enabled: true, TTLDays: 14}); err != nil {
		t.Fatal(err)
	}
	// A sealed secret (of a group nobody pulls through here): the restore
	// must bring the key that decrypts it.
	e.group("other")
	other, _ := e.app.Store.GroupByPath(ctx, "other")
	if err := e.app.Store.UpdateProxySetting(ctx, store.ProxySetting{GroupID: other.ID, Enabled: true, Identity: "hubuser", Secret: "hub-secret"}); err != nil {
		t.Fatal(err)
	}

	// Pulls of other images run while the backup is taken.
	var wg sync.WaitGroup
	pullErrs := make(chan error, 4)
	for i := range 4 {
		wg.Go(func() {
			if err := pull(e.ref("acme", fmt.Sprintf("busy%d:v1", i)), opts); err != nil {
				pullErrs <- err
			}
		})
	}
	archive := filepath.Join(t.TempDir(), "dproxy.tar.gz")
	key := filepath.Join(t.TempDir(), "backup.key")
	code, out := runCLI("backup", "create", "--data-dir", e.app.Config.DataDir, "--key-file", key, "--file", archive)
	wg.Wait()
	close(pullErrs)
	for err := range pullErrs {
		t.Errorf("pull during the backup: %v", err)
	}
	if code != 0 {
		t.Fatalf("backup create exited %d:\n%s", code, out)
	}
	if fi, err := os.Stat(archive); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("archive: %v (mode %v), want a 0600 file", err, fi.Mode().Perm())
	}
	if entries, _ := filepath.Glob(filepath.Join(filepath.Dir(archive), ".*tmp*")); len(entries) != 0 {
		t.Errorf("temp files left next to the archive: %v", entries)
	}

	restored := filepath.Join(t.TempDir(), "restored")
	if code, out := runCLI("backup", "verify", archive, "--key-file", key); code != 0 || !strings.Contains(out, "is a sound backup") {
		t.Fatalf("backup verify exited %d:\n%s", code, out)
	}
	if code, out := runCLI("backup", "restore", archive, "--key-file", key, "--data-dir", restored); code != 0 {
		t.Fatalf("backup restore exited %d:\n%s", code, out)
	}
	if code, out := runCLI("backup", "restore", archive, "--key-file", key, "--data-dir", restored); code == 0 || !strings.Contains(out, "not empty") {
		t.Errorf("restore into a non-empty data dir exited %d, want a refusal:\n%s", code, out)
	}
	if code, out := runCLI("fsck", "--data-dir", restored, "--verify-content"); code != 0 {
		t.Errorf("fsck of the restored data dir exited %d:\n%s", code, out)
	}

	e2 := newEnv(t, envOptions{keepDataDir: restored, keepUpstream: e.up})
	e.up.ResetCounts()
	for i := range 3 {
		pullAll(t, e2.ref("acme", fmt.Sprintf("img%d:v1", i)), opts) // alice's token still works
	}
	if n := e.up.Count("GET", testregistry.KindBlob) + e.up.Count("GET", testregistry.KindManifest); n != 0 {
		t.Errorf("the restored server made %d upstream GETs for cached images, want 0", n)
	}
	// The archive leaves the initial admin token file out; the token, whose
	// hash the database holds, still works.
	if _, err := os.Stat(filepath.Join(restored, "initial_admin_token")); !os.IsNotExist(err) {
		t.Errorf("the restore wrote initial_admin_token: %v", err)
	}
	res, body := e2.do("GET", "/metrics", e.adminToken())
	if res.StatusCode != 200 || !strings.Contains(string(body), `dproxy_cache_size_bytes{group="acme"}`) ||
		!strings.Contains(string(body), "dproxy_cache_stored_bytes") {
		t.Errorf("/metrics lacks the cache size gauges (status %d)", res.StatusCode)
	}
	g2, err := e2.app.Store.GroupByPath(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if p, err := e2.app.Store.TTLPolicy(ctx, g2.ID); err != nil || p.TTLDays != 14 {
		t.Errorf("restored ttl policy %+v, %v; want 14 days", p, err)
	}
	other2, _ := e2.app.Store.GroupByPath(ctx, "other")
	if p, err := e2.app.Store.ProxySetting(ctx, other2.ID); err != nil || p.Secret != "hub-secret" {
		t.Errorf("restored hub secret cannot be decrypted (is the secret key restored?): %v", err)
	}
}
