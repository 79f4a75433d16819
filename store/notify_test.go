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

// A batch that applies the events it releases leaves nothing due: it wakes
// no replica, where a NOTIFY would have every replica's workers look for
// work in vain.
func TestBatchApplyingWhatItReleasesNotifiesNobody(t *testing.T) {
	t.Parallel()
	db, _, notes := listenedDB(t)
	ctx := context.Background()
	customer := newEvent("evt_rn_cus", "cus_rn", t0.Add(time.Millisecond))
	customer.Type = "customer.created"
	insertAll(t, db, newEvent("evt_rn_inv", "cus_rn", t0), customer)
	params := store.ClaimParams{Worker: "w", Limit: 1, Now: t0.Add(time.Second), Lease: time.Minute}
	batch, err := db.ProcessDue(ctx, params, func(ctx context.Context, tx *store.Tx) error {
		return tx.MarkDeferred(ctx, "customer:cus_rn", t0.Add(time.Hour))
	})
	require.NoError(t, err)
	require.Equal(t, []string{"evt_rn_inv"}, ids(batch.Processed))
	quiet(t, notes, 3*store.NotifyGap) // the inserts' NOTIFYs

	params.Limit = 16
	batch, err = db.ProcessDue(ctx, params, func(ctx context.Context, tx *store.Tx) error {
		if tx.Event().Type == "customer.created" {
			if err := tx.EnsureCustomer(ctx, "cus_rn"); err != nil {
				return err
			}
			if _, err := tx.Release(ctx, "customer:cus_rn"); err != nil {
				return err
			}
		}
		return tx.MarkApplied(ctx, "")
	})
	require.NoError(t, err)
	require.Equal(t, []string{"evt_rn_cus", "evt_rn_inv"}, ids(batch.Processed), "released and applied in the batch")
	select {
	case <-notes:
		t.Fatal("a batch that left nothing due sent a NOTIFY")
	case <-time.After(3 * store.NotifyGap):
	}
}

// quiet drains notes until none has come for d.
func quiet(t *testing.T, notes <-chan *pq.Notification, d time.Duration) {
	t.Helper()
	for {
		select {
		case <-notes:
		case <-time.After(d):
			return
		}
	}
}
