package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/dproxy/dproxy/internal/blobstore"
	"github.com/dproxy/dproxy/internal/metrics"
	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/store"
)

// Blob is a blob as served to a client. Close it when done.
type Blob struct {
	// ReadCloser yields the content. It is also an io.ReadSeeker when
	// Cached is true or Size is known, so Range requests can be answered:
	// on a miss, a read past the bytes downloaded so far waits for them
	// (as every read of a download does).
	io.ReadCloser
	// Size is the content length, or -1 when the upstream did not say.
	Size int64
	// Cached is true when the bytes come from storage rather than from a
	// download in progress.
	Cached bool
}

// Blob returns the content of blob d of t.Image. A blob the group has
// cached is served from storage without contacting the upstream. On a miss,
// exactly one upstream download runs per digest however many clients ask;
// every client streams from it as bytes arrive. The download carries on
// when clients go away, and its bytes are verified before the blob is
// committed; a client never receives the last byte of an unverified blob.
func (c *Cache) Blob(ctx context.Context, t Target, d oci.Digest) (*Blob, error) {
	for {
		b, retry, err := c.blob(ctx, t, d)
		if !retry {
			return b, err
		}
	}
}

// blob makes one attempt; retry is true when a download finished while we
// looked and the lookup must start over.
func (c *Cache) blob(ctx context.Context, t Target, d oci.Digest) (_ *Blob, retry bool, _ error) {
	key := store.BlobKey{OwnerID: t.GroupID, Digest: d}
	refSize, err := c.blobRef(ctx, t, d)
	switch {
	case err == nil:
		release, err := c.pin(ctx, d)
		if err != nil {
			return nil, false, err
		}
		f, err := c.open(ctx, d)
		if err == nil {
			why, err := c.checkStored(f, d, refSize)
			if why == "" && err == nil {
				c.touch.blob(key)
				c.opts.Metrics.CacheResult("blob", metrics.ResultHit)
				return &Blob{ReadCloser: c.serve(ctx, f, d, release), Size: f.Size(), Cached: true}, false, nil
			}
			f.Close()
			release()
			if err != nil {
				return nil, false, err
			}
			c.index.forget(key)
			c.discardCorrupt(ctx, d, why)
			return nil, true, nil // fetch it again for this client
		}
		release()
		if !errors.Is(err, oci.ErrBlobUnknown) {
			return nil, false, fmt.Errorf("open cached blob %s: %w", d, err)
		}
		// The row outlived its file: drop it and fetch again.
		c.log.WarnContext(ctx, "cached blob file missing, fetching again", "digest", d, "group_id", t.GroupID)
		c.index.forget(key)
		if err := c.meta.DeleteBlob(ctx, t.GroupID, d); err != nil {
			return nil, false, fmt.Errorf("drop blob reference %s: %w", d, err)
		}
	case !errors.Is(err, store.ErrNotFound):
		return nil, false, fmt.Errorf("look up blob %s: %w", d, err)
	}

	c.mu.Lock()
	dl := c.downloads[d]
	gen := c.generation
	c.mu.Unlock()

	// Not referenced by this group. With TrustHead, a file stored for
	// another group, or another group's download, is shared once the
	// upstream confirmed that this group's credentials may read it.
	// Without it, this group's upstream must serve the bytes itself: a
	// download of its own, whose commit keeps an already stored file.
	switch {
	case dl == nil && c.opts.TrustHead:
		// The pin keeps garbage collection away until the reference exists.
		release, err := c.pin(ctx, d)
		if err != nil {
			return nil, false, err
		}
		if f, err := c.blobs.Open(ctx, d); err == nil {
			if err := c.confirm(ctx, t, d); err != nil {
				f.Close()
				release()
				return nil, false, err
			}
			c.reference(ctx, t.GroupID, d, f.Size())
			c.opts.Metrics.CacheResult("blob", metrics.ResultHit)
			return &Blob{ReadCloser: c.serve(ctx, f, d, release), Size: f.Size(), Cached: true}, false, nil
		} else if !errors.Is(err, oci.ErrBlobUnknown) {
			release()
			return nil, false, fmt.Errorf("open blob %s: %w", d, err)
		}
		release()
	case dl != nil && !dl.hasOwner(t.GroupID) && c.opts.TrustHead:
		if err := c.confirm(ctx, t, d); err != nil {
			return nil, false, err
		}
	case dl != nil && !dl.hasOwner(t.GroupID):
		// Once the other group's download is over, this group starts its own.
		select {
		case <-dl.done:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
		return nil, true, nil
	}

	// The purge generation when this client joins: the commit adds the
	// reference only if no purge came since (on any replica).
	purges, err := c.meta.PurgeGeneration(ctx, t.GroupID)
	if err != nil {
		return nil, false, fmt.Errorf("look up blob %s: %w", d, err)
	}
	r, dl, retry, err := c.join(ctx, t, d, gen, purges)
	if retry || err != nil {
		return nil, retry, err
	}
	select {
	case <-dl.ready:
	case <-ctx.Done():
		r.Close()
		return nil, false, ctx.Err()
	}
	size, err := dl.header()
	if err != nil {
		r.Close()
		return nil, false, err
	}
	c.opts.Metrics.CacheResult("blob", metrics.ResultMiss)
	return &Blob{ReadCloser: r, Size: size}, false, nil
}

// DefaultPreVerifyMax is Options.PreVerifyMax's default.
const DefaultPreVerifyMax = 64 << 20

// checkStored says what is wrong with f, the stored file of d whose
// recorded size is size: "" when it may be served. A file of at most
// Options.PreVerifyMax bytes not verified since it last changed is hashed first
// (and rewound). Files of blob stores that give no identity (S3) are
// verified while served instead: each serve there would be hashed twice.
func (c *Cache) checkStored(f blobstore.Blob, d oci.Digest, size int64) (why string, _ error) {
	if f.Size() != size {
		return fmt.Sprintf("file has %d bytes, the cache recorded %d", f.Size(), size), nil
	}
	fi := identity(f)
	if fi == nil || size > c.opts.PreVerifyMax || c.verified.known(d, fi) {
		return "", nil
	}
	v := oci.NewVerifier(d)
	if _, err := io.Copy(v, f); err != nil {
		return "", fmt.Errorf("verify stored blob %s: %w", d, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", fmt.Errorf("verify stored blob %s: %w", d, err)
	}
	if !v.Verified() {
		c.verified.forget(d)
		return "content hashes to " + string(v.Sum()) + ", not its digest", nil
	}
	c.verified.add(d, fi)
	return "", nil
}

// confirm asks the upstream, with t's credentials, whether blob d exists in
// t.Image: a group only shares content it could have fetched itself. Only
// an upstream of the operator's is asked (Options.TrustHead).
func (c *Cache) confirm(ctx context.Context, t Target, d oci.Digest) error {
	_, err := c.remote.HeadBlob(ctx, t.Creds, t.Image, d)
	return err
}

// reference records that a group (or upstream, see Target.GroupID) uses a
// stored blob.
func (c *Cache) reference(ctx context.Context, ownerID int64, d oci.Digest, size int64) {
	now := c.opts.Now()
	if err := c.meta.PutBlob(ctx, store.Blob{OwnerID: ownerID, Digest: d, Size: size, CreatedAt: now, ReadAt: now}); err != nil {
		c.log.ErrorContext(ctx, "store blob reference", "digest", d, "group_id", ownerID, "err", err)
	}
}

// referenceUnpurged records that owner uses a downloaded blob, unless its
// cache was purged since purges (its generation when its client joined).
func (c *Cache) referenceUnpurged(ctx context.Context, ownerID, purges int64, d oci.Digest, size int64) {
	now := c.opts.Now()
	added, err := c.meta.PutBlobUnpurged(ctx, store.Blob{OwnerID: ownerID, Digest: d, Size: size, CreatedAt: now, ReadAt: now}, purges)
	switch {
	case err != nil:
		c.log.ErrorContext(ctx, "store blob reference", "digest", d, "group_id", ownerID, "err", err)
	case !added:
		c.log.InfoContext(ctx, "blob reference not stored: the cache was purged while the blob downloaded", "digest", d, "group_id", ownerID)
	}
}

// join attaches a reader to the download of d, starting the download when
// none runs; purges is the purge generation of t.GroupID as the client
// joins. retry is true when the download of d was being committed, or a
// download finished since gen, or (without TrustHead) another group's
// download started meanwhile: the caller looks the blob up again.
func (c *Cache) join(ctx context.Context, t Target, d oci.Digest, gen uint64, purges int64) (*downloadReader, *download, bool, error) {
	c.mu.Lock()
	dl := c.downloads[d]
	switch {
	case dl != nil && !c.opts.TrustHead && !dl.sealed && !dl.hasOwner(t.GroupID):
		c.mu.Unlock()
		return nil, nil, true, nil
	case dl != nil && dl.sealed:
		c.mu.Unlock()
		select {
		case <-dl.done:
		case <-ctx.Done():
			return nil, nil, false, ctx.Err()
		}
		if _, err := dl.header(); err != nil {
			return nil, nil, false, err
		}
		return nil, nil, true, nil
	case dl == nil && c.generation != gen:
		c.mu.Unlock()
		return nil, nil, true, nil
	case dl == nil && c.closed:
		c.mu.Unlock()
		return nil, nil, false, fmt.Errorf("%w: blob %s: this cache was closed (its upstream was removed, or the server is stopping)", oci.ErrUnavailable, d)
	case dl == nil:
		tmp, err := c.blobs.CreateTemp()
		if err != nil {
			c.mu.Unlock()
			return nil, nil, false, fmt.Errorf("create temp file for blob %s: %w", d, err)
		}
		dl = newDownload(d, tmp, t.Image, c.opts.Now())
		c.downloads[d] = dl
		c.wg.Add(1)
		go c.run(dl, t)
	}
	// The temp file cannot be renamed while we hold c.mu and dl is not sealed.
	f, err := os.Open(dl.tmp.Name())
	if err == nil {
		dl.addReader(t.GroupID, purges)
	}
	c.mu.Unlock()
	if err != nil {
		return nil, nil, false, fmt.Errorf("open download of blob %s: %w", d, err)
	}
	return &downloadReader{dl: dl, f: f, ctx: ctx}, dl, false, nil
}

// download is one upstream fetch of a blob into a temp file, read by any
// number of clients while it grows.
type download struct {
	digest  oci.Digest
	tmp     *os.File
	image   string        // the repository of the client that started it
	started time.Time     // when it started
	ready   chan struct{} // closed once the size is known or the download failed
	done    chan struct{} // closed when committed or failed

	// sealed is guarded by Cache.mu: once set, no reader may open tmp.
	sealed bool
	// stopRenew, set while this download holds the cluster's fetch lease,
	// stops renewing it. Used by the download's own goroutine only.
	stopRenew func()

	mu       sync.Mutex
	size     int64 // -1 until known or when the upstream did not say
	written  int64
	verified bool
	err      error
	progress chan struct{} // closed and replaced whenever the fields above change
	// owners maps the Target.GroupID of every client that joined to the
	// owner's purge generation when the last of them joined.
	owners  map[int64]int64
	readers int // clients streaming from it now
}

func newDownload(d oci.Digest, tmp *os.File, image string, started time.Time) *download {
	return &download{
		digest: d, tmp: tmp, size: -1, image: image, started: started,
		ready: make(chan struct{}), done: make(chan struct{}),
		progress: make(chan struct{}),
		owners:   map[int64]int64{},
	}
}

func (dl *download) hasOwner(id int64) bool {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	_, ok := dl.owners[id]
	return ok
}

// addReader records a client of owner id streaming from the download,
// which joined when the owner's purge generation was purges. A client
// joining after a purge is a new use of the cache: its generation counts.
func (dl *download) addReader(id, purges int64) {
	dl.mu.Lock()
	if old, ok := dl.owners[id]; !ok || purges > old {
		dl.owners[id] = purges
	}
	dl.readers++
	dl.mu.Unlock()
}

// header returns the size once ready, or the error that ended the download
// before its body started.
func (dl *download) header() (int64, error) {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	if dl.err != nil && dl.written == 0 {
		return 0, dl.err
	}
	return dl.size, nil
}

// update changes the shared state under the lock and wakes every reader.
func (dl *download) update(fn func()) {
	dl.mu.Lock()
	fn()
	close(dl.progress)
	dl.progress = make(chan struct{})
	dl.mu.Unlock()
}

// run downloads dl, detached from the clients that asked for it.
func (c *Cache) run(dl *download, t Target) {
	defer c.wg.Done()
	c.opts.Metrics.InflightDownloads(1)
	defer c.opts.Metrics.InflightDownloads(-1)
	start := time.Now()

	err := c.fetchBlob(dl, t)
	fetched := err == nil
	if fetched {
		err = c.commit(dl)
	}
	// After the commit (and the references): a replica waiting for the
	// lease then finds the stored object.
	c.releaseLease(dl)
	if !fetched {
		// Sealed first: a client joining now must not open the temp file
		// that Abort removes.
		c.mu.Lock()
		dl.sealed = true
		c.mu.Unlock()
		c.blobs.Abort(dl.tmp)
	}

	c.mu.Lock()
	dl.sealed = true
	delete(c.downloads, dl.digest)
	c.generation++
	c.mu.Unlock()

	if err != nil {
		c.log.Error("blob download failed", "digest", dl.digest, "image", t.Image, "err", err)
		dl.update(func() { dl.err = err })
	} else {
		c.log.Info("blob cached", "digest", dl.digest, "image", t.Image, "size", dl.written, "duration", time.Since(start))
	}
	select {
	case <-dl.ready:
	default:
		close(dl.ready)
	}
	close(dl.done)
}

// fetchBlob streams the blob's body into the temp file and verifies it.
// Readers see every byte but the last until the digest is verified. The
// body comes from the upstream, or, when another replica holds the fetch
// lease (Options.Cluster), from that replica or the stored object; a
// source of the cluster that fails midway is replaced by the next one,
// from the offset reached.
func (c *Cache) fetchBlob(dl *download, t Target) error {
	ctx, cancel := context.WithCancelCause(c.ctx)
	defer cancel(nil)
	idle := time.AfterFunc(c.opts.IdleTimeout, func() {
		cancel(fmt.Errorf("%w: no data from upstream for %s", oci.ErrTimeout, c.opts.IdleTimeout))
	})
	defer idle.Stop()

	v := oci.NewVerifier(dl.digest)
	buf := make([]byte, 256<<10)
	var written int64
	size := int64(-2) // not known yet
	for {
		src, err := c.source(ctx, dl, t, written, func() { idle.Reset(c.opts.IdleTimeout) })
		if err != nil {
			if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
				return fmt.Errorf("download blob %s of %s: %w", dl.digest, t.Image, cause)
			}
			return err
		}
		if size == -2 {
			size = src.size
			if size > c.opts.MaxBlobSize {
				src.body.Close()
				return fmt.Errorf("%w: blob %s of %s is %d bytes, the limit is %d", oci.ErrSizeInvalid, dl.digest, t.Image, size, c.opts.MaxBlobSize)
			}
			dl.update(func() { dl.size = size })
			close(dl.ready)
		}
		var rerr error
		for {
			var n int
			n, rerr = src.body.Read(buf)
			if n > 0 {
				idle.Reset(c.opts.IdleTimeout)
				if _, err := dl.tmp.Write(buf[:n]); err != nil {
					src.body.Close()
					return fmt.Errorf("write blob %s to temp file: %w", dl.digest, err)
				}
				v.Write(buf[:n])
				written += int64(n)
				if written > c.opts.MaxBlobSize || (size >= 0 && written > size) {
					src.body.Close()
					return fmt.Errorf("%w: blob %s from upstream is longer than announced (%d bytes) or the limit", oci.ErrSizeInvalid, dl.digest, size)
				}
				dl.update(func() { dl.written = written })
			}
			if rerr != nil {
				break
			}
		}
		src.body.Close()
		if rerr == io.EOF {
			break
		}
		if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
			return fmt.Errorf("download blob %s of %s: %w", dl.digest, t.Image, cause)
		}
		if src.upstream || ctx.Err() != nil {
			return fmt.Errorf("%w: download blob %s of %s: %w", oci.ErrUnavailable, dl.digest, t.Image, rerr)
		}
		c.log.Warn("blob source of the cluster failed, trying the next", "digest", dl.digest, "from", src.name, "offset", written, "err", rerr)
	}
	if size >= 0 && written != size {
		return fmt.Errorf("%w: blob %s from upstream ended after %d of %d bytes", oci.ErrUnavailable, dl.digest, written, size)
	}
	if !v.Verified() {
		return fmt.Errorf("%w: blob from upstream has digest %s, expected %s for %s", oci.ErrUnavailable, v.Sum(), dl.digest, t.Image)
	}
	dl.update(func() { dl.verified = true; dl.size = written })
	return nil
}

// commit moves a verified temp file into place and records the blob for
// every group that asked for it and was not purged since.
func (c *Cache) commit(dl *download) error {
	c.mu.Lock()
	dl.sealed = true // readers that joined hold their own descriptor
	c.mu.Unlock()
	// A delete of an unreferenced older copy must not run between the
	// commit (which keeps an existing file) and the references below.
	release, err := c.pin(c.ctx, dl.digest)
	if err != nil {
		c.blobs.Abort(dl.tmp)
		return fmt.Errorf("commit blob %s: %w", dl.digest, err)
	}
	defer release()
	downloaded := identity(dl.tmp)
	// Commit runs on the cache's context: a shutdown may cancel it, never a client.
	if err := c.blobs.Commit(c.ctx, dl.digest, dl.tmp); err != nil {
		return fmt.Errorf("commit blob %s: %w", dl.digest, err)
	}
	c.recordVerified(dl.digest, downloaded)
	dl.mu.Lock()
	owners := maps.Clone(dl.owners)
	size := dl.written
	dl.mu.Unlock()
	for o, purges := range owners {
		c.referenceUnpurged(context.WithoutCancel(c.ctx), o, purges, dl.digest, size)
	}
	if c.opts.Stored != nil {
		c.opts.Stored()
	}
	return nil
}

// recordVerified records the committed file of d as verified when it is
// the temp file whose bytes the download hashed (downloaded is its
// identity before the commit), so that no serve hashes it again. A commit
// that kept a file stored before, or a blob store whose files give no
// identity, records nothing: those are verified when served.
func (c *Cache) recordVerified(d oci.Digest, downloaded os.FileInfo) {
	if downloaded == nil {
		return
	}
	f, err := c.blobs.Open(c.ctx, d)
	if err != nil {
		return // the first serve verifies it
	}
	defer f.Close()
	if fi := identity(f); fi != nil && os.SameFile(fi, downloaded) &&
		fi.Size() == downloaded.Size() && fi.ModTime().Equal(downloaded.ModTime()) {
		c.verified.add(d, fi)
	}
}

// downloadReader streams a download in progress to one client.
type downloadReader struct {
	dl   *download
	f    *os.File
	off  int64
	ctx  context.Context
	once sync.Once // Close counts the reader out once
}

func (r *downloadReader) Read(p []byte) (int, error) {
	for {
		r.dl.mu.Lock()
		avail := r.dl.written
		if !r.dl.verified {
			avail-- // the last byte waits for verification
		}
		verified, err, wake := r.dl.verified, r.dl.err, r.dl.progress
		total := r.dl.written
		r.dl.mu.Unlock()

		if r.off < avail {
			n := int64(len(p))
			if rest := avail - r.off; rest < n {
				n = rest
			}
			m, err := r.f.ReadAt(p[:n], r.off)
			r.off += int64(m)
			if m > 0 {
				return m, nil
			}
			if err != nil && err != io.EOF {
				return 0, fmt.Errorf("read download of blob %s: %w", r.dl.digest, err)
			}
		}
		if err != nil {
			return 0, err
		}
		if verified && r.off >= total {
			return 0, io.EOF
		}
		select {
		case <-wake:
		case <-r.ctx.Done():
			return 0, r.ctx.Err()
		}
	}
}

// Seek moves where the next Read starts, within the announced size: a
// client resuming an interrupted pull reads from its offset as soon as the
// download reaches it, not from zero.
func (r *downloadReader) Seek(off int64, whence int) (int64, error) {
	r.dl.mu.Lock()
	size := r.dl.size
	r.dl.mu.Unlock()
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		off += r.off
	case io.SeekEnd:
		if size < 0 {
			return 0, fmt.Errorf("seek in the download of blob %s: the upstream did not say its size", r.dl.digest)
		}
		off += size
	default:
		return 0, fmt.Errorf("seek in the download of blob %s: whence %d", r.dl.digest, whence)
	}
	if off < 0 || (size >= 0 && off > size) {
		return 0, fmt.Errorf("seek in the download of blob %s: offset %d outside its %d bytes", r.dl.digest, off, size)
	}
	r.off = off
	return off, nil
}

func (r *downloadReader) Close() error {
	r.once.Do(func() {
		r.dl.mu.Lock()
		r.dl.readers--
		r.dl.mu.Unlock()
	})
	return r.f.Close()
}

// StatBlob returns the size of blob d without reading it: from storage when
// the group has it, from a download in progress, or from an upstream HEAD
// (never a GET).
func (c *Cache) StatBlob(ctx context.Context, t Target, d oci.Digest) (int64, error) {
	if _, err := c.meta.Blob(ctx, t.GroupID, d); err == nil {
		if size, err := c.blobs.Stat(ctx, d); err == nil {
			return size, nil
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return 0, fmt.Errorf("look up blob %s: %w", d, err)
	}
	c.mu.Lock()
	dl := c.downloads[d]
	c.mu.Unlock()
	if dl != nil && dl.hasOwner(t.GroupID) {
		select {
		case <-dl.ready:
			if size, err := dl.header(); err == nil && size >= 0 {
				return size, nil
			}
		default:
		}
	}
	desc, err := c.remote.HeadBlob(ctx, t.Creds, t.Image, d)
	if err != nil {
		return 0, err
	}
	return desc.Size, nil
}

// Download is a blob download in progress, as Downloads reports it.
type Download struct {
	Digest oci.Digest
	// Image is the upstream repository of the client that started it.
	Image string
	// Owners are the Target.GroupID of every client that joined it.
	Owners []int64
	// Written counts the bytes received so far; Size is the whole, -1
	// while unknown.
	Written, Size int64
	// Readers counts the clients streaming from it now.
	Readers int
	Started time.Time
}

// Downloads returns the blob downloads in progress. It costs a copy of
// each download's counters and takes no lock a pull waits on for longer
// than that.
func (c *Cache) Downloads() []Download {
	c.mu.Lock()
	dls := make([]*download, 0, len(c.downloads))
	for _, dl := range c.downloads {
		dls = append(dls, dl)
	}
	c.mu.Unlock()
	out := make([]Download, 0, len(dls))
	for _, dl := range dls {
		dl.mu.Lock()
		d := Download{Digest: dl.digest, Image: dl.image, Written: dl.written, Size: dl.size, Readers: dl.readers, Started: dl.started,
			Owners: make([]int64, 0, len(dl.owners))}
		for o := range dl.owners {
			d.Owners = append(d.Owners, o)
		}
		dl.mu.Unlock()
		slices.Sort(d.Owners)
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b Download) int { return a.Started.Compare(b.Started) })
	return out
}

// InFlight returns the number of blob downloads in progress.
func (c *Cache) InFlight() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.downloads)
}
