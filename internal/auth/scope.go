package auth

import (
	"fmt"
	"slices"
	"strings"
)

// Token scopes, as GitLab names them.
const (
	ScopeAPI                  = "api"
	ScopeReadRegistry         = "read_registry"
	ScopeWriteRegistry        = "write_registry"
	ScopeReadVirtualRegistry  = "read_virtual_registry"
	ScopeWriteVirtualRegistry = "write_virtual_registry"
)

// ScopeNames returns every valid token scope.
func ScopeNames() []string {
	return []string{ScopeAPI, ScopeReadRegistry, ScopeWriteRegistry, ScopeReadVirtualRegistry, ScopeWriteVirtualRegistry}
}

// ValidateScopes checks the scopes of a token about to be created: at least
// one, each a valid scope name. The error names the first unknown scope.
func ValidateScopes(scopes []string) error {
	if len(scopes) == 0 {
		return fmt.Errorf("a token needs at least one scope: %s", strings.Join(ScopeNames(), ", "))
	}
	for _, s := range scopes {
		if !slices.Contains(ScopeNames(), s) {
			return fmt.Errorf("unknown token scope %q: use %s", s, strings.Join(ScopeNames(), ", "))
		}
	}
	return nil
}

// missingPullScope returns "" when scopes allow pulling from a dependency
// proxy, else an explanation naming the missing scope. Pulling needs api,
// read_registry or write_registry; a virtual-registry scope counts only
// together with its registry scope (as GitLab), which the rule already
// covers, so a virtual-registry scope alone gets a pointed message.
func missingPullScope(has func(string) bool) string {
	switch {
	case has(ScopeAPI), has(ScopeReadRegistry), has(ScopeWriteRegistry):
		return ""
	case has(ScopeReadVirtualRegistry):
		return "token has the read_virtual_registry scope but lacks the read_registry scope it needs with it"
	case has(ScopeWriteVirtualRegistry):
		return "token has the write_virtual_registry scope but lacks the write_registry scope it needs with it"
	}
	return "token lacks the read_registry scope (pulling needs api, read_registry or write_registry)"
}

// Access is one entry of a JWT's access list: actions on a resource, as in
// the Docker token specification.
type Access struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// ParseScope parses a Docker token scope, "<type>:<name>:<actions>", where
// actions are comma-separated and the name may itself contain colons
// ("repository:localhost:5000/foo:pull"). Empty actions are dropped.
func ParseScope(s string) (Access, error) {
	typ, rest, ok := strings.Cut(s, ":")
	i := strings.LastIndexByte(rest, ':')
	if !ok || i < 0 {
		return Access{}, fmt.Errorf("parse scope %q: want <type>:<name>:<actions>", s)
	}
	name, actions := rest[:i], rest[i+1:]
	if typ == "" || name == "" {
		return Access{}, fmt.Errorf("parse scope %q: empty resource type or name", s)
	}
	a := Access{Type: typ, Name: name}
	for _, act := range strings.Split(actions, ",") {
		if act = strings.TrimSpace(act); act != "" {
			a.Actions = append(a.Actions, act)
		}
	}
	if len(a.Actions) == 0 {
		return Access{}, fmt.Errorf("parse scope %q: no actions", s)
	}
	return a, nil
}
