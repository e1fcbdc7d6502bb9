package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strings"

	"github.com/dproxy/dproxy/internal/store"
)

// Token secret prefixes, one per kind, so a leaked secret is recognisable
// (by people and by secret scanners) and says what it grants.
const (
	PrefixPersonal = "dpxp_"
	PrefixGroup    = "dpxg_"
	PrefixDeploy   = "dpxd_"
	prefixUnknown  = "dpx_"
)

// secretBytes is the entropy of a token secret.
const secretBytes = 32

// NewTokenSecret returns a new random secret for a token of kind (its
// prefix, then 32 random bytes in unpadded base64url) and the hash to store.
// The secret is shown to its owner once and never stored. An unknown kind
// gets the neutral prefix "dpx_".
func NewTokenSecret(kind store.TokenKind) (secret string, hash []byte) {
	b := make([]byte, secretBytes)
	_, _ = rand.Read(b) // never fails: crypto/rand crashes the program instead
	secret = tokenPrefix(kind) + base64.RawURLEncoding.EncodeToString(b)
	return secret, HashToken(secret)
}

// HashToken returns the SHA-256 of a token secret: the only form a token is
// stored and looked up in. Secrets are long and random, so a fast hash is
// enough.
func HashToken(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

// TokenKindOf returns the kind a secret's prefix announces. It only reads
// the prefix; whether the secret is valid is for the store to say.
func TokenKindOf(secret string) (store.TokenKind, bool) {
	for _, k := range []store.TokenKind{store.TokenPersonal, store.TokenGroup, store.TokenDeploy} {
		if strings.HasPrefix(secret, tokenPrefix(k)) {
			return k, true
		}
	}
	return "", false
}

func tokenPrefix(kind store.TokenKind) string {
	switch kind {
	case store.TokenPersonal:
		return PrefixPersonal
	case store.TokenGroup:
		return PrefixGroup
	case store.TokenDeploy:
		return PrefixDeploy
	}
	return prefixUnknown
}

// LooksLikeToken reports whether secret has the form of a token secret (a
// known prefix), as opposed to a password.
func LooksLikeToken(secret string) bool {
	for _, p := range []string{PrefixPersonal, PrefixGroup, PrefixDeploy, prefixUnknown} {
		if strings.HasPrefix(secret, p) {
			return true
		}
	}
	return false
}
