// Package testoidc is an OpenID Connect issuer for tests, as CI systems
// run one: an HTTP server on 127.0.0.1 with a discovery document and a
// JSON Web Key Set, signing ID tokens with an RS256 and an ES256 key that a
// test can rotate. It counts key set fetches and can be made to hang, so
// tests see caching and bounded timeouts.
//
// Only tests import it. It must not import any other dproxy package.
package testoidc

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Algorithms the issuer signs with.
const (
	RS256 = "RS256"
	ES256 = "ES256"
)

type key struct {
	id   string
	alg  string
	priv crypto.Signer
}

// Issuer is a running OIDC issuer. It is safe for concurrent use.
type Issuer struct {
	// URL is the issuer identifier (the iss claim) and the server's base.
	URL string

	mu          sync.Mutex
	generation  int
	current     map[string]key // by algorithm: the keys that sign
	published   []key          // the keys the JWKS lists
	jwksFetches int
	hang        chan struct{} // non-nil: requests wait on it
	srv         *httptest.Server
}

// New starts an issuer that lives until the test ends.
func New(t testing.TB) *Issuer {
	t.Helper()
	i := Start()
	t.Cleanup(i.Close)
	return i
}

// Start starts an issuer on 127.0.0.1 for a program that is not a test
// (the end-to-end suite's fixtures); the caller must Close it.
func Start() *Issuer {
	i := &Issuer{}
	i.srv = httptest.NewServer(http.HandlerFunc(i.serve))
	i.URL = i.srv.URL
	i.rotate()
	return i
}

// Close stops the issuer and releases hanging requests.
func (i *Issuer) Close() {
	i.Hang(false)
	i.srv.Close()
}

func (i *Issuer) serve(w http.ResponseWriter, r *http.Request) {
	i.mu.Lock()
	hang := i.hang
	i.mu.Unlock()
	if hang != nil {
		select {
		case <-hang:
		case <-r.Context().Done():
			return
		}
	}
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		writeJSON(w, map[string]any{
			"issuer": i.URL, "jwks_uri": i.URL + "/jwks",
			"id_token_signing_alg_values_supported": []string{RS256, ES256},
			"response_types_supported":              []string{"id_token"},
			"subject_types_supported":               []string{"public"},
		})
	case "/jwks":
		i.mu.Lock()
		i.jwksFetches++
		var set jose.JSONWebKeySet
		for _, k := range i.published {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.id, Algorithm: k.alg, Use: "sig"})
		}
		i.mu.Unlock()
		writeJSON(w, set)
	default:
		http.NotFound(w, r)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// Rotate replaces the signing keys with new ones; the key set then lists
// only the new keys.
func (i *Issuer) Rotate() { i.rotate() }

func (i *Issuer) rotate() {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.generation++
	n := strconv.Itoa(i.generation)
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	i.current = map[string]key{
		RS256: {id: "rsa-" + n, alg: RS256, priv: rk},
		ES256: {id: "ec-" + n, alg: ES256, priv: ek},
	}
	i.published = []key{i.current[RS256], i.current[ES256]}
}

// JWKSFetches is how many times the key set was fetched.
func (i *Issuer) JWKSFetches() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.jwksFetches
}

// Hang makes every request wait (until the client gives up) while on.
func (i *Issuer) Hang(on bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	switch {
	case on && i.hang == nil:
		i.hang = make(chan struct{})
	case !on && i.hang != nil:
		close(i.hang)
		i.hang = nil
	}
}

// Claims are the usual claims of a CI job's ID token: iss, sub, aud, and
// iat, nbf and exp around now, ttl apart. Tests add or change the rest.
func (i *Issuer) Claims(sub, aud string, now time.Time, ttl time.Duration) map[string]any {
	return map[string]any{
		"iss": i.URL, "sub": sub, "aud": aud,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(ttl).Unix(),
	}
}

// Token signs claims with the current key of alg (RS256 or ES256).
func (i *Issuer) Token(alg string, claims map[string]any) string {
	i.mu.Lock()
	k, ok := i.current[alg]
	i.mu.Unlock()
	if !ok {
		panic("testoidc: unknown algorithm " + alg)
	}
	return sign(k, claims)
}

// ForgedToken signs claims with a fresh key that the key set never lists,
// under kid (a published key id makes a bad signature, another one an
// unknown key).
func (i *Issuer) ForgedToken(kid string, claims map[string]any) string {
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return sign(key{id: kid, alg: ES256, priv: ek}, claims)
}

// KeyID is the id of the current key of alg.
func (i *Issuer) KeyID(alg string) string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.current[alg].id
}

func sign(k key, claims map[string]any) string {
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(k.alg), Key: k.priv},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", k.id))
	if err != nil {
		panic(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		panic(err)
	}
	jws, err := s.Sign(payload)
	if err != nil {
		panic(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		panic(err)
	}
	return out
}
