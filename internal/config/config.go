// Package config owns dproxy's server configuration: the settings, their
// defaults, loading them from a YAML file, DPROXY_* environment variables
// and command-line flags (in that order of precedence, lowest first), and
// validating them. docs/configuration.md lists every option.
//
// It must not import cobra or any other package of this module; the command
// layer defines the flags on a *pflag.FlagSet and calls Load.
package config

import (
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Config is the server configuration. Each field's koanf tag is its key in
// the config file, its flag name (--key) and, upper-cased with "-" turned
// into "_" and prefixed with DPROXY_, its environment variable.
type Config struct {
	// Addr is the address the server listens on.
	Addr string `koanf:"addr"`
	// DataDir holds the database, the blob folder and the keys.
	DataDir string `koanf:"data-dir"`
	// ExternalURL is the URL clients reach the server at, without a trailing
	// slash; the token realm is built from it. Load derives it from Addr
	// when it is not set.
	ExternalURL string `koanf:"external-url"`
	// Upstream is the registry images are pulled from.
	Upstream string `koanf:"upstream"`
	// MirrorGroup is the group that serves plain Docker Hub paths; "" turns
	// mirror mode off.
	MirrorGroup string `koanf:"mirror-group"`
	// MirrorNS maps other registries to container virtual registries for
	// mirror requests that name them (?ns=<host>, as containerd's
	// hosts.toml and regctl's mirror send): items HOST=VIRTUAL_REGISTRY_ID.
	// In the environment the list is comma-separated; flags repeat.
	// MirrorNamespaces returns it parsed.
	MirrorNS []string `koanf:"mirror-ns"`
	// MetricsAddr, when set, is a second address that serves /metrics
	// without a token (bind it to a private interface); the main address
	// then has no /metrics. When empty, /metrics on the main address needs
	// an instance admin's token with the api scope.
	MetricsAddr string `koanf:"metrics-addr"`
	// AdminAddr, when set, is a second address that serves the admin API
	// (/api/graphql and /api/v4/) and, unless MetricsAddr is set, /metrics;
	// the main address then answers 404 for them.
	AdminAddr string `koanf:"admin-addr"`
	// TLSCert and TLSKey are PEM files; both or neither. The key file must
	// be private to its owner (mode 0600 or stricter). Both are read again
	// on SIGHUP and when either file changes.
	TLSCert string `koanf:"tls-cert"`
	TLSKey  string `koanf:"tls-key"`
	// TLSMinVersion is the oldest TLS version the server accepts: "1.2" or
	// "1.3". TLS 1.2 is offered only with the AEAD ECDHE cipher suites of
	// Mozilla's intermediate profile.
	TLSMinVersion string `koanf:"tls-min-version"`
	// TokenExpiry is the lifetime of registry tokens the server issues.
	TokenExpiry time.Duration `koanf:"token-expiry"`
	// LogFormat is "auto" (text on a terminal, JSON otherwise), "json" or "text".
	LogFormat string `koanf:"log-format"`
	// LogLevel is "debug", "info", "warn" or "error".
	LogLevel string `koanf:"log-level"`
	// SecretKey is the key that encrypts secrets at rest, 64 hex characters.
	// "" means the key file at SecretKeyPath (created on first start).
	SecretKey string `koanf:"secret-key"`
	// RevalidateTimeout bounds the upstream check of a cached tag; after it
	// the cached copy is served.
	RevalidateTimeout time.Duration `koanf:"revalidate-timeout"`
	// RateLimitReserve: when the upstream's last seen remaining pull count
	// for a credential is at or below it, a moved tag with a cached copy is
	// served from cache instead of spending a manifest GET. 0 turns it off.
	RateLimitReserve int `koanf:"ratelimit-reserve"`
	// RateLimitBackoff is how long no request goes upstream with a
	// credential after a 429 that carried no Retry-After.
	RateLimitBackoff time.Duration `koanf:"ratelimit-backoff"`
	// WarmReserve is what prewarming leaves of each credential's pulls on
	// top of RateLimitReserve: a percentage of the limit ("20%") or a
	// number of pulls ("50").
	WarmReserve string `koanf:"warm-reserve"`
	// WarmPoll bounds how long the warmer waits between looks at its
	// entries, and how often a replica without the warm lock tries to
	// take it over.
	WarmPoll time.Duration `koanf:"warm-poll"`
	// VirtualRegistriesPerGroup caps the container virtual registries of a
	// top-level group; VirtualRegistryUpstreams the upstreams of one.
	VirtualRegistriesPerGroup int `koanf:"virtual-registries-per-group"`
	VirtualRegistryUpstreams  int `koanf:"virtual-registry-upstreams"`
	// UpstreamAllowCIDR lists the ranges (CIDR or single addresses) the
	// upstream address policy lets dproxy connect to although they are
	// refused by default (loopback, link-local, private, ...), for
	// virtual-registry upstreams, redirects and token realms. In the
	// environment the list is comma-separated; flags repeat.
	UpstreamAllowCIDR []string `koanf:"upstream-allow-cidr"`
	// UpstreamConnectTimeout bounds connecting to the upstream.
	UpstreamConnectTimeout time.Duration `koanf:"upstream-connect-timeout"`
	// UpstreamResponseHeaderTimeout bounds waiting for the upstream's
	// response headers. A body has no overall timeout while bytes flow.
	UpstreamResponseHeaderTimeout time.Duration `koanf:"upstream-response-header-timeout"`
	// MaxManifestSize and MaxBlobSize are in bytes; in the file, the
	// environment and flags they may carry a unit ("10MiB", see ParseSize).
	MaxManifestSize int64 `koanf:"max-manifest-size"`
	MaxBlobSize     int64 `koanf:"max-blob-size"`
	// ShutdownTimeout is how long in-flight requests may take to finish on
	// SIGTERM; 0 stops at once.
	ShutdownTimeout time.Duration `koanf:"shutdown-timeout"`
	// TTLInterval is how often the groups' TTL policies are applied.
	TTLInterval time.Duration `koanf:"ttl-interval"`
	// GCInterval is how often blob files no group references are deleted
	// and the size cap is enforced.
	GCInterval time.Duration `koanf:"gc-interval"`
	// GCGrace is, with PostgreSQL, how long a blob file stays after it was
	// first found unreferenced before garbage collection deletes it: longer
	// than any pull another replica may be serving from it. With SQLite
	// (one process, which knows what it serves) files go at once.
	GCGrace time.Duration `koanf:"gc-grace"`
	// CacheMaxSize caps the bytes of stored blobs (a blob shared by groups
	// counted once); 0 means no cap.
	CacheMaxSize int64 `koanf:"cache-max-size"`
	// Database selects the metadata database: "" or "sqlite" is SQLite at
	// DBPath; a postgres:// URL is PostgreSQL, shared by replicas (then
	// SecretKey must be set, the same on every replica).
	Database string `koanf:"database"`
	// Storage selects the blob storage: "" is the folder at BlobDir;
	// s3://bucket[/prefix]?endpoint=…&region=…&path_style=true is an
	// S3-compatible bucket.
	Storage string `koanf:"storage"`
	// StorageRedirect answers cached blob GETs with a redirect to a
	// presigned bucket URL instead of streaming them (S3 storage only).
	StorageRedirect bool `koanf:"storage-redirect"`
	// StorageRedirectExpiry is the lifetime of the presigned URLs
	// storage-redirect hands out: bearer capabilities anyone holding the
	// URL can use. It may not exceed TokenExpiry; when no source sets it,
	// Load makes it the shorter of 5 minutes and TokenExpiry.
	StorageRedirectExpiry time.Duration `koanf:"storage-redirect-expiry"`
	// StorageRedirectAllowHTTP lets storage-redirect send clients to a
	// plain-http S3 endpoint although the server or its external URL is
	// https (refused otherwise: the presigned URLs and the blobs would
	// cross the network unencrypted).
	StorageRedirectAllowHTTP bool `koanf:"storage-redirect-allow-http"`
	// S3AccessKeyID and S3SecretAccessKey sign S3 requests. Load takes them
	// from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY when no dproxy
	// source sets them.
	S3AccessKeyID     string `koanf:"s3-access-key-id"`
	S3SecretAccessKey string `koanf:"s3-secret-access-key"`
	// PeerURL is this replica's internal base URL (http://10.0.0.5:5000),
	// where the other replicas sharing the PostgreSQL database stream a
	// blob from it while it downloads the blob from the upstream. "": they
	// wait for the stored blob instead.
	PeerURL string `koanf:"peer-url"`
	// FetchLeaseTimeout is, with PostgreSQL, how long a replica's claim on
	// fetching a blob from the upstream lasts without renewal: when the
	// replica dies, another takes the download over after it.
	FetchLeaseTimeout time.Duration `koanf:"fetch-lease-timeout"`
	// TrustedProxies lists, comma-separated, the reverse proxies (CIDRs or
	// addresses) whose X-Forwarded-For header names the client, for
	// sign-in throttling. "" trusts none: the peer is the client.
	TrustedProxies string `koanf:"trusted-proxies"`
}

// Default returns the built-in configuration.
func Default() Config {
	return Config{
		Addr:                          ":5000",
		DataDir:                       "./dproxy-data",
		ExternalURL:                   "http://127.0.0.1:5000",
		Upstream:                      "https://registry-1.docker.io",
		TokenExpiry:                   15 * time.Minute,
		TLSMinVersion:                 "1.2",
		StorageRedirectExpiry:         DefaultStorageRedirectExpiry,
		LogFormat:                     "auto",
		LogLevel:                      "info",
		RevalidateTimeout:             5 * time.Second,
		RateLimitReserve:              10,
		RateLimitBackoff:              time.Minute,
		WarmReserve:                   "20%",
		WarmPoll:                      30 * time.Second,
		VirtualRegistriesPerGroup:     5,
		VirtualRegistryUpstreams:      5,
		UpstreamConnectTimeout:        10 * time.Second,
		UpstreamResponseHeaderTimeout: 30 * time.Second,
		MaxManifestSize:               10 << 20,
		MaxBlobSize:                   50 << 30,
		ShutdownTimeout:               30 * time.Second,
		TTLInterval:                   24 * time.Hour,
		GCInterval:                    time.Hour,
		GCGrace:                       time.Hour,
		FetchLeaseTimeout:             30 * time.Second,
	}
}

// DefaultStorageRedirectExpiry is the presigned URL lifetime when no
// source sets storage-redirect-expiry (unless token-expiry is shorter).
const DefaultStorageRedirectExpiry = 5 * time.Minute

// maxPresignExpiry is the longest lifetime S3 accepts for a presigned URL.
const maxPresignExpiry = 7 * 24 * time.Hour

// warmReservePattern matches a warm reserve: 0% to 100%, or a number.
var warmReservePattern = regexp.MustCompile(`^(100%|[0-9]{1,2}%|[0-9]{1,9})$`)

// SharedDatabase reports whether the database is PostgreSQL, which several
// replicas may share.
func (c Config) SharedDatabase() bool {
	return strings.HasPrefix(c.Database, "postgres://") || strings.HasPrefix(c.Database, "postgresql://")
}

// DBPath is the SQLite database file.
func (c Config) DBPath() string { return filepath.Join(c.DataDir, "dproxy.db") }

// BlobDir is the blob folder.
func (c Config) BlobDir() string { return filepath.Join(c.DataDir, "blobs") }

// SecretKeyPath is the file holding the secrets key when SecretKey is "".
func (c Config) SecretKeyPath() string { return filepath.Join(c.DataDir, "secret.key") }

// JWTKeyPath is the file holding the key that signs registry tokens.
func (c Config) JWTKeyPath() string { return filepath.Join(c.DataDir, "jwt.pem") }

// PreviousJWTKeysPath is the file holding retired JWT keys, whose tokens
// verify until they expire (`dproxy keys rotate-jwt`).
func (c Config) PreviousJWTKeysPath() string { return filepath.Join(c.DataDir, "jwt-previous.pem") }

// InitialTokenPath is the file the first admin token is written to.
func (c Config) InitialTokenPath() string { return filepath.Join(c.DataDir, "initial_admin_token") }

// EnvVar returns the environment variable that sets key, e.g.
// "DPROXY_DATA_DIR" for "data-dir".
func EnvVar(key string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(key, "-", "_"))
}

// Keys returns every configuration key in the order of Config's fields.
func Keys() []string {
	fs := fields()
	keys := make([]string, len(fs))
	for i, f := range fs {
		keys[i] = f.key
	}
	return keys
}

// LogValue renders the configuration for a log line with the secret key
// redacted.
func (c Config) LogValue() slog.Value {
	v := reflect.ValueOf(c)
	var attrs []slog.Attr
	for _, f := range fields() {
		val := v.Field(f.index).Interface()
		switch {
		case f.key == "secret-key" && c.SecretKey != "", f.key == "s3-secret-access-key" && c.S3SecretAccessKey != "":
			val = "[redacted]"
		case f.key == "database":
			val = redactURL(c.Database)
		}
		attrs = append(attrs, slog.Any(f.key, val))
	}
	return slog.GroupValue(attrs...)
}

// Validate reports every invalid setting, one per line.
func (c Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if c.MetricsAddr != "" {
		if err := checkAddr(c.MetricsAddr); err != nil {
			add("metrics-addr %q: %w", c.MetricsAddr, err)
		}
	}
	addrErr := checkAddr(c.Addr)
	if addrErr != nil {
		add("addr %q: %w", c.Addr, addrErr)
	}
	if c.AdminAddr != "" {
		if err := checkAddr(c.AdminAddr); err != nil {
			add("admin-addr %q: %w", c.AdminAddr, err)
		} else if c.AdminAddr == c.Addr || c.AdminAddr == c.MetricsAddr {
			add("admin-addr %q: the same address as addr or metrics-addr; give the admin API an address of its own, or leave admin-addr unset to serve it on addr", c.AdminAddr)
		}
	}
	if c.DataDir == "" {
		add("data-dir must be set")
	}
	// An empty external-url next to a bad addr is the failed derivation:
	// the addr message says what to fix.
	if err := checkHTTPURL(c.ExternalURL); err != nil && (c.ExternalURL != "" || addrErr == nil) {
		add("external-url %q: %w; it is the URL clients reach this server at", c.ExternalURL, err)
	}
	if err := checkHTTPURL(c.Upstream); err != nil {
		add("upstream %q: %w", c.Upstream, err)
	}
	for _, cidr := range c.UpstreamAllowCIDR {
		if !validCIDR(cidr) {
			add("upstream-allow-cidr %q: want a CIDR range such as 10.1.0.0/16 or fd00::/8, or one IP address", cidr)
		}
	}
	if g := c.MirrorGroup; g != "" && (strings.HasPrefix(g, "/") || strings.HasSuffix(g, "/") ||
		strings.Contains(g, "//") || strings.ContainsAny(g, " \t\r\n")) {
		add("mirror-group %q: want a group path such as acme or acme/team, without leading or trailing slashes or spaces", g)
	}
	if _, err := parseMirrorNS(c.MirrorNS); err != nil {
		errs = append(errs, err)
	}
	if c.PeerURL != "" {
		u, err := url.Parse(c.PeerURL)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil:
			add("peer-url %q: want this replica's internal base URL, such as http://10.0.0.5:5000", c.PeerURL)
		case !c.SharedDatabase():
			add("peer-url is for replicas sharing a PostgreSQL database (database postgres://…); with SQLite there are no peers")
		}
	}
	switch {
	case c.TLSCert != "" && c.TLSKey == "":
		add("tls-cert is set but tls-key is not: set both or neither")
	case c.TLSCert == "" && c.TLSKey != "":
		add("tls-key is set but tls-cert is not: set both or neither")
	}
	if _, err := ParseTLSVersion(c.TLSMinVersion); err != nil {
		add("tls-min-version: %w", err)
	}
	if c.TLSCert != "" && strings.HasPrefix(strings.ToLower(c.ExternalURL), "http://") {
		add("external-url %q is http:// but the server serves TLS (tls-cert): clients would be sent to a plain-http token realm; make external-url https://", c.ExternalURL)
	}
	for _, d := range []struct {
		key    string
		v      time.Duration
		zeroOK bool
	}{
		{"token-expiry", c.TokenExpiry, false},
		{"revalidate-timeout", c.RevalidateTimeout, false},
		{"ratelimit-backoff", c.RateLimitBackoff, false},
		{"upstream-connect-timeout", c.UpstreamConnectTimeout, false},
		{"upstream-response-header-timeout", c.UpstreamResponseHeaderTimeout, false},
		{"shutdown-timeout", c.ShutdownTimeout, true},
		{"ttl-interval", c.TTLInterval, false},
		{"gc-interval", c.GCInterval, false},
		{"warm-poll", c.WarmPoll, false},
		{"gc-grace", c.GCGrace, true},
		{"fetch-lease-timeout", c.FetchLeaseTimeout, false},
	} {
		switch {
		case d.v < 0:
			add("%s must not be negative, got %s", d.key, d.v)
		case d.v == 0 && !d.zeroOK:
			add("%s must be positive, got 0", d.key)
		}
	}
	for _, l := range []struct {
		key string
		v   int
	}{{"virtual-registries-per-group", c.VirtualRegistriesPerGroup}, {"virtual-registry-upstreams", c.VirtualRegistryUpstreams}} {
		if l.v < 1 || l.v > 100 {
			add("%s must be between 1 and 100, got %d", l.key, l.v)
		}
	}
	if c.RateLimitReserve < 0 {
		add("ratelimit-reserve must not be negative, got %d (0 turns the reserve off)", c.RateLimitReserve)
	}
	if !warmReservePattern.MatchString(c.WarmReserve) {
		add("warm-reserve %q: want a percentage of the limit from 0%% to 100%% (20%%) or a number of pulls (50)", c.WarmReserve)
	}
	if !oneOf(c.LogFormat, "auto", "json", "text") {
		add("log-format %q: want auto, json or text", c.LogFormat)
	}
	if !oneOf(c.LogLevel, "debug", "info", "warn", "error") {
		add("log-level %q: want debug, info, warn or error", c.LogLevel)
	}
	if c.SecretKey != "" {
		if k, err := hex.DecodeString(strings.TrimSpace(c.SecretKey)); err != nil || len(k) != 32 {
			// Never quote the value: it is a secret.
			add("secret-key must be 64 hex characters (32 bytes), e.g. from: openssl rand -hex 32")
		}
	}
	for _, s := range []struct {
		key string
		v   int64
	}{
		{"max-manifest-size", c.MaxManifestSize},
		{"max-blob-size", c.MaxBlobSize},
	} {
		if s.v <= 0 {
			add("%s must be positive, got %d", s.key, s.v)
		}
	}
	if c.CacheMaxSize < 0 {
		add("cache-max-size must not be negative, got %d; 0 means no cap", c.CacheMaxSize)
	}
	switch {
	case c.Database == "" || c.Database == "sqlite":
	case strings.HasPrefix(c.Database, "postgres://") || strings.HasPrefix(c.Database, "postgresql://"):
		if u, err := url.Parse(c.Database); err != nil || u.Host == "" {
			add("database: not a valid postgres://user:password@host:port/dbname URL")
		} else if c.SecretKey == "" {
			add("database %q is PostgreSQL, shared by replicas: set secret-key (DPROXY_SECRET_KEY) to the same 64-hex key on every replica (openssl rand -hex 32); a key file in one replica's data-dir cannot be shared", redactURL(c.Database))
		}
	default:
		add("database %q: want sqlite (the default) or a postgres:// URL", redactURL(c.Database))
	}
	if c.Storage != "" {
		if u, err := url.Parse(c.Storage); err != nil || u.Scheme != "s3" || u.Host == "" {
			add("storage %q: want empty (the blob folder) or s3://bucket[/prefix]?endpoint=…&region=…&path_style=true", redactURL(c.Storage))
		} else if u.User != nil {
			add("storage: credentials do not go in the URL; set s3-access-key-id and s3-secret-access-key, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
		}
	}
	if c.StorageRedirect && c.Storage == "" {
		add("storage-redirect needs S3 storage: the blob folder is only reachable through dproxy")
	}
	switch e := c.StorageRedirectExpiry; {
	case e <= 0:
		add("storage-redirect-expiry must be positive, got %s; it is the lifetime of presigned blob URLs (default %s)", e, DefaultStorageRedirectExpiry)
	case e > maxPresignExpiry:
		add("storage-redirect-expiry %s is longer than S3 allows for a presigned URL (%s)", e, maxPresignExpiry)
	case c.TokenExpiry > 0 && e > c.TokenExpiry:
		add("storage-redirect-expiry %s is longer than token-expiry %s: a presigned blob URL must not outlive the token that obtained it; lower storage-redirect-expiry", e, c.TokenExpiry)
	}
	if c.StorageRedirect && !c.StorageRedirectAllowHTTP && plainHTTPEndpoint(c.Storage) &&
		(c.TLSCert != "" || strings.HasPrefix(strings.ToLower(c.ExternalURL), "https://")) {
		add("storage-redirect with an http:// S3 endpoint behind an https server: clients would fetch blobs and presigned URLs over plain HTTP; use an https endpoint, or set storage-redirect-allow-http if that network is trusted")
	}
	if (c.S3AccessKeyID == "") != (c.S3SecretAccessKey == "") {
		add("s3-access-key-id and s3-secret-access-key: set both or neither")
	}
	if _, err := parseProxies(c.TrustedProxies); err != nil {
		add("trusted-proxies: %w", err)
	}
	return errors.Join(errs...)
}

// ParseTLSVersion reads a tls-min-version value: "1.2" or "1.3".
func ParseTLSVersion(v string) (uint16, error) {
	switch strings.TrimSpace(v) {
	case "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("%q: want 1.2 or 1.3 (older versions are not safe to offer)", v)
}

// plainHTTPEndpoint reports whether an s3:// storage URL names an http://
// endpoint; a bare host:port, and AWS, are https.
func plainHTTPEndpoint(storage string) bool {
	u, err := url.Parse(storage)
	if err != nil {
		return false
	}
	return strings.HasPrefix(strings.ToLower(u.Query().Get("endpoint")), "http://")
}

// MirrorNamespaces returns MirrorNS as host (lower case) → virtual
// registry id. A configuration that passed Validate parses.
func (c Config) MirrorNamespaces() map[string]int64 {
	m, _ := parseMirrorNS(c.MirrorNS)
	return m
}

// dockerHubHosts are the names under which mirror requests ask for Docker
// Hub; the mirror group serves them, so mirror-ns cannot map them.
var dockerHubHosts = []string{"docker.io", "registry-1.docker.io", "index.docker.io"}

// registryHost is a registry's host as in image references: DNS labels
// (or an IPv4 address), optionally with a port.
var registryHost = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:[0-9]{1,5})?$`)

// parseMirrorNS reads mirror-ns items HOST=VIRTUAL_REGISTRY_ID, one error
// line per bad item.
func parseMirrorNS(items []string) (map[string]int64, error) {
	m := make(map[string]int64, len(items))
	var errs []error
	for _, item := range items {
		bad := func(why string) {
			errs = append(errs, fmt.Errorf("mirror-ns %q: %s", item, why))
		}
		host, id, ok := strings.Cut(item, "=")
		host = strings.ToLower(strings.TrimSpace(host))
		id = strings.TrimSpace(id)
		switch {
		case !ok || host == "" || id == "":
			bad("want HOST=VIRTUAL_REGISTRY_ID, such as quay.io=2")
			continue
		case !registryHost.MatchString(host):
			bad(fmt.Sprintf("%q is not a registry host: write it as in image references, such as quay.io or registry.example.com:5000, without a scheme or path", host))
			continue
		case slices.Contains(dockerHubHosts, host):
			bad(fmt.Sprintf("%s is Docker Hub, which the mirror-group serves; mirror-ns maps other registries", host))
			continue
		}
		if _, port, hasPort := strings.Cut(host, ":"); hasPort {
			if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				bad(fmt.Sprintf("port %s is not a number from 1 to 65535", port))
				continue
			}
		}
		n, err := strconv.ParseInt(id, 10, 64)
		if err != nil || n < 1 {
			bad(fmt.Sprintf("%q is not a virtual registry id: want its number, as `dproxy virtual-registry list` shows", id))
			continue
		}
		if prev, dup := m[host]; dup {
			bad(fmt.Sprintf("%s is already mapped to virtual registry %d; map each host once", host, prev))
			continue
		}
		m[host] = n
	}
	return m, errors.Join(errs...)
}

// TrustedProxyPrefixes returns TrustedProxies as prefixes (an address is
// its own /32 or /128). A configuration that passed Validate parses.
func (c Config) TrustedProxyPrefixes() []netip.Prefix {
	p, _ := parseProxies(c.TrustedProxies)
	return p
}

func parseProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if p, err := netip.ParsePrefix(item); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(item)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an address nor a CIDR such as 10.0.0.0/8; list the reverse proxies in front of dproxy, comma-separated", item)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

func oneOf(s string, allowed ...string) bool {
	for _, a := range allowed {
		if strings.EqualFold(s, a) {
			return true
		}
	}
	return false
}

// validCIDR reports whether s is a CIDR range or an IP address without a
// zone (the policy's ParsePrefix reads it the same way).
func validCIDR(s string) bool {
	if _, err := netip.ParsePrefix(s); err == nil {
		return true
	}
	a, err := netip.ParseAddr(s)
	return err == nil && a.Zone() == ""
}

func checkAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New(`want host:port or :port, e.g. ":5000" or "127.0.0.1:5000"`)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	return nil
}

func checkHTTPURL(s string) error {
	if s == "" {
		return errors.New("must be set")
	}
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a URL")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return errors.New("want an absolute http:// or https:// URL")
	case u.Host == "" || u.Hostname() == "":
		return errors.New("the URL has no host")
	case u.User != nil:
		return errors.New("the URL must not carry credentials")
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return errors.New("the URL must not have a query or fragment")
	}
	return nil
}

// redactURL hides a password in a connection URL quoted in an error or a
// log line, in the user info or a password= parameter.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		if strings.Contains(s, "@") || strings.Contains(s, "password") {
			return "[unparsable URL]"
		}
		return s
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// deriveExternalURL turns a listen address into the URL a client on this
// machine reaches it at: an empty or unspecified host becomes 127.0.0.1.
func deriveExternalURL(addr string, tls bool) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	scheme := "http"
	if tls {
		scheme = "https"
	}
	return (&url.URL{Scheme: scheme, Host: net.JoinHostPort(host, port)}).String()
}
