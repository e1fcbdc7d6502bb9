package server

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/dproxy/dproxy/internal/metrics"
	"github.com/dproxy/dproxy/internal/servertls"
	"github.com/dproxy/dproxy/internal/testcert"
)

// With AdminElsewhere, the admin API and /metrics answer only on the admin
// address, over the same TLS as the main address; the main address keeps
// the registry surface and answers 404 for them.
func TestAdminAddressSplitOverTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := testcert.NewCA(t)
	certPath, keyPath := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	ca.Issue(t, certPath, keyPath)
	cert, err := servertls.Load(certPath, keyPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	admin := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) })
	}
	s := New(nil, func(context.Context) error { return nil }, Options{
		TLS: servertls.Config(cert, tls.VersionTLS12), Metrics: metrics.New(),
		GraphQL: admin("graphql"), GitLabAPI: admin("gitlab"), AdminElsewhere: true,
	})

	ctx, cancel := context.WithCancel(context.Background())
	serve := func(f func(context.Context, net.Listener) error) (string, chan error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- f(ctx, ln) }()
		return "https://" + ln.Addr().String(), done
	}
	mainURL, mainDone := serve(s.Serve)
	adminURL, adminDone := serve(s.ServeAdmin)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}}}
	for _, tc := range []struct {
		base, method, path string
		want               int
		body               string
	}{
		{mainURL, http.MethodPost, "/api/graphql", http.StatusNotFound, `{"errors":[{"message":"this address does not serve the admin API: use the server's admin address (admin-addr)"}]}`},
		{mainURL, http.MethodDelete, "/api/v4/groups/acme/dependency_proxy/cache", http.StatusNotFound, ""},
		{mainURL, http.MethodGet, "/metrics", http.StatusNotFound, ""},
		{mainURL, http.MethodGet, "/-/health", http.StatusOK, `{"status":"ok"}`},
		{adminURL, http.MethodPost, "/api/graphql", http.StatusOK, "graphql"},
		{adminURL, http.MethodDelete, "/api/v4/groups/acme/dependency_proxy/cache", http.StatusOK, "gitlab"},
		{adminURL, http.MethodGet, "/metrics", http.StatusOK, ""},
		{adminURL, http.MethodGet, "/jwt/auth", http.StatusNotFound, ""},
		{adminURL, http.MethodGet, "/v2/", http.StatusNotFound, ""},
	} {
		req, _ := http.NewRequest(tc.method, tc.base+tc.path, nil)
		res, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s%s: %v", tc.method, tc.base, tc.path, err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != tc.want || (tc.body != "" && string(body) != tc.body) {
			t.Errorf("%s %s%s = %d %.60q, want %d %q", tc.method, tc.base, tc.path, res.StatusCode, body, tc.want, tc.body)
		}
	}
	cancel()
	for _, done := range []chan error{mainDone, adminDone} {
		if err := <-done; err != nil {
			t.Errorf("serve after its context ended: %v", err)
		}
	}
}

// Without AdminElsewhere there is no admin address to serve.
func TestServeAdminNeedsAdminElsewhere(t *testing.T) {
	t.Parallel()
	s := New(nil, func(context.Context) error { return nil }, Options{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := s.ServeAdmin(context.Background(), ln); err == nil {
		t.Error("ServeAdmin of a server without AdminElsewhere succeeded")
	}
}
