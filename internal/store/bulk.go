package store

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// bulkRows bounds the rows of one multi-row INSERT of LoadCache: 500 rows
// of a manifest bind 6,500 parameters, within SQLite's and PostgreSQL's
// limits.
const bulkRows = 500

// LoadCache inserts groups' manifests and blob references in one
// transaction, many rows per statement: a fast load of a large cache (the
// scale bench seeds its stores with it). Rows are inserted as given, like
// PutManifest and PutBlob would with the same values (zero times mean now,
// ImageSize is computed from Content), except that a row whose key
// already exists is an error rather than an update.
func (s *Store) LoadCache(ctx context.Context, manifests []Manifest, blobs []Blob) error {
	now := s.now()
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for len(manifests) > 0 {
			n := min(len(manifests), bulkRows)
			const cols = 13
			args := make([]any, 0, n*cols)
			for _, m := range manifests[:n] {
				status, size := m.Status, m.Size
				if status == "" {
					status = StatusDefault
				}
				if size == 0 {
					size = int64(len(m.Content))
				}
				content := append(make([]byte, 0, len(m.Content)), m.Content...)
				args = append(args, m.OwnerID, m.Image, m.Reference, string(m.Digest), m.MediaType, size,
					imageSize(m.MediaType, m.Content), content, m.ETag, status,
					dbTime(orNow(m.CreatedAt, now)), dbTime(orNow(m.UpdatedAt, now)), dbTime(orNow(m.ReadAt, now)))
			}
			q := `INSERT INTO manifests (group_id, image, reference, digest, media_type, size, image_size, content, etag,
				status, created_at, updated_at, read_at) VALUES ` + valuesList(n, cols)
			if _, err := tx.ExecContext(ctx, q, args...); err != nil {
				return fmt.Errorf("load %d manifests: %w", n, err)
			}
			manifests = manifests[n:]
		}
		for len(blobs) > 0 {
			n := min(len(blobs), bulkRows)
			const cols = 5
			args := make([]any, 0, n*cols)
			for _, b := range blobs[:n] {
				args = append(args, b.OwnerID, string(b.Digest), b.Size,
					dbTime(orNow(b.CreatedAt, now)), dbTime(orNow(b.ReadAt, now)))
			}
			q := `INSERT INTO blobs (group_id, digest, size, created_at, read_at) VALUES ` + valuesList(n, cols)
			if _, err := tx.ExecContext(ctx, q, args...); err != nil {
				return fmt.Errorf("load %d blob references: %w", n, err)
			}
			blobs = blobs[n:]
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("load cache rows: %w", err)
	}
	return nil
}

// valuesList is "($1, …, $cols), ($cols+1, …), …" for rows rows.
func valuesList(rows, cols int) string {
	var b strings.Builder
	for r := range rows {
		if r > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for c := range cols {
			if c > 0 {
				b.WriteString(", ")
			}
			b.WriteString("$" + strconv.Itoa(r*cols+c+1))
		}
		b.WriteByte(')')
	}
	return b.String()
}

// RecreateDatabase drops database name, if it exists, and creates it
// empty, on the PostgreSQL server of serverDSN (a URL of any database on
// it, for the scale bench's throwaway databases). name must be a plain
// lower-case identifier.
func RecreateDatabase(ctx context.Context, serverDSN, name string) error {
	if !plainIdent(name) {
		return fmt.Errorf("database name %q: use lower-case letters, digits and _", name)
	}
	if err := DropDatabase(ctx, serverDSN, name); err != nil {
		return err
	}
	return onServer(ctx, serverDSN, `CREATE DATABASE `+name)
}

// DropDatabase drops database name on the PostgreSQL server of serverDSN,
// if it exists.
func DropDatabase(ctx context.Context, serverDSN, name string) error {
	if !plainIdent(name) {
		return fmt.Errorf("database name %q: use lower-case letters, digits and _", name)
	}
	return onServer(ctx, serverDSN, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`)
}

// DatabaseURL is serverDSN naming database name instead of its own.
func DatabaseURL(serverDSN, name string) (string, error) {
	u, err := url.Parse(serverDSN)
	if err != nil || !IsPostgres(serverDSN) {
		return "", fmt.Errorf("database URL %s: want postgres://…", RedactDSN(serverDSN))
	}
	u.Path = "/" + name
	return u.String(), nil
}

func onServer(ctx context.Context, serverDSN, stmt string) error {
	db, err := sql.Open("pgx", serverDSN)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", RedactDSN(serverDSN), redactErr(err, serverDSN))
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, stmt); err != nil {
		return fmt.Errorf("%s on %s: %w", stmt, RedactDSN(serverDSN), redactErr(err, serverDSN))
	}
	return nil
}

func plainIdent(s string) bool {
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '_' {
			return false
		}
	}
	return s != ""
}
