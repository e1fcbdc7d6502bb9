package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/dproxy/dproxy/internal/keyfile"
)

// maxKeyFile bounds how much of a key file is read.
const maxKeyFile = 16 << 10

// LoadOrCreateSigningKey reads the JWT signing key (a P-256 ECDSA key in
// PEM, PKCS #8 "PRIVATE KEY" or SEC 1 "EC PRIVATE KEY") from path, or
// creates one when the file does not exist, as package keyfile describes.
// A file that holds anything but a P-256 key is refused.
func LoadOrCreateSigningKey(path string) (*ecdsa.PrivateKey, error) {
	const what = "JWT signing key"
	data, err := keyfile.LoadOrCreate(path, what, maxKeyFile, newSigningKeyPEM)
	if err != nil {
		return nil, err
	}
	key, err := parseSigningKey(data)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, path, err)
	}
	return key, nil
}

func newSigningKeyPEM() ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func parseSigningKey(data []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	var key *ecdsa.PrivateKey
	switch block.Type {
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse PKCS #8 key: %w", err)
		}
		ec, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("want an ECDSA P-256 key, got %T", k)
		}
		key = ec
	case "EC PRIVATE KEY":
		k, err := x509.ParseECPrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse EC key: %w", err)
		}
		key = k
	default:
		return nil, fmt.Errorf("unexpected PEM block %q; want PRIVATE KEY", block.Type)
	}
	if key.Curve != elliptic.P256() {
		return nil, fmt.Errorf("want a P-256 key for ES256, got %s", key.Curve.Params().Name)
	}
	return key, nil
}

// NewSigningKeyPEM generates a new JWT signing key (P-256, PKCS #8 PEM), for
// keys kept elsewhere than a file, such as a database replicas share.
func NewSigningKeyPEM() ([]byte, error) { return newSigningKeyPEM() }

// ParseSigningKey parses a JWT signing key in the forms
// LoadOrCreateSigningKey accepts.
func ParseSigningKey(data []byte) (*ecdsa.PrivateKey, error) { return parseSigningKey(data) }
