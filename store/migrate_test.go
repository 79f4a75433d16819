package store_test

import (
	"context"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/store"
	"github.com/orderhook/orderhook/store/storetest"
)

// Replicas that start together apply each migration once.
func TestMigrateConcurrentlyAppliesOnce(t *testing.T) {
	t.Parallel()
	storetest.Dialects(t, func(t *testing.T, rawURL string) {
		ctx := context.Background()
		replicas := 4
		if strings.HasPrefix(rawURL, "sqlite:") {
			replicas = 1 // one process per SQLite database
		}
		var wg sync.WaitGroup
		applied := make(chan int, replicas)
		for range replicas {
			wg.Add(1)
			go func() {
				defer wg.Done()
				db, err := store.Open(ctx, rawURL)
				require.NoError(t, err)
				defer db.Close()
				done, err := db.Migrate(ctx)
				require.NoError(t, err)
				applied <- len(done)
			}()
		}
		wg.Wait()
		close(applied)
		total := 0
		for n := range applied {
			total += n
		}
		db := storetest.Open(t, rawURL)
		status, err := db.MigrationStatus(ctx)
		require.NoError(t, err)
		require.Equal(t, len(status), total, "each migration applied exactly once")
		for _, m := range status {
			require.True(t, m.Applied, m.Name)
		}
		require.NoError(t, db.Ready(ctx))
		again, err := db.Migrate(ctx)
		require.NoError(t, err)
		require.Empty(t, again)
	})
}

func TestReadyReportsPendingMigrations(t *testing.T) {
	t.Parallel()
	storetest.Dialects(t, func(t *testing.T, rawURL string) {
		db, err := store.Open(context.Background(), rawURL)
		require.NoError(t, err)
		defer db.Close()
		err = db.Ready(context.Background())
		require.ErrorIs(t, err, store.ErrMigrationsPending)
		require.Regexp(t, `00001_inbox\.sql and [0-9]+ after it: run orderhook migrate`, err.Error(), "names the first pending")
	})
}

// A search_path naming no schema of the database is said so, and how to
// fix it, by migrate and by every command that reads the migrations.
func TestMigrateNamesAMissingSchema(t *testing.T) {
	t.Parallel()
	base := storetest.PostgresURL(t)
	u, err := url.Parse(base)
	require.NoError(t, err)
	q := u.Query()
	q.Set("search_path", q.Get("search_path")+"_missing")
	u.RawQuery = q.Encode()
	db, err := store.Open(context.Background(), u.String())
	require.NoError(t, err)
	defer db.Close()
	for _, call := range []func() error{
		func() error { _, err := db.Migrate(context.Background()); return err },
		func() error { _, err := db.MigrationStatus(context.Background()); return err },
	} {
		err := call()
		require.Error(t, err)
		require.Regexp(t, `search_path "test_[0-9a-f]+_missing" names no schema of this database that this role may use: create it \(CREATE SCHEMA\), grant USAGE on it, or correct search_path`, err.Error())
	}
}

// The last migration alone pending is named alone, not "and 0 after it".
func TestReadyNamesTheLastPendingMigrationAlone(t *testing.T) {
	t.Parallel()
	db := storetest.SQLite(t)
	_, err := db.SQLX().Exec(`DELETE FROM orderhook_migrations WHERE version_id = (SELECT max(version_id) FROM orderhook_migrations)`)
	require.NoError(t, err)
	err = db.Ready(context.Background())
	require.ErrorIs(t, err, store.ErrMigrationsPending)
	require.Regexp(t, `: 0000\d_\w+\.sql: run orderhook migrate$`, err.Error())
}

func TestOpenRejectsUnknownURLs(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"", "mysql://root@localhost/db", "sqlite:", "orderhook.db", "postgres://", "postgresql:///"} {
		_, err := store.Open(context.Background(), u)
		require.ErrorIs(t, err, store.ErrBadURL, "url %q", u)
		require.Regexp(t, `sqlite:|postgres://USER@HOST`, err.Error(), "url %q", u)
	}
	// Parameters the driver cannot take are the URL's fault too, found
	// before anything is connected.
	for param, says := range map[string]string{
		"sslmode=bogus":           `wrong value for "sslmode"`,
		"connect_timeout=abc":     `wrong value for "connect_timeout"`,
		"binary_parameters=maybe": `wrong value for "binary_parameters"`,
	} {
		_, err := store.Open(context.Background(), "postgres://postgres@127.0.0.1:1/db?"+param)
		require.ErrorIs(t, err, store.ErrBadURL, param)
		require.ErrorContains(t, err, says, param)
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()
	require.Equal(t, "postgres://app:xxxxx@db:5432/x", store.Redact("postgres://app:s3cret@db:5432/x"))
	require.Equal(t, "postgres://app@db/x", store.Redact("postgres://app@db/x"))
	require.Equal(t, "sqlite:orderhook.db", store.Redact("sqlite:orderhook.db"))
	require.Equal(t, "postgres://app@db/x?password=xxxxx&sslmode=disable&sslpassword=xxxxx",
		store.Redact("postgres://app@db/x?sslmode=disable&password=s3cret&sslpassword=s3cret"))
	require.Equal(t, "postgres:(not shown: it does not parse)", store.Redact("postgres://app:p%ss@db/x"))
	require.Equal(t, "database:(not shown: it does not parse)", store.Redact("p%ss word:x"))

	// Nor does the error of a URL that does not parse show its password.
	_, err := store.Open(context.Background(), "postgres://app:p%zz@db/x")
	require.ErrorIs(t, err, store.ErrBadURL)
	require.ErrorContains(t, err, "percent-encode")
	require.NotContains(t, err.Error(), "p%zz")
	require.NotContains(t, err.Error(), "%zz")
}

// 00008 runs on a server older than 14, which does not know SET
// COMPRESSION: PL/pgSQL parses a block's statements before it runs any, so
// the version check alone would not keep the ALTER from failing. Here its
// blocks run with a version no server has and a syntax no server knows.
func TestPayloadCompressionMigrationRunsOnOlderServers(t *testing.T) {
	t.Parallel()
	db := storetest.Postgres(t)
	sql, err := os.ReadFile("migrations/postgres/00008_payload_lz4.sql")
	require.NoError(t, err)
	blocks := 0
	for _, part := range strings.Split(string(sql), "-- +goose StatementBegin")[1:] {
		block, _, ok := strings.Cut(part, "-- +goose StatementEnd")
		require.True(t, ok)
		require.Contains(t, block, "140000")
		require.Contains(t, block, "SET COMPRESSION")
		block = strings.ReplaceAll(block, "140000", "990000")
		block = strings.ReplaceAll(block, "SET COMPRESSION", "SET NO_SUCH_SYNTAX")
		_, err := db.SQLX().Exec(block)
		require.NoError(t, err, "block %d", blocks+1)
		blocks++
	}
	require.Equal(t, 2, blocks, "Up and Down")
}

// On a server that has lz4, payloads are stored with it (00008).
func TestPayloadsAreCompressedWithLZ4WhereTheServerHasIt(t *testing.T) {
	t.Parallel()
	db := storetest.Postgres(t)
	ctx := context.Background()
	ev := newEvent("evt_lz4", "cus_1", t0)
	ev.Payload = []byte(`{"id":"evt_lz4","data":{"object":{"lines":[` + strings.Repeat(`{"object":"line_item","amount":1500},`, 100) + `{}]}}}`)
	_, err := db.InsertEvent(ctx, ev)
	require.NoError(t, err)

	var method string
	require.NoError(t, db.SQLX().GetContext(ctx, &method,
		`SELECT COALESCE(pg_column_compression(payload), 'none') FROM webhook_events WHERE event_id = 'evt_lz4'`))
	if serverHasLZ4(t, db) {
		require.Equal(t, "lz4", method)
	} else {
		require.Equal(t, "pglz", method, "the server's default where lz4 is missing")
	}
	got, err := db.Event(ctx, "evt_lz4")
	require.NoError(t, err)
	require.Equal(t, ev.Payload, got.Payload, "byte-exact through the compression")
}

// serverHasLZ4 reports whether db's server can compress with lz4.
func serverHasLZ4(t *testing.T, db *store.DB) bool {
	t.Helper()
	tx, err := db.SQLX().Beginx()
	require.NoError(t, err)
	defer func() { _ = tx.Rollback() }()
	_, err = tx.Exec(`CREATE TEMP TABLE lz4_probe (b bytea COMPRESSION lz4)`)
	return err == nil
}
