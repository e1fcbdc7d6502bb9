package store

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dproxy/dproxy/internal/oci"
)

// Errors returned by the store. Callers translate them once, at their layer.
var (
	// ErrNotFound means no row matched.
	ErrNotFound = errors.New("not found")
	// ErrConflict means a unique key (a group path, a username, …) is taken.
	ErrConflict = errors.New("already exists")
)

// Role is a member's role in a group. Higher roles include lower ones.
type Role int

// Roles, in GitLab's order and with GitLab's access-level numbers.
const (
	RoleNone          Role = 0
	RoleMinimalAccess Role = 5 // a member below guest: sees the group, may not pull
	RoleGuest         Role = 10
	RoleReporter      Role = 20
	RoleDeveloper     Role = 30
	RoleMaintainer    Role = 40
	RoleOwner         Role = 50
)

var roleNames = []struct {
	role Role
	name string
}{
	{RoleMinimalAccess, "minimal_access"},
	{RoleGuest, "guest"},
	{RoleReporter, "reporter"},
	{RoleDeveloper, "developer"},
	{RoleMaintainer, "maintainer"},
	{RoleOwner, "owner"},
}

// String returns the role's name as ParseRole accepts it ("none" for
// RoleNone).
func (r Role) String() string {
	if r == RoleNone {
		return "none"
	}
	for _, n := range roleNames {
		if n.role == r {
			return n.name
		}
	}
	return fmt.Sprintf("role(%d)", int(r))
}

// Valid reports whether r is a role a member can have (not RoleNone).
func (r Role) Valid() bool {
	for _, n := range roleNames {
		if n.role == r {
			return true
		}
	}
	return false
}

// ParseRole parses a member role name: minimal_access, guest, reporter,
// developer, maintainer or owner (case-insensitive; "-" may stand for "_").
func ParseRole(s string) (Role, error) {
	key := strings.ReplaceAll(strings.ToLower(strings.TrimSpace(s)), "-", "_")
	for _, n := range roleNames {
		if n.name == key {
			return n.role, nil
		}
	}
	names := make([]string, len(roleNames))
	for i, n := range roleNames {
		names[i] = n.name
	}
	return RoleNone, fmt.Errorf("unknown role %q: use one of %s", s, strings.Join(names, ", "))
}

// User is a person (or bot) who signs in with a password or a personal token.
type User struct {
	ID           int64
	Username     string
	PasswordHash string // bcrypt; empty means password sign-in is disabled
	Admin        bool
	// Blocked users cannot sign in, with a password or a personal token.
	Blocked bool
	// CredentialVersion moves on whenever the user's sessions must end: a
	// new password, being blocked. Tokens minted for the user carry it.
	CredentialVersion int64
	CreatedAt         time.Time
}

// UserChange is a change to a user; nil fields stay as they are.
type UserChange struct {
	// PasswordHash is a new bcrypt hash ("" disables password sign-in).
	PasswordHash *string
	Admin        *bool
	Blocked      *bool
}

// endsSessions reports whether the change moves the user's credential
// version on: a new password, or blocking.
func (c UserChange) endsSessions() bool {
	return c.PasswordHash != nil || c.Blocked != nil && *c.Blocked
}

// Group is a namespace. Path is the full path ("acme/platform/ci");
// ParentID is 0 for a top-level group.
type Group struct {
	ID        int64
	ParentID  int64
	Path      string
	CreatedAt time.Time
}

// Member is a user's membership of one group.
type Member struct {
	GroupID   int64
	UserID    int64
	Username  string
	Role      Role
	CreatedAt time.Time
}

// TokenKind says who a token belongs to.
type TokenKind string

// Token kinds.
const (
	TokenPersonal TokenKind = "personal" // UserID is set
	TokenGroup    TokenKind = "group"    // GroupID is set: a group access token
	TokenDeploy   TokenKind = "deploy"   // GroupID and Username are set
)

// Token is an API/registry token. Only the SHA-256 of its secret is stored.
type Token struct {
	ID         int64
	Kind       TokenKind
	Name       string
	UserID     int64  // personal tokens
	GroupID    int64  // group access and deploy tokens
	Username   string // deploy tokens: the username clients log in with
	Role       Role   // group access tokens: the role the token acts with
	Scopes     []string
	Hash       []byte // sha256 of the secret
	ExpiresAt  *time.Time
	RevokedAt  *time.Time
	CreatedAt  time.Time
	LastUsedAt *time.Time
}

// ProxySetting is a group's dependency proxy setting. Secret is plaintext in
// memory only; the store encrypts it at rest and never logs it.
type ProxySetting struct {
	GroupID            int64
	Enabled            bool
	Identity           string
	Secret             string
	FreshnessWindow    time.Duration
	AllowAnonymousPull bool
	// AnonymousPullsUseCredentials lets anonymous pulls go upstream with
	// Identity and Secret (else the instance default); otherwise they go
	// anonymously. Only an instance admin turns it on.
	AnonymousPullsUseCredentials bool
	UpdatedAt                    time.Time
}

// TTLPolicy is a group's image TTL policy.
type TTLPolicy struct {
	GroupID   int64
	Enabled   bool
	TTLDays   int
	CreatedAt time.Time
	UpdatedAt time.Time
}

// HubCredentials is a Docker Hub identity and its secret (plaintext in memory).
type HubCredentials struct {
	Identity string
	Secret   string
}

// Manifest statuses.
const (
	StatusDefault            = "default"
	StatusPendingDestruction = "pending_destruction"
)

// Manifest is a cached manifest of a group, or of a virtual registry
// upstream (UpstreamCache). Image is the upstream repository
// ("library/alpine"); Reference is the tag or digest it was asked for.
type Manifest struct {
	ID int64
	// OwnerID is the id of the cache's owner: a group in Store's methods,
	// a virtual registry upstream in UpstreamCache's.
	OwnerID   int64
	Image     string
	Reference string
	Digest    oci.Digest
	MediaType string
	Size      int64 // the manifest's own bytes
	// ImageSize is what an image manifest refers to: config plus layers.
	// It is 0 for an index (see ImageSizes) and for content that does not
	// parse. PutManifest computes it from Content.
	ImageSize int64
	Content   []byte
	ETag      string
	Status    string
	CreatedAt time.Time
	UpdatedAt time.Time // last time the upstream confirmed or replaced it
	ReadAt    time.Time
}

// Blob is a cache owner's reference to a stored blob: a group's, or a
// virtual registry upstream's (UpstreamCache).
type Blob struct {
	OwnerID   int64 // a group id or an upstream id, as Manifest.OwnerID
	Digest    oci.Digest
	Size      int64
	CreatedAt time.Time
	ReadAt    time.Time
}

// BlobKey names a cache owner's blob reference.
type BlobKey struct {
	OwnerID int64 // a group id or an upstream id, as Manifest.OwnerID
	Digest  oci.Digest
}
