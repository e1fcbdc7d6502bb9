package gitlab

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/dproxy/dproxy/internal/admin"
)

// GitLab's offset pagination.
const (
	defaultPerPage = 20
	maxPerPage     = 100
)

// page is a request's page of a list: GitLab's page (from 1) and per_page
// (1 to 100, default 20).
type page struct {
	Number, PerPage int
}

// Offset is the number of items before the page.
func (p page) Offset() int { return (p.Number - 1) * p.PerPage }

// pageOf reads page and per_page from a request's query. Values out of
// range are refused with admin.ErrInvalid, as GitLab refuses them.
func pageOf(r *http.Request) (page, error) {
	p := page{Number: 1, PerPage: defaultPerPage}
	q := r.URL.Query()
	for _, f := range []struct {
		name string
		to   *int
		max  int
	}{{"page", &p.Number, 0}, {"per_page", &p.PerPage, maxPerPage}} {
		v := q.Get(f.name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || (f.max > 0 && n > f.max) {
			if f.max > 0 {
				return page{}, &admin.Error{Kind: admin.ErrInvalid, Message: f.name + " is invalid: use a number from 1 to " + strconv.Itoa(f.max)}
			}
			return page{}, &admin.Error{Kind: admin.ErrInvalid, Message: f.name + " is invalid: use a number from 1"}
		}
		*f.to = n
	}
	return p, nil
}

// setPageHeaders writes GitLab's pagination headers for page p of a list
// of total items: X-Page, X-Per-Page, X-Total, X-Total-Pages, X-Next-Page
// and X-Prev-Page (empty when there is none), and a Link header with the
// first, last, prev and next pages' URLs.
func (h *Handler) setPageHeaders(w http.ResponseWriter, r *http.Request, p page, total int) {
	pages := max(1, (total+p.PerPage-1)/p.PerPage)
	hdr := w.Header()
	hdr.Set("X-Page", strconv.Itoa(p.Number))
	hdr.Set("X-Per-Page", strconv.Itoa(p.PerPage))
	hdr.Set("X-Total", strconv.Itoa(total))
	hdr.Set("X-Total-Pages", strconv.Itoa(pages))
	next, prev := "", ""
	if p.Number < pages {
		next = strconv.Itoa(p.Number + 1)
	}
	if p.Number > 1 {
		prev = strconv.Itoa(min(p.Number-1, pages))
	}
	hdr.Set("X-Next-Page", next)
	hdr.Set("X-Prev-Page", prev)

	link := func(n int, rel string) string {
		u := url.URL{Scheme: "http", Host: r.Host, Path: r.URL.Path}
		if base, err := url.Parse(h.opts.ExternalURL); err == nil && base.Host != "" {
			u.Scheme, u.Host = base.Scheme, base.Host
			u.Path = strings.TrimSuffix(base.Path, "/") + r.URL.Path
		}
		q := r.URL.Query()
		q.Set("page", strconv.Itoa(n))
		q.Set("per_page", strconv.Itoa(p.PerPage))
		u.RawQuery = q.Encode()
		return "<" + u.String() + `>; rel="` + rel + `"`
	}
	var links []string
	if prev != "" {
		links = append(links, link(p.Number-1, "prev"))
	}
	if next != "" {
		links = append(links, link(p.Number+1, "next"))
	}
	links = append(links, link(1, "first"), link(pages, "last"))
	for i, l := range links {
		if i == 0 {
			hdr.Set("Link", l)
		} else {
			hdr.Set("Link", hdr.Get("Link")+", "+l)
		}
	}
}
