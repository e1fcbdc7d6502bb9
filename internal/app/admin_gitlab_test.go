package app_test

import (
	"context"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/dproxy/dproxy/internal/store"
)

// pulledEnv is an env with group acme (and subgroup acme/ci) whose cache
// holds library/alpine:latest (2 layers) pulled through dproxy by alice.
func pulledEnv(t *testing.T) (*env, string) {
	t.Helper()
	e := newEnv(t, envOptions{})
	e.group("acme", "acme/ci")
	tok := e.user("alice", "acme", store.RoleGuest)
	e.up.PushRandomImage(t, "library/alpine", "latest", 2, 3000)
	pullAll(t, e.ref("acme", "alpine:latest"), pullOpts("alice", tok))
	waitFor(t, "downloads to commit", func() bool { return !e.downloading() })
	return e, tok
}

var rfc3339 = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$`)

// TestGroupGitLabFields checks each GitLab-named Group field against a
// cache populated by a real pull.
func TestGroupGitLabFields(t *testing.T) {
	t.Parallel()
	e, _ := pulledEnv(t)
	admin := e.adminToken()
	want := e.usage("acme")

	var got struct {
		Group struct {
			FullPath               string
			DependencyProxySetting struct {
				Enabled  bool
				Identity *string
			}
			DependencyProxyImageTtlPolicy struct {
				Enabled              bool
				TTL                  int
				CreatedAt, UpdatedAt string
			}
			DependencyProxyImagePrefix       string
			DependencyProxyDirectImagePrefix string
			DependencyProxyManifests         struct {
				Nodes []struct {
					ID, ImageName, Digest, FileName, Size, Status, CreatedAt, UpdatedAt, Reference, MediaType, Image string
				}
			}
			DependencyProxyBlobs struct {
				Nodes []struct{ FileName, Size, CreatedAt, UpdatedAt, Digest string }
			}
			DependencyProxyImageCount       int
			DependencyProxyBlobCount        int
			DependencyProxyTotalSize        string
			DependencyProxyTotalSizeBytes   string
			DependencyProxyTotalSizeInBytes int64
		}
		Sub struct {
			DependencyProxyImagePrefix       string
			DependencyProxyDirectImagePrefix string
			DependencyProxyImageCount        int
		}
	}
	e.ok(admin, `query($p: ID!) {
		group(fullPath: $p) {
			fullPath
			dependencyProxySetting { enabled identity }
			dependencyProxyImageTtlPolicy { enabled ttl createdAt updatedAt }
			dependencyProxyImagePrefix dependencyProxyDirectImagePrefix
			dependencyProxyManifests { nodes { id imageName digest fileName size status createdAt updatedAt reference mediaType image } }
			dependencyProxyBlobs { nodes { fileName size createdAt updatedAt digest } }
			dependencyProxyImageCount dependencyProxyBlobCount
			dependencyProxyTotalSize dependencyProxyTotalSizeBytes dependencyProxyTotalSizeInBytes
		}
		sub: group(fullPath: "acme/ci") { dependencyProxyImagePrefix dependencyProxyDirectImagePrefix dependencyProxyImageCount }
	}`, map[string]any{"p": "acme"}, &got)
	g := got.Group

	t.Run("dependencyProxySetting", func(t *testing.T) {
		if !g.DependencyProxySetting.Enabled || g.DependencyProxySetting.Identity != nil {
			t.Errorf("setting = %+v, want enabled with no identity", g.DependencyProxySetting)
		}
	})
	t.Run("dependencyProxyImageTtlPolicy", func(t *testing.T) {
		p := g.DependencyProxyImageTtlPolicy
		if !p.Enabled || p.TTL != 90 || !rfc3339.MatchString(p.CreatedAt) || !rfc3339.MatchString(p.UpdatedAt) {
			t.Errorf("ttl policy = %+v, want enabled, 90 days, RFC 3339 UTC times", p)
		}
	})
	t.Run("dependencyProxyImagePrefix", func(t *testing.T) {
		if want := e.host + "/acme/dependency_proxy/containers"; g.DependencyProxyImagePrefix != want {
			t.Errorf("prefix = %q, want %q", g.DependencyProxyImagePrefix, want)
		}
		// GitLab uses the subgroup's own path; the direct prefix is the same.
		if want := e.host + "/acme/ci/dependency_proxy/containers"; got.Sub.DependencyProxyImagePrefix != want {
			t.Errorf("subgroup prefix = %q, want %q", got.Sub.DependencyProxyImagePrefix, want)
		}
		if want := e.host + "/acme/ci/dependency_proxy/containers"; got.Sub.DependencyProxyDirectImagePrefix != want {
			t.Errorf("subgroup direct prefix = %q, want %q", got.Sub.DependencyProxyDirectImagePrefix, want)
		}
	})
	t.Run("dependencyProxyManifests", func(t *testing.T) {
		// A pull caches the tag and the digest the client then asks for.
		ms := g.DependencyProxyManifests.Nodes
		if len(ms) != want.Manifests || len(ms) == 0 {
			t.Fatalf("%d manifests, store has %d", len(ms), want.Manifests)
		}
		m := ms[len(ms)-1]
		for _, n := range ms {
			if n.Reference == "latest" {
				m = n
			} else if !strings.HasPrefix(n.Reference, "sha256:") || n.ImageName != "alpine:"+n.Reference || n.FileName != n.ImageName+".json" {
				// Cached by digest: GitLab's alpine:sha256:<hex>.
				t.Errorf("manifest by digest: imageName %q fileName %q reference %q", n.ImageName, n.FileName, n.Reference)
			}
		}
		row, err := e.app.Store.Manifest(context.Background(), e.groupID("acme"), "library/alpine", "latest")
		if err != nil {
			t.Fatal(err)
		}
		if m.ID != "gid://dproxy/DependencyProxy::Manifest/"+strconv.FormatInt(row.ID, 10) || m.ImageName != "alpine:latest" || m.Image != "library/alpine" ||
			m.Digest != string(row.Digest) || m.FileName != "alpine:latest.json" || m.Size != strconv.FormatInt(row.Size, 10) ||
			m.Status != "DEFAULT" || m.Reference != "latest" || m.MediaType != row.MediaType ||
			!rfc3339.MatchString(m.CreatedAt) || !rfc3339.MatchString(m.UpdatedAt) {
			t.Errorf("manifest node = %+v, store row id %d digest %s size %d", m, row.ID, row.Digest, row.Size)
		}
	})
	t.Run("dependencyProxyBlobs", func(t *testing.T) {
		bs := g.DependencyProxyBlobs.Nodes
		if len(bs) != want.Blobs || len(bs) != 3 { // 2 layers + config
			t.Fatalf("%d blobs, want %d (store) and 3", len(bs), want.Blobs)
		}
		var sum int64
		for _, b := range bs {
			hex := strings.TrimPrefix(b.Digest, "sha256:")
			n, err := strconv.ParseInt(b.Size, 10, 64)
			if b.FileName != hex+".gz" || err != nil || !rfc3339.MatchString(b.CreatedAt) || !rfc3339.MatchString(b.UpdatedAt) {
				t.Errorf("blob node = %+v", b)
			}
			sum += n
		}
		if sum != want.BlobBytes {
			t.Errorf("blob sizes add up to %d, store says %d", sum, want.BlobBytes)
		}
	})
	t.Run("dependencyProxyImageCount", func(t *testing.T) {
		if g.DependencyProxyImageCount != want.Manifests || want.Manifests == 0 || got.Sub.DependencyProxyImageCount != 0 {
			t.Errorf("image counts acme %d, acme/ci %d; want %d, 0", g.DependencyProxyImageCount, got.Sub.DependencyProxyImageCount, want.Manifests)
		}
	})
	t.Run("dependencyProxyBlobCount", func(t *testing.T) {
		if g.DependencyProxyBlobCount != 3 {
			t.Errorf("blob count %d, want 3", g.DependencyProxyBlobCount)
		}
	})
	t.Run("dependencyProxyTotalSizeBytes", func(t *testing.T) {
		if w := strconv.FormatInt(want.BlobBytes+want.ManifestBytes, 10); g.DependencyProxyTotalSizeBytes != w {
			t.Errorf("total size bytes %q, want %q (a BigInt string)", g.DependencyProxyTotalSizeBytes, w)
		}
	})
	t.Run("dependencyProxyTotalSizeInBytes", func(t *testing.T) {
		if w := want.BlobBytes + want.ManifestBytes; g.DependencyProxyTotalSizeInBytes != w {
			t.Errorf("total size in bytes %d, want %d (an Int)", g.DependencyProxyTotalSizeInBytes, w)
		}
	})
	t.Run("dependencyProxyTotalSize", func(t *testing.T) {
		if !regexp.MustCompile(`^\d+\.\d KiB$`).MatchString(g.DependencyProxyTotalSize) {
			t.Errorf("total size %q, want a human KiB size for about 6 KB", g.DependencyProxyTotalSize)
		}
	})
}

// TestSubgroupImagePrefixServesPulls: the image prefix the API gives a
// subgroup is one the registry serves, to a member of the subgroup alone,
// from the subgroup's own cache.
func TestSubgroupImagePrefixServesPulls(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.group("acme", "acme/ci")
	tok := e.user("carl", "acme/ci", store.RoleGuest)
	e.up.PushRandomImage(t, "library/alpine", "latest", 1, 1000)
	var got struct {
		Group struct{ DependencyProxyImagePrefix string }
	}
	e.ok(e.adminToken(), `{ group(fullPath: "acme/ci") { dependencyProxyImagePrefix } }`, nil, &got)
	if want := e.ref("acme/ci", ""); got.Group.DependencyProxyImagePrefix+"/" != want {
		t.Fatalf("prefix %q, want %q", got.Group.DependencyProxyImagePrefix, strings.TrimSuffix(want, "/"))
	}
	pullAll(t, got.Group.DependencyProxyImagePrefix+"/alpine:latest", pullOpts("carl", tok))
	waitFor(t, "downloads to commit", func() bool { return !e.downloading() })
	if u := e.usage("acme/ci"); u.Manifests == 0 || u.Blobs != 2 {
		t.Errorf("acme/ci caches %+v after a pull through its prefix, want the manifest, the layer and the config", u)
	}
	if u := e.usage("acme"); u != (store.Usage{}) {
		t.Errorf("acme caches %+v, want nothing: the pull went through acme/ci", u)
	}
	// The top-level prefix is not the subgroup member's.
	if _, err := remote.Image(parseRef(t, e.ref("acme", "alpine:latest")), pullOpts("carl", tok)...); err == nil {
		t.Error("a member of acme/ci alone pulled through acme's prefix")
	}
}

// TestManifestAndBlobPagination pages through a group's cache one by one.
func TestManifestAndBlobPagination(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.group("acme")
	tok := e.user("alice", "acme", store.RoleGuest)
	for _, tag := range []string{"a", "b", "c"} {
		e.up.PushRandomImage(t, "library/alpine", tag, 1, 100)
		pullAll(t, e.ref("acme", "alpine:"+tag), pullOpts("alice", tok))
	}
	waitFor(t, "downloads to commit", func() bool { return !e.downloading() })
	admin := e.adminToken()
	type page struct {
		Nodes    []struct{ Reference, Digest string }
		Edges    []struct{ Cursor string }
		PageInfo struct {
			HasNextPage, HasPreviousPage bool
			EndCursor                    *string
		}
	}
	for _, kind := range []string{"dependencyProxyManifests", "dependencyProxyBlobs"} {
		field := "reference"
		if kind == "dependencyProxyBlobs" {
			field = "digest"
		}
		var seen []string
		var after *string
		for i := 0; ; i++ {
			var got struct{ Group map[string]page }
			e.ok(admin, `query($after: String) { group(fullPath: "acme") { `+kind+`(first: 2, after: $after) {
				nodes { `+field+` } edges { cursor } pageInfo { hasNextPage hasPreviousPage endCursor } } } }`,
				map[string]any{"after": after}, &got)
			p := got.Group[kind]
			for _, n := range p.Nodes {
				seen = append(seen, n.Reference+n.Digest)
			}
			if p.PageInfo.HasPreviousPage != (i > 0) || len(p.Edges) != len(p.Nodes) {
				t.Errorf("%s page %d: pageInfo %+v with %d edges and %d nodes", kind, i, p.PageInfo, len(p.Edges), len(p.Nodes))
			}
			if !p.PageInfo.HasNextPage {
				break
			}
			if i > 10 || p.PageInfo.EndCursor == nil {
				t.Fatalf("%s: no end after %d pages", kind, i)
			}
			after = p.PageInfo.EndCursor
		}
		u := e.usage("acme")
		want := u.Manifests
		if kind == "dependencyProxyBlobs" {
			want = u.Blobs
		}
		if len(seen) != want || want < 4 {
			t.Errorf("%s: paged through %d nodes %v, the store has %d", kind, len(seen), seen, want)
		}
		var tags []string
		for _, s := range seen {
			if !strings.HasPrefix(s, "sha256:") {
				tags = append(tags, s)
			}
		}
		if kind == "dependencyProxyManifests" && strings.Join(tags, ",") != "c,b,a" {
			t.Errorf("manifests in order %v, want newest first c,b,a", seen)
		}
		dup := map[string]bool{}
		for _, s := range seen {
			if dup[s] {
				t.Errorf("%s: %s seen twice", kind, s)
			}
			dup[s] = true
		}
	}
	// Bad page arguments are refused with a message.
	for _, q := range []string{
		`{ group(fullPath: "acme") { dependencyProxyManifests(first: 101) { nodes { id } } } }`,
		`{ group(fullPath: "acme") { dependencyProxyManifests(first: -1) { nodes { id } } } }`,
		`{ group(fullPath: "acme") { dependencyProxyBlobs(after: "bm9wZQ") { nodes { digest } } } }`,
	} {
		if r := e.gql(admin, q, nil); len(r.Errors) == 0 || strings.Contains(r.messages(), "internal") {
			t.Errorf("%s: errors %q, want a clear refusal", q, r.messages())
		}
	}
}

// TestUpdateDependencyProxySettings checks GitLab's mutation, its payload
// shape and that the stored row changed.
func TestUpdateDependencyProxySettings(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.group("acme")
	owner := e.user("olga", "acme", store.RoleOwner, "api")
	var got struct {
		UpdateDependencyProxySettings struct {
			ClientMutationID       string
			DependencyProxySetting struct {
				Enabled                bool
				Identity               *string
				SecretSet              bool
				FreshnessWindowSeconds int
				AllowAnonymousPull     bool
			}
			Errors []string
		}
	}
	e.ok(owner, `mutation($in: UpdateDependencyProxySettingsInput!) {
		updateDependencyProxySettings(input: $in) {
			clientMutationId
			dependencyProxySetting { enabled identity secretSet freshnessWindowSeconds allowAnonymousPull }
			errors
		}
	}`, map[string]any{"in": map[string]any{
		"clientMutationId": "m1", "groupPath": "acme", "enabled": false, "identity": "hubuser", "secret": "hub-secret-1",
		"freshnessWindowSeconds": 300, "allowAnonymousPull": true,
	}}, &got)
	p := got.UpdateDependencyProxySettings
	s := p.DependencyProxySetting
	if p.ClientMutationID != "m1" || len(p.Errors) != 0 || s.Enabled || s.Identity == nil || *s.Identity != "hubuser" ||
		!s.SecretSet || s.FreshnessWindowSeconds != 300 || !s.AllowAnonymousPull {
		t.Errorf("payload = %+v", p)
	}
	row, err := e.app.Store.ProxySetting(context.Background(), e.groupID("acme"))
	if err != nil {
		t.Fatal(err)
	}
	if row.Enabled || row.Identity != "hubuser" || row.Secret != "hub-secret-1" || row.FreshnessWindow != 5*time.Minute || !row.AllowAnonymousPull {
		t.Errorf("stored setting = enabled %v identity %q window %s anon %v", row.Enabled, row.Identity, row.FreshnessWindow, row.AllowAnonymousPull)
	}

	// Clearing: both empty.
	e.ok(owner, `mutation { updateDependencyProxySettings(input: {groupPath: "acme", identity: "", secret: "", enabled: true}) {
		dependencyProxySetting { identity secretSet enabled } errors } }`, nil, &got)
	if s := got.UpdateDependencyProxySettings.DependencyProxySetting; s.Identity != nil || s.SecretSet || !s.Enabled {
		t.Errorf("after clearing: %+v", s)
	}
}

// TestUpdateDependencyProxyImageTtlGroupPolicy checks GitLab's mutation.
func TestUpdateDependencyProxyImageTtlGroupPolicy(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.group("acme")
	owner := e.user("olga", "acme", store.RoleOwner, "api")
	var got struct {
		UpdateDependencyProxyImageTtlGroupPolicy struct {
			DependencyProxyImageTtlPolicy struct {
				Enabled              bool
				TTL                  int
				CreatedAt, UpdatedAt string
			}
			Errors []string
		}
	}
	e.ok(owner, `mutation { updateDependencyProxyImageTtlGroupPolicy(input: {groupPath: "acme", enabled: false, ttl: 30}) {
		dependencyProxyImageTtlPolicy { enabled ttl createdAt updatedAt } errors } }`, nil, &got)
	p := got.UpdateDependencyProxyImageTtlGroupPolicy
	if p.DependencyProxyImageTtlPolicy.Enabled || p.DependencyProxyImageTtlPolicy.TTL != 30 || len(p.Errors) != 0 ||
		!rfc3339.MatchString(p.DependencyProxyImageTtlPolicy.UpdatedAt) {
		t.Errorf("payload = %+v", p)
	}
	row, err := e.app.Store.TTLPolicy(context.Background(), e.groupID("acme"))
	if err != nil {
		t.Fatal(err)
	}
	if row.Enabled || row.TTLDays != 30 {
		t.Errorf("stored policy = %+v", row)
	}
}

// TestRESTPurge checks GitLab's DELETE …/dependency_proxy/cache.
func TestRESTPurge(t *testing.T) {
	t.Parallel()
	e, _ := pulledEnv(t)
	reporter := e.user("rita", "acme", store.RoleReporter, "api")
	stranger := e.user("sam", "", 0, "api")
	owner := e.user("olga", "acme", store.RoleOwner, "api")
	id := strconv.FormatInt(e.groupID("acme"), 10)

	for _, c := range []struct {
		name, path, header, token string
		want                      int
	}{
		{"no token", "acme", "", "", http.StatusUnauthorized},
		{"wrong token", "acme", "Authorization", "Bearer dpxp_nope", http.StatusUnauthorized},
		{"reporter", "acme", "PRIVATE-TOKEN", reporter, http.StatusForbidden},
		{"non-member", "acme", "PRIVATE-TOKEN", stranger, http.StatusNotFound},
		{"unknown group", "nope", "PRIVATE-TOKEN", owner, http.StatusNotFound},
	} {
		var hdr []string
		if c.header != "" {
			hdr = []string{c.header, c.token}
		}
		res, body := e.do(http.MethodDelete, "/api/v4/groups/"+c.path+"/dependency_proxy/cache", "", hdr...)
		if res.StatusCode != c.want || !strings.Contains(string(body), `"message"`) {
			t.Errorf("%s: %d %s, want %d with a message body", c.name, res.StatusCode, body, c.want)
		}
		if u := e.usage("acme"); u.Manifests == 0 {
			t.Fatalf("%s: the cache changed: %+v", c.name, u)
		}
	}
	// By id, then by url-encoded path (a subgroup).
	res, body := e.do(http.MethodDelete, "/api/v4/groups/"+id+"/dependency_proxy/cache", owner)
	if res.StatusCode != http.StatusAccepted {
		t.Fatalf("purge by id: %d %s, want 202", res.StatusCode, body)
	}
	if u := e.usage("acme"); u != (store.Usage{}) {
		t.Errorf("after purge usage = %+v, want empty", u)
	}
	res, body = e.do(http.MethodDelete, "/api/v4/groups/acme%2Fci/dependency_proxy/cache", "", "PRIVATE-TOKEN", owner)
	if res.StatusCode != http.StatusAccepted {
		t.Errorf("purge of acme%%2Fci: %d %s, want 202", res.StatusCode, body)
	}
}
