package cache_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/dproxy/dproxy/internal/blobstore"
	"github.com/dproxy/dproxy/internal/cache"
	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/secretbox"
	"github.com/dproxy/dproxy/internal/store"
	"github.com/dproxy/dproxy/internal/testclock"
	"github.com/dproxy/dproxy/internal/testregistry"
	"github.com/dproxy/dproxy/internal/upstream"
)

// patience bounds every wait of these tests for an event: it only turns a
// hang into a failure, no assertion depends on it.
const patience = time.Minute

// harness is a Cache under test with what it runs on: by default wired as
// the server wires it (a SQLite store and a blob folder in t.TempDir(),
// the upstream client talking to a test registry over HTTP), or with
// setup.fakes on the in-memory fakes of fakes_test.go.
type harness struct {
	// The real dependencies; nil with setup.fakes.
	up     *testregistry.Upstream
	remote *upstream.Client
	store  *store.Store
	blobs  *blobstore.FS
	// The fakes; nil without setup.fakes.
	fakeUp    *fakeRemote
	fakeStore *fakeStore
	fakeBlobs *fakeBlobs

	// What the checks read: the real store and blob folder, or the fakes.
	refs interface {
		Blob(ctx context.Context, owner int64, d oci.Digest) (store.Blob, error)
	}
	files interface {
		Stat(ctx context.Context, d oci.Digest) (int64, error)
		Temps() ([]blobstore.TempFile, error)
	}
	groups int64 // the last group id given out over fakes

	cache  *cache.Cache
	clock  *testclock.Clock
	stored chan struct{} // receives once per committed download
}

type setup struct {
	// fakes runs the cache on the in-memory fakes of the store, the blob
	// store and the upstream; registry and intercept then do not apply.
	fakes    bool
	registry testregistry.Options
	// cache options; the harness sets Now (to the harness clock) and Stored.
	cache cache.Options
	// intercept, when set, sees every request of the upstream client and
	// sends it on with next (or answers it itself).
	intercept func(req *http.Request, next http.RoundTripper) (*http.Response, error)
	// remote tunes the upstream client; the harness sets URL and Transport,
	// and Retries defaults to none. With remoteClock, the client runs on
	// the harness clock (its circuit breaker's back-off).
	remote      upstream.Options
	remoteClock bool
}

// epoch is where the harness clock starts: whole seconds, so times survive
// the store's microsecond precision unchanged.
var epoch = time.Date(2030, time.January, 1, 0, 0, 0, 0, time.UTC)

func newHarness(t *testing.T, s setup) *harness {
	t.Helper()
	h := &harness{clock: testclock.New(epoch), stored: make(chan struct{}, 16)}
	opts := s.cache
	opts.Now = h.clock.Now
	// The harness plays the operator's upstream, as the main cache has it.
	opts.TrustHead = true
	opts.Stored = func() {
		select {
		case h.stored <- struct{}{}:
		default:
		}
	}
	if s.fakes {
		h.fakeUp, h.fakeStore, h.fakeBlobs = newFakeRemote(), newFakeStore(), newFakeBlobs(t)
		h.refs, h.files = h.fakeStore, h.fakeBlobs
		h.cache = cache.New(h.fakeStore, h.fakeBlobs, h.fakeUp, opts)
		t.Cleanup(h.cache.Close)
		return h
	}

	ctx := t.Context()
	h.up = testregistry.New(t, s.registry)
	box, err := secretbox.New(bytes.Repeat([]byte{7}, secretbox.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if h.store, err = store.OpenSQLite(ctx, filepath.Join(dir, "dproxy.db"), box); err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { h.store.Close() })
	if h.blobs, err = blobstore.NewFS(filepath.Join(dir, "blobs")); err != nil {
		t.Fatalf("open blob folder: %v", err)
	}
	h.refs, h.files = h.store, h.blobs

	base := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(base.CloseIdleConnections)
	var tr http.RoundTripper = base
	if s.intercept != nil {
		tr = roundTripFunc(func(req *http.Request) (*http.Response, error) { return s.intercept(req, base) })
	}
	// No retries: a failure injected by a test is seen at once, without
	// the client's real-time back-off.
	ro := s.remote
	ro.URL, ro.Transport = h.up.URL, tr
	if ro.Retries == 0 {
		ro.Retries = -1
	}
	if s.remoteClock {
		ro.Now = h.clock.Now
	}
	if h.remote, err = upstream.New(ro); err != nil {
		t.Fatalf("upstream client: %v", err)
	}
	h.cache = cache.New(h.store, h.blobs, h.remote, opts)
	t.Cleanup(h.cache.Close)
	return h
}

// target creates a group at path (over fakes: gives out a new group id)
// and returns the target of its requests for image with creds.
func (h *harness) target(t *testing.T, path, image string, creds upstream.Credentials) cache.Target {
	t.Helper()
	if h.fakeStore != nil {
		h.groups++
		return cache.Target{GroupID: h.groups, Image: image, Creds: creds}
	}
	g, err := h.store.CreateGroup(t.Context(), path)
	if err != nil {
		t.Fatalf("create group %s: %v", path, err)
	}
	return cache.Target{GroupID: g.ID, Image: image, Creds: creds}
}

// image is an image pushed to the test registry.
type image struct {
	digest oci.Digest // of the manifest
	layer  oci.Digest // of its only layer
	bytes  []byte     // the layer's content
}

// push pushes a random image of one layer of about layerSize bytes as
// repo:tag.
func (h *harness) push(t *testing.T, repo, tag string, layerSize int64) image {
	t.Helper()
	img := h.up.PushRandomImage(t, repo, tag, 1, layerSize)
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	return image{digest: digest(t, img.Digest), layer: digest(t, layers[0].Digest), bytes: content(t, layers[0])}
}

func digest(t *testing.T, f func() (v1.Hash, error)) oci.Digest {
	t.Helper()
	h, err := f()
	if err != nil {
		t.Fatal(err)
	}
	return oci.Digest(h.String())
}

func content(t *testing.T, l v1.Layer) []byte {
	t.Helper()
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tag parses a tag reference.
func tag(t *testing.T, s string) oci.Reference {
	t.Helper()
	ref, err := oci.ParseReference(s)
	if err != nil || ref.IsDigest() {
		t.Fatalf("tag %q: %v", s, err)
	}
	return ref
}

// readBlob reads a whole blob the cache serves and closes it.
func readBlob(b *cache.Blob) ([]byte, error) {
	defer b.Close()
	return io.ReadAll(b)
}

// waitStored waits until the cache committed a download.
func (h *harness) waitStored(t *testing.T) {
	t.Helper()
	select {
	case <-h.stored:
	case <-time.After(patience):
		t.Fatalf("no download was committed within %s", patience)
	}
}

// requests returns the number of requests the test registry received.
func (h *harness) requests() int {
	n := 0
	for _, c := range h.up.Counts() {
		n += c
	}
	return n
}

// checkNotStored fails t unless blob d is absent: no reference of group,
// no file, no temp file left behind.
func (h *harness) checkNotStored(t *testing.T, group int64, d oci.Digest) {
	t.Helper()
	h.checkNoReference(t, group, d)
	if size, err := h.files.Stat(t.Context(), d); !errors.Is(err, oci.ErrBlobUnknown) {
		t.Errorf("blob file of %s: size %d, err %v; want none", d, size, err)
	}
	temps, err := h.files.Temps()
	if err != nil {
		t.Fatal(err)
	}
	if len(temps) > 0 {
		t.Errorf("temp files left behind: %+v", temps)
	}
}

// checkNoReference fails t if group has a reference to blob d.
func (h *harness) checkNoReference(t *testing.T, group int64, d oci.Digest) {
	t.Helper()
	if row, err := h.refs.Blob(t.Context(), group, d); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("group %d's reference to blob %s: %+v, err %v; want none", group, d, row, err)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// upstreamPath reports whether req is a registry request of method for a
// manifest ("manifests") or a blob ("blobs").
func upstreamPath(req *http.Request, method, kind string) bool {
	return req.Method == method && strings.Contains(req.URL.Path, "/"+kind+"/")
}

// gate holds requests (or response bodies) until it opens, and tells how
// many are held.
type gate struct {
	open    chan struct{}
	once    sync.Once
	arrived chan struct{} // receives once per held request
}

func newGate(t *testing.T) *gate {
	g := &gate{open: make(chan struct{}), arrived: make(chan struct{}, 1024)}
	t.Cleanup(g.release)
	return g
}

func (g *gate) release() { g.once.Do(func() { close(g.open) }) }

// wait holds the caller until the gate opens or ctx ends.
func (g *gate) wait(ctx context.Context) error {
	g.arrived <- struct{}{}
	select {
	case <-g.open:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// gatedBody is a response body whose bytes flow once its gate opens.
type gatedBody struct {
	io.ReadCloser
	ctx  context.Context
	gate *gate
	held bool
}

func (b *gatedBody) Read(p []byte) (int, error) {
	if !b.held {
		b.held = true
		if err := b.gate.wait(b.ctx); err != nil {
			return 0, err
		}
	}
	return b.ReadCloser.Read(p)
}

// waitingCtx is a caller's context that reports when the caller starts
// waiting for a manifest request it shares with others: when Cache.shared
// itself selects on Done. By then the caller has joined the shared request.
type waitingCtx struct {
	context.Context
	once    sync.Once
	waiting chan<- struct{}
}

// sharedFunc is the function of package cache whose wait waitingCtx reports.
const sharedFunc = "github.com/dproxy/dproxy/internal/cache.(*Cache).shared"

func (c *waitingCtx) Done() <-chan struct{} {
	pc := make([]uintptr, 1)
	caller, _ := runtime.CallersFrames(pc[:runtime.Callers(2, pc)]).Next()
	if caller.Function == sharedFunc {
		c.once.Do(func() { c.waiting <- struct{}{} })
	}
	return c.Context.Done()
}
