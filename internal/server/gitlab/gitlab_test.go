package gitlab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dproxy/dproxy/internal/admin"
	"github.com/dproxy/dproxy/internal/auth"
	"github.com/dproxy/dproxy/internal/secretbox"
	"github.com/dproxy/dproxy/internal/store"
)

// released counts the admin service's releases of cached content.
type released struct{ n int }

func (*released) ForgetGroup(int64)    {}
func (*released) ForgetUpstream(int64) {}
func (r *released) Released()          { r.n++ }

// testAPI is the GitLab API over a real admin service on SQLite, with
// group acme (an owner's and a reporter's) and a manifest cached in it.
type testAPI struct {
	srv                           *httptest.Server
	st                            *store.Store
	adm                           *admin.Service
	cache                         *released
	acme                          admin.Group
	owner, reporter, guest, other string // api tokens
	// bodies keeps every response body call read.
	bodies []string
}

func newTestAPI(t *testing.T) *testAPI {
	t.Helper()
	ctx := t.Context()
	box, err := secretbox.New(bytes.Repeat([]byte{1}, secretbox.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "dproxy.db"), box)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c := &released{}
	adm := admin.New(st, c, auth.NewService(st, nil, auth.ServiceOptions{}), admin.Options{})
	api := &testAPI{st: st, adm: adm, cache: c}
	if api.acme, err = adm.CreateGroup(ctx, admin.System, "acme"); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateGroup(ctx, admin.System, "acme/ci"); err != nil {
		t.Fatal(err)
	}
	token := func(name string, role admin.Role) string {
		if _, err := adm.CreateUser(ctx, admin.System, admin.UserInput{Username: name}); err != nil {
			t.Fatal(err)
		}
		if role != admin.RoleNone {
			if _, err := adm.SetMember(ctx, admin.System, "acme", name, role); err != nil {
				t.Fatal(err)
			}
		}
		_, secret, err := adm.CreateToken(ctx, admin.System, admin.TokenInput{Kind: admin.TokenPersonal, Name: "t", Username: &name, Scopes: []string{"api"}})
		if err != nil {
			t.Fatal(err)
		}
		return secret
	}
	api.owner, api.reporter, api.other = token("olga", admin.RoleOwner), token("rita", admin.RoleReporter), token("sam", admin.RoleNone)
	api.guest = token("gina", admin.RoleGuest)
	api.cacheManifest(t)
	api.srv = httptest.NewServer(New(adm, Options{ExternalURL: "https://dproxy.example/"}))
	t.Cleanup(api.srv.Close)
	return api
}

func (api *testAPI) cacheManifest(t *testing.T) {
	t.Helper()
	if _, err := api.st.PutManifest(t.Context(), store.Manifest{OwnerID: api.acme.ID, Image: "library/alpine", Reference: "latest",
		Digest: admin.Digest("sha256:" + strings.Repeat("ab", 32)), MediaType: "application/vnd.oci.image.manifest.v1+json", Content: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
}

func (api *testAPI) cached(t *testing.T) int {
	t.Helper()
	u, err := api.st.GroupUsage(context.Background(), api.acme.ID)
	if err != nil {
		t.Fatal(err)
	}
	return u.Manifests
}

// do sends a request with header name: value (none when name is "").
func (api *testAPI) do(t *testing.T, method, path, name, value string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, api.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if name != "" {
		req.Header.Set(name, value)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res, string(body)
}

func message(t *testing.T, body string) string {
	t.Helper()
	var m struct{ Message string }
	if err := json.Unmarshal([]byte(body), &m); err != nil || m.Message == "" {
		t.Fatalf("body %q is not GitLab's {\"message\": …}", body)
	}
	return m.Message
}

func TestPurge(t *testing.T) {
	t.Parallel()
	api := newTestAPI(t)
	id := strconv.FormatInt(api.acme.ID, 10)
	for _, c := range []struct {
		name, path, header, value string
		status                    int
		message                   string
	}{
		{"no token", "acme", "", "", 401, "401 Unauthorized: the admin API needs an access token with the api scope"},
		{"basic auth", "acme", "Authorization", "Basic eDp5", 401, "401 Unauthorized: the Authorization header must be `Bearer <token>`"},
		{"unknown token", "acme", "PRIVATE-TOKEN", "dpxp_nope", 401, "401 Unauthorized: invalid token"},
		{"reporter", "acme", "PRIVATE-TOKEN", api.reporter, 403, "403 Forbidden: purging the dependency proxy cache of acme needs the owner role; you are reporter"},
		{"non-member", "acme", "PRIVATE-TOKEN", api.other, 404, "404 Group Not Found"},
		{"non-member by id", id, "PRIVATE-TOKEN", api.other, 404, "404 Group Not Found"},
		{"unknown group", "nope", "Authorization", "Bearer " + api.owner, 404, "404 Group Not Found"},
		{"unknown id", "9999", "Authorization", "Bearer " + api.owner, 404, "404 Group Not Found"},
	} {
		res, body := api.do(t, http.MethodDelete, "/api/v4/groups/"+c.path+"/dependency_proxy/cache", c.header, c.value)
		if res.StatusCode != c.status || !strings.HasPrefix(message(t, body), c.message) {
			t.Errorf("%s: %d %s, want %d %q", c.name, res.StatusCode, body, c.status, c.message)
		}
		if c.status == 401 && res.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: a 401 without a challenge", c.name)
		}
		if api.cached(t) != 1 || api.cache.n != 0 {
			t.Fatalf("%s: the cache changed", c.name)
		}
	}
	res, body := api.do(t, http.MethodDelete, "/api/v4/groups/"+id+"/dependency_proxy/cache", "PRIVATE-TOKEN", api.owner)
	if res.StatusCode != http.StatusAccepted || body != "202" || api.cached(t) != 0 || api.cache.n != 1 {
		t.Errorf("purge by id: %d %q, %d cached, %d releases; want 202, empty", res.StatusCode, body, api.cached(t), api.cache.n)
	}
	api.cacheManifest(t)
	res, body = api.do(t, http.MethodDelete, "/api/v4/groups/acme/dependency_proxy/cache", "Authorization", "Bearer "+api.owner)
	if res.StatusCode != http.StatusAccepted || api.cached(t) != 0 {
		t.Errorf("purge by path: %d %q", res.StatusCode, body)
	}
	res, body = api.do(t, http.MethodDelete, "/api/v4/groups/acme%2Fci/dependency_proxy/cache", "PRIVATE-TOKEN", api.owner)
	if res.StatusCode != http.StatusAccepted {
		t.Errorf("purge of a URL-encoded subgroup path: %d %q", res.StatusCode, body)
	}
	res, body = api.do(t, http.MethodGet, "/api/v4/projects", "PRIVATE-TOKEN", api.owner)
	if res.StatusCode != http.StatusNotFound || !strings.HasPrefix(message(t, body), "404 Not Found") {
		t.Errorf("an endpoint dproxy lacks: %d %s", res.StatusCode, body)
	}
}

func TestWriteError(t *testing.T) {
	t.Parallel()
	h := New(nil, Options{})
	for _, c := range []struct {
		err     error
		status  int
		message string
	}{
		{&admin.Error{Kind: admin.ErrInvalid, Message: "name is blank"}, 400, "400 Bad Request: name is blank"},
		{&admin.Error{Kind: admin.ErrConflict, Message: "name is taken"}, 409, "409 Conflict: name is taken"},
		{&admin.Error{Kind: admin.ErrLimit, Message: "5 at most"}, 409, "409 Conflict: 5 at most"},
		{&admin.Error{Kind: admin.ErrNotFound, Message: "registry 7 does not exist"}, 404, "404 Registry Not Found"},
		{&admin.Error{Kind: admin.ErrThrottled, Message: "try again in 30s", RetryAfter: 29500 * time.Millisecond}, 429, "429 Too Many Requests: try again in 30s"},
		{&admin.Error{Kind: admin.ErrUnavailable, Message: "upstream down"}, 502, "502 Bad Gateway: upstream down"},
		{errors.New("database is locked at /var/lib/x"), 500, "500 Internal Server Error"},
	} {
		rec := httptest.NewRecorder()
		h.writeError(t.Context(), rec, httptest.NewRequest(http.MethodGet, "/api/v4/x", nil), "Registry", c.err)
		if rec.Code != c.status || message(t, rec.Body.String()) != c.message {
			t.Errorf("%v: %d %s, want %d %q", c.err, rec.Code, rec.Body, c.status, c.message)
		}
		if c.status == 429 && rec.Header().Get("Retry-After") != "30" {
			t.Errorf("Retry-After = %q, want 30", rec.Header().Get("Retry-After"))
		}
	}
}

func TestPagination(t *testing.T) {
	t.Parallel()
	h := New(nil, Options{ExternalURL: "https://dproxy.example/base/"})
	for _, q := range []string{"page=0", "page=x", "per_page=0", "per_page=101"} {
		if _, err := pageOf(httptest.NewRequest(http.MethodGet, "/api/v4/x?"+q, nil)); !errors.Is(err, admin.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", q, err)
		}
	}
	p, err := pageOf(httptest.NewRequest(http.MethodGet, "/api/v4/x", nil))
	if err != nil || p != (page{Number: 1, PerPage: 20}) || p.Offset() != 0 {
		t.Errorf("defaults = %+v, %v", p, err)
	}
	r := httptest.NewRequest(http.MethodGet, "/api/v4/groups/5/-/x?search=alp&page=2&per_page=10", nil)
	p, err = pageOf(r)
	if err != nil || p.Offset() != 10 {
		t.Fatalf("page 2 of 10 = %+v, %v", p, err)
	}
	rec := httptest.NewRecorder()
	h.setPageHeaders(rec, r, p, 25)
	want := map[string]string{"X-Page": "2", "X-Per-Page": "10", "X-Total": "25", "X-Total-Pages": "3", "X-Next-Page": "3", "X-Prev-Page": "1"}
	for k, v := range want {
		if got := rec.Header().Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	link := rec.Header().Get("Link")
	for _, part := range []string{
		`<https://dproxy.example/base/api/v4/groups/5/-/x?page=1&per_page=10&search=alp>; rel="prev"`,
		`<https://dproxy.example/base/api/v4/groups/5/-/x?page=3&per_page=10&search=alp>; rel="next"`,
		`rel="first"`, `page=3&per_page=10&search=alp>; rel="last"`,
	} {
		if !strings.Contains(link, part) {
			t.Errorf("Link %q lacks %q", link, part)
		}
	}
	rec = httptest.NewRecorder()
	h.setPageHeaders(rec, httptest.NewRequest(http.MethodGet, "/api/v4/x", nil), page{Number: 1, PerPage: 20}, 0)
	if rec.Header().Get("X-Total-Pages") != "1" || rec.Header().Get("X-Next-Page") != "" || strings.Contains(rec.Header().Get("Link"), "next") {
		t.Errorf("an empty list: %v", rec.Header())
	}
}
