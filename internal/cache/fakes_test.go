package cache_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/dproxy/dproxy/internal/blobstore"
	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/store"
	"github.com/dproxy/dproxy/internal/upstream"
)

// In-memory fakes of what a Cache runs on: the store's cache tables, the
// blob store and the upstream registry. Each keeps the contract of the
// real one that the cache relies on, and lets a test hold, break or count
// what the cache asks of it.

// fakeStore is the store's cache tables in memory, with the semantics of
// store.Store's: one row per owner and digest, or per owner, image and
// reference; a missing row is an error wrapping store.ErrNotFound.
type fakeStore struct {
	mu        sync.Mutex
	lastID    int64
	manifests map[manifestKey]store.Manifest
	blobs     map[store.BlobKey]store.Blob
	lists     map[listKey]store.List
	// purges counts each owner's purges; unreferenced is when garbage
	// collection first found a blob unreferenced.
	purges       map[int64]int64
	unreferenced map[oci.Digest]time.Time
}

type listKey struct {
	owner                int64
	image, kind, subject string
}

type manifestKey struct {
	owner            int64
	image, reference string
}

func newFakeStore() *fakeStore {
	return &fakeStore{manifests: map[manifestKey]store.Manifest{}, blobs: map[store.BlobKey]store.Blob{}, lists: map[listKey]store.List{},
		purges: map[int64]int64{}, unreferenced: map[oci.Digest]time.Time{}}
}

func (s *fakeStore) Manifest(_ context.Context, owner int64, image, reference string) (store.Manifest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.manifests[manifestKey{owner, image, reference}]
	if !ok {
		return store.Manifest{}, fmt.Errorf("manifest %s:%s of %d: %w", image, reference, owner, store.ErrNotFound)
	}
	return m, nil
}

// PutManifest inserts or replaces a row; a replaced row keeps its id and
// creation time, as the store's upsert does.
func (s *fakeStore) PutManifest(_ context.Context, m store.Manifest) (store.Manifest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := manifestKey{m.OwnerID, m.Image, m.Reference}
	if old, ok := s.manifests[k]; ok {
		m.ID, m.CreatedAt = old.ID, old.CreatedAt
	} else {
		s.lastID++
		m.ID = s.lastID
	}
	m.Content = bytes.Clone(m.Content)
	s.manifests[k] = m
	return m, nil
}

func (s *fakeStore) ConfirmManifest(_ context.Context, id int64, at time.Time) error {
	return s.updateManifest(id, func(m *store.Manifest) { m.UpdatedAt = at })
}

func (s *fakeStore) TouchManifests(_ context.Context, ids []int64, at time.Time) error {
	for _, id := range ids {
		if err := s.updateManifest(id, func(m *store.Manifest) { m.ReadAt = at }); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	return nil
}

func (s *fakeStore) updateManifest(id int64, fn func(*store.Manifest)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, m := range s.manifests {
		if m.ID == id {
			fn(&m)
			s.manifests[k] = m
			return nil
		}
	}
	return fmt.Errorf("manifest %d: %w", id, store.ErrNotFound)
}

func (s *fakeStore) Blob(_ context.Context, owner int64, d oci.Digest) (store.Blob, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.blobs[store.BlobKey{OwnerID: owner, Digest: d}]
	if !ok {
		return store.Blob{}, fmt.Errorf("blob %s of %d: %w", d, owner, store.ErrNotFound)
	}
	return b, nil
}

// PutBlob inserts a reference, or updates its size and read time.
func (s *fakeStore) PutBlob(_ context.Context, b store.Blob) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := store.BlobKey{OwnerID: b.OwnerID, Digest: b.Digest}
	if old, ok := s.blobs[k]; ok {
		b.CreatedAt = old.CreatedAt
	}
	s.blobs[k] = b
	delete(s.unreferenced, b.Digest)
	return nil
}

// PutBlobUnpurged is PutBlob unless the owner was purged since generation.
func (s *fakeStore) PutBlobUnpurged(ctx context.Context, b store.Blob, generation int64) (bool, error) {
	s.mu.Lock()
	purged := s.purges[b.OwnerID] != generation
	s.mu.Unlock()
	if purged {
		return false, nil
	}
	return true, s.PutBlob(ctx, b)
}

func (s *fakeStore) PurgeGeneration(_ context.Context, owner int64) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.purges[owner], nil
}

func (s *fakeStore) UnreferencedSince(_ context.Context, d oci.Digest, now time.Time) (time.Time, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.blobs {
		if k.Digest == d {
			delete(s.unreferenced, d)
			return time.Time{}, true, nil
		}
	}
	since, ok := s.unreferenced[d]
	if !ok {
		since = now
		s.unreferenced[d] = now
	}
	return since, false, nil
}

func (s *fakeStore) ForgetUnreferenced(_ context.Context, d oci.Digest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.unreferenced, d)
	return nil
}

func (s *fakeStore) DeleteBlob(_ context.Context, owner int64, d oci.Digest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.blobs, store.BlobKey{OwnerID: owner, Digest: d})
	return nil
}

func (s *fakeStore) TouchBlobs(_ context.Context, keys []store.BlobKey, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		if b, ok := s.blobs[k]; ok {
			b.ReadAt = at
			s.blobs[k] = b
		}
	}
	return nil
}

func (s *fakeStore) BlobReferenced(_ context.Context, d oci.Digest) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.blobs {
		if k.Digest == d {
			return true, nil
		}
	}
	return false, nil
}

func (s *fakeStore) DropBlob(_ context.Context, d oci.Digest) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for k := range s.blobs {
		if k.Digest == d {
			delete(s.blobs, k)
			n++
		}
	}
	return n, nil
}

// fakeBlobs is a blob store keeping committed blobs in memory. Its temp
// files are real files in a folder of their own: the cache writes a
// download into an *os.File and its readers open it by name while it
// grows. Commit keeps blobstore.FS's contract: it takes the temp file
// over, keeps a blob already stored, and removes the temp file also when
// it fails.
type fakeBlobs struct {
	dir string // of temp files

	failed chan error // receives the error of each failed Commit, once it cleaned up

	mu        sync.Mutex
	blobs     map[oci.Digest][]byte
	commitErr error // when set, the next Commit fails with it
	commits   int   // successful
}

func newFakeBlobs(t *testing.T) *fakeBlobs {
	return &fakeBlobs{dir: t.TempDir(), blobs: map[oci.Digest][]byte{}, failed: make(chan error, 16)}
}

func (b *fakeBlobs) CreateTemp() (*os.File, error) {
	return os.CreateTemp(b.dir, "download-*")
}

// failNextCommit makes the next Commit fail with err, as a full disk would.
func (b *fakeBlobs) failNextCommit(err error) {
	b.mu.Lock()
	b.commitErr = err
	b.mu.Unlock()
}

func (b *fakeBlobs) Commit(_ context.Context, d oci.Digest, tmp *os.File) error {
	err := b.commit(d, tmp)
	b.Abort(tmp)
	if err != nil {
		b.failed <- err
	}
	return err
}

func (b *fakeBlobs) commit(d oci.Digest, tmp *os.File) error {
	b.mu.Lock()
	err := b.commitErr
	b.commitErr = nil
	b.mu.Unlock()
	if err != nil {
		return fmt.Errorf("commit blob %s: %w", d, err)
	}
	content, err := os.ReadFile(tmp.Name())
	if err != nil {
		return fmt.Errorf("commit blob %s: %w", d, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.blobs[d]; !ok {
		b.blobs[d] = content
	}
	b.commits++
	return nil
}

// Abort closes and removes a temp file; it does nothing to a file already
// removed.
func (b *fakeBlobs) Abort(tmp *os.File) {
	tmp.Close()
	if filepath.Dir(tmp.Name()) == b.dir {
		os.Remove(tmp.Name())
	}
}

func (b *fakeBlobs) Open(_ context.Context, d oci.Digest) (blobstore.Blob, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	content, ok := b.blobs[d]
	if !ok {
		return nil, fmt.Errorf("open blob %s: %w", d, oci.ErrBlobUnknown)
	}
	return memBlob{bytes.NewReader(content)}, nil
}

// memBlob is a stored blob opened for reading. It has no file identity,
// so the cache treats it as it treats an S3 object.
type memBlob struct{ *bytes.Reader }

func (memBlob) Close() error { return nil }

func (b *fakeBlobs) Stat(_ context.Context, d oci.Digest) (int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	content, ok := b.blobs[d]
	if !ok {
		return 0, fmt.Errorf("stat blob %s: %w", d, oci.ErrBlobUnknown)
	}
	return int64(len(content)), nil
}

func (b *fakeBlobs) Delete(_ context.Context, d oci.Digest) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.blobs, d)
	return nil
}

// Temps lists the temp files left, as blobstore.FS.Temps does.
func (b *fakeBlobs) Temps() ([]blobstore.TempFile, error) {
	entries, err := os.ReadDir(b.dir)
	if err != nil {
		return nil, err
	}
	out := make([]blobstore.TempFile, 0, len(entries))
	for _, e := range entries {
		if info, err := e.Info(); err == nil {
			out = append(out, blobstore.TempFile{Name: e.Name(), Size: info.Size(), ModTime: info.ModTime()})
		}
	}
	return out, nil
}

// committed returns the number of successful commits.
func (b *fakeBlobs) committed() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.commits
}

// fakeRemote is an upstream registry in memory whose answers the test
// sets. Any manifest is manifest; a blob is what blobs holds under its
// digest, whatever bytes they are. With hold set, a blob GET answers its
// headers at once and hands its body to the test (receive it with
// nextGet) to be fed, ended or broken. It counts what it was asked.
type fakeRemote struct {
	gets chan *heldBody // the bodies of held GETs, in the order asked

	mu        sync.Mutex
	manifest  upstream.Manifest
	blobs     map[oci.Digest][]byte
	headAll   bool // HEAD of any blob answers 200
	hold      bool
	blobGETs  int
	blobHEADs int
	manGETs   int
}

func newFakeRemote() *fakeRemote {
	return &fakeRemote{gets: make(chan *heldBody, 64), blobs: map[oci.Digest][]byte{}}
}

// setBlob makes the upstream serve content as blob d.
func (r *fakeRemote) setBlob(d oci.Digest, content []byte) {
	r.mu.Lock()
	r.blobs[d] = content
	r.mu.Unlock()
}

// setHold sets whether blob GETs hand their bodies to the test.
func (r *fakeRemote) setHold(on bool) {
	r.mu.Lock()
	r.hold = on
	r.mu.Unlock()
}

func (r *fakeRemote) HeadManifest(_ context.Context, _ upstream.Credentials, _ string, _ oci.Reference) (upstream.Descriptor, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.manifest.Descriptor, nil
}

func (r *fakeRemote) GetManifest(_ context.Context, _ upstream.Credentials, _ string, _ oci.Reference) (upstream.Manifest, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.manGETs++
	return r.manifest, nil
}

// GetBlob answers with the length of the blob as announced size. A held
// body fails its reads once ctx ends, as an HTTP response body does.
func (r *fakeRemote) GetBlob(ctx context.Context, _ upstream.Credentials, _ string, d oci.Digest) (io.ReadCloser, int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.blobGETs++
	b, ok := r.blobs[d]
	if !ok {
		return nil, 0, fmt.Errorf("blob %s: %w", d, oci.ErrBlobUnknown)
	}
	if !r.hold {
		return io.NopCloser(bytes.NewReader(b)), int64(len(b)), nil
	}
	pr, pw := io.Pipe()
	stop := context.AfterFunc(ctx, func() { pr.CloseWithError(ctx.Err()) })
	r.gets <- &heldBody{digest: d, ctx: ctx, w: pw}
	return &pipeBody{PipeReader: pr, stop: stop}, int64(len(b)), nil
}

func (r *fakeRemote) HeadBlob(_ context.Context, _ upstream.Credentials, _ string, d oci.Digest) (upstream.Descriptor, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.blobHEADs++
	if b, ok := r.blobs[d]; ok || r.headAll {
		return upstream.Descriptor{Digest: d, Size: int64(len(b))}, nil
	}
	return upstream.Descriptor{}, fmt.Errorf("blob %s: %w", d, oci.ErrBlobUnknown)
}

func (r *fakeRemote) RateLimit(upstream.Credentials) (upstream.RateLimit, bool) {
	return upstream.RateLimit{}, false
}

func (r *fakeRemote) counts() (gets, heads, manifestGETs int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.blobGETs, r.blobHEADs, r.manGETs
}

// nextGet returns the body of the next held blob GET.
func (r *fakeRemote) nextGet(t *testing.T) *heldBody {
	t.Helper()
	select {
	case g := <-r.gets:
		return g
	case <-time.After(patience):
		t.Fatalf("no blob GET reached the upstream within %s", patience)
		return nil
	}
}

// pipeBody is the body of a held GET as the cache sees it.
type pipeBody struct {
	*io.PipeReader
	stop func() bool
}

func (b *pipeBody) Close() error {
	b.stop()
	return b.PipeReader.Close()
}

// heldBody is the upstream's end of a held GET's body.
type heldBody struct {
	digest oci.Digest
	ctx    context.Context // the GET's
	w      *io.PipeWriter
}

// send sends p; it returns once the cache has read all of it, and fails t
// when the cache stopped reading.
func (b *heldBody) send(t *testing.T, p []byte) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := b.w.Write(p)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("upstream sending %d bytes of blob %s: %v (the download stopped reading)", len(p), b.digest, err)
		}
	case <-time.After(patience):
		t.Fatalf("the download did not read %d bytes of blob %s within %s", len(p), b.digest, patience)
	}
}

// end ends the body: the cache reads EOF.
func (b *heldBody) end() { b.w.Close() }

// fail breaks the body: the cache's next read fails with err.
func (b *heldBody) fail(err error) { b.w.CloseWithError(err) }

func (s *fakeStore) List(_ context.Context, owner int64, image, kind, subject string) (store.List, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.lists[listKey{owner, image, kind, subject}]
	if !ok {
		return store.List{}, store.ErrNotFound
	}
	return l, nil
}

func (s *fakeStore) PutList(_ context.Context, l store.List) (store.List, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := listKey{l.OwnerID, l.Image, l.Kind, l.Subject}
	if old, ok := s.lists[k]; ok {
		l.ID, l.CreatedAt = old.ID, old.CreatedAt
	} else {
		s.lastID++
		l.ID = s.lastID
	}
	s.lists[k] = l
	return l, nil
}

func (s *fakeStore) TouchList(_ context.Context, id int64, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, l := range s.lists {
		if l.ID == id {
			l.ReadAt = at
			s.lists[k] = l
			return nil
		}
	}
	return store.ErrNotFound
}
