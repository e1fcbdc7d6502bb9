package blobstore

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/dproxy/dproxy/internal/oci"
)

// S3Options configure an S3 store. ParseS3URL fills the location from a
// storage URL; credentials and the spool come from elsewhere.
type S3Options struct {
	// Endpoint is host[:port] of the S3 API; "" is AWS (s3.amazonaws.com).
	Endpoint string
	// Insecure talks plain HTTP to Endpoint.
	Insecure bool
	// Region of the bucket; "" lets the client discover it.
	Region string
	// Bucket must exist.
	Bucket string
	// Prefix is prepended to every key, e.g. "dproxy/" (with the slash).
	Prefix string
	// PathStyle addresses the bucket as endpoint/bucket instead of
	// bucket.endpoint; most S3-compatible servers need it.
	PathStyle bool
	// AccessKeyID and SecretAccessKey sign requests; both empty means
	// anonymous requests.
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
	// SpoolDir is a local folder for downloads in progress: they are
	// written there, verified, then uploaded. Required.
	SpoolDir string
	// RedirectExpiry, when positive, makes opened blobs offer a presigned
	// GET URL of that lifetime (see RedirectURL) once their object's
	// content has been verified, and defers their download until the
	// first read.
	RedirectExpiry time.Duration
	// Transport is the HTTP transport; nil is a default one.
	Transport http.RoundTripper
}

// ParseS3URL reads a storage URL of the form
//
//	s3://bucket[/prefix]?endpoint=http://host:port&region=us-east-1&path_style=true
//
// endpoint may be a host[:port] (HTTPS) or an http:// or https:// URL.
// Credentials never go in the URL.
func ParseS3URL(raw string) (S3Options, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return S3Options{}, fmt.Errorf("storage URL: %w", err)
	}
	if u.Scheme != "s3" {
		return S3Options{}, fmt.Errorf("storage URL %q: want s3://bucket[/prefix]?endpoint=…", raw)
	}
	if u.User != nil {
		return S3Options{}, errors.New("storage URL: credentials do not go in the URL; use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or the s3-access-key-id and s3-secret-access-key settings")
	}
	o := S3Options{Bucket: u.Host}
	if o.Bucket == "" {
		return S3Options{}, fmt.Errorf("storage URL %q names no bucket: want s3://bucket", raw)
	}
	if p := strings.Trim(u.Path, "/"); p != "" {
		o.Prefix = p + "/"
	}
	q := u.Query()
	for k := range q {
		switch k {
		case "endpoint", "region", "path_style":
		default:
			return S3Options{}, fmt.Errorf("storage URL: unknown parameter %q; known: endpoint, region, path_style", k)
		}
	}
	o.Region = q.Get("region")
	if ps := q.Get("path_style"); ps != "" {
		if o.PathStyle, err = strconv.ParseBool(ps); err != nil {
			return S3Options{}, fmt.Errorf("storage URL: path_style=%q: want true or false", ps)
		}
	}
	if ep := q.Get("endpoint"); ep != "" {
		if strings.Contains(ep, "://") {
			e, err := url.Parse(ep)
			if err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" || strings.Trim(e.Path, "/") != "" {
				return S3Options{}, fmt.Errorf("storage URL: endpoint %q: want host:port or an http(s)://host:port URL without a path", ep)
			}
			o.Endpoint, o.Insecure = e.Host, e.Scheme == "http"
		} else {
			o.Endpoint = ep
		}
	}
	return o, nil
}

// S3 stores blobs as objects <prefix>sha256/<hex> of a bucket. Downloads
// are spooled to a local folder, so readers can follow a growing file, and
// uploaded by Commit once verified: an object exists under a digest key only
// complete and verified (a PUT, multipart or not, is atomic in S3). S3 is
// safe for concurrent use, also by several replicas sharing the bucket.
//
// Integrity: an upload of up to 5 GiB is one PUT that carries the blob's
// SHA-256 twice, as the signed payload hash and as x-amz-checksum-sha256,
// so a server that checks either refuses bytes that do not match and one
// that keeps checksums records it with the object. Every upload is then
// read back and hashed once. S3 remembers, per process, the object
// versions (ETag, size, modification time) whose content it hashed: at
// commit, through Verify, or because a reader read the whole object and
// reported it with ContentVerified. Only such a version is ever redirected
// to; an object replaced since is streamed (and so hashed) first.
type S3 struct {
	client   *minio.Client
	core     minio.Core
	opts     S3Options
	spool    *FS // only its temp folder is used
	verified *verifiedObjects
}

// maxSinglePut is the largest object S3 accepts in one PUT; larger blobs
// go up as multipart uploads, which carry no whole-object SHA-256.
const maxSinglePut = 5 << 30

// NewS3 connects to the bucket and checks that it exists.
func NewS3(ctx context.Context, opts S3Options) (*S3, error) {
	if opts.SpoolDir == "" {
		return nil, errors.New("open s3 blob store: no spool folder")
	}
	spool, err := NewFS(opts.SpoolDir)
	if err != nil {
		return nil, err
	}
	endpoint := opts.Endpoint
	if endpoint == "" {
		endpoint = "s3.amazonaws.com"
	}
	var creds *credentials.Credentials
	if opts.AccessKeyID != "" || opts.SecretAccessKey != "" {
		creds = credentials.NewStaticV4(opts.AccessKeyID, opts.SecretAccessKey, opts.SessionToken)
	} else {
		creds = credentials.New(&credentials.Static{}) // anonymous
	}
	lookup := minio.BucketLookupAuto
	if opts.PathStyle {
		lookup = minio.BucketLookupPath
	}
	c, err := minio.New(endpoint, &minio.Options{
		Creds: creds, Secure: !opts.Insecure, Region: opts.Region,
		BucketLookup: lookup, Transport: opts.Transport,
	})
	if err != nil {
		return nil, fmt.Errorf("open s3 blob store at %s: %w", endpoint, err)
	}
	ok, err := c.BucketExists(ctx, opts.Bucket)
	if err != nil {
		return nil, fmt.Errorf("open s3 bucket %s at %s: %w", opts.Bucket, endpoint, err)
	}
	if !ok {
		return nil, fmt.Errorf("open s3 bucket %s at %s: the bucket does not exist; create it first", opts.Bucket, endpoint)
	}
	return &S3{client: c, core: minio.Core{Client: c}, opts: opts, spool: spool, verified: newVerifiedObjects()}, nil
}

func (s *S3) key(d oci.Digest) (string, error) {
	if _, err := oci.ParseDigest(string(d)); err != nil {
		return "", err
	}
	return s.opts.Prefix + algorithm + "/" + d.Hex(), nil
}

// isNotFound reports an S3 "no such key" answer.
func isNotFound(err error) bool {
	r := minio.ToErrorResponse(err)
	return r.Code == "NoSuchKey" || r.StatusCode == http.StatusNotFound
}

// CreateTemp creates an empty local spool file for a download, as FS does.
func (s *S3) CreateTemp() (*os.File, error) { return s.spool.CreateTemp() }

// Abort closes and removes a spool file that will not be committed.
func (s *S3) Abort(tmp *os.File) { s.spool.Abort(tmp) }

// CleanTemp removes the spool files interrupted downloads left behind.
func (s *S3) CleanTemp() (int, error) { return s.spool.CleanTemp() }

// Commit uploads the verified bytes of tmp as blob d and removes tmp, as
// FS.Commit describes. Readers holding tmp open keep reading it. A blob
// already in the bucket is not uploaded again.
func (s *S3) Commit(ctx context.Context, d oci.Digest, tmp *os.File) error {
	err := s.commit(ctx, d, tmp)
	s.spool.Abort(tmp)
	return err
}

func (s *S3) commit(ctx context.Context, d oci.Digest, tmp *os.File) error {
	key, err := s.key(d)
	if err != nil {
		return fmt.Errorf("commit blob: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("commit blob %s: %w", d, err)
	}
	if _, err := s.client.StatObject(ctx, s.opts.Bucket, key, minio.StatObjectOptions{}); err == nil {
		return nil // blobs are immutable
	} else if !isNotFound(err) {
		return fmt.Errorf("commit blob %s: look for s3 object %s: %w", d, key, err)
	}
	fi, err := tmp.Stat()
	if err != nil {
		return fmt.Errorf("commit blob %s: stat %s: %w", d, tmp.Name(), err)
	}
	// A section reader reads by offset: the writer's file position is irrelevant.
	body := io.NewSectionReader(tmp, 0, fi.Size())
	if err := s.upload(ctx, d, key, body, fi.Size()); err != nil {
		return fmt.Errorf("commit blob %s: upload s3 object %s: %w", d, key, err)
	}
	if err := s.verifyObject(ctx, d, key); err != nil {
		// Nobody may be served what did not arrive intact. An object that
		// could not be read back stays: it is hashed when first served.
		if errors.Is(err, oci.ErrDigestInvalid) {
			if rerr := s.client.RemoveObject(ctx, s.opts.Bucket, key, minio.RemoveObjectOptions{}); rerr != nil && !isNotFound(rerr) {
				return fmt.Errorf("commit blob %s: %w; removing the object failed too: %w", d, err, rerr)
			}
		}
		return fmt.Errorf("commit blob %s: %w", d, err)
	}
	return nil
}

// upload PUTs the verified bytes of blob d, with its SHA-256 as the signed
// payload hash and as x-amz-checksum-sha256 when it fits one PUT.
func (s *S3) upload(ctx context.Context, d oci.Digest, key string, body io.Reader, size int64) error {
	if size > maxSinglePut {
		_, err := s.client.PutObject(ctx, s.opts.Bucket, key, body, size, minio.PutObjectOptions{ContentType: oci.MediaTypeOctetStream})
		return err
	}
	_, err := s.core.PutObject(ctx, s.opts.Bucket, key, body, size, "", d.Hex(), minio.PutObjectOptions{
		ContentType:          oci.MediaTypeOctetStream,
		DisableContentSha256: true, // the hash is given: no streaming signature that hashes again
		UserMetadata:         map[string]string{checksumHeader: checksumOf(d)},
	})
	return err
}

// checksumHeader carries an object's SHA-256 (base64) in S3's
// additional-checksums API.
const checksumHeader = "x-amz-checksum-sha256"

// checksumOf is blob d's x-amz-checksum-sha256 value: its digest's bytes
// in base64.
func checksumOf(d oci.Digest) string {
	sum, _ := hex.DecodeString(d.Hex())
	return base64.StdEncoding.EncodeToString(sum)
}

// verifyObject reads object key back and checks that it hashes to d; the
// version read is then remembered as verified.
func (s *S3) verifyObject(ctx context.Context, d oci.Digest, key string) error {
	body, info, _, err := s.core.GetObject(ctx, s.opts.Bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return s.objectErr("verify", d, key, err)
	}
	defer body.Close()
	if err := verify(ctx, d, body, "s3://"+s.opts.Bucket+"/"+key); err != nil {
		return err
	}
	s.verified.add(d, versionOf(info))
	return nil
}

// Open opens blob d. Its download starts at once (so a reader keeps its
// bytes even if the blob is deleted meanwhile), unless RedirectExpiry is
// set: then it starts at the first Read, and RedirectURL needs none.
// Reads after a Seek issue a ranged GET, under ctx.
func (s *S3) Open(ctx context.Context, d oci.Digest) (Blob, error) {
	key, err := s.key(d)
	if err != nil {
		return nil, fmt.Errorf("open blob: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open blob %s: %w", d, err)
	}
	b := &s3Blob{s: s, ctx: ctx, digest: d, key: key}
	if s.opts.RedirectExpiry > 0 {
		// The checksum S3 recorded, if it keeps one, is compared before a redirect.
		info, err := s.client.StatObject(ctx, s.opts.Bucket, key, minio.StatObjectOptions{Checksum: true})
		if err != nil {
			return nil, s.objectErr("open", d, key, err)
		}
		b.size, b.version, b.checksum = info.Size, versionOf(info), info.ChecksumSHA256
		return b, nil
	}
	body, info, _, err := s.core.GetObject(ctx, s.opts.Bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, s.objectErr("open", d, key, err)
	}
	b.size, b.body, b.version = info.Size, body, versionOf(info)
	return b, nil
}

// objectVersion identifies one write of an object: another PUT under the
// same key changes the ETag or the modification time.
type objectVersion struct {
	etag     string
	size     int64
	modified time.Time
}

func versionOf(info minio.ObjectInfo) objectVersion {
	return objectVersion{etag: info.ETag, size: info.Size, modified: info.LastModified}
}

// maxVerifiedObjects bounds the memory of verifiedObjects; a forgotten
// entry only makes the next serve of that blob stream (and hash) it.
const maxVerifiedObjects = 100_000

// verifiedObjects remembers, per digest, the object version last hashed
// and found to match.
type verifiedObjects struct {
	mu sync.Mutex
	m  map[oci.Digest]objectVersion
}

func newVerifiedObjects() *verifiedObjects {
	return &verifiedObjects{m: make(map[oci.Digest]objectVersion)}
}

// known reports whether v, an object version of blob d, was verified. A
// version without an ETag is never known: it could not be told apart.
func (v *verifiedObjects) known(d oci.Digest, ver objectVersion) bool {
	if ver.etag == "" {
		return false
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	prev, ok := v.m[d]
	return ok && prev.etag == ver.etag && prev.size == ver.size && prev.modified.Equal(ver.modified)
}

func (v *verifiedObjects) add(d oci.Digest, ver objectVersion) {
	if ver.etag == "" {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, ok := v.m[d]; !ok && len(v.m) >= maxVerifiedObjects {
		for k := range v.m {
			delete(v.m, k)
			break
		}
	}
	v.m[d] = ver
}

func (v *verifiedObjects) forget(d oci.Digest) {
	v.mu.Lock()
	defer v.mu.Unlock()
	delete(v.m, d)
}

func (s *S3) objectErr(action string, d oci.Digest, key string, err error) error {
	if isNotFound(err) {
		return fmt.Errorf("%s blob %s: %w", action, d, oci.ErrBlobUnknown)
	}
	return fmt.Errorf("%s blob %s: s3 object %s: %w", action, d, key, err)
}

// s3Blob reads an object from its current offset. A Seek only moves the
// offset: the open response is kept while reads continue where it is, so
// http.ServeContent's probe (seek to the end and back) costs no request;
// a read elsewhere replaces it with a ranged GET from the offset.
type s3Blob struct {
	s        *S3
	ctx      context.Context // of the Open call: the request the blob is served to
	digest   oci.Digest
	key      string
	size     int64
	version  objectVersion // of the object opened; every read asks for it
	checksum string        // x-amz-checksum-sha256 S3 reported, if any (redirect mode)
	off      int64         // where the next Read starts
	body     io.ReadCloser // nil until needed
	bodyAt   int64         // the offset body's next byte is at
}

func (b *s3Blob) Size() int64 { return b.size }

func (b *s3Blob) Read(p []byte) (int, error) {
	if b.off >= b.size {
		return 0, io.EOF
	}
	if b.body != nil && b.bodyAt != b.off {
		b.body.Close()
		b.body = nil
	}
	if b.body == nil {
		var opts minio.GetObjectOptions
		if b.version.etag != "" {
			// Bytes of a later write under the key would not be the ones
			// ContentVerified vouches for.
			if err := opts.SetMatchETag(b.version.etag); err != nil {
				return 0, err
			}
		}
		if b.off > 0 {
			if err := opts.SetRange(b.off, 0); err != nil {
				return 0, err
			}
		}
		body, _, _, err := b.s.core.GetObject(b.ctx, b.s.opts.Bucket, b.key, opts)
		if err != nil {
			return 0, b.s.objectErr("read", b.digest, b.key, err)
		}
		b.body, b.bodyAt = body, b.off
	}
	n, err := b.body.Read(p)
	b.off += int64(n)
	b.bodyAt = b.off
	if err == io.EOF && b.off < b.size {
		err = fmt.Errorf("read blob %s: s3 object %s ended after %d of %d bytes: %w", b.digest, b.key, b.off, b.size, io.ErrUnexpectedEOF)
	}
	return n, err
}

func (b *s3Blob) Seek(offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = b.off + offset
	case io.SeekEnd:
		abs = b.size + offset
	default:
		return 0, fmt.Errorf("seek blob %s: invalid whence %d", b.digest, whence)
	}
	if abs < 0 {
		return 0, fmt.Errorf("seek blob %s: negative position %d", b.digest, abs)
	}
	b.off = abs
	return abs, nil
}

func (b *s3Blob) Close() error {
	if b.body == nil {
		return nil
	}
	err := b.body.Close()
	b.body = nil
	return err
}

// ContentVerified records that the caller read the whole blob from this
// opened object and it hashed to the digest, so the object version may be
// redirected to from now on.
func (b *s3Blob) ContentVerified() { b.s.verified.add(b.digest, b.version) }

// RedirectURL returns a presigned GET URL of the blob, or "" when the blob
// is to be served by the caller: the store does not redirect
// (RedirectExpiry is 0), or the object's content was not verified (see
// S3), or the checksum S3 recorded for it is not the digest's.
func (b *s3Blob) RedirectURL(ctx context.Context) (string, error) {
	if b.s.opts.RedirectExpiry <= 0 {
		return "", nil
	}
	if !b.s.verified.known(b.digest, b.version) || (b.checksum != "" && b.checksum != checksumOf(b.digest)) {
		return "", nil
	}
	u, err := b.s.client.PresignedGetObject(ctx, b.s.opts.Bucket, b.key, b.s.opts.RedirectExpiry, nil)
	if err != nil {
		return "", fmt.Errorf("presign blob %s: %w", b.digest, err)
	}
	return u.String(), nil
}

// Stat returns the size of blob d.
func (s *S3) Stat(ctx context.Context, d oci.Digest) (int64, error) {
	key, err := s.key(d)
	if err != nil {
		return 0, fmt.Errorf("stat blob: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("stat blob %s: %w", d, err)
	}
	info, err := s.client.StatObject(ctx, s.opts.Bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return 0, s.objectErr("stat", d, key, err)
	}
	return info.Size, nil
}

// Delete removes blob d; a missing blob is not an error. Readers that
// opened it before keep the bytes already on their way.
func (s *S3) Delete(ctx context.Context, d oci.Digest) error {
	key, err := s.key(d)
	if err != nil {
		return fmt.Errorf("delete blob: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete blob %s: %w", d, err)
	}
	s.verified.forget(d)
	if err := s.client.RemoveObject(ctx, s.opts.Bucket, key, minio.RemoveObjectOptions{}); err != nil && !isNotFound(err) {
		return fmt.Errorf("delete blob %s: s3 object %s: %w", d, key, err)
	}
	return nil
}

// Walk calls fn for every stored blob, in digest order, with its size, as
// FS.Walk does. Objects under the prefix that are not blobs are skipped.
func (s *S3) Walk(ctx context.Context, fn func(d oci.Digest, size int64) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("walk blobs: %w", err)
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the listing when we return early
	base := s.opts.Prefix + algorithm + "/"
	for obj := range s.client.ListObjects(lctx, s.opts.Bucket, minio.ListObjectsOptions{Prefix: base, Recursive: true}) {
		if obj.Err != nil {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("walk blobs: %w", err)
			}
			return fmt.Errorf("list s3 objects under %s: %w", base, obj.Err)
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("walk blobs: %w", err)
		}
		name := strings.TrimPrefix(obj.Key, base)
		if len(name) != hexLen || !isLowerHex(name) {
			continue
		}
		if err := fn(oci.Digest(algorithm+":"+name), obj.Size); err != nil {
			return err
		}
	}
	return nil
}

// Verify re-reads blob d, streaming the whole object, and checks that it
// still hashes to d, as FS.Verify does.
func (s *S3) Verify(ctx context.Context, d oci.Digest) error {
	key, err := s.key(d)
	if err != nil {
		return fmt.Errorf("verify blob: %w", err)
	}
	if err := s.verifyObject(ctx, d, key); err != nil {
		if errors.Is(err, oci.ErrDigestInvalid) {
			s.verified.forget(d)
		}
		return err
	}
	return nil
}

// ModTime returns when blob d's object was last written.
func (s *S3) ModTime(ctx context.Context, d oci.Digest) (time.Time, error) {
	key, err := s.key(d)
	if err != nil {
		return time.Time{}, fmt.Errorf("stat blob: %w", err)
	}
	info, err := s.client.StatObject(ctx, s.opts.Bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return time.Time{}, s.objectErr("stat", d, key, err)
	}
	return info.LastModified, nil
}

// Temps lists the spool files of downloads, as FS.Temps does.
func (s *S3) Temps() ([]TempFile, error) { return s.spool.Temps() }

// RemoveTemp removes a spool file Temps listed.
func (s *S3) RemoveTemp(name string) error { return s.spool.RemoveTemp(name) }
