package adminclient

import (
	"context"
	"time"
)

// CITrust is a trust policy for CI jobs' OpenID Connect ID tokens.
// GroupPath is "" when GroupClaim names the group per token.
type CITrust struct {
	Name               string         `json:"name"`
	Issuer             string         `json:"issuer"`
	Audience           string         `json:"audience"`
	GroupPath          *string        `json:"groupPath"`
	GroupClaim         *string        `json:"groupClaim"`
	Role               string         `json:"role"`
	Claims             []CITrustClaim `json:"claims"`
	MaxLifetimeSeconds int            `json:"maxLifetimeSeconds"`
	CreatedAt          time.Time      `json:"createdAt"`
}

// CITrustClaim is a claim rule: the claim, as a string, matches Glob.
type CITrustClaim struct {
	Key  string `json:"key"`
	Glob string `json:"glob"`
}

// GetGraphQLType names the input type in the schema.
func (CITrustClaim) GetGraphQLType() string { return "CiTrustClaimInput" }

// CITrustInput creates a trust: GroupPath or GroupClaim; nil fields take
// the server's defaults.
type CITrustInput struct {
	Name               string         `json:"name"`
	Issuer             string         `json:"issuer"`
	Audience           string         `json:"audience"`
	GroupPath          *string        `json:"groupPath,omitempty"`
	GroupClaim         *string        `json:"groupClaim,omitempty"`
	Role               *string        `json:"role,omitempty"`
	Claims             []CITrustClaim `json:"claims,omitempty"`
	MaxLifetimeSeconds *int           `json:"maxLifetimeSeconds,omitempty"`
}

// GetGraphQLType names the input type in the schema.
func (CITrustInput) GetGraphQLType() string { return "CreateCiTrustInput" }

type ciTrustNameInput struct {
	Name string `json:"name"`
}

func (ciTrustNameInput) GetGraphQLType() string { return "DeleteCiTrustInput" }

// CITrusts lists the trusts the caller may manage.
func (c *Client) CITrusts(ctx context.Context) ([]CITrust, error) {
	var q struct {
		CITrusts []CITrust `graphql:"ciTrusts"`
	}
	if err := c.query(ctx, &q, nil); err != nil {
		return nil, err
	}
	return q.CITrusts, nil
}

// CITrust returns one trust; ok is false when it does not exist or the
// caller may not manage it.
func (c *Client) CITrust(ctx context.Context, name string) (t CITrust, ok bool, err error) {
	var q struct {
		CITrust *CITrust `graphql:"ciTrust(name: $name)"`
	}
	if err := c.query(ctx, &q, map[string]any{"name": name}); err != nil {
		return CITrust{}, false, err
	}
	if q.CITrust == nil {
		return CITrust{}, false, nil
	}
	return *q.CITrust, true, nil
}

// CreateCITrust creates a trust.
func (c *Client) CreateCITrust(ctx context.Context, in CITrustInput) (CITrust, error) {
	var m struct {
		Payload struct {
			CITrust CITrust `graphql:"ciTrust"`
			Errors  []string
		} `graphql:"createCiTrust(input: $input)"`
	}
	err := c.mutate(ctx, &m, map[string]any{"input": in}, func() []string { return m.Payload.Errors })
	return m.Payload.CITrust, err
}

// DeleteCITrust removes a trust.
func (c *Client) DeleteCITrust(ctx context.Context, name string) (CITrust, error) {
	var m struct {
		Payload struct {
			CITrust CITrust `graphql:"ciTrust"`
			Errors  []string
		} `graphql:"deleteCiTrust(input: $input)"`
	}
	err := c.mutate(ctx, &m, map[string]any{"input": ciTrustNameInput{Name: name}}, func() []string { return m.Payload.Errors })
	return m.Payload.CITrust, err
}

// ExternalURL is the URL clients reach the server at.
func (c *Client) ExternalURL(ctx context.Context) (string, error) {
	var q struct {
		ExternalURL string `graphql:"externalUrl"`
	}
	if err := c.query(ctx, &q, nil); err != nil {
		return "", err
	}
	return q.ExternalURL, nil
}
