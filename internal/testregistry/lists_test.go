package testregistry

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// getList GETs path of the front with a pull token of repo and decodes
// the JSON answer into out; it returns the response (body read).
func getList(t *testing.T, u *Upstream, repo, path string, out any) *http.Response {
	t.Helper()
	q := url.Values{"service": {Service}, "scope": {"repository:" + repo + ":pull"}}
	res, err := http.Get(u.URL + "/token?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	var tok struct{ Token string }
	err = json.NewDecoder(res.Body).Decode(&tok)
	res.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, u.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if out != nil && res.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("GET %s: %v in %s", path, err, b)
		}
	}
	return res
}

type tagList struct {
	Name string   `json:"name"`
	Tags []string `json:"tags"`
}

func TestTagListPaging(t *testing.T) {
	t.Parallel()
	u := New(t, Options{})
	u.PushRandomImage(t, "library/alpine", "a", 1, 16)
	u.TagManifest(t, "library/alpine", "a", "b", "c", "d", "e")

	var all tagList
	if res := getList(t, u, "library/alpine", "/v2/library/alpine/tags/list", &all); res.StatusCode != 200 || res.Header.Get("Link") != "" {
		t.Fatalf("whole list: %d, Link %q", res.StatusCode, res.Header.Get("Link"))
	}
	if want := []string{"a", "b", "c", "d", "e"}; !slices.Equal(all.Tags, want) || all.Name != "library/alpine" {
		t.Fatalf("whole list = %+v, want tags %v", all, want)
	}
	if n := u.Count("GET", KindTags); n != 1 {
		t.Errorf("GET tags counted %d times, want 1", n)
	}

	var page tagList
	res := getList(t, u, "library/alpine", "/v2/library/alpine/tags/list?n=2&last=a", &page)
	if !slices.Equal(page.Tags, []string{"b", "c"}) {
		t.Errorf("n=2&last=a = %v, want [b c]", page.Tags)
	}
	if res.Header.Get("Link") != "" {
		t.Errorf("paging off, yet a Link header: %q", res.Header.Get("Link"))
	}

	u.SetListPaging(2, true)
	var got []string
	path := "/v2/library/alpine/tags/list"
	for i := 0; path != ""; i++ {
		if i > 5 {
			t.Fatal("the Link headers never end")
		}
		var p tagList
		res := getList(t, u, "library/alpine", path, &p)
		got = append(got, p.Tags...)
		path = ""
		if l := res.Header.Get("Link"); l != "" {
			var next string
			if _, err := fmt.Sscanf(l, "<%s", &next); err != nil {
				t.Fatalf("Link %q: %v", l, err)
			}
			path = next[:len(next)-2] // drop `>;`
		}
	}
	if !slices.Equal(got, all.Tags) {
		t.Errorf("following Link headers gave %v, want %v", got, all.Tags)
	}

	u.SetListPaging(2, false)
	res = getList(t, u, "library/alpine", "/v2/library/alpine/tags/list?n=10", &page)
	if !slices.Equal(page.Tags, []string{"a", "b"}) || res.Header.Get("Link") != "" {
		t.Errorf("paging without links: %v, Link %q; want [a b] and none", page.Tags, res.Header.Get("Link"))
	}

	if res := getList(t, u, "library/nothing", "/v2/library/nothing/tags/list", nil); res.StatusCode != http.StatusNotFound {
		t.Errorf("unknown repository: %d, want 404", res.StatusCode)
	}
	if res := getList(t, u, "library/alpine", "/v2/library/alpine/tags/list?n=-1", nil); res.StatusCode != http.StatusBadRequest {
		t.Errorf("n=-1: %d, want 400", res.StatusCode)
	}
}

func TestReferrers(t *testing.T) {
	t.Parallel()
	u := New(t, Options{})
	img := u.PushRandomImage(t, "library/alpine", "latest", 1, 16)
	subject, err := remoteDescriptor(img)
	if err != nil {
		t.Fatal(err)
	}
	sbom := u.PushReferrer(t, "library/alpine", subject, Referrer{ArtifactType: "application/vnd.test.sbom", Annotations: map[string]string{"org.test": "1"}})
	sig := u.PushReferrer(t, "library/alpine", subject, Referrer{ArtifactType: "application/vnd.test.sig"})

	var index v1.IndexManifest
	path := "/v2/library/alpine/referrers/" + subject.Digest.String()
	res := getList(t, u, "library/alpine", path, &index)
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/vnd.oci.image.index.v1+json" {
		t.Fatalf("referrers: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	types := map[string]string{}
	for _, d := range index.Manifests {
		types[d.Digest.String()] = d.ArtifactType
	}
	if len(types) != 2 || types[sbom.Digest.String()] != "application/vnd.test.sbom" || types[sig.Digest.String()] != "application/vnd.test.sig" {
		t.Errorf("referrers = %v, want the sbom and the signature with their artifact types", types)
	}
	if n := u.Count("GET", KindReferrers); n != 1 {
		t.Errorf("GET referrers counted %d times, want 1", n)
	}

	res = getList(t, u, "library/alpine", path+"?artifactType=application/vnd.test.sig", &index)
	if len(index.Manifests) != 1 || index.Manifests[0].Digest != sig.Digest || res.Header.Get("OCI-Filters-Applied") != "artifactType" {
		t.Errorf("filtered: %+v, OCI-Filters-Applied %q", index.Manifests, res.Header.Get("OCI-Filters-Applied"))
	}

	u.SetListPaging(1, true)
	res = getList(t, u, "library/alpine", path, &index)
	if len(index.Manifests) != 1 || res.Header.Get("Link") == "" {
		t.Errorf("paged: %d descriptors, Link %q; want 1 and a Link", len(index.Manifests), res.Header.Get("Link"))
	}
	u.SetListPaging(0, false)

	// Without the API: 404, and the referrers tag schema holds new ones.
	u.SetReferrersAPI(false)
	if res := getList(t, u, "library/alpine", path, nil); res.StatusCode != http.StatusNotFound {
		t.Errorf("referrers API off: %d, want 404", res.StatusCode)
	}
	third := u.PushReferrer(t, "library/alpine", subject, Referrer{ArtifactType: "application/vnd.test.attestation"})
	var tagged v1.IndexManifest
	if res := getList(t, u, "library/alpine", "/v2/library/alpine/manifests/sha256-"+subject.Digest.Hex, &tagged); res.StatusCode != 200 {
		t.Fatalf("referrers tag: %d", res.StatusCode)
	}
	if len(tagged.Manifests) != 1 || tagged.Manifests[0].Digest != third.Digest || tagged.Manifests[0].ArtifactType != "application/vnd.test.attestation" {
		t.Errorf("referrers tag index = %+v, want the attestation", tagged.Manifests)
	}
}

// remoteDescriptor is img's descriptor as a subject.
func remoteDescriptor(img v1.Image) (v1.Descriptor, error) {
	d, err := img.Digest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	mt, err := img.MediaType()
	if err != nil {
		return v1.Descriptor{}, err
	}
	size, err := img.Size()
	if err != nil {
		return v1.Descriptor{}, err
	}
	return v1.Descriptor{MediaType: mt, Digest: d, Size: size}, nil
}

// TestPushAnswersOCISubject: with the referrers API on, the push server
// says it processed a pushed manifest's subject, as OCI 1.1 registries do.
func TestPushAnswersOCISubject(t *testing.T) {
	t.Parallel()
	u := New(t, Options{})
	img := u.PushRandomImage(t, "library/alpine", "latest", 1, 16)
	subject, err := remoteDescriptor(img)
	if err != nil {
		t.Fatal(err)
	}
	body := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",` +
		`"config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},` +
		`"layers":[],"subject":{"mediaType":"` + string(subject.MediaType) + `","digest":"` + subject.Digest.String() + `","size":1}}`
	put := func(tag string) string {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPut, u.PushURL()+"/v2/library/alpine/manifests/"+tag, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusCreated {
			t.Fatalf("PUT: %d", res.StatusCode)
		}
		return res.Header.Get("OCI-Subject")
	}
	if got := put("a"); got != subject.Digest.String() {
		t.Errorf("OCI-Subject = %q, want %s", got, subject.Digest)
	}
	u.SetReferrersAPI(false)
	if got := put("b"); got != "" {
		t.Errorf("referrers API off: OCI-Subject = %q, want none", got)
	}
}
