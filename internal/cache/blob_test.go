package cache_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/dproxy/dproxy/internal/cache"
	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/testregistry"
	"github.com/dproxy/dproxy/internal/upstream"
)

// A group is served a blob stored (or being downloaded) for another group
// only when the upstream confirms, with the group's own credentials, that
// the blob is in the group's repository: the cache never lends content a
// group could not have fetched itself.
func TestBlobOfAnotherGroupNeedsUpstreamConfirmation(t *testing.T) {
	t.Parallel()
	const repo = "library/app"
	users := map[string]string{"alice": "alice-pw", "bob": "bob-pw"}
	alice := upstream.Credentials{Username: "alice", Password: "alice-pw"}
	// The test registry answers a blob of any repository once it was pushed
	// to one, so refusals here are of credentials.
	refusals := []struct {
		name    string
		creds   upstream.Credentials // group b's
		wantErr string               // in the error group b gets
	}{
		{"wrong password", upstream.Credentials{Username: "bob", Password: "not-bobs"}, "rejected the credentials of bob"},
		{"anonymous where login is required", upstream.Credentials{}, "rejected the credentials of anonymous"},
	}
	for _, r := range refusals {
		for _, inProgress := range []bool{false, true} {
			name := r.name + "/stored for group a"
			if inProgress {
				name = r.name + "/downloading for group a"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				ctx := t.Context()
				body := newGate(t)
				h := newHarness(t, setup{
					registry: testregistry.Options{Users: users, RequireAuth: true},
					intercept: func(req *http.Request, next http.RoundTripper) (*http.Response, error) {
						res, err := next.RoundTrip(req)
						if inProgress && err == nil && res.StatusCode == http.StatusOK && upstreamPath(req, http.MethodGet, "blobs") {
							// Group a's download stays in progress until the test lets it finish.
							res.Body = &gatedBody{ReadCloser: res.Body, ctx: req.Context(), gate: body}
						}
						return res, err
					},
				})
				img := h.push(t, repo, "v1", 64<<10)
				a := h.target(t, "a", repo, alice)
				b := h.target(t, "b", repo, r.creds)

				blobA, err := h.cache.Blob(ctx, a, img.layer)
				if err != nil {
					t.Fatalf("group a: %v", err)
				}
				if inProgress {
					if blobA.Cached || h.cache.InFlight() != 1 {
						t.Fatalf("group a's blob: cached %v, %d downloads running; want its download in progress", blobA.Cached, h.cache.InFlight())
					}
				} else {
					readAll(t, blobA, img.bytes)
					h.waitStored(t)
				}

				if blobB, err := h.cache.Blob(ctx, b, img.layer); err == nil {
					blobB.Close()
					t.Errorf("group b, refused by the upstream, was served group a's blob (cached %v)", blobB.Cached)
				} else if !strings.Contains(err.Error(), r.wantErr) {
					t.Errorf("group b's error = %v, want one saying %q", err, r.wantErr)
				}

				if inProgress {
					body.release()
					readAll(t, blobA, img.bytes)
					h.waitStored(t)
				}
				h.checkNoReference(t, b.GroupID, img.layer)
				if _, err := h.store.Blob(ctx, a.GroupID, img.layer); err != nil {
					t.Errorf("group a's reference to the blob: %v", err)
				}
				if n := h.up.CountBlob(http.MethodGet, string(img.layer)); n != 1 {
					t.Errorf("upstream GETs of the blob = %d, want 1 (group a's)", n)
				}
			})
		}
	}
}

func readAll(t *testing.T, b *cache.Blob, want []byte) {
	t.Helper()
	got, err := readBlob(b)
	if err != nil {
		t.Fatalf("read blob: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes of blob, not the %d pushed", len(got), len(want))
	}
}

// A blob larger than MaxBlobSize is refused, whatever the upstream
// announces, and nothing of it is kept; a client never receives more bytes
// than the limit or than the upstream announced.
func TestBlobOverSizeIsRefusedAndNotCached(t *testing.T) {
	t.Parallel()
	const layerSize = 256 << 10 // the blob is a little larger: a gzipped tar of random bytes
	const announced = 64 << 10
	for _, r := range []struct {
		name string
		max  int64
		// hideLength makes the upstream send the blob chunked, without a
		// Content-Length.
		hideLength bool
		// announce, when set, is the Content-Length the client is handed
		// instead of the real one.
		announce int64
		// upFront: Blob itself fails, before any byte is served.
		upFront   bool
		maxServed int
	}{
		{name: "announced larger than the limit", max: layerSize / 2, upFront: true},
		{name: "no Content-Length, streams past the limit", max: layerSize / 2, hideLength: true, maxServed: layerSize / 2},
		{name: "streams more than announced", max: 4 * layerSize, announce: announced, maxServed: announced},
	} {
		t.Run(r.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			h := newHarness(t, setup{
				cache: cache.Options{MaxBlobSize: r.max},
				intercept: func(req *http.Request, next http.RoundTripper) (*http.Response, error) {
					res, err := next.RoundTrip(req)
					if r.announce > 0 && err == nil && res.StatusCode == http.StatusOK && upstreamPath(req, http.MethodGet, "blobs") {
						// net/http never reads a body past its Content-Length, so no
						// server can do this; a broken proxy or HTTP stack could.
						res.ContentLength = r.announce
						res.Header.Set("Content-Length", strconv.FormatInt(r.announce, 10))
					}
					return res, err
				},
			})
			img := h.push(t, "library/app", "v1", layerSize)
			size := int64(len(img.bytes))
			premise := size > r.max // over the limit
			if r.announce > 0 {
				premise = size <= r.max && r.announce < size // within the limit, longer than announced
			}
			if !premise {
				t.Fatalf("blob of %d bytes, limit %d, announced %d: not the case under test", size, r.max, r.announce)
			}
			h.up.HideBlobLength(string(img.layer), r.hideLength)
			tg := h.target(t, "a", "library/app", upstream.Credentials{})

			b, err := h.cache.Blob(ctx, tg, img.layer)
			var got []byte
			if err == nil {
				if r.upFront {
					t.Errorf("Blob answered a blob of %d bytes announced larger than the limit %d (size %d)", len(img.bytes), r.max, b.Size)
				}
				got, err = readBlob(b)
			}
			if !errors.Is(err, oci.ErrSizeInvalid) {
				t.Errorf("error = %v, want one wrapping %q", err, oci.ErrSizeInvalid)
			}
			if len(got) > r.maxServed {
				t.Errorf("the client received %d bytes, more than %d", len(got), r.maxServed)
			}
			h.cache.Close() // waits for the download to end
			h.checkNotStored(t, tg.GroupID, img.layer)
		})
	}
}

// A closed cache (its virtual-registry upstream was removed, or the server
// is stopping) starts no download: the request fails at once and the
// upstream is not asked.
func TestClosedCacheStartsNoDownload(t *testing.T) {
	t.Parallel()
	h := newHarness(t, setup{})
	img := h.push(t, "library/app", "v1", 4<<10)
	tg := h.target(t, "acme", "library/app", upstream.Credentials{})
	h.cache.Close()
	before := h.up.CountBlob(http.MethodGet, string(img.layer))
	_, err := h.cache.Blob(t.Context(), tg, img.layer)
	if !errors.Is(err, oci.ErrUnavailable) || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Blob on a closed cache: %v, want an unavailable error saying it was closed", err)
	}
	if n := h.cache.InFlight(); n != 0 {
		t.Errorf("%d downloads in flight on a closed cache", n)
	}
	if n := h.up.CountBlob(http.MethodGet, string(img.layer)) - before; n != 0 {
		t.Errorf("a closed cache sent %d blob GETs upstream", n)
	}
}

// A blob whose bytes were hashed while downloaded is recorded as verified
// when committed: its first serve from storage hashes nothing and offers
// the file itself (Direct), which the server sends with sendfile. The
// proof that nothing is hashed: the stored file, rewritten in place with
// its size and modification time kept (corruption no file identity sees,
// left to fsck --verify-content), is served as it is.
func TestFirstServeAfterDownloadIsNotHashedAgain(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	h := newHarness(t, setup{})
	img := h.push(t, "library/app", "v1", 256<<10)
	tg := h.target(t, "a", "library/app", upstream.Credentials{})

	b, err := h.cache.Blob(ctx, tg, img.layer)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, b, img.bytes)
	h.waitStored(t)

	path := h.blobs.Path(img.layer)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	rewritten := bytes.Clone(img.bytes)
	rewritten[0] ^= 0xff
	if _, err := f.WriteAt(rewritten[:1], 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}

	b, err = h.cache.Blob(ctx, tg, img.layer)
	if err != nil {
		t.Fatal(err)
	}
	if !b.Cached {
		t.Fatalf("first serve after the download: not from storage (the stored file was hashed and dropped)")
	}
	direct, ok := b.ReadCloser.(interface{ Direct() io.ReadSeeker })
	if !ok || direct.Direct() == nil {
		t.Errorf("first serve after the download goes through hashing, want the stored file itself (Direct)")
	}
	readAll(t, b, rewritten)
	if n := h.up.CountBlob(http.MethodGet, string(img.layer)); n != 1 {
		t.Errorf("upstream GETs of the blob = %d, want 1", n)
	}
}
