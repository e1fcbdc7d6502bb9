package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
)

// SnapshotSQLite writes a consistent copy of the SQLite database at dbPath
// to dst (which must not exist) with VACUUM INTO, through a connection of
// its own: it works while a server uses the database, and sees only
// committed transactions. dst is created readable by its owner only.
func SnapshotSQLite(ctx context.Context, dbPath, dst string) error {
	abs, err := filepath.Abs(dbPath)
	if err != nil {
		return fmt.Errorf("snapshot database %s: %w", dbPath, err)
	}
	if _, err := os.Stat(abs); err != nil {
		return fmt.Errorf("snapshot database %s: %w", abs, err)
	}
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("snapshot database %s: %s already exists", abs, dst)
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("snapshot database %s: %w", abs, err)
	}
	// Create the file first so its mode is 0600; VACUUM INTO accepts an
	// empty file as its target.
	f, err := os.OpenFile(dst, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("snapshot database %s: %w", abs, err)
	}
	f.Close()
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: abs}).EscapedPath()+"?"+sqlitePragmas)
	if err != nil {
		os.Remove(dst)
		return fmt.Errorf("snapshot database %s: %w", abs, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, `VACUUM INTO $1`, dst); err != nil {
		os.Remove(dst)
		return fmt.Errorf("snapshot database %s into %s: %w", abs, dst, err)
	}
	return nil
}
