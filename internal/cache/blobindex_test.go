package cache_test

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dproxy/dproxy/internal/cache"
	"github.com/dproxy/dproxy/internal/upstream"
)

// withGeneration returns tg carrying the store's blob-reference generation
// as it is now, as a request reads it with the auth generation.
func (h *harness) withGeneration(t *testing.T, tg cache.Target) cache.Target {
	t.Helper()
	g, err := h.store.Generations(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	tg.BlobRefs, tg.BlobRefsKnown = g.BlobRefs, true
	return tg
}

// A blob reference remembered under the blob-reference generation is not
// used once a removal of it committed, whichever way it was removed (as
// another replica would, straight in the store): the next request is not a
// plain hit, it asks the upstream (with TrustHead, a HEAD confirming the
// group may read it) and references the blob again.
func TestRemovedReferenceIsNotServedFromTheIndex(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	h := newHarness(t, setup{})
	img := h.push(t, "library/app", "v1", 64<<10)
	tg := h.target(t, "a", "library/app", upstream.Credentials{})
	serve := func(what string) {
		t.Helper()
		b, err := h.cache.Blob(ctx, h.withGeneration(t, tg), img.layer)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		readAll(t, b, img.bytes)
	}
	serve("first pull")
	h.waitStored(t)

	removals := []struct {
		what   string
		remove func() error
	}{
		{"delete the reference", func() error { return h.store.DeleteBlob(ctx, tg.GroupID, img.layer) }},
		{"drop the blob", func() error { _, err := h.store.DropBlob(ctx, img.layer); return err }},
		{"purge the group's cache", func() error { _, err := h.store.PurgeGroupCache(ctx, tg.GroupID); return err }},
		{"evict the blob", func() error {
			_, err := h.store.EvictBlob(ctx, img.layer, h.clock.Now().Add(1<<40))
			return err
		}},
	}
	for _, r := range removals {
		serve(r.what + ": warm pull") // a hit: the reference is remembered
		serve(r.what + ": warm pull again")
		heads := h.up.CountBlob(http.MethodHead, string(img.layer))
		if err := r.remove(); err != nil {
			t.Fatalf("%s: %v", r.what, err)
		}
		serve(r.what + ": pull after the removal")
		if n := h.up.CountBlob(http.MethodHead, string(img.layer)) - heads; n != 1 {
			t.Errorf("%s: %d upstream HEADs of the blob on the next pull, want 1 (the reference is gone)", r.what, n)
		}
		if _, err := h.store.Blob(ctx, tg.GroupID, img.layer); err != nil {
			t.Errorf("%s: the next pull did not reference the blob again: %v", r.what, err)
		}
	}
}

// An idle opened blob file is never served once the stored file was
// replaced or deleted: the next request serves the file now stored (a
// corrupt replacement is caught and fetched again) or fetches the blob.
func TestIdleFileIsNotServedAfterReplaceOrDelete(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	h := newHarness(t, setup{})
	img := h.push(t, "library/app", "v1", 64<<10)
	tg := h.target(t, "a", "library/app", upstream.Credentials{})
	serve := func(what string) {
		t.Helper()
		b, err := h.cache.Blob(ctx, tg, img.layer)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		readAll(t, b, img.bytes)
	}
	serve("first pull")
	h.waitStored(t)
	path := h.blobs.Path(img.layer)

	changes := []struct {
		what   string
		change func() error
	}{
		{"replace the file with other bytes", func() error {
			other := bytes.Clone(img.bytes)
			other[len(other)/2] ^= 0xff
			tmp := filepath.Join(filepath.Dir(path), "replacement")
			if err := os.WriteFile(tmp, other, 0o644); err != nil {
				return err
			}
			return os.Rename(tmp, path)
		}},
		{"delete the file", func() error { return os.Remove(path) }},
	}
	for _, c := range changes {
		serve(c.what + ": warm pull") // served from storage, then kept open
		serve(c.what + ": warm pull again")
		gets := h.up.CountBlob(http.MethodGet, string(img.layer))
		if err := c.change(); err != nil {
			t.Fatalf("%s: %v", c.what, err)
		}
		serve(c.what + ": pull after the change")
		if n := h.up.CountBlob(http.MethodGet, string(img.layer)) - gets; n != 1 {
			t.Errorf("%s: %d upstream GETs of the blob on the next pull, want 1 (the stored file is not the one verified)", c.what, n)
		}
		h.waitStored(t)
		checkStoredBytes(t, path, img.bytes)
	}
}

// An idle opened blob file does not outlive a garbage collection of its
// blob: the file is deleted, and the next pull fetches it again.
func TestIdleFileIsDroppedByCollection(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	h := newHarness(t, setup{})
	img := h.push(t, "library/app", "v1", 64<<10)
	tg := h.target(t, "a", "library/app", upstream.Credentials{})
	for _, what := range []string{"first pull", "warm pull", "warm pull again"} {
		b, err := h.cache.Blob(ctx, h.withGeneration(t, tg), img.layer)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		readAll(t, b, img.bytes)
		if what == "first pull" {
			h.waitStored(t)
		}
	}
	if err := h.store.DeleteBlob(ctx, tg.GroupID, img.layer); err != nil {
		t.Fatal(err)
	}
	if removed, err := h.cache.RemoveUnusedBlob(ctx, img.layer, time.Now(), 0); err != nil || !removed {
		t.Fatalf("RemoveUnusedBlob = %v, %v; want the unreferenced, idle blob removed", removed, err)
	}
	if _, err := h.blobs.Stat(ctx, img.layer); err == nil {
		t.Fatal("the collected blob's file is still there")
	}
	// Nor is it held open, which would keep its space on the disk.
	path := h.blobs.Path(img.layer)
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
		for _, fd := range fds {
			if target, _ := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); strings.HasPrefix(target, path) {
				t.Errorf("descriptor %s still holds the collected file (%s)", fd.Name(), target)
			}
		}
	}
	gets := h.up.CountBlob(http.MethodGet, string(img.layer))
	b, err := h.cache.Blob(ctx, h.withGeneration(t, tg), img.layer)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, b, img.bytes)
	if n := h.up.CountBlob(http.MethodGet, string(img.layer)) - gets; n != 1 {
		t.Errorf("%d upstream GETs of the collected blob on the next pull, want 1", n)
	}
}

// checkStoredBytes fails t unless the file at path holds want.
func checkStoredBytes(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("stored file %s: %d bytes, not the blob's %d", path, len(got), len(want))
	}
}
