package auth

import (
	"reflect"
	"strings"
	"testing"

	"github.com/dproxy/dproxy/internal/store"
)

func TestParseScope(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in      string
		want    Access
		wantErr bool
	}{
		{in: "repository:acme/dependency_proxy/containers/alpine:pull",
			want: Access{Type: "repository", Name: "acme/dependency_proxy/containers/alpine", Actions: []string{"pull"}}},
		{in: "repository:a/b:pull,push",
			want: Access{Type: "repository", Name: "a/b", Actions: []string{"pull", "push"}}},
		{in: "repository:localhost:5000/foo:pull",
			want: Access{Type: "repository", Name: "localhost:5000/foo", Actions: []string{"pull"}}},
		{in: "registry:catalog:*",
			want: Access{Type: "registry", Name: "catalog", Actions: []string{"*"}}},
		{in: "repository:a:pull,,", want: Access{Type: "repository", Name: "a", Actions: []string{"pull"}}},
		{in: "", wantErr: true},
		{in: "repository", wantErr: true},
		{in: "repository:a", wantErr: true},
		{in: "repository:a:", wantErr: true},
		{in: ":a:pull", wantErr: true},
		{in: "repository::pull", wantErr: true},
	}
	for _, c := range cases {
		got, err := ParseScope(c.in)
		if (err != nil) != c.wantErr {
			t.Errorf("ParseScope(%q): err %v, want error %v", c.in, err, c.wantErr)
			continue
		}
		if !c.wantErr && !reflect.DeepEqual(got, c.want) {
			t.Errorf("ParseScope(%q) = %+v, want %+v", c.in, got, c.want)
		}
	}
}

func TestValidateScopes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		scopes []string
		says   string // "" means valid
	}{
		{[]string{"api"}, ""},
		{ScopeNames(), ""},
		{[]string{"read_registry", "read_virtual_registry"}, ""},
		{nil, "at least one scope"},
		{[]string{"read_registry", "read_repository"}, `"read_repository"`},
		{[]string{"API"}, `"API"`},
		{[]string{""}, `""`},
	}
	for _, c := range cases {
		err := ValidateScopes(c.scopes)
		if c.says == "" {
			if err != nil {
				t.Errorf("ValidateScopes(%q): %v", c.scopes, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("ValidateScopes(%q) = %v, want an error saying %s", c.scopes, err, c.says)
		}
	}
}

func TestMissingPullScope(t *testing.T) {
	t.Parallel()
	cases := []struct {
		scopes []string
		says   string // "" means pulling is allowed
	}{
		{[]string{ScopeAPI}, ""},
		{[]string{ScopeReadRegistry}, ""},
		{[]string{ScopeWriteRegistry}, ""},
		{[]string{ScopeReadVirtualRegistry, ScopeReadRegistry}, ""},
		{[]string{ScopeWriteVirtualRegistry, ScopeWriteRegistry}, ""},
		{nil, "lacks the read_registry scope"},
		{[]string{ScopeReadVirtualRegistry}, "lacks the read_registry scope"},
		{[]string{ScopeWriteVirtualRegistry}, "lacks the write_registry scope"},
	}
	for _, c := range cases {
		p := Principal{Token: &store.Token{Kind: store.TokenGroup, Scopes: c.scopes}}
		got := missingPullScope(p.HasScope)
		if (c.says == "") != (got == "") || !strings.Contains(got, c.says) {
			t.Errorf("scopes %q: %q, want %q", c.scopes, got, c.says)
		}
	}
}

func TestPrincipalHasScope(t *testing.T) {
	t.Parallel()
	u := &store.User{ID: 1, Username: "alice"}
	cases := []struct {
		name string
		p    Principal
		want map[string]bool
	}{
		{"password sign-in has every scope", Principal{User: u},
			map[string]bool{ScopeAPI: true, ScopeReadRegistry: true, ScopeWriteVirtualRegistry: true}},
		{"token has its own scopes only", Principal{User: u, Token: &store.Token{Scopes: []string{ScopeReadRegistry}}},
			map[string]bool{ScopeAPI: false, ScopeReadRegistry: true, ScopeWriteRegistry: false}},
		{"nobody has none", Principal{}, map[string]bool{ScopeAPI: false, ScopeReadRegistry: false}},
	}
	for _, c := range cases {
		for scope, want := range c.want {
			if got := c.p.HasScope(scope); got != want {
				t.Errorf("%s: HasScope(%s) = %v, want %v", c.name, scope, got, want)
			}
		}
	}
}

func TestPrincipalNames(t *testing.T) {
	t.Parallel()
	u := &store.User{ID: 7, Username: "alice", Admin: true}
	cases := []struct {
		name          string
		p             Principal
		subject, disp string
		admin         bool
	}{
		{"password", Principal{User: u}, "user:7", "alice", true},
		{"personal token", Principal{User: u, Token: &store.Token{ID: 3, Kind: store.TokenPersonal}}, "token:3", "alice", true},
		{"group token", Principal{Token: &store.Token{ID: 4, Kind: store.TokenGroup}}, "token:4", "group-token-4", false},
		{"deploy token", Principal{Token: &store.Token{ID: 5, Kind: store.TokenDeploy, Username: "ci"}}, "token:5", "ci", false},
		{"nobody", Principal{}, "", "", false},
	}
	for _, c := range cases {
		if got := c.p.Subject(); got != c.subject {
			t.Errorf("%s: Subject() = %q, want %q", c.name, got, c.subject)
		}
		if got := c.p.Name(); got != c.disp {
			t.Errorf("%s: Name() = %q, want %q", c.name, got, c.disp)
		}
		if got := c.p.IsAdmin(); got != c.admin {
			t.Errorf("%s: IsAdmin() = %v, want %v", c.name, got, c.admin)
		}
		if got := c.p.IsZero(); got != (c.subject == "") {
			t.Errorf("%s: IsZero() = %v", c.name, got)
		}
	}
}
