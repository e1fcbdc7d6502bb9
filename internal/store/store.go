// Package store owns dproxy's metadata in SQL: the schema, its embedded
// forward-only migrations and every query (users, groups, memberships,
// tokens, settings, cached manifests and blob references).
//
// SQLite (modernc.org/sqlite) is the default backend; PostgreSQL (pgx
// through database/sql) serves several replicas sharing one database. Queries are written
// once, in a dialect both SQLite and PostgreSQL accept ($n placeholders,
// INSERT … ON CONFLICT … DO UPDATE, RETURNING, WITH RECURSIVE); only the
// DDL lives in one migrations folder per dialect, and the error codes and
// locks differ (postgres.go, lock.go).
//
// Secrets (Docker Hub secrets) are sealed with a secretbox.Box before they
// reach the database. Times are stored in UTC with microsecond precision.
//
// The store does no network I/O and holds no transaction across a call into
// other code. It must not import any dproxy package but oci and secretbox.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/pressly/goose/v3"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/dproxy/dproxy/internal/keyfile"
	"github.com/dproxy/dproxy/internal/secretbox"
)

//go:embed migrations
var migrations embed.FS

// Store is the metadata store. It is safe for concurrent use.
type Store struct {
	// w takes every write. For SQLite it is a single connection, so
	// writers queue in Go instead of failing with SQLITE_BUSY.
	w *sql.DB
	// r serves reads. For SQLite it is a pool of query-only connections.
	r *sql.DB

	box *secretbox.Box
	now func() time.Time

	// Dialect-specific error classification. A PostgreSQL backend sets
	// w = r to one pgx pool, maps SQLSTATE 23505 / 23503 here and migrates
	// migrations/postgres; every query is shared.
	// stmts caches the reader's prepared statements (SQLite only).
	stmts *stmtCache

	isUnique     func(error) bool
	isForeignKey func(error) bool

	// tryLock backs TryLock: a PostgreSQL advisory lock, or an in-process
	// lock for SQLite (one process owns a SQLite file).
	tryLock func(ctx context.Context, name string) (unlock func(), ok bool, err error)
}

// sqlitePragmas are shared by the writer and the reader connections.
const sqlitePragmas = "_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)" +
	"&_pragma=foreign_keys(ON)&_time_format=sqlite"

// OpenSQLite opens (creating the file and its parent directory if needed)
// the SQLite database at path and applies pending migrations. The database
// file is created readable by its owner only.
func OpenSQLite(ctx context.Context, path string, box *secretbox.Box) (*Store, error) {
	if box == nil {
		return nil, errors.New("open sqlite store: no secret box")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open sqlite database %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o750); err != nil {
		return nil, fmt.Errorf("create directory for database %s: %w", abs, err)
	}
	// SQLite gives the -wal and -shm files the main file's permissions.
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create database file %s: %w", abs, err)
	}
	f.Close()
	// It holds password hashes and sealed secrets: refused like a key file
	// when others may read it.
	if err := keyfile.CheckPrivate(abs, "database file"); err != nil {
		return nil, err
	}

	base := "file:" + (&url.URL{Path: abs}).EscapedPath() + "?" + sqlitePragmas
	w, err := sql.Open("sqlite", base+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open sqlite database %s: %w", abs, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)

	s := &Store{
		w: w, box: box, now: time.Now,
		isUnique: sqliteIsUnique, isForeignKey: sqliteIsForeignKey,
		tryLock: newProcessLocks().tryLock,
	}
	// Migrate before the readers open: the first connection switches the
	// file to WAL, which a query-only connection could not do.
	if err := s.migrate(ctx, goose.DialectSQLite3, "migrations/sqlite"); err != nil {
		w.Close()
		return nil, fmt.Errorf("migrate sqlite database %s: %w", abs, err)
	}

	r, err := sql.Open("sqlite", base+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite database %s: %w", abs, err)
	}
	n := max(4, 2*runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	r.SetConnMaxLifetime(0)
	s.r = r
	s.stmts = newStmtCache(r)
	if err := s.Ping(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("open sqlite database %s: %w", abs, err)
	}
	return s, nil
}

// migrate applies the pending migrations of dir through the writer.
func (s *Store) migrate(ctx context.Context, dialect goose.Dialect, dir string, opts ...goose.ProviderOption) error {
	p, err := migrationProvider(dialect, s.w, dir, opts...)
	if err != nil {
		return err
	}
	// p.Close would close s.w: the provider is simply dropped.
	_, err = p.Up(ctx)
	return err
}

// migrationProvider returns goose's provider of every migration of dproxy's
// schema on db: the SQL files of dir and the migrations written in Go.
func migrationProvider(dialect goose.Dialect, db *sql.DB, dir string, opts ...goose.ProviderOption) (*goose.Provider, error) {
	fsys, err := fs.Sub(migrations, dir)
	if err != nil {
		return nil, err
	}
	return goose.NewProvider(dialect, db, fsys,
		append(opts, goose.WithDisableGlobalRegistry(true), goose.WithGoMigrations(goMigrations...))...)
}

// Close closes the database. For SQLite the last close checkpoints the WAL.
func (s *Store) Close() error {
	var errR error
	if s.stmts != nil {
		s.stmts.close()
	}
	if s.r != nil && s.r != s.w {
		errR = s.r.Close()
	}
	return errors.Join(errR, s.w.Close())
}

// Ping runs a real query on the read and the write side, for readiness.
func (s *Store) Ping(ctx context.Context) error {
	for _, side := range []struct {
		name string
		db   *sql.DB
	}{{"reader", s.r}, {"writer", s.w}} {
		var n int
		if err := side.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM users WHERE id = 0`).Scan(&n); err != nil {
			return fmt.Errorf("ping database %s: %w", side.name, err)
		}
	}
	return nil
}

// inTx runs fn in a write transaction, committing when fn returns nil.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit transaction: %w", err)
	}
	return nil
}

// dbTime normalises a time for storage: UTC, microseconds (PostgreSQL's
// precision), no monotonic reading. Values read back compare Equal.
func dbTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// stamp returns dbTime(t), or the current time when t is zero.
func (s *Store) stamp(t time.Time) time.Time {
	if t.IsZero() {
		t = s.now()
	}
	return dbTime(t)
}

// nullTime is a nullable time argument.
func nullTime(t *time.Time) any {
	if t == nil {
		return nil
	}
	return dbTime(*t)
}

// timePtr converts a scanned nullable time.
func timePtr(t sql.NullTime) *time.Time {
	if !t.Valid {
		return nil
	}
	u := t.Time.UTC()
	return &u
}

// nullID is a nullable foreign key argument: 0 means none.
func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

// affected turns "no row changed" into ErrNotFound.
func affected(res sql.Result, err error, what string) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return nil
}

// notFound turns sql.ErrNoRows into ErrNotFound, naming what was looked up.
func notFound(err error, what string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return fmt.Errorf("%s: %w", what, err)
}

func sqliteCode(err error) int {
	var e *sqlite.Error
	if errors.As(err, &e) {
		return e.Code()
	}
	return 0
}

func sqliteIsUnique(err error) bool {
	c := sqliteCode(err)
	return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

func sqliteIsForeignKey(err error) bool {
	return sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
}
