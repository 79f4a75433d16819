package store_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/store"
	"github.com/orderhook/orderhook/store/storetest"
)

func markApplied(ctx context.Context, tx *store.Tx) error { return tx.MarkApplied(ctx, "") }

func insertAll(t *testing.T, db *store.DB, evs ...store.Event) {
	t.Helper()
	for _, ev := range evs {
		_, err := db.InsertEvent(context.Background(), ev)
		require.NoError(t, err)
	}
}

func TestProcessDueAppliesTheOldestDueEventsInOneTransaction(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		insertAll(t, db, newEvent("evt_d3", "cus_da", t0.Add(2*time.Millisecond)), newEvent("evt_d1", "cus_db", t0),
			newEvent("evt_d2", "cus_dc", t0.Add(time.Millisecond)), newEvent("evt_d4", "cus_dd", t0.Add(time.Hour)))

		var seen []string
		batch, err := db.ProcessDue(ctx, store.ClaimParams{Worker: "w", Limit: 2, Now: t0.Add(time.Second), Lease: time.Minute},
			func(ctx context.Context, tx *store.Tx) error {
				seen = append(seen, tx.Event().ID)
				require.NotEmpty(t, tx.Event().Payload, "claimed whole")
				return tx.MarkApplied(ctx, "")
			})
		require.NoError(t, err)
		require.Equal(t, []string{"evt_d1", "evt_d2"}, seen, "the oldest due, in order, at most Limit")
		require.Equal(t, 2, batch.Claimed)
		require.Equal(t, []string{"evt_d1", "evt_d2"}, ids(batch.Processed))
		require.Empty(t, batch.Leased)
		require.True(t, batch.OldestDue.Equal(t0), "due since evt_d1 was received: %s", batch.OldestDue)
		for id, want := range map[string]store.Status{"evt_d1": store.StatusApplied, "evt_d2": store.StatusApplied, "evt_d3": store.StatusPending, "evt_d4": store.StatusPending} {
			ev, err := db.Event(ctx, id)
			require.NoError(t, err)
			require.Equal(t, want, ev.Status, id)
			require.Empty(t, ev.LeaseOwner, "%s: the claim writes no lease", id)
		}
	})
}

// ClaimParams.First picks the events a batch processes before the others,
// each group in claim order.
func TestProcessDueProcessesFirstWhatFirstPicks(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		customer := func(id, cus string, at time.Time) store.Event {
			ev := newEvent(id, cus, at)
			ev.Type = "customer.created"
			return ev
		}
		insertAll(t, db, newEvent("evt_f1", "cus_first_a", t0), customer("evt_f2", "cus_first_b", t0.Add(time.Millisecond)),
			customer("evt_f3", "cus_first_a", t0.Add(2*time.Millisecond)), newEvent("evt_f4", "cus_first_b", t0.Add(3*time.Millisecond)))
		batch, err := db.ProcessDue(ctx, store.ClaimParams{Worker: "w", Limit: 4, Now: t0.Add(time.Second), Lease: time.Minute,
			First: func(ev store.Event) bool { return ev.Type == "customer.created" }}, markApplied)
		require.NoError(t, err)
		require.Equal(t, []string{"evt_f2", "evt_f3", "evt_f1", "evt_f4"}, ids(batch.Processed))
	})
}

// The claim is the transaction's row locks: when the transaction dies, its
// events are due again at once, with no lease to wait out.
func TestProcessDueLeavesNothingBehindWhenItsConnectionDies(t *testing.T) {
	t.Parallel()
	db := storetest.Postgres(t)
	ctx := context.Background()
	insertAll(t, db, newEvent("evt_dead1", "cus_dead1", t0))
	now := t0.Add(time.Second)

	_, err := db.ProcessDue(ctx, store.ClaimParams{Worker: "w", Limit: 16, Now: now, Lease: time.Hour}, killConnection)
	require.ErrorIs(t, err, store.ErrUnavailable, "the store failed, not the event")

	ev, err := db.Event(ctx, "evt_dead1")
	require.NoError(t, err)
	require.Equal(t, store.StatusPending, ev.Status)
	require.Empty(t, ev.LeaseOwner)
	batch, err := db.ProcessDue(ctx, store.ClaimParams{Worker: "w2", Limit: 16, Now: now, Lease: time.Hour}, markApplied)
	require.NoError(t, err)
	require.Equal(t, []string{"evt_dead1"}, ids(batch.Processed), "due again at once")
}

// Process, too, reports a connection that died under fn as the store's
// failure: the worker then counts no attempt against the event.
func TestProcessReportsAConnectionThatDiedUnderFnAsTheStores(t *testing.T) {
	t.Parallel()
	db := storetest.Postgres(t)
	ctx := context.Background()
	insertAll(t, db, newEvent("evt_dead2", "cus_dead2", t0))
	now := t0.Add(time.Second)
	leased := storetest.Lease(t, db, "w", now.Add(time.Minute), "evt_dead2")

	err := db.Process(ctx, leased[0], "w", now, killConnection)
	require.ErrorIs(t, err, store.ErrUnavailable, "the store failed, not the event")
	ev, err := db.Event(ctx, "evt_dead2")
	require.NoError(t, err)
	require.Equal(t, store.StatusPending, ev.Status)
	require.Zero(t, ev.Attempts)
	require.NoError(t, db.Process(ctx, leased[0], "w", now, markApplied), "still leased to w")
}

// A network error of fn's own — a handler's HTTP call, say — over a live
// connection is the event's failure, not the store's: translate would take
// any net.Error for the database's. Before the connection was asked, such
// an event was retried as a store failure for ever, no attempt counted.
func TestAnFnsOwnNetworkErrorIsTheEventsFailure(t *testing.T) {
	t.Parallel()
	crm := &url.Error{Op: "Post", URL: "https://crm.example/customers", Err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}}
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		insertAll(t, db, newEvent("evt_crm1", "cus_crm1", t0))
		now := t0.Add(time.Second)
		fails := func(ctx context.Context, tx *store.Tx) error {
			// A failed statement first: PostgreSQL's transaction is then
			// aborted, and the connection still alive.
			_, _ = tx.SQLX().ExecContext(ctx, `SELECT * FROM no_such_table`)
			return fmt.Errorf("sync %s: %w", tx.Event().CustomerID, crm)
		}

		batch, err := db.ProcessDue(ctx, store.ClaimParams{Worker: "w", Limit: 16, Now: now, Lease: time.Minute}, fails)
		require.ErrorIs(t, err, crm)
		require.NotErrorIs(t, err, store.ErrUnavailable, "the event failed, not the store")
		require.Equal(t, "sync cus_crm1: "+crm.Error(), err.Error(), "fn's error, untouched")
		require.Equal(t, []string{"evt_crm1"}, ids(batch.Leased), "leased, for its failure to be recorded")

		err = db.Process(ctx, batch.Leased[0], "w", now, fails)
		require.ErrorIs(t, err, crm)
		require.NotErrorIs(t, err, store.ErrUnavailable, "the event failed, not the store")
	})
}

// PostgreSQL's answer that it cannot go on — a full disk, say — is the
// store's failure, also when it answers one of fn's own statements.
func TestPostgresAnswerThatItIsUnavailableUnderFnIsTheStores(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		insertAll(t, db, newEvent("evt_full1", "cus_full1", t0))
		full := &pq.Error{Code: "53100", Message: "could not extend file: No space left on device"}
		_, err := db.ProcessDue(ctx, store.ClaimParams{Worker: "w", Limit: 16, Now: t0.Add(time.Second), Lease: time.Minute},
			func(context.Context, *store.Tx) error { return fmt.Errorf("write credits: %w", full) })
		require.ErrorIs(t, err, store.ErrUnavailable, "the store failed, not the event")
		ev, err := db.Event(ctx, "evt_full1")
		require.NoError(t, err)
		require.Equal(t, store.StatusPending, ev.Status)
		require.Empty(t, ev.LeaseOwner, "due again at once")
	})
}

// A connection that died under fn is the store's failure even when fn's
// error hides the driver's: the connection itself is asked.
func TestAConnectionThatDiedUnderFnIsTheStoresWhateverFnSays(t *testing.T) {
	t.Parallel()
	db := storetest.Postgres(t)
	ctx := context.Background()
	insertAll(t, db, newEvent("evt_dead3", "cus_dead3", t0))
	now := t0.Add(time.Second)
	opaque := func(ctx context.Context, tx *store.Tx) error {
		if err := killConnection(ctx, tx); err != nil {
			return fmt.Errorf("sync failed: %v", err) // %v: the cause is lost
		}
		return errors.New("the connection survived its termination")
	}

	_, err := db.ProcessDue(ctx, store.ClaimParams{Worker: "w", Limit: 16, Now: now, Lease: time.Minute}, opaque)
	require.ErrorIs(t, err, store.ErrUnavailable, "the store failed, not the event")
	ev, err := db.Event(ctx, "evt_dead3")
	require.NoError(t, err)
	require.Equal(t, store.StatusPending, ev.Status)
	require.Empty(t, ev.LeaseOwner, "due again at once")
}

// killConnection has PostgreSQL end the connection fn runs on.
func killConnection(ctx context.Context, tx *store.Tx) error {
	_, err := tx.SQLX().ExecContext(ctx, `SELECT pg_terminate_backend(pg_backend_pid())`)
	return err
}

func TestProcessDueLeasesTheBatchWhenAnEventFails(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		insertAll(t, db, newEvent("evt_f1", "cus_fa", t0), newEvent("evt_f2", "cus_fb", t0.Add(time.Millisecond)))
		boom := errors.New("boom")
		now := t0.Add(time.Second)
		batch, err := db.ProcessDue(ctx, store.ClaimParams{Worker: "w", Limit: 16, Now: now, Lease: time.Minute},
			func(ctx context.Context, tx *store.Tx) error {
				if err := tx.EnsureCustomer(ctx, tx.Event().CustomerID); err != nil {
					return err
				}
				if tx.Event().ID == "evt_f2" {
					return boom
				}
				return tx.MarkApplied(ctx, "")
			})
		require.ErrorIs(t, err, boom)
		require.Equal(t, "boom", err.Error(), "fn's error, untouched")
		require.Equal(t, 2, batch.Claimed)
		require.Empty(t, batch.Processed)
		require.Equal(t, []string{"evt_f1", "evt_f2"}, ids(batch.Leased), "in claim order")

		for _, id := range []string{"evt_f1", "evt_f2"} {
			ev, err := db.Event(ctx, id)
			require.NoError(t, err)
			require.Equal(t, store.StatusPending, ev.Status, "%s: rolled back with the batch", id)
			require.Equal(t, "w", ev.LeaseOwner, "%s: leased, to be processed alone", id)
			require.True(t, ev.NextAttemptAt.Equal(now.Add(time.Minute)), "%s: not due before the lease ends", id)
		}
		exists, err := db.CustomerExists(ctx, "cus_fa")
		require.NoError(t, err)
		require.False(t, exists, "the first event's mirror write rolled back with the batch")

		again, err := db.ProcessDue(ctx, store.ClaimParams{Worker: "x", Limit: 16, Now: now, Lease: time.Minute}, markApplied)
		require.NoError(t, err)
		require.Zero(t, again.Claimed, "another worker does not claim leased events")
		require.NoError(t, db.Process(ctx, batch.Leased[0], "w", now, markApplied))
	})
}

// Leasing a rolled back batch waits, briefly, for its rows while another
// transaction holds them: the batch's own, when it ran out of its context and
// its connection was closed before the database ended it, or, as here, one
// that took them as the batch rolled back. Skipped at once, they would be
// left out of Leased, and out of the attempt to process them alone.
func TestProcessDueLeasesARolledBackBatchWhoseRowsAreStillLocked(t *testing.T) {
	t.Parallel()
	batch, err := rollBackWhileLocked(t, "cus_k1", 200*time.Millisecond)
	require.ErrorIs(t, err, errBoom)
	require.Equal(t, []string{"evt_k1", "evt_k2"}, ids(batch.Leased), "leased once the locker let go")
}

// Rows held past the wait are left out, as a claimer's would be, and the
// caller gets fn's error alone, not the lock timeout: they are due again
// once the holder lets go. (Which transaction takes the rows first as the
// batch rolls back is the scheduler's: when the lease does, it leases them.)
func TestProcessDueLeavesOutRowsLockedPastTheWait(t *testing.T) {
	t.Parallel()
	batch, err := rollBackWhileLocked(t, "cus_k2", 1500*time.Millisecond)
	require.Equal(t, errBoom, err)
	if len(batch.Leased) > 0 {
		require.Equal(t, []string{"evt_k1", "evt_k2"}, ids(batch.Leased))
	}
}

var errBoom = errors.New("boom")

// rollBackWhileLocked fails a batch of two events of customer (advisory
// locks are the server's: one per test) with errBoom while another
// transaction queues for their rows, which it takes as the batch rolls back
// and holds for hold.
func rollBackWhileLocked(t *testing.T, customer string, hold time.Duration) (store.Batch, error) {
	t.Helper()
	rawURL := storetest.PostgresURL(t)
	db := storetest.Open(t, rawURL)
	ctx := context.Background()
	insertAll(t, db, newEvent("evt_k1", customer, t0), newEvent("evt_k2", customer, t0.Add(time.Millisecond)))

	other, err := sqlx.Connect("postgres", rawURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = other.Close() })
	locker, err := other.Beginx()
	require.NoError(t, err)
	var pid int
	require.NoError(t, locker.Get(&pid, `SELECT pg_backend_pid()`))
	locked := make(chan error, 1)
	t.Cleanup(func() {
		select {
		case err := <-locked:
			require.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Error("the locker never let go")
		}
	})

	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return db.ProcessDue(ctx, store.ClaimParams{Worker: "w", Limit: 16, Now: t0.Add(time.Second), Lease: time.Minute},
		func(ctx context.Context, tx *store.Tx) error {
			go func() {
				_, err := locker.Exec(`SELECT event_id FROM webhook_events WHERE event_id IN ('evt_k1', 'evt_k2') FOR UPDATE`)
				time.Sleep(hold)
				locked <- errors.Join(err, locker.Rollback())
			}()
			for waiting := false; !waiting; {
				if err := tx.SQLX().GetContext(ctx, &waiting, `SELECT count(*) > 0 FROM pg_locks WHERE pid = $1 AND NOT granted`, pid); err != nil {
					return err
				}
			}
			return errBoom
		})
}

// Advisory locks are the database's, but a customer's is its schema's: a
// batch applying cus_s in one schema neither leases away nor waits for
// another schema's cus_s, as deployments (and tests) sharing a database
// have their own customers.
func TestProcessDueLocksCustomersPerSchema(t *testing.T) {
	t.Parallel()
	one, other := storetest.Postgres(t), storetest.Postgres(t) // two schemas of the test database
	for _, db := range []*store.DB{one, other} {
		insertAll(t, db, newEvent("evt_s1", "cus_s", t0))
	}
	ctx := context.Background()
	now := t0.Add(time.Second)
	params := store.ClaimParams{Worker: "w", Limit: 16, Now: now, Lease: time.Minute}

	inside, leave := make(chan struct{}), make(chan struct{})
	holding := make(chan error, 1)
	go func() {
		_, err := one.ProcessDue(ctx, params, func(ctx context.Context, tx *store.Tx) error {
			close(inside)
			<-leave
			return markApplied(ctx, tx)
		})
		holding <- err
	}()
	<-inside
	batch, err := other.ProcessDue(ctx, params, markApplied)
	close(leave)
	require.NoError(t, err)
	require.NoError(t, <-holding)
	require.Equal(t, []string{"evt_s1"}, ids(batch.Processed), "applied, not leased as if its customer were busy")
	require.Empty(t, batch.Leased)
}

// In the public schema a customer's lock is the key earlier builds took,
// 'orderhook:customer:…': during a rolling upgrade, a replica of an earlier
// build applying a customer holds it for this one too.
func TestProcessDueInThePublicSchemaTakesTheEarlierBuildsKeys(t *testing.T) {
	t.Parallel()
	db := storetest.Open(t, storetest.PostgresDatabaseURL(t)) // its public schema
	ctx := context.Background()
	insertAll(t, db, newEvent("evt_up1", "cus_up", t0))
	earlier, err := db.SQLX().BeginTxx(ctx, nil)
	require.NoError(t, err)
	defer func() { _ = earlier.Rollback() }()
	_, err = earlier.Exec(`SELECT pg_advisory_xact_lock(hashtextextended('orderhook:customer:cus_up', 0))`)
	require.NoError(t, err)

	batch, err := db.ProcessDue(ctx, store.ClaimParams{Worker: "w", Limit: 16, Now: t0.Add(time.Second), Lease: time.Minute}, markApplied)
	require.NoError(t, err)
	require.Empty(t, batch.Processed)
	require.Equal(t, []string{"evt_up1"}, ids(batch.Leased), "its customer held by the earlier build's replica")
}

// A batch does not wait for a customer another transaction is processing: it
// leases that customer's events to the worker and processes the rest.
func TestProcessDueLeasesBusyCustomers(t *testing.T) {
	t.Parallel()
	db := storetest.Postgres(t)
	ctx := context.Background()
	insertAll(t, db, newEvent("evt_bx1", "cus_bx", t0), newEvent("evt_by1", "cus_by", t0.Add(time.Millisecond)),
		newEvent("evt_bx2", "cus_bx", t0.Add(2*time.Millisecond)))

	holder, err := db.SQLX().BeginTxx(ctx, nil)
	require.NoError(t, err)
	defer func() { _ = holder.Rollback() }()
	_, err = holder.Exec(`SELECT pg_advisory_xact_lock(hashtextextended('orderhook:' || current_schema() || ':customer:cus_bx', 0))`)
	require.NoError(t, err)

	now := t0.Add(time.Second)
	batch, err := db.ProcessDue(ctx, store.ClaimParams{Worker: "w", Limit: 16, Now: now, Lease: time.Minute}, markApplied)
	require.NoError(t, err)
	require.Equal(t, 3, batch.Claimed)
	require.Equal(t, []string{"evt_by1"}, ids(batch.Processed))
	require.Equal(t, []string{"evt_bx1", "evt_bx2"}, ids(batch.Leased), "in claim order")
	ev, err := db.Event(ctx, "evt_bx1")
	require.NoError(t, err)
	require.Equal(t, store.StatusPending, ev.Status)
	require.Equal(t, "w", ev.LeaseOwner, "leased in the batch's transaction")

	done := make(chan error, 1)
	go func() { done <- db.Process(ctx, batch.Leased[0], "w", now, markApplied) }()
	select {
	case err := <-done:
		t.Fatalf("Process did not wait for the customer's lock: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	require.NoError(t, holder.Rollback())
	require.NoError(t, <-done)
}

// Concurrent batches never process the same event: each is applied once.
func TestConcurrentProcessDueAppliesEachEventOnce(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		const n = 200
		for i := range n {
			insertAll(t, db, newEvent(fmt.Sprintf("evt_once%03d", i), fmt.Sprintf("cus_once%03d", i), t0.Add(time.Duration(i)*time.Millisecond)))
		}
		var mu sync.Mutex
		runs := map[string]int{}
		errs := make(chan error, 8)
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				for {
					batch, err := db.ProcessDue(ctx, store.ClaimParams{Worker: fmt.Sprint("w", w), Limit: 7, Now: t0.Add(time.Second), Lease: time.Hour},
						func(ctx context.Context, tx *store.Tx) error {
							mu.Lock()
							runs[tx.Event().ID]++
							mu.Unlock()
							return tx.MarkApplied(ctx, "")
						})
					switch {
					case err != nil:
						errs <- err
						return
					case len(batch.Leased) > 0:
						errs <- fmt.Errorf("leased %v: no customer is shared", ids(batch.Leased))
						return
					case batch.Claimed == 0:
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		require.Len(t, runs, n)
		for id, r := range runs {
			require.Equal(t, 1, r, "%s processed %d times", id, r)
		}
	})
}
