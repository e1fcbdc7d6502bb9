package store

import (
	"slices"
	"testing"
	"time"

	"github.com/dproxy/dproxy/internal/oci"
)

// runLifecycleContract is the behaviour of the lifecycle queries every
// backend must have. open returns a new, empty, migrated store.
func runLifecycleContract(t *testing.T, open func(t *testing.T) *Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s *Store)
	}{
		{"EnabledTTLPolicies", contractEnabledTTLPolicies},
		{"ReferencedBlobs", contractReferencedBlobs},
		{"LeastRecentlyRead", contractLeastRecentlyRead},
		{"EvictBlob", contractEvictBlob},
		{"DropBlob", contractDropBlob},
		{"GroupCacheSizes", contractGroupCacheSizes},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, open(t))
		})
	}
}

func TestSQLiteLifecycleContract(t *testing.T) {
	t.Parallel()
	runLifecycleContract(t, openTestSQLite)
}

func putRef(t *testing.T, s *Store, groupID int64, name string, size int64, readAt time.Time) {
	t.Helper()
	if err := s.PutBlob(t.Context(), Blob{OwnerID: groupID, Digest: digestOf(name), Size: size, ReadAt: readAt}); err != nil {
		t.Fatalf("PutBlob(%s): %v", name, err)
	}
}

func contractEnabledTTLPolicies(t *testing.T, s *Store) {
	ctx := t.Context()
	a, b, c := mustGroup(t, s, "a"), mustGroup(t, s, "b"), mustGroup(t, s, "c")
	if err := s.UpdateTTLPolicy(ctx, TTLPolicy{GroupID: b.ID, Enabled: false, TTLDays: 7}); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateTTLPolicy(ctx, TTLPolicy{GroupID: c.ID, Enabled: true, TTLDays: 3}); err != nil {
		t.Fatal(err)
	}
	ps, err := s.EnabledTTLPolicies(ctx)
	if err != nil {
		t.Fatalf("EnabledTTLPolicies: %v", err)
	}
	got := make(map[int64]int)
	for _, p := range ps {
		got[p.GroupID] = p.TTLDays
	}
	want := map[int64]int{a.ID: DefaultTTLDays, c.ID: 3}
	if len(got) != len(want) || got[a.ID] != want[a.ID] || got[c.ID] != want[c.ID] {
		t.Errorf("enabled policies %v, want %v (a new group has %d days, b is disabled)", got, want, DefaultTTLDays)
	}
}

func contractReferencedBlobs(t *testing.T, s *Store) {
	ctx := t.Context()
	g1, g2 := mustGroup(t, s, "a"), mustGroup(t, s, "b")
	names := []string{"x", "y", "z"}
	for _, n := range names {
		putRef(t, s, g1.ID, n, 10, t0)
	}
	putRef(t, s, g2.ID, "x", 10, t0) // shared: listed once
	var all []oci.Digest
	var after oci.Digest
	for {
		page, err := s.ReferencedBlobs(ctx, after, 2)
		if err != nil {
			t.Fatalf("ReferencedBlobs: %v", err)
		}
		if len(page) == 0 {
			break
		}
		for _, b := range page {
			if b.Size != 10 {
				t.Errorf("blob %s size %d, want 10", b.Digest, b.Size)
			}
			all = append(all, b.Digest)
		}
		after = page[len(page)-1].Digest
	}
	var want []oci.Digest
	for _, n := range names {
		want = append(want, digestOf(n))
	}
	slices.Sort(want)
	if !slices.Equal(all, want) {
		t.Errorf("referenced blobs %v, want %v", all, want)
	}
	n, err := s.CachedBlobBytes(ctx)
	if err != nil || n != 30 {
		t.Errorf("CachedBlobBytes = %d, %v; want 30 (the shared blob once)", n, err)
	}
}

func contractLeastRecentlyRead(t *testing.T, s *Store) {
	ctx := t.Context()
	g1, g2 := mustGroup(t, s, "a"), mustGroup(t, s, "b")
	// "shared" was read long ago by a but recently by b: it is the newest.
	putRef(t, s, g1.ID, "shared", 5, t0.Add(-10*time.Hour))
	putRef(t, s, g2.ID, "shared", 5, t0)
	putRef(t, s, g1.ID, "old", 5, t0.Add(-5*time.Hour))
	putRef(t, s, g2.ID, "mid", 5, t0.Add(-time.Hour))
	putRef(t, s, g1.ID, "tie", 5, t0.Add(-30*time.Minute))
	putRef(t, s, g2.ID, "tie", 5, t0.Add(-30*time.Minute))
	// A virtual registry upstream's reference counts like a group's.
	u := mustVirtualUpstream(t, s, g1.ID)
	if err := s.UpstreamCache().PutBlob(ctx, Blob{OwnerID: u, Digest: digestOf("mid"), Size: 5, ReadAt: t0.Add(-20 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	putRef(t, s, g1.ID, "virtual", 5, t0.Add(-2*time.Hour))
	want := []oci.Digest{digestOf("old"), digestOf("virtual"), digestOf("tie"), digestOf("mid"), digestOf("shared")}
	for _, size := range []int{10, 1, 2, 3} {
		// Paged by size, the pages join into the one order, each blob once.
		var order []oci.Digest
		var first StoredBlob
		var after *StoredBlob
		for range 10 {
			got, err := s.LeastRecentlyRead(ctx, after, size)
			if err != nil {
				t.Fatalf("LeastRecentlyRead: %v", err)
			}
			if len(got) == 0 {
				break
			}
			if after == nil {
				first = got[0]
			}
			for _, b := range got {
				order = append(order, b.Digest)
			}
			after = &got[len(got)-1]
		}
		if !slices.Equal(order, want) {
			t.Errorf("pages of %d: order %v, want old, virtual, tie, mid, shared %v", size, order, want)
		}
		if !first.ReadAt.Equal(t0.Add(-5 * time.Hour)) {
			t.Errorf("pages of %d: ReadAt of the oldest = %v, want %v", size, first.ReadAt, t0.Add(-5*time.Hour))
		}
	}
}

func contractEvictBlob(t *testing.T, s *Store) {
	ctx := t.Context()
	g1, g2 := mustGroup(t, s, "a"), mustGroup(t, s, "b")
	putRef(t, s, g1.ID, "x", 5, t0)
	putRef(t, s, g2.ID, "x", 5, t0.Add(-time.Hour))
	// Read since the caller looked: kept.
	n, err := s.EvictBlob(ctx, digestOf("x"), t0.Add(-time.Minute))
	if err != nil || n != 0 {
		t.Fatalf("EvictBlob of a blob read since = %d, %v; want 0, nil", n, err)
	}
	if ok, _ := s.BlobReferenced(ctx, digestOf("x")); !ok {
		t.Fatal("a blob read after the eviction cut-off lost its references")
	}
	n, err = s.EvictBlob(ctx, digestOf("x"), t0)
	if err != nil || n != 2 {
		t.Fatalf("EvictBlob = %d, %v; want 2 references, nil", n, err)
	}
	if ok, _ := s.BlobReferenced(ctx, digestOf("x")); ok {
		t.Error("evicted blob is still referenced")
	}

	// Several at once: each is checked for its own later read.
	putRef(t, s, g1.ID, "y", 5, t0)
	putRef(t, s, g2.ID, "z", 5, t0)
	putRef(t, s, g1.ID, "z", 5, t0.Add(-time.Hour))
	got, err := s.EvictBlobs(ctx, []StoredBlob{
		{Digest: digestOf("y"), ReadAt: t0.Add(-time.Minute)}, // read since: kept
		{Digest: digestOf("z"), ReadAt: t0},
		{Digest: digestOf("gone"), ReadAt: t0},
	})
	if err != nil || !slices.Equal(got, []int64{0, 2, 0}) {
		t.Fatalf("EvictBlobs = %v, %v; want [0 2 0], nil", got, err)
	}
	if ok, _ := s.BlobReferenced(ctx, digestOf("y")); !ok {
		t.Error("EvictBlobs evicted a blob read after its cut-off")
	}
	if ok, _ := s.BlobReferenced(ctx, digestOf("z")); ok {
		t.Error("EvictBlobs left a reference of an evicted blob")
	}
}

func contractDropBlob(t *testing.T, s *Store) {
	ctx := t.Context()
	g1, g2 := mustGroup(t, s, "a"), mustGroup(t, s, "b")
	putRef(t, s, g1.ID, "x", 5, t0)
	putRef(t, s, g2.ID, "x", 5, t0)
	putRef(t, s, g2.ID, "y", 5, t0)
	n, err := s.DropBlob(ctx, digestOf("x"))
	if err != nil || n != 2 {
		t.Fatalf("DropBlob = %d, %v; want 2, nil", n, err)
	}
	if n, err := s.DropBlob(ctx, digestOf("x")); err != nil || n != 0 {
		t.Errorf("second DropBlob = %d, %v; want 0, nil", n, err)
	}
	if _, err := s.Blob(ctx, g2.ID, digestOf("y")); err != nil {
		t.Errorf("another blob was dropped too: %v", err)
	}
}

func contractGroupCacheSizes(t *testing.T, s *Store) {
	ctx := t.Context()
	g1, g2 := mustGroup(t, s, "a"), mustGroup(t, s, "b")
	mustGroup(t, s, "empty")
	putRef(t, s, g1.ID, "x", 100, t0)
	putRef(t, s, g2.ID, "x", 100, t0)
	putRef(t, s, g2.ID, "y", 50, t0)
	if _, err := s.PutManifest(ctx, testManifest(g1.ID, "library/a", "v1", "12345")); err != nil {
		t.Fatal(err)
	}
	got, err := s.GroupCacheSizes(ctx)
	if err != nil {
		t.Fatalf("GroupCacheSizes: %v", err)
	}
	want := []GroupCacheSize{
		{GroupID: g1.ID, Path: "a", ManifestBytes: 5, BlobBytes: 100},
		{GroupID: g2.ID, Path: "b", BlobBytes: 150},
	}
	if len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2].BlobBytes != 0 || got[2].ManifestBytes != 0 {
		t.Errorf("GroupCacheSizes = %+v, want %+v and an empty third", got, want)
	}
}

// mustVirtualUpstream creates a virtual registry in group and an upstream
// of it, and returns the upstream's id.
func mustVirtualUpstream(t *testing.T, s *Store, group int64) int64 {
	t.Helper()
	r, err := s.CreateVirtualRegistry(t.Context(), VirtualRegistry{GroupID: group, Name: "mirrors"}, 10)
	if err != nil {
		t.Fatalf("CreateVirtualRegistry: %v", err)
	}
	u, err := s.AddVirtualUpstream(t.Context(), VirtualUpstream{RegistryID: r.ID, Name: "hub", URL: "https://registry.example.com"}, 10)
	if err != nil {
		t.Fatalf("AddVirtualUpstream: %v", err)
	}
	return u.ID
}
