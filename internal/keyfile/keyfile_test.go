package keyfile_test

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dproxy/dproxy/internal/keyfile"
)

func TestWriteAtomic(t *testing.T) {
	t.Parallel()
	errWrite := errors.New("disk on fire")
	tests := []struct {
		name     string
		existing string // "" means no file before
		perm     fs.FileMode
		write    func(io.Writer) error
		wantErr  error
		want     string // content afterwards; "" means no file
	}{
		{name: "new file", perm: 0o600, want: "secret\n",
			write: func(w io.Writer) error { _, err := io.WriteString(w, "secret\n"); return err }},
		{name: "replaces a file", existing: "old", perm: 0o640, want: "new",
			write: func(w io.Writer) error { _, err := io.WriteString(w, "new"); return err }},
		{name: "a failed write leaves the old file", existing: "old", perm: 0o600, wantErr: errWrite, want: "old",
			write: func(w io.Writer) error { io.WriteString(w, "half"); return errWrite }},
		{name: "a failed write creates nothing", perm: 0o600, wantErr: errWrite,
			write: func(w io.Writer) error { io.WriteString(w, "half"); return errWrite }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, "initial_admin_token")
			if tt.existing != "" {
				if err := os.WriteFile(path, []byte(tt.existing), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			err := keyfile.WriteAtomic(path, tt.perm, tt.write)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("WriteAtomic: %v, want %v", err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), path) {
				t.Errorf("the error %q does not name the file", err)
			}
			got, rerr := os.ReadFile(path)
			switch {
			case tt.want == "" && !errors.Is(rerr, fs.ErrNotExist):
				t.Errorf("the file exists after a failed write: %q, %v", got, rerr)
			case tt.want != "" && string(got) != tt.want:
				t.Errorf("content %q (%v), want %q", got, rerr, tt.want)
			}
			if tt.want != "" && tt.wantErr == nil {
				fi, err := os.Stat(path)
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode().Perm() != tt.perm {
					t.Errorf("mode %v, want %v", fi.Mode().Perm(), tt.perm)
				}
			}
			if left, _ := filepath.Glob(filepath.Join(dir, ".tmp-*")); len(left) != 0 {
				t.Errorf("temp files left behind: %v", left)
			}
		})
	}
}

func TestWriteAtomicMissingFolder(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "missing", "dproxy.db")
	err := keyfile.WriteAtomic(path, 0o600, func(io.Writer) error { return nil })
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), path) {
		t.Fatalf("WriteAtomic into a missing folder: %v, want a not-exist error naming %s", err, path)
	}
}

func TestLoadOrCreateKeepsTheFirstKey(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "keys", "secret.key")
	gen := func(s string) func() ([]byte, error) { return func() ([]byte, error) { return []byte(s), nil } }
	first, err := keyfile.LoadOrCreate(path, "secret key file", 64, gen("first"))
	if err != nil || string(first) != "first" {
		t.Fatalf("first LoadOrCreate: %q, %v", first, err)
	}
	second, err := keyfile.LoadOrCreate(path, "secret key file", 64, gen("second"))
	if err != nil || string(second) != "first" {
		t.Fatalf("second LoadOrCreate: %q, %v; want the first key kept", second, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode: %v, %v; want 0600", fi, err)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".tmp-*")); len(left) != 0 {
		t.Errorf("temp files left behind: %v", left)
	}
}
