package servertls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dproxy/dproxy/internal/testcert"
)

// serveTLS accepts TLS connections on 127.0.0.1 with cfg and completes
// their handshakes, until the test ends; it returns the address.
func serveTLS(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.(*tls.Conn).Handshake()
			}()
		}
	}()
	return ln.Addr().String()
}

// handshake connects to addr with client settings cfg (trusting pool)
// and returns the certificate the server presented.
func handshake(addr string, pool *x509.CertPool, cfg *tls.Config) (*x509.Certificate, error) {
	if cfg == nil {
		cfg = &tls.Config{}
	}
	cfg.RootCAs, cfg.ServerName = pool, "127.0.0.1"
	d := &net.Dialer{Timeout: 30 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0], nil
}

type fixture struct {
	ca                *testcert.CA
	certPath, keyPath string
	first             *x509.Certificate
	cert              *Certificate
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{ca: testcert.NewCA(t), certPath: filepath.Join(dir, "tls.crt"), keyPath: filepath.Join(dir, "tls.key")}
	f.first = f.ca.Issue(t, f.certPath, f.keyPath)
	var err error
	if f.cert, err = Load(f.certPath, f.keyPath, nil); err != nil {
		t.Fatalf("Load: %v", err)
	}
	return f
}

func TestMinimumVersion(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, tc := range []struct {
		min, clientMax uint16
		ok             bool
	}{
		{tls.VersionTLS12, tls.VersionTLS10, false},
		{tls.VersionTLS12, tls.VersionTLS11, false},
		{tls.VersionTLS12, tls.VersionTLS12, true},
		{tls.VersionTLS12, tls.VersionTLS13, true},
		{tls.VersionTLS13, tls.VersionTLS12, false},
		{tls.VersionTLS13, tls.VersionTLS13, true},
	} {
		addr := serveTLS(t, Config(f.cert, tc.min))
		_, err := handshake(addr, f.ca.Pool, &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tc.clientMax})
		if (err == nil) != tc.ok {
			t.Errorf("server minimum %s, client up to %s: handshake error %v, want ok=%v",
				tls.VersionName(tc.min), tls.VersionName(tc.clientMax), err, tc.ok)
		}
	}
}

// SHA-1 CBC suites (and CBC at all) are refused; the AEAD suites of the
// intermediate profile are accepted.
func TestCipherSuites(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	addr := serveTLS(t, Config(f.cert, tls.VersionTLS12))
	for _, tc := range []struct {
		suite uint16
		ok    bool
	}{
		{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, false},
		{tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, false},
		{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, false},
		{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, true},
		{tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, true},
		{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, true},
	} {
		_, err := handshake(addr, f.ca.Pool, &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tc.suite}})
		if (err == nil) != tc.ok {
			t.Errorf("TLS 1.2 with only %s: handshake error %v, want ok=%v", tls.CipherSuiteName(tc.suite), err, tc.ok)
		}
	}
	for _, s := range CipherSuites {
		for _, insecure := range tls.InsecureCipherSuites() {
			if s == insecure.ID {
				t.Errorf("CipherSuites offers %s, which Go lists as insecure", insecure.Name)
			}
		}
		if name := tls.CipherSuiteName(s); strings.Contains(name, "CBC") || strings.HasSuffix(name, "_SHA") {
			t.Errorf("CipherSuites offers %s", name)
		}
	}
}

func TestKeyFileMustBePrivate(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if err := os.Chmod(f.keyPath, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(f.certPath, f.keyPath, nil)
	if err == nil || !strings.Contains(err.Error(), f.keyPath) || !strings.Contains(err.Error(), "TLS key file") {
		t.Fatalf("Load with a key file others may read = %v, want an error naming the TLS key file", err)
	}
	// A reload meets the same check and keeps the pair in use.
	if err := f.cert.Reload(); err == nil {
		t.Error("Reload with a key file others may read succeeded")
	}
	addr := serveTLS(t, Config(f.cert, tls.VersionTLS12))
	if got, err := handshake(addr, f.ca.Pool, nil); err != nil || got.SerialNumber.Cmp(f.first.SerialNumber) != 0 {
		t.Errorf("after a refused reload: serial %v, %v; want the first certificate", got, err)
	}
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	other := newFixture(t)
	for _, tc := range []struct {
		name, cert, key, want string
	}{
		{"missing certificate", filepath.Join(t.TempDir(), "none.crt"), f.keyPath, "read TLS certificate"},
		{"missing key", f.certPath, filepath.Join(t.TempDir(), "none.key"), "read TLS key file"},
		{"key of another certificate", f.certPath, other.keyPath, "private key does not match public key"},
	} {
		if _, err := Load(tc.cert, tc.key, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Load = %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}

// watch runs Watch until the test ends and returns the outcomes of its
// reloads.
func (f *fixture) watch(t *testing.T, interval time.Duration) <-chan error {
	t.Helper()
	reloads := make(chan error, 100)
	f.cert.reloaded = func(err error) { reloads <- err }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.cert.Watch(ctx, interval); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return reloads
}

// next waits for the next reload Watch makes.
func next(t *testing.T, reloads <-chan error) error {
	t.Helper()
	select {
	case err := <-reloads:
		return err
	case <-time.After(60 * time.Second):
		t.Fatal("gave up waiting for a reload")
		return nil
	}
}

// SIGHUP reloads the pair: new connections get the new certificate. A
// pair that does not load is logged and the previous one stays.
func TestReloadOnSIGHUP(t *testing.T) {
	// Not parallel: the signal goes to the whole process.
	f := newFixture(t)
	reloads := f.watch(t, time.Hour)
	addr := serveTLS(t, Config(f.cert, tls.VersionTLS12))

	second := f.ca.Issue(t, f.certPath, f.keyPath)
	// Watch has subscribed to SIGHUP once it is running; a signal sent
	// before would kill the test binary, so wait for it.
	waitSubscribed(t, f)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if err := next(t, reloads); err != nil {
		t.Fatalf("reload on SIGHUP: %v", err)
	}
	if got, err := handshake(addr, f.ca.Pool, nil); err != nil || got.SerialNumber.Cmp(second.SerialNumber) != 0 {
		t.Fatalf("after SIGHUP the server presents serial %v (%v), want the new %v", serialOf(got), err, second.SerialNumber)
	}

	if err := os.WriteFile(f.certPath, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if err := next(t, reloads); err == nil {
		t.Fatal("reload of a broken certificate succeeded")
	}
	if got, err := handshake(addr, f.ca.Pool, nil); err != nil || got.SerialNumber.Cmp(second.SerialNumber) != 0 {
		t.Errorf("after a failed reload the server presents serial %v (%v), want the previous %v", serialOf(got), err, second.SerialNumber)
	}
}

// waitSubscribed waits until Watch is subscribed to SIGHUP.
func waitSubscribed(t *testing.T, f *fixture) {
	t.Helper()
	select {
	case <-f.cert.watching:
	case <-time.After(60 * time.Second):
		t.Fatal("Watch did not start")
	}
}

// A change of the files is noticed without a signal.
func TestReloadOnFileChange(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	reloads := f.watch(t, 10*time.Millisecond)
	addr := serveTLS(t, Config(f.cert, tls.VersionTLS12))
	second := f.ca.Issue(t, f.certPath, f.keyPath)
	// The key is replaced before the certificate: a poll between the two
	// sees a pair that does not match and keeps the old one.
	for err := next(t, reloads); err != nil; err = next(t, reloads) {
		if got, herr := handshake(addr, f.ca.Pool, nil); herr != nil || got.SerialNumber.Cmp(f.first.SerialNumber) != 0 {
			t.Fatalf("after a failed reload (%v) the server presents %v (%v), want the first certificate", err, serialOf(got), herr)
		}
	}
	if got, err := handshake(addr, f.ca.Pool, nil); err != nil || got.SerialNumber.Cmp(second.SerialNumber) != 0 {
		t.Fatalf("after the files changed the server presents serial %v (%v), want the new %v", serialOf(got), err, second.SerialNumber)
	}
}

func serialOf(c *x509.Certificate) any {
	if c == nil {
		return nil
	}
	return c.SerialNumber
}
