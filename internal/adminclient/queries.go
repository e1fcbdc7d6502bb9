package adminclient

import (
	"context"

	graphql "github.com/hasura/go-graphql-client"
)

// CurrentUser returns who the token signs in as; login uses it to verify a
// token before saving it.
func (c *Client) CurrentUser(ctx context.Context) (CurrentUser, error) {
	var q struct {
		CurrentUser CurrentUser
	}
	if err := c.query(ctx, &q, nil); err != nil {
		return CurrentUser{}, err
	}
	return q.CurrentUser, nil
}

// UpstreamRateLimits returns the upstream rate limits the server last saw,
// one per credential (only the anonymous one unless the caller is an
// instance admin).
func (c *Client) UpstreamRateLimits(ctx context.Context) ([]UpstreamRateLimit, error) {
	var q struct {
		UpstreamRateLimits []UpstreamRateLimit
	}
	if err := c.query(ctx, &q, nil); err != nil {
		return nil, err
	}
	return q.UpstreamRateLimits, nil
}

// DockerHubRateLimit has the server check the upstream's pull rate limit
// with the credentials a pull in groupPath would use ("" = the instance
// default, else anonymous).
func (c *Client) DockerHubRateLimit(ctx context.Context, groupPath string) (DockerHubRateLimit, error) {
	var q struct {
		DockerHubRateLimit DockerHubRateLimit `graphql:"dockerHubRateLimit(groupPath: $groupPath)"`
	}
	var g *graphql.ID
	if groupPath != "" {
		id := graphql.ID(groupPath)
		g = &id
	}
	if err := c.query(ctx, &q, map[string]any{"groupPath": g}); err != nil {
		return DockerHubRateLimit{}, err
	}
	return q.DockerHubRateLimit, nil
}

// GroupPage is one page of groups.
type GroupPage struct {
	Groups   []GroupSummary
	PageInfo PageInfo
}

// Groups returns a page of the groups the caller can read, ordered by full
// path, optionally only those whose path contains search.
func (c *Client) Groups(ctx context.Context, search string, p Page) (GroupPage, error) {
	var q struct {
		Groups struct {
			Nodes    []GroupSummary
			PageInfo PageInfo
		} `graphql:"groups(search: $search, first: $first, after: $after)"`
	}
	var s *string
	if search != "" {
		s = &search
	}
	if err := c.query(ctx, &q, p.vars(map[string]any{"search": s})); err != nil {
		return GroupPage{}, err
	}
	return GroupPage{Groups: q.Groups.Nodes, PageInfo: q.Groups.PageInfo}, nil
}

// AllGroups returns every group the caller can read, following pages.
func (c *Client) AllGroups(ctx context.Context, search string) ([]GroupSummary, error) {
	return Collect(0, func(p Page) ([]GroupSummary, PageInfo, error) {
		r, err := c.Groups(ctx, search, p)
		return r.Groups, r.PageInfo, err
	})
}

// maxPage is the page size Collect asks for (the server's maximum).
const maxPage = 100

// Collect follows the pages of a connection until it has limit items
// (0: all of them) or the last page. It returns an empty, non-nil slice
// when there are none.
func Collect[T any](limit int, page func(Page) ([]T, PageInfo, error)) ([]T, error) {
	all := []T{}
	p := Page{First: maxPage}
	for {
		if limit > 0 {
			p.First = min(maxPage, limit-len(all))
		}
		items, info, err := page(p)
		if err != nil {
			return nil, err
		}
		all = append(all, items...)
		if !info.HasNextPage || info.EndCursor == "" || (limit > 0 && len(all) >= limit) {
			return all, nil
		}
		p.After = info.EndCursor
	}
}

// Group returns one group; a NotFoundError when it does not exist or the
// caller cannot read it.
func (c *Client) Group(ctx context.Context, path string) (Group, error) {
	var q struct {
		Group *Group `graphql:"group(fullPath: $path)"`
	}
	if err := c.query(ctx, &q, map[string]any{"path": graphql.ID(path)}); err != nil {
		return Group{}, err
	}
	if q.Group == nil {
		return Group{}, &NotFoundError{Kind: "group", Name: path}
	}
	return *q.Group, nil
}

// ManifestPage is one page of a group's cached manifests, newest first.
type ManifestPage struct {
	Manifests []Manifest
	PageInfo  PageInfo
}

// Manifests returns a page of a group's cached manifests.
func (c *Client) Manifests(ctx context.Context, group string, p Page) (ManifestPage, error) {
	var q struct {
		Group *struct {
			Manifests struct {
				Nodes    []Manifest
				PageInfo PageInfo
			} `graphql:"dependencyProxyManifests(first: $first, after: $after)"`
		} `graphql:"group(fullPath: $path)"`
	}
	if err := c.query(ctx, &q, p.vars(map[string]any{"path": graphql.ID(group)})); err != nil {
		return ManifestPage{}, err
	}
	if q.Group == nil {
		return ManifestPage{}, &NotFoundError{Kind: "group", Name: group}
	}
	return ManifestPage{Manifests: q.Group.Manifests.Nodes, PageInfo: q.Group.Manifests.PageInfo}, nil
}

// BlobPage is one page of a group's cached blob references, newest first.
type BlobPage struct {
	Blobs    []Blob
	PageInfo PageInfo
}

// Blobs returns a page of a group's cached blob references.
func (c *Client) Blobs(ctx context.Context, group string, p Page) (BlobPage, error) {
	var q struct {
		Group *struct {
			Blobs struct {
				Nodes    []Blob
				PageInfo PageInfo
			} `graphql:"dependencyProxyBlobs(first: $first, after: $after)"`
		} `graphql:"group(fullPath: $path)"`
	}
	if err := c.query(ctx, &q, p.vars(map[string]any{"path": graphql.ID(group)})); err != nil {
		return BlobPage{}, err
	}
	if q.Group == nil {
		return BlobPage{}, &NotFoundError{Kind: "group", Name: group}
	}
	return BlobPage{Blobs: q.Group.Blobs.Nodes, PageInfo: q.Group.Blobs.PageInfo}, nil
}

// Members returns a group's direct members.
func (c *Client) Members(ctx context.Context, group string) ([]Member, error) {
	var q struct {
		Group *struct {
			Members []Member
		} `graphql:"group(fullPath: $path)"`
	}
	if err := c.query(ctx, &q, map[string]any{"path": graphql.ID(group)}); err != nil {
		return nil, err
	}
	if q.Group == nil {
		return nil, &NotFoundError{Kind: "group", Name: group}
	}
	return q.Group.Members, nil
}

// UserPage is one page of users, ordered by username.
type UserPage struct {
	Users    []User
	PageInfo PageInfo
}

// Users returns a page of users (instance admins only).
func (c *Client) Users(ctx context.Context, p Page) (UserPage, error) {
	var q struct {
		Users struct {
			Nodes    []User
			PageInfo PageInfo
		} `graphql:"users(first: $first, after: $after)"`
	}
	if err := c.query(ctx, &q, p.vars(map[string]any{})); err != nil {
		return UserPage{}, err
	}
	return UserPage{Users: q.Users.Nodes, PageInfo: q.Users.PageInfo}, nil
}

// AllUsers returns every user, following pages.
func (c *Client) AllUsers(ctx context.Context) ([]User, error) {
	return Collect(0, func(p Page) ([]User, PageInfo, error) {
		r, err := c.Users(ctx, p)
		return r.Users, r.PageInfo, err
	})
}

// User returns one user; a NotFoundError when there is none.
func (c *Client) User(ctx context.Context, username string) (User, error) {
	var q struct {
		User *User `graphql:"user(username: $username)"`
	}
	if err := c.query(ctx, &q, map[string]any{"username": username}); err != nil {
		return User{}, err
	}
	if q.User == nil {
		return User{}, &NotFoundError{Kind: "user", Name: username}
	}
	return *q.User, nil
}

// TokenFilter selects whose tokens Tokens lists: a user's personal tokens
// (Username), a group's access and deploy tokens (GroupPath), or, with
// neither, the caller's own personal tokens.
type TokenFilter struct {
	Username  string
	GroupPath string
}

// Tokens lists tokens, newest first, without secrets.
func (c *Client) Tokens(ctx context.Context, f TokenFilter) ([]Token, error) {
	var q struct {
		Tokens []Token `graphql:"tokens(username: $username, groupPath: $groupPath)"`
	}
	var user *string
	if f.Username != "" {
		user = &f.Username
	}
	var group *graphql.ID
	if f.GroupPath != "" {
		group = graphql.NewID(f.GroupPath)
	}
	if err := c.query(ctx, &q, map[string]any{"username": user, "groupPath": group}); err != nil {
		return nil, err
	}
	return q.Tokens, nil
}

// InstanceDockerHubCredentials returns the instance default Docker Hub
// identity (instance admins only).
func (c *Client) InstanceDockerHubCredentials(ctx context.Context) (DockerHubCredentials, error) {
	var q struct {
		Creds DockerHubCredentials `graphql:"instanceDockerHubCredentials"`
	}
	if err := c.query(ctx, &q, nil); err != nil {
		return DockerHubCredentials{}, err
	}
	return q.Creds, nil
}
