package admin

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/dproxy/dproxy/internal/netpolicy"
	"github.com/dproxy/dproxy/internal/store"
	"github.com/dproxy/dproxy/internal/upstream"
)

// Container virtual registries.
//
// A virtual registry belongs to a top-level group and asks its upstreams
// in order. In dproxy an upstream belongs to exactly one registry (its
// cache, credentials and position are the registry's); GitLab lets one
// upstream of a group serve several registries through registry_upstreams
// associations. The operations map onto GitLab's as follows: an upstream
// is created in a registry (associated with it, last); its association is
// the upstream itself (RegistryUpstream.ID is the upstream's id); moving
// the association moves the upstream; associating an upstream with the
// registry it is in is a conflict, as is associating it with another
// registry; disassociating it is refused (ErrConflict) — delete the
// upstream instead, so that no one loses a cache by surprise. Positions
// here count from 0; GitLab's REST API counts from 1.

// Registry is a container virtual registry with its upstreams in order.
type Registry struct {
	ID          int64
	GroupID     int64
	GroupPath   string
	Name        string
	Description string
	Upstreams   []Upstream
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// Upstream is one upstream registry of a virtual registry. Its password
// is never returned: PasswordSet says whether one is stored.
type Upstream struct {
	ID         int64
	RegistryID int64
	GroupID    int64
	// Position orders the upstreams of a registry: 0 is asked first.
	Position           int
	Name               string
	URL                string
	Username           string
	PasswordSet        bool
	CacheValidityHours int
	CreatedAt          time.Time
	UpdatedAt          time.Time
}

// RegistryUpstream is the association of an upstream with its registry.
// Its ID is the upstream's.
type RegistryUpstream struct {
	ID         int64
	RegistryID int64
	UpstreamID int64
	Position   int
}

// Association returns the upstream's association with its registry.
func (u Upstream) Association() RegistryUpstream {
	return RegistryUpstream{ID: u.ID, RegistryID: u.RegistryID, UpstreamID: u.ID, Position: u.Position}
}

// CacheEntry is one thing an upstream's cache holds: a manifest
// ("<image>/manifests/<tag or digest>") or a blob ("blobs/<digest>").
type CacheEntry struct {
	UpstreamID int64
	// GroupID is the group of the upstream's registry.
	GroupID int64
	Path    string
	Digest  string
	Size    int64
	// MediaType and ETag are a manifest's, as the upstream sent them; ""
	// for a blob (and ETag for an upstream that sent none).
	MediaType string
	ETag      string
	// CreatedAt is when the entry was stored; CheckedAt when the upstream
	// last confirmed it (a blob is immutable: when it was stored).
	CreatedAt time.Time
	CheckedAt time.Time
	ReadAt    time.Time
}

// RegistryInput is a new virtual registry.
type RegistryInput struct {
	Name        string
	Description string
}

// RegistryChange changes a registry; nil fields stay as they are.
type RegistryChange struct {
	Name        *string
	Description *string
}

// UpstreamInput is a new upstream. Username and Password are set together
// or not at all; CacheValidityHours nil means store.DefaultCacheValidityHours.
type UpstreamInput struct {
	Name               string
	URL                string
	Username           string
	Password           string
	CacheValidityHours *int
}

// UpstreamChange changes an upstream; nil fields stay as they are. On a
// URL of another scheme, host or port the stored credentials are cleared
// unless both Username and Password come with the change.
type UpstreamChange struct {
	Name               *string
	URL                *string
	Username           *string
	Password           *string
	CacheValidityHours *int
}

// UpstreamUpdated is the result of UpdateUpstream.
type UpstreamUpdated struct {
	Upstream Upstream
	// CredentialsCleared is true when the change moved the upstream to
	// another origin and its stored credentials were cleared.
	CredentialsCleared bool
}

// CacheEntryQuery selects cache entries, ordered by path.
type CacheEntryQuery struct {
	// Search keeps the entries whose path contains it, ignoring case.
	Search string
	// After keeps the entries after this path (cursor paging); Offset
	// skips entries (page paging). Limit bounds the page (0: 100; at most
	// 1000).
	After  string
	Offset int
	Limit  int
	// WithTotal asks for CacheEntries.Total, which costs a count.
	WithTotal bool
}

// CacheEntries is a page of cache entries.
type CacheEntries struct {
	Entries []CacheEntry
	// Total counts every entry the query's Search selects, when the
	// query asked WithTotal.
	Total int
}

func upstreamOf(u store.VirtualUpstream, groupID int64) Upstream {
	return Upstream{
		ID: u.ID, RegistryID: u.RegistryID, GroupID: groupID, Position: u.Position, Name: u.Name, URL: u.URL,
		Username: u.Username, PasswordSet: u.Password != "", CacheValidityHours: u.CacheValidityHours,
		CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt,
	}
}

// registryOf renders a registry with its upstreams in order.
func (s *Service) registryOf(ctx context.Context, r store.VirtualRegistry, groupPath string) (Registry, error) {
	us, err := s.store.VirtualUpstreams(ctx, r.ID)
	if err != nil {
		return Registry{}, err
	}
	out := Registry{
		ID: r.ID, GroupID: r.GroupID, GroupPath: groupPath, Name: r.Name, Description: r.Description,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, Upstreams: make([]Upstream, len(us)),
	}
	for i, u := range us {
		out.Upstreams[i] = upstreamOf(u, r.GroupID)
	}
	return out, nil
}

// reloadRegistry renders a registry after a change.
func (s *Service) reloadRegistry(ctx context.Context, id int64, groupPath string) (Registry, error) {
	r, err := s.store.VirtualRegistry(ctx, id)
	if err != nil {
		return Registry{}, err
	}
	return s.registryOf(ctx, r, groupPath)
}

// registry loads a registry and checks the actor has role need in its
// group; an unknown registry and one the actor may not see get the same
// answer.
func (s *Service) registry(ctx context.Context, a Actor, id int64, need store.Role, action string) (store.VirtualRegistry, store.Group, error) {
	unknown := fail(ErrNotFound, "virtual registry %d does not exist or you cannot read its group", id)
	r, err := s.store.VirtualRegistry(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.VirtualRegistry{}, store.Group{}, unknown
	}
	if err != nil {
		return store.VirtualRegistry{}, store.Group{}, err
	}
	g, err := s.store.GroupByID(ctx, r.GroupID)
	if err != nil {
		return store.VirtualRegistry{}, store.Group{}, err
	}
	if _, err := s.authorizeGroup(ctx, a, g.Path, store.RoleGuest, "reading its virtual registries"); err != nil {
		if errors.Is(err, ErrNotFound) {
			return store.VirtualRegistry{}, store.Group{}, unknown
		}
		return store.VirtualRegistry{}, store.Group{}, err
	}
	if need > store.RoleGuest {
		if _, err := s.authorizeGroup(ctx, a, g.Path, need, action); err != nil {
			return store.VirtualRegistry{}, store.Group{}, err
		}
	}
	return r, g, nil
}

// upstream loads an upstream with its registry and group, checking the
// actor has role need in the group.
func (s *Service) upstream(ctx context.Context, a Actor, id int64, need store.Role, action string) (store.VirtualUpstream, store.VirtualRegistry, store.Group, error) {
	u, err := s.store.VirtualUpstream(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.VirtualUpstream{}, store.VirtualRegistry{}, store.Group{}, fail(ErrNotFound, "upstream %d does not exist or you cannot read its group", id)
	}
	if err != nil {
		return store.VirtualUpstream{}, store.VirtualRegistry{}, store.Group{}, err
	}
	r, g, err := s.registry(ctx, a, u.RegistryID, need, action)
	return u, r, g, err
}

// Registries returns a group's virtual registries by name (guest).
func (s *Service) Registries(ctx context.Context, a Actor, groupPath string) ([]Registry, error) {
	g, err := s.authorizeGroup(ctx, a, groupPath, store.RoleGuest, "reading the virtual registries")
	if err != nil {
		return nil, err
	}
	rs, err := s.store.VirtualRegistriesOfGroup(ctx, g.ID)
	if err != nil {
		return nil, err
	}
	out := make([]Registry, 0, len(rs))
	for _, r := range rs {
		reg, err := s.registryOf(ctx, r, g.Path)
		if err != nil {
			return nil, err
		}
		out = append(out, reg)
	}
	return out, nil
}

// Registry returns a virtual registry (guest).
func (s *Service) Registry(ctx context.Context, a Actor, id int64) (Registry, error) {
	r, g, err := s.registry(ctx, a, id, store.RoleGuest, "")
	if err != nil {
		return Registry{}, err
	}
	return s.registryOf(ctx, r, g.Path)
}

// CreateRegistry creates a virtual registry in a top-level group (owner).
func (s *Service) CreateRegistry(ctx context.Context, a Actor, groupPath string, in RegistryInput) (Registry, error) {
	g, err := s.authorizeGroup(ctx, a, groupPath, store.RoleOwner, "creating a virtual registry")
	if err != nil {
		return Registry{}, err
	}
	if g.ParentID != 0 {
		top, _, _ := strings.Cut(g.Path, "/")
		return Registry{}, invalid("virtual registries belong to top-level groups: create it in %s instead of %s", top, g.Path)
	}
	if err := joinInvalid(validateVirtualName("virtual registry", in.Name), validateDescription(in.Description)); err != nil {
		return Registry{}, err
	}
	limit := s.opts.VirtualRegistries
	r, err := s.store.CreateVirtualRegistry(ctx, store.VirtualRegistry{GroupID: g.ID, Name: in.Name, Description: in.Description}, limit)
	switch {
	case errors.Is(err, store.ErrLimit):
		return Registry{}, refuse(ErrLimit, "group %s already has %d virtual registries, the most allowed; delete one, or ask an instance admin to raise virtual-registries-per-group", g.Path, limit)
	case errors.Is(err, store.ErrConflict):
		return Registry{}, refuse(ErrConflict, "group %s already has a virtual registry named %q", g.Path, in.Name)
	case err != nil:
		return Registry{}, err
	}
	s.log.InfoContext(ctx, "virtual registry created", "group", g.Path, "registry", r.ID, "by", a.Name())
	return s.reloadRegistry(ctx, r.ID, g.Path)
}

// UpdateRegistry changes a virtual registry's name or description
// (owner), writing only the fields given, in one transaction.
func (s *Service) UpdateRegistry(ctx context.Context, a Actor, id int64, c RegistryChange) (Registry, error) {
	r, g, err := s.registry(ctx, a, id, store.RoleOwner, "changing a virtual registry")
	if err != nil {
		return Registry{}, err
	}
	var errs []error
	if c.Name != nil {
		errs = append(errs, validateVirtualName("virtual registry", *c.Name))
	}
	if c.Description != nil {
		errs = append(errs, validateDescription(*c.Description))
	}
	if err := joinInvalid(errs...); err != nil {
		return Registry{}, err
	}
	_, err = s.store.ChangeVirtualRegistry(ctx, r.ID, store.VirtualRegistryChange{Name: c.Name, Description: c.Description})
	switch {
	case errors.Is(err, store.ErrConflict):
		return Registry{}, refuse(ErrConflict, "group %s already has a virtual registry named %q", g.Path, *c.Name)
	case errors.Is(err, store.ErrNotFound):
		return Registry{}, fail(ErrNotFound, "virtual registry %d does not exist or you cannot read its group", id)
	case err != nil:
		return Registry{}, err
	}
	s.log.InfoContext(ctx, "virtual registry changed", "group", g.Path, "registry", r.ID,
		"name_changed", c.Name != nil, "description_changed", c.Description != nil, "by", a.Name())
	return s.reloadRegistry(ctx, r.ID, g.Path)
}

// DeleteRegistry deletes a virtual registry with its upstreams and their
// caches (owner). Their files go at the next collection.
func (s *Service) DeleteRegistry(ctx context.Context, a Actor, id int64) error {
	r, g, err := s.registry(ctx, a, id, store.RoleOwner, "deleting a virtual registry")
	if err != nil {
		return err
	}
	ups, err := s.store.VirtualUpstreams(ctx, r.ID)
	if err != nil {
		return err
	}
	scope := cacheScope{}
	for _, u := range ups {
		scope.upstreams = append(scope.upstreams, u.ID)
	}
	err = s.dropCached(ctx, scope, func(ctx context.Context) error {
		err := s.store.DeleteVirtualRegistry(ctx, r.ID)
		if errors.Is(err, store.ErrNotFound) {
			return nil // deleted meanwhile
		}
		return err
	})
	if err != nil {
		return err
	}
	s.log.InfoContext(ctx, "virtual registry deleted", "group", g.Path, "registry", r.ID, "by", a.Name())
	return nil
}

// Upstreams returns a registry's upstreams in order (guest).
func (s *Service) Upstreams(ctx context.Context, a Actor, registryID int64) ([]Upstream, error) {
	r, g, err := s.registry(ctx, a, registryID, store.RoleGuest, "")
	if err != nil {
		return nil, err
	}
	reg, err := s.registryOf(ctx, r, g.Path)
	return reg.Upstreams, err
}

// GroupUpstreams returns the upstreams of every virtual registry of a
// group whose name contains name, ignoring case ("": every one), by id
// (guest).
func (s *Service) GroupUpstreams(ctx context.Context, a Actor, groupPath, name string) ([]Upstream, error) {
	g, err := s.authorizeGroup(ctx, a, groupPath, store.RoleGuest, "reading the virtual registries")
	if err != nil {
		return nil, err
	}
	us, err := s.store.VirtualUpstreamsOfGroup(ctx, g.ID)
	if err != nil {
		return nil, err
	}
	name = strings.ToLower(name)
	out := make([]Upstream, 0, len(us))
	for _, u := range us {
		if strings.Contains(strings.ToLower(u.Name), name) {
			out = append(out, upstreamOf(u, g.ID))
		}
	}
	return out, nil
}

// Upstream returns an upstream (guest).
func (s *Service) Upstream(ctx context.Context, a Actor, id int64) (Upstream, error) {
	u, r, _, err := s.upstream(ctx, a, id, store.RoleGuest, "")
	if err != nil {
		return Upstream{}, err
	}
	return upstreamOf(u, r.GroupID), nil
}

// checkUpstream validates an upstream as it will be stored.
func checkUpstream(u store.VirtualUpstream) error {
	var urlErr error
	if _, err := upstream.ParseURL(u.URL); err != nil {
		urlErr = invalid("url %q: use http(s)://host[:port][/path] of an OCI registry, without credentials, query or fragment", clip(u.URL))
	}
	credErr := validatePair(credentialNames{"username", "a username", "password", "a password"}, u.Username, u.Password)
	return joinInvalid(validateVirtualName("upstream", u.Name), urlErr, credErr, validateCacheValidity(u.CacheValidityHours))
}

// checkAddress refuses an upstream URL whose host the address policy
// refuses. This is the early, friendly check; every connection is checked
// again when it is made. The log gets a name's addresses, the caller does
// not.
func (s *Service) checkAddress(ctx context.Context, a Actor, url string) error {
	if s.opts.AddressPolicy == nil {
		return nil
	}
	err := s.opts.AddressPolicy.Validate(ctx, url)
	if err == nil {
		return nil
	}
	var ne *netpolicy.NameError
	if errors.As(err, &ne) {
		s.log.InfoContext(ctx, "virtual registry upstream refused by the address policy", "url", url,
			"addresses", fmt.Sprint(ne.Addrs), "by", a.Name())
	}
	return invalid("url %q: %s", clip(url), err)
}

// CreateUpstream adds an upstream at the end of a registry's list (owner).
func (s *Service) CreateUpstream(ctx context.Context, a Actor, registryID int64, in UpstreamInput) (Upstream, error) {
	r, _, err := s.registry(ctx, a, registryID, store.RoleOwner, "adding an upstream to a virtual registry")
	if err != nil {
		return Upstream{}, err
	}
	u := store.VirtualUpstream{RegistryID: r.ID, Name: in.Name, URL: in.URL, Username: in.Username, Password: in.Password,
		CacheValidityHours: store.DefaultCacheValidityHours}
	if in.CacheValidityHours != nil {
		u.CacheValidityHours = *in.CacheValidityHours
	}
	if err := checkUpstream(u); err != nil {
		return Upstream{}, err
	}
	if err := s.checkAddress(ctx, a, u.URL); err != nil {
		return Upstream{}, err
	}
	limit := s.opts.VirtualUpstreams
	u, err = s.store.AddVirtualUpstream(ctx, u, limit)
	switch {
	case errors.Is(err, store.ErrLimit):
		return Upstream{}, refuse(ErrLimit, "virtual registry %s already has %d upstreams, the most allowed; delete one, or ask an instance admin to raise virtual-registry-upstreams", r.Name, limit)
	case errors.Is(err, store.ErrConflict):
		return Upstream{}, refuse(ErrConflict, "virtual registry %s already has an upstream named %q", r.Name, in.Name)
	case err != nil:
		return Upstream{}, err
	}
	s.log.InfoContext(ctx, "virtual registry upstream added", "registry", r.ID, "upstream", u.Name, "url", u.URL,
		"password_set", u.Password != "", "by", a.Name())
	return upstreamOf(u, r.GroupID), nil
}

// UpdateUpstream changes an upstream (owner), in one transaction that
// validates the upstream as it will be. Credentials stay with the host
// they were given for: on a URL of another origin they are cleared unless
// both come with the change, and one without the other is refused.
func (s *Service) UpdateUpstream(ctx context.Context, a Actor, id int64, c UpstreamChange) (UpstreamUpdated, error) {
	u, r, _, err := s.upstream(ctx, a, id, store.RoleOwner, "changing an upstream of a virtual registry")
	if err != nil {
		return UpstreamUpdated{}, err
	}
	change := store.VirtualUpstreamChange{
		Name: c.Name, URL: c.URL, Username: c.Username, Password: c.Password, CacheValidityHours: c.CacheValidityHours,
	}
	check := func(before, after store.VirtualUpstream) error {
		if !store.SameOrigin(before.URL, after.URL) && (c.Username == nil) != (c.Password == nil) {
			return invalid("the new URL is on another scheme, host or port, so the stored username and password are cleared: pass both username and password for %s, or neither", clip(after.URL))
		}
		return checkUpstream(after)
	}
	// The change is checked against the upstream as read now, then the
	// address policy (which may look names up) is asked outside the
	// transaction, and the transaction checks again against the row it
	// replaces.
	if err := check(u, change.Apply(u)); err != nil {
		return UpstreamUpdated{}, err
	}
	if c.URL != nil {
		if err := s.checkAddress(ctx, a, *c.URL); err != nil {
			return UpstreamUpdated{}, err
		}
	}
	updated, cleared, err := s.store.ChangeVirtualUpstream(ctx, u.ID, change, check)
	switch {
	case errors.Is(err, store.ErrConflict):
		return UpstreamUpdated{}, refuse(ErrConflict, "virtual registry %s already has an upstream named %q", r.Name, *c.Name)
	case errors.Is(err, store.ErrNotFound):
		return UpstreamUpdated{}, fail(ErrNotFound, "upstream %d does not exist or you cannot read its group", id)
	case err != nil:
		return UpstreamUpdated{}, err
	}
	s.log.InfoContext(ctx, "virtual registry upstream changed", "registry", r.ID, "upstream", u.ID,
		"password_changed", c.Password != nil, "credentials_cleared", cleared, "by", a.Name())
	return UpstreamUpdated{Upstream: upstreamOf(updated, r.GroupID), CredentialsCleared: cleared}, nil
}

// MoveUpstream puts an upstream at position in its registry's order (0 is
// asked first; past the end means last) and returns the registry's
// upstreams in their new order (owner).
func (s *Service) MoveUpstream(ctx context.Context, a Actor, id int64, position int) ([]Upstream, error) {
	u, r, _, err := s.upstream(ctx, a, id, store.RoleOwner, "reordering the upstreams of a virtual registry")
	if err != nil {
		return nil, err
	}
	if position < 0 {
		return nil, invalid("position must be 0 (asked first) or more, got %d", position)
	}
	us, err := s.store.MoveVirtualUpstream(ctx, u.ID, position)
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "virtual registry upstream moved", "registry", r.ID, "upstream", u.ID, "position", position, "by", a.Name())
	out := make([]Upstream, len(us))
	for i, x := range us {
		out[i] = upstreamOf(x, r.GroupID)
	}
	return out, nil
}

// DeleteUpstream deletes an upstream and its cache (owner), and returns
// it as it was; the upstreams after it move up. Its files go at the next
// collection.
func (s *Service) DeleteUpstream(ctx context.Context, a Actor, id int64) (Upstream, error) {
	u, r, _, err := s.upstream(ctx, a, id, store.RoleOwner, "deleting an upstream of a virtual registry")
	if err != nil {
		return Upstream{}, err
	}
	err = s.dropCached(ctx, cacheScope{upstreams: []int64{u.ID}}, func(ctx context.Context) error {
		err := s.store.DeleteVirtualUpstream(ctx, u.ID)
		if errors.Is(err, store.ErrNotFound) {
			return nil // deleted meanwhile
		}
		return err
	})
	if err != nil {
		return Upstream{}, err
	}
	s.log.InfoContext(ctx, "virtual registry upstream deleted", "registry", r.ID, "upstream", u.ID, "by", a.Name())
	return upstreamOf(u, r.GroupID), nil
}

// AssociateUpstream associates an upstream with a registry (owner of both).
// An upstream is always associated with the one registry it was created
// in, so this is a conflict either way; the message says what to do.
func (s *Service) AssociateUpstream(ctx context.Context, a Actor, registryID, upstreamID int64) (RegistryUpstream, error) {
	r, g, err := s.registry(ctx, a, registryID, store.RoleOwner, "associating an upstream with a virtual registry")
	if err != nil {
		return RegistryUpstream{}, err
	}
	u, ur, ug, err := s.upstream(ctx, a, upstreamID, store.RoleOwner, "associating an upstream with a virtual registry")
	if err != nil {
		return RegistryUpstream{}, err
	}
	if ug.ID != g.ID {
		return RegistryUpstream{}, refuse(ErrInvalid, "upstream %d belongs to group %s, not to %s, the group of virtual registry %s", u.ID, ug.Path, g.Path, r.Name)
	}
	if ur.ID == r.ID {
		return RegistryUpstream{}, refuse(ErrConflict, "upstream %s is already associated with virtual registry %s, at position %d", u.Name, r.Name, u.Position)
	}
	return RegistryUpstream{}, refuse(ErrConflict, "upstream %s belongs to virtual registry %s; in dproxy an upstream serves one registry: create a new upstream in %s with the same URL instead", u.Name, ur.Name, r.Name)
}

// DisassociateUpstream would remove an upstream from its registry (owner).
// An upstream cannot outlive its registry here, so this is refused with
// ErrConflict; DeleteUpstream removes it with its cache.
func (s *Service) DisassociateUpstream(ctx context.Context, a Actor, upstreamID int64) error {
	u, r, _, err := s.upstream(ctx, a, upstreamID, store.RoleOwner, "disassociating an upstream from a virtual registry")
	if err != nil {
		return err
	}
	return refuse(ErrConflict, "upstream %s cannot leave virtual registry %s: in dproxy an upstream belongs to one registry; delete the upstream instead (its cache goes with it)", u.Name, r.Name)
}

// CacheEntries returns a page of an upstream's cache entries, by path,
// and how many the query's Search selects in all (guest).
func (s *Service) CacheEntries(ctx context.Context, a Actor, upstreamID int64, q CacheEntryQuery) (CacheEntries, error) {
	u, r, _, err := s.upstream(ctx, a, upstreamID, store.RoleGuest, "")
	if err != nil {
		return CacheEntries{}, err
	}
	if q.Offset < 0 || q.Limit < 0 {
		return CacheEntries{}, invalid("offset and limit must not be negative")
	}
	es, err := s.store.VirtualCacheEntries(ctx, u.ID, store.CacheEntryQuery{Search: q.Search, After: q.After, Offset: q.Offset, Limit: q.Limit})
	if err != nil {
		return CacheEntries{}, err
	}
	total := 0
	if q.WithTotal {
		if total, err = s.store.CountVirtualCacheEntries(ctx, u.ID, q.Search); err != nil {
			return CacheEntries{}, err
		}
	}
	out := CacheEntries{Entries: make([]CacheEntry, len(es)), Total: total}
	for i, e := range es {
		out.Entries[i] = CacheEntry{UpstreamID: u.ID, GroupID: r.GroupID, Path: e.Path, Digest: string(e.Digest), Size: e.Size,
			MediaType: e.MediaType, ETag: e.ETag, CreatedAt: e.CreatedAt, CheckedAt: e.CheckedAt, ReadAt: e.ReadAt}
	}
	return out, nil
}

// DeleteCacheEntry deletes one entry of an upstream's cache by its path
// (owner); the next pull asks the upstream again. A path the cache does
// not hold is refused with ErrNotFound.
func (s *Service) DeleteCacheEntry(ctx context.Context, a Actor, upstreamID int64, path string) error {
	u, r, _, err := s.upstream(ctx, a, upstreamID, store.RoleOwner, "deleting a cache entry of a virtual registry")
	if err != nil {
		return err
	}
	err = s.dropCached(ctx, cacheScope{upstreams: []int64{u.ID}}, func(ctx context.Context) error {
		return s.store.DeleteVirtualCacheEntry(ctx, u.ID, path)
	})
	if errors.Is(err, store.ErrNotFound) {
		return refuse(ErrNotFound, "upstream %s has no cache entry %q; `dproxy virtual-registry cache list %d` lists them", u.Name, clip(path), u.ID)
	}
	if err != nil {
		return err
	}
	s.log.InfoContext(ctx, "virtual registry cache entry deleted", "registry", r.ID, "upstream", u.ID, "path", path, "by", a.Name())
	return nil
}

// ClearRegistryCache deletes every cache entry of a registry's upstreams,
// or of one of them when upstreamID is not 0 (owner), and returns how many
// it deleted. An upstreamID of no upstream of the registry is refused with
// ErrNotFound.
func (s *Service) ClearRegistryCache(ctx context.Context, a Actor, registryID, upstreamID int64) (int64, error) {
	r, _, err := s.registry(ctx, a, registryID, store.RoleOwner, "clearing the cache of a virtual registry")
	if err != nil {
		return 0, err
	}
	ups, err := s.store.VirtualUpstreams(ctx, r.ID)
	if err != nil {
		return 0, err
	}
	var ids []int64
	for _, u := range ups {
		if upstreamID == 0 || upstreamID == u.ID {
			ids = append(ids, u.ID)
		}
	}
	if upstreamID != 0 && len(ids) == 0 {
		return 0, refuse(ErrNotFound, "virtual registry %s has no upstream %q", r.Name, strconv.FormatInt(upstreamID, 10))
	}
	var n int64
	err = s.dropCached(ctx, cacheScope{upstreams: ids}, func(ctx context.Context) (err error) {
		n, err = s.store.ClearVirtualCache(ctx, ids)
		return err
	})
	if err != nil {
		return 0, err
	}
	s.log.InfoContext(ctx, "virtual registry cache cleared", "registry", r.ID, "upstreams", len(ids), "entries", n, "by", a.Name())
	return n, nil
}

// ClearUpstreamCache deletes every cache entry of an upstream (owner) and
// returns how many it deleted; ClearRegistryCache by the upstream alone.
func (s *Service) ClearUpstreamCache(ctx context.Context, a Actor, upstreamID int64) (int64, error) {
	u, _, _, err := s.upstream(ctx, a, upstreamID, store.RoleOwner, "clearing the cache of a virtual registry upstream")
	if err != nil {
		return 0, err
	}
	return s.ClearRegistryCache(ctx, a, u.RegistryID, u.ID)
}
