package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/store"
	"github.com/orderhook/orderhook/store/storetest"
)

// Purge deletes final events older than the cut-off, with their history,
// and nothing that is still to be applied or decided.
func TestPurgeDeletesOnlyOldFinalEvents(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := t0.Add(90 * 24 * time.Hour)
		old, young := now.Add(-31*24*time.Hour), now.Add(-29*24*time.Hour)
		storetest.Seed(t, db,
			storetest.Row{ID: "evt_applied", Type: "invoice.paid", CustomerID: "cus_1", Status: store.StatusApplied, Received: old},
			storetest.Row{ID: "evt_ignored", Type: "product.created", Status: store.StatusIgnored, Received: old},
			storetest.Row{ID: "evt_discard", Type: "invoice.paid", CustomerID: "cus_1", Status: store.StatusDead, Received: old, Attempts: 12, LastError: "boom"},
			storetest.Row{ID: "evt_dead", Type: "invoice.paid", CustomerID: "cus_1", Status: store.StatusDead, Received: old, Attempts: 12, LastError: "boom"},
			storetest.Row{ID: "evt_pending", Type: "invoice.paid", CustomerID: "cus_1", Received: old},
			storetest.Row{ID: "evt_deferred", Type: "invoice.paid", CustomerID: "cus_2", Status: store.StatusDeferred, WaitingFor: "customer:cus_2", Received: old},
			storetest.Row{ID: "evt_young", Type: "invoice.paid", CustomerID: "cus_1", Status: store.StatusApplied, Received: young},
		)
		_, err := db.Discard(ctx, store.DiscardParams{IDs: []string{"evt_discard"}, Reason: "test data", Actor: "ops", Now: now})
		require.NoError(t, err)
		history := func(id string) int {
			var n int
			require.NoError(t, db.SQLX().GetContext(ctx, &n, db.SQLX().Rebind(`SELECT count(*) FROM event_attempts WHERE event_id = ?`), id))
			return n
		}
		require.Equal(t, 1, history("evt_discard"))

		_, err = db.Purge(ctx, store.PurgeParams{OlderThan: 29 * 24 * time.Hour, Now: now})
		require.ErrorIs(t, err, store.ErrInvalidInput, "younger than a Stripe resend")

		p := store.PurgeParams{OlderThan: 30 * 24 * time.Hour, Now: now, DryRun: true}
		res, err := db.Purge(ctx, p)
		require.NoError(t, err)
		require.Equal(t, store.PurgeResult{Before: now.Add(-30 * 24 * time.Hour), Purged: 3, DryRun: true}, res)
		_, err = db.Event(ctx, "evt_applied")
		require.NoError(t, err, "a dry run deletes nothing")

		p.DryRun = false
		res, err = db.Purge(ctx, p)
		require.NoError(t, err)
		require.EqualValues(t, 3, res.Purged)
		for _, id := range []string{"evt_applied", "evt_ignored", "evt_discard"} {
			_, err := db.Event(ctx, id)
			require.ErrorIs(t, err, store.ErrNotFound, id)
		}
		require.Zero(t, history("evt_discard"), "the history goes with the event")
		for _, id := range []string{"evt_dead", "evt_pending", "evt_deferred", "evt_young"} {
			_, err := db.Event(ctx, id)
			require.NoError(t, err, "%s is kept", id)
		}

		res, err = db.Purge(ctx, p)
		require.NoError(t, err)
		require.Zero(t, res.Purged, "run again, nothing left")
	})
}

// A purge larger than one batch deletes every row, a batch at a time.
func TestPurgeDeletesInBatches(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		storetest.SeedDead(t, db, "evt_old", "invoice.paid", 2500, t0, func(int) string { return "cus_1" })
		_, err := db.SQLX().ExecContext(ctx, `UPDATE webhook_events SET status = 'applied'`)
		require.NoError(t, err)

		res, err := db.Purge(ctx, store.PurgeParams{OlderThan: store.MinPurgeAge, Now: t0.Add(store.MinPurgeAge + time.Hour)})
		require.NoError(t, err)
		require.EqualValues(t, 2500, res.Purged)
		var left int
		require.NoError(t, db.SQLX().GetContext(ctx, &left, `SELECT count(*) FROM webhook_events`))
		require.Zero(t, left)
	})
}

// A row replayed while a purge waits for its lock is pending when the purge
// gets it, and is kept: PostgreSQL checks again, after the wait, only the
// conditions of the statement that locks the row.
func TestPurgeKeepsARowReplayedMeanwhile(t *testing.T) {
	t.Parallel()
	db := storetest.Postgres(t)
	ctx := context.Background()
	now := t0.Add(90 * 24 * time.Hour)
	storetest.Seed(t, db,
		storetest.Row{ID: "evt_replayed", Type: "invoice.paid", CustomerID: "cus_1", Status: store.StatusApplied, Received: t0},
		storetest.Row{ID: "evt_old", Type: "invoice.paid", CustomerID: "cus_1", Status: store.StatusApplied, Received: t0},
	)
	tx, err := db.SQLX().BeginTxx(ctx, nil)
	require.NoError(t, err)
	_, err = tx.ExecContext(ctx, `UPDATE webhook_events SET status = 'pending' WHERE event_id = 'evt_replayed'`)
	require.NoError(t, err)

	done := make(chan store.PurgeResult, 1)
	go func() {
		res, err := db.Purge(ctx, store.PurgeParams{OlderThan: store.MinPurgeAge, Now: now})
		assert.NoError(t, err)
		done <- res
	}()
	require.Eventually(t, func() bool {
		var waiting int
		require.NoError(t, db.SQLX().GetContext(ctx, &waiting, `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'DELETE FROM webhook_events WHERE event_id IN (SELECT event_id%'`))
		return waiting > 0
	}, 10*time.Second, 10*time.Millisecond, "the purge waits for the replayed row's lock")
	require.NoError(t, tx.Commit())

	require.EqualValues(t, 1, (<-done).Purged)
	ev, err := db.Event(ctx, "evt_replayed")
	require.NoError(t, err, "the replayed row is kept")
	require.Equal(t, store.StatusPending, ev.Status)
}
