package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/dproxy/dproxy/internal/blobstore"
	"github.com/dproxy/dproxy/internal/commands/cmdutil"
	"github.com/dproxy/dproxy/internal/config"
	"github.com/dproxy/dproxy/internal/lifecycle"
	"github.com/dproxy/dproxy/internal/store"
)

type fsckOptions struct {
	IO      *cmdutil.IOStreams
	DataDir string
	// ConfigFile is the server's config file: its database and storage
	// (with DPROXY_* variables over it) are checked instead of the data
	// dir's SQLite file and blob folder.
	ConfigFile string
	// DataDirSet says --data-dir was given: it wins over the config's.
	DataDirSet bool
	// Environ is the environment the configuration is read from (nil:
	// os.Environ()).
	Environ       []string
	Repair        bool
	VerifyContent bool
	Output        string
	Now           func() time.Time // the progress meter's clock (nil: time.Now)
}

// fsckResult is what `fsck -o json` prints.
type fsckResult struct {
	DataDir         string        `json:"dataDir"`
	ReferencedBlobs int           `json:"referencedBlobs"`
	BlobFiles       int           `json:"blobFiles"`
	TempFiles       int           `json:"tempFiles"`
	Problems        int           `json:"problems"`
	Repaired        int           `json:"repaired"`
	Findings        []fsckFinding `json:"findings"`
}

// fsckFinding is one problem: Digest names a blob, Name a temp file.
type fsckFinding struct {
	Kind     string `json:"kind"`
	Digest   string `json:"digest,omitempty"`
	Name     string `json:"name,omitempty"`
	Detail   string `json:"detail"`
	Repaired bool   `json:"repaired"`
}

func newCmdFsck(ios *cmdutil.IOStreams, runF func(context.Context, *fsckOptions) error) *cobra.Command {
	opts := &fsckOptions{IO: ios}
	cmd := &cobra.Command{
		Use:   "fsck",
		Short: "Check a data dir's cache for missing, corrupt, orphan and temp files",
		Long: "Check that the database and the blob folder of a data dir agree: every cached blob has its\n" +
			"file with the recorded size (and with --verify-content, the right content), every blob file\n" +
			"is referenced by a group, and no download left a temp file behind.\n\n" +
			"A server on PostgreSQL and S3 is checked with its configuration: --config and the DPROXY_*\n" +
			"variables (DPROXY_DATABASE, DPROXY_STORAGE, DPROXY_SECRET_KEY, the S3 credentials) as serve reads\n" +
			"them. Each object is then stat'ed, and with --verify-content streamed and hashed. Other replicas\n" +
			"may be running, so objects written in the last hour are left alone.\n\n" +
			"With --repair, references to missing or corrupt blobs are dropped (the next pull fetches them\n" +
			"again) and corrupt, orphan and leftover temp files are deleted. It may run while a server uses\n" +
			"the data dir; files written in the last hour are left alone then, as they may belong to a\n" +
			"download in progress. It exits with status 1 when it leaves problems unrepaired.",
		Example: "  $ dproxy fsck --data-dir /var/lib/dproxy\n" +
			"  $ dproxy fsck --data-dir /var/lib/dproxy --verify-content --repair\n" +
			"  $ dproxy fsck --config /etc/dproxy/dproxy.yaml --verify-content",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.DataDirSet = cmd.Flags().Changed("data-dir")
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runFsck(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.DataDir, "data-dir", defaultDataDir(), "data dir to check (default $DPROXY_DATA_DIR or ./dproxy-data)")
	f.BoolVar(&opts.Repair, "repair", false, "drop bad entries and delete unused files")
	f.BoolVar(&opts.VerifyContent, "verify-content", false, "re-hash every cached blob (reads them all)")
	f.StringVar(&opts.ConfigFile, "config", "", "the server's YAML config file, for its database and storage")
	addOutputFlag(cmd, &opts.Output)
	_ = cmd.MarkFlagDirname("data-dir")
	_ = cmd.MarkFlagFilename("config", "yaml", "yml")
	return cmd
}

// fsckConfig is the configuration fsck checks: the server's (config file
// and DPROXY_* variables) when it names a database or storage other than
// the data dir's, else just the data dir.
func fsckConfig(opts *fsckOptions) (config.Config, error) {
	environ := opts.Environ
	if environ == nil {
		environ = os.Environ()
	}
	cfg, err := config.Load(opts.ConfigFile, nil, environ)
	if err != nil {
		return cfg, &cmdutil.FlagError{Err: fmt.Errorf("read the server's configuration: %w", err)}
	}
	if opts.DataDirSet || opts.ConfigFile == "" {
		cfg.DataDir = opts.DataDir
	}
	if cfg.Storage == "" && !store.IsPostgres(cfg.Database) {
		return existingDataDir(cfg.DataDir)
	}
	return cfg, nil
}

// fsckBlobs opens the blob folder, or the S3 bucket cfg names.
func fsckBlobs(ctx context.Context, cfg config.Config) (lifecycle.FsckFiles, error) {
	if cfg.Storage == "" {
		return blobstore.NewFS(cfg.BlobDir())
	}
	o, err := blobstore.ParseS3URL(cfg.Storage)
	if err != nil {
		return nil, err
	}
	o.AccessKeyID, o.SecretAccessKey, o.SpoolDir = cfg.S3AccessKeyID, cfg.S3SecretAccessKey, cfg.BlobDir()
	s3, err := blobstore.NewS3(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("open blob storage %s: %w", cfg.Storage, err)
	}
	return s3, nil
}

// defaultDataDir is the data dir `serve` would use without a config file.
func defaultDataDir() string {
	if d := os.Getenv(config.EnvVar("data-dir")); d != "" {
		return d
	}
	return config.Default().DataDir
}

// existingDataDir is the configuration of a data dir that holds a dproxy
// database; a usage error otherwise.
func existingDataDir(dir string) (config.Config, error) {
	cfg := config.Config{DataDir: dir}
	if _, err := os.Stat(cfg.DBPath()); err != nil {
		return cfg, &cmdutil.FlagError{Err: fmt.Errorf("no dproxy database in %s (%w): pass the server's --data-dir", dir, err)}
	}
	return cfg, nil
}

func runFsck(ctx context.Context, opts *fsckOptions) error {
	p, err := cmdutil.NewPrinter(opts.IO, opts.Output)
	if err != nil {
		return err
	}
	cfg, err := fsckConfig(opts)
	if err != nil {
		return err
	}
	st, err := lifecycle.OpenCacheStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	files, err := fsckBlobs(ctx, cfg)
	if err != nil {
		return err
	}
	fo := lifecycle.FsckOptions{Repair: opts.Repair, VerifyContent: opts.VerifyContent}
	var meter *progressMeter
	if opts.VerifyContent {
		meter = newProgressMeter(opts.IO, "verify", opts.Now)
		fo.Progress = meter.update
	}
	// With no server on the data dir, no temp file or new file can belong
	// to a download in progress: no grace period. Replicas sharing a
	// database elsewhere cannot be seen: the grace period stays.
	switch lock, err := lifecycle.TryExclusive(cfg.DataDir); {
	case err == nil && store.IsPostgres(cfg.Database):
		defer lock.Unlock()
	case err == nil:
		defer lock.Unlock()
		fo.Grace = -1
	case errors.Is(err, lifecycle.ErrDataDirInUse):
		fmt.Fprintln(opts.IO.ErrOut, "a dproxy server is using this data dir: files written in the last hour are left alone")
	case !errors.Is(err, errors.ErrUnsupported):
		return err
	}
	rep, err := lifecycle.Fsck(ctx, st, files, fo)
	if meter != nil {
		meter.finish(ctx, err)
	}
	if err != nil {
		printFindings(opts.IO.Out, rep) // what was found before the failure
		return fmt.Errorf("fsck %s: %w", opts.DataDir, err)
	}
	if p.JSON() {
		res := fsckResult{DataDir: opts.DataDir, ReferencedBlobs: rep.Referenced, BlobFiles: rep.Files, TempFiles: rep.Temps,
			Problems: len(rep.Findings), Repaired: len(rep.Findings) - rep.Unrepaired(), Findings: []fsckFinding{}}
		for _, f := range rep.Findings {
			res.Findings = append(res.Findings, fsckFinding{Kind: f.Kind, Digest: string(f.Digest), Name: f.Name, Detail: f.Detail, Repaired: f.Repaired})
		}
		if err := p.PrintJSON(res); err != nil {
			return err
		}
	} else {
		printFindings(opts.IO.Out, rep)
		fmt.Fprintf(opts.IO.Out, "checked %d cached blobs, %d blob files, %d temp files: %d problems, %d repaired\n",
			rep.Referenced, rep.Files, rep.Temps, len(rep.Findings), len(rep.Findings)-rep.Unrepaired())
	}
	if n := rep.Unrepaired(); n > 0 {
		return &cmdutil.ExitError{Code: cmdutil.ExitFailure,
			Err: errors.New(fmt.Sprint(n, " problems found; run again with --repair to drop the bad entries (the next pull fetches them again)"))}
	}
	return nil
}

// printFindings prints one line per finding: kind, blob or temp file,
// found or repaired, detail.
func printFindings(out io.Writer, rep lifecycle.FsckReport) {
	for _, f := range rep.Findings {
		what := string(f.Digest)
		if what == "" {
			what = f.Name
		}
		state := "found"
		if f.Repaired {
			state = "repaired"
		}
		fmt.Fprintf(out, "%s\t%s\t%s\t%s\n", f.Kind, what, state, f.Detail)
	}
}
