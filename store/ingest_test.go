package store_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/store"
	"github.com/orderhook/orderhook/store/storetest"
)

func TestGroupCommitAnswersEachCallerOfABatch(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		_, err := db.InsertEvent(ctx, newEvent("evt_b", "cus_1", t0))
		require.NoError(t, err)

		a, b, c := newEvent("evt_a", "cus_1", t0), newEvent("evt_b", "cus_1", t0), newEvent("evt_c", "cus_2", t0)
		inserted, errs := store.CommitBatch(db, []store.Event{a, b, a, c})
		require.Equal(t, []error{nil, nil, nil, nil}, errs)
		require.Equal(t, []bool{true, false, false, true}, inserted,
			"the first of a repeated id inserts it; a stored id and a repeat in the batch are duplicates")
		for _, id := range []string{"evt_a", "evt_b", "evt_c"} {
			got, err := db.Event(ctx, id)
			require.NoError(t, err)
			require.Equal(t, store.StatusPending, got.Status)
		}
	})
}

func TestGroupCommitRefusedRowFailsAlone(t *testing.T) {
	t.Parallel()
	db := storetest.Postgres(t)
	good1, good2 := newEvent("evt_good1", "cus_1", t0), newEvent("evt_good2", "cus_1", t0)
	bad := newEvent("evt_bad", "cus_1", t0)
	bad.Type = "invoice.\x00paid" // PostgreSQL text cannot hold NUL

	inserted, errs := store.CommitBatch(db, []store.Event{good1, bad, good2})
	require.NoError(t, errs[0])
	require.NoError(t, errs[2])
	require.Equal(t, []bool{true, false, true}, inserted)
	require.ErrorContains(t, errs[1], "evt_bad")

	for _, id := range []string{"evt_good1", "evt_good2"} {
		_, err := db.Event(context.Background(), id)
		require.NoError(t, err, "%s shared a batch with a refused row and must be stored", id)
	}
	_, err := db.Event(context.Background(), "evt_bad")
	require.ErrorIs(t, err, store.ErrNotFound)
}

// TestConcurrentInsertsWithRepeatsHaveOneWinner stores 300 events, each sent
// by three goroutines at once, through batches that mix new ids, repeats
// within a batch and repeats across batches.
func TestConcurrentInsertsWithRepeatsHaveOneWinner(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		const events, copies = 300, 3
		var mu sync.Mutex
		wins := map[string]int{}
		var wg sync.WaitGroup
		for g := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := g; i < events*copies; i += 16 {
					id := fmt.Sprintf("evt_rep_%d", i%events)
					ok, err := db.InsertEvent(context.Background(), newEvent(id, "cus_1", t0))
					if !ok || err != nil {
						require.NoError(t, err)
						continue
					}
					mu.Lock()
					wins[id]++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		require.Len(t, wins, events, "every event inserted by some call")
		for id, n := range wins {
			require.Equal(t, 1, n, "%s reported inserted by %d calls", id, n)
		}
		var rows int
		require.NoError(t, db.SQLX().Get(&rows, `SELECT count(*) FROM webhook_events`))
		require.Equal(t, events, rows)
	})
}

func TestCloseAnswersEveryWaitingInsert(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		var stored, closed int
		for g := range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					_, err := db.InsertEvent(context.Background(), newEvent(fmt.Sprintf("evt_close_%d_%d", g, i), "cus_1", t0))
					mu.Lock()
					if err != nil {
						closed++
						mu.Unlock()
						require.ErrorIs(t, err, store.ErrClosed)
						return
					}
					stored++
					mu.Unlock()
				}
			}()
		}
		time.Sleep(50 * time.Millisecond)
		require.NoError(t, db.Close())
		wg.Wait()
		require.Equal(t, 32, closed, "every caller got ErrClosed once the store closed")
		require.Positive(t, stored)
	})
}

func TestInsertEventHonoursItsContext(t *testing.T) {
	t.Parallel()
	db := storetest.SQLite(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := db.InsertEvent(ctx, newEvent("evt_cancelled", "cus_1", t0))
	require.ErrorIs(t, err, context.Canceled)
}

// TestIngestIdleWhileNoInsertIsUnderWay holds SQLite's one connection so that
// an InsertEvent has to wait for it, and checks that IngestIdle is open for
// as long as that call is under way, whether it ends by its commit or by its
// context.
func TestIngestIdleWhileNoInsertIsUnderWay(t *testing.T) {
	t.Parallel()
	db := storetest.SQLite(t)
	ctx := context.Background()
	requireClosed(t, db.IngestIdle(), "no insert has started")

	hold, err := db.SQLX().BeginTxx(ctx, nil)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() {
		_, err := db.InsertEvent(ctx, newEvent("evt_waits", "cus_1", t0))
		done <- err
	}()
	require.Eventually(t, func() bool { return isOpen(db.IngestIdle()) }, 5*time.Second, time.Millisecond,
		"an insert is waiting for the connection")
	idle := db.IngestIdle()
	time.Sleep(20 * time.Millisecond)
	require.True(t, isOpen(idle), "the insert is still under way")

	require.NoError(t, hold.Rollback())
	require.NoError(t, <-done)
	requireClosed(t, idle, "the insert committed")
	requireClosed(t, db.IngestIdle(), "no insert is under way")

	hold, err = db.SQLX().BeginTxx(ctx, nil)
	require.NoError(t, err)
	defer func() { require.NoError(t, hold.Rollback()) }()
	gone, cancel := context.WithCancel(ctx)
	go func() {
		_, err := db.InsertEvent(gone, newEvent("evt_gives_up", "cus_1", t0))
		done <- err
	}()
	require.Eventually(t, func() bool { return isOpen(db.IngestIdle()) }, 5*time.Second, time.Millisecond)
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	requireClosed(t, db.IngestIdle(), "the insert gave up")
}

// Senders keep deliveries back to back: between one batch's answers and the
// next requests no insert is under way for a moment. IngestIdle stays open
// through such a gap and closes only once the inserts have paused.
func TestIngestIdleWaitsForAPause(t *testing.T) {
	t.Parallel()
	db := storetest.SQLite(t)
	ctx := context.Background()
	store.SetIngestQuiet(db, time.Hour)
	_, err := db.InsertEvent(ctx, newEvent("evt_first", "cus_1", t0))
	require.NoError(t, err)
	idle := db.IngestIdle()
	require.True(t, isOpen(idle), "an insert ended a moment ago")
	_, err = db.InsertEvent(ctx, newEvent("evt_next", "cus_1", t0))
	require.NoError(t, err)
	require.True(t, idle == db.IngestIdle(), "the gap before the next insert did not end the burst")

	store.SetIngestQuiet(db, 10*time.Millisecond)
	_, err = db.InsertEvent(ctx, newEvent("evt_last", "cus_1", t0))
	require.NoError(t, err)
	requireClosed(t, idle, "the inserts paused")
}

func isOpen(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return false
	default:
		return true
	}
}

func requireClosed(t *testing.T, ch <-chan struct{}, why string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("IngestIdle still open: %s", why)
	}
}

// Deliveries that arrive while a batch commits wait for it and then share
// the next statement and commit: one transaction for all of them.
func TestDeliveriesQueuedDuringACommitShareTheNext(t *testing.T) {
	t.Parallel()
	db := storetest.Postgres(t)
	ctx := context.Background()

	// Hold the committer: its INSERT of evt_qblock waits for this
	// transaction's uncommitted row with the same id.
	blocker, err := db.SQLX().BeginTxx(ctx, nil)
	require.NoError(t, err)
	defer func() { _ = blocker.Rollback() }()
	_, err = blocker.Exec(`INSERT INTO webhook_events (event_id, type, created, payload, received_at, next_attempt_at)
		VALUES ('evt_qblock', 'invoice.paid', now(), '{}', now(), now())`)
	require.NoError(t, err)

	const n = 10
	var wg sync.WaitGroup
	errs := make(chan error, n+1)
	wg.Go(func() {
		_, err := db.InsertEvent(ctx, newEvent("evt_qblock", "cus_q", t0))
		errs <- err
	})
	require.Eventually(t, func() bool { return store.InsertsUnderWay(db) == 1 }, 10*time.Second, time.Millisecond)
	time.Sleep(50 * time.Millisecond) // the committer is inside the blocked statement
	for i := range n {
		wg.Go(func() {
			_, err := db.InsertEvent(ctx, newEvent(fmt.Sprintf("evt_q%02d", i), "cus_q", t0))
			errs <- err
		})
	}
	require.Eventually(t, func() bool { return store.InsertsUnderWay(db) == n+1 }, 10*time.Second, time.Millisecond)
	time.Sleep(50 * time.Millisecond) // each waits to hand its row over
	var stored int
	require.NoError(t, db.SQLX().Get(&stored, `SELECT count(*) FROM webhook_events WHERE event_id LIKE 'evt_q__'`))
	require.Zero(t, stored, "nothing commits while a batch is committing")

	require.NoError(t, blocker.Rollback())
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	var transactions int
	require.NoError(t, db.SQLX().Get(&transactions, `SELECT count(DISTINCT xmin::text) FROM webhook_events WHERE event_id LIKE 'evt_q__'`))
	require.Equal(t, 1, transactions, "the %d deliveries queued during the commit share one transaction", n)
}

// The INSERT of a batch size seen before runs prepared, up to a bound; a
// bigger batch is parsed each time.
func TestInsertOfACommonBatchSizeIsPrepared(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		for i := range 3 {
			_, err := db.InsertEvent(ctx, newEvent(fmt.Sprintf("evt_prep%d", i), "cus_1", t0))
			require.NoError(t, err)
		}
		require.True(t, store.InsertPrepared(db, 1), "the one-row INSERT, seen before, is prepared")

		var big []store.Event
		for i := range 65 {
			big = append(big, newEvent(fmt.Sprintf("evt_big%02d", i), "cus_1", t0))
		}
		for range 2 {
			_, errs := store.CommitBatch(db, big)
			for _, err := range errs {
				require.NoError(t, err)
			}
			big = slices.Clone(big)
			for i := range big {
				big[i].ID += "x"
			}
		}
		require.False(t, store.InsertPrepared(db, 65), "a batch of more than 64 rows is not prepared")
	})
}

// The inbox insert, which a 2xx promises, commits synchronously: a crash of
// PostgreSQL right after the answer keeps the row. The reconciler's
// transactions commit without waiting for the WAL flush, and an insert
// that did the same would pass every test that kills orderhook but not the
// database; a trigger records the setting each inserted row was written
// under, single rows and batches, prepared and not.
func TestInboxInsertsCommitSynchronously(t *testing.T) {
	t.Parallel()
	db := storetest.Postgres(t)
	ctx := context.Background()
	_, err := db.SQLX().ExecContext(ctx, `
		CREATE TABLE insert_durability (event_id text, synchronous_commit text);
		CREATE FUNCTION record_durability() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			INSERT INTO insert_durability VALUES (NEW.event_id, current_setting('synchronous_commit'));
			RETURN NEW;
		END $$;
		CREATE TRIGGER record_durability BEFORE INSERT ON webhook_events
			FOR EACH ROW EXECUTE FUNCTION record_durability();`)
	require.NoError(t, err)

	const n = 40
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, err := db.InsertEvent(ctx, newEvent(fmt.Sprintf("evt_sync%02d", i), fmt.Sprintf("cus_sync%02d", i), t0))
			require.NoError(t, err)
		})
	}
	wg.Wait()
	var settings []string
	require.NoError(t, db.SQLX().SelectContext(ctx, &settings, `SELECT DISTINCT synchronous_commit FROM insert_durability`))
	require.Equal(t, []string{"on"}, settings)
	var rows int
	require.NoError(t, db.SQLX().GetContext(ctx, &rows, `SELECT count(*) FROM insert_durability`))
	require.Equal(t, n, rows)
}
