package adminclient

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	graphql "github.com/hasura/go-graphql-client"
)

// VirtualRegistry is a container virtual registry with its upstreams in
// the order they are asked.
type VirtualRegistry struct {
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	Description string            `json:"description"`
	GroupPath   string            `json:"groupPath"`
	PullPrefix  string            `json:"pullPrefix"`
	Upstreams   []VirtualUpstream `json:"upstreams"`
	CreatedAt   time.Time         `json:"createdAt"`
	UpdatedAt   time.Time         `json:"updatedAt"`
}

// VirtualUpstream is one upstream of a virtual registry; the password is
// never returned, PasswordSet says whether one is stored.
type VirtualUpstream struct {
	ID                 string    `json:"id"`
	Name               string    `json:"name"`
	URL                string    `json:"url"`
	Username           string    `json:"username"`
	PasswordSet        bool      `json:"passwordSet"`
	CacheValidityHours int       `json:"cacheValidityHours"`
	Position           int       `json:"position"`
	CreatedAt          time.Time `json:"createdAt"`
	UpdatedAt          time.Time `json:"updatedAt"`
}

// VirtualRegistries returns a group's virtual registries, by name.
func (c *Client) VirtualRegistries(ctx context.Context, group string) ([]VirtualRegistry, error) {
	var q struct {
		Group *struct {
			Registries []VirtualRegistry `graphql:"containerVirtualRegistries"`
		} `graphql:"group(fullPath: $path)"`
	}
	if err := c.query(ctx, &q, map[string]any{"path": graphql.ID(group)}); err != nil {
		return nil, err
	}
	if q.Group == nil {
		return nil, &NotFoundError{Kind: "group", Name: group}
	}
	return q.Group.Registries, nil
}

// VirtualRegistry returns one virtual registry by id (its number or gid).
func (c *Client) VirtualRegistry(ctx context.Context, id string) (VirtualRegistry, error) {
	var q struct {
		Registry *VirtualRegistry `graphql:"containerVirtualRegistry(id: $id)"`
	}
	if err := c.query(ctx, &q, map[string]any{"id": graphql.ID(id)}); err != nil {
		return VirtualRegistry{}, err
	}
	if q.Registry == nil {
		return VirtualRegistry{}, &NotFoundError{Kind: "virtual registry", Name: id}
	}
	return *q.Registry, nil
}

// VirtualRegistryInput creates (GroupPath, Name) or changes (ID; nil fields
// stay) a virtual registry.
type VirtualRegistryInput struct {
	ID          string  `json:"id,omitempty"`
	GroupPath   string  `json:"groupPath,omitempty"`
	Name        *string `json:"name,omitempty"`
	Description *string `json:"description,omitempty"`
}

// VirtualUpstreamInput adds (RegistryID, Name, URL) or changes (ID; nil
// fields stay) an upstream. Password "" clears a stored password.
type VirtualUpstreamInput struct {
	ID                 string  `json:"id,omitempty"`
	RegistryID         string  `json:"registryId,omitempty"`
	Name               *string `json:"name,omitempty"`
	URL                *string `json:"url,omitempty"`
	Username           *string `json:"username,omitempty"`
	Password           *string `json:"password,omitempty"`
	CacheValidityHours *int    `json:"cacheValidityHours,omitempty"`
}

type idInput struct {
	ID string `json:"id"`
}

type moveInput struct {
	ID       string `json:"id"`
	Position int    `json:"position"`
}

// virtualRegistrySelection is what every virtual-registry mutation returns.
const virtualRegistrySelection = `containerVirtualRegistry { id name description groupPath pullPrefix createdAt updatedAt
	upstreams { id name url username passwordSet cacheValidityHours position createdAt updatedAt } } credentialsCleared errors`

// virtualPayload is the answer of every virtual-registry mutation.
type virtualPayload struct {
	Registry           *VirtualRegistry `json:"containerVirtualRegistry"`
	CredentialsCleared bool             `json:"credentialsCleared"`
	Errors             []string         `json:"errors"`
}

// virtualMutation runs mutation field with input of GraphQL type inputType
// and returns the registry (empty after a delete) or the refusals.
func (c *Client) virtualMutation(ctx context.Context, field, inputType string, input any) (VirtualRegistry, error) {
	p, err := c.virtualMutationPayload(ctx, field, inputType, input)
	if err != nil || p.Registry == nil {
		return VirtualRegistry{}, err
	}
	return *p.Registry, nil
}

func (c *Client) virtualMutationPayload(ctx context.Context, field, inputType string, input any) (virtualPayload, error) {
	q := "mutation($input: " + inputType + "!) { payload: " + field + "(input: $input) { " + virtualRegistrySelection + " } }"
	raw, err := c.gql.ExecRaw(ctx, q, map[string]any{"input": input})
	if err := c.translate(err); err != nil {
		return virtualPayload{}, err
	}
	var out struct {
		Payload virtualPayload `json:"payload"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return virtualPayload{}, fmt.Errorf("decode the answer to %s: %w", field, err)
	}
	if len(out.Payload.Errors) > 0 {
		return virtualPayload{}, &APIError{Messages: out.Payload.Errors}
	}
	return out.Payload, nil
}

// CreateVirtualRegistry creates a virtual registry in a top-level group (owner).
func (c *Client) CreateVirtualRegistry(ctx context.Context, group, name, description string) (VirtualRegistry, error) {
	return c.virtualMutation(ctx, "containerVirtualRegistryCreate", "ContainerVirtualRegistryCreateInput",
		VirtualRegistryInput{GroupPath: group, Name: &name, Description: &description})
}

// UpdateVirtualRegistry renames a virtual registry or changes its description (owner).
func (c *Client) UpdateVirtualRegistry(ctx context.Context, in VirtualRegistryInput) (VirtualRegistry, error) {
	return c.virtualMutation(ctx, "containerVirtualRegistryUpdate", "ContainerVirtualRegistryUpdateInput", in)
}

// DeleteVirtualRegistry deletes a virtual registry and its upstreams (owner).
func (c *Client) DeleteVirtualRegistry(ctx context.Context, id string) error {
	_, err := c.virtualMutation(ctx, "containerVirtualRegistryDelete", "ContainerVirtualRegistryDeleteInput", idInput{ID: id})
	return err
}

// AddVirtualUpstream adds an upstream after a registry's last one (owner).
func (c *Client) AddVirtualUpstream(ctx context.Context, in VirtualUpstreamInput) (VirtualRegistry, error) {
	return c.virtualMutation(ctx, "containerVirtualRegistryUpstreamCreate", "ContainerVirtualRegistryUpstreamCreateInput", in)
}

// UpstreamChange is the answer to UpdateVirtualUpstream.
type UpstreamChange struct {
	Registry VirtualRegistry
	// CredentialsCleared is true when the upstream's scheme, host or port
	// changed and its stored username and password were cleared with it
	// (credentials stay with the host they were given for).
	CredentialsCleared bool
}

// UpdateVirtualUpstream changes an upstream (owner). A new scheme, host or
// port clears the stored username and password unless both are in the
// same input.
func (c *Client) UpdateVirtualUpstream(ctx context.Context, in VirtualUpstreamInput) (UpstreamChange, error) {
	p, err := c.virtualMutationPayload(ctx, "containerVirtualRegistryUpstreamUpdate", "ContainerVirtualRegistryUpstreamUpdateInput", in)
	if err != nil || p.Registry == nil {
		return UpstreamChange{}, err
	}
	return UpstreamChange{Registry: *p.Registry, CredentialsCleared: p.CredentialsCleared}, nil
}

// MoveVirtualUpstream puts an upstream at a position, 0 being asked first (owner).
func (c *Client) MoveVirtualUpstream(ctx context.Context, id string, position int) (VirtualRegistry, error) {
	return c.virtualMutation(ctx, "containerVirtualRegistryUpstreamMove", "ContainerVirtualRegistryUpstreamMoveInput", moveInput{ID: id, Position: position})
}

// DeleteVirtualUpstream deletes an upstream (owner).
func (c *Client) DeleteVirtualUpstream(ctx context.Context, id string) (VirtualRegistry, error) {
	return c.virtualMutation(ctx, "containerVirtualRegistryUpstreamDelete", "ContainerVirtualRegistryUpstreamDeleteInput", idInput{ID: id})
}

// VirtualCacheEntry is one entry of an upstream's cache.
type VirtualCacheEntry struct {
	Path              string    `json:"path"`
	Digest            string    `json:"digest"`
	Size              Bytes     `json:"size"`
	UpstreamCheckedAt time.Time `json:"upstreamCheckedAt"`
	ReadAt            time.Time `json:"readAt"`
}

// VirtualCacheEntries returns every cache entry of an upstream, by path.
func (c *Client) VirtualCacheEntries(ctx context.Context, upstreamID string) ([]VirtualCacheEntry, error) {
	return Collect(0, func(p Page) ([]VirtualCacheEntry, PageInfo, error) {
		var q struct {
			Entries struct {
				Nodes    []VirtualCacheEntry
				PageInfo PageInfo
			} `graphql:"containerVirtualRegistryCacheEntries(upstreamId: $id, first: $first, after: $after)"`
		}
		if err := c.query(ctx, &q, p.vars(map[string]any{"id": graphql.ID(upstreamID)})); err != nil {
			return nil, PageInfo{}, err
		}
		return q.Entries.Nodes, q.Entries.PageInfo, nil
	})
}

type cacheEntryInput struct {
	UpstreamID string `json:"upstreamId"`
	Path       string `json:"path"`
}

func (cacheEntryInput) GetGraphQLType() string {
	return "ContainerVirtualRegistryCacheEntryDeleteInput"
}

type cacheClearInput struct {
	RegistryID string  `json:"registryId"`
	UpstreamID *string `json:"upstreamId,omitempty"`
}

func (cacheClearInput) GetGraphQLType() string { return "ContainerVirtualRegistryCacheClearInput" }

// DeleteVirtualCacheEntry deletes one cache entry of an upstream by its path (owner).
func (c *Client) DeleteVirtualCacheEntry(ctx context.Context, upstreamID, path string) error {
	var m struct {
		Payload struct {
			DeletedCount int
			Errors       []string
		} `graphql:"containerVirtualRegistryCacheEntryDelete(input: $input)"`
	}
	return c.mutate(ctx, &m, map[string]any{"input": cacheEntryInput{UpstreamID: upstreamID, Path: path}}, func() []string { return m.Payload.Errors })
}

// ClearVirtualCache clears the cache of a registry, or of one of its
// upstreams when upstreamID is not "" (owner), and says how many entries
// it deleted.
func (c *Client) ClearVirtualCache(ctx context.Context, registryID, upstreamID string) (int, error) {
	var m struct {
		Payload struct {
			DeletedCount int
			Errors       []string
		} `graphql:"containerVirtualRegistryCacheClear(input: $input)"`
	}
	in := cacheClearInput{RegistryID: registryID}
	if upstreamID != "" {
		in.UpstreamID = &upstreamID
	}
	err := c.mutate(ctx, &m, map[string]any{"input": in}, func() []string { return m.Payload.Errors })
	return m.Payload.DeletedCount, err
}
