package graphql

import (
	"context"

	"github.com/dproxy/dproxy/internal/admin"
	"github.com/dproxy/dproxy/internal/server/graphql/generated"
)

// resolver implements generated.ResolverRoot on a Handler.
type resolver struct{ h *Handler }

func (r *resolver) Query() generated.QueryResolver       { return queryResolver{r.h} }
func (r *resolver) Mutation() generated.MutationResolver { return mutationResolver{r.h} }
func (r *resolver) Group() generated.GroupResolver       { return groupResolver{r.h} }

type queryResolver struct{ h *Handler }

func (q queryResolver) CurrentUser(ctx context.Context) (*generated.CurrentUser, error) {
	me := q.h.svc.CurrentUser(principal(ctx))
	return &generated.CurrentUser{Username: me.Username, Admin: me.Admin, Kind: me.Kind, Scopes: me.Scopes}, nil
}

// Group answers null and an error alike for an unknown group and one the
// principal may not read.
func (q queryResolver) Group(ctx context.Context, fullPath string) (*generated.Group, error) {
	g, err := q.h.svc.Group(ctx, principal(ctx), fullPath)
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
	groups, err := q.h.svc.Groups(ctx, principal(ctx), admin.GroupQuery{Search: deref(search), After: from, Limit: n + 1})
	if err != nil {
		return nil, err
	}
	items, cursors, info := pageOf(groups, n, hasPrev, func(g admin.Group) string { return encodeCursor("g", g.Path) })
	out := &generated.GroupConnection{PageInfo: info, Nodes: []*generated.Group{}, Edges: []*generated.GroupEdge{}}
	for i, g := range items {
		node := groupNode(g)
		out.Nodes = append(out.Nodes, node)
		out.Edges = append(out.Edges, &generated.GroupEdge{Cursor: cursors[i], Node: node})
	}
	return out, nil
}

func (q queryResolver) Users(ctx context.Context, first *int, after *string) (*generated.UserConnection, error) {
	n, err := pageSize(first)
	if err != nil {
		return nil, err
	}
	from, hasPrev, err := decodeCursor("u", after)
	if err != nil {
		return nil, err
	}
	users, err := q.h.svc.Users(ctx, principal(ctx), from, n+1)
	if err != nil {
		return nil, err
	}
	items, cursors, info := pageOf(users, n, hasPrev, func(u admin.User) string { return encodeCursor("u", u.Username) })
	out := &generated.UserConnection{PageInfo: info, Nodes: []*generated.User{}, Edges: []*generated.UserEdge{}}
	for i, u := range items {
		node := userNode(u)
		out.Nodes = append(out.Nodes, node)
		out.Edges = append(out.Edges, &generated.UserEdge{Cursor: cursors[i], Node: node})
	}
	return out, nil
}

func (q queryResolver) User(ctx context.Context, username string) (*generated.User, error) {
	u, err := q.h.svc.User(ctx, principal(ctx), username)
	if err != nil {
		return nil, err
	}
	return userNode(u), nil
}

func (q queryResolver) Tokens(ctx context.Context, username *string, groupPath *string) ([]generated.AccessToken, error) {
	toks, err := q.h.svc.Tokens(ctx, principal(ctx), username, groupPath)
	if err != nil {
		return nil, err
	}
	out := make([]generated.AccessToken, len(toks))
	for i, t := range toks {
		out[i] = *tokenNode(t)
	}
	return out, nil
}

func (q queryResolver) InstanceDockerHubCredentials(ctx context.Context) (*generated.DockerHubCredentials, error) {
	c, err := q.h.svc.InstanceHubCredentials(ctx, principal(ctx))
	if err != nil {
		return nil, err
	}
	return credentialsNode(c), nil
}
