package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"

	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/store"
)

// CI sign-in defaults.
const (
	// CILeeway is the clock skew tolerated on an ID token's exp, nbf and iat.
	CILeeway = 60 * time.Second
	// DefaultCIFetchTimeout bounds one discovery or JWKS fetch.
	DefaultCIFetchTimeout = 10 * time.Second
	// ciRefetchInterval is how often an issuer's keys may be fetched again
	// for a key id they lack, so forged key ids cannot make dproxy hammer
	// the issuer.
	ciRefetchInterval = 30 * time.Second
	// maxCIDocument bounds a discovery document or key set read.
	maxCIDocument = 1 << 20
)

// ciAlgorithms are the ID token signature algorithms accepted.
var ciAlgorithms = []string{oidc.RS256, oidc.RS384, oidc.RS512, oidc.ES256, oidc.ES384, oidc.PS256}

// CIIdentity is a CI job signed in with an OpenID Connect ID token under a
// trust. NotAfter is when the sign-in ends: the ID token's expiry, or the
// trust's maximum lifetime from the sign-in, whichever is sooner; no
// registry token issued for it lives longer.
type CIIdentity struct {
	Trust    store.CITrust
	Subject  string // the ID token's sub claim
	GroupID  int64  // the group the job may pull from, with its subgroups
	NotAfter time.Time
}

// errCISignIn is the refusal of an ID token; the message names the check
// that failed and never contains the token.
func errCISignIn(format string, args ...any) error {
	return fmt.Errorf("%w: ID token refused: %s", oci.ErrUnauthorized, fmt.Sprintf(format, args...))
}

// LooksLikeIDToken reports whether secret has the form of a JWT (three
// base64url parts whose header names an algorithm), as opposed to a
// password or a dproxy token secret. It verifies nothing.
func LooksLikeIDToken(secret string) bool {
	head, _, ok := strings.Cut(secret, ".")
	if !ok || strings.Count(secret, ".") != 2 || LooksLikeToken(secret) {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return false
	}
	var h struct {
		Alg string `json:"alg"`
	}
	return json.Unmarshal(b, &h) == nil && h.Alg != ""
}

// unverifiedIssuer reads the iss claim of a JWT without verifying it, to
// find the trusts that may accept it.
func unverifiedIssuer(token string) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", errCISignIn("not a JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", errCISignIn("the claims are not base64url")
	}
	var c struct {
		Issuer string `json:"iss"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return "", errCISignIn("the claims are not JSON")
	}
	if c.Issuer == "" {
		return "", errCISignIn("the token names no issuer (iss)")
	}
	return c.Issuer, nil
}

// signInCI verifies an ID token and returns the CI principal of the first
// trust (oldest first) of its issuer that accepts it. Refusals wrap
// oci.ErrUnauthorized and name the failed check; an issuer whose keys
// cannot be fetched gives an error wrapping oci.ErrUnavailable.
func (s *Service) signInCI(ctx context.Context, token string) (Principal, error) {
	iss, err := unverifiedIssuer(token)
	if err != nil {
		return Principal{}, err
	}
	var trusts []store.CITrust
	if s.opts.CITrusts != nil {
		trusts, err = s.opts.CITrusts.CITrustsByIssuer(ctx, iss)
	}
	if err != nil {
		return Principal{}, fmt.Errorf("sign in with an ID token: %w", err)
	}
	if len(trusts) == 0 {
		return Principal{}, errCISignIn("no ci-trust for issuer %s", clip(iss))
	}
	claims, err := s.ci.verify(ctx, iss, token)
	if err != nil {
		return Principal{}, err
	}
	now := s.opts.Now()
	if err := checkTimes(claims, now); err != nil {
		return Principal{}, err
	}
	sub, _ := claims["sub"].(string)
	if sub == "" {
		return Principal{}, errCISignIn("the token names no subject (sub)")
	}
	exp := time.Unix(int64(claimNumber(claims["exp"])), 0)
	var refusals []string
	for _, t := range trusts {
		id, why, err := s.matchTrust(ctx, t, claims)
		if err != nil {
			return Principal{}, err
		}
		if why != "" {
			refusals = append(refusals, fmt.Sprintf("ci-trust %s: %s", t.Name, why))
			continue
		}
		id.Subject = sub
		id.NotAfter = exp
		if t.MaxLifetime > 0 && now.Add(t.MaxLifetime).Before(exp) {
			id.NotAfter = now.Add(t.MaxLifetime)
		}
		return Principal{CI: &id}, nil
	}
	return Principal{}, errCISignIn("%s", strings.Join(refusals, "; "))
}

// principalOfCIClaims loads the CI principal a registry token names, with
// its trust as it is now: a deleted trust, or a fixed group it no longer
// names, gives an error wrapping oci.ErrUnauthorized. The sign-in ends
// when the token does.
func (s *Service) principalOfCIClaims(ctx context.Context, c Claims) (Principal, error) {
	gone := fmt.Errorf("%w: the ci-trust this token was issued under was removed or changed; sign in with a new ID token", oci.ErrUnauthorized)
	if s.opts.CITrusts == nil {
		return Principal{}, gone
	}
	t, err := s.opts.CITrusts.CITrustByID(ctx, c.CITrust)
	if errors.Is(err, store.ErrNotFound) {
		return Principal{}, gone
	}
	if err != nil {
		return Principal{}, fmt.Errorf("load ci-trust %d: %w", c.CITrust, err)
	}
	sub, ok := strings.CutPrefix(c.Subject, subjectCI+t.Name+":")
	if !ok || (t.GroupID != 0 && t.GroupID != c.CIGroup) || c.CIGroup == 0 || c.ExpiresAt == nil {
		return Principal{}, gone
	}
	return Principal{CI: &CIIdentity{Trust: t, Subject: sub, GroupID: c.CIGroup, NotAfter: c.ExpiresAt.Time}}, nil
}

// matchTrust checks the audience, the claim rules and the target group of
// a verified token against t. A refusal is a non-empty reason.
func (s *Service) matchTrust(ctx context.Context, t store.CITrust, claims map[string]any) (CIIdentity, string, error) {
	if !slices.Contains(claimStrings(claims["aud"]), t.Audience) {
		return CIIdentity{}, fmt.Sprintf("audience (aud) is not %q", t.Audience), nil
	}
	for _, r := range t.Claims {
		v, ok := claimString(claims[r.Key])
		if !ok {
			return CIIdentity{}, fmt.Sprintf("claim %s is missing, want %q", r.Key, r.Glob), nil
		}
		if !MatchGlob(r.Glob, v) {
			return CIIdentity{}, fmt.Sprintf("claim %s is %q, which does not match %q", r.Key, clip(v), r.Glob), nil
		}
	}
	id := CIIdentity{Trust: t, GroupID: t.GroupID}
	if t.GroupClaim != "" {
		path, ok := claimString(claims[t.GroupClaim])
		if !ok || path == "" {
			return CIIdentity{}, fmt.Sprintf("group claim %s is missing", t.GroupClaim), nil
		}
		g, err := s.accounts.GroupByPath(ctx, path)
		if errors.Is(err, store.ErrNotFound) {
			return CIIdentity{}, fmt.Sprintf("group claim %s names group %s, which does not exist", t.GroupClaim, clip(path)), nil
		}
		if err != nil {
			return CIIdentity{}, "", fmt.Errorf("sign in with an ID token: %w", err)
		}
		id.GroupID = g.ID
	}
	return id, "", nil
}

// checkTimes checks exp (required), nbf and iat with CILeeway.
func checkTimes(claims map[string]any, now time.Time) error {
	at := func(k string) (time.Time, bool) {
		v, ok := claims[k]
		if !ok {
			return time.Time{}, false
		}
		return time.Unix(int64(claimNumber(v)), 0), true
	}
	exp, ok := at("exp")
	if !ok {
		return errCISignIn("the token has no expiry (exp)")
	}
	if !now.Before(exp.Add(CILeeway)) {
		return errCISignIn("expired at %s (exp)", exp.UTC().Format(time.RFC3339))
	}
	if nbf, ok := at("nbf"); ok && now.Add(CILeeway).Before(nbf) {
		return errCISignIn("not valid before %s (nbf)", nbf.UTC().Format(time.RFC3339))
	}
	if iat, ok := at("iat"); ok && now.Add(CILeeway).Before(iat) {
		return errCISignIn("issued in the future, at %s (iat)", iat.UTC().Format(time.RFC3339))
	}
	return nil
}

func claimNumber(v any) float64 {
	switch n := v.(type) {
	case float64:
		return n
	case json.Number:
		f, _ := n.Float64()
		return f
	}
	return 0
}

// claimString is a claim as a claim rule compares it: a string as it is,
// a boolean as "true" or "false", a number in its shortest form.
func claimString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case bool:
		return strconv.FormatBool(x), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	}
	return "", false
}

func claimStrings(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// MatchGlob reports whether s matches pattern, where * stands for any run
// of characters (slashes too) and every other character for itself.
func MatchGlob(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return s == pattern
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return strings.HasSuffix(s, last)
}

// ciVerifier verifies ID tokens against their issuers' published keys: it
// finds the key set through OIDC discovery and keeps it, fetching it again
// for an unknown key id at most every ciRefetchInterval. Fetches go through
// client (the address policy's dialer) and are bounded by timeout.
type ciVerifier struct {
	client  *http.Client
	timeout time.Duration
	now     func() time.Time

	mu      sync.Mutex
	issuers map[string]*issuerKeys
}

func newCIVerifier(client *http.Client, timeout time.Duration, now func() time.Time) *ciVerifier {
	if client == nil {
		client = http.DefaultClient
	}
	if timeout <= 0 {
		timeout = DefaultCIFetchTimeout
	}
	return &ciVerifier{client: client, timeout: timeout, now: now, issuers: map[string]*issuerKeys{}}
}

// maxCIIssuers bounds the remembered issuers; trusts name few.
const maxCIIssuers = 1000

// verify checks token's signature and issuer and returns its claims.
func (v *ciVerifier) verify(ctx context.Context, issuer, token string) (map[string]any, error) {
	v.mu.Lock()
	k, ok := v.issuers[issuer]
	if !ok {
		if len(v.issuers) >= maxCIIssuers {
			clear(v.issuers)
		}
		k = &issuerKeys{issuer: issuer, v: v}
		v.issuers[issuer] = k
	}
	v.mu.Unlock()

	rec := &recordingKeySet{keys: k}
	ver := oidc.NewVerifier(issuer, rec, &oidc.Config{
		SkipClientIDCheck: true, SkipExpiryCheck: true, // checked by the caller, with leeway and clear messages
		SupportedSigningAlgs: ciAlgorithms,
	})
	idt, err := ver.Verify(ctx, token)
	if err != nil {
		if rec.err != nil {
			return nil, rec.err
		}
		return nil, errCISignIn("%s", strings.TrimPrefix(err.Error(), "oidc: "))
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return nil, errCISignIn("decode claims: %v", err)
	}
	return claims, nil
}

// issuerUnavailableError is a failure to fetch an issuer's discovery
// document or keys when none are known. It wraps oci.ErrUnavailable.
type issuerUnavailableError struct {
	issuer string
	err    error
}

func (e *issuerUnavailableError) Error() string {
	return fmt.Sprintf("%s: cannot fetch the signing keys of ID token issuer %s: %v", oci.ErrUnavailable, e.issuer, e.err)
}

func (e *issuerUnavailableError) Unwrap() error { return oci.ErrUnavailable }

// recordingKeySet keeps the error of one verification, which go-oidc
// passes on only as text.
type recordingKeySet struct {
	keys *issuerKeys
	err  error
}

func (r *recordingKeySet) VerifySignature(ctx context.Context, token string) ([]byte, error) {
	payload, err := r.keys.VerifySignature(ctx, token)
	r.err = err
	return payload, err
}

// issuerKeys is one issuer's key set, as last fetched. It implements
// oidc.KeySet. Fetches run without the lock, one at a time: a sign-in
// whose key is known never waits for one.
type issuerKeys struct {
	issuer string
	v      *ciVerifier

	mu        sync.Mutex
	jwksURL   string
	keys      []jose.JSONWebKey
	fetchedAt time.Time     // of the last fetch attempt; zero before the first
	fetchErr  error         // of the last fetch attempt
	inflight  chan struct{} // non-nil while a fetch runs; closed when it ends
}

// VerifySignature checks the signature of a JWT with the issuer's key of
// its kid, fetching the key set when it has none or lacks that kid and the
// last fetch is more than ciRefetchInterval ago.
func (k *issuerKeys) VerifySignature(ctx context.Context, token string) ([]byte, error) {
	algs := make([]jose.SignatureAlgorithm, len(ciAlgorithms))
	for i, a := range ciAlgorithms {
		algs[i] = jose.SignatureAlgorithm(a)
	}
	jws, err := jose.ParseSigned(token, algs)
	if err != nil {
		return nil, errCISignIn("malformed or unsupported signature: %v", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errCISignIn("want exactly one signature")
	}
	kid := jws.Signatures[0].Header.KeyID
	key, err := k.key(ctx, kid)
	if err != nil {
		return nil, err
	}
	payload, err := jws.Verify(key)
	if err != nil {
		return nil, errCISignIn("bad signature (key %q of issuer %s)", clip(kid), k.issuer)
	}
	return payload, nil
}

// key returns the issuer's key kid, fetching the key set as
// VerifySignature says; it waits for a fetch another sign-in started.
func (k *issuerKeys) key(ctx context.Context, kid string) (*jose.JSONWebKey, error) {
	for {
		k.mu.Lock()
		if key, ok := k.find(kid); ok {
			k.mu.Unlock()
			return key, nil
		}
		if ch := k.inflight; ch != nil {
			k.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return nil, &issuerUnavailableError{issuer: k.issuer, err: ctx.Err()}
			}
		}
		if !k.fetchedAt.IsZero() && k.v.now().Sub(k.fetchedAt) < ciRefetchInterval {
			keys, ferr := len(k.keys), k.fetchErr
			k.mu.Unlock()
			if keys == 0 && ferr != nil {
				return nil, &issuerUnavailableError{issuer: k.issuer, err: ferr}
			}
			return nil, errCISignIn("signature: issuer %s has no signing key %q", k.issuer, clip(kid))
		}
		ch := make(chan struct{})
		k.inflight, k.fetchedAt = ch, k.v.now()
		jwksURL := k.jwksURL
		k.mu.Unlock()

		jwksURL, keys, err := k.fetch(ctx, jwksURL)
		k.mu.Lock()
		k.fetchErr = err
		if err == nil {
			k.jwksURL, k.keys = jwksURL, keys
		}
		k.inflight = nil
		close(ch)
		k.mu.Unlock()
	}
}

// find returns the signing key kid. Callers hold k.mu.
func (k *issuerKeys) find(kid string) (*jose.JSONWebKey, bool) {
	for i := range k.keys {
		if k.keys[i].KeyID == kid && k.keys[i].Use != "enc" {
			return &k.keys[i], true
		}
	}
	return nil, false
}

// fetch reads the discovery document (when jwksURL is not known yet) and
// the key set, within the verifier's timeout.
func (k *issuerKeys) fetch(ctx context.Context, jwksURL string) (string, []jose.JSONWebKey, error) {
	ctx, cancel := context.WithTimeout(ctx, k.v.timeout)
	defer cancel()
	if jwksURL == "" {
		var doc struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		if err := k.getJSON(ctx, strings.TrimSuffix(k.issuer, "/")+"/.well-known/openid-configuration", &doc); err != nil {
			return "", nil, err
		}
		if doc.Issuer != k.issuer {
			return "", nil, fmt.Errorf("the discovery document names issuer %q, not %q", clip(doc.Issuer), k.issuer)
		}
		if doc.JWKSURI == "" {
			return "", nil, errors.New("the discovery document names no jwks_uri")
		}
		jwksURL = doc.JWKSURI
	}
	var set jose.JSONWebKeySet
	if err := k.getJSON(ctx, jwksURL, &set); err != nil {
		return "", nil, err
	}
	return jwksURL, set.Keys, nil
}

func (k *issuerKeys) getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	req.Header.Set("Accept", "application/json")
	res, err := k.v.client.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, res.Status)
	}
	if err := json.NewDecoder(io.LimitReader(res.Body, maxCIDocument)).Decode(v); err != nil {
		return fmt.Errorf("GET %s: decode: %w", url, err)
	}
	return nil
}
