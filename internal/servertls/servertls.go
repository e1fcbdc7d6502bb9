// Package servertls owns the TLS settings of dproxy's listeners: the
// certificate and its key, read with the private-file check of every
// dproxy key file and read again on SIGHUP or when either file changes,
// and the protocol versions and cipher suites offered.
//
// It imports only internal/keyfile from this module; app builds a
// tls.Config with it and hands it to server.
package servertls

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dproxy/dproxy/internal/keyfile"
)

// CipherSuites are the TLS 1.2 suites offered: those of Mozilla's
// "intermediate" profile that Go implements, ECDHE with AES-GCM or
// ChaCha20-Poly1305. No CBC mode, no SHA-1 MAC, no RSA key exchange.
// TLS 1.3 suites are not configurable in Go and are all AEAD.
var CipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// DefaultPollInterval is how often Watch looks for changed files.
const DefaultPollInterval = 10 * time.Second

// maxKeyFile bounds how much of the key file is read.
const maxKeyFile = 1 << 20

// Certificate serves a certificate and key pair read from files and
// replaced by Reload. It is safe for concurrent use.
type Certificate struct {
	certPath, keyPath string
	log               *slog.Logger
	current           atomic.Pointer[tls.Certificate]

	mu    sync.Mutex // serialises Reload and guards stamp
	stamp [2]os.FileInfo

	// reloaded, when set, is called after each reload attempt Watch makes;
	// watching is closed once Watch is subscribed to SIGHUP (tests wait
	// on both).
	reloaded   func(error)
	watching   chan struct{}
	subscribed sync.Once
}

// Load reads the certificate (PEM, with its chain) and its key. The key
// file must be a regular file only its owner may access, as dproxy's other
// key files.
func Load(certPath, keyPath string, log *slog.Logger) (*Certificate, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Certificate{certPath: certPath, keyPath: keyPath, log: log, watching: make(chan struct{})}
	if err := c.Reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// Reload reads both files again. On error the certificate in use stays
// and the error says what was wrong.
func (c *Certificate) Reload() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stamp = c.stamps()
	certPEM, err := os.ReadFile(c.certPath)
	if err != nil {
		return fmt.Errorf("read TLS certificate %s: %w", c.certPath, err)
	}
	keyPEM, err := keyfile.Read(c.keyPath, "TLS key file", maxKeyFile)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("read TLS key file %s: %w", c.keyPath, err)
		}
		return err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("load TLS certificate %s and key %s: %w", c.certPath, c.keyPath, err)
	}
	c.current.Store(&pair)
	return nil
}

// GetCertificate is tls.Config.GetCertificate: the pair last loaded.
func (c *Certificate) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return c.current.Load(), nil
}

// stamps identifies the two files as they are now (nil for one that
// cannot be statted); a replaced or rewritten file gets another stamp.
// os.Stat follows symbolic links, so a link switched to a new file (as
// Kubernetes updates mounted secrets) counts as a change.
func (c *Certificate) stamps() [2]os.FileInfo {
	var s [2]os.FileInfo
	for i, p := range []string{c.certPath, c.keyPath} {
		if fi, err := os.Stat(p); err == nil {
			s[i] = fi
		}
	}
	return s
}

func sameStamp(a, b os.FileInfo) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime()) && a.Mode() == b.Mode()
}

// changed reports whether either file differs from when it was last read.
func (c *Certificate) changed() bool {
	now := c.stamps()
	c.mu.Lock()
	defer c.mu.Unlock()
	return !sameStamp(now[0], c.stamp[0]) || !sameStamp(now[1], c.stamp[1])
}

// Watch reloads the pair on SIGHUP and when either file changes (checked
// every interval; 0 is DefaultPollInterval), until ctx ends. A successful
// reload is logged; a failed one is logged as an error and the previous
// pair stays in use.
func (c *Certificate) Watch(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	c.subscribed.Do(func() { close(c.watching) })
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		var why string
		select {
		case <-ctx.Done():
			return
		case <-hup:
			why = "SIGHUP"
		case <-tick.C:
			if !c.changed() {
				continue
			}
			why = "file changed"
		}
		err := c.Reload()
		if err != nil {
			c.log.Error("TLS certificate not reloaded; the previous one stays in use", "trigger", why, "err", err)
		} else {
			c.log.Info("TLS certificate reloaded", "trigger", why, "cert", c.certPath)
		}
		if c.reloaded != nil {
			c.reloaded(err)
		}
	}
}

// Config returns the TLS settings of a listener serving c: TLS 1.2 or
// newer as minVersion says (tls.VersionTLS12 or tls.VersionTLS13), the
// CipherSuites for TLS 1.2.
func Config(c *Certificate, minVersion uint16) *tls.Config {
	return &tls.Config{
		GetCertificate: c.GetCertificate,
		MinVersion:     minVersion,
		CipherSuites:   CipherSuites,
	}
}
