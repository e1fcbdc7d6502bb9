package cache

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/dproxy/dproxy/internal/oci"
)

// Cluster coordinates blob downloads with the other replicas sharing the
// store and the blob storage, so that the cluster fetches each blob from
// its upstream once. A Cache without one (Options.Cluster nil) is alone.
type Cluster interface {
	// Acquire takes (or renews) this replica's lease on fetching blob d
	// from the upstream; when another replica holds it, held is false and
	// peerURL is where that replica serves the blob meanwhile ("" when it
	// serves it nowhere).
	Acquire(ctx context.Context, d oci.Digest) (held bool, peerURL string, err error)
	// Renew extends this replica's lease; held is false when it was lost.
	Renew(ctx context.Context, d oci.Digest) (held bool, err error)
	// Release ends this replica's lease.
	Release(ctx context.Context, d oci.Digest) error
	// LeaseTTL is how long a lease lasts unrenewed: a replica that died
	// holding one is replaced after it.
	LeaseTTL() time.Duration
	// FetchPeer streams blob d from offset from the replica at peerURL;
	// size is the blob's whole size, -1 when unknown.
	FetchPeer(ctx context.Context, peerURL string, d oci.Digest, offset int64) (body io.ReadCloser, size int64, err error)
}

// blobSource is where a download reads a blob's bytes.
type blobSource struct {
	body     io.ReadCloser
	size     int64 // the whole blob's size, -1 when unknown
	upstream bool  // a failure here ends the download
	name     string
}

// source opens the body of dl's blob from offset. Alone, or holding the
// cluster's lease while the blob is not stored, it is the upstream's. Otherwise, once t's credentials
// proved access (a group only shares what it could fetch itself), it is
// the stored object when the leader committed it, else the leader's peer
// endpoint; with neither it waits, polling, until one of them is there or
// the lease is free to take. alive is called at each poll: waiting for
// the cluster is not an idle download.
func (c *Cache) source(ctx context.Context, dl *download, t Target, offset int64, alive func()) (blobSource, error) {
	cl := c.opts.Cluster
	if cl == nil {
		return c.upstreamSource(ctx, dl, t, offset)
	}
	poll := min(max(cl.LeaseTTL()/8, 20*time.Millisecond), time.Second)
	confirmed := false
	for {
		alive()
		held, peer, err := cl.Acquire(ctx, dl.digest)
		if err != nil {
			return blobSource{}, err
		}
		// A lease taken just after its last holder committed the blob and
		// let go: the stored object serves, not the upstream again.
		if held {
			if _, err := c.blobs.Stat(ctx, dl.digest); err != nil {
				c.lead(dl)
				return c.upstreamSource(ctx, dl, t, offset)
			}
			if err := cl.Release(ctx, dl.digest); err != nil {
				c.log.Warn("release the lease on fetching a blob; it expires by itself", "digest", dl.digest, "err", err)
			}
		}
		if !confirmed {
			if err := c.confirm(ctx, t, dl.digest); err != nil {
				return blobSource{}, err
			}
			confirmed = true
		}
		if f, err := c.blobs.Open(ctx, dl.digest); err == nil {
			if _, err := f.Seek(offset, io.SeekStart); err == nil {
				return blobSource{body: f, size: f.Size(), name: "storage"}, nil
			}
			f.Close()
		}
		if peer != "" {
			body, size, err := cl.FetchPeer(ctx, peer, dl.digest, offset)
			if err == nil {
				return blobSource{body: body, size: size, name: peer}, nil
			}
			c.log.Warn("the replica fetching a blob does not serve it, waiting for its lease", "digest", dl.digest, "peer", peer, "err", err)
		}
		select {
		case <-time.After(poll):
		case <-ctx.Done():
			return blobSource{}, context.Cause(ctx)
		}
	}
}

// upstreamSource is the upstream's body of dl's blob from offset (the
// bytes before it are read and dropped: they were received already).
func (c *Cache) upstreamSource(ctx context.Context, dl *download, t Target, offset int64) (blobSource, error) {
	body, size, err := c.remote.GetBlob(ctx, t.Creds, t.Image, dl.digest)
	if err != nil {
		return blobSource{}, err
	}
	if offset > 0 {
		if _, err := io.CopyN(io.Discard, body, offset); err != nil {
			body.Close()
			return blobSource{}, fmt.Errorf("%w: skip the %d bytes of blob %s received before: %w", oci.ErrUnavailable, offset, dl.digest, err)
		}
	}
	return blobSource{body: body, size: size, upstream: true, name: "upstream"}, nil
}

// lead marks dl as holding the cluster's lease and keeps renewing it until
// releaseLease.
func (c *Cache) lead(dl *download) {
	if dl.stopRenew != nil {
		return
	}
	cl := c.opts.Cluster
	stop, stopped := make(chan struct{}), make(chan struct{})
	dl.stopRenew = func() { close(stop); <-stopped }
	go func() {
		defer close(stopped)
		tick := time.NewTicker(cl.LeaseTTL() / 3)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				held, err := cl.Renew(c.ctx, dl.digest)
				if err != nil || !held {
					c.log.Warn("lost the lease on fetching a blob: another replica may fetch it too", "digest", dl.digest, "err", err)
				}
			}
		}
	}()
}

// releaseLease ends dl's lease when it holds one.
func (c *Cache) releaseLease(dl *download) {
	if dl.stopRenew == nil {
		return
	}
	dl.stopRenew()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.opts.Cluster.Release(ctx, dl.digest); err != nil {
		c.log.Warn("release the lease on fetching a blob; it expires by itself", "digest", dl.digest, "err", err)
	}
}

// PeerBlob streams blob d from offset to another replica of the cluster:
// from this cache's download of d in progress, or from storage once
// stored; anything else is an error wrapping oci.ErrBlobUnknown. size is
// the whole blob's size, -1 when unknown. The reader withholds the last
// byte of a download until it is verified, as for any client.
func (c *Cache) PeerBlob(ctx context.Context, d oci.Digest, offset int64) (io.ReadCloser, int64, error) {
	c.mu.Lock()
	dl := c.downloads[d]
	if dl != nil && !dl.sealed {
		f, err := os.Open(dl.tmp.Name())
		c.mu.Unlock()
		if err != nil {
			return nil, 0, fmt.Errorf("open download of blob %s: %w", d, err)
		}
		r := &downloadReader{dl: dl, f: f, ctx: ctx}
		select {
		case <-dl.ready:
		case <-ctx.Done():
			r.Close()
			return nil, 0, ctx.Err()
		}
		size, err := dl.header()
		if err == nil && offset > 0 {
			_, err = r.Seek(offset, io.SeekStart)
		}
		if err != nil {
			r.Close()
			return nil, 0, err
		}
		return r, size, nil
	}
	c.mu.Unlock()
	if dl != nil {
		select {
		case <-dl.done:
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		}
	}
	release, err := c.pin(ctx, d)
	if err != nil {
		return nil, 0, err
	}
	f, err := c.blobs.Open(ctx, d)
	if err != nil {
		release()
		return nil, 0, err
	}
	b := c.serve(ctx, f, d, release)
	if _, err := b.Seek(offset, io.SeekStart); err != nil {
		b.Close()
		return nil, 0, fmt.Errorf("blob %s from offset %d: %w", d, offset, err)
	}
	return b, f.Size(), nil
}
