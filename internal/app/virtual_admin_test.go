package app_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dproxy/dproxy/internal/config"
	"github.com/dproxy/dproxy/internal/store"
)

const vrFields = `containerVirtualRegistry { id name description groupPath pullPrefix
	upstreams { id name url username passwordSet cacheValidityHours position } } errors`

type vrUpstream struct {
	ID, Name, URL, Username string
	PasswordSet             bool
	CacheValidityHours      int
	Position                int
}

type vrNode struct {
	ID, Name, Description, GroupPath, PullPrefix string
	Upstreams                                    []vrUpstream
}

type vrPayload struct {
	ContainerVirtualRegistry *vrNode
	Errors                   []string
}

// vrMutate runs one virtual-registry mutation and returns its payload.
func (e *env) vrMutate(token, name string, input map[string]any) vrPayload {
	e.t.Helper()
	r := e.gql(token, `mutation($in: `+strings.ToUpper(name[:1])+name[1:]+`Input!) { `+name+`(input: $in) { `+vrFields+` } }`,
		map[string]any{"in": input})
	if len(r.Errors) > 0 {
		return vrPayload{Errors: []string{"top-level: " + r.messages()}}
	}
	var data map[string]vrPayload
	if err := json.Unmarshal(r.Data, &data); err != nil {
		e.t.Fatalf("decode %s: %v", r.Data, err)
	}
	return data[name]
}

func mustVR(t *testing.T, p vrPayload) *vrNode {
	t.Helper()
	if len(p.Errors) > 0 || p.ContainerVirtualRegistry == nil {
		t.Fatalf("mutation refused: %v", p.Errors)
	}
	return p.ContainerVirtualRegistry
}

func TestVirtualRegistryAdmin(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{configure: func(c *config.Config) { c.VirtualRegistriesPerGroup, c.VirtualRegistryUpstreams = 2, 3 }})
	e.group("acme", "acme/ci")
	admin := e.adminToken()

	r := mustVR(t, e.vrMutate(admin, "containerVirtualRegistryCreate", map[string]any{"groupPath": "acme", "name": "all", "description": "hub, quay, ours"}))
	if r.GroupPath != "acme" || !strings.HasSuffix(r.PullPrefix, "/virtual_registries/container/"+strings.TrimPrefix(r.ID, "gid://dproxy/VirtualRegistries::Container::Registry/")) {
		t.Errorf("created %+v", r)
	}
	secret := "upstream-pa55word-do-not-log"
	for _, u := range []map[string]any{
		{"registryId": r.ID, "name": "private", "url": "https://registry.example.com", "username": "bot", "password": secret},
		{"registryId": r.ID, "name": "hub", "url": "https://registry-1.docker.io", "cacheValidityHours": 0},
		{"registryId": r.ID, "name": "quay", "url": "https://quay.io"},
	} {
		r = mustVR(t, e.vrMutate(admin, "containerVirtualRegistryUpstreamCreate", u))
	}
	if len(r.Upstreams) != 3 || r.Upstreams[0].Name != "private" || !r.Upstreams[0].PasswordSet || r.Upstreams[0].Username != "bot" ||
		r.Upstreams[1].CacheValidityHours != 0 || r.Upstreams[2].CacheValidityHours != 24 || r.Upstreams[2].Position != 2 {
		t.Errorf("upstreams = %+v", r.Upstreams)
	}

	// Reorder: quay first.
	r = mustVR(t, e.vrMutate(admin, "containerVirtualRegistryUpstreamMove", map[string]any{"id": r.Upstreams[2].ID, "position": 0}))
	if got := r.Upstreams[0].Name + "," + r.Upstreams[1].Name + "," + r.Upstreams[2].Name; got != "quay,private,hub" {
		t.Errorf("order after move = %s", got)
	}
	// Update without touching the password keeps it; an empty one clears it.
	r = mustVR(t, e.vrMutate(admin, "containerVirtualRegistryUpstreamUpdate", map[string]any{"id": r.Upstreams[1].ID, "cacheValidityHours": 6}))
	if u := r.Upstreams[1]; !u.PasswordSet || u.CacheValidityHours != 6 {
		t.Errorf("after update %+v, want the password kept", u)
	}

	// Limits, named with how to raise them; a subgroup; bad input.
	for _, tc := range []struct {
		name  string
		input map[string]any
		want  string
	}{
		{"containerVirtualRegistryUpstreamCreate", map[string]any{"registryId": r.ID, "name": "fourth", "url": "https://x.example"},
			"already has 3 upstreams, the most allowed; delete one, or ask an instance admin to raise virtual-registry-upstreams"},
		{"containerVirtualRegistryCreate", map[string]any{"groupPath": "acme/ci", "name": "sub"}, "virtual registries belong to top-level groups: create it in acme"},
		{"containerVirtualRegistryCreate", map[string]any{"groupPath": "acme", "name": "all"}, `already has a virtual registry named "all"`},
		{"containerVirtualRegistryCreate", map[string]any{"groupPath": "acme", "name": " "}, "virtual registry name"},
		{"containerVirtualRegistryUpstreamUpdate", map[string]any{"id": r.Upstreams[0].ID, "url": "ftp://x"}, "use http(s)://host[:port][/path]"},
		{"containerVirtualRegistryUpstreamUpdate", map[string]any{"id": r.Upstreams[0].ID, "url": "https://u:p@x.example"}, "without credentials"},
		{"containerVirtualRegistryUpstreamUpdate", map[string]any{"id": r.Upstreams[0].ID, "cacheValidityHours": -1}, "cacheValidityHours must be between 0"},
		{"containerVirtualRegistryUpstreamUpdate", map[string]any{"id": r.Upstreams[0].ID, "password": "x"}, "needs a username"},
		{"containerVirtualRegistryUpstreamMove", map[string]any{"id": r.Upstreams[0].ID, "position": -1}, "position must be 0"},
		{"containerVirtualRegistryUpdate", map[string]any{"id": "gid://dproxy/VirtualRegistries::Container::Registry/999"}, "virtual registry 999 does not exist"},
		{"containerVirtualRegistryUpdate", map[string]any{"id": "nope"}, "invalid virtual registry id"},
	} {
		p := e.vrMutate(admin, tc.name, tc.input)
		if !strings.Contains(strings.Join(p.Errors, "; "), tc.want) || p.ContainerVirtualRegistry != nil {
			t.Errorf("%s %v: errors %q, want %q and no registry", tc.name, tc.input, p.Errors, tc.want)
		}
	}
	mustVR(t, e.vrMutate(admin, "containerVirtualRegistryCreate", map[string]any{"groupPath": "acme", "name": "second"}))
	p := e.vrMutate(admin, "containerVirtualRegistryCreate", map[string]any{"groupPath": "acme", "name": "third"})
	if want := "group acme already has 2 virtual registries, the most allowed; delete one, or ask an instance admin to raise virtual-registries-per-group"; len(p.Errors) != 1 || p.Errors[0] != want {
		t.Errorf("third registry: %q, want %q", p.Errors, want)
	}

	// Non-owners read but cannot change; outsiders cannot even see.
	guest := e.user("gina", "acme", store.RoleGuest, "api")
	maint := e.user("mark", "acme", store.RoleMaintainer, "api")
	outsider := e.user("olaf", "", store.RoleGuest, "api")
	var q struct {
		ContainerVirtualRegistry *vrNode
		Group                    struct{ ContainerVirtualRegistries []vrNode }
	}
	e.ok(guest, `query($id: ID!) { containerVirtualRegistry(id: $id) { name upstreams { name passwordSet } }
		group(fullPath: "acme") { containerVirtualRegistries { name } } }`, map[string]any{"id": r.ID}, &q)
	if q.ContainerVirtualRegistry == nil || len(q.ContainerVirtualRegistry.Upstreams) != 3 || len(q.Group.ContainerVirtualRegistries) != 2 {
		t.Errorf("guest reads %+v", q)
	}
	for _, tok := range []string{guest, maint} {
		for _, m := range []struct {
			name  string
			input map[string]any
		}{
			{"containerVirtualRegistryCreate", map[string]any{"groupPath": "acme", "name": "x"}},
			{"containerVirtualRegistryUpdate", map[string]any{"id": r.ID, "name": "renamed"}},
			{"containerVirtualRegistryDelete", map[string]any{"id": r.ID}},
			{"containerVirtualRegistryUpstreamCreate", map[string]any{"registryId": r.ID, "name": "x", "url": "https://x.example"}},
			{"containerVirtualRegistryUpstreamDelete", map[string]any{"id": r.Upstreams[0].ID}},
		} {
			if p := e.vrMutate(tok, m.name, m.input); !strings.Contains(strings.Join(p.Errors, ";"), "top-level:") ||
				!strings.Contains(strings.Join(p.Errors, ";"), "owner") {
				t.Errorf("non-owner %s: %q, want a top-level error naming owner", m.name, p.Errors)
			}
		}
	}
	if res := e.gql(outsider, `query($id: ID!) { containerVirtualRegistry(id: $id) { name } }`, map[string]any{"id": r.ID}); !strings.Contains(res.messages(), "does not exist or you cannot read its group") {
		t.Errorf("outsider: %s", res.messages())
	}

	// The password is in no answer, no log line and not in plaintext on disk.
	all := e.gql(admin, `query($id: ID!) { containerVirtualRegistry(id: $id) { upstreams { id name url username passwordSet } } }`, map[string]any{"id": r.ID})
	if strings.Contains(string(all.Data), secret) {
		t.Error("an API answer carries the upstream password")
	}
	if strings.Contains(e.logs.String(), secret) {
		t.Error("the log carries the upstream password")
	}
	filepath.WalkDir(e.app.Config.DataDir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if b, err := os.ReadFile(path); err == nil && bytes.Contains(b, []byte(secret)) {
			t.Errorf("the upstream password is in plaintext in %s", path)
		}
		return nil
	})

	// Delete an upstream, then the registry.
	r = mustVR(t, e.vrMutate(admin, "containerVirtualRegistryUpstreamDelete", map[string]any{"id": r.Upstreams[0].ID}))
	if len(r.Upstreams) != 2 || r.Upstreams[0].Position != 0 || r.Upstreams[1].Position != 1 {
		t.Errorf("after deleting the first upstream: %+v", r.Upstreams)
	}
	if p := e.vrMutate(admin, "containerVirtualRegistryDelete", map[string]any{"id": r.ID}); len(p.Errors) != 0 || p.ContainerVirtualRegistry != nil {
		t.Errorf("delete: %+v", p)
	}
}

// With the default limits (GitLab's 5) the 6th registry and the 6th
// upstream are refused.
func TestVirtualRegistryDefaultLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.group("acme")
	admin := e.adminToken()
	var first *vrNode
	for i := range 5 {
		r := mustVR(t, e.vrMutate(admin, "containerVirtualRegistryCreate", map[string]any{"groupPath": "acme", "name": "r" + string(rune('1'+i))}))
		if first == nil {
			first = r
		}
	}
	p := e.vrMutate(admin, "containerVirtualRegistryCreate", map[string]any{"groupPath": "acme", "name": "r6"})
	if want := "group acme already has 5 virtual registries, the most allowed"; len(p.Errors) != 1 || !strings.Contains(p.Errors[0], want) {
		t.Errorf("6th registry: %q, want %q", p.Errors, want)
	}
	for i := range 5 {
		mustVR(t, e.vrMutate(admin, "containerVirtualRegistryUpstreamCreate", map[string]any{"registryId": first.ID, "name": "u" + string(rune('1'+i)), "url": "https://u.example"}))
	}
	p = e.vrMutate(admin, "containerVirtualRegistryUpstreamCreate", map[string]any{"registryId": first.ID, "name": "u6", "url": "https://u.example"})
	if want := "already has 5 upstreams, the most allowed"; len(p.Errors) != 1 || !strings.Contains(p.Errors[0], want) {
		t.Errorf("6th upstream: %q, want %q", p.Errors, want)
	}
}
