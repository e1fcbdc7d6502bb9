package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/dproxy/dproxy/internal/config"
	"github.com/dproxy/dproxy/internal/keyfile"
	"github.com/dproxy/dproxy/internal/secretbox"
	"github.com/dproxy/dproxy/internal/store"
)

// rotateStep is called after each durable step of RotateSecretKey; a test
// stands in a crash there by returning an error.
var rotateStep = func(string) error { return nil }

// RotateSecretKey replaces the secret key file of the SQLite data dir
// dataDir with a new key and re-seals every sealed value under it, with no
// server using the data dir (ErrDataDirInUse otherwise). It returns how
// many values it re-sealed.
//
// The new key is first written next to the old one (secret.key.next);
// then every value is re-sealed in one transaction; then the new key
// replaces the old file. A crash at any point leaves a state that a run
// again finishes: before the commit the old key opens everything, after
// it the new one does, and a server refuses to start while
// secret.key.next exists.
func RotateSecretKey(ctx context.Context, dataDir string) (int, error) {
	cfg := config.Config{DataDir: dataDir}
	if _, err := os.Stat(cfg.DBPath()); err != nil {
		return 0, fmt.Errorf("rotate the secret key of %s: no database there (%w); is --data-dir right?", dataDir, err)
	}
	lock, err := TryExclusive(dataDir)
	if err != nil && !errors.Is(err, errors.ErrUnsupported) {
		return 0, fmt.Errorf("rotate the secret key of %s: %w: stop it first", dataDir, err)
	}
	defer lock.Unlock()
	path := cfg.SecretKeyPath()
	old, err := secretbox.ReadKey(path)
	if err != nil {
		return 0, fmt.Errorf("rotate the secret key: %w", err)
	}
	next, err := secretbox.LoadOrCreateNextKey(path)
	if err != nil {
		return 0, fmt.Errorf("rotate the secret key: %w", err)
	}
	if err := rotateStep("staged"); err != nil {
		return 0, err
	}
	oldBox, err := secretbox.New(old)
	if err != nil {
		return 0, err
	}
	nextBox, err := secretbox.New(next)
	if err != nil {
		return 0, err
	}
	st, err := store.OpenSQLite(ctx, cfg.DBPath(), oldBox)
	if err != nil {
		return 0, fmt.Errorf("rotate the secret key: %w", err)
	}
	n, err := st.Reseal(ctx, nextBox)
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("rotate the secret key: %w", err)
	}
	if err := rotateStep("resealed"); err != nil {
		return 0, err
	}
	if err := keyfile.Replace(secretbox.NextKeyPath(path), path); err != nil {
		return 0, fmt.Errorf("rotate the secret key: %w", err)
	}
	return n, nil
}
