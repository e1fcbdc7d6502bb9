package store

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dproxy/dproxy/internal/oci"
)

// runVirtualContract is the behaviour of virtual registries every backend
// must have.
func runVirtualContract(t *testing.T, open func(t *testing.T) *Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s *Store)
	}{
		{"Registries", contractVirtualRegistries},
		{"RegistryLimitRace", contractVirtualRegistryLimitRace},
		{"Upstreams", contractVirtualUpstreams},
		{"UpstreamOrder", contractVirtualUpstreamOrder},
		{"Cascade", contractVirtualCascade},
		{"UpstreamCache", contractUpstreamCache},
		{"ExpireVirtualCaches", contractExpireVirtualCaches},
		{"UpstreamsOfGroup", contractVirtualUpstreamsOfGroup},
		{"CacheEntryQuery", contractVirtualCacheEntryQuery},
		{"ChangeRegistry", contractChangeVirtualRegistry},
		{"ChangeUpstream", contractChangeVirtualUpstream},
		{"ChangeUpstreamConcurrently", contractChangeVirtualUpstreamConcurrently},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, open(t))
		})
	}
}

func TestSQLiteVirtualContract(t *testing.T) {
	t.Parallel()
	runVirtualContract(t, openTestSQLite)
}

func TestPostgresVirtualContract(t *testing.T) {
	t.Parallel()
	runVirtualContract(t, openTestPostgres)
}

func contractVirtualRegistries(t *testing.T, s *Store) {
	ctx := t.Context()
	g := mustGroup(t, s, "acme")
	r, err := s.CreateVirtualRegistry(ctx, VirtualRegistry{GroupID: g.ID, Name: "mirrors", Description: "hub and quay"}, 2)
	if err != nil || r.ID == 0 || r.CreatedAt.IsZero() {
		t.Fatalf("CreateVirtualRegistry = %+v, %v", r, err)
	}
	if _, err := s.CreateVirtualRegistry(ctx, VirtualRegistry{GroupID: g.ID, Name: "mirrors"}, 2); !errors.Is(err, ErrConflict) {
		t.Errorf("duplicate name: %v, want ErrConflict", err)
	}
	if _, err := s.CreateVirtualRegistry(ctx, VirtualRegistry{GroupID: g.ID, Name: "internal"}, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateVirtualRegistry(ctx, VirtualRegistry{GroupID: g.ID, Name: "third"}, 2); !errors.Is(err, ErrLimit) {
		t.Errorf("third registry with max 2: %v, want ErrLimit", err)
	}
	if _, err := s.CreateVirtualRegistry(ctx, VirtualRegistry{GroupID: 999, Name: "x"}, 2); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown group: %v, want ErrNotFound", err)
	}
	list, err := s.VirtualRegistriesOfGroup(ctx, g.ID)
	if err != nil || len(list) != 2 || list[0].Name != "internal" || list[1].Name != "mirrors" {
		t.Fatalf("VirtualRegistriesOfGroup = %+v, %v", list, err)
	}
	r.Name, r.Description = "public", ""
	if got, err := s.UpdateVirtualRegistry(ctx, r); err != nil || got.Name != "public" || got.Description != "" {
		t.Errorf("UpdateVirtualRegistry = %+v, %v", got, err)
	}
	r.Name = "internal"
	if _, err := s.UpdateVirtualRegistry(ctx, r); !errors.Is(err, ErrConflict) {
		t.Errorf("rename onto a taken name: %v, want ErrConflict", err)
	}
	if err := s.DeleteVirtualRegistry(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.VirtualRegistry(ctx, r.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted registry: %v, want ErrNotFound", err)
	}
	if err := s.DeleteVirtualRegistry(ctx, r.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("delete twice: %v, want ErrNotFound", err)
	}
}

// Concurrent creates never pass the limit.
func contractVirtualRegistryLimitRace(t *testing.T, s *Store) {
	ctx := t.Context()
	g := mustGroup(t, s, "acme")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			_, _ = s.CreateVirtualRegistry(ctx, VirtualRegistry{GroupID: g.ID, Name: string(rune('a' + i))}, 5)
		})
	}
	wg.Wait()
	if list, err := s.VirtualRegistriesOfGroup(ctx, g.ID); err != nil || len(list) != 5 {
		t.Errorf("after 8 concurrent creates with max 5: %d registries, %v", len(list), err)
	}
}

func contractVirtualUpstreams(t *testing.T, s *Store) {
	ctx := t.Context()
	g := mustGroup(t, s, "acme")
	r, err := s.CreateVirtualRegistry(ctx, VirtualRegistry{GroupID: g.ID, Name: "all"}, 5)
	if err != nil {
		t.Fatal(err)
	}
	u, err := s.AddVirtualUpstream(ctx, VirtualUpstream{RegistryID: r.ID, Name: "private", URL: "https://registry.example.com",
		Username: "bot", Password: "pa55-word-sealed", CacheValidityHours: 24}, 2)
	if err != nil || u.ID == 0 || u.Position != 0 {
		t.Fatalf("AddVirtualUpstream = %+v, %v", u, err)
	}
	got, err := s.VirtualUpstream(ctx, u.ID)
	if err != nil || got.Password != "pa55-word-sealed" || got.Username != "bot" || got.CacheValidityHours != 24 {
		t.Errorf("VirtualUpstream = %+v, %v; want the password decrypted", got, err)
	}
	if _, err := s.AddVirtualUpstream(ctx, VirtualUpstream{RegistryID: r.ID, Name: "private", URL: "https://x"}, 2); !errors.Is(err, ErrConflict) {
		t.Errorf("duplicate upstream name: %v, want ErrConflict", err)
	}
	if _, err := s.AddVirtualUpstream(ctx, VirtualUpstream{RegistryID: r.ID, Name: "hub", URL: "https://registry-1.docker.io"}, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddVirtualUpstream(ctx, VirtualUpstream{RegistryID: r.ID, Name: "third", URL: "https://x"}, 2); !errors.Is(err, ErrLimit) {
		t.Errorf("third upstream with max 2: %v, want ErrLimit", err)
	}

	u.Name, u.URL, u.Username, u.CacheValidityHours = "private2", "HTTPS://Registry.example.com:443/mirror", "bot2", 0
	up, err := s.UpdateVirtualUpstream(ctx, u, false)
	if err != nil || up.Name != "private2" || up.Username != "bot2" || up.Password != "pa55-word-sealed" || up.CacheValidityHours != 0 {
		t.Errorf("update on the same origin keeping the password = %+v, %v", up, err)
	}
	// Another host, scheme or port: the credentials stay behind, whatever
	// the username says, unless they are set in the same change.
	for _, to := range []string{"https://registry2.example.com", "http://registry.example.com", "https://registry.example.com:5000"} {
		u.URL, u.Username, u.Password = "https://registry.example.com", "bot", "pa55-word-sealed"
		if _, err := s.UpdateVirtualUpstream(ctx, u, true); err != nil {
			t.Fatal(err)
		}
		u.URL = to
		if up, err := s.UpdateVirtualUpstream(ctx, u, false); err != nil || up.Username != "" || up.Password != "" || up.URL != to {
			t.Errorf("move to %s without credentials = %+v, %v; want them cleared", to, up, err)
		}
	}
	u.URL, u.Username, u.Password = "https://registry3.example.com", "bot3", "pa55-word-3"
	if up, err := s.UpdateVirtualUpstream(ctx, u, true); err != nil || up.Username != "bot3" || up.Password != "pa55-word-3" {
		t.Errorf("move with new credentials = %+v, %v; want them set", up, err)
	}
	u.Password = ""
	if up, err := s.UpdateVirtualUpstream(ctx, u, true); err != nil || up.Password != "" {
		t.Errorf("clear the password = %+v, %v", up, err)
	}
	u.Password = "n3w-secret-value"
	if up, err := s.UpdateVirtualUpstream(ctx, u, true); err != nil || up.Password != "n3w-secret-value" {
		t.Errorf("set a new password = %+v, %v", up, err)
	}
	if _, err := s.UpdateVirtualUpstream(ctx, VirtualUpstream{ID: 999, Name: "x", URL: "https://x"}, false); !errors.Is(err, ErrNotFound) {
		t.Errorf("update unknown upstream: %v, want ErrNotFound", err)
	}
	if _, err := s.AddVirtualUpstream(ctx, VirtualUpstream{RegistryID: 999, Name: "x", URL: "https://x"}, 5); !errors.Is(err, ErrNotFound) {
		t.Errorf("add to unknown registry: %v, want ErrNotFound", err)
	}

	// The password is sealed at rest: not in the SQLite files.
	if s.w != s.r { // SQLite
		var path string
		if err := s.r.QueryRowContext(ctx, `SELECT file FROM pragma_database_list WHERE name = 'main'`).Scan(&path); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{path, path + "-wal"} {
			b, err := os.ReadFile(filepath.Clean(f))
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			if bytes.Contains(b, []byte("n3w-secret-value")) || bytes.Contains(b, []byte("pa55-word-sealed")) {
				t.Errorf("an upstream password is in plaintext in %s", f)
			}
		}
	}
}

func contractVirtualUpstreamOrder(t *testing.T, s *Store) {
	ctx := t.Context()
	g := mustGroup(t, s, "acme")
	r, err := s.CreateVirtualRegistry(ctx, VirtualRegistry{GroupID: g.ID, Name: "all"}, 5)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]int64{}
	for _, n := range []string{"a", "b", "c", "d"} {
		u, err := s.AddVirtualUpstream(ctx, VirtualUpstream{RegistryID: r.ID, Name: n, URL: "https://" + n + ".example"}, 5)
		if err != nil {
			t.Fatal(err)
		}
		ids[n] = u.ID
	}
	order := func() string {
		t.Helper()
		us, err := s.VirtualUpstreams(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		out := ""
		for i, u := range us {
			if u.Position != i {
				t.Errorf("upstream %s at position %d, index %d: positions must be dense", u.Name, u.Position, i)
			}
			out += u.Name
		}
		return out
	}
	for _, step := range []struct {
		name string
		pos  int
		want string
	}{
		{"d", 0, "dabc"}, {"d", 99, "abcd"}, {"a", 2, "bcad"}, {"c", -5, "cbad"},
	} {
		if _, err := s.MoveVirtualUpstream(ctx, ids[step.name], step.pos); err != nil {
			t.Fatal(err)
		}
		if got := order(); got != step.want {
			t.Errorf("move %s to %d: order %s, want %s", step.name, step.pos, got, step.want)
		}
	}
	if err := s.DeleteVirtualUpstream(ctx, ids["b"]); err != nil {
		t.Fatal(err)
	}
	if got := order(); got != "cad" {
		t.Errorf("after deleting b: %s, want cad", got)
	}
	if _, err := s.MoveVirtualUpstream(ctx, ids["b"], 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("move a deleted upstream: %v, want ErrNotFound", err)
	}
	if err := s.DeleteVirtualUpstream(ctx, ids["b"]); !errors.Is(err, ErrNotFound) {
		t.Errorf("delete twice: %v, want ErrNotFound", err)
	}
}

// Deleting a group deletes its registries and their upstreams.
func contractVirtualCascade(t *testing.T, s *Store) {
	ctx := t.Context()
	g, r, u := mustUpstream(t, s, "acme")
	if err := s.DeleteGroup(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.VirtualRegistry(ctx, r.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("registry after group delete: %v", err)
	}
	if _, err := s.VirtualUpstream(ctx, u.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("upstream after group delete: %v", err)
	}
}

// An upstream's cached content keeps its blob files alive for garbage
// collection and the size cap, and goes with the upstream.
func contractUpstreamCache(t *testing.T, s *Store) {
	ctx := t.Context()
	g, _, u := mustUpstream(t, s, "acme")
	uc := s.UpstreamCache()
	d := oci.Digest("sha256:" + strings.Repeat("ab", 32))
	m, err := uc.PutManifest(ctx, Manifest{OwnerID: u.ID, Image: "library/alpine", Reference: "latest", Digest: d, MediaType: "application/vnd.oci.image.manifest.v1+json", Content: []byte("{}")})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := uc.Manifest(ctx, u.ID, "library/alpine", "latest"); err != nil || got.ID != m.ID {
		t.Fatalf("Manifest = %+v, %v", got, err)
	}
	if _, err := s.Manifest(ctx, u.ID, "library/alpine", "latest"); !errors.Is(err, ErrNotFound) {
		t.Errorf("an upstream's manifest is visible as a group's: %v", err)
	}
	if err := uc.PutBlob(ctx, Blob{OwnerID: u.ID, Digest: d, Size: 42}); err != nil {
		t.Fatal(err)
	}
	if err := uc.PutBlob(ctx, Blob{OwnerID: 999, Digest: d, Size: 42}); !errors.Is(err, ErrNotFound) {
		t.Errorf("PutBlob for an unknown upstream: %v, want ErrNotFound", err)
	}
	if ok, err := s.BlobReferenced(ctx, d); err != nil || !ok {
		t.Errorf("BlobReferenced = %v, %v; an upstream's reference keeps the file", ok, err)
	}
	if refs, err := s.ReferencedBlobs(ctx, "", 10); err != nil || len(refs) != 1 || refs[0].Size != 42 {
		t.Errorf("ReferencedBlobs = %+v, %v", refs, err)
	}
	if n, err := s.CachedBlobBytes(ctx); err != nil || n != 42 {
		t.Errorf("CachedBlobBytes = %d, %v", n, err)
	}
	if err := s.PutBlob(ctx, Blob{OwnerID: g.ID, Digest: d, Size: 42}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.CachedBlobBytes(ctx); err != nil || n != 42 {
		t.Errorf("CachedBlobBytes with a group sharing the file = %d, %v; want it counted once", n, err)
	}
	entries, err := s.VirtualCacheEntries(ctx, u.ID, CacheEntryQuery{Limit: 10})
	if err != nil || len(entries) != 2 || entries[0].Path != "blobs/"+string(d) || entries[1].Path != "library/alpine/manifests/latest" || entries[0].Size != 42 {
		t.Fatalf("VirtualCacheEntries = %+v, %v", entries, err)
	}
	if b, m := entries[0], entries[1]; b.MediaType != "" || b.CreatedAt.IsZero() || !b.CreatedAt.Equal(b.CheckedAt) ||
		m.MediaType != "application/vnd.oci.image.manifest.v1+json" || m.CreatedAt.IsZero() || m.CheckedAt.IsZero() {
		t.Errorf("cache entries' media types and times: blob %+v, manifest %+v", b, m)
	}
	if page, err := s.VirtualCacheEntries(ctx, u.ID, CacheEntryQuery{After: entries[0].Path, Limit: 10}); err != nil || len(page) != 1 {
		t.Errorf("VirtualCacheEntries after the first = %+v, %v", page, err)
	}
	if err := s.DeleteVirtualCacheEntry(ctx, u.ID, "library/alpine/manifests/latest"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteVirtualCacheEntry(ctx, u.ID, "library/alpine/manifests/latest"); !errors.Is(err, ErrNotFound) {
		t.Errorf("delete twice: %v, want ErrNotFound", err)
	}
	if err := s.DeleteVirtualCacheEntry(ctx, u.ID, "nonsense"); !errors.Is(err, ErrNotFound) {
		t.Errorf("delete a path of no entry: %v, want ErrNotFound", err)
	}
	if n, err := s.DropBlob(ctx, d); err != nil || n != 2 {
		t.Errorf("DropBlob = %d, %v; want both references gone", n, err)
	}
	if err := uc.PutBlob(ctx, Blob{OwnerID: u.ID, Digest: d, Size: 42}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.ClearVirtualCache(ctx, []int64{u.ID}); err != nil || n != 1 {
		t.Errorf("ClearVirtualCache = %d, %v", n, err)
	}
	if err := uc.PutBlob(ctx, Blob{OwnerID: u.ID, Digest: d, Size: 42}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteVirtualUpstream(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.BlobReferenced(ctx, d); err != nil || ok {
		t.Errorf("after the upstream's deletion BlobReferenced = %v, %v", ok, err)
	}
	if _, err := uc.Manifest(ctx, u.ID, "library/alpine", "latest"); !errors.Is(err, ErrNotFound) {
		t.Errorf("the upstream's manifest outlived it: %v", err)
	}
}

// A group's TTL expiry covers the caches of its virtual registries'
// upstreams, and only its own.
func contractExpireVirtualCaches(t *testing.T, s *Store) {
	ctx := t.Context()
	g, _, mine := mustUpstream(t, s, "acme")
	_, _, other := mustUpstream(t, s, "other")
	uc := s.UpstreamCache()
	now := s.now()
	old, recent := now.Add(-100*24*time.Hour), now.Add(-time.Hour)
	oldD, recentD := oci.Digest("sha256:"+strings.Repeat("01", 32)), oci.Digest("sha256:"+strings.Repeat("02", 32))
	for _, u := range []VirtualUpstream{mine, other} {
		for _, m := range []struct {
			image string
			d     oci.Digest
			at    time.Time
		}{{"old", oldD, old}, {"recent", recentD, recent}} {
			if _, err := uc.PutManifest(ctx, Manifest{OwnerID: u.ID, Image: m.image, Reference: "v1", Digest: m.d,
				MediaType: "application/vnd.oci.image.manifest.v1+json", Content: []byte("{}"), ReadAt: m.at}); err != nil {
				t.Fatal(err)
			}
			if err := uc.PutBlob(ctx, Blob{OwnerID: u.ID, Digest: m.d, Size: 1, ReadAt: m.at}); err != nil {
				t.Fatal(err)
			}
		}
	}
	e, err := s.ExpireGroupCache(ctx, g.ID, now.Add(-90*24*time.Hour))
	if err != nil {
		t.Fatalf("ExpireGroupCache: %v", err)
	}
	if e.Manifests != 1 || len(e.Blobs) != 1 || e.Blobs[0] != oldD {
		t.Errorf("expired %d manifests and blobs %v, want 1 and [%s]", e.Manifests, e.Blobs, oldD)
	}
	if _, err := uc.Manifest(ctx, mine.ID, "old", "v1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("the old manifest survived: %v", err)
	}
	if _, err := uc.Manifest(ctx, mine.ID, "recent", "v1"); err != nil {
		t.Errorf("the recent manifest was expired: %v", err)
	}
	if _, err := uc.Manifest(ctx, other.ID, "old", "v1"); err != nil {
		t.Errorf("another group's virtual registry cache was expired: %v", err)
	}
}

// mustUpstream creates group path with a virtual registry "all" and one
// upstream "hub".
func mustUpstream(t *testing.T, s *Store, path string) (Group, VirtualRegistry, VirtualUpstream) {
	t.Helper()
	ctx := t.Context()
	g := mustGroup(t, s, path)
	r, err := s.CreateVirtualRegistry(ctx, VirtualRegistry{GroupID: g.ID, Name: "all"}, 5)
	if err != nil {
		t.Fatal(err)
	}
	u, err := s.AddVirtualUpstream(ctx, VirtualUpstream{RegistryID: r.ID, Name: "hub", URL: "https://hub.example"}, 5)
	if err != nil {
		t.Fatal(err)
	}
	return g, r, u
}

func contractVirtualUpstreamsOfGroup(t *testing.T, s *Store) {
	ctx := t.Context()
	g, r1, a := mustUpstream(t, s, "acme")
	r2, err := s.CreateVirtualRegistry(ctx, VirtualRegistry{GroupID: g.ID, Name: "second"}, 5)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.AddVirtualUpstream(ctx, VirtualUpstream{RegistryID: r2.ID, Name: "quay", URL: "https://quay.example", Username: "bot", Password: "pw-sealed"}, 5)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.AddVirtualUpstream(ctx, VirtualUpstream{RegistryID: r1.ID, Name: "ghcr", URL: "https://ghcr.example"}, 5)
	if err != nil {
		t.Fatal(err)
	}
	mustUpstream(t, s, "globex") // another group's upstream is not listed
	got, err := s.VirtualUpstreamsOfGroup(ctx, g.ID)
	if err != nil || len(got) != 3 || got[0].ID != a.ID || got[1].ID != b.ID || got[2].ID != c.ID {
		t.Fatalf("VirtualUpstreamsOfGroup = %+v, %v; want a, b, c by id", got, err)
	}
	if got[1].RegistryID != r2.ID || got[1].Password != "pw-sealed" || got[2].Position != 1 || got[2].RegistryID != r1.ID {
		t.Errorf("VirtualUpstreamsOfGroup rows = %+v", got)
	}
	if got, err := s.VirtualUpstreamsOfGroup(ctx, 999); err != nil || len(got) != 0 {
		t.Errorf("VirtualUpstreamsOfGroup of no group = %+v, %v", got, err)
	}
}

// Cache entries are searched by a case-insensitive substring of their
// path, where % and _ are plain characters, and paged by path with an
// offset; the count covers every match.
func contractVirtualCacheEntryQuery(t *testing.T, s *Store) {
	ctx := t.Context()
	_, _, u := mustUpstream(t, s, "acme")
	uc := s.UpstreamCache()
	for _, m := range []struct{ image, ref string }{
		{"library/alpine", "latest"}, {"library/alpine", "3.20"}, {"library/nginx", "Mainline"}, {"team/x_y", "v1"}, {"team/xzy", "v1"},
	} {
		d := digestOf(m.image + m.ref)
		if _, err := uc.PutManifest(ctx, Manifest{OwnerID: u.ID, Image: m.image, Reference: m.ref, Digest: d,
			MediaType: "application/vnd.oci.image.manifest.v1+json", Content: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
	}
	if err := uc.PutBlob(ctx, Blob{OwnerID: u.ID, Digest: digestOf("layer"), Size: 7}); err != nil {
		t.Fatal(err)
	}
	paths := func(es []VirtualCacheEntry) []string {
		out := make([]string, len(es))
		for i, e := range es {
			out[i] = e.Path
		}
		return out
	}
	for _, c := range []struct {
		q    CacheEntryQuery
		want []string
	}{
		{CacheEntryQuery{Search: "ALPINE"}, []string{"library/alpine/manifests/3.20", "library/alpine/manifests/latest"}},
		{CacheEntryQuery{Search: "mainline"}, []string{"library/nginx/manifests/Mainline"}},
		{CacheEntryQuery{Search: "x_y"}, []string{"team/x_y/manifests/v1"}},
		{CacheEntryQuery{Search: "%"}, []string{}},
		{CacheEntryQuery{Search: "library", Offset: 1, Limit: 1}, []string{"library/alpine/manifests/latest"}},
		{CacheEntryQuery{Search: "library", After: "library/alpine/manifests/latest"}, []string{"library/nginx/manifests/Mainline"}},
		{CacheEntryQuery{Search: "blobs/"}, []string{"blobs/" + string(digestOf("layer"))}},
	} {
		got, err := s.VirtualCacheEntries(ctx, u.ID, c.q)
		if err != nil || strings.Join(paths(got), ",") != strings.Join(c.want, ",") {
			t.Errorf("VirtualCacheEntries(%+v) = %q, %v; want %q", c.q, paths(got), err, c.want)
		}
	}
	for search, want := range map[string]int{"": 6, "ALPINE": 2, "x_y": 1, "%": 0, "manifests": 5} {
		if n, err := s.CountVirtualCacheEntries(ctx, u.ID, search); err != nil || n != want {
			t.Errorf("CountVirtualCacheEntries(%q) = %d, %v; want %d", search, n, err, want)
		}
	}
}

func contractChangeVirtualRegistry(t *testing.T, s *Store) {
	ctx := t.Context()
	g := mustGroup(t, s, "acme")
	r, err := s.CreateVirtualRegistry(ctx, VirtualRegistry{GroupID: g.ID, Name: "hub", Description: "docker hub"}, 5)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateVirtualRegistry(ctx, VirtualRegistry{GroupID: g.ID, Name: "quay"}, 5); err != nil {
		t.Fatal(err)
	}
	got, err := s.ChangeVirtualRegistry(ctx, r.ID, VirtualRegistryChange{Description: ptr("mirrors")})
	if err != nil || got.Name != "hub" || got.Description != "mirrors" || got.GroupID != g.ID || !got.CreatedAt.Equal(r.CreatedAt) {
		t.Errorf("change the description = %+v, %v", got, err)
	}
	got, err = s.ChangeVirtualRegistry(ctx, r.ID, VirtualRegistryChange{Name: ptr("hub2")})
	if err != nil || got.Name != "hub2" || got.Description != "mirrors" {
		t.Errorf("rename = %+v, %v", got, err)
	}
	_, err = s.ChangeVirtualRegistry(ctx, r.ID, VirtualRegistryChange{Name: ptr("quay")})
	wantErrIs(t, "rename onto a taken name", err, ErrConflict)
	_, err = s.ChangeVirtualRegistry(ctx, 9999, VirtualRegistryChange{Name: ptr("x")})
	wantErrIs(t, "unknown registry", err, ErrNotFound)
}

func contractChangeVirtualUpstream(t *testing.T, s *Store) {
	ctx := t.Context()
	_, r, u := mustUpstream(t, s, "acme")
	if _, err := s.AddVirtualUpstream(ctx, VirtualUpstream{RegistryID: r.ID, Name: "quay", URL: "https://quay.example"}, 5); err != nil {
		t.Fatal(err)
	}
	got, cleared, err := s.ChangeVirtualUpstream(ctx, u.ID, VirtualUpstreamChange{Username: ptr("bot"), Password: ptr("pa55-word")}, nil)
	if err != nil || cleared || got.Username != "bot" || got.Password != "pa55-word" || got.URL != u.URL || got.Name != "hub" {
		t.Fatalf("set credentials = %+v, %v, %v", got, cleared, err)
	}
	// Another path on the same origin keeps them; the password stays sealed.
	got, cleared, err = s.ChangeVirtualUpstream(ctx, u.ID, VirtualUpstreamChange{URL: ptr("https://HUB.example:443/mirror"), CacheValidityHours: ptr(0)}, nil)
	if err != nil || cleared || got.Password != "pa55-word" || got.CacheValidityHours != 0 {
		t.Errorf("same origin = %+v, %v, %v", got, cleared, err)
	}
	if read, err := s.VirtualUpstream(ctx, u.ID); err != nil || read.Password != "pa55-word" || read.URL != "https://HUB.example:443/mirror" || read.Position != 0 {
		t.Errorf("read back = %+v, %v", read, err)
	}
	// check sees before and after, and its refusal writes nothing.
	refusal := errors.New("refused")
	_, _, err = s.ChangeVirtualUpstream(ctx, u.ID, VirtualUpstreamChange{Name: ptr("renamed")}, func(before, after VirtualUpstream) error {
		if before.Name != "hub" || after.Name != "renamed" {
			t.Errorf("check saw %q → %q", before.Name, after.Name)
		}
		return refusal
	})
	if !errors.Is(err, refusal) {
		t.Errorf("a refused change: %v, want the check's error", err)
	}
	if read, _ := s.VirtualUpstream(ctx, u.ID); read.Name != "hub" {
		t.Errorf("a refused change was written: %+v", read)
	}
	// Another host without a password clears the credentials.
	got, cleared, err = s.ChangeVirtualUpstream(ctx, u.ID, VirtualUpstreamChange{URL: ptr("https://other.example"), Username: ptr("bot")}, nil)
	if err != nil || !cleared || got.Username != "" || got.Password != "" {
		t.Errorf("another host = %+v, %v, %v; want the credentials cleared", got, cleared, err)
	}
	if read, _ := s.VirtualUpstream(ctx, u.ID); read.Username != "" || read.Password != "" {
		t.Errorf("after another host the store holds %+v", read)
	}
	// With both, they are set for the new host.
	got, cleared, err = s.ChangeVirtualUpstream(ctx, u.ID, VirtualUpstreamChange{URL: ptr("https://third.example"), Username: ptr("bot3"), Password: ptr("s3")}, nil)
	if err != nil || cleared || got.Username != "bot3" || got.Password != "s3" {
		t.Errorf("another host with credentials = %+v, %v, %v", got, cleared, err)
	}
	_, _, err = s.ChangeVirtualUpstream(ctx, u.ID, VirtualUpstreamChange{Name: ptr("quay")}, nil)
	wantErrIs(t, "rename onto a taken name", err, ErrConflict)
	_, _, err = s.ChangeVirtualUpstream(ctx, 9999, VirtualUpstreamChange{Name: ptr("x")}, nil)
	wantErrIs(t, "unknown upstream", err, ErrNotFound)
}

// Concurrent changes of different fields of one upstream all survive.
func contractChangeVirtualUpstreamConcurrently(t *testing.T, s *Store) {
	ctx := t.Context()
	_, _, u := mustUpstream(t, s, "acme")
	const rounds = 10
	var wg sync.WaitGroup
	errs := make(chan error, 2*rounds)
	for i := range rounds {
		wg.Go(func() {
			_, _, err := s.ChangeVirtualUpstream(ctx, u.ID, VirtualUpstreamChange{CacheValidityHours: ptr(100 + i)}, nil)
			errs <- err
		})
		wg.Go(func() {
			_, _, err := s.ChangeVirtualUpstream(ctx, u.ID, VirtualUpstreamChange{Username: ptr("bot"), Password: ptr("pw")}, nil)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.VirtualUpstream(ctx, u.ID)
	if err != nil || got.CacheValidityHours < 100 || got.Username != "bot" || got.Password != "pw" {
		t.Errorf("after concurrent changes: %+v, %v", got, err)
	}
}
