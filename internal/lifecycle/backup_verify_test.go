package lifecycle

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/dproxy/dproxy/internal/blobstore"
	"github.com/dproxy/dproxy/internal/config"
	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/secretbox"
	"github.com/dproxy/dproxy/internal/store"
)

// Restore is tested against archives an attacker or a failing disk could
// produce: each is made from a real data dir by rewriting entries, and
// re-authenticated with the backup key unless the case is about the MAC,
// so that each check is shown to hold on its own.

var backupKey = bytes.Repeat([]byte{7}, BackupKeySize)

// source is a data dir with a user, a group with a sealed Docker Hub
// secret, a token, a cached manifest and two blobs, and its key files.
type source struct {
	dir      string
	st       *store.Store
	files    *blobstore.FS
	blobs    []oci.Digest
	tokenID  int64
	manifest oci.Digest
}

func newSource(t *testing.T) *source {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	cfg := config.Config{DataDir: dir}
	key, err := secretbox.LoadOrCreateKey(cfg.SecretKeyPath())
	if err != nil {
		t.Fatal(err)
	}
	box, err := secretbox.New(key)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenSQLite(ctx, cfg.DBPath(), box)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	files, err := blobstore.NewFS(cfg.BlobDir())
	if err != nil {
		t.Fatal(err)
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(ec)
	if err := os.WriteFile(cfg.JWTKeyPath(), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg.InitialTokenPath(), []byte("dpat-initial-admin\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &source{dir: dir, st: st, files: files}
	u, err := st.CreateUser(ctx, store.User{Username: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	g, err := st.CreateGroup(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.UpdateProxySetting(ctx, store.ProxySetting{GroupID: g.ID, Enabled: true, Identity: "hubuser", Secret: "hub-secret"}); err != nil {
		t.Fatal(err)
	}
	tok, err := st.CreateToken(ctx, store.Token{Kind: store.TokenPersonal, Name: "ci", UserID: u.ID, Scopes: []string{"api"}, Hash: []byte("hash-of-the-ci-token")})
	if err != nil {
		t.Fatal(err)
	}
	s.tokenID = tok.ID
	content := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}`)
	s.manifest = oci.FromBytes(content)
	if _, err := st.PutManifest(ctx, store.Manifest{OwnerID: g.ID, Image: "library/alpine", Reference: "latest", Digest: s.manifest,
		MediaType: "application/vnd.oci.image.manifest.v1+json", Content: content}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{3000, 5000} {
		b := make([]byte, n)
		rand.Read(b)
		d := oci.FromBytes(b)
		tmp, err := files.CreateTemp()
		if err != nil {
			t.Fatal(err)
		}
		tmp.Write(b)
		if err := files.Commit(ctx, d, tmp); err != nil {
			t.Fatal(err)
		}
		if err := st.PutBlob(ctx, store.Blob{OwnerID: g.ID, Digest: d, Size: int64(n)}); err != nil {
			t.Fatal(err)
		}
		s.blobs = append(s.blobs, d)
	}
	return s
}

func (s *source) backup(t *testing.T) ([]byte, BackupResult) {
	t.Helper()
	var buf bytes.Buffer
	res, err := CreateBackup(context.Background(), s.dir, &buf, BackupOptions{Key: backupKey})
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), res
}

type entry struct {
	name string
	body []byte
}

func readEntries(t *testing.T, archive []byte) []entry {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(archive))
	var out []entry
	for {
		th, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, entry{th.Name, b})
	}
}

// writeEntries builds an archive of entries; with key set, the MAC
// trailer is computed afresh (keeping its corrupt list).
func writeEntries(t *testing.T, entries []entry, key []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mac := newTranscript(key)
	for _, e := range entries {
		body := e.body
		if e.name == backupMACName && key != nil {
			var tr backupTrailer
			if err := json.Unmarshal(body, &tr); err != nil {
				t.Fatal(err)
			}
			tr.MAC = hex.EncodeToString(mac.sum(tr.Corrupt))
			body, _ = json.Marshal(tr)
		} else {
			blob := strings.HasPrefix(e.name, backupBlobPrefix)
			mac.entry(e.name, int64(len(body)), !blob)
			if !blob {
				mac.Write(body)
			}
		}
		if err := writeEntry(tw, e.name, time.Now(), int64(len(body)), bytes.NewReader(body)); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	return buf.Bytes()
}

// editDB applies SQL to the archive's database.
func editDB(t *testing.T, body []byte, stmts ...string) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "db")
	if err := os.WriteFile(path, body, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	out, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func mapEntry(entries []entry, name string, fn func([]byte) []byte) []entry {
	out := make([]entry, 0, len(entries))
	for _, e := range entries {
		if e.name == name {
			e.body = fn(e.body)
		}
		out = append(out, e)
	}
	return out
}

// insertBefore puts e before the entry named name.
func insertBefore(entries []entry, name string, e entry) []entry {
	var out []entry
	for _, x := range entries {
		if x.name == name {
			out = append(out, e)
		}
		out = append(out, x)
	}
	return out
}

func TestRestoreChecksEverything(t *testing.T) {
	t.Parallel()
	src := newSource(t)
	archive, _ := src.backup(t)
	entries := readEntries(t, archive)
	foreign := func(t *testing.T) []byte {
		path := filepath.Join(t.TempDir(), "foreign.db")
		db, err := sql.Open("sqlite", "file:"+path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)`); err != nil {
			t.Fatal(err)
		}
		db.Close()
		b, _ := os.ReadFile(path)
		return b
	}
	randomKey := []byte(strings.Repeat("ab", 32) + "\n")
	tests := []struct {
		name    string
		archive func(t *testing.T) []byte
		want    string
	}{
		{"a trigger that un-revokes a token", func(t *testing.T) []byte {
			return writeEntries(t, mapEntry(entries, backupDBName, func(b []byte) []byte {
				return editDB(t, b, `CREATE TRIGGER keep_token AFTER UPDATE OF revoked_at ON tokens
					BEGIN UPDATE tokens SET revoked_at = NULL WHERE id = NEW.id; END`)
			}), backupKey)
		}, "unexpected trigger keep_token on tokens"},
		{"an extra view", func(t *testing.T) []byte {
			return writeEntries(t, mapEntry(entries, backupDBName, func(b []byte) []byte {
				return editDB(t, b, `CREATE VIEW v AS SELECT 1`)
			}), backupKey)
		}, "unexpected view v"},
		{"rewritten manifest bytes", func(t *testing.T) []byte {
			return writeEntries(t, mapEntry(entries, backupDBName, func(b []byte) []byte {
				return editDB(t, b, `UPDATE manifests SET content = CAST('{"evil":true}' AS BLOB)`)
			}), backupKey)
		}, "bytes do not match their digest"},
		{"a duplicate secret.key", func(t *testing.T) []byte {
			return writeEntries(t, insertBefore(entries, backupDBName, entry{backupKeyPrefix + "secret.key", randomKey}), backupKey)
		}, `"keys/secret.key" appears twice`},
		{"a random secret.key", func(t *testing.T) []byte {
			return writeEntries(t, mapEntry(entries, backupKeyPrefix+"secret.key", func([]byte) []byte { return randomKey }), backupKey)
		}, "secret key does not open"},
		{"a jwt.pem that does not parse", func(t *testing.T) []byte {
			return writeEntries(t, mapEntry(entries, backupKeyPrefix+"jwt.pem", func([]byte) []byte { return []byte("junk") }), backupKey)
		}, "jwt.pem: no PEM block"},
		{"a foreign database", func(t *testing.T) []byte {
			return writeEntries(t, mapEntry(entries, backupDBName, func([]byte) []byte { return foreign(t) }), backupKey)
		}, "not dproxy's"},
		{"a database that is not SQLite", func(t *testing.T) []byte {
			return writeEntries(t, mapEntry(entries, backupDBName, func(b []byte) []byte { return bytes.Repeat([]byte("x"), 8192) }), backupKey)
		}, "database"},
		{"a huge entry beyond the header's totals", func(t *testing.T) []byte {
			big := make([]byte, 1<<20)
			return writeEntries(t, insertBefore(entries, backupKeyPrefix+"secret.key",
				entry{backupBlobPrefix + oci.FromBytes(big).Hex(), big}), backupKey)
		}, "goes beyond the header's totals"},
		{"an entry after the MAC", func(t *testing.T) []byte {
			return writeEntries(t, append(append([]entry{}, entries...), entry{"notes.txt", []byte("x")}), backupKey)
		}, "which must be last"},
		{"a database changed without the backup key", func(t *testing.T) []byte {
			return writeEntries(t, mapEntry(entries, backupDBName, func(b []byte) []byte {
				return editDB(t, b, `UPDATE users SET admin = 1`)
			}), bytes.Repeat([]byte{8}, BackupKeySize))
		}, "MAC does not match"},
		{"no MAC", func(t *testing.T) []byte {
			return writeEntries(t, entries[:len(entries)-1], nil)
		}, "without its MAC"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := tt.archive(t)
			dst := filepath.Join(t.TempDir(), "restored")
			_, err := RestoreBackup(context.Background(), bytes.NewReader(a), dst, RestoreOptions{Key: backupKey})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("restore: %v; want an error saying %q", err, tt.want)
			}
			if left, _ := os.ReadDir(dst); len(left) != 0 {
				t.Errorf("a refused restore left %d entries", len(left))
			}
			if _, err := VerifyBackup(context.Background(), bytes.NewReader(a), RestoreOptions{Key: backupKey}); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("verify: %v; want an error saying %q", err, tt.want)
			}
		})
	}
}

// restored opens a restored data dir with its own secret key.
func restored(t *testing.T, dir string) *store.Store {
	t.Helper()
	cfg := config.Config{DataDir: dir}
	key, err := secretbox.LoadOrCreateKey(cfg.SecretKeyPath())
	if err != nil {
		t.Fatal(err)
	}
	box, _ := secretbox.New(key)
	st, err := store.OpenSQLite(context.Background(), cfg.DBPath(), box)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// checkRestoredMetadata: users, groups, settings (with the secret) and
// tokens came back.
func checkRestoredMetadata(t *testing.T, st *store.Store, tokenID int64) {
	t.Helper()
	ctx := context.Background()
	if us, err := st.Users(ctx); err != nil || len(us) != 1 || us[0].Username != "alice" {
		t.Errorf("users %+v, %v", us, err)
	}
	g, err := st.GroupByPath(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if p, err := st.ProxySetting(ctx, g.ID); err != nil || p.Secret != "hub-secret" {
		t.Errorf("proxy setting %+v, %v", p, err)
	}
	sum := []byte("hash-of-the-ci-token")
	if tok, err := st.TokenByHash(ctx, sum); err != nil || tok.ID != tokenID {
		t.Errorf("token %+v, %v", tok, err)
	}
}

func TestRestoreRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := newSource(t)
	archive, res := src.backup(t)
	if len(res.Corrupt) != 0 || res.Blobs != 2 || strings.Join(res.Keys, ",") != "secret.key,jwt.pem" {
		t.Errorf("backup result %+v", res)
	}
	for _, e := range readEntries(t, archive) {
		if strings.Contains(e.name, "initial_admin_token") || bytes.Contains(e.body, []byte("dpat-initial-admin")) {
			t.Errorf("the archive holds the initial admin token (entry %s)", e.name)
		}
	}
	v, err := VerifyBackup(ctx, bytes.NewReader(archive), RestoreOptions{Key: backupKey})
	if err != nil || v.Blobs != 2 || v.SealedValues != 1 || len(v.Dropped) != 0 {
		t.Fatalf("verify: %+v, %v", v, err)
	}
	dst := filepath.Join(t.TempDir(), "restored")
	r, err := RestoreBackup(ctx, bytes.NewReader(archive), dst, RestoreOptions{Key: backupKey})
	if err != nil || r.Blobs != 2 || len(r.Dropped) != 0 || r.SealedValues != 1 {
		t.Fatalf("restore: %+v, %v", r, err)
	}
	if _, err := os.Stat(filepath.Join(dst, "initial_admin_token")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("initial_admin_token restored: %v", err)
	}
	checkRestoredMetadata(t, restored(t, dst), src.tokenID)

	if _, err := VerifyBackup(ctx, bytes.NewReader(archive), RestoreOptions{}); err == nil || !strings.Contains(err.Error(), "--key-file") {
		t.Errorf("verify without the key: %v", err)
	}
}

// A blob damaged in the archive is dropped with its references and
// reported; everything else is restored. Blob bytes are outside the MAC,
// so this archive keeps its original MAC.
func TestRestoreDropsACorruptBlob(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := newSource(t)
	archive, _ := src.backup(t)
	bad := src.blobs[0]
	entries := mapEntry(readEntries(t, archive), backupBlobPrefix+bad.Hex(), func(b []byte) []byte {
		c := bytes.Clone(b)
		c[len(c)/2] ^= 0xff
		return c
	})
	crafted := writeEntriesKeepMAC(t, entries)
	dst := filepath.Join(t.TempDir(), "restored")
	r, err := RestoreBackup(ctx, bytes.NewReader(crafted), dst, RestoreOptions{Key: backupKey})
	if err != nil {
		t.Fatalf("restore with one corrupt blob: %v", err)
	}
	if len(r.Dropped) != 1 || r.Dropped[0].Digest != bad || r.Dropped[0].Refs != 1 || !strings.Contains(r.Dropped[0].Reason, "hashes to") {
		t.Errorf("dropped %+v, want %s with its reference", r.Dropped, bad)
	}
	if r.Blobs != 1 {
		t.Errorf("restored %d blobs, want 1", r.Blobs)
	}
	files, _ := blobstore.NewFS(config.Config{DataDir: dst}.BlobDir())
	if _, err := files.Stat(ctx, bad); err == nil {
		t.Error("the corrupt blob's file was restored")
	}
	st := restored(t, dst)
	if refs, _ := st.ReferencedBlobs(ctx, "", 10); len(refs) != 1 || refs[0].Digest != src.blobs[1] {
		t.Errorf("referenced blobs after the restore: %+v", refs)
	}
	checkRestoredMetadata(t, st, src.tokenID)
}

// writeEntriesKeepMAC rebuilds an archive without recomputing its MAC.
func writeEntriesKeepMAC(t *testing.T, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		if err := writeEntry(tw, e.name, time.Now(), int64(len(e.body)), bytes.NewReader(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	return buf.Bytes()
}

// A blob file corrupt on disk is left out of the backup and reported; the
// archive's database does not reference it, and a restore expects it.
func TestBackupSkipsACorruptBlob(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := newSource(t)
	bad := src.blobs[1]
	path := src.files.Path(bad)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	archive, res := src.backup(t)
	if len(res.Corrupt) != 1 || res.Corrupt[0] != bad || res.Blobs != 1 {
		t.Fatalf("backup result %+v, want %s reported corrupt", res, bad)
	}
	dst := filepath.Join(t.TempDir(), "restored")
	r, err := RestoreBackup(ctx, bytes.NewReader(archive), dst, RestoreOptions{Key: backupKey})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Dropped) != 0 || len(r.CorruptAtBackup) != 1 || r.Blobs != 1 {
		t.Errorf("restore result %+v", r)
	}
	if refs, _ := restored(t, dst).ReferencedBlobs(ctx, "", 10); len(refs) != 1 || refs[0].Digest != src.blobs[0] {
		t.Errorf("referenced blobs after the restore: %+v", refs)
	}
	// The live data dir keeps its reference: fsck repairs it there.
	if refs, _ := src.st.ReferencedBlobs(ctx, "", 10); len(refs) != 2 {
		t.Errorf("the backup changed the live database: %+v", refs)
	}
}

// Not an internal test's parallel: it swaps freeSpace.
func TestRestoreChecksFreeSpace(t *testing.T) {
	src := newSource(t)
	archive, _ := src.backup(t)
	defer func(f func(string) (int64, error)) { freeSpace = f }(freeSpace)
	freeSpace = func(string) (int64, error) { return 4096, nil }
	dst := filepath.Join(t.TempDir(), "restored")
	_, err := RestoreBackup(context.Background(), bytes.NewReader(archive), dst, RestoreOptions{Key: backupKey})
	if err == nil || !strings.Contains(err.Error(), "free") {
		t.Fatalf("restore onto a full disk: %v", err)
	}
	if left, _ := os.ReadDir(dst); len(left) != 0 {
		t.Errorf("left %d entries", len(left))
	}
}

func TestBackupEncryptedWithAge(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := newSource(t)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := CreateBackup(ctx, src.dir, &buf, BackupOptions{Key: backupKey, Compress: true, Recipients: []age.Recipient{id.Recipient()}}); err != nil {
		t.Fatal(err)
	}
	secret, _ := os.ReadFile(filepath.Join(src.dir, "secret.key"))
	if bytes.Contains(buf.Bytes(), bytes.TrimSpace(secret)) || bytes.Contains(buf.Bytes(), []byte("hash-of-the-ci-token")) {
		t.Error("the encrypted archive holds plaintext")
	}
	if _, err := VerifyBackup(ctx, bytes.NewReader(buf.Bytes()), RestoreOptions{Key: backupKey}); !errors.Is(err, ErrEncrypted) {
		t.Errorf("verify without an identity: %v, want ErrEncrypted", err)
	}
	other, _ := age.GenerateX25519Identity()
	if _, err := VerifyBackup(ctx, bytes.NewReader(buf.Bytes()), RestoreOptions{Key: backupKey, Identities: []age.Identity{other}}); err == nil {
		t.Error("verify with another identity succeeded")
	}
	dst := filepath.Join(t.TempDir(), "restored")
	if _, err := RestoreBackup(ctx, bytes.NewReader(buf.Bytes()), dst, RestoreOptions{Key: backupKey, Identities: []age.Identity{id}}); err != nil {
		t.Fatal(err)
	}
	checkRestoredMetadata(t, restored(t, dst), src.tokenID)
}

// An archive of format 1 has no MAC: it is refused unless the operator
// accepts it, and then every other check still applies.
func TestRestoreFormat1OnlyWhenAccepted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := newSource(t)
	archive, _ := src.backup(t)
	entries := readEntries(t, archive)
	entries = mapEntry(entries[:len(entries)-1], backupHeaderName, func(b []byte) []byte {
		var h backupHeader
		if err := json.Unmarshal(b, &h); err != nil {
			t.Fatal(err)
		}
		h.Format, h.DBMaxBytes = backupFormatUnauthenticated, 0
		out, _ := json.Marshal(h)
		return out
	})
	old := writeEntries(t, insertBefore(entries, backupDBName, entry{backupKeyPrefix + "initial_admin_token", []byte("dpat-initial-admin\n")}), nil)
	dst := filepath.Join(t.TempDir(), "restored")
	if _, err := RestoreBackup(ctx, bytes.NewReader(old), dst, RestoreOptions{Key: backupKey}); err == nil || !strings.Contains(err.Error(), "--unauthenticated") {
		t.Fatalf("a format 1 archive: %v; want a refusal naming --unauthenticated", err)
	}
	r, err := RestoreBackup(ctx, bytes.NewReader(old), dst, RestoreOptions{Unauthenticated: true})
	if err != nil || r.Blobs != 2 {
		t.Fatalf("a format 1 archive, accepted: %+v, %v", r, err)
	}
	if _, err := os.Stat(filepath.Join(dst, "initial_admin_token")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the format 1 archive's initial_admin_token was restored: %v", err)
	}
	tampered := writeEntries(t, mapEntry(entries, backupDBName, func(b []byte) []byte {
		return editDB(t, b, `CREATE TRIGGER t AFTER INSERT ON users BEGIN SELECT 1; END`)
	}), nil)
	if _, err := VerifyBackup(ctx, bytes.NewReader(tampered), RestoreOptions{Unauthenticated: true}); err == nil || !strings.Contains(err.Error(), "unexpected trigger") {
		t.Errorf("a tampered format 1 archive, accepted: %v", err)
	}
}
