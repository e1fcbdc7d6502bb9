package blobstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dproxy/dproxy/internal/oci"
)

func newTestFS(t *testing.T) *FS {
	t.Helper()
	s, err := NewFS(filepath.Join(t.TempDir(), "blobs"))
	if err != nil {
		t.Fatalf("NewFS: %v", err)
	}
	return s
}

func TestFSContract(t *testing.T) {
	t.Parallel()
	testStoreContract(t, func(t *testing.T) contractStore { return newTestFS(t) })
}

func TestNewFSCreatesLayout(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "a", "blobs")
	if _, err := NewFS(root); err != nil {
		t.Fatalf("NewFS: %v", err)
	}
	for _, dir := range []string{root, filepath.Join(root, "sha256"), filepath.Join(root, "tmp")} {
		fi, err := os.Stat(dir)
		if err != nil || !fi.IsDir() {
			t.Fatalf("%s: %v, want a directory", dir, err)
		}
		if perm := fi.Mode().Perm(); perm&^0o750 != 0 {
			t.Errorf("%s has mode %o, want at most 0750", dir, perm)
		}
	}
	if _, err := NewFS(root); err != nil {
		t.Errorf("NewFS on an existing folder: %v", err)
	}

	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewFS(file); err == nil || !strings.Contains(err.Error(), file) {
		t.Errorf("NewFS on a regular file = %v, want an error naming it", err)
	}
}

func TestFSPaths(t *testing.T) {
	t.Parallel()
	s := newTestFS(t)
	content := []byte("layer")
	d := oci.FromBytes(content)
	want := filepath.Join(s.root, "sha256", d.Hex()[:2], d.Hex())
	if got := s.Path(d); got != want {
		t.Errorf("Path = %s, want %s", got, want)
	}
	if got := s.Path("sha256:../x"); got != "" {
		t.Errorf("Path of an invalid digest = %q, want empty", got)
	}

	tmp := writeTemp(t, s, content)
	if dir := filepath.Dir(tmp.Name()); dir != filepath.Join(s.root, "tmp") {
		t.Errorf("temp file in %s, want %s", dir, filepath.Join(s.root, "tmp"))
	}
	if !strings.HasPrefix(filepath.Base(tmp.Name()), "download-") {
		t.Errorf("temp file %s does not start with download-", tmp.Name())
	}
	if err := s.Commit(context.Background(), d, tmp); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(want); err != nil || string(b) != "layer" {
		t.Errorf("blob file %s = %q, %v; want %q", want, b, err, "layer")
	}
}

func TestFSWalkSkipsNonBlobs(t *testing.T) {
	t.Parallel()
	s := newTestFS(t)
	d := put(t, s, []byte("real"))
	other := oci.FromBytes([]byte("other")).Hex()
	base := filepath.Join(s.root, "sha256")
	junk := map[string]bool{ // path → is a directory
		filepath.Join(base, "README"):                              false,
		filepath.Join(base, d.Hex()):                               false, // not in a fan-out folder
		filepath.Join(base, d.Hex()[:2], "notes.txt"):              false,
		filepath.Join(base, d.Hex()[:2], strings.ToUpper(d.Hex())): false,
		filepath.Join(base, "zz", strings.Repeat("z", 64)):         false,
		filepath.Join(base, "ab", "cd"+other[2:]):                  false, // wrong fan-out folder
		filepath.Join(base, "01", "01"+other[2:]):                  true,  // a directory named like a blob
		filepath.Join(base, "xyz", other):                          false,
	}
	for p, isDir := range junk {
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		var err error
		if isDir {
			err = os.Mkdir(p, 0o750)
		} else {
			err = os.WriteFile(p, []byte("junk"), 0o600)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	got := walkAll(t, s)
	if len(got) != 1 || got[0].d != d || got[0].size != 4 {
		t.Errorf("Walk = %v, want only %s(4)", got, d.Short())
	}
}

func TestFSVerifyDetectsCorruption(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		corrupt func(path string) error
	}{
		{"overwritten", func(p string) error { return os.WriteFile(p, []byte("tampered bytes"), 0o600) }},
		{"truncated", func(p string) error { return os.Truncate(p, 3) }},
		{"emptied", func(p string) error { return os.Truncate(p, 0) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newTestFS(t)
			ctx := context.Background()
			d := put(t, s, randomBytes(t, 5000))
			if err := s.Verify(ctx, d); err != nil {
				t.Fatalf("Verify before corruption: %v", err)
			}
			if err := tc.corrupt(s.Path(d)); err != nil {
				t.Fatal(err)
			}
			err := s.Verify(ctx, d)
			if !errors.Is(err, oci.ErrDigestInvalid) || !strings.Contains(err.Error(), string(d)) {
				t.Errorf("Verify of a corrupted blob = %v, want ErrDigestInvalid naming %s", err, d)
			}
		})
	}
}

func TestFSOpenRejectsDirectory(t *testing.T) {
	t.Parallel()
	s := newTestFS(t)
	d := oci.FromBytes([]byte("dir"))
	if err := os.MkdirAll(s.Path(d), 0o750); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := s.Open(ctx, d); err == nil || errors.Is(err, oci.ErrBlobUnknown) {
		t.Errorf("Open of a directory = %v, want a non-ErrBlobUnknown error", err)
	}
	if _, err := s.Stat(ctx, d); err == nil || errors.Is(err, oci.ErrBlobUnknown) {
		t.Errorf("Stat of a directory = %v, want a non-ErrBlobUnknown error", err)
	}
	tmp := writeTemp(t, s, []byte("dir"))
	if err := s.Commit(ctx, d, tmp); err == nil {
		t.Error("Commit over a directory succeeded, want an error")
	}
	assertGone(t, tmp.Name())
}
