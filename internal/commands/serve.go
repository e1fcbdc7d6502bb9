package commands

import (
	"context"
	"os"

	"github.com/spf13/cobra"

	"github.com/dproxy/dproxy/internal/app"
	"github.com/dproxy/dproxy/internal/commands/cmdutil"
	"github.com/dproxy/dproxy/internal/config"
)

type serveOptions struct {
	IO         *cmdutil.IOStreams
	ConfigFile string
	Config     config.Config
}

func newCmdServe(ios *cmdutil.IOStreams, runF func(context.Context, *serveOptions) error) *cobra.Command {
	opts := &serveOptions{IO: ios}
	def := config.Default()
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the dependency proxy server",
		Long: "Run the dependency proxy: the registry pull API, the token endpoint, health and metrics.\n\n" +
			"Settings come from defaults < the config file (--config) < DPROXY_* environment variables < flags.\n" +
			"On first start an admin user and an admin token are created; the token is written to\n" +
			"<data-dir>/initial_admin_token (mode 0600) and only that path is logged.",
		Example: "  $ dproxy serve\n" +
			"  $ dproxy serve --addr :5000 --data-dir /var/lib/dproxy --external-url https://dproxy.example.com\n" +
			"  $ DPROXY_UPSTREAM=http://127.0.0.1:5001 dproxy serve --config /etc/dproxy.yaml",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := config.Load(opts.ConfigFile, cmd.Flags(), os.Environ())
			if err != nil {
				return &cmdutil.FlagError{Err: err}
			}
			opts.Config = cfg
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runServe(cmd.Context(), opts)
		},
	}
	// Every configuration key has a flag named after it but the secrets
	// (secret-key, s3-access-key-id, s3-secret-access-key): a flag's value
	// shows in the process list and in shell history. Sizes are strings, so
	// they may carry a unit; config.Load parses and checks every value.
	f := cmd.Flags()
	f.StringVar(&opts.ConfigFile, "config", "", "YAML config file")
	f.String("addr", def.Addr, "address to listen on")
	f.String("data-dir", def.DataDir, "directory for the database, blobs and keys")
	f.String("external-url", "", "URL clients reach this server at (default: derived from --addr)")
	f.String("upstream", def.Upstream, "upstream registry URL")
	f.String("metrics-addr", def.MetricsAddr, "serve /metrics without a token on this second address only (default: /metrics on --addr, for instance admins' api tokens)")
	f.String("admin-addr", def.AdminAddr, "serve the admin API (/api/graphql, /api/v4) and /metrics on this second address only (default: on --addr)")
	f.String("mirror-group", def.MirrorGroup, "group that serves plain Docker Hub paths (mirror mode)")
	f.StringSlice("mirror-ns", nil, "serve mirror requests for another registry (?ns=HOST) through a virtual registry: HOST=VIRTUAL_REGISTRY_ID; repeatable, e.g. quay.io=2")
	f.String("tls-cert", "", "TLS certificate file (with --tls-key)")
	f.String("tls-key", "", "TLS key file (with --tls-cert), mode 0600; both are reloaded on SIGHUP and when they change")
	f.String("tls-min-version", def.TLSMinVersion, "oldest TLS version accepted: 1.2 or 1.3")
	f.Duration("token-expiry", def.TokenExpiry, "lifetime of registry tokens")
	f.String("log-format", def.LogFormat, "log format: auto, json or text")
	f.String("log-level", def.LogLevel, "log level: debug, info, warn or error")
	f.Duration("revalidate-timeout", def.RevalidateTimeout, "give up revalidating a cached tag upstream after this long and serve the cached copy")
	f.Int("ratelimit-reserve", def.RateLimitReserve, "at or below this many remaining upstream pulls, serve a moved tag's cached copy instead of a manifest GET (0: off)")
	f.Duration("ratelimit-backoff", def.RateLimitBackoff, "after an upstream 429 without Retry-After, send nothing upstream with that credential for this long")
	f.String("warm-reserve", def.WarmReserve, "pulls of each credential prewarming leaves unspent on top of --ratelimit-reserve: a percentage of the limit (20%) or a number")
	f.Duration("warm-poll", def.WarmPoll, "longest wait between the warmer's looks at its entries; how soon another replica takes the warmer over")
	f.Int("virtual-registries-per-group", def.VirtualRegistriesPerGroup, "most container virtual registries a top-level group may have")
	f.Int("virtual-registry-upstreams", def.VirtualRegistryUpstreams, "most upstreams a container virtual registry may have")
	f.StringSlice("upstream-allow-cidr", nil, "let virtual-registry upstreams, redirects and token realms reach this range, refused by default (loopback, private, link-local...); repeatable, e.g. 10.1.0.0/16")
	f.Duration("upstream-connect-timeout", def.UpstreamConnectTimeout, "upstream connect timeout")
	f.Duration("upstream-response-header-timeout", def.UpstreamResponseHeaderTimeout, "upstream response-header timeout")
	f.String("max-manifest-size", "10MiB", "largest manifest accepted from the upstream, a size such as 4MiB")
	f.String("max-blob-size", "50GiB", "largest blob (layer or config) accepted from the upstream, a size such as 20GiB")
	f.Duration("shutdown-timeout", def.ShutdownTimeout, "how long in-flight responses may take to finish on SIGTERM")
	f.Duration("ttl-interval", def.TTLInterval, "how often the groups' image TTL policies are applied")
	f.Duration("gc-interval", def.GCInterval, "how often unreferenced blob files are deleted and the size cap enforced")
	f.String("peer-url", def.PeerURL, "this replica's internal base URL, where the other replicas stream a blob it downloads (PostgreSQL only)")
	f.Duration("fetch-lease-timeout", def.FetchLeaseTimeout, "with PostgreSQL, how long a replica's claim on fetching a blob lasts unrenewed before another takes over")
	f.Duration("gc-grace", def.GCGrace, "with PostgreSQL, how long a blob file stays unreferenced before it is deleted; longer than any pull a replica serves")
	f.String("cache-max-size", "0", "cap on the bytes of stored blobs, e.g. 200GiB; 0 means no cap")
	f.String("database", "", "metadata database: sqlite (default) or postgres://user:password@host/db (prefer DPROXY_DATABASE: flags are visible to other users)")
	f.String("storage", "", "blob storage: the data-dir folder (default) or s3://bucket[/prefix]?endpoint=…&region=…&path_style=true")
	f.Bool("storage-redirect", false, "with S3 storage, redirect cached blob GETs to presigned bucket URLs")
	f.Duration("storage-redirect-expiry", def.StorageRedirectExpiry, "lifetime of presigned blob URLs; at most --token-expiry (default: 5m, or --token-expiry if shorter)")
	f.Bool("storage-redirect-allow-http", false, "let --storage-redirect send clients to an http:// S3 endpoint although this server is https")
	f.String("trusted-proxies", "", "reverse proxies (CIDRs or addresses, comma-separated) whose X-Forwarded-For names the client, for sign-in throttling")
	_ = cmd.MarkFlagDirname("data-dir")
	_ = cmd.MarkFlagFilename("config", "yaml", "yml")
	_ = cmd.MarkFlagFilename("tls-cert")
	_ = cmd.MarkFlagFilename("tls-key")
	complete(cmd, "tls-min-version", fixed("1.2", "1.3"))
	complete(cmd, "log-format", fixed("auto", "json", "text"))
	complete(cmd, "log-level", fixed("debug", "info", "warn", "error"))
	return cmd
}

func runServe(ctx context.Context, opts *serveOptions) error {
	cfg := opts.Config
	log, err := app.NewLogger(os.Stderr, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return &cmdutil.FlagError{Err: err}
	}
	a, err := app.Open(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()
	return a.Run(ctx)
}
