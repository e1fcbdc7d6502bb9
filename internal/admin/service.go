// Package admin is dproxy's admin service: every operation an instance
// admin or a group owner performs — groups and their dependency proxy
// settings, users, memberships, tokens, cached images, virtual registries —
// with its rules: authorisation (through auth's permission checks),
// validation, one transaction per change, an audit log line per change
// (who did what to which object, never a secret), and cache consistency
// (the cache forgets its in-memory state before rows go, and is told when
// files may have become unreferenced).
//
// Every transport calls it: the GraphQL API and GitLab's REST API decode a
// request, call one method and encode the answer; the first start and the
// benchmarks seed through it too. Its types are transport-neutral, and its
// refusals are *Error values of a few kinds (ErrInvalid, ErrNotFound, …)
// that each transport maps to its own answers.
//
// It takes the store, the cache and auth through the small interfaces
// below. It must not import server, commands or tui.
package admin

import (
	"context"
	"log/slog"
	"net/netip"
	"time"

	"github.com/dproxy/dproxy/internal/auth"
	"github.com/dproxy/dproxy/internal/store"
)

// Actor is who performs an operation: a signed-in user or token.
type Actor = auth.Principal

// Store is what the Service reads and writes. *store.Store satisfies it.
// Lookups of missing rows return errors wrapping store.ErrNotFound.
type Store interface {
	groupStore
	settingsStore
	userStore
	tokenStore
	cacheStore
	virtualStore
}

// groupStore holds groups and memberships.
type groupStore interface {
	GroupByID(ctx context.Context, id int64) (store.Group, error)
	Groups(ctx context.Context) ([]store.Group, error)
	CreateGroup(ctx context.Context, path string) (store.Group, error)
	DeleteGroup(ctx context.Context, id int64) error
	Members(ctx context.Context, groupID int64) ([]store.Member, error)
	MembershipsOfUser(ctx context.Context, userID int64) ([]store.Member, error)
	SetMember(ctx context.Context, groupID, userID int64, role store.Role) error
	RemoveMember(ctx context.Context, groupID, userID int64) error
}

// settingsStore holds the groups' and the instance's settings. Changes
// write only the fields they give, in one transaction.
type settingsStore interface {
	ProxySetting(ctx context.Context, groupID int64) (store.ProxySetting, error)
	// ProxySettings and TTLPolicies read the values of many groups at
	// once, leaving out unknown groups.
	ProxySettings(ctx context.Context, groupIDs []int64) (map[int64]store.ProxySetting, error)
	TTLPolicies(ctx context.Context, groupIDs []int64) (map[int64]store.TTLPolicy, error)
	ChangeProxySetting(ctx context.Context, groupID int64, c store.ProxySettingChange) (store.ProxySetting, error)
	TTLPolicy(ctx context.Context, groupID int64) (store.TTLPolicy, error)
	ChangeTTLPolicy(ctx context.Context, groupID int64, c store.TTLPolicyChange) (store.TTLPolicy, error)
	DefaultHubCredentials(ctx context.Context) (store.HubCredentials, error)
	SetDefaultHubCredentials(ctx context.Context, c store.HubCredentials) error
}

// userStore holds users.
type userStore interface {
	CountUsers(ctx context.Context) (int, error)
	Users(ctx context.Context) ([]store.User, error)
	UserByID(ctx context.Context, id int64) (store.User, error)
	UserByUsername(ctx context.Context, username string) (store.User, error)
	CreateUser(ctx context.Context, u store.User) (store.User, error)
	UpdateUser(ctx context.Context, id int64, c store.UserChange) error
	DeleteUser(ctx context.Context, id int64) error
}

// tokenStore holds access tokens (their hashes).
type tokenStore interface {
	CreateToken(ctx context.Context, t store.Token) (store.Token, error)
	TokenByID(ctx context.Context, id int64) (store.Token, error)
	TokensOfUser(ctx context.Context, userID int64) ([]store.Token, error)
	TokensOfGroup(ctx context.Context, groupID int64) ([]store.Token, error)
	RevokeToken(ctx context.Context, id int64, at time.Time) error
	NextTokenNumber(ctx context.Context) (int64, error)
}

// cacheStore holds the groups' cached manifests and blob references.
type cacheStore interface {
	Manifest(ctx context.Context, groupID int64, image, reference string) (store.Manifest, error)
	ManifestsOfGroup(ctx context.Context, groupID, afterID int64, limit int) ([]store.Manifest, error)
	// ImageSizesOfGroup sizes a page of a group's manifests, by ID, in a
	// fixed number of queries.
	ImageSizesOfGroup(ctx context.Context, groupID int64, ms []store.Manifest) (map[int64]store.ImageSizes, error)
	DeleteManifest(ctx context.Context, id int64) error
	BlobsOfGroupNewest(ctx context.Context, groupID int64, after *store.BlobCursor, limit int) ([]store.Blob, error)
	GroupUsage(ctx context.Context, groupID int64) (store.Usage, error)
	// GroupUsages is GroupUsage of many groups at once, leaving out
	// unknown groups.
	GroupUsages(ctx context.Context, groupIDs []int64) (map[int64]store.Usage, error)
	PurgeGroupCacheCounted(ctx context.Context, groupID int64) (store.Purged, error)
}

// virtualStore holds the container virtual registries.
type virtualStore interface {
	CreateVirtualRegistry(ctx context.Context, r store.VirtualRegistry, max int) (store.VirtualRegistry, error)
	VirtualRegistry(ctx context.Context, id int64) (store.VirtualRegistry, error)
	VirtualRegistriesOfGroup(ctx context.Context, groupID int64) ([]store.VirtualRegistry, error)
	ChangeVirtualRegistry(ctx context.Context, id int64, c store.VirtualRegistryChange) (store.VirtualRegistry, error)
	DeleteVirtualRegistry(ctx context.Context, id int64) error
	AddVirtualUpstream(ctx context.Context, u store.VirtualUpstream, max int) (store.VirtualUpstream, error)
	VirtualUpstream(ctx context.Context, id int64) (store.VirtualUpstream, error)
	VirtualUpstreams(ctx context.Context, registryID int64) ([]store.VirtualUpstream, error)
	VirtualUpstreamsOfGroup(ctx context.Context, groupID int64) ([]store.VirtualUpstream, error)
	ChangeVirtualUpstream(ctx context.Context, id int64, c store.VirtualUpstreamChange, check func(before, after store.VirtualUpstream) error) (store.VirtualUpstream, bool, error)
	MoveVirtualUpstream(ctx context.Context, id int64, position int) ([]store.VirtualUpstream, error)
	DeleteVirtualUpstream(ctx context.Context, id int64) error
	VirtualCacheEntries(ctx context.Context, upstreamID int64, q store.CacheEntryQuery) ([]store.VirtualCacheEntry, error)
	CountVirtualCacheEntries(ctx context.Context, upstreamID int64, search string) (int, error)
	DeleteVirtualCacheEntry(ctx context.Context, upstreamID int64, path string) error
	ClearVirtualCache(ctx context.Context, upstreamIDs []int64) (int64, error)
}

// Cache is what the Service needs of the pull-through caches to keep them
// consistent with the rows it deletes.
type Cache interface {
	// ForgetGroup drops a group from the downloads in flight, so that a
	// download finishing after its rows were removed does not add one
	// back. It is called before the rows go.
	ForgetGroup(groupID int64)
	// ForgetUpstream does the same for a virtual registry upstream.
	ForgetUpstream(upstreamID int64)
	// Released says that blob references (or whole upstream caches) were
	// dropped, so unreferenced files can be collected soon.
	Released()
}

// Authorizer is auth's permission checks. *auth.Service satisfies it.
type Authorizer interface {
	// AuthorizeGroup returns the group at path and the actor's role in it
	// when the actor may do action there, which needs role need (instance
	// admins may do all). An unknown group and one the actor may not read
	// give the same error wrapping oci.ErrNameUnknown; a role below need
	// one wrapping oci.ErrDenied.
	AuthorizeGroup(ctx context.Context, p auth.Principal, path string, need store.Role, action string) (store.Group, store.Role, error)
	// GroupRole is the actor's role in g for administration.
	GroupRole(ctx context.Context, p auth.Principal, g store.Group) (store.Role, error)
	// AuthenticateToken signs in with a token secret.
	AuthenticateToken(ctx context.Context, secret string) (auth.Principal, error)
	// AuthorizePasswordChange decides whether p, at address from, may set
	// target's password, checking (and throttling) current when needed.
	AuthorizePasswordChange(ctx context.Context, from netip.Addr, p auth.Principal, target store.User, current string) error
}

// AddressPolicy decides which upstream addresses a group owner may set.
// *netpolicy.Policy satisfies it.
type AddressPolicy interface {
	// Validate refuses a URL whose host the policy refuses (an IP literal
	// without a lookup, a name when every address it resolves to is
	// refused), with an error saying so.
	Validate(ctx context.Context, url string) error
}

// Options configure a Service. Zero values mean the defaults.
type Options struct {
	// Logger receives the audit log: one line per change.
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// VirtualRegistries and VirtualUpstreams cap the virtual registries of
	// a group and the upstreams of a registry (default: GitLab's 5).
	VirtualRegistries, VirtualUpstreams int
	// AddressPolicy, when set, refuses a virtual registry upstream whose
	// host it refuses when the upstream is added or its URL changed. Every
	// connection is checked again when it is made.
	AddressPolicy AddressPolicy
	// RateLimits, when set, reports the upstream rate limits last seen.
	RateLimits func() []RateLimit
	// CheckRateLimit, when set, asks the upstream for a credential's
	// limit. The upstream is the server's own.
	CheckRateLimit func(ctx context.Context, creds Credentials) (RateLimitCheck, error)
	// CITrusts holds the CI trust policies; nil refuses their operations.
	CITrusts CITrustStore
	// WarmEntries holds the tags groups keep warm; nil refuses their
	// operations.
	WarmEntries WarmStore
	// Activity, when set, reports downloads in progress, recent pulls and
	// the per-second counts.
	Activity ActivitySource
	// Warmer, when set, hears when warm entries were added or made due.
	Warmer Warmer
}

// DefaultVirtualRegistries and DefaultVirtualUpstreams are GitLab's
// limits, used when Options leave them zero.
const (
	DefaultVirtualRegistries = 5
	DefaultVirtualUpstreams  = 5
)

// Service performs admin operations. It is safe for concurrent use.
type Service struct {
	store Store
	cache Cache
	auth  Authorizer
	opts  Options
	log   *slog.Logger
}

// New returns a Service over st, keeping c consistent and checking
// permissions with a. c may be nil where no cache runs (seeding a data
// directory before the server starts).
func New(st Store, c Cache, a Authorizer, opts Options) *Service {
	if c == nil {
		c = noCache{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.VirtualRegistries <= 0 {
		opts.VirtualRegistries = DefaultVirtualRegistries
	}
	if opts.VirtualUpstreams <= 0 {
		opts.VirtualUpstreams = DefaultVirtualUpstreams
	}
	return &Service{store: st, cache: c, auth: a, opts: opts, log: opts.Logger}
}

// authorizeGroup is Authorizer.AuthorizeGroup with the Service's errors.
func (s *Service) authorizeGroup(ctx context.Context, a Actor, path string, need store.Role, action string) (store.Group, error) {
	g, _, err := s.auth.AuthorizeGroup(ctx, a, path, need, action)
	return g, fromAuth(err)
}

// cacheScope names the in-memory cache state a deletion invalidates.
type cacheScope struct {
	groups    []int64
	upstreams []int64
}

// dropCached is the one way the Service removes cached content: the cache
// forgets the scope's downloads in flight first (so that one finishing
// meanwhile does not record a reference again), then del removes the rows,
// then the cache hears that files may be unreferenced. Blob files stay for
// the garbage collector.
func (s *Service) dropCached(ctx context.Context, scope cacheScope, del func(context.Context) error) error {
	for _, id := range scope.groups {
		s.cache.ForgetGroup(id)
	}
	for _, id := range scope.upstreams {
		s.cache.ForgetUpstream(id)
	}
	if err := del(ctx); err != nil {
		return err
	}
	s.cache.Released()
	return nil
}

// noCache is the Cache of a Service with no cache running.
type noCache struct{}

func (noCache) ForgetGroup(int64)    {}
func (noCache) ForgetUpstream(int64) {}
func (noCache) Released()            {}
