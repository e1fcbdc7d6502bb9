package admin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dproxy/dproxy/internal/auth"
	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/store"
)

// memStore is an in-memory store with the contract of *store.Store for
// what the Service and auth read and write. Deletions and cache-row
// removals are recorded in calls (shared with fakeCache), so tests can
// check their order against the cache's.
type memStore struct {
	mu     sync.Mutex
	calls  *[]string
	nextID int64
	now    func() time.Time

	users      map[int64]store.User
	groups     map[int64]store.Group
	members    map[[2]int64]store.Role // group, user
	tokens     map[int64]store.Token
	settings   map[int64]store.ProxySetting
	registries map[int64]store.VirtualRegistry
	upstreams  map[int64]store.VirtualUpstream
	entries    map[int64][]store.VirtualCacheEntry // by upstream
	ttl        map[int64]store.TTLPolicy
	hub        store.HubCredentials
	manifests  map[int64]store.Manifest
	blobs      map[store.BlobKey]store.Blob
	tokenNo    int64
}

func newMemStore(calls *[]string, now func() time.Time) *memStore {
	return &memStore{
		calls: calls, now: now,
		users: map[int64]store.User{}, groups: map[int64]store.Group{}, members: map[[2]int64]store.Role{},
		tokens: map[int64]store.Token{}, settings: map[int64]store.ProxySetting{},
		registries: map[int64]store.VirtualRegistry{}, upstreams: map[int64]store.VirtualUpstream{},
		entries: map[int64][]store.VirtualCacheEntry{}, ttl: map[int64]store.TTLPolicy{},
		manifests: map[int64]store.Manifest{}, blobs: map[store.BlobKey]store.Blob{},
	}
}

func (m *memStore) id() int64 { m.nextID++; return m.nextID }

func (m *memStore) record(format string, args ...any) {
	*m.calls = append(*m.calls, fmt.Sprintf(format, args...))
}

func notFound(what string, id any) error { return fmt.Errorf("%s %v: %w", what, id, store.ErrNotFound) }

// Accounts (auth).

func (m *memStore) UserByID(_ context.Context, id int64) (store.User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.users[id]
	if !ok {
		return store.User{}, notFound("user", id)
	}
	return u, nil
}

func (m *memStore) UserByUsername(_ context.Context, name string) (store.User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, u := range m.users {
		if u.Username == name {
			return u, nil
		}
	}
	return store.User{}, notFound("user", name)
}

func (m *memStore) GroupByPath(_ context.Context, path string) (store.Group, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, g := range m.groups {
		if g.Path == path {
			return g, nil
		}
	}
	return store.Group{}, notFound("group", path)
}

func (m *memStore) GroupByID(_ context.Context, id int64) (store.Group, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	g, ok := m.groups[id]
	if !ok {
		return store.Group{}, notFound("group", id)
	}
	return g, nil
}

func (m *memStore) EffectiveRole(_ context.Context, userID, groupID int64) (store.Role, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := store.RoleNone
	for g, ok := m.groups[groupID]; ok; g, ok = m.groups[g.ParentID] {
		r = max(r, m.members[[2]int64{g.ID, userID}])
	}
	return r, nil
}

func (m *memStore) IsAncestorOrSelf(_ context.Context, ancestorID, groupID int64) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for g, ok := m.groups[groupID]; ok; g, ok = m.groups[g.ParentID] {
		if g.ID == ancestorID {
			return true, nil
		}
	}
	return false, nil
}

func (m *memStore) TokenByHash(_ context.Context, hash []byte) (store.Token, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, t := range m.tokens {
		if bytes.Equal(t.Hash, hash) {
			return t, nil
		}
	}
	return store.Token{}, notFound("token", "by hash")
}

func (m *memStore) TokenByID(_ context.Context, id int64) (store.Token, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.tokens[id]
	if !ok {
		return store.Token{}, notFound("token", id)
	}
	return t, nil
}

func (m *memStore) TouchToken(_ context.Context, id int64, at time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.tokens[id]
	t.LastUsedAt = &at
	m.tokens[id] = t
	return nil
}

func (m *memStore) ProxySetting(_ context.Context, groupID int64) (store.ProxySetting, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.groups[groupID]; !ok {
		return store.ProxySetting{}, notFound("group", groupID)
	}
	s, ok := m.settings[groupID]
	if !ok {
		s = store.ProxySetting{GroupID: groupID}
	}
	return s, nil
}

// ofEach reads one group's value for each id, leaving out unknown groups,
// as the store's batched reads do.
func ofEach[T any](ids []int64, one func(int64) (T, error)) (map[int64]T, error) {
	out := map[int64]T{}
	for _, id := range ids {
		v, err := one(id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out[id] = v
	}
	return out, nil
}

func (m *memStore) ProxySettings(ctx context.Context, ids []int64) (map[int64]store.ProxySetting, error) {
	return ofEach(ids, func(id int64) (store.ProxySetting, error) { return m.ProxySetting(ctx, id) })
}

func (m *memStore) TTLPolicies(ctx context.Context, ids []int64) (map[int64]store.TTLPolicy, error) {
	return ofEach(ids, func(id int64) (store.TTLPolicy, error) { return m.TTLPolicy(ctx, id) })
}

func (m *memStore) GroupUsages(ctx context.Context, ids []int64) (map[int64]store.Usage, error) {
	return ofEach(ids, func(id int64) (store.Usage, error) {
		m.mu.Lock()
		_, ok := m.groups[id]
		m.mu.Unlock()
		if !ok {
			return store.Usage{}, notFound("group", id)
		}
		return m.GroupUsage(ctx, id)
	})
}

// Groups and members.

func (m *memStore) Groups(_ context.Context) ([]store.Group, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []store.Group{}
	for _, g := range m.groups {
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b store.Group) int { return strings.Compare(a.Path, b.Path) })
	return out, nil
}

func (m *memStore) CreateGroup(_ context.Context, path string) (store.Group, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	g := store.Group{Path: path, CreatedAt: m.now()}
	for _, x := range m.groups {
		if x.Path == path {
			return store.Group{}, fmt.Errorf("create group %q: %w", path, store.ErrConflict)
		}
	}
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		for _, p := range m.groups {
			if p.Path == path[:i] {
				g.ParentID = p.ID
			}
		}
		if g.ParentID == 0 {
			return store.Group{}, notFound("parent group", path[:i])
		}
	}
	g.ID = m.id()
	m.groups[g.ID] = g
	m.settings[g.ID] = store.ProxySetting{GroupID: g.ID, Enabled: true, UpdatedAt: m.now()}
	m.ttl[g.ID] = store.TTLPolicy{GroupID: g.ID, Enabled: true, TTLDays: 90, CreatedAt: m.now(), UpdatedAt: m.now()}
	return g, nil
}

func (m *memStore) DeleteGroup(_ context.Context, id int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	g, ok := m.groups[id]
	if !ok {
		return notFound("group", id)
	}
	m.record("delete group %d", id)
	for _, x := range m.groups {
		if x.ID == id || strings.HasPrefix(x.Path, g.Path+"/") {
			delete(m.groups, x.ID)
		}
	}
	return nil
}

func (m *memStore) Members(_ context.Context, groupID int64) ([]store.Member, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []store.Member{}
	for k, r := range m.members {
		if k[0] == groupID {
			out = append(out, store.Member{GroupID: k[0], UserID: k[1], Username: m.users[k[1]].Username, Role: r})
		}
	}
	slices.SortFunc(out, func(a, b store.Member) int { return strings.Compare(a.Username, b.Username) })
	return out, nil
}

func (m *memStore) MembershipsOfUser(_ context.Context, userID int64) ([]store.Member, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []store.Member
	for k, r := range m.members {
		if k[1] == userID {
			out = append(out, store.Member{GroupID: k[0], UserID: k[1], Username: m.users[k[1]].Username, Role: r})
		}
	}
	return out, nil
}

func (m *memStore) SetMember(_ context.Context, groupID, userID int64, role store.Role) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.members[[2]int64{groupID, userID}] = role
	return nil
}

func (m *memStore) RemoveMember(_ context.Context, groupID, userID int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := [2]int64{groupID, userID}
	if _, ok := m.members[k]; !ok {
		return notFound("member", k)
	}
	delete(m.members, k)
	return nil
}

// Settings.

func (m *memStore) ChangeProxySetting(_ context.Context, groupID int64, c store.ProxySettingChange) (store.ProxySetting, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.settings[groupID]
	if !ok {
		return store.ProxySetting{}, notFound("group", groupID)
	}
	if c.Enabled != nil {
		p.Enabled = *c.Enabled
	}
	if c.Credentials != nil {
		p.Identity, p.Secret = c.Credentials.Identity, c.Credentials.Secret
	}
	if c.FreshnessWindow != nil {
		p.FreshnessWindow = *c.FreshnessWindow
	}
	if c.AllowAnonymousPull != nil {
		p.AllowAnonymousPull = *c.AllowAnonymousPull
	}
	if c.AnonymousPullsUseCredentials != nil {
		p.AnonymousPullsUseCredentials = *c.AnonymousPullsUseCredentials
	}
	p.UpdatedAt = m.now()
	m.settings[groupID] = p
	return p, nil
}

func (m *memStore) TTLPolicy(_ context.Context, groupID int64) (store.TTLPolicy, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.ttl[groupID]
	if !ok {
		return store.TTLPolicy{}, notFound("group", groupID)
	}
	return p, nil
}

func (m *memStore) ChangeTTLPolicy(_ context.Context, groupID int64, c store.TTLPolicyChange) (store.TTLPolicy, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.ttl[groupID]
	if !ok {
		return store.TTLPolicy{}, notFound("group", groupID)
	}
	if c.Enabled != nil {
		p.Enabled = *c.Enabled
	}
	if c.TTLDays != nil {
		p.TTLDays = *c.TTLDays
	}
	p.UpdatedAt = m.now()
	m.ttl[groupID] = p
	return p, nil
}

// Generations are unknown in the fake: auth then remembers no pull
// decision, which the admin service does not use.
func (m *memStore) Generations(context.Context) (store.Generations, error) {
	return store.Generations{}, errors.New("the in-memory store keeps no generations")
}

func (m *memStore) DefaultHubCredentials(_ context.Context) (store.HubCredentials, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.hub, nil
}

func (m *memStore) SetDefaultHubCredentials(_ context.Context, c store.HubCredentials) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.hub = c
	return nil
}

// Users.

func (m *memStore) CountUsers(_ context.Context) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.users), nil
}

func (m *memStore) Users(_ context.Context) ([]store.User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []store.User{}
	for _, u := range m.users {
		out = append(out, u)
	}
	slices.SortFunc(out, func(a, b store.User) int { return strings.Compare(a.Username, b.Username) })
	return out, nil
}

func (m *memStore) CreateUser(_ context.Context, u store.User) (store.User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, x := range m.users {
		if x.Username == u.Username {
			return store.User{}, store.ErrConflict
		}
	}
	u.ID, u.CreatedAt = m.id(), m.now()
	m.users[u.ID] = u
	return u, nil
}

func (m *memStore) UpdateUser(_ context.Context, id int64, c store.UserChange) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.users[id]
	if !ok {
		return notFound("user", id)
	}
	if c.Admin != nil {
		u.Admin = *c.Admin
	}
	if c.Blocked != nil {
		u.Blocked = *c.Blocked
	}
	if c.PasswordHash != nil {
		u.PasswordHash = *c.PasswordHash
	}
	m.users[id] = u
	return nil
}

func (m *memStore) DeleteUser(_ context.Context, id int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.users[id]; !ok {
		return notFound("user", id)
	}
	m.record("delete user %d", id)
	delete(m.users, id)
	return nil
}

// Tokens.

func (m *memStore) CreateToken(_ context.Context, t store.Token) (store.Token, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t.ID, t.CreatedAt = m.id(), m.now()
	m.tokens[t.ID] = t
	return t, nil
}

func (m *memStore) tokensWhere(keep func(store.Token) bool) []store.Token {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []store.Token{}
	for _, t := range m.tokens {
		if keep(t) {
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(a, b store.Token) int { return int(a.ID - b.ID) })
	return out
}

func (m *memStore) TokensOfUser(_ context.Context, userID int64) ([]store.Token, error) {
	return m.tokensWhere(func(t store.Token) bool { return t.Kind == store.TokenPersonal && t.UserID == userID }), nil
}

func (m *memStore) TokensOfGroup(_ context.Context, groupID int64) ([]store.Token, error) {
	return m.tokensWhere(func(t store.Token) bool { return t.GroupID == groupID }), nil
}

func (m *memStore) RevokeToken(_ context.Context, id int64, at time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.tokens[id]
	if !ok {
		return notFound("token", id)
	}
	t.RevokedAt = &at
	m.tokens[id] = t
	return nil
}

func (m *memStore) NextTokenNumber(_ context.Context) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tokenNo++
	return m.tokenNo, nil
}

// Cached content of groups.

func (m *memStore) Manifest(_ context.Context, groupID int64, image, reference string) (store.Manifest, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, x := range m.manifests {
		if x.OwnerID == groupID && x.Image == image && x.Reference == reference {
			return x, nil
		}
	}
	return store.Manifest{}, notFound("manifest", image+":"+reference)
}

func (m *memStore) ManifestsOfGroup(_ context.Context, groupID, afterID int64, limit int) ([]store.Manifest, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []store.Manifest{}
	for _, x := range m.manifests {
		if x.OwnerID == groupID && (afterID == 0 || x.ID < afterID) {
			out = append(out, x)
		}
	}
	slices.SortFunc(out, func(a, b store.Manifest) int { return int(b.ID - a.ID) })
	return out[:min(len(out), limit)], nil
}

// ImageSizesOfGroup sizes image manifests as the store does (config plus
// layers, the bytes of those the group holds); an index is left unsized.
func (m *memStore) ImageSizesOfGroup(_ context.Context, groupID int64, ms []store.Manifest) (map[int64]store.ImageSizes, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[int64]store.ImageSizes{}
	for _, x := range ms {
		c, err := oci.ParseContents(x.MediaType, x.Content)
		if err != nil || c.Index {
			continue
		}
		sz := store.ImageSizes{Image: c.BlobSize()}
		for _, d := range c.Blobs {
			if b, ok := m.blobs[store.BlobKey{OwnerID: groupID, Digest: d.Digest}]; ok {
				sz.Cached += b.Size
			}
		}
		out[x.ID] = sz
	}
	return out, nil
}

func (m *memStore) DeleteManifest(_ context.Context, id int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.manifests[id]; !ok {
		return notFound("manifest", id)
	}
	m.record("delete manifest %d", id)
	delete(m.manifests, id)
	return nil
}

func (m *memStore) BlobsOfGroupNewest(_ context.Context, groupID int64, _ *store.BlobCursor, limit int) ([]store.Blob, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []store.Blob{}
	for k, b := range m.blobs {
		if k.OwnerID == groupID {
			out = append(out, b)
		}
	}
	slices.SortFunc(out, func(a, b store.Blob) int { return strings.Compare(string(a.Digest), string(b.Digest)) })
	return out[:min(len(out), limit)], nil
}

func (m *memStore) GroupUsage(_ context.Context, groupID int64) (store.Usage, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var u store.Usage
	for _, x := range m.manifests {
		if x.OwnerID == groupID {
			u.Manifests++
			u.ManifestBytes += x.Size
		}
	}
	for k, b := range m.blobs {
		if k.OwnerID == groupID {
			u.Blobs++
			u.BlobBytes += b.Size
		}
	}
	return u, nil
}

func (m *memStore) PurgeGroupCacheCounted(_ context.Context, groupID int64) (store.Purged, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.record("purge group %d", groupID)
	var p store.Purged
	for id, x := range m.manifests {
		if x.OwnerID == groupID {
			p.Manifests++
			p.Bytes += x.Size
			delete(m.manifests, id)
		}
	}
	for k, b := range m.blobs {
		if k.OwnerID == groupID {
			p.Blobs = append(p.Blobs, b.Digest)
			p.Bytes += b.Size
			delete(m.blobs, k)
		}
	}
	return p, nil
}

// Virtual registries.

func (m *memStore) CreateVirtualRegistry(_ context.Context, r store.VirtualRegistry, limit int) (store.VirtualRegistry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.groups[r.GroupID]; !ok {
		return store.VirtualRegistry{}, notFound("group", r.GroupID)
	}
	n := 0
	for _, x := range m.registries {
		if x.GroupID == r.GroupID {
			n++
			if x.Name == r.Name {
				return store.VirtualRegistry{}, store.ErrConflict
			}
		}
	}
	if n >= limit {
		return store.VirtualRegistry{}, store.ErrLimit
	}
	r.ID, r.CreatedAt, r.UpdatedAt = m.id(), m.now(), m.now()
	m.registries[r.ID] = r
	return r, nil
}

func (m *memStore) VirtualRegistry(_ context.Context, id int64) (store.VirtualRegistry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.registries[id]
	if !ok {
		return store.VirtualRegistry{}, notFound("virtual registry", id)
	}
	return r, nil
}

func (m *memStore) VirtualRegistriesOfGroup(_ context.Context, groupID int64) ([]store.VirtualRegistry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []store.VirtualRegistry{}
	for _, r := range m.registries {
		if r.GroupID == groupID {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b store.VirtualRegistry) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (m *memStore) ChangeVirtualRegistry(_ context.Context, id int64, c store.VirtualRegistryChange) (store.VirtualRegistry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.registries[id]
	if !ok {
		return store.VirtualRegistry{}, notFound("virtual registry", id)
	}
	if c.Name != nil {
		for _, x := range m.registries {
			if x.GroupID == r.GroupID && x.ID != id && x.Name == *c.Name {
				return store.VirtualRegistry{}, store.ErrConflict
			}
		}
		r.Name = *c.Name
	}
	if c.Description != nil {
		r.Description = *c.Description
	}
	r.UpdatedAt = m.now()
	m.registries[id] = r
	return r, nil
}

func (m *memStore) DeleteVirtualRegistry(_ context.Context, id int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.registries[id]; !ok {
		return notFound("virtual registry", id)
	}
	m.record("delete registry %d", id)
	delete(m.registries, id)
	for uid, u := range m.upstreams {
		if u.RegistryID == id {
			delete(m.upstreams, uid)
			delete(m.entries, uid)
		}
	}
	return nil
}

func (m *memStore) upstreamsOf(registryID int64) []store.VirtualUpstream {
	var out []store.VirtualUpstream
	for _, u := range m.upstreams {
		if u.RegistryID == registryID {
			out = append(out, u)
		}
	}
	slices.SortFunc(out, func(a, b store.VirtualUpstream) int { return a.Position - b.Position })
	return out
}

func (m *memStore) renumber(registryID int64, order []store.VirtualUpstream) {
	for i, u := range order {
		u.Position = i
		m.upstreams[u.ID] = u
	}
}

func (m *memStore) AddVirtualUpstream(_ context.Context, u store.VirtualUpstream, limit int) (store.VirtualUpstream, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.registries[u.RegistryID]; !ok {
		return store.VirtualUpstream{}, notFound("virtual registry", u.RegistryID)
	}
	us := m.upstreamsOf(u.RegistryID)
	if len(us) >= limit {
		return store.VirtualUpstream{}, store.ErrLimit
	}
	for _, x := range us {
		if x.Name == u.Name {
			return store.VirtualUpstream{}, store.ErrConflict
		}
	}
	u.ID, u.Position, u.CreatedAt, u.UpdatedAt = m.id(), len(us), m.now(), m.now()
	m.upstreams[u.ID] = u
	return u, nil
}

func (m *memStore) VirtualUpstream(_ context.Context, id int64) (store.VirtualUpstream, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.upstreams[id]
	if !ok {
		return store.VirtualUpstream{}, notFound("upstream", id)
	}
	return u, nil
}

func (m *memStore) VirtualUpstreams(_ context.Context, registryID int64) ([]store.VirtualUpstream, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]store.VirtualUpstream{}, m.upstreamsOf(registryID)...), nil
}

func (m *memStore) VirtualUpstreamsOfGroup(_ context.Context, groupID int64) ([]store.VirtualUpstream, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []store.VirtualUpstream{}
	for _, u := range m.upstreams {
		if m.registries[u.RegistryID].GroupID == groupID {
			out = append(out, u)
		}
	}
	slices.SortFunc(out, func(a, b store.VirtualUpstream) int { return int(a.ID - b.ID) })
	return out, nil
}

// ChangeVirtualUpstream clears the credentials on a change of origin
// without a password, as the store does.
func (m *memStore) ChangeVirtualUpstream(_ context.Context, id int64, c store.VirtualUpstreamChange, check func(before, after store.VirtualUpstream) error) (store.VirtualUpstream, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	before, ok := m.upstreams[id]
	if !ok {
		return store.VirtualUpstream{}, false, notFound("upstream", id)
	}
	after := before
	if c.Name != nil {
		after.Name = *c.Name
	}
	if c.URL != nil {
		after.URL = *c.URL
	}
	if c.Username != nil {
		after.Username = *c.Username
	}
	if c.Password != nil {
		after.Password = *c.Password
	}
	if c.CacheValidityHours != nil {
		after.CacheValidityHours = *c.CacheValidityHours
	}
	cleared := false
	if c.Password == nil && !store.SameOrigin(before.URL, after.URL) {
		cleared = before.Username != "" || before.Password != ""
		after.Username, after.Password = "", ""
	}
	if check != nil {
		if err := check(before, after); err != nil {
			return store.VirtualUpstream{}, false, err
		}
	}
	for _, x := range m.upstreamsOf(before.RegistryID) {
		if x.ID != id && x.Name == after.Name {
			return store.VirtualUpstream{}, false, store.ErrConflict
		}
	}
	after.UpdatedAt = m.now()
	m.upstreams[id] = after
	return after, cleared, nil
}

func (m *memStore) MoveVirtualUpstream(_ context.Context, id int64, position int) ([]store.VirtualUpstream, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.upstreams[id]
	if !ok {
		return nil, notFound("upstream", id)
	}
	us := m.upstreamsOf(u.RegistryID)
	i := slices.IndexFunc(us, func(x store.VirtualUpstream) bool { return x.ID == id })
	us = slices.Delete(us, i, i+1)
	us = slices.Insert(us, min(max(position, 0), len(us)), u)
	m.renumber(u.RegistryID, us)
	return m.upstreamsOf(u.RegistryID), nil
}

func (m *memStore) DeleteVirtualUpstream(_ context.Context, id int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.upstreams[id]
	if !ok {
		return notFound("upstream", id)
	}
	m.record("delete upstream %d", id)
	delete(m.upstreams, id)
	delete(m.entries, id)
	m.renumber(u.RegistryID, m.upstreamsOf(u.RegistryID))
	return nil
}

func (m *memStore) VirtualCacheEntries(_ context.Context, upstreamID int64, q store.CacheEntryQuery) ([]store.VirtualCacheEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []store.VirtualCacheEntry
	for _, e := range m.entries[upstreamID] {
		if e.Path > q.After && strings.Contains(strings.ToLower(e.Path), strings.ToLower(q.Search)) {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b store.VirtualCacheEntry) int { return strings.Compare(a.Path, b.Path) })
	out = out[min(q.Offset, len(out)):]
	if q.Limit > 0 {
		out = out[:min(q.Limit, len(out))]
	}
	return out, nil
}

func (m *memStore) CountVirtualCacheEntries(ctx context.Context, upstreamID int64, search string) (int, error) {
	es, err := m.VirtualCacheEntries(ctx, upstreamID, store.CacheEntryQuery{Search: search})
	return len(es), err
}

func (m *memStore) DeleteVirtualCacheEntry(_ context.Context, upstreamID int64, path string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	es := m.entries[upstreamID]
	i := slices.IndexFunc(es, func(e store.VirtualCacheEntry) bool { return e.Path == path })
	if i < 0 {
		return notFound("cache entry", path)
	}
	m.record("delete entry %d %s", upstreamID, path)
	m.entries[upstreamID] = slices.Delete(es, i, i+1)
	return nil
}

func (m *memStore) ClearVirtualCache(_ context.Context, ids []int64) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var n int64
	for _, id := range ids {
		m.record("clear upstream %d", id)
		n += int64(len(m.entries[id]))
		delete(m.entries, id)
	}
	return n, nil
}

// fakeCache records what the Service asks of the cache in calls.
type fakeCache struct{ calls *[]string }

func (c fakeCache) ForgetGroup(id int64) {
	*c.calls = append(*c.calls, fmt.Sprintf("forget group %d", id))
}
func (c fakeCache) ForgetUpstream(id int64) {
	*c.calls = append(*c.calls, fmt.Sprintf("forget upstream %d", id))
}
func (c fakeCache) Released() { *c.calls = append(*c.calls, "released") }

// harness is a Service over memStore and fakeCache, with the real auth
// rules on top of the same memStore.
type harness struct {
	t     *testing.T
	st    *memStore
	calls *[]string
	svc   *Service
	log   *bytes.Buffer
	now   time.Time
}

func newHarness(t *testing.T, opts Options) *harness {
	t.Helper()
	h := &harness{t: t, calls: &[]string{}, log: &bytes.Buffer{}, now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	clock := func() time.Time { return h.now }
	h.st = newMemStore(h.calls, clock)
	a := auth.NewService(h.st, nil, auth.ServiceOptions{Now: clock})
	opts.Logger = slog.New(slog.NewTextHandler(h.log, nil))
	opts.Now = clock
	h.svc = New(h.st, fakeCache{h.calls}, a, opts)
	return h
}

// user adds a user and returns them signed in with a password.
func (h *harness) user(name string, admin bool) Actor {
	h.st.mu.Lock()
	defer h.st.mu.Unlock()
	u := store.User{ID: h.st.id(), Username: name, Admin: admin, CreatedAt: h.now}
	h.st.users[u.ID] = u
	return Actor{User: &u}
}

// group adds a group with its settings (its parent must exist).
func (h *harness) group(path string) store.Group {
	h.t.Helper()
	g, err := h.st.CreateGroup(h.t.Context(), path)
	if err != nil {
		h.t.Fatal(err)
	}
	return g
}

func (h *harness) member(g store.Group, a Actor, r store.Role) {
	h.st.mu.Lock()
	defer h.st.mu.Unlock()
	h.st.members[[2]int64{g.ID, a.User.ID}] = r
}

// resetCalls forgets the calls recorded so far.
func (h *harness) resetCalls() { *h.calls = (*h.calls)[:0] }

// wantKind checks that err is an *Error of kind whose message contains
// want, refused or not as said.
func wantKind(t *testing.T, what string, err, kind error, refused bool, want string) {
	t.Helper()
	msg, ok := Message(err)
	switch {
	case err == nil:
		t.Errorf("%s: no error, want %v %q", what, kind, want)
	case !ok:
		t.Errorf("%s: internal error %v, want %v %q", what, err, kind, want)
	case !errors.Is(err, kind):
		t.Errorf("%s: %v (%q), want kind %v", what, err, msg, kind)
	case IsRefusal(err) != refused:
		t.Errorf("%s: refused = %v, want %v (%q)", what, IsRefusal(err), refused, msg)
	case !strings.Contains(msg, want):
		t.Errorf("%s: message %q does not say %q", what, msg, want)
	}
}
