package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dproxy/dproxy/internal/oci"
)

// runStoreContract is the behaviour every backend must have. open returns a
// new, empty, migrated store that lives until the test ends.
func runStoreContract(t *testing.T, open func(t *testing.T) *Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s *Store)
	}{
		{"Ping", contractPing},
		{"Users", contractUsers},
		{"DeleteUser", contractDeleteUser},
		{"Groups", contractGroups},
		{"CreateGroupValidation", contractCreateGroupValidation},
		{"CreateGroupRace", contractCreateGroupRace},
		{"Members", contractMembers},
		{"EffectiveRole", contractEffectiveRole},
		{"IsAncestorOrSelf", contractIsAncestorOrSelf},
		{"Tokens", contractTokens},
		{"TokenErrors", contractTokenErrors},
		{"ProxySetting", contractProxySetting},
		{"SealedSecretBoundToRow", contractSealedSecretBoundToRow},
		{"TTLPolicy", contractTTLPolicy},
		{"ChangeProxySetting", contractChangeProxySetting},
		{"ChangeSettingsConcurrently", contractChangeSettingsConcurrently},
		{"ChangeTTLPolicy", contractChangeTTLPolicy},
		{"DefaultHubCredentials", contractDefaultHubCredentials},
		{"InstanceValue", contractInstanceValue},
		{"AuthGeneration", contractAuthGeneration},
		{"BlobRefGeneration", contractBlobRefGeneration},
		{"Manifests", contractManifests},
		{"ManifestUpsert", contractManifestUpsert},
		{"ManifestErrors", contractManifestErrors},
		{"TouchManifests", contractTouchManifests},
		{"ManifestsOfGroup", contractManifestsOfGroup},
		{"ImageSizes", contractImageSizes},
		{"ImageSizeBackfill", contractImageSizeBackfill},
		{"Blobs", contractBlobs},
		{"TouchBlobs", contractTouchBlobs},
		{"BlobReferenced", contractBlobReferenced},
		{"PutBlobUnpurged", contractPutBlobUnpurged},
		{"UnreferencedSince", contractUnreferencedSince},
		{"FetchLease", contractFetchLease},
		{"UsageAndPurge", contractUsageAndPurge},
		{"BatchedReads", contractBatchedReads},
		{"ExpireGroupCache", contractExpireGroupCache},
		{"DeleteGroupCascades", contractDeleteGroupCascades},
		{"TimesAreUTC", contractTimesAreUTC},
		{"Concurrency", contractConcurrency},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, open(t))
		})
	}
}

// Fixtures.

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC)

func mustUser(t *testing.T, s *Store, name string) User {
	t.Helper()
	u, err := s.CreateUser(t.Context(), User{Username: name})
	if err != nil {
		t.Fatalf("CreateUser(%q): %v", name, err)
	}
	return u
}

func mustGroup(t *testing.T, s *Store, path string) Group {
	t.Helper()
	g, err := s.CreateGroup(t.Context(), path)
	if err != nil {
		t.Fatalf("CreateGroup(%q): %v", path, err)
	}
	return g
}

func mustMember(t *testing.T, s *Store, g Group, u User, r Role) {
	t.Helper()
	if err := s.SetMember(t.Context(), g.ID, u.ID, r); err != nil {
		t.Fatalf("SetMember(%s, %s, %s): %v", g.Path, u.Username, r, err)
	}
}

func hashOf(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

func digestOf(s string) oci.Digest { return oci.FromBytes([]byte(s)) }

func wantErrIs(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: error = %v, want one wrapping %v", what, err, target)
	}
}

func testManifest(groupID int64, image, ref, content string) Manifest {
	return Manifest{
		OwnerID: groupID, Image: image, Reference: ref,
		Digest: digestOf(content), MediaType: "application/vnd.oci.image.manifest.v1+json",
		Content: []byte(content), ETag: `"` + digestOf(content).String() + `"`,
	}
}

// Contract cases.

func contractPing(t *testing.T, s *Store) {
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Ping(ctx); err == nil {
		t.Error("Ping with a cancelled context succeeded")
	}
}

func contractUsers(t *testing.T, s *Store) {
	ctx := t.Context()
	if n, err := s.CountUsers(ctx); err != nil || n != 0 {
		t.Fatalf("CountUsers on an empty store = %d, %v; want 0, nil", n, err)
	}
	before := time.Now().Add(-time.Second)
	alice, err := s.CreateUser(ctx, User{Username: "alice", PasswordHash: "$2a$hash", Admin: true})
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	if alice.ID == 0 || alice.CreatedAt.Before(before) || alice.CreatedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("created user = %+v, want an ID and CreatedAt of now", alice)
	}
	bob, err := s.CreateUser(ctx, User{Username: "bob", CreatedAt: t0})
	if err != nil {
		t.Fatalf("CreateUser(bob): %v", err)
	}
	if !bob.CreatedAt.Equal(t0) || bob.ID == alice.ID {
		t.Errorf("bob = %+v, want CreatedAt %v and a new ID", bob, t0)
	}

	_, err = s.CreateUser(ctx, User{Username: "alice"})
	wantErrIs(t, "CreateUser(duplicate)", err, ErrConflict)
	if err != nil && !strings.Contains(err.Error(), "alice") {
		t.Errorf("conflict error %q does not name the username", err)
	}
	if _, err := s.CreateUser(ctx, User{Username: " "}); err == nil {
		t.Error("CreateUser with a blank username succeeded")
	}

	got, err := s.UserByID(ctx, alice.ID)
	if err != nil || got != alice {
		t.Errorf("UserByID = %+v, %v; want %+v", got, err, alice)
	}
	got, err = s.UserByUsername(ctx, "bob")
	if err != nil || got != bob {
		t.Errorf("UserByUsername = %+v, %v; want %+v", got, err, bob)
	}
	_, err = s.UserByID(ctx, 9999)
	wantErrIs(t, "UserByID(unknown)", err, ErrNotFound)
	_, err = s.UserByUsername(ctx, "Alice")
	wantErrIs(t, "UserByUsername(other case)", err, ErrNotFound)

	if n, err := s.CountUsers(ctx); err != nil || n != 2 {
		t.Errorf("CountUsers = %d, %v; want 2", n, err)
	}
	all, err := s.Users(ctx)
	if err != nil || len(all) != 2 || all[0].Username != "alice" || all[1].Username != "bob" {
		t.Errorf("Users = %+v, %v; want alice, bob", all, err)
	}

	if err := s.SetUserPassword(ctx, bob.ID, "$2a$new"); err != nil {
		t.Fatalf("SetUserPassword: %v", err)
	}
	if got, _ := s.UserByID(ctx, bob.ID); got.PasswordHash != "$2a$new" {
		t.Errorf("password hash = %q after SetUserPassword", got.PasswordHash)
	}
	wantErrIs(t, "SetUserPassword(unknown)", s.SetUserPassword(ctx, 9999, "x"), ErrNotFound)
}

func contractDeleteUser(t *testing.T, s *Store) {
	ctx := t.Context()
	u := mustUser(t, s, "alice")
	g := mustGroup(t, s, "acme")
	mustMember(t, s, g, u, RoleOwner)
	tok, err := s.CreateToken(ctx, Token{Kind: TokenPersonal, Name: "t", UserID: u.ID, Hash: hashOf("a")})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser(ctx, u.ID); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	_, err = s.UserByID(ctx, u.ID)
	wantErrIs(t, "UserByID after delete", err, ErrNotFound)
	_, err = s.TokenByID(ctx, tok.ID)
	wantErrIs(t, "TokenByID after deleting its user", err, ErrNotFound)
	if m, err := s.Members(ctx, g.ID); err != nil || len(m) != 0 {
		t.Errorf("Members after deleting the user = %+v, %v; want none", m, err)
	}
	wantErrIs(t, "DeleteUser(again)", s.DeleteUser(ctx, u.ID), ErrNotFound)
}

func contractGroups(t *testing.T, s *Store) {
	ctx := t.Context()
	a := mustGroup(t, s, "acme")
	if a.ID == 0 || a.ParentID != 0 || a.Path != "acme" || a.CreatedAt.IsZero() {
		t.Errorf("top-level group = %+v", a)
	}
	b := mustGroup(t, s, "acme/platform")
	c := mustGroup(t, s, "acme/platform/ci")
	if b.ParentID != a.ID || c.ParentID != b.ID {
		t.Errorf("parents: b.ParentID = %d (want %d), c.ParentID = %d (want %d)", b.ParentID, a.ID, c.ParentID, b.ID)
	}

	_, err := s.CreateGroup(ctx, "acme/platform")
	wantErrIs(t, "CreateGroup(taken)", err, ErrConflict)

	_, err = s.CreateGroup(ctx, "acme/missing/child")
	wantErrIs(t, "CreateGroup(missing parent)", err, ErrNotFound)
	if err != nil && !strings.Contains(err.Error(), `"acme/missing"`) {
		t.Errorf("missing-parent error %q does not name the parent", err)
	}
	if _, err := s.GroupByPath(ctx, "acme/missing/child"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a group whose parent was missing exists: %v", err)
	}

	for _, g := range []Group{a, b, c} {
		got, err := s.GroupByPath(ctx, g.Path)
		if err != nil || got != g {
			t.Errorf("GroupByPath(%q) = %+v, %v; want %+v", g.Path, got, err, g)
		}
		got, err = s.GroupByID(ctx, g.ID)
		if err != nil || got != g {
			t.Errorf("GroupByID(%d) = %+v, %v; want %+v", g.ID, got, err, g)
		}
	}
	_, err = s.GroupByPath(ctx, "nope")
	wantErrIs(t, "GroupByPath(unknown)", err, ErrNotFound)
	_, err = s.GroupByID(ctx, 9999)
	wantErrIs(t, "GroupByID(unknown)", err, ErrNotFound)

	// Settings are created with the group.
	p, err := s.ProxySetting(ctx, c.ID)
	if err != nil || !p.Enabled || p.Identity != "" || p.Secret != "" || p.FreshnessWindow != 0 || p.AllowAnonymousPull || p.AnonymousPullsUseCredentials {
		t.Errorf("new group's proxy setting = %+v, %v; want enabled and empty", p, err)
	}
	ttl, err := s.TTLPolicy(ctx, c.ID)
	if err != nil || !ttl.Enabled || ttl.TTLDays != 90 || ttl.CreatedAt.IsZero() {
		t.Errorf("new group's ttl policy = %+v, %v; want enabled, 90 days", ttl, err)
	}

	mustGroup(t, s, "aaa")
	all, err := s.Groups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, g := range all {
		paths = append(paths, g.Path)
	}
	if want := []string{"aaa", "acme", "acme/platform", "acme/platform/ci"}; !slices.Equal(paths, want) {
		t.Errorf("Groups = %v, want %v", paths, want)
	}
}

func contractCreateGroupValidation(t *testing.T, s *Store) {
	for _, path := range []string{"", "/acme", "acme/", "acme//ci"} {
		if _, err := s.CreateGroup(t.Context(), path); err == nil {
			t.Errorf("CreateGroup(%q) succeeded, want an error", path)
		}
	}
}

func contractCreateGroupRace(t *testing.T, s *Store) {
	mustGroup(t, s, "acme")
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { _, errs[i] = s.CreateGroup(t.Context(), "acme/ci") })
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, ErrConflict):
			t.Errorf("concurrent CreateGroup: %v, want success or ErrConflict", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d concurrent creates of one path succeeded, want exactly 1", ok)
	}
}

func contractMembers(t *testing.T, s *Store) {
	ctx := t.Context()
	g := mustGroup(t, s, "acme")
	alice, bob := mustUser(t, s, "alice"), mustUser(t, s, "bob")
	mustMember(t, s, g, bob, RoleDeveloper)
	mustMember(t, s, g, alice, RoleGuest)
	mustMember(t, s, g, alice, RoleMaintainer) // upsert

	m, err := s.Members(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 2 || m[0].Username != "alice" || m[0].Role != RoleMaintainer || m[1].Username != "bob" ||
		m[1].Role != RoleDeveloper || m[0].GroupID != g.ID || m[0].UserID != alice.ID {
		t.Errorf("Members = %+v, want alice maintainer, bob developer", m)
	}

	if err := s.RemoveMember(ctx, g.ID, bob.ID); err != nil {
		t.Fatalf("RemoveMember: %v", err)
	}
	if r, _ := s.EffectiveRole(ctx, bob.ID, g.ID); r != RoleNone {
		t.Errorf("role after RemoveMember = %s, want none", r)
	}
	wantErrIs(t, "RemoveMember(not a member)", s.RemoveMember(ctx, g.ID, bob.ID), ErrNotFound)

	wantErrIs(t, "SetMember(unknown user)", s.SetMember(ctx, g.ID, 9999, RoleGuest), ErrNotFound)
	wantErrIs(t, "SetMember(unknown group)", s.SetMember(ctx, 9999, alice.ID, RoleGuest), ErrNotFound)
	for _, r := range []Role{RoleNone, Role(7), Role(60)} {
		if err := s.SetMember(ctx, g.ID, alice.ID, r); err == nil {
			t.Errorf("SetMember with role %d succeeded", r)
		}
	}
	if r, _ := s.EffectiveRole(ctx, alice.ID, g.ID); r != RoleMaintainer {
		t.Errorf("a rejected SetMember changed the role to %s", r)
	}
}

func contractEffectiveRole(t *testing.T, s *Store) {
	ctx := t.Context()
	a := mustGroup(t, s, "a")
	b := mustGroup(t, s, "a/b")
	c := mustGroup(t, s, "a/b/c")
	x := mustGroup(t, s, "a/x")
	other := mustGroup(t, s, "other")
	top, mid, low, minimal, nobody := mustUser(t, s, "top"), mustUser(t, s, "mid"), mustUser(t, s, "low"),
		mustUser(t, s, "minimal"), mustUser(t, s, "nobody")

	mustMember(t, s, a, top, RoleGuest)
	mustMember(t, s, b, top, RoleMaintainer) // higher in a subgroup
	mustMember(t, s, b, mid, RoleDeveloper)
	mustMember(t, s, a, low, RoleOwner)
	mustMember(t, s, c, low, RoleReporter) // lower in a subgroup: the ancestor's owner wins
	mustMember(t, s, a, minimal, RoleMinimalAccess)
	mustMember(t, s, c, minimal, RoleGuest)

	tests := []struct {
		user  User
		group Group
		want  Role
	}{
		{top, a, RoleGuest},
		{top, b, RoleMaintainer},
		{top, c, RoleMaintainer},
		{top, x, RoleGuest},
		{top, other, RoleNone},
		{mid, a, RoleNone},
		{mid, b, RoleDeveloper},
		{mid, c, RoleDeveloper},
		{mid, x, RoleNone},
		{low, c, RoleOwner},
		{low, x, RoleOwner},
		{minimal, a, RoleMinimalAccess},
		{minimal, b, RoleMinimalAccess},
		{minimal, c, RoleGuest},
		{nobody, c, RoleNone},
		{top, Group{ID: 9999, Path: "unknown"}, RoleNone},
	}
	for _, tt := range tests {
		got, err := s.EffectiveRole(ctx, tt.user.ID, tt.group.ID)
		if err != nil || got != tt.want {
			t.Errorf("EffectiveRole(%s, %s) = %s, %v; want %s", tt.user.Username, tt.group.Path, got, err, tt.want)
		}
	}
}

func contractIsAncestorOrSelf(t *testing.T, s *Store) {
	ctx := t.Context()
	a := mustGroup(t, s, "a")
	b := mustGroup(t, s, "a/b")
	c := mustGroup(t, s, "a/b/c")
	x := mustGroup(t, s, "a/x")
	ab := mustGroup(t, s, "ab") // a path prefix, not a parent
	tests := []struct {
		ancestor, group Group
		want            bool
	}{
		{a, a, true},
		{a, b, true},
		{a, c, true},
		{b, c, true},
		{c, c, true},
		{a, x, true},
		{b, x, false},
		{c, b, false},
		{b, a, false},
		{a, ab, false},
		{ab, a, false},
		{a, Group{ID: 9999, Path: "unknown"}, false},
		{Group{ID: 9999, Path: "unknown"}, a, false},
	}
	for _, tt := range tests {
		got, err := s.IsAncestorOrSelf(ctx, tt.ancestor.ID, tt.group.ID)
		if err != nil || got != tt.want {
			t.Errorf("IsAncestorOrSelf(%s, %s) = %v, %v; want %v", tt.ancestor.Path, tt.group.Path, got, err, tt.want)
		}
	}
}

func contractTokens(t *testing.T, s *Store) {
	ctx := t.Context()
	u := mustUser(t, s, "alice")
	g := mustGroup(t, s, "acme")
	exp := t0.Add(30 * 24 * time.Hour)
	in := []Token{
		{Kind: TokenPersonal, Name: "laptop", UserID: u.ID, Scopes: []string{"api", "read_registry"}, Hash: hashOf("p"), ExpiresAt: &exp},
		{Kind: TokenGroup, Name: "ci", GroupID: g.ID, Role: RoleReporter, Scopes: []string{"read_registry"}, Hash: hashOf("g"), CreatedAt: t0},
		{Kind: TokenDeploy, Name: "deploy", GroupID: g.ID, Username: "gitlab+deploy-token-1", Scopes: []string{"read_registry"}, Hash: hashOf("d")},
		{Kind: TokenPersonal, Name: "no scopes", UserID: u.ID, Hash: hashOf("n")},
	}
	for _, want := range in {
		got, err := s.CreateToken(ctx, want)
		if err != nil {
			t.Fatalf("CreateToken(%s): %v", want.Name, err)
		}
		if got.ID == 0 || got.CreatedAt.IsZero() || got.LastUsedAt != nil || got.RevokedAt != nil {
			t.Errorf("CreateToken(%s) = %+v", want.Name, got)
		}
		byHash, err := s.TokenByHash(ctx, want.Hash)
		if err != nil {
			t.Fatalf("TokenByHash(%s): %v", want.Name, err)
		}
		if !tokensEqual(byHash, got) {
			t.Errorf("TokenByHash(%s) = %+v, want %+v", want.Name, byHash, got)
		}
		if byHash.Kind != want.Kind || byHash.Name != want.Name || byHash.UserID != want.UserID ||
			byHash.GroupID != want.GroupID || byHash.Username != want.Username || byHash.Role != want.Role ||
			!slices.Equal(byHash.Scopes, want.Scopes) || !bytes.Equal(byHash.Hash, want.Hash) ||
			!timePtrEqual(byHash.ExpiresAt, want.ExpiresAt) {
			t.Errorf("stored token %+v differs from the input %+v", byHash, want)
		}
		if !want.CreatedAt.IsZero() && !byHash.CreatedAt.Equal(want.CreatedAt) {
			t.Errorf("CreatedAt = %v, want %v", byHash.CreatedAt, want.CreatedAt)
		}
		byID, err := s.TokenByID(ctx, got.ID)
		if err != nil || !tokensEqual(byID, got) {
			t.Errorf("TokenByID(%d) = %+v, %v; want %+v", got.ID, byID, err, got)
		}
	}

	_, err := s.TokenByHash(ctx, hashOf("unknown"))
	wantErrIs(t, "TokenByHash(unknown)", err, ErrNotFound)
	_, err = s.TokenByID(ctx, 9999)
	wantErrIs(t, "TokenByID(unknown)", err, ErrNotFound)

	personal, _ := s.TokenByHash(ctx, hashOf("p"))
	used := t0.Add(time.Hour)
	if err := s.TouchToken(ctx, personal.ID, used); err != nil {
		t.Fatalf("TouchToken: %v", err)
	}
	revoked := t0.Add(2 * time.Hour)
	if err := s.RevokeToken(ctx, personal.ID, revoked); err != nil {
		t.Fatalf("RevokeToken: %v", err)
	}
	if err := s.RevokeToken(ctx, personal.ID, revoked.Add(time.Hour)); err != nil {
		t.Fatalf("RevokeToken(again): %v", err)
	}
	got, err := s.TokenByID(ctx, personal.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !timePtrEqual(got.LastUsedAt, &used) || !timePtrEqual(got.RevokedAt, &revoked) {
		t.Errorf("after touch and revoke: last used %v (want %v), revoked %v (want the first revocation %v)",
			got.LastUsedAt, used, got.RevokedAt, revoked)
	}
	wantErrIs(t, "RevokeToken(unknown)", s.RevokeToken(ctx, 9999, t0), ErrNotFound)
	wantErrIs(t, "TouchToken(unknown)", s.TouchToken(ctx, 9999, t0), ErrNotFound)

	ofUser, err := s.TokensOfUser(ctx, u.ID)
	if err != nil || len(ofUser) != 2 || ofUser[0].Name != "laptop" || ofUser[1].Name != "no scopes" {
		t.Errorf("TokensOfUser = %+v, %v", ofUser, err)
	}
	ofGroup, err := s.TokensOfGroup(ctx, g.ID)
	if err != nil || len(ofGroup) != 2 || ofGroup[0].Kind != TokenGroup || ofGroup[1].Kind != TokenDeploy {
		t.Errorf("TokensOfGroup = %+v, %v", ofGroup, err)
	}
}

func tokensEqual(a, b Token) bool {
	return a.ID == b.ID && a.Kind == b.Kind && a.Name == b.Name && a.UserID == b.UserID && a.GroupID == b.GroupID &&
		a.Username == b.Username && a.Role == b.Role && slices.Equal(a.Scopes, b.Scopes) && bytes.Equal(a.Hash, b.Hash) &&
		timePtrEqual(a.ExpiresAt, b.ExpiresAt) && timePtrEqual(a.RevokedAt, b.RevokedAt) &&
		a.CreatedAt.Equal(b.CreatedAt) && timePtrEqual(a.LastUsedAt, b.LastUsedAt)
}

func timePtrEqual(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}

func contractTokenErrors(t *testing.T, s *Store) {
	ctx := t.Context()
	u := mustUser(t, s, "alice")
	g := mustGroup(t, s, "acme")
	if _, err := s.CreateToken(ctx, Token{Kind: TokenPersonal, Name: "a", UserID: u.ID, Hash: hashOf("x")}); err != nil {
		t.Fatal(err)
	}
	_, err := s.CreateToken(ctx, Token{Kind: TokenDeploy, Name: "dup", GroupID: g.ID, Username: "d", Hash: hashOf("x")})
	wantErrIs(t, "CreateToken(duplicate hash)", err, ErrConflict)
	_, err = s.CreateToken(ctx, Token{Kind: TokenPersonal, Name: "ghost", UserID: 9999, Hash: hashOf("y")})
	wantErrIs(t, "CreateToken(unknown user)", err, ErrNotFound)
	_, err = s.CreateToken(ctx, Token{Kind: TokenGroup, Name: "ghost", GroupID: 9999, Hash: hashOf("z")})
	wantErrIs(t, "CreateToken(unknown group)", err, ErrNotFound)

	invalid := []Token{
		{Kind: "robot", Name: "k", UserID: u.ID, Hash: hashOf("1")},
		{Kind: TokenPersonal, Name: "no user", GroupID: g.ID, Hash: hashOf("2")},
		{Kind: TokenGroup, Name: "no group", UserID: u.ID, Hash: hashOf("3")},
		{Kind: TokenDeploy, Name: "no username", GroupID: g.ID, Hash: hashOf("4")},
		{Kind: TokenPersonal, Name: "no hash", UserID: u.ID},
		{Kind: TokenPersonal, Name: "comma", UserID: u.ID, Scopes: []string{"api,read_registry"}, Hash: hashOf("5")},
	}
	for _, tok := range invalid {
		if _, err := s.CreateToken(ctx, tok); err == nil {
			t.Errorf("CreateToken(%s) succeeded, want an error", tok.Name)
		}
	}
}

func contractProxySetting(t *testing.T, s *Store) {
	ctx := t.Context()
	g := mustGroup(t, s, "acme")
	want := ProxySetting{
		GroupID: g.ID, Enabled: false, Identity: "acme-bot", Secret: "dckr_pat_s3cret",
		FreshnessWindow: 5*time.Minute + 250*time.Millisecond, AllowAnonymousPull: true, AnonymousPullsUseCredentials: true,
		UpdatedAt: t0,
	}
	if err := s.UpdateProxySetting(ctx, want); err != nil {
		t.Fatalf("UpdateProxySetting: %v", err)
	}
	got, err := s.ProxySetting(ctx, g.ID)
	if err != nil || got != want {
		t.Errorf("ProxySetting = %+v, %v; want %+v", got, err, want)
	}

	// The secret is sealed in the database.
	var sealed []byte
	if err := s.r.QueryRowContext(ctx, `SELECT secret_sealed FROM dependency_proxy_settings WHERE group_id = $1`, g.ID).Scan(&sealed); err != nil {
		t.Fatal(err)
	}
	if len(sealed) == 0 || bytes.Contains(sealed, []byte(want.Secret)) {
		t.Errorf("stored secret column = %q, want a sealed value without the plaintext", sealed)
	}

	// An empty secret clears it.
	want.Secret, want.Identity, want.AnonymousPullsUseCredentials, want.UpdatedAt = "", "", false, time.Time{}
	if err := s.UpdateProxySetting(ctx, want); err != nil {
		t.Fatal(err)
	}
	got, err = s.ProxySetting(ctx, g.ID)
	if err != nil || got.Secret != "" || got.Identity != "" || got.AnonymousPullsUseCredentials || got.UpdatedAt.Before(t0.Add(time.Hour)) {
		t.Errorf("after clearing: %+v, %v; want no secret and UpdatedAt of now", got, err)
	}

	_, err = s.ProxySetting(ctx, 9999)
	wantErrIs(t, "ProxySetting(unknown group)", err, ErrNotFound)
	wantErrIs(t, "UpdateProxySetting(unknown group)", s.UpdateProxySetting(ctx, ProxySetting{GroupID: 9999, Secret: "x"}), ErrNotFound)
	if err := s.UpdateProxySetting(ctx, ProxySetting{GroupID: g.ID, FreshnessWindow: -time.Second}); err == nil {
		t.Error("UpdateProxySetting with a negative freshness window succeeded")
	}
}

func contractSealedSecretBoundToRow(t *testing.T, s *Store) {
	ctx := t.Context()
	a, b := mustGroup(t, s, "a"), mustGroup(t, s, "b")
	if err := s.UpdateProxySetting(ctx, ProxySetting{GroupID: a.ID, Enabled: true, Identity: "x", Secret: "secret-of-a"}); err != nil {
		t.Fatal(err)
	}
	// Someone with database access copies a's sealed secret into b's row.
	if _, err := s.w.ExecContext(ctx,
		`UPDATE dependency_proxy_settings SET secret_sealed = (SELECT secret_sealed FROM dependency_proxy_settings WHERE group_id = $1) WHERE group_id = $2`,
		a.ID, b.ID); err != nil {
		t.Fatal(err)
	}
	if p, err := s.ProxySetting(ctx, b.ID); err == nil {
		t.Errorf("a secret copied to another group's row opened: %q", p.Secret)
	}
	if p, err := s.ProxySetting(ctx, a.ID); err != nil || p.Secret != "secret-of-a" {
		t.Errorf("ProxySetting(a) = %+v, %v", p, err)
	}
}

func contractTTLPolicy(t *testing.T, s *Store) {
	ctx := t.Context()
	g := mustGroup(t, s, "acme")
	orig, err := s.TTLPolicy(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateTTLPolicy(ctx, TTLPolicy{GroupID: g.ID, Enabled: false, TTLDays: 7, UpdatedAt: t0}); err != nil {
		t.Fatalf("UpdateTTLPolicy: %v", err)
	}
	got, err := s.TTLPolicy(ctx, g.ID)
	want := TTLPolicy{GroupID: g.ID, Enabled: false, TTLDays: 7, CreatedAt: orig.CreatedAt, UpdatedAt: t0}
	if err != nil || got != want {
		t.Errorf("TTLPolicy = %+v, %v; want %+v (CreatedAt kept)", got, err, want)
	}
	_, err = s.TTLPolicy(ctx, 9999)
	wantErrIs(t, "TTLPolicy(unknown group)", err, ErrNotFound)
	wantErrIs(t, "UpdateTTLPolicy(unknown group)", s.UpdateTTLPolicy(ctx, TTLPolicy{GroupID: 9999, TTLDays: 1}), ErrNotFound)
	if err := s.UpdateTTLPolicy(ctx, TTLPolicy{GroupID: g.ID, TTLDays: -1}); err == nil {
		t.Error("UpdateTTLPolicy with negative days succeeded")
	}
}

func contractDefaultHubCredentials(t *testing.T, s *Store) {
	ctx := t.Context()
	if c, err := s.DefaultHubCredentials(ctx); err != nil || c != (HubCredentials{}) {
		t.Fatalf("DefaultHubCredentials when unset = %+v, %v; want zero, nil", c, err)
	}
	for _, want := range []HubCredentials{
		{Identity: "bot", Secret: "first-secret"},
		{Identity: "bot2", Secret: "second-secret"},
		{Identity: "only-identity"},
	} {
		if err := s.SetDefaultHubCredentials(ctx, want); err != nil {
			t.Fatalf("SetDefaultHubCredentials: %v", err)
		}
		if got, err := s.DefaultHubCredentials(ctx); err != nil || got != want {
			t.Errorf("DefaultHubCredentials = %+v, %v; want %+v", got, err, want)
		}
	}
	if err := s.SetDefaultHubCredentials(ctx, HubCredentials{}); err != nil {
		t.Fatalf("clear: %v", err)
	}
	if c, err := s.DefaultHubCredentials(ctx); err != nil || c != (HubCredentials{}) {
		t.Errorf("after clearing = %+v, %v; want zero", c, err)
	}
	if err := s.SetInstanceValue(ctx, hubCredentialsKey, "x"); err == nil {
		t.Error("SetInstanceValue on the reserved hub credentials key succeeded")
	}
}

// contractAuthGeneration: every change to what authorises a pull moves the
// auth generation; recording a token's use and cache traffic do not.
func contractAuthGeneration(t *testing.T, s *Store) {
	ctx := t.Context()
	gen := func() int64 {
		t.Helper()
		n, err := s.AuthGeneration(ctx)
		if err != nil {
			t.Fatalf("AuthGeneration: %v", err)
		}
		return n
	}
	var u User
	var g, sub Group
	var tok Token
	moves := []struct {
		what   string
		change func() error
	}{
		{"create user", func() (err error) { u, err = s.CreateUser(ctx, User{Username: "alice"}); return err }},
		{"make admin", func() error { admin := true; return s.UpdateUser(ctx, u.ID, UserChange{Admin: &admin}) }},
		{"block", func() error { blocked := true; return s.UpdateUser(ctx, u.ID, UserChange{Blocked: &blocked}) }},
		{"set password", func() error { return s.SetUserPassword(ctx, u.ID, "hash") }},
		{"create group", func() (err error) { g, err = s.CreateGroup(ctx, "acme"); return err }},
		{"create subgroup", func() (err error) { sub, err = s.CreateGroup(ctx, "acme/web"); return err }},
		{"add member", func() error { return s.SetMember(ctx, g.ID, u.ID, RoleReporter) }},
		{"change role", func() error { return s.SetMember(ctx, g.ID, u.ID, RoleOwner) }},
		{"remove member", func() error { return s.RemoveMember(ctx, g.ID, u.ID) }},
		{"create token", func() (err error) {
			tok, err = s.CreateToken(ctx, Token{Kind: TokenPersonal, Name: "ci", UserID: u.ID, Hash: hashOf("t")})
			return err
		}},
		{"revoke token", func() error { return s.RevokeToken(ctx, tok.ID, t0) }},
		{"update proxy setting", func() error {
			return s.UpdateProxySetting(ctx, ProxySetting{GroupID: g.ID, Enabled: false, UpdatedAt: t0})
		}},
		{"set default hub credentials", func() error {
			return s.SetDefaultHubCredentials(ctx, HubCredentials{Identity: "bot", Secret: "s"})
		}},
		{"set instance value", func() error { return s.SetInstanceValue(ctx, "k", "v") }},
		{"delete subgroup", func() error { return s.DeleteGroup(ctx, sub.ID) }},
		{"delete user", func() error { return s.DeleteUser(ctx, u.ID) }},
	}
	for _, m := range moves {
		before := gen()
		if err := m.change(); err != nil {
			t.Fatalf("%s: %v", m.what, err)
		}
		if after := gen(); after <= before {
			t.Errorf("%s: auth generation %d → %d, want it to move", m.what, before, after)
		}
	}

	keeps := []struct {
		what   string
		change func() error
	}{
		{"touch token", func() error { return s.TouchToken(ctx, tok.ID, t0) }},
		{"put manifest", func() error { _, err := s.PutManifest(ctx, testManifest(g.ID, "alpine", "latest", "m")); return err }},
		{"put blob", func() error {
			return s.PutBlob(ctx, Blob{OwnerID: g.ID, Digest: digestOf("b"), Size: 1, CreatedAt: t0, ReadAt: t0})
		}},
	}
	tok, err := s.CreateToken(ctx, Token{Kind: TokenGroup, Name: "g", GroupID: g.ID, Role: RoleReporter, Hash: hashOf("g")})
	if err != nil {
		t.Fatalf("CreateToken: %v", err)
	}
	for _, k := range keeps {
		before := gen()
		if err := k.change(); err != nil {
			t.Fatalf("%s: %v", k.what, err)
		}
		if after := gen(); after != before {
			t.Errorf("%s: auth generation %d → %d, want it unchanged", k.what, before, after)
		}
	}
}

// contractBlobRefGeneration: every removal of a blob reference, however it
// happens, moves the blob-reference generation, in the same read as the
// auth generation; adding references, touching them and auth changes do not.
func contractBlobRefGeneration(t *testing.T, s *Store) {
	ctx := t.Context()
	gen := func() Generations {
		t.Helper()
		g, err := s.Generations(ctx)
		if err != nil {
			t.Fatalf("Generations: %v", err)
		}
		if n, err := s.AuthGeneration(ctx); err != nil || n != g.Auth {
			t.Fatalf("Generations().Auth = %d, AuthGeneration = %d, %v", g.Auth, n, err)
		}
		return g
	}
	g := mustGroup(t, s, "acme")
	sub := mustGroup(t, s, "acme/web")
	put := func(owner int64, name string, size int64) error {
		return s.PutBlob(ctx, Blob{OwnerID: owner, Digest: digestOf(name), Size: size, CreatedAt: t0, ReadAt: t0})
	}
	keeps := []struct {
		what   string
		change func() error
	}{
		{"put blob", func() error { return put(g.ID, "a", 1) }},
		{"put more blobs", func() error {
			for _, n := range []string{"b", "c", "d", "e"} {
				if err := put(g.ID, n, 1); err != nil {
					return err
				}
			}
			return put(sub.ID, "a", 1)
		}},
		{"put blob again, same size", func() error { return put(g.ID, "a", 1) }},
		{"touch blobs", func() error {
			return s.TouchBlobs(ctx, []BlobKey{{OwnerID: g.ID, Digest: digestOf("a")}}, t0.Add(time.Hour))
		}},
		{"delete a reference that does not exist", func() error { return s.DeleteBlob(ctx, g.ID, digestOf("none")) }},
	}
	for _, k := range keeps {
		before := gen()
		if err := k.change(); err != nil {
			t.Fatalf("%s: %v", k.what, err)
		}
		if after := gen(); after.BlobRefs != before.BlobRefs {
			t.Errorf("%s: blob-reference generation %d → %d, want it unchanged", k.what, before.BlobRefs, after.BlobRefs)
		}
	}
	moves := []struct {
		what   string
		change func() error
	}{
		{"delete blob", func() error { return s.DeleteBlob(ctx, g.ID, digestOf("a")) }},
		{"change a reference's size", func() error { return put(g.ID, "b", 2) }},
		{"drop blob", func() error { _, err := s.DropBlob(ctx, digestOf("b")); return err }},
		{"evict blob", func() error { _, err := s.EvictBlob(ctx, digestOf("c"), t0.Add(time.Hour)); return err }},
		{"expire group cache", func() error { _, err := s.ExpireGroupCache(ctx, g.ID, t0.Add(time.Hour)); return err }},
		{"purge group cache", func() error {
			if err := put(g.ID, "f", 1); err != nil {
				return err
			}
			_, err := s.PurgeGroupCache(ctx, g.ID)
			return err
		}},
		{"delete group (its references go with it)", func() error { return s.DeleteGroup(ctx, sub.ID) }},
	}
	for _, m := range moves {
		before := gen()
		if err := m.change(); err != nil {
			t.Fatalf("%s: %v", m.what, err)
		}
		if after := gen(); after.BlobRefs <= before.BlobRefs {
			t.Errorf("%s: blob-reference generation %d → %d, want it to move", m.what, before.BlobRefs, after.BlobRefs)
		}
	}
}

func contractInstanceValue(t *testing.T, s *Store) {
	ctx := t.Context()
	_, err := s.InstanceValue(ctx, "admin_bootstrapped")
	wantErrIs(t, "InstanceValue(unset)", err, ErrNotFound)
	for _, v := range []string{"1", "", "2026-03-01"} {
		if err := s.SetInstanceValue(ctx, "admin_bootstrapped", v); err != nil {
			t.Fatalf("SetInstanceValue(%q): %v", v, err)
		}
		if got, err := s.InstanceValue(ctx, "admin_bootstrapped"); err != nil || got != v {
			t.Errorf("InstanceValue = %q, %v; want %q", got, err, v)
		}
	}
}

func contractManifests(t *testing.T, s *Store) {
	ctx := t.Context()
	g := mustGroup(t, s, "acme")
	// Exact bytes, including ones that are not UTF-8 and a NUL.
	content := append([]byte("{\"schemaVersion\":2,\n  \"x\": \"\xff\xfe\x00\"}"), 0x00, 0x80)
	in := Manifest{
		OwnerID: g.ID, Image: "library/alpine", Reference: "3.20", Digest: oci.FromBytes(content),
		MediaType: "application/vnd.docker.distribution.manifest.v2+json", Content: content,
		ETag: `"etag"`, CreatedAt: t0, UpdatedAt: t0.Add(time.Minute), ReadAt: t0.Add(2 * time.Minute),
	}
	put, err := s.PutManifest(ctx, in)
	if err != nil {
		t.Fatalf("PutManifest: %v", err)
	}
	if put.ID == 0 || put.Status != StatusDefault || put.Size != int64(len(content)) {
		t.Errorf("PutManifest = %+v, want an ID, default status and size %d", put, len(content))
	}
	got, err := s.Manifest(ctx, g.ID, "library/alpine", "3.20")
	if err != nil {
		t.Fatalf("Manifest: %v", err)
	}
	if !bytes.Equal(got.Content, content) {
		t.Errorf("content = %q, want exactly %q", got.Content, content)
	}
	if !manifestsEqual(got, put) {
		t.Errorf("Manifest = %+v, want %+v", got, put)
	}
	if !got.CreatedAt.Equal(t0) || !got.UpdatedAt.Equal(t0.Add(time.Minute)) || !got.ReadAt.Equal(t0.Add(2*time.Minute)) {
		t.Errorf("times = %v %v %v, want the given ones", got.CreatedAt, got.UpdatedAt, got.ReadAt)
	}
	byID, err := s.ManifestByID(ctx, put.ID)
	if err != nil || !manifestsEqual(byID, put) {
		t.Errorf("ManifestByID = %+v, %v", byID, err)
	}

	// The same image under another reference or in another group is another row.
	byDigest := in
	byDigest.Reference = in.Digest.String()
	other, err := s.PutManifest(ctx, byDigest)
	if err != nil || other.ID == put.ID {
		t.Errorf("PutManifest(by digest) = %+v, %v; want a new row", other, err)
	}
	g2 := mustGroup(t, s, "other")
	in2 := in
	in2.OwnerID = g2.ID
	if m, err := s.PutManifest(ctx, in2); err != nil || m.ID == put.ID || m.ID == other.ID {
		t.Errorf("PutManifest(other group) = %+v, %v; want a new row", m, err)
	}

	// Zero times mean now.
	before := time.Now().Add(-time.Second)
	fresh, err := s.PutManifest(ctx, testManifest(g.ID, "library/busybox", "latest", "{}"))
	if err != nil {
		t.Fatal(err)
	}
	for _, ts := range []time.Time{fresh.CreatedAt, fresh.UpdatedAt, fresh.ReadAt} {
		if ts.Before(before) || ts.After(time.Now().Add(time.Second)) {
			t.Errorf("defaulted time %v is not now", ts)
		}
	}

	at := t0.Add(time.Hour)
	if err := s.ConfirmManifest(ctx, put.ID, at); err != nil {
		t.Fatalf("ConfirmManifest: %v", err)
	}
	got, _ = s.Manifest(ctx, g.ID, "library/alpine", "3.20")
	if !got.UpdatedAt.Equal(at) || !got.ReadAt.Equal(put.ReadAt) || !bytes.Equal(got.Content, content) {
		t.Errorf("after ConfirmManifest: updated %v (want %v), read %v (want unchanged)", got.UpdatedAt, at, got.ReadAt)
	}

	if err := s.SetManifestStatus(ctx, put.ID, StatusPendingDestruction); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ManifestByID(ctx, put.ID); got.Status != StatusPendingDestruction {
		t.Errorf("status = %q after SetManifestStatus", got.Status)
	}
	if err := s.SetManifestStatus(ctx, put.ID, "bogus"); err == nil {
		t.Error("SetManifestStatus(bogus) succeeded")
	}

	if err := s.DeleteManifest(ctx, put.ID); err != nil {
		t.Fatalf("DeleteManifest: %v", err)
	}
	_, err = s.Manifest(ctx, g.ID, "library/alpine", "3.20")
	wantErrIs(t, "Manifest after delete", err, ErrNotFound)
	if _, err := s.ManifestByID(ctx, other.ID); err != nil {
		t.Errorf("deleting one manifest removed another: %v", err)
	}
}

func manifestsEqual(a, b Manifest) bool {
	return a.ID == b.ID && a.OwnerID == b.OwnerID && a.Image == b.Image && a.Reference == b.Reference &&
		a.Digest == b.Digest && a.MediaType == b.MediaType && a.Size == b.Size && bytes.Equal(a.Content, b.Content) &&
		a.ETag == b.ETag && a.Status == b.Status && a.CreatedAt.Equal(b.CreatedAt) &&
		a.UpdatedAt.Equal(b.UpdatedAt) && a.ReadAt.Equal(b.ReadAt)
}

func contractManifestUpsert(t *testing.T, s *Store) {
	ctx := t.Context()
	g := mustGroup(t, s, "acme")
	first := testManifest(g.ID, "library/node", "latest", `{"v":1}`)
	first.CreatedAt, first.UpdatedAt, first.ReadAt = t0, t0, t0
	a, err := s.PutManifest(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	second := testManifest(g.ID, "library/node", "latest", `{"v":2, "longer": true}`)
	second.MediaType = "application/vnd.oci.image.index.v1+json"
	second.CreatedAt = t0.Add(time.Hour) // ignored on a replace
	second.UpdatedAt, second.ReadAt = t0.Add(time.Hour), t0.Add(2*time.Hour)
	b, err := s.PutManifest(ctx, second)
	if err != nil {
		t.Fatalf("PutManifest(replace): %v", err)
	}
	if b.ID != a.ID || !b.CreatedAt.Equal(t0) {
		t.Errorf("replace returned ID %d CreatedAt %v; want the original %d and %v", b.ID, b.CreatedAt, a.ID, t0)
	}
	got, err := s.Manifest(ctx, g.ID, "library/node", "latest")
	if err != nil {
		t.Fatal(err)
	}
	if !manifestsEqual(got, b) || string(got.Content) != `{"v":2, "longer": true}` || got.Digest != second.Digest ||
		got.MediaType != second.MediaType || !got.UpdatedAt.Equal(second.UpdatedAt) || !got.ReadAt.Equal(second.ReadAt) {
		t.Errorf("after replace: %+v, want %+v", got, b)
	}
}

func contractManifestErrors(t *testing.T, s *Store) {
	ctx := t.Context()
	_, err := s.Manifest(ctx, 1, "library/alpine", "latest")
	wantErrIs(t, "Manifest(unknown)", err, ErrNotFound)
	_, err = s.ManifestByID(ctx, 9999)
	wantErrIs(t, "ManifestByID(unknown)", err, ErrNotFound)
	_, err = s.PutManifest(ctx, testManifest(9999, "library/alpine", "latest", "{}"))
	wantErrIs(t, "PutManifest(unknown group)", err, ErrNotFound)
	wantErrIs(t, "ConfirmManifest(unknown)", s.ConfirmManifest(ctx, 9999, t0), ErrNotFound)
	wantErrIs(t, "DeleteManifest(unknown)", s.DeleteManifest(ctx, 9999), ErrNotFound)
	wantErrIs(t, "SetManifestStatus(unknown)", s.SetManifestStatus(ctx, 9999, StatusDefault), ErrNotFound)
}

func contractTouchManifests(t *testing.T, s *Store) {
	ctx := t.Context()
	g := mustGroup(t, s, "acme")
	var ids []int64
	for i := range 5 {
		m := testManifest(g.ID, "library/alpine", fmt.Sprint(i), fmt.Sprint(i))
		m.ReadAt = t0
		put, err := s.PutManifest(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, put.ID)
	}
	if err := s.TouchManifests(ctx, nil, t0); err != nil {
		t.Errorf("TouchManifests(empty): %v", err)
	}
	at := t0.Add(24 * time.Hour)
	// A batch touching 3 of 5, plus an id that no longer exists.
	if err := s.TouchManifests(ctx, []int64{ids[0], ids[2], 9999, ids[4]}, at); err != nil {
		t.Fatalf("TouchManifests: %v", err)
	}
	for i, id := range ids {
		m, err := s.ManifestByID(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		want := t0
		if i%2 == 0 {
			want = at
		}
		if !m.ReadAt.Equal(want) {
			t.Errorf("manifest %d ReadAt = %v, want %v", i, m.ReadAt, want)
		}
		if !m.UpdatedAt.Equal(m.CreatedAt) {
			t.Errorf("touch changed UpdatedAt of manifest %d", i)
		}
	}
	// Touching into the past is allowed (read times are what the caller says).
	if err := s.TouchManifests(ctx, ids[:1], t0.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if m, _ := s.ManifestByID(ctx, ids[0]); !m.ReadAt.Equal(t0.Add(-time.Hour)) {
		t.Errorf("ReadAt = %v after touching to an earlier time", m.ReadAt)
	}
}

func contractManifestsOfGroup(t *testing.T, s *Store) {
	ctx := t.Context()
	g, other := mustGroup(t, s, "acme"), mustGroup(t, s, "other")
	var ids []int64
	for i := range 5 {
		m, err := s.PutManifest(ctx, testManifest(g.ID, "library/alpine", fmt.Sprint(i), fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	if _, err := s.PutManifest(ctx, testManifest(other.ID, "library/alpine", "x", "x")); err != nil {
		t.Fatal(err)
	}
	page1, err := s.ManifestsOfGroup(ctx, g.ID, 0, 2)
	if err != nil {
		t.Fatal(err)
	}
	page2, err := s.ManifestsOfGroup(ctx, g.ID, page1[len(page1)-1].ID, 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for _, m := range append(page1, page2...) {
		got = append(got, m.ID)
	}
	want := slices.Clone(ids)
	slices.Reverse(want)
	if len(page1) != 2 || !slices.Equal(got, want) {
		t.Errorf("pages = %v (first page %d rows), want %v newest first", got, len(page1), want)
	}
}

func contractBlobs(t *testing.T, s *Store) {
	ctx := t.Context()
	g := mustGroup(t, s, "acme")
	d := digestOf("layer")
	_, err := s.Blob(ctx, g.ID, d)
	wantErrIs(t, "Blob(unknown)", err, ErrNotFound)

	in := Blob{OwnerID: g.ID, Digest: d, Size: 5, CreatedAt: t0, ReadAt: t0.Add(time.Minute)}
	if err := s.PutBlob(ctx, in); err != nil {
		t.Fatalf("PutBlob: %v", err)
	}
	if got, err := s.Blob(ctx, g.ID, d); err != nil || got != in {
		t.Errorf("Blob = %+v, %v; want %+v", got, err, in)
	}
	// Upsert: CreatedAt kept, the rest replaced.
	if err := s.PutBlob(ctx, Blob{OwnerID: g.ID, Digest: d, Size: 6, CreatedAt: t0.Add(time.Hour), ReadAt: t0.Add(time.Hour)}); err != nil {
		t.Fatalf("PutBlob(again): %v", err)
	}
	want := Blob{OwnerID: g.ID, Digest: d, Size: 6, CreatedAt: t0, ReadAt: t0.Add(time.Hour)}
	if got, err := s.Blob(ctx, g.ID, d); err != nil || got != want {
		t.Errorf("Blob after upsert = %+v, %v; want %+v", got, err, want)
	}
	wantErrIs(t, "PutBlob(unknown group)", s.PutBlob(ctx, Blob{OwnerID: 9999, Digest: d, Size: 1}), ErrNotFound)

	if err := s.DeleteBlob(ctx, g.ID, d); err != nil {
		t.Fatalf("DeleteBlob: %v", err)
	}
	_, err = s.Blob(ctx, g.ID, d)
	wantErrIs(t, "Blob after delete", err, ErrNotFound)
	if err := s.DeleteBlob(ctx, g.ID, d); err != nil {
		t.Errorf("DeleteBlob of a missing reference = %v, want nil (idempotent)", err)
	}

	var digests []oci.Digest
	for i := range 5 {
		dd := digestOf(fmt.Sprint("layer", i))
		digests = append(digests, dd)
		if err := s.PutBlob(ctx, Blob{OwnerID: g.ID, Digest: dd, Size: int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(digests)
	p1, err := s.BlobsOfGroup(ctx, g.ID, "", 3)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := s.BlobsOfGroup(ctx, g.ID, p1[len(p1)-1].Digest, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []oci.Digest
	for _, b := range append(p1, p2...) {
		got = append(got, b.Digest)
	}
	if len(p1) != 3 || !slices.Equal(got, digests) {
		t.Errorf("BlobsOfGroup pages = %v, want %v in digest order", got, digests)
	}
}

func contractTouchBlobs(t *testing.T, s *Store) {
	ctx := t.Context()
	a, b := mustGroup(t, s, "a"), mustGroup(t, s, "b")
	d1, d2 := digestOf("1"), digestOf("2")
	for _, k := range []BlobKey{{a.ID, d1}, {a.ID, d2}, {b.ID, d1}} {
		if err := s.PutBlob(ctx, Blob{OwnerID: k.OwnerID, Digest: k.Digest, Size: 1, CreatedAt: t0, ReadAt: t0}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.TouchBlobs(ctx, nil, t0); err != nil {
		t.Errorf("TouchBlobs(empty): %v", err)
	}
	at := t0.Add(time.Hour)
	if err := s.TouchBlobs(ctx, []BlobKey{{a.ID, d1}, {b.ID, d1}, {a.ID, digestOf("gone")}}, at); err != nil {
		t.Fatalf("TouchBlobs: %v", err)
	}
	for _, c := range []struct {
		k    BlobKey
		want time.Time
	}{{BlobKey{a.ID, d1}, at}, {BlobKey{b.ID, d1}, at}, {BlobKey{a.ID, d2}, t0}} {
		got, err := s.Blob(ctx, c.k.OwnerID, c.k.Digest)
		if err != nil || !got.ReadAt.Equal(c.want) || !got.CreatedAt.Equal(t0) {
			t.Errorf("blob %v after touch = %+v, %v; want ReadAt %v", c.k, got, err, c.want)
		}
	}
}

func contractBlobReferenced(t *testing.T, s *Store) {
	ctx := t.Context()
	a, b := mustGroup(t, s, "a"), mustGroup(t, s, "b")
	d := digestOf("shared")
	check := func(want bool) {
		t.Helper()
		if got, err := s.BlobReferenced(ctx, d); err != nil || got != want {
			t.Errorf("BlobReferenced = %v, %v; want %v", got, err, want)
		}
	}
	check(false)
	for _, g := range []Group{a, b} {
		if err := s.PutBlob(ctx, Blob{OwnerID: g.ID, Digest: d, Size: 1}); err != nil {
			t.Fatal(err)
		}
	}
	check(true)
	if err := s.DeleteBlob(ctx, a.ID, d); err != nil {
		t.Fatal(err)
	}
	check(true) // b still references it
	if err := s.DeleteBlob(ctx, b.ID, d); err != nil {
		t.Fatal(err)
	}
	check(false)
}

// A download's reference is stored only when neither the group's cache
// was purged nor the upstream's cache cleared since the download noted
// the generation.
func contractPutBlobUnpurged(t *testing.T, s *Store) {
	ctx := t.Context()
	g, _, u := mustUpstream(t, s, "acme")
	uc := s.UpstreamCache()
	owners := []struct {
		name  string
		id    int64
		gen   func() (int64, error)
		put   func(b Blob, gen int64) (bool, error)
		get   func(d oci.Digest) (Blob, error)
		purge func() error
	}{
		{"group", g.ID,
			func() (int64, error) { return s.PurgeGeneration(ctx, g.ID) },
			func(b Blob, gen int64) (bool, error) { return s.PutBlobUnpurged(ctx, b, gen) },
			func(d oci.Digest) (Blob, error) { return s.Blob(ctx, g.ID, d) },
			func() error { _, err := s.PurgeGroupCacheCounted(ctx, g.ID); return err }},
		{"upstream", u.ID,
			func() (int64, error) { return uc.PurgeGeneration(ctx, u.ID) },
			func(b Blob, gen int64) (bool, error) { return uc.PutBlobUnpurged(ctx, b, gen) },
			func(d oci.Digest) (Blob, error) { return uc.Blob(ctx, u.ID, d) },
			func() error { _, err := s.ClearVirtualCache(ctx, []int64{u.ID}); return err }},
	}
	for _, o := range owners {
		before, err := o.gen()
		if err != nil {
			t.Fatalf("%s: PurgeGeneration: %v", o.name, err)
		}
		early, late := digestOf(o.name+"early"), digestOf(o.name+"late")
		if added, err := o.put(Blob{OwnerID: o.id, Digest: early, Size: 1}, before); err != nil || !added {
			t.Fatalf("%s: PutBlobUnpurged with the current generation = %v, %v; want stored", o.name, added, err)
		}
		if err := o.purge(); err != nil {
			t.Fatal(err)
		}
		after, err := o.gen()
		if err != nil || after == before {
			t.Fatalf("%s: PurgeGeneration after a purge = %d, %v; want other than %d", o.name, after, err, before)
		}
		if added, err := o.put(Blob{OwnerID: o.id, Digest: late, Size: 1}, before); err != nil || added {
			t.Errorf("%s: PutBlobUnpurged with the generation before the purge = %v, %v; want not stored", o.name, added, err)
		}
		if _, err := o.get(late); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: the reference of a download that started before the purge exists: %v", o.name, err)
		}
		if added, err := o.put(Blob{OwnerID: o.id, Digest: late, Size: 1}, after); err != nil || !added {
			t.Errorf("%s: PutBlobUnpurged with the generation after the purge = %v, %v; want stored", o.name, added, err)
		}
	}
	if _, err := s.PurgeGeneration(ctx, 1<<40); !errors.Is(err, ErrNotFound) {
		t.Errorf("PurgeGeneration of an unknown group: %v, want ErrNotFound", err)
	}
}

// Garbage collection's record of unreferenced files: the first finding
// is kept until a reference clears it or it is forgotten.
func contractUnreferencedSince(t *testing.T, s *Store) {
	ctx := t.Context()
	g := mustGroup(t, s, "acme")
	d := digestOf("file")
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	check := func(now time.Time, wantSince time.Time, wantRef bool) {
		t.Helper()
		since, ref, err := s.UnreferencedSince(ctx, d, now)
		if err != nil || ref != wantRef || (!wantRef && !since.Equal(wantSince)) {
			t.Errorf("UnreferencedSince(%s) = %s, %v, %v; want %s, %v", now, since, ref, err, wantSince, wantRef)
		}
	}
	check(t0, t0, false)
	check(t0.Add(time.Hour), t0, false) // the first finding counts
	if err := s.PutBlob(ctx, Blob{OwnerID: g.ID, Digest: d, Size: 1}); err != nil {
		t.Fatal(err)
	}
	check(t0.Add(2*time.Hour), time.Time{}, true)
	if err := s.DeleteBlob(ctx, g.ID, d); err != nil {
		t.Fatal(err)
	}
	check(t0.Add(3*time.Hour), t0.Add(3*time.Hour), false) // the reference cleared the record
	// A reference added while the record exists clears it too, without a
	// collection seeing it.
	if err := s.PutBlob(ctx, Blob{OwnerID: g.ID, Digest: d, Size: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PurgeGroupCache(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	check(t0.Add(4*time.Hour), t0.Add(4*time.Hour), false)
	if err := s.ForgetUnreferenced(ctx, d); err != nil {
		t.Fatal(err)
	}
	check(t0.Add(5*time.Hour), t0.Add(5*time.Hour), false)
}

// One holder at a time has the lease on fetching a blob; it renews and
// releases it, and another takes it over once it expired.
func contractFetchLease(t *testing.T, s *Store) {
	ctx := t.Context()
	d := digestOf("layer")
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	acquire := func(holder string, now time.Time, wantHeld bool, wantHolder, wantPeer string) {
		t.Helper()
		l, held, err := s.AcquireFetchLease(ctx, d, holder, "http://"+holder, now, now.Add(30*time.Second))
		if err != nil || held != wantHeld || l.Holder != wantHolder || l.PeerURL != wantPeer {
			t.Errorf("AcquireFetchLease(%s at %s) = %+v, %v, %v; want held %v by %s at %s", holder, now, l, held, err, wantHeld, wantHolder, wantPeer)
		}
	}
	acquire("a", t0, true, "a", "http://a")
	acquire("b", t0.Add(10*time.Second), false, "a", "http://a")
	acquire("a", t0.Add(20*time.Second), true, "a", "http://a") // renewed to t0+50s
	acquire("b", t0.Add(40*time.Second), false, "a", "http://a")
	if held, err := s.RenewFetchLease(ctx, d, "a", t0.Add(90*time.Second)); err != nil || !held {
		t.Errorf("RenewFetchLease by the holder = %v, %v", held, err)
	}
	if held, err := s.RenewFetchLease(ctx, d, "b", t0.Add(90*time.Second)); err != nil || held {
		t.Errorf("RenewFetchLease by another = %v, %v; want not held", held, err)
	}
	acquire("b", t0.Add(80*time.Second), false, "a", "http://a")
	// Expired: taken over, and the old holder can neither renew nor release it.
	acquire("b", t0.Add(91*time.Second), true, "b", "http://b")
	if held, err := s.RenewFetchLease(ctx, d, "a", t0.Add(200*time.Second)); err != nil || held {
		t.Errorf("RenewFetchLease by the old holder = %v, %v; want not held", held, err)
	}
	if err := s.ReleaseFetchLease(ctx, d, "a"); err != nil {
		t.Fatal(err)
	}
	acquire("c", t0.Add(92*time.Second), false, "b", "http://b")
	if err := s.ReleaseFetchLease(ctx, d, "b"); err != nil {
		t.Fatal(err)
	}
	acquire("c", t0.Add(93*time.Second), true, "c", "http://c")
}

func contractUsageAndPurge(t *testing.T, s *Store) {
	ctx := t.Context()
	g, other := mustGroup(t, s, "acme"), mustGroup(t, s, "other")
	if u, err := s.GroupUsage(ctx, g.ID); err != nil || u != (Usage{}) {
		t.Errorf("GroupUsage(empty) = %+v, %v", u, err)
	}
	for _, c := range []string{"{}", "{\"a\":1}"} {
		if _, err := s.PutManifest(ctx, testManifest(g.ID, "library/alpine", c, c)); err != nil {
			t.Fatal(err)
		}
	}
	// The first again by its digest, as a client pulls after the tag: one
	// image, two rows.
	if _, err := s.PutManifest(ctx, testManifest(g.ID, "library/alpine", string(digestOf("{}")), "{}")); err != nil {
		t.Fatal(err)
	}
	shared := digestOf("shared")
	for _, b := range []Blob{{OwnerID: g.ID, Digest: digestOf("own"), Size: 100}, {OwnerID: g.ID, Digest: shared, Size: 50}, {OwnerID: other.ID, Digest: shared, Size: 50}} {
		if err := s.PutBlob(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.PutManifest(ctx, testManifest(other.ID, "library/alpine", "x", "x")); err != nil {
		t.Fatal(err)
	}
	want := Usage{Manifests: 3, Images: 2, ManifestBytes: 2 + 7 + 2, Blobs: 2, BlobBytes: 150}
	if u, err := s.GroupUsage(ctx, g.ID); err != nil || u != want {
		t.Errorf("GroupUsage = %+v, %v; want %+v", u, err, want)
	}

	digests, err := s.PurgeGroupCache(ctx, g.ID)
	if err != nil {
		t.Fatalf("PurgeGroupCache: %v", err)
	}
	slices.Sort(digests)
	wantDigests := []oci.Digest{digestOf("own"), shared}
	slices.Sort(wantDigests)
	if !slices.Equal(digests, wantDigests) {
		t.Errorf("purged digests = %v, want %v", digests, wantDigests)
	}
	if u, err := s.GroupUsage(ctx, g.ID); err != nil || u != (Usage{}) {
		t.Errorf("GroupUsage after purge = %+v, %v; want empty", u, err)
	}
	if u, _ := s.GroupUsage(ctx, other.ID); u.Manifests != 1 || u.Blobs != 1 {
		t.Errorf("purging one group changed another: %+v", u)
	}
	if ok, _ := s.BlobReferenced(ctx, shared); !ok {
		t.Error("shared blob reported unreferenced after purging only one group")
	}
	if ok, _ := s.BlobReferenced(ctx, digestOf("own")); ok {
		t.Error("purged blob still referenced")
	}
}

func contractExpireGroupCache(t *testing.T, s *Store) {
	ctx := t.Context()
	g, other := mustGroup(t, s, "acme"), mustGroup(t, s, "other")
	cut := t0
	// Times close to the cut-off, with fractional seconds of different
	// lengths, so the comparison is checked at microsecond precision.
	old := []time.Time{t0.Add(-time.Microsecond), t0.Add(-123 * time.Millisecond), t0.Truncate(time.Second), t0.Add(-48 * time.Hour)}
	young := []time.Time{t0, t0.Add(time.Microsecond), t0.Add(500 * time.Millisecond), t0.Add(time.Second).Truncate(time.Second)}
	put := func(gid int64, name string, at time.Time) {
		t.Helper()
		m := testManifest(gid, "library/"+name, "latest", name)
		m.ReadAt = at
		if _, err := s.PutManifest(ctx, m); err != nil {
			t.Fatal(err)
		}
		if err := s.PutBlob(ctx, Blob{OwnerID: gid, Digest: digestOf(name), Size: 1, ReadAt: at}); err != nil {
			t.Fatal(err)
		}
	}
	for i, at := range old {
		put(g.ID, fmt.Sprint("old", i), at)
		put(other.ID, fmt.Sprint("old", i), at)
	}
	for i, at := range young {
		put(g.ID, fmt.Sprint("young", i), at)
	}
	e, err := s.ExpireGroupCache(ctx, g.ID, cut)
	if err != nil {
		t.Fatalf("ExpireGroupCache: %v", err)
	}
	if e.Manifests != int64(len(old)) || len(e.Blobs) != len(old) {
		t.Errorf("expired %d manifests and %d blobs, want %d each", e.Manifests, len(e.Blobs), len(old))
	}
	for i := range old {
		if _, err := s.Manifest(ctx, g.ID, fmt.Sprint("library/old", i), "latest"); !errors.Is(err, ErrNotFound) {
			t.Errorf("old manifest %d (read %v) survived expiry", i, old[i])
		}
		if !slices.Contains(e.Blobs, digestOf(fmt.Sprint("old", i))) {
			t.Errorf("old blob %d not reported expired", i)
		}
	}
	for i := range young {
		if _, err := s.Manifest(ctx, g.ID, fmt.Sprint("library/young", i), "latest"); err != nil {
			t.Errorf("young manifest %d (read %v) expired: %v", i, young[i], err)
		}
		if _, err := s.Blob(ctx, g.ID, digestOf(fmt.Sprint("young", i))); err != nil {
			t.Errorf("young blob %d expired: %v", i, err)
		}
	}
	if u, _ := s.GroupUsage(ctx, other.ID); u.Manifests != len(old) || u.Blobs != len(old) {
		t.Errorf("expiring one group touched another: %+v", u)
	}
}

func contractDeleteGroupCascades(t *testing.T, s *Store) {
	ctx := t.Context()
	a := mustGroup(t, s, "acme")
	sub := mustGroup(t, s, "acme/ci")
	keep := mustGroup(t, s, "keep")
	u := mustUser(t, s, "alice")
	mustMember(t, s, a, u, RoleOwner)
	mustMember(t, s, sub, u, RoleOwner)
	mustMember(t, s, keep, u, RoleGuest)
	tok, err := s.CreateToken(ctx, Token{Kind: TokenDeploy, Name: "d", GroupID: sub.ID, Username: "d", Hash: hashOf("d")})
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.PutManifest(ctx, testManifest(sub.ID, "library/alpine", "latest", "{}"))
	if err != nil {
		t.Fatal(err)
	}
	d := digestOf("layer")
	if err := s.PutBlob(ctx, Blob{OwnerID: sub.ID, Digest: d, Size: 1}); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateProxySetting(ctx, ProxySetting{GroupID: sub.ID, Identity: "x", Secret: "y"}); err != nil {
		t.Fatal(err)
	}

	if err := s.DeleteGroup(ctx, a.ID); err != nil {
		t.Fatalf("DeleteGroup: %v", err)
	}
	for _, g := range []Group{a, sub} {
		_, err := s.GroupByID(ctx, g.ID)
		wantErrIs(t, "GroupByID("+g.Path+") after delete", err, ErrNotFound)
		_, err = s.ProxySetting(ctx, g.ID)
		wantErrIs(t, "ProxySetting("+g.Path+") after delete", err, ErrNotFound)
		_, err = s.TTLPolicy(ctx, g.ID)
		wantErrIs(t, "TTLPolicy("+g.Path+") after delete", err, ErrNotFound)
		if ms, _ := s.Members(ctx, g.ID); len(ms) != 0 {
			t.Errorf("members of deleted group %s remain: %+v", g.Path, ms)
		}
	}
	_, err = s.TokenByID(ctx, tok.ID)
	wantErrIs(t, "token of a deleted subgroup", err, ErrNotFound)
	_, err = s.ManifestByID(ctx, m.ID)
	wantErrIs(t, "manifest of a deleted subgroup", err, ErrNotFound)
	if ok, _ := s.BlobReferenced(ctx, d); ok {
		t.Error("blob of a deleted subgroup still referenced")
	}
	if _, err := s.GroupByID(ctx, keep.ID); err != nil {
		t.Errorf("unrelated group deleted: %v", err)
	}
	if r, _ := s.EffectiveRole(ctx, u.ID, keep.ID); r != RoleGuest {
		t.Errorf("membership of an unrelated group = %s, want guest", r)
	}
	wantErrIs(t, "DeleteGroup(again)", s.DeleteGroup(ctx, a.ID), ErrNotFound)
	// The path can be used again.
	if _, err := s.CreateGroup(ctx, "acme"); err != nil {
		t.Errorf("recreate a deleted group's path: %v", err)
	}
}

func contractTimesAreUTC(t *testing.T, s *Store) {
	ctx := t.Context()
	g := mustGroup(t, s, "acme")
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	local := time.Date(2026, 3, 1, 17, 30, 0, 987654321, zone)
	m := testManifest(g.ID, "library/alpine", "latest", "{}")
	m.CreatedAt, m.UpdatedAt, m.ReadAt = local, local, local
	put, err := s.PutManifest(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Manifest(ctx, g.ID, "library/alpine", "latest")
	if err != nil {
		t.Fatal(err)
	}
	want := local.Truncate(time.Microsecond)
	for name, ts := range map[string]time.Time{"CreatedAt": got.CreatedAt, "UpdatedAt": got.UpdatedAt, "ReadAt": got.ReadAt, "returned CreatedAt": put.CreatedAt} {
		if ts.Location() != time.UTC || !ts.Equal(want) {
			t.Errorf("%s = %v (%v), want %v in UTC", name, ts, ts.Location(), want.UTC())
		}
	}
}

// contractConcurrency runs writers and readers at once for a bounded number
// of operations: none may fail (for SQLite: no SQLITE_BUSY).
func contractConcurrency(t *testing.T, s *Store) {
	ctx := t.Context()
	const writers, readers, ops = 8, 16, 15
	groups := make([]Group, writers)
	users := make([]User, writers)
	for i := range writers {
		groups[i] = mustGroup(t, s, fmt.Sprint("g", i))
		users[i] = mustUser(t, s, fmt.Sprint("u", i))
	}
	errc := make(chan error, (writers+readers)*ops)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			g, u := groups[w], users[w]
			for i := range ops {
				m, err := s.PutManifest(ctx, testManifest(g.ID, "library/alpine", fmt.Sprint(i), fmt.Sprint(w, i)))
				if err != nil {
					errc <- fmt.Errorf("writer %d: %w", w, err)
					continue
				}
				d := digestOf(fmt.Sprint(w, i))
				if err := s.PutBlob(ctx, Blob{OwnerID: g.ID, Digest: d, Size: 1}); err != nil {
					errc <- fmt.Errorf("writer %d: %w", w, err)
				}
				if err := s.TouchManifests(ctx, []int64{m.ID}, time.Now()); err != nil {
					errc <- fmt.Errorf("writer %d: %w", w, err)
				}
				if err := s.TouchBlobs(ctx, []BlobKey{{g.ID, d}}, time.Now()); err != nil {
					errc <- fmt.Errorf("writer %d: %w", w, err)
				}
				if err := s.SetMember(ctx, g.ID, u.ID, []Role{RoleGuest, RoleOwner}[i%2]); err != nil {
					errc <- fmt.Errorf("writer %d: %w", w, err)
				}
				if _, err := s.CreateGroup(ctx, fmt.Sprintf("g%d/sub%d", w, i)); err != nil {
					errc <- fmt.Errorf("writer %d: %w", w, err)
				}
			}
		})
	}
	for r := range readers {
		wg.Go(func() {
			for i := range ops {
				g := groups[(r+i)%writers]
				if _, err := s.Manifest(ctx, g.ID, "library/alpine", fmt.Sprint(i)); err != nil && !errors.Is(err, ErrNotFound) {
					errc <- fmt.Errorf("reader %d: %w", r, err)
				}
				if _, err := s.EffectiveRole(ctx, users[r%writers].ID, g.ID); err != nil {
					errc <- fmt.Errorf("reader %d: %w", r, err)
				}
				if _, err := s.GroupByPath(ctx, g.Path); err != nil {
					errc <- fmt.Errorf("reader %d: %w", r, err)
				}
				if _, err := s.GroupUsage(ctx, g.ID); err != nil {
					errc <- fmt.Errorf("reader %d: %w", r, err)
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	for i, g := range groups {
		u, err := s.GroupUsage(ctx, g.ID)
		if err != nil || u.Manifests != ops || u.Blobs != ops {
			t.Errorf("group %d after the run: %+v, %v; want %d manifests and blobs", i, u, err, ops)
		}
	}
}
