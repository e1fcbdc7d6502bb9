// Package cache is the pull-through logic of dproxy: manifest freshness and
// revalidation, serving stale content when the upstream fails, one upstream
// fetch per blob shared by every concurrent client, digest verification
// before anything is stored, batched read-time updates, and stored tag and
// referrers lists.
//
// It depends on small interfaces of the store, the blob store and the
// upstream client, and must not import server, commands or tui.
package cache

import (
	"context"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/dproxy/dproxy/internal/blobstore"
	"github.com/dproxy/dproxy/internal/metrics"
	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/store"
	"github.com/dproxy/dproxy/internal/upstream"
)

// metaStore is what the cache needs of the metadata store.
type metaStore interface {
	Manifest(ctx context.Context, groupID int64, image, reference string) (store.Manifest, error)
	PutManifest(ctx context.Context, m store.Manifest) (store.Manifest, error)
	ConfirmManifest(ctx context.Context, id int64, at time.Time) error
	TouchManifests(ctx context.Context, ids []int64, at time.Time) error
	Blob(ctx context.Context, groupID int64, d oci.Digest) (store.Blob, error)
	PutBlob(ctx context.Context, b store.Blob) error
	// PutBlobUnpurged stores b unless the owner's cache was purged since
	// generation (PurgeGeneration), in one statement.
	PutBlobUnpurged(ctx context.Context, b store.Blob, generation int64) (bool, error)
	PurgeGeneration(ctx context.Context, owner int64) (int64, error)
	DeleteBlob(ctx context.Context, groupID int64, d oci.Digest) error
	TouchBlobs(ctx context.Context, keys []store.BlobKey, at time.Time) error
	UnreferencedSince(ctx context.Context, d oci.Digest, now time.Time) (time.Time, bool, error)
	ForgetUnreferenced(ctx context.Context, d oci.Digest) error
	DropBlob(ctx context.Context, d oci.Digest) (int64, error)
	List(ctx context.Context, groupID int64, image, kind, subject string) (store.List, error)
	PutList(ctx context.Context, l store.List) (store.List, error)
	TouchList(ctx context.Context, id int64, at time.Time) error
}

// pullCounter records how often tags are pulled (store.CountTagPulls).
type pullCounter interface {
	CountTagPulls(ctx context.Context, pulls []store.TagPull) error
}

// blobStore is what the cache needs of blob storage. Temp files live on
// the same filesystem as committed blobs. Commit takes the temp file over:
// it is gone afterwards whether or not the commit succeeded, as
// blobstore.FS.Commit describes; readers holding it open keep reading.
type blobStore interface {
	CreateTemp() (*os.File, error)
	Commit(ctx context.Context, d oci.Digest, tmp *os.File) error
	Abort(tmp *os.File)
	Open(ctx context.Context, d oci.Digest) (blobstore.Blob, error)
	Stat(ctx context.Context, d oci.Digest) (int64, error)
	Delete(ctx context.Context, d oci.Digest) error
}

// Remote is what the cache needs of an upstream registry.
type Remote interface {
	HeadManifest(ctx context.Context, creds upstream.Credentials, repo string, ref oci.Reference) (upstream.Descriptor, error)
	GetManifest(ctx context.Context, creds upstream.Credentials, repo string, ref oci.Reference) (upstream.Manifest, error)
	GetBlob(ctx context.Context, creds upstream.Credentials, repo string, d oci.Digest) (io.ReadCloser, int64, error)
	HeadBlob(ctx context.Context, creds upstream.Credentials, repo string, d oci.Digest) (upstream.Descriptor, error)
	Tags(ctx context.Context, creds upstream.Credentials, repo string) ([]string, error)
	Referrers(ctx context.Context, creds upstream.Credentials, repo string, d oci.Digest) (upstream.Referrers, error)
	// RateLimit is the rate limit last seen for creds.
	RateLimit(creds upstream.Credentials) (upstream.RateLimit, bool)
}

// Options tune a Cache. Zero values take the defaults.
type Options struct {
	// RevalidateTimeout bounds the upstream HEAD that revalidates a cached
	// tag; when it passes, the cached copy is served. Default 5s.
	RevalidateTimeout time.Duration
	// FetchTimeout bounds an upstream manifest GET. Default 60s.
	FetchTimeout time.Duration
	// IdleTimeout aborts a blob download when no byte arrived for this long.
	// There is no overall timeout while bytes keep flowing. Default 60s.
	IdleTimeout time.Duration
	// RateLimitReserve: when the upstream's last seen remaining pull count
	// for a credential is at or below it, a moved tag with a cached copy is
	// served from cache instead of spending a manifest GET. Default 10;
	// negative turns the reserve off.
	RateLimitReserve int
	// MaxBlobSize refuses larger blobs. Default 50 GiB.
	MaxBlobSize int64
	// PreVerifyMax is the size up to which a stored file not verified by
	// this process since it last changed is hashed whole before its first
	// byte is sent, so that a corrupt one is fetched again for the same
	// client instead of cutting its response short. Larger files are
	// verified while they are served. Default DefaultPreVerifyMax.
	PreVerifyMax int64
	// TouchInterval is how often batched read times are written. Default 5s.
	TouchInterval time.Duration
	// TrustHead says the upstream is the operator's own (the instance
	// upstream): a HEAD there with a group's credentials proves that the
	// group may read a blob, so a file stored for another group is shared
	// after that HEAD, without a download. Otherwise (an upstream a group
	// owner chose) a HEAD proves nothing: the group's upstream must serve
	// the bytes, which are downloaded and verified, and the commit then
	// keeps the one stored file.
	TrustHead bool
	// Stored, when set, is called after a downloaded blob was committed
	// and referenced (the size cap may have been passed). It must not block.
	Stored func()
	// Pulls, when set, receives the daily pull counts of tags (client
	// manifest requests by tag), written with the read times.
	Pulls pullCounter
	// Warm counts warm hits: client pulls of a tag the warmer updated.
	Warm *metrics.Warm
	// Cluster, when set, makes replicas sharing the store fetch each blob
	// from the upstream once between them (see Cluster). Only for a cache
	// whose upstream is the operator's (TrustHead): the others' downloads
	// must come from their own upstream.
	Cluster Cluster
	Logger  *slog.Logger
	Metrics *metrics.Metrics
	Now     func() time.Time
}

// Cache serves manifests and blobs of groups, from storage when it can and
// from the upstream when it must.
type Cache struct {
	meta   metaStore
	blobs  blobStore
	remote Remote
	opts   Options
	log    *slog.Logger

	flights singleflight.Group // manifest revalidations and fetches

	mu         sync.Mutex
	downloads  map[oci.Digest]*download
	generation uint64  // counts finished downloads, guarded by mu
	pins       *pinSet // blobs in use, guarded by mu
	closed     bool    // set by Close, guarded by mu: no new download starts

	touch    *toucher
	warmed   warmedTags     // tags the warmer updated, until a client pulls them
	verified *verifiedFiles // stored files hashed while served, unchanged since
	index    *blobIndex     // blob references found, under their generation
	files    *openFiles     // idle opened blob files, under the same generation

	ctx    context.Context // cancelled by Close: stops downloads and the toucher
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns a Cache. Call Close to flush pending read times and stop
// background downloads.
func New(meta metaStore, blobs blobStore, remote Remote, opts Options) *Cache {
	if opts.RevalidateTimeout <= 0 {
		opts.RevalidateTimeout = 5 * time.Second
	}
	if opts.FetchTimeout <= 0 {
		opts.FetchTimeout = 60 * time.Second
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 60 * time.Second
	}
	if opts.MaxBlobSize <= 0 {
		opts.MaxBlobSize = 50 << 30
	}
	if opts.RateLimitReserve == 0 {
		opts.RateLimitReserve = 10
	}
	if opts.PreVerifyMax <= 0 {
		opts.PreVerifyMax = DefaultPreVerifyMax
	}
	if opts.TouchInterval <= 0 {
		opts.TouchInterval = 5 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Cache{
		meta:      meta,
		blobs:     blobs,
		remote:    remote,
		opts:      opts,
		log:       opts.Logger,
		downloads: make(map[oci.Digest]*download),
		pins:      newPinSet(),
		verified:  newVerifiedFiles(),
		index:     newBlobIndex(),
		files:     newOpenFiles(),
		ctx:       ctx,
		cancel:    cancel,
	}
	c.touch = newToucher(meta, opts.Pulls, opts.Now, opts.Logger)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.touch.run(ctx, opts.TouchInterval)
	}()
	return c
}

// Close stops in-flight downloads (their temp files are removed, nothing is
// committed) and flushes pending read times.
func (c *Cache) Close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	c.files.close()
}

// Target says where a request goes: the group whose cache it uses, the
// upstream repository and the credentials to reach it.
type Target struct {
	// GroupID is the owner of the cache rows the request reads and adds
	// (store.Blob.OwnerID): the group, or in the Cache of a virtual
	// registry upstream (Virtual), the upstream.
	GroupID int64
	// Image is the upstream repository, e.g. "library/alpine".
	Image string
	Creds upstream.Credentials
	// FreshnessWindow skips revalidation of tags confirmed more recently.
	FreshnessWindow time.Duration
	// BlobRefs is the store's blob-reference generation
	// (store.Generations.BlobRefs) read for this request, when
	// BlobRefsKnown: blob references found under the same number are
	// reused without reading the store again (see blobIndex).
	BlobRefs      int64
	BlobRefsKnown bool
}
