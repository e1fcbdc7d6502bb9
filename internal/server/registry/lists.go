package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"

	"github.com/dproxy/dproxy/internal/cache"
	"github.com/dproxy/dproxy/internal/oci"
)

// page is what a tag list request asks for: the tags after last, at most
// n of them (all when n is negative: no n was given).
type page struct {
	n    int
	last string
}

// maxPageSize bounds n: a client asking for more gets this many and a
// Link to the rest.
const maxPageSize = 10000

// parsePage reads the n and last parameters of a tag list request.
func parsePage(q url.Values) (page, error) {
	p := page{n: -1, last: q.Get("last")}
	if s := q.Get("n"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return page{}, fmt.Errorf("%w: n=%q must be a whole number of tags, 0 or more", oci.ErrPaginationInvalid, clipText(s))
		}
		p.n = min(n, maxPageSize)
	}
	return p, nil
}

// cut returns the page of tags (sorted) p asks for, and the tag after
// which the next page starts ("" when this is the last page).
func (p page) cut(tags []string) (out []string, next string) {
	i := sort.SearchStrings(tags, p.last)
	if p.last != "" && i < len(tags) && tags[i] == p.last {
		i++
	}
	tags = tags[i:]
	if p.n < 0 || p.n >= len(tags) {
		return tags, ""
	}
	if p.n == 0 {
		// The spec: an empty list, and no Link.
		return []string{}, ""
	}
	return tags[:p.n], tags[p.n-1]
}

// tags answers a tag list: GET /v2/<name>/tags/list[?n=&last=], the
// upstream's tags in lexical order, with a Link header to the next page
// when n cut the list.
func (h *Handler) tags(w http.ResponseWriter, r *http.Request, src source, name string, p page) error {
	l, err := src.Tags(r.Context())
	if err != nil {
		return err
	}
	tags, next := p.cut(l.Tags)
	if tags == nil {
		tags = []string{}
	}
	body, err := json.Marshal(struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{name, tags})
	if err != nil {
		return err
	}
	hd := w.Header()
	if next != "" {
		q := url.Values{"n": {strconv.Itoa(p.n)}, "last": {next}}
		hd.Set("Link", fmt.Sprintf(`</v2/%s/tags/list?%s>; rel="next"`, name, q.Encode()))
	}
	return h.writeList(w, r, "application/json", body, l.Result)
}

// referrers answers a referrers list: GET /v2/<name>/referrers/<digest>
// [?artifactType=], an OCI image index of the manifests whose subject is
// the digest, only those of the given artifact types when asked (and then
// with OCI-Filters-Applied).
func (h *Handler) referrers(w http.ResponseWriter, r *http.Request, src source, d oci.Digest) error {
	l, err := src.Referrers(r.Context(), d)
	if err != nil {
		return err
	}
	refs := l.Referrers
	if types := r.URL.Query()["artifactType"]; len(types) > 0 {
		refs = filterArtifactTypes(refs, types)
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	return h.writeList(w, r, oci.MediaTypeOCIIndex, oci.ReferrersIndex(refs), l.Result)
}

// filterArtifactTypes keeps the referrers of any of types.
func filterArtifactTypes(refs []oci.Referrer, types []string) []oci.Referrer {
	out := []oci.Referrer{}
	for _, r := range refs {
		for _, t := range types {
			if r.ArtifactType == t {
				out = append(out, r)
				break
			}
		}
	}
	return out
}

// writeList writes a list's body (none for HEAD) with its headers.
func (h *Handler) writeList(w http.ResponseWriter, r *http.Request, contentType string, body []byte, result string) error {
	hd := w.Header()
	hd.Set("Content-Type", contentType)
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	hd.Set(CacheHeader, result)
	if r.Method == http.MethodHead {
		return nil
	}
	n, _ := w.Write(body)
	h.metrics.BytesServed(sourceOf(result), int64(n))
	return nil
}

func (s proxySource) Tags(ctx context.Context) (cache.TagList, error) {
	return s.c.Tags(ctx, s.t)
}

func (s proxySource) Referrers(ctx context.Context, d oci.Digest) (cache.ReferrerList, error) {
	return s.c.Referrers(ctx, s.t, d)
}

func (s virtualSource) Tags(ctx context.Context) (cache.TagList, error) {
	return s.v.Tags(ctx, s.id, s.image)
}

func (s virtualSource) Referrers(ctx context.Context, d oci.Digest) (cache.ReferrerList, error) {
	return s.v.Referrers(ctx, s.id, s.image, d)
}
