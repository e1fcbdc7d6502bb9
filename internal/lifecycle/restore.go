package lifecycle

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
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

// ErrNotEmpty is returned by RestoreBackup for a data dir that holds
// something already; nothing is written then.
var ErrNotEmpty = errors.New("is not empty")

// ErrEncrypted is returned for an encrypted archive when no identity or
// passphrase was given.
var ErrEncrypted = errors.New("the archive is encrypted with age")

// RestoreOptions say how an archive is read.
type RestoreOptions struct {
	// Key is the backup key the archive was made with (required for
	// authenticated archives).
	Key []byte
	// Unauthenticated accepts an archive of format 1, which has no MAC;
	// every other check still applies.
	Unauthenticated bool
	// Identities decrypt an encrypted archive: age identities, or one
	// age.ScryptIdentity for a passphrase.
	Identities []age.Identity
	// SecretKey opens the sealed values when the archive has no
	// keys/secret.key (the server took its key from DPROXY_SECRET_KEY).
	SecretKey []byte
	// Progress, when not nil, is called once the archive's header gave the
	// total, and as blob bytes are read.
	Progress func(Progress)
}

// RestoreResult says what a restore wrote, or a verification found.
type RestoreResult struct {
	Blobs     int
	BlobBytes int64
	Keys      []string
	CreatedAt time.Time
	// SealedValues counts the secrets the restored secret key opened.
	SealedValues int
	// Dropped are bad blobs: their files were not restored and their
	// references were deleted (the next pull fetches them again).
	Dropped []DroppedBlob
	// Unreferenced counts blob entries the database does not reference;
	// they were not restored.
	Unreferenced int
	// CorruptAtBackup are blobs the backup found corrupt and left out.
	CorruptAtBackup []oci.Digest
}

// DroppedBlob is a blob a restore did not restore.
type DroppedBlob struct {
	Digest oci.Digest
	Reason string
	// Refs is how many references to it were deleted.
	Refs int64
}

// Size limits of the small entries.
const (
	maxHeaderEntry  = 64 << 10
	maxKeyEntry     = 64 << 10
	maxTrailerEntry = 16 << 20
)

// freeSpace reports the bytes available in dir; a variable so tests can
// stand in a full disk.
var freeSpace = diskFree

// RestoreBackup unpacks an archive made by CreateBackup into dataDir, which
// must be missing or empty (or ErrNotEmpty is returned), checking
// everything it restores:
//
//   - the archive's MAC under opts.Key, no duplicate or unknown entries,
//     and no entry beyond the header's totals, which must fit on the disk;
//   - the database: SQLite's integrity check and exactly dproxy's schema
//     (read with trusted_schema off), every cached manifest's bytes
//     against its digest;
//   - the secret key opens every sealed value, and jwt.pem parses;
//   - every blob against its digest.
//
// A bad blob is dropped with its references and reported in Dropped; blobs
// the database does not reference are not restored. Anything else wrong
// fails the restore and removes what was written, leaving dataDir empty.
// A cancelled ctx stops the restore, mid-blob too.
func RestoreBackup(ctx context.Context, r io.Reader, dataDir string, opts RestoreOptions) (res RestoreResult, err error) {
	if err := emptyDir(dataDir); err != nil {
		return res, err
	}
	defer func() {
		if err != nil {
			clearDir(dataDir)
		}
	}()
	return readBackup(ctx, r, dataDir, true, opts)
}

// VerifyBackup runs every check of RestoreBackup on an archive without
// restoring it: blobs are hashed and discarded, the database and keys are
// checked in a temporary directory that is removed afterwards. Dropped
// lists the blobs a restore would drop.
func VerifyBackup(ctx context.Context, r io.Reader, opts RestoreOptions) (RestoreResult, error) {
	dir, err := os.MkdirTemp("", "dproxy-verify-*")
	if err != nil {
		return RestoreResult{}, err
	}
	defer os.RemoveAll(dir)
	return readBackup(ctx, r, dir, false, opts)
}

// readBackup reads an archive into dataDir: the database and keys always,
// the blobs when keepBlobs is set.
func readBackup(ctx context.Context, r io.Reader, dataDir string, keepBlobs bool, opts RestoreOptions) (res RestoreResult, err error) {
	cfg := config.Config{DataDir: dataDir}
	files, err := blobstore.NewFS(cfg.BlobDir())
	if err != nil {
		return res, err
	}
	in, err := openArchive(r, opts.Identities)
	if err != nil {
		return res, err
	}
	tr := tar.NewReader(in)
	mac := newTranscript(opts.Key)
	var hdr backupHeader
	var trailer *backupTrailer
	var wantMAC []byte
	seen := make(map[string]bool)
	keys := make(map[string][]byte)
	good := make(map[oci.Digest]int64) // verified blobs and their sizes
	bad := make(map[oci.Digest]string) // blob entries that did not verify
	var blobEntries int
	var blobBytes int64
	sawDB := false
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
		name := th.Name
		if th.Typeflag != tar.TypeReg {
			return res, fmt.Errorf("archive entry %q is not a regular file: not a dproxy backup", name)
		}
		if seen[name] {
			return res, fmt.Errorf("archive entry %q appears twice: the archive was tampered with", name)
		}
		seen[name] = true
		if len(seen) == 1 && name != backupHeaderName {
			return res, fmt.Errorf("archive starts with %q, not %s: not a dproxy backup", name, backupHeaderName)
		}
		if trailer != nil {
			return res, fmt.Errorf("archive entry %q follows %s, which must be last: the archive was tampered with", name, backupMACName)
		}
		if th.Size < 0 {
			return res, fmt.Errorf("archive entry %q has a negative size", name)
		}
		authenticated := hdr.Format == backupFormat
		switch {
		case name == backupHeaderName:
			if th.Size > maxHeaderEntry {
				return res, fmt.Errorf("archive header of %d bytes is too large: not a dproxy backup", th.Size)
			}
			mac.entry(name, th.Size, true)
			raw, err := io.ReadAll(io.TeeReader(tr, mac))
			if err != nil {
				return res, fmt.Errorf("read %s: %w", name, err)
			}
			if err := json.Unmarshal(raw, &hdr); err != nil {
				return res, fmt.Errorf("read %s: %w", name, err)
			}
			if err := checkHeader(hdr, opts); err != nil {
				return res, err
			}
			if keepBlobs {
				if err := checkFree(dataDir, hdr); err != nil {
					return res, err
				}
			}
			res.CreatedAt = hdr.CreatedAt
			if opts.Progress != nil {
				opts.Progress(Progress{Total: hdr.BlobBytes})
			}
		case strings.HasPrefix(name, backupBlobPrefix):
			d, err := oci.ParseDigest("sha256:" + strings.TrimPrefix(name, backupBlobPrefix))
			if err != nil {
				return res, fmt.Errorf("archive entry %q: %w", name, err)
			}
			if sawDB && authenticated {
				return res, fmt.Errorf("archive entry %q follows the database: the archive was tampered with", name)
			}
			blobEntries++
			if blobEntries > hdr.Blobs || blobBytes+th.Size > hdr.BlobBytes {
				return res, fmt.Errorf("archive entry %q (%d bytes) goes beyond the header's totals of %d blobs, %d bytes: the archive was tampered with",
					name, th.Size, hdr.Blobs, hdr.BlobBytes)
			}
			blobBytes += th.Size
			mac.entry(name, th.Size, false)
			done := blobBytes - th.Size
			src := &progressReader{ctx: ctx, r: tr, done: &done, report: func() {
				if opts.Progress != nil {
					opts.Progress(Progress{Done: done, Total: hdr.BlobBytes, Entry: string(d)})
				}
			}}
			sum, ok, err := readBlob(ctx, files, d, src, keepBlobs)
			if err != nil {
				return res, err
			}
			if ok {
				good[d] = th.Size
			} else {
				bad[d] = "the archive's copy hashes to " + string(sum)
			}
		case strings.HasPrefix(name, backupKeyPrefix):
			key := strings.TrimPrefix(name, backupKeyPrefix)
			legacy := !authenticated && key == "initial_admin_token"
			if !slices.Contains(backupKeys, key) && !legacy {
				return res, fmt.Errorf("archive entry %q is not a key file dproxy knows", name)
			}
			if th.Size > maxKeyEntry {
				return res, fmt.Errorf("archive entry %q of %d bytes is too large for a key file", name, th.Size)
			}
			mac.entry(name, th.Size, true)
			content, err := io.ReadAll(io.TeeReader(tr, mac))
			if err != nil {
				return res, fmt.Errorf("read %s: %w", name, err)
			}
			if legacy {
				continue // a working credential: never restored
			}
			keys[key] = content
		case name == backupDBName:
			if authenticated && th.Size > hdr.DBMaxBytes {
				return res, fmt.Errorf("archive entry %q of %d bytes goes beyond the header's %d: the archive was tampered with", name, th.Size, hdr.DBMaxBytes)
			}
			mac.entry(name, th.Size, true)
			if err := restoreFile(cfg.DBPath(), io.TeeReader(tr, mac)); err != nil {
				return res, err
			}
			sawDB = true
		case name == backupMACName && authenticated:
			if th.Size > maxTrailerEntry {
				return res, fmt.Errorf("archive entry %q of %d bytes is too large", name, th.Size)
			}
			var t backupTrailer
			if err := json.NewDecoder(tr).Decode(&t); err != nil {
				return res, fmt.Errorf("read %s: %w", name, err)
			}
			trailer = &t
			wantMAC = mac.sum(t.Corrupt)
		default:
			return res, fmt.Errorf("archive entry %q is not part of a dproxy backup", name)
		}
	}
	if !sawDB {
		return res, errors.New("the archive ends before the database: it is incomplete (was the backup interrupted?)")
	}
	if hdr.Format == backupFormat {
		if trailer == nil {
			return res, fmt.Errorf("the archive ends without its MAC (%s): it is incomplete or was tampered with", backupMACName)
		}
		got, err := hex.DecodeString(trailer.MAC)
		if err != nil || !hmac.Equal(got, wantMAC) {
			return res, errors.New("the archive's MAC does not match: it was made with another backup key, or tampered with; nothing was restored")
		}
		res.CorruptAtBackup = trailer.Corrupt
		for _, d := range trailer.Corrupt {
			delete(bad, d)
		}
	}
	if err := checkDatabase(ctx, cfg.DBPath(), keys, opts, &res); err != nil {
		return res, err
	}
	for _, name := range backupKeys {
		if content, ok := keys[name]; ok {
			if err := restoreFile(filepath.Join(dataDir, name), bytes.NewReader(content)); err != nil {
				return res, err
			}
			res.Keys = append(res.Keys, name)
		}
	}
	if err := settleBlobs(ctx, cfg.DBPath(), files, good, bad, keepBlobs, &res); err != nil {
		return res, err
	}
	return res, nil
}

// openArchive undoes the encryption and compression of an archive.
func openArchive(r io.Reader, ids []age.Identity) (io.Reader, error) {
	br := bufio.NewReader(r)
	const ageMagic = "age-encryption.org/"
	if magic, _ := br.Peek(len(ageMagic)); string(magic) == ageMagic {
		if len(ids) == 0 {
			return nil, fmt.Errorf("%w: pass --identity FILE or --passphrase-file FILE", ErrEncrypted)
		}
		dec, err := age.Decrypt(br, ids...)
		if err != nil {
			return nil, fmt.Errorf("decrypt the archive: %w", err)
		}
		br = bufio.NewReader(dec)
	}
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("read archive: %w", err)
		}
		return gz, nil
	}
	return br, nil
}

func checkHeader(hdr backupHeader, opts RestoreOptions) error {
	switch hdr.Format {
	case backupFormat:
		if len(opts.Key) != BackupKeySize {
			return errors.New("the archive is authenticated: pass the backup key it was made with (--key-file)")
		}
	case backupFormatUnauthenticated:
		if !opts.Unauthenticated {
			return errors.New("the archive has format 1, which carries no MAC: nothing shows it was not tampered with; " +
				"pass --unauthenticated to restore it anyway (every other check still applies)")
		}
	default:
		return fmt.Errorf("archive has format %d; this dproxy reads formats %d and %d", hdr.Format, backupFormatUnauthenticated, backupFormat)
	}
	if hdr.Blobs < 0 || hdr.BlobBytes < 0 || hdr.DBMaxBytes < 0 {
		return errors.New("the archive's header has negative totals: not a dproxy backup")
	}
	return nil
}

// checkFree refuses a restore whose blobs and database would not fit.
func checkFree(dir string, hdr backupHeader) error {
	free, err := freeSpace(dir)
	if err != nil {
		return nil // unknown: the writes themselves will tell
	}
	if need := hdr.BlobBytes + hdr.DBMaxBytes; need > free {
		return fmt.Errorf("the archive needs up to %d bytes and %s has %d free: free some space or restore elsewhere", need, dir, free)
	}
	return nil
}

// readBlob hashes one blob entry and, when keep is set, stores it once it
// verified. ok says whether it matched d; sum is what it hashed to.
func readBlob(ctx context.Context, files *blobstore.FS, d oci.Digest, r io.Reader, keep bool) (sum oci.Digest, ok bool, err error) {
	v := oci.NewVerifier(d)
	if !keep {
		if _, err := io.Copy(v, r); err != nil {
			return "", false, fmt.Errorf("read blob %s: %w", d, err)
		}
		return v.Sum(), v.Verified(), nil
	}
	tmp, err := files.CreateTemp()
	if err != nil {
		return "", false, err
	}
	if _, err := io.Copy(io.MultiWriter(tmp, v), r); err != nil {
		files.Abort(tmp)
		return "", false, fmt.Errorf("restore blob %s: %w", d, err)
	}
	if !v.Verified() {
		files.Abort(tmp)
		return v.Sum(), false, nil
	}
	return v.Sum(), true, files.Commit(ctx, d, tmp)
}

// checkDatabase vets the restored database and the keys against it.
func checkDatabase(ctx context.Context, dbPath string, keys map[string][]byte, opts RestoreOptions, res *RestoreResult) error {
	if err := store.CheckSQLiteFile(ctx, dbPath); err != nil {
		return fmt.Errorf("the archive's database: %w", err)
	}
	st, err := OpenStoreForMaintenance(ctx, dbPath)
	if err != nil {
		return fmt.Errorf("open the archive's database: %w", err)
	}
	defer st.Close()
	bad, err := st.CheckManifestDigests(ctx)
	if err != nil {
		return err
	}
	if len(bad) > 0 {
		m := bad[0]
		return fmt.Errorf("the archive's database holds %d cached manifests whose bytes do not match their digest, the first %s %s:%s (row %d): the archive was tampered with",
			len(bad), m.Table, m.Image, m.Ref, m.ID)
	}
	secret, ok := keys["secret.key"]
	var key []byte
	switch {
	case ok:
		if key, err = secretbox.ParseKey(string(secret)); err != nil {
			return fmt.Errorf("the archive's secret.key: %w", err)
		}
	case opts.SecretKey != nil:
		key = opts.SecretKey
	}
	box, err := throwawayBox()
	if key != nil {
		box, err = secretbox.New(key)
	}
	if err != nil {
		return err
	}
	if res.SealedValues, err = st.CheckSealed(ctx, box); err != nil {
		if key == nil {
			return fmt.Errorf("the archive has no secret.key and its database holds sealed secrets: set DPROXY_SECRET_KEY to the key the server used (%w)", err)
		}
		return fmt.Errorf("the archive's secret key does not open its database's secrets: %w", err)
	}
	if prev, ok := keys["jwt-previous.pem"]; ok {
		if err := checkPublicKeys(prev); err != nil {
			return fmt.Errorf("the archive's jwt-previous.pem: %w", err)
		}
	}
	if pemKey, ok := keys["jwt.pem"]; ok {
		if err := checkSigningKey(pemKey); err != nil {
			return fmt.Errorf("the archive's jwt.pem: %w", err)
		}
	}
	return nil
}

// checkSigningKey accepts what the server accepts as its JWT signing key:
// a P-256 ECDSA key in a PKCS #8 or SEC 1 PEM block.
func checkSigningKey(data []byte) error {
	block, _ := pem.Decode(data)
	if block == nil {
		return errors.New("no PEM block found")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return fmt.Errorf("unexpected PEM block %q", block.Type)
	}
	if err != nil {
		return err
	}
	if ec, ok := key.(*ecdsa.PrivateKey); !ok || ec.Curve != elliptic.P256() {
		return errors.New("not a P-256 ECDSA key")
	}
	return nil
}

// checkPublicKeys accepts PEM PUBLIC KEY blocks of ECDSA keys, and
// nothing else.
func checkPublicKeys(data []byte) error {
	for rest := bytes.TrimSpace(data); len(rest) > 0; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil || block.Type != "PUBLIC KEY" {
			return errors.New("want PUBLIC KEY blocks only")
		}
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if _, ok := k.(*ecdsa.PublicKey); err != nil || !ok {
			return errors.New("a block is not an ECDSA public key")
		}
		rest = bytes.TrimSpace(rest)
	}
	return nil
}

// settleBlobs makes the blobs agree with the database: a referenced blob
// that is bad or missing is dropped with its references, and blobs nothing
// references are removed.
func settleBlobs(ctx context.Context, dbPath string, files *blobstore.FS, good map[oci.Digest]int64, bad map[oci.Digest]string,
	keep bool, res *RestoreResult) error {
	st, err := OpenStoreForMaintenance(ctx, dbPath)
	if err != nil {
		return fmt.Errorf("open the restored database: %w", err)
	}
	defer st.Close()
	var refs []store.StoredBlob
	for after := oci.Digest(""); ; {
		page, err := st.ReferencedBlobs(ctx, after, 1000)
		if err != nil {
			return err
		}
		if len(page) == 0 {
			break
		}
		after = page[len(page)-1].Digest
		refs = append(refs, page...)
	}
	referenced := make(map[oci.Digest]bool, len(refs))
	for _, b := range refs {
		referenced[b.Digest] = true
		size, ok := good[b.Digest]
		reason := ""
		switch {
		case bad[b.Digest] != "":
			reason = bad[b.Digest]
		case !ok:
			reason = "the archive lacks it"
		case size != b.Size:
			reason = fmt.Sprintf("it has %d bytes, the database records %d", size, b.Size)
		}
		if reason == "" {
			res.Blobs++
			res.BlobBytes += size
			continue
		}
		n, err := st.DropBlob(ctx, b.Digest)
		if err != nil {
			return err
		}
		if ok && keep {
			if err := files.Delete(ctx, b.Digest); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		delete(bad, b.Digest)
		res.Dropped = append(res.Dropped, DroppedBlob{Digest: b.Digest, Reason: reason, Refs: n})
	}
	for d, reason := range bad {
		res.Dropped = append(res.Dropped, DroppedBlob{Digest: d, Reason: reason})
	}
	slices.SortFunc(res.Dropped, func(a, b DroppedBlob) int { return strings.Compare(string(a.Digest), string(b.Digest)) })
	for d := range good {
		if referenced[d] {
			continue
		}
		res.Unreferenced++
		if keep {
			if err := files.Delete(ctx, d); err != nil {
				return err
			}
		}
	}
	return nil
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
