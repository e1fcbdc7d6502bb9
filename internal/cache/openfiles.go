package cache

import (
	"context"
	"io"
	"os"
	"sync"

	"github.com/dproxy/dproxy/internal/blobstore"
	"github.com/dproxy/dproxy/internal/oci"
)

// maxIdleFiles bounds the descriptors openFiles keeps between requests.
const maxIdleFiles = 64

// openFiles keeps stored blob files that were served verified, open and
// idle between requests, so a warm blob request does not open and close
// its file again (profile of S2: opening was 5 % of the server's CPU).
//
// An idle file serves one request at a time (its read offset is its own)
// and only while the stored file at its digest's path is still the very
// file that was verified: each take stats the path and compares the file
// identity (device and inode, size, modification time) with the one
// recorded when it was put back, so a blob deleted or replaced since, by
// this process, another replica, fsck or a hand on the disk, is never
// served from an idle descriptor; the file is then opened afresh. Idle
// files do not count as in use (pins): a delete proceeds, and drops them.
type openFiles struct {
	mu     sync.Mutex
	idle   map[oci.Digest][]idleFile
	n      int
	closed bool // set by close: nothing is kept any more
}

type idleFile struct {
	f  blobstore.Blob
	fi os.FileInfo // identity verified when put back
}

func newOpenFiles() *openFiles {
	return &openFiles{idle: make(map[oci.Digest][]idleFile)}
}

// pather is a blob store that can say where a blob's file lives.
type pather interface {
	Path(d oci.Digest) string
}

// open returns blob d's stored file: an idle one still current, otherwise
// one opened from the blob store.
func (c *Cache) open(ctx context.Context, d oci.Digest) (blobstore.Blob, error) {
	if f := c.files.take(c.blobs, d); f != nil {
		return f, nil
	}
	return c.blobs.Open(ctx, d)
}

// take returns an idle file of d whose identity is that of the file now at
// d's path, or nil. Idle files of d that are not are closed.
func (o *openFiles) take(blobs blobStore, d oci.Digest) blobstore.Blob {
	o.mu.Lock()
	list := o.idle[d]
	if len(list) == 0 {
		o.mu.Unlock()
		return nil
	}
	e := list[len(list)-1]
	o.removeLocked(d, len(list)-1)
	o.mu.Unlock()
	if current(blobs, d, e.fi) {
		return e.f
	}
	e.f.Close()
	o.drop(d) // the others were put back with the same file, or older ones
	return nil
}

// current reports whether the file at d's path has identity fi.
func current(blobs blobStore, d oci.Digest, fi os.FileInfo) bool {
	p, ok := blobs.(pather)
	if !ok {
		return false
	}
	path := p.Path(d)
	if path == "" {
		return false
	}
	now, err := os.Stat(path)
	return err == nil && sameFile(fi, now)
}

// sameFile reports whether a and b are the same unchanged file.
func sameFile(a, b os.FileInfo) bool {
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// put keeps f, a file of d served whole or in part, whose identity fi was
// verified, for a later request; it closes f when the pool is full or f
// cannot be rewound.
func (o *openFiles) put(d oci.Digest, f blobstore.Blob, fi os.FileInfo) error {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return f.Close()
	}
	o.mu.Lock()
	if o.closed || o.n >= maxIdleFiles {
		o.mu.Unlock()
		return f.Close()
	}
	o.idle[d] = append(o.idle[d], idleFile{f: f, fi: fi})
	o.n++
	o.mu.Unlock()
	return nil
}

// drop closes the idle files of d (deleted or found corrupt).
func (o *openFiles) drop(d oci.Digest) {
	o.mu.Lock()
	list := o.idle[d]
	delete(o.idle, d)
	o.n -= len(list)
	o.mu.Unlock()
	for _, e := range list {
		e.f.Close()
	}
}

// close closes every idle file and keeps none from now on (Cache.Close).
func (o *openFiles) close() {
	o.mu.Lock()
	o.closed = true
	o.mu.Unlock()
	o.closeAll()
}

// closeAll closes every idle file.
func (o *openFiles) closeAll() {
	o.mu.Lock()
	idle := o.idle
	o.idle = make(map[oci.Digest][]idleFile)
	o.n = 0
	o.mu.Unlock()
	for _, list := range idle {
		for _, e := range list {
			e.f.Close()
		}
	}
}

func (o *openFiles) removeLocked(d oci.Digest, i int) {
	list := o.idle[d]
	list = append(list[:i], list[i+1:]...)
	if len(list) == 0 {
		delete(o.idle, d)
	} else {
		o.idle[d] = list
	}
	o.n--
}
