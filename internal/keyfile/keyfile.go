// Package keyfile reads and writes dproxy's private files: the keys, the
// initial admin token, and the database and archives of backups. A file is
// written completely under a temporary name in its folder, synced, and
// then moved into place, so a crash never leaves a half-written file under
// the final name. A key is linked into place rather than renamed, so that
// two processes starting at once end up with the same key. An existing key
// file that group or others may access, or that is not a regular file, is
// refused. It imports nothing of dproxy.
package keyfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// LoadOrCreate returns at most limit bytes of the key file at path, first
// creating it with the bytes generate returns when it does not exist. what
// names the key in errors ("secret key file").
func LoadOrCreate(path, what string, limit int64, generate func() ([]byte, error)) ([]byte, error) {
	data, err := Read(path, what, limit)
	if !errors.Is(err, fs.ErrNotExist) {
		return data, err
	}
	content, err := generate()
	if err != nil {
		return nil, fmt.Errorf("generate %s: %w", what, err)
	}
	if err := create(path, what, content); err != nil {
		return nil, err
	}
	return Read(path, what, limit)
}

// Read returns at most limit bytes of the key file at path. A missing file
// is an error wrapping fs.ErrNotExist.
func Read(path, what string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("open %s %s: %w", what, path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat %s %s: %w", what, path, err)
	}
	if err := checkPrivate(st, path, what); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, limit))
	if err != nil {
		return nil, fmt.Errorf("read %s %s: %w", what, path, err)
	}
	return data, nil
}

// CheckPrivate refuses the file at path unless it is a regular file that
// only its owner may access, as Read does. what names the file in errors
// ("database file").
func CheckPrivate(path, what string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("stat %s %s: %w", what, path, err)
	}
	return checkPrivate(st, path, what)
}

func checkPrivate(st fs.FileInfo, path, what string) error {
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s %s is not a regular file", what, path)
	}
	// Windows has no Unix permission bits to check.
	if perm := st.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return fmt.Errorf("%s %s is accessible by group or others (mode %04o); run chmod 600 %s", what, path, perm, path)
	}
	return nil
}

func create(path, what string, content []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create directory for %s %s: %w", what, path, err)
	}
	tmp, err := writeTemp(path, 0o600, func(w io.Writer) error {
		_, err := w.Write(content)
		return err
	})
	if err != nil {
		return fmt.Errorf("create %s %s: %w", what, path, err)
	}
	defer os.Remove(tmp)
	// Link refuses to replace an existing file: if another process created
	// the key first, keep its key.
	err = os.Link(tmp, path)
	if err != nil && !errors.Is(err, fs.ErrExist) {
		// Some filesystems have no hard links; a rename is still atomic.
		err = os.Rename(tmp, path)
	}
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create %s %s: %w", what, path, err)
	}
	syncDir(dir)
	return nil
}

// WriteAtomic replaces path with what write writes, created with mode
// perm: either path is left as it was (on an error, or a crash at any
// moment) or it holds everything write wrote. The folder of path must
// exist. A crash may leave a temp file named .tmp-<name>-* next to path.
func WriteAtomic(path string, perm fs.FileMode, write func(w io.Writer) error) error {
	tmp, err := writeTemp(path, perm, write)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	syncDir(filepath.Dir(path))
	return nil
}

// writeTemp writes a complete, synced and closed temp file next to path
// with mode perm and returns its name; on an error it leaves nothing.
func writeTemp(path string, perm fs.FileMode, write func(w io.Writer) error) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return "", err
	}
	err = f.Chmod(perm)
	if err == nil {
		err = write(f)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// syncDir makes a rename or link in dir durable. It is best effort: some
// systems cannot sync a directory, and the file is complete either way.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// Replace moves the file at from over the file at to, atomically, and
// makes the move durable.
func Replace(from, to string) error {
	if err := os.Rename(from, to); err != nil {
		return fmt.Errorf("replace %s: %w", to, err)
	}
	syncDir(filepath.Dir(to))
	return nil
}
