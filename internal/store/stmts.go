package store

import (
	"context"
	"database/sql"
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
func (s *Store) read(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if s.stmts != nil {
		if st, err := s.stmts.get(ctx, query); err == nil {
			return st.QueryContext(ctx, args...)
		}
	}
	return s.r.QueryContext(ctx, query, args...)
}
