package graphql

import (
	"context"
	"fmt"
	"strconv"

	"github.com/dproxy/dproxy/internal/admin"
	"github.com/dproxy/dproxy/internal/server/graphql/generated"
)

const (
	gidVirtualRegistry = "gid://dproxy/VirtualRegistries::Container::Registry/"
	gidVirtualUpstream = "gid://dproxy/VirtualRegistries::Container::Upstream/"
)

// virtualPrefix is the registry path prefix clients pull through.
func (h *Handler) virtualPrefix(id int64) string {
	return h.host + "/virtual_registries/container/" + strconv.FormatInt(id, 10)
}

// registryID parses a registry's gid or number.
func registryID(id string) (int64, error) {
	n, ok := parseGID(gidVirtualRegistry, id)
	if !ok {
		return 0, fail(fmt.Sprintf("invalid virtual registry id %q: pass its number or %s<n>", clip(id), gidVirtualRegistry))
	}
	return n, nil
}

// upstreamID parses an upstream's gid or number.
func upstreamID(id string) (int64, error) {
	n, ok := parseGID(gidVirtualUpstream, id)
	if !ok {
		return 0, fail(fmt.Sprintf("invalid upstream id %q: pass its number or %s<n>", clip(id), gidVirtualUpstream))
	}
	return n, nil
}

// virtualRegistryNode renders a registry with its upstreams in order.
func (h *Handler) virtualRegistryNode(r admin.Registry) *generated.ContainerVirtualRegistry {
	out := &generated.ContainerVirtualRegistry{
		ID: gid(gidVirtualRegistry, r.ID), Name: r.Name, Description: r.Description, GroupPath: r.GroupPath,
		PullPrefix: h.virtualPrefix(r.ID), CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
		Upstreams: make([]generated.ContainerVirtualRegistryUpstream, len(r.Upstreams)),
	}
	for i, u := range r.Upstreams {
		out.Upstreams[i] = generated.ContainerVirtualRegistryUpstream{
			ID: gid(gidVirtualUpstream, u.ID), Name: u.Name, URL: u.URL, Username: u.Username,
			PasswordSet: u.PasswordSet, CacheValidityHours: u.CacheValidityHours, Position: u.Position,
			CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt,
		}
	}
	return out
}

func (q queryResolver) ContainerVirtualRegistry(ctx context.Context, id string) (*generated.ContainerVirtualRegistry, error) {
	n, err := registryID(id)
	if err != nil {
		return nil, err
	}
	r, err := q.h.svc.Registry(ctx, principal(ctx), n)
	if err != nil {
		return nil, err
	}
	return q.h.virtualRegistryNode(r), nil
}

func (g groupResolver) ContainerVirtualRegistries(ctx context.Context, obj *generated.Group) ([]generated.ContainerVirtualRegistry, error) {
	rs, err := g.h.svc.Registries(ctx, principal(ctx), obj.FullPath)
	if err != nil {
		return nil, err
	}
	out := make([]generated.ContainerVirtualRegistry, 0, len(rs))
	for _, r := range rs {
		out = append(out, *g.h.virtualRegistryNode(r))
	}
	return out, nil
}

// registryPayload answers a registry mutation: the registry after the
// change, or the refusal.
func (m mutationResolver) registryPayload(ctx context.Context, registryID int64, err error) (*generated.ContainerVirtualRegistryPayload, error) {
	if msgs, ok := refusal(err); ok {
		return &generated.ContainerVirtualRegistryPayload{Errors: msgs}, nil
	}
	if err != nil {
		return nil, err
	}
	r, err := m.h.svc.Registry(ctx, principal(ctx), registryID)
	if err != nil {
		return nil, err
	}
	return &generated.ContainerVirtualRegistryPayload{ContainerVirtualRegistry: m.h.virtualRegistryNode(r), Errors: noErrors()}, nil
}

func (m mutationResolver) ContainerVirtualRegistryCreate(ctx context.Context, in generated.ContainerVirtualRegistryCreateInput) (*generated.ContainerVirtualRegistryPayload, error) {
	r, err := m.h.svc.CreateRegistry(ctx, principal(ctx), in.GroupPath, admin.RegistryInput{Name: in.Name, Description: deref(in.Description)})
	return m.registryPayload(ctx, r.ID, err)
}

func (m mutationResolver) ContainerVirtualRegistryUpdate(ctx context.Context, in generated.ContainerVirtualRegistryUpdateInput) (*generated.ContainerVirtualRegistryPayload, error) {
	n, err := registryID(in.ID)
	if err != nil {
		return nil, err
	}
	_, err = m.h.svc.UpdateRegistry(ctx, principal(ctx), n, admin.RegistryChange{Name: in.Name, Description: in.Description})
	return m.registryPayload(ctx, n, err)
}

func (m mutationResolver) ContainerVirtualRegistryDelete(ctx context.Context, in generated.ContainerVirtualRegistryDeleteInput) (*generated.ContainerVirtualRegistryPayload, error) {
	n, err := registryID(in.ID)
	if err != nil {
		return nil, err
	}
	err = m.h.svc.DeleteRegistry(ctx, principal(ctx), n)
	if msgs, ok := refusal(err); ok {
		return &generated.ContainerVirtualRegistryPayload{Errors: msgs}, nil
	}
	if err != nil {
		return nil, err
	}
	return &generated.ContainerVirtualRegistryPayload{Errors: noErrors()}, nil
}

func (m mutationResolver) ContainerVirtualRegistryUpstreamCreate(ctx context.Context, in generated.ContainerVirtualRegistryUpstreamCreateInput) (*generated.ContainerVirtualRegistryPayload, error) {
	n, err := registryID(in.RegistryID)
	if err != nil {
		return nil, err
	}
	_, err = m.h.svc.CreateUpstream(ctx, principal(ctx), n, admin.UpstreamInput{
		Name: in.Name, URL: in.URL, Username: deref(in.Username), Password: deref(in.Password), CacheValidityHours: in.CacheValidityHours,
	})
	return m.registryPayload(ctx, n, err)
}

func (m mutationResolver) ContainerVirtualRegistryUpstreamUpdate(ctx context.Context, in generated.ContainerVirtualRegistryUpstreamUpdateInput) (*generated.ContainerVirtualRegistryPayload, error) {
	n, err := upstreamID(in.ID)
	if err != nil {
		return nil, err
	}
	res, err := m.h.svc.UpdateUpstream(ctx, principal(ctx), n, admin.UpstreamChange{
		Name: in.Name, URL: in.URL, Username: in.Username, Password: in.Password, CacheValidityHours: in.CacheValidityHours,
	})
	out, err := m.registryPayload(ctx, res.Upstream.RegistryID, err)
	if out != nil {
		out.CredentialsCleared = res.CredentialsCleared
	}
	return out, err
}

func (m mutationResolver) ContainerVirtualRegistryUpstreamMove(ctx context.Context, in generated.ContainerVirtualRegistryUpstreamMoveInput) (*generated.ContainerVirtualRegistryPayload, error) {
	n, err := upstreamID(in.ID)
	if err != nil {
		return nil, err
	}
	us, err := m.h.svc.MoveUpstream(ctx, principal(ctx), n, in.Position)
	var registry int64
	if len(us) > 0 {
		registry = us[0].RegistryID
	}
	return m.registryPayload(ctx, registry, err)
}

func (m mutationResolver) ContainerVirtualRegistryUpstreamDelete(ctx context.Context, in generated.ContainerVirtualRegistryUpstreamDeleteInput) (*generated.ContainerVirtualRegistryPayload, error) {
	n, err := upstreamID(in.ID)
	if err != nil {
		return nil, err
	}
	u, err := m.h.svc.DeleteUpstream(ctx, principal(ctx), n)
	return m.registryPayload(ctx, u.RegistryID, err)
}

func (q queryResolver) ContainerVirtualRegistryCacheEntries(ctx context.Context, upstream string, first *int, after *string) (*generated.ContainerVirtualRegistryCacheEntryConnection, error) {
	n, err := pageSize(first)
	if err != nil {
		return nil, err
	}
	from, hasPrev, err := decodeCursor("e", after)
	if err != nil {
		return nil, err
	}
	id, err := upstreamID(upstream)
	if err != nil {
		return nil, err
	}
	page, err := q.h.svc.CacheEntries(ctx, principal(ctx), id, admin.CacheEntryQuery{After: from, Limit: n + 1})
	if err != nil {
		return nil, err
	}
	items, _, info := pageOf(page.Entries, n, hasPrev, func(e admin.CacheEntry) string { return encodeCursor("e", e.Path) })
	out := &generated.ContainerVirtualRegistryCacheEntryConnection{PageInfo: info, Nodes: make([]generated.ContainerVirtualRegistryCacheEntry, len(items))}
	for i, e := range items {
		out.Nodes[i] = generated.ContainerVirtualRegistryCacheEntry{Path: e.Path, Digest: e.Digest,
			Size: strconv.FormatInt(e.Size, 10), UpstreamCheckedAt: e.CheckedAt, ReadAt: e.ReadAt}
	}
	return out, nil
}

func (m mutationResolver) ContainerVirtualRegistryCacheEntryDelete(ctx context.Context, in generated.ContainerVirtualRegistryCacheEntryDeleteInput) (*generated.ContainerVirtualRegistryCacheClearPayload, error) {
	n, err := upstreamID(in.UpstreamID)
	if err != nil {
		return nil, err
	}
	err = m.h.svc.DeleteCacheEntry(ctx, principal(ctx), n, in.Path)
	if msgs, ok := refusal(err); ok {
		return &generated.ContainerVirtualRegistryCacheClearPayload{Errors: msgs}, nil
	}
	if err != nil {
		return nil, err
	}
	return &generated.ContainerVirtualRegistryCacheClearPayload{DeletedCount: 1, Errors: noErrors()}, nil
}

func (m mutationResolver) ContainerVirtualRegistryCacheClear(ctx context.Context, in generated.ContainerVirtualRegistryCacheClearInput) (*generated.ContainerVirtualRegistryCacheClearPayload, error) {
	n, err := registryID(in.RegistryID)
	if err != nil {
		return nil, err
	}
	var only int64
	if in.UpstreamID != nil {
		var ok bool
		if only, ok = parseGID(gidVirtualUpstream, *in.UpstreamID); !ok {
			only = -1 // no upstream has it: refused as unknown
		}
	}
	deleted, err := m.h.svc.ClearRegistryCache(ctx, principal(ctx), n, only)
	if msgs, ok := refusal(err); ok {
		return &generated.ContainerVirtualRegistryCacheClearPayload{Errors: msgs}, nil
	}
	if err != nil {
		return nil, err
	}
	return &generated.ContainerVirtualRegistryCacheClearPayload{DeletedCount: int(deleted), Errors: noErrors()}, nil
}
