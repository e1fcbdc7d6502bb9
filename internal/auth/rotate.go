package auth

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"time"

	"github.com/dproxy/dproxy/internal/keyfile"
)

// PreviousKey is a retired signing key whose tokens still verify until
// Until: the end of the longest lifetime of a token it signed.
type PreviousKey struct {
	Key   *ecdsa.PublicKey
	Until time.Time
}

// retiredUntilHeader is the PEM header of a retired key's block.
const retiredUntilHeader = "Valid-Until"

// LoadPreviousKeys reads the retired signing keys kept at path (PEM
// "PUBLIC KEY" blocks with a Valid-Until header, as RotateSigningKey
// writes them), leaving out those past their time. A missing file is no
// keys.
func LoadPreviousKeys(path string, now time.Time) ([]PreviousKey, error) {
	data, err := keyfile.Read(path, "retired JWT keys file", 1<<20)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []PreviousKey
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		until, err := time.Parse(time.RFC3339, block.Headers[retiredUntilHeader])
		if block.Type != "PUBLIC KEY" || err != nil {
			return nil, fmt.Errorf("retired JWT keys file %s: want PUBLIC KEY blocks with a %s header", path, retiredUntilHeader)
		}
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		ec, ok := k.(*ecdsa.PublicKey)
		if err != nil || !ok {
			return nil, fmt.Errorf("retired JWT keys file %s: a block is not an ECDSA public key", path)
		}
		if now.Before(until) {
			out = append(out, PreviousKey{Key: ec, Until: until})
		}
	}
	return out, nil
}

// RotateSigningKey replaces the signing key at path with a new one, and
// keeps the old public key at previousPath until now+keep, so the tokens
// it signed stay valid until they expire. keep must be at least the
// longest lifetime of a token (the refresh tokens', DefaultRefreshTTL, plus
// the leeway). Retired keys past their time are dropped. The retired keys
// are written first: a crash in between leaves the old key in use, also
// listed as retired, which is harmless, and a run again rotates it.
func RotateSigningKey(path, previousPath string, keep time.Duration, now time.Time) error {
	const what = "JWT signing key"
	data, err := keyfile.Read(path, what, maxKeyFile)
	if err != nil {
		return err
	}
	old, err := parseSigningKey(data)
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, path, err)
	}
	prev, err := LoadPreviousKeys(previousPath, now)
	if err != nil {
		return err
	}
	prev = append(prev, PreviousKey{Key: &old.PublicKey, Until: now.Add(keep).UTC().Truncate(time.Second)})
	if err := keyfile.WriteAtomic(previousPath, 0o600, func(w io.Writer) error {
		for _, p := range prev {
			der, err := x509.MarshalPKIXPublicKey(p.Key)
			if err != nil {
				return err
			}
			if err := pem.Encode(w, &pem.Block{Type: "PUBLIC KEY", Headers: map[string]string{retiredUntilHeader: p.Until.Format(time.RFC3339)}, Bytes: der}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("keep the retired JWT key: %w", err)
	}
	fresh, err := newSigningKeyPEM()
	if err != nil {
		return err
	}
	if err := keyfile.WriteAtomic(path, 0o600, func(w io.Writer) error {
		_, err := w.Write(fresh)
		return err
	}); err != nil {
		return fmt.Errorf("write the new %s: %w", what, err)
	}
	return nil
}
