package auth

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/dproxy/dproxy/internal/store"
)

func TestNewTokenSecret(t *testing.T) {
	t.Parallel()
	cases := []struct {
		kind   store.TokenKind
		prefix string
		known  bool
	}{
		{store.TokenPersonal, "dpxp_", true},
		{store.TokenGroup, "dpxg_", true},
		{store.TokenDeploy, "dpxd_", true},
		{store.TokenKind("bogus"), "dpx_", false},
	}
	for _, c := range cases {
		t.Run(string(c.kind), func(t *testing.T) {
			t.Parallel()
			secret, hash := NewTokenSecret(c.kind)
			body, ok := strings.CutPrefix(secret, c.prefix)
			if !ok {
				t.Fatalf("secret %q lacks prefix %q", secret, c.prefix)
			}
			raw, err := base64.RawURLEncoding.DecodeString(body)
			if err != nil || len(raw) != 32 {
				t.Errorf("secret body decodes to %d bytes (%v), want 32", len(raw), err)
			}
			sum := sha256.Sum256([]byte(secret))
			if !bytes.Equal(hash, sum[:]) || !bytes.Equal(HashToken(secret), sum[:]) {
				t.Errorf("hash is not the SHA-256 of the secret")
			}
			kind, ok := TokenKindOf(secret)
			if ok != c.known || (c.known && kind != c.kind) {
				t.Errorf("TokenKindOf = %q, %v; want %q, %v", kind, ok, c.kind, c.known)
			}
			again, hash2 := NewTokenSecret(c.kind)
			if again == secret || bytes.Equal(hash, hash2) {
				t.Errorf("two secrets are equal: %q", secret)
			}
		})
	}
}

func TestTokenKindOf(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "dpx", "password", "DPXP_abc", "xdpxp_abc"} {
		if k, ok := TokenKindOf(s); ok {
			t.Errorf("TokenKindOf(%q) = %q, want not a token", s, k)
		}
	}
}
