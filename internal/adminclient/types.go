package adminclient

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Bytes is a size in bytes. The API sends sizes as strings (GitLab's
// BigInt and size fields); Bytes decodes both strings and numbers and
// encodes as a JSON number.
type Bytes int64

// UnmarshalJSON accepts "123" and 123.
func (b *Bytes) UnmarshalJSON(data []byte) error {
	s := strings.Trim(string(data), `"`)
	if s == "" || s == "null" {
		*b = 0
		return nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("decode size %s: %w", data, err)
	}
	*b = Bytes(n)
	return nil
}

// bodyMessage extracts the messages of a GraphQL error body.
func bodyMessage(body string) string {
	var v struct {
		Errors []struct {
			Message string `json:"message"`
		} `json:"errors"`
	}
	if json.Unmarshal([]byte(body), &v) != nil {
		return strings.TrimSpace(body)
	}
	msgs := make([]string, 0, len(v.Errors))
	for _, e := range v.Errors {
		msgs = append(msgs, e.Message)
	}
	return strings.Join(msgs, "; ")
}

// Page selects a page of a connection: up to First items (0: the server's
// default) after the cursor After ("" for the first page).
type Page struct {
	First int
	After string
}

func (p Page) vars(v map[string]any) map[string]any {
	var first *int
	if p.First > 0 {
		first = &p.First
	}
	var after *string
	if p.After != "" {
		after = &p.After
	}
	v["first"] = first
	v["after"] = after
	return v
}

// PageInfo tells whether more items follow and the cursor to ask for them.
type PageInfo struct {
	HasNextPage bool   `json:"hasNextPage"`
	EndCursor   string `json:"endCursor"`
}

// CurrentUser is the principal a token signs in as.
type CurrentUser struct {
	Username string   `json:"username"`
	Admin    bool     `json:"admin"`
	Kind     string   `json:"kind"`
	Scopes   []string `json:"scopes"`
}

// UpstreamRateLimit is the rate limit the server last saw from its upstream
// for one credential.
type UpstreamRateLimit struct {
	Upstream      string    `json:"upstream"`
	Credential    string    `json:"credential"`
	Limit         int       `json:"limit"`
	Remaining     int       `json:"remaining"`
	WindowSeconds *int      `json:"windowSeconds"`
	Source        *string   `json:"source"`
	SeenAt        time.Time `json:"seenAt"`
}

// DockerHubRateLimit is the answer of a rate-limit check. Limit, Remaining
// and WindowSeconds are nil when Unlimited.
type DockerHubRateLimit struct {
	Upstream         string  `json:"upstream"`
	Unlimited        bool    `json:"unlimited"`
	Limit            *int    `json:"limit"`
	Remaining        *int    `json:"remaining"`
	WindowSeconds    *int    `json:"windowSeconds"`
	Source           *string `json:"source"`
	AuthenticatedAs  string  `json:"authenticatedAs"`
	CredentialSource string  `json:"credentialSource"`
	// CredentialVerified: the upstream asked for the credentials and
	// accepted them; false when anonymous or when it asked for none.
	CredentialVerified bool      `json:"credentialVerified"`
	CheckedAt          time.Time `json:"checkedAt"`
}

// ProxySetting is a group's dependency proxy setting. The secret is never
// returned; SecretSet says whether one is stored.
type ProxySetting struct {
	Enabled                bool   `json:"enabled"`
	Identity               string `json:"identity"`
	SecretSet              bool   `json:"secretSet"`
	FreshnessWindowSeconds int    `json:"freshnessWindowSeconds"`
	AllowAnonymousPull     bool   `json:"allowAnonymousPull"`
	// AnonymousPullsUseCredentials: anonymous pulls go upstream with the
	// group's (else the instance's) Docker Hub credentials. Only an
	// instance admin turns it on.
	AnonymousPullsUseCredentials bool `json:"anonymousPullsUseCredentials"`
}

// TTLPolicy is a group's image TTL policy.
type TTLPolicy struct {
	Enabled   bool       `json:"enabled"`
	TTL       int        `json:"ttl"`
	CreatedAt *time.Time `json:"createdAt"`
	UpdatedAt *time.Time `json:"updatedAt"`
}

// GroupSummary is a group as lists show it.
type GroupSummary struct {
	ID         string        `json:"id"`
	FullPath   string        `json:"fullPath"`
	ParentPath string        `json:"parentPath"`
	CreatedAt  time.Time     `json:"createdAt"`
	MyRole     Role          `json:"myRole"`
	Setting    *ProxySetting `json:"dependencyProxySetting" graphql:"dependencyProxySetting"`
	// ImageCount is GitLab's count of cached manifests (a tag and a
	// digest of one image are two); CachedImageCount counts images (image
	// and digest), as cache list shows them.
	ImageCount       int   `json:"dependencyProxyImageCount" graphql:"dependencyProxyImageCount"`
	CachedImageCount int   `json:"dependencyProxyCachedImageCount" graphql:"dependencyProxyCachedImageCount"`
	BlobCount        int   `json:"dependencyProxyBlobCount" graphql:"dependencyProxyBlobCount"`
	TotalSizeBytes   Bytes `json:"dependencyProxyTotalSizeBytes" graphql:"dependencyProxyTotalSizeBytes"`
}

// Group is one group with its settings, policy, image prefixes, cache
// usage and subgroups.
type Group struct {
	GroupSummary
	Name              string     `json:"name"`
	TTLPolicy         *TTLPolicy `json:"dependencyProxyImageTtlPolicy" graphql:"dependencyProxyImageTtlPolicy"`
	ImagePrefix       string     `json:"dependencyProxyImagePrefix" graphql:"dependencyProxyImagePrefix"`
	DirectImagePrefix string     `json:"dependencyProxyDirectImagePrefix" graphql:"dependencyProxyDirectImagePrefix"`
	Subgroups         []struct {
		FullPath string `json:"fullPath"`
	} `json:"subgroups"`
}

// Manifest is a cached manifest of a group. Image is the repository it
// is cached under ("library/alpine"), the image DeleteManifest takes;
// ImageName and FileName are GitLab's names ("alpine:latest",
// "alpine:latest.json").
type Manifest struct {
	ID        string    `json:"id"`
	Image     string    `json:"image"`
	ImageName string    `json:"imageName"`
	Reference string    `json:"reference"`
	Digest    string    `json:"digest"`
	MediaType string    `json:"mediaType"`
	FileName  string    `json:"fileName"`
	Size      Bytes     `json:"size"`
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
	ReadAt    time.Time `json:"readAt"`
	// ImageSize is the image's config plus layers (an index: its cached
	// platforms'), CachedSize the bytes of those the group holds; Size is
	// the manifest's own. Platforms and PlatformsCached count an index's
	// platforms.
	ImageSize       Bytes `json:"imageSize"`
	CachedSize      Bytes `json:"cachedSize"`
	Platforms       int   `json:"platforms"`
	PlatformsCached int   `json:"platformsCached"`
}

// Blob is a cached blob reference of a group.
type Blob struct {
	Digest    string    `json:"digest"`
	FileName  string    `json:"fileName"`
	Size      Bytes     `json:"size"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
	ReadAt    time.Time `json:"readAt"`
}

// Role is a member's role: GUEST < REPORTER < DEVELOPER < MAINTAINER < OWNER.
type Role string

// Roles in increasing order of power.
var Roles = []Role{"MINIMAL_ACCESS", "GUEST", "REPORTER", "DEVELOPER", "MAINTAINER", "OWNER"}

// ParseRole accepts a role in any case ("reporter", "REPORTER").
func ParseRole(s string) (Role, error) {
	r := Role(strings.ToUpper(strings.TrimSpace(s)))
	for _, known := range Roles {
		if r == known {
			return r, nil
		}
	}
	return "", fmt.Errorf("unknown role %q: want one of guest, reporter, developer, maintainer, owner", s)
}

// User is an account.
type User struct {
	ID          string    `json:"id"`
	Username    string    `json:"username"`
	Admin       bool      `json:"admin"`
	PasswordSet bool      `json:"passwordSet"`
	Blocked     bool      `json:"blocked"`
	CreatedAt   time.Time `json:"createdAt"`
}

// Member is a user's membership of a group.
type Member struct {
	Username  string    `json:"username"`
	Role      Role      `json:"role"`
	GroupPath string    `json:"groupPath"`
	CreatedAt time.Time `json:"createdAt"`
}

// TokenKind is PERSONAL, GROUP_ACCESS or DEPLOY.
type TokenKind string

// Token kinds.
const (
	TokenPersonal    TokenKind = "PERSONAL"
	TokenGroupAccess TokenKind = "GROUP_ACCESS"
	TokenDeploy      TokenKind = "DEPLOY"
)

// Scopes a token may carry.
var Scopes = []string{"api", "read_registry", "write_registry", "read_virtual_registry", "write_virtual_registry"}

// Token is an access token without its secret.
type Token struct {
	ID             string     `json:"id"`
	Kind           TokenKind  `json:"kind"`
	Name           string     `json:"name"`
	Username       string     `json:"username,omitempty"`
	GroupPath      string     `json:"groupPath,omitempty"`
	DeployUsername string     `json:"deployUsername,omitempty"`
	Role           Role       `json:"role,omitempty"`
	Scopes         []string   `json:"scopes"`
	ExpiresAt      *time.Time `json:"expiresAt"`
	RevokedAt      *time.Time `json:"revokedAt"`
	LastUsedAt     *time.Time `json:"lastUsedAt"`
	CreatedAt      time.Time  `json:"createdAt"`
	Active         bool       `json:"active"`
}

// DockerHubCredentials is an identity without its secret.
type DockerHubCredentials struct {
	Identity  string `json:"identity"`
	SecretSet bool   `json:"secretSet"`
}

// PurgeResult is what a purge removed.
type PurgeResult struct {
	ManifestCount int   `json:"manifestCount"`
	BlobCount     int   `json:"blobCount"`
	FreedBytes    Bytes `json:"freedBytes"`
}
