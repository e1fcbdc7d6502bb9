package cache

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/dproxy/dproxy/internal/blobstore"
	"github.com/dproxy/dproxy/internal/oci"
)

// servedBlob is a stored blob opened for a client: it keeps the digest
// pinned until closed, and verifies the content when it is read in one
// pass from the start, so a file corrupted on disk is caught: the last
// bytes are withheld (the client sees a short body, never a wrong blob)
// and the blob is dropped from the cache.
type servedBlob struct {
	blobstore.Blob
	c       *Cache
	ctx     context.Context
	digest  oci.Digest
	release func()

	file     os.FileInfo   // identity of the opened file; nil when unknown
	pos      int64         // where the next Read starts
	hashed   int64         // bytes fed to verifier
	verifier *oci.Verifier // nil once the reads stopped being one pass, or when verified before
}

// serve wraps an opened stored blob for a client; a file verified before
// and unchanged since is not hashed again (see verifiedFiles).
func (c *Cache) serve(ctx context.Context, f blobstore.Blob, d oci.Digest, release func()) *servedBlob {
	b := &servedBlob{Blob: f, c: c, ctx: ctx, digest: d, release: release, file: identity(f)}
	if !c.verified.known(d, b.file) {
		b.verifier = oci.NewVerifier(d)
	}
	return b
}

func (b *servedBlob) Read(p []byte) (int, error) {
	if b.verifier != nil && b.pos != b.hashed {
		b.verifier = nil // a Range request: the whole blob is not read in order
	}
	n, err := b.Blob.Read(p)
	if b.verifier != nil && n > 0 {
		b.verifier.Write(p[:n])
		b.hashed += int64(n)
		if b.hashed >= b.Size() {
			ok := b.verifier.Verified()
			b.verifier = nil
			if !ok {
				b.c.verified.forget(b.digest)
				b.c.discardCorrupt(b.ctx, b.digest, "content does not hash to its digest")
				return 0, fmt.Errorf("%w: stored blob %s does not match its digest", oci.ErrDigestInvalid, b.digest)
			}
			b.c.verified.add(b.digest, b.file)
			if cv, ok := b.Blob.(interface{ ContentVerified() }); ok {
				cv.ContentVerified() // e.g. S3 may now redirect to this object
			}
		}
	}
	b.pos += int64(n)
	return n, err
}

// Seek moves the read position; http.ServeContent seeks to the end and
// back to learn the size, which keeps the verification going.
func (b *servedBlob) Seek(off int64, whence int) (int64, error) {
	pos, err := b.Blob.Seek(off, whence)
	if err == nil {
		b.pos = pos
	}
	return pos, err
}

// Direct returns the stored blob itself when serving it needs no hashing
// (verified before and unchanged since), so the server reads the file
// without this wrapper; nil while reads must go through verification.
func (b *servedBlob) Direct() io.ReadSeeker {
	if b.verifier != nil {
		return nil
	}
	return b.Blob
}

// Close puts a file served without hashing, verified and unchanged, back
// among the idle files (openFiles) and closes any other; then unpins.
func (b *servedBlob) Close() error {
	var err error
	if b.verifier == nil && b.file != nil && b.c.verified.known(b.digest, b.file) {
		err = b.c.files.put(b.digest, b.Blob, b.file)
	} else {
		err = b.Blob.Close()
	}
	b.release()
	return err
}

// RedirectURL forwards to the stored blob when its storage can send
// clients to it directly (S3 with storage-redirect); "" means serve it here.
func (b *servedBlob) RedirectURL(ctx context.Context) (string, error) {
	if rd, ok := b.Blob.(interface {
		RedirectURL(context.Context) (string, error)
	}); ok {
		return rd.RedirectURL(ctx)
	}
	return "", nil
}
