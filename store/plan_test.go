package store_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/store"
)

// genericPlan returns the plan PostgreSQL keeps for query, prepared with
// parameters of paramTypes, as a processing transaction runs it — generic,
// without bitmap scans (the claim turns them off) — when executed with the
// SQL literals args.
func genericPlan(t *testing.T, db *store.DB, query, paramTypes, args string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := db.SQLX().Connx(ctx)
	require.NoError(t, err)
	defer conn.Close()
	for _, q := range []string{
		`SET enable_bitmapscan = off`,
		`SET plan_cache_mode = force_generic_plan`,
		`PREPARE planned (` + paramTypes + `) AS ` + query,
	} {
		_, err := conn.ExecContext(ctx, q)
		require.NoError(t, err, q)
	}
	var plan []string
	require.NoError(t, conn.SelectContext(ctx, &plan, `EXPLAIN EXECUTE planned(`+args+`)`))
	_, err = conn.ExecContext(ctx, `DISCARD ALL`) // the settings and the statement, before the pool has it back
	require.NoError(t, err)
	return strings.Join(plan, "\n")
}
