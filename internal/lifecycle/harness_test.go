package lifecycle_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/dproxy/dproxy/internal/blobstore"
	"github.com/dproxy/dproxy/internal/cache"
	"github.com/dproxy/dproxy/internal/lifecycle"
	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/secretbox"
	"github.com/dproxy/dproxy/internal/store"
	"github.com/dproxy/dproxy/internal/testclock"
	"github.com/dproxy/dproxy/internal/upstream"
)

// The lifecycle is tested on a real SQLite store and blob folder in
// t.TempDir(), with the real caches deciding what is in use: what to
// expire, what is least recently read and whether an eviction lost a race
// with a read are SQL queries, and whether a file may go is the caches'
// pin protocol. Fakes of those would restate the code under test. Only the
// upstream is a fake: nothing here downloads.

// patience bounds every wait for an event; it only turns a hang into a
// failure.
const patience = time.Minute

// now is where the fixture's clock stands: whole seconds, so times survive
// the store's microsecond precision unchanged.
var now = time.Date(2030, time.March, 1, 12, 0, 0, 0, time.UTC)

const image = "team/app"

// managerStore is what a Manager needs of the store (its metaStore).
type managerStore interface {
	EnabledTTLPolicies(ctx context.Context) ([]store.TTLPolicy, error)
	ExpireGroupCache(ctx context.Context, groupID int64, before time.Time) (store.Expired, error)
	CachedBlobBytes(ctx context.Context) (int64, error)
	LeastRecentlyRead(ctx context.Context, after *store.StoredBlob, limit int) ([]store.StoredBlob, error)
	EvictBlobs(ctx context.Context, blobs []store.StoredBlob) ([]int64, error)
	TryLock(ctx context.Context, name string) (unlock func(), ok bool, err error)
}

// fixture is a Manager wired as the server wires it.
type fixture struct {
	st      *store.Store
	blobs   *blobstore.FS
	root    string // of the blob folder
	clock   *testclock.Clock
	cache   *cache.Cache // the dependency proxy's
	caches  cache.All
	m       *lifecycle.Manager
	deleted chan oci.Digest // every file garbage collection deleted
}

type fixtureOptions struct {
	lifecycle lifecycle.Options // the fixture sets Now and AfterDelete
	// wrap, when set, puts something between the Manager and the store.
	wrap func(*store.Store) managerStore
}

func newFixture(t *testing.T, o fixtureOptions) *fixture {
	t.Helper()
	dir := t.TempDir()
	box, err := secretbox.New(bytes.Repeat([]byte{7}, secretbox.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{root: filepath.Join(dir, "blobs"), clock: testclock.New(now), deleted: make(chan oci.Digest, 64)}
	if f.st, err = store.OpenSQLite(t.Context(), filepath.Join(dir, "dproxy.db"), box); err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { f.st.Close() })
	if f.blobs, err = blobstore.NewFS(f.root); err != nil {
		t.Fatalf("open blob folder: %v", err)
	}
	copts := cache.Options{Now: f.clock.Now, TouchInterval: time.Hour} // reads are written when the lifecycle flushes them
	f.cache = cache.New(f.st, f.blobs, noUpstream{}, copts)
	virtual := cache.NewVirtual(f.st, f.st.UpstreamCache(), f.blobs,
		func(string) (cache.Remote, error) { return noUpstream{}, nil }, "", copts)
	t.Cleanup(virtual.Close)
	t.Cleanup(f.cache.Close)
	f.caches = cache.All{Main: f.cache, Virtual: virtual}

	var meta managerStore = f.st
	if o.wrap != nil {
		meta = o.wrap(f.st)
	}
	f.m = f.manager(meta, o.lifecycle)
	return f
}

// manager returns a Manager on the fixture's store, blob folder and
// caches, as another replica sharing them would have.
func (f *fixture) manager(meta managerStore, opts lifecycle.Options) *lifecycle.Manager {
	opts.Now = f.clock.Now
	hook := opts.AfterDelete
	opts.AfterDelete = func(ctx context.Context, d oci.Digest) {
		f.deleted <- d
		if hook != nil {
			hook(ctx, d)
		}
	}
	return lifecycle.New(meta, f.blobs, f.caches, opts)
}

// group creates a group and returns its id.
func (f *fixture) group(t *testing.T, path string) int64 {
	t.Helper()
	g, err := f.st.CreateGroup(t.Context(), path)
	if err != nil {
		t.Fatalf("create group %s: %v", path, err)
	}
	return g.ID
}

// setTTL enables (or not) a TTL policy of days for group.
func (f *fixture) setTTL(t *testing.T, group int64, enabled bool, days int) {
	t.Helper()
	if err := f.st.UpdateTTLPolicy(t.Context(), store.TTLPolicy{GroupID: group, Enabled: enabled, TTLDays: days}); err != nil {
		t.Fatalf("set ttl policy of group %d: %v", group, err)
	}
}

// content returns size bytes that differ for every name.
func content(name string, size int) []byte {
	b := bytes.Repeat([]byte{'.'}, size)
	copy(b, name)
	return b
}

// writeFile stores data as the file of blob d, whether or not it hashes to d.
func (f *fixture) writeFile(t *testing.T, d oci.Digest, data []byte) {
	t.Helper()
	tmp, err := f.blobs.CreateTemp()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tmp.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.blobs.Commit(t.Context(), d, tmp); err != nil {
		t.Fatalf("commit blob %s: %v", d, err)
	}
}

// blob stores data as a blob file, referenced by each of groups as read
// at readAt, and returns its digest.
func (f *fixture) blob(t *testing.T, data []byte, readAt time.Time, groups ...int64) oci.Digest {
	t.Helper()
	d := oci.FromBytes(data)
	f.writeFile(t, d, data)
	for _, g := range groups {
		f.reference(t, g, d, int64(len(data)), readAt)
	}
	return d
}

// reference records group's reference to blob d of size bytes, read at readAt.
func (f *fixture) reference(t *testing.T, group int64, d oci.Digest, size int64, readAt time.Time) {
	t.Helper()
	if err := f.st.PutBlob(t.Context(), store.Blob{OwnerID: group, Digest: d, Size: size, CreatedAt: readAt, ReadAt: readAt}); err != nil {
		t.Fatalf("reference blob %s for group %d: %v", d, group, err)
	}
}

// manifest caches a manifest of group under ref, read at readAt.
func (f *fixture) manifest(t *testing.T, group int64, ref string, readAt time.Time) {
	t.Helper()
	body := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"annotations":{"ref":%q}}`, oci.MediaTypeOCIManifest, ref))
	if _, err := f.st.PutManifest(t.Context(), store.Manifest{OwnerID: group, Image: image, Reference: ref,
		Digest: oci.FromBytes(body), MediaType: oci.MediaTypeOCIManifest, Content: body,
		CreatedAt: readAt, UpdatedAt: readAt, ReadAt: readAt}); err != nil {
		t.Fatalf("cache manifest %s of group %d: %v", ref, group, err)
	}
}

// serve opens blob d through the dependency proxy's cache, for group: a
// cache hit, so the blob is in use until the returned blob is closed (at
// the latest when the test ends), and its read is pending until flushed.
func (f *fixture) serve(t *testing.T, group int64, d oci.Digest) *cache.Blob {
	t.Helper()
	b, err := f.cache.Blob(t.Context(), cache.Target{GroupID: group, Image: image}, d)
	if err != nil {
		t.Fatalf("serve blob %s to group %d: %v", d, group, err)
	}
	t.Cleanup(func() { b.Close() })
	if !b.Cached {
		t.Fatalf("blob %s of group %d was not served from storage", d, group)
	}
	return b
}

// read reads blob d whole through the cache, for group, and closes it:
// a read the cache writes when it is flushed.
func (f *fixture) read(t *testing.T, group int64, d oci.Digest) {
	t.Helper()
	b := f.serve(t, group, d)
	if _, err := io.Copy(io.Discard, b); err != nil {
		t.Fatalf("read blob %s: %v", d, err)
	}
	b.Close()
}

// hasFile reports whether blob d's file is stored.
func (f *fixture) hasFile(t *testing.T, d oci.Digest) bool {
	t.Helper()
	_, err := f.blobs.Stat(t.Context(), d)
	return err == nil
}

// hasRef reports whether group references blob d.
func (f *fixture) hasRef(t *testing.T, group int64, d oci.Digest) bool {
	t.Helper()
	_, err := f.st.Blob(t.Context(), group, d)
	return err == nil
}

// hasManifest reports whether group has ref cached.
func (f *fixture) hasManifest(t *testing.T, group int64, ref string) bool {
	t.Helper()
	_, err := f.st.Manifest(t.Context(), group, image, ref)
	return err == nil
}

// noUpstream has nothing: these tests serve only what is stored.
type noUpstream struct{}

func (noUpstream) HeadManifest(context.Context, upstream.Credentials, string, oci.Reference) (upstream.Descriptor, error) {
	return upstream.Descriptor{}, oci.ErrManifestUnknown
}

func (noUpstream) GetManifest(context.Context, upstream.Credentials, string, oci.Reference) (upstream.Manifest, error) {
	return upstream.Manifest{}, oci.ErrManifestUnknown
}

func (noUpstream) GetBlob(context.Context, upstream.Credentials, string, oci.Digest) (io.ReadCloser, int64, error) {
	return nil, 0, oci.ErrBlobUnknown
}

func (noUpstream) HeadBlob(context.Context, upstream.Credentials, string, oci.Digest) (upstream.Descriptor, error) {
	return upstream.Descriptor{}, oci.ErrBlobUnknown
}

func (noUpstream) RateLimit(upstream.Credentials) (upstream.RateLimit, bool) {
	return upstream.RateLimit{}, false
}

func (noUpstream) Tags(context.Context, upstream.Credentials, string) ([]string, error) {
	return nil, oci.ErrNameUnknown
}

func (noUpstream) Referrers(context.Context, upstream.Credentials, string, oci.Digest) (upstream.Referrers, error) {
	return upstream.Referrers{}, nil
}
