package app_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/dproxy/dproxy/internal/config"
	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/store"
)

// pullAll pulls an image through dproxy and reads every layer (remote
// verifies each layer's digest while reading).
func pullAll(t *testing.T, ref string, opts []remote.Option) v1.Image {
	t.Helper()
	img, err := remote.Image(parseRef(t, ref), opts...)
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	if _, err := img.ConfigFile(); err != nil {
		t.Fatalf("config of %s: %v", ref, err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatalf("layers of %s: %v", ref, err)
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatalf("layer of %s: %v", ref, err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Fatalf("read layer of %s: %v", ref, err)
		}
		if err := rc.Close(); err != nil {
			t.Fatalf("verify layer of %s: %v", ref, err)
		}
	}
	return img
}

func TestPullIsByteIdentical(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.group("acme")
	tok := e.user("alice", "acme", store.RoleGuest)
	opts := pullOpts("alice", tok)

	img := e.up.PushRandomImage(t, "library/alpine", "latest", 2, 4096)
	idx := e.up.PushIndex(t, "library/multi", "v1")

	// "alpine" is library/alpine upstream.
	got := pullAll(t, e.ref("acme", "alpine:latest"), opts)
	wantRaw, _ := img.RawManifest()
	gotRaw, _ := got.RawManifest()
	if !bytes.Equal(gotRaw, wantRaw) {
		t.Errorf("manifest bytes differ from upstream:\n got %s\nwant %s", gotRaw, wantRaw)
	}
	wantDigest, _ := img.Digest()
	if d, _ := got.Digest(); d != wantDigest {
		t.Errorf("digest = %s, want %s", d, wantDigest)
	}

	// The index passes through unchanged; children are fetched by digest.
	gotIdx, err := remote.Index(parseRef(t, e.ref("acme", "multi:v1")), opts...)
	if err != nil {
		t.Fatalf("pull index: %v", err)
	}
	wantIdxRaw, _ := idx.RawManifest()
	gotIdxRaw, _ := gotIdx.RawManifest()
	if !bytes.Equal(gotIdxRaw, wantIdxRaw) {
		t.Errorf("index bytes differ from upstream")
	}
	im, _ := gotIdx.IndexManifest()
	for _, m := range im.Manifests {
		pullAll(t, e.ref("acme", "multi@"+m.Digest.String()), opts)
	}

	// GET and HEAD answer the same headers, which are the upstream's.
	jwt := e.jwt("alice", tok, "acme/dependency_proxy/containers/multi")
	path := "/v2/acme/dependency_proxy/containers/multi/manifests/v1"
	accept := []string{"Accept", oci.AcceptManifests}
	getRes, getBody := e.do(http.MethodGet, path, jwt, accept...)
	headRes, headBody := e.do(http.MethodHead, path, jwt, accept...)
	if getRes.StatusCode != 200 || headRes.StatusCode != 200 {
		t.Fatalf("GET %d, HEAD %d", getRes.StatusCode, headRes.StatusCode)
	}
	if !bytes.Equal(getBody, wantIdxRaw) || len(headBody) != 0 {
		t.Errorf("GET body equal to upstream: %v; HEAD body length %d", bytes.Equal(getBody, wantIdxRaw), len(headBody))
	}
	wantIdxDigest, _ := idx.Digest()
	wantMT, _ := idx.MediaType()
	for h, want := range map[string]string{
		"Content-Type":          string(wantMT),
		"Docker-Content-Digest": wantIdxDigest.String(),
		"Content-Length":        itoa(len(wantIdxRaw)),
	} {
		if g := getRes.Header.Get(h); g != want {
			t.Errorf("GET %s = %q, want %q", h, g, want)
		}
		if g := headRes.Header.Get(h); g != want {
			t.Errorf("HEAD %s = %q, want %q", h, g, want)
		}
	}
	if getRes.Header.Get("ETag") == "" || getRes.Header.Get("ETag") != headRes.Header.Get("ETag") {
		t.Errorf("ETag GET %q HEAD %q", getRes.Header.Get("ETag"), headRes.Header.Get("ETag"))
	}
}

func TestSecondPullCostsOneHead(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.group("acme")
	tok := e.user("alice", "acme", store.RoleGuest)
	opts := pullOpts("alice", tok)
	img := e.up.PushRandomImage(t, "library/node", "latest", 3, 2048)
	ref := e.ref("acme", "node:latest")

	pullAll(t, ref, opts)
	if n := e.up.Count("GET", "token"); n != 1 {
		t.Errorf("first pull made %d upstream token requests, want 1", n)
	}
	e.up.ResetCounts()

	pullAll(t, ref, opts)
	for _, c := range []struct {
		method, kind string
		want         int
	}{
		{"HEAD", "manifest", 1}, {"GET", "manifest", 0}, {"GET", "blob", 0}, {"HEAD", "blob", 0}, {"GET", "token", 0},
	} {
		if n := e.up.Count(c.method, c.kind); n != c.want {
			t.Errorf("second pull: %d upstream %s %s requests, want %d", n, c.method, c.kind, c.want)
		}
	}

	// By digest: immutable, no upstream request at all.
	e.up.ResetCounts()
	d, _ := img.Digest()
	pullAll(t, e.ref("acme", "node@"+d.String()), opts)
	for _, kind := range []string{"manifest", "blob", "token", "ping"} {
		for _, m := range []string{"GET", "HEAD"} {
			if n := e.up.Count(m, kind); n != 0 {
				t.Errorf("pull by digest: %d upstream %s %s requests, want 0", n, m, kind)
			}
		}
	}

	// The tag moves upstream: the new manifest is served and cached.
	moved := e.up.PushRandomImage(t, "library/node", "latest", 1, 1024)
	e.up.ResetCounts()
	got := pullAll(t, ref, opts)
	wantD, _ := moved.Digest()
	if gotD, _ := got.Digest(); gotD != wantD {
		t.Fatalf("after the tag moved: digest %s, want %s", gotD, wantD)
	}
	if n := e.up.Count("GET", "manifest"); n != 1 {
		t.Errorf("moved tag: %d upstream manifest GETs, want 1", n)
	}
	e.up.ResetCounts()
	pullAll(t, ref, opts)
	if n := e.up.Count("GET", "manifest"); n != 0 {
		t.Errorf("moved tag pulled again: %d manifest GETs, want 0 (it was cached)", n)
	}
}

func TestConcurrentColdBlobIsFetchedOnceAndStreamed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	b := e.aliceBlob("big", 8<<20)
	d, size, jwt, path := b.digest, b.size, b.jwt, b.path
	// The upstream sends the first MiB and then waits: every client must
	// get bytes while the upstream has not finished, or they were stored
	// and forwarded rather than streamed.
	hold := e.up.HoldBlob(d.String(), 1<<20)
	defer hold.Release()

	const clients = 20
	type result struct {
		sum string
		n   int64
		err error
	}
	results := make([]result, clients)
	firstByte := make(chan int, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &results[i]
			req, _ := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
			req.Header.Set("Authorization", "Bearer "+jwt)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				r.err = err
				firstByte <- i
				return
			}
			defer res.Body.Close()
			if res.StatusCode != 200 {
				r.err = errors.New(res.Status)
				firstByte <- i
				return
			}
			h := sha256.New()
			buf := make([]byte, 32<<10)
			for {
				n, err := res.Body.Read(buf)
				if n > 0 {
					if r.n == 0 {
						firstByte <- i
					}
					r.n += int64(n)
					h.Write(buf[:n])
				}
				if err == io.EOF {
					break
				}
				if err != nil {
					r.err = err
					if r.n == 0 {
						firstByte <- i
					}
					return
				}
			}
			r.sum = "sha256:" + hex.EncodeToString(h.Sum(nil))
		}()
	}

	// A generous deadline: it only bounds a failing run.
	deadline := time.After(time.Minute)
	for got := 0; got < clients; got++ {
		select {
		case <-firstByte:
		case <-deadline:
			hold.Release()
			wg.Wait()
			t.Fatalf("%d of %d clients received a byte while the upstream held the blob after 1 MiB: the download is not streamed", got, clients)
		}
	}
	// The upstream did block at the mark before it was released, so it had
	// not finished when the clients received their first bytes.
	select {
	case <-hold.Reached():
	case <-deadline:
		t.Fatal("the upstream never reached its hold")
	}
	hold.Release()
	wg.Wait()

	for i, r := range results {
		if r.err != nil {
			t.Fatalf("client %d: %v", i, r.err)
		}
		if r.sum != d.String() || r.n != size {
			t.Fatalf("client %d got %d bytes with digest %s, want %d bytes %s", i, r.n, r.sum, size, d)
		}
	}
	if n := e.up.CountBlob("GET", d.String()); n != 1 {
		t.Errorf("%d upstream GETs of the blob, want 1", n)
	}
}

func TestUpstreamFailuresServeCachedContent(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		fail       func(e *env)
		uncached   int
		code       string
		retryAfter string
	}{
		{"down", func(e *env) { e.up.SetDown(true) }, http.StatusBadGateway, "UNAVAILABLE", ""},
		{"5xx", func(e *env) { e.up.SetStatus(http.StatusServiceUnavailable) }, http.StatusBadGateway, "UNAVAILABLE", ""},
		{"429", func(e *env) { e.up.SetRateLimit(100, 0); e.up.Set429(true, 30*time.Second) }, http.StatusTooManyRequests, "TOOMANYREQUESTS", "30"},
		{"hanging", func(e *env) { e.up.SetHang(true) }, http.StatusGatewayTimeout, "UNAVAILABLE", ""},
	}
	// The upstream's header timeout is far longer than the cached pull
	// below may take (2 minutes, only to end a failing run): what bounds
	// that pull is the 300 ms revalidation timeout, however busy the
	// machine. An uncached request to the hanging upstream meets the cache's
	// fetch timeout instead.
	const headerTimeout = 10 * time.Minute
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{revalidate: 300 * time.Millisecond, configure: func(cfg *config.Config) {
				cfg.UpstreamResponseHeaderTimeout = headerTimeout
			}})
			e.group("acme")
			tok := e.user("alice", "acme", store.RoleGuest)
			opts := pullOpts("alice", tok)
			e.up.PushRandomImage(t, "library/alpine", "3", 2, 1024)
			e.up.PushRandomImage(t, "library/other", "1", 1, 1024)
			ref := e.ref("acme", "alpine:3")
			want := pullAll(t, ref, opts)
			jwt := e.jwt("alice", tok, "acme/dependency_proxy/containers/alpine")
			jwtOther := e.jwt("alice", tok, "acme/dependency_proxy/containers/other")

			c.fail(e)
			t.Cleanup(func() { e.up.SetHang(false) })

			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			got := pullAll(t, ref, append(opts, remote.WithContext(ctx)))
			wd, _ := want.Digest()
			if gd, _ := got.Digest(); gd != wd {
				t.Errorf("cached pull digest %s, want %s", gd, wd)
			}
			res, _ := e.do(http.MethodGet, "/v2/acme/dependency_proxy/containers/alpine/manifests/3", jwt)
			if g := res.Header.Get("X-Dproxy-Cache"); g != "stale" {
				t.Errorf("X-Dproxy-Cache = %q, want stale", g)
			}

			res, body := e.do(http.MethodGet, "/v2/acme/dependency_proxy/containers/other/manifests/1", jwtOther)
			if res.StatusCode != c.uncached {
				t.Errorf("uncached: status %d, want %d (body %s)", res.StatusCode, c.uncached, body)
			}
			code, msg := ociError(t, body)
			if code != c.code {
				t.Errorf("uncached: code %s, want %s", code, c.code)
			}
			if c.name == "429" && !strings.Contains(msg, "limit 100 per 6h0m0s, 0 remaining") {
				t.Errorf("uncached 429 without the upstream's limits: %q", msg)
			}
			if g := res.Header.Get("Retry-After"); g != c.retryAfter {
				t.Errorf("Retry-After = %q, want %q", g, c.retryAfter)
			}
		})
	}
}

func TestTokenServiceOutageServesCachedContent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first := newEnv(t, envOptions{keepDataDir: dir})
	first.group("acme")
	tok := first.user("alice", "acme", store.RoleGuest)
	first.up.PushRandomImage(t, "library/alpine", "latest", 1, 1024)
	want := pullAll(t, first.ref("acme", "alpine:latest"), pullOpts("alice", tok))
	first.close()

	// A restarted server has no upstream token; the token service is down.
	first.up.SetTokenStatus(http.StatusServiceUnavailable)
	e := newEnv(t, envOptions{keepDataDir: dir, keepUpstream: first.up})
	got := pullAll(t, e.ref("acme", "alpine:latest"), pullOpts("alice", tok))
	wd, _ := want.Digest()
	if gd, _ := got.Digest(); gd != wd {
		t.Errorf("digest %s, want %s", gd, wd)
	}
	if n := e.up.Count("GET", "token"); n == 0 {
		t.Errorf("the token service was never asked; the test did not exercise the outage")
	}
}

func TestCorruptedBlobIsNeverCached(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	b := e.aliceBlob("bad", 1<<20)
	d, jwt, path := b.digest, b.jwt, b.path

	e.up.CorruptBlob(d.String(), true)
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+jwt)
	res, err := http.DefaultClient.Do(req)
	if err == nil {
		b, rerr := io.ReadAll(res.Body)
		res.Body.Close()
		if rerr == nil && res.StatusCode == 200 && digestOf(b) == d.String() {
			t.Fatalf("a corrupted upstream blob reached the client as valid")
		}
		if rerr == nil && res.StatusCode == 200 {
			t.Fatalf("the client received a complete body (%d bytes) of a corrupted blob", len(b))
		}
	}
	waitFor(t, "download to finish", func() bool { return !e.downloading() })
	if _, err := e.app.Blobs.Stat(context.Background(), oci.Digest(d.String())); !errors.Is(err, oci.ErrBlobUnknown) {
		t.Errorf("corrupted blob stored: Stat err = %v", err)
	}
	g, _ := e.app.Store.GroupByPath(context.Background(), "acme")
	if _, err := e.app.Store.Blob(context.Background(), g.ID, oci.Digest(d.String())); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("corrupted blob referenced: err = %v", err)
	}

	e.up.CorruptBlob(d.String(), false)
	res2, body := e.do(http.MethodGet, path, jwt)
	if res2.StatusCode != 200 || digestOf(body) != d.String() {
		t.Fatalf("after the upstream was fixed: status %d, digest %s", res2.StatusCode, digestOf(body))
	}
}

func TestClientDisconnectDoesNotStopDownload(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	b := e.aliceBlob("half", 8<<20)
	d, jwt, path := b.digest, b.jwt, b.path
	e.up.SetBandwidth(4 << 20)

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+jwt)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if _, err := io.ReadFull(res.Body, make([]byte, 1<<20)); err != nil {
		t.Fatalf("read the first MiB: %v", err)
	}
	cancel()
	res.Body.Close()

	waitFor(t, "blob to be cached", func() bool {
		_, err := e.app.Blobs.Stat(context.Background(), oci.Digest(d.String()))
		return err == nil
	})
	if err := e.app.Blobs.Verify(context.Background(), oci.Digest(d.String())); err != nil {
		t.Fatalf("cached blob does not verify: %v", err)
	}
	e.up.SetBandwidth(0)
	res2, body := e.do(http.MethodGet, path, jwt)
	if res2.StatusCode != 200 || digestOf(body) != d.String() {
		t.Fatalf("second pull: status %d digest %s", res2.StatusCode, digestOf(body))
	}
	if n := e.up.CountBlob("GET", d.String()); n != 1 {
		t.Errorf("%d upstream GETs of the blob, want 1", n)
	}
}

func TestCachedBlobRange(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	b := e.aliceBlob("ranged", 64<<10)
	d, jwt, path := b.digest, b.jwt, b.path
	_, full := e.do(http.MethodGet, path, jwt)
	waitFor(t, "blob to be cached", func() bool {
		_, err := e.app.Blobs.Stat(context.Background(), oci.Digest(d.String()))
		return err == nil && !e.downloading()
	})
	res, part := e.do(http.MethodGet, path, jwt, "Range", "bytes=100-199")
	if res.StatusCode != http.StatusPartialContent || !bytes.Equal(part, full[100:200]) {
		t.Fatalf("range: status %d, %d bytes, equal %v", res.StatusCode, len(part), bytes.Equal(part, full[100:200]))
	}
	// A range past the end answers 416 with the OCI error body and the size.
	res, body := e.do(http.MethodGet, path, jwt, "Range", "bytes=999999-")
	if res.StatusCode != http.StatusRequestedRangeNotSatisfiable || res.Header.Get("Content-Range") != "bytes */"+itoa(len(full)) {
		t.Errorf("unsatisfiable range: status %d, Content-Range %q", res.StatusCode, res.Header.Get("Content-Range"))
	}
	if code, _ := ociError(t, body); code != "RANGE_INVALID" || res.Header.Get("Content-Type") != "application/json" {
		t.Errorf("unsatisfiable range: code %s, Content-Type %q; want RANGE_INVALID in JSON", code, res.Header.Get("Content-Type"))
	}
	e.up.ResetCounts()
	res, _ = e.do(http.MethodHead, path, jwt)
	if res.StatusCode != 200 || res.Header.Get("Content-Length") != itoa(len(full)) {
		t.Errorf("HEAD cached blob: %d, length %s", res.StatusCode, res.Header.Get("Content-Length"))
	}
	// A HEAD on a blob that is not cached goes upstream as a HEAD, never a GET.
	other := e.up.PushRandomImage(t, "library/ranged", "v2", 1, 1024)
	ol, _ := other.Layers()
	od, _ := ol[0].Digest()
	res, _ = e.do(http.MethodHead, "/v2/acme/dependency_proxy/containers/ranged/blobs/"+od.String(), jwt)
	if res.StatusCode != 200 {
		t.Errorf("HEAD uncached blob: %d", res.StatusCode)
	}
	if g, h := e.up.Count("GET", "blob"), e.up.Count("HEAD", "blob"); g != 0 || h != 1 {
		t.Errorf("HEAD uncached blob made %d GETs and %d HEADs upstream, want 0 and 1", g, h)
	}
}

// downloading reports whether a blob download is in flight.
func (e *env) downloading() bool { return e.app.Cache.InFlight() > 0 }

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func itoa(n int) string { return strconv.Itoa(n) }

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
