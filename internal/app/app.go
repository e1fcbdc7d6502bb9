// Package app assembles a running dproxy from a configuration: data dir,
// keys, store, blob store, auth, upstream client, cache and HTTP server.
// `dproxy serve` and the end-to-end tests use it; it must not import
// commands or tui.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/dproxy/dproxy/internal/auth"
	"github.com/dproxy/dproxy/internal/blobstore"
	"github.com/dproxy/dproxy/internal/cache"
	"github.com/dproxy/dproxy/internal/config"
	"github.com/dproxy/dproxy/internal/lifecycle"
	"github.com/dproxy/dproxy/internal/metrics"
	"github.com/dproxy/dproxy/internal/secretbox"
	"github.com/dproxy/dproxy/internal/server"
	"github.com/dproxy/dproxy/internal/server/graphql"
	"github.com/dproxy/dproxy/internal/server/registry"
	"github.com/dproxy/dproxy/internal/store"
	"github.com/dproxy/dproxy/internal/upstream"
)

// App is an assembled dproxy server. Close releases what Open acquired.
type App struct {
	Config  config.Config
	Store   *store.Store
	Blobs   *blobstore.FS
	Auth    *auth.Service
	Issuer  *auth.Issuer
	Cache   *cache.Cache
	Metrics *metrics.Metrics
	Server  *server.Server
	// Lifecycle runs TTL expiry, garbage collection and the size cap; Run
	// starts its schedule.
	Lifecycle *lifecycle.Manager
	log       *slog.Logger
}

// Option changes how Open assembles the server.
type Option func(*options)

type options struct {
	now func() time.Time
}

// WithClock makes the cache and the background jobs read the time from
// now (tests move it forward to expire entries).
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

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
	box, err := openBox(cfg)
	if err != nil {
		return nil, err
	}
	st, err := store.OpenSQLite(ctx, cfg.DBPath(), box)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", cfg.DBPath(), err)
	}
	defer func() {
		if err != nil {
			st.Close()
		}
	}()
	blobs, err := blobstore.NewFS(cfg.BlobDir())
	if err != nil {
		return nil, fmt.Errorf("open blob folder %s: %w", cfg.BlobDir(), err)
	}
	if n, err := blobs.CleanTemp(); err != nil {
		return nil, fmt.Errorf("remove leftover temp files in %s: %w", cfg.BlobDir(), err)
	} else if n > 0 {
		log.Info("removed leftover temp files of interrupted downloads", "count", n)
	}

	key, err := auth.LoadOrCreateSigningKey(cfg.JWTKeyPath())
	if err != nil {
		return nil, err
	}
	iss := auth.NewIssuer(key, auth.IssuerOptions{TTL: cfg.TokenExpiry})
	svc := auth.NewService(st, iss, auth.ServiceOptions{MirrorGroup: cfg.MirrorGroup})
	if err := bootstrap(ctx, st, cfg.InitialTokenPath(), log); err != nil {
		return nil, err
	}

	m := metrics.New()
	up, err := upstream.New(upstream.Options{
		URL:                   cfg.Upstream,
		ConnectTimeout:        cfg.UpstreamConnectTimeout,
		ResponseHeaderTimeout: cfg.UpstreamResponseHeaderTimeout,
		MaxManifestSize:       cfg.MaxManifestSize,
		UserAgent:             "dproxy",
		Logger:                log,
		Metrics:               m,
	})
	if err != nil {
		return nil, err
	}
	c := cache.New(st, blobs, up, cache.Options{
		RevalidateTimeout: cfg.RevalidateTimeout,
		MaxBlobSize:       cfg.MaxBlobSize,
		Logger:            log,
		Metrics:           m,
		Now:               o.now,
	})
	lm, err := metrics.NewLifecycle(m, cacheSizes(st))
	if err != nil {
		return nil, fmt.Errorf("register lifecycle metrics: %w", err)
	}
	lc := lifecycle.New(st, blobs, c, lifecycle.Options{
		TTLInterval: cfg.TTLInterval,
		GCInterval:  cfg.GCInterval,
		MaxSize:     cfg.CacheMaxSize,
		Now:         o.now,
		Logger:      log,
		Metrics:     lm,
	})
	reg := registry.New(svc, iss, c, st, registry.Options{ExternalURL: cfg.ExternalURL, MirrorGroup: cfg.MirrorGroup, Logger: log, Metrics: m})
	a := &App{Config: cfg, Store: st, Blobs: blobs, Auth: svc, Issuer: iss, Cache: c, Metrics: m, Lifecycle: lc, log: log}
	admin := graphql.New(st, svc, c, graphql.Options{ExternalURL: cfg.ExternalURL, Logger: log, Released: lc.Kick})
	a.Server = server.New(reg, a.ready, server.Options{
		Addr: cfg.Addr, TLSCert: cfg.TLSCert, TLSKey: cfg.TLSKey,
		ShutdownTimeout: cfg.ShutdownTimeout, Logger: log, Metrics: m,
		GraphQL: admin.GraphQL(), GitLabAPI: admin.REST(),
	})
	return a, nil
}

// Run listens on the configured address and serves until ctx ends.
func (a *App) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", a.Config.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", a.Config.Addr, err)
	}
	a.log.Info("dproxy listening", "addr", ln.Addr().String(), "external_url", a.Config.ExternalURL,
		"upstream", a.Config.Upstream, "data_dir", a.Config.DataDir, "mirror_group", a.Config.MirrorGroup)
	bg, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { a.Lifecycle.Run(bg) })
	err = a.Server.Serve(ctx, ln)
	stop()
	wg.Wait()
	return err
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
	return a.Store.Close()
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
// the first start, writes the token to path (0600) and logs only the path.
func bootstrap(ctx context.Context, st *store.Store, path string, log *slog.Logger) error {
	n, err := st.CountUsers(ctx)
	if err != nil {
		return fmt.Errorf("count users: %w", err)
	}
	if n > 0 {
		return nil
	}
	u, err := st.CreateUser(ctx, store.User{Username: "admin", Admin: true})
	if err != nil {
		return fmt.Errorf("create admin user: %w", err)
	}
	secret, hash := auth.NewTokenSecret(store.TokenPersonal)
	if _, err := st.CreateToken(ctx, store.Token{
		Kind: store.TokenPersonal, Name: "initial admin token", UserID: u.ID,
		Scopes: []string{auth.ScopeAPI}, Hash: hash,
	}); err != nil {
		return fmt.Errorf("create admin token: %w", err)
	}
	if err := writeSecretFile(path, secret+"\n"); err != nil {
		return fmt.Errorf("write initial admin token: %w", err)
	}
	log.Info("created the admin user and an admin token; the token is in the file", "path", path)
	return nil
}

// writeSecretFile writes content to path with mode 0600, atomically.
func writeSecretFile(path, content string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.WriteString(content); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

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
