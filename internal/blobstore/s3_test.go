package blobstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/store/storetest"
)

// fakeS3 starts an in-process S3 server (gofakes3) with one bucket.
func fakeS3(t *testing.T) S3Options {
	t.Helper()
	backend := s3mem.New()
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(srv.Close)
	if err := backend.CreateBucket("blobs"); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(srv.URL)
	return S3Options{
		Endpoint: u.Host, Insecure: true, Region: "us-east-1", Bucket: "blobs", PathStyle: true,
		AccessKeyID: "test", SecretAccessKey: "test-secret",
	}
}

// realS3 returns options for the server named by DPROXY_TEST_S3
// (http://ACCESS_KEY:SECRET_KEY@host:port/bucket) with a fresh prefix; the
// bucket is created when missing. Without the variable it skips the test,
// or fails it in CI (storetest.Require).
func realS3(t *testing.T) S3Options {
	t.Helper()
	raw := storetest.Require(t, storetest.EnvS3)
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		t.Fatalf("%s: want http://KEY:SECRET@host:port/bucket", storetest.EnvS3)
	}
	secret, _ := u.User.Password()
	o := S3Options{
		Endpoint: u.Host, Insecure: u.Scheme == "http", Region: "us-east-1",
		Bucket: strings.Trim(u.Path, "/"), PathStyle: true,
		AccessKeyID: u.User.Username(), SecretAccessKey: secret,
		Prefix: "test-" + randomHex(t) + "/",
	}
	c, err := minio.New(o.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(o.AccessKeyID, o.SecretAccessKey, ""), Secure: !o.Insecure, Region: o.Region, BucketLookup: minio.BucketLookupPath})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := c.BucketExists(t.Context(), o.Bucket); err != nil {
		t.Fatalf("%s: %v", storetest.EnvS3, err)
	} else if !ok {
		if err := c.MakeBucket(t.Context(), o.Bucket, minio.MakeBucketOptions{Region: o.Region}); err != nil {
			t.Fatalf("create bucket %s: %v", o.Bucket, err)
		}
	}
	return o
}

func randomHex(t *testing.T) string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

func newTestS3(t *testing.T, o S3Options) *S3 {
	t.Helper()
	o.SpoolDir = t.TempDir()
	s, err := NewS3(t.Context(), o)
	if err != nil {
		t.Fatalf("NewS3: %v", err)
	}
	return s
}

func TestS3ContractFake(t *testing.T) {
	t.Parallel()
	testStoreContract(t, func(t *testing.T) contractStore { return newTestS3(t, fakeS3(t)) })
}

func TestS3ContractServer(t *testing.T) {
	t.Parallel()
	storetest.Require(t, storetest.EnvS3)
	testStoreContract(t, func(t *testing.T) contractStore { return newTestS3(t, realS3(t)) })
}

// A large blob goes up as a multipart upload and comes back whole.
func TestS3LargeBlob(t *testing.T) {
	t.Parallel()
	storetest.Require(t, storetest.EnvS3)
	s := newTestS3(t, realS3(t))
	content := randomBytes(t, 40<<20)
	d := put(t, s, content)
	assertContent(t, s, d, content)
	if err := s.Verify(t.Context(), d); err != nil {
		t.Errorf("Verify: %v", err)
	}
}

func TestS3Redirect(t *testing.T) {
	t.Parallel()
	o := fakeS3(t)
	o.RedirectExpiry = 10 * time.Minute
	s := newTestS3(t, o)
	content := []byte("layer bytes served by the bucket")
	d := put(t, s, content)
	b, err := s.Open(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	loc, err := b.(interface {
		RedirectURL(context.Context) (string, error)
	}).RedirectURL(t.Context())
	if err != nil || !strings.Contains(loc, "X-Amz-Signature=") {
		t.Fatalf("RedirectURL = %q, %v; want a presigned URL", loc, err)
	}
	resp, err := http.Get(loc)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, content) {
		t.Errorf("GET presigned URL = %d %q, want 200 and the blob", resp.StatusCode, got)
	}
	// A redirecting store still reads the blob itself when asked to.
	if all, err := io.ReadAll(b); err != nil || !bytes.Equal(all, content) {
		t.Errorf("Read of a redirecting blob = %q, %v", all, err)
	}

	plain := newTestS3(t, fakeS3(t))
	d = put(t, plain, content)
	pb, err := plain.Open(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	defer pb.Close()
	if loc, err := pb.(*s3Blob).RedirectURL(t.Context()); loc != "" || err != nil {
		t.Errorf("RedirectURL without RedirectExpiry = %q, %v; want none", loc, err)
	}
}

func TestS3VerifyDetectsCorruption(t *testing.T) {
	t.Parallel()
	o := fakeS3(t)
	s := newTestS3(t, o)
	content := []byte("the real content")
	d := oci.FromBytes(content)
	// Someone writes other bytes under the digest key, behind dproxy's back.
	bad := []byte("tampered content")
	if _, err := s.client.PutObject(t.Context(), o.Bucket, algorithm+"/"+d.Hex(), bytes.NewReader(bad), int64(len(bad)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(t.Context(), d); !errors.Is(err, oci.ErrDigestInvalid) {
		t.Errorf("Verify of a tampered object = %v, want ErrDigestInvalid", err)
	}
}

func TestNewS3MissingBucket(t *testing.T) {
	t.Parallel()
	o := fakeS3(t)
	o.Bucket = "no-such-bucket"
	o.SpoolDir = t.TempDir()
	if _, err := NewS3(t.Context(), o); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("NewS3 of a missing bucket = %v, want an error saying it does not exist", err)
	}
}

func TestParseS3URL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in      string
		want    S3Options
		wantErr string
	}{
		{in: "s3://blobs?endpoint=http://127.0.0.1:17002&region=us-east-1&path_style=true",
			want: S3Options{Bucket: "blobs", Endpoint: "127.0.0.1:17002", Insecure: true, Region: "us-east-1", PathStyle: true}},
		{in: "s3://blobs/dproxy/prod/?endpoint=minio.internal:9000",
			want: S3Options{Bucket: "blobs", Prefix: "dproxy/prod/", Endpoint: "minio.internal:9000"}},
		{in: "s3://blobs?region=eu-west-1", want: S3Options{Bucket: "blobs", Region: "eu-west-1"}},
		{in: "s3://blobs?endpoint=https://s3.example.com", want: S3Options{Bucket: "blobs", Endpoint: "s3.example.com"}},
		{in: "gs://blobs", wantErr: "want s3://"},
		{in: "s3:///prefix", wantErr: "names no bucket"},
		{in: "s3://key:hunter2pw@blobs", wantErr: "credentials do not go in the URL"},
		{in: "s3://blobs?endpont=x", wantErr: `unknown parameter "endpont"`},
		{in: "s3://blobs?path_style=yes please", wantErr: "path_style"},
		{in: "s3://blobs?endpoint=ftp://x", wantErr: "endpoint"},
	} {
		got, err := ParseS3URL(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseS3URL(%q) = %+v, %v; want an error containing %q", tc.in, got, err, tc.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2pw") {
				t.Errorf("ParseS3URL(%q) error quotes the secret: %v", tc.in, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseS3URL(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

// countingTransport counts GET requests.
type countingTransport struct {
	mu   sync.Mutex
	gets int
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodGet {
		c.mu.Lock()
		c.gets++
		c.mu.Unlock()
	}
	return http.DefaultTransport.RoundTrip(r)
}

func (c *countingTransport) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gets
}

// Serving a blob whole costs one GET, even after http.ServeContent's size
// probe (seek to the end and back); a read elsewhere costs a ranged GET.
func TestS3ReadsReuseTheOpenResponse(t *testing.T) {
	t.Parallel()
	o := fakeS3(t)
	s := newTestS3(t, o)
	content := randomBytes(t, 300_000)
	d := put(t, s, content)

	ct := &countingTransport{}
	o.Transport = ct
	counted := newTestS3(t, o)
	before := ct.count()
	b, err := counted.Open(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.Seek(0, io.SeekEnd); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(b)
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("read %d bytes, %v; want the blob", len(got), err)
	}
	if n := ct.count() - before; n != 1 {
		t.Errorf("open, probe and read whole made %d GETs, want 1", n)
	}
	if _, err := b.Seek(1000, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	part := make([]byte, 10)
	if _, err := io.ReadFull(b, part); err != nil || !bytes.Equal(part, content[1000:1010]) {
		t.Errorf("read after seek = %x, %v; want %x", part, err, content[1000:1010])
	}
	if n := ct.count() - before; n != 2 {
		t.Errorf("a read after a seek made %d GETs in all, want 2", n)
	}
}
