// Package cluster lets replicas that share a PostgreSQL database and a
// blob bucket fetch each blob from its upstream once between them: a lease
// in the database names the replica fetching a blob, and the others stream
// the blob from that replica's peer endpoint (its --peer-url) while it
// downloads. Peer requests are signed with a key derived from the secret
// key every replica shares.
//
// It uses store and oci; app wires it into the cache and mounts Handler.
package cluster

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/store"
)

// KeyPurpose is what the peer key is derived for from the secret key.
const KeyPurpose = "dproxy cluster peer v1"

// Path is where a replica serves blobs to its peers: Path + digest.
const Path = "/-/peer/blobs/"

// authScheme prefixes the signature in a peer request's Authorization.
const authScheme = "Dproxy-Peer "

// DefaultLeaseTTL is how long a fetch lease lasts unrenewed.
const DefaultLeaseTTL = 30 * time.Second

// leases is what Cluster needs of the store.
type leases interface {
	AcquireFetchLease(ctx context.Context, d oci.Digest, holder, peerURL string, now, expires time.Time) (store.FetchLease, bool, error)
	RenewFetchLease(ctx context.Context, d oci.Digest, holder string, expires time.Time) (bool, error)
	ReleaseFetchLease(ctx context.Context, d oci.Digest, holder string) error
}

// Options configure a Cluster.
type Options struct {
	// PeerURL is this replica's internal base URL, where the others reach
	// Handler; "" serves nothing to peers (they wait for the stored blob).
	PeerURL string
	// LeaseTTL is how long a lease lasts unrenewed (default
	// DefaultLeaseTTL): a replica that died holding one is replaced after
	// it.
	LeaseTTL time.Duration
	Now      func() time.Time
	// Client makes peer requests (default: one with a 10 s connect
	// timeout and no overall timeout: a blob streams as long as it flows).
	Client *http.Client
}

// Cluster is this replica's side of the coordination. It satisfies
// cache.Cluster.
type Cluster struct {
	st     leases
	key    []byte
	holder string
	opts   Options
}

// New returns the Cluster of a replica. key is the peer key (KeyPurpose
// derived from the secret key), the same on every replica.
func New(st leases, key []byte, opts Options) (*Cluster, error) {
	if len(key) < 32 {
		return nil, errors.New("cluster peer key: want 32 bytes derived from the secret key")
	}
	if opts.LeaseTTL <= 0 {
		opts.LeaseTTL = DefaultLeaseTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Client == nil {
		opts.Client = &http.Client{Transport: &http.Transport{
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
			ResponseHeaderTimeout: 30 * time.Second,
		}}
	}
	opts.PeerURL = strings.TrimRight(opts.PeerURL, "/")
	var id [12]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, fmt.Errorf("cluster replica id: %w", err)
	}
	return &Cluster{st: st, key: key, holder: hex.EncodeToString(id[:]), opts: opts}, nil
}

// Acquire takes or renews this replica's lease on fetching d.
func (c *Cluster) Acquire(ctx context.Context, d oci.Digest) (bool, string, error) {
	now := c.opts.Now()
	l, held, err := c.st.AcquireFetchLease(ctx, d, c.holder, c.opts.PeerURL, now, now.Add(c.opts.LeaseTTL))
	if err != nil {
		return false, "", err
	}
	return held, l.PeerURL, nil
}

// Renew extends this replica's lease on d.
func (c *Cluster) Renew(ctx context.Context, d oci.Digest) (bool, error) {
	return c.st.RenewFetchLease(ctx, d, c.holder, c.opts.Now().Add(c.opts.LeaseTTL))
}

// Release ends this replica's lease on d.
func (c *Cluster) Release(ctx context.Context, d oci.Digest) error {
	return c.st.ReleaseFetchLease(ctx, d, c.holder)
}

// LeaseTTL is how long a lease lasts unrenewed.
func (c *Cluster) LeaseTTL() time.Duration { return c.opts.LeaseTTL }

// sign is the signature of a peer request for blob d.
func sign(key []byte, d oci.Digest) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("GET " + Path + string(d)))
	return hex.EncodeToString(m.Sum(nil))
}

// FetchPeer streams blob d from offset from the replica at peerURL.
func (c *Cluster) FetchPeer(ctx context.Context, peerURL string, d oci.Digest, offset int64) (io.ReadCloser, int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(peerURL, "/")+Path+string(d), nil)
	if err != nil {
		return nil, 0, fmt.Errorf("peer request for blob %s to %s: %w", d, peerURL, err)
	}
	req.Header.Set("Authorization", authScheme+sign(c.key, d))
	if offset > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(offset, 10)+"-")
	}
	res, err := c.opts.Client.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("fetch blob %s from peer %s: %w", d, peerURL, err)
	}
	want := http.StatusOK
	if offset > 0 {
		want = http.StatusPartialContent
	}
	if res.StatusCode != want {
		res.Body.Close()
		return nil, 0, fmt.Errorf("fetch blob %s from peer %s: %s", d, peerURL, res.Status)
	}
	size := int64(-1)
	if v := res.Header.Get("X-Dproxy-Blob-Size"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
			size = n
		}
	}
	return res.Body, size, nil
}

// Source is what Handler serves: blobs being downloaded or stored
// (cache.Cache.PeerBlob).
type Source interface {
	PeerBlob(ctx context.Context, d oci.Digest, offset int64) (io.ReadCloser, int64, error)
}

// Handler serves GET Path+digest to the other replicas: only requests
// signed with the peer key, only a valid digest, only a blob src is
// downloading or stores. A Range of the form bytes=N- resumes from N.
func Handler(src Source, key []byte, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, err := oci.ParseDigest(strings.TrimPrefix(r.URL.Path, Path))
		if err != nil {
			http.Error(w, "peer blob request: the path must end in a sha256 digest", http.StatusBadRequest)
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), authScheme)
		if !ok || !hmac.Equal([]byte(got), []byte(sign(key, d))) {
			log.WarnContext(r.Context(), "peer blob request refused: not signed with this cluster's key", "digest", d, "remote", r.RemoteAddr)
			http.Error(w, "peer blob request: not signed with this cluster's key (every replica needs the same secret key)", http.StatusUnauthorized)
			return
		}
		var offset int64
		if rg := r.Header.Get("Range"); rg != "" {
			v, ok := strings.CutSuffix(strings.TrimPrefix(rg, "bytes="), "-")
			n, err := strconv.ParseInt(v, 10, 64)
			if !ok || !strings.HasPrefix(rg, "bytes=") || err != nil || n < 0 {
				http.Error(w, "peer blob request: Range must be bytes=N-", http.StatusRequestedRangeNotSatisfiable)
				return
			}
			offset = n
		}
		body, size, err := src.PeerBlob(r.Context(), d, offset)
		if errors.Is(err, oci.ErrBlobUnknown) {
			http.Error(w, "blob "+string(d)+" is neither downloading nor stored here", http.StatusNotFound)
			return
		}
		if err != nil {
			log.WarnContext(r.Context(), "peer blob request failed", "digest", d, "err", err)
			http.Error(w, "peer blob request failed", http.StatusServiceUnavailable)
			return
		}
		defer body.Close()
		if size >= 0 {
			w.Header().Set("X-Dproxy-Blob-Size", strconv.FormatInt(size, 10))
			w.Header().Set("Content-Length", strconv.FormatInt(size-offset, 10))
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		status := http.StatusOK
		if offset > 0 {
			status = http.StatusPartialContent
		}
		w.WriteHeader(status)
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		if _, err := io.Copy(flushWriter{w}, body); err != nil {
			// Abort the response, so that the peer sees a failure (not a
			// short body that ends cleanly) and picks another source.
			log.DebugContext(r.Context(), "peer blob response ended early", "digest", d, "err", err)
			panic(http.ErrAbortHandler)
		}
	})
}

// flushWriter flushes after each write, so a peer gets bytes as they
// arrive from the upstream.
type flushWriter struct{ w http.ResponseWriter }

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if fl, ok := f.w.(http.Flusher); ok {
		fl.Flush()
	}
	return n, err
}
