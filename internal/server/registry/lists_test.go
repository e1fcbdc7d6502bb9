package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/dproxy/dproxy/internal/auth"
	"github.com/dproxy/dproxy/internal/cache"
	"github.com/dproxy/dproxy/internal/oci"
)

// What the fake caches list: five tags, and two referrers of any digest.
var (
	fakeTags      = []string{"1.0", "1.1", "2.0", "latest", "v3"}
	fakeReferrers = []oci.Referrer{
		{MediaType: oci.MediaTypeOCIManifest, Digest: oci.FromBytes([]byte("sbom")), ArtifactType: "application/vnd.test.sbom",
			Descriptor: json.RawMessage(`{"mediaType":"` + oci.MediaTypeOCIManifest + `","digest":"` + string(oci.FromBytes([]byte("sbom"))) + `","size":4,"artifactType":"application/vnd.test.sbom"}`)},
		{MediaType: oci.MediaTypeOCIManifest, Digest: oci.FromBytes([]byte("sig")), ArtifactType: "application/vnd.test.sig",
			Descriptor: json.RawMessage(`{"mediaType":"` + oci.MediaTypeOCIManifest + `","digest":"` + string(oci.FromBytes([]byte("sig"))) + `","size":3,"artifactType":"application/vnd.test.sig"}`)},
	}
)

func (c *fakeCache) Tags(_ context.Context, t cache.Target) (cache.TagList, error) {
	c.targets = append(c.targets, t)
	return cache.TagList{Tags: fakeTags, Result: "hit"}, nil
}

func (c *fakeCache) Referrers(_ context.Context, t cache.Target, _ oci.Digest) (cache.ReferrerList, error) {
	c.targets = append(c.targets, t)
	return cache.ReferrerList{Referrers: fakeReferrers, Result: "miss"}, nil
}

func (v *fakeVirtual) Tags(_ context.Context, id int64, image string) (cache.TagList, error) {
	v.asked = append(v.asked, fmt.Sprintf("%d %s", id, image))
	return cache.TagList{Tags: fakeTags[:2], Result: "stale"}, nil
}

func (v *fakeVirtual) Referrers(_ context.Context, id int64, image string, _ oci.Digest) (cache.ReferrerList, error) {
	v.asked = append(v.asked, fmt.Sprintf("%d %s", id, image))
	return cache.ReferrerList{Referrers: []oci.Referrer{}, Result: "hit"}, nil
}

func TestPageCut(t *testing.T) {
	t.Parallel()
	tags := []string{"a", "b", "c", "d", "e"}
	for _, c := range []struct {
		query string
		want  []string
		next  string
	}{
		{"", tags, ""},
		{"n=2", []string{"a", "b"}, "b"},
		{"n=2&last=b", []string{"c", "d"}, "d"},
		{"n=2&last=c", []string{"d", "e"}, ""},
		{"n=5", tags, ""},
		{"n=9", tags, ""},
		{"n=0", []string{}, ""},
		{"last=c", []string{"d", "e"}, ""},
		{"last=bb&n=1", []string{"c"}, "c"}, // last need not be a tag
		{"last=z", []string{}, ""},
	} {
		q, _ := url.ParseQuery(c.query)
		p, err := parsePage(q)
		if err != nil {
			t.Fatalf("parsePage(%q): %v", c.query, err)
		}
		got, next := p.cut(tags)
		if !slices.Equal(got, c.want) || next != c.next {
			t.Errorf("%q: %v next %q, want %v next %q", c.query, got, next, c.want, c.next)
		}
	}
	for _, bad := range []string{"n=-1", "n=x", "n=1.5"} {
		q, _ := url.ParseQuery(bad)
		if _, err := parsePage(q); !errors.Is(err, oci.ErrPaginationInvalid) {
			t.Errorf("parsePage(%q) = %v, want ErrPaginationInvalid", bad, err)
		}
	}
	q, _ := url.ParseQuery("n=99999999")
	if p, _ := parsePage(q); p.n != maxPageSize {
		t.Errorf("n=99999999 gives pages of %d, want %d", p.n, maxPageSize)
	}
}

type tagsBody struct {
	Name string   `json:"name"`
	Tags []string `json:"tags"`
}

// TestTagList: the list of the target's tags with the client's name, paged
// with a Link to the next page; the virtual path asks the virtual cache.
func TestTagList(t *testing.T) {
	t.Parallel()
	const proxy = "acme/dependency_proxy/containers/alpine"
	f := newFixture(&fakeAuth{target: auth.Target{GroupID: 7, Image: "library/alpine"}}, Options{})
	w := f.get("/v2/"+proxy+"/tags/list?n=2&last=1.0", "good")
	var body tagsBody
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &body) != nil {
		t.Fatalf("GET = %d %s", w.Code, w.Body)
	}
	if body.Name != proxy || !slices.Equal(body.Tags, []string{"1.1", "2.0"}) {
		t.Errorf("body = %+v", body)
	}
	if got, want := w.Header().Get("Link"), `</v2/`+proxy+`/tags/list?last=2.0&n=2>; rel="next"`; got != want {
		t.Errorf("Link = %q, want %q", got, want)
	}
	if w.Header().Get("Content-Type") != "application/json" || w.Header().Get(CacheHeader) != "hit" {
		t.Errorf("headers = %v", w.Header())
	}
	if len(f.auth.pulls) != 1 || f.auth.pulls[0].Name != proxy || len(f.cache.targets) != 1 || f.cache.targets[0].GroupID != 7 {
		t.Errorf("pull targets %+v, cache targets %+v", f.auth.pulls, f.cache.targets)
	}

	// The last page has no Link; HEAD has the headers and no body.
	r := httptest.NewRequest(http.MethodHead, "/v2/"+proxy+"/tags/list?n=2&last=2.0", nil)
	r.Header.Set("Authorization", "Bearer good")
	hw := httptest.NewRecorder()
	f.h.V2(hw, r)
	last := `{"name":"` + proxy + `","tags":["latest","v3"]}`
	if gw := f.get("/v2/"+proxy+"/tags/list?n=2&last=2.0", "good"); gw.Body.String() != last {
		t.Errorf("GET of the last page = %s, want %s", gw.Body, last)
	}
	if hw.Code != 200 || hw.Body.Len() != 0 || hw.Header().Get("Link") != "" || hw.Header().Get("Content-Length") != fmt.Sprint(len(last)) {
		t.Errorf("HEAD of the last page = %d %q, headers %v", hw.Code, hw.Body, hw.Header())
	}

	v := newFixture(&fakeAuth{target: auth.Target{VirtualRegistryID: 3, Image: "alpine"}}, Options{})
	w = v.get("/v2/virtual_registries/container/3/alpine/tags/list", "good")
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &body) != nil || !slices.Equal(body.Tags, fakeTags[:2]) ||
		w.Header().Get(CacheHeader) != "stale" {
		t.Errorf("virtual GET = %d %s %v", w.Code, w.Body, w.Header())
	}
	if len(v.virtual.asked) != 1 || v.virtual.asked[0] != "3 alpine" {
		t.Errorf("virtual asked %q", v.virtual.asked)
	}
}

func TestReferrersList(t *testing.T) {
	t.Parallel()
	const proxy = "acme/dependency_proxy/containers/alpine"
	subject := string(oci.FromBytes([]byte("image")))
	f := newFixture(&fakeAuth{target: auth.Target{GroupID: 7, Image: "library/alpine"}}, Options{})
	var index struct {
		SchemaVersion int               `json:"schemaVersion"`
		MediaType     string            `json:"mediaType"`
		Manifests     []json.RawMessage `json:"manifests"`
	}
	w := f.get("/v2/"+proxy+"/referrers/"+subject, "good")
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &index) != nil {
		t.Fatalf("GET = %d %s", w.Code, w.Body)
	}
	if w.Header().Get("Content-Type") != oci.MediaTypeOCIIndex || index.MediaType != oci.MediaTypeOCIIndex ||
		index.SchemaVersion != 2 || len(index.Manifests) != 2 || w.Header().Get("OCI-Filters-Applied") != "" {
		t.Errorf("unfiltered = %s, headers %v", w.Body, w.Header())
	}

	w = f.get("/v2/"+proxy+"/referrers/"+subject+"?artifactType=application/vnd.test.sig", "good")
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &index) != nil {
		t.Fatalf("GET = %d %s", w.Code, w.Body)
	}
	if len(index.Manifests) != 1 || string(index.Manifests[0]) != string(fakeReferrers[1].Descriptor) ||
		w.Header().Get("OCI-Filters-Applied") != "artifactType" {
		t.Errorf("filtered = %s, headers %v", w.Body, w.Header())
	}
	w = f.get("/v2/"+proxy+"/referrers/"+subject+"?artifactType=application/vnd.test.none", "good")
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"manifests":[]`) {
		t.Errorf("filtered to nothing = %d %s", w.Code, w.Body)
	}

	v := newFixture(&fakeAuth{target: auth.Target{VirtualRegistryID: 3, Image: "alpine"}}, Options{})
	w = v.get("/v2/virtual_registries/container/3/alpine/referrers/"+subject, "good")
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"manifests":[]`) || len(v.virtual.asked) != 1 {
		t.Errorf("virtual = %d %s, asked %q", w.Code, w.Body, v.virtual.asked)
	}
}

// TestListRefusals: lists are refused like manifests, and their own
// parameters are checked before the pull is resolved.
func TestListRefusals(t *testing.T) {
	t.Parallel()
	const proxy = "acme/dependency_proxy/containers/alpine"
	for _, c := range []struct {
		name    string
		path    string
		token   string
		pullErr error
		status  int
		code    string
		pulls   int
	}{
		{"not signed in", "/v2/" + proxy + "/tags/list", "", nil, 401, "UNAUTHORIZED", 0},
		{"a group the caller cannot see", "/v2/" + proxy + "/tags/list", "good", fmt.Errorf("%w: no such group", oci.ErrNameUnknown), 404, "NAME_UNKNOWN", 1},
		{"proxy disabled", "/v2/" + proxy + "/referrers/" + string(oci.FromBytes(nil)), "good", fmt.Errorf("%w: disabled", oci.ErrDenied), 403, "DENIED", 1},
		{"a bad n", "/v2/" + proxy + "/tags/list?n=-2", "good", nil, 400, "PAGINATION_NUMBER_INVALID", 0},
		{"a malformed digest", "/v2/" + proxy + "/referrers/sha256:xyz", "good", nil, 400, "DIGEST_INVALID", 0},
		{"a tag instead of a digest", "/v2/" + proxy + "/referrers/latest", "good", nil, 400, "DIGEST_INVALID", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(&fakeAuth{target: auth.Target{GroupID: 1, Image: "library/alpine"}, err: c.pullErr}, Options{})
			w := f.get(c.path, c.token)
			if w.Code != c.status || !strings.Contains(w.Body.String(), `"code":"`+c.code+`"`) {
				t.Errorf("GET %s = %d %s; want %d %s", c.path, w.Code, w.Body, c.status, c.code)
			}
			if len(f.auth.pulls) != c.pulls || len(f.cache.targets) != 0 {
				t.Errorf("asked %d pull targets and the cache %d times; want %d and 0", len(f.auth.pulls), len(f.cache.targets), c.pulls)
			}
		})
	}
}
