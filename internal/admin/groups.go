package admin

import (
	"context"
	"errors"
	"strings"

	"github.com/dproxy/dproxy/internal/auth"
	"github.com/dproxy/dproxy/internal/store"
)

// Group returns the group at path when the actor may read it (guest). An
// unknown group and one the actor may not read give the same ErrNotFound.
func (s *Service) Group(ctx context.Context, a Actor, path string) (Group, error) {
	g, err := s.authorizeGroup(ctx, a, path, store.RoleGuest, "reading the group")
	if err != nil {
		return Group{}, err
	}
	rememberReadable(ctx, a, g)
	return groupOf(g), nil
}

// GroupByID is Group by the group's id.
func (s *Service) GroupByID(ctx context.Context, a Actor, id int64) (Group, error) {
	g, err := s.readableGroup(ctx, a, id)
	return groupOf(g), err
}

// GroupQuery selects groups, ordered by path.
type GroupQuery struct {
	// Search keeps the groups whose path contains it, ignoring case.
	Search string
	// After keeps the groups whose path sorts after it.
	After string
	// Limit bounds the result (0: no bound).
	Limit int
}

// Groups returns the groups the actor may read, by path (parents before
// their subgroups).
func (s *Service) Groups(ctx context.Context, a Actor, q GroupQuery) ([]Group, error) {
	readable, all, err := s.readableGroups(ctx, a)
	if err != nil {
		return nil, err
	}
	search := strings.ToLower(q.Search)
	var sel []store.Group
	for _, g := range readable {
		if q.After != "" && g.Path <= q.After {
			continue
		}
		if search != "" && !strings.Contains(strings.ToLower(g.Path), search) {
			continue
		}
		sel = append(sel, g)
		if q.Limit > 0 && len(sel) >= q.Limit {
			break
		}
	}
	rememberReadable(ctx, a, sel...)
	show(ctx, a, sel, all)
	out := make([]Group, len(sel))
	for i, g := range sel {
		out[i] = groupOf(g)
	}
	return out, nil
}

// readableGroups returns the groups the actor may read and all groups,
// by path.
func (s *Service) readableGroups(ctx context.Context, a Actor) (readable, all []store.Group, err error) {
	if all, err = s.store.Groups(ctx); err != nil {
		return nil, nil, err
	}
	var ms []store.Member
	if a.User != nil && !a.IsAdmin() {
		if ms, err = s.store.MembershipsOfUser(ctx, a.User.ID); err != nil {
			return nil, nil, err
		}
	}
	return auth.ReadableGroups(a, all, ms), all, nil
}

// Subgroups returns the direct subgroups of a group the actor may read, by
// path. Within a request scope the subgroups of every group of the
// group's cohort are found at once (batch.go).
func (s *Service) Subgroups(ctx context.Context, a Actor, groupID int64) ([]Group, error) {
	g, err := s.readableGroup(ctx, a, groupID)
	if err != nil {
		return nil, err
	}
	subs, err := s.subgroupsOf(ctx, a, g)
	if err != nil {
		return nil, err
	}
	out := make([]Group, 0, len(subs))
	for _, sub := range subs {
		out = append(out, groupOf(sub))
	}
	return out, nil
}

// MyRole is the actor's role in a group it may read: its effective role,
// RoleNone for an instance admin who is not a member.
func (s *Service) MyRole(ctx context.Context, a Actor, groupID int64) (Role, error) {
	g, err := s.readableGroup(ctx, a, groupID)
	if err != nil {
		return RoleNone, err
	}
	return s.auth.GroupRole(ctx, a, g)
}

// CreateGroup creates a group: a top-level group needs an instance admin,
// a subgroup the owner role in its parent. The group starts with its
// dependency proxy enabled and its TTL policy at the defaults.
func (s *Service) CreateGroup(ctx context.Context, a Actor, path string) (Group, error) {
	path = strings.TrimSpace(path)
	parent := ""
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		parent = path[:i]
	}
	if parent == "" {
		if err := s.requireAdmin(a, "creating a top-level group"); err != nil {
			return Group{}, err
		}
	} else if _, err := s.authorizeGroup(ctx, a, parent, store.RoleOwner, "creating a subgroup"); err != nil {
		return Group{}, err
	}
	if err := validateGroupPath(path); err != nil {
		return Group{}, err
	}
	g, err := s.store.CreateGroup(ctx, path)
	switch {
	case errors.Is(err, store.ErrConflict):
		return Group{}, refuse(ErrConflict, "group %q already exists", path)
	case errors.Is(err, store.ErrNotFound): // the parent went away meanwhile
		return Group{}, fromAuth(auth.GroupNotFound(parent))
	case err != nil:
		return Group{}, err
	}
	s.log.InfoContext(ctx, "group created", "group", g.Path, "by", a.Name())
	return groupOf(g), nil
}

// DeleteGroup deletes a group with its subgroups and everything in them
// (owner). Their cached files go at the next collection.
func (s *Service) DeleteGroup(ctx context.Context, a Actor, path string) error {
	g, err := s.authorizeGroup(ctx, a, path, store.RoleOwner, "deleting the group")
	if err != nil {
		return err
	}
	all, err := s.store.Groups(ctx)
	if err != nil {
		return err
	}
	scope := cacheScope{}
	for _, sub := range all {
		if sub.ID == g.ID || strings.HasPrefix(sub.Path, g.Path+"/") {
			scope.groups = append(scope.groups, sub.ID)
		}
	}
	// Virtual registries belong to top-level groups: their upstreams'
	// caches go with the group.
	rs, err := s.store.VirtualRegistriesOfGroup(ctx, g.ID)
	if err != nil {
		return err
	}
	for _, r := range rs {
		us, err := s.store.VirtualUpstreams(ctx, r.ID)
		if err != nil {
			return err
		}
		for _, u := range us {
			scope.upstreams = append(scope.upstreams, u.ID)
		}
	}
	err = s.dropCached(ctx, scope, func(ctx context.Context) error {
		if err := s.store.DeleteGroup(ctx, g.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.log.InfoContext(ctx, "group deleted", "group", g.Path, "by", a.Name())
	return nil
}

// Members returns the direct members of a group the actor may read.
func (s *Service) Members(ctx context.Context, a Actor, groupID int64) ([]Member, error) {
	if _, err := s.readableGroup(ctx, a, groupID); err != nil {
		return nil, err
	}
	return s.store.Members(ctx, groupID)
}

// SetMember gives a user a role in a group, replacing any role they had
// there (owner).
func (s *Service) SetMember(ctx context.Context, a Actor, groupPath, username string, role Role) (Member, error) {
	g, err := s.authorizeGroup(ctx, a, groupPath, store.RoleOwner, "managing members")
	if err != nil {
		return Member{}, err
	}
	u, err := s.lookupUser(ctx, username)
	if err != nil {
		return Member{}, err
	}
	if !role.Valid() {
		return Member{}, invalid("unknown role %q: use one of minimal_access, guest, reporter, developer, maintainer, owner", role)
	}
	if err := s.store.SetMember(ctx, g.ID, u.ID, role); err != nil {
		return Member{}, err
	}
	s.log.InfoContext(ctx, "member set", "group", g.Path, "user", u.Username, "role", role.String(), "by", a.Name())
	ms, err := s.store.Members(ctx, g.ID)
	if err != nil {
		return Member{}, err
	}
	for _, m := range ms {
		if m.UserID == u.ID {
			return m, nil
		}
	}
	return Member{}, errors.New("set member: the membership is gone after it was set")
}

// RemoveMember removes a user's direct membership of a group (owner).
func (s *Service) RemoveMember(ctx context.Context, a Actor, groupPath, username string) error {
	g, err := s.authorizeGroup(ctx, a, groupPath, store.RoleOwner, "managing members")
	if err != nil {
		return err
	}
	u, err := s.lookupUser(ctx, username)
	if err != nil {
		return err
	}
	err = s.store.RemoveMember(ctx, g.ID, u.ID)
	if errors.Is(err, store.ErrNotFound) {
		return refuse(ErrNotFound, "%s is not a direct member of %s", u.Username, g.Path)
	}
	if err != nil {
		return err
	}
	s.log.InfoContext(ctx, "member removed", "group", g.Path, "user", u.Username, "by", a.Name())
	return nil
}

// requireAdmin is auth.RequireAdmin with the Service's errors.
func (s *Service) requireAdmin(a Actor, action string) error {
	return fromAuth(auth.RequireAdmin(a, action))
}
