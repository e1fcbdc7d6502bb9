package graphql

import (
	"context"
	"sync"
	"time"

	"github.com/dproxy/dproxy/internal/admin"
	"github.com/dproxy/dproxy/internal/auth"
	"github.com/dproxy/dproxy/internal/store"
)

// countingStore is a real store that counts every call the admin service
// and auth make of it. It implements admin.Store and auth.Accounts method
// by method, without embedding, so no call can pass uncounted.
type countingStore struct {
	st *store.Store
	mu sync.Mutex
	n  map[string]int
}

var (
	_ admin.Store   = (*countingStore)(nil)
	_ auth.Accounts = (*countingStore)(nil)
)

func (w *countingStore) add(name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n[name]++
}

// take returns the calls counted since the last take.
func (w *countingStore) take() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := w.n
	w.n = map[string]int{}
	return n
}

func (w *countingStore) ImageSizesOfGroup(ctx context.Context, groupID int64, ms []store.Manifest) (map[int64]store.ImageSizes, error) {
	w.add("ImageSizesOfGroup")
	return w.st.ImageSizesOfGroup(ctx, groupID, ms)
}
func (w *countingStore) GroupByID(ctx context.Context, id int64) (store.Group, error) {
	w.add("GroupByID")
	return w.st.GroupByID(ctx, id)
}
func (w *countingStore) Groups(ctx context.Context) ([]store.Group, error) {
	w.add("Groups")
	return w.st.Groups(ctx)
}
func (w *countingStore) CreateGroup(ctx context.Context, path string) (store.Group, error) {
	w.add("CreateGroup")
	return w.st.CreateGroup(ctx, path)
}
func (w *countingStore) DeleteGroup(ctx context.Context, id int64) error {
	w.add("DeleteGroup")
	return w.st.DeleteGroup(ctx, id)
}
func (w *countingStore) Members(ctx context.Context, groupID int64) ([]store.Member, error) {
	w.add("Members")
	return w.st.Members(ctx, groupID)
}
func (w *countingStore) MembershipsOfUser(ctx context.Context, userID int64) ([]store.Member, error) {
	w.add("MembershipsOfUser")
	return w.st.MembershipsOfUser(ctx, userID)
}
func (w *countingStore) SetMember(ctx context.Context, groupID, userID int64, role store.Role) error {
	w.add("SetMember")
	return w.st.SetMember(ctx, groupID, userID, role)
}
func (w *countingStore) RemoveMember(ctx context.Context, groupID, userID int64) error {
	w.add("RemoveMember")
	return w.st.RemoveMember(ctx, groupID, userID)
}
func (w *countingStore) ProxySetting(ctx context.Context, groupID int64) (store.ProxySetting, error) {
	w.add("ProxySetting")
	return w.st.ProxySetting(ctx, groupID)
}
func (w *countingStore) ProxySettings(ctx context.Context, groupIDs []int64) (map[int64]store.ProxySetting, error) {
	w.add("ProxySettings")
	return w.st.ProxySettings(ctx, groupIDs)
}
func (w *countingStore) TTLPolicies(ctx context.Context, groupIDs []int64) (map[int64]store.TTLPolicy, error) {
	w.add("TTLPolicies")
	return w.st.TTLPolicies(ctx, groupIDs)
}
func (w *countingStore) ChangeProxySetting(ctx context.Context, groupID int64, c store.ProxySettingChange) (store.ProxySetting, error) {
	w.add("ChangeProxySetting")
	return w.st.ChangeProxySetting(ctx, groupID, c)
}
func (w *countingStore) TTLPolicy(ctx context.Context, groupID int64) (store.TTLPolicy, error) {
	w.add("TTLPolicy")
	return w.st.TTLPolicy(ctx, groupID)
}
func (w *countingStore) ChangeTTLPolicy(ctx context.Context, groupID int64, c store.TTLPolicyChange) (store.TTLPolicy, error) {
	w.add("ChangeTTLPolicy")
	return w.st.ChangeTTLPolicy(ctx, groupID, c)
}
func (w *countingStore) DefaultHubCredentials(ctx context.Context) (store.HubCredentials, error) {
	w.add("DefaultHubCredentials")
	return w.st.DefaultHubCredentials(ctx)
}
func (w *countingStore) SetDefaultHubCredentials(ctx context.Context, c store.HubCredentials) error {
	w.add("SetDefaultHubCredentials")
	return w.st.SetDefaultHubCredentials(ctx, c)
}
func (w *countingStore) CountUsers(ctx context.Context) (int, error) {
	w.add("CountUsers")
	return w.st.CountUsers(ctx)
}
func (w *countingStore) Users(ctx context.Context) ([]store.User, error) {
	w.add("Users")
	return w.st.Users(ctx)
}
func (w *countingStore) UserByID(ctx context.Context, id int64) (store.User, error) {
	w.add("UserByID")
	return w.st.UserByID(ctx, id)
}
func (w *countingStore) UserByUsername(ctx context.Context, username string) (store.User, error) {
	w.add("UserByUsername")
	return w.st.UserByUsername(ctx, username)
}
func (w *countingStore) CreateUser(ctx context.Context, u store.User) (store.User, error) {
	w.add("CreateUser")
	return w.st.CreateUser(ctx, u)
}
func (w *countingStore) UpdateUser(ctx context.Context, id int64, c store.UserChange) error {
	w.add("UpdateUser")
	return w.st.UpdateUser(ctx, id, c)
}
func (w *countingStore) DeleteUser(ctx context.Context, id int64) error {
	w.add("DeleteUser")
	return w.st.DeleteUser(ctx, id)
}
func (w *countingStore) CreateToken(ctx context.Context, t store.Token) (store.Token, error) {
	w.add("CreateToken")
	return w.st.CreateToken(ctx, t)
}
func (w *countingStore) TokenByID(ctx context.Context, id int64) (store.Token, error) {
	w.add("TokenByID")
	return w.st.TokenByID(ctx, id)
}
func (w *countingStore) TokensOfUser(ctx context.Context, userID int64) ([]store.Token, error) {
	w.add("TokensOfUser")
	return w.st.TokensOfUser(ctx, userID)
}
func (w *countingStore) TokensOfGroup(ctx context.Context, groupID int64) ([]store.Token, error) {
	w.add("TokensOfGroup")
	return w.st.TokensOfGroup(ctx, groupID)
}
func (w *countingStore) RevokeToken(ctx context.Context, id int64, at time.Time) error {
	w.add("RevokeToken")
	return w.st.RevokeToken(ctx, id, at)
}
func (w *countingStore) NextTokenNumber(ctx context.Context) (int64, error) {
	w.add("NextTokenNumber")
	return w.st.NextTokenNumber(ctx)
}
func (w *countingStore) Manifest(ctx context.Context, groupID int64, image, reference string) (store.Manifest, error) {
	w.add("Manifest")
	return w.st.Manifest(ctx, groupID, image, reference)
}
func (w *countingStore) ManifestsOfGroup(ctx context.Context, groupID, afterID int64, limit int) ([]store.Manifest, error) {
	w.add("ManifestsOfGroup")
	return w.st.ManifestsOfGroup(ctx, groupID, afterID, limit)
}
func (w *countingStore) DeleteManifest(ctx context.Context, id int64) error {
	w.add("DeleteManifest")
	return w.st.DeleteManifest(ctx, id)
}
func (w *countingStore) BlobsOfGroupNewest(ctx context.Context, groupID int64, after *store.BlobCursor, limit int) ([]store.Blob, error) {
	w.add("BlobsOfGroupNewest")
	return w.st.BlobsOfGroupNewest(ctx, groupID, after, limit)
}
func (w *countingStore) GroupUsage(ctx context.Context, groupID int64) (store.Usage, error) {
	w.add("GroupUsage")
	return w.st.GroupUsage(ctx, groupID)
}
func (w *countingStore) GroupUsages(ctx context.Context, groupIDs []int64) (map[int64]store.Usage, error) {
	w.add("GroupUsages")
	return w.st.GroupUsages(ctx, groupIDs)
}
func (w *countingStore) PurgeGroupCacheCounted(ctx context.Context, groupID int64) (store.Purged, error) {
	w.add("PurgeGroupCacheCounted")
	return w.st.PurgeGroupCacheCounted(ctx, groupID)
}
func (w *countingStore) CreateVirtualRegistry(ctx context.Context, r store.VirtualRegistry, max int) (store.VirtualRegistry, error) {
	w.add("CreateVirtualRegistry")
	return w.st.CreateVirtualRegistry(ctx, r, max)
}
func (w *countingStore) VirtualRegistry(ctx context.Context, id int64) (store.VirtualRegistry, error) {
	w.add("VirtualRegistry")
	return w.st.VirtualRegistry(ctx, id)
}
func (w *countingStore) VirtualRegistriesOfGroup(ctx context.Context, groupID int64) ([]store.VirtualRegistry, error) {
	w.add("VirtualRegistriesOfGroup")
	return w.st.VirtualRegistriesOfGroup(ctx, groupID)
}
func (w *countingStore) ChangeVirtualRegistry(ctx context.Context, id int64, c store.VirtualRegistryChange) (store.VirtualRegistry, error) {
	w.add("ChangeVirtualRegistry")
	return w.st.ChangeVirtualRegistry(ctx, id, c)
}
func (w *countingStore) DeleteVirtualRegistry(ctx context.Context, id int64) error {
	w.add("DeleteVirtualRegistry")
	return w.st.DeleteVirtualRegistry(ctx, id)
}
func (w *countingStore) AddVirtualUpstream(ctx context.Context, u store.VirtualUpstream, max int) (store.VirtualUpstream, error) {
	w.add("AddVirtualUpstream")
	return w.st.AddVirtualUpstream(ctx, u, max)
}
func (w *countingStore) VirtualUpstream(ctx context.Context, id int64) (store.VirtualUpstream, error) {
	w.add("VirtualUpstream")
	return w.st.VirtualUpstream(ctx, id)
}
func (w *countingStore) VirtualUpstreams(ctx context.Context, registryID int64) ([]store.VirtualUpstream, error) {
	w.add("VirtualUpstreams")
	return w.st.VirtualUpstreams(ctx, registryID)
}
func (w *countingStore) VirtualUpstreamsOfGroup(ctx context.Context, groupID int64) ([]store.VirtualUpstream, error) {
	w.add("VirtualUpstreamsOfGroup")
	return w.st.VirtualUpstreamsOfGroup(ctx, groupID)
}
func (w *countingStore) ChangeVirtualUpstream(ctx context.Context, id int64, c store.VirtualUpstreamChange, check func(before, after store.VirtualUpstream) error) (store.VirtualUpstream, bool, error) {
	w.add("ChangeVirtualUpstream")
	return w.st.ChangeVirtualUpstream(ctx, id, c, check)
}
func (w *countingStore) MoveVirtualUpstream(ctx context.Context, id int64, position int) ([]store.VirtualUpstream, error) {
	w.add("MoveVirtualUpstream")
	return w.st.MoveVirtualUpstream(ctx, id, position)
}
func (w *countingStore) DeleteVirtualUpstream(ctx context.Context, id int64) error {
	w.add("DeleteVirtualUpstream")
	return w.st.DeleteVirtualUpstream(ctx, id)
}
func (w *countingStore) VirtualCacheEntries(ctx context.Context, upstreamID int64, q store.CacheEntryQuery) ([]store.VirtualCacheEntry, error) {
	w.add("VirtualCacheEntries")
	return w.st.VirtualCacheEntries(ctx, upstreamID, q)
}
func (w *countingStore) CountVirtualCacheEntries(ctx context.Context, upstreamID int64, search string) (int, error) {
	w.add("CountVirtualCacheEntries")
	return w.st.CountVirtualCacheEntries(ctx, upstreamID, search)
}
func (w *countingStore) DeleteVirtualCacheEntry(ctx context.Context, upstreamID int64, path string) error {
	w.add("DeleteVirtualCacheEntry")
	return w.st.DeleteVirtualCacheEntry(ctx, upstreamID, path)
}
func (w *countingStore) ClearVirtualCache(ctx context.Context, upstreamIDs []int64) (int64, error) {
	w.add("ClearVirtualCache")
	return w.st.ClearVirtualCache(ctx, upstreamIDs)
}
func (w *countingStore) GroupByPath(ctx context.Context, path string) (store.Group, error) {
	w.add("GroupByPath")
	return w.st.GroupByPath(ctx, path)
}
func (w *countingStore) EffectiveRole(ctx context.Context, userID, groupID int64) (store.Role, error) {
	w.add("EffectiveRole")
	return w.st.EffectiveRole(ctx, userID, groupID)
}
func (w *countingStore) IsAncestorOrSelf(ctx context.Context, ancestorID, groupID int64) (bool, error) {
	w.add("IsAncestorOrSelf")
	return w.st.IsAncestorOrSelf(ctx, ancestorID, groupID)
}
func (w *countingStore) TokenByHash(ctx context.Context, hash []byte) (store.Token, error) {
	w.add("TokenByHash")
	return w.st.TokenByHash(ctx, hash)
}
func (w *countingStore) TouchToken(ctx context.Context, id int64, at time.Time) error {
	w.add("TouchToken")
	return w.st.TouchToken(ctx, id, at)
}
func (w *countingStore) Generations(ctx context.Context) (store.Generations, error) {
	w.add("Generations")
	return w.st.Generations(ctx)
}
