package store

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dproxy/dproxy/internal/secretbox"
)

func testBox(t *testing.T, fill byte) *secretbox.Box {
	t.Helper()
	b, err := secretbox.New(bytes.Repeat([]byte{fill}, secretbox.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// openSQLiteAt opens (and closes at the end of the test) the store at path.
func openSQLiteAt(t *testing.T, path string, box *secretbox.Box) *Store {
	t.Helper()
	s, err := OpenSQLite(context.Background(), path, box)
	if err != nil {
		t.Fatalf("OpenSQLite(%s): %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openTestSQLite(t *testing.T) *Store {
	t.Helper()
	return openSQLiteAt(t, filepath.Join(t.TempDir(), "dproxy.db"), testBox(t, 1))
}

func TestSQLiteContract(t *testing.T) {
	t.Parallel()
	runStoreContract(t, openTestSQLite)
}

func TestSQLiteReopenKeepsDataAndMigratesOnce(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "nested", "dir", "dproxy.db") // parent dirs are created
	box := testBox(t, 1)

	s, err := OpenSQLite(ctx, path, box)
	if err != nil {
		t.Fatalf("OpenSQLite: %v", err)
	}
	u, err := s.CreateUser(ctx, User{Username: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	g, err := s.CreateGroup(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateProxySetting(ctx, ProxySetting{GroupID: g.ID, Enabled: true, Identity: "bot", Secret: "kept"}); err != nil {
		t.Fatal(err)
	}
	migrationsBefore := appliedMigrations(t, s)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	files, _ := fs.Glob(migrations, "migrations/sqlite/*.sql")
	if len(migrationsBefore) != len(files)+len(goMigrations) {
		t.Fatalf("applied migrations %v, want one per file and Go migration (%d)", migrationsBefore, len(files)+len(goMigrations))
	}

	s2 := openSQLiteAt(t, path, box)
	if got, err := s2.UserByID(ctx, u.ID); err != nil || got.Username != "alice" {
		t.Errorf("user after reopen = %+v, %v", got, err)
	}
	if p, err := s2.ProxySetting(ctx, g.ID); err != nil || p.Secret != "kept" {
		t.Errorf("proxy setting after reopen = %+v, %v", p, err)
	}
	if after := appliedMigrations(t, s2); strings.Join(after, ",") != strings.Join(migrationsBefore, ",") {
		t.Errorf("migrations after reopen = %v, want %v (none re-applied)", after, migrationsBefore)
	}
}

// appliedMigrations lists goose's applied versions, one entry per row.
func appliedMigrations(t *testing.T, s *Store) []string {
	t.Helper()
	rows, err := s.r.QueryContext(t.Context(), `SELECT version_id FROM goose_db_version WHERE version_id > 0 AND is_applied ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

func TestSQLiteSecretsNotInPlaintextOnDisk(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()
	path := filepath.Join(dir, "dproxy.db")
	s := openSQLiteAt(t, path, testBox(t, 1))
	const (
		groupSecret   = "dckr_pat_GROUP-SECRET-4f1c2a"
		defaultSecret = "dckr_pat_DEFAULT-SECRET-9b7e3d"
		identity      = "identity-in-plaintext-7a7a"
	)
	g, err := s.CreateGroup(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateProxySetting(ctx, ProxySetting{GroupID: g.ID, Enabled: true, Identity: identity, Secret: groupSecret}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetDefaultHubCredentials(ctx, HubCredentials{Identity: identity, Secret: defaultSecret}); err != nil {
		t.Fatal(err)
	}

	grep := func(stage string) {
		t.Helper()
		var all []byte
		for _, suffix := range []string{"", "-wal", "-shm"} {
			data, err := os.ReadFile(path + suffix)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				t.Fatal(err)
			}
			all = append(all, data...)
		}
		// The identity is stored in plaintext: finding it proves the
		// search looks at the right bytes.
		if !bytes.Contains(all, []byte(identity)) {
			t.Fatalf("%s: identity not found in the database files; the check is looking at the wrong bytes", stage)
		}
		for _, secret := range []string{groupSecret, defaultSecret} {
			if bytes.Contains(all, []byte(secret)) {
				t.Errorf("%s: secret %q found in plaintext in the database files", stage, secret)
			}
		}
	}
	grep("before checkpoint")
	if _, err := s.w.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	grep("after checkpoint")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	grep("after close")
}

func TestSQLiteFileAndConnectionSettings(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	// A path with characters that mean something in a URI.
	path := filepath.Join(t.TempDir(), "data dir #1?x=y", "dproxy%20.db")
	s := openSQLiteAt(t, path, testBox(t, 1))
	if _, err := s.CreateUser(ctx, User{Username: "alice"}); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatalf("database not created at the exact path: %v", err)
	}
	if perm := st.Mode().Perm(); perm != 0o600 {
		t.Errorf("database file mode = %04o, want 0600", perm)
	}

	checks := []struct {
		side, pragma, want string
	}{
		{"writer", "journal_mode", "wal"},
		{"writer", "foreign_keys", "1"},
		{"writer", "synchronous", "1"},
		{"writer", "busy_timeout", "5000"},
		{"writer", "query_only", "0"},
		{"reader", "journal_mode", "wal"},
		{"reader", "foreign_keys", "1"},
		{"reader", "busy_timeout", "5000"},
		{"reader", "query_only", "1"},
	}
	for _, c := range checks {
		db := s.w
		if c.side == "reader" {
			db = s.r
		}
		var got string
		if err := db.QueryRowContext(ctx, "PRAGMA "+c.pragma).Scan(&got); err != nil {
			t.Fatalf("%s PRAGMA %s: %v", c.side, c.pragma, err)
		}
		if got != c.want {
			t.Errorf("%s PRAGMA %s = %s, want %s", c.side, c.pragma, got, c.want)
		}
	}
	if s.w.Stats().MaxOpenConnections != 1 {
		t.Errorf("writer pool allows %d connections, want 1", s.w.Stats().MaxOpenConnections)
	}
	if _, err := s.r.ExecContext(ctx, `DELETE FROM users`); err == nil {
		t.Error("a write through the reader pool succeeded")
	}
}

func TestSQLiteWrongKeyAfterReopen(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "dproxy.db")
	s, err := OpenSQLite(ctx, path, testBox(t, 1))
	if err != nil {
		t.Fatal(err)
	}
	g, err := s.CreateGroup(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateProxySetting(ctx, ProxySetting{GroupID: g.ID, Identity: "bot", Secret: "s"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetDefaultHubCredentials(ctx, HubCredentials{Identity: "bot", Secret: "s"}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s2 := openSQLiteAt(t, path, testBox(t, 2))
	if _, err := s2.ProxySetting(ctx, g.ID); err == nil || !strings.Contains(err.Error(), "secret key") {
		t.Errorf("ProxySetting with another key = %v, want an error mentioning the secret key", err)
	}
	if _, err := s2.DefaultHubCredentials(ctx); err == nil {
		t.Error("DefaultHubCredentials with another key succeeded")
	}
}

func TestOpenSQLiteErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := OpenSQLite(t.Context(), filepath.Join(dir, "a.db"), nil); err == nil {
		t.Error("OpenSQLite without a secret box succeeded")
	}
	// A file where the parent directory should be.
	blocker := filepath.Join(dir, "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenSQLite(t.Context(), filepath.Join(blocker, "dproxy.db"), testBox(t, 1)); err == nil {
		t.Error("OpenSQLite under a regular file succeeded")
	}
	// Not a database.
	junk := filepath.Join(dir, "junk.db")
	if err := os.WriteFile(junk, bytes.Repeat([]byte("not a database "), 100), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenSQLite(t.Context(), junk, testBox(t, 1)); err == nil || !strings.Contains(err.Error(), junk) {
		t.Errorf("OpenSQLite on a junk file = %v, want an error naming the file", err)
	}
	// A database others may read is refused like a key file.
	loose := filepath.Join(dir, "loose.db")
	st, err := OpenSQLite(t.Context(), loose, testBox(t, 1))
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if err := os.Chmod(loose, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenSQLite(t.Context(), loose, testBox(t, 1)); err == nil || !strings.Contains(err.Error(), "chmod 600 "+loose) {
		t.Errorf("OpenSQLite on a mode 0644 database = %v, want an error saying to chmod 600 it", err)
	}
}

func TestRoleNames(t *testing.T) {
	t.Parallel()
	for _, r := range []Role{RoleMinimalAccess, RoleGuest, RoleReporter, RoleDeveloper, RoleMaintainer, RoleOwner} {
		got, err := ParseRole(r.String())
		if err != nil || got != r {
			t.Errorf("ParseRole(%q) = %v, %v; want %v", r.String(), got, err, r)
		}
		if !r.Valid() {
			t.Errorf("%s not valid", r)
		}
	}
	tests := []struct {
		in   string
		want Role
	}{
		{"guest", RoleGuest}, {" Owner ", RoleOwner}, {"minimal-access", RoleMinimalAccess}, {"MINIMAL_ACCESS", RoleMinimalAccess},
	}
	for _, tt := range tests {
		if got, err := ParseRole(tt.in); err != nil || got != tt.want {
			t.Errorf("ParseRole(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{"", "none", "admin", "10"} {
		if _, err := ParseRole(in); err == nil || !strings.Contains(err.Error(), "guest") {
			t.Errorf("ParseRole(%q) = %v, want an error listing the roles", in, err)
		}
	}
	if RoleNone.String() != "none" || Role(7).String() != "role(7)" || RoleNone.Valid() || Role(7).Valid() {
		t.Error("RoleNone or an unknown role is named or validated wrongly")
	}
	if !(RoleMinimalAccess < RoleGuest && RoleNone < RoleMinimalAccess) {
		t.Error("minimal access must rank between none and guest")
	}
}

// TestSQLiteLookupsUseIndexes keeps the hot lookups off full table scans.
func TestSQLiteLookupsUseIndexes(t *testing.T) {
	t.Parallel()
	s := openTestSQLite(t)
	queries := map[string]string{
		"TokenByHash":      `SELECT ` + tokenColumns + ` FROM tokens WHERE hash = $1`,
		"Manifest":         groupCache.manifest,
		"Blob":             groupCache.blob,
		"VirtualManifest":  upstreamCache.manifest,
		"VirtualBlob":      upstreamCache.blob,
		"BlobReferenced":   `SELECT EXISTS (SELECT 1 FROM blob_refs WHERE digest = $1)`,
		"GroupByPath":      `SELECT ` + groupColumns + ` FROM groups WHERE path = $1`,
		"UserByUsername":   `SELECT ` + userColumns + ` FROM users WHERE username = $1`,
		"ExpireManifests":  `DELETE FROM manifests WHERE group_id = $1 AND read_at < $2`,
		"ManifestsOfGroup": `SELECT id FROM manifests WHERE group_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3`,
		"GroupUsages":      groupUsagesSelect + `($1, $2, $3)`,
		"ProxySettings":    proxySettingsSelect + `($1, $2, $3)`,
		"TTLPolicies":      ttlPoliciesSelect + `($1, $2, $3)`,
	}
	for name, q := range queries {
		rows, err := s.r.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+q, 1, 2, 3)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		joined := strings.Join(plan, "; ")
		scan := slices.ContainsFunc(plan, func(d string) bool {
			return strings.HasPrefix(d, "SCAN ") && d != "SCAN CONSTANT ROW"
		})
		if !strings.Contains(joined, "USING") || scan {
			t.Errorf("%s plan = %q, want an index search, no scan", name, joined)
		}
	}
}
