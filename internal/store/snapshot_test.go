package store

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestSnapshotSQLite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "dproxy.db")
	s := openSQLiteAt(t, path, testBox(t, 1))
	ctx := t.Context()
	g := mustGroup(t, s, "acme")
	putRef(t, s, g.ID, "x", 1, t0)

	dst := filepath.Join(dir, "snap.db")
	if err := SnapshotSQLite(ctx, path, dst); err != nil {
		t.Fatalf("SnapshotSQLite: %v", err)
	}
	fi, err := os.Stat(dst)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("snapshot file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	// A write after the snapshot is not in it.
	mustGroup(t, s, "later")
	snap := openSQLiteAt(t, dst, testBox(t, 1))
	if _, err := snap.GroupByPath(ctx, "acme"); err != nil {
		t.Errorf("snapshot lacks group acme: %v", err)
	}
	if _, err := snap.GroupByPath(ctx, "later"); !errors.Is(err, ErrNotFound) {
		t.Errorf("snapshot has a group created after it: %v", err)
	}
	if ok, _ := snap.BlobReferenced(ctx, digestOf("x")); !ok {
		t.Error("snapshot lacks the blob reference")
	}
	for _, tc := range []struct{ name, db, dst string }{
		{"existing target", path, dst},
		{"missing database", filepath.Join(dir, "nope.db"), filepath.Join(dir, "snap2.db")},
	} {
		if err := SnapshotSQLite(ctx, tc.db, tc.dst); err == nil {
			t.Errorf("%s: SnapshotSQLite succeeded", tc.name)
		}
	}
}
