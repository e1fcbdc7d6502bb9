package cache_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/dproxy/dproxy/internal/cache"
	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/upstream"
)

// The download state machine of Cache.Blob, on the in-memory fakes: the
// fake upstream holds each blob body until the test sends its bytes, so
// every step below waits for an event, never for time.

// randomBlob returns n random bytes and their digest.
func randomBlob(t *testing.T, n int) ([]byte, oci.Digest) {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b, oci.FromBytes(b)
}

// receive returns the next value of ch; none within patience is a hang.
func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(patience):
		t.Fatalf("%s: nothing within %s", what, patience)
		var zero T
		return zero
	}
}

type readResult struct {
	data []byte
	err  error
}

// readFull reads exactly n bytes of b, failing t if they do not come.
func readFull(t *testing.T, b *cache.Blob, n int) []byte {
	t.Helper()
	ch := make(chan readResult, 1)
	go func() {
		p := make([]byte, n)
		m, err := io.ReadFull(b, p)
		ch <- readResult{p[:m], err}
	}()
	r := receive(t, ch, "reading the bytes the upstream sent so far")
	if r.err != nil {
		t.Fatalf("read %d of %d bytes: %v", len(r.data), n, r.err)
	}
	return r.data
}

// readRest reads b to its end or its first error.
func readRest(t *testing.T, b *cache.Blob) ([]byte, error) {
	t.Helper()
	ch := make(chan readResult, 1)
	go func() {
		p, err := io.ReadAll(b)
		ch <- readResult{p, err}
	}()
	r := receive(t, ch, "reading a blob to its end")
	return r.data, r.err
}

// miss asks for blob d as tg and fails t unless the answer streams from
// a download.
func (h *harness) miss(ctx context.Context, t *testing.T, tg cache.Target, d oci.Digest) *cache.Blob {
	t.Helper()
	b, err := h.cache.Blob(ctx, tg, d)
	if err != nil {
		t.Fatalf("Blob(%s) for group %d: %v", d, tg.GroupID, err)
	}
	if b.Cached {
		b.Close()
		t.Fatalf("Blob(%s) for group %d was served from storage, want a download", d, tg.GroupID)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// checkStored fails t unless blob d is committed with content and
// referenced by every group of tgs.
func (h *harness) checkStored(t *testing.T, d oci.Digest, content []byte, tgs ...cache.Target) {
	t.Helper()
	if size, err := h.files.Stat(t.Context(), d); err != nil || size != int64(len(content)) {
		t.Errorf("stored blob %s: size %d, %v; want %d bytes", d, size, err, len(content))
	}
	for _, tg := range tgs {
		if row, err := h.refs.Blob(t.Context(), tg.GroupID, d); err != nil || row.Size != int64(len(content)) {
			t.Errorf("group %d's reference to blob %s: %+v, %v; want one of %d bytes", tg.GroupID, d, row, err, len(content))
		}
	}
}

// checkGETs fails t unless the upstream got want blob GETs in all.
func (h *harness) checkGETs(t *testing.T, want int) {
	t.Helper()
	if gets, _, _ := h.fakeUp.counts(); gets != want {
		t.Errorf("upstream blob GETs = %d, want %d", gets, want)
	}
}

// checkRetry asks for blob d again, after a failed download, and checks
// that a new download (the upstream's gets-th GET) serves and stores it.
func (h *harness) checkRetry(t *testing.T, tg cache.Target, d oci.Digest, content []byte, gets int) {
	t.Helper()
	h.fakeUp.setBlob(d, content)
	b := h.miss(t.Context(), t, tg, d)
	if got, err := readRest(t, b); err != nil || !bytes.Equal(got, content) {
		t.Fatalf("the request after the failure: %d of %d bytes, %v", len(got), len(content), err)
	}
	h.waitStored(t)
	h.checkStored(t, d, content, tg)
	h.checkGETs(t, gets)
}

// Concurrent requests for a blob nobody has share one upstream GET; the
// commit records the blob for every group whose clients joined.
func TestConcurrentBlobRequestsShareOneDownload(t *testing.T) {
	t.Parallel()
	const clients = 8
	for _, r := range []struct {
		name   string
		groups int
	}{
		{"one group", 1},
		{"two groups on the operator's upstream", 2},
	} {
		t.Run(r.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			h := newHarness(t, setup{fakes: true})
			content, d := randomBlob(t, 300<<10)
			h.fakeUp.setBlob(d, content)
			h.fakeUp.setHold(true)
			var tgs []cache.Target
			for i := range r.groups {
				tgs = append(tgs, h.target(t, string(rune('a'+i)), "library/app", upstream.Credentials{}))
			}

			type result struct {
				b   *cache.Blob
				err error
			}
			results := make(chan result, clients)
			for i := range clients {
				go func() {
					b, err := h.cache.Blob(ctx, tgs[i%len(tgs)], d)
					results <- result{b, err}
				}()
			}
			// Blob returns once a client streams from a download, and the
			// held body keeps every download from ending: all clients are in.
			var blobs []*cache.Blob
			for range clients {
				res := receive(t, results, "a client's Blob")
				if res.err != nil {
					t.Fatalf("Blob: %v", res.err)
				}
				defer res.b.Close()
				if res.b.Cached {
					t.Fatalf("a client was served from storage while nothing was stored")
				}
				blobs = append(blobs, res.b)
			}
			h.checkGETs(t, 1)

			body := h.fakeUp.nextGet(t)
			body.send(t, content)
			body.end()
			for i, b := range blobs {
				if got, err := readRest(t, b); err != nil || !bytes.Equal(got, content) {
					t.Errorf("client %d: %d of %d bytes, %v", i, len(got), len(content), err)
				}
			}
			h.waitStored(t)
			h.checkGETs(t, 1)
			if n := h.fakeBlobs.committed(); n != 1 {
				t.Errorf("%d commits, want 1", n)
			}
			h.checkStored(t, d, content, tgs...)
		})
	}
}

// Clients stream a blob's bytes as they arrive from the upstream, whether
// they started the download, joined it early or joined once bytes had
// arrived; the last byte waits until the whole blob is verified.
func TestClientsStreamWhileTheDownloadRuns(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	h := newHarness(t, setup{fakes: true})
	content, d := randomBlob(t, 256<<10)
	h.fakeUp.setBlob(d, content)
	h.fakeUp.setHold(true)
	tg := h.target(t, "a", "library/app", upstream.Credentials{})

	leader := h.miss(ctx, t, tg, d)
	body := h.fakeUp.nextGet(t)
	early := h.miss(ctx, t, tg, d)
	half := len(content) / 2
	body.send(t, content[:half])
	late := h.miss(ctx, t, tg, d)

	readers := []struct {
		name string
		b    *cache.Blob
	}{{"leader", leader}, {"early follower", early}, {"late follower", late}}
	// The upstream still holds the second half.
	for _, r := range readers {
		if got := readFull(t, r.b, half-1); !bytes.Equal(got, content[:half-1]) {
			t.Errorf("%s: the first %d bytes differ from the upstream's", r.name, half-1)
		}
	}
	if n := h.cache.InFlight(); n != 1 {
		t.Errorf("%d downloads in flight while the upstream holds the body, want 1", n)
	}
	if n := h.fakeBlobs.committed(); n != 0 {
		t.Errorf("%d commits before the body ended, want 0", n)
	}

	body.send(t, content[half:])
	body.end()
	for _, r := range readers {
		rest, err := readRest(t, r.b)
		if got := append(bytes.Clone(content[:half-1]), rest...); err != nil || !bytes.Equal(got, content) {
			t.Errorf("%s: %d of %d bytes in all, %v", r.name, len(got), len(content), err)
		}
	}
	h.waitStored(t)
	h.checkGETs(t, 1)
	h.checkStored(t, d, content, tg)
}

// A client that goes away ends only its own response: the download it
// started goes on, detached from it, for the clients that joined it and
// for the cache, which stores the blob.
func TestDownloadOutlivesTheClientThatStartedIt(t *testing.T) {
	t.Parallel()
	for _, r := range []struct {
		name     string
		follower bool
	}{
		{"with a follower", true},
		{"alone", false},
	} {
		t.Run(r.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			h := newHarness(t, setup{fakes: true})
			content, d := randomBlob(t, 192<<10)
			h.fakeUp.setBlob(d, content)
			h.fakeUp.setHold(true)
			tg := h.target(t, "a", "library/app", upstream.Credentials{})

			leaderCtx, leave := context.WithCancel(ctx)
			defer leave()
			leader := h.miss(leaderCtx, t, tg, d)
			body := h.fakeUp.nextGet(t)
			var follower *cache.Blob
			if r.follower {
				follower = h.miss(ctx, t, tg, d)
			}
			part := len(content) / 3
			body.send(t, content[:part])
			readFull(t, leader, part-1)

			// The leader's client goes away while it waits for more bytes.
			leave()
			if err := body.ctx.Err(); err != nil {
				t.Errorf("the upstream request ended with the client that started it: %v", err)
			}
			if _, err := readRest(t, leader); !errors.Is(err, context.Canceled) {
				t.Errorf("the leader's read after its client left: %v, want %v", err, context.Canceled)
			}
			leader.Close()

			body.send(t, content[part:]) // fails the test if the download stopped reading
			body.end()
			if follower != nil {
				if got, err := readRest(t, follower); err != nil || !bytes.Equal(got, content) {
					t.Errorf("follower: %d of %d bytes, %v", len(got), len(content), err)
				}
			}
			h.waitStored(t)
			h.checkStored(t, d, content, tg)

			// Stored: the next request is served from storage.
			b, err := h.cache.Blob(ctx, tg, d)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := readBlob(b); err != nil || !b.Cached || !bytes.Equal(got, content) {
				t.Errorf("request after the download: cached %v, %d bytes, %v; want the stored blob", b.Cached, len(got), err)
			}
			h.checkGETs(t, 1)
		})
	}
}

// When the upstream connection breaks mid-body, every client of the
// download gets an error (never a short body that looks complete),
// nothing is stored, and the next request downloads again.
func TestUpstreamFailureMidStream(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	h := newHarness(t, setup{fakes: true})
	content, d := randomBlob(t, 256<<10)
	h.fakeUp.setBlob(d, content)
	h.fakeUp.setHold(true)
	tg := h.target(t, "a", "library/app", upstream.Credentials{})

	leader := h.miss(ctx, t, tg, d)
	body := h.fakeUp.nextGet(t)
	follower := h.miss(ctx, t, tg, d)
	part := len(content) / 2
	body.send(t, content[:part])
	body.fail(errors.New("connection reset by peer"))

	for name, b := range map[string]*cache.Blob{"leader": leader, "follower": follower} {
		got, err := readRest(t, b)
		if !errors.Is(err, oci.ErrUnavailable) || !strings.Contains(err.Error(), string(d)) || !strings.Contains(err.Error(), "connection reset by peer") {
			t.Errorf("%s: error %v, want an unavailable error naming the blob and the cause", name, err)
		}
		if len(got) > part || !bytes.Equal(got, content[:len(got)]) {
			t.Errorf("%s: received %d bytes, want at most the %d the upstream sent", name, len(got), part)
		}
	}
	h.checkNotStored(t, tg.GroupID, d)
	if n := h.cache.InFlight(); n != 0 {
		t.Errorf("%d downloads in flight after the failure, want 0", n)
	}

	h.fakeUp.setHold(false)
	h.checkRetry(t, tg, d, content, 2)
}

// Bytes that do not hash to the digest asked for are never stored and
// never completely served: the client gets an error before the last byte.
func TestBlobNotMatchingItsDigestIsNotStored(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	h := newHarness(t, setup{fakes: true})
	content, d := randomBlob(t, 128<<10)
	other := bytes.Clone(content)
	other[len(other)/2] ^= 0xff
	h.fakeUp.setBlob(d, other) // the announced length is right
	tg := h.target(t, "a", "library/app", upstream.Credentials{})

	got, err := readRest(t, h.miss(ctx, t, tg, d))
	if !errors.Is(err, oci.ErrUnavailable) || !strings.Contains(err.Error(), "digest") || !strings.Contains(err.Error(), string(d)) {
		t.Errorf("error %v, want an unavailable error about the digest %s", err, d)
	}
	if len(got) >= len(other) {
		t.Errorf("the client received all %d bytes of a blob that does not match its digest", len(got))
	}
	h.checkNotStored(t, tg.GroupID, d)

	h.checkRetry(t, tg, d, content, 2)
}

// When the blob store fails to commit a verified download, no group
// references the blob, the temp file is gone and the next request
// downloads again. The bytes were verified, so a client that read them all
// before the commit failed has a correct blob; one still reading gets them
// and then the commit's error.
func TestCommitFailure(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	h := newHarness(t, setup{fakes: true})
	content, d := randomBlob(t, 128<<10)
	h.fakeUp.setBlob(d, content)
	h.fakeUp.setHold(true)
	tg := h.target(t, "a", "library/app", upstream.Credentials{})
	errFull := errors.New("no space left on device")
	h.fakeBlobs.failNextCommit(errFull)

	b := h.miss(ctx, t, tg, d)
	body := h.fakeUp.nextGet(t)
	half := len(content) / 2
	body.send(t, content[:half])
	readFull(t, b, half-1) // the client reads no further until the end
	body.send(t, content[half:])
	body.end()
	if err := receive(t, h.fakeBlobs.failed, "the failed commit"); !errors.Is(err, errFull) {
		t.Fatalf("commit failed with %v, want %v", err, errFull)
	}
	h.checkNotStored(t, tg.GroupID, d)

	h.fakeUp.setHold(false)
	h.checkRetry(t, tg, d, content, 2)
	if n := h.fakeBlobs.committed(); n != 1 {
		t.Errorf("%d commits, want 1 (the retry's)", n)
	}

	h.cache.Close() // the failed download has surely ended
	rest, err := readRest(t, b)
	if !errors.Is(err, errFull) || !strings.Contains(err.Error(), "commit blob "+string(d)) {
		t.Errorf("the client still reading: error %v, want the commit's failure naming the blob", err)
	}
	if got := append(bytes.Clone(content[:half-1]), rest...); !bytes.Equal(got, content) {
		t.Errorf("the client still reading got %d bytes, want the %d verified ones", len(got), len(content))
	}
}

// Close stops a download in progress: its clients get an error and
// nothing of it is kept.
func TestCloseStopsDownloadsAndKeepsNothing(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	h := newHarness(t, setup{fakes: true})
	content, d := randomBlob(t, 128<<10)
	h.fakeUp.setBlob(d, content)
	h.fakeUp.setHold(true)
	tg := h.target(t, "a", "library/app", upstream.Credentials{})

	b := h.miss(ctx, t, tg, d)
	body := h.fakeUp.nextGet(t)
	part := len(content) / 2
	body.send(t, content[:part])
	readFull(t, b, part-1)

	h.cache.Close() // returns once the download ended
	if _, err := readRest(t, b); !errors.Is(err, oci.ErrUnavailable) {
		t.Errorf("reading after Close: %v, want an unavailable error", err)
	}
	if body.ctx.Err() == nil {
		t.Errorf("the upstream request is still open after Close")
	}
	h.checkNotStored(t, tg.GroupID, d)
	if n := h.fakeBlobs.committed(); n != 0 {
		t.Errorf("%d commits after Close, want 0", n)
	}
}

// Downloads reports a download in progress with its bytes so far, its
// size, its image, its groups and the clients streaming from it, and
// forgets it once it is stored.
func TestDownloadsReportsProgressAndReaders(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	h := newHarness(t, setup{fakes: true})
	content, d := randomBlob(t, 64<<10)
	h.fakeUp.setBlob(d, content)
	h.fakeUp.setHold(true)
	tg := h.target(t, "a", "library/app", upstream.Credentials{})

	first := h.miss(ctx, t, tg, d)
	body := h.fakeUp.nextGet(t)
	second := h.miss(ctx, t, tg, d)
	third := h.miss(ctx, t, tg, d)
	half := len(content) / 2
	body.send(t, content[:half])
	readFull(t, first, half-1) // the bytes arrived

	dls := h.cache.Downloads()
	if len(dls) != 1 {
		t.Fatalf("Downloads() = %+v, want the one download", dls)
	}
	got := dls[0]
	if got.Digest != d || got.Image != "library/app" || got.Written != int64(half) || got.Size != int64(len(content)) ||
		got.Readers != 3 || len(got.Owners) != 1 || got.Owners[0] != tg.GroupID || got.Started.IsZero() {
		t.Errorf("Downloads()[0] = %+v; want %s of library/app, %d of %d bytes, 3 readers, owner %d",
			got, d, half, len(content), tg.GroupID)
	}
	third.Close()
	third.Close() // a second Close counts nothing
	if n := h.cache.Downloads()[0].Readers; n != 2 {
		t.Errorf("after a client closed: %d readers, want 2", n)
	}

	body.send(t, content[half:])
	body.end()
	for _, b := range []*cache.Blob{first, second} {
		if _, err := readRest(t, b); err != nil {
			t.Fatal(err)
		}
	}
	h.waitStored(t)
	h.cache.Close() // waits for the download to end
	if dls := h.cache.Downloads(); len(dls) != 0 {
		t.Errorf("after the download ended Downloads() = %+v, want none", dls)
	}
}
