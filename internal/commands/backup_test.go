package commands

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/dproxy/dproxy/internal/commands/cmdutil"
	"github.com/dproxy/dproxy/internal/oci"
)

func TestNewCmdBackupCreate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		dataDir string
		out     *regexp.Regexp
	}{
		{name: "file given", args: []string{"--data-dir", "/srv/dproxy", "--file", "/backups/b.tar"},
			dataDir: "/srv/dproxy", out: regexp.MustCompile(`^/backups/b\.tar$`)},
		{name: "short file", args: []string{"--data-dir", "d", "-f", "b.tgz"},
			dataDir: "d", out: regexp.MustCompile(`^b\.tgz$`)},
		{name: "the old name of --file", args: []string{"--data-dir", "d", "--out", "b.tgz"},
			dataDir: "d", out: regexp.MustCompile(`^b\.tgz$`)},
		{name: "-o is the output format", args: []string{"--data-dir", "d", "-f", "b.tgz", "-o", "json"},
			dataDir: "d", out: regexp.MustCompile(`^b\.tgz$`)},
		{name: "default out is timestamped and compressed", args: []string{"--data-dir", "d"},
			dataDir: "d", out: regexp.MustCompile(`^dproxy-backup-\d{8}-\d{6}\.tar\.gz$`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ios := parseFlags(t, newCmdBackupCreate, tt.args...)
			if got.IO != ios || got.DataDir != tt.dataDir || !tt.out.MatchString(got.File) {
				t.Errorf("backup create %v: data dir %q, out %q; want %q, %v", tt.args, got.DataDir, got.File, tt.dataDir, tt.out)
			}
		})
	}
}

func TestNewCmdBackupRestore(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want backupRestoreOptions
	}{
		{name: "archive and data dir", args: []string{"b.tar.gz", "--data-dir", "/srv/new"},
			want: backupRestoreOptions{File: "b.tar.gz", DataDir: "/srv/new"}},
		{name: "flag first", args: []string{"--data-dir=n", "/backups/b.tar"},
			want: backupRestoreOptions{File: "/backups/b.tar", DataDir: "n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ios := parseFlags(t, newCmdBackupRestore, tt.args...)
			if got.IO != ios {
				t.Errorf("the options do not carry the command's streams")
			}
			got.IO = nil
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("backup restore %v: options %+v, want %+v", tt.args, *got, tt.want)
			}
		})
	}
}

// A backup streamed to stdout restores from stdin; stdout on a terminal is
// refused.
func TestBackupThroughAPipe(t *testing.T) {
	keyPath := filepath.Join(t.TempDir(), "backup.key")
	t.Parallel()
	ctx := context.Background()
	src := newDataDir(t)
	blobs := []oci.Digest{src.blob(t, 3000, true), src.blob(t, 5000, true)}

	ios, out, errOut := testIO()
	if err := runBackupCreate(ctx, &backupCreateOptions{KeyFile: keyPath, IO: ios, DataDir: src.dir, File: "-"}); err != nil {
		t.Fatalf("backup create --file -: %v\n%s", err, errOut)
	}
	if b := out.Bytes(); len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Errorf("stdout does not hold a gzip archive (%d bytes)", len(b))
	}
	if !strings.Contains(errOut.String(), "wrote the archive to stdout: 2 blobs (7.8 KiB)") {
		t.Errorf("backup create --file - said on stderr:\n%s", errOut)
	}

	dst := filepath.Join(t.TempDir(), "restored")
	rios, rout, _ := testIO()
	rios.In = bytes.NewReader(out.Bytes())
	if err := runBackupRestore(ctx, &backupRestoreOptions{archiveReadOptions: archiveReadOptions{KeyFile: keyPath}, IO: rios, File: "-", DataDir: dst}); err != nil {
		t.Fatalf("backup restore -: %v", err)
	}
	if !strings.HasPrefix(rout.String(), "restored 2 verified blobs (7.8 KiB)") {
		t.Errorf("backup restore - output:\n%s", rout)
	}
	for _, dg := range blobs {
		b, err := os.ReadFile(filepath.Join((&dataDir{dir: dst}).blobDir(), "sha256", dg.Hex()[:2], dg.Hex()))
		if err != nil || oci.FromBytes(b) != dg {
			t.Errorf("restored blob %s: %v", dg, err)
		}
	}

	// A pipe cut short (the command failed) is refused and restores nothing.
	cut := filepath.Join(t.TempDir(), "cut")
	cios, _, _ := testIO()
	cios.In = bytes.NewReader(out.Bytes()[:out.Len()/2])
	if err := runBackupRestore(ctx, &backupRestoreOptions{archiveReadOptions: archiveReadOptions{KeyFile: keyPath}, IO: cios, File: "-", DataDir: cut}); err == nil {
		t.Error("a truncated archive was restored")
	}
	if left, _ := os.ReadDir(cut); len(left) != 0 {
		t.Errorf("a refused restore left %d entries in the data dir", len(left))
	}

	tty, ttyOut, _ := testIO()
	on := true
	tty.StdoutTTY = &on
	err := runBackupCreate(ctx, &backupCreateOptions{KeyFile: keyPath, IO: tty, DataDir: src.dir, File: "-"})
	var fe *cmdutil.FlagError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "terminal") || ttyOut.Len() != 0 {
		t.Errorf("--file - to a terminal: %v, %d bytes written; want a usage error and nothing written", err, ttyOut.Len())
	}
}

// TestBackupCreateAndRestore backs a data dir up in both archive formats
// and restores it, through the run functions.
func TestBackupCreateAndRestore(t *testing.T) {
	keyPath := filepath.Join(t.TempDir(), "backup.key")
	t.Parallel()
	for _, name := range []string{"b.tar", "b.tar.gz"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			src := newDataDir(t)
			blobs := []oci.Digest{src.blob(t, 3000, true), src.blob(t, 5000, true)}
			src.blob(t, 700, false) // an orphan is not backed up
			if err := os.WriteFile(filepath.Join(src.dir, "jwt.pem"), testJWTKey(t), 0o600); err != nil {
				t.Fatal(err)
			}

			archive := filepath.Join(t.TempDir(), name)
			ios, out, errOut := testIO()
			if err := runBackupCreate(ctx, &backupCreateOptions{KeyFile: keyPath, IO: ios, DataDir: src.dir, File: archive}); err != nil {
				t.Fatalf("backup create: %v\n%s", err, errOut)
			}
			wantOut := fmt.Sprintf("wrote %s: 2 blobs (7.8 KiB), key files jwt.pem\n", archive)
			if !strings.HasPrefix(out.String(), wantOut) || !strings.Contains(out.String(), "the archive holds the secret key") {
				t.Errorf("backup create output:\n%s\nwant it to start with %q and warn about the secret key", out, wantOut)
			}
			if !strings.Contains(errOut.String(), "backup: 100% (7.8 KiB of 7.8 KiB)\n") {
				t.Errorf("backup create progress on a non-terminal:\n%s", errOut)
			}
			fi, err := os.Stat(archive)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("archive mode %v, want 0600", fi.Mode().Perm())
			}
			if left, _ := filepath.Glob(filepath.Join(filepath.Dir(archive), ".tmp-*")); len(left) != 0 {
				t.Errorf("temp files left next to the archive: %v", left)
			}
			head := make([]byte, 2)
			f, _ := os.Open(archive)
			f.Read(head)
			f.Close()
			if gz := head[0] == 0x1f && head[1] == 0x8b; gz != strings.HasSuffix(name, ".gz") {
				t.Errorf("archive %s gzip-compressed: %v", name, gz)
			}

			dst := filepath.Join(t.TempDir(), "restored")
			ios, out, _ = testIO()
			if err := runBackupRestore(ctx, &backupRestoreOptions{archiveReadOptions: archiveReadOptions{KeyFile: keyPath}, IO: ios, File: archive, DataDir: dst}); err != nil {
				t.Fatalf("backup restore: %v", err)
			}
			wantOut = fmt.Sprintf("restored 2 verified blobs (7.8 KiB) and key files jwt.pem into %s", dst)
			if !strings.HasPrefix(out.String(), wantOut) {
				t.Errorf("backup restore output:\n%s\nwant it to start with %q", out, wantOut)
			}
			restored := &dataDir{dir: dst}
			for _, dg := range blobs {
				b, err := os.ReadFile(filepath.Join(restored.blobDir(), "sha256", dg.Hex()[:2], dg.Hex()))
				if err != nil || oci.FromBytes(b) != dg {
					t.Errorf("restored blob %s: %v", dg, err)
				}
			}
			// The restored data dir is clean.
			ios, out, _ = testIO()
			if err := runFsck(ctx, &fsckOptions{IO: ios, DataDir: dst, VerifyContent: true}); err != nil {
				t.Errorf("fsck of the restored data dir: %v\n%s", err, out)
			}
			if !strings.Contains(out.String(), "checked 2 cached blobs, 2 blob files, 0 temp files: 0 problems") {
				t.Errorf("fsck of the restored data dir:\n%s", out)
			}
		})
	}
}

// TestBackupRestoreRefuses checks that a restore that cannot be done
// fails clearly and leaves the target as it was.
func TestBackupRestoreRefuses(t *testing.T) {
	keyPath := filepath.Join(t.TempDir(), "backup.key")
	t.Parallel()
	ctx := context.Background()
	src := newDataDir(t)
	src.blob(t, 4000, true)
	archive := filepath.Join(t.TempDir(), "b.tar")
	ios, _, _ := testIO()
	if err := runBackupCreate(ctx, &backupCreateOptions{KeyFile: keyPath, IO: ios, DataDir: src.dir, File: archive}); err != nil {
		t.Fatal(err)
	}
	whole, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(t.TempDir(), "truncated.tar")
	if err := os.WriteFile(truncated, whole[:len(whole)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	notTar := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(notTar, []byte(strings.Repeat("not an archive\n", 100)), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		archive  string
		existing bool // the target holds a file already
		wantCode int
		want     string
	}{
		{name: "non-empty data dir", archive: archive, existing: true, wantCode: cmdutil.ExitUsage,
			want: "is not empty: restore only into a new or empty directory, so nothing is overwritten"},
		{name: "truncated archive", archive: truncated, wantCode: cmdutil.ExitFailure, want: "restore " + truncated},
		{name: "not an archive", archive: notTar, wantCode: cmdutil.ExitFailure, want: "is it a dproxy backup?"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dst := t.TempDir()
			if tt.existing {
				if err := os.WriteFile(filepath.Join(dst, "dproxy.db"), []byte("the live database"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			before := listDir(t, dst)
			code, out, errOut := runMain("backup", "restore", tt.archive, "--key-file", keyPath, "--data-dir", dst)
			if code != tt.wantCode {
				t.Errorf("restore exited %d, want %d; stderr:\n%s", code, tt.wantCode, errOut)
			}
			// Progress lines may come first; the error is one line.
			if strings.Count(errOut, "dproxy: ") != 1 || !strings.Contains(lastLine(errOut), tt.want) {
				t.Errorf("restore stderr does not end in one line saying %q:\n%s", tt.want, errOut)
			}
			if strings.Contains(out, "restored") {
				t.Errorf("a failed restore claims success:\n%s", out)
			}
			if after := listDir(t, dst); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Errorf("a refused restore changed the data dir:\nbefore %v\nafter  %v", before, after)
			}
			if tt.existing {
				if b, err := os.ReadFile(filepath.Join(dst, "dproxy.db")); err != nil || string(b) != "the live database" {
					t.Errorf("the existing file was changed: %q, %v", b, err)
				}
			}
		})
	}
}

// TestBackupCreateFailureLeavesNoArchive checks that a backup that fails
// midway leaves neither the archive nor a temp file.
func TestBackupCreateFailureLeavesNoArchive(t *testing.T) {
	keyPath := filepath.Join(t.TempDir(), "backup.key")
	t.Parallel()
	d := newDataDir(t)
	dg := d.blob(t, 1000, true)
	// A blob file replaced by a folder fails the backup after it started.
	if err := os.Remove(d.files.Path(dg)); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(d.files.Path(dg), 0o700); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "b.tar.gz")
	ios, out, _ := testIO()
	err := runBackupCreate(context.Background(), &backupCreateOptions{KeyFile: keyPath, IO: ios, DataDir: d.dir, File: archive})
	if code := cmdutil.ExitCode(err); code != cmdutil.ExitFailure || !strings.Contains(err.Error(), string(dg)) {
		t.Fatalf("backup create of an unreadable blob: exit %d, %v; want 1 naming the blob", code, err)
	}
	if _, err := os.Stat(archive); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a failed backup left an archive: %v", err)
	}
	if left, _ := os.ReadDir(filepath.Dir(archive)); len(left) != 0 {
		t.Errorf("a failed backup left files: %v", left)
	}
	if out.Len() != 0 {
		t.Errorf("a failed backup printed: %s", out)
	}
}

// lastLine is the last line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	return lines[len(lines)-1]
}

// backup create and restore -o json print what they did as one object.
func TestBackupJSON(t *testing.T) {
	keyPath := filepath.Join(t.TempDir(), "backup.key")
	t.Parallel()
	ctx := context.Background()
	src := newDataDir(t)
	src.blob(t, 3000, true)
	src.blob(t, 5000, true)
	archive := filepath.Join(t.TempDir(), "b.tar.gz")
	ios, out, errOut := testIO()
	if err := runBackupCreate(ctx, &backupCreateOptions{KeyFile: keyPath, IO: ios, DataDir: src.dir, File: archive, Output: "json"}); err != nil {
		t.Fatalf("backup create -o json: %v\n%s", err, errOut)
	}
	var created backupCreated
	if err := json.Unmarshal(out.Bytes(), &created); err != nil {
		t.Fatalf("backup create -o json stdout is not one JSON object: %v\n%s", err, out)
	}
	if created.Archive != archive || created.DataDir != src.dir || created.Blobs != 2 || created.BlobBytes != 8000 || created.KeyFiles == nil {
		t.Errorf("backup create -o json = %+v", created)
	}
	dst := filepath.Join(t.TempDir(), "restored")
	rios, rout, _ := testIO()
	if err := runBackupRestore(ctx, &backupRestoreOptions{archiveReadOptions: archiveReadOptions{KeyFile: keyPath}, IO: rios, File: archive, DataDir: dst, Output: "json"}); err != nil {
		t.Fatalf("backup restore -o json: %v", err)
	}
	var restored backupRestored
	if err := json.Unmarshal(rout.Bytes(), &restored); err != nil {
		t.Fatalf("backup restore -o json stdout is not one JSON object: %v\n%s", err, rout)
	}
	if restored.Archive != archive || restored.DataDir != dst || restored.Blobs != 2 || restored.BlobBytes != 8000 || restored.BackupCreatedAt.IsZero() {
		t.Errorf("backup restore -o json = %+v", restored)
	}
}
