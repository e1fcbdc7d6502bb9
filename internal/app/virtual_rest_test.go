package app_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/dproxy/dproxy/internal/auth"
	"github.com/dproxy/dproxy/internal/store"
	"github.com/dproxy/dproxy/internal/testregistry"
)

// rest sends a GitLab REST request to dproxy with token as PRIVATE-TOKEN
// and body as JSON (none when ""), decodes a JSON answer into v (when not
// nil) and returns the response.
func (e *env) rest(method, path, token, body string, v any) *http.Response {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("PRIVATE-TOKEN", token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if v != nil && res.StatusCode < 300 {
		if err := json.Unmarshal(b, v); err != nil {
			e.t.Fatalf("%s %s: %d %q is not the JSON expected: %v", method, path, res.StatusCode, b, err)
		}
	}
	if res.StatusCode >= 300 {
		e.t.Logf("%s %s: %d %s", method, path, res.StatusCode, b)
	}
	return res
}

// TestVirtualRegistryREST sets up a virtual registry through GitLab's REST
// API, pulls an image through it, and manages its cache through the API:
// the entries listed are the ones the pull stored, and a deleted entry is
// fetched from the upstream again.
func TestVirtualRegistryREST(t *testing.T) {
	t.Parallel()
	// The upstream is on 127.0.0.1, which the operator allows here.
	e := newEnv(t, envOptions{configure: allowCIDR("127.0.0.1/32")})
	up := testregistry.New(t, testregistry.Options{})
	img := up.PushRandomImage(t, "team/app", "v1", 2, 1024)
	e.group("acme")
	owner := e.user("olga", "acme", store.RoleOwner, auth.ScopeAPI)
	puller := e.user("alice", "acme", store.RoleGuest, auth.ScopeReadVirtualRegistry, auth.ScopeReadRegistry)

	var reg struct {
		ID      int64  `json:"id"`
		GroupID int64  `json:"group_id"`
		Name    string `json:"name"`
	}
	if res := e.rest("POST", "/api/v4/groups/acme/-/virtual_registries/container/registries", owner, `{"name":"all","description":"everything"}`, &reg); res.StatusCode != http.StatusCreated || reg.Name != "all" || reg.GroupID != e.groupID("acme") {
		t.Fatalf("create the registry: %d %+v", res.StatusCode, reg)
	}
	var upstream struct {
		ID               int64  `json:"id"`
		URL              string `json:"url"`
		RegistryUpstream struct {
			RegistryID int64 `json:"registry_id"`
			Position   int   `json:"position"`
		} `json:"registry_upstream"`
	}
	res := e.rest("POST", fmt.Sprintf("/api/v4/virtual_registries/container/registries/%d/upstreams", reg.ID), owner,
		fmt.Sprintf(`{"name":"local","url":%q,"cache_validity_hours":24}`, up.URL), &upstream)
	if res.StatusCode != http.StatusCreated || upstream.URL != up.URL || upstream.RegistryUpstream.RegistryID != reg.ID || upstream.RegistryUpstream.Position != 1 {
		t.Fatalf("create the upstream: %d %+v", res.StatusCode, upstream)
	}

	ref := fmt.Sprintf("%s/virtual_registries/container/%d/team/app:v1", e.host, reg.ID)
	pullAll(t, ref, pullOpts("alice", puller))
	// Idle: every blob downloaded has its reference stored.
	waitFor(t, "the pulled blobs to be recorded", e.app.Virtual.Idle)

	type entry struct {
		ID           string `json:"id"`
		UpstreamID   int64  `json:"upstream_id"`
		RelativePath string `json:"relative_path"`
		Size         int64  `json:"size"`
	}
	entriesURL := fmt.Sprintf("/api/v4/virtual_registries/container/upstreams/%d/cache_entries", upstream.ID)
	list := func() ([]entry, *http.Response) {
		t.Helper()
		var es []entry
		res := e.rest("GET", entriesURL, owner, "", &es)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("list the cache entries: %d", res.StatusCode)
		}
		return es, res
	}
	es, res := list()
	paths := map[string]entry{}
	for _, x := range es {
		paths[x.RelativePath] = x
	}
	layers, _ := img.Layers()
	cfg, _ := img.ConfigName()
	want := []string{"team/app/manifests/v1", "blobs/" + cfg.String()}
	for _, l := range layers {
		d, _ := l.Digest()
		want = append(want, "blobs/"+d.String())
	}
	for _, p := range want {
		if x, ok := paths[p]; !ok || x.UpstreamID != upstream.ID || x.Size <= 0 {
			t.Errorf("cache entry %s: %+v, listed %+v", p, x, es)
		}
	}
	if res.Header.Get("X-Total") != fmt.Sprint(len(es)) {
		t.Errorf("X-Total %q for %d entries", res.Header.Get("X-Total"), len(es))
	}

	// Cached and fresh: a pull asks the upstream nothing.
	manifestPath := fmt.Sprintf("/v2/virtual_registries/container/%d/team/app/manifests/v1", reg.ID)
	repo := fmt.Sprintf("virtual_registries/container/%d/team/app", reg.ID)
	up.ResetCounts()
	if res, body := e.do("GET", manifestPath, e.jwt("alice", puller, repo)); res.StatusCode != http.StatusOK {
		t.Fatalf("pull the cached manifest: %d %s", res.StatusCode, body)
	}
	if n := up.Count("GET", testregistry.KindManifest) + up.Count("HEAD", testregistry.KindManifest); n != 0 {
		t.Fatalf("a cached, fresh manifest made %d upstream requests", n)
	}

	// Deleted through the API: gone from the list, and asked for again.
	tag := paths["team/app/manifests/v1"]
	if res := e.rest("DELETE", "/api/v4/virtual_registries/container/cache_entries/"+tag.ID, owner, "", nil); res.StatusCode != http.StatusNoContent {
		t.Fatalf("delete %s: %d", tag.RelativePath, res.StatusCode)
	}
	es, _ = list()
	for _, x := range es {
		if x.RelativePath == tag.RelativePath {
			t.Errorf("%s is still listed after its deletion", tag.RelativePath)
		}
	}
	if len(es) != len(paths)-1 {
		t.Errorf("%d entries after deleting one of %d", len(es), len(paths))
	}
	if res, body := e.do("GET", manifestPath, e.jwt("alice", puller, repo)); res.StatusCode != http.StatusOK {
		t.Fatalf("pull the manifest again: %d %s", res.StatusCode, body)
	}
	if n := up.Count("GET", testregistry.KindManifest); n != 1 {
		t.Errorf("the deleted manifest made %d upstream GETs, want 1", n)
	}
	es, _ = list()
	if len(es) != len(paths) {
		t.Errorf("%d entries after the manifest came back, want %d", len(es), len(paths))
	}
	if res := e.rest("DELETE", "/api/v4/virtual_registries/container/cache_entries/"+tag.ID, e.user("gina", "acme", store.RoleGuest, auth.ScopeAPI), "", nil); res.StatusCode != http.StatusForbidden {
		t.Errorf("a guest deletes a cache entry: %d, want 403", res.StatusCode)
	}
}
