package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/store"
)

var t0 = time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)

func fixedClock(at time.Time) func() time.Time { return func() time.Time { return at } }

func newTestKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := LoadOrCreateSigningKey(filepath.Join(t.TempDir(), "jwt.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// signRaw signs arbitrary claims with key and kid, to build tokens Mint
// would never make.
func signRaw(t *testing.T, method jwt.SigningMethod, key any, kid string, claims jwt.Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func validClaims(kind string) Claims {
	return Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: TokenIssuer, Subject: "user:1", Audience: jwt.ClaimStrings{TokenAudience},
			IssuedAt: jwt.NewNumericDate(t0), NotBefore: jwt.NewNumericDate(t0),
			ExpiresAt: jwt.NewNumericDate(t0.Add(time.Minute)),
		},
		Kind: kind,
	}
}

// decodePart decodes the header (0) or payload (1) of a JWT.
func decodePart(t *testing.T, tok string, i int) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestMintAndVerify(t *testing.T) {
	t.Parallel()
	key := newTestKey(t)
	iss := NewIssuer(key, IssuerOptions{Now: fixedClock(t0.Add(300 * time.Millisecond))})
	p := Principal{User: &store.User{ID: 42, Username: "alice"}}
	access := []Access{{Type: "repository", Name: "a/dependency_proxy/containers/alpine", Actions: []string{"pull"}}}

	tok, iat, exp, err := iss.Mint(p, access)
	if err != nil {
		t.Fatal(err)
	}
	if !iat.Equal(t0) || exp.Sub(iat) != DefaultTokenTTL {
		t.Errorf("issued %v expires %v, want %v and 15 minutes later", iat, exp, t0)
	}
	hdr := decodePart(t, tok, 0)
	kid, _ := KeyID(key)
	if hdr["alg"] != "ES256" || hdr["kid"] != kid || kid == "" {
		t.Errorf("header %v, want alg ES256 and kid %q", hdr, kid)
	}
	c, err := iss.Verify(tok)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if c.Subject != "user:42" || c.Issuer != "dproxy" || !reflect.DeepEqual([]string(c.Audience), []string{"dependency_proxy"}) ||
		c.Kind != KindAccess || !reflect.DeepEqual(c.Access, access) || c.ID == "" {
		t.Errorf("claims %+v", c)
	}
	if !c.IssuedAt.Equal(iat) || !c.ExpiresAt.Equal(exp) {
		t.Errorf("claims iat %v exp %v, Mint said %v %v", c.IssuedAt, c.ExpiresAt, iat, exp)
	}
	if tok2, _, _, _ := iss.Mint(p, access); tok2 == tok {
		t.Errorf("two tokens minted at once are identical (no jti)")
	}

	ref, err := iss.MintRefresh(p)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := iss.VerifyRefresh(ref)
	if err != nil {
		t.Fatalf("VerifyRefresh: %v", err)
	}
	if rc.Kind != KindRefresh || rc.Subject != "user:42" || len(rc.Access) != 0 ||
		rc.ExpiresAt.Sub(rc.IssuedAt.Time) != DefaultRefreshTTL {
		t.Errorf("refresh claims %+v", rc)
	}

	if _, _, _, err := iss.Mint(Principal{}, nil); err == nil {
		t.Errorf("minted a token for nobody")
	}
	if _, err := iss.MintRefresh(Principal{}); err == nil {
		t.Errorf("minted a refresh token for nobody")
	}
}

func TestIssuerOptions(t *testing.T) {
	t.Parallel()
	iss := NewIssuer(newTestKey(t), IssuerOptions{TTL: 5 * time.Minute, RefreshTTL: time.Hour, Now: fixedClock(t0)})
	p := Principal{Token: &store.Token{ID: 9, Kind: store.TokenGroup}}
	_, iat, exp, err := iss.Mint(p, nil)
	if err != nil || exp.Sub(iat) != 5*time.Minute {
		t.Errorf("access lifetime %v (%v), want 5m", exp.Sub(iat), err)
	}
	ref, _ := iss.MintRefresh(p)
	c, err := iss.VerifyRefresh(ref)
	if err != nil || c.ExpiresAt.Sub(c.IssuedAt.Time) != time.Hour || c.Subject != "token:9" {
		t.Errorf("refresh claims %+v (%v), want 1h for token:9", c, err)
	}
}

func TestVerifyRejects(t *testing.T) {
	t.Parallel()
	key := newTestKey(t)
	kid, _ := KeyID(key)
	other := newTestKey(t)
	iss := NewIssuer(key, IssuerOptions{Now: fixedClock(t0)})
	p := Principal{User: &store.User{ID: 1, Username: "alice"}}
	good, _, _, err := iss.Mint(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	refresh, _ := iss.MintRefresh(p)
	pubDER, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)

	with := func(f func(c *Claims)) Claims { c := validClaims(KindAccess); f(&c); return c }
	parts := strings.Split(good, ".")
	flip := func(s string) string { // change one character in the middle
		b := []byte(s)
		if b[len(b)/2] == 'A' {
			b[len(b)/2] = 'B'
		} else {
			b[len(b)/2] = 'A'
		}
		return string(b)
	}
	otherPayload := base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"dproxy","sub":"user:2","aud":["dependency_proxy"],"exp":` +
		jsonTime(t0.Add(time.Hour)) + `,"iat":` + jsonTime(t0) + `,"kind":"access"}`))

	cases := []struct {
		name, token string
		is          error // besides oci.ErrUnauthorized, if set
	}{
		{"empty", "", nil},
		{"garbage", "not.a.jwt", nil},
		{"tampered signature", parts[0] + "." + parts[1] + "." + flip(parts[2]), nil},
		{"tampered payload", parts[0] + "." + otherPayload + "." + parts[2], jwt.ErrTokenSignatureInvalid},
		{"alg none", signRaw(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, kid, validClaims(KindAccess)), jwt.ErrTokenSignatureInvalid},
		{"HS256 keyed with the public key", signRaw(t, jwt.SigningMethodHS256, pubDER, kid, validClaims(KindAccess)), jwt.ErrTokenSignatureInvalid},
		{"another key", signRaw(t, jwt.SigningMethodES256, other, "", validClaims(KindAccess)), nil},
		{"another key claiming our kid", signRaw(t, jwt.SigningMethodES256, other, kid, validClaims(KindAccess)), jwt.ErrTokenSignatureInvalid},
		{"ES384", signRaw(t, jwt.SigningMethodES384, mustP384(t), kid, validClaims(KindAccess)), jwt.ErrTokenSignatureInvalid},
		{"wrong audience", signRaw(t, jwt.SigningMethodES256, key, kid, with(func(c *Claims) { c.Audience = jwt.ClaimStrings{"registry.docker.io"} })), jwt.ErrTokenInvalidAudience},
		{"no audience", signRaw(t, jwt.SigningMethodES256, key, kid, with(func(c *Claims) { c.Audience = nil })), jwt.ErrTokenRequiredClaimMissing},
		{"wrong issuer", signRaw(t, jwt.SigningMethodES256, key, kid, with(func(c *Claims) { c.Issuer = "gitlab" })), jwt.ErrTokenInvalidIssuer},
		{"no expiry", signRaw(t, jwt.SigningMethodES256, key, kid, with(func(c *Claims) { c.ExpiresAt = nil })), jwt.ErrTokenRequiredClaimMissing},
		{"expired", signRaw(t, jwt.SigningMethodES256, key, kid, with(func(c *Claims) { c.ExpiresAt = jwt.NewNumericDate(t0.Add(-time.Minute)) })), jwt.ErrTokenExpired},
		{"not yet valid", signRaw(t, jwt.SigningMethodES256, key, kid, with(func(c *Claims) { c.NotBefore = jwt.NewNumericDate(t0.Add(time.Minute)) })), jwt.ErrTokenNotValidYet},
		{"issued in the future", signRaw(t, jwt.SigningMethodES256, key, kid, with(func(c *Claims) { c.IssuedAt = jwt.NewNumericDate(t0.Add(time.Minute)) })), jwt.ErrTokenUsedBeforeIssued},
		{"no subject", signRaw(t, jwt.SigningMethodES256, key, kid, with(func(c *Claims) { c.Subject = "" })), nil},
		{"no kind", signRaw(t, jwt.SigningMethodES256, key, kid, with(func(c *Claims) { c.Kind = "" })), nil},
		{"refresh token used as access token", refresh, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := iss.Verify(c.token)
			if !errors.Is(err, oci.ErrUnauthorized) {
				t.Fatalf("Verify: err %v, want oci.ErrUnauthorized", err)
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("Verify: err %v, want it to wrap %v", err, c.is)
			}
		})
	}
	t.Run("the untampered token passes", func(t *testing.T) {
		t.Parallel()
		if _, err := iss.Verify(good); err != nil {
			t.Errorf("Verify: %v", err)
		}
		if _, err := iss.Verify(signRaw(t, jwt.SigningMethodES256, key, kid, validClaims(KindAccess))); err != nil {
			t.Errorf("Verify of a hand-made valid token: %v", err)
		}
	})
	t.Run("access token used as refresh token", func(t *testing.T) {
		t.Parallel()
		if _, err := iss.VerifyRefresh(good); !errors.Is(err, oci.ErrUnauthorized) {
			t.Errorf("VerifyRefresh(access token): %v, want oci.ErrUnauthorized", err)
		}
	})
}

func TestVerifyExpiryAndLeeway(t *testing.T) {
	t.Parallel()
	key := newTestKey(t)
	minted := NewIssuer(key, IssuerOptions{Now: fixedClock(t0)})
	p := Principal{User: &store.User{ID: 1}}
	tok, _, exp, err := minted.Mint(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := minted.MintRefresh(p)
	cases := []struct {
		name   string
		now    time.Time
		verify func(*Issuer, string) (Claims, error)
		token  string
		ok     bool
	}{
		{"access, just before expiry", exp.Add(-time.Second), (*Issuer).Verify, tok, true},
		{"access, expired within the leeway", exp.Add(DefaultLeeway - time.Second), (*Issuer).Verify, tok, true},
		{"access, expired beyond the leeway", exp.Add(DefaultLeeway + time.Second), (*Issuer).Verify, tok, false},
		{"access, an hour later", t0.Add(time.Hour), (*Issuer).Verify, tok, false},
		{"access, verified by a clock behind by less than the leeway", t0.Add(-DefaultLeeway + time.Second), (*Issuer).Verify, tok, true},
		{"access, verified by a clock behind by more than the leeway", t0.Add(-DefaultLeeway - time.Second), (*Issuer).Verify, tok, false},
		{"refresh, after 29 days", t0.Add(29 * 24 * time.Hour), (*Issuer).VerifyRefresh, ref, true},
		{"refresh, after 31 days", t0.Add(31 * 24 * time.Hour), (*Issuer).VerifyRefresh, ref, false},
	}
	for _, c := range cases {
		iss := NewIssuer(key, IssuerOptions{Now: fixedClock(c.now)})
		_, err := c.verify(iss, c.token)
		if c.ok && err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
		if !c.ok && !errors.Is(err, oci.ErrUnauthorized) {
			t.Errorf("%s: err %v, want oci.ErrUnauthorized", c.name, err)
		}
	}
}

func jsonTime(t time.Time) string {
	b, _ := json.Marshal(t.Unix())
	return string(b)
}

func mustP384(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func writeKeyFile(t *testing.T, path string, b *pem.Block, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(b), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // WriteFile's mode is subject to the umask
		t.Fatal(err)
	}
}

func TestLoadOrCreateSigningKey(t *testing.T) {
	t.Parallel()
	t.Run("creates once, then loads the same key", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "sub", "dir", "jwt.pem")
		k1, err := LoadOrCreateSigningKey(path)
		if err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("key file mode %04o, want 0600", st.Mode().Perm())
		}
		data, _ := os.ReadFile(path)
		if b, _ := pem.Decode(data); b == nil || b.Type != "PRIVATE KEY" {
			t.Errorf("key file is not a PEM PRIVATE KEY: %q", data)
		}
		k2, err := LoadOrCreateSigningKey(path)
		if err != nil {
			t.Fatal(err)
		}
		if !k1.Equal(k2) || k1.Curve != elliptic.P256() {
			t.Errorf("second load returned another key (or not P-256)")
		}
		if leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".tmp-*")); len(leftovers) != 0 {
			t.Errorf("temporary files left behind: %v", leftovers)
		}
	})
	t.Run("concurrent first starts agree on one key", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "jwt.pem")
		keys := make([]*ecdsa.PrivateKey, 8)
		errs := make([]error, len(keys))
		var wg sync.WaitGroup
		for i := range keys {
			wg.Go(func() { keys[i], errs[i] = LoadOrCreateSigningKey(path) })
		}
		wg.Wait()
		for i := range keys {
			if errs[i] != nil {
				t.Fatalf("goroutine %d: %v", i, errs[i])
			}
			if !keys[i].Equal(keys[0]) {
				t.Errorf("goroutine %d got a different key", i)
			}
		}
	})
	t.Run("accepts a SEC 1 EC key", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "jwt.pem")
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		der, _ := x509.MarshalECPrivateKey(k)
		writeKeyFile(t, path, &pem.Block{Type: "EC PRIVATE KEY", Bytes: der}, 0o600)
		got, err := LoadOrCreateSigningKey(path)
		if err != nil || !got.Equal(k) {
			t.Errorf("LoadOrCreateSigningKey: %v (same key: %v)", err, err == nil && got.Equal(k))
		}
	})

	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p256DER, _ := x509.MarshalPKCS8PrivateKey(p256)
	p384DER, _ := x509.MarshalPKCS8PrivateKey(mustP384(t))
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 1024)
	rsaDER, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	refusals := []struct {
		name  string
		block *pem.Block
		mode  os.FileMode
		says  string
	}{
		{"group-readable", &pem.Block{Type: "PRIVATE KEY", Bytes: p256DER}, 0o640, "chmod 600"},
		{"world-readable", &pem.Block{Type: "PRIVATE KEY", Bytes: p256DER}, 0o604, "chmod 600"},
		{"P-384", &pem.Block{Type: "PRIVATE KEY", Bytes: p384DER}, 0o600, "P-256"},
		{"RSA", &pem.Block{Type: "PRIVATE KEY", Bytes: rsaDER}, 0o600, "ECDSA"},
		{"certificate", &pem.Block{Type: "CERTIFICATE", Bytes: []byte("x")}, 0o600, "CERTIFICATE"},
		{"corrupt DER", &pem.Block{Type: "PRIVATE KEY", Bytes: []byte("junk")}, 0o600, "PKCS #8"},
	}
	for _, c := range refusals {
		t.Run("refuses "+c.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "jwt.pem")
			writeKeyFile(t, path, c.block, c.mode)
			before, _ := os.ReadFile(path)
			_, err := LoadOrCreateSigningKey(path)
			if err == nil || !strings.Contains(err.Error(), c.says) || !strings.Contains(err.Error(), path) {
				t.Errorf("err %v, want one naming %s and saying %q", err, path, c.says)
			}
			if after, _ := os.ReadFile(path); string(after) != string(before) {
				t.Errorf("a refused key file was overwritten")
			}
		})
	}
	t.Run("refuses a non-PEM file and a directory", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		path := filepath.Join(dir, "jwt.pem")
		if err := os.WriteFile(path, []byte("hello"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadOrCreateSigningKey(path); err == nil || !strings.Contains(err.Error(), "no PEM block") {
			t.Errorf("non-PEM: %v", err)
		}
		sub := filepath.Join(dir, "d")
		if err := os.Mkdir(sub, 0o700); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadOrCreateSigningKey(sub); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("directory: %v", err)
		}
	})
}

// A token verified once is remembered, but never past its expiry, never
// as another kind, and a changed token is checked afresh.
func TestVerifyMemoKeepsExpiryAndKind(t *testing.T) {
	t.Parallel()
	key := newTestKey(t)
	var now atomic.Pointer[time.Time]
	start := t0
	now.Store(&start)
	iss := NewIssuer(key, IssuerOptions{Now: func() time.Time { return *now.Load() }})
	p := Principal{User: &store.User{ID: 1}}
	tok, _, exp, err := iss.Mint(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := iss.Verify(tok); err != nil {
		t.Fatalf("first verify: %v", err)
	}
	for _, c := range []struct {
		name   string
		at     time.Time
		verify func(*Issuer, string) (Claims, error)
		token  string
		ok     bool
	}{
		{"remembered, before expiry", exp.Add(-time.Second), (*Issuer).Verify, tok, true},
		{"remembered access token as a refresh token", exp.Add(-time.Second), (*Issuer).VerifyRefresh, tok, false},
		{"tampered signature", exp.Add(-time.Second), (*Issuer).Verify, tamper(tok), false},
		{"expired beyond the leeway", exp.Add(DefaultLeeway + time.Second), (*Issuer).Verify, tok, false},
	} {
		at := c.at
		now.Store(&at)
		_, err := c.verify(iss, c.token)
		if c.ok && err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
		if !c.ok && !errors.Is(err, oci.ErrUnauthorized) {
			t.Errorf("%s: err %v, want oci.ErrUnauthorized", c.name, err)
		}
	}
}

// tamper changes one character well inside a token's signature (the last
// ones may carry padding bits a decoder ignores).
func tamper(tok string) string {
	i := len(tok) - 10
	c := byte('A')
	if tok[i] == 'A' {
		c = 'B'
	}
	return tok[:i] + string(c) + tok[i+1:]
}
