package app_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dproxy/dproxy/internal/auth"
	"github.com/dproxy/dproxy/internal/config"
	"github.com/dproxy/dproxy/internal/lifecycle"
	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/store"
	"github.com/dproxy/dproxy/internal/store/storetest"
	"github.com/dproxy/dproxy/internal/testregistry"
)

// cluster is what replicas share: one PostgreSQL schema, one bucket prefix,
// one secret key.
type cluster struct {
	database, storage, s3ID, s3Secret, secretKey string
}

// newCluster gives a test a fresh shared database and bucket prefix in the
// servers named by DPROXY_TEST_POSTGRES and DPROXY_TEST_S3
// (http://ACCESS_KEY:SECRET_KEY@host:port/bucket; the bucket must exist).
// Without them it skips the test, or fails it in CI (storetest.Require).
func newCluster(t *testing.T) cluster {
	t.Helper()
	raw := storetest.Require(t, storetest.EnvS3)
	dsn := storetest.PostgresDSN(t)
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		t.Fatalf("%s: want http://KEY:SECRET@host:port/bucket", storetest.EnvS3)
	}
	secret, _ := u.User.Password()
	prefix := strings.ReplaceAll(strings.ToLower(t.Name()), "/", "-") + "-" + time.Now().Format("150405.000000")
	storage := "s3://" + strings.Trim(u.Path, "/") + "/" + prefix + "?" + url.Values{
		"endpoint": {u.Scheme + "://" + u.Host}, "region": {"us-east-1"}, "path_style": {"true"},
	}.Encode()
	return cluster{
		database: dsn, storage: storage, s3ID: u.User.Username(), s3Secret: secret,
		secretKey: strings.Repeat("5a", 32),
	}
}

func (c cluster) configure(cfg *config.Config) {
	cfg.Database, cfg.Storage, cfg.SecretKey = c.database, c.storage, c.secretKey
	cfg.S3AccessKeyID, cfg.S3SecretAccessKey = c.s3ID, c.s3Secret
}

// environ is the configuration as a child process's environment.
func (c cluster) environ() []string {
	return []string{
		"DPROXY_DATABASE=" + c.database, "DPROXY_STORAGE=" + c.storage, "DPROXY_SECRET_KEY=" + c.secretKey,
		"AWS_ACCESS_KEY_ID=" + c.s3ID, "AWS_SECRET_ACCESS_KEY=" + c.s3Secret,
	}
}

// replicas starts n in-process replicas of one cluster in front of one
// upstream, each with its own data dir and HTTP server.
func (c cluster) replicas(t *testing.T, n int, up *testregistry.Upstream) []*env {
	t.Helper()
	out := make([]*env, n)
	for i := range out {
		out[i] = newEnv(t, envOptions{keepUpstream: up, configure: c.configure})
	}
	return out
}

func TestReplicasShareCacheTokensSettingsAndPurges(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	up := testregistry.New(t, testregistry.Options{})
	rs := c.replicas(t, 2, up)
	r1, r2 := rs[0], rs[1]

	r1.group("acme")
	tok := r1.user("alice", "acme", store.RoleGuest)
	img := up.PushRandomImage(t, "library/alpine", "v1", 2, 256<<10)
	md, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}

	// Pulled through replica 1 (and committed to the shared store: a blob
	// is committed after its last byte reached the client) ...
	pullAll(t, r1.ref("acme", "alpine:v1"), pullOpts("alice", tok))
	r1.settle()
	// ... served by replica 2 with no upstream request at all (by digest:
	// immutable, so not even a revalidating HEAD).
	up.ResetCounts()
	pullAll(t, r2.ref("acme", "alpine@"+md.String()), pullOpts("alice", tok))
	for _, k := range []testregistry.Kind{testregistry.KindManifest, testregistry.KindBlob, testregistry.KindToken, testregistry.KindPing} {
		for _, m := range []string{http.MethodGet, http.MethodHead} {
			if n := up.Count(m, k); n != 0 {
				t.Errorf("replica 2 made %d upstream %s %s requests, want 0", n, m, k)
			}
		}
	}

	// A registry token minted by replica 1 is accepted by replica 2.
	repo := "acme/dependency_proxy/containers/alpine"
	jwt := r1.jwt("alice", tok, repo)
	mpath := "/v2/" + repo + "/manifests/" + md.String()
	if res, body := r2.do(http.MethodGet, mpath, jwt); res.StatusCode != http.StatusOK {
		t.Fatalf("replica 2 with replica 1's token: %d %s", res.StatusCode, body)
	}

	// Replica 2 answers Range requests from the bucket.
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	ld, _ := layers[0].Digest()
	bpath := "/v2/" + repo + "/blobs/" + ld.String()
	_, whole := r2.do(http.MethodGet, bpath, jwt)
	if digestOf(whole) != ld.String() {
		t.Fatalf("replica 2 served a layer hashing to %s, want %s", digestOf(whole), ld)
	}
	if res, part := r2.do(http.MethodGet, bpath, jwt, "Range", "bytes=1000-1999"); res.StatusCode != http.StatusPartialContent || string(part) != string(whole[1000:2000]) {
		t.Errorf("replica 2 Range bytes=1000-1999: %d, %d bytes; want 206 and those bytes", res.StatusCode, len(part))
	}

	// A setting changed through replica 2's admin API (with the admin
	// token replica 1 created) takes effect on replica 1's next pull.
	admin := r1.adminToken()
	setEnabled := func(on bool) {
		t.Helper()
		var out struct{ UpdateDependencyProxySettings struct{ Errors []string } }
		r2.ok(admin, `mutation($on: Boolean!) { updateDependencyProxySettings(input: {groupPath: "acme", enabled: $on}) { errors } }`,
			map[string]any{"on": on}, &out)
		if errs := out.UpdateDependencyProxySettings.Errors; len(errs) > 0 {
			t.Fatalf("set enabled=%v through replica 2: %v", on, errs)
		}
	}
	setEnabled(false)
	res, body := r1.do(http.MethodGet, mpath, jwt)
	if code, _ := ociError(t, body); res.StatusCode != http.StatusForbidden || code != "DENIED" {
		t.Errorf("replica 1 after replica 2 disabled the proxy: %d %s, want 403 DENIED", res.StatusCode, body)
	}
	setEnabled(true)

	// A purge through replica 2's REST API is seen by replica 1: its next
	// pull is a miss.
	req, _ := http.NewRequest(http.MethodDelete, r2.srv.URL+"/api/v4/groups/acme/dependency_proxy/cache", nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != http.StatusAccepted {
		t.Fatalf("purge through replica 2: %v %v", res, err)
	}
	up.ResetCounts()
	if res, body := r1.do(http.MethodGet, mpath, jwt); res.StatusCode != http.StatusOK {
		t.Fatalf("replica 1 after the purge: %d %s", res.StatusCode, body)
	}
	if n := up.Count(http.MethodGet, testregistry.KindManifest); n != 1 {
		t.Errorf("replica 1 made %d upstream manifest GETs after replica 2 purged, want 1 (a miss)", n)
	}

	// Replica 1 remembers the decisions of its last pulls with this token; a
	// revocation committed by replica 2 refuses its very next request.
	if res, body := r1.do(http.MethodGet, mpath, "", "Authorization", basic("alice", tok)); res.StatusCode != http.StatusOK {
		t.Fatalf("replica 1 with Basic token credentials: %d %s", res.StatusCode, body)
	}
	ctx := context.Background()
	tk, err := r2.app.Store.TokenByHash(ctx, auth.HashToken(tok))
	if err != nil {
		t.Fatal(err)
	}
	if err := r2.app.Store.RevokeToken(ctx, tk.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	for name, hdr := range map[string][]string{"JWT": nil, "Basic": {"Authorization", basic("alice", tok)}} {
		bearer := jwt
		if hdr != nil {
			bearer = ""
		}
		if res, body := r1.do(http.MethodGet, mpath, bearer, hdr...); res.StatusCode != http.StatusUnauthorized {
			t.Errorf("replica 1 with a %s of the token replica 2 revoked: %d %s, want 401", name, res.StatusCode, body)
		}
	}
}

func TestReplicasColdBlobManyClients(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	up := testregistry.New(t, testregistry.Options{})
	rs := c.replicas(t, 2, up)
	const size = 50 << 20
	fx := rs[0].aliceBlob("big", size)
	// Slow enough that both replicas are downloading at the same time.
	up.SetBandwidth(25 << 20)

	const clients = 20
	errs := make([]error, clients)
	var wg sync.WaitGroup
	for i := range clients {
		e := rs[i%2]
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodGet, e.srv.URL+fx.path, nil)
			req.Header.Set("Authorization", "Bearer "+fx.jwt)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				errs[i] = err
				return
			}
			defer res.Body.Close()
			b, err := io.ReadAll(res.Body)
			switch {
			case err != nil:
				errs[i] = err
			case res.StatusCode != http.StatusOK:
				errs[i] = errors.New(res.Status)
			case digestOf(b) != fx.digest.String():
				errs[i] = errors.New("got " + digestOf(b) + ", " + itoa(len(b)) + " bytes")
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("client %d (replica %d): %v", i, i%2+1, err)
		}
	}
	// Without peer URLs the replica that does not hold the fetch lease
	// waits for the stored blob: still one fetch for the cluster.
	if n := up.CountBlob(http.MethodGet, fx.digest.String()); n != 1 {
		t.Errorf("the upstream saw %d GETs of the blob, want 1 (one per cluster)", n)
	}
	// The last byte reaches clients once verified; the upload follows.
	waitFor(t, "the blob to be committed", func() bool { return !rs[0].downloading() && !rs[1].downloading() })
	if err := rs[1].app.Blobs.Verify(context.Background(), oci.Digest(fx.digest.String())); err != nil {
		t.Errorf("the blob in the bucket: %v", err)
	}
}

func TestReplicaKilledMidDownload(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	up := testregistry.New(t, testregistry.Options{})
	// The killed replica's fetch lease expires after 2 s.
	r2 := newEnv(t, envOptions{keepUpstream: up, configure: func(cfg *config.Config) {
		c.configure(cfg)
		cfg.FetchLeaseTimeout = 2 * time.Second
	}})
	fx := r2.aliceBlob("big", 16<<20)
	d := oci.Digest(fx.digest.String())
	up.SetBandwidth(2 << 20)

	// Replica 1 is a real `dproxy serve` process on the same cluster.
	cmd, base, _ := serveProcessLog(t, t.TempDir(), up.URL, append(c.environ(), "DPROXY_FETCH_LEASE_TIMEOUT=2s")...)
	get := func(base string) (*http.Response, error) {
		req, _ := http.NewRequest(http.MethodGet, base+fx.path, nil)
		req.Header.Set("Authorization", "Bearer "+fx.jwt) // minted by replica 2
		return http.DefaultClient.Do(req)
	}
	res, err := get(base)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("replica 1: %s", res.Status)
	}
	if _, err := io.ReadFull(res.Body, make([]byte, 2<<20)); err != nil {
		t.Fatalf("read the first bytes from replica 1: %v", err)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if _, err := io.Copy(io.Discard, res.Body); err == nil {
		t.Errorf("the client's body ended cleanly although replica 1 was killed mid-download")
	}
	res.Body.Close()

	// Nothing of the killed download is visible: no object, no reference.
	ctx := context.Background()
	if _, err := r2.app.Blobs.Stat(ctx, d); !errors.Is(err, oci.ErrBlobUnknown) {
		t.Fatalf("a blob is in the bucket after replica 1 was killed mid-download: %v", err)
	}
	g, err := r2.app.Store.GroupByPath(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r2.app.Store.Blob(ctx, g.ID, d); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a blob reference exists after replica 1 was killed mid-download: %v", err)
	}

	// Replica 2 keeps serving, verified bytes only.
	up.SetBandwidth(0)
	res, err = get(r2.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || res.StatusCode != http.StatusOK || digestOf(body) != fx.digest.String() {
		t.Fatalf("replica 2 after the kill: status %d, err %v, digest %s", res.StatusCode, err, digestOf(body))
	}
	waitFor(t, "the blob to be committed", func() bool { return !r2.downloading() })
	if err := r2.app.Blobs.Verify(ctx, d); err != nil {
		t.Errorf("the blob replica 2 stored: %v", err)
	}
}

// With storage-redirect, a cached blob GET is answered with a redirect to a
// presigned bucket URL that yields the blob; a blob still downloading is
// streamed as usual.
func TestStorageRedirect(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	up := testregistry.New(t, testregistry.Options{})
	e := newEnv(t, envOptions{keepUpstream: up, configure: func(cfg *config.Config) {
		c.configure(cfg)
		cfg.StorageRedirect = true
	}})
	fx := e.aliceBlob("small", 64<<10)
	if res, body := e.do(http.MethodGet, fx.path, fx.jwt); res.StatusCode != http.StatusOK || digestOf(body) != fx.digest.String() {
		t.Fatalf("first GET (a miss, streamed): %d, digest %s", res.StatusCode, digestOf(body))
	}
	waitFor(t, "the blob to be committed", func() bool { return !e.downloading() })

	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+fx.path, nil)
	req.Header.Set("Authorization", "Bearer "+fx.jwt)
	res, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	loc := res.Header.Get("Location")
	if res.StatusCode != http.StatusTemporaryRedirect || !strings.Contains(loc, "X-Amz-Signature=") {
		t.Fatalf("cached GET = %d Location %q, want 307 to a presigned URL", res.StatusCode, loc)
	}
	got, err := http.Get(loc)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(got.Body)
	got.Body.Close()
	if err != nil || got.StatusCode != http.StatusOK || digestOf(body) != fx.digest.String() {
		t.Errorf("GET of the presigned URL: %d, %v, digest %s", got.StatusCode, err, digestOf(body))
	}
}

// The background jobs run on one replica at a time: while replica 1 holds
// the lifecycle lock (PostgreSQL advisory lock), replica 2's jobs do
// nothing and say so; once it is free, replica 2 runs them.
func TestReplicasRunBackgroundJobsOneAtATime(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	up := testregistry.New(t, testregistry.Options{})
	r1 := newEnv(t, envOptions{keepUpstream: up, configure: c.configure})
	// No grace period: the purged files go at the first collection.
	r2 := newEnv(t, envOptions{keepUpstream: up, configure: func(cfg *config.Config) {
		c.configure(cfg)
		cfg.GCGrace = 0
	}})
	ctx := context.Background()

	r1.group("acme")
	tok := r1.user("alice", "acme", store.RoleGuest)
	up.PushRandomImage(t, "library/alpine", "v1", 1, 4096)
	pullAll(t, r1.ref("acme", "alpine:v1"), pullOpts("alice", tok))
	r1.settle() // the downloads have added their references
	g, err := r1.app.Store.GroupByPath(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r1.app.Store.PurgeGroupCache(ctx, g.ID); err != nil {
		t.Fatal(err)
	}

	unlock, ok, err := r1.app.Store.TryLock(ctx, "lifecycle")
	if err != nil || !ok {
		t.Fatalf("replica 1 TryLock = %v, %v; want the lock", ok, err)
	}
	if _, err := r2.app.Lifecycle.CollectGarbage(ctx); !errors.Is(err, lifecycle.ErrElsewhere) {
		t.Errorf("replica 2 GC while replica 1 holds the lock: %v, want ErrElsewhere", err)
	}
	if _, err := r2.app.Lifecycle.Expire(ctx); !errors.Is(err, lifecycle.ErrElsewhere) {
		t.Errorf("replica 2 TTL expiry while replica 1 holds the lock: %v, want ErrElsewhere", err)
	}
	left := 0
	r2.app.Blobs.Walk(ctx, func(oci.Digest, int64) error { left++; return nil })
	if left == 0 {
		t.Fatal("the purged blob files were deleted while another replica held the lock")
	}

	unlock()
	gc, err := r2.app.Lifecycle.CollectGarbage(ctx)
	if err != nil || gc.Deleted != left {
		t.Errorf("replica 2 GC after the lock was released = %+v, %v; want %d files deleted", gc, err, left)
	}
}
