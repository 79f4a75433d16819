package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/store"
	"github.com/orderhook/orderhook/store/storetest"
)

// The engine limit inserts one row per delivery into a scratch copy of the
// inbox — duplicates are no-ops, as in the inbox — and drops it after.
func TestMeasureLimit(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		w, err := NewWorkload(WorkloadConfig{Customers: 5, Duplicates: 0.3, Seed: 1})
		require.NoError(t, err)
		var ticks int
		lim, err := measureLimit(context.Background(), db, w.Deliveries, 1, func() { ticks++ })
		require.NoError(t, err)
		require.Equal(t, len(w.Deliveries), lim.Rows)
		require.Equal(t, len(w.Deliveries), ticks)
		require.Equal(t, len(w.Deliveries), lim.Latency.Count)
		require.Positive(t, lim.Rate())

		var inbox int
		require.NoError(t, db.SQLX().Get(&inbox, `SELECT count(*) FROM webhook_events`))
		require.Zero(t, inbox, "the inbox is not touched")
		require.Empty(t, tables(t, db, "bench_limit%"), "the scratch table is dropped")
	})
}

// The limit's connections are open, and its INSERT prepared, before its
// clock starts: as many connections as it has goroutines, or as the pool
// allows (SQLite's one).
func TestLimitConnectsBeforeTheClock(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		require.NoError(t, createScratch(ctx, db, "bench_limit_warm"))
		const conc = 6
		want := conc
		if most := db.SQLX().Stats().MaxOpenConnections; most > 0 {
			want = min(want, most)
		}
		insert, err := prepareLimit(ctx, db.SQLX(), "bench_limit_warm", conc)
		require.NoError(t, err)
		defer insert.Close()
		require.GreaterOrEqual(t, db.SQLX().Stats().OpenConnections, want)

		_, err = insert.ExecContext(ctx, "evt_warm", "customer.created", "2023-10-16", false, time.Now(),
			"cus_warm", "cus_warm", []byte(`{}`), time.Now())
		require.NoError(t, err)
	})
}

// The scratch table has the inbox's columns, types and indexes.
func TestScratchTableIsAnInboxCopy(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		require.NoError(t, createScratch(context.Background(), db, "bench_limit_copy"))
		require.Equal(t, tables(t, db, "bench_limit_copy"), []string{"bench_limit_copy"})
		require.Equal(t, shape(t, db, "webhook_events"), shape(t, db, "bench_limit_copy"))
	})
}

// tables lists the tables whose name is LIKE pattern.
func tables(t *testing.T, db *store.DB, pattern string) []string {
	t.Helper()
	q := `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_name LIKE $1`
	if db.Dialect() == store.SQLite {
		q = `SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE $1`
	}
	var names []string
	require.NoError(t, db.SQLX().Select(&names, db.SQLX().Rebind(q), pattern))
	return names
}

// shape lists a table's columns with their types, then its number of indexes.
func shape(t *testing.T, db *store.DB, table string) []string {
	t.Helper()
	cols := `SELECT column_name || ' ' || data_type || ' ' || is_nullable || ' ' || COALESCE(column_default, '')
		FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position`
	idx := `SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema() AND tablename = $1`
	if db.Dialect() == store.SQLite {
		cols = `SELECT name || ' ' || type || ' ' || "notnull" || ' ' || COALESCE(dflt_value, '') FROM pragma_table_info($1) ORDER BY cid`
		idx = `SELECT count(*) FROM pragma_index_list($1)`
	}
	var out []string
	require.NoError(t, db.SQLX().Select(&out, db.SQLX().Rebind(cols), table))
	var n int
	require.NoError(t, db.SQLX().Get(&n, db.SQLX().Rebind(idx), table))
	require.Greater(t, n, 5, "the primary key and the inbox's indexes")
	return append(out, fmt.Sprintf("%d indexes", n))
}
