package lifecycle

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/dproxy/dproxy/internal/blobstore"
	"github.com/dproxy/dproxy/internal/config"
	"github.com/dproxy/dproxy/internal/keyfile"
	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/secretbox"
	"github.com/dproxy/dproxy/internal/store"
)

// A backup is one tar archive (gzip-compressed or not) holding, in order:
//
//	dproxy-backup.json       format version, creation time, counts
//	blobs/sha256/<hex>       every blob file the database snapshot references
//	keys/secret.key          the key that decrypts stored secrets (when a file)
//	keys/jwt.pem             the key that signs registry tokens
//	keys/initial_admin_token the first admin token (when still present)
//	dproxy.db                a consistent snapshot of the database
//
// The database comes last so that references to blobs that garbage
// collection deleted while the backup ran can be dropped from the snapshot
// first: a restored cache never references a file it lacks.
const (
	backupHeaderName = "dproxy-backup.json"
	backupDBName     = "dproxy.db"
	backupBlobPrefix = "blobs/sha256/"
	backupKeyPrefix  = "keys/"
	backupFormat     = 1
)

// backupHeader is the first entry of an archive.
type backupHeader struct {
	Format    int       `json:"format"`
	CreatedAt time.Time `json:"created_at"`
	Blobs     int       `json:"blobs"`
	BlobBytes int64     `json:"blob_bytes"`
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

// BackupResult says what an archive holds.
type BackupResult struct {
	Blobs     int
	BlobBytes int64
	Keys      []string
	// Vanished counts blobs deleted while the backup ran; their references
	// were dropped from the snapshot.
	Vanished int
}

// backupKeys are the files of a data dir that go into keys/: the names
// config.Config gives SecretKeyPath, JWTKeyPath and InitialTokenPath.
var backupKeys = []string{"secret.key", "jwt.pem", "initial_admin_token"}

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

// CreateBackup writes an archive of the data dir dataDir to w as a tar
// stream, gzip-compressed when compress is set. It works while a server
// uses the data dir. progress, when not nil, is called once the total is
// known, as blob bytes are copied, and after each entry. A cancelled ctx
// stops the copy, mid-blob too, with ctx's error.
func CreateBackup(ctx context.Context, dataDir string, w io.Writer, compress bool, progress func(Progress)) (BackupResult, error) {
	cfg := config.Config{DataDir: dataDir}
	var res BackupResult
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

	out := w
	var gz *gzip.Writer
	if compress {
		gz, _ = gzip.NewWriterLevel(w, gzip.BestSpeed) // layers are compressed already
		out = gz
	}
	tw := tar.NewWriter(out)
	now := time.Now().UTC()
	var done int64
	report := func(entry string) {
		if progress != nil {
			progress(Progress{Done: done, Total: total, Entry: entry})
		}
	}
	hdr, _ := json.Marshal(backupHeader{Format: backupFormat, CreatedAt: now, Blobs: len(blobs), BlobBytes: total})
	if err := writeEntry(tw, backupHeaderName, now, int64(len(hdr)), strings.NewReader(string(hdr))); err != nil {
		return res, err
	}
	report("")
	for _, b := range blobs {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		f, err := files.Open(ctx, b.Digest)
		if errors.Is(err, oci.ErrBlobUnknown) {
			// Collected since the snapshot: the snapshot must not keep it.
			if _, err := snap.DropBlob(ctx, b.Digest); err != nil {
				return res, fmt.Errorf("back up %s: %w", dataDir, err)
			}
			res.Vanished++
			total -= b.Size
			continue
		}
		if err != nil {
			return res, fmt.Errorf("back up blob %s: %w", b.Digest, err)
		}
		before := done
		err = writeEntry(tw, backupBlobPrefix+b.Digest.Hex(), now, f.Size(),
			&progressReader{ctx: ctx, r: f, done: &done, report: func() { report(string(b.Digest)) }})
		f.Close()
		if err != nil {
			return res, err
		}
		res.Blobs++
		res.BlobBytes += f.Size()
		done = before + f.Size()
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
		if err := writeEntry(tw, backupKeyPrefix+name, now, int64(len(content)), strings.NewReader(string(content))); err != nil {
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
	if err := writeEntry(tw, backupDBName, now, fi.Size(), db); err != nil {
		return res, err
	}
	report(backupDBName)
	if err := tw.Close(); err != nil {
		return res, fmt.Errorf("finish archive: %w", err)
	}
	if gz != nil {
		if err := gz.Close(); err != nil {
			return res, fmt.Errorf("finish archive: %w", err)
		}
	}
	return res, nil
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

// ErrNotEmpty is returned by RestoreBackup for a data dir that holds
// something already; nothing is written then.
var ErrNotEmpty = errors.New("is not empty")

// RestoreResult says what a restore wrote.
type RestoreResult struct {
	Blobs     int
	BlobBytes int64
	Keys      []string
	CreatedAt time.Time
}

// RestoreBackup unpacks an archive made by CreateBackup into dataDir,
// which must be missing or empty (or ErrNotEmpty is returned). Every blob is verified against its
// digest as it is written, and at the end every blob the database
// references must be present. On any error, what was written is removed
// again, leaving dataDir empty. progress, when not nil, is called once the
// archive's header gave the total, and as blob bytes are written; a
// cancelled ctx stops the restore, mid-blob too.
func RestoreBackup(ctx context.Context, r io.Reader, dataDir string, progress func(Progress)) (res RestoreResult, err error) {
	if err := emptyDir(dataDir); err != nil {
		return res, err
	}
	defer func() {
		if err != nil {
			clearDir(dataDir)
		}
	}()
	cfg := config.Config{DataDir: dataDir}
	files, err := blobstore.NewFS(cfg.BlobDir())
	if err != nil {
		return res, err
	}
	br := bufio.NewReader(r)
	var in io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return res, fmt.Errorf("read archive: %w", err)
		}
		defer gz.Close()
		in = gz
	}
	tr := tar.NewReader(in)
	var hdr backupHeader
	sawHeader, sawDB := false, false
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		th, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return res, fmt.Errorf("read archive: %w (is it a dproxy backup?)", err)
		}
		if th.Typeflag != tar.TypeReg {
			return res, fmt.Errorf("archive entry %q is not a regular file: not a dproxy backup", th.Name)
		}
		if !sawHeader && th.Name != backupHeaderName {
			return res, fmt.Errorf("archive starts with %q, not %s: not a dproxy backup", th.Name, backupHeaderName)
		}
		switch name := th.Name; {
		case name == backupHeaderName:
			if err := json.NewDecoder(io.LimitReader(tr, 1<<20)).Decode(&hdr); err != nil {
				return res, fmt.Errorf("read %s: %w", name, err)
			}
			if hdr.Format != backupFormat {
				return res, fmt.Errorf("archive has format %d; this dproxy reads format %d", hdr.Format, backupFormat)
			}
			sawHeader = true
			res.CreatedAt = hdr.CreatedAt
			if progress != nil {
				progress(Progress{Total: hdr.BlobBytes})
			}
		case strings.HasPrefix(name, backupBlobPrefix):
			d, err := oci.ParseDigest("sha256:" + strings.TrimPrefix(name, backupBlobPrefix))
			if err != nil {
				return res, fmt.Errorf("archive entry %q: %w", name, err)
			}
			done := res.BlobBytes
			in := &progressReader{ctx: ctx, r: tr, done: &done, report: func() {
				if progress != nil {
					progress(Progress{Done: done, Total: hdr.BlobBytes, Entry: string(d)})
				}
			}}
			if err := restoreBlob(ctx, files, d, in); err != nil {
				return res, err
			}
			res.Blobs++
			res.BlobBytes += th.Size
		case strings.HasPrefix(name, backupKeyPrefix):
			key := strings.TrimPrefix(name, backupKeyPrefix)
			if !slices.Contains(backupKeys, key) {
				return res, fmt.Errorf("archive entry %q is not a key file dproxy knows", name)
			}
			if err := restoreFile(filepath.Join(dataDir, key), io.LimitReader(tr, 1<<20)); err != nil {
				return res, err
			}
			res.Keys = append(res.Keys, key)
		case name == backupDBName:
			if err := restoreFile(cfg.DBPath(), tr); err != nil {
				return res, err
			}
			sawDB = true
		default:
			return res, fmt.Errorf("archive entry %q is not part of a dproxy backup", name)
		}
	}
	if !sawHeader || !sawDB {
		return res, errors.New("the archive ends before the database: it is incomplete (was the backup interrupted?)")
	}
	// Every referenced blob must be here, with its recorded size.
	st, err := OpenStoreForMaintenance(ctx, cfg.DBPath())
	if err != nil {
		return res, fmt.Errorf("open the restored database: %w", err)
	}
	defer st.Close()
	for after := oci.Digest(""); ; {
		page, err := st.ReferencedBlobs(ctx, after, 1000)
		if err != nil {
			return res, err
		}
		if len(page) == 0 {
			break
		}
		after = page[len(page)-1].Digest
		for _, b := range page {
			size, err := files.Stat(ctx, b.Digest)
			if err != nil {
				return res, fmt.Errorf("the restored database references blob %s, which the archive lacks: %w", b.Digest, err)
			}
			if size != b.Size {
				return res, fmt.Errorf("restored blob %s has %d bytes, the database records %d", b.Digest, size, b.Size)
			}
		}
	}
	return res, nil
}

// restoreBlob writes one blob through a temp file, verifying its digest
// before committing it.
func restoreBlob(ctx context.Context, files *blobstore.FS, d oci.Digest, r io.Reader) error {
	tmp, err := files.CreateTemp()
	if err != nil {
		return err
	}
	v := oci.NewVerifier(d)
	if _, err := io.Copy(io.MultiWriter(tmp, v), r); err != nil {
		files.Abort(tmp)
		return fmt.Errorf("restore blob %s: %w", d, err)
	}
	if !v.Verified() {
		files.Abort(tmp)
		return fmt.Errorf("restore blob %s: %w: the archive's copy hashes to %s; the archive is damaged", d, oci.ErrDigestInvalid, v.Sum())
	}
	return files.Commit(ctx, d, tmp)
}

// restoreFile writes r to path (mode 0600) atomically.
func restoreFile(path string, r io.Reader) error {
	if err := keyfile.WriteAtomic(path, 0o600, func(w io.Writer) error {
		_, err := io.Copy(w, r)
		return err
	}); err != nil {
		return fmt.Errorf("restore %s: %w", filepath.Base(path), err)
	}
	return nil
}

// emptyDir creates dir (0750) when missing and fails unless it is empty.
func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return fmt.Errorf("create data dir %s: %w", dir, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("read data dir %s: %w", dir, err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("data dir %s %w: restore only into a new or empty directory, so nothing is overwritten", dir, ErrNotEmpty)
	}
	return nil
}

// clearDir removes what a failed restore wrote into dir.
func clearDir(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}
