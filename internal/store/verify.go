package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pressly/goose/v3"

	"github.com/dproxy/dproxy/internal/secretbox"
)

// CheckSQLiteFile vets a SQLite database file that came from outside, such
// as a backup archive's, before anything opens it as a store: PRAGMA
// integrity_check must pass, and its schema (every table, index, trigger and
// view in sqlite_master, with its SQL) must be exactly what dproxy's
// migrations create at the version the file records. The file is read with
// trusted_schema off and query_only on, so nothing in it runs. A file that
// is not a database, not dproxy's, or carries any extra object is an error
// naming what is wrong.
func CheckSQLiteFile(ctx context.Context, path string) error {
	db, err := openUntrusted(path)
	if err != nil {
		return err
	}
	defer db.Close()
	var check string
	if err := db.QueryRowContext(ctx, `PRAGMA integrity_check(1)`).Scan(&check); err != nil {
		return fmt.Errorf("the database does not open as SQLite: %w", err)
	}
	if check != "ok" {
		return fmt.Errorf("the database fails SQLite's integrity check: %s", check)
	}
	var version int64
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version_id), 0) FROM goose_db_version WHERE is_applied`).Scan(&version); err != nil {
		return fmt.Errorf("the database is not dproxy's: it has no migration record (%w)", err)
	}
	got, err := schemaOf(ctx, db)
	if err != nil {
		return err
	}
	want, err := freshSchema(ctx, version)
	if err != nil {
		return err
	}
	var extra, missing []string
	for k := range got {
		if !want[k] {
			extra = append(extra, k)
		}
	}
	for k := range want {
		if !got[k] {
			missing = append(missing, k)
		}
	}
	if len(extra) > 0 || len(missing) > 0 {
		slices.Sort(extra)
		slices.Sort(missing)
		return fmt.Errorf("the database's schema is not dproxy's (migration %d): unexpected %s; missing %s",
			version, describeObjects(extra), describeObjects(missing))
	}
	return nil
}

// openUntrusted opens path read-only with trusted_schema off: no trigger,
// view or default of the file runs a function with side effects.
func openUntrusted(path string) (*sql.DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(abs); err != nil {
		return nil, fmt.Errorf("open database %s: %w", abs, err)
	}
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: abs}).EscapedPath()+
		"?mode=ro&_pragma=trusted_schema(0)&_pragma=query_only(1)&_pragma=busy_timeout(5000)")
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", abs, err)
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

// schemaOf returns the database's objects as "type name on table: sql".
func schemaOf(ctx context.Context, db *sql.DB) (map[string]bool, error) {
	rows, err := db.QueryContext(ctx, `SELECT type, name, tbl_name, COALESCE(sql, '') FROM sqlite_master`)
	if err != nil {
		return nil, fmt.Errorf("read the database's schema: %w", err)
	}
	defer rows.Close()
	out := make(map[string]bool)
	for rows.Next() {
		var typ, name, tbl, text string
		if err := rows.Scan(&typ, &name, &tbl, &text); err != nil {
			return nil, fmt.Errorf("read the database's schema: %w", err)
		}
		out[fmt.Sprintf("%s %s on %s: %s", typ, name, tbl, text)] = true
	}
	return out, rows.Err()
}

// freshSchema migrates an empty database up to version and returns its
// schema as schemaOf does.
func freshSchema(ctx context.Context, version int64) (map[string]bool, error) {
	dir, err := os.MkdirTemp("", "dproxy-schema-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: filepath.Join(dir, "fresh.db")}).EscapedPath()+"?"+sqlitePragmas)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	p, err := migrationProvider(goose.DialectSQLite3, db, "migrations/sqlite")
	if err != nil {
		return nil, err
	}
	sources := p.ListSources()
	if len(sources) == 0 || version < 1 || version > sources[len(sources)-1].Version {
		return nil, fmt.Errorf("the database records migration %d; this dproxy knows 1 to %d: it is not dproxy's, or from a newer dproxy",
			version, sources[len(sources)-1].Version)
	}
	if _, err := p.UpTo(ctx, version); err != nil {
		return nil, fmt.Errorf("build the expected schema: %w", err)
	}
	return schemaOf(ctx, db)
}

func describeObjects(objs []string) string {
	if len(objs) == 0 {
		return "nothing"
	}
	for i, o := range objs {
		if len(o) > 200 {
			objs[i] = o[:200] + "…"
		}
	}
	return strings.Join(objs, "; ")
}

// ManifestMismatch is a cached manifest whose bytes do not hash to the
// digest it is stored under.
type ManifestMismatch struct {
	Table string // manifests or virtual_manifests
	ID    int64
	Image string
	Ref   string
}

// CheckManifestDigests hashes every cached manifest (groups' and virtual
// registry upstreams') against its digest and returns those that do not
// match.
func (s *Store) CheckManifestDigests(ctx context.Context) ([]ManifestMismatch, error) {
	var bad []ManifestMismatch
	for _, table := range []string{"manifests", "virtual_manifests"} {
		rows, err := s.r.QueryContext(ctx, `SELECT id, image, reference, digest, content FROM `+table+` ORDER BY id`)
		if err != nil {
			return nil, fmt.Errorf("check manifest digests: %w", err)
		}
		for rows.Next() {
			var m ManifestMismatch
			var digest string
			var content []byte
			if err := rows.Scan(&m.ID, &m.Image, &m.Ref, &digest, &content); err != nil {
				rows.Close()
				return nil, fmt.Errorf("check manifest digests: %w", err)
			}
			sum := sha256.Sum256(content)
			if digest != "sha256:"+hex.EncodeToString(sum[:]) {
				m.Table = table
				bad = append(bad, m)
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("check manifest digests: %w", err)
		}
	}
	return bad, nil
}

// sealedColumn is one column of sealed values and how each row's
// additional data is formed.
type sealedColumn struct {
	table, key, column string
	ad                 func(key string) string
}

// sealedColumns are every column holding values sealed with the secret key.
var sealedColumns = []sealedColumn{
	{"dependency_proxy_settings", "group_id", "secret_sealed", func(k string) string {
		return "dependency_proxy_settings:" + k + ":secret"
	}},
	{"instance_settings", "key", "value_sealed", instanceSecretAD},
	{"virtual_registry_upstreams", "id", "password_sealed", func(k string) string {
		return "virtual_registry_upstreams:" + k + ":password"
	}},
}

// sealedValue is one stored sealed value.
type sealedValue struct {
	col    sealedColumn
	key    string
	sealed []byte
}

func sealedValues(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}) ([]sealedValue, error) {
	var out []sealedValue
	for _, c := range sealedColumns {
		rows, err := q.QueryContext(ctx, `SELECT CAST(`+c.key+` AS TEXT), `+c.column+` FROM `+c.table+` WHERE `+c.column+` IS NOT NULL`)
		if err != nil {
			return nil, fmt.Errorf("read sealed values of %s: %w", c.table, err)
		}
		for rows.Next() {
			v := sealedValue{col: c}
			if err := rows.Scan(&v.key, &v.sealed); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read sealed values of %s: %w", c.table, err)
			}
			out = append(out, v)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("read sealed values of %s: %w", c.table, err)
		}
	}
	return out, nil
}

// CheckSealed opens every sealed value in the database with box and returns
// how many there are; the first that does not open is an error naming its
// row.
func (s *Store) CheckSealed(ctx context.Context, box *secretbox.Box) (int, error) {
	vals, err := sealedValues(ctx, s.r)
	if err != nil {
		return 0, err
	}
	for _, v := range vals {
		if _, err := box.Open(v.sealed, v.col.ad(v.key)); err != nil {
			return 0, fmt.Errorf("%s %s: %w", v.col.table, v.key, err)
		}
	}
	return len(vals), nil
}

// ErrSealedNotOpen is returned by Reseal when a sealed value opens with
// neither the old nor the new key.
var ErrSealedNotOpen = errors.New("a sealed value opens with neither key")

// Reseal re-seals every sealed value with next, in one transaction: either
// every value is sealed with next afterwards, or (on an error or a crash)
// none was changed. A value that already opens with next is left as it is,
// so that a rotation interrupted after its commit can be run again. It
// returns how many values it re-sealed.
func (s *Store) Reseal(ctx context.Context, next *secretbox.Box) (int, error) {
	n := 0
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		vals, err := sealedValues(ctx, tx)
		if err != nil {
			return err
		}
		for _, v := range vals {
			ad := v.col.ad(v.key)
			if _, err := next.Open(v.sealed, ad); err == nil {
				continue
			}
			pt, err := s.box.Open(v.sealed, ad)
			if err != nil {
				return fmt.Errorf("%s %s: %w", v.col.table, v.key, ErrSealedNotOpen)
			}
			sealed, err := next.Seal(pt, ad)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE `+v.col.table+` SET `+v.col.column+` = $1 WHERE CAST(`+v.col.key+` AS TEXT) = $2`,
				sealed, v.key); err != nil {
				return fmt.Errorf("re-seal %s %s: %w", v.col.table, v.key, err)
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("re-seal secrets: %w", err)
	}
	return n, nil
}
