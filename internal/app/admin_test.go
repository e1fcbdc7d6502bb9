package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/store"
)

func TestGroupsCreateListDelete(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	admin := e.adminToken()
	create := `mutation($p: ID!) { groupCreate(input: {path: $p}) { group { id fullPath name parentPath myRole } errors } }`
	type created struct {
		GroupCreate struct {
			Group *struct {
				ID, FullPath, Name string
				ParentPath         *string
				MyRole             *string
			}
			Errors []string
		}
	}
	for _, p := range []string{"acme", "acme/ci", "acme/ci/deep", "beta", "gamma"} {
		var got created
		e.ok(admin, create, map[string]any{"p": p}, &got)
		g := got.GroupCreate.Group
		if g == nil || g.FullPath != p || len(got.GroupCreate.Errors) != 0 || !strings.HasPrefix(g.ID, "gid://dproxy/Group/") {
			t.Fatalf("create %s: %+v", p, got.GroupCreate)
		}
		if i := strings.LastIndexByte(p, '/'); (i < 0) != (g.ParentPath == nil) || (i >= 0 && *g.ParentPath != p[:i]) || g.Name != p[i+1:] {
			t.Errorf("create %s: name %q parent %v", p, g.Name, g.ParentPath)
		}
		if g.MyRole != nil {
			t.Errorf("create %s: an admin who is no member has role %v, want null", p, *g.MyRole)
		}
	}
	// A taken path and a missing parent.
	var got created
	e.ok(admin, create, map[string]any{"p": "acme"}, &got)
	if got.GroupCreate.Group != nil || len(got.GroupCreate.Errors) != 1 || !strings.Contains(got.GroupCreate.Errors[0], "already exists") {
		t.Errorf("create taken path: %+v", got.GroupCreate)
	}
	if r := e.gql(admin, create, map[string]any{"p": "nope/sub"}); !strings.Contains(r.messages(), `group "nope" not found`) {
		t.Errorf("create under a missing parent: errors %q", r.messages())
	}

	// List with pagination and search.
	var paths []string
	var after *string
	for range 10 {
		var list struct {
			Groups struct {
				Nodes    []struct{ FullPath string }
				PageInfo struct {
					HasNextPage bool
					EndCursor   *string
				}
			}
		}
		e.ok(admin, `query($after: String) { groups(first: 2, after: $after) { nodes { fullPath } pageInfo { hasNextPage endCursor } } }`,
			map[string]any{"after": after}, &list)
		for _, n := range list.Groups.Nodes {
			paths = append(paths, n.FullPath)
		}
		if !list.Groups.PageInfo.HasNextPage {
			break
		}
		after = list.Groups.PageInfo.EndCursor
	}
	if strings.Join(paths, ",") != "acme,acme/ci,acme/ci/deep,beta,gamma" {
		t.Errorf("paged groups = %v", paths)
	}
	var search struct {
		Groups struct{ Nodes []struct{ FullPath string } }
	}
	e.ok(admin, `{ groups(search: "CI") { nodes { fullPath } } }`, nil, &search)
	if len(search.Groups.Nodes) != 2 {
		t.Errorf("search ci: %+v, want acme/ci and acme/ci/deep", search.Groups.Nodes)
	}
	var sub struct {
		Group struct{ Subgroups []struct{ FullPath string } }
	}
	e.ok(admin, `{ group(fullPath: "acme") { subgroups { fullPath } } }`, nil, &sub)
	if len(sub.Group.Subgroups) != 1 || sub.Group.Subgroups[0].FullPath != "acme/ci" {
		t.Errorf("subgroups of acme = %+v, want acme/ci only", sub.Group.Subgroups)
	}

	// An owner of acme may create a subgroup, not a top-level group.
	owner := e.user("olga", "acme", store.RoleOwner, "api")
	e.ok(owner, create, map[string]any{"p": "acme/new"}, &got)
	if got.GroupCreate.Group == nil || got.GroupCreate.Group.MyRole == nil || *got.GroupCreate.Group.MyRole != "OWNER" {
		t.Errorf("owner creates a subgroup: %+v", got.GroupCreate)
	}
	if r := e.gql(owner, create, map[string]any{"p": "toplevel"}); !strings.Contains(r.messages(), "needs an instance admin") {
		t.Errorf("owner creates a top-level group: errors %q", r.messages())
	}
	// A user sees only the groups they belong to.
	var mine struct {
		Groups struct{ Nodes []struct{ FullPath string } }
	}
	e.ok(owner, `{ groups { nodes { fullPath } } }`, nil, &mine)
	if len(mine.Groups.Nodes) != 4 || mine.Groups.Nodes[0].FullPath != "acme" {
		t.Errorf("olga's groups = %+v, want acme and its 3 subgroups", mine.Groups.Nodes)
	}

	// Delete removes the group and its subgroups.
	var del struct{ GroupDelete struct{ Errors []string } }
	e.ok(owner, `mutation { groupDelete(input: {path: "acme/ci"}) { errors } }`, nil, &del)
	for _, p := range []string{"acme/ci", "acme/ci/deep"} {
		if _, err := e.app.Store.GroupByPath(context.Background(), p); err == nil {
			t.Errorf("group %s still exists after deleting acme/ci", p)
		}
	}
	if _, err := e.app.Store.GroupByPath(context.Background(), "acme"); err != nil {
		t.Errorf("acme went with its subgroup: %v", err)
	}
}

func TestUsersMembersAndTokens(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.group("acme")
	admin := e.adminToken()

	var uc struct {
		UserCreate struct {
			User *struct {
				Username           string
				Admin, PasswordSet bool
			}
			Errors []string
		}
	}
	e.ok(admin, `mutation { userCreate(input: {username: "bob", password: "correct horse"}) { user { username admin passwordSet } errors } }`, nil, &uc)
	if u := uc.UserCreate.User; u == nil || u.Username != "bob" || u.Admin || !u.PasswordSet {
		t.Fatalf("userCreate: %+v", uc.UserCreate)
	}
	e.ok(admin, `mutation { userCreate(input: {username: "bob"}) { user { username } errors } }`, nil, &uc)
	if uc.UserCreate.User != nil || len(uc.UserCreate.Errors) != 1 || !strings.Contains(uc.UserCreate.Errors[0], "taken") {
		t.Errorf("duplicate username: %+v", uc.UserCreate)
	}
	var users struct {
		Users struct{ Nodes []struct{ Username string } }
	}
	e.ok(admin, `{ users { nodes { username } } }`, nil, &users)
	if len(users.Users.Nodes) != 2 || users.Users.Nodes[0].Username != "admin" || users.Users.Nodes[1].Username != "bob" {
		t.Errorf("users = %+v", users.Users.Nodes)
	}
	var uu struct {
		UserUpdate struct{ User struct{ Admin bool } }
	}
	e.ok(admin, `mutation { userUpdate(input: {username: "bob", admin: true}) { user { admin } errors } }`, nil, &uu)
	if !uu.UserUpdate.User.Admin {
		t.Errorf("userUpdate admin: %+v", uu)
	}
	e.ok(admin, `mutation { userUpdate(input: {username: "bob", admin: false}) { user { admin } errors } }`, nil, &uu)

	// Members with roles.
	var ma struct {
		MemberAdd struct {
			Member struct{ Username, Role, GroupPath string }
			Errors []string
		}
	}
	e.ok(admin, `mutation { memberAdd(input: {groupPath: "acme", username: "bob", role: REPORTER}) { member { username role groupPath } errors } }`, nil, &ma)
	if m := ma.MemberAdd.Member; m.Username != "bob" || m.Role != "REPORTER" || m.GroupPath != "acme" {
		t.Errorf("memberAdd: %+v", ma.MemberAdd)
	}
	e.ok(admin, `mutation { memberAdd(input: {groupPath: "acme", username: "bob", role: OWNER}) { member { role } errors } }`, nil, &ma)
	var members struct {
		Group struct {
			Members []struct{ Username, Role string }
		}
	}
	e.ok(admin, `{ group(fullPath: "acme") { members { username role } } }`, nil, &members)
	if len(members.Group.Members) != 1 || members.Group.Members[0].Role != "OWNER" {
		t.Errorf("members after role change = %+v", members.Group.Members)
	}

	// Tokens: the secret once, never in a list; revoked tokens stop working.
	var tc struct {
		TokenCreate struct {
			Token *struct {
				ID, Kind, Name string
				Scopes         []string
				Active         bool
				Username       *string
			}
			Secret *string
			Errors []string
		}
	}
	e.ok(admin, `mutation { tokenCreate(input: {kind: PERSONAL, name: "ci", scopes: ["api"], username: "bob"}) {
		token { id kind name scopes active username } secret errors } }`, nil, &tc)
	tok := tc.TokenCreate
	if tok.Token == nil || tok.Secret == nil || !strings.HasPrefix(*tok.Secret, "dpxp_") || !tok.Token.Active ||
		tok.Token.Username == nil || *tok.Token.Username != "bob" {
		t.Fatalf("tokenCreate: %+v", tok)
	}
	bob, bobTokenID := *tok.Secret, tok.Token.ID // tc is decoded into again below
	var me struct {
		CurrentUser struct{ Username, Kind string }
	}
	e.ok(bob, `{ currentUser { username kind } }`, nil, &me)
	if me.CurrentUser.Username != "bob" || me.CurrentUser.Kind != "PERSONAL_ACCESS_TOKEN" {
		t.Errorf("currentUser with bob's token = %+v", me)
	}
	// bob, now owner of acme, makes a group access and a deploy token.
	e.ok(bob, `mutation { tokenCreate(input: {kind: GROUP_ACCESS, name: "grp", scopes: ["api"], groupPath: "acme", role: MAINTAINER}) {
		token { id kind } secret errors } }`, nil, &tc)
	if tc.TokenCreate.Secret == nil || !strings.HasPrefix(*tc.TokenCreate.Secret, "dpxg_") {
		t.Errorf("group access token: %+v", tc.TokenCreate)
	}
	var dep struct {
		TokenCreate struct {
			Token  struct{ DeployUsername string }
			Secret string
		}
	}
	e.ok(bob, `mutation { tokenCreate(input: {kind: DEPLOY, name: "deploy", scopes: ["read_registry"], groupPath: "acme"}) {
		token { deployUsername } secret errors } }`, nil, &dep)
	if !strings.HasPrefix(dep.TokenCreate.Token.DeployUsername, "gitlab+deploy-token-") || !strings.HasPrefix(dep.TokenCreate.Secret, "dpxd_") {
		t.Errorf("deploy token: %+v", dep.TokenCreate)
	}
	// Lists carry no secret: the type has no such field, and no value in
	// the answer is one.
	r := e.gql(bob, `{ tokens { id name active } group: tokens(groupPath: "acme") { id kind deployUsername role } }`, nil)
	if len(r.Errors) != 0 {
		t.Fatalf("tokens: %s", r.messages())
	}
	for _, s := range []string{bob, *tc.TokenCreate.Secret, dep.TokenCreate.Secret} {
		if strings.Contains(string(r.Data), s) {
			t.Errorf("a token list shows a secret: %s", r.Data)
		}
	}
	var lists struct{ Tokens, Group []struct{ ID, Kind string } }
	json.Unmarshal(r.Data, &lists)
	if len(lists.Tokens) != 1 || len(lists.Group) != 2 || lists.Group[0].Kind != "DEPLOY" {
		t.Errorf("token lists = %+v (group tokens newest first)", lists)
	}
	if r := e.gql(admin, `{ __type(name: "AccessToken") { fields { name } } }`, nil); strings.Contains(strings.ToLower(string(r.Data)), "secret") {
		t.Errorf("AccessToken has a secret field: %s", r.Data)
	}

	var rv struct {
		TokenRevoke struct {
			Token struct {
				Active    bool
				RevokedAt *string
			}
		}
	}
	e.ok(bob, `mutation($id: ID!) { tokenRevoke(input: {id: $id}) { token { active revokedAt } errors } }`,
		map[string]any{"id": bobTokenID}, &rv)
	if rv.TokenRevoke.Token.Active || rv.TokenRevoke.Token.RevokedAt == nil {
		t.Errorf("revoked token: %+v", rv.TokenRevoke)
	}
	if r := e.gql(bob, `{ currentUser { username } }`, nil); r.status != http.StatusUnauthorized || len(r.Errors) == 0 {
		t.Errorf("revoked token: status %d errors %q, want 401", r.status, r.messages())
	}

	// Removing a member and deleting a user.
	var mr struct{ MemberRemove struct{ Errors []string } }
	e.ok(admin, `mutation { memberRemove(input: {groupPath: "acme", username: "bob"}) { errors } }`, nil, &mr)
	e.ok(admin, `mutation { memberRemove(input: {groupPath: "acme", username: "bob"}) { errors } }`, nil, &mr)
	if len(mr.MemberRemove.Errors) != 1 {
		t.Errorf("removing a non-member: %+v, want a refusal", mr)
	}
	var ud struct{ UserDelete struct{ Errors []string } }
	e.ok(admin, `mutation { userDelete(input: {username: "bob"}) { errors } }`, nil, &ud)
	if _, err := e.app.Store.UserByUsername(context.Background(), "bob"); err == nil {
		t.Error("bob still exists after userDelete")
	}
}

// TestPurgeFetchesUpstreamAgain purges through GraphQL and pulls again.
func TestPurgeFetchesUpstreamAgain(t *testing.T) {
	t.Parallel()
	e, tok := pulledEnv(t)
	before := e.usage("acme")
	var got struct {
		PurgeDependencyProxyCache struct {
			ManifestCount, BlobCount int
			FreedBytes               string
			Errors                   []string
		}
	}
	e.ok(e.adminToken(), `mutation { purgeDependencyProxyCache(input: {groupPath: "acme"}) { manifestCount blobCount freedBytes errors } }`, nil, &got)
	p := got.PurgeDependencyProxyCache
	if p.ManifestCount != before.Manifests || p.BlobCount != before.Blobs || p.FreedBytes != itoa(int(before.BlobBytes+before.ManifestBytes)) {
		t.Errorf("purge = %+v, usage before %+v", p, before)
	}
	if u := e.usage("acme"); u != (store.Usage{}) {
		t.Errorf("usage after purge = %+v", u)
	}
	e.up.ResetCounts()
	pullAll(t, e.ref("acme", "alpine:latest"), pullOpts("alice", tok))
	if n := e.up.Count("GET", "manifest"); n != 1 {
		t.Errorf("pull after purge: %d upstream manifest GETs, want 1", n)
	}
	waitFor(t, "downloads to commit", func() bool { return !e.downloading() })
	if u := e.usage("acme"); u.Manifests == 0 || u.Blobs != before.Blobs {
		t.Errorf("usage after the next pull = %+v, want the cache refilled like %+v", u, before)
	}
}

func TestDeleteOneImage(t *testing.T) {
	t.Parallel()
	e, _ := pulledEnv(t)
	admin := e.adminToken()
	before := e.usage("acme")
	var got struct {
		DeleteDependencyProxyManifest struct {
			DependencyProxyManifest *struct{ Image, ImageName, Reference string }
			Errors                  []string
		}
	}
	q := `mutation($i: String!, $r: String!) { deleteDependencyProxyManifest(input: {groupPath: "acme", imageName: $i, reference: $r}) {
		dependencyProxyManifest { image imageName reference } errors } }`
	for _, c := range []struct{ image, ref, want string }{
		{"Alpine", "latest", "image name"},
		{"alpine", "bad:ref", "neither a tag nor"},
		{"alpine", "v9", "not cached"},
	} {
		e.ok(admin, q, map[string]any{"i": c.image, "r": c.ref}, &got)
		if d := got.DeleteDependencyProxyManifest; d.DependencyProxyManifest != nil || len(d.Errors) != 1 || !strings.Contains(d.Errors[0], c.want) {
			t.Errorf("delete %s:%s = %+v, want a refusal about %q", c.image, c.ref, d, c.want)
		}
		if u := e.usage("acme"); u != before {
			t.Fatalf("a refused delete changed the cache: %+v", u)
		}
	}
	e.ok(admin, q, map[string]any{"i": "alpine", "r": "latest"}, &got)
	if d := got.DeleteDependencyProxyManifest.DependencyProxyManifest; d == nil || d.Image != "library/alpine" || d.ImageName != "alpine:latest" || d.Reference != "latest" {
		t.Errorf("delete alpine:latest = %+v", got.DeleteDependencyProxyManifest)
	}
	if _, err := e.app.Store.Manifest(context.Background(), e.groupID("acme"), "library/alpine", "latest"); err == nil {
		t.Error("alpine:latest is still cached")
	}
	if u := e.usage("acme"); u.Manifests != before.Manifests-1 || u.Blobs != before.Blobs {
		t.Errorf("usage after deleting one manifest = %+v, before %+v", u, before)
	}
}

func TestInstanceHubCredentials(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	admin := e.adminToken()
	var set struct {
		UpdateInstanceDockerHubCredentials struct {
			DockerHubCredentials *struct {
				Identity  *string
				SecretSet bool
			}
			Errors []string
		}
	}
	q := `mutation($i: String!, $s: String!) { updateInstanceDockerHubCredentials(input: {identity: $i, secret: $s}) {
		dockerHubCredentials { identity secretSet } errors } }`
	e.ok(admin, q, map[string]any{"i": "hubbot", "s": "instance-secret-9"}, &set)
	if c := set.UpdateInstanceDockerHubCredentials.DockerHubCredentials; c == nil || c.Identity == nil || *c.Identity != "hubbot" || !c.SecretSet {
		t.Errorf("set: %+v", set.UpdateInstanceDockerHubCredentials)
	}
	e.ok(admin, q, map[string]any{"i": "other", "s": ""}, &set)
	if len(set.UpdateInstanceDockerHubCredentials.Errors) != 1 {
		t.Errorf("identity without secret: %+v", set.UpdateInstanceDockerHubCredentials)
	}
	c, err := e.app.Store.DefaultHubCredentials(context.Background())
	if err != nil || c.Identity != "hubbot" || c.Secret != "instance-secret-9" {
		t.Errorf("stored = %q, %v; the refused change must not apply", c.Identity, err)
	}
	var show struct {
		InstanceDockerHubCredentials struct {
			Identity  string
			SecretSet bool
		}
	}
	e.ok(admin, `{ instanceDockerHubCredentials { identity secretSet } }`, nil, &show)
	if show.InstanceDockerHubCredentials.Identity != "hubbot" || !show.InstanceDockerHubCredentials.SecretSet {
		t.Errorf("show = %+v", show)
	}
	e.ok(admin, q, map[string]any{"i": "", "s": ""}, &set)
	if c, _ := e.app.Store.DefaultHubCredentials(context.Background()); c != (store.HubCredentials{}) {
		t.Errorf("after clearing: identity %q", c.Identity)
	}
	user := e.user("bob", "", 0, "api")
	if r := e.gql(user, `{ instanceDockerHubCredentials { identity } }`, nil); !strings.Contains(r.messages(), "needs an instance admin; you are bob") {
		t.Errorf("non-admin reads instance credentials: %q", r.messages())
	}
}

// TestPurgeDuringDownload: a download that finishes after a purge does
// not record the purged group's blob reference again.
func TestPurgeDuringDownload(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	b := e.aliceBlob("slow", 2<<20)
	// 2 MiB at 1 KiB/s would take over half an hour: the download cannot
	// finish before the test lifts the cap, however slow the machine.
	e.up.SetBandwidth(1 << 10)

	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+b.path, nil)
	req.Header.Set("Authorization", "Bearer "+b.jwt)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("get blob: %v", err)
	}
	defer res.Body.Close()
	if !e.downloading() {
		t.Fatal("no download in flight after the response started")
	}
	var got struct{ PurgeDependencyProxyCache struct{ Errors []string } }
	e.ok(e.adminToken(), `mutation { purgeDependencyProxyCache(input: {groupPath: "acme"}) { errors } }`, nil, &got)
	// The premise: the purge ran while the download was still going.
	if !e.downloading() {
		t.Fatal("the download ended before the purge returned: the purge did not run during it")
	}
	if _, err := e.app.Blobs.Stat(context.Background(), oci.Digest(b.digest.String())); err == nil {
		t.Fatal("the blob was committed before the purge returned: the purge did not run during its download")
	}
	e.up.SetBandwidth(0)
	body, err := io.ReadAll(res.Body)
	if err != nil || digestOf(body) != b.digest.String() {
		t.Fatalf("the client streaming during the purge got %d bytes, %v", len(body), err)
	}
	waitFor(t, "the download to commit", func() bool { return !e.downloading() })
	if _, err := e.app.Blobs.Stat(context.Background(), oci.Digest(b.digest.String())); err != nil {
		t.Fatalf("the blob file was not committed: %v", err)
	}
	if _, err := e.app.Store.Blob(context.Background(), e.groupID("acme"), oci.Digest(b.digest.String())); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the purged group's blob reference came back: %v", err)
	}
}

// TestPurgeFreesFilesSoon checks a purge through the admin API wakes the
// garbage collector, so the files go without waiting for the next GC tick.
func TestPurgeFreesFilesSoon(t *testing.T) {
	t.Parallel()
	e, _ := pulledEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.app.Lifecycle.Run(ctx)

	stored, err := e.app.Store.ReferencedBlobs(ctx, "", 100)
	if err != nil || len(stored) == 0 {
		t.Fatalf("referenced blobs after a pull: %v %v", stored, err)
	}
	e.ok(e.adminToken(), `mutation { purgeDependencyProxyCache(input: {groupPath: "acme"}) { errors } }`, nil, nil)
	waitFor(t, "the purged blob files to be collected", func() bool {
		for _, b := range stored {
			if _, err := e.app.Blobs.Stat(ctx, b.Digest); err == nil {
				return false
			}
		}
		return true
	})
}
