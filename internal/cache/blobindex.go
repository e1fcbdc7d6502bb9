package cache

import (
	"context"
	"sync"

	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/store"
)

// maxIndexed bounds the memory of blobIndex (about 150 bytes an entry).
const maxIndexed = 50_000

// blobIndex remembers blob references the store returned (owner and digest
// → size), all found under one blob-reference generation, so that a warm
// blob request does not read its reference from the store again (profile of
// S2: that read was 6 % of the server's CPU).
//
// The generation (store.Generations.BlobRefs) moves in the transaction
// that removes a reference or changes its size, on any replica, and every
// request reads it with the auth generation (Target.BlobRefs). A reference
// found after a request read generation g still existed then, and exists
// for as long as the generation stays g: an entry is only used by a
// request that read the same number. A request that read another number
// empties the index and fills it anew under that one. Adding a reference
// leaves the number alone, which is why only references that were found
// are remembered, never their absence.
type blobIndex struct {
	mu   sync.Mutex
	gen  int64
	refs map[store.BlobKey]int64
}

func newBlobIndex() *blobIndex {
	return &blobIndex{refs: make(map[store.BlobKey]int64)}
}

// size returns the size of the reference k found under generation gen.
func (x *blobIndex) size(gen int64, k store.BlobKey) (int64, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if gen != x.gen {
		return 0, false
	}
	n, ok := x.refs[k]
	return n, ok
}

// add remembers that reference k of the given size was found after
// generation gen was read; moved is true when gen is not the generation
// the index held before.
func (x *blobIndex) add(gen int64, k store.BlobKey, size int64) (moved bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if gen != x.gen {
		clear(x.refs)
		x.gen, moved = gen, true
	}
	if _, ok := x.refs[k]; !ok && len(x.refs) >= maxIndexed {
		for old := range x.refs { // forget an arbitrary entry: it is only read again
			delete(x.refs, old)
			break
		}
	}
	x.refs[k] = size
	return moved
}

// forget drops k, a reference this process found wrong or removed, so a
// request that read the same generation before the removal committed does
// not use it.
func (x *blobIndex) forget(k store.BlobKey) {
	x.mu.Lock()
	defer x.mu.Unlock()
	delete(x.refs, k)
}

// blobRef returns the size recorded with t's reference to d: from the index
// when t carries the generation it was found under, otherwise from the
// store (and remembered); a new generation also closes the idle files
// (openFiles). An error wraps store.ErrNotFound when t's group
// does not reference d.
func (c *Cache) blobRef(ctx context.Context, t Target, d oci.Digest) (int64, error) {
	k := store.BlobKey{OwnerID: t.GroupID, Digest: d}
	if t.BlobRefsKnown {
		if n, ok := c.index.size(t.BlobRefs, k); ok {
			return n, nil
		}
	}
	row, err := c.meta.Blob(ctx, t.GroupID, d)
	if err != nil {
		return 0, err
	}
	if t.BlobRefsKnown && c.index.add(t.BlobRefs, k, row.Size) {
		// References were removed somewhere, perhaps with their files:
		// idle descriptors would keep a deleted file's space.
		c.files.closeAll()
	}
	return row.Size, nil
}
