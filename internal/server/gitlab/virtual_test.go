package gitlab

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dproxy/dproxy/internal/admin"
	"github.com/dproxy/dproxy/internal/store"
)

// vrFixture is group acme's virtual registries: hub asks a (with
// credentials) then b; quay asks q. a's cache holds a manifest and a blob.
type vrFixture struct {
	*testAPI
	hub, quay      admin.Registry
	a, b, q        admin.Upstream
	manifest, blob string // relative paths of a's cache entries
	stored         time.Time
}

// upstreamPassword is a's password: no response may carry it.
const upstreamPassword = "pa55-w0rd-of-upstream-a"

func newVRFixture(t *testing.T) *vrFixture {
	t.Helper()
	api := newTestAPI(t)
	ctx := t.Context()
	f := &vrFixture{testAPI: api, stored: time.Date(2026, 1, 2, 3, 4, 5, 678_000_000, time.UTC)}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	var err error
	f.hub, err = api.adm.CreateRegistry(ctx, admin.System, "acme", admin.RegistryInput{Name: "hub"})
	must(err)
	f.quay, err = api.adm.CreateRegistry(ctx, admin.System, "acme", admin.RegistryInput{Name: "quay", Description: "Red Hat's"})
	must(err)
	f.a, err = api.adm.CreateUpstream(ctx, admin.System, f.hub.ID, admin.UpstreamInput{Name: "a", URL: "https://a.example", Username: "bot", Password: upstreamPassword})
	must(err)
	f.b, err = api.adm.CreateUpstream(ctx, admin.System, f.hub.ID, admin.UpstreamInput{Name: "b", URL: "https://b.example"})
	must(err)
	f.q, err = api.adm.CreateUpstream(ctx, admin.System, f.quay.ID, admin.UpstreamInput{Name: "q", URL: "https://quay.example"})
	must(err)
	uc := api.st.UpstreamCache()
	_, err = uc.PutManifest(ctx, store.Manifest{OwnerID: f.a.ID, Image: "library/alpine", Reference: "latest",
		Digest: admin.Digest("sha256:" + strings.Repeat("cd", 32)), MediaType: "application/vnd.oci.image.index.v1+json",
		Content: []byte("{}"), ETag: `"etag-1"`, CreatedAt: f.stored, UpdatedAt: f.stored.Add(time.Hour), ReadAt: f.stored.Add(2 * time.Hour)})
	must(err)
	blob := admin.Digest("sha256:" + strings.Repeat("ef", 32))
	must(uc.PutBlob(ctx, store.Blob{OwnerID: f.a.ID, Digest: blob, Size: 42, CreatedAt: f.stored, ReadAt: f.stored}))
	f.manifest, f.blob = "library/alpine/manifests/latest", "blobs/"+string(blob)
	return f
}

// call sends a request with token as PRIVATE-TOKEN (none when "") and body
// as JSON (none when ""), and returns the status, the headers and the
// body, which it also keeps in api.bodies.
func (api *testAPI) call(t *testing.T, method, path, token, body string) (int, http.Header, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, api.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("PRIVATE-TOKEN", token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	api.bodies = append(api.bodies, string(b))
	return res.StatusCode, res.Header, string(b)
}

// object and list decode JSON answers.
func object(t *testing.T, body string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("answer %q is not a JSON object: %v", body, err)
	}
	return m
}

func list(t *testing.T, body string) []map[string]any {
	t.Helper()
	var l []map[string]any
	if err := json.Unmarshal([]byte(body), &l); err != nil {
		t.Fatalf("answer %q is not a JSON list of objects: %v", body, err)
	}
	return l
}

// keys are an object's field names, sorted.
func keys(m map[string]any) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return strings.Join(ks, ",")
}

// with adds a field name to a sorted set.
func with(set, key string) string {
	ks := append(strings.Split(set, ","), key)
	slices.Sort(ks)
	return strings.Join(ks, ",")
}

// GitLab's field sets, sorted.
const (
	registryKeys       = "created_at,description,group_id,id,name,updated_at"
	registryDetailKeys = "created_at,description,group_id,id,name,registry_upstreams,updated_at"
	upstreamKeys       = "cache_validity_hours,created_at,description,group_id,id,name,updated_at,url,username"
	associationKeys    = "id,position,registry_id,upstream_id"
	cacheEntryKeys     = "content_type,created_at,downloaded_at,file_md5,file_sha1,group_id,id,relative_path,size,updated_at,upstream_checked_at,upstream_etag,upstream_id"
)

var gitlabTime = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

// association renders the association GitLab's JSON holds, for comparison.
func association(id, registry, upstream int64, position int) string {
	return fmt.Sprintf("map[id:%d position:%d registry_id:%d upstream_id:%d]", id, position, registry, upstream)
}

func str(v any) string { return fmt.Sprint(v) }

// TestVirtualRegistryEndpoints walks every endpoint's happy path in order,
// as an owner, checking status, GitLab's field names and values, the
// 1-based positions and that no answer carries a password.
func TestVirtualRegistryEndpoints(t *testing.T) {
	t.Parallel()
	f := newVRFixture(t)
	id := func(n int64) string { return fmt.Sprint(n) }
	hub, quay, a, b := id(f.hub.ID), id(f.quay.ID), id(f.a.ID), id(f.b.ID)
	var created struct{ registry, upstream string }
	var entryIDs []string

	steps := []struct {
		name, method, path, body string
		status                   int
		check                    func(t *testing.T, h http.Header, body string)
	}{
		{"list a group's registries by path", "GET", "/api/v4/groups/acme/-/virtual_registries/container/registries", "", 200,
			func(t *testing.T, h http.Header, body string) {
				l := list(t, body)
				if len(l) != 2 || keys(l[0]) != registryKeys || str(l[0]["id"]) != hub || str(l[0]["group_id"]) != id(f.acme.ID) ||
					l[0]["name"] != "hub" || l[0]["description"] != nil || l[1]["description"] != "Red Hat's" {
					t.Errorf("registries = %s", body)
				}
				if !gitlabTime.MatchString(str(l[0]["created_at"])) || !gitlabTime.MatchString(str(l[0]["updated_at"])) {
					t.Errorf("times of %v are not GitLab's", l[0])
				}
				if h.Get("X-Total") != "2" || h.Get("X-Page") != "1" || h.Get("X-Per-Page") != "20" || h.Get("X-Next-Page") != "" {
					t.Errorf("pagination headers %v", h)
				}
			}},
		{"list a group's registries by id", "GET", "/api/v4/groups/" + id(f.acme.ID) + "/-/virtual_registries/container/registries?per_page=1", "", 200,
			func(t *testing.T, h http.Header, body string) {
				if l := list(t, body); len(l) != 1 || l[0]["name"] != "hub" || h.Get("X-Total") != "2" || h.Get("X-Next-Page") != "2" {
					t.Errorf("registries by id, 1 a page: %s %v", body, h)
				}
			}},
		{"create a registry", "POST", "/api/v4/groups/acme/-/virtual_registries/container/registries", `{"name":"ghcr","description":"GitHub"}`, 201,
			func(t *testing.T, _ http.Header, body string) {
				m := object(t, body)
				if keys(m) != registryDetailKeys || m["name"] != "ghcr" || m["description"] != "GitHub" || str(m["group_id"]) != id(f.acme.ID) ||
					str(m["registry_upstreams"]) != "[]" {
					t.Errorf("created = %s", body)
				}
				created.registry = str(m["id"])
			}},
		{"get a registry", "GET", "/api/v4/virtual_registries/container/registries/" + hub, "", 200,
			func(t *testing.T, _ http.Header, body string) {
				m := object(t, body)
				want := "[" + association(f.a.ID, f.hub.ID, f.a.ID, 1) + " " + association(f.b.ID, f.hub.ID, f.b.ID, 2) + "]"
				if keys(m) != registryDetailKeys || m["name"] != "hub" || str(m["registry_upstreams"]) != want {
					t.Errorf("registry = %s, want registry_upstreams %s", body, want)
				}
			}},
		{"update a registry", "PATCH", "/api/v4/virtual_registries/container/registries/" + hub, `{"description":"Docker Hub"}`, 200,
			func(t *testing.T, _ http.Header, body string) {
				if m := object(t, body); m["name"] != "hub" || m["description"] != "Docker Hub" {
					t.Errorf("updated = %s", body)
				}
			}},
		{"list a group's upstreams", "GET", "/api/v4/groups/acme/-/virtual_registries/container/upstreams", "", 200,
			func(t *testing.T, h http.Header, body string) {
				l := list(t, body)
				if len(l) != 3 || keys(l[0]) != upstreamKeys || str(l[0]["id"]) != a || l[0]["url"] != "https://a.example" ||
					l[0]["username"] != "bot" || l[1]["username"] != nil || l[0]["description"] != nil ||
					str(l[0]["cache_validity_hours"]) != "24" || str(l[2]["group_id"]) != id(f.acme.ID) || h.Get("X-Total") != "3" {
					t.Errorf("group upstreams = %s", body)
				}
			}},
		{"list a group's upstreams by name", "GET", "/api/v4/groups/acme/-/virtual_registries/container/upstreams?upstream_name=Q", "", 200,
			func(t *testing.T, h http.Header, body string) {
				if l := list(t, body); len(l) != 1 || l[0]["name"] != "q" || h.Get("X-Total") != "1" {
					t.Errorf("upstreams named like Q = %s", body)
				}
			}},
		{"list a registry's upstreams", "GET", "/api/v4/virtual_registries/container/registries/" + hub + "/upstreams", "", 200,
			func(t *testing.T, h http.Header, body string) {
				l := list(t, body)
				if len(l) != 2 || keys(l[0]) != with(upstreamKeys, "registry_upstream") || l[1]["name"] != "b" ||
					str(l[0]["registry_upstream"]) != association(f.a.ID, f.hub.ID, f.a.ID, 1) ||
					str(l[1]["registry_upstream"]) != association(f.b.ID, f.hub.ID, f.b.ID, 2) || h.Get("X-Total") != "2" {
					t.Errorf("hub's upstreams = %s", body)
				}
			}},
		{"create an upstream", "POST", "/api/v4/virtual_registries/container/registries/" + hub + "/upstreams",
			`{"name":"c","url":"https://c.example","description":"not kept","cache_validity_hours":48,"username":"u","password":"p4ss-of-c"}`, 201,
			func(t *testing.T, _ http.Header, body string) {
				m := object(t, body)
				created.upstream = str(m["id"])
				if keys(m) != with(upstreamKeys, "registry_upstream") || m["name"] != "c" || m["username"] != "u" || m["description"] != nil ||
					str(m["cache_validity_hours"]) != "48" || !strings.Contains(str(m["registry_upstream"]), "position:3 registry_id:"+hub) {
					t.Errorf("created upstream = %s", body)
				}
			}},
		{"get an upstream", "GET", "/api/v4/virtual_registries/container/upstreams/" + a, "", 200,
			func(t *testing.T, _ http.Header, body string) {
				m := object(t, body)
				if keys(m) != with(upstreamKeys, "registry_upstreams") || m["name"] != "a" ||
					str(m["registry_upstreams"]) != "["+association(f.a.ID, f.hub.ID, f.a.ID, 1)+"]" {
					t.Errorf("upstream = %s", body)
				}
			}},
		{"update an upstream", "PATCH", "/api/v4/virtual_registries/container/upstreams/" + a, `{"cache_validity_hours":"72"}`, 200,
			func(t *testing.T, _ http.Header, body string) {
				if m := object(t, body); str(m["cache_validity_hours"]) != "72" || m["username"] != "bot" || m["url"] != "https://a.example" {
					t.Errorf("updated upstream = %s", body)
				}
			}},
		{"move an upstream to position 1", "PATCH", "/api/v4/virtual_registries/container/registry_upstreams/" + b, `{"position":1}`, 200,
			func(t *testing.T, _ http.Header, body string) {
				if m := object(t, body); keys(m) != associationKeys || str(m) != association(f.b.ID, f.hub.ID, f.b.ID, 1) {
					t.Errorf("moved = %s", body)
				}
			}},
		{"the registry after the move", "GET", "/api/v4/virtual_registries/container/registries/" + hub, "", 200,
			func(t *testing.T, _ http.Header, body string) {
				ups, _ := object(t, body)["registry_upstreams"].([]any)
				if len(ups) != 3 || str(ups[0]) != association(f.b.ID, f.hub.ID, f.b.ID, 1) || str(ups[1]) != association(f.a.ID, f.hub.ID, f.a.ID, 2) {
					t.Errorf("after moving b to 1: %s", body)
				}
			}},
		{"move an upstream past the end", "PATCH", "/api/v4/virtual_registries/container/registry_upstreams/" + b, `{"position":20}`, 200,
			func(t *testing.T, _ http.Header, body string) {
				if m := object(t, body); str(m["position"]) != "3" {
					t.Errorf("moved past the end = %s, want position 3 (last)", body)
				}
			}},
		{"associate an upstream with another registry", "POST", "/api/v4/virtual_registries/container/registry_upstreams",
			`{"registry_id":` + quay + `,"upstream_id":` + a + `}`, 409,
			func(t *testing.T, _ http.Header, body string) {
				if msg := message(t, body); !strings.HasPrefix(msg, "409 Conflict: upstream a belongs to virtual registry hub") || !strings.Contains(msg, "create a new upstream in quay") {
					t.Errorf("associate = %s", body)
				}
			}},
		{"associate an upstream with its registry", "POST", "/api/v4/virtual_registries/container/registry_upstreams",
			`{"registry_id":` + hub + `,"upstream_id":` + a + `}`, 409,
			func(t *testing.T, _ http.Header, body string) {
				if msg := message(t, body); !strings.Contains(msg, "already associated with virtual registry hub") {
					t.Errorf("associate again = %s", body)
				}
			}},
		{"disassociate", "DELETE", "/api/v4/virtual_registries/container/registry_upstreams/" + a, "", 409,
			func(t *testing.T, _ http.Header, body string) {
				if msg := message(t, body); !strings.HasPrefix(msg, "409 Conflict: upstream a cannot leave virtual registry hub") || !strings.Contains(msg, "delete the upstream instead") {
					t.Errorf("disassociate = %s", body)
				}
			}},
		{"list cache entries", "GET", "/api/v4/virtual_registries/container/upstreams/" + a + "/cache_entries", "", 200,
			func(t *testing.T, h http.Header, body string) {
				l := list(t, body)
				if len(l) != 2 || keys(l[0]) != cacheEntryKeys || h.Get("X-Total") != "2" {
					t.Fatalf("cache entries = %s %v", body, h)
				}
				blob, m := l[0], l[1]
				for _, e := range l {
					entryIDs = append(entryIDs, str(e["id"]))
				}
				if blob["relative_path"] != f.blob || str(blob["size"]) != "42" || blob["content_type"] != nil || blob["upstream_etag"] != nil ||
					blob["file_md5"] != nil || blob["file_sha1"] != nil || str(blob["upstream_id"]) != a || str(blob["group_id"]) != id(f.acme.ID) ||
					blob["id"] != cacheEntryID(f.a.ID, f.blob) {
					t.Errorf("blob entry = %v", blob)
				}
				if m["relative_path"] != f.manifest || m["content_type"] != "application/vnd.oci.image.index.v1+json" || m["upstream_etag"] != `"etag-1"` ||
					m["created_at"] != "2026-01-02T03:04:05.678Z" || m["upstream_checked_at"] != "2026-01-02T04:04:05.678Z" ||
					m["updated_at"] != "2026-01-02T04:04:05.678Z" || m["downloaded_at"] != "2026-01-02T05:04:05.678Z" || str(m["size"]) != "2" {
					t.Errorf("manifest entry = %v", m)
				}
			}},
		{"search cache entries", "GET", "/api/v4/virtual_registries/container/upstreams/" + a + "/cache_entries?search=ALPINE", "", 200,
			func(t *testing.T, h http.Header, body string) {
				if l := list(t, body); len(l) != 1 || l[0]["relative_path"] != f.manifest || h.Get("X-Total") != "1" {
					t.Errorf("entries like ALPINE = %s", body)
				}
			}},
		{"delete a cache entry", "DELETE", "", "", 204, nil}, // the path is the listed id, set below
		{"the entries after the deletion", "GET", "/api/v4/virtual_registries/container/upstreams/" + a + "/cache_entries", "", 200,
			func(t *testing.T, _ http.Header, body string) {
				if l := list(t, body); len(l) != 1 || l[0]["relative_path"] != f.manifest {
					t.Errorf("after deleting the blob entry: %s", body)
				}
			}},
		{"clear an upstream's cache", "DELETE", "/api/v4/virtual_registries/container/upstreams/" + a + "/cache", "", 204, nil},
		{"the entries after the clearing", "GET", "/api/v4/virtual_registries/container/upstreams/" + a + "/cache_entries", "", 200,
			func(t *testing.T, h http.Header, body string) {
				if body != "[]\n" || h.Get("X-Total") != "0" {
					t.Errorf("after clearing: %q %v", body, h)
				}
			}},
		{"clear a registry's cache", "DELETE", "/api/v4/virtual_registries/container/registries/" + quay + "/cache", "", 204, nil},
		{"delete an upstream", "DELETE", "", "", 204, nil}, // the created upstream
		{"delete a registry", "DELETE", "", "", 204, nil},  // the created registry
	}
	for _, s := range steps {
		path := s.path
		switch s.name {
		case "delete a cache entry":
			if len(entryIDs) == 0 {
				t.Fatal("no cache entry ids listed")
			}
			path = "/api/v4/virtual_registries/container/cache_entries/" + entryIDs[0]
		case "delete an upstream":
			path = "/api/v4/virtual_registries/container/upstreams/" + created.upstream
		case "delete a registry":
			path = "/api/v4/virtual_registries/container/registries/" + created.registry
		}
		status, h, body := f.call(t, s.method, path, f.owner, s.body)
		if status != s.status {
			t.Errorf("%s: %s %s: %d %s, want %d", s.name, s.method, path, status, body, s.status)
			continue
		}
		if status == http.StatusNoContent && body != "" {
			t.Errorf("%s: 204 with a body %q", s.name, body)
		}
		if status < 300 && status != http.StatusNoContent && h.Get("Content-Type") != "application/json" {
			t.Errorf("%s: Content-Type %q", s.name, h.Get("Content-Type"))
		}
		if s.check != nil {
			t.Run(s.name, func(t *testing.T) { s.check(t, h, body) })
		}
	}

	// What the deletions left.
	ctx := t.Context()
	if _, err := f.adm.Upstream(ctx, admin.System, f.a.ID); err != nil {
		t.Errorf("upstream a after the refused disassociation: %v", err)
	}
	if rs, err := f.adm.Registries(ctx, admin.System, "acme"); err != nil || len(rs) != 2 {
		t.Errorf("registries after deleting ghcr: %d, %v", len(rs), err)
	}
	// b went first, then last (after c); c is gone.
	if us, err := f.adm.Upstreams(ctx, admin.System, f.hub.ID); err != nil || len(us) != 2 || us[0].ID != f.a.ID || us[1].ID != f.b.ID {
		t.Errorf("hub's upstreams after deleting c: %+v, %v; want a, b", us, err)
	}
	if f.cache.n == 0 {
		t.Error("the cache never heard of released entries")
	}
	for _, path := range []string{
		"/api/v4/virtual_registries/container/upstreams/" + created.upstream,
		"/api/v4/virtual_registries/container/registries/" + created.registry,
	} {
		if status, _, body := f.call(t, "GET", path, f.owner, ""); status != http.StatusNotFound {
			t.Errorf("GET %s after its deletion: %d %s", path, status, body)
		}
	}
	checkNoPassword(t, f.testAPI, upstreamPassword, "p4ss-of-c")
}

// checkNoPassword fails when any answer read carried a password or a
// password field.
func checkNoPassword(t *testing.T, api *testAPI, passwords ...string) {
	t.Helper()
	if len(api.bodies) == 0 {
		t.Fatal("no answers were read")
	}
	for _, b := range api.bodies {
		for _, pw := range passwords {
			if strings.Contains(b, pw) {
				t.Errorf("an answer carries a password: %s", b)
			}
		}
		if strings.Contains(strings.ToLower(b), `"password`) {
			t.Errorf("an answer has a password field: %s", b)
		}
	}
}

// TestVirtualRegistryAccess checks sign-in and roles on every endpoint:
// 401 without a token, 403 for a guest changing anything, and the same
// 404 for an outsider as for an unknown object. Nothing changes on a
// refusal.
func TestVirtualRegistryAccess(t *testing.T) {
	t.Parallel()
	f := newVRFixture(t)
	hub, a := fmt.Sprint(f.hub.ID), fmt.Sprint(f.a.ID)
	entry := cacheEntryID(f.a.ID, f.manifest)
	type endpoint struct {
		method, path, body string
		write              bool
		resource           string // of the 404
	}
	endpoints := []endpoint{
		{"GET", "/api/v4/groups/acme/-/virtual_registries/container/registries", "", false, "Group"},
		{"POST", "/api/v4/groups/acme/-/virtual_registries/container/registries", `{"name":"x"}`, true, "Group"},
		{"GET", "/api/v4/virtual_registries/container/registries/" + hub, "", false, "Registry"},
		{"PATCH", "/api/v4/virtual_registries/container/registries/" + hub, `{"name":"x"}`, true, "Registry"},
		{"DELETE", "/api/v4/virtual_registries/container/registries/" + hub, "", true, "Registry"},
		{"DELETE", "/api/v4/virtual_registries/container/registries/" + hub + "/cache", "", true, "Registry"},
		{"GET", "/api/v4/groups/acme/-/virtual_registries/container/upstreams", "", false, "Group"},
		{"GET", "/api/v4/virtual_registries/container/registries/" + hub + "/upstreams", "", false, "Registry"},
		{"POST", "/api/v4/virtual_registries/container/registries/" + hub + "/upstreams", `{"name":"x","url":"https://x.example"}`, true, "Registry"},
		{"GET", "/api/v4/virtual_registries/container/upstreams/" + a, "", false, "Upstream"},
		{"PATCH", "/api/v4/virtual_registries/container/upstreams/" + a, `{"name":"x"}`, true, "Upstream"},
		{"DELETE", "/api/v4/virtual_registries/container/upstreams/" + a, "", true, "Upstream"},
		{"DELETE", "/api/v4/virtual_registries/container/upstreams/" + a + "/cache", "", true, "Upstream"},
		{"POST", "/api/v4/virtual_registries/container/registry_upstreams", `{"registry_id":` + hub + `,"upstream_id":` + a + `}`, true, ""},
		{"PATCH", "/api/v4/virtual_registries/container/registry_upstreams/" + a, `{"position":2}`, true, "Registry Upstream"},
		{"DELETE", "/api/v4/virtual_registries/container/registry_upstreams/" + a, "", true, "Registry Upstream"},
		{"GET", "/api/v4/virtual_registries/container/upstreams/" + a + "/cache_entries", "", false, "Upstream"},
		{"DELETE", "/api/v4/virtual_registries/container/cache_entries/" + entry, "", true, "Cache Entry"},
	}
	// unknown is the endpoint with its object replaced by one that does
	// not exist.
	unknown := func(e endpoint) endpoint {
		r := strings.NewReplacer("/groups/acme/", "/groups/nope/", "/"+hub+"/", "/9999/", "/"+a+"/", "/9999/", entry, cacheEntryID(9999, f.manifest), `"registry_id":`+hub, `"registry_id":9999`)
		e.path, e.body = r.Replace(e.path+"/"), r.Replace(e.body)
		e.path = strings.TrimSuffix(e.path, "/")
		return e
	}
	state := func() string {
		t.Helper()
		ctx := t.Context()
		rs, err := f.adm.Registries(ctx, admin.System, "acme")
		if err != nil {
			t.Fatal(err)
		}
		es, err := f.adm.CacheEntries(ctx, admin.System, f.a.ID, admin.CacheEntryQuery{})
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%+v %d", rs, len(es.Entries))
	}
	before := state()
	for _, e := range endpoints {
		name := e.method + " " + e.path
		check := func(who string, status int, body string, want int, prefix string) {
			t.Helper()
			if status != want || !strings.HasPrefix(message(t, body), prefix) {
				t.Errorf("%s, %s: %d %s, want %d %q", name, who, status, body, want, prefix)
			}
		}
		status, h, body := f.call(t, e.method, e.path, "", e.body)
		check("no token", status, body, 401, "401 Unauthorized: the admin API needs an access token")
		if h.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: a 401 without a challenge", name)
		}
		if e.write {
			status, _, body = f.call(t, e.method, e.path, f.guest, e.body)
			check("a guest", status, body, 403, "403 Forbidden: ")
			if !strings.Contains(body, "needs the owner role; you are guest") {
				t.Errorf("%s, a guest: %s does not say which role is needed", name, body)
			}
		} else {
			status, _, body = f.call(t, e.method, e.path, f.guest, e.body)
			if status != 200 {
				t.Errorf("%s, a guest reads: %d %s", name, status, body)
			}
		}
		// An outsider and an unknown object get the same answer.
		outsider, _, outBody := f.call(t, e.method, e.path, f.other, e.body)
		u := unknown(e)
		missing, _, missBody := f.call(t, u.method, u.path, f.owner, u.body)
		want404 := "404 " + e.resource + " Not Found"
		if e.resource == "" {
			want404 = "404 Not Found: virtual registry 9999 does not exist or you cannot read its group"
			outBody = strings.Replace(outBody, "virtual registry "+hub+" ", "virtual registry 9999 ", 1)
		}
		check("an outsider", outsider, outBody, 404, want404)
		check("an unknown object", missing, missBody, 404, want404)
		if outBody != missBody {
			t.Errorf("%s: an outsider gets %s, an unknown object %s; want the same answer", name, outBody, missBody)
		}
		if after := state(); after != before {
			t.Fatalf("%s: a refused request changed the registries:\n%s\n%s", name, before, after)
		}
	}
}

// TestVirtualRegistryBadInput checks that malformed requests get a 400 in
// GitLab's shape saying what was wrong, and change nothing.
func TestVirtualRegistryBadInput(t *testing.T) {
	t.Parallel()
	f := newVRFixture(t)
	hub, a, b := fmt.Sprint(f.hub.ID), fmt.Sprint(f.a.ID), fmt.Sprint(f.b.ID)
	for _, c := range []struct {
		name, method, path, body, want string
	}{
		{"no name", "POST", "/api/v4/groups/acme/-/virtual_registries/container/registries", `{"description":"x"}`, "name is missing"},
		{"blank name", "POST", "/api/v4/groups/acme/-/virtual_registries/container/registries", `{"name":""}`, `virtual registry name ""`},
		{"a number for a name", "POST", "/api/v4/groups/acme/-/virtual_registries/container/registries", `{"name":5}`, "name is invalid: it must be a string"},
		{"a subgroup", "POST", "/api/v4/groups/acme%2Fci/-/virtual_registries/container/registries", `{"name":"x"}`, "virtual registries belong to top-level groups"},
		{"not JSON", "POST", "/api/v4/groups/acme/-/virtual_registries/container/registries", `name=x`, "the body is not a JSON object"},
		{"a JSON list", "POST", "/api/v4/groups/acme/-/virtual_registries/container/registries", `["x"]`, "the body is not a JSON object"},
		{"a registry id that is no number", "GET", "/api/v4/virtual_registries/container/registries/hub", "", `id is invalid: "hub" is not the numeric id of a virtual registry`},
		{"an empty change", "PATCH", "/api/v4/virtual_registries/container/registries/" + hub, `{}`, "name, description are missing, at least one parameter must be provided"},
		{"no url", "POST", "/api/v4/virtual_registries/container/registries/" + hub + "/upstreams", `{"name":"x"}`, "url is missing"},
		{"nothing", "POST", "/api/v4/virtual_registries/container/registries/" + hub + "/upstreams", `{}`, "url is missing, name is missing"},
		{"a bad url", "POST", "/api/v4/virtual_registries/container/registries/" + hub + "/upstreams", `{"name":"x","url":"ftp://x"}`, `url "ftp://x"`},
		{"a username alone", "POST", "/api/v4/virtual_registries/container/registries/" + hub + "/upstreams", `{"name":"x","url":"https://x.example","username":"u"}`, "password"},
		{"hours in words", "PATCH", "/api/v4/virtual_registries/container/upstreams/" + a, `{"cache_validity_hours":"a day"}`, "cache_validity_hours is invalid: it must be a whole number"},
		{"fractional hours", "PATCH", "/api/v4/virtual_registries/container/upstreams/" + a, `{"cache_validity_hours":1.5}`, "cache_validity_hours is invalid: it must be a whole number"},
		{"negative hours", "PATCH", "/api/v4/virtual_registries/container/upstreams/" + a, `{"cache_validity_hours":-1}`, "cacheValidityHours must be between 0"},
		{"an empty upstream change", "PATCH", "/api/v4/virtual_registries/container/upstreams/" + a, `{"colour":"red"}`, "cache_validity_hours, description, name, password, url, username are missing"},
		{"position 0", "PATCH", "/api/v4/virtual_registries/container/registry_upstreams/" + b, `{"position":0}`, "position is invalid: use 1 (asked first) or more, got 0"},
		{"no position", "PATCH", "/api/v4/virtual_registries/container/registry_upstreams/" + b, `{}`, "position is missing"},
		{"a position in words", "PATCH", "/api/v4/virtual_registries/container/registry_upstreams/" + b, `{"position":"first"}`, "position is invalid"},
		{"an association without an upstream", "POST", "/api/v4/virtual_registries/container/registry_upstreams", `{"registry_id":` + hub + `}`, "upstream_id is missing"},
		{"page 0", "GET", "/api/v4/virtual_registries/container/upstreams/" + a + "/cache_entries?page=0", "", "page is invalid"},
		{"per_page 101", "GET", "/api/v4/groups/acme/-/virtual_registries/container/upstreams?per_page=101", "", "per_page is invalid: use a number from 1 to 100"},
		{"a cache entry id that is no base64", "DELETE", "/api/v4/virtual_registries/container/cache_entries/%21%21", "", `cache entry id "!!" is not base64`},
		{"a cache entry id without the upstream", "DELETE", "/api/v4/virtual_registries/container/cache_entries/bGlicmFyeS9uZ2lueC9tYW5pZmVzdHMvbGF0ZXN0", "",
			`is base64 of "library/nginx/manifests/latest", not of "<upstream id> <relative path>"`},
	} {
		status, _, body := f.call(t, c.method, c.path, f.owner, c.body)
		if msg := message(t, body); status != http.StatusBadRequest || !strings.HasPrefix(msg, "400 Bad Request: ") || !strings.Contains(msg, c.want) {
			t.Errorf("%s: %d %s, want 400 saying %q", c.name, status, body, c.want)
		}
	}
	if us, err := f.adm.Upstreams(t.Context(), admin.System, f.hub.ID); err != nil || len(us) != 2 || us[0].CacheValidityHours != 24 || us[1].ID != f.b.ID {
		t.Errorf("hub's upstreams after the refusals: %+v, %v", us, err)
	}

	// A content type the API does not read; a body over the server's limit.
	req := httptest.NewRequest("POST", "/api/v4/groups/acme/-/virtual_registries/container/registries", strings.NewReader(`<name>x</name>`))
	req.Header.Set("Content-Type", "application/xml")
	req.Header.Set("PRIVATE-TOKEN", f.owner)
	rec := httptest.NewRecorder()
	New(f.adm, Options{}).ServeHTTP(rec, req)
	if rec.Code != 400 || !strings.Contains(rec.Body.String(), `Content-Type \"application/xml\" is not supported`) {
		t.Errorf("an XML body: %d %s", rec.Code, rec.Body)
	}
	req = httptest.NewRequest("POST", "/api/v4/groups/acme/-/virtual_registries/container/registries", strings.NewReader(`{"name":"`+strings.Repeat("x", 100)+`"}`))
	req.Header.Set("PRIVATE-TOKEN", f.owner)
	rec = httptest.NewRecorder()
	req.Body = http.MaxBytesReader(rec, req.Body, 64)
	New(f.adm, Options{}).ServeHTTP(rec, req)
	if rec.Code != 413 || message(t, rec.Body.String()) != "413 Request Entity Too Large: the request body is over 64 bytes" {
		t.Errorf("a body over the limit: %d %s", rec.Code, rec.Body)
	}
	// GitLab's connection tests are not served.
	for _, c := range []struct{ method, path string }{
		{"GET", "/api/v4/virtual_registries/container/upstreams/" + a + "/test"},
		{"POST", "/api/v4/groups/acme/-/virtual_registries/container/upstreams/test"},
	} {
		if status, _, body := f.call(t, c.method, c.path, f.owner, ""); status != http.StatusNotFound || !strings.HasPrefix(message(t, body), "404 Not Found") {
			t.Errorf("%s %s: %d %s, want 404", c.method, c.path, status, body)
		}
	}
	// A method the path does not answer.
	status, h, body := f.call(t, "PUT", "/api/v4/virtual_registries/container/registries/"+hub, f.owner, `{"name":"x"}`)
	if status != http.StatusMethodNotAllowed || h.Get("Allow") != "GET, PATCH, DELETE" || !strings.HasPrefix(message(t, body), "405 Method Not Allowed") {
		t.Errorf("PUT a registry: %d %v %s", status, h.Get("Allow"), body)
	}
}

// TestVirtualRegistryForms checks the other ways GitLab takes parameters:
// a form body and the query string.
func TestVirtualRegistryForms(t *testing.T) {
	t.Parallel()
	f := newVRFixture(t)
	req, _ := http.NewRequest("POST", f.srv.URL+"/api/v4/groups/acme/-/virtual_registries/container/registries",
		strings.NewReader("name=from-a-form&description=d"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+f.owner)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if m := object(t, string(body)); res.StatusCode != 201 || m["name"] != "from-a-form" || m["description"] != "d" {
		t.Errorf("a form: %d %s", res.StatusCode, body)
	}
	status, _, out := f.call(t, "PATCH", fmt.Sprintf("/api/v4/virtual_registries/container/registry_upstreams/%d?position=1", f.b.ID), f.owner, "")
	if m := object(t, out); status != 200 || str(m["position"]) != "1" {
		t.Errorf("position in the query string: %d %s", status, out)
	}
}

// TestVirtualRegistryPaging pages through an upstream's cache entries.
func TestVirtualRegistryPaging(t *testing.T) {
	t.Parallel()
	f := newVRFixture(t)
	for i := range 3 {
		if _, err := f.st.UpstreamCache().PutManifest(t.Context(), store.Manifest{OwnerID: f.a.ID, Image: "team/app", Reference: fmt.Sprint("v", i),
			Digest: admin.Digest("sha256:" + strings.Repeat("01", 32)), MediaType: "application/vnd.oci.image.manifest.v1+json", Content: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
	}
	base := fmt.Sprintf("/api/v4/virtual_registries/container/upstreams/%d/cache_entries", f.a.ID)
	var seen []string
	for n := 1; n <= 3; n++ {
		status, h, body := f.call(t, "GET", fmt.Sprintf("%s?search=team&per_page=2&page=%d", base, n), f.guest, "")
		if status != 200 {
			t.Fatalf("page %d: %d %s", n, status, body)
		}
		for _, e := range list(t, body) {
			seen = append(seen, str(e["relative_path"]))
		}
		next, prev := map[int]string{1: "2"}[n], map[int]string{2: "1", 3: "2"}[n] // past the end, prev is the last page
		if h.Get("X-Total") != "3" || h.Get("X-Total-Pages") != "2" || h.Get("X-Page") != fmt.Sprint(n) || h.Get("X-Per-Page") != "2" ||
			h.Get("X-Next-Page") != next || h.Get("X-Prev-Page") != prev {
			t.Errorf("page %d headers: %v", n, h)
		}
		link := h.Get("Link")
		if !strings.Contains(link, `<https://dproxy.example`+base+`?page=2&per_page=2&search=team>; rel="last"`) ||
			strings.Contains(link, `rel="next"`) != (next != "") {
			t.Errorf("page %d Link: %s", n, link)
		}
	}
	if strings.Join(seen, ",") != "team/app/manifests/v0,team/app/manifests/v1,team/app/manifests/v2" {
		t.Errorf("paged through %v", seen)
	}
}

// TestCacheEntryID checks the id encoding: GitLab's URL-safe, padded
// base64 of "<upstream id> <relative path>", and the variants GitLab's
// decoder takes.
func TestCacheEntryID(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		upstream int64
		path     string
	}{
		{15, "library/nginx/manifests/latest"},
		{7, "blobs/sha256:" + strings.Repeat("ab", 32)},
		{1, "a/b/manifests/?>?>"}, // bytes whose base64 has - and _ (URL-safe) or + and / (standard)
	} {
		id := cacheEntryID(c.upstream, c.path)
		if strings.ContainsAny(id, "+/") || len(id)%4 != 0 {
			t.Errorf("%d %s: id %q is not URL-safe padded base64", c.upstream, c.path, id)
		}
		std := strings.NewReplacer("-", "+", "_", "/").Replace(id)
		for _, v := range []string{id, strings.TrimRight(id, "="), std, strings.TrimRight(std, "=")} {
			u, p, err := parseCacheEntryID(v)
			if err != nil || u != c.upstream || p != c.path {
				t.Errorf("parse %q = %d %q, %v; want %d %q", v, u, p, err, c.upstream, c.path)
			}
		}
	}
	if id := cacheEntryID(1, "a/b/manifests/?>?>"); !strings.ContainsAny(id, "-_") {
		t.Errorf("the test path encodes to %q, which exercises neither - nor _", id)
	}
	// GitLab's documented example.
	if u, p, err := parseCacheEntryID("MTUgbGlicmFyeS9uZ2lueC9tYW5pZmVzdC9zaGEyNTY6YWJjZGVmZ2hpams="); err != nil || u != 15 || p != "library/nginx/manifest/sha256:abcdefghijk" {
		t.Errorf("GitLab's example = %d %q, %v", u, p, err)
	}
	for _, bad := range []string{"", "!!", "bGlicmFyeS9uZ2lueC9tYW5pZmVzdHMvbGF0ZXN0", "MCB4" /* "0 x" */, "MTU=" /* "15" */} {
		if _, _, err := parseCacheEntryID(bad); err == nil {
			t.Errorf("parse %q: no error", bad)
		}
	}
}

// TestCacheEntryIDRoundTrip deletes entries by the ids a list answered, in
// each form a client may send them.
func TestCacheEntryIDRoundTrip(t *testing.T) {
	t.Parallel()
	f := newVRFixture(t)
	paths := []string{"a/b/manifests/?>?>", "a/b/manifests/~~~", "a/b/manifests/x"}
	for _, p := range paths {
		image, ref, _ := strings.Cut(p, "/manifests/")
		if _, err := f.st.UpstreamCache().PutManifest(t.Context(), store.Manifest{OwnerID: f.b.ID, Image: image, Reference: ref,
			Digest: admin.Digest("sha256:" + strings.Repeat("02", 32)), MediaType: "application/vnd.oci.image.manifest.v1+json", Content: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
	}
	_, _, body := f.call(t, "GET", fmt.Sprintf("/api/v4/virtual_registries/container/upstreams/%d/cache_entries", f.b.ID), f.owner, "")
	ids := map[string]string{}
	for _, e := range list(t, body) {
		ids[str(e["relative_path"])] = str(e["id"])
	}
	if len(ids) != 3 {
		t.Fatalf("listed %s", body)
	}
	forms := []func(string) string{
		func(id string) string { return id },                                                  // as listed
		func(id string) string { return strings.NewReplacer("-", "+", "_", "/").Replace(id) }, // standard base64, with a /
		func(id string) string { return strings.TrimRight(id, "=") + "%3D" },                  // padding escaped
	}
	for i, p := range paths {
		id := forms[i](ids[p])
		status, _, out := f.call(t, "DELETE", "/api/v4/virtual_registries/container/cache_entries/"+id, f.owner, "")
		if status != http.StatusNoContent {
			t.Errorf("delete %s by %q: %d %s", p, id, status, out)
		}
		status, _, out = f.call(t, "DELETE", "/api/v4/virtual_registries/container/cache_entries/"+id, f.owner, "")
		if status != http.StatusNotFound || message(t, out) != "404 Cache Entry Not Found" {
			t.Errorf("delete %s again: %d %s", p, status, out)
		}
	}
	if es, err := f.adm.CacheEntries(t.Context(), admin.System, f.b.ID, admin.CacheEntryQuery{}); err != nil || len(es.Entries) != 0 {
		t.Errorf("b's cache after the deletions: %+v, %v", es, err)
	}
}
