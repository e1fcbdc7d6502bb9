// Package secretbox encrypts secrets at rest (Docker Hub secrets, upstream
// passwords) with AES-256-GCM, and loads or creates the instance key.
//
// It owns the sealed format and the key file format. It uses the standard
// library and package keyfile only.
//
// Sealed format: one key-id byte (currently 1), then the 12-byte random
// nonce, then the ciphertext and the 16-byte GCM tag. The key id leaves room
// for key rotation. Callers pass additional data naming where the value lives
// ("table:row id:column") so a ciphertext copied to another row fails to open.
//
// Key file format: 64 hexadecimal characters (32 bytes), optionally followed
// by a newline, readable by its owner only (mode 0600 or stricter).
package secretbox

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"

	"github.com/dproxy/dproxy/internal/keyfile"
)

// KeySize is the length of a key in bytes (AES-256).
const KeySize = 32

// keyID is the first byte of every sealed value made with the current key.
const keyID byte = 1

// Box seals and opens secrets with one key. It is safe for concurrent use.
type Box struct {
	aead cipher.AEAD
	mac  []byte // HMAC key for Derive, itself derived from the key
}

// New returns a Box for a 32-byte key.
func New(key []byte) (*Box, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("secret key must be %d bytes, got %d", KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("create aes cipher: %w", err)
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("create gcm: %w", err)
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte("dproxy derive v1"))
	return &Box{aead: aead, mac: m.Sum(nil)}, nil
}

// Derive returns a 32-byte key for purpose, derived from the box's key
// (HMAC-SHA256): every holder of the same key derives the same one, and
// neither the box's key nor another purpose's key can be computed from it.
func (b *Box) Derive(purpose string) []byte {
	m := hmac.New(sha256.New, b.mac)
	m.Write([]byte(purpose))
	return m.Sum(nil)
}

// Seal encrypts plaintext, binding it to additionalData.
func (b *Box) Seal(plaintext []byte, additionalData string) ([]byte, error) {
	out := make([]byte, 1, 1+b.aead.Overhead()+len(plaintext))
	out[0] = keyID
	return b.aead.Seal(out, nil, plaintext, []byte(additionalData)), nil
}

// Open decrypts a value made by Seal with the same key and additional data.
// A wrong key, wrong additional data or any tampering is an error.
func (b *Box) Open(sealed []byte, additionalData string) ([]byte, error) {
	if len(sealed) < 1+b.aead.Overhead() {
		return nil, fmt.Errorf("open sealed value: %d bytes is too short", len(sealed))
	}
	if sealed[0] != keyID {
		return nil, fmt.Errorf("open sealed value: unknown key id %d", sealed[0])
	}
	pt, err := b.aead.Open(nil, nil, sealed[1:], []byte(additionalData))
	if err != nil {
		return nil, fmt.Errorf("open sealed value for %q: wrong key, wrong context or tampered data", additionalData)
	}
	return pt, nil
}

// ParseKey decodes a key given as 64 hexadecimal characters (as in
// DPROXY_SECRET_KEY). Surrounding white space is ignored.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if len(s) != 2*KeySize {
		return nil, fmt.Errorf("secret key must be %d hex characters, got %d", 2*KeySize, len(s))
	}
	key, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("secret key must be %d hex characters: %w", 2*KeySize, err)
	}
	return key, nil
}

// LoadOrCreateKey reads the key file at path, or creates it with a new
// random key when it does not exist, as package keyfile describes. A file
// that does not hold exactly 64 hex characters is refused.
func LoadOrCreateKey(path string) ([]byte, error) {
	const what = "secret key file"
	if _, err := os.Lstat(NextKeyPath(path)); err == nil {
		return nil, fmt.Errorf("%s %s: a rotation of the secret key was interrupted (%s exists): run `dproxy keys rotate-secret` again to finish it",
			what, path, NextKeyPath(path))
	}
	// Read a little more than a key so a longer file is noticed.
	data, err := keyfile.LoadOrCreate(path, what, 2*KeySize+3, newKeyHex)
	if err != nil {
		return nil, err
	}
	key, err := ParseKey(strings.TrimRight(string(data), "\r\n"))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, path, err)
	}
	return key, nil
}

// NextKeyPath is where a key rotation keeps the new key next to the key
// file at path until every sealed value is sealed with it.
func NextKeyPath(path string) string { return path + ".next" }

// LoadOrCreateNextKey reads the pending new key of a rotation next to the
// key file at path, creating it when there is none.
func LoadOrCreateNextKey(path string) ([]byte, error) {
	const what = "new secret key file"
	next := NextKeyPath(path)
	data, err := keyfile.LoadOrCreate(next, what, 2*KeySize+3, newKeyHex)
	if err != nil {
		return nil, err
	}
	key, err := ParseKey(strings.TrimRight(string(data), "\r\n"))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, next, err)
	}
	return key, nil
}

// ReadKey reads the key file at path without creating it.
func ReadKey(path string) ([]byte, error) {
	data, err := keyfile.Read(path, "secret key file", 2*KeySize+3)
	if err != nil {
		return nil, err
	}
	key, err := ParseKey(strings.TrimRight(string(data), "\r\n"))
	if err != nil {
		return nil, fmt.Errorf("secret key file %s: %w", path, err)
	}
	return key, nil
}

func newKeyHex() ([]byte, error) {
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	return []byte(hex.EncodeToString(key) + "\n"), nil
}
