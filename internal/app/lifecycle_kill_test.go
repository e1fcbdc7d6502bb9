package app_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/dproxy/dproxy/internal/app"
	"github.com/dproxy/dproxy/internal/blobstore"
	"github.com/dproxy/dproxy/internal/config"
	"github.com/dproxy/dproxy/internal/lifecycle"
	"github.com/dproxy/dproxy/internal/oci"
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
	key := filepath.Join(t.TempDir(), "backup.key")
	cmd := exec.Command(os.Args[0], "backup", "create", "--data-dir", dir, "--key-file", key, "--file", archive)
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
	if code, out := runCLI("backup", "create", "--data-dir", dir, "--key-file", key, "--file", archive); code != 0 {
		t.Errorf("a backup after the killed one exited %d:\n%s", code, out)
	}
}

// TestKilledDuringGCLeavesCleanCache kills `dproxy serve` in the middle of
// a garbage collection: after it deleted one unreferenced blob file and
// before the next. GC holds no transaction and deletes only files no row
// references, so "clean" holds in full: no referenced blob is missing or
// corrupt and no temp file is left; fsck exits 0. What the kill leaves is
// the unreferenced files GC had not reached yet: fsck without its grace
// period lists exactly those as orphans and nothing else, and the next
// server's first collection deletes them. Then every image pulls again,
// the untouched group's without going upstream.
func TestKilledDuringGCLeavesCleanCache(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	e := newEnv(t, envOptions{keepDataDir: dir})
	e.group("acme", "beta")
	secret := e.user("alice", "acme", store.RoleGuest)
	beta, err := e.app.Store.GroupByPath(ctx, "beta")
	if err != nil {
		t.Fatal(err)
	}
	alice, err := e.app.Store.UserByUsername(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.app.Store.SetMember(ctx, beta.ID, alice.ID, store.RoleGuest); err != nil {
		t.Fatal(err)
	}
	opts := pullOpts("alice", secret)
	images := map[string][]oci.Digest{} // "group/image:tag" → blobs
	for i, group := range []string{"acme", "acme", "beta", "beta"} {
		image := fmt.Sprintf("img%d:v1", i)
		img := e.up.PushRandomImage(t, "library/"+strings.TrimSuffix(image, ":v1"), "v1", 2, 64<<10)
		pullAll(t, e.ref(group, image), opts)
		images[group+"/"+image] = blobsOf(t, img)
	}
	e.settle()
	// Purging beta leaves its 6 blob files to the garbage collector.
	if _, err := e.app.Store.PurgeGroupCache(ctx, beta.ID); err != nil {
		t.Fatal(err)
	}
	unreferenced := map[oci.Digest]bool{}
	for _, image := range []string{"beta/img2:v1", "beta/img3:v1"} {
		for _, d := range images[image] {
			unreferenced[d] = true
		}
	}
	e.close()

	pause := filepath.Join(t.TempDir(), "gc-paused")
	cmd, _ := serveProcessEnv(t, dir, e.up.URL, app.GCPauseEnv+"="+pause)
	// The first collection runs at start; it stops after its first delete.
	waitFor(t, "garbage collection to delete its first file", func() bool {
		_, err := os.Stat(pause)
		return err == nil
	})
	b, err := os.ReadFile(pause)
	if err != nil {
		t.Fatal(err)
	}
	deleted := oci.Digest(b)
	if !unreferenced[deleted] {
		t.Fatalf("garbage collection deleted %s, which is not one of the purged group's blobs", deleted)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	// fsck as an operator runs it, with no server on the data dir: nothing
	// missing or corrupt, only unreferenced files that GC had not reached.
	code, out := runCLI("fsck", "--data-dir", dir, "--verify-content")
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		kind, rest, _ := strings.Cut(line, "\t")
		d, _, _ := strings.Cut(rest, "\t")
		if strings.HasPrefix(line, "checked ") || strings.HasPrefix(line, "error: ") || strings.HasPrefix(line, "verify: ") {
			continue // the summary, the failure and the progress of --verify-content
		}
		if kind != "orphan-file" || !unreferenced[oci.Digest(d)] || oci.Digest(d) == deleted {
			t.Errorf("fsck after a kill during GC found more than the purged group's remaining files (exit %d):\n%s", code, out)
			break
		}
	}
	// Without the grace period: only the files GC had not reached yet.
	files, err := blobstore.NewFS(config.Config{DataDir: dir}.BlobDir())
	if err != nil {
		t.Fatal(err)
	}
	orphans := fsckOrphans(t, dir, files)
	delete(unreferenced, deleted)
	if len(orphans) != len(unreferenced) || len(orphans) == 0 {
		t.Errorf("fsck found %d orphans, want the %d files GC had not reached: %v", len(orphans), len(unreferenced), orphans)
	}
	for _, d := range orphans {
		if !unreferenced[d] {
			t.Errorf("fsck found an orphan %s that GC had not been asked to delete", d)
		}
	}

	// The next server's first collection finishes the job.
	cmd, base := serveProcessEnv(t, dir, e.up.URL)
	waitFor(t, "the next collection to delete the remaining unreferenced files", func() bool {
		for d := range unreferenced {
			if _, err := files.Stat(ctx, d); err == nil {
				return false
			}
		}
		return true
	})
	before := map[oci.Digest]int{}
	for _, blobs := range images {
		for _, d := range blobs {
			before[d] = e.up.CountBlob("GET", string(d))
		}
	}
	host := strings.TrimPrefix(base, "http://")
	for image, blobs := range images {
		group, ref, _ := strings.Cut(image, "/")
		pullAll(t, host+"/"+group+"/dependency_proxy/containers/"+ref, opts)
		for _, d := range blobs {
			fetched := e.up.CountBlob("GET", string(d)) - before[d]
			if want := map[string]int{"acme": 0, "beta": 1}[group]; fetched != want {
				t.Errorf("%s: blob %s fetched upstream %d times after the restart, want %d", image, d, fetched, want)
			}
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("dproxy serve exited with %v after SIGTERM", err)
	}
	if orphans := fsckOrphans(t, dir, files); len(orphans) != 0 {
		t.Errorf("orphans after the next collection and the pulls: %v", orphans)
	}
}

// fsckOrphans runs fsck on the data dir without a grace period and
// returns the orphan files it finds; any other finding fails the test.
func fsckOrphans(t *testing.T, dir string, files *blobstore.FS) []oci.Digest {
	t.Helper()
	ctx := context.Background()
	st, err := lifecycle.OpenStoreForMaintenance(ctx, config.Config{DataDir: dir}.DBPath())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rep, err := lifecycle.Fsck(ctx, st, files, lifecycle.FsckOptions{VerifyContent: true, Grace: -1})
	if err != nil {
		t.Fatal(err)
	}
	var orphans []oci.Digest
	for _, f := range rep.Findings {
		if f.Kind != lifecycle.FindingOrphanFile {
			t.Errorf("fsck finding %s %s%s: %s", f.Kind, f.Digest, f.Name, f.Detail)
			continue
		}
		orphans = append(orphans, f.Digest)
	}
	return orphans
}
