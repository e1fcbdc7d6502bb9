package graphql

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dproxy/dproxy/internal/auth"
	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/server/graphql/generated"
	"github.com/dproxy/dproxy/internal/store"
)

// Mutations check permissions first (failures go to the top-level errors
// and the field is null), then validate the input (refusals go to the
// payload's errors), then change the store in one call, so a refused or
// failed mutation changes nothing.
type mutationResolver struct{ h *Handler }

// refused is a payload's errors list for input that was understood but
// refused.
func refused(format string, args ...any) []string { return []string{fmt.Sprintf(format, args...)} }

func noErrors() []string { return []string{} }

func (m mutationResolver) owner(ctx context.Context, path, action string) (store.Group, error) {
	g, _, err := m.h.auth.AuthorizeGroup(ctx, principal(ctx), path, store.RoleOwner, action)
	return g, err
}

func (m mutationResolver) UpdateDependencyProxySettings(ctx context.Context, in generated.UpdateDependencyProxySettingsInput) (*generated.UpdateDependencyProxySettingsPayload, error) {
	g, err := m.owner(ctx, in.GroupPath, "changing the dependency proxy settings")
	if err != nil {
		return nil, err
	}
	// Anonymous pulls spend the group's or the instance's Docker Hub
	// credentials only when an instance admin says so; an owner may take
	// that back.
	if in.AnonymousPullsUseCredentials != nil && *in.AnonymousPullsUseCredentials {
		if err := auth.RequireAdmin(principal(ctx), "letting anonymous pulls use Docker Hub credentials"); err != nil {
			return nil, err
		}
	}
	out := &generated.UpdateDependencyProxySettingsPayload{ClientMutationID: in.ClientMutationID, Errors: noErrors()}
	s, err := m.h.store.ProxySetting(ctx, g.ID)
	if err != nil {
		return nil, err
	}
	if in.Identity != nil || in.Secret != nil {
		identity, secret := deref(in.Identity), deref(in.Secret)
		if in.Identity == nil || in.Secret == nil {
			out.Errors = refused("identity and secret are set together: pass both, or both as empty strings to clear them")
			return out, nil
		}
		if err := validateCredentials(identity, secret); err != nil {
			out.Errors = []string{err.Error()}
			return out, nil
		}
		s.Identity, s.Secret = identity, secret
	}
	if in.FreshnessWindowSeconds != nil {
		if w := *in.FreshnessWindowSeconds; w < 0 || w > maxFreshness {
			out.Errors = refused("freshnessWindowSeconds must be between 0 and %d, got %d", maxFreshness, w)
			return out, nil
		}
		s.FreshnessWindow = time.Duration(*in.FreshnessWindowSeconds) * time.Second
	}
	if in.Enabled != nil {
		s.Enabled = *in.Enabled
	}
	if in.AllowAnonymousPull != nil {
		s.AllowAnonymousPull = *in.AllowAnonymousPull
	}
	if in.AnonymousPullsUseCredentials != nil {
		s.AnonymousPullsUseCredentials = *in.AnonymousPullsUseCredentials
	}
	s.UpdatedAt = time.Time{}
	if err := m.h.store.UpdateProxySetting(ctx, s); err != nil {
		return nil, err
	}
	m.h.log.InfoContext(ctx, "dependency proxy setting changed", "group", g.Path, "by", principal(ctx).Name(),
		"enabled", s.Enabled, "identity_set", s.Identity != "", "anonymous_pull", s.AllowAnonymousPull,
		"anonymous_pulls_use_credentials", s.AnonymousPullsUseCredentials)
	out.DependencyProxySetting = settingNode(s)
	return out, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func (m mutationResolver) UpdateDependencyProxyImageTTLGroupPolicy(ctx context.Context, in generated.UpdateDependencyProxyImageTTLGroupPolicyInput) (*generated.UpdateDependencyProxyImageTTLGroupPolicyPayload, error) {
	g, err := m.owner(ctx, in.GroupPath, "changing the image TTL policy")
	if err != nil {
		return nil, err
	}
	out := &generated.UpdateDependencyProxyImageTTLGroupPolicyPayload{ClientMutationID: in.ClientMutationID, Errors: noErrors()}
	p, err := m.h.store.TTLPolicy(ctx, g.ID)
	if err != nil {
		return nil, err
	}
	if in.TTL != nil {
		if *in.TTL < minTTL || *in.TTL > maxTTL {
			out.Errors = refused("ttl must be between %d and %d days, got %d", minTTL, maxTTL, *in.TTL)
			return out, nil
		}
		p.TTLDays = *in.TTL
	}
	if in.Enabled != nil {
		p.Enabled = *in.Enabled
	}
	p.UpdatedAt = time.Time{}
	if err := m.h.store.UpdateTTLPolicy(ctx, p); err != nil {
		return nil, err
	}
	if p, err = m.h.store.TTLPolicy(ctx, g.ID); err != nil {
		return nil, err
	}
	out.DependencyProxyImageTTLPolicy = ttlNode(p)
	return out, nil
}

func (h *Handler) released() {
	if h.opts.Released != nil {
		h.opts.Released()
	}
}

// purgeGroup removes a group's cache rows so the next pull goes upstream.
// Blob files stay for the garbage collector.
func (h *Handler) purgeGroup(ctx context.Context, g store.Group) (store.Purged, error) {
	h.cache.ForgetGroup(g.ID)
	p, err := h.store.PurgeGroupCacheCounted(ctx, g.ID)
	if err != nil {
		return store.Purged{}, err
	}
	h.log.InfoContext(ctx, "dependency proxy cache purged", "group", g.Path, "by", principal(ctx).Name(),
		"manifests", p.Manifests, "blobs", len(p.Blobs), "bytes", p.Bytes)
	h.released()
	return p, nil
}

func (m mutationResolver) PurgeDependencyProxyCache(ctx context.Context, in generated.PurgeDependencyProxyCacheInput) (*generated.PurgeDependencyProxyCachePayload, error) {
	g, err := m.owner(ctx, in.GroupPath, "purging the dependency proxy cache")
	if err != nil {
		return nil, err
	}
	p, err := m.h.purgeGroup(ctx, g)
	if err != nil {
		return nil, err
	}
	return &generated.PurgeDependencyProxyCachePayload{
		ClientMutationID: in.ClientMutationID, ManifestCount: p.Manifests, BlobCount: len(p.Blobs),
		FreedBytes: bigInt(p.Bytes), Errors: noErrors(),
	}, nil
}

func (m mutationResolver) DeleteDependencyProxyManifest(ctx context.Context, in generated.DeleteDependencyProxyManifestInput) (*generated.DeleteDependencyProxyManifestPayload, error) {
	g, err := m.owner(ctx, in.GroupPath, "deleting cached images")
	if err != nil {
		return nil, err
	}
	out := &generated.DeleteDependencyProxyManifestPayload{ClientMutationID: in.ClientMutationID, Errors: noErrors()}
	if err := oci.ValidateName(in.ImageName); err != nil {
		out.Errors = refused("image name %q: use a lower-case image name such as alpine or bitnami/redis", clip(in.ImageName))
		return out, nil
	}
	ref, err := oci.ParseReference(in.Reference)
	if err != nil {
		out.Errors = refused("reference %q is neither a tag nor a sha256 digest", clip(in.Reference))
		return out, nil
	}
	image := oci.NormalizeImage(in.ImageName)
	row, err := m.h.store.Manifest(ctx, g.ID, image, ref.String())
	if errors.Is(err, store.ErrNotFound) {
		out.Errors = refused("%s:%s is not cached in group %s", in.ImageName, in.Reference, g.Path)
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	if err := m.h.store.DeleteManifest(ctx, row.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	m.h.log.InfoContext(ctx, "cached manifest deleted", "group", g.Path, "image", image, "reference", ref.String(),
		"by", principal(ctx).Name())
	out.DependencyProxyManifest = manifestNode(row)
	return out, nil
}

func (m mutationResolver) UpdateInstanceDockerHubCredentials(ctx context.Context, in generated.UpdateInstanceDockerHubCredentialsInput) (*generated.UpdateInstanceDockerHubCredentialsPayload, error) {
	if err := auth.RequireAdmin(principal(ctx), "changing the instance Docker Hub credentials"); err != nil {
		return nil, err
	}
	out := &generated.UpdateInstanceDockerHubCredentialsPayload{Errors: noErrors()}
	if err := validateCredentials(in.Identity, in.Secret); err != nil {
		out.Errors = []string{err.Error()}
		return out, nil
	}
	c := store.HubCredentials{Identity: in.Identity, Secret: in.Secret}
	if err := m.h.store.SetDefaultHubCredentials(ctx, c); err != nil {
		return nil, err
	}
	m.h.log.InfoContext(ctx, "instance Docker Hub credentials changed", "by", principal(ctx).Name(), "identity_set", c.Identity != "")
	out.DockerHubCredentials = credentialsNode(c)
	return out, nil
}

func (m mutationResolver) GroupCreate(ctx context.Context, in generated.GroupCreateInput) (*generated.GroupCreatePayload, error) {
	p := principal(ctx)
	path := strings.TrimSpace(in.Path)
	parent := ""
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		parent = path[:i]
	}
	if parent == "" {
		if err := auth.RequireAdmin(p, "creating a top-level group"); err != nil {
			return nil, err
		}
	} else if _, err := m.owner(ctx, parent, "creating a subgroup"); err != nil {
		return nil, err
	}
	out := &generated.GroupCreatePayload{Errors: noErrors()}
	if err := validateGroupPath(path); err != nil {
		out.Errors = []string{err.Error()}
		return out, nil
	}
	g, err := m.h.store.CreateGroup(ctx, path)
	switch {
	case errors.Is(err, store.ErrConflict):
		out.Errors = refused("group %q already exists", path)
		return out, nil
	case errors.Is(err, store.ErrNotFound): // the parent went away meanwhile
		return nil, auth.GroupNotFound(parent)
	case err != nil:
		return nil, err
	}
	m.h.log.InfoContext(ctx, "group created", "group", g.Path, "by", p.Name())
	out.Group = groupNode(g)
	return out, nil
}

func (m mutationResolver) GroupDelete(ctx context.Context, in generated.GroupDeleteInput) (*generated.GroupDeletePayload, error) {
	g, err := m.owner(ctx, in.Path, "deleting the group")
	if err != nil {
		return nil, err
	}
	all, err := m.h.store.Groups(ctx)
	if err != nil {
		return nil, err
	}
	for _, sub := range all {
		if sub.ID == g.ID || strings.HasPrefix(sub.Path, g.Path+"/") {
			m.h.cache.ForgetGroup(sub.ID)
		}
	}
	if err := m.h.store.DeleteGroup(ctx, g.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	m.h.log.InfoContext(ctx, "group deleted", "group", g.Path, "by", principal(ctx).Name())
	m.h.released()
	return &generated.GroupDeletePayload{Errors: noErrors()}, nil
}

func (m mutationResolver) UserCreate(ctx context.Context, in generated.UserCreateInput) (*generated.UserCreatePayload, error) {
	if err := auth.RequireAdmin(principal(ctx), "creating users"); err != nil {
		return nil, err
	}
	out := &generated.UserCreatePayload{Errors: noErrors()}
	if err := validateUsername(in.Username); err != nil {
		out.Errors = []string{err.Error()}
		return out, nil
	}
	u := store.User{Username: in.Username, Admin: in.Admin != nil && *in.Admin}
	if in.Password != nil && *in.Password != "" {
		if err := validatePassword(*in.Password); err != nil {
			out.Errors = []string{err.Error()}
			return out, nil
		}
		hash, err := auth.HashPassword(*in.Password)
		if err != nil {
			return nil, err
		}
		u.PasswordHash = hash
	}
	u, err := m.h.store.CreateUser(ctx, u)
	if errors.Is(err, store.ErrConflict) {
		out.Errors = refused("username %q is taken", in.Username)
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	m.h.log.InfoContext(ctx, "user created", "user", u.Username, "admin", u.Admin, "by", principal(ctx).Name())
	out.User = userNode(u)
	return out, nil
}

// lookupUser loads a user by name; unknown is a top-level error.
func (h *Handler) lookupUser(ctx context.Context, username string) (store.User, error) {
	u, err := h.store.UserByUsername(ctx, username)
	if errors.Is(err, store.ErrNotFound) {
		return store.User{}, userNotFound(username)
	}
	return u, err
}

func (m mutationResolver) UserUpdate(ctx context.Context, in generated.UserUpdateInput) (*generated.UserUpdatePayload, error) {
	p := principal(ctx)
	self := p.User != nil && p.User.Username == in.Username
	if in.Admin != nil || in.Blocked != nil || !self {
		if err := auth.RequireAdmin(p, "changing another user, an admin flag or a blocked state"); err != nil {
			return nil, err
		}
	}
	u, err := m.h.lookupUser(ctx, in.Username)
	if err != nil {
		return nil, err
	}
	out := &generated.UserUpdatePayload{Errors: noErrors()}
	if in.CurrentPassword != nil && in.Password == nil {
		out.Errors = refused("currentPassword goes with password, the new one")
		return out, nil
	}
	if self && (in.Admin != nil && !*in.Admin || in.Blocked != nil && *in.Blocked) {
		out.Errors = refused("you cannot remove your own admin flag or block yourself; ask another instance admin")
		return out, nil
	}
	change := store.UserChange{Admin: in.Admin, Blocked: in.Blocked}
	if in.Password != nil {
		h := ""
		if *in.Password != "" {
			if err := validatePassword(*in.Password); err != nil {
				out.Errors = []string{err.Error()}
				return out, nil
			}
		}
		msg, err := m.passwordChange(ctx, p, u, deref(in.CurrentPassword))
		if err != nil {
			return nil, err
		}
		if msg != "" {
			out.Errors = []string{msg}
			return out, nil
		}
		if *in.Password != "" {
			if h, err = auth.HashPassword(*in.Password); err != nil {
				return nil, err
			}
		}
		change.PasswordHash = &h
	}
	if err := m.h.store.UpdateUser(ctx, u.ID, change); err != nil {
		return nil, err
	}
	if u, err = m.h.store.UserByID(ctx, u.ID); err != nil {
		return nil, err
	}
	m.h.log.InfoContext(ctx, "user changed", "user", u.Username, "password_changed", change.PasswordHash != nil,
		"admin", u.Admin, "blocked", u.Blocked, "by", p.Name())
	out.User = userNode(u)
	return out, nil
}

// passwordChange checks that p may set u's password (auth's rules): it
// returns the refusal to show, or an error for the top-level errors.
func (m mutationResolver) passwordChange(ctx context.Context, p auth.Principal, u store.User, current string) (string, error) {
	err := m.h.auth.AuthorizePasswordChange(ctx, clientAddr(ctx), p, u, current)
	var throttled *auth.ThrottledError
	switch {
	case err == nil:
		return "", nil
	case errors.Is(err, auth.ErrCurrentPassword):
		msg := strings.TrimPrefix(err.Error(), auth.ErrCurrentPassword.Error()+": ")
		return fmt.Sprintf("%s (on the command line: dproxy user set-password %s --current-password)", msg, u.Username), nil
	case errors.As(err, &throttled):
		return strings.TrimPrefix(err.Error(), oci.ErrTooManyRequests.Error()+": "), nil
	}
	return "", err
}

func (m mutationResolver) UserDelete(ctx context.Context, in generated.UserDeleteInput) (*generated.UserDeletePayload, error) {
	p := principal(ctx)
	if err := auth.RequireAdmin(p, "deleting users"); err != nil {
		return nil, err
	}
	u, err := m.h.lookupUser(ctx, in.Username)
	if err != nil {
		return nil, err
	}
	if p.User != nil && p.User.ID == u.ID {
		return &generated.UserDeletePayload{Errors: refused("you cannot delete yourself; ask another instance admin")}, nil
	}
	if err := m.h.store.DeleteUser(ctx, u.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	m.h.log.InfoContext(ctx, "user deleted", "user", u.Username, "by", p.Name())
	return &generated.UserDeletePayload{Errors: noErrors()}, nil
}

func (m mutationResolver) MemberAdd(ctx context.Context, in generated.MemberAddInput) (*generated.MemberAddPayload, error) {
	g, err := m.owner(ctx, in.GroupPath, "managing members")
	if err != nil {
		return nil, err
	}
	u, err := m.h.lookupUser(ctx, in.Username)
	if err != nil {
		return nil, err
	}
	out := &generated.MemberAddPayload{Errors: noErrors()}
	role, err := roleOf(in.Role)
	if err != nil {
		out.Errors = []string{err.Error()}
		return out, nil
	}
	if err := m.h.store.SetMember(ctx, g.ID, u.ID, role); err != nil {
		return nil, err
	}
	ms, err := m.h.store.Members(ctx, g.ID)
	if err != nil {
		return nil, err
	}
	for _, mem := range ms {
		if mem.UserID == u.ID {
			out.Member = memberNode(mem, g.Path)
		}
	}
	m.h.log.InfoContext(ctx, "member set", "group", g.Path, "user", u.Username, "role", role.String(), "by", principal(ctx).Name())
	return out, nil
}

func (m mutationResolver) MemberRemove(ctx context.Context, in generated.MemberRemoveInput) (*generated.MemberRemovePayload, error) {
	g, err := m.owner(ctx, in.GroupPath, "managing members")
	if err != nil {
		return nil, err
	}
	u, err := m.h.lookupUser(ctx, in.Username)
	if err != nil {
		return nil, err
	}
	err = m.h.store.RemoveMember(ctx, g.ID, u.ID)
	if errors.Is(err, store.ErrNotFound) {
		return &generated.MemberRemovePayload{Errors: refused("%s is not a direct member of %s", u.Username, g.Path)}, nil
	}
	if err != nil {
		return nil, err
	}
	m.h.log.InfoContext(ctx, "member removed", "group", g.Path, "user", u.Username, "by", principal(ctx).Name())
	return &generated.MemberRemovePayload{Errors: noErrors()}, nil
}

func (m mutationResolver) TokenCreate(ctx context.Context, in generated.TokenCreateInput) (*generated.TokenCreatePayload, error) {
	p := principal(ctx)
	t := store.Token{Name: in.Name, ExpiresAt: in.ExpiresAt}
	// Authorisation first.
	switch in.Kind {
	case generated.TokenKindPersonal:
		t.Kind = store.TokenPersonal
		if in.GroupPath != nil {
			return &generated.TokenCreatePayload{Errors: refused("a personal token belongs to a user: pass username, not groupPath")}, nil
		}
		u, err := m.h.tokenUser(ctx, p, in.Username, "creating a personal token for another user")
		if err != nil {
			return nil, err
		}
		t.UserID = u.ID
	case generated.TokenKindGroupAccess, generated.TokenKindDeploy:
		t.Kind = store.TokenGroup
		if in.Kind == generated.TokenKindDeploy {
			t.Kind = store.TokenDeploy
		}
		if in.GroupPath == nil {
			return &generated.TokenCreatePayload{Errors: refused("a %s token needs groupPath", strings.ToLower(string(in.Kind)))}, nil
		}
		g, err := m.owner(ctx, *in.GroupPath, "creating tokens")
		if err != nil {
			return nil, err
		}
		t.GroupID = g.ID
	default:
		return &generated.TokenCreatePayload{Errors: refused("unknown token kind %q: use PERSONAL, GROUP_ACCESS or DEPLOY", in.Kind)}, nil
	}

	out := &generated.TokenCreatePayload{Errors: noErrors()}
	if msg := m.tokenInput(ctx, &t, in); msg != "" {
		out.Errors = []string{msg}
		return out, nil
	}
	if err := auth.CheckTokenBounds(p, t.Scopes, t.ExpiresAt); err != nil {
		out.Errors = []string{err.Error()}
		return out, nil
	}
	secret, hash := auth.NewTokenSecret(t.Kind)
	t.Hash = hash
	t, err := m.h.store.CreateToken(ctx, t)
	if err != nil {
		return nil, err
	}
	node, err := m.h.tokenNode(ctx, t)
	if err != nil {
		return nil, err
	}
	m.h.log.InfoContext(ctx, "token created", "token_id", t.ID, "kind", string(t.Kind), "scopes", strings.Join(t.Scopes, ","), "by", p.Name())
	out.Token, out.Secret = node, &secret
	return out, nil
}

// tokenInput validates a token's input into t; it returns the refusal, or
// "" when the input is good.
func (m mutationResolver) tokenInput(ctx context.Context, t *store.Token, in generated.TokenCreateInput) string {
	if err := validateText("token name", in.Name, maxTokenName); err != nil {
		return err.Error()
	}
	if err := auth.ValidateScopes(in.Scopes); err != nil {
		return err.Error()
	}
	for _, s := range in.Scopes {
		if !slices.Contains(t.Scopes, s) {
			t.Scopes = append(t.Scopes, s)
		}
	}
	if t.Kind == store.TokenDeploy && slices.Contains(t.Scopes, auth.ScopeAPI) {
		return "deploy tokens cannot have the api scope: use read_registry (or create a group access token)"
	}
	if in.ExpiresAt != nil && !in.ExpiresAt.After(m.h.opts.Now()) {
		return fmt.Sprintf("expiresAt %s is in the past", in.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if in.Role != nil && t.Kind != store.TokenGroup {
		return "role is only for group access tokens"
	}
	if in.DeployUsername != nil && t.Kind != store.TokenDeploy {
		return "deployUsername is only for deploy tokens"
	}
	switch t.Kind {
	case store.TokenGroup:
		t.Role = store.RoleGuest
		if in.Role != nil {
			r, err := roleOf(*in.Role)
			if err != nil {
				return err.Error()
			}
			t.Role = r
		}
	case store.TokenDeploy:
		if in.DeployUsername != nil {
			if err := validateUsername(*in.DeployUsername); err != nil {
				return "deploy " + err.Error()
			}
			t.Username = *in.DeployUsername
		} else {
			n, err := m.h.store.NextTokenNumber(ctx)
			if err != nil {
				return "could not number the deploy token; try again"
			}
			t.Username = "gitlab+deploy-token-" + strconv.FormatInt(n, 10)
		}
	}
	return ""
}

func (m mutationResolver) TokenRevoke(ctx context.Context, in generated.TokenRevokeInput) (*generated.TokenRevokePayload, error) {
	p := principal(ctx)
	notFound := fail(fmt.Sprintf("token %q not found", clip(in.ID)))
	id, ok := parseGID(gidToken, in.ID)
	if !ok {
		return nil, notFound
	}
	t, err := m.h.store.TokenByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound
	}
	if err != nil {
		return nil, err
	}
	switch {
	case p.IsAdmin():
	case t.Kind == store.TokenPersonal:
		if p.User == nil || p.User.ID != t.UserID {
			return nil, notFound
		}
	default:
		g, err := m.h.store.GroupByID(ctx, t.GroupID)
		if err != nil {
			return nil, err
		}
		if _, err := m.owner(ctx, g.Path, "revoking tokens"); err != nil {
			if errors.Is(err, oci.ErrNameUnknown) {
				return nil, notFound
			}
			return nil, err
		}
	}
	already := t.RevokedAt != nil
	if err := m.h.store.RevokeToken(ctx, t.ID, m.h.opts.Now()); err != nil {
		return nil, err
	}
	if t, err = m.h.store.TokenByID(ctx, id); err != nil {
		return nil, err
	}
	node, err := m.h.tokenNode(ctx, t)
	if err != nil {
		return nil, err
	}
	if !already {
		m.h.log.InfoContext(ctx, "token revoked", "token_id", t.ID, "by", p.Name())
	}
	return &generated.TokenRevokePayload{Token: node, AlreadyRevoked: already, Errors: noErrors()}, nil
}
