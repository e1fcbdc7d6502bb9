package app_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/dproxy/dproxy/internal/store"
)

// fillPipe writes into w until the pipe is full, so that the next write of
// whoever shares w blocks: a child writing its progress there stops at a
// known point without any timing.
func fillPipe(t *testing.T, w *os.File) {
	t.Helper()
	fd := int(w.Fd())
	if err := syscall.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	for {
		if _, err := syscall.Write(fd, buf); err != nil {
			if errors.Is(err, syscall.EAGAIN) {
				break
			}
			t.Fatal(err)
		}
	}
	// A single byte may still fit after a 4 KiB write failed.
	for {
		if _, err := syscall.Write(fd, buf[:1]); err != nil {
			break
		}
	}
	if err := syscall.SetNonblock(fd, false); err != nil {
		t.Fatal(err)
	}
}

func TestKilledDuringBackupLeavesCleanCacheAndNoArchive(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	e := newEnv(t, envOptions{keepDataDir: dir})
	e.group("acme")
	opts := pullOpts("alice", e.user("alice", "acme", store.RoleGuest))
	for i := range 3 {
		e.up.PushRandomImage(t, fmt.Sprintf("library/img%d", i), "v1", 2, 256<<10)
		pullAll(t, e.ref("acme", fmt.Sprintf("img%d:v1", i)), opts)
	}
	e.settle()

	outDir := t.TempDir()
	archive := filepath.Join(outDir, "backup.tar.gz")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	fillPipe(t, w)
	cmd := exec.Command(os.Args[0], "backup", "create", "--data-dir", dir, "--out", archive)
	cmd.Env = append(os.Environ(), "DPROXY_TEST_RUN_MAIN=1", "TMPDIR="+t.TempDir())
	cmd.Stderr = w // the first progress line, after the first blob, blocks
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	waitFor(t, "the backup to start writing its temp archive", func() bool {
		m, _ := filepath.Glob(filepath.Join(outDir, ".tmp-backup.tar.gz-*"))
		return len(m) == 1
	})
	// The pipe is full, so the child cannot get past its first progress line.
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	if _, err := os.Stat(archive); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a killed backup left an archive under the final name: %v", err)
	}
	if code, out := runCLI("fsck", "--data-dir", dir, "--verify-content"); code != 0 {
		t.Errorf("fsck after a killed backup exited %d:\n%s", code, out)
	}
	if code, out := runCLI("backup", "create", "--data-dir", dir, "--out", archive); code != 0 {
		t.Errorf("a backup after the killed one exited %d:\n%s", code, out)
	}
}
