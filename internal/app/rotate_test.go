package app_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/dproxy/dproxy/internal/auth"
	"github.com/dproxy/dproxy/internal/store"
)

// TestRotateJWTKeyKeepsTokensValid: a registry token issued before `dproxy
// keys rotate-jwt` still pulls from the restarted server, which signs new
// tokens with the new key; `keys rotate-secret` keeps the stored Docker Hub
// secret readable.
func TestRotateJWTKeyKeepsTokensValid(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	e := newEnv(t, envOptions{keepDataDir: dir})
	e.group("acme")
	alice := e.user("alice", "acme", store.RoleGuest, auth.ScopeReadRegistry)
	scope := "repository:acme/dependency_proxy/containers/alpine:pull"
	status, before, _ := e.tokenFor("alice", alice, scope)
	if status != http.StatusOK {
		t.Fatalf("token before the rotation: %d", status)
	}
	g, err := e.app.Store.GroupByPath(t.Context(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.app.Store.UpdateProxySetting(t.Context(), store.ProxySetting{GroupID: g.ID, Enabled: true, Identity: "hubuser", Secret: "hub-secret"}); err != nil {
		t.Fatal(err)
	}
	e.close()

	if code, out := runCLI("keys", "rotate-jwt", "--data-dir", dir); code != 0 {
		t.Fatalf("keys rotate-jwt exited %d:\n%s", code, out)
	}
	if code, out := runCLI("keys", "rotate-secret", "--data-dir", dir); code != 0 || !strings.Contains(out, "re-sealed") {
		t.Fatalf("keys rotate-secret exited %d:\n%s", code, out)
	}
	e2 := newEnv(t, envOptions{keepDataDir: dir, keepUpstream: e.up})
	if res, body := e2.do(http.MethodGet, "/v2/", before); res.StatusCode != http.StatusOK {
		t.Errorf("a token of the old key after the rotation: %d %s", res.StatusCode, body)
	}
	status, after, _ := e2.tokenFor("alice", alice, scope)
	if status != http.StatusOK || after == before {
		t.Fatalf("token after the rotation: %d", status)
	}
	if _, err := e.app.Issuer.Verify(after); err == nil {
		t.Error("a new token verifies with the old key: the key was not rotated")
	}
	g2, _ := e2.app.Store.GroupByPath(t.Context(), "acme")
	if p, err := e2.app.Store.ProxySetting(t.Context(), g2.ID); err != nil || p.Secret != "hub-secret" {
		t.Errorf("the hub secret after the secret key rotation: %q, %v", p.Secret, err)
	}
}
