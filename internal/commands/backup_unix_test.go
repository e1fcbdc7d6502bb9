//go:build unix

package commands

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// The archive is private whatever the umask: a file through --file, and a
// file a shell created for --file -. Not parallel: the umask is the
// process's.
func TestBackupArchiveModeIgnoresUmask(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	ctx := context.Background()
	keyPath := filepath.Join(t.TempDir(), "backup.key")
	src := newDataDir(t)
	src.blob(t, 1000, true)

	archive := filepath.Join(t.TempDir(), "b.tar.gz")
	ios, _, errOut := testIO()
	if err := runBackupCreate(ctx, &backupCreateOptions{KeyFile: keyPath, IO: ios, DataDir: src.dir, File: archive}); err != nil {
		t.Fatalf("backup create: %v\n%s", err, errOut)
	}
	for _, p := range []string{archive, keyPath} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, %v; want 0600 with umask 000", filepath.Base(p), fi.Mode().Perm(), err)
		}
	}

	// As `dproxy backup create --file - > out.tar.gz` with umask 000.
	redirected := filepath.Join(t.TempDir(), "out.tar.gz")
	f, err := os.OpenFile(redirected, os.O_CREATE|os.O_WRONLY, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ios, _, errOut = testIO()
	ios.Out = f
	if err := runBackupCreate(ctx, &backupCreateOptions{KeyFile: keyPath, IO: ios, DataDir: src.dir, File: "-"}); err != nil {
		t.Fatalf("backup create --file -: %v\n%s", err, errOut)
	}
	if fi, err := os.Stat(redirected); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("stdout's file: mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
}
