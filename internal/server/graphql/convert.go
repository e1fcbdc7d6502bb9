package graphql

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/dproxy/dproxy/internal/server/graphql/generated"
	"github.com/dproxy/dproxy/internal/server/graphql/model"
	"github.com/dproxy/dproxy/internal/store"
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
	store store.Role
}{
	{generated.RoleMinimalAccess, store.RoleMinimalAccess},
	{generated.RoleGuest, store.RoleGuest},
	{generated.RoleReporter, store.RoleReporter},
	{generated.RoleDeveloper, store.RoleDeveloper},
	{generated.RoleMaintainer, store.RoleMaintainer},
	{generated.RoleOwner, store.RoleOwner},
}

// roleOf maps a GraphQL role to the store's; the schema's enum admits no
// other values.
func roleOf(r generated.Role) (store.Role, error) {
	for _, x := range roles {
		if x.gql == r {
			return x.store, nil
		}
	}
	return store.RoleNone, fmt.Errorf("unknown role %q: use one of MINIMAL_ACCESS, GUEST, REPORTER, DEVELOPER, MAINTAINER, OWNER", r)
}

// gqlRole maps a store role; RoleNone is nil.
func gqlRole(r store.Role) *generated.Role {
	for _, x := range roles {
		if x.store == r {
			v := x.gql
			return &v
		}
	}
	return nil
}

func groupNode(g store.Group) *generated.Group {
	out := &generated.Group{
		ID:        gid(gidGroup, g.ID),
		Name:      g.Path[strings.LastIndexByte(g.Path, '/')+1:],
		FullPath:  g.Path,
		CreatedAt: g.CreatedAt,
	}
	if i := strings.LastIndexByte(g.Path, '/'); i > 0 {
		parent := g.Path[:i]
		out.ParentPath = &parent
	}
	return out
}

func userNode(u store.User) *generated.User {
	return &generated.User{
		ID: gid(gidUser, u.ID), Username: u.Username, Admin: u.Admin,
		PasswordSet: u.PasswordHash != "", Blocked: u.Blocked, CreatedAt: u.CreatedAt,
	}
}

func memberNode(m store.Member, groupPath string) *generated.Member {
	role := generated.RoleGuest
	if r := gqlRole(m.Role); r != nil {
		role = *r
	}
	return &generated.Member{Username: m.Username, Role: role, GroupPath: groupPath, CreatedAt: m.CreatedAt}
}

// settingNode never carries the secret: only whether one is set.
func settingNode(s store.ProxySetting) *generated.DependencyProxySetting {
	return &generated.DependencyProxySetting{
		Enabled:                      s.Enabled,
		Identity:                     optString(s.Identity),
		SecretSet:                    s.Secret != "",
		FreshnessWindowSeconds:       int(s.FreshnessWindow.Seconds()),
		AllowAnonymousPull:           s.AllowAnonymousPull,
		AnonymousPullsUseCredentials: s.AnonymousPullsUseCredentials,
	}
}

func ttlNode(p store.TTLPolicy) *generated.DependencyProxyImageTTLGroupPolicy {
	ttl, created, updated := p.TTLDays, p.CreatedAt, p.UpdatedAt
	return &generated.DependencyProxyImageTTLGroupPolicy{Enabled: p.Enabled, TTL: &ttl, CreatedAt: &created, UpdatedAt: &updated}
}

// credentialsNode never carries the secret: only whether one is set.
func credentialsNode(c store.HubCredentials) *generated.DockerHubCredentials {
	return &generated.DockerHubCredentials{Identity: optString(c.Identity), SecretSet: c.Secret != ""}
}

func manifestNode(m store.Manifest) *generated.DependencyProxyManifest {
	status := generated.DependencyProxyManifestStatusDefault
	if m.Status == store.StatusPendingDestruction {
		status = generated.DependencyProxyManifestStatusPendingDestruction
	}
	return &generated.DependencyProxyManifest{
		ID:        gid(gidManifest, m.ID),
		ImageName: m.Image,
		Digest:    string(m.Digest),
		FileName:  m.Image + ":" + m.Reference + ".json",
		Size:      strconv.FormatInt(m.Size, 10),
		Status:    status,
		CreatedAt: m.CreatedAt,
		UpdatedAt: m.UpdatedAt,
		Reference: m.Reference,
		MediaType: m.MediaType,
		ReadAt:    m.ReadAt,
		Content:   string(m.Content),
	}
}

func blobNode(b store.Blob) *generated.DependencyProxyBlob {
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

var tokenKinds = map[store.TokenKind]generated.TokenKind{
	store.TokenPersonal: generated.TokenKindPersonal,
	store.TokenGroup:    generated.TokenKindGroupAccess,
	store.TokenDeploy:   generated.TokenKindDeploy,
}

// tokenNode never carries the secret (the store has only its hash).
// username and groupPath name the token's owner.
func tokenNode(t store.Token, username, groupPath string, active bool) *generated.AccessToken {
	out := &generated.AccessToken{
		ID:         gid(gidToken, t.ID),
		Kind:       tokenKinds[t.Kind],
		Name:       t.Name,
		Username:   optString(username),
		GroupPath:  optString(groupPath),
		Scopes:     append([]string{}, t.Scopes...),
		ExpiresAt:  t.ExpiresAt,
		RevokedAt:  t.RevokedAt,
		LastUsedAt: t.LastUsedAt,
		CreatedAt:  t.CreatedAt,
		Active:     active,
	}
	switch t.Kind {
	case store.TokenDeploy:
		out.DeployUsername = optString(t.Username)
	case store.TokenGroup:
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

// humanSize formats a byte count with binary units ("12.5 MiB").
func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return strconv.FormatFloat(float64(n)/float64(div), 'f', 1, 64) + " " + string("KMGTPE"[exp]) + "iB"
}

func bigInt(n int64) model.BigInt { return model.BigInt(n) }
