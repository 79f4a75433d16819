package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/lib/pq"
	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/store"
	"github.com/orderhook/orderhook/store/storetest"
)

// listenedDB returns a migrated database of t's own, its URL, and the
// notifications on orderhook's channel in it, from a LISTEN connection that
// is listening when listenedDB returns.
func listenedDB(t *testing.T) (*store.DB, string, <-chan *pq.Notification) {
	t.Helper()
	url := storetest.PostgresDatabaseURL(t)
	db := storetest.Open(t, url)
	l := pq.NewListener(url, 10*time.Millisecond, time.Second, nil)
	t.Cleanup(func() { _ = l.Close() })
	require.NoError(t, l.Listen("orderhook_work"))
	require.Eventually(t, func() bool { return l.Ping() == nil }, 10*time.Second, 10*time.Millisecond, "listener connected")
	return db, url, l.Notify
}

// next waits for the next notification and returns when it came, failing t
// when none comes within wait.
func next(t *testing.T, notes <-chan *pq.Notification, wait time.Duration) time.Time {
	t.Helper()
	select {
	case n := <-notes:
		require.NotNil(t, n, "listener reconnected")
		return time.Now()
	case <-time.After(wait):
		t.Fatalf("no NOTIFY within %s", wait)
		return time.Time{}
	}
}

// Inserts one after the other wake the other replicas at most once per gap,
// and once at least: one NOTIFY per inserting commit would be forty here.
func TestInsertsNotifyOtherReplicasCoalesced(t *testing.T) {
	t.Parallel()
	db, _, notes := listenedDB(t)
	ctx := context.Background()

	start := time.Now()
	for i := range 40 {
		_, err := db.InsertEvent(ctx, newEvent(fmt.Sprintf("evt_n%d", i), "cus_n", t0))
		require.NoError(t, err)
	}
	took := time.Since(start)
	got := 1
	next(t, notes, 5*time.Second)
	for quiet := false; !quiet; {
		select {
		case <-notes:
			got++
		case <-time.After(3 * store.NotifyGap):
			quiet = true
		}
	}
	require.LessOrEqual(t, got, int(took/store.NotifyGap)+2, "NOTIFYs for 40 inserts in %s", took)
}

// An insert within the gap after a NOTIFY is announced when the gap ends,
// not dropped.
func TestInsertWithinTheGapIsNotifiedAfterIt(t *testing.T) {
	t.Parallel()
	db, _, notes := listenedDB(t)
	ctx := context.Background()

	_, err := db.InsertEvent(ctx, newEvent("evt_first", "cus_g", t0))
	require.NoError(t, err)
	first := next(t, notes, 5*time.Second) // sent at once: the gap starts
	_, err = db.InsertEvent(ctx, newEvent("evt_second", "cus_g", t0))
	require.NoError(t, err)
	second := next(t, notes, 5*time.Second)
	// Without the gap the second comes within a few milliseconds; the bound
	// leaves room for the first to have been delivered late.
	require.GreaterOrEqual(t, second.Sub(first), store.NotifyGap/4, "the second waits out the gap")
}

// A process that stops right after an insert still wakes the others: Close
// sends the NOTIFY it owes instead of dropping it within its gap.
func TestCloseSendsTheNotifyOwed(t *testing.T) {
	t.Parallel()
	_, url, notes := listenedDB(t)
	ctx := context.Background()
	db, err := store.Open(ctx, url) // a process of its own, closed below
	require.NoError(t, err)

	_, err = db.InsertEvent(ctx, newEvent("evt_first", "cus_c", t0))
	require.NoError(t, err)
	next(t, notes, 5*time.Second) // sent at once: the gap starts
	_, err = db.InsertEvent(ctx, newEvent("evt_second", "cus_c", t0))
	require.NoError(t, err)
	require.NoError(t, db.Close())
	next(t, notes, 5*time.Second)
}
