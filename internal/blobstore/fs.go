// Package blobstore owns content-addressed blob storage: layers and configs
// stored once by digest, written through a temp file and committed only after
// the caller has verified the digest. FS keeps them in a folder; S3 in an
// S3-compatible bucket, spooling downloads to a local folder.
//
// It knows nothing of groups or the database, and imports only internal/oci
// from this module. minio-go is used here and nowhere else.
//
// The contract every store keeps:
//   - A blob is visible (Open, Stat, Walk) only after Commit returned nil,
//     and only with the bytes whose digest the caller verified.
//   - Blobs are immutable: committing an existing digest is a no-op.
//   - A missing blob is reported as an error wrapping oci.ErrBlobUnknown;
//     a malformed digest as one wrapping oci.ErrDigestInvalid.
//   - Temp files may be read by other descriptors while they are written and
//     after they are committed.
package blobstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/dproxy/dproxy/internal/oci"
)

// Blob is a committed blob opened for reading. It seeks, so HTTP Range
// requests can be served from it.
type Blob interface {
	io.ReadSeekCloser
	// Size is the blob's length in bytes.
	Size() int64
}

// FS stores blobs in a folder:
//
//	<root>/sha256/ab/abcdef…   committed blobs, fanned out by the first two hex characters
//	<root>/tmp/download-*      temp files of downloads in progress
//
// Both live on one filesystem, so Commit is an atomic rename. FS is safe for
// concurrent use, also by several processes sharing the folder.
type FS struct {
	root string
}

const (
	dirMode      = 0o750
	algorithm    = "sha256"
	tempDir      = "tmp"
	tempPattern  = "download-*"
	hexLen       = 64
	fanOutPrefix = 2
)

// NewFS opens the blob folder at root, creating root, root/sha256 and
// root/tmp (mode 0750) when they are missing.
func NewFS(root string) (*FS, error) {
	for _, dir := range []string{root, filepath.Join(root, algorithm), filepath.Join(root, tempDir)} {
		if err := os.MkdirAll(dir, dirMode); err != nil {
			return nil, fmt.Errorf("create blob folder %s: %w", dir, err)
		}
	}
	return &FS{root: root}, nil
}

// Path returns the file a blob with digest d is (or would be) stored in, or
// "" when d is not a valid digest.
func (f *FS) Path(d oci.Digest) string {
	p, err := f.path(d)
	if err != nil {
		return ""
	}
	return p
}

func (f *FS) path(d oci.Digest) (string, error) {
	if _, err := oci.ParseDigest(string(d)); err != nil {
		return "", err
	}
	h := d.Hex()
	return filepath.Join(f.root, algorithm, h[:fanOutPrefix], h), nil
}

// CreateTemp creates a new, empty temp file for a download. The caller
// writes the blob into it and then passes it to exactly one of Commit or
// Abort. Other readers may open it by name while it grows.
func (f *FS) CreateTemp() (*os.File, error) {
	tmp, err := os.CreateTemp(filepath.Join(f.root, tempDir), tempPattern)
	if err != nil {
		return nil, fmt.Errorf("create temp file in %s: %w", f.root, err)
	}
	return tmp, nil
}

// Commit makes the bytes written to tmp the blob d. The caller must have
// verified that they hash to d; Commit does not re-read them. Commit takes
// ownership of tmp: it syncs and closes it, then moves it into place and
// syncs the directory, so a committed blob survives a crash. Descriptors
// other readers hold on tmp keep working (the rename keeps the inode).
//
// If d is already stored, tmp is removed and Commit returns nil. On error
// tmp is removed too; d is then either absent or complete, never partial.
// ctx is checked before anything durable happens.
func (f *FS) Commit(ctx context.Context, d oci.Digest, tmp *os.File) error {
	err := f.commit(ctx, d, tmp)
	if err != nil {
		f.Abort(tmp)
	}
	return err
}

func (f *FS) commit(ctx context.Context, d oci.Digest, tmp *os.File) error {
	dst, err := f.path(d)
	if err != nil {
		return fmt.Errorf("commit blob: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("commit blob %s: %w", d, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("commit blob %s: sync %s: %w", d, tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("commit blob %s: close %s: %w", d, tmp.Name(), err)
	}
	if fi, err := os.Lstat(dst); err == nil {
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("commit blob %s: %s exists and is not a regular file", d, dst)
		}
		// Already stored with the same content: blobs are immutable.
		if err := os.Remove(tmp.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("commit blob %s: remove duplicate temp file: %w", d, err)
		}
		return nil
	}
	dir := filepath.Dir(dst)
	created := false
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.Mkdir(dir, dirMode); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("commit blob %s: create %s: %w", d, dir, err)
		}
		created = true
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("commit blob %s: rename %s: %w", d, tmp.Name(), err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("commit blob %s: %w", d, err)
	}
	if created {
		if err := syncDir(filepath.Dir(dir)); err != nil {
			return fmt.Errorf("commit blob %s: %w", d, err)
		}
	}
	return nil
}

// syncDir makes a rename or creation inside dir durable.
func syncDir(dir string) error {
	df, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory %s to sync: %w", dir, err)
	}
	err = df.Sync()
	if cerr := df.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// Abort closes and removes a temp file that will not be committed. It is
// best effort and safe to call on a file already closed, removed or
// committed (then it does nothing to the blob).
func (f *FS) Abort(tmp *os.File) {
	if tmp == nil {
		return
	}
	_ = tmp.Close()
	// Only remove names inside the temp folder: after a successful Commit the
	// name no longer exists, and nothing else may be removed by mistake.
	if filepath.Dir(tmp.Name()) == filepath.Join(f.root, tempDir) {
		_ = os.Remove(tmp.Name())
	}
}

// Open opens blob d for reading.
func (f *FS) Open(ctx context.Context, d oci.Digest) (Blob, error) {
	p, err := f.path(d)
	if err != nil {
		return nil, fmt.Errorf("open blob: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open blob %s: %w", d, err)
	}
	file, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("open blob %s: %w", d, oci.ErrBlobUnknown)
	}
	if err != nil {
		return nil, fmt.Errorf("open blob %s: %w", d, err)
	}
	fi, err := file.Stat()
	if err != nil {
		file.Close()
		return nil, fmt.Errorf("stat blob %s: %w", d, err)
	}
	if !fi.Mode().IsRegular() {
		file.Close()
		return nil, fmt.Errorf("open blob %s: %s is not a regular file", d, p)
	}
	return &fileBlob{File: file, size: fi.Size()}, nil
}

// fileBlob is an open blob file with its size taken at open time.
type fileBlob struct {
	*os.File
	size int64
}

func (b *fileBlob) Size() int64 { return b.size }

// Stat returns the size of blob d.
func (f *FS) Stat(ctx context.Context, d oci.Digest) (int64, error) {
	p, err := f.path(d)
	if err != nil {
		return 0, fmt.Errorf("stat blob: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("stat blob %s: %w", d, err)
	}
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("stat blob %s: %w", d, oci.ErrBlobUnknown)
	}
	if err != nil {
		return 0, fmt.Errorf("stat blob %s: %w", d, err)
	}
	if !fi.Mode().IsRegular() {
		return 0, fmt.Errorf("stat blob %s: %s is not a regular file", d, p)
	}
	return fi.Size(), nil
}

// Delete removes blob d. Deleting a missing blob is not an error. Readers
// that have it open keep reading it.
func (f *FS) Delete(ctx context.Context, d oci.Digest) error {
	p, err := f.path(d)
	if err != nil {
		return fmt.Errorf("delete blob: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete blob %s: %w", d, err)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete blob %s: %w", d, err)
	}
	return nil
}

// CleanTemp removes every temp file, left over by downloads a crash or kill
// interrupted, and returns how many it removed. Call it at start-up before
// any download begins: it also removes the temp files of live downloads.
func (f *FS) CleanTemp() (removed int, err error) {
	dir := filepath.Join(f.root, tempDir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("list temp files in %s: %w", dir, err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return removed, fmt.Errorf("remove temp file %s: %w", e.Name(), err)
		}
		removed++
	}
	return removed, nil
}

// Walk calls fn for every stored blob, in digest order, with its size.
// Files that are not blobs (wrong name, wrong fan-out folder, not regular)
// are skipped. fn may Delete the blob it is given. Walk stops at the first
// error of fn and returns it unchanged, or at ctx's cancellation.
func (f *FS) Walk(ctx context.Context, fn func(d oci.Digest, size int64) error) error {
	base := filepath.Join(f.root, algorithm)
	fans, err := os.ReadDir(base)
	if err != nil {
		return fmt.Errorf("list blob folder %s: %w", base, err)
	}
	for _, fan := range fans {
		if !fan.IsDir() || len(fan.Name()) != fanOutPrefix || !isLowerHex(fan.Name()) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("walk blobs: %w", err)
		}
		dir := filepath.Join(base, fan.Name())
		entries, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("list blob folder %s: %w", dir, err)
		}
		for _, e := range entries { // sorted by name
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("walk blobs: %w", err)
			}
			name := e.Name()
			if len(name) != hexLen || name[:fanOutPrefix] != fan.Name() || !isLowerHex(name) || !e.Type().IsRegular() {
				continue
			}
			info, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue // deleted since the listing
			}
			if err != nil {
				return fmt.Errorf("stat blob file %s: %w", name, err)
			}
			if err := fn(oci.Digest(algorithm+":"+name), info.Size()); err != nil {
				return err
			}
		}
	}
	return nil
}

func isLowerHex(s string) bool {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Verify re-reads blob d and checks that it still hashes to d. A mismatch
// (a corrupted file) is an error wrapping oci.ErrDigestInvalid; a missing
// blob one wrapping oci.ErrBlobUnknown. It stops when ctx is cancelled.
func (f *FS) Verify(ctx context.Context, d oci.Digest) error {
	b, err := f.Open(ctx, d)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	defer b.Close()
	return verify(ctx, d, b, f.Path(d))
}

// verify hashes r and checks the sum is d; where names the stored copy in
// the error.
func verify(ctx context.Context, d oci.Digest, r io.Reader, where string) error {
	h := sha256.New()
	buf := make([]byte, 256<<10)
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("verify blob %s: %w", d, err)
		}
		n, err := r.Read(buf)
		h.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("verify blob %s: read: %w", d, err)
		}
	}
	if got := algorithm + ":" + hex.EncodeToString(h.Sum(nil)); got != string(d) {
		return fmt.Errorf("verify blob %s: %w: the stored copy %s hashes to %s", d, oci.ErrDigestInvalid, where, got)
	}
	return nil
}
