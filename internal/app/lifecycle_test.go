package app_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/dproxy/dproxy/internal/app"
	"github.com/dproxy/dproxy/internal/blobstore"
	"github.com/dproxy/dproxy/internal/cache"
	"github.com/dproxy/dproxy/internal/commands"
	"github.com/dproxy/dproxy/internal/commands/cmdutil"
	"github.com/dproxy/dproxy/internal/config"
	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/store"
	"github.com/dproxy/dproxy/internal/testclock"
	"github.com/dproxy/dproxy/internal/testregistry"
)

// blobsOf returns the digests of an image's config and layers.
func blobsOf(t testing.TB, img v1.Image) []oci.Digest {
	t.Helper()
	cfg, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	out := []oci.Digest{oci.Digest(cfg.String())}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		d, _ := l.Digest()
		out = append(out, oci.Digest(d.String()))
	}
	return out
}

// settle waits until no blob is in use (a client has every byte before
// the blob is committed and referenced, and before the handler lets go of
// a stored file) and writes the pending read times.
func (e *env) settle() {
	e.t.Helper()
	waitFor(e.t, "blobs to be out of use", e.app.Cache.Idle)
	e.app.Cache.FlushReads(context.Background())
}

// settleBlobs is settle for a test that holds a blob open itself: it waits
// until no download runs and none of blobs is in use.
func (e *env) settleBlobs(blobs []oci.Digest) {
	e.t.Helper()
	waitFor(e.t, "blobs to be out of use", func() bool {
		if e.app.Cache.InFlight() > 0 {
			return false
		}
		for _, d := range blobs {
			if e.app.Cache.InUse(d) {
				return false
			}
		}
		return true
	})
	e.app.Cache.FlushReads(context.Background())
}

// stored reports whether blob d's file is in e's blob folder.
func (e *env) stored(d oci.Digest) bool {
	_, err := e.app.Blobs.Stat(context.Background(), d)
	return err == nil
}

// pull is pullAll that returns the error instead of failing the test, for
// use from other goroutines.
func pull(ref string, opts []remote.Option) error {
	r, err := parseRefErr(ref)
	if err != nil {
		return err
	}
	img, err := remote.Image(r, opts...)
	if err != nil {
		return fmt.Errorf("pull %s: %w", ref, err)
	}
	layers, err := img.Layers()
	if err != nil {
		return fmt.Errorf("layers of %s: %w", ref, err)
	}
	if _, err := img.ConfigFile(); err != nil {
		return fmt.Errorf("config of %s: %w", ref, err)
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			return fmt.Errorf("layer of %s: %w", ref, err)
		}
		_, err = io.Copy(io.Discard, rc)
		if cerr := rc.Close(); err == nil {
			err = cerr // the digest check
		}
		if err != nil {
			return fmt.Errorf("read layer of %s: %w", ref, err)
		}
	}
	return nil
}

func TestTTLExpiryOnFakeClock(t *testing.T) {
	t.Parallel()
	clock := testclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	e := newEnv(t, envOptions{clock: clock})
	e.group("acme")
	opts := pullOpts("alice", e.user("alice", "acme", store.RoleGuest))
	ctx := context.Background()
	kept := e.up.PushRandomImage(t, "library/kept", "v1", 1, 2048)
	gone := e.up.PushRandomImage(t, "library/gone", "v1", 1, 2048)
	pullAll(t, e.ref("acme", "kept:v1"), opts)
	pullAll(t, e.ref("acme", "gone:v1"), opts)
	e.settle()

	clock.Add(60 * 24 * time.Hour)
	pullAll(t, e.ref("acme", "kept:v1"), opts) // read within the window
	e.settle()
	clock.Add(40 * 24 * time.Hour) // gone: last read 100 days ago; kept: 40

	res, err := e.app.Lifecycle.Expire(ctx)
	if err != nil {
		t.Fatalf("Expire: %v", err)
	}
	// The tag and digest rows of gone, and the digest row of kept (its
	// pull read the tag); the config and layer of gone.
	if res.Manifests != 3 || res.Blobs != 2 {
		t.Errorf("expired %d manifests and %d blobs, want 3 and 2", res.Manifests, res.Blobs)
	}
	gc, err := e.app.Lifecycle.CollectGarbage(ctx)
	if err != nil || gc.Deleted != 2 {
		t.Fatalf("CollectGarbage = %+v, %v; want the 2 blobs of the expired image deleted", gc, err)
	}
	// What the jobs did is in the metrics and the log.
	exp := metricsText(t, e)
	for _, want := range []string{
		`dproxy_ttl_expired_total{kind="manifest"} 3`,
		`dproxy_ttl_expired_total{kind="blob"} 2`,
		`dproxy_gc_deleted_blobs_total 2`,
		fmt.Sprintf(`dproxy_gc_freed_bytes_total %d`, gc.FreedBytes),
		`dproxy_lifecycle_runs_total{job="ttl",result="ok"} 1`,
		`dproxy_lifecycle_runs_total{job="gc",result="ok"} 1`,
		fmt.Sprintf(`dproxy_lifecycle_last_success_timestamp_seconds{job="gc"} %g`, float64(clock.Now().Unix())),
	} {
		if !strings.Contains(exp, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	for _, want := range []string{"expired cache entries", "garbage collection deleted unreferenced blob files"} {
		if !strings.Contains(e.logs.String(), want) {
			t.Errorf("no log line %q:\n%s", want, e.logs.String())
		}
	}
	g, _ := e.app.Store.GroupByPath(ctx, "acme")
	if _, err := e.app.Store.Manifest(ctx, g.ID, "library/gone", "v1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("manifest read 100 days ago survived a 90-day TTL: %v", err)
	}
	if _, err := e.app.Store.Manifest(ctx, g.ID, "library/kept", "v1"); err != nil {
		t.Errorf("manifest read 40 days ago was expired: %v", err)
	}
	for _, d := range blobsOf(t, kept) {
		if !e.stored(d) {
			t.Errorf("blob %s of the kept image was deleted", d)
		}
	}
	layer := blobsOf(t, gone)[1]
	for _, d := range blobsOf(t, gone) {
		if e.stored(d) {
			t.Errorf("blob %s of the expired image is still stored", d)
		}
	}
	before := e.up.CountBlob("GET", string(layer))
	pullAll(t, e.ref("acme", "gone:v1"), opts)
	if n := e.up.CountBlob("GET", string(layer)); n != before+1 {
		t.Errorf("the pull after expiry made %d upstream GETs of the layer, want 1", n-before)
	}
}

func TestGCAndPurgeWhileClientsPull(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.group("acme")
	opts := pullOpts("alice", e.user("alice", "acme", store.RoleGuest))
	ctx := context.Background()
	const images = 3
	for i := range images {
		e.up.PushRandomImage(t, fmt.Sprintf("library/img%d", i), "v1", 2, 256<<10)
	}
	g, _ := e.app.Store.GroupByPath(ctx, "acme")
	admin := e.adminToken()

	const clients, rounds = 10, 4
	errs := make(chan error, clients*rounds)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for r := range rounds {
				if err := pull(e.ref("acme", fmt.Sprintf("img%d:v1", (c+r)%images)), opts); err != nil {
					errs <- err
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	purges := 0
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		// Through the admin API, as an operator would (it also makes the
		// downloads in flight forget the group).
		if res, body := e.do(http.MethodDelete, "/api/v4/groups/acme/dependency_proxy/cache", admin); res.StatusCode != http.StatusAccepted {
			t.Fatalf("purge: %d %s", res.StatusCode, body)
		}
		if _, err := e.app.Lifecycle.CollectGarbage(ctx); err != nil {
			t.Fatalf("gc: %v", err)
		}
		purges++
	}
	close(errs)
	for err := range errs {
		t.Errorf("a client failed while the cache was purged and collected: %v", err)
	}
	// The last purge may have run before the last pull, a download a client
	// has finished reading may still be adding its reference, and a handler
	// may not yet have closed a blob its client read to the end: once nothing
	// is in use, purge and collect again, and everything must go.
	waitFor(t, "blobs to be out of use", e.app.Cache.Idle)
	if _, err := e.app.Store.PurgeGroupCache(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.app.Lifecycle.CollectGarbage(ctx); err != nil {
		t.Fatal(err)
	}
	left := 0
	e.app.Blobs.Walk(ctx, func(oci.Digest, int64) error { left++; return nil })
	if left != 0 {
		t.Errorf("%d blob files left after purge and GC, want 0", left)
	}
	t.Logf("%d purge+gc rounds ran while %d clients pulled", purges, clients)
}

func TestSizeCapEvictsLeastRecentlyRead(t *testing.T) {
	t.Parallel()
	const layer = 100 << 10
	clock := testclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	var imgs []v1.Image
	up := testregistry.New(t, testregistry.Options{Now: clock.Now})
	var perImage int64
	for i := range 7 {
		img := up.PushRandomImage(t, fmt.Sprintf("library/img%d", i), "v1", 1, layer)
		imgs = append(imgs, img)
		if i == 0 {
			cfg, _ := img.RawConfigFile()
			perImage = layer + int64(len(cfg))
		}
	}
	maxSize := 3*perImage + perImage/2
	e := newEnv(t, envOptions{keepUpstream: up, clock: clock,
		configure: func(c *config.Config) { c.CacheMaxSize = maxSize }})
	e.group("acme")
	opts := pullOpts("alice", e.user("alice", "acme", store.RoleGuest))
	ctx := context.Background()

	for i := range 6 {
		clock.Add(time.Minute)
		pullAll(t, e.ref("acme", fmt.Sprintf("img%d:v1", i)), opts)
		e.settle()
		if _, err := e.app.Lifecycle.EnforceSizeCap(ctx); err != nil {
			t.Fatalf("EnforceSizeCap: %v", err)
		}
		if n, _ := e.app.Store.CachedBlobBytes(ctx); n > maxSize {
			t.Fatalf("after pulling image %d the cache holds %d bytes, over the cap of %d", i, n, maxSize)
		}
	}
	// Blob by blob, least recently read first: the layers of the three
	// oldest images went (their small configs may be what is left of them);
	// the three newest images are whole.
	for i := range 6 {
		bs := blobsOf(t, imgs[i])
		if i < 3 && e.stored(bs[1]) {
			t.Errorf("layer of image %d (among the least recently read) was kept", i)
		}
		for _, d := range bs {
			if i >= 3 && !e.stored(d) {
				t.Errorf("blob %s of image %d (among the most recently read) was evicted", d, i)
			}
		}
	}

	// A client starts reading image 3's layer; then images 4 and 5 are read
	// again and image 6 is pulled. Image 3's layer is now the least recently
	// read of the complete images, but it is in use: the cap must evict
	// others instead.
	g, _ := e.app.Store.GroupByPath(ctx, "acme")
	inUse := blobsOf(t, imgs[3])[1]
	b, err := e.app.Cache.Blob(ctx, cache.Target{GroupID: g.ID, Image: "library/img3"}, inUse)
	if err != nil || !b.Cached {
		t.Fatalf("open cached layer: %v (cached %v)", err, b != nil && b.Cached)
	}
	var others []oci.Digest
	for _, img := range imgs {
		for _, d := range blobsOf(t, img) {
			if d != inUse {
				others = append(others, d)
			}
		}
	}
	e.settleBlobs(others)
	clock.Add(time.Minute)
	pullAll(t, e.ref("acme", "img4:v1"), opts)
	pullAll(t, e.ref("acme", "img5:v1"), opts)
	e.settleBlobs(others)
	clock.Add(time.Minute)
	pullAll(t, e.ref("acme", "img6:v1"), opts)
	e.settleBlobs(others)
	if _, err := e.app.Lifecycle.EnforceSizeCap(ctx); err != nil {
		t.Fatal(err)
	}
	if !e.stored(inUse) {
		t.Error("the size cap evicted a blob a client is reading")
	}
	if e.stored(blobsOf(t, imgs[4])[1]) && e.stored(blobsOf(t, imgs[5])[1]) {
		t.Error("nothing newer than the blob in use was evicted to make room")
	}
	got, err := io.ReadAll(b)
	b.Close()
	if err != nil || digestOf(got) != string(inUse) {
		t.Errorf("the client reading the blob got %d bytes (digest %s), %v", len(got), digestOf(got), err)
	}
	if _, err := e.app.Lifecycle.EnforceSizeCap(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := e.app.Store.CachedBlobBytes(ctx); n > maxSize {
		t.Errorf("once the reader is gone the cache holds %d bytes, over the cap of %d", n, maxSize)
	}
}

// runCLI runs dproxy with args in this process and returns its exit code
// and output.
func runCLI(args ...string) (int, string) {
	var out bytes.Buffer
	ios := &cmdutil.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &out}
	root := commands.NewRootCmd(ios)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	if err != nil {
		fmt.Fprintln(&out, "error:", err)
	}
	return cmdutil.ExitCode(err), out.String()
}

func TestFsckFindsAndRepairs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	e := newEnv(t, envOptions{keepDataDir: dir})
	e.group("acme")
	tok := e.user("alice", "acme", store.RoleGuest)
	opts := pullOpts("alice", tok)
	var imgs []v1.Image
	for i := range 4 {
		imgs = append(imgs, e.up.PushRandomImage(t, fmt.Sprintf("library/img%d", i), "v1", 1, 4096))
		pullAll(t, e.ref("acme", fmt.Sprintf("img%d:v1", i)), opts)
	}
	e.settle()
	e.close()

	cfg := config.Config{DataDir: dir}
	missing, corrupt := blobsOf(t, imgs[0])[1], blobsOf(t, imgs[1])[1]
	blobPath := func(d oci.Digest) string {
		return filepath.Join(cfg.BlobDir(), "sha256", d.Hex()[:2], d.Hex())
	}
	if err := os.Remove(blobPath(missing)); err != nil {
		t.Fatal(err)
	}
	content, _ := os.ReadFile(blobPath(corrupt))
	content[100] ^= 0xff // same size, wrong bytes
	if err := os.WriteFile(blobPath(corrupt), content, 0o600); err != nil {
		t.Fatal(err)
	}
	orphanContent := []byte("a blob no group references")
	orphan := oci.FromBytes(orphanContent)
	os.MkdirAll(filepath.Dir(blobPath(orphan)), 0o750)
	if err := os.WriteFile(blobPath(orphan), orphanContent, 0o600); err != nil {
		t.Fatal(err)
	}
	stray := filepath.Join(cfg.BlobDir(), "tmp", "download-12345")
	if err := os.WriteFile(stray, []byte("half a layer"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * time.Hour) // fsck spares files written in the last hour
	os.Chtimes(blobPath(orphan), old, old)
	os.Chtimes(stray, old, old)

	code, out := runCLI("fsck", "--data-dir", dir, "--verify-content")
	if code != 1 {
		t.Errorf("fsck of a damaged cache exited %d, want 1:\n%s", code, out)
	}
	for _, want := range []string{
		"missing-file\t" + string(missing), "corrupt-file\t" + string(corrupt),
		"orphan-file\t" + string(orphan), "temp-file\tdownload-12345",
	} {
		if !strings.Contains(out, want+"\tfound") {
			t.Errorf("fsck output lacks %q:\n%s", want, out)
		}
	}
	if code, out := runCLI("fsck", "--data-dir", dir, "--verify-content", "--repair"); code != 0 || strings.Count(out, "\trepaired\t") != 4 {
		t.Errorf("fsck --repair exited %d and repaired %d problems, want 0 and 4:\n%s", code, strings.Count(out, "\trepaired\t"), out)
	}
	if code, out := runCLI("fsck", "--data-dir", dir, "--verify-content"); code != 0 || !strings.Contains(out, ": 0 problems") {
		t.Errorf("fsck after --repair exited %d:\n%s", code, out)
	}

	// Every image is served correctly again; the dropped blobs come from upstream.
	e2 := newEnv(t, envOptions{keepDataDir: dir, keepUpstream: e.up})
	e.up.ResetCounts()
	for i := range 4 {
		pullAll(t, e2.ref("acme", fmt.Sprintf("img%d:v1", i)), opts)
	}
	for _, d := range []oci.Digest{missing, corrupt} {
		if n := e.up.CountBlob("GET", string(d)); n != 1 {
			t.Errorf("blob %s dropped by fsck was fetched %d times, want 1", d, n)
		}
	}
	if n := e.up.CountBlob("GET", string(blobsOf(t, imgs[2])[1])); n != 0 {
		t.Errorf("an intact blob was fetched again %d times", n)
	}
}

// A stored file that is missing, truncated or corrupt is noticed during a
// pull: the entry is dropped and the blob fetched again. Up to the
// pre-verify size (64 MiB by default) the file is checked before its first
// byte is sent, so the same client gets the right bytes; a larger one is
// checked as it is sent, so that response is cut short and the next pull
// is healed.
func TestCorruptFileIsHealedDuringPull(t *testing.T) {
	t.Parallel()
	// Files up to preVerify bytes are hashed before they are served; larger
	// ones while they are served.
	const preVerify = 1 << 20
	for _, size := range []int64{64 << 10, 2 << 20} {
		t.Run(fmt.Sprintf("%d KiB", size>>10), func(t *testing.T) {
			t.Parallel()
			healedAtOnce := size <= preVerify
			e := newEnv(t, envOptions{appOptions: []app.Option{app.WithPreVerifyMax(preVerify)}})
			f := e.aliceBlob("heal", size)
			if res, body := e.do("GET", f.path, f.jwt); res.StatusCode != 200 || digestOf(body) != f.digest.String() {
				t.Fatalf("first pull: %d", res.StatusCode)
			}
			e.settle()
			path := e.app.Blobs.(*blobstore.FS).Path(oci.Digest(f.digest.String()))
			content, _ := os.ReadFile(path)
			for _, tc := range []struct {
				name   string
				damage func() error
				atOnce bool // the next pull itself gets the right bytes
			}{
				{"missing", func() error { return os.Remove(path) }, true},
				{"truncated", func() error { return os.WriteFile(path, content[:len(content)/2], 0o600) }, true},
				{"flipped byte", func() error {
					c := bytes.Clone(content)
					c[10] ^= 1
					if err := os.WriteFile(path, c, 0o600); err != nil {
						return err
					}
					later := time.Now().Add(time.Second) // a coarse clock could keep the mtime
					return os.Chtimes(path, later, later)
				}, healedAtOnce},
			} {
				if err := tc.damage(); err != nil {
					t.Fatal(err)
				}
				before := e.up.CountBlob("GET", f.digest.String())
				res, body := e.do("GET", f.path, f.jwt)
				e.settle()
				got := res.StatusCode == 200 && digestOf(body) == f.digest.String()
				if tc.atOnce && !got {
					t.Errorf("%s: the pull after the damage got %d, %d bytes with digest %s; want the blob", tc.name, res.StatusCode, len(body), digestOf(body))
				}
				if !tc.atOnce {
					if got || len(body) == len(content) {
						t.Errorf("%s: the pull of a file too large to check first got %d bytes (the blob is %d), with digest %s; want it cut short", tc.name, len(body), len(content), digestOf(body))
					}
					res, body = e.do("GET", f.path, f.jwt)
					e.settle()
					if res.StatusCode != 200 || digestOf(body) != f.digest.String() {
						t.Errorf("%s: the pull after the cut one got %d with digest %s", tc.name, res.StatusCode, digestOf(body))
					}
				}
				if n := e.up.CountBlob("GET", f.digest.String()) - before; n != 1 {
					t.Errorf("%s: %d upstream GETs to heal, want 1", tc.name, n)
				}
			}
		})
	}
}

func parseRefErr(s string) (name.Reference, error) {
	return name.ParseReference(s, name.Insecure)
}

// A file served (and so verified) before is not hashed again while it is
// unchanged; a file replaced or rewritten since is hashed again, and a
// corrupt one is still never served whole.
func TestRewrittenFileIsVerifiedAgain(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		corrupt func(t *testing.T, path string, content []byte)
	}{
		{"replaced by rename", func(t *testing.T, path string, content []byte) {
			tmp := path + ".new"
			if err := os.WriteFile(tmp, content, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, path); err != nil {
				t.Fatal(err)
			}
		}},
		{"rewritten in place", func(t *testing.T, path string, content []byte) {
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, content, 0o600); err != nil {
				t.Fatal(err)
			}
			// A coarse filesystem clock could keep the old mtime; any change counts.
			if err := os.Chtimes(path, fi.ModTime().Add(time.Second), fi.ModTime().Add(time.Second)); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{})
			f := e.aliceBlob("reverify", 64<<10)
			for i := range 3 { // a miss, then two cached serves: the first verifies
				if res, body := e.do("GET", f.path, f.jwt); res.StatusCode != 200 || digestOf(body) != f.digest.String() {
					t.Fatalf("pull %d: %d, digest %s", i, res.StatusCode, digestOf(body))
				}
				e.settle()
			}
			path := e.app.Blobs.(*blobstore.FS).Path(oci.Digest(f.digest.String()))
			content, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			bad := bytes.Clone(content)
			bad[10] ^= 1
			tc.corrupt(t, path, bad)
			before := e.up.CountBlob("GET", f.digest.String())
			res, body := e.do("GET", f.path, f.jwt)
			if res.StatusCode == 200 && bytes.Equal(body, bad) {
				t.Fatalf("the corrupt file was served whole")
			}
			res, body = e.do("GET", f.path, f.jwt)
			e.settle()
			if res.StatusCode != 200 || digestOf(body) != f.digest.String() {
				t.Errorf("pull after the corruption got %d with digest %s", res.StatusCode, digestOf(body))
			}
			if n := e.up.CountBlob("GET", f.digest.String()) - before; n != 1 {
				t.Errorf("%d upstream GETs to heal, want 1", n)
			}
		})
	}
}
