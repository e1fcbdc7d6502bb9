package testregistry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Listings: the inner registry lists tags and referrers; the front adds
// what it lacks. Tag lists and referrers lists may come in pages (with or
// without a Link header to the next), referrers carry the artifactType the
// spec asks for (the manifest's, else its config's media type) and can be
// filtered by it, and the referrers API can be turned off, as on a
// registry that predates OCI 1.1.

// SetReferrersAPI turns the referrers API on (the default) or off: off,
// the front and the push server answer referrers requests with 404, and
// PushReferrer keeps the referrers tag schema instead.
func (u *Upstream) SetReferrersAPI(on bool) { u.set(func() { u.noReferrers = !on }) }

// SetListPaging cuts tag lists and referrers lists into pages of at most
// pageSize entries (0: whole lists, the default). With links, a page that
// is not the last names the next in a Link header; without, a client must
// ask for the tags after the last it got (tag lists only).
func (u *Upstream) SetListPaging(pageSize int, links bool) {
	u.set(func() { u.pageSize, u.pageLinks = pageSize, links })
}

// servePush serves the bare registry of pushes, with the referrers API
// as the front serves it. While the API is on, a pushed manifest with a
// subject is answered with OCI-Subject, as OCI 1.1 registries do (clients
// then skip the referrers tag schema).
func (u *Upstream) servePush(w http.ResponseWriter, r *http.Request) {
	kind, repo, ref := classify(r.URL.Path)
	switch {
	case kind == KindReferrers:
		u.serveReferrers(w, r, repo, ref)
		return
	case kind == KindManifest && r.Method == http.MethodPut:
		body, err := io.ReadAll(r.Body)
		if err != nil {
			writeError(w, http.StatusBadRequest, "MANIFEST_INVALID", "read the manifest: "+err.Error())
			return
		}
		var m struct {
			Subject *struct {
				Digest string `json:"digest"`
			} `json:"subject"`
		}
		u.mu.Lock()
		off := u.noReferrers
		u.mu.Unlock()
		if json.Unmarshal(body, &m) == nil && m.Subject != nil && !off {
			w.Header().Set("OCI-Subject", m.Subject.Digest)
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	u.inner.ServeHTTP(w, r)
}

// innerGet asks the inner registry for path.
func (u *Upstream) innerGet(r *http.Request, path string) *httptest.ResponseRecorder {
	req := httptest.NewRequestWithContext(r.Context(), http.MethodGet, path, nil)
	rec := httptest.NewRecorder()
	u.inner.ServeHTTP(rec, req)
	return rec
}

// copyResponse sends a recorded inner response as is.
func copyResponse(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// serveTags answers a tag list with n, last, the paging setting and Link.
func (u *Upstream) serveTags(w http.ResponseWriter, r *http.Request, repo string) {
	rec := u.innerGet(r, "/v2/"+repo+"/tags/list")
	if rec.Code != http.StatusOK {
		copyResponse(w, rec)
		return
	}
	var list struct {
		Tags []string `json:"tags"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil {
		writeError(w, http.StatusInternalServerError, "UNKNOWN", "inner tag list: "+err.Error())
		return
	}
	q := r.URL.Query()
	tags := list.Tags
	slices.Sort(tags)
	if last := q.Get("last"); last != "" {
		i, _ := slices.BinarySearch(tags, last)
		for i < len(tags) && tags[i] <= last {
			i++
		}
		tags = tags[i:]
	}
	limit := len(tags)
	if s := q.Get("n"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "PAGINATION_NUMBER_INVALID", "n must be a non-negative integer")
			return
		}
		limit = min(limit, n)
	}
	u.mu.Lock()
	pageSize, links := u.pageSize, u.pageLinks
	u.mu.Unlock()
	if pageSize > 0 {
		limit = min(limit, pageSize)
	}
	if limit < len(tags) && limit > 0 && links {
		next := url.Values{"n": {strconv.Itoa(limit)}, "last": {tags[limit-1]}}
		w.Header().Set("Link", fmt.Sprintf(`</v2/%s/tags/list?%s>; rel="next"`, repo, next.Encode()))
	}
	tags = tags[:limit]
	if tags == nil {
		tags = []string{}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"name": repo, "tags": tags})
}

// serveReferrers answers the referrers API: the inner registry's list with
// each descriptor's artifactType as the spec defines it, filtered by
// artifactType, in pages when paging is on (with a Link header; the next
// page starts after the digest in ?last=).
func (u *Upstream) serveReferrers(w http.ResponseWriter, r *http.Request, repo, subject string) {
	u.mu.Lock()
	off, pageSize := u.noReferrers, u.pageSize
	u.mu.Unlock()
	if off {
		writeError(w, http.StatusNotFound, "NOT_FOUND", "this registry has no referrers API")
		return
	}
	if r.Method != http.MethodGet {
		writeError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "referrers are listed with GET")
		return
	}
	rec := u.innerGet(r, "/v2/"+repo+"/referrers/"+subject)
	if rec.Code != http.StatusOK {
		copyResponse(w, rec)
		return
	}
	var index v1.IndexManifest
	if err := json.Unmarshal(rec.Body.Bytes(), &index); err != nil {
		writeError(w, http.StatusInternalServerError, "UNKNOWN", "inner referrers list: "+err.Error())
		return
	}
	q := r.URL.Query()
	want := q.Get("artifactType")
	descs := []v1.Descriptor{}
	for _, d := range index.Manifests {
		d.ArtifactType = u.artifactType(r, repo, d)
		if want == "" || d.ArtifactType == want {
			descs = append(descs, d)
		}
	}
	slices.SortFunc(descs, func(a, b v1.Descriptor) int { return strings.Compare(a.Digest.String(), b.Digest.String()) })
	if last := q.Get("last"); last != "" {
		i := 0
		for i < len(descs) && descs[i].Digest.String() <= last {
			i++
		}
		descs = descs[i:]
	}
	if pageSize > 0 && len(descs) > pageSize {
		next := url.Values{"last": {descs[pageSize-1].Digest.String()}}
		if want != "" {
			next.Set("artifactType", want)
		}
		w.Header().Set("Link", fmt.Sprintf(`</v2/%s/referrers/%s?%s>; rel="next"`, repo, subject, next.Encode()))
		descs = descs[:pageSize]
	}
	if want != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	w.Header().Set("Content-Type", string(types.OCIImageIndex))
	_ = json.NewEncoder(w).Encode(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: descs})
}

// artifactType is what the referrers API says of d: the manifest's
// artifactType, else an image manifest's config media type.
func (u *Upstream) artifactType(r *http.Request, repo string, d v1.Descriptor) string {
	rec := u.innerGet(r, "/v2/"+repo+"/manifests/"+d.Digest.String())
	var m struct {
		ArtifactType string `json:"artifactType"`
		Config       *struct {
			MediaType string `json:"mediaType"`
		} `json:"config"`
	}
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &m) != nil {
		return d.ArtifactType
	}
	if m.ArtifactType == "" && m.Config != nil {
		return m.Config.MediaType
	}
	return m.ArtifactType
}

// Referrer describes an artifact PushReferrer pushes.
type Referrer struct {
	ArtifactType string
	Annotations  map[string]string
}

// emptyConfig is the OCI empty descriptor's content, the config of
// artifacts that have none.
var emptyConfig = []byte("{}")

// PushReferrer pushes an artifact manifest (OCI image manifest with an
// artifactType, the empty config and one small layer) whose subject is
// repo's manifest subject, by digest, and returns its descriptor. With the
// referrers API off it also adds it to the index under the referrers tag
// schema (sha256-<hex>), as a client must then do.
func (u *Upstream) PushReferrer(t testing.TB, repo string, subject v1.Descriptor, a Referrer) v1.Descriptor {
	t.Helper()
	repository, err := name.NewRepository(u.push.Listener.Addr().String()+"/"+repo, name.Insecure, name.StrictValidation)
	if err != nil {
		t.Fatalf("parse repository %s: %v", repo, err)
	}
	config := static.NewLayer(emptyConfig, "application/vnd.oci.empty.v1+json")
	layer := static.NewLayer([]byte(a.ArtifactType+" of "+subject.Digest.String()), "application/vnd.test.payload")
	for _, l := range []v1.Layer{config, layer} {
		if err := remote.WriteLayer(repository, l); err != nil {
			t.Fatalf("push artifact blob to %s: %v", repo, err)
		}
	}
	desc := func(l v1.Layer) v1.Descriptor {
		d, _ := l.Digest()
		s, _ := l.Size()
		mt, _ := l.MediaType()
		return v1.Descriptor{MediaType: mt, Digest: d, Size: s}
	}
	subject = v1.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size}
	m := v1.Manifest{
		SchemaVersion: 2, MediaType: types.OCIManifestSchema1, ArtifactType: a.ArtifactType,
		Config: desc(config), Layers: []v1.Descriptor{desc(layer)},
		Subject: &subject, Annotations: a.Annotations,
	}
	body, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	h, _, _ := v1.SHA256(bytes.NewReader(body))
	u.putManifest(t, repo, h.String(), types.OCIManifestSchema1, body)
	out := v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: h, Size: int64(len(body)),
		ArtifactType: a.ArtifactType, Annotations: a.Annotations}

	u.mu.Lock()
	off := u.noReferrers
	u.mu.Unlock()
	if off {
		tag := subject.Digest.Algorithm + "-" + subject.Digest.Hex
		index := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}
		rec := httptest.NewRecorder()
		u.inner.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/v2/"+repo+"/manifests/"+tag, nil))
		if rec.Code == http.StatusOK {
			if err := json.Unmarshal(rec.Body.Bytes(), &index); err != nil {
				t.Fatalf("read referrers tag %s of %s: %v", tag, repo, err)
			}
		}
		index.Manifests = append(index.Manifests, out)
		b, err := json.Marshal(index)
		if err != nil {
			t.Fatal(err)
		}
		u.putManifest(t, repo, tag, types.OCIImageIndex, b)
	}
	return out
}

// putManifest puts body as repo's manifest ref in the inner registry.
func (u *Upstream) putManifest(t testing.TB, repo, ref string, mt types.MediaType, body []byte) {
	t.Helper()
	req := httptest.NewRequestWithContext(t.Context(), http.MethodPut, "/v2/"+repo+"/manifests/"+ref, bytes.NewReader(body))
	req.Header.Set("Content-Type", string(mt))
	rec := httptest.NewRecorder()
	u.inner.ServeHTTP(rec, req)
	if rec.Code != http.StatusCreated {
		t.Fatalf("put manifest %s:%s: %d %s", repo, ref, rec.Code, rec.Body)
	}
}

// TagManifest tags repo's manifest src (a tag or digest) as each of tags,
// without pulling anything through the front.
func (u *Upstream) TagManifest(t testing.TB, repo, src string, tags ...string) {
	t.Helper()
	rec := httptest.NewRecorder()
	u.inner.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/v2/"+repo+"/manifests/"+src, nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("read manifest %s:%s: %d %s", repo, src, rec.Code, rec.Body)
	}
	mt := types.MediaType(rec.Header().Get("Content-Type"))
	for _, tag := range tags {
		u.putManifest(t, repo, tag, mt, rec.Body.Bytes())
	}
}
