package lifecycle_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"path/filepath"
	"slices"
	"testing"

	"github.com/dproxy/dproxy/internal/blobstore"
	"github.com/dproxy/dproxy/internal/config"
	"github.com/dproxy/dproxy/internal/lifecycle"
	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/store"
)

// progressDataDir is a data dir whose group references one blob of each
// size; it returns the dir, the store and the files.
func progressDataDir(t *testing.T, sizes ...int) (string, *store.Store, *blobstore.FS) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	cfg := config.Config{DataDir: dir}
	st, err := lifecycle.OpenStoreForMaintenance(ctx, cfg.DBPath())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	files, err := blobstore.NewFS(cfg.BlobDir())
	if err != nil {
		t.Fatal(err)
	}
	g, err := st.CreateGroup(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range sizes {
		b := make([]byte, n)
		rand.Read(b)
		d := oci.FromBytes(b)
		tmp, err := files.CreateTemp()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tmp.Write(b); err != nil {
			t.Fatal(err)
		}
		if err := files.Commit(ctx, d, tmp); err != nil {
			t.Fatal(err)
		}
		if err := st.PutBlob(ctx, store.Blob{OwnerID: g.ID, Digest: d, Size: int64(n)}); err != nil {
			t.Fatal(err)
		}
	}
	return dir, st, files
}

// checkByBytes checks the reports of a copy of blobs totalling total
// bytes: the total comes first, Done never goes back, some report comes
// from inside a blob (Done not one of the blob boundaries), and the last
// one is complete.
func checkByBytes(t *testing.T, what string, reports []lifecycle.Progress, total int64, boundaries ...int64) {
	t.Helper()
	if len(reports) == 0 || reports[0].Total != total || reports[0].Done != 0 {
		t.Fatalf("%s: first report %+v, want the total %d with nothing done", what, reports, total)
	}
	inside := false
	for i, r := range reports {
		if r.Total != total || (i > 0 && r.Done < reports[i-1].Done) {
			t.Fatalf("%s: report %d is %+v after %+v", what, i, r, reports[max(0, i-1)])
		}
		inside = inside || (r.Done != 0 && r.Done != total && !slices.Contains(boundaries, r.Done))
	}
	if !inside {
		t.Errorf("%s: no report while a blob was copied: progress moves a blob at a time", what)
	}
	if last := reports[len(reports)-1]; last.Done != total {
		t.Errorf("%s: last report %+v, want all %d bytes done", what, last, total)
	}
}

// Backup and restore report progress by bytes, not a blob at a time.
func TestBackupAndRestoreProgressByBytes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const big, small = 1 << 20, 1000
	dir, _, _ := progressDataDir(t, big, small)
	var archive bytes.Buffer
	var reports []lifecycle.Progress
	if _, err := lifecycle.CreateBackup(ctx, dir, &archive, lifecycle.BackupOptions{Key: testBackupKey, Compress: true, Progress: func(p lifecycle.Progress) { reports = append(reports, p) }}); err != nil {
		t.Fatal(err)
	}
	// The archive holds the blobs in digest order, either one first.
	checkByBytes(t, "backup", reports, big+small, big, small)

	reports = nil
	dst := filepath.Join(t.TempDir(), "restored")
	if _, err := lifecycle.RestoreBackup(ctx, bytes.NewReader(archive.Bytes()), dst, lifecycle.RestoreOptions{Key: testBackupKey, Progress: func(p lifecycle.Progress) { reports = append(reports, p) }}); err != nil {
		t.Fatal(err)
	}
	checkByBytes(t, "restore", reports, big+small, big, small)
}

// A cancelled backup stops in the middle of a blob, with the context's
// error, instead of copying the rest first.
func TestBackupStopsMidBlobWhenCancelled(t *testing.T) {
	t.Parallel()
	const big = 4 << 20
	dir, _, _ := progressDataDir(t, big)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var last lifecycle.Progress
	_, err := lifecycle.CreateBackup(ctx, dir, &bytes.Buffer{}, lifecycle.BackupOptions{Key: testBackupKey, Progress: func(p lifecycle.Progress) {
		last = p
		if p.Done > 0 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled backup: %v, want context.Canceled", err)
	}
	if last.Done >= big {
		t.Errorf("the cancelled backup copied %d of %d bytes first", last.Done, big)
	}
}

// fsck --verify-content reports the bytes re-hashed, from the total on.
func TestFsckVerifyProgress(t *testing.T) {
	t.Parallel()
	const a, b = 3000, 5000
	_, st, files := progressDataDir(t, a, b)
	var reports []lifecycle.Progress
	rep, err := lifecycle.Fsck(context.Background(), st, files, lifecycle.FsckOptions{VerifyContent: true, Grace: -1,
		Progress: func(p lifecycle.Progress) { reports = append(reports, p) }})
	if err != nil || len(rep.Findings) != 0 {
		t.Fatalf("fsck: %+v, %v", rep, err)
	}
	if len(reports) != 3 || reports[0] != (lifecycle.Progress{Total: a + b}) || reports[2].Done != a+b || reports[1].Done != min(a, b) && reports[1].Done != max(a, b) {
		t.Errorf("fsck progress = %+v, want the total, then each blob", reports)
	}
}

// testBackupKey authenticates the archives of these tests.
var testBackupKey = bytes.Repeat([]byte{7}, lifecycle.BackupKeySize)
