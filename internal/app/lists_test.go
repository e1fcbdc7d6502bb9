package app_test

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/dproxy/dproxy/internal/auth"
	"github.com/dproxy/dproxy/internal/store"
	"github.com/dproxy/dproxy/internal/testclock"
	"github.com/dproxy/dproxy/internal/testregistry"
)

// listEnv is a server on a fake clock whose group acme (freshness window
// given) has the guest alice, in front of an upstream with library/app
// tagged v1, v2, v3, latest.
type listEnv struct {
	*env
	clock *testclock.Clock
	tok   string
	img   v1.Image // library/app:v1
}

const appRepo = "acme/dependency_proxy/containers/app"

func newListEnv(t *testing.T, window time.Duration, o envOptions) *listEnv {
	t.Helper()
	clock := testclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	o.clock = clock
	e := newEnv(t, o)
	e.group("acme")
	l := &listEnv{env: e, clock: clock, tok: e.user("alice", "acme", store.RoleGuest)}
	e.setWindow("acme", window)
	l.img = e.up.PushRandomImage(t, "library/app", "v1", 1, 256)
	e.up.TagManifest(t, "library/app", "v1", "v2", "v3", "latest")
	return l
}

// setWindow sets a group's freshness window.
func (e *env) setWindow(group string, window time.Duration) {
	e.t.Helper()
	ctx := context.Background()
	s, err := e.app.Store.ProxySetting(ctx, e.groupID(group))
	if err != nil {
		e.t.Fatal(err)
	}
	s.FreshnessWindow = window
	if err := e.app.Store.UpdateProxySetting(ctx, s); err != nil {
		e.t.Fatal(err)
	}
}

type tagList struct {
	Name string   `json:"name"`
	Tags []string `json:"tags"`
}

// tags GETs path (a tag list) with jwt and decodes a 200's body.
func (e *env) tags(path, jwt string) (*http.Response, tagList) {
	e.t.Helper()
	res, body := e.do(http.MethodGet, path, jwt)
	var l tagList
	if res.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &l); err != nil {
			e.t.Fatalf("GET %s: %v in %s", path, err, body)
		}
	}
	return res, l
}

// upstreamLists counts an upstream's tag and referrers list requests.
func upstreamLists(u *testregistry.Upstream) int {
	return u.Count(http.MethodGet, testregistry.KindTags) + u.Count(http.MethodGet, testregistry.KindReferrers)
}

var linkHeader = regexp.MustCompile(`^<(/v2/[^>]+)>; rel="next"$`)

// TestTagListPagination: n, last and Link as the distribution spec has
// them, over the whole list the upstream sent in pages of its own.
func TestTagListPagination(t *testing.T) {
	t.Parallel()
	l := newListEnv(t, 0, envOptions{})
	l.up.SetListPaging(2, true) // dproxy must follow the upstream's pages
	jwt := l.jwt("alice", l.tok, appRepo)
	want := []string{"latest", "v1", "v2", "v3"}

	res, all := l.tags("/v2/"+appRepo+"/tags/list", jwt)
	if res.StatusCode != http.StatusOK || all.Name != appRepo || !slices.Equal(all.Tags, want) || res.Header.Get("Link") != "" {
		t.Fatalf("whole list: %d %+v Link %q; want %v", res.StatusCode, all, res.Header.Get("Link"), want)
	}
	if g := res.Header.Get("Content-Type"); g != "application/json" {
		t.Errorf("Content-Type %q", g)
	}

	var got []string
	path := "/v2/" + appRepo + "/tags/list?n=3"
	for pages := 0; path != ""; pages++ {
		if pages > 3 {
			t.Fatal("the Link headers never end")
		}
		res, page := l.tags(path, jwt)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", path, res.StatusCode)
		}
		got = append(got, page.Tags...)
		path = ""
		if link := res.Header.Get("Link"); link != "" {
			m := linkHeader.FindStringSubmatch(link)
			if m == nil {
				t.Fatalf("Link %q is not <path>; rel=\"next\"", link)
			}
			path = m[1]
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("following Link with n=3: %v, want %v", got, want)
	}
	if _, p := l.tags("/v2/"+appRepo+"/tags/list?n=2&last=v1", jwt); !slices.Equal(p.Tags, []string{"v2", "v3"}) {
		t.Errorf("n=2&last=v1: %v, want [v2 v3]", p.Tags)
	}
	if res, p := l.tags("/v2/"+appRepo+"/tags/list?n=0", jwt); len(p.Tags) != 0 || p.Tags == nil || res.Header.Get("Link") != "" {
		t.Errorf("n=0: %#v, Link %q; want [] and no Link", p.Tags, res.Header.Get("Link"))
	}
	res, body := l.do(http.MethodGet, "/v2/"+appRepo+"/tags/list?n=many", jwt)
	if code, msg := ociError(t, body); res.StatusCode != http.StatusBadRequest || code != "PAGINATION_NUMBER_INVALID" || !strings.Contains(msg, "many") {
		t.Errorf("n=many: %d %s %q", res.StatusCode, code, msg)
	}
	res, body = l.do(http.MethodHead, "/v2/"+appRepo+"/tags/list", jwt)
	if res.StatusCode != http.StatusOK || len(body) != 0 || res.Header.Get("Content-Length") == "" {
		t.Errorf("HEAD: %d %q %v", res.StatusCode, body, res.Header)
	}

	// A real client pages through it.
	repo, err := name.NewRepository(l.host+"/"+appRepo, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	listed, err := remote.List(repo, pullOpts("alice", l.tok)...)
	if err != nil || !slices.Equal(listed, want) {
		t.Errorf("go-containerregistry's List: %v, %v", listed, err)
	}
}

// TestTagListFreshness: a group's freshness window serves the stored list
// without asking the upstream; after it (or always, with a window of 0)
// the upstream is asked again and new tags appear.
func TestTagListFreshness(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		window      time.Duration
		askedWithin int // upstream list requests of two listings within the window
	}{
		{"no window: every listing asks", 0, 2},
		{"an hour", time.Hour, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := newListEnv(t, tc.window, envOptions{})
			jwt := l.jwt("alice", l.tok, appRepo)
			if res, _ := l.tags("/v2/"+appRepo+"/tags/list", jwt); res.StatusCode != 200 || res.Header.Get("X-Dproxy-Cache") != "miss" {
				t.Fatalf("first listing: %d %s", res.StatusCode, res.Header.Get("X-Dproxy-Cache"))
			}
			l.up.ResetCounts()
			l.up.TagManifest(t, "library/app", "v1", "v4")

			l.clock.Add(10 * time.Minute)
			var within tagList
			for range 2 {
				_, within = l.tags("/v2/"+appRepo+"/tags/list", jwt)
			}
			if n := l.up.Count(http.MethodGet, testregistry.KindTags); n != tc.askedWithin {
				t.Errorf("two listings within the window: %d upstream tag list requests, want %d", n, tc.askedWithin)
			}
			if n := l.up.Count(http.MethodGet, testregistry.KindToken); tc.window > 0 && n != 0 {
				t.Errorf("two listings within the window: %d upstream token requests, want 0", n)
			}
			if has := slices.Contains(within.Tags, "v4"); has != (tc.window == 0) {
				t.Errorf("within the window, v4 listed: %v (%v)", has, within.Tags)
			}

			l.clock.Add(time.Hour)
			jwt = l.jwt("alice", l.tok, appRepo) // the first expired
			l.up.ResetCounts()
			res, after := l.tags("/v2/"+appRepo+"/tags/list", jwt)
			if !slices.Contains(after.Tags, "v4") || res.Header.Get("X-Dproxy-Cache") != "miss" {
				t.Errorf("after the window: %v (%s), want v4 listed, from the upstream", after.Tags, res.Header.Get("X-Dproxy-Cache"))
			}
			if n := l.up.Count(http.MethodGet, testregistry.KindTags); n != 1 {
				t.Errorf("a listing after the window: %d upstream tag list requests, want 1", n)
			}
		})
	}
}

// TestTagListStale: while the upstream fails, the stored list is served
// (marked stale and counted); without one the failure is answered. The
// stored list survives a restart, and a purge removes it.
func TestTagListStale(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first := newListEnv(t, 0, envOptions{keepDataDir: dir})
	first.up.PushRandomImage(t, "library/other", "1", 1, 256)
	jwt := first.jwt("alice", first.tok, appRepo)
	_, want := first.tags("/v2/"+appRepo+"/tags/list", jwt)

	first.up.SetStatus(http.StatusServiceUnavailable)
	res, got := first.tags("/v2/"+appRepo+"/tags/list", jwt)
	if res.StatusCode != http.StatusOK || !slices.Equal(got.Tags, want.Tags) || res.Header.Get("X-Dproxy-Cache") != "stale" {
		t.Errorf("upstream failing: %d %v %q; want the stored %v, stale", res.StatusCode, got.Tags, res.Header.Get("X-Dproxy-Cache"), want.Tags)
	}
	exp := metricsText(t, first.env)
	for _, m := range []string{`dproxy_stale_served_total{kind="tags",reason="unavailable"} 1`,
		`dproxy_cache_results_total{kind="tags",result="miss"} 1`} {
		if !strings.Contains(exp, m+"\n") {
			t.Errorf("/metrics lacks %q", m)
		}
	}
	other := "acme/dependency_proxy/containers/other"
	res, body := first.do(http.MethodGet, "/v2/"+other+"/tags/list", first.jwt("alice", first.tok, other))
	if code, _ := ociError(t, body); res.StatusCode != http.StatusBadGateway || code != "UNAVAILABLE" {
		t.Errorf("nothing stored, upstream failing: %d %s", res.StatusCode, code)
	}
	first.close()

	// Restarted, with the upstream down: the stored list is still served.
	first.up.SetStatus(0)
	first.up.SetDown(true)
	e := newEnv(t, envOptions{keepDataDir: dir, keepUpstream: first.up, clock: first.clock})
	jwt = e.jwt("alice", first.tok, appRepo)
	res, got = e.tags("/v2/"+appRepo+"/tags/list", jwt)
	if res.StatusCode != http.StatusOK || !slices.Equal(got.Tags, want.Tags) || res.Header.Get("X-Dproxy-Cache") != "stale" {
		t.Errorf("after a restart, upstream down: %d %v %q", res.StatusCode, got.Tags, res.Header.Get("X-Dproxy-Cache"))
	}

	// The purge endpoints' store call removes it with the group's cache.
	if _, err := e.app.Store.PurgeGroupCacheCounted(context.Background(), e.groupID("acme")); err != nil {
		t.Fatal(err)
	}
	if res, _ := e.tags("/v2/"+appRepo+"/tags/list", jwt); res.StatusCode != http.StatusBadGateway {
		t.Errorf("after a purge, upstream down: %d, want 502 (nothing stored)", res.StatusCode)
	}
}

// TestTagListErrors: a repository the upstream does not know is
// NAME_UNKNOWN, stored list or not.
func TestTagListErrors(t *testing.T) {
	t.Parallel()
	l := newListEnv(t, 0, envOptions{})
	repo := "acme/dependency_proxy/containers/nothing"
	res, body := l.do(http.MethodGet, "/v2/"+repo+"/tags/list", l.jwt("alice", l.tok, repo))
	if code, msg := ociError(t, body); res.StatusCode != http.StatusNotFound || code != "NAME_UNKNOWN" || !strings.Contains(msg, "library/nothing") {
		t.Errorf("unknown upstream repository: %d %s %q", res.StatusCode, code, msg)
	}
}

// TestListAuthorization: listing tags or referrers is a pull: whoever may
// not pull a repository's manifests gets the same answer for its lists.
func TestListAuthorization(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.group("a", "b", "off")
	img := e.up.PushRandomImage(t, "library/alpine", "latest", 1, 256)
	digest, _ := img.Digest()
	ctx := context.Background()
	st := e.app.Store
	guest := e.user("guest", "a", store.RoleGuest)
	minimal := e.user("minimal", "a", store.RoleMinimalAccess)
	noScope := e.user("noscope", "a", store.RoleOwner, auth.ScopeReadVirtualRegistry)
	offOwner := e.user("offowner", "off", store.RoleOwner)
	ps, _ := st.ProxySetting(ctx, e.groupID("off"))
	ps.Enabled = false
	if err := st.UpdateProxySetting(ctx, ps); err != nil {
		t.Fatal(err)
	}
	repo := func(g string) string { return g + "/dependency_proxy/containers/alpine" }
	for _, c := range []struct {
		name, user, secret, group string
		status                    int
	}{
		{"guest", "guest", guest, "a", 200},
		{"non-member", "guest", guest, "b", 404},
		{"unknown group", "guest", guest, "nope", 404},
		{"below guest", "minimal", minimal, "a", 403},
		{"no registry scope", "noscope", noScope, "a", 403},
		{"proxy disabled", "offowner", offOwner, "off", 403},
		{"a token for another repository", "guest", guest, "a", 401},
		{"no token", "", "", "a", 401},
	} {
		t.Run(c.name, func(t *testing.T) {
			jwt := ""
			switch {
			case c.name == "a token for another repository":
				jwt = e.jwt(c.user, c.secret, "a/dependency_proxy/containers/other")
			case c.user != "":
				jwt = e.jwt(c.user, c.secret, repo(c.group))
			}
			mres, mbody := e.do(http.MethodGet, "/v2/"+repo(c.group)+"/manifests/latest", jwt)
			if mres.StatusCode != c.status {
				t.Fatalf("manifest: %d, want %d: %s", mres.StatusCode, c.status, mbody)
			}
			for _, path := range []string{"/tags/list", "/referrers/" + digest.String()} {
				res, body := e.do(http.MethodGet, "/v2/"+repo(c.group)+path, jwt)
				if res.StatusCode != mres.StatusCode || res.Header.Get("WWW-Authenticate") != mres.Header.Get("WWW-Authenticate") {
					t.Errorf("%s: %d %q, the manifest's: %d %q", path, res.StatusCode, res.Header.Get("WWW-Authenticate"),
						mres.StatusCode, mres.Header.Get("WWW-Authenticate"))
				}
				if c.status == 200 {
					continue
				}
				code, msg := ociError(t, body)
				mcode, mmsg := ociError(t, mbody)
				if code != mcode || msg != mmsg {
					t.Errorf("%s: %s %q, the manifest's: %s %q", path, code, msg, mcode, mmsg)
				}
			}
		})
	}
}

// TestMirrorModeLists: the mirror group lists plain Docker Hub names.
func TestMirrorModeLists(t *testing.T) {
	t.Parallel()
	e, alice, _ := mirrorEnv(t)
	e.up.PushRandomImage(t, "library/app", "v1", 1, 256)
	e.up.TagManifest(t, "library/app", "v1", "v2")
	res, l := e.tags("/v2/library/app/tags/list?ns=docker.io", e.jwt("alice", alice, "library/app"))
	if res.StatusCode != http.StatusOK || l.Name != "library/app" || !slices.Equal(l.Tags, []string{"v1", "v2"}) {
		t.Errorf("mirror tag list: %d %+v", res.StatusCode, l)
	}
}

// referrersIndex is a referrers answer.
type referrersIndex struct {
	MediaType string `json:"mediaType"`
	Manifests []struct {
		Digest       string            `json:"digest"`
		ArtifactType string            `json:"artifactType"`
		Annotations  map[string]string `json:"annotations"`
	} `json:"manifests"`
}

func (e *env) referrers(path, jwt string) (*http.Response, referrersIndex) {
	e.t.Helper()
	res, body := e.do(http.MethodGet, path, jwt)
	var idx referrersIndex
	if res.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &idx); err != nil {
			e.t.Fatalf("GET %s: %v in %s", path, err, body)
		}
	}
	return res, idx
}

func (r referrersIndex) types() map[string]string {
	out := map[string]string{}
	for _, m := range r.Manifests {
		out[m.Digest] = m.ArtifactType
	}
	return out
}

func subjectOf(t *testing.T, img v1.Image) v1.Descriptor {
	t.Helper()
	d, _ := img.Digest()
	mt, _ := img.MediaType()
	size, _ := img.Size()
	return v1.Descriptor{MediaType: mt, Digest: d, Size: size}
}

// TestReferrers: the upstream's referrers API, filtered by artifactType;
// an upstream without one through its referrers tag schema, and none at
// all as an empty index; cached and served stale like tag lists.
func TestReferrers(t *testing.T) {
	t.Parallel()
	l := newListEnv(t, time.Hour, envOptions{})
	jwt := l.jwt("alice", l.tok, appRepo)
	subject := subjectOf(t, l.img)
	sbom := l.up.PushReferrer(t, "library/app", subject, testregistry.Referrer{ArtifactType: "application/vnd.test.sbom",
		Annotations: map[string]string{"org.test.kind": "sbom"}})
	sig := l.up.PushReferrer(t, "library/app", subject, testregistry.Referrer{ArtifactType: "application/vnd.test.sig"})
	path := "/v2/" + appRepo + "/referrers/" + subject.Digest.String()

	res, idx := l.referrers(path, jwt)
	want := map[string]string{sbom.Digest.String(): "application/vnd.test.sbom", sig.Digest.String(): "application/vnd.test.sig"}
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/vnd.oci.image.index.v1+json" ||
		idx.MediaType != "application/vnd.oci.image.index.v1+json" || !maps.Equal(idx.types(), want) {
		t.Fatalf("referrers: %d %s %+v; want %v", res.StatusCode, res.Header.Get("Content-Type"), idx, want)
	}
	for _, m := range idx.Manifests {
		if m.Digest == sbom.Digest.String() && m.Annotations["org.test.kind"] != "sbom" {
			t.Errorf("the sbom lost its annotations: %+v", m)
		}
	}
	res, idx = l.referrers(path+"?artifactType=application/vnd.test.sig", jwt)
	if res.Header.Get("OCI-Filters-Applied") != "artifactType" || !maps.Equal(idx.types(), map[string]string{sig.Digest.String(): "application/vnd.test.sig"}) {
		t.Errorf("filtered: %+v, OCI-Filters-Applied %q", idx, res.Header.Get("OCI-Filters-Applied"))
	}
	if n := l.up.Count(http.MethodGet, testregistry.KindReferrers); n != 2 {
		t.Errorf("%d upstream referrers requests for two listings within the window, want 2 (a challenge and one)", n)
	}

	// A real client reads the same.
	dref, err := name.NewDigest(l.host+"/"+appRepo+"@"+subject.Digest.String(), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	cidx, err := remote.Referrers(dref, pullOpts("alice", l.tok)...)
	if err != nil {
		t.Fatal(err)
	}
	if im, err := cidx.IndexManifest(); err != nil || len(im.Manifests) != 2 {
		t.Errorf("go-containerregistry's Referrers: %+v, %v", im, err)
	}

	// Stale: the window passed, the upstream fails.
	l.clock.Add(2 * time.Hour)
	jwt = l.jwt("alice", l.tok, appRepo)
	l.up.SetStatus(http.StatusBadGateway)
	res, idx = l.referrers(path, jwt)
	if res.StatusCode != http.StatusOK || res.Header.Get("X-Dproxy-Cache") != "stale" || !maps.Equal(idx.types(), want) {
		t.Errorf("upstream failing: %d %q %+v", res.StatusCode, res.Header.Get("X-Dproxy-Cache"), idx)
	}
	l.up.SetStatus(0)

	// No referrers API: the referrers tag schema; nothing there: none.
	l.up.SetReferrersAPI(false)
	other := subjectOf(t, l.up.PushRandomImage(t, "library/app", "other", 1, 256))
	opath := "/v2/" + appRepo + "/referrers/" + other.Digest.String()
	res, body := l.do(http.MethodGet, opath, jwt)
	if res.StatusCode != http.StatusOK || string(body) != `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}` {
		t.Errorf("no API, no referrers tag: %d %s; want an empty index", res.StatusCode, body)
	}
	att := l.up.PushReferrer(t, "library/app", other, testregistry.Referrer{ArtifactType: "application/vnd.test.attestation"})
	l.clock.Add(2 * time.Hour)
	jwt = l.jwt("alice", l.tok, appRepo)
	res, idx = l.referrers(opath, jwt)
	if res.StatusCode != http.StatusOK || !maps.Equal(idx.types(), map[string]string{att.Digest.String(): "application/vnd.test.attestation"}) {
		t.Errorf("no API, a referrers tag: %d %+v", res.StatusCode, idx)
	}

	// A malformed digest.
	res, body = l.do(http.MethodGet, "/v2/"+appRepo+"/referrers/sha256:nope", jwt)
	if code, _ := ociError(t, body); res.StatusCode != http.StatusBadRequest || code != "DIGEST_INVALID" {
		t.Errorf("malformed digest: %d %s", res.StatusCode, code)
	}
}

// TestVirtualRegistryLists: a virtual registry lists the union of its
// upstreams' tags (and referrers), each cached for its upstream's
// cache_validity_hours and served stale when that upstream fails.
func TestVirtualRegistryLists(t *testing.T) {
	t.Parallel()
	v := newVREnv(t)
	imgA := v.a.PushRandomImage(t, "team/app", "v1", 1, 256)
	v.a.TagManifest(t, "team/app", "v1", "v2")
	v.b.PushRandomImage(t, "team/app", "v2", 1, 256)
	v.b.TagManifest(t, "team/app", "v2", "v3", "b-only")
	// c does not have team/app at all.
	repo := v.repo("team/app")
	jwt := v.jwt("alice", v.tok, repo)

	res, l := v.tags("/v2/"+repo+"/tags/list", jwt)
	want := []string{"b-only", "v1", "v2", "v3"}
	if res.StatusCode != http.StatusOK || l.Name != repo || !slices.Equal(l.Tags, want) || res.Header.Get("X-Dproxy-Cache") != "miss" {
		t.Fatalf("union: %d %+v %q; want %v", res.StatusCode, l, res.Header.Get("X-Dproxy-Cache"), want)
	}
	if res, p := v.tags("/v2/"+repo+"/tags/list?n=2&last=v1", jwt); !slices.Equal(p.Tags, []string{"v2", "v3"}) || res.Header.Get("Link") != "" {
		t.Errorf("a page of the union: %v, Link %q", p.Tags, res.Header.Get("Link"))
	}

	// Within a's and b's 24 hours: neither is asked.
	v.clock.Add(23 * time.Hour)
	jwt = v.jwt("alice", v.tok, repo)
	v.a.ResetCounts()
	v.b.ResetCounts()
	if res, _ := v.tags("/v2/"+repo+"/tags/list", jwt); res.Header.Get("X-Dproxy-Cache") != "hit" {
		t.Errorf("within the validity: X-Dproxy-Cache %q, want hit", res.Header.Get("X-Dproxy-Cache"))
	}
	if n := upstreamLists(v.a) + upstreamLists(v.b); n != 0 {
		t.Errorf("within the validity: %d list requests to a and b, want 0", n)
	}

	// After them, b down: b's stored tags are still in the union.
	v.b.SetDown(true)
	v.a.TagManifest(t, "team/app", "v1", "a-new")
	v.clock.Add(2 * time.Hour)
	jwt = v.jwt("alice", v.tok, repo)
	res, l = v.tags("/v2/"+repo+"/tags/list", jwt)
	want = []string{"a-new", "b-only", "v1", "v2", "v3"}
	if res.StatusCode != http.StatusOK || !slices.Equal(l.Tags, want) || res.Header.Get("X-Dproxy-Cache") != "stale" {
		t.Errorf("b down: %d %v %q; want %v, stale", res.StatusCode, l.Tags, res.Header.Get("X-Dproxy-Cache"), want)
	}

	// Referrers: united as well.
	subject := subjectOf(t, imgA)
	onA := v.a.PushReferrer(t, "team/app", subject, testregistry.Referrer{ArtifactType: "application/vnd.test.sig"})
	rpath := "/v2/" + repo + "/referrers/" + subject.Digest.String()
	res, idx := v.referrers(rpath, jwt)
	if res.StatusCode != http.StatusOK || !maps.Equal(idx.types(), map[string]string{onA.Digest.String(): "application/vnd.test.sig"}) {
		t.Errorf("virtual referrers: %d %+v", res.StatusCode, idx)
	}

	// A repository no upstream has.
	nothing := v.repo("team/nothing")
	v.b.SetDown(false)
	res, body := v.do(http.MethodGet, "/v2/"+nothing+"/tags/list", v.jwt("alice", v.tok, nothing))
	if code, msg := ociError(t, body); res.StatusCode != http.StatusNotFound || code != "NAME_UNKNOWN" || !strings.Contains(msg, "none of the upstreams") {
		t.Errorf("unknown everywhere: %d %s %q", res.StatusCode, code, msg)
	}
}
