package auth

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/dproxy/dproxy/internal/oci"
)

// JWT identity of this service.
const (
	// TokenIssuer is the iss claim of every JWT dproxy mints.
	TokenIssuer = "dproxy"
	// TokenAudience is the aud claim: the service name clients are
	// challenged with and send to the token endpoint.
	TokenAudience = "dependency_proxy"
)

// JWT kinds (the kind claim).
const (
	KindAccess  = "access"
	KindRefresh = "refresh"
)

// Defaults of IssuerOptions.
const (
	DefaultTokenTTL   = 15 * time.Minute
	DefaultRefreshTTL = 30 * 24 * time.Hour
	DefaultLeeway     = 30 * time.Second
)

// signingMethod is the only algorithm minted and accepted.
const signingMethod = "ES256"

// Claims are the claims of dproxy's JWTs. Subject is Principal.Subject():
// a principal id, never a secret. CredentialVersion is the credential
// version of the principal's user when the token was minted (0 for
// principals without a user); the token holds only while the user's
// version stays the same.
type Claims struct {
	jwt.RegisteredClaims
	Access            []Access `json:"access,omitempty"`
	Kind              string   `json:"kind"`
	CredentialVersion int64    `json:"cv,omitempty"`
	// CITrust and CIGroup are a CI job's trust and target group ids.
	CITrust int64 `json:"ci_trust,omitempty"`
	CIGroup int64 `json:"ci_group,omitempty"`
}

// IssuerOptions configure an Issuer. Zero values mean the defaults.
type IssuerOptions struct {
	// TTL is the lifetime of access tokens (default 15 minutes).
	TTL time.Duration
	// RefreshTTL is the lifetime of refresh tokens (default 30 days).
	RefreshTTL time.Duration
	// Leeway is the clock skew tolerated when verifying (default 30 s).
	Leeway time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Previous are retired signing keys: tokens they signed verify until
	// the key's Until. Nothing is signed with them.
	Previous []PreviousKey
}

// Issuer mints and verifies the registry's ES256 JWTs with one key. It is
// safe for concurrent use.
type Issuer struct {
	key      *ecdsa.PrivateKey
	kid      string
	kidErr   error
	opts     IssuerOptions
	previous map[string]PreviousKey // by key id

	mu       sync.Mutex
	verified map[string]Claims // token → its claims, verified before; bounded by maxVerified
}

// maxVerified bounds the verified-token memo; when full it starts over.
const maxVerified = 10_000

// NewIssuer returns an Issuer signing with key (a P-256 key, as
// LoadOrCreateSigningKey returns).
func NewIssuer(key *ecdsa.PrivateKey, opts IssuerOptions) *Issuer {
	if opts.TTL <= 0 {
		opts.TTL = DefaultTokenTTL
	}
	if opts.RefreshTTL <= 0 {
		opts.RefreshTTL = DefaultRefreshTTL
	}
	if opts.Leeway <= 0 {
		opts.Leeway = DefaultLeeway
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	kid, err := KeyID(key)
	previous := make(map[string]PreviousKey, len(opts.Previous))
	for _, p := range opts.Previous {
		if id, err := publicKeyID(p.Key); err == nil && id != kid {
			previous[id] = p
		}
	}
	return &Issuer{key: key, kid: kid, kidErr: err, opts: opts, previous: previous, verified: make(map[string]Claims)}
}

// KeyID returns the key id (the kid header) of a signing key: the first
// 15 bytes of the SHA-256 of its public key in PKIX form, base64url.
func KeyID(key *ecdsa.PrivateKey) (string, error) {
	if key == nil {
		return "", errors.New("no signing key")
	}
	return publicKeyID(&key.PublicKey)
}

// publicKeyID is KeyID of a public key.
func publicKeyID(key *ecdsa.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		return "", fmt.Errorf("encode signing public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:15]), nil
}

// Mint returns an access token for p granting access, and its issue and
// expiry times (whole seconds, as in the token).
func (i *Issuer) Mint(p Principal, access []Access) (token string, issuedAt, expiresAt time.Time, err error) {
	issuedAt = i.opts.Now().Truncate(time.Second)
	expiresAt = capCI(p, issuedAt.Add(i.opts.TTL))
	token, err = i.sign(p, KindAccess, access, issuedAt, expiresAt)
	if err != nil {
		return "", time.Time{}, time.Time{}, err
	}
	return token, issuedAt, expiresAt, nil
}

// MintRefresh returns a refresh token for p: long-lived, granting nothing by
// itself, accepted only by VerifyRefresh (the token endpoint's
// grant_type=refresh_token).
func (i *Issuer) MintRefresh(p Principal) (string, error) {
	now := i.opts.Now().Truncate(time.Second)
	return i.sign(p, KindRefresh, nil, now, capCI(p, now.Add(i.opts.RefreshTTL)))
}

// capCI bounds a token's expiry by the end of a CI job's sign-in.
func capCI(p Principal, exp time.Time) time.Time {
	if p.CI != nil && !p.CI.NotAfter.IsZero() && p.CI.NotAfter.Before(exp) {
		return p.CI.NotAfter.Truncate(time.Second)
	}
	return exp
}

func (i *Issuer) sign(p Principal, kind string, access []Access, iat, exp time.Time) (string, error) {
	sub := p.Subject()
	if sub == "" {
		return "", fmt.Errorf("mint %s token: no principal", kind)
	}
	if i.kidErr != nil {
		return "", fmt.Errorf("mint %s token for %s: %w", kind, sub, i.kidErr)
	}
	jti := make([]byte, 16)
	_, _ = rand.Read(jti) // never fails: crypto/rand crashes the program instead
	claims := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    TokenIssuer,
			Subject:   sub,
			Audience:  jwt.ClaimStrings{TokenAudience},
			ExpiresAt: jwt.NewNumericDate(exp),
			NotBefore: jwt.NewNumericDate(iat),
			IssuedAt:  jwt.NewNumericDate(iat),
			ID:        base64.RawURLEncoding.EncodeToString(jti),
		},
		Access: access,
		Kind:   kind,
	}
	if p.User != nil {
		claims.CredentialVersion = p.User.CredentialVersion
	}
	if p.CI != nil {
		claims.CITrust, claims.CIGroup = p.CI.Trust.ID, p.CI.GroupID
	}
	t := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	t.Header["kid"] = i.kid
	s, err := t.SignedString(i.key)
	if err != nil {
		return "", fmt.Errorf("mint %s token for %s: %w", kind, sub, err)
	}
	return s, nil
}

// Verify checks an access token: signature (ES256 with this issuer's key),
// issuer, audience, expiry and not-before (with the leeway), and kind. Any
// failure, a refresh token included, is an error wrapping
// oci.ErrUnauthorized (and the jwt package's error, for errors.Is).
func (i *Issuer) Verify(token string) (Claims, error) {
	return i.verify(token, KindAccess)
}

// VerifyRefresh checks a refresh token as Verify checks an access token.
// An access token is not a refresh token.
func (i *Issuer) VerifyRefresh(token string) (Claims, error) {
	return i.verify(token, KindRefresh)
}

// verify checks a token. A token that verified before is not checked
// again until it expires: the signature check (ECDSA P-256) was a third of
// the CPU time of a warm manifest GET (BenchmarkWarmManifest), and every
// pull presents the same token many times. Only the token's own claims are
// remembered; the principal behind it is still looked up on each request.
func (i *Issuer) verify(token, kind string) (Claims, error) {
	now := i.opts.Now()
	i.mu.Lock()
	c, ok := i.verified[token]
	i.mu.Unlock()
	if ok && c.Kind == kind && c.ExpiresAt != nil && now.Before(c.ExpiresAt.Time) {
		return c, nil
	}
	c, err := i.verifySignature(token, kind)
	if err != nil {
		return Claims{}, err
	}
	if c.ExpiresAt != nil && now.Before(c.ExpiresAt.Time) {
		i.mu.Lock()
		if len(i.verified) >= maxVerified {
			clear(i.verified)
		}
		i.verified[token] = c
		i.mu.Unlock()
	}
	return c, nil
}

func (i *Issuer) verifySignature(token, kind string) (Claims, error) {
	var c Claims
	_, err := jwt.ParseWithClaims(token, &c, i.keyFor,
		jwt.WithValidMethods([]string{signingMethod}),
		jwt.WithIssuer(TokenIssuer),
		jwt.WithAudience(TokenAudience),
		jwt.WithLeeway(i.opts.Leeway),
		jwt.WithTimeFunc(i.opts.Now),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
	)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: the %s token is invalid or expired, log in again: %w", oci.ErrUnauthorized, kind, err)
	}
	if c.Kind != kind {
		return Claims{}, fmt.Errorf("%w: the token is not %s (its kind is %q)", oci.ErrUnauthorized, withArticle(kind), clip(c.Kind))
	}
	if c.Subject == "" {
		return Claims{}, fmt.Errorf("%w: the %s token names no subject", oci.ErrUnauthorized, kind)
	}
	return c, nil
}

// keyFor returns the verification key for a parsed token whose kid names
// this issuer's key.
func (i *Issuer) keyFor(t *jwt.Token) (any, error) {
	if i.kidErr != nil {
		return nil, i.kidErr
	}
	kid, _ := t.Header["kid"].(string)
	if kid == i.kid {
		return &i.key.PublicKey, nil
	}
	if p, ok := i.previous[kid]; ok && i.opts.Now().Before(p.Until) {
		return p.Key, nil
	}
	return nil, fmt.Errorf("unknown signing key id %q", clip(kid))
}

func withArticle(kind string) string {
	if kind == KindAccess {
		return "an access token"
	}
	return "a " + kind + " token"
}

// clip shortens client-supplied text quoted in an error.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
