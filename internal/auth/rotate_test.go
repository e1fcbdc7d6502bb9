package auth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dproxy/dproxy/internal/store"
)

// After a rotation, tokens of the old key verify until they expire, with
// the retired key loaded as a server does at start; new tokens use the new
// key; once the keep time is over the old key is gone.
func TestRotateSigningKeyKeepsOldTokensValid(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path, prevPath := filepath.Join(dir, "jwt.pem"), filepath.Join(dir, "jwt-previous.pem")
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	oldKey, err := LoadOrCreateSigningKey(path)
	if err != nil {
		t.Fatal(err)
	}
	p := Principal{User: &store.User{ID: 42, Username: "alice"}}
	before := NewIssuer(oldKey, IssuerOptions{Now: clock})
	access, _, _, err := before.Mint(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	refresh, err := before.MintRefresh(p)
	if err != nil {
		t.Fatal(err)
	}

	keep := DefaultRefreshTTL + DefaultLeeway
	if err := RotateSigningKey(path, prevPath, keep, now); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(prevPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("retired keys file: %v, %v", fi, err)
	}
	newKey, err := LoadOrCreateSigningKey(path)
	if err != nil || newKey.Equal(oldKey) {
		t.Fatalf("the key was not replaced: %v", err)
	}
	restart := func() *Issuer {
		prev, err := LoadPreviousKeys(prevPath, now)
		if err != nil {
			t.Fatal(err)
		}
		return NewIssuer(newKey, IssuerOptions{Now: clock, Previous: prev})
	}
	after := restart()
	if _, err := after.Verify(access); err != nil {
		t.Errorf("an access token of the old key after the rotation: %v", err)
	}
	if _, err := after.VerifyRefresh(refresh); err != nil {
		t.Errorf("a refresh token of the old key after the rotation: %v", err)
	}
	fresh, _, _, err := after.Mint(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewIssuer(oldKey, IssuerOptions{Now: clock}).Verify(fresh); err == nil {
		t.Error("a new token verifies with the old key: it was signed with the old one")
	}
	// Without the retired key, the old token is refused: the keep file is
	// what keeps it valid.
	if _, err := NewIssuer(newKey, IssuerOptions{Now: clock}).Verify(access); err == nil {
		t.Error("an old token verified with no retired keys")
	}

	// Past the keep time the retired key is dropped, even by a server that
	// loaded it before.
	now = now.Add(keep + time.Second)
	if _, err := after.VerifyRefresh(refresh); err == nil || !strings.Contains(err.Error(), "unknown signing key id") {
		t.Error("a token of the retired key verified past its keep time")
	}
	if prev, err := LoadPreviousKeys(prevPath, now); err != nil || len(prev) != 0 {
		t.Errorf("retired keys past their time: %d, %v", len(prev), err)
	}
}
