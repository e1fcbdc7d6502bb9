package store

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/dproxy/dproxy/internal/oci"
)

// runAdminContract is the behaviour of the admin queries every backend
// must have; open returns a new, empty, migrated store.
func runAdminContract(t *testing.T, open func(t *testing.T) *Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s *Store)
	}{
		{"UpdateUser", contractUpdateUser},
		{"MembershipsOfUser", contractMembershipsOfUser},
		{"PurgeGroupCacheCounted", contractPurgeGroupCacheCounted},
		{"BlobsOfGroupNewest", contractBlobsOfGroupNewest},
		{"NextTokenNumber", contractNextTokenNumber},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, open(t))
		})
	}
}

func TestSQLiteAdminContract(t *testing.T) {
	t.Parallel()
	runAdminContract(t, openTestSQLite)
}

func contractUpdateUser(t *testing.T, s *Store) {
	ctx := t.Context()
	u := mustUser(t, s, "alice")
	if u.CredentialVersion != 0 || u.Blocked {
		t.Fatalf("new user: version %d blocked %v, want 0 false", u.CredentialVersion, u.Blocked)
	}
	hash, yes, no := "$2a$hash", true, false
	for _, c := range []struct {
		name        string
		change      UserChange
		wantHash    string
		wantAdmin   bool
		wantBlocked bool
		wantVersion int64 // a new password or blocking ends sessions
	}{
		{"nothing", UserChange{}, "", false, false, 0},
		{"password", UserChange{PasswordHash: &hash}, hash, false, false, 1},
		{"admin keeps password and sessions", UserChange{Admin: &yes}, hash, true, false, 1},
		{"both", UserChange{PasswordHash: new(string), Admin: &no}, "", false, false, 2},
		{"block", UserChange{Blocked: &yes}, "", false, true, 3},
		{"blocking again", UserChange{Blocked: &yes}, "", false, true, 4},
		{"unblock", UserChange{Blocked: &no}, "", false, false, 4},
	} {
		if err := s.UpdateUser(ctx, u.ID, c.change); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		got, err := s.UserByID(ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.PasswordHash != c.wantHash || got.Admin != c.wantAdmin || got.Blocked != c.wantBlocked || got.CredentialVersion != c.wantVersion {
			t.Errorf("%s: hash %q admin %v blocked %v version %d, want %q %v %v %d", c.name,
				got.PasswordHash, got.Admin, got.Blocked, got.CredentialVersion, c.wantHash, c.wantAdmin, c.wantBlocked, c.wantVersion)
		}
	}
	if err := s.SetUserPassword(ctx, u.ID, hash); err != nil {
		t.Fatal(err)
	}
	if got, err := s.UserByUsername(ctx, "alice"); err != nil || got.CredentialVersion != 5 {
		t.Errorf("after SetUserPassword: %+v, %v; want version 5", got, err)
	}
	// Another user's version does not move.
	bob := mustUser(t, s, "bob")
	if err := s.UpdateUser(ctx, u.ID, UserChange{PasswordHash: &hash}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.UserByID(ctx, bob.ID); err != nil || got.CredentialVersion != 0 {
		t.Errorf("bob after alice's change: %+v, %v", got, err)
	}
	wantErrIs(t, "UpdateUser(unknown)", s.UpdateUser(ctx, 999, UserChange{Admin: &yes}), ErrNotFound)
}

func contractMembershipsOfUser(t *testing.T, s *Store) {
	ctx := t.Context()
	a, b := mustGroup(t, s, "a"), mustGroup(t, s, "b")
	mustGroup(t, s, "c")
	u, other := mustUser(t, s, "alice"), mustUser(t, s, "bob")
	mustMember(t, s, a, u, RoleGuest)
	mustMember(t, s, b, u, RoleOwner)
	mustMember(t, s, a, other, RoleOwner)
	ms, err := s.MembershipsOfUser(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	got := map[int64]Role{}
	for _, m := range ms {
		if m.UserID != u.ID {
			t.Errorf("membership of user %d returned for %d", m.UserID, u.ID)
		}
		got[m.GroupID] = m.Role
	}
	if len(got) != 2 || got[a.ID] != RoleGuest || got[b.ID] != RoleOwner {
		t.Errorf("memberships = %v, want a: guest, b: owner", got)
	}
	if ms, err := s.MembershipsOfUser(ctx, 999); err != nil || len(ms) != 0 {
		t.Errorf("unknown user: %v, %v; want none", ms, err)
	}
}

func contractPurgeGroupCacheCounted(t *testing.T, s *Store) {
	// Batches of 1 and 2 cross batch boundaries (two manifests and two
	// blob references of the group, one of each in another).
	for _, batch := range []int{purgeBatch, 1, 2} {
		t.Run(fmt.Sprintf("batches of %d", batch), func(t *testing.T) {
			purgeGroupCacheCountedIn(t, s, batch)
		})
	}
}

func purgeGroupCacheCountedIn(t *testing.T, s *Store, batch int) {
	ctx := t.Context()
	g, other := mustGroup(t, s, fmt.Sprintf("g%d", batch)), mustGroup(t, s, fmt.Sprintf("other%d", batch))
	for _, m := range []Manifest{testManifest(g.ID, "library/a", "v1", "1234"), testManifest(g.ID, "library/a", "v2", "123456"),
		testManifest(other.ID, "library/a", "v1", "xx")} {
		if _, err := s.PutManifest(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range []Blob{{OwnerID: g.ID, Digest: digestOf("1"), Size: 100}, {OwnerID: g.ID, Digest: digestOf("2"), Size: 50},
		{OwnerID: other.ID, Digest: digestOf("1"), Size: 100}} {
		if err := s.PutBlob(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	p, err := s.purgeGroupCacheCounted(ctx, g.ID, batch)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(p.Blobs)
	want := []oci.Digest{digestOf("1"), digestOf("2")}
	slices.Sort(want)
	if p.Manifests != 2 || p.Bytes != 4+6+100+50 || !slices.Equal(p.Blobs, want) {
		t.Errorf("purged = %+v, want 2 manifests, 160 bytes, blobs %v", p, want)
	}
	if u, _ := s.GroupUsage(ctx, g.ID); u != (Usage{}) {
		t.Errorf("group usage after purge = %+v, want empty", u)
	}
	if u, _ := s.GroupUsage(ctx, other.ID); u.Manifests != 1 || u.Blobs != 1 {
		t.Errorf("other group's usage = %+v, want untouched", u)
	}
	if p, err := s.PurgeGroupCacheCounted(ctx, g.ID); err != nil || p.Manifests != 0 || len(p.Blobs) != 0 || p.Bytes != 0 {
		t.Errorf("second purge = %+v, %v; want nothing", p, err)
	}
}

func contractBlobsOfGroupNewest(t *testing.T, s *Store) {
	ctx := t.Context()
	g := mustGroup(t, s, "g")
	// Five blobs: two share a creation time, times have varying fractions.
	times := []time.Time{t0, t0.Add(time.Second), t0.Add(time.Second), t0.Add(1500 * time.Millisecond), t0.Add(2*time.Second + time.Microsecond)}
	var want []oci.Digest
	for i, at := range times {
		d := digestOf(string(rune('a' + i)))
		if err := s.PutBlob(ctx, Blob{OwnerID: g.ID, Digest: d, Size: 1, CreatedAt: at, ReadAt: at}); err != nil {
			t.Fatal(err)
		}
	}
	all, err := s.BlobsOfGroupNewest(ctx, g.ID, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range all {
		want = append(want, b.Digest)
	}
	if len(all) != 5 {
		t.Fatalf("%d blobs, want 5", len(all))
	}
	for i := 1; i < len(all); i++ {
		a, b := all[i-1], all[i]
		if a.CreatedAt.Before(b.CreatedAt) || (a.CreatedAt.Equal(b.CreatedAt) && a.Digest > b.Digest) {
			t.Errorf("blob %d (%s %s) before blob %d (%s %s): not newest first", i-1, a.CreatedAt, a.Digest, i, b.CreatedAt, b.Digest)
		}
	}
	for _, size := range []int{1, 2, 3} {
		var got []oci.Digest
		var after *BlobCursor
		for range 10 {
			page, err := s.BlobsOfGroupNewest(ctx, g.ID, after, size)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			for _, b := range page {
				got = append(got, b.Digest)
			}
			last := page[len(page)-1]
			after = &BlobCursor{CreatedAt: last.CreatedAt, Digest: last.Digest}
		}
		if !slices.Equal(got, want) {
			t.Errorf("pages of %d: %v, want %v", size, got, want)
		}
	}
}

func contractNextTokenNumber(t *testing.T, s *Store) {
	ctx := t.Context()
	n, err := s.NextTokenNumber(ctx)
	if err != nil || n != 1 {
		t.Fatalf("NextTokenNumber on an empty store = %d, %v; want 1", n, err)
	}
	u := mustUser(t, s, "alice")
	tok, err := s.CreateToken(ctx, Token{Kind: TokenPersonal, Name: "x", UserID: u.ID, Scopes: []string{"api"}, Hash: hashOf("x")})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := s.NextTokenNumber(ctx); err != nil || n != tok.ID+1 {
		t.Errorf("NextTokenNumber = %d, %v; want %d", n, err, tok.ID+1)
	}
}
