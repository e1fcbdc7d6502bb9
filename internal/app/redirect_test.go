package app_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/dproxy/dproxy/internal/config"
	"github.com/dproxy/dproxy/internal/oci"
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
