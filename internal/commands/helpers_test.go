package commands

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/dproxy/dproxy/internal/auth"
	"github.com/dproxy/dproxy/internal/blobstore"
	"github.com/dproxy/dproxy/internal/commands/cmdutil"
	"github.com/dproxy/dproxy/internal/config"
	"github.com/dproxy/dproxy/internal/lifecycle"
	"github.com/dproxy/dproxy/internal/oci"
	"github.com/dproxy/dproxy/internal/store"
)

// testIO returns streams reading nothing and writing to the two buffers.
func testIO() (*cmdutil.IOStreams, *bytes.Buffer, *bytes.Buffer) {
	var out, errOut bytes.Buffer
	return &cmdutil.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, &out, &errOut
}

// execCmd runs cmd with args as its command line.
func execCmd(cmd *cobra.Command, args ...string) error {
	cmd.SetArgs(args)
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	return cmd.ExecuteContext(context.Background())
}

// parseFlags runs the command newCmd builds with args as its command line
// and returns the options its run function was called with, and the
// streams the command was built with.
func parseFlags[O any](t *testing.T, newCmd func(*cmdutil.IOStreams, func(context.Context, *O) error) *cobra.Command, args ...string) (*O, *cmdutil.IOStreams) {
	t.Helper()
	ios, _, _ := testIO()
	var got *O
	cmd := newCmd(ios, func(_ context.Context, o *O) error { got = o; return nil })
	if err := execCmd(cmd, args...); err != nil {
		t.Fatalf("%s %v: %v", cmd.Name(), args, err)
	}
	if got == nil {
		t.Fatalf("%s %v: the run function was not called", cmd.Name(), args)
	}
	return got, ios
}

// runMain runs the whole command line as Main does and returns the exit
// code, stdout and stderr.
func runMain(args ...string) (int, string, string) {
	ios, out, errOut := testIO()
	code := run(context.Background(), ios, args)
	return code, out.String(), errOut.String()
}

// dataDir is a data dir with a database holding group acme and blob files.
type dataDir struct {
	dir   string
	st    *store.Store
	files *blobstore.FS
	group int64
}

// newDataDir creates a data dir with the database and blob folder a server
// would create. The store stays open until the test ends.
func newDataDir(t *testing.T) *dataDir {
	t.Helper()
	dir := t.TempDir()
	cfg := config.Config{DataDir: dir}
	ctx := context.Background()
	st, err := lifecycle.OpenStoreForMaintenance(ctx, cfg.DBPath())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	files, err := blobstore.NewFS(cfg.BlobDir())
	if err != nil {
		t.Fatal(err)
	}
	g, err := st.CreateGroup(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	return &dataDir{dir: dir, st: st, files: files, group: g.ID}
}

// blob stores n random bytes as a blob file and, when referenced, as a
// blob of group acme. It returns the digest.
func (d *dataDir) blob(t *testing.T, n int, referenced bool) oci.Digest {
	t.Helper()
	ctx := context.Background()
	content := make([]byte, n)
	rand.Read(content)
	dg := oci.FromBytes(content)
	tmp, err := d.files.CreateTemp()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tmp.Write(content); err != nil {
		t.Fatal(err)
	}
	if err := d.files.Commit(ctx, dg, tmp); err != nil {
		t.Fatal(err)
	}
	if referenced {
		if err := d.st.PutBlob(ctx, store.Blob{OwnerID: d.group, Digest: dg, Size: int64(n)}); err != nil {
			t.Fatal(err)
		}
	}
	return dg
}

// age makes the file at path two hours old, older than fsck's grace.
func age(t *testing.T, path string) {
	t.Helper()
	old := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
}

// tempFile leaves a temp file of an interrupted download, two hours old.
func (d *dataDir) tempFile(t *testing.T) string {
	t.Helper()
	tmp, err := d.files.CreateTemp()
	if err != nil {
		t.Fatal(err)
	}
	tmp.WriteString("half a layer")
	tmp.Close()
	age(t, tmp.Name())
	return filepath.Base(tmp.Name())
}

// blobDir is the blob folder of the data dir.
func (d *dataDir) blobDir() string { return config.Config{DataDir: d.dir}.BlobDir() }

// referenced reports whether some group references blob dg.
func (d *dataDir) referenced(t *testing.T, dg oci.Digest) bool {
	t.Helper()
	ok, err := d.st.BlobReferenced(context.Background(), dg)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// hasFile reports whether the blob file of dg exists.
func (d *dataDir) hasFile(dg oci.Digest) bool {
	_, err := os.Stat(d.files.Path(dg))
	return err == nil
}

// listDir returns the names under dir, recursively, with their sizes.
func listDir(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	out := make(map[string]int64)
	err := filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		out[rel] = fi.Size()
		if fi.IsDir() {
			out[rel] = -1
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// testJWTKey is a JWT signing key in PEM, as a data dir holds one.
func testJWTKey(t *testing.T) []byte {
	t.Helper()
	k, err := auth.NewSigningKeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	return k
}
