package reconcile_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/internal/cutproxy"
	"github.com/orderhook/orderhook/internal/scenario"
	"github.com/orderhook/orderhook/reconcile"
	"github.com/orderhook/orderhook/store"
	"github.com/orderhook/orderhook/store/storetest"
)

// hungFor is how long a frozen database stays silent unless the test thaws
// it first: longer than the 10 s a stop gives a transaction, so that a
// worker that waits for the answer fails its test by the time it took.
const hungFor = 30 * time.Second

// hungWorker returns a worker with cfg on a PostgreSQL database reached
// through a proxy, the database, the proxy, and a customer.created event
// stored there and due.
func hungWorker(t *testing.T, cfg reconcile.Config) (*reconcile.Worker, *store.DB, *cutproxy.Proxy, scenario.Event) {
	t.Helper()
	rawURL, proxy := storetest.ThroughProxy(t, storetest.PostgresURL(t))
	db := storetest.Open(t, rawURL)
	created := find(t, scenario.Generate(scenario.Config{Customers: 1, Prefix: "hung"}), "customer.created")
	insert(t, db, created, time.Now().Add(-time.Second))
	cfg.Workers = 1
	w, err := reconcile.NewWorker(cfg, db, zerologNop())
	require.NoError(t, err)
	return w, db, proxy, created
}

// timedRunOnce runs w.RunOnce and returns how long it took and its error.
func timedRunOnce(ctx context.Context, w *reconcile.Worker) (time.Duration, error) {
	start := time.Now()
	_, err := w.RunOnce(ctx, "hung")
	return time.Since(start), err
}

// slowLease is the lease of the workers whose slowOnce handler runs past
// it: long enough for the events applied alone after the cut batch to finish
// within their own lease on a loaded test run (300 ms did not, once in CI).
const slowLease = 2 * time.Second

// slowOnce returns a handler whose first call returns only when its
// transaction's context ends (or, failing the test, after hungFor), and
// whose later calls succeed.
func slowOnce() reconcile.HandlerFunc {
	calls := 0
	return func(ctx context.Context, _ *sqlx.Tx, _ reconcile.Event) error {
		if calls++; calls > 1 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(hungFor):
			return errors.New("the transaction's context never ended")
		}
	}
}

// A transaction the database never answers ends a lease after it began: the
// batch fails as the store being unavailable, so the loop backs off instead
// of waiting for ever, and its event is applied once the database answers.
func TestATransactionTheDatabaseNeverAnswersEndsAtItsLease(t *testing.T) {
	t.Parallel()
	const lease = 500 * time.Millisecond
	w, db, proxy, created := hungWorker(t, reconcile.Config{Lease: lease})
	require.NoError(t, db.Ping(context.Background())) // a connection in the pool

	proxy.FreezeFor(t, hungFor)
	took, err := timedRunOnce(context.Background(), w)
	require.ErrorIs(t, err, store.ErrUnavailable, "%v", err)
	require.Less(t, took, lease+3*time.Second, "the batch waited for the database")
	require.GreaterOrEqual(t, took, lease)

	proxy.Thaw()
	// A worker with the default lease: a new connection under a loaded test
	// run may take longer than half a second.
	after, err := reconcile.NewWorker(reconcile.Config{Workers: 1}, db, zerologNop())
	require.NoError(t, err)
	n, err := after.RunOnce(context.Background(), "hung")
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, store.StatusApplied, event(t, db, created.ID).Status)
	require.Equal(t, []string{store.OutcomeApplied}, attemptOutcomes(t, db, created.ID), "the cut transaction recorded nothing")
}

// A worker told to stop gives the transaction in flight 10 s, however long
// its lease, then cuts it short: a database that stopped answering cannot
// hold a stop for ever.
func TestAStopCutsAHungTransactionShortAfterItsGrace(t *testing.T) {
	t.Parallel()
	w, db, proxy, _ := hungWorker(t, reconcile.Config{Lease: time.Hour})
	require.NoError(t, db.Ping(context.Background()))

	proxy.FreezeFor(t, hungFor)
	ctx, stop := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, stop)
	took, _ := timedRunOnce(ctx, w)
	require.Less(t, took, 15*time.Second, "the stop waited for the database")
	require.GreaterOrEqual(t, took, 10*time.Second, "the transaction in flight was not given its grace")
}

// insertCreatedThenPaid stores one customer's customer.created and, a
// second later, its invoice.paid, both due: one batch claims them, the
// customer first.
func insertCreatedThenPaid(t *testing.T, db *store.DB, prefix string) (created, paid scenario.Event) {
	t.Helper()
	s := scenario.Generate(scenario.Config{Customers: 1, Prefix: prefix})
	created, paid = find(t, s, "customer.created"), find(t, s, "invoice.paid")
	insert(t, db, created, time.Now().Add(-2*time.Second))
	insert(t, db, paid, time.Now().Add(-time.Second))
	return created, paid
}

// A batch that runs past its lease fails the attempt of the event it was
// applying, rolls back, and applies the others one at a time: a handler that
// does not return holds its batch's rows no longer than a lease.
func TestAHandlerPastTheLeaseFailsItsAttempt(t *testing.T) {
	t.Parallel()
	// Each case has its own customers: advisory locks are the database's,
	// not the test schema's, and one case would hold the other's.
	for name, tc := range map[string]struct {
		prefix  string
		handler func() reconcile.HandlerFunc
	}{
		"returning at the end of its context": {"slow", slowOnce},
		// Ignoring it (an http.Get without ctx): the batch's own last write
		// would fail then, and no event be to blame.
		"ignoring its context": {"ignore", func() reconcile.HandlerFunc {
			calls := 0
			return func(context.Context, *sqlx.Tx, reconcile.Event) error {
				if calls++; calls == 1 {
					time.Sleep(slowLease + 200*time.Millisecond)
				}
				return nil
			}
		}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			storetest.Each(t, func(t *testing.T, db *store.DB) {
				created, paid := insertCreatedThenPaid(t, db, tc.prefix)
				w, err := reconcile.NewWorker(reconcile.Config{Workers: 1, Lease: slowLease,
					Handlers: map[string]reconcile.HandlerFunc{"invoice.paid": tc.handler()},
				}, db, zerologNop())
				require.NoError(t, err)

				n, err := w.RunOnce(context.Background(), tc.prefix)
				require.NoError(t, err)
				require.Equal(t, 2, n)
				require.Equal(t, store.StatusApplied, event(t, db, created.ID).Status, "applied alone after the batch rolled back")
				require.Equal(t, []string{store.OutcomeFailed}, attemptOutcomes(t, db, paid.ID))
				require.Contains(t, event(t, db, paid.ID).LastError, context.DeadlineExceeded.Error())
			})
		})
	}
}

// A handler that swallows a failed statement and returns nil leaves a
// PostgreSQL transaction aborted: that is its event's failed attempt, and
// the batch's other events are applied one at a time, instead of the whole
// batch failing at its last write, as if the store had, with no attempt
// counted and no end. SQLite's transaction goes on after a failed statement.
func TestAHandlerThatSwallowsASQLErrorFailsItsAttempt(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		created, paid := insertCreatedThenPaid(t, db, "swallow")
		calls := 0
		w, err := reconcile.NewWorker(reconcile.Config{Workers: 1, Handlers: map[string]reconcile.HandlerFunc{
			"invoice.paid": func(ctx context.Context, tx *sqlx.Tx, _ reconcile.Event) error {
				if calls++; calls == 1 {
					_, _ = tx.ExecContext(ctx, `SELECT * FROM no_such_table`) // "already credited", say
				}
				return nil
			},
		}}, db, zerologNop())
		require.NoError(t, err)

		n, err := w.RunOnce(context.Background(), "swallow")
		require.NoError(t, err, "a handler's failure is not the store's")
		require.Equal(t, 2, n)
		require.Equal(t, store.StatusApplied, event(t, db, created.ID).Status)
		if db.Dialect() == store.SQLite {
			require.Equal(t, store.StatusApplied, event(t, db, paid.ID).Status)
			return
		}
		require.Equal(t, []string{store.OutcomeFailed}, attemptOutcomes(t, db, paid.ID))
		require.Contains(t, event(t, db, paid.ID).LastError, "its transaction has failed")
	})
}

// When the database stops answering as a handler fails, leasing the rolled
// back batch again gives up after its own timeout instead of waiting.
func TestLeasingARolledBackBatchDoesNotWaitForAHungDatabase(t *testing.T) {
	t.Parallel()
	var proxy *cutproxy.Proxy
	w, db, p, _ := hungWorker(t, reconcile.Config{Lease: 2 * time.Second,
		Handlers: map[string]reconcile.HandlerFunc{
			"customer.created": func(context.Context, *sqlx.Tx, reconcile.Event) error {
				proxy.FreezeFor(t, hungFor)
				return errors.New("downstream down")
			},
		}})
	proxy = p
	require.NoError(t, db.Ping(context.Background()))

	took, err := timedRunOnce(context.Background(), w)
	require.ErrorIs(t, err, store.ErrUnavailable, "%v", err)
	require.Less(t, took, 10*time.Second, "leasing the batch again waited for the database")
}

// An event applied alone whose handler runs past the lease is left due
// again, not failed: its lease has ended with the transaction, and the store
// did not fail, so the worker neither records an attempt it no longer owns
// nor backs off.
func TestAnEventAppliedAlonePastTheLeaseIsDueAgain(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s := scenario.Generate(scenario.Config{Customers: 1, Prefix: "alone"})
		created, paid, finalized := find(t, s, "customer.created"), find(t, s, "invoice.paid"), find(t, s, "invoice.finalized")
		for i, ev := range []scenario.Event{created, paid, finalized} {
			insert(t, db, ev, time.Now().Add(time.Duration(i-3)*time.Second))
		}
		// paid takes the batch down; finalized, applied alone after it, runs
		// past its own lease.
		w, err := reconcile.NewWorker(reconcile.Config{Workers: 1, Lease: slowLease,
			Handlers: map[string]reconcile.HandlerFunc{"invoice.paid": slowOnce(), "invoice.finalized": slowOnce()},
		}, db, zerologNop())
		require.NoError(t, err)

		_, err = w.RunOnce(context.Background(), "alone")
		require.NoError(t, err, "a handler past its lease is not a store failure")
		require.Equal(t, store.StatusApplied, event(t, db, created.ID).Status)
		require.Equal(t, []string{store.OutcomeFailed}, attemptOutcomes(t, db, paid.ID))
		ev := event(t, db, finalized.ID)
		require.Equal(t, store.StatusPending, ev.Status)
		require.Empty(t, attemptOutcomes(t, db, finalized.ID), "no attempt recorded past the lease")
		require.WithinDuration(t, time.Now(), *ev.LeaseExpiresAt, 2*slowLease, "due again when its lease ends")
	})
}
