package lifecycle

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"

	"github.com/dproxy/dproxy/internal/config"
	"github.com/dproxy/dproxy/internal/secretbox"
	"github.com/dproxy/dproxy/internal/store"
)

// hubSecretWith opens the data dir's store with key and returns group
// acme's Docker Hub secret.
func hubSecretWith(t *testing.T, dir string, key []byte) (string, error) {
	t.Helper()
	ctx := context.Background()
	box, err := secretbox.New(key)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenSQLite(ctx, config.Config{DataDir: dir}.DBPath(), box)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	g, err := st.GroupByPath(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	p, err := st.ProxySetting(ctx, g.ID)
	return p.Secret, err
}

// Not parallel: it swaps rotateStep to stand in a crash.
func TestRotateSecretKey(t *testing.T) {
	ctx := context.Background()
	defer func(f func(string) error) { rotateStep = f }(rotateStep)
	crash := errors.New("crash")
	for _, at := range []string{"staged", "resealed"} {
		t.Run("a crash once "+at, func(t *testing.T) {
			src := newSource(t)
			src.st.Close()
			path := config.Config{DataDir: src.dir}.SecretKeyPath()
			old, err := secretbox.ReadKey(path)
			if err != nil {
				t.Fatal(err)
			}
			rotateStep = func(step string) error {
				if step == at {
					return crash
				}
				return nil
			}
			if _, err := RotateSecretKey(ctx, src.dir); !errors.Is(err, crash) {
				t.Fatalf("rotation: %v, want the crash", err)
			}
			next, err := secretbox.ReadKey(secretbox.NextKeyPath(path))
			if err != nil {
				t.Fatal(err)
			}
			// Consistent: exactly one key opens the secret, and a server
			// refuses to start until the rotation is finished.
			want := old
			if at == "resealed" {
				want = next
			}
			if s, err := hubSecretWith(t, src.dir, want); err != nil || s != "hub-secret" {
				t.Errorf("after a crash once %s the expected key opens %q, %v", at, s, err)
			}
			if _, err := secretbox.LoadOrCreateKey(path); err == nil || !bytes.Contains([]byte(err.Error()), []byte("rotate-secret")) {
				t.Errorf("a server starting mid-rotation: %v; want a refusal naming the command", err)
			}

			rotateStep = func(string) error { return nil }
			n, err := RotateSecretKey(ctx, src.dir)
			if err != nil {
				t.Fatalf("rotation run again: %v", err)
			}
			if wantN := map[string]int{"staged": 1, "resealed": 0}[at]; n != wantN {
				t.Errorf("re-sealed %d values, want %d", n, wantN)
			}
			key, err := secretbox.LoadOrCreateKey(path)
			if err != nil || !bytes.Equal(key, next) || bytes.Equal(key, old) {
				t.Fatalf("key after rotation: %v; want the staged new key", err)
			}
			if _, err := os.Stat(secretbox.NextKeyPath(path)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the staged key is left behind: %v", err)
			}
			if s, err := hubSecretWith(t, src.dir, key); err != nil || s != "hub-secret" {
				t.Errorf("secret with the new key: %q, %v", s, err)
			}
			if _, err := hubSecretWith(t, src.dir, old); err == nil {
				t.Error("the old key still opens the secret")
			}
		})
	}
}
