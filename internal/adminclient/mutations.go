package adminclient

import (
	"context"
	"time"

	graphql "github.com/hasura/go-graphql-client"
)

// ProxySettingsInput changes a group's dependency proxy setting; nil
// fields stay as they are. Identity and Secret are set together, or both
// set to "" to clear the credentials.
type ProxySettingsInput struct {
	GroupPath              string  `json:"groupPath"`
	Enabled                *bool   `json:"enabled,omitempty"`
	Identity               *string `json:"identity,omitempty"`
	Secret                 *string `json:"secret,omitempty"`
	FreshnessWindowSeconds *int    `json:"freshnessWindowSeconds,omitempty"`
	AllowAnonymousPull     *bool   `json:"allowAnonymousPull,omitempty"`
	// AnonymousPullsUseCredentials true needs an instance admin.
	AnonymousPullsUseCredentials *bool `json:"anonymousPullsUseCredentials,omitempty"`
}

// GetGraphQLType names the input type in the schema.
func (ProxySettingsInput) GetGraphQLType() string { return "UpdateDependencyProxySettingsInput" }

// UpdateProxySettings changes a group's dependency proxy setting (owner).
func (c *Client) UpdateProxySettings(ctx context.Context, in ProxySettingsInput) (ProxySetting, error) {
	var m struct {
		Payload struct {
			Setting ProxySetting `graphql:"dependencyProxySetting"`
			Errors  []string
		} `graphql:"updateDependencyProxySettings(input: $input)"`
	}
	err := c.mutate(ctx, &m, map[string]any{"input": in}, func() []string { return m.Payload.Errors })
	return m.Payload.Setting, err
}

// TTLPolicyInput changes a group's image TTL policy; nil fields stay.
type TTLPolicyInput struct {
	GroupPath string `json:"groupPath"`
	Enabled   *bool  `json:"enabled,omitempty"`
	// TTL is in days, 1 to 3650.
	TTL *int `json:"ttl,omitempty"`
}

// GetGraphQLType names the input type in the schema.
func (TTLPolicyInput) GetGraphQLType() string { return "UpdateDependencyProxyImageTtlGroupPolicyInput" }

// UpdateTTLPolicy changes a group's image TTL policy (owner).
func (c *Client) UpdateTTLPolicy(ctx context.Context, in TTLPolicyInput) (TTLPolicy, error) {
	var m struct {
		Payload struct {
			Policy TTLPolicy `graphql:"dependencyProxyImageTtlPolicy"`
			Errors []string
		} `graphql:"updateDependencyProxyImageTtlGroupPolicy(input: $input)"`
	}
	err := c.mutate(ctx, &m, map[string]any{"input": in}, func() []string { return m.Payload.Errors })
	return m.Payload.Policy, err
}

type purgeInput struct {
	GroupPath string `json:"groupPath"`
}

func (purgeInput) GetGraphQLType() string { return "PurgeDependencyProxyCacheInput" }

// PurgeCache removes every cached manifest and blob reference of a group
// (owner) and reports what it removed.
func (c *Client) PurgeCache(ctx context.Context, group string) (PurgeResult, error) {
	var m struct {
		Payload struct {
			PurgeResult
			Errors []string
		} `graphql:"purgeDependencyProxyCache(input: $input)"`
	}
	err := c.mutate(ctx, &m, map[string]any{"input": purgeInput{GroupPath: group}}, func() []string { return m.Payload.Errors })
	return m.Payload.PurgeResult, err
}

type deleteManifestInput struct {
	GroupPath string `json:"groupPath"`
	ImageName string `json:"imageName"`
	Reference string `json:"reference"`
}

func (deleteManifestInput) GetGraphQLType() string { return "DeleteDependencyProxyManifestInput" }

// DeleteManifest removes one cached manifest of a group by image and tag or
// digest (owner) and returns it.
func (c *Client) DeleteManifest(ctx context.Context, group, image, reference string) (Manifest, error) {
	var m struct {
		Payload struct {
			Manifest *Manifest `graphql:"dependencyProxyManifest"`
			Errors   []string
		} `graphql:"deleteDependencyProxyManifest(input: $input)"`
	}
	in := deleteManifestInput{GroupPath: group, ImageName: image, Reference: reference}
	if err := c.mutate(ctx, &m, map[string]any{"input": in}, func() []string { return m.Payload.Errors }); err != nil {
		return Manifest{}, err
	}
	if m.Payload.Manifest == nil {
		return Manifest{}, nil
	}
	return *m.Payload.Manifest, nil
}

type instanceCredsInput struct {
	Identity string `json:"identity"`
	Secret   string `json:"secret"`
}

func (instanceCredsInput) GetGraphQLType() string { return "UpdateInstanceDockerHubCredentialsInput" }

// UpdateInstanceDockerHubCredentials sets the instance default Docker Hub
// credentials, or clears them when both are "" (instance admin).
func (c *Client) UpdateInstanceDockerHubCredentials(ctx context.Context, identity, secret string) (DockerHubCredentials, error) {
	var m struct {
		Payload struct {
			Creds  DockerHubCredentials `graphql:"dockerHubCredentials"`
			Errors []string
		} `graphql:"updateInstanceDockerHubCredentials(input: $input)"`
	}
	in := instanceCredsInput{Identity: identity, Secret: secret}
	err := c.mutate(ctx, &m, map[string]any{"input": in}, func() []string { return m.Payload.Errors })
	return m.Payload.Creds, err
}

type groupPathInput struct {
	Path string `json:"path"`
	kind string
}

func (g groupPathInput) GetGraphQLType() string { return g.kind }

// CreateGroup creates a group; its parent must exist.
func (c *Client) CreateGroup(ctx context.Context, path string) (GroupSummary, error) {
	var m struct {
		Payload struct {
			Group  GroupSummary
			Errors []string
		} `graphql:"groupCreate(input: $input)"`
	}
	in := groupPathInput{Path: path, kind: "GroupCreateInput"}
	err := c.mutate(ctx, &m, map[string]any{"input": in}, func() []string { return m.Payload.Errors })
	return m.Payload.Group, err
}

// DeleteGroup deletes a group and everything under it (owner).
func (c *Client) DeleteGroup(ctx context.Context, path string) error {
	var m struct {
		Payload struct {
			Errors []string
		} `graphql:"groupDelete(input: $input)"`
	}
	in := groupPathInput{Path: path, kind: "GroupDeleteInput"}
	return c.mutate(ctx, &m, map[string]any{"input": in}, func() []string { return m.Payload.Errors })
}

// UserInput creates or changes a user; nil fields stay as they are.
// CurrentPassword and Blocked are for changes only: changing your own
// password with a token needs the current one (unless you are an instance
// admin); blocking needs an instance admin.
type UserInput struct {
	Username        string  `json:"username"`
	Password        *string `json:"password,omitempty"`
	CurrentPassword *string `json:"currentPassword,omitempty"`
	Admin           *bool   `json:"admin,omitempty"`
	Blocked         *bool   `json:"blocked,omitempty"`
	kind            string
}

// GetGraphQLType names the input type in the schema.
func (u UserInput) GetGraphQLType() string {
	if u.kind == "" {
		return "UserCreateInput"
	}
	return u.kind
}

// CreateUser creates a user (instance admin).
func (c *Client) CreateUser(ctx context.Context, in UserInput) (User, error) {
	var m struct {
		Payload struct {
			User   User
			Errors []string
		} `graphql:"userCreate(input: $input)"`
	}
	in.kind = "UserCreateInput"
	err := c.mutate(ctx, &m, map[string]any{"input": in}, func() []string { return m.Payload.Errors })
	return m.Payload.User, err
}

// UpdateUser changes a user's password, admin flag or blocked state. A new
// password or blocking ends the user's sessions.
func (c *Client) UpdateUser(ctx context.Context, in UserInput) (User, error) {
	var m struct {
		Payload struct {
			User   User
			Errors []string
		} `graphql:"userUpdate(input: $input)"`
	}
	in.kind = "UserUpdateInput"
	err := c.mutate(ctx, &m, map[string]any{"input": in}, func() []string { return m.Payload.Errors })
	return m.Payload.User, err
}

type userDeleteInput struct {
	Username string `json:"username"`
}

func (userDeleteInput) GetGraphQLType() string { return "UserDeleteInput" }

// DeleteUser deletes a user with their tokens and memberships (instance admin).
func (c *Client) DeleteUser(ctx context.Context, username string) error {
	var m struct {
		Payload struct {
			Errors []string
		} `graphql:"userDelete(input: $input)"`
	}
	return c.mutate(ctx, &m, map[string]any{"input": userDeleteInput{Username: username}}, func() []string { return m.Payload.Errors })
}

type memberInput struct {
	GroupPath string `json:"groupPath"`
	Username  string `json:"username"`
	Role      Role   `json:"role,omitempty"`
	kind      string
}

func (m memberInput) GetGraphQLType() string { return m.kind }

// AddMember adds a member to a group or changes their role (owner).
func (c *Client) AddMember(ctx context.Context, group, username string, role Role) (Member, error) {
	var m struct {
		Payload struct {
			Member Member
			Errors []string
		} `graphql:"memberAdd(input: $input)"`
	}
	in := memberInput{GroupPath: group, Username: username, Role: role, kind: "MemberAddInput"}
	err := c.mutate(ctx, &m, map[string]any{"input": in}, func() []string { return m.Payload.Errors })
	return m.Payload.Member, err
}

// RemoveMember removes a member from a group (owner).
func (c *Client) RemoveMember(ctx context.Context, group, username string) error {
	var m struct {
		Payload struct {
			Errors []string
		} `graphql:"memberRemove(input: $input)"`
	}
	in := memberInput{GroupPath: group, Username: username, kind: "MemberRemoveInput"}
	return c.mutate(ctx, &m, map[string]any{"input": in}, func() []string { return m.Payload.Errors })
}

// TokenInput creates a token. Username applies to PERSONAL tokens
// (default: the caller); GroupPath to GROUP_ACCESS and DEPLOY tokens; Role
// to GROUP_ACCESS tokens (default GUEST); DeployUsername to DEPLOY tokens
// (default: generated).
type TokenInput struct {
	Kind           TokenKind  `json:"kind"`
	Name           string     `json:"name"`
	Scopes         []string   `json:"scopes"`
	Username       string     `json:"username,omitempty"`
	GroupPath      string     `json:"groupPath,omitempty"`
	Role           Role       `json:"role,omitempty"`
	DeployUsername string     `json:"deployUsername,omitempty"`
	ExpiresAt      *time.Time `json:"expiresAt,omitempty"`
}

// GetGraphQLType names the input type in the schema.
func (TokenInput) GetGraphQLType() string { return "TokenCreateInput" }

// CreatedToken is a new token with its secret, which the server shows
// only this once.
type CreatedToken struct {
	Token  Token  `json:"token"`
	Secret string `json:"secret"`
}

// CreateToken creates a token.
func (c *Client) CreateToken(ctx context.Context, in TokenInput) (CreatedToken, error) {
	var m struct {
		Payload struct {
			Token  Token
			Secret string
			Errors []string
		} `graphql:"tokenCreate(input: $input)"`
	}
	err := c.mutate(ctx, &m, map[string]any{"input": in}, func() []string { return m.Payload.Errors })
	return CreatedToken{Token: m.Payload.Token, Secret: m.Payload.Secret}, err
}

type tokenRevokeInput struct {
	ID graphql.ID `json:"id"`
}

func (tokenRevokeInput) GetGraphQLType() string { return "TokenRevokeInput" }

// RevokedToken is a token after a revocation.
type RevokedToken struct {
	Token Token `json:"token"`
	// AlreadyRevoked: the token had been revoked before; Token.RevokedAt
	// is that first revocation.
	AlreadyRevoked bool `json:"alreadyRevoked"`
}

// RevokeToken revokes a token by id; revoking a revoked token changes
// nothing and says so.
func (c *Client) RevokeToken(ctx context.Context, id string) (RevokedToken, error) {
	var m struct {
		Payload struct {
			Token          Token
			AlreadyRevoked bool
			Errors         []string
		} `graphql:"tokenRevoke(input: $input)"`
	}
	err := c.mutate(ctx, &m, map[string]any{"input": tokenRevokeInput{ID: graphql.ID(id)}}, func() []string { return m.Payload.Errors })
	return RevokedToken{Token: m.Payload.Token, AlreadyRevoked: m.Payload.AlreadyRevoked}, err
}
