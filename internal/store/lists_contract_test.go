package store

import (
	"errors"
	"path/filepath"
	"testing"
	"time"
)

// runListsContract is the behaviour of cached lists every backend must have.
func runListsContract(t *testing.T, open func(t *testing.T) *Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s *Store)
	}{
		{"PutGetReplace", contractListsPutGetReplace},
		{"Owners", contractListsOwners},
		{"Touch", contractListsTouch},
		{"PurgeAndExpire", contractListsPurgeAndExpire},
		{"Cascade", contractListsCascade},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, open(t))
		})
	}
}

func TestSQLiteListsContract(t *testing.T) {
	t.Parallel()
	runListsContract(t, openTestSQLite)
}

func TestPostgresListsContract(t *testing.T) {
	t.Parallel()
	runListsContract(t, openTestPostgres)
}

const subjectA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

func contractListsPutGetReplace(t *testing.T, s *Store) {
	ctx := t.Context()
	g := mustGroup(t, s, "acme")
	if _, err := s.List(ctx, g.ID, "library/alpine", ListTags, ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("List before any put: %v, want ErrNotFound", err)
	}
	first, err := s.PutList(ctx, List{OwnerID: g.ID, Image: "library/alpine", Kind: ListTags, Content: []byte(`["3.19","3.20"]`), UpdatedAt: t0})
	if err != nil || first.ID == 0 {
		t.Fatalf("PutList = %+v, %v", first, err)
	}
	got, err := s.List(ctx, g.ID, "library/alpine", ListTags, "")
	if err != nil || string(got.Content) != `["3.19","3.20"]` || !got.UpdatedAt.Equal(t0) || got.ID != first.ID {
		t.Fatalf("List = %+v, %v", got, err)
	}
	later := t0.Add(time.Hour)
	second, err := s.PutList(ctx, List{OwnerID: g.ID, Image: "library/alpine", Kind: ListTags, Content: []byte(`["3.21"]`),
		CreatedAt: later, UpdatedAt: later})
	if err != nil || second.ID != first.ID || !second.CreatedAt.Equal(first.CreatedAt) {
		t.Fatalf("replace = %+v, %v; want the same row with its first CreatedAt %v", second, err, first.CreatedAt)
	}
	got, _ = s.List(ctx, g.ID, "library/alpine", ListTags, "")
	if string(got.Content) != `["3.21"]` || !got.UpdatedAt.Equal(later) {
		t.Errorf("after replace: %s updated %v", got.Content, got.UpdatedAt)
	}
	// A referrers list of the same image is another row.
	if _, err := s.PutList(ctx, List{OwnerID: g.ID, Image: "library/alpine", Kind: ListReferrers, Subject: subjectA, Content: []byte(`[]`)}); err != nil {
		t.Fatal(err)
	}
	if r, err := s.List(ctx, g.ID, "library/alpine", ListReferrers, subjectA); err != nil || string(r.Content) != `[]` {
		t.Errorf("referrers list = %+v, %v", r, err)
	}
	if _, err := s.List(ctx, g.ID, "library/alpine", ListReferrers, "sha256:other"); !errors.Is(err, ErrNotFound) {
		t.Errorf("referrers of another subject: %v, want ErrNotFound", err)
	}
	if _, err := s.PutList(ctx, List{OwnerID: g.ID, Image: "x", Kind: "catalog"}); err == nil {
		t.Error("PutList accepted an unknown kind")
	}
	if _, err := s.PutList(ctx, List{OwnerID: 999999, Image: "x", Kind: ListTags}); !errors.Is(err, ErrNotFound) {
		t.Errorf("PutList of an unknown group: %v, want ErrNotFound", err)
	}
}

// contractListsOwners: a group's lists and an upstream's are apart, even
// with equal ids.
func contractListsOwners(t *testing.T, s *Store) {
	ctx := t.Context()
	g, _, u := mustUpstream(t, s, "acme")
	uc := s.UpstreamCache()
	if _, err := uc.PutList(ctx, List{OwnerID: u.ID, Image: "alpine", Kind: ListTags, Content: []byte(`["upstream"]`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutList(ctx, List{OwnerID: g.ID, Image: "alpine", Kind: ListTags, Content: []byte(`["group"]`)}); err != nil {
		t.Fatal(err)
	}
	if l, err := uc.List(ctx, u.ID, "alpine", ListTags, ""); err != nil || string(l.Content) != `["upstream"]` {
		t.Errorf("upstream list = %+v, %v", l, err)
	}
	if l, err := s.List(ctx, g.ID, "alpine", ListTags, ""); err != nil || string(l.Content) != `["group"]` {
		t.Errorf("group list = %+v, %v", l, err)
	}
	if _, err := uc.PutList(ctx, List{OwnerID: 999999, Image: "x", Kind: ListTags}); !errors.Is(err, ErrNotFound) {
		t.Errorf("PutList of an unknown upstream: %v, want ErrNotFound", err)
	}
}

func contractListsTouch(t *testing.T, s *Store) {
	ctx := t.Context()
	g, _, u := mustUpstream(t, s, "acme")
	l, err := s.PutList(ctx, List{OwnerID: g.ID, Image: "alpine", Kind: ListTags, Content: []byte(`[]`), ReadAt: t0})
	if err != nil {
		t.Fatal(err)
	}
	at := t0.Add(48 * time.Hour)
	if err := s.TouchList(ctx, l.ID, at); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.List(ctx, g.ID, "alpine", ListTags, ""); !got.ReadAt.Equal(at) || !got.UpdatedAt.Equal(l.UpdatedAt) {
		t.Errorf("after touch: read %v updated %v, want read %v and updated unchanged", got.ReadAt, got.UpdatedAt, at)
	}
	if err := s.TouchList(ctx, 999999, at); !errors.Is(err, ErrNotFound) {
		t.Errorf("TouchList of an unknown id: %v, want ErrNotFound", err)
	}
	uc := s.UpstreamCache()
	ul, err := uc.PutList(ctx, List{OwnerID: u.ID, Image: "alpine", Kind: ListTags, Content: []byte(`[]`), ReadAt: t0})
	if err != nil {
		t.Fatal(err)
	}
	if err := uc.TouchList(ctx, ul.ID, at); err != nil {
		t.Fatal(err)
	}
	if got, _ := uc.List(ctx, u.ID, "alpine", ListTags, ""); !got.ReadAt.Equal(at) {
		t.Errorf("upstream list read at %v, want %v", got.ReadAt, at)
	}
}

// contractListsPurgeAndExpire: a purge removes a group's lists, a TTL
// expiry those not read since the cut-off (the group's and its virtual
// registries' upstreams'), and clearing an upstream's cache its lists.
func contractListsPurgeAndExpire(t *testing.T, s *Store) {
	ctx := t.Context()
	g, _, u := mustUpstream(t, s, "acme")
	other, _, otherU := mustUpstream(t, s, "other")
	uc := s.UpstreamCache()
	now := s.now()
	old, recent := now.Add(-100*24*time.Hour), now.Add(-time.Hour)
	put := func(owner int64, virtual bool, image string, readAt time.Time) {
		t.Helper()
		l := List{OwnerID: owner, Image: image, Kind: ListTags, Content: []byte(`[]`), ReadAt: readAt}
		var err error
		if virtual {
			_, err = uc.PutList(ctx, l)
		} else {
			_, err = s.PutList(ctx, l)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, owner := range []struct {
		group, upstream int64
	}{{g.ID, u.ID}, {other.ID, otherU.ID}} {
		put(owner.group, false, "old", old)
		put(owner.group, false, "recent", recent)
		put(owner.upstream, true, "old", old)
		put(owner.upstream, true, "recent", recent)
	}
	if _, err := s.ExpireGroupCache(ctx, g.ID, now.Add(-90*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	exists := func(owner int64, virtual bool, image string) bool {
		t.Helper()
		var err error
		if virtual {
			_, err = uc.List(ctx, owner, image, ListTags, "")
		} else {
			_, err = s.List(ctx, owner, image, ListTags, "")
		}
		if err != nil && !errors.Is(err, ErrNotFound) {
			t.Fatal(err)
		}
		return err == nil
	}
	for _, c := range []struct {
		what    string
		owner   int64
		virtual bool
		image   string
		want    bool
	}{
		{"the group's old list", g.ID, false, "old", false},
		{"the group's recent list", g.ID, false, "recent", true},
		{"its upstream's old list", u.ID, true, "old", false},
		{"its upstream's recent list", u.ID, true, "recent", true},
		{"another group's old list", other.ID, false, "old", true},
		{"another group's upstream's old list", otherU.ID, true, "old", true},
	} {
		if got := exists(c.owner, c.virtual, c.image); got != c.want {
			t.Errorf("after expiry, %s exists: %v, want %v", c.what, got, c.want)
		}
	}

	if _, err := s.PurgeGroupCacheCounted(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	if exists(g.ID, false, "recent") {
		t.Error("PurgeGroupCacheCounted left the group's list")
	}
	if _, err := s.PurgeGroupCache(ctx, other.ID); err != nil {
		t.Fatal(err)
	}
	if exists(other.ID, false, "recent") || exists(other.ID, false, "old") {
		t.Error("PurgeGroupCache left the group's lists")
	}
	if !exists(u.ID, true, "recent") {
		t.Error("a group purge removed its virtual registry upstream's list")
	}
	if _, err := s.ClearVirtualCache(ctx, []int64{u.ID}); err != nil {
		t.Fatal(err)
	}
	if exists(u.ID, true, "recent") {
		t.Error("ClearVirtualCache left the upstream's list")
	}
	if !exists(otherU.ID, true, "recent") {
		t.Error("ClearVirtualCache removed another upstream's list")
	}
}

func contractListsCascade(t *testing.T, s *Store) {
	ctx := t.Context()
	g, _, u := mustUpstream(t, s, "acme")
	if _, err := s.PutList(ctx, List{OwnerID: g.ID, Image: "alpine", Kind: ListTags, Content: []byte(`[]`)}); err != nil {
		t.Fatal(err)
	}
	uc := s.UpstreamCache()
	if _, err := uc.PutList(ctx, List{OwnerID: u.ID, Image: "alpine", Kind: ListTags, Content: []byte(`[]`)}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteVirtualUpstream(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := uc.List(ctx, u.ID, "alpine", ListTags, ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("a deleted upstream's list: %v, want ErrNotFound", err)
	}
	if err := s.DeleteGroup(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.List(ctx, g.ID, "alpine", ListTags, ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("a deleted group's list: %v, want ErrNotFound", err)
	}
}

// TestSQLiteListsSurviveReopen: cached lists are durable.
func TestSQLiteListsSurviveReopen(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "dproxy.db")
	box := testBox(t, 1)
	s := openSQLiteAt(t, path, box)
	g := mustGroup(t, s, "acme")
	if _, err := s.PutList(t.Context(), List{OwnerID: g.ID, Image: "alpine", Kind: ListTags, Content: []byte(`["1"]`)}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openSQLiteAt(t, path, box)
	if l, err := s.List(t.Context(), g.ID, "alpine", ListTags, ""); err != nil || string(l.Content) != `["1"]` {
		t.Errorf("after reopening: %+v, %v", l, err)
	}
}
