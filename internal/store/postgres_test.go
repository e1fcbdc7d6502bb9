package store

import (
	"context"
	"errors"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/dproxy/dproxy/internal/store/storetest"
)

func openTestPostgres(t *testing.T) *Store {
	t.Helper()
	s, err := OpenPostgres(t.Context(), storetest.PostgresDSN(t), testBox(t, 1), PostgresOptions{MaxConns: 8})
	if err != nil {
		t.Fatalf("OpenPostgres: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestPostgresContract(t *testing.T) {
	t.Parallel()
	runStoreContract(t, openTestPostgres)
}

func TestPostgresAdminContract(t *testing.T) {
	t.Parallel()
	runAdminContract(t, openTestPostgres)
}

func TestPostgresLifecycleContract(t *testing.T) {
	t.Parallel()
	runLifecycleContract(t, openTestPostgres)
}

// Replicas starting together on an empty database apply each migration
// exactly once and all come up.
func TestPostgresConcurrentMigration(t *testing.T) {
	t.Parallel()
	dsn := storetest.PostgresDSN(t)
	const replicas = 4
	stores := make([]*Store, replicas)
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i := range replicas {
		wg.Go(func() {
			stores[i], errs[i] = OpenPostgres(context.Background(), dsn, testBox(t, 1), PostgresOptions{MaxConns: 4})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: OpenPostgres: %v", i, err)
		}
		t.Cleanup(func() { stores[i].Close() })
	}
	files, _ := fs.Glob(migrations, "migrations/postgres/*.sql")
	got := appliedMigrations(t, stores[0])
	if len(got) != len(files)+len(goMigrations) {
		t.Errorf("applied migrations %v, want each of the %d files and Go migrations once", got, len(files)+len(goMigrations))
	}
	// Every replica sees the same data.
	if _, err := stores[1].CreateGroup(t.Context(), "acme"); err != nil {
		t.Fatal(err)
	}
	if _, err := stores[3].GroupByPath(t.Context(), "acme"); err != nil {
		t.Errorf("group created on replica 1, looked up on replica 3: %v", err)
	}
}

// The two migration folders must stay twins: one file per version in each.
func TestMigrationsMirrored(t *testing.T) {
	t.Parallel()
	names := func(dir string) []string {
		files, err := fs.Glob(migrations, dir+"/*.sql")
		if err != nil {
			t.Fatal(err)
		}
		for i, f := range files {
			files[i] = path.Base(f)
		}
		return files
	}
	lite, pg := names("migrations/sqlite"), names("migrations/postgres")
	if len(lite) == 0 || !slices.Equal(lite, pg) {
		t.Errorf("migrations/sqlite has %v, migrations/postgres has %v: write every migration for both dialects", lite, pg)
	}
}

// Both dialects end up with the same tables and columns.
func TestPostgresSchemaMatchesSQLite(t *testing.T) {
	t.Parallel()
	pg := openTestPostgres(t)
	lite := openTestSQLite(t)
	columns := func(s *Store, query string) []string {
		rows, err := s.r.QueryContext(t.Context(), query)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var table, column string
			if err := rows.Scan(&table, &column); err != nil {
				t.Fatal(err)
			}
			out = append(out, table+"."+column)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		slices.Sort(out)
		return out
	}
	want := columns(lite, `SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p
		WHERE m.type IN ('table', 'view') AND m.name NOT LIKE 'sqlite_%' AND m.name <> 'goose_db_version'`)
	got := columns(pg, `SELECT table_name, column_name FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name <> 'goose_db_version'`)
	if !slices.Equal(got, want) {
		t.Errorf("PostgreSQL columns differ from SQLite's:\n got %s\nwant %s", strings.Join(got, " "), strings.Join(want, " "))
	}
}

func TestRedactDSN(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"postgres://dproxy:s3cret@db:5432/dproxy?sslmode=disable", "postgres://dproxy:xxxxx@db:5432/dproxy?sslmode=disable"},
		{"postgres://db/dproxy?password=s3cret&user=u", "postgres://db/dproxy?password=xxxxx&user=u"},
		{"postgres://dproxy@db/dproxy", "postgres://dproxy@db/dproxy"},
	} {
		if got := RedactDSN(tc.in); got != tc.want {
			t.Errorf("RedactDSN(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestOpenPostgresErrorHidesPassword(t *testing.T) {
	t.Parallel()
	// Nothing listens on port 1: the connection fails and the error quotes the DSN.
	_, err := Open(t.Context(), "postgres://dproxy:hunter2-secret@127.0.0.1:1/dproxy?sslmode=disable&connect_timeout=2", "", testBox(t, 1))
	if err == nil {
		t.Fatal("Open of an unreachable server succeeded")
	}
	if strings.Contains(err.Error(), "hunter2-secret") {
		t.Errorf("error leaks the password: %v", err)
	}
	if _, err := Open(t.Context(), "mysql://x", "", testBox(t, 1)); err == nil || !strings.Contains(err.Error(), "postgres://") {
		t.Errorf("Open of an unsupported database = %v, want an error naming what is supported", err)
	}
}

func TestTryLock(t *testing.T) {
	t.Parallel()
	for _, b := range twoHandles {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			a, other := b.open(t)
			ctx := t.Context()
			unlock, ok, err := a.TryLock(ctx, "gc")
			if err != nil || !ok {
				t.Fatalf("first TryLock = %v, %v; want it taken", ok, err)
			}
			if _, ok, err := other.TryLock(ctx, "gc"); err != nil || ok {
				t.Errorf("TryLock while held = %v, %v; want not taken", ok, err)
			}
			u2, ok, err := other.TryLock(ctx, "ttl")
			if err != nil || !ok {
				t.Errorf("TryLock of another name = %v, %v; want it taken", ok, err)
			} else {
				u2()
			}
			unlock()
			u3, ok, err := other.TryLock(ctx, "gc")
			if err != nil || !ok {
				t.Fatalf("TryLock after unlock = %v, %v; want it taken", ok, err)
			}
			u3()
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			if _, _, err := a.TryLock(cctx, "gc"); !errors.Is(err, context.Canceled) {
				t.Errorf("TryLock with a cancelled context = %v, want context.Canceled", err)
			}
		})
	}
}

// twoHandles open two handles on one new database of each backend, as two
// replicas hold. SQLite is owned by one process, so there they are one Store.
var twoHandles = []struct {
	name string
	open func(t *testing.T) (*Store, *Store)
}{
	{"sqlite", func(t *testing.T) (*Store, *Store) { s := openTestSQLite(t); return s, s }},
	{"postgres", func(t *testing.T) (*Store, *Store) {
		dsn := storetest.PostgresDSN(t)
		var two [2]*Store
		for i := range two {
			s, err := OpenPostgres(t.Context(), dsn, testBox(t, 1), PostgresOptions{MaxConns: 8})
			if err != nil {
				t.Fatalf("OpenPostgres: %v", err)
			}
			t.Cleanup(func() { s.Close() })
			two[i] = s
		}
		return two[0], two[1]
	}},
}
