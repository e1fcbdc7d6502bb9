package store

import (
	"database/sql"
	"errors"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
)

// Reseal is all or nothing: a value that opens with neither key leaves
// every value as it was, still opening with the old key.
func TestResealIsOneTransaction(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := openTestSQLite(t)
	var ids []int64
	for _, p := range []string{"a", "b"} {
		g, err := s.CreateGroup(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.UpdateProxySetting(ctx, ProxySetting{GroupID: g.ID, Enabled: true, Identity: "u", Secret: "secret-" + p}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, g.ID)
	}
	if err := s.SetDefaultHubCredentials(ctx, HubCredentials{Identity: "u", Secret: "instance-secret"}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.CheckSealed(ctx, testBox(t, 1)); err != nil || n != 3 {
		t.Fatalf("CheckSealed with the key: %d, %v; want 3 values", n, err)
	}
	if _, err := s.CheckSealed(ctx, testBox(t, 9)); err == nil {
		t.Fatal("CheckSealed with another key succeeded")
	}
	// The second group's value is damaged: sealed with a third key.
	other, _ := testBox(t, 3).Seal([]byte("x"), proxySecretAD(ids[1]))
	if _, err := s.w.ExecContext(ctx, `UPDATE dependency_proxy_settings SET secret_sealed = $1 WHERE group_id = $2`, other, ids[1]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reseal(ctx, testBox(t, 2)); !errors.Is(err, ErrSealedNotOpen) {
		t.Fatalf("Reseal with a damaged value: %v, want ErrSealedNotOpen", err)
	}
	if p, err := s.ProxySetting(ctx, ids[0]); err != nil || p.Secret != "secret-a" {
		t.Errorf("after a failed Reseal the first value reads %q, %v with the old key", p.Secret, err)
	}

	// Repaired, it re-seals everything; a second run finds nothing to do.
	if err := s.UpdateProxySetting(ctx, ProxySetting{GroupID: ids[1], Enabled: true, Identity: "u", Secret: "secret-b"}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Reseal(ctx, testBox(t, 2)); err != nil || n != 3 {
		t.Fatalf("Reseal: %d, %v; want 3", n, err)
	}
	if n, err := s.Reseal(ctx, testBox(t, 2)); err != nil || n != 0 {
		t.Fatalf("Reseal again: %d, %v; want 0", n, err)
	}
	if n, err := s.CheckSealed(ctx, testBox(t, 2)); err != nil || n != 3 {
		t.Errorf("CheckSealed with the new key: %d, %v", n, err)
	}
}

// CheckSQLiteFile accepts a dproxy database and refuses any extra object,
// a foreign database and a file that is not SQLite.
func TestCheckSQLiteFile(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	s := openSQLiteAt(t, good, testBox(t, 1))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := CheckSQLiteFile(ctx, good); err != nil {
		t.Fatalf("a fresh dproxy database: %v", err)
	}
	exec := func(path, stmt string) {
		db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath())
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	exec(good, `CREATE INDEX extra ON users (username, admin)`)
	if err := CheckSQLiteFile(ctx, good); err == nil || !strings.Contains(err.Error(), "unexpected index extra") {
		t.Errorf("an extra index: %v", err)
	}
	foreign := filepath.Join(dir, "foreign.db")
	exec(foreign, `CREATE TABLE notes (body TEXT)`)
	if err := CheckSQLiteFile(ctx, foreign); err == nil || !strings.Contains(err.Error(), "not dproxy's") {
		t.Errorf("a foreign database: %v", err)
	}
}
