package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/dproxy/dproxy/internal/secretbox"
)

// PostgresOptions tune a PostgreSQL store. Zero values take the defaults.
type PostgresOptions struct {
	// MaxConns bounds this process's connections. Across all replicas the
	// sum must stay below the server's max_connections. Default 16.
	MaxConns int
}

// Open opens the metadata store named by database: "" or "sqlite" is the
// SQLite file at sqlitePath; a postgres:// or postgresql:// URL is
// PostgreSQL. Pending migrations are applied before Open returns.
func Open(ctx context.Context, database, sqlitePath string, box *secretbox.Box) (*Store, error) {
	switch {
	case database == "" || database == "sqlite":
		return OpenSQLite(ctx, sqlitePath, box)
	case IsPostgres(database):
		return OpenPostgres(ctx, database, box, PostgresOptions{})
	}
	return nil, fmt.Errorf("open database %q: want sqlite or a postgres:// URL", RedactDSN(database))
}

// IsPostgres reports whether database names a PostgreSQL database.
func IsPostgres(database string) bool {
	return strings.HasPrefix(database, "postgres://") || strings.HasPrefix(database, "postgresql://")
}

// RedactDSN hides the password of a connection URL, for logs and errors.
func RedactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "[unparsable database URL]"
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// OpenPostgres connects to the PostgreSQL database at dsn (a postgres://
// URL; libpq parameters such as sslmode and search_path go in its query)
// and applies pending migrations. Replicas starting together are safe:
// a session-level advisory lock lets one of them migrate while the others
// wait, so every migration is applied exactly once.
func OpenPostgres(ctx context.Context, dsn string, box *secretbox.Box, opts PostgresOptions) (*Store, error) {
	if box == nil {
		return nil, errors.New("open postgres store: no secret box")
	}
	safe := RedactDSN(dsn)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("open postgres database %s: %w", safe, redactErr(err, dsn))
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = 16
	}
	db.SetMaxOpenConns(opts.MaxConns)
	db.SetMaxIdleConns(opts.MaxConns)
	db.SetConnMaxLifetime(30 * time.Minute)
	db.SetConnMaxIdleTime(5 * time.Minute)

	s := &Store{
		w: db, r: db, box: box, now: time.Now,
		isUnique: pgIsUnique, isForeignKey: pgIsForeignKey,
	}
	s.tryLock = s.pgTryLock
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to postgres database %s: %w", safe, redactErr(err, dsn))
	}
	// Waiting replicas retry every second, for up to five minutes.
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300))
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("migrate postgres database %s: %w", safe, err)
	}
	if err := s.migrate(ctx, goose.DialectPostgres, "migrations/postgres", goose.WithSessionLocker(locker)); err != nil {
		db.Close()
		return nil, fmt.Errorf("migrate postgres database %s: %w", safe, redactErr(err, dsn))
	}
	if err := s.Ping(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open postgres database %s: %w", safe, redactErr(err, dsn))
	}
	return s, nil
}

// redactErr keeps a DSN's password out of an error that may quote the DSN.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

func redactErr(err error, dsn string) error {
	u, perr := url.Parse(dsn)
	if perr != nil {
		return &redactedError{msg: "invalid database URL", err: err}
	}
	pw, ok := u.User.Password()
	if q := u.Query().Get("password"); q != "" {
		pw, ok = q, true
	}
	if !ok || pw == "" || !strings.Contains(err.Error(), pw) {
		return err
	}
	return &redactedError{msg: strings.ReplaceAll(err.Error(), pw, "xxxxx"), err: err}
}

func pgCode(err error) string {
	var e *pgconn.PgError
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// SQLSTATE classes: https://www.postgresql.org/docs/current/errcodes-appendix.html
func pgIsUnique(err error) bool     { return pgCode(err) == "23505" }
func pgIsForeignKey(err error) bool { return pgCode(err) == "23503" }

// pgTryLock takes a session-level advisory lock on a connection of its own,
// held until unlock. If that connection breaks, PostgreSQL releases the
// lock: holders must do work that is safe to repeat. Advisory locks are
// per database: the key names the schema too, so that clusters in other
// schemas of the same database do not share it.
func (s *Store) pgTryLock(ctx context.Context, name string) (func(), bool, error) {
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("lock %q: get a connection: %w", name, err)
	}
	var ok bool
	key := lockKeyPrefix + name + "@"
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock(hashtextextended($1 || current_schema(), 0))`, key).Scan(&ok); err != nil {
		conn.Close()
		return nil, false, fmt.Errorf("lock %q: %w", name, err)
	}
	if !ok {
		conn.Close()
		return nil, false, nil
	}
	unlock := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var released bool
		err := conn.QueryRowContext(ctx, `SELECT pg_advisory_unlock(hashtextextended($1 || current_schema(), 0))`, key).Scan(&released)
		if err != nil || !released {
			// The session is suspect: discard it, which releases any lock it holds.
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
		conn.Close()
	}
	return unlock, true, nil
}
