// Package storetest gives each test its own migrated database: a temporary
// SQLite file, or a fresh schema on the PostgreSQL server named by
// ORDERHOOK_TEST_DATABASE_URL. When that variable is set or CI=true, the
// PostgreSQL tests must run: a missing server is a failure, never a skip.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/internal/cutproxy"
	"github.com/orderhook/orderhook/store"
)

// EnvURL names the variable holding the test PostgreSQL URL.
const EnvURL = "ORDERHOOK_TEST_DATABASE_URL"

// SQLiteURL returns the URL of a fresh SQLite file in t's temporary directory.
func SQLiteURL(t testing.TB) string {
	t.Helper()
	return "sqlite:" + filepath.Join(t.TempDir(), "orderhook.db")
}

// PostgresURL creates a schema for t on the test server and returns a URL
// whose connections use it; the schema is dropped when t ends. It skips t when
// no server is configured, unless CI=true.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := serverURL(t)
	schema := "test_" + randomHex(t, 8)
	require.NoError(t, admin(base, `CREATE SCHEMA `+schema), "create schema on %s", store.Redact(base))
	t.Cleanup(func() { _ = admin(base, `DROP SCHEMA `+schema+` CASCADE`) })
	u, err := url.Parse(base)
	require.NoError(t, err)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// PostgresDatabaseURL creates a database of its own for t on the test server
// and returns its URL; the database is dropped when t ends. Schemas share
// their database's LISTEN/NOTIFY channels; a test that counts notifications
// needs a database of its own. It skips t as PostgresURL does.
func PostgresDatabaseURL(t testing.TB) string {
	t.Helper()
	base := serverURL(t)
	name := "test_" + randomHex(t, 8)
	require.NoError(t, admin(base, `CREATE DATABASE `+name), "create database on %s", store.Redact(base))
	t.Cleanup(func() { _ = admin(base, `DROP DATABASE `+name+` WITH (FORCE)`) })
	u, err := url.Parse(base)
	require.NoError(t, err)
	u.Path = "/" + name
	return u.String()
}

// ThroughProxy returns rawURL, a PostgreSQL URL, reaching its server through
// a proxy that the test can cut or freeze, and the proxy. The proxy closes
// when t ends.
func ThroughProxy(t testing.TB, rawURL string) (string, *cutproxy.Proxy) {
	t.Helper()
	u, err := url.Parse(rawURL)
	require.NoError(t, err)
	proxy := cutproxy.Start(t, u.Host)
	u.Host = proxy.Addr()
	return u.String(), proxy
}

// serverURL returns the test server's URL. It skips t when none is
// configured, and fails it instead when CI=true.
func serverURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvURL)
	if base == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set but CI=true: the PostgreSQL tests must run", EnvURL)
		}
		t.Skipf("%s not set; skipping PostgreSQL test", EnvURL)
	}
	return base
}

// admin runs statement on the test server's own database.
func admin(base, statement string) error {
	db, err := sqlx.Open("postgres", base)
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.Exec(statement)
	return err
}

// Open opens and migrates the database at rawURL and closes it when t ends.
func Open(t testing.TB, rawURL string) *store.DB {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, rawURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	_, err = db.Migrate(ctx)
	require.NoError(t, err)
	return db
}

// SQLite returns a migrated database in a fresh SQLite file.
func SQLite(t testing.TB) *store.DB {
	t.Helper()
	return Open(t, SQLiteURL(t))
}

// Postgres returns a migrated database in a fresh PostgreSQL schema.
func Postgres(t testing.TB) *store.DB {
	t.Helper()
	return Open(t, PostgresURL(t))
}

// Dialects runs fn as a parallel subtest once per dialect, each with its own
// fresh URL (not yet opened), so one test covers SQLite and PostgreSQL.
func Dialects(t *testing.T, fn func(t *testing.T, rawURL string)) {
	t.Helper()
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			fn(t, d.url(t))
		})
	}
}

// Each runs fn as a parallel subtest once per dialect with a migrated database.
func Each(t *testing.T, fn func(t *testing.T, db *store.DB)) {
	t.Helper()
	Dialects(t, func(t *testing.T, rawURL string) { fn(t, Open(t, rawURL)) })
}

// EachBenchmark runs fn as a sub-benchmark once per dialect, one after the
// other, with a migrated database.
func EachBenchmark(b *testing.B, fn func(b *testing.B, db *store.DB)) {
	b.Helper()
	for _, d := range dialects {
		b.Run(d.name, func(b *testing.B) { fn(b, Open(b, d.url(b))) })
	}
}

// dialects names each engine with the function that gives a test its URL.
var dialects = []struct {
	name string
	url  func(testing.TB) string
}{{"sqlite", SQLiteURL}, {"postgres", PostgresURL}}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}
