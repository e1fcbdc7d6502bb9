package graphql

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/dproxy/dproxy/internal/auth"
	"github.com/dproxy/dproxy/internal/server/graphql/generated"
	"github.com/dproxy/dproxy/internal/store"
)

// resolver implements generated.ResolverRoot on a Handler.
type resolver struct{ h *Handler }

func (r *resolver) Query() generated.QueryResolver       { return queryResolver{r.h} }
func (r *resolver) Mutation() generated.MutationResolver { return mutationResolver{r.h} }
func (r *resolver) Group() generated.GroupResolver       { return groupResolver{r.h} }

type queryResolver struct{ h *Handler }

func (q queryResolver) CurrentUser(ctx context.Context) (*generated.CurrentUser, error) {
	p := principal(ctx)
	out := &generated.CurrentUser{Username: p.Name(), Admin: p.IsAdmin(), Kind: p.Kind(), Scopes: []string{}}
	if p.Token != nil {
		out.Scopes = append(out.Scopes, p.Token.Scopes...)
		if p.Token.Kind != store.TokenPersonal {
			out.Username = p.Token.Name
		}
	} else {
		out.Scopes = auth.ScopeNames()
	}
	return out, nil
}

// Group answers null and an error alike for an unknown group and one the
// principal may not read.
func (q queryResolver) Group(ctx context.Context, fullPath string) (*generated.Group, error) {
	g, _, err := q.h.auth.AuthorizeGroup(ctx, principal(ctx), fullPath, store.RoleGuest, "reading the group")
	if err != nil {
		return nil, err
	}
	return groupNode(g), nil
}

func (q queryResolver) Groups(ctx context.Context, search *string, first *int, after *string) (*generated.GroupConnection, error) {
	n, err := pageSize(first)
	if err != nil {
		return nil, err
	}
	from, hasPrev, err := decodeCursor("g", after)
	if err != nil {
		return nil, err
	}
	groups, err := q.h.readableGroups(ctx, principal(ctx))
	if err != nil {
		return nil, err
	}
	var sel []store.Group
	for _, g := range groups {
		if hasPrev && g.Path <= from {
			continue
		}
		if search != nil && !strings.Contains(strings.ToLower(g.Path), strings.ToLower(*search)) {
			continue
		}
		sel = append(sel, g)
		if len(sel) > n {
			break
		}
	}
	items, cursors, info := pageOf(sel, n, hasPrev, func(g store.Group) string { return encodeCursor("g", g.Path) })
	out := &generated.GroupConnection{PageInfo: info, Nodes: []*generated.Group{}, Edges: []*generated.GroupEdge{}}
	for i, g := range items {
		node := groupNode(g)
		out.Nodes = append(out.Nodes, node)
		out.Edges = append(out.Edges, &generated.GroupEdge{Cursor: cursors[i], Node: node})
	}
	return out, nil
}

// readableGroups returns the groups the principal may read, by path.
func (h *Handler) readableGroups(ctx context.Context, p auth.Principal) ([]store.Group, error) {
	all, err := h.store.Groups(ctx)
	if err != nil {
		return nil, err
	}
	var ms []store.Member
	if p.User != nil && !p.IsAdmin() {
		if ms, err = h.store.MembershipsOfUser(ctx, p.User.ID); err != nil {
			return nil, err
		}
	}
	return auth.ReadableGroups(p, all, ms), nil
}

func (q queryResolver) Users(ctx context.Context, first *int, after *string) (*generated.UserConnection, error) {
	if err := auth.RequireAdmin(principal(ctx), "listing users"); err != nil {
		return nil, err
	}
	n, err := pageSize(first)
	if err != nil {
		return nil, err
	}
	from, hasPrev, err := decodeCursor("u", after)
	if err != nil {
		return nil, err
	}
	users, err := q.h.store.Users(ctx)
	if err != nil {
		return nil, err
	}
	if hasPrev {
		i, _ := slices.BinarySearchFunc(users, from, func(u store.User, s string) int { return strings.Compare(u.Username, s) })
		for i < len(users) && users[i].Username <= from {
			i++
		}
		users = users[i:]
	}
	users = users[:min(len(users), n+1)]
	items, cursors, info := pageOf(users, n, hasPrev, func(u store.User) string { return encodeCursor("u", u.Username) })
	out := &generated.UserConnection{PageInfo: info, Nodes: []*generated.User{}, Edges: []*generated.UserEdge{}}
	for i, u := range items {
		node := userNode(u)
		out.Nodes = append(out.Nodes, node)
		out.Edges = append(out.Edges, &generated.UserEdge{Cursor: cursors[i], Node: node})
	}
	return out, nil
}

// userNotFound is the answer for an unknown user and one the principal may
// not see.
func userNotFound(username string) error { return fail(fmt.Sprintf("user %q not found", username)) }

func (q queryResolver) User(ctx context.Context, username string) (*generated.User, error) {
	p := principal(ctx)
	if !p.IsAdmin() && (p.User == nil || p.User.Username != username) {
		return nil, userNotFound(username)
	}
	u, err := q.h.store.UserByUsername(ctx, username)
	if errors.Is(err, store.ErrNotFound) {
		return nil, userNotFound(username)
	}
	if err != nil {
		return nil, err
	}
	return userNode(u), nil
}

func (q queryResolver) Tokens(ctx context.Context, username *string, groupPath *string) ([]generated.AccessToken, error) {
	p := principal(ctx)
	var toks []store.Token
	switch {
	case username != nil && groupPath != nil:
		return nil, fail("pass username or groupPath, not both")
	case groupPath != nil:
		g, _, err := q.h.auth.AuthorizeGroup(ctx, p, *groupPath, store.RoleOwner, "listing the tokens")
		if err != nil {
			return nil, err
		}
		if toks, err = q.h.store.TokensOfGroup(ctx, g.ID); err != nil {
			return nil, err
		}
	default:
		u, err := q.h.tokenUser(ctx, p, username, "listing the tokens of another user")
		if err != nil {
			return nil, err
		}
		if toks, err = q.h.store.TokensOfUser(ctx, u.ID); err != nil {
			return nil, err
		}
	}
	out := make([]generated.AccessToken, 0, len(toks))
	for i := len(toks) - 1; i >= 0; i-- { // newest first
		node, err := q.h.tokenNode(ctx, toks[i])
		if err != nil {
			return nil, err
		}
		out = append(out, *node)
	}
	return out, nil
}

// tokenUser resolves the user whose personal tokens a request is about:
// the named one (an instance admin, or the user themself) or the
// principal's own.
func (h *Handler) tokenUser(ctx context.Context, p auth.Principal, username *string, action string) (store.User, error) {
	if username == nil || (p.User != nil && p.User.Username == *username) {
		if p.User == nil {
			return store.User{}, fail("a group access token has no personal tokens; pass username or groupPath")
		}
		return *p.User, nil
	}
	if err := auth.RequireAdmin(p, action); err != nil {
		return store.User{}, err
	}
	u, err := h.store.UserByUsername(ctx, *username)
	if errors.Is(err, store.ErrNotFound) {
		return store.User{}, userNotFound(*username)
	}
	return u, err
}

// tokenNode loads the names a token's node shows.
func (h *Handler) tokenNode(ctx context.Context, t store.Token) (*generated.AccessToken, error) {
	var username, groupPath string
	if t.UserID != 0 {
		u, err := h.store.UserByID(ctx, t.UserID)
		if err != nil {
			return nil, err
		}
		username = u.Username
	}
	if t.GroupID != 0 {
		g, err := h.store.GroupByID(ctx, t.GroupID)
		if err != nil {
			return nil, err
		}
		groupPath = g.Path
	}
	now := h.opts.Now()
	active := t.RevokedAt == nil && (t.ExpiresAt == nil || now.Before(*t.ExpiresAt))
	return tokenNode(t, username, groupPath, active), nil
}

func (q queryResolver) InstanceDockerHubCredentials(ctx context.Context) (*generated.DockerHubCredentials, error) {
	if err := auth.RequireAdmin(principal(ctx), "reading the instance Docker Hub credentials"); err != nil {
		return nil, err
	}
	c, err := q.h.store.DefaultHubCredentials(ctx)
	if err != nil {
		return nil, err
	}
	return credentialsNode(c), nil
}
