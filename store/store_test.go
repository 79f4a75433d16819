package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/orderhook/orderhook/store"
	"github.com/orderhook/orderhook/store/storetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"))
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newEvent(id string, customer string, received time.Time) store.Event {
	return store.Event{
		ID: id, Type: "invoice.paid", APIVersion: "2024-06-20", Created: received.Truncate(time.Second),
		CustomerID: customer, ObjectID: "in_" + id, ReceivedAt: received, SecretIndex: 1,
		Payload: []byte("{\"id\":\"" + id + "\",\n  \"name\": \"Zoë 🧾\\u0000\",\t\"n\": 1.50e2 }\r\n"),
	}
}

// A row without what every Stripe event has is refused before it reaches
// the database, which would store an empty id, or a receipt in year 1.
func TestInsertEventRefusesIncompleteEvents(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		for name, mutate := range map[string]func(*store.Event){
			"no id":           func(ev *store.Event) { ev.ID = "" },
			"no type":         func(ev *store.Event) { ev.Type = "" },
			"no receipt time": func(ev *store.Event) { ev.ReceivedAt = time.Time{} },
			"no payload":      func(ev *store.Event) { ev.Payload = nil },
		} {
			ev := newEvent("evt_incomplete", "cus_incomplete", t0)
			mutate(&ev)
			_, err := db.InsertEvent(context.Background(), ev)
			require.ErrorIs(t, err, store.ErrInvalidInput, name)
		}
		_, err := db.Event(context.Background(), "evt_incomplete")
		require.ErrorIs(t, err, store.ErrNotFound, "nothing stored")
	})
}

func TestInsertEventStoresOnceAndByteExact(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		ev := newEvent("evt_1", "cus_1", t0.Add(123456789*time.Nanosecond))
		ok, err := db.InsertEvent(ctx, ev)
		require.NoError(t, err)
		require.True(t, ok)

		dup := ev
		dup.Payload = []byte(`{"other":"bytes"}`)
		ok, err = db.InsertEvent(ctx, dup)
		require.NoError(t, err)
		require.False(t, ok, "a second insert of the same id is a duplicate")

		got, err := db.Event(ctx, "evt_1")
		require.NoError(t, err)
		require.Equal(t, ev.Payload, got.Payload, "payload byte-exact")
		require.Equal(t, store.StatusPending, got.Status)
		require.Equal(t, "cus_1", got.CustomerID)
		require.Equal(t, 1, got.SecretIndex)
		require.Equal(t, "2024-06-20", got.APIVersion)
		require.True(t, got.ReceivedAt.Equal(ev.ReceivedAt.Truncate(time.Microsecond)))
		require.Equal(t, got.ReceivedAt, got.NextAttemptAt)

		_, err = db.Event(ctx, "evt_missing")
		require.ErrorIs(t, err, store.ErrNotFound)
	})
}

func TestConcurrentInsertsOfOneEventStoreOneRow(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		var wg sync.WaitGroup
		inserted := make(chan bool, 50)
		for range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok, err := db.InsertEvent(context.Background(), newEvent("evt_storm", "cus_1", t0))
				require.NoError(t, err)
				inserted <- ok
			}()
		}
		wg.Wait()
		close(inserted)
		n := 0
		for ok := range inserted {
			if ok {
				n++
			}
		}
		require.Equal(t, 1, n)
		var rows int
		require.NoError(t, db.SQLX().Get(&rows, `SELECT count(*) FROM webhook_events`))
		require.Equal(t, 1, rows)
	})
}

// Sub-second times compare in time order on both engines (SQLite keeps them
// as UTC text).
func TestProcessDueTakesDueRowsInTimeOrder(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		for i, offset := range []time.Duration{900 * time.Millisecond, 5 * time.Millisecond, 0, 1500 * time.Millisecond, 50 * time.Millisecond} {
			_, err := db.InsertEvent(ctx, newEvent("evt_"+string(rune('a'+i)), "cus_1", t0.Add(offset)))
			require.NoError(t, err)
		}
		var seen []string
		_, err := db.ProcessDue(ctx, store.ClaimParams{Worker: "w", Limit: 10, Now: t0.Add(time.Second), Lease: time.Minute},
			func(ctx context.Context, tx *store.Tx) error {
				seen = append(seen, tx.Event().ID)
				return tx.MarkApplied(ctx, "")
			})
		require.NoError(t, err)
		require.Equal(t, []string{"evt_c", "evt_b", "evt_e", "evt_a"}, seen, "only rows due at t0+1s, oldest first")
	})
}

func TestProcessRecordsOutcomesAndReleases(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		ids := []string{"evt_wait1", "evt_wait2", "evt_cust"}
		for _, id := range ids {
			_, err := db.InsertEvent(ctx, newEvent(id, "cus_9", t0))
			require.NoError(t, err)
		}
		claimed := storetest.Lease(t, db, "w", t0.Add(time.Minute), ids...)
		wake, unsubscribe := db.Subscribe()
		defer unsubscribe()
		byID := map[string]store.Event{}
		for _, ev := range claimed {
			byID[ev.ID] = ev
		}
		for _, id := range []string{"evt_wait1", "evt_wait2"} {
			require.NoError(t, db.Process(ctx, byID[id], "w", t0, func(ctx context.Context, tx *store.Tx) error {
				return tx.MarkDeferred(ctx, "customer:cus_9", t0.Add(time.Hour))
			}))
		}
		require.NoError(t, db.Process(ctx, byID["evt_cust"], "w", t0, func(ctx context.Context, tx *store.Tx) error {
			require.NoError(t, tx.EnsureCustomer(ctx, "cus_9"))
			require.NoError(t, tx.MarkApplied(ctx, ""))
			released, err := tx.Release(ctx, "customer:cus_9")
			require.Len(t, released, 2)
			return err
		}))
		select {
		case <-wake:
		case <-time.After(10 * time.Second):
			t.Fatal("release did not wake subscribers")
		}
		for _, id := range []string{"evt_wait1", "evt_wait2"} {
			ev, err := db.Event(ctx, id)
			require.NoError(t, err)
			require.Equal(t, store.StatusPending, ev.Status)
			require.Empty(t, ev.WaitingFor)
			attempts, err := db.Attempts(ctx, id)
			require.NoError(t, err)
			require.Len(t, attempts, 2)
			require.Equal(t, "released", attempts[1].Outcome)
			require.Equal(t, "customer:cus_9 applied by evt_cust", attempts[1].Detail)
			require.True(t, ev.ReleasedAt.Equal(t0), "released_at stamped")
			require.True(t, ev.NextAttemptAt.Equal(ev.ReceivedAt), "due from its receipt: ahead of the backlog")
		}
		exists, err := db.CustomerExists(ctx, "cus_9")
		require.NoError(t, err)
		require.True(t, exists)

		// A processed row is not processed again.
		err = db.Process(ctx, byID["evt_cust"], "w", t0, func(context.Context, *store.Tx) error { return nil })
		require.ErrorIs(t, err, store.ErrNotClaimed)
	})
}

func TestFailCountsAttemptsAndDeadLetters(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		_, err := db.InsertEvent(ctx, newEvent("evt_f", "cus_1", t0))
		require.NoError(t, err)
		claim := func(now time.Time) { storetest.Lease(t, db, "w", now.Add(time.Minute), "evt_f") }
		claim(t0)
		n, err := db.Fail(ctx, store.Failure{EventID: "evt_f", Worker: "w", Err: "boom 1", Now: t0, NextAttemptAt: t0.Add(time.Second)})
		require.NoError(t, err)
		require.Equal(t, 1, n)
		_, err = db.Fail(ctx, store.Failure{EventID: "evt_f", Worker: "w", Err: "late", Now: t0})
		require.ErrorIs(t, err, store.ErrNotClaimed, "no longer leased")

		claim(t0.Add(time.Second))
		n, err = db.Fail(ctx, store.Failure{EventID: "evt_f", Worker: "w", Err: "boom 2", Now: t0, Dead: true})
		require.NoError(t, err)
		require.Equal(t, 2, n)
		ev, err := db.Event(ctx, "evt_f")
		require.NoError(t, err)
		require.Equal(t, store.StatusDead, ev.Status)
		require.Equal(t, "boom 2", ev.LastError)
		require.Empty(t, ev.LeaseOwner)
		attempts, err := db.Attempts(ctx, "evt_f")
		require.NoError(t, err)
		require.Equal(t, []string{"failed", "dead"}, []string{attempts[0].Outcome, attempts[1].Outcome})
		require.Equal(t, "boom 1", attempts[0].Error)
	})
}

func TestExpireDeferred(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		for _, id := range []string{"evt_old", "evt_new"} {
			_, err := db.InsertEvent(ctx, newEvent(id, "cus_1", t0))
			require.NoError(t, err)
		}
		for _, ev := range storetest.Lease(t, db, "w", t0.Add(time.Minute), "evt_old", "evt_new") {
			deadline := t0.Add(time.Hour)
			if ev.ID == "evt_new" {
				deadline = t0.Add(2 * time.Hour)
			}
			require.NoError(t, db.Process(ctx, ev, "w", t0, func(ctx context.Context, tx *store.Tx) error {
				return tx.MarkDeferred(ctx, "customer:cus_1", deadline)
			}))
		}
		expired, err := db.ExpireDeferred(ctx, t0.Add(90*time.Minute), 100, "sweeper")
		require.NoError(t, err)
		require.Len(t, expired, 1)
		require.Equal(t, "evt_old", expired[0].ID)
		ev, err := db.Event(ctx, "evt_old")
		require.NoError(t, err)
		require.Equal(t, store.StatusDead, ev.Status)
		require.Contains(t, ev.LastError, "customer:cus_1")
		ev, err = db.Event(ctx, "evt_new")
		require.NoError(t, err)
		require.Equal(t, store.StatusDeferred, ev.Status)
	})
}

// Unlease gives up only the caller's own leases on pending rows, and makes
// them due at once, ahead of rows received after them.
func TestUnleaseMakesOwnLeasesDueAtOnce(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		for i, id := range []string{"evt_mine", "evt_theirs", "evt_done", "evt_later"} {
			_, err := db.InsertEvent(ctx, newEvent(id, "cus_"+id, t0.Add(time.Duration(i)*time.Millisecond)))
			require.NoError(t, err)
		}
		until := t0.Add(time.Minute)
		storetest.Lease(t, db, "w/0", until, "evt_mine")
		storetest.Lease(t, db, "w/1", until, "evt_theirs")
		done := storetest.Lease(t, db, "w/0", until, "evt_done")
		require.NoError(t, db.Process(ctx, done[0], "w/0", t0, func(ctx context.Context, tx *store.Tx) error {
			return tx.MarkApplied(ctx, "")
		}))

		n, err := db.Unlease(ctx, "w/0", []store.Event{{ID: "evt_mine"}, {ID: "evt_theirs"}, {ID: "evt_done"}, {ID: "evt_missing"}})
		require.NoError(t, err)
		require.Equal(t, 1, n, "only evt_mine is pending under w/0's lease")
		n, err = db.Unlease(ctx, "w/0", nil)
		require.NoError(t, err)
		require.Zero(t, n)

		mine, err := db.Event(ctx, "evt_mine")
		require.NoError(t, err)
		require.Empty(t, mine.LeaseOwner)
		require.Nil(t, mine.LeaseExpiresAt)
		require.True(t, mine.NextAttemptAt.Equal(mine.ReceivedAt), "due as when it was leased: %s", mine.NextAttemptAt)
		theirs, err := db.Event(ctx, "evt_theirs")
		require.NoError(t, err)
		require.Equal(t, "w/1", theirs.LeaseOwner, "another worker's lease holds")

		var seen []string
		_, err = db.ProcessDue(ctx, store.ClaimParams{Worker: "heir", Limit: 10, Now: t0.Add(time.Second), Lease: time.Minute},
			func(ctx context.Context, tx *store.Tx) error {
				seen = append(seen, tx.Event().ID)
				return tx.MarkApplied(ctx, "")
			})
		require.NoError(t, err)
		require.Equal(t, []string{"evt_mine", "evt_later"}, seen, "long before w/0's lease would have expired")
	})
}
