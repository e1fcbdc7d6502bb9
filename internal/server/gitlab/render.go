package gitlab

import (
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	"github.com/dproxy/dproxy/internal/admin"
)

// timestamp renders a time as GitLab's API does: UTC with milliseconds,
// "2024-05-30T12:28:27.855Z".
type timestamp time.Time

func (t timestamp) MarshalJSON() ([]byte, error) {
	return []byte(`"` + time.Time(t).UTC().Format("2006-01-02T15:04:05.000Z") + `"`), nil
}

// optional is a string GitLab renders as null when it is empty.
func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// registryUpstreamJSON is the association of an upstream with a registry.
// Its id is the upstream's (in dproxy an upstream serves one registry) and
// its position counts from 1, as GitLab's. Every response renders it with
// all four fields.
type registryUpstreamJSON struct {
	ID         int64 `json:"id"`
	RegistryID int64 `json:"registry_id"`
	UpstreamID int64 `json:"upstream_id"`
	Position   int   `json:"position"`
}

func registryUpstreamOf(a admin.RegistryUpstream) registryUpstreamJSON {
	return registryUpstreamJSON{ID: a.ID, RegistryID: a.RegistryID, UpstreamID: a.UpstreamID, Position: a.Position + 1}
}

// registryJSON is a container virtual registry. RegistryUpstreams, its
// upstreams in order, is in the answers about one registry and not in
// lists, as GitLab's.
type registryJSON struct {
	ID                int64                   `json:"id"`
	GroupID           int64                   `json:"group_id"`
	Name              string                  `json:"name"`
	Description       *string                 `json:"description"`
	CreatedAt         timestamp               `json:"created_at"`
	UpdatedAt         timestamp               `json:"updated_at"`
	RegistryUpstreams *[]registryUpstreamJSON `json:"registry_upstreams,omitempty"`
}

func registryOf(r admin.Registry, detail bool) registryJSON {
	out := registryJSON{ID: r.ID, GroupID: r.GroupID, Name: r.Name, Description: optional(r.Description),
		CreatedAt: timestamp(r.CreatedAt), UpdatedAt: timestamp(r.UpdatedAt)}
	if detail {
		ups := make([]registryUpstreamJSON, len(r.Upstreams))
		for i, u := range r.Upstreams {
			ups[i] = registryUpstreamOf(u.Association())
		}
		out.RegistryUpstreams = &ups
	}
	return out
}

// upstreamJSON is an upstream registry. It never carries the password;
// username is null when none is stored, and description always (dproxy's
// upstreams have none). It carries its association as GitLab's answers
// do: registry_upstream in a registry's list and on creation,
// registry_upstreams on its own.
type upstreamJSON struct {
	ID                 int64                   `json:"id"`
	GroupID            int64                   `json:"group_id"`
	URL                string                  `json:"url"`
	Name               string                  `json:"name"`
	Description        *string                 `json:"description"`
	CacheValidityHours int                     `json:"cache_validity_hours"`
	Username           *string                 `json:"username"`
	CreatedAt          timestamp               `json:"created_at"`
	UpdatedAt          timestamp               `json:"updated_at"`
	RegistryUpstream   *registryUpstreamJSON   `json:"registry_upstream,omitempty"`
	RegistryUpstreams  *[]registryUpstreamJSON `json:"registry_upstreams,omitempty"`
}

// How an upstream shows its association.
const (
	upstreamAlone    = iota // no association (a group's list)
	upstreamInList          // registry_upstream
	upstreamOnItsOwn        // registry_upstreams
)

func upstreamOf(u admin.Upstream, with int) upstreamJSON {
	out := upstreamJSON{ID: u.ID, GroupID: u.GroupID, URL: u.URL, Name: u.Name, CacheValidityHours: u.CacheValidityHours,
		Username: optional(u.Username), CreatedAt: timestamp(u.CreatedAt), UpdatedAt: timestamp(u.UpdatedAt)}
	a := registryUpstreamOf(u.Association())
	switch with {
	case upstreamInList:
		out.RegistryUpstream = &a
	case upstreamOnItsOwn:
		out.RegistryUpstreams = &[]registryUpstreamJSON{a}
	}
	return out
}

// cacheEntryJSON is one entry of an upstream's cache. dproxy keeps no MD5
// or SHA-1 of the files (their sha256 is in the relative path of a blob)
// and counts no downloads: file_md5 and file_sha1 are null and
// downloads_count is left out. content_type and upstream_etag are a
// manifest's; null for a blob.
type cacheEntryJSON struct {
	ID                string    `json:"id"`
	GroupID           int64     `json:"group_id"`
	UpstreamID        int64     `json:"upstream_id"`
	UpstreamCheckedAt timestamp `json:"upstream_checked_at"`
	FileMD5           *string   `json:"file_md5"`
	FileSHA1          *string   `json:"file_sha1"`
	Size              int64     `json:"size"`
	RelativePath      string    `json:"relative_path"`
	ContentType       *string   `json:"content_type"`
	UpstreamETag      *string   `json:"upstream_etag"`
	CreatedAt         timestamp `json:"created_at"`
	UpdatedAt         timestamp `json:"updated_at"`
	DownloadedAt      timestamp `json:"downloaded_at"`
}

func cacheEntryOf(e admin.CacheEntry) cacheEntryJSON {
	return cacheEntryJSON{
		ID: cacheEntryID(e.UpstreamID, e.Path), GroupID: e.GroupID, UpstreamID: e.UpstreamID,
		UpstreamCheckedAt: timestamp(e.CheckedAt), Size: e.Size, RelativePath: e.Path,
		ContentType: optional(e.MediaType), UpstreamETag: optional(e.ETag),
		CreatedAt: timestamp(e.CreatedAt), UpdatedAt: timestamp(e.CheckedAt), DownloadedAt: timestamp(e.ReadAt),
	}
}

// cacheEntryID is the id of a cache entry, as GitLab makes it: the
// URL-safe base64, padded, of "<upstream id> <relative path>".
func cacheEntryID(upstreamID int64, path string) string {
	return base64.URLEncoding.EncodeToString([]byte(strconv.FormatInt(upstreamID, 10) + " " + path))
}

// parseCacheEntryID reverses cacheEntryID. Like GitLab's decoder it takes
// the standard alphabet too, and the padding may be left out.
func parseCacheEntryID(id string) (upstreamID int64, path string, err error) {
	s := strings.NewReplacer("+", "-", "/", "_").Replace(strings.TrimRight(id, "="))
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return 0, "", invalid("cache entry id %q is not base64: use an id that GET /virtual_registries/container/upstreams/:id/cache_entries answers", clip(id))
	}
	n, path, ok := strings.Cut(string(b), " ")
	upstreamID, isNumber := number(n)
	if !ok || !isNumber || path == "" {
		return 0, "", invalid("cache entry id %q is base64 of %q, not of \"<upstream id> <relative path>\": use an id that GET /virtual_registries/container/upstreams/:id/cache_entries answers", clip(id), clip(string(b)))
	}
	return upstreamID, path, nil
}
