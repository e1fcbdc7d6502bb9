package app_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dproxy/dproxy/internal/app"
	"github.com/dproxy/dproxy/internal/config"
	"github.com/dproxy/dproxy/internal/testcert"
	"github.com/dproxy/dproxy/internal/testregistry"
)

// With admin-addr, the main address answers 404 for the admin API and
// /metrics, and the admin address serves them with their usual rules.
func TestAdminAddrMovesTheAdminAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{configure: func(c *config.Config) { c.AdminAddr = "127.0.0.1:0" }})
	e.group("acme")
	admin := httptest.NewServer(e.app.Server.AdminHandler())
	t.Cleanup(admin.Close)
	query := []byte(`{"query":"{ group(fullPath: \"acme\") { fullPath } }"}`)
	do := func(base, method, path, token string, body []byte) (int, string) {
		req, _ := http.NewRequest(method, base+path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	tok := e.adminToken()
	for _, tc := range []struct {
		base, method, path, token string
		body                      []byte
		want                      int
		contains                  string
	}{
		{e.srv.URL, http.MethodPost, "/api/graphql", tok, query, http.StatusNotFound, ""},
		{e.srv.URL, http.MethodGet, "/api/v4/groups/acme", tok, nil, http.StatusNotFound, ""},
		{e.srv.URL, http.MethodGet, "/metrics", tok, nil, http.StatusNotFound, ""},
		{e.srv.URL, http.MethodGet, "/v2/", "", nil, http.StatusUnauthorized, "UNAUTHORIZED"},
		{admin.URL, http.MethodPost, "/api/graphql", tok, query, http.StatusOK, `"fullPath":"acme"`},
		{admin.URL, http.MethodPost, "/api/graphql", "", query, http.StatusUnauthorized, ""},
		{admin.URL, http.MethodGet, "/metrics", tok, nil, http.StatusOK, "dproxy_http_requests_total"},
		{admin.URL, http.MethodGet, "/metrics", "", nil, http.StatusUnauthorized, ""},
		{admin.URL, http.MethodGet, "/v2/", "", nil, http.StatusNotFound, ""},
	} {
		code, body := do(tc.base, tc.method, tc.path, tc.token, tc.body)
		where := "main"
		if tc.base == admin.URL {
			where = "admin"
		}
		if code != tc.want || !strings.Contains(body, tc.contains) {
			t.Errorf("%s %s on the %s address = %d %.120q, want %d containing %q", tc.method, tc.path, where, code, body, tc.want, tc.contains)
		}
	}
}

// A TLS key file others may read is refused at start, as dproxy's other
// key files are.
func TestOpenRefusesATLSKeyOthersMayRead(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	testcert.NewCA(t).Issue(t, certPath, keyPath)
	cfg := config.Default()
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.Addr, cfg.ExternalURL = "127.0.0.1:0", "https://127.0.0.1:5000"
	cfg.TLSCert, cfg.TLSKey = certPath, keyPath
	log := slog.New(slog.DiscardHandler)

	a, err := app.Open(context.Background(), cfg, log)
	if err != nil {
		t.Fatalf("Open with a private TLS key: %v", err)
	}
	if a.TLSCert == nil {
		t.Error("Open with TLS settings made no certificate to serve")
	}
	a.Close()

	if err := os.Chmod(keyPath, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := app.Open(context.Background(), cfg, log); err == nil || !strings.Contains(err.Error(), "TLS key file "+keyPath) {
		t.Errorf("Open with a group-readable TLS key = %v, want an error naming the TLS key file", err)
	}
}

// freeAddr returns a 127.0.0.1 address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitLog waits until the log file holds want, or fails the test when
// the process exited or a minute passed.
func waitLog(t *testing.T, cmd *exec.Cmd, exited <-chan struct{}, logPath, want string) string {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		b, _ := os.ReadFile(logPath)
		if strings.Contains(string(b), want) {
			return string(b)
		}
		select {
		case <-exited:
			t.Fatalf("dproxy serve exited before logging %q: %s", want, b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("dproxy serve did not log %q within a minute: %s", want, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// `dproxy serve` with TLS, end to end over real handshakes: TLS 1.1 and
// SHA-1 CBC suites are refused, the admin API answers on admin-addr only,
// and SIGHUP makes new connections get a renewed certificate.
func TestServeTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	ca := testcert.NewCA(t)
	first := ca.Issue(t, certPath, keyPath)
	up := testregistry.New(t, testregistry.Options{})
	// start starts `dproxy serve` on two ports that were free a moment ago;
	// false when one was taken meanwhile (the child exits saying so).
	var addr, adminAddr, logPath string
	var cmd *exec.Cmd
	var exited chan struct{}
	start := func(attempt int) bool {
		addr, adminAddr = freeAddr(t), freeAddr(t)
		logPath = filepath.Join(dir, fmt.Sprintf("serve-%d.log", attempt))
		logf, err := os.Create(logPath)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { logf.Close() })
		cmd = exec.Command(os.Args[0], "serve", "--addr", addr, "--admin-addr", adminAddr, "--data-dir", filepath.Join(dir, "data"),
			"--upstream", up.URL, "--external-url", "https://"+addr, "--log-format", "json",
			"--tls-cert", certPath, "--tls-key", keyPath)
		cmd.Env = append(os.Environ(), "DPROXY_TEST_RUN_MAIN=1")
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited = make(chan struct{})
		go func(cmd *exec.Cmd, exited chan struct{}) { cmd.Wait(); close(exited) }(cmd, exited)
		t.Cleanup(func(cmd *exec.Cmd, exited chan struct{}) func() {
			return func() { cmd.Process.Signal(syscall.SIGTERM); <-exited }
		}(cmd, exited))
		deadline := time.Now().Add(time.Minute)
		for {
			b, _ := os.ReadFile(logPath)
			switch {
			case strings.Contains(string(b), `"msg":"dproxy listening"`) && strings.Contains(string(b), `"msg":"serving the admin API"`):
				return true
			case strings.Contains(string(b), "address already in use") && attempt < 5:
				<-exited
				return false
			case time.Now().After(deadline):
				t.Fatalf("dproxy serve did not listen within a minute: %s", b)
			}
			select {
			case <-exited:
				t.Fatalf("dproxy serve exited: %s", b)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	for attempt := 1; !start(attempt); attempt++ {
	}

	dial := func(a string, cfg *tls.Config) (*x509.Certificate, error) {
		cfg.RootCAs, cfg.ServerName = ca.Pool, "127.0.0.1"
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 30 * time.Second}, "tcp", a, cfg)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0], nil
	}
	for _, a := range []string{addr, adminAddr} {
		if _, err := dial(a, &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}); err == nil {
			t.Errorf("a TLS 1.1 handshake with %s succeeded", a)
		}
		if _, err := dial(a, &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}}); err == nil {
			t.Errorf("a handshake with %s offering only ECDHE-ECDSA-AES128-SHA (CBC) succeeded", a)
		}
		if got, err := dial(a, &tls.Config{MaxVersion: tls.VersionTLS12}); err != nil || got.SerialNumber.Cmp(first.SerialNumber) != 0 {
			t.Errorf("a TLS 1.2 handshake with %s: %v, serial %v", a, err, serialOf(got))
		}
	}

	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}}}
	status := func(method, url string) int {
		req, _ := http.NewRequest(method, url, strings.NewReader(`{"query":"{ __typename }"}`))
		req.Header.Set("Content-Type", "application/json")
		res, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if got := status(http.MethodPost, "https://"+addr+"/api/graphql"); got != http.StatusNotFound {
		t.Errorf("POST /api/graphql on the main address = %d, want 404", got)
	}
	if got := status(http.MethodPost, "https://"+adminAddr+"/api/graphql"); got != http.StatusUnauthorized {
		t.Errorf("POST /api/graphql without a token on the admin address = %d, want 401 (the admin API is there)", got)
	}
	if got := status(http.MethodGet, "https://"+addr+"/v2/"); got != http.StatusUnauthorized {
		t.Errorf("GET /v2/ on the main address = %d, want 401", got)
	}

	second := ca.Issue(t, certPath, keyPath)
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog(t, cmd, exited, logPath, `"msg":"TLS certificate reloaded"`)
	for _, a := range []string{addr, adminAddr} {
		if got, err := dial(a, &tls.Config{}); err != nil || got.SerialNumber.Cmp(second.SerialNumber) != 0 {
			t.Errorf("after SIGHUP %s presents serial %v (%v), want the renewed %v", a, serialOf(got), err, second.SerialNumber)
		}
	}
}

func serialOf(c *x509.Certificate) any {
	if c == nil {
		return nil
	}
	return c.SerialNumber
}
