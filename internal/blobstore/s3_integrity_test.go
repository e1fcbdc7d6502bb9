package blobstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/store/storetest"
)

// s3Backends runs a test on the in-process fake and, when
// DPROXY_TEST_S3 is set, on the real S3 server.
func s3Backends(t *testing.T, run func(t *testing.T, o S3Options)) {
	t.Run("fake", func(t *testing.T) { t.Parallel(); run(t, fakeS3(t)) })
	t.Run("server", func(t *testing.T) {
		t.Parallel()
		storetest.Require(t, storetest.EnvS3)
		run(t, realS3(t))
	})
}

func redirectURL(t *testing.T, s *S3, d oci.Digest) string {
	t.Helper()
	b, err := s.Open(t.Context(), d)
	if err != nil {
		t.Fatalf("Open %s: %v", d, err)
	}
	defer b.Close()
	loc, err := b.(*s3Blob).RedirectURL(t.Context())
	if err != nil {
		t.Fatalf("RedirectURL: %v", err)
	}
	return loc
}

// overwrite puts other bytes under blob d's key behind the store's back:
// the corruption in place a redirect must never hand out.
func overwrite(t *testing.T, s *S3, d oci.Digest, content []byte) {
	t.Helper()
	key, err := s.key(d)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.client.PutObject(t.Context(), s.opts.Bucket, key, bytes.NewReader(content), int64(len(content)), minio.PutObjectOptions{}); err != nil {
		t.Fatalf("overwrite %s: %v", key, err)
	}
}

// The real server records the x-amz-checksum-sha256 of an upload, which
// is the digest's bytes.
func TestS3UploadRecordsChecksum(t *testing.T) {
	t.Parallel()
	storetest.Require(t, storetest.EnvS3)
	o := realS3(t)
	s := newTestS3(t, o)
	d := put(t, s, []byte("layer with a recorded checksum"))
	key, _ := s.key(d)
	info, err := s.client.StatObject(t.Context(), o.Bucket, key, minio.StatObjectOptions{Checksum: true})
	if err != nil {
		t.Fatal(err)
	}
	if want := checksumOf(d); info.ChecksumSHA256 != want {
		t.Errorf("recorded x-amz-checksum-sha256 = %q, want %q (the digest's bytes)", info.ChecksumSHA256, want)
	}
}

// Bytes that do not hash to the digest never become the object: the
// server refuses them (checksum, signed payload hash) or the read-back
// after the upload catches them, and the object is removed.
func TestS3CommitRefusesBytesNotMatchingTheDigest(t *testing.T) {
	t.Parallel()
	s3Backends(t, func(t *testing.T, o S3Options) {
		s := newTestS3(t, o)
		d := oci.FromBytes([]byte("the announced content"))
		err := s.Commit(t.Context(), d, writeTemp(t, s, []byte("other bytes in transit")))
		if err == nil {
			t.Fatal("Commit of bytes that do not hash to the digest succeeded")
		}
		if _, err := s.Stat(t.Context(), d); !errors.Is(err, oci.ErrBlobUnknown) {
			t.Errorf("Stat after a refused commit = %v, want ErrBlobUnknown", err)
		}
	})
}

// corruptingTransport hands back other bytes for every GET of an object.
type corruptingTransport struct{ base http.RoundTripper }

func (c corruptingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	res, err := c.base.RoundTrip(r)
	if err != nil || r.Method != http.MethodGet || res.StatusCode != http.StatusOK || !strings.Contains(r.URL.Path, "/sha256/") {
		return res, err
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return nil, err
	}
	for i := range body {
		body[i] ^= 0xff
	}
	res.Body = io.NopCloser(bytes.NewReader(body))
	return res, nil
}

// The read-back after an upload is what catches an object the bucket
// does not return intact; such an object is removed.
func TestS3CommitVerifiesTheStoredObject(t *testing.T) {
	t.Parallel()
	o := fakeS3(t)
	o.Transport = corruptingTransport{base: http.DefaultTransport}
	s := newTestS3(t, o)
	content := []byte("uploaded intact, read back corrupt")
	d := oci.FromBytes(content)
	err := s.Commit(t.Context(), d, writeTemp(t, s, content))
	if !errors.Is(err, oci.ErrDigestInvalid) {
		t.Fatalf("Commit = %v, want ErrDigestInvalid from the read-back", err)
	}
	if _, err := s.Stat(t.Context(), d); !errors.Is(err, oci.ErrBlobUnknown) {
		t.Errorf("Stat after a failed read-back = %v, want ErrBlobUnknown (object removed)", err)
	}
}

// A redirect goes only to an object version whose content was verified:
// after an overwrite in place (even with the right bytes), the blob is
// served by the caller until a whole read vouches for the new version.
func TestS3RedirectsOnlyVerifiedObjects(t *testing.T) {
	t.Parallel()
	s3Backends(t, func(t *testing.T, o S3Options) {
		o.RedirectExpiry = 5 * time.Minute
		s := newTestS3(t, o)
		content := []byte("layer bytes checked before any redirect")
		d := put(t, s, content)
		if loc := redirectURL(t, s, d); !strings.Contains(loc, "X-Amz-Signature=") {
			t.Fatalf("RedirectURL after a verified commit = %q, want a presigned URL", loc)
		}

		overwrite(t, s, d, []byte("corrupt bytes under the digest key!!!"))
		if loc := redirectURL(t, s, d); loc != "" {
			t.Errorf("RedirectURL of an object overwritten with other bytes = %q, want none", loc)
		}
		if err := s.Verify(t.Context(), d); !errors.Is(err, oci.ErrDigestInvalid) {
			t.Errorf("Verify of the overwritten object = %v, want ErrDigestInvalid", err)
		}

		// The right bytes again, written by someone else: a new version.
		overwrite(t, s, d, content)
		if loc := redirectURL(t, s, d); loc != "" {
			t.Errorf("RedirectURL of a rewritten, unverified object = %q, want none", loc)
		}
		b, err := s.Open(t.Context(), d)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := io.ReadAll(b); err != nil || !bytes.Equal(got, content) {
			t.Fatalf("read = %q, %v", got, err)
		}
		b.(*s3Blob).ContentVerified()
		b.Close()
		if loc := redirectURL(t, s, d); loc == "" {
			t.Errorf("RedirectURL after a whole read verified the new version = none, want a presigned URL")
		}
	})
}

// fsck --verify-content streams each object: Verify reads the object
// itself, not a verification remembered from before.
func TestS3VerifyStreamsTheObject(t *testing.T) {
	t.Parallel()
	s3Backends(t, func(t *testing.T, o S3Options) {
		s := newTestS3(t, o)
		d := put(t, s, []byte("verified at commit"))
		if err := s.Verify(t.Context(), d); err != nil {
			t.Fatalf("Verify of an intact object: %v", err)
		}
		overwrite(t, s, d, []byte("changed afterwards"))
		if err := s.Verify(context.Background(), d); !errors.Is(err, oci.ErrDigestInvalid) {
			t.Errorf("Verify after an overwrite = %v, want ErrDigestInvalid", err)
		}
	})
}
