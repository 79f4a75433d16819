package storetest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/store"
)

// Row is an inbox row for a test to seed.
type Row struct {
	ID, Type, CustomerID  string
	Status                store.Status // default pending
	Received              time.Time
	WaitingFor, LastError string
	Attempts, SecretIndex int
}

// Seed inserts rows as the receiver would (event time one second before
// Received, API version 2025-03-31.basil), then puts each in its Status as
// workers would have.
func Seed(t testing.TB, db *store.DB, rows ...Row) {
	t.Helper()
	ctx := context.Background()
	for _, r := range rows {
		ins, err := db.InsertEvent(ctx, store.Event{
			ID: r.ID, Type: r.Type, APIVersion: "2025-03-31.basil", Created: r.Received.Add(-time.Second),
			CustomerID: r.CustomerID, Payload: []byte(`{"id": "` + r.ID + `", "object": "event"}`),
			ReceivedAt: r.Received, SecretIndex: r.SecretIndex,
		})
		require.NoError(t, err)
		require.True(t, ins, "seed %s: already stored", r.ID)
		if r.Status == "" {
			r.Status = store.StatusPending
		}
		_, err = db.SQLX().ExecContext(ctx, db.SQLX().Rebind(`UPDATE webhook_events SET status = ?, waiting_for = NULLIF(?, ''),
			last_error = NULLIF(?, ''), attempts = ? WHERE event_id = ?`), string(r.Status), r.WaitingFor, r.LastError, r.Attempts, r.ID)
		require.NoError(t, err)
	}
}

// SeedDead inserts n dead rows, prefix_00000 onwards, of type eventType, one
// second apart from start, for customer(i), in one transaction of multi-row
// INSERTs: seeding thousands through InsertEvent would make tests slow.
func SeedDead(t testing.TB, db *store.DB, prefix, eventType string, n int, start time.Time, customer func(i int) string) {
	t.Helper()
	ctx := context.Background()
	tx, err := db.SQLX().BeginTxx(ctx, nil)
	require.NoError(t, err)
	for first := 0; first < n; first += 200 {
		var values []string
		var args []any
		for i := first; i < min(first+200, n); i++ {
			k := len(args)
			values = append(values, fmt.Sprintf("($%d, $%d, $%d, $%d, '{}', $%d, 'dead', 12, $%d, 'boom')", k+1, k+2, k+3, k+4, k+3, k+3))
			args = append(args, fmt.Sprintf("%s_%05d", prefix, i), eventType, start.Add(time.Duration(i)*time.Second).UTC(), customer(i))
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO webhook_events (event_id, type, created, customer_id, payload,
			received_at, status, attempts, next_attempt_at, last_error) VALUES `+strings.Join(values, ", "), args...)
		require.NoError(t, err)
	}
	require.NoError(t, tx.Commit())
}

// Lease puts the pending rows ids under worker's lease until until, as a
// worker leaves the events it processes one at a time (store.Batch.Leased),
// and returns them, for store.Process, Fail and the operator commands.
func Lease(t testing.TB, db *store.DB, worker string, until time.Time, ids ...string) []store.Event {
	t.Helper()
	ctx := context.Background()
	until = until.UTC().Truncate(time.Microsecond) // as the store writes times
	events := make([]store.Event, len(ids))
	for i, id := range ids {
		res, err := db.SQLX().ExecContext(ctx, db.SQLX().Rebind(`UPDATE webhook_events SET lease_owner = ?, lease_expires_at = ?,
			next_attempt_at = ? WHERE event_id = ? AND status = 'pending'`), worker, until, until, id)
		require.NoError(t, err)
		n, err := res.RowsAffected()
		require.NoError(t, err)
		require.EqualValues(t, 1, n, "lease %s: no pending row", id)
		events[i], err = db.Event(ctx, id)
		require.NoError(t, err)
	}
	return events
}
