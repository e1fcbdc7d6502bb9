package store

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
)

// stmtCache keeps the reader's prepared statements by query text. The
// SQLite driver parses every unprepared statement afresh, which costs more
// than running the hot lookups themselves; database/sql prepares a cached
// statement once on each connection it runs on.
type stmtCache struct {
	db *sql.DB
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, m: map[string]*sql.Stmt{}}
}

// get returns the prepared statement of query, preparing it on first use.
// The queries are constants of this package, so the map stays small.
func (c *stmtCache) get(ctx context.Context, query string) (*sql.Stmt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.m[query]; ok {
		return st, nil
	}
	st, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	c.m[query] = st
	return st, nil
}

func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for q, st := range c.m {
		st.Close()
		delete(c.m, q)
	}
}

// readRow runs a single-row read on the reader, through a cached prepared
// statement when the backend has a statement cache (SQLite); PostgreSQL's
// driver caches prepared statements itself.
func (s *Store) readRow(ctx context.Context, query string, args ...any) *sql.Row {
	if s.stmts != nil {
		if st, err := s.stmts.get(ctx, query); err == nil {
			return st.QueryRowContext(ctx, args...)
		}
	}
	return s.r.QueryRowContext(ctx, query, args...)
}

// read runs a multi-row read on the reader like readRow.
// readAll runs query on the read pool and returns every row as scan makes
// it; errors are wrapped with what (e.g. "list users").
func readAll[T any](ctx context.Context, s *Store, what string, scan func(interface{ Scan(...any) error }) (T, error), query string, args ...any) ([]T, error) {
	rows, err := s.read(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

func (s *Store) read(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if s.stmts != nil {
		if st, err := s.stmts.get(ctx, query); err == nil {
			return st.QueryContext(ctx, args...)
		}
	}
	return s.r.QueryContext(ctx, query, args...)
}
