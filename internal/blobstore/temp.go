package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dproxy/dproxy/internal/oci"
)

// TempFile is a temp file of a download, in progress or left over.
type TempFile struct {
	Name    string // base name inside the temp folder
	Size    int64
	ModTime time.Time
}

// Temps lists the temp folder. A crash or kill leaves temp files behind;
// a live download's file is written to at least every idle timeout.
func (f *FS) Temps() ([]TempFile, error) {
	dir := filepath.Join(f.root, tempDir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list temp files in %s: %w", dir, err)
	}
	out := make([]TempFile, 0, len(entries))
	for _, e := range entries {
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // committed or aborted since the listing
		}
		if err != nil {
			return nil, fmt.Errorf("stat temp file %s: %w", e.Name(), err)
		}
		out = append(out, TempFile{Name: e.Name(), Size: info.Size(), ModTime: info.ModTime()})
	}
	return out, nil
}

// RemoveTemp removes the temp file (or folder) name listed by Temps.
// Removing one that is gone is not an error.
func (f *FS) RemoveTemp(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, `/\`) {
		return fmt.Errorf("remove temp file %q: not a name in the temp folder", name)
	}
	if err := os.RemoveAll(filepath.Join(f.root, tempDir, name)); err != nil {
		return fmt.Errorf("remove temp file %s: %w", name, err)
	}
	return nil
}

// ModTime returns when blob d's file was last written (about when it was
// committed).
func (f *FS) ModTime(ctx context.Context, d oci.Digest) (time.Time, error) {
	p, err := f.path(d)
	if err != nil {
		return time.Time{}, fmt.Errorf("stat blob: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return time.Time{}, fmt.Errorf("stat blob %s: %w", d, err)
	}
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return time.Time{}, fmt.Errorf("stat blob %s: %w", d, oci.ErrBlobUnknown)
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("stat blob %s: %w", d, err)
	}
	return fi.ModTime(), nil
}
