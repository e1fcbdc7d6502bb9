// Package storetest gives tests the servers named by DPROXY_TEST_POSTGRES
// and DPROXY_TEST_S3, and a PostgreSQL database of their own: a fresh schema
// in that server, dropped when the test ends, so tests can run in parallel
// on one server. It is for tests only and must not import any dproxy
// package.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"strconv"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
)

// EnvPostgres names the variable holding a postgres:// URL of a server
// tests may create schemas in, e.g.
// postgres://postgres@127.0.0.1:17001/dproxy?sslmode=disable.
const EnvPostgres = "DPROXY_TEST_POSTGRES"

// EnvS3 names the variable holding an S3-compatible server tests may write
// to, as http://ACCESS_KEY:SECRET_KEY@host:port/bucket.
const EnvS3 = "DPROXY_TEST_S3"

// EnvCI names the variable CI systems set to true. With it, a test whose
// server variable is missing fails instead of skipping.
const EnvCI = "CI"

// Require returns the value of name, EnvPostgres or EnvS3. When it is
// empty the test is skipped, or fails when CI is true (as strconv.ParseBool
// reads it): in CI a dropped variable must not turn these tests into
// silent skips. Either way the message names the variable and how to set
// it.
func Require(t testing.TB, name string) string {
	t.Helper()
	var what, example string
	switch name {
	case EnvPostgres:
		what, example = "PostgreSQL", "'postgres://USER@HOST:PORT/DB?sslmode=disable' (a server the tests may create schemas in)"
	case EnvS3:
		what, example = "S3", "'http://ACCESS_KEY:SECRET_KEY@HOST:PORT/BUCKET' (an S3-compatible server)"
	default:
		t.Fatalf("storetest.Require(%q): want %s or %s", name, EnvPostgres, EnvS3)
	}
	if v := os.Getenv(name); v != "" {
		return v
	}
	howTo := "To run it, set " + name + "=" + example + ", or run `bash .ci/run` as root: it starts throwaway servers on loopback, sets both variables and runs every test."
	if ci, _ := strconv.ParseBool(os.Getenv(EnvCI)); ci {
		t.Fatalf("%s is not set, but %s=%s: CI must run this %s test, not skip it. %s", name, EnvCI, os.Getenv(EnvCI), what, howTo)
	}
	t.Skipf("%s is not set: skipping this %s test. %s", name, what, howTo)
	return ""
}

// PostgresDSN creates a new, empty schema and returns a DSN whose
// search_path is that schema. Without DPROXY_TEST_POSTGRES it skips the
// test, or fails it in CI (see Require).
func PostgresDSN(t testing.TB) string {
	t.Helper()
	base := Require(t, EnvPostgres)
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s: %v", EnvPostgres, err)
	}
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	schema := "test_" + hex.EncodeToString(b[:])

	db, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("open %s: %v", EnvPostgres, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := db.ExecContext(ctx, `CREATE SCHEMA `+schema); err != nil {
		db.Close()
		t.Fatalf("create schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := db.ExecContext(ctx, `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
