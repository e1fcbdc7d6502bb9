package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dproxy/dproxy/internal/commands/cmdutil"
	"github.com/dproxy/dproxy/internal/commands/output"
	"github.com/dproxy/dproxy/internal/keyfile"
	"github.com/dproxy/dproxy/internal/lifecycle"
	"github.com/dproxy/dproxy/internal/units"
)

func newCmdBackup(ios *cmdutil.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "backup <command>",
		Short: "Back up a data dir, or restore one from a backup",
		Long: "A backup is one tar archive (gzip-compressed when the name ends in .gz or .tgz) with a\n" +
			"consistent snapshot of the database, every cached blob and the key files. It holds the\n" +
			"secret key that decrypts stored Docker Hub secrets: keep it as safe as that key.",
		Example: "  $ dproxy backup create --data-dir /var/lib/dproxy --file /backups/dproxy.tar.gz\n" +
			"  $ dproxy backup restore /backups/dproxy.tar.gz --data-dir /var/lib/dproxy-restored",
		Args: noArgs,
		RunE: nounHelp,
	}
	cmd.AddCommand(newCmdBackupCreate(ios, nil), newCmdBackupRestore(ios, nil))
	return cmd
}

type backupCreateOptions struct {
	IO      *cmdutil.IOStreams
	DataDir string
	File    string // the archive; "-" is stdout
	Output  string // -o: table or json
	Now     func() time.Time
}

// backupCreated is what `backup create -o json` prints.
type backupCreated struct {
	Archive   string   `json:"archive"`
	DataDir   string   `json:"dataDir"`
	Blobs     int      `json:"blobs"`
	BlobBytes int64    `json:"blobBytes"`
	KeyFiles  []string `json:"keyFiles"`
	// VanishedBlobs were deleted by garbage collection while the backup
	// ran; the archive's database does not reference them.
	VanishedBlobs int `json:"vanishedBlobs"`
}

func newCmdBackupCreate(ios *cmdutil.IOStreams, runF func(context.Context, *backupCreateOptions) error) *cobra.Command {
	opts := &backupCreateOptions{IO: ios, Now: time.Now}
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Write a backup archive of a data dir",
		Long: "Write a backup archive of a data dir. It works while the server runs: the database is\n" +
			"snapshotted consistently and the blobs it references are copied. The archive is written\n" +
			"to a temp file next to --file and renamed when complete, so an interrupted backup never\n" +
			"leaves a partial archive under the final name. The archive is created with mode 0600.\n" +
			"--file - streams the archive (gzip-compressed) to stdout instead, for a pipe; a consumer\n" +
			"must then treat an archive whose command failed as incomplete. On a terminal, progress is\n" +
			"shown on stderr.",
		Example: "  $ dproxy backup create --data-dir /var/lib/dproxy\n" +
			"  $ dproxy backup create --data-dir /var/lib/dproxy --file /backups/dproxy.tar.gz\n" +
			"  $ dproxy backup create --data-dir /var/lib/dproxy --file - | ssh backup-host 'cat > dproxy.tar.gz'",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := output.ParseFormat(opts.Output); err != nil {
				return &cmdutil.FlagError{Err: fmt.Errorf("-o %s: -o selects the output format (table or json), not the archive: name the archive with --file %s", opts.Output, opts.Output)}
			}
			if opts.File == "" {
				opts.File = "dproxy-backup-" + opts.Now().UTC().Format("20060102-150405") + ".tar.gz"
			}
			if opts.File == "-" && opts.Output == "json" {
				return &cmdutil.FlagError{Err: errors.New("--file - writes the archive to stdout: -o json has no room there; drop -o json (what was written goes to stderr)")}
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runBackupCreate(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.DataDir, "data-dir", defaultDataDir(), "data dir to back up (default $DPROXY_DATA_DIR or ./dproxy-data)")
	cmd.Flags().StringVarP(&opts.File, "file", "f", "", "archive to write, - for stdout (default dproxy-backup-<time>.tar.gz)")
	oldName(cmd, "out", "--file", func() { cmd.Flags().StringVar(&opts.File, "out", "", "") })
	addOutputFlag(cmd, &opts.Output)
	_ = cmd.MarkFlagDirname("data-dir")
	return cmd
}

func runBackupCreate(ctx context.Context, opts *backupCreateOptions) error {
	p, err := cmdutil.NewPrinter(opts.IO, opts.Output)
	if err != nil {
		return err
	}
	toStdout := opts.File == "-"
	if toStdout && opts.IO.IsStdoutTTY() {
		return &cmdutil.FlagError{Err: errors.New("--file - writes the archive to stdout, which is a terminal: redirect it to a file or a pipe, or pass --file FILE")}
	}
	if !toStdout {
		if _, err := os.Lstat(opts.File); err == nil {
			return &cmdutil.FlagError{Err: fmt.Errorf("%s already exists: choose another --file", opts.File)}
		}
	}
	if _, err := existingDataDir(opts.DataDir); err != nil {
		return err
	}
	meter := newProgressMeter(opts.IO, "backup", opts.Now)
	var res lifecycle.BackupResult
	write := func(w io.Writer) error {
		var err error
		res, err = lifecycle.CreateBackup(ctx, opts.DataDir, w, toStdout || isCompressed(opts.File), meter.update)
		meter.finish(ctx, err)
		return err
	}
	// A file is written whole or not at all; a pipe gets the archive as it
	// is made, and what is said of it goes to stderr.
	where, say := opts.File, opts.IO.Out
	if toStdout {
		where, say = "the archive to stdout", opts.IO.ErrOut
		if err = write(opts.IO.Out); err != nil {
			err = fmt.Errorf("back up %s to stdout: %w; the archive written so far is incomplete", opts.DataDir, interrupted(ctx, err))
		}
	} else if err = keyfile.WriteAtomic(opts.File, 0o600, write); err != nil {
		err = fmt.Errorf("back up %s: %w; no archive was written", opts.DataDir, interrupted(ctx, err))
	}
	if err != nil {
		return err
	}
	if p.JSON() {
		keys := res.Keys
		if keys == nil {
			keys = []string{}
		}
		return p.PrintJSON(backupCreated{Archive: opts.File, DataDir: opts.DataDir, Blobs: res.Blobs, BlobBytes: res.BlobBytes, KeyFiles: keys, VanishedBlobs: res.Vanished})
	}
	fmt.Fprintf(say, "wrote %s: %d blobs (%s), key files %s\n", where, res.Blobs, units.Size(res.BlobBytes), strings.Join(res.Keys, ", "))
	fmt.Fprintln(say, "the archive holds the secret key: store it encrypted and readable only by operators")
	return nil
}

func isCompressed(name string) bool {
	return strings.HasSuffix(name, ".gz") || strings.HasSuffix(name, ".tgz")
}

type backupRestoreOptions struct {
	IO      *cmdutil.IOStreams
	File    string
	DataDir string
	Output  string
	Now     func() time.Time // the progress meter's clock (nil: time.Now)
}

// backupRestored is what `backup restore -o json` prints.
type backupRestored struct {
	Archive         string    `json:"archive"`
	DataDir         string    `json:"dataDir"`
	Blobs           int       `json:"blobs"`
	BlobBytes       int64     `json:"blobBytes"`
	KeyFiles        []string  `json:"keyFiles"`
	BackupCreatedAt time.Time `json:"backupCreatedAt"`
}

func newCmdBackupRestore(ios *cmdutil.IOStreams, runF func(context.Context, *backupRestoreOptions) error) *cobra.Command {
	opts := &backupRestoreOptions{IO: ios}
	cmd := &cobra.Command{
		Use:   "restore <file>",
		Short: "Restore a backup archive into an empty data dir",
		Long: "Restore a backup archive into a new or empty data dir, verifying every blob against its\n" +
			"digest. Nothing is overwritten; if anything is wrong with the archive the data dir is left\n" +
			"empty. Then start `dproxy serve --data-dir DIR` on it.",
		Example: "  $ dproxy backup restore dproxy-backup-20260301-120000.tar.gz --data-dir /var/lib/dproxy\n" +
			"  $ ssh backup-host 'cat dproxy.tar.gz' | dproxy backup restore - --data-dir /var/lib/dproxy",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError(cmd, fmt.Errorf("%s takes one backup archive, got %d arguments", cmd.CommandPath(), len(args)))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.File = args[0]
			if opts.DataDir == "" {
				return requiredFlag(cmd, "data-dir", "the new or empty directory to restore into")
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runBackupRestore(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.DataDir, "data-dir", "", "new or empty data dir to restore into (required)")
	addOutputFlag(cmd, &opts.Output)
	_ = cmd.MarkFlagDirname("data-dir")
	return cmd
}

func runBackupRestore(ctx context.Context, opts *backupRestoreOptions) error {
	p, err := cmdutil.NewPrinter(opts.IO, opts.Output)
	if err != nil {
		return err
	}
	var in io.Reader = opts.IO.In
	if opts.File != "-" {
		f, err := os.Open(opts.File)
		if err != nil {
			return &cmdutil.FlagError{Err: fmt.Errorf("open backup archive: %w", err)}
		}
		defer f.Close()
		in = f
	}
	meter := newProgressMeter(opts.IO, "restore", opts.Now)
	res, err := lifecycle.RestoreBackup(ctx, in, opts.DataDir, meter.update)
	if errors.Is(err, lifecycle.ErrNotEmpty) {
		return &cmdutil.FlagError{Err: err}
	}
	meter.finish(ctx, err)
	if err != nil {
		return fmt.Errorf("restore %s into %s: %w; the data dir was left empty", opts.File, opts.DataDir, interrupted(ctx, err))
	}
	if p.JSON() {
		keys := res.Keys
		if keys == nil {
			keys = []string{}
		}
		return p.PrintJSON(backupRestored{Archive: opts.File, DataDir: opts.DataDir, Blobs: res.Blobs, BlobBytes: res.BlobBytes, KeyFiles: keys, BackupCreatedAt: res.CreatedAt.UTC()})
	}
	_, err = fmt.Fprintf(opts.IO.Out, "restored %d verified blobs (%s) and key files %s into %s (backup of %s)\n",
		res.Blobs, units.Size(res.BlobBytes), strings.Join(res.Keys, ", "), opts.DataDir, res.CreatedAt.Format(time.RFC3339))
	return err
}

// interrupted names a copy stopped by Ctrl-C or SIGTERM as such, rather
// than as "context canceled".
func interrupted(ctx context.Context, err error) error {
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return fmt.Errorf("interrupted (%w)", err)
	}
	return err
}
