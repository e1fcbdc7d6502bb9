package app_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/dproxy/dproxy/internal/store"
)

// TestAdminAuthorization: refusals come back in errors with the reason,
// the field is null and nothing changes; invisible groups look unknown;
// tokens without api and deploy tokens get 401.
func TestAdminAuthorization(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.group("acme", "other")
	reporter := e.user("rita", "acme", store.RoleReporter, "api")
	stranger := e.user("sam", "other", store.RoleOwner, "api")
	noAPI := e.user("pat", "acme", store.RoleOwner, "read_registry")
	deploy := e.groupToken("acme", store.TokenDeploy, 0, "read_registry")
	groupGuest := e.groupToken("acme", store.TokenGroup, store.RoleGuest, "api")
	before, _ := e.app.Store.ProxySetting(context.Background(), e.groupID("acme"))

	for _, c := range []struct {
		name, token, query, want string
	}{
		{"reporter changes settings", reporter,
			`mutation { updateDependencyProxySettings(input: {groupPath: "acme", enabled: false}) { dependencyProxySetting { enabled } errors } }`,
			"changing the dependency proxy settings of acme needs the owner role; you are reporter"},
		{"reporter changes the TTL policy", reporter,
			`mutation { updateDependencyProxyImageTtlGroupPolicy(input: {groupPath: "acme", ttl: 5}) { errors } }`,
			"changing the image TTL policy of acme needs the owner role; you are reporter"},
		{"reporter purges", reporter, `mutation { purgeDependencyProxyCache(input: {groupPath: "acme"}) { errors } }`, "needs the owner role"},
		{"reporter adds a member", reporter, `mutation { memberAdd(input: {groupPath: "acme", username: "sam", role: OWNER}) { errors } }`, "needs the owner role"},
		{"reporter deletes the group", reporter, `mutation { groupDelete(input: {path: "acme"}) { errors } }`, "needs the owner role"},
		{"group guest token changes settings", groupGuest,
			`mutation { updateDependencyProxySettings(input: {groupPath: "acme", enabled: false}) { errors } }`, "you are guest"},
		{"non-member reads", stranger, `{ group(fullPath: "acme") { fullPath } }`, `group "acme" not found`},
		{"unknown group", stranger, `{ group(fullPath: "nope") { fullPath } }`, `group "nope" not found`},
		{"non-member changes settings", stranger,
			`mutation { updateDependencyProxySettings(input: {groupPath: "acme", enabled: false}) { errors } }`, `group "acme" not found`},
		{"user lists users", reporter, `{ users { nodes { username } } }`, "listing users needs an instance admin; you are rita"},
		{"user creates a user", reporter, `mutation { userCreate(input: {username: "x"}) { errors } }`, "needs an instance admin"},
		{"user reads another user", reporter, `{ user(username: "sam") { username } }`, `user "sam" not found`},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := e.gql(c.token, c.query, nil)
			if r.status != http.StatusOK || !strings.Contains(r.messages(), c.want) {
				t.Errorf("status %d, errors %q; want %q", r.status, r.messages(), c.want)
			}
			var data map[string]any
			json.Unmarshal(r.Data, &data)
			for k, v := range data {
				if v != nil {
					t.Errorf("field %s = %v, want null", k, v)
				}
			}
			if strings.Contains(string(r.Data)+r.messages(), "goroutine") {
				t.Errorf("a stack trace in the answer")
			}
		})
	}
	after, _ := e.app.Store.ProxySetting(context.Background(), e.groupID("acme"))
	if after != before {
		t.Errorf("setting changed by refused mutations: %+v → %+v", before, after)
	}
	if p, _ := e.app.Store.TTLPolicy(context.Background(), e.groupID("acme")); p.TTLDays != store.DefaultTTLDays {
		t.Errorf("ttl changed to %d by a refused mutation", p.TTLDays)
	}
	if _, err := e.app.Store.GroupByPath(context.Background(), "acme"); err != nil {
		t.Errorf("acme was deleted by a reporter: %v", err)
	}

	// A guest reads the group.
	var got struct{ Group struct{ MyRole string } }
	e.ok(reporter, `{ group(fullPath: "acme") { myRole } }`, nil, &got)
	if got.Group.MyRole != "REPORTER" {
		t.Errorf("rita's role = %q", got.Group.MyRole)
	}

	// 401 for anything but an api token.
	for _, c := range []struct{ name, token, want string }{
		{"no token", "", "api scope"},
		{"wrong token", "dpxp_wrong", "invalid token"},
		{"token without api", noAPI, "lacks the api scope"},
		{"deploy token", deploy, "deploy tokens cannot use the admin API"},
	} {
		r := e.gql(c.token, `{ currentUser { username } }`, nil)
		if r.status != http.StatusUnauthorized || !strings.Contains(r.messages(), c.want) || string(r.Data) != "null" {
			t.Errorf("%s: status %d data %s errors %q; want 401 with %q", c.name, r.status, r.Data, r.messages(), c.want)
		}
	}
}

// TestBadAdminInput: understood-but-refused input goes to the payload's
// errors and changes nothing.
func TestBadAdminInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.group("acme")
	admin := e.adminToken()
	id := e.groupID("acme")
	settingBefore, _ := e.app.Store.ProxySetting(context.Background(), id)
	ttlBefore, _ := e.app.Store.TTLPolicy(context.Background(), id)
	long := strings.Repeat("a", 300)

	for _, c := range []struct {
		name, query, field, want string
	}{
		{"ttl 0", `mutation { m: updateDependencyProxyImageTtlGroupPolicy(input: {groupPath: "acme", ttl: 0}) { errors } }`, "", "between 1 and 3650"},
		{"ttl negative", `mutation { m: updateDependencyProxyImageTtlGroupPolicy(input: {groupPath: "acme", ttl: -3, enabled: false}) { errors } }`, "", "between 1 and 3650"},
		{"identity without secret", `mutation { m: updateDependencyProxySettings(input: {groupPath: "acme", identity: "bob", enabled: false}) { errors } }`, "", "set together"},
		{"identity with empty secret", `mutation { m: updateDependencyProxySettings(input: {groupPath: "acme", identity: "bob", secret: ""}) { errors } }`, "", "needs a secret"},
		{"secret without identity", `mutation { m: updateDependencyProxySettings(input: {groupPath: "acme", identity: "", secret: "x"}) { errors } }`, "", "needs an identity"},
		{"negative freshness", `mutation { m: updateDependencyProxySettings(input: {groupPath: "acme", freshnessWindowSeconds: -1}) { errors } }`, "", "freshnessWindowSeconds"},
		{"unknown scope", `mutation { m: tokenCreate(input: {kind: PERSONAL, name: "x", scopes: ["root"]}) { errors } }`, "", `unknown token scope "root"`},
		{"no scope", `mutation { m: tokenCreate(input: {kind: PERSONAL, name: "x", scopes: []}) { errors } }`, "", "at least one scope"},
		{"deploy token with api", `mutation { m: tokenCreate(input: {kind: DEPLOY, name: "x", scopes: ["api"], groupPath: "acme"}) { errors } }`, "", "cannot have the api scope"},
		{"expired token", `mutation { m: tokenCreate(input: {kind: PERSONAL, name: "x", scopes: ["api"], expiresAt: "2001-01-01T00:00:00Z"}) { errors } }`, "", "in the past"},
		{"over-long token name", `mutation { m: tokenCreate(input: {kind: PERSONAL, name: "` + long + `", scopes: ["api"]}) { errors } }`, "", "limit is 255"},
		{"over-long group path", `mutation { m: groupCreate(input: {path: "` + long + `"}) { errors } }`, "", "limit is 200"},
		{"upper-case group path", `mutation { m: groupCreate(input: {path: "Acme2"}) { errors } }`, "", "lower-case"},
		{"reserved group name", `mutation { m: groupCreate(input: {path: "acme/dependency_proxy"}) { errors } }`, "", "reserved"},
		{"over-long username", `mutation { m: userCreate(input: {username: "` + long + `"}) { errors } }`, "", "limit is 255"},
		{"bad username", `mutation { m: userCreate(input: {username: "a b"}) { errors } }`, "", "username"},
		{"short password", `mutation { m: userCreate(input: {username: "carl", password: "x"}) { errors } }`, "", "too short"},
		{"own admin flag", `mutation { m: userUpdate(input: {username: "admin", admin: false}) { errors } }`, "", "your own admin flag"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var got struct{ M struct{ Errors []string } }
			e.ok(admin, c.query, nil, &got)
			if len(got.M.Errors) != 1 || !strings.Contains(got.M.Errors[0], c.want) {
				t.Errorf("errors %q, want one containing %q", got.M.Errors, c.want)
			}
		})
	}
	// Unknown roles are not in the Role enum: GraphQL validation refuses
	// the operation before anything runs.
	r := e.gql(admin, `mutation { memberAdd(input: {groupPath: "acme", username: "admin", role: BOSS}) { errors } }`, nil)
	if !strings.Contains(r.messages(), "BOSS") {
		t.Errorf("unknown role: errors %q", r.messages())
	}

	settingAfter, _ := e.app.Store.ProxySetting(context.Background(), id)
	ttlAfter, _ := e.app.Store.TTLPolicy(context.Background(), id)
	if settingAfter != settingBefore || ttlAfter != ttlBefore {
		t.Errorf("refused input changed the group: %+v %+v", settingAfter, ttlAfter)
	}
	users, _ := e.app.Store.Users(context.Background())
	groups, _ := e.app.Store.Groups(context.Background())
	admins, _ := e.app.Store.UserByUsername(context.Background(), "admin")
	toks, _ := e.app.Store.TokensOfUser(context.Background(), admins.ID)
	members, _ := e.app.Store.Members(context.Background(), id)
	if len(users) != 1 || len(groups) != 1 || len(toks) != 1 || len(members) != 0 || !admins.Admin {
		t.Errorf("refused input created something: %d users, %d groups, %d tokens, %d members, admin %v",
			len(users), len(groups), len(toks), len(members), admins.Admin)
	}
}

// TestHubSecretNeverReturnedOrLogged sets a Docker Hub secret and looks
// for it in every answer that could carry it and in the server log.
func TestHubSecretNeverReturnedOrLogged(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.group("acme")
	admin := e.adminToken()
	const secret = "hub-SECRET-do-not-show-4711"
	var got struct{ M struct{ Errors []string } }
	e.ok(admin, `mutation($s: String!) { m: updateDependencyProxySettings(input: {groupPath: "acme", identity: "hubuser", secret: $s}) {
		dependencyProxySetting { enabled identity secretSet } errors } }`, map[string]any{"s": secret}, &got)
	e.ok(admin, `mutation($s: String!) { m: updateInstanceDockerHubCredentials(input: {identity: "hubbot", secret: $s}) {
		dockerHubCredentials { identity secretSet } errors } }`, map[string]any{"s": secret}, &got)
	// A refused change with the secret in it must not log it either.
	e.gql(admin, `mutation($s: String!) { m: updateDependencyProxySettings(input: {groupPath: "acme", identity: "", secret: $s}) { errors } }`,
		map[string]any{"s": secret})

	// Every field of every type whose name mentions a credential.
	var schema struct {
		Schema struct {
			Types []struct {
				Name   string
				Fields []struct{ Name string }
			}
		} `json:"__schema"`
	}
	e.ok(admin, `{ __schema { types { name fields { name } } } }`, nil, &schema)
	for _, ty := range schema.Schema.Types {
		for _, f := range ty.Fields {
			if strings.Contains(strings.ToLower(f.Name), "secret") && f.Name != "secretSet" && !(ty.Name == "TokenCreatePayload" && f.Name == "secret") {
				t.Errorf("%s.%s could return a secret", ty.Name, f.Name)
			}
		}
	}
	for _, q := range []string{
		`{ group(fullPath: "acme") { dependencyProxySetting { enabled identity secretSet freshnessWindowSeconds allowAnonymousPull } } }`,
		`{ groups { nodes { dependencyProxySetting { identity secretSet } } } }`,
		`{ instanceDockerHubCredentials { identity secretSet } }`,
	} {
		r := e.gql(admin, q, nil)
		if len(r.Errors) != 0 || !strings.Contains(string(r.Data), "secretSet\":true") || strings.Contains(string(r.Data), secret) {
			t.Errorf("%s: data %s errors %q", q, r.Data, r.messages())
		}
	}
	if logs := e.logs.String(); strings.Contains(logs, secret) || !strings.Contains(logs, "dependency proxy setting changed") {
		t.Errorf("the server log shows the secret, or the change was not logged:\n%s", logs)
	}
}

// TestOperationLimits refuses over-deep and over-complex operations.
func TestOperationLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.group("acme")
	admin := e.adminToken()
	deep := `{ group(fullPath: "acme") { ` + strings.Repeat("subgroups { ", 12) + "fullPath" + strings.Repeat(" }", 12) + " } }"
	if r := e.gql(admin, deep, nil); !strings.Contains(r.messages(), "the limit is") {
		t.Errorf("deep query: errors %q", r.messages())
	}
	wide := `{ groups(first: 100) { nodes { dependencyProxyManifests(first: 100) { nodes { id digest } } } } }`
	if r := e.gql(admin, wide, nil); !strings.Contains(strings.ToLower(r.messages()), "complexity") {
		t.Errorf("complex query: errors %q", r.messages())
	}
}
