package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/dproxy/dproxy/internal/cache"
	"github.com/dproxy/dproxy/internal/metrics"
	"github.com/dproxy/dproxy/internal/oci"
)

// manifest answers GET and HEAD of a manifest with the upstream's exact
// bytes and headers; HEAD carries the same headers and no body.
func (h *Handler) manifest(w http.ResponseWriter, r *http.Request, src source, ref oci.Reference, pull *metrics.Pull) error {
	m, err := src.Manifest(r.Context(), ref)
	if err != nil {
		return err
	}
	h.recordPull(pull, "manifest", ref.String(), m.Result)
	hd := w.Header()
	hd.Set("Content-Type", m.MediaType)
	hd.Set("Docker-Content-Digest", string(m.Digest))
	hd.Set("Content-Length", strconv.Itoa(len(m.Content)))
	etag := m.ETag
	if etag == "" {
		etag = `"` + string(m.Digest) + `"`
	}
	hd.Set("ETag", etag)
	hd.Set(CacheHeader, m.Result)
	if r.Method == http.MethodHead {
		return nil
	}
	n, _ := w.Write(m.Content)
	h.metrics.BytesServed(sourceOf(m.Result), int64(n))
	return nil
}

func sourceOf(result string) string {
	if result == metrics.ResultMiss {
		return metrics.SourceUpstream
	}
	return metrics.SourceCache
}

// blob answers GET and HEAD of a blob. A cached blob supports Range; a
// blob being downloaded streams as it arrives, and a failed download
// aborts the connection so the client never mistakes a prefix for the blob.
func (h *Handler) blob(w http.ResponseWriter, r *http.Request, src source, d oci.Digest, pull *metrics.Pull) error {
	hd := w.Header()
	if r.Method == http.MethodHead {
		size, err := src.StatBlob(r.Context(), d)
		if err != nil {
			return err
		}
		hd.Set("Content-Type", oci.MediaTypeOctetStream)
		hd.Set("Docker-Content-Digest", string(d))
		hd.Set("Content-Length", strconv.FormatInt(size, 10))
		hd.Set("ETag", `"`+string(d)+`"`)
		hd.Set("Accept-Ranges", "bytes")
		return nil
	}
	b, err := src.Blob(r.Context(), d)
	if err != nil {
		return err
	}
	defer b.Close()
	hd.Set("Content-Type", oci.MediaTypeOctetStream)
	hd.Set("Docker-Content-Digest", string(d))
	hd.Set("ETag", `"`+string(d)+`"`)

	if b.Cached {
		h.recordPull(pull, "blob", string(d), metrics.ResultHit)
		hd.Set(CacheHeader, metrics.ResultHit)
		if rd, ok := b.ReadCloser.(redirecter); ok {
			loc, err := rd.RedirectURL(r.Context())
			if err != nil {
				return err
			}
			if loc != "" {
				http.Redirect(w, r, loc, http.StatusTemporaryRedirect)
				return nil
			}
		}
		rs, ok := b.ReadCloser.(io.ReadSeeker)
		if !ok {
			return errors.New("cached blob is not seekable")
		}
		// ServeContent answers Range and conditional requests. A blob that
		// needs no verification goes to it as the stored file, without the
		// verifying reader in between, so the kernel copies it (sendfile).
		cw := &countingWriter{ResponseWriter: w, r: r, log: h.log}
		if d, ok := b.ReadCloser.(direct); ok {
			if f := d.Direct(); f != nil {
				rs = f
			}
		}
		uncork := cork(r.Context())
		defer uncork()
		http.ServeContent(cw, r, "", time.Time{}, rs)
		h.metrics.BytesServed(metrics.SourceCache, cw.n)
		return nil
	}

	h.recordPull(pull, "blob", string(d), metrics.ResultMiss)
	hd.Set(CacheHeader, metrics.ResultMiss)
	if rs, ok := b.ReadCloser.(io.ReadSeeker); ok && b.Size >= 0 && r.Header.Get("Range") != "" {
		// A resumed pull: the range is answered (206) from the download in
		// progress as its bytes arrive, not after the whole blob.
		cw := &countingWriter{ResponseWriter: w, r: r, log: h.log}
		http.ServeContent(cw, r, "", time.Time{}, rs)
		h.metrics.BytesServed(metrics.SourceUpstream, cw.n)
		return nil
	}
	if b.Size >= 0 {
		hd.Set("Content-Length", strconv.FormatInt(b.Size, 10))
	}
	w.WriteHeader(http.StatusOK)
	n, err := io.CopyBuffer(w, readerOnly{b}, make([]byte, 256<<10))
	h.metrics.BytesServed(metrics.SourceUpstream, n)
	if err != nil {
		// Headers are gone: the only honest answer left is to cut the connection.
		h.log.WarnContext(r.Context(), "blob stream aborted", "digest", d, "sent", n, "err", err)
		panic(http.ErrAbortHandler)
	}
	return nil
}

// source is where a repository's content comes from: a group's dependency
// proxy or a container virtual registry.
type source interface {
	Manifest(ctx context.Context, ref oci.Reference) (cache.Manifest, error)
	Blob(ctx context.Context, d oci.Digest) (*cache.Blob, error)
	StatBlob(ctx context.Context, d oci.Digest) (int64, error)
	Tags(ctx context.Context) (cache.TagList, error)
	Referrers(ctx context.Context, d oci.Digest) (cache.ReferrerList, error)
}

// proxySource is the dependency proxy of a group (its full path: group).
type proxySource struct {
	c     puller
	t     cache.Target
	group string
}

func (s proxySource) Manifest(ctx context.Context, ref oci.Reference) (cache.Manifest, error) {
	m, err := s.c.Manifest(ctx, s.t, ref)
	return m, s.hint(err)
}

func (s proxySource) Blob(ctx context.Context, d oci.Digest) (*cache.Blob, error) {
	b, err := s.c.Blob(ctx, s.t, d)
	return b, s.hint(err)
}

func (s proxySource) StatBlob(ctx context.Context, d oci.Digest) (int64, error) {
	n, err := s.c.StatBlob(ctx, s.t, d)
	return n, s.hint(err)
}

// hint adds what to do to the upstream's "repository not found or
// private" (oci.ErrNameUnknown, Docker Hub's insufficient_scope): the
// group's Docker Hub credentials are what could make a private one
// readable.
func (s proxySource) hint(err error) error {
	if !errors.Is(err, oci.ErrNameUnknown) {
		return err
	}
	return fmt.Errorf("%w; if it is private, set hub-creds for the group: `dproxy hub-creds set %s --identity NAME --secret-stdin`", err, s.group)
}

// virtualSource is an image of a container virtual registry.
type virtualSource struct {
	v     virtualPuller
	id    int64
	image string
}

func (s virtualSource) Manifest(ctx context.Context, ref oci.Reference) (cache.Manifest, error) {
	return s.v.Manifest(ctx, s.id, s.image, ref)
}

func (s virtualSource) Blob(ctx context.Context, d oci.Digest) (*cache.Blob, error) {
	return s.v.Blob(ctx, s.id, s.image, d)
}

func (s virtualSource) StatBlob(ctx context.Context, d oci.Digest) (int64, error) {
	return s.v.StatBlob(ctx, s.id, s.image, d)
}

// redirecter is a stored blob clients may fetch from storage directly
// (S3 with storage-redirect); "" means serve it here.
type redirecter interface {
	RedirectURL(ctx context.Context) (string, error)
}

// readerOnly hides every method but Read (no WriterTo/ReaderFrom shortcuts).
type readerOnly struct{ r io.Reader }

func (r readerOnly) Read(p []byte) (int, error) { return r.r.Read(p) }

// direct is a stored blob that can hand out its file when serving it
// needs no verification.
type direct interface {
	Direct() io.ReadSeeker
}

// countingWriter counts the body bytes written, also those a ReadFrom
// (sendfile) copies. A 416 that http.ServeContent answers goes out with
// the OCI error body instead of its plain text.
type countingWriter struct {
	http.ResponseWriter
	r       *http.Request
	log     *slog.Logger
	n       int64
	replied bool // the error body was written; ServeContent's is dropped
}

func (c *countingWriter) WriteHeader(status int) {
	if status == http.StatusRequestedRangeNotSatisfiable {
		c.replied = true
		writeError(c.ResponseWriter, c.r, c.log, fmt.Errorf("%w: the range %q is not within the blob (Content-Range has its size)",
			oci.ErrRangeUnsatisfied, c.r.Header.Get("Range")))
		return
	}
	c.ResponseWriter.WriteHeader(status)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.replied {
		return len(p), nil
	}
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

func (c *countingWriter) ReadFrom(r io.Reader) (int64, error) {
	n, err := io.Copy(c.ResponseWriter, r)
	c.n += n
	return n, err
}
