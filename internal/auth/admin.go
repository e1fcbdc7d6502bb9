package auth

import (
	"context"
	"errors"
	"fmt"

	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/store"
)

// Kind names what a principal signed in with, as the admin API reports it.
func (p Principal) Kind() string {
	switch {
	case p.Token == nil && p.User != nil:
		return "USER"
	case p.Token == nil:
		return ""
	case p.Token.Kind == store.TokenPersonal:
		return "PERSONAL_ACCESS_TOKEN"
	case p.Token.Kind == store.TokenGroup:
		return "GROUP_ACCESS_TOKEN"
	}
	return "DEPLOY_TOKEN"
}

// AuthorizeAPI decides whether p may use the admin API at all: it needs a
// token (or password sign-in) with the api scope, and deploy tokens never
// have admin access. Failures wrap oci.ErrUnauthorized and say what is
// missing.
func AuthorizeAPI(p Principal) error {
	switch {
	case p.IsZero():
		return fmt.Errorf("%w: the admin API needs an access token with the api scope in an Authorization: Bearer header", oci.ErrUnauthorized)
	case p.Token != nil && p.Token.Kind == store.TokenDeploy:
		return fmt.Errorf("%w: deploy tokens cannot use the admin API; use a personal or group access token with the api scope", oci.ErrUnauthorized)
	case !p.HasScope(ScopeAPI):
		return fmt.Errorf("%w: the token lacks the api scope the admin API needs", oci.ErrUnauthorized)
	}
	return nil
}

// RequireAdmin returns nil when p is an instance admin, else an error
// wrapping oci.ErrDenied: "<action> needs an instance admin; you are <name>".
func RequireAdmin(p Principal, action string) error {
	if p.IsAdmin() {
		return nil
	}
	return fmt.Errorf("%w: %s needs an instance admin; you are %s", oci.ErrDenied, action, p.Name())
}

// GroupRole returns p's role in g for administration: a user's effective
// role (inherited from ancestors), a group access token's role within its
// group and subgroups, RoleNone otherwise (deploy tokens, other groups).
// Instance admins get their membership role, which may be RoleNone: check
// IsAdmin separately.
func (s *Service) GroupRole(ctx context.Context, p Principal, g store.Group) (store.Role, error) {
	switch {
	case p.User != nil:
		r, err := s.accounts.EffectiveRole(ctx, p.User.ID, g.ID)
		if err != nil {
			return store.RoleNone, fmt.Errorf("role of %s in group %s: %w", p.Name(), g.Path, err)
		}
		return r, nil
	case p.Token != nil && p.Token.Kind == store.TokenGroup:
		in, err := s.accounts.IsAncestorOrSelf(ctx, p.Token.GroupID, g.ID)
		if err != nil {
			return store.RoleNone, fmt.Errorf("role of %s in group %s: %w", p.Name(), g.Path, err)
		}
		if in {
			return p.Token.Role, nil
		}
	}
	return store.RoleNone, nil
}

// GroupNotFound is the one answer for a group that does not exist and a
// group the principal may not see, so the two cannot be told apart.
func GroupNotFound(path string) error {
	return fmt.Errorf("%w: group %q not found", oci.ErrNameUnknown, path)
}

// AuthorizeGroup decides whether p may do action (a phrase such as
// "changing the dependency proxy settings") to the group at path, which
// needs role need, and returns the group and p's role in it.
//
//   - Instance admins may do everything (their role may be RoleNone).
//   - A group p cannot read (below guest) and an unknown group give the
//     same error wrapping oci.ErrNameUnknown (GroupNotFound).
//   - A readable group where p's role is below need gives an error
//     wrapping oci.ErrDenied: "<action> of <path> needs the <need> role;
//     you are <role>".
func (s *Service) AuthorizeGroup(ctx context.Context, p Principal, path string, need store.Role, action string) (store.Group, store.Role, error) {
	g, err := s.accounts.GroupByPath(ctx, path)
	if errors.Is(err, store.ErrNotFound) {
		return store.Group{}, store.RoleNone, GroupNotFound(path)
	}
	if err != nil {
		return store.Group{}, store.RoleNone, fmt.Errorf("look up group %q: %w", path, err)
	}
	role, err := s.GroupRole(ctx, p, g)
	if err != nil {
		return store.Group{}, store.RoleNone, err
	}
	if p.IsAdmin() {
		return g, role, nil
	}
	if role < store.RoleGuest {
		return store.Group{}, store.RoleNone, GroupNotFound(path)
	}
	if role < need {
		return store.Group{}, store.RoleNone, fmt.Errorf("%w: %s of %s needs the %s role; you are %s",
			oci.ErrDenied, action, g.Path, need, role)
	}
	return g, role, nil
}

// ReadableGroups returns the groups of all (ordered by path, parents
// before subgroups) that p may read: every group for an instance admin;
// for a user, the groups where their effective role (from memberships, the
// user's direct memberships) is at least guest; for a group access token
// with at least the guest role, its group and subgroups; none otherwise.
func ReadableGroups(p Principal, all []store.Group, memberships []store.Member) []store.Group {
	if p.IsAdmin() {
		return all
	}
	direct := make(map[int64]store.Role, len(memberships))
	if p.User != nil {
		for _, m := range memberships {
			if m.UserID == p.User.ID {
				direct[m.GroupID] = max(direct[m.GroupID], m.Role)
			}
		}
	} else if p.Token != nil && p.Token.Kind == store.TokenGroup {
		direct[p.Token.GroupID] = p.Token.Role
	}
	// Parents come first, so a group's effective role is its parent's
	// (already computed) or its own direct role, whichever is higher.
	effective := make(map[int64]store.Role, len(all))
	var out []store.Group
	for _, g := range all {
		r := max(direct[g.ID], effective[g.ParentID])
		effective[g.ID] = r
		if r >= store.RoleGuest {
			out = append(out, g)
		}
	}
	return out
}
