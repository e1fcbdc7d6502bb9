package admin

import (
	"strings"
	"time"

	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/store"
	"github.com/dproxy/dproxy/internal/upstream"
)

// Role is a member's role in a group; higher roles include lower ones.
type Role = store.Role

// Roles, in GitLab's order.
const (
	RoleNone          = store.RoleNone
	RoleMinimalAccess = store.RoleMinimalAccess
	RoleGuest         = store.RoleGuest
	RoleReporter      = store.RoleReporter
	RoleDeveloper     = store.RoleDeveloper
	RoleMaintainer    = store.RoleMaintainer
	RoleOwner         = store.RoleOwner
)

// TokenKind says who a token belongs to.
type TokenKind = store.TokenKind

// Token kinds.
const (
	TokenPersonal = store.TokenPersonal
	TokenGroup    = store.TokenGroup
	TokenDeploy   = store.TokenDeploy
)

// Group is a namespace with its full path.
type Group struct {
	ID        int64
	ParentID  int64
	Path      string
	CreatedAt time.Time
}

// Name is the group's last path segment.
func (g Group) Name() string { return g.Path[strings.LastIndexByte(g.Path, '/')+1:] }

// ParentPath is the parent's full path, "" for a top-level group.
func (g Group) ParentPath() string {
	if i := strings.LastIndexByte(g.Path, '/'); i > 0 {
		return g.Path[:i]
	}
	return ""
}

func groupOf(g store.Group) Group {
	return Group{ID: g.ID, ParentID: g.ParentID, Path: g.Path, CreatedAt: g.CreatedAt}
}

// Member is a user's direct membership of a group.
type Member = store.Member

// ProxySetting is a group's dependency proxy setting. The Docker Hub
// secret is never returned: SecretSet says whether one is stored.
type ProxySetting struct {
	GroupID            int64
	Enabled            bool
	Identity           string
	SecretSet          bool
	FreshnessWindow    time.Duration
	AllowAnonymousPull bool
	// AnonymousPullsUseCredentials lets anonymous pulls go upstream with
	// the group's (or the instance's) credentials.
	AnonymousPullsUseCredentials bool
	UpdatedAt                    time.Time
}

func settingOf(s store.ProxySetting) ProxySetting {
	return ProxySetting{
		GroupID: s.GroupID, Enabled: s.Enabled, Identity: s.Identity, SecretSet: s.Secret != "",
		FreshnessWindow: s.FreshnessWindow, AllowAnonymousPull: s.AllowAnonymousPull,
		AnonymousPullsUseCredentials: s.AnonymousPullsUseCredentials, UpdatedAt: s.UpdatedAt,
	}
}

// TTLPolicy is a group's image TTL policy.
type TTLPolicy = store.TTLPolicy

// HubCredentials are Docker Hub credentials as the API shows them: the
// identity, and whether a secret is set.
type HubCredentials struct {
	Identity  string
	SecretSet bool
}

// Manifest is a cached manifest of a group, with its bytes and how big
// its image is.
type Manifest struct {
	store.Manifest
	Sizes ImageSizes
}

// ImageSizes is how big a cached image is (config plus layers; for an
// index its cached platforms') and how much of it the group holds.
type ImageSizes = store.ImageSizes

// Manifest statuses.
const (
	StatusDefault            = store.StatusDefault
	StatusPendingDestruction = store.StatusPendingDestruction
)

// Blob is a group's reference to a cached blob.
type Blob = store.Blob

// BlobCursor is a position in a group's blobs, newest first.
type BlobCursor = store.BlobCursor

// Usage is what a group's cache holds: counts and bytes.
type Usage = store.Usage

// Purged is what a purge removed.
type Purged struct {
	Manifests int
	Blobs     int
	// Bytes is the size no longer accounted to the group.
	Bytes int64
}

// User is a person or bot. The password hash is never returned:
// PasswordSet says whether password sign-in is possible.
type User struct {
	ID          int64
	Username    string
	Admin       bool
	PasswordSet bool
	Blocked     bool
	CreatedAt   time.Time
}

func userOf(u store.User) User {
	return User{ID: u.ID, Username: u.Username, Admin: u.Admin, PasswordSet: u.PasswordHash != "", Blocked: u.Blocked, CreatedAt: u.CreatedAt}
}

// Token is an access token as the API shows it: never its secret.
type Token struct {
	ID   int64
	Kind TokenKind
	Name string
	// Username is the owner of a personal token; GroupPath the group of a
	// group access or deploy token.
	Username  string
	GroupPath string
	// DeployUsername is the username a deploy token signs in with.
	DeployUsername string
	// Role is a group access token's role.
	Role       Role
	Scopes     []string
	ExpiresAt  *time.Time
	RevokedAt  *time.Time
	LastUsedAt *time.Time
	CreatedAt  time.Time
	// Active is false once the token is revoked or expired.
	Active bool
}

// Me is who an actor is, as the API reports it.
type Me struct {
	Username string
	Admin    bool
	// Kind is USER, PERSONAL_ACCESS_TOKEN, GROUP_ACCESS_TOKEN or
	// DEPLOY_TOKEN.
	Kind   string
	Scopes []string
}

// RateLimit is an upstream rate limit the upstream client last saw for a
// credential.
type RateLimit = upstream.CredentialRateLimit

// RateLimitCheck is the answer of an upstream to a rate-limit check.
type RateLimitCheck = upstream.RateLimitCheck

// Credentials are upstream credentials.
type Credentials = upstream.Credentials

// Digest is a content digest ("sha256:<hex>").
type Digest = oci.Digest

// ParseDigest parses a sha256 digest.
func ParseDigest(s string) (Digest, error) { return oci.ParseDigest(s) }
