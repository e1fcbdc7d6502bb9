package app_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/dproxy/dproxy/internal/config"
	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/store"
	"github.com/dproxy/dproxy/internal/testregistry"
)

// getNoFollow GETs path on e with a bearer token and returns the answer
// as is: a redirect is not followed.
func getNoFollow(t *testing.T, e *env, path, token string) (*http.Response, []byte) {
	t.Helper()
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body) // a corrupt blob's body is cut short
	return res, body
}

// overwriteObject writes other bytes under a blob's key in the cluster's
// bucket, behind dproxy's back: corruption in place.
func (c cluster) overwriteObject(t *testing.T, d oci.Digest, content []byte) {
	t.Helper()
	u, err := url.Parse(c.storage)
	if err != nil {
		t.Fatal(err)
	}
	ep, _ := url.Parse(u.Query().Get("endpoint"))
	mc, err := minio.New(ep.Host, &minio.Options{Creds: credentials.NewStaticV4(c.s3ID, c.s3Secret, ""),
		Secure: ep.Scheme == "https", Region: "us-east-1", BucketLookup: minio.BucketLookupPath})
	if err != nil {
		t.Fatal(err)
	}
	key := strings.Trim(u.Path, "/") + "/sha256/" + d.Hex()
	if _, err := mc.PutObject(t.Context(), u.Host, key, bytes.NewReader(content), int64(len(content)), minio.PutObjectOptions{}); err != nil {
		t.Fatalf("overwrite object %s: %v", key, err)
	}
}

// storage-redirect sends a client only to an object whose content this
// replica verified: a new object after its read-back, another replica's
// after one streamed (and hashed) serve. An object corrupted in place is
// streamed, caught and dropped, never redirected to. The presigned URL
// lives storage-redirect-expiry.
func TestStorageRedirectOnlyToVerifiedObjects(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	up := testregistry.New(t, testregistry.Options{})
	redirecting := func(cfg *config.Config) {
		c.configure(cfg)
		cfg.StorageRedirect = true
		cfg.StorageRedirectExpiry = 2 * time.Minute
	}
	r1 := newEnv(t, envOptions{keepUpstream: up, configure: redirecting})
	r2 := newEnv(t, envOptions{keepUpstream: up, configure: redirecting})
	fx := r1.aliceBlob("small", 64<<10)

	if res, body := getNoFollow(t, r1, fx.path, fx.jwt); res.StatusCode != http.StatusOK || digestOf(body) != fx.digest.String() {
		t.Fatalf("first GET (a miss, streamed): %d, digest %s", res.StatusCode, digestOf(body))
	}
	waitFor(t, "the blob to be committed", func() bool { return !r1.downloading() })
	res, _ := getNoFollow(t, r1, fx.path, fx.jwt)
	loc := res.Header.Get("Location")
	if res.StatusCode != http.StatusTemporaryRedirect || !strings.Contains(loc, "X-Amz-Expires=120&") {
		t.Fatalf("cached GET on the replica that committed = %d Location %q, want 307 to a URL presigned for 120 s", res.StatusCode, loc)
	}

	// Replica 2 never read this object: it streams it once, then redirects.
	if res, body := getNoFollow(t, r2, fx.path, fx.jwt); res.StatusCode != http.StatusOK || digestOf(body) != fx.digest.String() {
		t.Fatalf("first cached GET on replica 2 = %d (digest %s), want 200 with the blob: it has not verified the object", res.StatusCode, digestOf(body))
	}
	if res, _ := getNoFollow(t, r2, fx.path, fx.jwt); res.StatusCode != http.StatusTemporaryRedirect {
		t.Fatalf("second cached GET on replica 2 = %d, want 307 once it verified the object", res.StatusCode)
	}

	corrupt := make([]byte, fx.size)
	rand.Read(corrupt)
	c.overwriteObject(t, oci.Digest(fx.digest.String()), corrupt)
	// Replica 2 verified the object before it was overwritten: the new
	// version is not the one it verified.
	res, body := getNoFollow(t, r2, fx.path, fx.jwt)
	if res.StatusCode == http.StatusTemporaryRedirect {
		t.Fatalf("GET after the object was corrupted in place = 307 to %s; want it streamed and caught", res.Header.Get("Location"))
	}
	if digestOf(body) == fx.digest.String() || bytes.Equal(body, corrupt) {
		t.Fatalf("GET after the object was corrupted in place gave %d whole bytes; want the corrupt blob cut short", len(body))
	}
	waitFor(t, "the corrupt object to be dropped", func() bool {
		_, err := r1.app.Blobs.Stat(context.Background(), oci.Digest(fx.digest.String()))
		return errors.Is(err, oci.ErrBlobUnknown)
	})

	// The next pull, on replica 1, fetches it again; the new object is
	// verified after its commit and redirected to.
	if res, body := getNoFollow(t, r1, fx.path, fx.jwt); res.StatusCode != http.StatusOK || digestOf(body) != fx.digest.String() {
		t.Fatalf("GET after the drop = %d (digest %s), want the blob fetched again", res.StatusCode, digestOf(body))
	}
	waitFor(t, "the blob to be committed again", func() bool { return !r1.downloading() })
	res, _ = getNoFollow(t, r1, fx.path, fx.jwt)
	if res.StatusCode != http.StatusTemporaryRedirect {
		t.Fatalf("cached GET after the fetch again = %d, want 307", res.StatusCode)
	}
	got, err := http.Get(res.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(got.Body)
	got.Body.Close()
	if got.StatusCode != http.StatusOK || digestOf(body) != fx.digest.String() {
		t.Errorf("GET of the presigned URL: %d, digest %s; want the blob", got.StatusCode, digestOf(body))
	}
}

// fsck checks a server on PostgreSQL and S3 through its config file:
// every object is stat'ed, and with --verify-content streamed and hashed,
// so an object corrupted in place (same size) is found and repaired.
func TestFsckCoversS3(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	e := newEnv(t, envOptions{configure: c.configure})
	e.group("acme")
	tok := e.user("alice", "acme", store.RoleGuest)
	var imgs []v1.Image
	for i := range 2 {
		imgs = append(imgs, e.up.PushRandomImage(t, fmt.Sprintf("library/img%d", i), "v1", 1, 4096))
		pullAll(t, e.ref("acme", fmt.Sprintf("img%d:v1", i)), pullOpts("alice", tok))
	}
	e.settle()
	corrupt := blobsOf(t, imgs[0])[1]
	size, err := e.app.Blobs.Stat(t.Context(), corrupt)
	if err != nil {
		t.Fatal(err)
	}
	bad := make([]byte, size)
	rand.Read(bad)
	c.overwriteObject(t, corrupt, bad)

	file := filepath.Join(t.TempDir(), "dproxy.yaml")
	conf := fmt.Sprintf("data-dir: %s\ndatabase: %s\nstorage: %s\nsecret-key: %s\ns3-access-key-id: %s\ns3-secret-access-key: %s\n",
		e.app.Config.DataDir, c.database, c.storage, c.secretKey, c.s3ID, c.s3Secret)
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out := runCLI("fsck", "--config", file); code != 0 || !strings.Contains(out, "checked 4 cached blobs, 4 blob files") {
		t.Errorf("fsck of the bucket without --verify-content exited %d, want 0 after checking 4 blobs and 4 objects:\n%s", code, out)
	}
	code, out := runCLI("fsck", "--config", file, "--verify-content")
	if code != 1 || !strings.Contains(out, "corrupt-file\t"+string(corrupt)+"\tfound") {
		t.Errorf("fsck --verify-content exited %d, want 1 naming the corrupt object %s:\n%s", code, corrupt, out)
	}
	if code, out := runCLI("fsck", "--config", file, "--verify-content", "--repair"); code != 0 || strings.Count(out, "\trepaired\t") != 1 {
		t.Errorf("fsck --verify-content --repair exited %d, want 0 with 1 repair:\n%s", code, out)
	}
	if _, err := e.app.Blobs.Stat(t.Context(), corrupt); !errors.Is(err, oci.ErrBlobUnknown) {
		t.Errorf("the corrupt object after the repair: %v, want it deleted", err)
	}
	if code, out := runCLI("fsck", "--config", file, "--verify-content"); code != 0 || !strings.Contains(out, "checked 3 cached blobs, 3 blob files, 0 temp files: 0 problems") {
		t.Errorf("fsck after the repair exited %d:\n%s", code, out)
	}
}
