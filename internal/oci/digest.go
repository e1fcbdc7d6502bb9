package oci

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"strings"
)

// Digest is a validated content digest, "sha256:<64 lower-case hex>".
// Only sha256 is accepted: it is what every registry dproxy talks to uses,
// and it keeps blob paths predictable.
type Digest string

// ParseDigest validates s and returns it as a Digest.
func ParseDigest(s string) (Digest, error) {
	alg, hexPart, ok := strings.Cut(s, ":")
	if !ok {
		return "", fmt.Errorf("%w: %q is not of the form sha256:<hex>", ErrDigestInvalid, clip(s))
	}
	if alg != "sha256" {
		return "", fmt.Errorf("%w: %q uses algorithm %q, only sha256 is supported", ErrDigestInvalid, clip(s), clip(alg))
	}
	if len(hexPart) != 64 {
		return "", fmt.Errorf("%w: %q must have 64 hex characters after the sha256: prefix, has %d", ErrDigestInvalid, clip(s), len(hexPart))
	}
	for _, c := range hexPart {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", fmt.Errorf("%w: %q must be lower-case hex (0-9, a-f) after the sha256: prefix", ErrDigestInvalid, clip(s))
		}
	}
	return Digest(s), nil
}

// FromBytes returns the sha256 digest of b.
func FromBytes(b []byte) Digest {
	sum := sha256.Sum256(b)
	return Digest("sha256:" + hex.EncodeToString(sum[:]))
}

// Hex returns the hex part of the digest.
func (d Digest) Hex() string {
	_, h, _ := strings.Cut(string(d), ":")
	return h
}

// String returns the digest as text.
func (d Digest) String() string { return string(d) }

// Short returns the first 12 hex characters, for logs and tables.
func (d Digest) Short() string {
	h := d.Hex()
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// Verifier hashes written bytes and reports whether they match a digest.
type Verifier struct {
	want Digest
	h    hash.Hash
}

// NewVerifier returns a Verifier for d.
func NewVerifier(d Digest) *Verifier { return &Verifier{want: d, h: sha256.New()} }

// Write adds p to the hash; it never fails.
func (v *Verifier) Write(p []byte) (int, error) { return v.h.Write(p) }

// Verified reports whether the bytes written so far have the wanted digest.
func (v *Verifier) Verified() bool {
	return "sha256:"+hex.EncodeToString(v.h.Sum(nil)) == string(v.want)
}

// Sum returns the digest of the bytes written so far.
func (v *Verifier) Sum() Digest { return Digest("sha256:" + hex.EncodeToString(v.h.Sum(nil))) }

// clip shortens untrusted input quoted in error messages.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
