package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/dproxy/dproxy/internal/oci"
)

// Request kinds of listings, as recorded in metrics.
const (
	kindTags      = "tags"
	kindReferrers = "referrers"
)

// Bounds of an upstream listing. A list longer than maxListPages pages is
// cut there (and the cut logged): a client gets the tags of the first
// pages rather than nothing.
const (
	tagsPageSize = 1000
	maxListPages = 100
	maxPageBytes = 4 << 20
)

// Tags returns the tags of repo, sorted and without duplicates, with the
// credentials and token of a pull of repo. It follows the upstream's
// pagination: the Link header's next page, or, from a registry that sends
// none but answered a full page, the page after the last tag. A repository
// the upstream does not know is an error wrapping oci.ErrNameUnknown.
func (c *Client) Tags(ctx context.Context, creds Credentials, repo string) ([]string, error) {
	o := c.op("GET tags", kindTags, repo, "")
	query := url.Values{"n": {strconv.Itoa(tagsPageSize)}}.Encode()
	var tags []string
	for page := 1; ; page++ {
		res, err := c.do(ctx, o, creds, http.MethodGet, "tags/list?"+query, "application/json")
		if err != nil {
			if e := (*Error)(nil); errors.As(err, &e) && e.Status == http.StatusNotFound {
				o.notFound(e)
			}
			return nil, err
		}
		var body struct {
			Tags []string `json:"tags"`
		}
		b, err := readPage(o, res)
		if err == nil && json.Unmarshal(b, &body) != nil {
			err = o.error(oci.ErrUnavailable, res.StatusCode, "the tag list is not JSON of the form {\"tags\": [...]}", nil)
		}
		next, lerr := c.nextPage(res, repo, "tags/list")
		if err == nil {
			err = lerr
		}
		if err != nil {
			return nil, err
		}
		for _, t := range body.Tags {
			if oci.ValidateTag(t) == nil {
				tags = append(tags, t)
			}
		}
		if next == "" && len(body.Tags) >= tagsPageSize {
			// No Link, but a full page: the spec's older form of paging.
			next = url.Values{"n": {strconv.Itoa(tagsPageSize)}, "last": {body.Tags[len(body.Tags)-1]}}.Encode()
		}
		if next == "" || next == query || len(body.Tags) == 0 {
			break
		}
		if page == maxListPages {
			c.log.WarnContext(ctx, "upstream tag list cut", "repo", repo, "host", c.host, "pages", page, "tags", len(tags))
			break
		}
		query = next
	}
	slices.Sort(tags)
	return slices.Compact(tags), nil
}

// Referrers is the referrers list of a manifest as an upstream has it.
type Referrers struct {
	Referrers []oci.Referrer
	// TagSchema says the upstream has no referrers API: the list is that
	// of the referrers tag schema (empty when it has no such tag).
	TagSchema bool
}

// Referrers returns the manifests of repo whose subject is d: from the
// upstream's referrers API (following its pagination), or, when the
// upstream has none (it answers 404, 405 or 501), from the image index
// tagged by the referrers tag schema; with neither, an empty list.
func (c *Client) Referrers(ctx context.Context, creds Credentials, repo string, d oci.Digest) (Referrers, error) {
	o := c.op("GET referrers", kindReferrers, repo, d.String())
	query := ""
	var out []oci.Referrer
	for page := 1; ; page++ {
		path := "referrers/" + d.String()
		if query != "" {
			path += "?" + query
		}
		res, err := c.do(ctx, o, creds, http.MethodGet, path, oci.MediaTypeOCIIndex)
		if err != nil {
			var e *Error
			if page == 1 && errors.As(err, &e) && noReferrersAPI(e.Status) {
				return c.referrersFromTag(ctx, creds, repo, d)
			}
			return Referrers{}, err
		}
		b, err := readPage(o, res)
		var refs []oci.Referrer
		if err == nil {
			if refs, err = oci.ParseReferrersIndex(b); err != nil {
				err = o.error(oci.ErrUnavailable, res.StatusCode, "", err)
			}
		}
		next, lerr := c.nextPage(res, repo, "referrers/"+d.String())
		if err == nil {
			err = lerr
		}
		if err != nil {
			return Referrers{}, err
		}
		out = append(out, refs...)
		if next == "" || next == query {
			break
		}
		if page == maxListPages {
			c.log.WarnContext(ctx, "upstream referrers list cut", "repo", repo, "digest", d, "host", c.host, "pages", page)
			break
		}
		query = next
	}
	return Referrers{Referrers: out}, nil
}

// noReferrersAPI reports whether a status to a referrers request means the
// upstream has no referrers API (the spec's 404; 405 and 501 from
// registries that route the path but serve nothing there).
func noReferrersAPI(status int) bool {
	return status == http.StatusNotFound || status == http.StatusMethodNotAllowed || status == http.StatusNotImplemented
}

// referrersFromTag reads the referrers tag schema of d: the image index
// tagged sha256-<hex>. No such tag, or something else than an OCI index
// under it, means no referrers.
func (c *Client) referrersFromTag(ctx context.Context, creds Credentials, repo string, d oci.Digest) (Referrers, error) {
	m, err := c.GetManifest(ctx, creds, repo, oci.Reference{Tag: oci.ReferrersTag(d)})
	switch {
	case errors.Is(err, oci.ErrManifestUnknown):
		return Referrers{TagSchema: true}, nil
	case err != nil:
		return Referrers{}, err
	case m.MediaType != oci.MediaTypeOCIIndex:
		return Referrers{TagSchema: true}, nil
	}
	refs, err := oci.ParseReferrersIndex(m.Content)
	if err != nil {
		return Referrers{TagSchema: true}, nil
	}
	return Referrers{Referrers: refs, TagSchema: true}, nil
}

// readPage reads a listing's body, at most maxPageBytes, and closes it.
func readPage(o op, res *http.Response) ([]byte, error) {
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, maxPageBytes+1))
	if err != nil {
		e := o.transportError(err)
		e.Message = "read the list"
		return nil, e
	}
	if len(b) > maxPageBytes {
		return nil, o.error(oci.ErrUnavailable, res.StatusCode, fmt.Sprintf("a page of the list is larger than %d bytes", maxPageBytes), nil)
	}
	return b, nil
}

// nextPage returns the query of the next page a listing's Link header
// names, "" when it names none. The next page must be the same list on the
// same registry: a link elsewhere would send the pull's token there.
func (c *Client) nextPage(res *http.Response, repo, path string) (string, error) {
	link := nextLink(res.Header.Values("Link"))
	if link == "" {
		return "", nil
	}
	here := *c.base
	here.Path = c.base.Path + "/v2/" + repo + "/" + path
	u, err := here.Parse(link)
	if err != nil || u.Scheme != here.Scheme || u.Host != here.Host || u.Path != here.Path {
		o := c.op("GET "+path, "", repo, "")
		return "", o.error(oci.ErrUnavailable, res.StatusCode,
			fmt.Sprintf("the Link header's next page %q is not on the list's own URL", clip(link)), nil)
	}
	return u.RawQuery, nil
}

// nextLink returns the target of the rel="next" link of Link header values
// (RFC 8288: `<url>; rel="next"`, several links separated by commas).
func nextLink(values []string) string {
	for _, v := range values {
		for v != "" {
			start := strings.IndexByte(v, '<')
			end := strings.IndexByte(v, '>')
			if start < 0 || end < start {
				break
			}
			target := v[start+1 : end]
			params := v[end+1:]
			if i := strings.IndexByte(params, '<'); i >= 0 {
				params, v = params[:i], params[i:]
			} else {
				v = ""
			}
			for _, p := range strings.Split(params, ";") {
				k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
				if !ok || !strings.EqualFold(strings.TrimSpace(k), "rel") {
					continue
				}
				for _, rel := range strings.Fields(strings.Trim(strings.TrimSpace(val), `"`)) {
					if strings.EqualFold(rel, "next") {
						return target
					}
				}
			}
		}
	}
	return ""
}

// clip shortens text from an upstream for an error message.
func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}
