package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	ageenc "filippo.io/age"
	"github.com/spf13/cobra"

	"github.com/dproxy/dproxy/internal/commands/cmdutil"
	"github.com/dproxy/dproxy/internal/commands/output"
	"github.com/dproxy/dproxy/internal/keyfile"
	"github.com/dproxy/dproxy/internal/lifecycle"
	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/secretbox"
	"github.com/dproxy/dproxy/internal/units"
)

func newCmdBackup(ios *cmdutil.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "backup <command>",
		Short: "Back up a data dir, or restore one from a backup",
		Long: "A backup is one tar archive (gzip-compressed when the name ends in .gz or .tgz) with a\n" +
			"consistent snapshot of the database, every cached blob and the key files, authenticated\n" +
			"with a backup key you keep apart from the archives (--key-file), and optionally encrypted\n" +
			"with age (--encrypt-to, --passphrase-file). It holds the secret key that decrypts stored\n" +
			"Docker Hub secrets: keep it as safe as that key.",
		Example: "  $ dproxy backup create --data-dir /var/lib/dproxy --key-file /etc/dproxy/backup.key --file /backups/dproxy.tar.gz\n" +
			"  $ dproxy backup verify /backups/dproxy.tar.gz --key-file /etc/dproxy/backup.key\n" +
			"  $ dproxy backup restore /backups/dproxy.tar.gz --key-file /etc/dproxy/backup.key --data-dir /var/lib/dproxy-restored",
		Args: noArgs,
		RunE: nounHelp,
	}
	cmd.AddCommand(newCmdBackupCreate(ios, nil), newCmdBackupRestore(ios, nil), newCmdBackupVerify(ios, nil))
	return cmd
}

type backupCreateOptions struct {
	IO      *cmdutil.IOStreams
	DataDir string
	File    string // the archive; "-" is stdout
	Output  string // -o: table or json
	Now     func() time.Time
	// KeyFile holds the backup key; created when missing.
	KeyFile string
	// EncryptTo are age recipients; PassphraseFile holds a passphrase.
	EncryptTo      []string
	PassphraseFile string
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
	// CorruptBlobs did not hash to their digest; the archive's database
	// does not reference them.
	CorruptBlobs []string `json:"corruptBlobs"`
	Encrypted    bool     `json:"encrypted"`
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
			"must then treat an archive whose command failed as incomplete; when stdout is a file, its\n" +
			"mode is set to 0600. On a terminal, progress is shown on stderr.\n\n" +
			"--key-file names the backup key that authenticates the archive: 64 hex characters, created\n" +
			"(mode 0600) when the file does not exist. Keep it apart from the archives: restore and verify\n" +
			"need it, and refuse an archive it does not authenticate.\n" +
			"--encrypt-to (an age public key, repeatable) or --passphrase-file encrypts the archive.\n" +
			"Each blob is hashed as it is copied: a corrupt one is left out and reported, as one that\n" +
			"vanished. The initial admin token is never included.",
		Example: "  $ dproxy backup create --data-dir /var/lib/dproxy --key-file /etc/dproxy/backup.key\n" +
			"  $ dproxy backup create --key-file backup.key --encrypt-to age1... --file /backups/dproxy.tar.gz.age\n" +
			"  $ dproxy backup create --key-file backup.key --file - | ssh backup-host 'cat > dproxy.tar.gz'",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := output.ParseFormat(opts.Output); err != nil {
				return &cmdutil.FlagError{Err: fmt.Errorf("-o %s: -o selects the output format (table or json), not the archive: name the archive with --file %s", opts.Output, opts.Output)}
			}
			if opts.File == "" {
				opts.File = "dproxy-backup-" + opts.Now().UTC().Format("20060102-150405") + ".tar.gz"
			}
			if len(opts.EncryptTo) > 0 && opts.PassphraseFile != "" {
				return &cmdutil.FlagError{Err: errors.New("--encrypt-to and --passphrase-file: choose one way to encrypt the archive")}
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
	cmd.Flags().StringVar(&opts.KeyFile, "key-file", "", "backup key that authenticates the archive, created when missing (required)")
	cmd.Flags().StringArrayVar(&opts.EncryptTo, "encrypt-to", nil, "encrypt the archive to this age public key (repeatable)")
	cmd.Flags().StringVar(&opts.PassphraseFile, "passphrase-file", "", "encrypt the archive with the passphrase in this file")
	addOutputFlag(cmd, &opts.Output)
	_ = cmd.MarkFlagDirname("data-dir")
	_ = cmd.MarkFlagFilename("key-file")
	_ = cmd.MarkFlagFilename("passphrase-file")
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
	if opts.KeyFile == "" {
		return &cmdutil.FlagError{Err: errors.New("--key-file is required: it names the backup key that authenticates the archive " +
			"(created, mode 0600, when missing); keep it apart from the archives, restore needs it")}
	}
	key, err := lifecycle.CreateBackupKey(opts.KeyFile)
	if err != nil {
		return &cmdutil.FlagError{Err: fmt.Errorf("--key-file: %w", err)}
	}
	recipients, err := backupRecipients(opts)
	if err != nil {
		return err
	}
	if toStdout {
		// A shell redirect creates the file by the umask: make it private.
		if f, ok := opts.IO.Out.(*os.File); ok {
			if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
				if err := f.Chmod(0o600); err != nil {
					return fmt.Errorf("make the archive on stdout private (chmod 600): %w", err)
				}
			}
		}
	}
	meter := newProgressMeter(opts.IO, "backup", opts.Now)
	var res lifecycle.BackupResult
	write := func(w io.Writer) error {
		var err error
		res, err = lifecycle.CreateBackup(ctx, opts.DataDir, w, lifecycle.BackupOptions{
			Key: key, Compress: toStdout || isCompressed(opts.File), Recipients: recipients, Progress: meter.update})
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
		return p.PrintJSON(backupCreated{Archive: opts.File, DataDir: opts.DataDir, Blobs: res.Blobs, BlobBytes: res.BlobBytes, KeyFiles: keys,
			VanishedBlobs: res.Vanished, CorruptBlobs: digestStrings(res.Corrupt), Encrypted: len(recipients) > 0})
	}
	fmt.Fprintf(say, "wrote %s: %d blobs (%s), key files %s\n", where, res.Blobs, units.Size(res.BlobBytes), strings.Join(res.Keys, ", "))
	for _, d := range res.Corrupt {
		fmt.Fprintf(say, "left out blob %s: its file does not hash to its digest (run dproxy fsck --verify-content --repair)\n", d)
	}
	if len(recipients) == 0 {
		fmt.Fprintln(say, "the archive holds the secret key: store it encrypted and readable only by operators, or pass --encrypt-to")
	}
	return nil
}

func digestStrings(ds []oci.Digest) []string {
	out := make([]string, 0, len(ds))
	for _, d := range ds {
		out = append(out, string(d))
	}
	return out
}

// backupRecipients are the age recipients an archive is encrypted to.
func backupRecipients(opts *backupCreateOptions) ([]ageenc.Recipient, error) {
	var out []ageenc.Recipient
	for _, s := range opts.EncryptTo {
		r, err := ageenc.ParseX25519Recipient(strings.TrimSpace(s))
		if err != nil {
			return nil, &cmdutil.FlagError{Err: fmt.Errorf("--encrypt-to %s: %w; give an age public key (age1...)", s, err)}
		}
		out = append(out, r)
	}
	if opts.PassphraseFile != "" {
		pass, err := readPassphrase(opts.PassphraseFile)
		if err != nil {
			return nil, err
		}
		r, err := ageenc.NewScryptRecipient(pass)
		if err != nil {
			return nil, &cmdutil.FlagError{Err: fmt.Errorf("--passphrase-file: %w", err)}
		}
		out = append(out, r)
	}
	return out, nil
}

// readPassphrase reads the first line of a private passphrase file.
func readPassphrase(path string) (string, error) {
	data, err := keyfile.Read(path, "passphrase file", 4096)
	if err != nil {
		return "", &cmdutil.FlagError{Err: fmt.Errorf("--passphrase-file: %w", err)}
	}
	pass, _, _ := strings.Cut(string(data), "\n")
	pass = strings.TrimRight(pass, "\r")
	if len(pass) < 12 {
		return "", &cmdutil.FlagError{Err: fmt.Errorf("--passphrase-file %s: the passphrase has %d characters; use at least 12", path, len(pass))}
	}
	return pass, nil
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
	archiveReadOptions
}

// archiveReadOptions are how restore and verify read an archive.
type archiveReadOptions struct {
	KeyFile         string
	IdentityFile    string
	PassphraseFile  string
	Unauthenticated bool
}

func (o *archiveReadOptions) addFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.KeyFile, "key-file", "", "backup key the archive was made with (required)")
	cmd.Flags().StringVar(&o.IdentityFile, "identity", "", "age identity file that decrypts an encrypted archive")
	cmd.Flags().StringVar(&o.PassphraseFile, "passphrase-file", "", "file with the passphrase of an encrypted archive")
	cmd.Flags().BoolVar(&o.Unauthenticated, "unauthenticated", false, "accept an archive of an older dproxy, which carries no MAC")
	_ = cmd.MarkFlagFilename("key-file")
	_ = cmd.MarkFlagFilename("identity")
	_ = cmd.MarkFlagFilename("passphrase-file")
}

// lifecycleOptions loads the keys the flags name.
func (o *archiveReadOptions) lifecycleOptions() (lifecycle.RestoreOptions, error) {
	var ro lifecycle.RestoreOptions
	ro.Unauthenticated = o.Unauthenticated
	if o.KeyFile == "" && !o.Unauthenticated {
		return ro, &cmdutil.FlagError{Err: errors.New("--key-file is required: name the backup key the archive was made with")}
	}
	if o.KeyFile != "" {
		k, err := lifecycle.LoadBackupKey(o.KeyFile)
		if err != nil {
			return ro, &cmdutil.FlagError{Err: fmt.Errorf("--key-file: %w", err)}
		}
		ro.Key = k
	}
	if o.IdentityFile != "" {
		f, err := os.Open(o.IdentityFile)
		if err != nil {
			return ro, &cmdutil.FlagError{Err: fmt.Errorf("--identity: %w", err)}
		}
		ids, err := ageenc.ParseIdentities(f)
		f.Close()
		if err != nil {
			return ro, &cmdutil.FlagError{Err: fmt.Errorf("--identity %s: %w", o.IdentityFile, err)}
		}
		ro.Identities = append(ro.Identities, ids...)
	}
	if o.PassphraseFile != "" {
		pass, err := readPassphrase(o.PassphraseFile)
		if err != nil {
			return ro, err
		}
		id, err := ageenc.NewScryptIdentity(pass)
		if err != nil {
			return ro, &cmdutil.FlagError{Err: fmt.Errorf("--passphrase-file: %w", err)}
		}
		ro.Identities = append(ro.Identities, id)
	}
	if v := os.Getenv("DPROXY_SECRET_KEY"); v != "" {
		k, err := secretbox.ParseKey(v)
		if err != nil {
			return ro, fmt.Errorf("DPROXY_SECRET_KEY: %w", err)
		}
		ro.SecretKey = k
	}
	return ro, nil
}

// backupRestored is what `backup restore -o json` prints.
type backupRestored struct {
	Archive         string    `json:"archive"`
	DataDir         string    `json:"dataDir"`
	Blobs           int       `json:"blobs"`
	BlobBytes       int64     `json:"blobBytes"`
	KeyFiles        []string  `json:"keyFiles"`
	BackupCreatedAt time.Time `json:"backupCreatedAt"`
	// DroppedBlobs were bad or missing: not restored, their references
	// deleted (the next pull fetches them again).
	DroppedBlobs []droppedBlob `json:"droppedBlobs"`
	SealedValues int           `json:"sealedValues"`
}

type droppedBlob struct {
	Digest     string `json:"digest"`
	Reason     string `json:"reason"`
	References int64  `json:"references"`
}

func droppedBlobs(ds []lifecycle.DroppedBlob) []droppedBlob {
	out := make([]droppedBlob, 0, len(ds))
	for _, d := range ds {
		out = append(out, droppedBlob{Digest: string(d.Digest), Reason: d.Reason, References: d.Refs})
	}
	return out
}

func newCmdBackupRestore(ios *cmdutil.IOStreams, runF func(context.Context, *backupRestoreOptions) error) *cobra.Command {
	opts := &backupRestoreOptions{IO: ios}
	cmd := &cobra.Command{
		Use:   "restore <file>",
		Short: "Restore a backup archive into an empty data dir",
		Long: "Restore a backup archive into a new or empty data dir, checking everything it restores:\n" +
			"the archive's MAC under --key-file, no duplicate entries and nothing beyond the header's\n" +
			"totals, the database's integrity and schema, every cached manifest against its digest,\n" +
			"that the secret key opens every stored secret and jwt.pem parses, and every blob against\n" +
			"its digest. A bad blob is dropped with its references and reported: it is cache. Anything\n" +
			"else wrong refuses the whole restore and leaves the data dir empty. Nothing is overwritten.\n" +
			"Then start `dproxy serve --data-dir DIR` on it.",
		Example: "  $ dproxy backup restore dproxy-backup-20260301-120000.tar.gz --key-file backup.key --data-dir /var/lib/dproxy\n" +
			"  $ ssh backup-host 'cat dproxy.tar.gz' | dproxy backup restore - --key-file backup.key --data-dir /var/lib/dproxy",
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
	opts.addFlags(cmd)
	addOutputFlag(cmd, &opts.Output)
	_ = cmd.MarkFlagDirname("data-dir")
	return cmd
}

func runBackupRestore(ctx context.Context, opts *backupRestoreOptions) error {
	p, err := cmdutil.NewPrinter(opts.IO, opts.Output)
	if err != nil {
		return err
	}
	in, closeIn, err := openArchiveArg(opts.IO, opts.File)
	if err != nil {
		return err
	}
	defer closeIn()
	ro, err := opts.lifecycleOptions()
	if err != nil {
		return err
	}
	meter := newProgressMeter(opts.IO, "restore", opts.Now)
	ro.Progress = meter.update
	res, err := lifecycle.RestoreBackup(ctx, in, opts.DataDir, ro)
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
		return p.PrintJSON(backupRestored{Archive: opts.File, DataDir: opts.DataDir, Blobs: res.Blobs, BlobBytes: res.BlobBytes, KeyFiles: keys,
			BackupCreatedAt: res.CreatedAt.UTC(), DroppedBlobs: droppedBlobs(res.Dropped), SealedValues: res.SealedValues})
	}
	fmt.Fprintf(opts.IO.Out, "restored %d verified blobs (%s) and key files %s into %s (backup of %s)\n",
		res.Blobs, units.Size(res.BlobBytes), strings.Join(res.Keys, ", "), opts.DataDir, res.CreatedAt.Format(time.RFC3339))
	printDropped(opts.IO.Out, res.Dropped, "dropped")
	return nil
}

func printDropped(w io.Writer, ds []lifecycle.DroppedBlob, verb string) {
	for _, d := range ds {
		fmt.Fprintf(w, "%s blob %s and its %d references: %s (it is cache: the next pull fetches it again)\n", verb, d.Digest, d.Refs, d.Reason)
	}
}

// openArchiveArg opens the archive a command names; - is stdin.
func openArchiveArg(ios *cmdutil.IOStreams, file string) (io.Reader, func(), error) {
	if file == "-" {
		return ios.In, func() {}, nil
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, nil, &cmdutil.FlagError{Err: fmt.Errorf("open backup archive: %w", err)}
	}
	return f, func() { f.Close() }, nil
}

type backupVerifyOptions struct {
	IO     *cmdutil.IOStreams
	File   string
	Output string
	archiveReadOptions
}

// backupVerified is what `backup verify -o json` prints.
type backupVerified struct {
	Archive         string        `json:"archive"`
	Blobs           int           `json:"blobs"`
	BlobBytes       int64         `json:"blobBytes"`
	KeyFiles        []string      `json:"keyFiles"`
	BackupCreatedAt time.Time     `json:"backupCreatedAt"`
	DroppedBlobs    []droppedBlob `json:"droppedBlobs"`
	SealedValues    int           `json:"sealedValues"`
}

func newCmdBackupVerify(ios *cmdutil.IOStreams, runF func(context.Context, *backupVerifyOptions) error) *cobra.Command {
	opts := &backupVerifyOptions{IO: ios}
	cmd := &cobra.Command{
		Use:   "verify <file>",
		Short: "Check a backup archive as a restore would, without restoring it",
		Long: "Run every check of `backup restore` on an archive without restoring it: the MAC, the\n" +
			"entries, the database, the keys and every blob. It fails when a restore would; blobs a\n" +
			"restore would drop are listed. It needs space only for the database.",
		Example: "  $ dproxy backup verify /backups/dproxy.tar.gz --key-file /etc/dproxy/backup.key",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError(cmd, fmt.Errorf("%s takes one backup archive, got %d arguments", cmd.CommandPath(), len(args)))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.File = args[0]
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runBackupVerify(cmd.Context(), opts)
		},
	}
	opts.addFlags(cmd)
	addOutputFlag(cmd, &opts.Output)
	return cmd
}

func runBackupVerify(ctx context.Context, opts *backupVerifyOptions) error {
	p, err := cmdutil.NewPrinter(opts.IO, opts.Output)
	if err != nil {
		return err
	}
	in, closeIn, err := openArchiveArg(opts.IO, opts.File)
	if err != nil {
		return err
	}
	defer closeIn()
	ro, err := opts.lifecycleOptions()
	if err != nil {
		return err
	}
	res, err := lifecycle.VerifyBackup(ctx, in, ro)
	if err != nil {
		return fmt.Errorf("verify %s: %w", opts.File, interrupted(ctx, err))
	}
	if p.JSON() {
		return p.PrintJSON(backupVerified{Archive: opts.File, Blobs: res.Blobs, BlobBytes: res.BlobBytes, KeyFiles: nonNilStrings(res.Keys),
			BackupCreatedAt: res.CreatedAt.UTC(), DroppedBlobs: droppedBlobs(res.Dropped), SealedValues: res.SealedValues})
	}
	fmt.Fprintf(opts.IO.Out, "%s is a sound backup of %s: %d verified blobs (%s), key files %s, %d sealed secrets open\n",
		opts.File, res.CreatedAt.Format(time.RFC3339), res.Blobs, units.Size(res.BlobBytes), strings.Join(res.Keys, ", "), res.SealedValues)
	printDropped(opts.IO.Out, res.Dropped, "a restore would drop")
	return nil
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// interrupted names a copy stopped by Ctrl-C or SIGTERM as such, rather
// than as "context canceled".
func interrupted(ctx context.Context, err error) error {
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return fmt.Errorf("interrupted (%w)", err)
	}
	return err
}
