// Package keyfile reads and creates the small private files dproxy keeps its
// keys in. A file is created completely under a temporary name with mode
// 0600 and then linked into place, so a crash never leaves a half-written
// key and two processes starting at once end up with the same key. An
// existing file that group or others may access, or that is not a regular
// file, is refused.
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
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s %s is not a regular file", what, path)
	}
	// Windows has no Unix permission bits to check.
	if perm := st.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("%s %s is accessible by group or others (mode %04o); run chmod 600 %s", what, path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit))
	if err != nil {
		return nil, fmt.Errorf("read %s %s: %w", what, path, err)
	}
	return data, nil
}

func create(path, what string, content []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create directory for %s %s: %w", what, path, err)
	}
	tmp, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("create %s %s: %w", what, path, err)
	}
	defer os.Remove(tmp.Name())
	if err := writeSynced(tmp, content); err != nil {
		return fmt.Errorf("write %s %s: %w", what, path, err)
	}
	// Link refuses to replace an existing file: if another process created
	// the key first, keep its key.
	err = os.Link(tmp.Name(), path)
	if err != nil && !errors.Is(err, fs.ErrExist) {
		// Some filesystems have no hard links; a rename is still atomic.
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create %s %s: %w", what, path, err)
	}
	return nil
}

// writeSynced writes content to f with mode 0600, syncs and closes it.
func writeSynced(f *os.File, content []byte) error {
	err := f.Chmod(0o600)
	if err == nil {
		_, err = f.Write(content)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
