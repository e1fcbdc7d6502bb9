package secretbox

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func testBox(t *testing.T, fill byte) *Box {
	t.Helper()
	b, err := New(bytes.Repeat([]byte{fill}, KeySize))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return b
}

func TestNewRejectsWrongKeySize(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 16, 31, 33, 64} {
		if _, err := New(make([]byte, n)); err == nil || !strings.Contains(err.Error(), "32 bytes") {
			t.Errorf("New(%d bytes) = %v, want an error naming the size", n, err)
		}
	}
}

func TestSealOpen(t *testing.T) {
	t.Parallel()
	b := testBox(t, 7)
	const ad = "dependency_proxy_settings:1:secret"
	plain := []byte("dckr_pat_not-a-real-secret")

	sealed, err := b.Seal(plain, ad)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	if sealed[0] != 1 {
		t.Errorf("key id byte = %d, want 1", sealed[0])
	}
	if want := 1 + 12 + len(plain) + 16; len(sealed) != want {
		t.Errorf("sealed length = %d, want %d (key id + nonce + ciphertext + tag)", len(sealed), want)
	}
	if bytes.Contains(sealed, plain) {
		t.Error("sealed value contains the plaintext")
	}
	again, _ := b.Seal(plain, ad)
	if bytes.Equal(sealed, again) {
		t.Error("two seals of the same plaintext are equal: nonce not random")
	}

	got, err := b.Open(sealed, ad)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if !bytes.Equal(got, plain) {
		t.Errorf("Open = %q, want %q", got, plain)
	}

	empty, err := b.Seal(nil, ad)
	if err != nil {
		t.Fatalf("Seal(empty): %v", err)
	}
	if got, err := b.Open(empty, ad); err != nil || len(got) != 0 {
		t.Errorf("Open(sealed empty) = %q, %v; want empty, nil", got, err)
	}
}

func TestOpenFailures(t *testing.T) {
	t.Parallel()
	b := testBox(t, 7)
	const ad = "dependency_proxy_settings:1:secret"
	sealed, err := b.Seal([]byte("secret"), ad)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	flip := func(i int) []byte {
		c := bytes.Clone(sealed)
		c[i] ^= 0x01
		return c
	}
	tests := []struct {
		name   string
		box    *Box
		sealed []byte
		ad     string
	}{
		{"wrong additional data", b, sealed, "dependency_proxy_settings:2:secret"},
		{"empty additional data", b, sealed, ""},
		{"wrong key", testBox(t, 8), sealed, ad},
		{"tampered nonce", b, flip(1), ad},
		{"tampered ciphertext", b, flip(14), ad},
		{"tampered tag", b, flip(len(sealed) - 1), ad},
		{"unknown key id", b, flip(0), ad},
		{"truncated", b, sealed[:len(sealed)-1], ad},
		{"too short", b, sealed[:5], ad},
		{"empty", b, nil, ad},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got, err := tt.box.Open(tt.sealed, tt.ad); err == nil {
				t.Errorf("Open succeeded with %q, want an error", got)
			}
		})
	}
}

func TestParseKey(t *testing.T) {
	t.Parallel()
	good := strings.Repeat("ab", KeySize)
	tests := []struct {
		in      string
		wantErr bool
	}{
		{good, false},
		{"  " + good + "\n", false},
		{strings.ToUpper(good), false},
		{good[:62], true},
		{good + "ab", true},
		{strings.Repeat("zz", KeySize), true},
		{"", true},
	}
	for _, tt := range tests {
		key, err := ParseKey(tt.in)
		if tt.wantErr {
			if err == nil {
				t.Errorf("ParseKey(%q) succeeded, want an error", tt.in)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseKey(%q): %v", tt.in, err)
			continue
		}
		if !bytes.Equal(key, bytes.Repeat([]byte{0xab}, KeySize)) {
			t.Errorf("ParseKey(%q) = %x", tt.in, key)
		}
	}
}

func TestLoadOrCreateKeyCreatesAndReloads(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "secret.key")

	key, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatalf("LoadOrCreateKey (create): %v", err)
	}
	if len(key) != KeySize {
		t.Fatalf("key length = %d, want %d", len(key), KeySize)
	}
	if bytes.Equal(key, make([]byte, KeySize)) {
		t.Fatal("key is all zero")
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode = %04o, want 0600", perm)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(data)); got != hex.EncodeToString(key) {
		t.Errorf("key file holds %q, want the hex of the key", got)
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("key directory holds %d entries, want only the key (no temp file left)", len(entries))
	}

	again, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatalf("LoadOrCreateKey (reload): %v", err)
	}
	if !bytes.Equal(again, key) {
		t.Error("reloaded key differs from the created one")
	}

	// A value sealed with the first key opens with the reloaded one.
	b1, _ := New(key)
	b2, _ := New(again)
	sealed, _ := b1.Seal([]byte("x"), "ad")
	if _, err := b2.Open(sealed, "ad"); err != nil {
		t.Errorf("open with reloaded key: %v", err)
	}
}

func TestLoadOrCreateKeyConcurrentCreatesAgree(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "secret.key")
	const n = 8
	keys := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { keys[i], errs[i] = LoadOrCreateKey(path) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("LoadOrCreateKey #%d: %v", i, errs[i])
		}
		if !bytes.Equal(keys[i], keys[0]) {
			t.Errorf("key #%d differs from key #0", i)
		}
	}
}

func TestLoadOrCreateKeyRejectsBadFiles(t *testing.T) {
	t.Parallel()
	good := strings.Repeat("0f", KeySize) + "\n"
	tests := []struct {
		name    string
		content string
		mode    os.FileMode
		wantMsg string
	}{
		{"too short", strings.Repeat("0f", 16) + "\n", 0o600, "64 hex characters"},
		{"too long", strings.Repeat("0f", KeySize+1), 0o600, "64 hex characters"},
		{"raw bytes", strings.Repeat("k", KeySize), 0o600, "64 hex characters"},
		{"not hex", strings.Repeat("zz", KeySize), 0o600, "hex"},
		{"empty", "", 0o600, "64 hex characters"},
		{"group readable", good, 0o640, "chmod 600"},
		{"world readable", good, 0o604, "chmod 600"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "secret.key")
			if err := os.WriteFile(path, []byte(tt.content), tt.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.mode); err != nil { // undo the umask
				t.Fatal(err)
			}
			_, err := LoadOrCreateKey(path)
			if err == nil {
				t.Fatal("LoadOrCreateKey succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tt.wantMsg) || !strings.Contains(err.Error(), path) {
				t.Errorf("error %q should name the file and contain %q", err, tt.wantMsg)
			}
			data, _ := os.ReadFile(path)
			if string(data) != tt.content {
				t.Error("a rejected key file was modified")
			}
		})
	}
}

func TestLoadOrCreateKeyAcceptsGoodFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "secret.key")
	if err := os.WriteFile(path, []byte(strings.Repeat("0f", KeySize)), 0o400); err != nil {
		t.Fatal(err)
	}
	key, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatalf("LoadOrCreateKey: %v", err)
	}
	if !bytes.Equal(key, bytes.Repeat([]byte{0x0f}, KeySize)) {
		t.Errorf("key = %x", key)
	}
}
