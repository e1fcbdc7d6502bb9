// Package app assembles a running dproxy from a configuration: data dir,
// keys, store, blob store, auth, upstream client, cache and HTTP server.
// `dproxy serve` and the end-to-end tests use it; it must not import
// commands or tui.
package app

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dproxy/dproxy/internal/admin"
	"github.com/dproxy/dproxy/internal/auth"
	"github.com/dproxy/dproxy/internal/blobstore"
	"github.com/dproxy/dproxy/internal/cache"
	"github.com/dproxy/dproxy/internal/cluster"
	"github.com/dproxy/dproxy/internal/config"
	"github.com/dproxy/dproxy/internal/keyfile"
	"github.com/dproxy/dproxy/internal/lifecycle"
	"github.com/dproxy/dproxy/internal/metrics"
	"github.com/dproxy/dproxy/internal/netpolicy"
	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/secretbox"
	"github.com/dproxy/dproxy/internal/server"
	"github.com/dproxy/dproxy/internal/server/gitlab"
	"github.com/dproxy/dproxy/internal/server/graphql"
	"github.com/dproxy/dproxy/internal/server/registry"
	"github.com/dproxy/dproxy/internal/servertls"
	"github.com/dproxy/dproxy/internal/store"
	"github.com/dproxy/dproxy/internal/upstream"
	"github.com/dproxy/dproxy/internal/warm"
)

// App is an assembled dproxy server. Close releases what Open acquired.
type App struct {
	Config config.Config
	Store  *store.Store
	Blobs  BlobStore
	Auth   *auth.Service
	// Admin performs every admin operation, for the admin APIs and for
	// code that seeds the server (first start, benchmarks).
	Admin  *admin.Service
	Issuer *auth.Issuer
	Cache  *cache.Cache
	// Virtual serves the container virtual registries.
	Virtual *cache.Virtual
	Metrics *metrics.Metrics
	Server  *server.Server
	// Lifecycle runs TTL expiry, garbage collection and the size cap; Run
	// starts its schedule.
	Lifecycle *lifecycle.Manager
	// TLSCert is the served certificate when TLS is on (nil otherwise);
	// Run reloads it on SIGHUP and when its files change.
	TLSCert *servertls.Certificate
	// Warmer keeps the groups' watched tags cached; Run starts it.
	Warmer  *warm.Warmer
	log     *slog.Logger
	dirLock *lifecycle.DataDirLock
}

// Option changes how Open assembles the server.
type Option func(*options)

type options struct {
	now          func() time.Time
	resolver     *net.Resolver
	preVerifyMax int64
	onWarm       func(warm.Run)
}

// WithClock makes everything that judges time by a clock read it from now:
// the cache, the upstream clients, auth (token and JWT expiry, sign-in
// throttling), the registry's remembered decisions, the admin API and the
// background jobs. Tests move it forward to expire entries and tokens.
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

// WithResolver makes the upstream address policy look names up with r
// (tests answer from a table, so that no query leaves the machine and a
// name can move to another address).
func WithResolver(r *net.Resolver) Option {
	return func(o *options) { o.resolver = r }
}

// WithPreVerifyMax sets the size up to which a stored blob not yet
// verified is hashed before it is served (cache.Options.PreVerifyMax), so
// that tests reach both sides of it with small blobs.
func WithPreVerifyMax(n int64) Option {
	return func(o *options) { o.preVerifyMax = n }
}

// WithWarmRuns calls fn after each run of the warmer on this server (tests
// wait for a run instead of sleeping).
func WithWarmRuns(fn func(warm.Run)) Option {
	return func(o *options) { o.onWarm = fn }
}

// BlobStore is blob storage as the server uses it: blobstore.FS or
// blobstore.S3.
type BlobStore interface {
	CreateTemp() (*os.File, error)
	Commit(ctx context.Context, d oci.Digest, tmp *os.File) error
	Abort(tmp *os.File)
	Open(ctx context.Context, d oci.Digest) (blobstore.Blob, error)
	Stat(ctx context.Context, d oci.Digest) (int64, error)
	Delete(ctx context.Context, d oci.Digest) error
	CleanTemp() (int, error)
	Walk(ctx context.Context, fn func(d oci.Digest, size int64) error) error
	Verify(ctx context.Context, d oci.Digest) error
}

// jwtKeySetting names the JWT signing key replicas share through PostgreSQL.
const jwtKeySetting = "jwt_signing_key"

// Open prepares the data dir (creating keys on first start, removing
// leftover temp files), opens the store, bootstraps the admin token when the
// instance has no user yet, and builds the server. It listens on nothing.
func Open(ctx context.Context, cfg config.Config, log *slog.Logger, opts ...Option) (_ *App, err error) {
	o := options{now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("create data dir %s: %w", cfg.DataDir, err)
	}
	// The shared lock tells fsck that temp files may belong to downloads
	// in progress.
	dirLock, err := lifecycle.HoldDataDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			dirLock.Unlock()
		}
	}()
	box, err := openBox(cfg)
	if err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, cfg.Database, cfg.DBPath(), box)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", databaseName(cfg), err)
	}
	defer func() {
		if err != nil {
			st.Close()
		}
	}()
	blobs, err := openBlobs(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if n, err := blobs.CleanTemp(); err != nil {
		return nil, fmt.Errorf("remove leftover temp files in %s: %w", cfg.BlobDir(), err)
	} else if n > 0 {
		log.Info("removed leftover temp files of interrupted downloads", "count", n)
	}

	key, err := signingKey(ctx, cfg, st)
	if err != nil {
		return nil, err
	}
	var previous []auth.PreviousKey
	if !store.IsPostgres(cfg.Database) {
		now := time.Now
		if o.now != nil {
			now = o.now
		}
		if previous, err = auth.LoadPreviousKeys(cfg.PreviousJWTKeysPath(), now()); err != nil {
			return nil, err
		}
	}
	iss := auth.NewIssuer(key, auth.IssuerOptions{TTL: cfg.TokenExpiry, Now: o.now, Previous: previous})
	// Failed sign-ins are counted in this process: each replica throttles
	// on its own (docs/security.md).
	limiter := auth.NewLimiter(auth.LimiterOptions{Now: o.now})
	policy, err := netpolicy.New(cfg.UpstreamAllowCIDR, o.resolver)
	if err != nil {
		return nil, err
	}
	svc := auth.NewService(st, iss, auth.ServiceOptions{MirrorGroup: cfg.MirrorGroup, MirrorNamespaces: cfg.MirrorNamespaces(),
		Now: o.now, Logger: log, Limiter: limiter,
		CITrusts: st, CIClient: ciClient(policy, cfg.UpstreamConnectTimeout), CIFetchTimeout: auth.DefaultCIFetchTimeout})
	checkMirrorNamespaces(ctx, st, cfg.MirrorNamespaces(), log)
	proxies := cfg.TrustedProxyPrefixes()

	m := metrics.New()
	// newUpstream makes the client of an upstream registry: Docker Hub (or
	// the configured upstream, trusted: the operator chose it) and each
	// virtual registry upstream (an owner's choice).
	newUpstream := func(url string, trusted bool) (*upstream.Client, error) {
		return upstream.New(upstream.Options{
			URL:                    url,
			ConnectTimeout:         cfg.UpstreamConnectTimeout,
			ResponseHeaderTimeout:  cfg.UpstreamResponseHeaderTimeout,
			MaxManifestSize:        cfg.MaxManifestSize,
			UserAgent:              "dproxy",
			RateLimitReserve:       reserve(cfg.RateLimitReserve),
			TooManyRequestsBackoff: cfg.RateLimitBackoff,
			Now:                    o.now,
			Logger:                 log,
			Metrics:                m,
			Policy:                 policy,
			Trusted:                trusted,
		})
	}
	up, err := newUpstream(cfg.Upstream, true)
	if err != nil {
		return nil, err
	}
	m.Activity().SetHubHost(up.Host())
	cacheOpts := cache.Options{
		TrustHead:         true, // the operator's upstream; NewVirtual decides per upstream
		RevalidateTimeout: cfg.RevalidateTimeout,
		RateLimitReserve:  reserve(cfg.RateLimitReserve),
		MaxBlobSize:       cfg.MaxBlobSize,
		PreVerifyMax:      o.preVerifyMax,
		Logger:            log,
		Metrics:           m,
		Now:               o.now,
	}
	var lc *lifecycle.Manager // made below, before anything is served
	cacheOpts.Stored = func() { lc.KickSizeCap() }
	wm, err := metrics.NewWarm(m)
	if err != nil {
		return nil, fmt.Errorf("register warm metrics: %w", err)
	}
	mainOpts := cacheOpts
	mainOpts.Pulls, mainOpts.Warm = st, wm
	var peerKey []byte
	if store.IsPostgres(cfg.Database) {
		// Replicas fetch each blob of the operator's upstream once between
		// them. Virtual registry upstreams are not shared: each group's
		// upstream must serve its bytes itself.
		peerKey = box.Derive(cluster.KeyPurpose)
		cl, err := cluster.New(st, peerKey, cluster.Options{PeerURL: cfg.PeerURL, LeaseTTL: cfg.FetchLeaseTimeout})
		if err != nil {
			return nil, err
		}
		mainOpts.Cluster = cl
	}
	c := cache.New(st, blobs, up, mainOpts)
	warmReserve, err := warm.ParseReserve(cfg.WarmReserve)
	if err != nil {
		return nil, err
	}
	warmer := warm.New(st, c, warm.Options{Reserve: warmReserve, MaxSize: cfg.CacheMaxSize, Poll: cfg.WarmPoll,
		Now: o.now, Logger: log, Metrics: wm, OnRun: o.onWarm})
	vc := cache.NewVirtual(st, st.UpstreamCache(), blobs, func(url string) (cache.Remote, error) { return newUpstream(url, false) }, cfg.Upstream, cacheOpts)
	lm, err := metrics.NewLifecycle(m, cacheSizes(st))
	if err != nil {
		return nil, fmt.Errorf("register lifecycle metrics: %w", err)
	}
	lc = lifecycle.New(st, blobs, cache.All{Main: c, Virtual: vc}, lifecycle.Options{
		TTLInterval: cfg.TTLInterval,
		GCInterval:  cfg.GCInterval,
		GCGrace:     gcGrace(cfg),
		MaxSize:     cfg.CacheMaxSize,
		Now:         o.now,
		Logger:      log,
		Metrics:     lm,
		AfterDelete: gcPauseHook(log),
	})
	reg := registry.New(svc, iss, c, vc, registry.Options{ExternalURL: cfg.ExternalURL,
		TrustedProxies: proxies, Logger: log, Metrics: m})
	adm := admin.New(st, cacheHooks{c, vc, lc}, svc, admin.Options{
		Logger: log, Now: o.now, AddressPolicy: policy, CITrusts: st, WarmEntries: st,
		VirtualRegistries: cfg.VirtualRegistriesPerGroup, VirtualUpstreams: cfg.VirtualRegistryUpstreams,
		RateLimits: up.RateLimits, CheckRateLimit: upstream.NewCheckCache(up.CheckRateLimit, rateLimitCheckTTL, o.now).Check,
		Activity: activity{main: c, virtual: vc, rec: m.Activity()},
		Warmer:   warmer,
	})
	if err := bootstrap(ctx, adm, cfg.InitialTokenPath(), log); err != nil {
		return nil, err
	}
	a := &App{Config: cfg, Store: st, Blobs: blobs, Auth: svc, Admin: adm, Issuer: iss, Cache: c, Virtual: vc, Metrics: m, Lifecycle: lc, Warmer: warmer, log: log, dirLock: dirLock}
	var tlsConfig *tls.Config
	if cfg.TLSCert != "" {
		minVersion, err := config.ParseTLSVersion(cfg.TLSMinVersion)
		if err != nil {
			return nil, fmt.Errorf("tls-min-version: %w", err)
		}
		if a.TLSCert, err = servertls.Load(cfg.TLSCert, cfg.TLSKey, log); err != nil {
			return nil, err
		}
		tlsConfig = servertls.Config(a.TLSCert, minVersion)
	}
	gql := graphql.New(adm, graphql.Options{ExternalURL: cfg.ExternalURL, Logger: log, TrustedProxies: proxies})
	a.Server = server.New(reg, a.ready, server.Options{
		Addr: cfg.Addr, TLS: tlsConfig,
		ShutdownTimeout: cfg.ShutdownTimeout, Logger: log, Metrics: m,
		GraphQL: gql.GraphQL(), GitLabAPI: gitlab.New(adm, gitlab.Options{ExternalURL: cfg.ExternalURL, Logger: log}),
		MetricsElsewhere: cfg.MetricsAddr != "", MetricsAuthorize: metricsAuthorizer(svc),
		AdminElsewhere: cfg.AdminAddr != "",
		Peer:           peerHandler(cfg, c, peerKey, log),
	})
	return a, nil
}

// checkMirrorNamespaces warns about mirror-ns items whose virtual registry
// does not exist. It is no error: the server must run for the registry to
// be created, and until then requests for the host answer 404.
func checkMirrorNamespaces(ctx context.Context, st *store.Store, ns map[string]int64, log *slog.Logger) {
	hosts := slices.Sorted(maps.Keys(ns))
	for _, host := range hosts {
		id := ns[host]
		_, err := st.VirtualRegistry(ctx, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			log.Warn("mirror-ns maps a registry to a virtual registry that does not exist; its mirror requests answer 404 until it is created",
				"host", host, "virtual_registry", id)
		case err != nil:
			log.Warn("mirror-ns: could not read a virtual registry", "host", host, "virtual_registry", id, "err", err)
		}
	}
}

// ciClient fetches ID token issuers' discovery documents and keys. An
// issuer is chosen by an instance admin or a group owner, so every
// connection is checked against the address policy, as for an owner's
// upstream.
func ciClient(policy *netpolicy.Policy, connectTimeout time.Duration) *http.Client {
	d := policy.Dialer(connectTimeout, 30*time.Second, "")
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                 d.Proxy(http.ProxyFromEnvironment),
			DialContext:           d.DialContext,
			TLSHandshakeTimeout:   connectTimeout,
			ResponseHeaderTimeout: auth.DefaultCIFetchTimeout,
			MaxIdleConnsPerHost:   2,
			IdleConnTimeout:       90 * time.Second,
		},
		Timeout: auth.DefaultCIFetchTimeout,
	}
}

// rateLimitCheckTTL is how long the admin API reuses a rate-limit check of
// one credential.
const rateLimitCheckTTL = 10 * time.Second

// reserve maps the configured rate-limit reserve (0 = off) to the
// options of cache and upstream (0 = default, negative = off).
func reserve(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// Run listens on the configured address and serves until ctx ends.
func (a *App) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", a.Config.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", a.Config.Addr, err)
	}
	a.log.Info("dproxy listening", "addr", ln.Addr().String(), "external_url", a.Config.ExternalURL,
		"upstream", a.Config.Upstream, "data_dir", a.Config.DataDir, "mirror_group", a.Config.MirrorGroup,
		"database", databaseName(a.Config), "storage", storageName(a.Config))
	if a.Config.TLSCert == "" && !loopback(ln.Addr()) {
		a.log.Warn("serving plain HTTP on a non-loopback address: tokens and passwords cross the network unencrypted; set --tls-cert and --tls-key, or put a TLS proxy in front and listen on 127.0.0.1",
			"addr", ln.Addr().String())
	}
	bg, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { a.Lifecycle.Run(bg) })
	if a.TLSCert != nil {
		wg.Go(func() { a.TLSCert.Watch(bg, servertls.DefaultPollInterval) })
	}
	if a.Config.AdminAddr != "" {
		aln, err := net.Listen("tcp", a.Config.AdminAddr)
		if err != nil {
			stop()
			wg.Wait()
			ln.Close()
			return fmt.Errorf("listen on %s (admin-addr): %w", a.Config.AdminAddr, err)
		}
		a.log.Info("serving the admin API", "addr", aln.Addr().String())
		if a.Config.TLSCert == "" && !loopback(aln.Addr()) {
			a.log.Warn("serving the admin API over plain HTTP on a non-loopback address: admin tokens cross the network unencrypted",
				"addr", aln.Addr().String())
		}
		wg.Go(func() {
			// It ends with ctx, as the main address does.
			if err := a.Server.ServeAdmin(ctx, aln); err != nil {
				a.log.Error("admin listener stopped", "err", err)
			}
		})
	}
	wg.Go(func() { a.Warmer.Run(bg) })
	if a.Config.MetricsAddr != "" {
		mln, err := net.Listen("tcp", a.Config.MetricsAddr)
		if err != nil {
			stop()
			wg.Wait()
			ln.Close()
			return fmt.Errorf("listen on %s (metrics-addr): %w", a.Config.MetricsAddr, err)
		}
		a.log.Info("serving /metrics", "addr", mln.Addr().String())
		wg.Go(func() {
			if err := a.Server.ServeMetrics(bg, mln); err != nil {
				a.log.Error("metrics listener stopped", "err", err)
			}
		})
	}
	err = a.Server.Serve(ctx, ln)
	stop()
	wg.Wait()
	return err
}

// metricsAuthorizer accepts a Bearer token of an instance admin with the
// api scope: the metrics name every group and its cache size.
func metricsAuthorizer(svc *auth.Service) func(*http.Request) error {
	return func(r *http.Request) error {
		secret, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || secret == "" {
			return errors.New("/metrics needs an instance admin's token with the api scope in an Authorization: Bearer header")
		}
		p, err := svc.AuthenticateToken(r.Context(), strings.TrimSpace(secret))
		if err != nil {
			return errors.New("/metrics: the token is unknown, revoked or expired")
		}
		if err := auth.AuthorizeAPI(p); err != nil {
			return err
		}
		if !p.IsAdmin() {
			return errors.New("/metrics needs an instance admin's token")
		}
		return nil
	}
}

// loopback reports whether addr only accepts connections from this machine.
func loopback(addr net.Addr) bool {
	tcp, ok := addr.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

// cacheSizes feeds the cache size gauges from the store on each scrape.
func cacheSizes(st *store.Store) metrics.SizeFunc {
	return func(ctx context.Context) ([]metrics.GroupSize, int64, error) {
		groups, err := st.GroupCacheSizes(ctx)
		if err != nil {
			return nil, 0, err
		}
		stored, err := st.CachedBlobBytes(ctx)
		if err != nil {
			return nil, 0, err
		}
		out := make([]metrics.GroupSize, len(groups))
		for i, g := range groups {
			out[i] = metrics.GroupSize{Group: g.Path, Bytes: g.ManifestBytes + g.BlobBytes}
		}
		return out, stored, nil
	}
}

// Close stops background work and closes the store.
func (a *App) Close() error {
	a.Cache.Close()
	a.Virtual.Close()
	err := a.Store.Close()
	a.dirLock.Unlock()
	return err
}

// ready reports whether the database answers and the data dir is writable.
func (a *App) ready(ctx context.Context) error {
	if err := a.Store.Ping(ctx); err != nil {
		return fmt.Errorf("database: %w", err)
	}
	f, err := a.Blobs.CreateTemp()
	if err != nil {
		return fmt.Errorf("data dir not writable: %w", err)
	}
	a.Blobs.Abort(f)
	return nil
}

// databaseName names the database for logs and errors, without a password.
func databaseName(cfg config.Config) string {
	if store.IsPostgres(cfg.Database) {
		return store.RedactDSN(cfg.Database)
	}
	return cfg.DBPath()
}

// storageName names the blob storage for logs and errors.
func storageName(cfg config.Config) string {
	if cfg.Storage != "" {
		return cfg.Storage // credentials never go in the URL (config checks)
	}
	return cfg.BlobDir()
}

// openBlobs opens the blob folder, or the S3 bucket spooling downloads to
// the blob folder's temp directory.
func openBlobs(ctx context.Context, cfg config.Config) (BlobStore, error) {
	if cfg.Storage == "" {
		fs, err := blobstore.NewFS(cfg.BlobDir())
		if err != nil {
			return nil, fmt.Errorf("open blob folder %s: %w", cfg.BlobDir(), err)
		}
		return fs, nil
	}
	opts, err := blobstore.ParseS3URL(cfg.Storage)
	if err != nil {
		return nil, err
	}
	opts.AccessKeyID, opts.SecretAccessKey = cfg.S3AccessKeyID, cfg.S3SecretAccessKey
	opts.SpoolDir = cfg.BlobDir()
	if cfg.StorageRedirect {
		opts.RedirectExpiry = cfg.StorageRedirectExpiry
	}
	s3, err := blobstore.NewS3(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("open blob storage %s: %w", cfg.Storage, err)
	}
	return s3, nil
}

// signingKey loads the JWT signing key: on PostgreSQL the one every
// replica shares through the database (sealed with the secret key; the
// first replica creates it), so a token minted by one replica is accepted
// by all; otherwise the key file in the data dir.
func signingKey(ctx context.Context, cfg config.Config, st *store.Store) (*ecdsa.PrivateKey, error) {
	if !store.IsPostgres(cfg.Database) {
		return auth.LoadOrCreateSigningKey(cfg.JWTKeyPath())
	}
	pem, err := st.SharedSecret(ctx, jwtKeySetting, auth.NewSigningKeyPEM)
	if err != nil {
		return nil, fmt.Errorf("load the shared JWT signing key: %w", err)
	}
	key, err := auth.ParseSigningKey(pem)
	if err != nil {
		return nil, fmt.Errorf("shared JWT signing key in the database: %w", err)
	}
	return key, nil
}

// openBox loads the secret-encryption key from the configuration
// (DPROXY_SECRET_KEY) or from <data-dir>/secret.key, created on first start.
func openBox(cfg config.Config) (*secretbox.Box, error) {
	var key []byte
	var err error
	if cfg.SecretKey != "" {
		key, err = secretbox.ParseKey(cfg.SecretKey)
		if err != nil {
			return nil, fmt.Errorf("secret-key setting: %w", err)
		}
	} else if key, err = secretbox.LoadOrCreateKey(cfg.SecretKeyPath()); err != nil {
		return nil, err
	}
	return secretbox.New(key)
}

// bootstrap creates the admin user and an admin token with the api scope on
// the first start, through the admin service, writes the token to path
// (0600) and logs only the path.
func bootstrap(ctx context.Context, adm *admin.Service, path string, log *slog.Logger) error {
	secret, err := adm.Bootstrap(ctx)
	if err != nil || secret == "" {
		return err
	}
	if err := keyfile.WriteAtomic(path, 0o600, func(w io.Writer) error {
		_, err := io.WriteString(w, secret+"\n")
		return err
	}); err != nil {
		return fmt.Errorf("write initial admin token: %w", err)
	}
	log.Info("created the admin user and an admin token; the token is in the file", "path", path)
	return nil
}

// cacheHooks keep the caches consistent with what the admin service
// deletes: the groups' cache and the virtual registries' forget in-memory
// state, and the lifecycle manager collects what was released.
type cacheHooks struct {
	groups  *cache.Cache
	virtual *cache.Virtual
	lc      *lifecycle.Manager
}

func (h cacheHooks) ForgetGroup(id int64)    { h.groups.ForgetGroup(id) }
func (h cacheHooks) ForgetUpstream(id int64) { h.virtual.ForgetUpstream(id) }
func (h cacheHooks) Released()               { h.lc.Kick() }

// NewLogger returns the server logger: JSON, or text when format is "text"
// or "auto" on a terminal.
func NewLogger(w *os.File, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "", "auto":
		if fi, err := w.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			return slog.New(slog.NewTextHandler(w, opts)), nil
		}
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, errors.New("log format must be auto, json or text")
}

// gcGrace is how long garbage collection leaves an unreferenced blob file:
// only replicas sharing a database need to, since a single process knows
// which files it serves.
func gcGrace(cfg config.Config) time.Duration {
	if !store.IsPostgres(cfg.Database) {
		return 0
	}
	return cfg.GCGrace
}

// peerHandler is the endpoint the other replicas stream blobs from, when
// this replica has a peer URL.
func peerHandler(cfg config.Config, c *cache.Cache, key []byte, log *slog.Logger) http.Handler {
	if cfg.PeerURL == "" || key == nil {
		return nil
	}
	return cluster.Handler(c, key, log)
}
