package graphql

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/dproxy/dproxy/internal/admin"
	"github.com/dproxy/dproxy/internal/server/graphql/generated"
	"github.com/dproxy/dproxy/internal/server/graphql/model"
)

// Global ids, GitLab style: gid://dproxy/<Type>/<n>.
const (
	gidGroup    = "gid://dproxy/Group/"
	gidUser     = "gid://dproxy/User/"
	gidToken    = "gid://dproxy/AccessToken/"
	gidManifest = "gid://dproxy/DependencyProxy::Manifest/"
)

func gid(prefix string, id int64) string { return prefix + strconv.FormatInt(id, 10) }

// parseGID accepts "gid://dproxy/<Type>/<n>" of the given prefix or a
// plain positive number.
func parseGID(prefix, s string) (int64, bool) {
	n, err := strconv.ParseInt(strings.TrimPrefix(s, prefix), 10, 64)
	return n, err == nil && n > 0
}

var roles = []struct {
	gql   generated.Role
	admin admin.Role
}{
	{generated.RoleMinimalAccess, admin.RoleMinimalAccess},
	{generated.RoleGuest, admin.RoleGuest},
	{generated.RoleReporter, admin.RoleReporter},
	{generated.RoleDeveloper, admin.RoleDeveloper},
	{generated.RoleMaintainer, admin.RoleMaintainer},
	{generated.RoleOwner, admin.RoleOwner},
}

// roleOf maps a GraphQL role to the admin service's; the schema's enum
// admits no other values.
func roleOf(r generated.Role) (admin.Role, error) {
	for _, x := range roles {
		if x.gql == r {
			return x.admin, nil
		}
	}
	return admin.RoleNone, fail(fmt.Sprintf("unknown role %q: use one of MINIMAL_ACCESS, GUEST, REPORTER, DEVELOPER, MAINTAINER, OWNER", r))
}

// gqlRole maps a role; RoleNone is nil.
func gqlRole(r admin.Role) *generated.Role {
	for _, x := range roles {
		if x.admin == r {
			v := x.gql
			return &v
		}
	}
	return nil
}

func groupNode(g admin.Group) *generated.Group {
	return &generated.Group{
		ID:         gid(gidGroup, g.ID),
		Name:       g.Name(),
		FullPath:   g.Path,
		ParentPath: optString(g.ParentPath()),
		CreatedAt:  g.CreatedAt,
	}
}

func userNode(u admin.User) *generated.User {
	return &generated.User{
		ID: gid(gidUser, u.ID), Username: u.Username, Admin: u.Admin,
		PasswordSet: u.PasswordSet, Blocked: u.Blocked, CreatedAt: u.CreatedAt,
	}
}

func memberNode(m admin.Member, groupPath string) *generated.Member {
	role := generated.RoleGuest
	if r := gqlRole(m.Role); r != nil {
		role = *r
	}
	return &generated.Member{Username: m.Username, Role: role, GroupPath: groupPath, CreatedAt: m.CreatedAt}
}

// settingNode never carries the secret: only whether one is set.
func settingNode(s admin.ProxySetting) *generated.DependencyProxySetting {
	return &generated.DependencyProxySetting{
		Enabled:                      s.Enabled,
		Identity:                     optString(s.Identity),
		SecretSet:                    s.SecretSet,
		FreshnessWindowSeconds:       int(s.FreshnessWindow.Seconds()),
		AllowAnonymousPull:           s.AllowAnonymousPull,
		AnonymousPullsUseCredentials: s.AnonymousPullsUseCredentials,
	}
}

func ttlNode(p admin.TTLPolicy) *generated.DependencyProxyImageTTLGroupPolicy {
	ttl, created, updated := p.TTLDays, p.CreatedAt, p.UpdatedAt
	return &generated.DependencyProxyImageTTLGroupPolicy{Enabled: p.Enabled, TTL: &ttl, CreatedAt: &created, UpdatedAt: &updated}
}

// credentialsNode never carries the secret: only whether one is set.
func credentialsNode(c admin.HubCredentials) *generated.DockerHubCredentials {
	return &generated.DockerHubCredentials{Identity: optString(c.Identity), SecretSet: c.SecretSet}
}

func manifestNode(m admin.Manifest) *generated.DependencyProxyManifest {
	status := generated.DependencyProxyManifestStatusDefault
	if m.Status == admin.StatusPendingDestruction {
		status = generated.DependencyProxyManifestStatusPendingDestruction
	}
	imageName := familiarImage(m.Image) + ":" + m.Reference
	return &generated.DependencyProxyManifest{
		ID:              gid(gidManifest, m.ID),
		ImageName:       imageName,
		Digest:          string(m.Digest),
		FileName:        imageName + ".json",
		Image:           m.Image,
		Size:            strconv.FormatInt(m.Size, 10),
		Status:          status,
		CreatedAt:       m.CreatedAt,
		UpdatedAt:       m.UpdatedAt,
		Reference:       m.Reference,
		MediaType:       m.MediaType,
		ReadAt:          m.ReadAt,
		Content:         string(m.Content),
		ImageSize:       bigInt(m.Sizes.Image),
		CachedSize:      bigInt(m.Sizes.Cached),
		Platforms:       m.Sizes.Platforms,
		PlatformsCached: m.Sizes.PlatformsCached,
	}
}

// familiarImage is the name docker gives an upstream repository: an
// official image without its "library/" ("alpine" for library/alpine).
// GitLab names a cached manifest by the image as pulled, which is this
// name for `docker pull <prefix>/alpine`; dproxy keeps one entry for
// alpine and library/alpine.
func familiarImage(repository string) string {
	if name, ok := strings.CutPrefix(repository, "library/"); ok && !strings.Contains(name, "/") {
		return name
	}
	return repository
}

func blobNode(b admin.Blob) *generated.DependencyProxyBlob {
	return &generated.DependencyProxyBlob{
		FileName:  b.Digest.Hex() + ".gz",
		Size:      strconv.FormatInt(b.Size, 10),
		CreatedAt: b.CreatedAt,
		// A blob is immutable: its reference changes only when it is read.
		UpdatedAt: b.ReadAt,
		Digest:    string(b.Digest),
		ReadAt:    b.ReadAt,
	}
}

var tokenKinds = map[admin.TokenKind]generated.TokenKind{
	admin.TokenPersonal: generated.TokenKindPersonal,
	admin.TokenGroup:    generated.TokenKindGroupAccess,
	admin.TokenDeploy:   generated.TokenKindDeploy,
}

// tokenKindOf maps a GraphQL token kind; "" for none.
func tokenKindOf(k generated.TokenKind) admin.TokenKind {
	for a, g := range tokenKinds {
		if g == k {
			return a
		}
	}
	return admin.TokenKind(k)
}

// tokenNode never carries the secret (the store has only its hash).
func tokenNode(t admin.Token) *generated.AccessToken {
	out := &generated.AccessToken{
		ID:             gid(gidToken, t.ID),
		Kind:           tokenKinds[t.Kind],
		Name:           t.Name,
		Username:       optString(t.Username),
		GroupPath:      optString(t.GroupPath),
		Scopes:         append([]string{}, t.Scopes...),
		ExpiresAt:      t.ExpiresAt,
		RevokedAt:      t.RevokedAt,
		LastUsedAt:     t.LastUsedAt,
		CreatedAt:      t.CreatedAt,
		Active:         t.Active,
		DeployUsername: optString(t.DeployUsername),
	}
	if t.Kind == admin.TokenGroup {
		out.Role = gqlRole(t.Role)
	}
	return out
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func bigInt(n int64) model.BigInt { return model.BigInt(n) }
