package adminclient

import (
	"context"

	graphql "github.com/hasura/go-graphql-client"
)

// BrowseGroup is a group as the cache browser lists it: the summary, its
// TTL policy and its container virtual registries.
type BrowseGroup struct {
	GroupSummary
	TTLPolicy         *TTLPolicy        `json:"dependencyProxyImageTtlPolicy" graphql:"dependencyProxyImageTtlPolicy"`
	VirtualRegistries []VirtualRegistry `json:"containerVirtualRegistries" graphql:"containerVirtualRegistries"`
}

// BrowseGroups returns every group the caller can read with its TTL
// policy, ordered by full path.
func (c *Client) BrowseGroups(ctx context.Context) ([]BrowseGroup, error) {
	return Collect(0, func(p Page) ([]BrowseGroup, PageInfo, error) {
		var q struct {
			Groups struct {
				Nodes    []BrowseGroup
				PageInfo PageInfo
			} `graphql:"groups(first: $first, after: $after)"`
		}
		if err := c.query(ctx, &q, p.vars(map[string]any{})); err != nil {
			return nil, PageInfo{}, err
		}
		return q.Groups.Nodes, q.Groups.PageInfo, nil
	})
}

// ManifestWithContent is a cached manifest with its exact bytes.
type ManifestWithContent struct {
	Manifest
	Content string `json:"content"`
}

// BrowseManifests returns up to limit of a group's cached manifests,
// newest first, with their bytes (0: all).
func (c *Client) BrowseManifests(ctx context.Context, group string, limit int) ([]ManifestWithContent, error) {
	return Collect(limit, func(p Page) ([]ManifestWithContent, PageInfo, error) {
		var q struct {
			Group *struct {
				Manifests struct {
					Nodes    []ManifestWithContent
					PageInfo PageInfo
				} `graphql:"dependencyProxyManifests(first: $first, after: $after)"`
			} `graphql:"group(fullPath: $path)"`
		}
		if err := c.query(ctx, &q, p.vars(map[string]any{"path": graphql.ID(group)})); err != nil {
			return nil, PageInfo{}, err
		}
		if q.Group == nil {
			return nil, PageInfo{}, &NotFoundError{Kind: "group", Name: group}
		}
		return q.Group.Manifests.Nodes, q.Group.Manifests.PageInfo, nil
	})
}

// BrowseBlobs returns up to limit of a group's cached blob references,
// newest first (0: all).
func (c *Client) BrowseBlobs(ctx context.Context, group string, limit int) ([]Blob, error) {
	return Collect(limit, func(p Page) ([]Blob, PageInfo, error) {
		r, err := c.Blobs(ctx, group, p)
		return r.Blobs, r.PageInfo, err
	})
}
