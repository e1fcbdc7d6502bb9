package graphql

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"github.com/dproxy/dproxy/internal/server/graphql/generated"
	"github.com/dproxy/dproxy/internal/store"
	"github.com/dproxy/dproxy/internal/upstream"
)

const (
	gidVirtualRegistry = "gid://dproxy/VirtualRegistries::Container::Registry/"
	gidVirtualUpstream = "gid://dproxy/VirtualRegistries::Container::Upstream/"

	// DefaultVirtualRegistries and DefaultVirtualUpstreams are GitLab's
	// limits, used when Options leave them zero.
	DefaultVirtualRegistries = 5
	DefaultVirtualUpstreams  = 5

	maxVirtualName        = 255
	maxVirtualDescription = 1024
	maxCacheValidityHours = 24 * 365
)

// virtualPath is the registry path prefix clients pull through.
func (h *Handler) virtualPrefix(id int64) string {
	return h.host + "/virtual_registries/container/" + strconv.FormatInt(id, 10)
}

func (h *Handler) registryLimit() int {
	if h.opts.VirtualRegistries > 0 {
		return h.opts.VirtualRegistries
	}
	return DefaultVirtualRegistries
}

func (h *Handler) upstreamLimit() int {
	if h.opts.VirtualUpstreams > 0 {
		return h.opts.VirtualUpstreams
	}
	return DefaultVirtualUpstreams
}

// virtualRegistryNode renders a registry with its upstreams in order.
func (h *Handler) virtualRegistryNode(ctx context.Context, r store.VirtualRegistry, groupPath string) (*generated.ContainerVirtualRegistry, error) {
	us, err := h.store.VirtualUpstreams(ctx, r.ID)
	if err != nil {
		return nil, err
	}
	out := &generated.ContainerVirtualRegistry{
		ID: gid(gidVirtualRegistry, r.ID), Name: r.Name, Description: r.Description, GroupPath: groupPath,
		PullPrefix: h.virtualPrefix(r.ID), CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
		Upstreams: make([]generated.ContainerVirtualRegistryUpstream, len(us)),
	}
	for i, u := range us {
		out.Upstreams[i] = generated.ContainerVirtualRegistryUpstream{
			ID: gid(gidVirtualUpstream, u.ID), Name: u.Name, URL: u.URL, Username: u.Username,
			PasswordSet: u.Password != "", CacheValidityHours: u.CacheValidityHours, Position: u.Position,
			CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt,
		}
	}
	return out, nil
}

// virtualRegistry loads a registry by gid or number and checks the caller
// has role in its group; an unknown registry and one the caller may not
// see get the same answer.
func (h *Handler) virtualRegistry(ctx context.Context, id string, role store.Role, action string) (store.VirtualRegistry, store.Group, error) {
	n, ok := parseGID(gidVirtualRegistry, id)
	if !ok {
		return store.VirtualRegistry{}, store.Group{}, fail(fmt.Sprintf("invalid virtual registry id %q: pass its number or %s<n>", clip(id), gidVirtualRegistry))
	}
	unknown := fail(fmt.Sprintf("virtual registry %d does not exist or you cannot read its group", n))
	r, err := h.store.VirtualRegistry(ctx, n)
	if errors.Is(err, store.ErrNotFound) {
		return store.VirtualRegistry{}, store.Group{}, unknown
	}
	if err != nil {
		return store.VirtualRegistry{}, store.Group{}, err
	}
	g, err := h.store.GroupByID(ctx, r.GroupID)
	if err != nil {
		return store.VirtualRegistry{}, store.Group{}, err
	}
	if _, _, err := h.auth.AuthorizeGroup(ctx, principal(ctx), g.Path, store.RoleGuest, "reading its virtual registries"); err != nil {
		return store.VirtualRegistry{}, store.Group{}, unknown
	}
	if role != store.RoleGuest {
		if _, _, err := h.auth.AuthorizeGroup(ctx, principal(ctx), g.Path, role, action); err != nil {
			return store.VirtualRegistry{}, store.Group{}, err
		}
	}
	return r, g, nil
}

// virtualUpstream loads an upstream and its registry for an owner.
func (h *Handler) virtualUpstream(ctx context.Context, id, action string) (store.VirtualUpstream, store.VirtualRegistry, store.Group, error) {
	n, ok := parseGID(gidVirtualUpstream, id)
	if !ok {
		return store.VirtualUpstream{}, store.VirtualRegistry{}, store.Group{}, fail(fmt.Sprintf("invalid upstream id %q: pass its number or %s<n>", clip(id), gidVirtualUpstream))
	}
	u, err := h.store.VirtualUpstream(ctx, n)
	if errors.Is(err, store.ErrNotFound) {
		return store.VirtualUpstream{}, store.VirtualRegistry{}, store.Group{}, fail(fmt.Sprintf("upstream %d does not exist or you cannot read its group", n))
	}
	if err != nil {
		return store.VirtualUpstream{}, store.VirtualRegistry{}, store.Group{}, err
	}
	r, g, err := h.virtualRegistry(ctx, strconv.FormatInt(u.RegistryID, 10), store.RoleOwner, action)
	return u, r, g, err
}

func (q queryResolver) ContainerVirtualRegistry(ctx context.Context, id string) (*generated.ContainerVirtualRegistry, error) {
	r, g, err := q.h.virtualRegistry(ctx, id, store.RoleGuest, "")
	if err != nil {
		return nil, err
	}
	return q.h.virtualRegistryNode(ctx, r, g.Path)
}

func (g groupResolver) ContainerVirtualRegistries(ctx context.Context, obj *generated.Group) ([]generated.ContainerVirtualRegistry, error) {
	id, err := groupID(obj)
	if err != nil {
		return nil, err
	}
	rs, err := g.h.store.VirtualRegistriesOfGroup(ctx, id)
	if err != nil {
		return nil, err
	}
	out := make([]generated.ContainerVirtualRegistry, 0, len(rs))
	for _, r := range rs {
		n, err := g.h.virtualRegistryNode(ctx, r, obj.FullPath)
		if err != nil {
			return nil, err
		}
		out = append(out, *n)
	}
	return out, nil
}

// validateVirtualName checks a registry's or an upstream's name.
func validateVirtualName(what, name string) error {
	if strings.TrimSpace(name) == "" || len(name) > maxVirtualName || strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return fmt.Errorf("%s name %q: use 1 to %d characters without control characters", what, clip(name), maxVirtualName)
	}
	return nil
}

func validateDescription(d string) error {
	if len(d) > maxVirtualDescription || strings.IndexFunc(d, func(r rune) bool { return unicode.IsControl(r) && r != '\n' }) >= 0 {
		return fmt.Errorf("the description must be at most %d characters without control characters", maxVirtualDescription)
	}
	return nil
}

func validateCacheValidity(h int) error {
	if h < 0 || h > maxCacheValidityHours {
		return fmt.Errorf("cacheValidityHours must be between 0 (never ask the upstream again) and %d, got %d", maxCacheValidityHours, h)
	}
	return nil
}

// registryPayload renders the registry after a change.
func (m mutationResolver) registryPayload(ctx context.Context, id int64, groupPath string) (*generated.ContainerVirtualRegistryPayload, error) {
	r, err := m.h.store.VirtualRegistry(ctx, id)
	if err != nil {
		return nil, err
	}
	n, err := m.h.virtualRegistryNode(ctx, r, groupPath)
	if err != nil {
		return nil, err
	}
	return &generated.ContainerVirtualRegistryPayload{ContainerVirtualRegistry: n, Errors: noErrors()}, nil
}

func refusedPayload(format string, args ...any) *generated.ContainerVirtualRegistryPayload {
	return &generated.ContainerVirtualRegistryPayload{Errors: refused(format, args...)}
}

func (m mutationResolver) ContainerVirtualRegistryCreate(ctx context.Context, in generated.ContainerVirtualRegistryCreateInput) (*generated.ContainerVirtualRegistryPayload, error) {
	g, err := m.owner(ctx, in.GroupPath, "creating a virtual registry")
	if err != nil {
		return nil, err
	}
	if g.ParentID != 0 {
		top, _, _ := strings.Cut(g.Path, "/")
		return refusedPayload("virtual registries belong to top-level groups: create it in %s instead of %s", top, g.Path), nil
	}
	desc := deref(in.Description)
	if err := errors.Join(validateVirtualName("virtual registry", in.Name), validateDescription(desc)); err != nil {
		return refusedPayload("%s", err), nil
	}
	limit := m.h.registryLimit()
	r, err := m.h.store.CreateVirtualRegistry(ctx, store.VirtualRegistry{GroupID: g.ID, Name: in.Name, Description: desc}, limit)
	switch {
	case errors.Is(err, store.ErrLimit):
		return refusedPayload("group %s already has %d virtual registries, the most allowed; delete one, or ask an instance admin to raise virtual-registries-per-group", g.Path, limit), nil
	case errors.Is(err, store.ErrConflict):
		return refusedPayload("group %s already has a virtual registry named %q", g.Path, in.Name), nil
	case err != nil:
		return nil, err
	}
	m.h.log.InfoContext(ctx, "virtual registry created", "group", g.Path, "registry", r.ID, "by", principal(ctx).Name())
	return m.registryPayload(ctx, r.ID, g.Path)
}

func (m mutationResolver) ContainerVirtualRegistryUpdate(ctx context.Context, in generated.ContainerVirtualRegistryUpdateInput) (*generated.ContainerVirtualRegistryPayload, error) {
	r, g, err := m.h.virtualRegistry(ctx, in.ID, store.RoleOwner, "changing a virtual registry")
	if err != nil {
		return nil, err
	}
	if in.Name != nil {
		r.Name = *in.Name
	}
	if in.Description != nil {
		r.Description = *in.Description
	}
	if err := errors.Join(validateVirtualName("virtual registry", r.Name), validateDescription(r.Description)); err != nil {
		return refusedPayload("%s", err), nil
	}
	if _, err := m.h.store.UpdateVirtualRegistry(ctx, r); errors.Is(err, store.ErrConflict) {
		return refusedPayload("group %s already has a virtual registry named %q", g.Path, r.Name), nil
	} else if err != nil {
		return nil, err
	}
	return m.registryPayload(ctx, r.ID, g.Path)
}

func (m mutationResolver) ContainerVirtualRegistryDelete(ctx context.Context, in generated.ContainerVirtualRegistryDeleteInput) (*generated.ContainerVirtualRegistryPayload, error) {
	r, g, err := m.h.virtualRegistry(ctx, in.ID, store.RoleOwner, "deleting a virtual registry")
	if err != nil {
		return nil, err
	}
	ups, err := m.h.store.VirtualUpstreams(ctx, r.ID)
	if err != nil {
		return nil, err
	}
	for _, u := range ups {
		m.h.forgetUpstream(u.ID)
	}
	if err := m.h.store.DeleteVirtualRegistry(ctx, r.ID); err != nil {
		return nil, err
	}
	m.h.log.InfoContext(ctx, "virtual registry deleted", "group", g.Path, "registry", r.ID, "by", principal(ctx).Name())
	m.h.released() // its upstreams' caches and files go at the next collection
	return &generated.ContainerVirtualRegistryPayload{Errors: noErrors()}, nil
}

// checkUpstream validates an upstream as it will be stored.
func checkUpstream(u store.VirtualUpstream) error {
	var urlErr error
	if _, err := upstream.ParseURL(u.URL); err != nil {
		urlErr = fmt.Errorf("url %q: use http(s)://host[:port][/path] of an OCI registry, without credentials, query or fragment", clip(u.URL))
	}
	credErr := validatePair(credentialNames{"username", "a username", "password", "a password"}, u.Username, u.Password)
	return errors.Join(validateVirtualName("upstream", u.Name), urlErr, credErr, validateCacheValidity(u.CacheValidityHours))
}

func (m mutationResolver) ContainerVirtualRegistryUpstreamCreate(ctx context.Context, in generated.ContainerVirtualRegistryUpstreamCreateInput) (*generated.ContainerVirtualRegistryPayload, error) {
	r, g, err := m.h.virtualRegistry(ctx, in.RegistryID, store.RoleOwner, "adding an upstream to a virtual registry")
	if err != nil {
		return nil, err
	}
	u := store.VirtualUpstream{RegistryID: r.ID, Name: in.Name, URL: in.URL, Username: deref(in.Username), Password: deref(in.Password),
		CacheValidityHours: store.DefaultCacheValidityHours}
	if in.CacheValidityHours != nil {
		u.CacheValidityHours = *in.CacheValidityHours
	}
	if err := checkUpstream(u); err != nil {
		return refusedPayload("%s", err), nil
	}
	if err := m.h.checkAddress(ctx, u.URL); err != nil {
		return refusedPayload("%s", err), nil
	}
	limit := m.h.upstreamLimit()
	switch _, err := m.h.store.AddVirtualUpstream(ctx, u, limit); {
	case errors.Is(err, store.ErrLimit):
		return refusedPayload("virtual registry %s already has %d upstreams, the most allowed; delete one, or ask an instance admin to raise virtual-registry-upstreams", r.Name, limit), nil
	case errors.Is(err, store.ErrConflict):
		return refusedPayload("virtual registry %s already has an upstream named %q", r.Name, u.Name), nil
	case err != nil:
		return nil, err
	}
	m.h.log.InfoContext(ctx, "virtual registry upstream added", "registry", r.ID, "upstream", u.Name, "url", u.URL,
		"password_set", u.Password != "", "by", principal(ctx).Name())
	return m.registryPayload(ctx, r.ID, g.Path)
}

func (m mutationResolver) ContainerVirtualRegistryUpstreamUpdate(ctx context.Context, in generated.ContainerVirtualRegistryUpstreamUpdateInput) (*generated.ContainerVirtualRegistryPayload, error) {
	u, r, g, err := m.h.virtualUpstream(ctx, in.ID, "changing an upstream of a virtual registry")
	if err != nil {
		return nil, err
	}
	before := u
	for _, set := range []struct {
		to   *string
		from *string
	}{{&u.Name, in.Name}, {&u.URL, in.URL}, {&u.Username, in.Username}, {&u.Password, in.Password}} {
		if set.from != nil {
			*set.to = *set.from
		}
	}
	if in.CacheValidityHours != nil {
		u.CacheValidityHours = *in.CacheValidityHours
	}
	// Credentials stay with the host they were given for: on a new origin
	// they are cleared (by the store, in the same transaction) unless both
	// come with the change.
	moved := !store.SameOrigin(before.URL, u.URL)
	if moved && (in.Username == nil) != (in.Password == nil) {
		return refusedPayload("the new URL is on another scheme, host or port, so the stored username and password are cleared: pass both username and password for %s, or neither", clip(u.URL)), nil
	}
	if err := checkUpstream(u); err != nil {
		return refusedPayload("%s", err), nil
	}
	if in.URL != nil {
		if err := m.h.checkAddress(ctx, u.URL); err != nil {
			return refusedPayload("%s", err), nil
		}
	}
	updated, err := m.h.store.UpdateVirtualUpstream(ctx, u, in.Password != nil)
	if errors.Is(err, store.ErrConflict) {
		return refusedPayload("virtual registry %s already has an upstream named %q", r.Name, u.Name), nil
	} else if err != nil {
		return nil, err
	}
	cleared := in.Username == nil && in.Password == nil && (before.Username != "" || before.Password != "") &&
		updated.Username == "" && updated.Password == ""
	m.h.log.InfoContext(ctx, "virtual registry upstream changed", "registry", r.ID, "upstream", u.ID,
		"password_changed", in.Password != nil, "credentials_cleared", cleared, "by", principal(ctx).Name())
	out, err := m.registryPayload(ctx, r.ID, g.Path)
	if err != nil {
		return nil, err
	}
	out.CredentialsCleared = cleared
	return out, nil
}

func (m mutationResolver) ContainerVirtualRegistryUpstreamMove(ctx context.Context, in generated.ContainerVirtualRegistryUpstreamMoveInput) (*generated.ContainerVirtualRegistryPayload, error) {
	u, r, g, err := m.h.virtualUpstream(ctx, in.ID, "reordering the upstreams of a virtual registry")
	if err != nil {
		return nil, err
	}
	if in.Position < 0 {
		return refusedPayload("position must be 0 (asked first) or more, got %d", in.Position), nil
	}
	if _, err := m.h.store.MoveVirtualUpstream(ctx, u.ID, in.Position); err != nil {
		return nil, err
	}
	return m.registryPayload(ctx, r.ID, g.Path)
}

func (m mutationResolver) ContainerVirtualRegistryUpstreamDelete(ctx context.Context, in generated.ContainerVirtualRegistryUpstreamDeleteInput) (*generated.ContainerVirtualRegistryPayload, error) {
	u, r, g, err := m.h.virtualUpstream(ctx, in.ID, "deleting an upstream of a virtual registry")
	if err != nil {
		return nil, err
	}
	m.h.forgetUpstream(u.ID)
	if err := m.h.store.DeleteVirtualUpstream(ctx, u.ID); err != nil {
		return nil, err
	}
	m.h.released() // its cache and files go at the next collection
	return m.registryPayload(ctx, r.ID, g.Path)
}

// upstreamForRead loads an upstream whose group the caller may read.
func (h *Handler) upstreamForRead(ctx context.Context, id string) (store.VirtualUpstream, error) {
	n, ok := parseGID(gidVirtualUpstream, id)
	if !ok {
		return store.VirtualUpstream{}, fail(fmt.Sprintf("invalid upstream id %q: pass its number or %s<n>", clip(id), gidVirtualUpstream))
	}
	u, err := h.store.VirtualUpstream(ctx, n)
	if errors.Is(err, store.ErrNotFound) {
		return store.VirtualUpstream{}, fail(fmt.Sprintf("upstream %d does not exist or you cannot read its group", n))
	}
	if err != nil {
		return store.VirtualUpstream{}, err
	}
	if _, _, err := h.virtualRegistry(ctx, strconv.FormatInt(u.RegistryID, 10), store.RoleGuest, ""); err != nil {
		return store.VirtualUpstream{}, err
	}
	return u, nil
}

func (q queryResolver) ContainerVirtualRegistryCacheEntries(ctx context.Context, upstreamID string, first *int, after *string) (*generated.ContainerVirtualRegistryCacheEntryConnection, error) {
	n, err := pageSize(first)
	if err != nil {
		return nil, err
	}
	from, hasPrev, err := decodeCursor("e", after)
	if err != nil {
		return nil, err
	}
	u, err := q.h.upstreamForRead(ctx, upstreamID)
	if err != nil {
		return nil, err
	}
	entries, err := q.h.store.VirtualCacheEntries(ctx, u.ID, store.CacheEntryQuery{After: from, Limit: n + 1})
	if err != nil {
		return nil, err
	}
	items, _, info := pageOf(entries, n, hasPrev, func(e store.VirtualCacheEntry) string { return encodeCursor("e", e.Path) })
	out := &generated.ContainerVirtualRegistryCacheEntryConnection{PageInfo: info, Nodes: make([]generated.ContainerVirtualRegistryCacheEntry, len(items))}
	for i, e := range items {
		out.Nodes[i] = generated.ContainerVirtualRegistryCacheEntry{Path: e.Path, Digest: string(e.Digest),
			Size: strconv.FormatInt(e.Size, 10), UpstreamCheckedAt: e.CheckedAt, ReadAt: e.ReadAt}
	}
	return out, nil
}

func (m mutationResolver) ContainerVirtualRegistryCacheEntryDelete(ctx context.Context, in generated.ContainerVirtualRegistryCacheEntryDeleteInput) (*generated.ContainerVirtualRegistryCacheClearPayload, error) {
	u, _, _, err := m.h.virtualUpstream(ctx, in.UpstreamID, "deleting a cache entry of a virtual registry")
	if err != nil {
		return nil, err
	}
	m.h.forgetUpstream(u.ID)
	err = m.h.store.DeleteVirtualCacheEntry(ctx, u.ID, in.Path)
	if errors.Is(err, store.ErrNotFound) {
		return &generated.ContainerVirtualRegistryCacheClearPayload{Errors: refused("upstream %s has no cache entry %q; `dproxy virtual-registry cache list %d` lists them", u.Name, clip(in.Path), u.ID)}, nil
	}
	if err != nil {
		return nil, err
	}
	m.h.released()
	return &generated.ContainerVirtualRegistryCacheClearPayload{DeletedCount: 1, Errors: noErrors()}, nil
}

func (m mutationResolver) ContainerVirtualRegistryCacheClear(ctx context.Context, in generated.ContainerVirtualRegistryCacheClearInput) (*generated.ContainerVirtualRegistryCacheClearPayload, error) {
	r, _, err := m.h.virtualRegistry(ctx, in.RegistryID, store.RoleOwner, "clearing the cache of a virtual registry")
	if err != nil {
		return nil, err
	}
	ups, err := m.h.store.VirtualUpstreams(ctx, r.ID)
	if err != nil {
		return nil, err
	}
	var ids []int64
	for _, u := range ups {
		if in.UpstreamID == nil || *in.UpstreamID == gid(gidVirtualUpstream, u.ID) || *in.UpstreamID == strconv.FormatInt(u.ID, 10) {
			ids = append(ids, u.ID)
		}
	}
	if in.UpstreamID != nil && len(ids) == 0 {
		return &generated.ContainerVirtualRegistryCacheClearPayload{Errors: refused("virtual registry %s has no upstream %q", r.Name, clip(*in.UpstreamID))}, nil
	}
	for _, id := range ids {
		m.h.forgetUpstream(id)
	}
	n, err := m.h.store.ClearVirtualCache(ctx, ids)
	if err != nil {
		return nil, err
	}
	m.h.log.InfoContext(ctx, "virtual registry cache cleared", "registry", r.ID, "upstreams", len(ids), "entries", n, "by", principal(ctx).Name())
	m.h.released()
	return &generated.ContainerVirtualRegistryCacheClearPayload{DeletedCount: int(n), Errors: noErrors()}, nil
}

// forgetUpstream drops an upstream cache's in-memory state before its
// rows go, so that a download in flight does not add a row back.
func (h *Handler) forgetUpstream(id int64) {
	if h.opts.ForgetUpstream != nil {
		h.opts.ForgetUpstream(id)
	}
}
