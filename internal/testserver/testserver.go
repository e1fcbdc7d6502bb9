// Package testserver runs a real dproxy server for tests of its clients:
// the assembled app (SQLite and a blob folder in a temp data dir) behind an
// httptest listener on 127.0.0.1, in front of a testregistry upstream.
//
// Only tests import it. It must not import commands, adminclient or tui.
package testserver

import (
	"bytes"
	"context"
	"log/slog"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dproxy/dproxy/internal/app"
	"github.com/dproxy/dproxy/internal/config"
	"github.com/dproxy/dproxy/internal/testdns"
	"github.com/dproxy/dproxy/internal/testregistry"
)

// Server is a running dproxy.
type Server struct {
	// URL is http://127.0.0.1:port; Host is 127.0.0.1:port.
	URL  string
	Host string
	// DataDir holds the database, blobs, keys and initial_admin_token.
	DataDir string
	// AdminToken is the initial admin token (api scope).
	AdminToken string
	Upstream   *testregistry.Upstream
	// DNS answers the server's lookups of upstream names: names not set
	// in it do not exist, and no query leaves the machine.
	DNS  *testdns.Table
	App  *app.App
	logs *logBuffer
}

// Options configure New.
type Options struct {
	// DataDir is used instead of a fresh temp dir when set.
	DataDir string
	// Upstream is used instead of a new testregistry when set.
	Upstream *testregistry.Upstream
	// Configure, when set, changes the configuration before the server
	// opens (e.g. to let virtual-registry upstreams reach 127.0.0.1).
	Configure func(*config.Config)
}

// New starts a server that stops when the test ends.
func New(t testing.TB, o Options) *Server {
	t.Helper()
	up := o.Upstream
	if up == nil {
		up = testregistry.New(t, testregistry.Options{})
	}
	srv := httptest.NewUnstartedServer(nil)
	cfg := config.Default()
	cfg.DataDir = o.DataDir
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	cfg.Upstream = up.URL
	cfg.Addr = srv.Listener.Addr().String()
	cfg.ExternalURL = "http://" + cfg.Addr
	if o.Configure != nil {
		o.Configure(&cfg)
	}
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	dns := testdns.New()
	a, err := app.Open(context.Background(), cfg, log, app.WithResolver(dns.Resolver()))
	if err != nil {
		t.Fatalf("open dproxy: %v", err)
	}
	srv.Config.Handler = a.Server.Handler()
	srv.Start()
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		a.Close()
	})
	tok, err := os.ReadFile(cfg.InitialTokenPath())
	if err != nil {
		t.Fatalf("read initial admin token: %v", err)
	}
	return &Server{
		URL: srv.URL, Host: cfg.Addr, DataDir: cfg.DataDir,
		AdminToken: strings.TrimSpace(string(tok)), Upstream: up, DNS: dns, App: a, logs: logs,
	}
}

// WaitDownloads waits until no blob download is in flight: clients get a
// blob's bytes while it downloads, and the cache records it for the group
// just after, so tests that count cached blobs wait for that first. It
// fails the test if downloads are still running after a minute (a hang).
func (s *Server) WaitDownloads(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for s.App.Cache.InFlight() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("blob downloads still in flight after a minute")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Logs returns what the server logged so far.
func (s *Server) Logs() string { return s.logs.String() }

// logBuffer is a bytes.Buffer safe for concurrent writers.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
