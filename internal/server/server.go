// Package server owns the HTTP server of `dproxy serve`: the route table,
// request logging and metrics middleware, health endpoints and the
// listen/shutdown lifecycle. It wires handlers from its sub-packages and
// must not import commands or tui.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/dproxy/dproxy/internal/metrics"
	"github.com/dproxy/dproxy/internal/server/registry"
)

// Options configure a Server.
type Options struct {
	Addr string
	// TLS, when set, makes every listener of the server speak TLS with
	// these settings (certificate, versions, cipher suites); nil is plain
	// HTTP.
	TLS *tls.Config
	// ShutdownTimeout bounds how long in-flight responses may take to
	// finish after a shutdown starts. Default 30s.
	ShutdownTimeout time.Duration
	Logger          *slog.Logger
	Metrics         *metrics.Metrics
	// GraphQL serves POST /api/graphql (the admin API); nil leaves it out.
	GraphQL http.Handler
	// GitLabAPI serves /api/v4/ (GitLab's REST purge and container virtual
	// registries API); nil leaves it out.
	GitLabAPI http.Handler
	// Peer serves GET /-/peer/blobs/<digest> to the other replicas of a
	// cluster (it checks their signature itself); nil leaves it out.
	Peer http.Handler
	// MetricsAuthorize, when set, must accept a request to /metrics on the
	// main address; a refusal answers 401.
	MetricsAuthorize func(*http.Request) error
	// MetricsElsewhere leaves /metrics off the main address: it is served
	// by ServeMetrics on an address of its own.
	MetricsElsewhere bool
	// AdminElsewhere moves the admin API (GraphQL, GitLab REST) and, unless
	// MetricsElsewhere, /metrics off the main address: ServeAdmin serves
	// them on an address of their own, and the main address answers 404.
	AdminElsewhere bool
	// BodyReadTimeout bounds reading the body of a token or admin API
	// request. Default DefaultBodyReadTimeout.
	BodyReadTimeout time.Duration
}

// Server is dproxy's HTTP server.
type Server struct {
	handler http.Handler
	admin   http.Handler // nil unless AdminElsewhere
	opts    Options
	log     *slog.Logger
}

// New builds the route table. ready reports whether the server can serve
// (database reachable, data dir writable).
func New(reg *registry.Handler, ready func(context.Context) error, opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 30 * time.Second
	}
	if opts.BodyReadTimeout <= 0 {
		opts.BodyReadTimeout = DefaultBodyReadTimeout
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /-/health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, `{"status":"ok"}`)
	})
	mux.HandleFunc("GET /-/readiness", func(w http.ResponseWriter, r *http.Request) {
		if err := ready(r.Context()); err != nil {
			opts.Logger.WarnContext(r.Context(), "not ready", "err", err)
			writeJSON(w, http.StatusServiceUnavailable, fmt.Sprintf(`{"status":"unavailable","reason":%q}`, err.Error()))
			return
		}
		writeJSON(w, http.StatusOK, `{"status":"ok"}`)
	})
	mux.HandleFunc("/jwt/auth", reg.Token)
	// The admin routes go on the main mux, or on the admin address's own.
	adminMux := mux
	if opts.AdminElsewhere {
		adminMux = http.NewServeMux()
		// A 404 that says where to go, for a CLI still pointed here.
		elsewhere := func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusNotFound, `{"errors":[{"message":"this address does not serve the admin API: use the server's admin address (admin-addr)"}]}`)
		}
		mux.HandleFunc("/api/graphql", elsewhere)
		mux.HandleFunc("/api/v4/", elsewhere)
	}
	if opts.Metrics != nil && !opts.MetricsElsewhere {
		adminMux.Handle("GET /metrics", authorizeMetrics(opts.Metrics.Handler(), opts.MetricsAuthorize))
	}
	if opts.Peer != nil {
		mux.Handle("GET /-/peer/blobs/", opts.Peer)
	}
	if opts.GraphQL != nil {
		adminMux.Handle("POST /api/graphql", opts.GraphQL)
	}
	if opts.GitLabAPI != nil {
		adminMux.Handle("/api/v4/", opts.GitLabAPI)
	}

	// /v2/ bypasses ServeMux, which would clean or redirect the paths the
	// registry must validate and reject itself.
	root := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2" || strings.HasPrefix(r.URL.Path, "/v2/") {
			reg.V2(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
	limited := limitBodies(root, opts.BodyReadTimeout)
	srv := &Server{handler: observe(limited, opts.Logger, opts.Metrics), opts: opts, log: opts.Logger}
	if opts.AdminElsewhere {
		srv.admin = observe(limitBodies(adminMux, opts.BodyReadTimeout), opts.Logger, opts.Metrics)
	}
	return srv
}

// Handler returns the complete handler of the main address, middleware
// included.
func (s *Server) Handler() http.Handler { return s.handler }

// AdminHandler returns the handler of the admin address, middleware
// included, or nil unless AdminElsewhere.
func (s *Server) AdminHandler() http.Handler { return s.admin }

// Serve serves the main address on ln until ctx ends, then shuts down
// gracefully: it stops accepting, lets in-flight responses finish within
// ShutdownTimeout, and returns.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	return s.serve(ctx, ln, s.handler)
}

// ServeAdmin serves the admin API on ln (AdminElsewhere), with the same
// TLS settings and shutdown as Serve.
func (s *Server) ServeAdmin(ctx context.Context, ln net.Listener) error {
	if s.admin == nil {
		return errors.New("serve the admin API: the server was not built with AdminElsewhere")
	}
	return s.serve(ctx, ln, s.admin)
}

func (s *Server) serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
		ConnContext:       registry.WithConn,
	}
	if s.opts.TLS != nil {
		hs.TLSConfig = s.opts.TLS
		ln = tls.NewListener(ln, hs.TLSConfig)
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	s.log.Info("shutting down", "timeout", s.opts.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close()
		return fmt.Errorf("shut down: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// authorizeMetrics lets through the requests authorize accepts (all when
// it is nil).
func authorizeMetrics(next http.Handler, authorize func(*http.Request) error) http.Handler {
	if authorize == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := authorize(r); err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="dproxy metrics"`)
			writeJSON(w, http.StatusUnauthorized, fmt.Sprintf(`{"error":%q}`, err.Error()+"; or serve metrics on a private address with --metrics-addr"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// ServeMetrics serves only GET /metrics, without a token, on ln until ctx
// ends. It is for an address the operator keeps private (--metrics-addr).
func (s *Server) ServeMetrics(ctx context.Context, ln net.Listener) error {
	mux := http.NewServeMux()
	if s.opts.Metrics != nil {
		mux.Handle("GET /metrics", s.opts.Metrics.Handler())
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 30 * time.Second, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve metrics on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hs.Shutdown(sctx)
	return nil
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write([]byte(body))
}
