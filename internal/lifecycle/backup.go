package lifecycle

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/dproxy/dproxy/internal/blobstore"
	"github.com/dproxy/dproxy/internal/config"
	"github.com/dproxy/dproxy/internal/keyfile"
	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/secretbox"
	"github.com/dproxy/dproxy/internal/store"
)

// A backup is one tar archive, optionally gzip-compressed, optionally
// encrypted with age (to recipients or a passphrase) around that, holding
// in order:
//
//	dproxy-backup.json       format version, creation time, totals
//	blobs/sha256/<hex>       every blob file the database snapshot references
//	keys/secret.key          the key that decrypts stored secrets (when a file)
//	keys/jwt.pem             the key that signs registry tokens
//	keys/jwt-previous.pem    retired JWT keys, while their tokens are valid
//	dproxy.db                a consistent snapshot of the database
//	dproxy-backup.mac        the archive's MAC, and the blobs found corrupt
//
// The database comes after the blobs so that references to blobs that
// garbage collection deleted, or that hash wrong, while the backup ran can
// be dropped from the snapshot first: a restored cache never references a
// file it lacks.
//
// The MAC is HMAC-SHA256, under a backup key the operator keeps apart from
// the archives, over every entry's name and every non-blob entry's size and
// bytes, then the list of corrupt blobs. A blob's bytes are not in the MAC:
// its digest authenticates them, and a damaged blob is only dropped on
// restore, not the whole archive.
const (
	backupHeaderName = "dproxy-backup.json"
	backupDBName     = "dproxy.db"
	backupMACName    = "dproxy-backup.mac"
	backupBlobPrefix = "blobs/sha256/"
	backupKeyPrefix  = "keys/"
	backupFormat     = 2
	// backupFormatUnauthenticated archives (no MAC, initial_admin_token
	// included) are restored only when the operator says so.
	backupFormatUnauthenticated = 1
)

// backupHeader is the first entry of an archive.
type backupHeader struct {
	Format    int       `json:"format"`
	CreatedAt time.Time `json:"created_at"`
	Blobs     int       `json:"blobs"`
	BlobBytes int64     `json:"blob_bytes"`
	// DBMaxBytes bounds the database entry (format 2).
	DBMaxBytes int64 `json:"db_max_bytes,omitempty"`
}

// backupTrailer is the content of the last entry.
type backupTrailer struct {
	// Corrupt are blobs whose files did not hash to their digests when the
	// backup was made: their entries hold the bad bytes, and the database
	// does not reference them.
	Corrupt []oci.Digest `json:"corrupt"`
	MAC     string       `json:"mac"`
}

// Progress reports how far a backup, a restore or fsck's content check
// got, in bytes of blobs: Total is known from the first report on (a
// restore learns it from the archive's first entry).
type Progress struct {
	Done, Total int64 // bytes
	Entry       string
}

// progressReader counts the bytes read through it into *done, reports
// them, and stops with ctx's error once ctx is done, so a long copy can be
// watched and interrupted.
type progressReader struct {
	ctx    context.Context
	r      io.Reader
	done   *int64
	report func()
}

func (p *progressReader) Read(b []byte) (int, error) {
	if err := p.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := p.r.Read(b)
	*p.done += int64(n)
	if n > 0 {
		p.report()
	}
	return n, err
}

// BackupKeySize is the length of a backup key in bytes.
const BackupKeySize = 32

// CreateBackupKey writes a new random backup key to path (mode 0600, 64
// hex characters) unless a file is there already, and returns the key at
// path.
func CreateBackupKey(path string) ([]byte, error) {
	data, err := keyfile.LoadOrCreate(path, "backup key file", 2*BackupKeySize+3, func() ([]byte, error) {
		k := make([]byte, BackupKeySize)
		if _, err := rand.Read(k); err != nil {
			return nil, err
		}
		return []byte(hex.EncodeToString(k) + "\n"), nil
	})
	if err != nil {
		return nil, err
	}
	return parseBackupKey(path, data)
}

// LoadBackupKey reads the backup key at path, refused like any key file
// when group or others may read it.
func LoadBackupKey(path string) ([]byte, error) {
	data, err := keyfile.Read(path, "backup key file", 2*BackupKeySize+3)
	if err != nil {
		return nil, err
	}
	return parseBackupKey(path, data)
}

func parseBackupKey(path string, data []byte) ([]byte, error) {
	s := strings.TrimSpace(string(data))
	k, err := hex.DecodeString(s)
	if err != nil || len(k) != BackupKeySize {
		return nil, fmt.Errorf("backup key file %s must hold %d hex characters (as `dproxy backup create --key-file` writes)", path, 2*BackupKeySize)
	}
	return k, nil
}

// transcript is the MAC over an archive as it is written or read.
type transcript struct{ h hash.Hash }

func newTranscript(key []byte) *transcript { return &transcript{hmac.New(sha256.New, key)} }

// entry starts an entry; withBody says its bytes follow through Write.
func (t *transcript) entry(name string, size int64, withBody bool) {
	if withBody {
		fmt.Fprintf(t.h, "entry\x00%s\x00%d\x00", name, size)
	} else {
		fmt.Fprintf(t.h, "blob\x00%s\x00", name)
	}
}

func (t *transcript) Write(b []byte) (int, error) { return t.h.Write(b) }

// sum ends the transcript with the list of corrupt blobs.
func (t *transcript) sum(corrupt []oci.Digest) []byte {
	fmt.Fprintf(t.h, "corrupt\x00%d\x00", len(corrupt))
	for _, d := range corrupt {
		fmt.Fprintf(t.h, "%s\x00", d)
	}
	return t.h.Sum(nil)
}

// BackupOptions say how CreateBackup writes an archive.
type BackupOptions struct {
	// Key authenticates the archive (BackupKeySize bytes, required).
	Key []byte
	// Compress gzip-compresses the tar stream.
	Compress bool
	// Recipients, when any, encrypt the archive with age: public keys, or
	// one age.ScryptRecipient for a passphrase.
	Recipients []age.Recipient
	// Progress, when not nil, is called once the total is known, as blob
	// bytes are copied, and after each entry.
	Progress func(Progress)
}

// BackupResult says what an archive holds.
type BackupResult struct {
	Blobs     int
	BlobBytes int64
	Keys      []string
	// Vanished counts blobs deleted while the backup ran; their references
	// were dropped from the snapshot.
	Vanished int
	// Corrupt are blobs whose files did not hash to their digest; their
	// references were dropped from the snapshot, as for vanished ones.
	Corrupt []oci.Digest
}

// backupKeys are the files of a data dir that go into keys/: the names
// config.Config gives SecretKeyPath, JWTKeyPath and PreviousJWTKeysPath
// (retired JWT keys whose tokens are still valid). The initial admin
// token stays out: the database holds its hash, and an archive must not
// hold a working credential.
var backupKeys = []string{"secret.key", "jwt.pem", "jwt-previous.pem"}

// throwawayBox opens a store without the instance's key: backup, restore
// and fsck never read a secret.
func throwawayBox() (*secretbox.Box, error) {
	key := make([]byte, secretbox.KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	return secretbox.New(key)
}

// OpenStoreForMaintenance opens the SQLite store of a data dir for fsck,
// backup and restore, which never read a secret.
func OpenStoreForMaintenance(ctx context.Context, dbPath string) (*store.Store, error) {
	box, err := throwawayBox()
	if err != nil {
		return nil, err
	}
	return store.OpenSQLite(ctx, dbPath, box)
}

// OpenCacheStore opens the database cfg names for fsck: the SQLite file of
// the data dir, or the PostgreSQL database replicas share. fsck reads and
// drops blob references only, never a secret.
func OpenCacheStore(ctx context.Context, cfg config.Config) (*store.Store, error) {
	if !store.IsPostgres(cfg.Database) {
		return OpenStoreForMaintenance(ctx, cfg.DBPath())
	}
	box, err := throwawayBox()
	if err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, cfg.Database, cfg.DBPath(), box)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", store.RedactDSN(cfg.Database), err)
	}
	return st, nil
}

// CreateBackup writes an archive of the data dir dataDir to w. It works
// while a server uses the data dir. Every blob is hashed as it is written:
// one that does not match its digest is reported in Corrupt and the
// snapshot drops its references. A cancelled ctx stops the copy, mid-blob
// too, with ctx's error.
func CreateBackup(ctx context.Context, dataDir string, w io.Writer, opts BackupOptions) (BackupResult, error) {
	cfg := config.Config{DataDir: dataDir}
	var res BackupResult
	if len(opts.Key) != BackupKeySize {
		return res, fmt.Errorf("back up %s: a backup key of %d bytes is required to authenticate the archive", dataDir, BackupKeySize)
	}
	if _, err := os.Stat(cfg.DBPath()); err != nil {
		return res, fmt.Errorf("back up %s: no database there (%w); is --data-dir right?", dataDir, err)
	}
	files, err := blobstore.NewFS(cfg.BlobDir())
	if err != nil {
		return res, err
	}
	work, err := os.MkdirTemp("", "dproxy-backup-*")
	if err != nil {
		return res, fmt.Errorf("back up %s: %w", dataDir, err)
	}
	defer os.RemoveAll(work)
	snapPath := filepath.Join(work, backupDBName)
	if err := store.SnapshotSQLite(ctx, cfg.DBPath(), snapPath); err != nil {
		return res, fmt.Errorf("back up %s: %w", dataDir, err)
	}
	snap, err := OpenStoreForMaintenance(ctx, snapPath)
	if err != nil {
		return res, fmt.Errorf("back up %s: open the snapshot: %w", dataDir, err)
	}
	defer func() {
		if snap != nil {
			snap.Close()
		}
	}()
	snapInfo, err := os.Stat(snapPath)
	if err != nil {
		return res, fmt.Errorf("back up %s: %w", dataDir, err)
	}
	// Dropping references never grows the file much; the bound only keeps
	// a restore from writing an unbounded database entry.
	dbMax := 2*snapInfo.Size() + 1<<20
	var blobs []store.StoredBlob
	var total int64
	for after := oci.Digest(""); ; {
		page, err := snap.ReferencedBlobs(ctx, after, 1000)
		if err != nil {
			return res, fmt.Errorf("back up %s: %w", dataDir, err)
		}
		if len(page) == 0 {
			break
		}
		after = page[len(page)-1].Digest
		blobs = append(blobs, page...)
		for _, b := range page {
			total += b.Size
		}
	}

	sink := w
	var enc io.WriteCloser
	if len(opts.Recipients) > 0 {
		if enc, err = age.Encrypt(w, opts.Recipients...); err != nil {
			return res, fmt.Errorf("encrypt the archive: %w", err)
		}
		sink = enc
	}
	out := sink
	var gz *gzip.Writer
	if opts.Compress {
		gz, _ = gzip.NewWriterLevel(sink, gzip.BestSpeed) // layers are compressed already
		out = gz
	}
	tw := tar.NewWriter(out)
	mac := newTranscript(opts.Key)
	now := time.Now().UTC()
	var done int64
	report := func(entry string) {
		if opts.Progress != nil {
			opts.Progress(Progress{Done: done, Total: total, Entry: entry})
		}
	}
	writeSmall := func(name string, content []byte) error {
		mac.entry(name, int64(len(content)), true)
		return writeEntry(tw, name, now, int64(len(content)), io.TeeReader(strings.NewReader(string(content)), mac))
	}
	hdr, _ := json.Marshal(backupHeader{Format: backupFormat, CreatedAt: now, Blobs: len(blobs), BlobBytes: total, DBMaxBytes: dbMax})
	if err := writeSmall(backupHeaderName, hdr); err != nil {
		return res, err
	}
	report("")
	dropRefs := func(d oci.Digest) error {
		if _, err := snap.DropBlob(ctx, d); err != nil {
			return fmt.Errorf("back up %s: %w", dataDir, err)
		}
		return nil
	}
	for _, b := range blobs {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		f, err := files.Open(ctx, b.Digest)
		if errors.Is(err, oci.ErrBlobUnknown) {
			// Collected since the snapshot: the snapshot must not keep it.
			if err := dropRefs(b.Digest); err != nil {
				return res, err
			}
			res.Vanished++
			total -= b.Size
			continue
		}
		if err != nil {
			return res, fmt.Errorf("back up blob %s: %w", b.Digest, err)
		}
		before := done
		name := backupBlobPrefix + b.Digest.Hex()
		v := oci.NewVerifier(b.Digest)
		mac.entry(name, f.Size(), false)
		err = writeEntry(tw, name, now, f.Size(), io.TeeReader(
			&progressReader{ctx: ctx, r: f, done: &done, report: func() { report(string(b.Digest)) }}, v))
		f.Close()
		if err != nil {
			return res, err
		}
		done = before + f.Size()
		if !v.Verified() {
			// The entry is written; the snapshot forgets the blob, and the
			// trailer names it so that a restore expects it bad.
			if err := dropRefs(b.Digest); err != nil {
				return res, err
			}
			res.Corrupt = append(res.Corrupt, b.Digest)
			continue
		}
		res.Blobs++
		res.BlobBytes += f.Size()
	}
	for _, name := range backupKeys {
		path := filepath.Join(dataDir, name)
		content, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return res, fmt.Errorf("back up key file %s: %w", path, err)
		}
		if err := writeSmall(backupKeyPrefix+name, content); err != nil {
			return res, err
		}
		res.Keys = append(res.Keys, name)
		report(name)
	}
	err = snap.Close()
	snap = nil
	if err != nil {
		return res, fmt.Errorf("back up %s: close the snapshot: %w", dataDir, err)
	}
	db, err := os.Open(snapPath)
	if err != nil {
		return res, fmt.Errorf("back up %s: %w", dataDir, err)
	}
	defer db.Close()
	fi, err := db.Stat()
	if err != nil {
		return res, fmt.Errorf("back up %s: %w", dataDir, err)
	}
	if fi.Size() > dbMax {
		return res, fmt.Errorf("back up %s: the snapshot grew to %d bytes, beyond the %d the header announced", dataDir, fi.Size(), dbMax)
	}
	mac.entry(backupDBName, fi.Size(), true)
	if err := writeEntry(tw, backupDBName, now, fi.Size(), io.TeeReader(db, mac)); err != nil {
		return res, err
	}
	report(backupDBName)
	trailer, _ := json.Marshal(backupTrailer{Corrupt: nonNil(res.Corrupt), MAC: hex.EncodeToString(mac.sum(res.Corrupt))})
	if err := writeEntry(tw, backupMACName, now, int64(len(trailer)), strings.NewReader(string(trailer))); err != nil {
		return res, err
	}
	if err := tw.Close(); err != nil {
		return res, fmt.Errorf("finish archive: %w", err)
	}
	if gz != nil {
		if err := gz.Close(); err != nil {
			return res, fmt.Errorf("finish archive: %w", err)
		}
	}
	if enc != nil {
		if err := enc.Close(); err != nil {
			return res, fmt.Errorf("finish archive: %w", err)
		}
	}
	return res, nil
}

func nonNil(ds []oci.Digest) []oci.Digest {
	if ds == nil {
		return []oci.Digest{}
	}
	return ds
}

// writeEntry adds a regular file of exactly size bytes read from r.
func writeEntry(tw *tar.Writer, name string, mod time.Time, size int64, r io.Reader) error {
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o600, ModTime: mod, Format: tar.FormatPAX}); err != nil {
		return fmt.Errorf("write %s to the archive: %w", name, err)
	}
	if _, err := io.CopyN(tw, r, size); err != nil {
		return fmt.Errorf("write %s to the archive: %w", name, err)
	}
	return nil
}
