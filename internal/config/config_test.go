package config

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// newFlags defines flags the way the command layer does (names equal to
// keys, typed durations, sizes as strings, plus --config) and parses args.
func newFlags(t *testing.T, args ...string) *pflag.FlagSet {
	t.Helper()
	def := Default()
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	fs.String("config", "", "")
	v := reflect.ValueOf(def)
	for _, f := range fields() {
		switch f.kind {
		case kindString:
			fs.String(f.key, v.Field(f.index).String(), "")
		case kindDuration:
			fs.Duration(f.key, time.Duration(v.Field(f.index).Int()), "")
		case kindSize:
			fs.String(f.key, "", "")
		case kindList:
			fs.StringSlice(f.key, nil, "")
		}
	}
	fs.Int64("max-size-as-int", 0, "") // not a key: ignored
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse flags %v: %v", args, err)
	}
	return fs
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "dproxy.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefault(t *testing.T) {
	t.Parallel()
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	want := Config{
		Addr: ":5000", DataDir: "./dproxy-data", ExternalURL: "http://127.0.0.1:5000",
		Upstream: "https://registry-1.docker.io", TokenExpiry: 15 * time.Minute,
		LogFormat: "auto", LogLevel: "info", RevalidateTimeout: 5 * time.Second, RateLimitReserve: 10, RateLimitBackoff: time.Minute, WarmReserve: "20%", WarmPoll: 30 * time.Second, VirtualRegistriesPerGroup: 5, VirtualRegistryUpstreams: 5,
		UpstreamConnectTimeout: 10 * time.Second, UpstreamResponseHeaderTimeout: 30 * time.Second,
		MaxManifestSize: 10 << 20, MaxBlobSize: 50 << 30, ShutdownTimeout: 30 * time.Second,
		TTLInterval: 24 * time.Hour, GCInterval: time.Hour, GCGrace: time.Hour,
		FetchLeaseTimeout: 30 * time.Second,
		TLSMinVersion:     "1.2", StorageRedirectExpiry: 5 * time.Minute,
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Default() = %+v\nwant %+v", c, want)
	}
	c.DataDir = "/var/lib/dproxy"
	for got, want := range map[string]string{
		c.DBPath():           "/var/lib/dproxy/dproxy.db",
		c.BlobDir():          "/var/lib/dproxy/blobs",
		c.SecretKeyPath():    "/var/lib/dproxy/secret.key",
		c.JWTKeyPath():       "/var/lib/dproxy/jwt.pem",
		c.InitialTokenPath(): "/var/lib/dproxy/initial_admin_token",
	} {
		if got != want {
			t.Errorf("path %s, want %s", got, want)
		}
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		file  string // YAML; "" means no config file
		env   []string
		flags []string
		check func(t *testing.T, c Config)
	}{
		{
			name: "defaults",
			check: func(t *testing.T, c Config) {
				if !reflect.DeepEqual(c, Default()) {
					t.Errorf("Load with no sources = %+v, want Default()", c)
				}
			},
		},
		{
			name: "file overrides defaults",
			file: "addr: 127.0.0.1:6000\nupstream: http://127.0.0.1:5001\ntoken-expiry: 1h\n" +
				"max-blob-size: 1GiB\nmax-manifest-size: 2048\nmirror-group: acme/team\nshutdown-timeout: 0\n",
			check: func(t *testing.T, c Config) {
				want := Default()
				want.Addr = "127.0.0.1:6000"
				want.ExternalURL = "http://127.0.0.1:6000"
				want.Upstream = "http://127.0.0.1:5001"
				want.TokenExpiry = time.Hour
				want.MaxBlobSize = 1 << 30
				want.MaxManifestSize = 2048
				want.MirrorGroup = "acme/team"
				want.ShutdownTimeout = 0
				if !reflect.DeepEqual(c, want) {
					t.Errorf("got  %+v\nwant %+v", c, want)
				}
			},
		},
		{
			name: "env overrides file",
			file: "addr: :6000\nlog-level: warn\n",
			env:  []string{"DPROXY_ADDR=:7000", "DPROXY_MAX_MANIFEST_SIZE=1MiB", "DPROXY_REVALIDATE_TIMEOUT=2s", "DPROXY_CACHE_MAX_SIZE=200GiB", "DPROXY_TTL_INTERVAL=6h"},
			check: func(t *testing.T, c Config) {
				if c.CacheMaxSize != 200<<30 || c.TTLInterval != 6*time.Hour {
					t.Errorf("cache-max-size %d ttl-interval %s; want 200GiB 6h", c.CacheMaxSize, c.TTLInterval)
				}
				if c.Addr != ":7000" || c.LogLevel != "warn" || c.MaxManifestSize != 1<<20 || c.RevalidateTimeout != 2*time.Second {
					t.Errorf("addr %q log-level %q max-manifest-size %d revalidate-timeout %s; want :7000 warn 1048576 2s",
						c.Addr, c.LogLevel, c.MaxManifestSize, c.RevalidateTimeout)
				}
			},
		},
		{
			name:  "flags override env",
			file:  "addr: :6000\n",
			env:   []string{"DPROXY_ADDR=:7000", "DPROXY_TOKEN_EXPIRY=1h", "DPROXY_DATA_DIR=/env"},
			flags: []string{"--addr", ":8000", "--token-expiry", "2m", "--max-blob-size", "3GB"},
			check: func(t *testing.T, c Config) {
				if c.Addr != ":8000" || c.TokenExpiry != 2*time.Minute || c.MaxBlobSize != 3e9 || c.DataDir != "/env" {
					t.Errorf("addr %q token-expiry %s max-blob-size %d data-dir %q; want :8000 2m0s 3000000000 /env",
						c.Addr, c.TokenExpiry, c.MaxBlobSize, c.DataDir)
				}
			},
		},
		{
			name:  "flags left at their defaults do not override",
			file:  "upstream: http://file.example\ntoken-expiry: 1h\n",
			env:   []string{"DPROXY_DATA_DIR=/env"},
			flags: []string{"--config", "ignored.yaml"},
			check: func(t *testing.T, c Config) {
				if c.Upstream != "http://file.example" || c.TokenExpiry != time.Hour || c.DataDir != "/env" {
					t.Errorf("upstream %q token-expiry %s data-dir %q; want the file's and env's values", c.Upstream, c.TokenExpiry, c.DataDir)
				}
			},
		},
		{
			name: "empty, unknown and unprefixed env vars are ignored",
			env: []string{"DPROXY_ADDR=", "DPROXY_SERVER=http://x", "DPROXY_TOKEN=t", "ADDR=:1",
				"DPROXY_TEST_PG=postgres://x", "NOEQUALS"},
			check: func(t *testing.T, c Config) {
				if !reflect.DeepEqual(c, Default()) {
					t.Errorf("got %+v, want Default()", c)
				}
			},
		},
		{
			name: "external-url derived from addr",
			env:  []string{"DPROXY_ADDR=0.0.0.0:6001"},
			check: func(t *testing.T, c Config) {
				if c.ExternalURL != "http://127.0.0.1:6001" {
					t.Errorf("external-url %q, want http://127.0.0.1:6001", c.ExternalURL)
				}
			},
		},
		{
			name: "external-url derived from a named host",
			env:  []string{"DPROXY_ADDR=localhost:7000"},
			check: func(t *testing.T, c Config) {
				if c.ExternalURL != "http://localhost:7000" {
					t.Errorf("external-url %q, want http://localhost:7000", c.ExternalURL)
				}
			},
		},
		{
			name: "external-url derived from IPv6 addresses",
			file: "addr: '[::1]:5000'\n",
			check: func(t *testing.T, c Config) {
				if c.ExternalURL != "http://[::1]:5000" {
					t.Errorf("external-url %q, want http://[::1]:5000", c.ExternalURL)
				}
			},
		},
		{
			name:  "external-url derived with TLS",
			flags: []string{"--addr", "[::]:8443", "--tls-cert", "c.pem", "--tls-key", "k.pem"},
			check: func(t *testing.T, c Config) {
				if c.ExternalURL != "https://127.0.0.1:8443" {
					t.Errorf("external-url %q, want https://127.0.0.1:8443", c.ExternalURL)
				}
			},
		},
		{
			name:  "explicit external-url kept without trailing slash",
			env:   []string{"DPROXY_EXTERNAL_URL=https://dproxy.example.com/"},
			flags: []string{"--addr", ":9000"},
			check: func(t *testing.T, c Config) {
				if c.ExternalURL != "https://dproxy.example.com" {
					t.Errorf("external-url %q, want https://dproxy.example.com", c.ExternalURL)
				}
			},
		},
		{
			name: "null YAML values keep the default; case is normalised",
			file: "tls-cert:\ntoken-expiry:\nlog-level: DEBUG\nlog-format: JSON\n",
			check: func(t *testing.T, c Config) {
				if c.TokenExpiry != 15*time.Minute || c.LogLevel != "debug" || c.LogFormat != "json" {
					t.Errorf("token-expiry %s log-level %q log-format %q; want 15m0s debug json", c.TokenExpiry, c.LogLevel, c.LogFormat)
				}
			},
		},
		{
			name: "secret key from env",
			env:  []string{"DPROXY_SECRET_KEY=" + strings.Repeat("ab", 32)},
			check: func(t *testing.T, c Config) {
				if c.SecretKey != strings.Repeat("ab", 32) {
					t.Errorf("secret-key %q, want the env value", c.SecretKey)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			file := ""
			if tc.file != "" {
				file = writeFile(t, tc.file)
			}
			c, err := Load(file, newFlags(t, tc.flags...), tc.env)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			tc.check(t, c)
		})
	}
}

// TestLoadUpstreamAllowCIDR: a list in the file, comma-separated in the
// environment, a repeatable flag; each layer replaces the one below.
func TestLoadUpstreamAllowCIDR(t *testing.T) {
	t.Parallel()
	file := writeFile(t, "upstream-allow-cidr:\n  - 10.0.0.0/8\n  - fd00::/8\n")
	for _, tc := range []struct {
		name  string
		file  string
		env   []string
		flags []string
		want  []string
	}{
		{name: "default", want: nil},
		{name: "file", file: file, want: []string{"10.0.0.0/8", "fd00::/8"}},
		{name: "env replaces file", file: file, env: []string{"DPROXY_UPSTREAM_ALLOW_CIDR=127.0.0.2/32, 192.168.0.0/16"}, want: []string{"127.0.0.2/32", "192.168.0.0/16"}},
		{name: "flags replace env", file: file, env: []string{"DPROXY_UPSTREAM_ALLOW_CIDR=127.0.0.2/32"},
			flags: []string{"--upstream-allow-cidr", "127.0.0.3/32", "--upstream-allow-cidr=10.1.0.0/16,10.2.0.0/16"},
			want:  []string{"127.0.0.3/32", "10.1.0.0/16", "10.2.0.0/16"}},
	} {
		c, err := Load(tc.file, newFlags(t, tc.flags...), tc.env)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !reflect.DeepEqual(c.UpstreamAllowCIDR, tc.want) {
			t.Errorf("%s: upstream-allow-cidr %q, want %q", tc.name, c.UpstreamAllowCIDR, tc.want)
		}
	}
	for _, tc := range []struct {
		file string
		env  []string
		want string
	}{
		{file: "upstream-allow-cidr: 10.0.0.0/8\n", want: ""}, // one string is a one-item list
		{file: "upstream-allow-cidr:\n  - 10.0.0.0/8\n  - 5\n", want: `key "upstream-allow-cidr": want a list of strings, got the item 5`},
		{file: "upstream-allow-cidr:\n  a: b\n", want: `key "upstream-allow-cidr.a": unknown key`},
		{env: []string{"DPROXY_UPSTREAM_ALLOW_CIDR=10.0.0.0/8,private"}, want: `upstream-allow-cidr "private": want a CIDR range`},
	} {
		f := ""
		if tc.file != "" {
			f = writeFile(t, tc.file)
		}
		_, err := Load(f, nil, tc.env)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("Load(%q, %q) = %v, want %q", tc.file, tc.env, err, tc.want)
		}
	}
}

// TestLoadMirrorNS: mirror-ns is a list of HOST=VIRTUAL_REGISTRY_ID in the
// file, comma-separated in the environment and a repeatable flag; each
// layer replaces the one below, and MirrorNamespaces parses it.
func TestLoadMirrorNS(t *testing.T) {
	t.Parallel()
	file := writeFile(t, "mirror-ns:\n  - quay.io=2\n  - ghcr.io=3\n")
	for _, tc := range []struct {
		name  string
		file  string
		env   []string
		flags []string
		want  map[string]int64
	}{
		{name: "default", want: map[string]int64{}},
		{name: "file", file: file, want: map[string]int64{"quay.io": 2, "ghcr.io": 3}},
		{name: "env replaces file", file: file, env: []string{"DPROXY_MIRROR_NS=registry.example.com:5000=7, Quay.IO=4"},
			want: map[string]int64{"registry.example.com:5000": 7, "quay.io": 4}},
		{name: "flags replace env", file: file, env: []string{"DPROXY_MIRROR_NS=quay.io=4"},
			flags: []string{"--mirror-ns", "gcr.io=5", "--mirror-ns=10.1.2.3:5000=6,ghcr.io=8"},
			want:  map[string]int64{"gcr.io": 5, "10.1.2.3:5000": 6, "ghcr.io": 8}},
	} {
		c, err := Load(tc.file, newFlags(t, tc.flags...), tc.env)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := c.MirrorNamespaces(); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: mirror namespaces %v, want %v", tc.name, got, tc.want)
		}
	}
	for _, tc := range []struct {
		item string
		want string
	}{
		{"quay.io", "want HOST=VIRTUAL_REGISTRY_ID"},
		{"=2", "want HOST=VIRTUAL_REGISTRY_ID"},
		{"quay.io=", "want HOST=VIRTUAL_REGISTRY_ID"},
		{"https://quay.io=2", "is not a registry host"},
		{"quay.io/org=2", "is not a registry host"},
		{"quay.io;x=2", "is not a registry host"},
		{"-quay.io=2", "is not a registry host"},
		{"quay.io:0=2", "port 0 is not a number from 1 to 65535"},
		{"quay.io:99999=2", "port 99999 is not a number from 1 to 65535"},
		{"quay.io=two", `"two" is not a virtual registry id`},
		{"quay.io=0", `"0" is not a virtual registry id`},
		{"quay.io=-1", `"-1" is not a virtual registry id`},
		{"docker.io=2", "docker.io is Docker Hub, which the mirror-group serves"},
		{"Registry-1.Docker.IO=2", "registry-1.docker.io is Docker Hub"},
		{"index.docker.io=2", "index.docker.io is Docker Hub"},
	} {
		_, err := Load("", newFlags(t, "--mirror-ns", tc.item), nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), fmt.Sprintf("mirror-ns %q", tc.item)) {
			t.Errorf("--mirror-ns %s: %v, want an error naming the item and saying %q", tc.item, err, tc.want)
		}
	}
	// Every bad item is reported, and a host is mapped once.
	_, err := Load("", nil, []string{"DPROXY_MIRROR_NS=quay.io=2,x=y,QUAY.IO=3"})
	if err == nil || !strings.Contains(err.Error(), `"y" is not a virtual registry id`) ||
		!strings.Contains(err.Error(), "quay.io is already mapped to virtual registry 2") {
		t.Errorf("two bad items: %v, want both reported", err)
	}
}

func TestLoadNilFlags(t *testing.T) {
	t.Parallel()
	c, err := Load("", nil, []string{"DPROXY_ADDR=:5001"})
	if err != nil || c.Addr != ":5001" {
		t.Errorf("Load without flags = %q, %v; want :5001, nil", c.Addr, err)
	}
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		file    string
		noFile  bool // point at a file that does not exist
		env     []string
		flags   []string
		want    []string
		notWant string
	}{
		{name: "unknown file key", file: "addr: :5000\nbogus: 1\n", want: []string{"config file", `key "bogus"`, "unknown key"}},
		{name: "misspelt file key", file: "data_dir: /x\n", want: []string{`key "data_dir"`, `did you mean "data-dir"`}},
		{name: "nested unknown key", file: "upstream2:\n  url: x\n", want: []string{`key "upstream2.url"`, "unknown key"}},
		{name: "value of the wrong shape", file: "addr: [a, b]\n", want: []string{`key "addr"`, "want a string"}},
		{name: "bad duration in file", file: "token-expiry: soon\n", want: []string{`key "token-expiry"`, `invalid duration "soon"`}},
		{name: "duration without unit", file: "revalidate-timeout: 10\n", want: []string{`key "revalidate-timeout"`, "has no unit"}},
		{name: "reserve not a number", file: "ratelimit-reserve: ten\n", want: []string{`key "ratelimit-reserve"`, "want a whole number"}},
		{name: "bad size in file", file: "max-blob-size: 1.5KiBs\n", want: []string{`key "max-blob-size"`, "unknown unit"}},
		{name: "fractional size in file", file: "max-manifest-size: 1.5\n", want: []string{`key "max-manifest-size"`, "whole number"}},
		{name: "bad size in env", env: []string{"DPROXY_MAX_BLOB_SIZE=lots"}, want: []string{"environment variable DPROXY_MAX_BLOB_SIZE", `invalid size "lots"`}},
		{name: "bad duration in env", env: []string{"DPROXY_SHUTDOWN_TIMEOUT=forever"}, want: []string{"environment variable DPROXY_SHUTDOWN_TIMEOUT", "invalid duration"}},
		{name: "bad size flag", flags: []string{"--max-manifest-size", "big"}, want: []string{"flag --max-manifest-size", `invalid size "big"`}},
		{name: "missing file", noFile: true, want: []string{"read config file", "no such file"}},
		{name: "malformed YAML", file: "addr: [\n", want: []string{"read config file"}},
		{name: "invalid after merge", env: []string{"DPROXY_LOG_LEVEL=loud"}, want: []string{"invalid configuration", `log-level "loud"`}},
		{name: "bad addr without derived noise", env: []string{"DPROXY_ADDR=nope"}, want: []string{`addr "nope": want host:port`}, notWant: "external-url"},
		{name: "flag makes it invalid", file: "tls-cert: c.pem\ntls-key: k.pem\n", flags: []string{"--tls-key", ""}, want: []string{"tls-cert is set but tls-key is not"}},
		{
			name:    "secret key never quoted",
			env:     []string{"DPROXY_SECRET_KEY=hunter2-very-secret"},
			want:    []string{"secret-key must be 64 hex characters"},
			notWant: "hunter2",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			file := ""
			switch {
			case tc.noFile:
				file = filepath.Join(t.TempDir(), "missing.yaml")
			case tc.file != "":
				file = writeFile(t, tc.file)
			}
			c, err := Load(file, newFlags(t, tc.flags...), tc.env)
			if err == nil {
				t.Fatalf("Load = %+v, nil; want an error containing %q", c, tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if file != "" && strings.Contains(tc.want[0], "config file") && !strings.Contains(err.Error(), file) {
				t.Errorf("error %q does not name the file %s", err, file)
			}
			if tc.notWant != "" && strings.Contains(err.Error(), tc.notWant) {
				t.Errorf("error %q contains %q", err, tc.notWant)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(*Config)
		want   string // "" means valid
	}{
		{"default", func(*Config) {}, ""},
		{"addr without port", func(c *Config) { c.Addr = "localhost" }, `addr "localhost": want host:port`},
		{"addr with bad port", func(c *Config) { c.Addr = ":http" }, `addr ":http": port "http" is not a number`},
		{"addr port too large", func(c *Config) { c.Addr = ":70000" }, `port "70000"`},
		{"addr port 0", func(c *Config) { c.Addr = "127.0.0.1:0" }, ""},
		{"empty data dir", func(c *Config) { c.DataDir = "" }, "data-dir must be set"},
		{"external-url not http", func(c *Config) { c.ExternalURL = "ftp://x" }, `external-url "ftp://x": want an absolute http:// or https:// URL`},
		{"external-url relative", func(c *Config) { c.ExternalURL = "dproxy.example.com" }, `external-url "dproxy.example.com": want an absolute`},
		{"external-url empty", func(c *Config) { c.ExternalURL = "" }, `external-url "": must be set`},
		{"external-url without host", func(c *Config) { c.ExternalURL = "https://:5000" }, "has no host"},
		{"external-url with query", func(c *Config) { c.ExternalURL = "https://x?a=b" }, "query or fragment"},
		{"external-url with credentials", func(c *Config) { c.ExternalURL = "https://u:p@x" }, "credentials"},
		{"external-url with path", func(c *Config) { c.ExternalURL = "https://x.example/dproxy" }, ""},
		{"upstream not a URL", func(c *Config) { c.Upstream = "registry-1.docker.io" }, `upstream "registry-1.docker.io": want an absolute`},
		{"upstream unparsable", func(c *Config) { c.Upstream = "http://[::1" }, `upstream "http://[::1": not a URL`},
		{"mirror group with slash", func(c *Config) { c.MirrorGroup = "/acme" }, `mirror-group "/acme"`},
		{"mirror group nested", func(c *Config) { c.MirrorGroup = "acme/team" }, ""},
		{"tls cert without key", func(c *Config) { c.TLSCert = "c.pem" }, "tls-cert is set but tls-key is not"},
		{"tls key without cert", func(c *Config) { c.TLSKey = "k.pem" }, "tls-key is set but tls-cert is not"},
		{"tls both", func(c *Config) { c.TLSCert, c.TLSKey, c.ExternalURL = "c.pem", "k.pem", "https://dproxy.example" }, ""},
		{"tls with an http external url", func(c *Config) { c.TLSCert, c.TLSKey = "c.pem", "k.pem" }, `external-url "http://127.0.0.1:5000" is http:// but the server serves TLS`},
		{"tls min version 1.3", func(c *Config) { c.TLSMinVersion = "1.3" }, ""},
		{"tls min version 1.1", func(c *Config) { c.TLSMinVersion = "1.1" }, `tls-min-version: "1.1": want 1.2 or 1.3`},
		{"tls min version 1.0", func(c *Config) { c.TLSMinVersion = "1.0" }, `tls-min-version: "1.0": want 1.2 or 1.3`},
		{"tls min version empty", func(c *Config) { c.TLSMinVersion = "" }, `tls-min-version: "": want 1.2 or 1.3`},
		{"tls min version garbage", func(c *Config) { c.TLSMinVersion = "tls13" }, `tls-min-version: "tls13"`},
		{"admin addr", func(c *Config) { c.AdminAddr = "127.0.0.1:5001" }, ""},
		{"admin addr without port", func(c *Config) { c.AdminAddr = "localhost" }, `admin-addr "localhost": want host:port`},
		{"admin addr same as addr", func(c *Config) { c.AdminAddr = ":5000" }, `admin-addr ":5000": the same address as addr or metrics-addr`},
		{"admin addr same as metrics addr", func(c *Config) { c.AdminAddr, c.MetricsAddr = "127.0.0.1:9000", "127.0.0.1:9000" }, "the same address as addr or metrics-addr"},
		{"negative token expiry", func(c *Config) { c.TokenExpiry = -time.Second }, "token-expiry must not be negative, got -1s"},
		{"zero token expiry", func(c *Config) { c.TokenExpiry = 0 }, "token-expiry must be positive"},
		{"zero revalidate timeout", func(c *Config) { c.RevalidateTimeout = 0 }, "revalidate-timeout must be positive"},
		{"no virtual registries", func(c *Config) { c.VirtualRegistriesPerGroup = 0 }, "virtual-registries-per-group must be between 1 and 100"},
		{"negative rate-limit reserve", func(c *Config) { c.RateLimitReserve = -1 }, "ratelimit-reserve must not be negative"},
		{"zero rate-limit back-off", func(c *Config) { c.RateLimitBackoff = 0 }, "ratelimit-backoff must be positive"},
		{"negative connect timeout", func(c *Config) { c.UpstreamConnectTimeout = -1 }, "upstream-connect-timeout must not be negative"},
		{"zero response header timeout", func(c *Config) { c.UpstreamResponseHeaderTimeout = 0 }, "upstream-response-header-timeout must be positive"},
		{"negative shutdown timeout", func(c *Config) { c.ShutdownTimeout = -time.Second }, "shutdown-timeout must not be negative"},
		{"zero shutdown timeout", func(c *Config) { c.ShutdownTimeout = 0 }, ""},
		{"unknown log format", func(c *Config) { c.LogFormat = "xml" }, `log-format "xml": want auto, json or text`},
		{"unknown log level", func(c *Config) { c.LogLevel = "trace" }, `log-level "trace": want debug, info, warn or error`},
		{"short secret key", func(c *Config) { c.SecretKey = "abcd" }, "secret-key must be 64 hex characters"},
		{"non-hex secret key", func(c *Config) { c.SecretKey = strings.Repeat("zz", 32) }, "secret-key must be 64 hex characters"},
		{"good secret key", func(c *Config) { c.SecretKey = strings.Repeat("0f", 32) }, ""},
		{"zero manifest size", func(c *Config) { c.MaxManifestSize = 0 }, "max-manifest-size must be positive, got 0"},
		{"negative blob size", func(c *Config) { c.MaxBlobSize = -5 }, "max-blob-size must be positive, got -5"},
		{"zero ttl interval", func(c *Config) { c.TTLInterval = 0 }, "ttl-interval must be positive"},
		{"negative gc interval", func(c *Config) { c.GCInterval = -time.Minute }, "gc-interval must not be negative"},
		{"negative gc grace", func(c *Config) { c.GCGrace = -time.Minute }, "gc-grace must not be negative"},
		{"zero fetch lease", func(c *Config) { c.FetchLeaseTimeout = 0 }, "fetch-lease-timeout must be positive"},
		{"peer url not a url", func(c *Config) {
			c.Database, c.SecretKey, c.PeerURL = "postgres://u@db/dproxy", strings.Repeat("ab", 32), "10.0.0.5:5000"
		}, "peer-url \"10.0.0.5:5000\": want this replica's internal base URL"},
		{"peer url with sqlite", func(c *Config) { c.PeerURL = "http://10.0.0.5:5000" }, "peer-url is for replicas sharing a PostgreSQL database"},
		{"negative cache cap", func(c *Config) { c.CacheMaxSize = -1 }, "cache-max-size must not be negative"},
		{"no cache cap", func(c *Config) { c.CacheMaxSize = 0 }, ""},
		{"database sqlite", func(c *Config) { c.Database = "sqlite" }, ""},
		{"database postgres without secret key", func(c *Config) { c.Database = "postgres://u:pw@db/dproxy" }, "set secret-key (DPROXY_SECRET_KEY) to the same 64-hex key on every replica"},
		{"database postgres", func(c *Config) { c.Database, c.SecretKey = "postgres://u:pw@db/dproxy", strings.Repeat("0f", 32) }, ""},
		{"database postgresql scheme", func(c *Config) {
			c.Database, c.SecretKey = "postgresql://db/dproxy?password=pw", strings.Repeat("0f", 32)
		}, ""},
		{"database postgres without host", func(c *Config) { c.Database, c.SecretKey = "postgres:///x", strings.Repeat("0f", 32) }, "not a valid postgres://"},
		{"database mysql", func(c *Config) { c.Database = "mysql://u:pw@db/dproxy" }, `database "mysql://u:xxxxx@db/dproxy": want sqlite`},
		{"storage s3", func(c *Config) { c.Storage = "s3://bucket?endpoint=http://127.0.0.1:9000&path_style=true" }, ""},
		{"storage not s3", func(c *Config) { c.Storage = "gs://bucket" }, `storage "gs://bucket": want empty`},
		{"storage s3 without bucket", func(c *Config) { c.Storage = "s3:///x" }, "want empty (the blob folder) or s3://bucket"},
		{"storage with credentials", func(c *Config) { c.Storage = "s3://k:pw@bucket" }, "credentials do not go in the URL"},
		{"storage redirect without s3", func(c *Config) { c.StorageRedirect = true }, "storage-redirect needs S3 storage"},
		{"storage redirect with s3", func(c *Config) { c.Storage, c.StorageRedirect = "s3://bucket", true }, ""},
		{"storage redirect expiry zero", func(c *Config) { c.StorageRedirectExpiry = 0 }, "storage-redirect-expiry must be positive, got 0s"},
		{"storage redirect expiry negative", func(c *Config) { c.StorageRedirectExpiry = -time.Minute }, "storage-redirect-expiry must be positive"},
		{"storage redirect expiry as token expiry", func(c *Config) { c.StorageRedirectExpiry = 15 * time.Minute }, ""},
		{"storage redirect expiry past token expiry", func(c *Config) { c.StorageRedirectExpiry = 20 * time.Minute },
			"storage-redirect-expiry 20m0s is longer than token-expiry 15m0s"},
		{"storage redirect expiry past S3's limit", func(c *Config) { c.TokenExpiry, c.StorageRedirectExpiry = 30*24*time.Hour, 8*24*time.Hour },
			"longer than S3 allows for a presigned URL (168h0m0s)"},
		{"storage redirect to http behind tls", func(c *Config) {
			c.Storage, c.StorageRedirect = "s3://bucket?endpoint=http://s3.internal:9000", true
			c.TLSCert, c.TLSKey, c.ExternalURL = "c.pem", "k.pem", "https://dproxy.example"
		}, "storage-redirect with an http:// S3 endpoint behind an https server"},
		{"storage redirect to http behind an https external url", func(c *Config) {
			c.Storage, c.StorageRedirect, c.ExternalURL = "s3://bucket?endpoint=HTTP://s3.internal:9000", true, "https://dproxy.example"
		}, "set storage-redirect-allow-http if that network is trusted"},
		{"storage redirect to http allowed", func(c *Config) {
			c.Storage, c.StorageRedirect, c.ExternalURL = "s3://bucket?endpoint=http://s3.internal:9000", true, "https://dproxy.example"
			c.StorageRedirectAllowHTTP = true
		}, ""},
		{"storage redirect to https behind tls", func(c *Config) {
			c.Storage, c.StorageRedirect, c.ExternalURL = "s3://bucket?endpoint=https://s3.internal:9000", true, "https://dproxy.example"
		}, ""},
		{"storage redirect to http on an http server", func(c *Config) {
			c.Storage, c.StorageRedirect = "s3://bucket?endpoint=http://127.0.0.1:9000", true
		}, ""},
		{"storage without redirect to http behind tls", func(c *Config) {
			c.Storage, c.ExternalURL = "s3://bucket?endpoint=http://s3.internal:9000", "https://dproxy.example"
		}, ""},
		{"s3 key id without secret", func(c *Config) { c.S3AccessKeyID = "AKIA" }, "set both or neither"},
		{"upstream allow cidrs", func(c *Config) {
			c.UpstreamAllowCIDR = []string{"127.0.0.2/32", "10.0.0.0/8", "fd00::/8", "192.168.1.5"}
		}, ""},
		{"upstream allow cidr not a range", func(c *Config) { c.UpstreamAllowCIDR = []string{"10.0.0.0/8", "intranet"} }, `upstream-allow-cidr "intranet": want a CIDR range`},
		{"upstream allow cidr bad mask", func(c *Config) { c.UpstreamAllowCIDR = []string{"10.0.0.0/33"} }, `upstream-allow-cidr "10.0.0.0/33"`},
		{"upstream allow cidr with zone", func(c *Config) { c.UpstreamAllowCIDR = []string{"fe80::1%eth0"} }, `upstream-allow-cidr "fe80::1%eth0"`},
		{"trusted proxies", func(c *Config) { c.TrustedProxies = "10.0.0.0/8, 192.0.2.7,2001:db8::/32" }, ""},
		{"trusted proxy not an address", func(c *Config) { c.TrustedProxies = "10.0.0.0/8,proxy.internal" }, `trusted-proxies: "proxy.internal" is neither an address nor a CIDR`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := Default()
			tc.change(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tc.want != "" && err == nil:
				t.Errorf("Validate() = nil, want an error containing %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Errorf("Validate() = %q, want it to contain %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "pw@") {
				t.Errorf("Validate() = %q leaks a password", err)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	t.Parallel()
	c := Default()
	c.Addr = "nope"
	c.LogLevel = "loud"
	c.MaxBlobSize = 0
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate() = nil")
	}
	if lines := strings.Split(err.Error(), "\n"); len(lines) != 3 {
		t.Errorf("Validate() reported %d problems, want 3: %q", len(lines), err)
	}
}

func TestParseSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    int64
		wantErr string
	}{
		{"1024", 1024, ""},
		{"0", 0, ""},
		{"10MiB", 10 << 20, ""},
		{"50GiB", 50 << 30, ""},
		{"200GB", 200e9, ""},
		{"1kb", 1000, ""},
		{"2KiB", 2048, ""},
		{"1TiB", 1 << 40, ""},
		{"3 TB", 3e12, ""},
		{"7B", 7, ""},
		{"1.5GiB", 3 << 29, ""},
		{" 64mib ", 64 << 20, ""},
		{"", 0, "want a number of bytes"},
		{"MiB", 0, "want a number of bytes"},
		{"-1", 0, "want a number of bytes"},
		{".", 0, "want a number of bytes"},
		{"10M", 0, `unknown unit "M"`},
		{"10 bytes", 0, "unknown unit"},
		{"1.2.3", 0, "unknown unit"},
		{"1.5B", 0, "whole number"},
		{"0.1KiB", 0, "whole number"},
		{"9223372036854775807", 1<<63 - 1, ""},
		{"9223372036854775808", 0, "too large"},
		{"10000000TiB", 0, "too large"},
	}
	for _, tc := range tests {
		got, err := ParseSize(tc.in)
		switch {
		case tc.wantErr == "" && (err != nil || got != tc.want):
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("ParseSize(%q) = %d, %v; want an error containing %q", tc.in, got, err, tc.wantErr)
		}
	}
}

func TestEnvVar(t *testing.T) {
	t.Parallel()
	for key, want := range map[string]string{
		"addr":                             "DPROXY_ADDR",
		"data-dir":                         "DPROXY_DATA_DIR",
		"upstream-response-header-timeout": "DPROXY_UPSTREAM_RESPONSE_HEADER_TIMEOUT",
	} {
		if got := EnvVar(key); got != want {
			t.Errorf("EnvVar(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestLogValueRedactsSecret(t *testing.T) {
	t.Parallel()
	c := Default()
	c.SecretKey = strings.Repeat("ab", 32)
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Info("config", "config", c)
	out := b.String()
	if strings.Contains(out, c.SecretKey) {
		t.Errorf("log line leaks the secret key: %s", out)
	}
	if !strings.Contains(out, "config.secret-key=[redacted]") || !strings.Contains(out, "config.addr=:5000") {
		t.Errorf("log line lacks the redacted key or the address: %s", out)
	}

	c.Database = "postgres://dproxy:db-pw-77@db:5432/dproxy"
	c.S3SecretAccessKey = "s3-secret-88"
	b.Reset()
	slog.New(slog.NewTextHandler(&b, nil)).Info("config", "config", c)
	out = b.String()
	for _, secret := range []string{"db-pw-77", "s3-secret-88"} {
		if strings.Contains(out, secret) {
			t.Errorf("log line leaks %s: %s", secret, out)
		}
	}
	if !strings.Contains(out, "config.s3-secret-access-key=[redacted]") || !strings.Contains(out, "dproxy:xxxxx@db:5432") {
		t.Errorf("log line lacks the redacted S3 secret or database URL: %s", out)
	}
}

func TestLoadS3CredentialsAndRedirect(t *testing.T) {
	t.Parallel()
	aws := []string{"AWS_ACCESS_KEY_ID=aws-id", "AWS_SECRET_ACCESS_KEY=aws-secret"}
	tests := []struct {
		name               string
		environ            []string
		file               string
		wantID, wantSecret string
		wantRedirect       bool
	}{
		{name: "from the AWS variables", environ: aws, wantID: "aws-id", wantSecret: "aws-secret"},
		{name: "dproxy variables win", environ: append(aws, "DPROXY_S3_ACCESS_KEY_ID=d-id", "DPROXY_S3_SECRET_ACCESS_KEY=d-secret"), wantID: "d-id", wantSecret: "d-secret"},
		{name: "config file wins", environ: aws, file: "s3-access-key-id: f-id\ns3-secret-access-key: f-secret\nstorage-redirect: true\n", wantID: "f-id", wantSecret: "f-secret", wantRedirect: true},
		{name: "redirect from the environment", environ: []string{"DPROXY_STORAGE_REDIRECT=true"}, wantRedirect: true},
		{name: "none", environ: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			file := ""
			if tc.file != "" {
				file = filepath.Join(t.TempDir(), "dproxy.yaml")
				if err := os.WriteFile(file, []byte(tc.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			env := append([]string{"DPROXY_STORAGE=s3://bucket"}, tc.environ...)
			c, err := Load(file, nil, env)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if c.S3AccessKeyID != tc.wantID || c.S3SecretAccessKey != tc.wantSecret || c.StorageRedirect != tc.wantRedirect {
				t.Errorf("got id %q secret %q redirect %v; want %q %q %v", c.S3AccessKeyID, c.S3SecretAccessKey, c.StorageRedirect, tc.wantID, tc.wantSecret, tc.wantRedirect)
			}
		})
	}
	if _, err := Load("", nil, []string{"DPROXY_STORAGE_REDIRECT=maybe", "DPROXY_STORAGE=s3://b"}); err == nil || !strings.Contains(err.Error(), `invalid boolean "maybe"`) {
		t.Errorf("Load with storage-redirect=maybe = %v, want an invalid boolean error", err)
	}
}

// The presigned URL lifetime defaults to 5 minutes, or the token expiry
// when that is shorter; set explicitly, it may not exceed the token expiry.
func TestLoadStorageRedirectExpiry(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		environ []string
		want    time.Duration
		wantErr string
	}{
		{environ: nil, want: 5 * time.Minute},
		{environ: []string{"DPROXY_TOKEN_EXPIRY=2m"}, want: 2 * time.Minute},
		{environ: []string{"DPROXY_TOKEN_EXPIRY=1h"}, want: 5 * time.Minute},
		{environ: []string{"DPROXY_STORAGE_REDIRECT_EXPIRY=90s"}, want: 90 * time.Second},
		{environ: []string{"DPROXY_TOKEN_EXPIRY=1h", "DPROXY_STORAGE_REDIRECT_EXPIRY=30m"}, want: 30 * time.Minute},
		{environ: []string{"DPROXY_TOKEN_EXPIRY=2m", "DPROXY_STORAGE_REDIRECT_EXPIRY=5m"}, wantErr: "storage-redirect-expiry 5m0s is longer than token-expiry 2m0s"},
		{environ: []string{"DPROXY_STORAGE_REDIRECT_EXPIRY=soon"}, wantErr: "DPROXY_STORAGE_REDIRECT_EXPIRY"},
		{environ: []string{"DPROXY_TLS_MIN_VERSION=1.0"}, wantErr: `tls-min-version: "1.0": want 1.2 or 1.3`},
	} {
		c, err := Load("", nil, tc.environ)
		switch {
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("Load(%v) = %v, want an error containing %q", tc.environ, err, tc.wantErr)
		case tc.wantErr == "" && err != nil:
			t.Errorf("Load(%v): %v", tc.environ, err)
		case tc.wantErr == "" && c.StorageRedirectExpiry != tc.want:
			t.Errorf("Load(%v): storage-redirect-expiry %s, want %s", tc.environ, c.StorageRedirectExpiry, tc.want)
		}
	}
}

func TestTrustedProxyPrefixes(t *testing.T) {
	t.Parallel()
	c := Default()
	c.TrustedProxies = " 10.1.2.3/8, 192.0.2.7 ,, ::ffff:192.0.2.8, 2001:db8::1"
	var got []string
	for _, p := range c.TrustedProxyPrefixes() {
		got = append(got, p.String())
	}
	want := "10.0.0.0/8 192.0.2.7/32 192.0.2.8/32 2001:db8::1/128"
	if strings.Join(got, " ") != want {
		t.Errorf("TrustedProxyPrefixes = %v, want %s", got, want)
	}
	if p := Default().TrustedProxyPrefixes(); len(p) != 0 {
		t.Errorf("default trusts %v, want none", p)
	}
}

// TestDocsListEveryOption keeps docs/configuration.md in step with Config:
// every key has a row of the options table, naming its environment
// variable. The flag column is checked against serve's flags in
// internal/commands (TestServeFlagsMatchConfigurationDocs).
func TestDocsListEveryOption(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "configuration.md"))
	if err != nil {
		t.Fatalf("read docs: %v", err)
	}
	rows := make(map[string][]string) // key → its row's cells
	for line := range strings.Lines(string(b)) {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), " | ")
		rows[strings.Trim(strings.TrimSpace(cells[0]), "`")] = cells
	}
	keys := Keys()
	if len(keys) != reflect.TypeFor[Config]().NumField() {
		t.Fatalf("Keys() has %d keys for %d fields", len(keys), reflect.TypeFor[Config]().NumField())
	}
	for _, key := range keys {
		cells, ok := rows[key]
		switch {
		case !ok:
			t.Errorf("docs/configuration.md has no table row for %q", key)
		case len(cells) < 5:
			t.Errorf("docs/configuration.md: the row of %q has %d cells, want 5 (key, flag, environment variable, default, meaning)", key, len(cells))
		case strings.TrimSpace(cells[2]) != "`"+EnvVar(key)+"`":
			t.Errorf("docs/configuration.md: the row of %q names the variable %s, want `%s`", key, cells[2], EnvVar(key))
		}
	}
}
