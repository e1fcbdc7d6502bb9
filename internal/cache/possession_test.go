package cache_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dproxy/dproxy/internal/blobstore"
	"github.com/dproxy/dproxy/internal/cache"
	"github.com/dproxy/dproxy/internal/metrics"
	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/secretbox"
	"github.com/dproxy/dproxy/internal/store"
	"github.com/dproxy/dproxy/internal/upstream"
)

// possessionFixture is a real SQLite store and blob folder with groups
// a, b and c.
type possessionFixture struct {
	st      *store.Store
	blobs   *blobstore.FS
	root    string
	a, b, c int64
	stored  chan struct{} // receives once per download any of its caches committed
}

func newPossessionFixture(t *testing.T) *possessionFixture {
	t.Helper()
	dir := t.TempDir()
	box, err := secretbox.New(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenSQLite(context.Background(), filepath.Join(dir, "dproxy.db"), box)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	root := filepath.Join(dir, "blobs")
	fs, err := blobstore.NewFS(root)
	if err != nil {
		t.Fatal(err)
	}
	f := &possessionFixture{st: st, blobs: fs, root: root, stored: make(chan struct{}, 16)}
	for name, id := range map[string]*int64{"a": &f.a, "b": &f.b, "c": &f.c} {
		g, err := st.CreateGroup(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		*id = g.ID
	}
	return f
}

func (f *possessionFixture) cache(t *testing.T, r cache.Remote, trustHead bool) *cache.Cache {
	t.Helper()
	c := cache.New(f.st, f.blobs, r, cache.Options{TrustHead: trustHead, Stored: func() { f.stored <- struct{}{} }})
	t.Cleanup(c.Close)
	return c
}

// files counts the committed blob files.
func (f *possessionFixture) files(t *testing.T) int {
	t.Helper()
	n := 0
	filepath.WalkDir(filepath.Join(f.root, "sha256"), func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return err
	})
	return n
}

// readGroupBlob reads a blob through c for group; the error is that of Blob or
// of reading it.
func readGroupBlob(ctx context.Context, c *cache.Cache, group int64, d oci.Digest) ([]byte, error) {
	b, err := c.Blob(ctx, cache.Target{GroupID: group, Image: "team/app"}, d)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	return io.ReadAll(b)
}

// waitStored waits until one of f's caches committed a download.
func (f *possessionFixture) waitStored(t *testing.T) {
	t.Helper()
	receive(t, f.stored, "a committed download")
}

func TestStoredBlobIsSharedByHeadOnlyWithTrustHead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newPossessionFixture(t)
	content := make([]byte, 300<<10)
	rand.Read(content)
	d := oci.FromBytes(content)

	// Group a stores the blob through the operator's upstream.
	operator := &fakeRemote{blobs: map[oci.Digest][]byte{d: content}}
	main := f.cache(t, operator, true)
	if got, err := readGroupBlob(ctx, main, f.a, d); err != nil || !bytes.Equal(got, content) {
		t.Fatalf("group a's pull: %v", err)
	}
	f.waitStored(t)
	if n := f.files(t); n != 1 {
		t.Fatalf("%d files stored, want 1", n)
	}

	// Group b on the operator's upstream: one HEAD, no GET.
	if got, err := readGroupBlob(ctx, main, f.b, d); err != nil || !bytes.Equal(got, content) {
		t.Fatalf("group b's pull: %v", err)
	}
	if gets, heads, _ := operator.counts(); gets != 1 || heads != 1 {
		t.Errorf("operator's upstream: %d GETs and %d HEADs, want 1 and 1", gets, heads)
	}

	// An upstream an owner chose answers HEAD 200 for anything but does
	// not serve the blob: nothing for group c.
	lying := &fakeRemote{blobs: map[oci.Digest][]byte{}, headAll: true}
	owned := f.cache(t, lying, false)
	if got, err := readGroupBlob(ctx, owned, f.c, d); !errors.Is(err, oci.ErrBlobUnknown) || bytes.Contains(got, content[:1024]) {
		t.Fatalf("lying upstream: %d bytes, %v; want BLOB_UNKNOWN", len(got), err)
	}
	if gets, _, _ := lying.counts(); gets != 1 {
		t.Errorf("lying upstream got %d GETs, want 1", gets)
	}
	// It serves other bytes under the digest: verification fails.
	fake := bytes.Clone(content)
	fake[len(fake)/2] ^= 1
	lying.setBlob(d, fake)
	if got, err := readGroupBlob(ctx, owned, f.c, d); err == nil || bytes.Equal(got, content) {
		t.Fatalf("other bytes under the digest: %d bytes, %v; want a failed verification", len(got), err)
	}
	// A failed download reports its error once it is over.
	if _, err := f.st.Blob(ctx, f.c, d); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("group c's reference after a failed verification: %v", err)
	}

	// It serves the real bytes: downloaded, verified, and still one file.
	lying.setBlob(d, content)
	if got, err := readGroupBlob(ctx, owned, f.c, d); err != nil || !bytes.Equal(got, content) {
		t.Fatalf("upstream serving the bytes: %v", err)
	}
	f.waitStored(t)
	if gets, _, _ := lying.counts(); gets != 3 {
		t.Errorf("owner's upstream got %d GETs in all, want 3", gets)
	}
	if n := f.files(t); n != 1 {
		t.Errorf("%d files stored, want 1 (deduplicated at commit)", n)
	}
	if _, err := f.st.Blob(ctx, f.c, d); err != nil {
		t.Errorf("group c's reference: %v", err)
	}
}

func TestManifestThatIsNotAManifestIsNotStored(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newPossessionFixture(t)
	html := []byte("<html>hello</html>")
	r := &fakeRemote{manifest: upstream.Manifest{
		Descriptor: upstream.Descriptor{Digest: oci.FromBytes(html), MediaType: "text/html", Size: int64(len(html))},
		Content:    html,
	}}
	c := f.cache(t, r, true)
	tag := oci.Reference{Tag: "v1"}
	_, err := c.Manifest(ctx, cache.Target{GroupID: f.a, Image: "team/app"}, tag)
	if !errors.Is(err, oci.ErrManifestInvalid) || !strings.Contains(err.Error(), "text/html") {
		t.Fatalf("text/html from the remote: %v, want ErrManifestInvalid naming the type", err)
	}
	for _, ref := range []string{"v1", string(oci.FromBytes(html))} {
		if _, err := f.st.Manifest(ctx, f.a, "team/app", ref); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("stored under %s: %v", ref, err)
		}
	}
}

func TestCachedManifestOfAnUnknownTypeIsFetchedAgain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newPossessionFixture(t)
	html := []byte("<html>stored by an older version</html>")
	now := time.Now()
	if _, err := f.st.PutManifest(ctx, store.Manifest{OwnerID: f.a, Image: "team/app", Reference: "v1",
		Digest: oci.FromBytes(html), MediaType: "text/html", Size: int64(len(html)), Content: html,
		Status: store.StatusDefault, CreatedAt: now, UpdatedAt: now, ReadAt: now}); err != nil {
		t.Fatal(err)
	}
	good := []byte(`{"schemaVersion":2,"mediaType":"` + oci.MediaTypeOCIManifest + `","layers":[]}`)
	r := &fakeRemote{manifest: upstream.Manifest{
		Descriptor: upstream.Descriptor{Digest: oci.FromBytes(good), MediaType: oci.MediaTypeOCIManifest, Size: int64(len(good))},
		Content:    good,
	}}
	c := f.cache(t, r, true)
	// A freshness window that would otherwise serve the row untouched.
	m, err := c.Manifest(ctx, cache.Target{GroupID: f.a, Image: "team/app", FreshnessWindow: time.Hour}, oci.Reference{Tag: "v1"})
	if err != nil || !bytes.Equal(m.Content, good) || m.MediaType != oci.MediaTypeOCIManifest {
		t.Fatalf("Manifest = %q %s, %v; want the upstream's manifest", m.Content, m.MediaType, err)
	}
	if _, _, gets := r.counts(); gets != 1 {
		t.Errorf("%d manifest GETs, want 1", gets)
	}
	if row, err := f.st.Manifest(ctx, f.a, "team/app", "v1"); err != nil || row.MediaType != oci.MediaTypeOCIManifest {
		t.Errorf("stored row: %s %v; want it replaced", row.MediaType, err)
	}
}

// A tag that moved upstream to something that is not a manifest keeps
// serving the cached manifest, as for any upstream failure.
func TestTagMovedToAnInvalidManifestServesTheCachedOne(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newPossessionFixture(t)
	good := []byte(`{"schemaVersion":2,"mediaType":"` + oci.MediaTypeOCIManifest + `","layers":[]}`)
	r := &fakeRemote{manifest: upstream.Manifest{
		Descriptor: upstream.Descriptor{Digest: oci.FromBytes(good), MediaType: oci.MediaTypeOCIManifest, Size: int64(len(good))},
		Content:    good,
	}}
	c := f.cache(t, r, true)
	target := cache.Target{GroupID: f.a, Image: "team/app"}
	if _, err := c.Manifest(ctx, target, oci.Reference{Tag: "v1"}); err != nil {
		t.Fatal(err)
	}
	bad := []byte(`{"schemaVersion":2,"mediaType":"` + oci.MediaTypeOCIIndex + `","manifests":[]}`)
	r.mu.Lock()
	r.manifest = upstream.Manifest{
		Descriptor: upstream.Descriptor{Digest: oci.FromBytes(bad), MediaType: oci.MediaTypeOCIManifest, Size: int64(len(bad))},
		Content:    bad,
	}
	r.mu.Unlock()
	m, err := c.Manifest(ctx, target, oci.Reference{Tag: "v1"})
	if err != nil || !bytes.Equal(m.Content, good) || m.Result != metrics.ResultStale {
		t.Errorf("Manifest = %q (%s), %v; want the cached one, stale", m.Content, m.Result, err)
	}
	if row, err := f.st.Manifest(ctx, f.a, "team/app", string(oci.FromBytes(bad))); err == nil {
		t.Errorf("the invalid manifest was stored: %s", row.MediaType)
	}
}
