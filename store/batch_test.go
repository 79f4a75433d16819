package store_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/store"
	"github.com/orderhook/orderhook/store/storetest"
)

func ids(evs []store.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out
}

// Partitions split the due rows by customer: each customer's events go to
// exactly one partition, and the partitions together claim everything.
func TestProcessDuePartitionsSplitByCustomer(t *testing.T) {
	t.Parallel()
	db := storetest.Postgres(t)
	ctx := context.Background()
	for c := range 20 {
		for e := range 3 {
			_, err := db.InsertEvent(ctx, newEvent(fmt.Sprintf("evt_p%d_%d", c, e), fmt.Sprintf("cus_p%d", c), t0))
			require.NoError(t, err)
		}
	}
	owner := map[string]int{} // customer → partition
	claimed := 0
	for part := range 3 {
		batch, err := db.ProcessDue(ctx, store.ClaimParams{Worker: fmt.Sprintf("w%d", part), Limit: 100, Now: t0, Lease: time.Minute, Partition: part, Partitions: 3}, markApplied)
		require.NoError(t, err)
		for _, ev := range batch.Processed {
			if p, ok := owner[ev.CustomerID]; ok {
				require.Equal(t, p, part, "%s claimed by two partitions", ev.CustomerID)
			}
			owner[ev.CustomerID] = part
		}
		claimed += batch.Claimed
	}
	require.Equal(t, 60, claimed)
	require.Len(t, owner, 20)
	require.Greater(t, len(slices.Compact(slices.Sorted(maps.Values(owner)))), 1, "customers spread over partitions")
}

// The partitions' ranges of customer hashes follow each other without a gap
// or an overlap and together cover every hash; a partition out of range is
// refused.
func TestPartitionsCoverEveryCustomerHashOnce(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, 2, 3, 4, 7, 64} {
		next := int64(math.MinInt32)
		for i := range max(n, 1) {
			lo, hi := store.ShareBounds(i, n)
			require.Equal(t, next, int64(lo), "partition %d of %d starts where %d ended", i, n, i-1)
			require.LessOrEqual(t, lo, hi)
			next = int64(hi) + 1
		}
		require.Equal(t, int64(math.MaxInt32)+1, next, "%d partitions cover every hash", n)
	}
	db := storetest.Postgres(t)
	for _, part := range []int{-1, 3} {
		_, err := db.ProcessDue(context.Background(), store.ClaimParams{Worker: "w", Limit: 1, Now: t0, Lease: time.Minute, Partition: part, Partitions: 3}, markApplied)
		require.ErrorContains(t, err, "want 0 to 2")
	}
}

// A claim skips the other partitions' rows inside the due index, under the
// plan its prepared statement keeps (generic, without bitmap scans): before,
// it read each due row from the table to hash its customer, and a loop whose
// partition had nothing due read the whole backlog on every claim.
func TestClaimSkipsOtherPartitionsInTheIndex(t *testing.T) {
	t.Parallel()
	db := storetest.Postgres(t)
	ctx := context.Background()
	for i := range 500 {
		_, err := db.InsertEvent(ctx, newEvent(fmt.Sprintf("evt_s%d", i), fmt.Sprintf("cus_s%d", i%50), t0))
		require.NoError(t, err)
	}
	_, err := db.SQLX().Exec(`ANALYZE webhook_events`)
	require.NoError(t, err)
	lo, hi := store.ShareBounds(1, 4)
	plan := genericPlan(t, db, store.ClaimDueQuery, "timestamptz, int, int, int, text[]",
		fmt.Sprintf(`'%s', 64, %d, %d, '{customer.created}'`, t0.Format(time.RFC3339Nano), lo, hi))
	require.Regexp(t, `Index Cond: \(\(next_attempt_at <= \$1\) AND \(hashtext\(COALESCE\(customer_id, event_id\)\) >= \$3\)`, plan, plan)
	require.NotRegexp(t, `Filter: .*hashtext`, plan, plan)
}

// The events a claim takes along are found per customer through
// webhook_events_pending_customer, not by reading every due row for each
// customer (557 ms against 7 ms for a batch of 256 over 10,873 pending
// rows).
func TestClaimFindsTheEventsAlongByCustomer(t *testing.T) {
	t.Parallel()
	db := storetest.Postgres(t)
	_, err := db.SQLX().Exec(`INSERT INTO webhook_events (event_id, type, created, customer_id, payload, received_at, next_attempt_at)
		SELECT 'evt_p' || i, 'invoice.paid', now(), 'cus_p' || (i % 2000), '{}', now(), now() FROM generate_series(1, 20000) AS i`)
	require.NoError(t, err)
	_, err = db.SQLX().Exec(`ANALYZE webhook_events`)
	require.NoError(t, err)
	lo, hi := store.ShareBounds(1, 4)
	plan := genericPlan(t, db, store.ClaimDueQuery, "timestamptz, int, int, int, text[]",
		fmt.Sprintf(`'%s', 256, %d, %d, '{customer.created}'`, t0.Format(time.RFC3339Nano), lo, hi))
	require.Regexp(t, `Index Scan using webhook_events_pending_customer on webhook_events e .*\n\s+Index Cond: \(customer_id = \w+\.customer_id\)`, plan, plan)
}

// A batch takes along, past its limit, the due events that create the
// customers of its events, and applies them first: the invoices find their
// customer instead of being deferred. Other types, other customers and
// events not yet due stay where they are.
func TestProcessDueTakesTheCustomersAlong(t *testing.T) {
	t.Parallel()
	db := storetest.Postgres(t)
	ctx := context.Background()
	typed := func(id, customer, typ string, received time.Time) store.Event {
		ev := newEvent(id, customer, received)
		ev.Type = typ
		return ev
	}
	insertAll(t, db,
		newEvent("evt_a1", "cus_along_a", t0.Add(1*time.Millisecond)),
		newEvent("evt_a2", "cus_along_a", t0.Add(2*time.Millisecond)),
		newEvent("evt_b1", "cus_along_b", t0.Add(3*time.Millisecond)),
		typed("evt_ac", "cus_along_a", "customer.created", t0.Add(4*time.Millisecond)),
		typed("evt_bc", "cus_along_b", "customer.created", t0.Add(5*time.Millisecond)),
		newEvent("evt_a3", "cus_along_a", t0.Add(6*time.Millisecond)),
		typed("evt_as", "cus_along_a", "customer.subscription.updated", t0.Add(7*time.Millisecond)),
		typed("evt_au", "cus_along_a", "customer.updated", t0.Add(time.Hour)), // not due
	)
	var seen []string
	creates := func(ev store.Event) bool { return ev.Type == "customer.created" }
	batch, err := db.ProcessDue(ctx, store.ClaimParams{
		Worker: "w", Limit: 2, Now: t0.Add(time.Second), Lease: time.Minute,
		First: creates, Alongside: []string{"customer.created", "customer.updated"},
	}, func(ctx context.Context, tx *store.Tx) error {
		seen = append(seen, tx.Event().ID)
		return tx.MarkApplied(ctx, "")
	})
	require.NoError(t, err)
	require.Equal(t, []string{"evt_ac", "evt_a1", "evt_a2"}, seen)
	require.Equal(t, 3, batch.Claimed)
	require.Equal(t, t0.Add(time.Millisecond), batch.OldestDue.UTC())
	for _, id := range []string{"evt_b1", "evt_bc", "evt_a3", "evt_as", "evt_au"} {
		ev, err := db.Event(ctx, id)
		require.NoError(t, err)
		require.Equal(t, store.StatusPending, ev.Status, id)
	}
}

// The events a batch releases are processed in the same transaction when the
// batch holds their customer: the dependent commits with its dependency.
// One whose customer the batch does not hold is only released.
func TestProcessDueProcessesWhatItReleases(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		insertAll(t, db, newEvent("evt_d2", "cus_c", t0.Add(2*time.Millisecond)),
			newEvent("evt_d1", "cus_c", t0.Add(time.Millisecond)), newEvent("evt_z", "cus_z", t0.Add(3*time.Millisecond)))
		for _, ev := range storetest.Lease(t, db, "w", t0.Add(time.Minute), "evt_d2", "evt_d1", "evt_z") {
			require.NoError(t, db.Process(ctx, ev, "w", t0, func(ctx context.Context, tx *store.Tx) error {
				return tx.MarkDeferred(ctx, "customer:cus_c", t0.Add(time.Hour))
			}))
		}
		customer := newEvent("evt_c", "cus_c", t0.Add(4*time.Millisecond))
		customer.Type = "customer.created"
		insertAll(t, db, customer)

		var seen []string
		batch, err := db.ProcessDue(ctx, store.ClaimParams{Worker: "w", Limit: 16, Now: t0.Add(time.Second), Lease: time.Minute}, func(ctx context.Context, tx *store.Tx) error {
			seen = append(seen, tx.Event().ID)
			if err := tx.MarkApplied(ctx, ""); err != nil {
				return err
			}
			if tx.Event().ID != "evt_c" {
				return nil
			}
			released, err := tx.Release(ctx, "customer:cus_c")
			require.Len(t, released, 3)
			return err
		})
		require.NoError(t, err)
		require.Equal(t, []string{"evt_c", "evt_d1", "evt_d2"}, seen, "the released events of the held customer, in receipt order")
		require.Equal(t, seen, ids(batch.Processed))
		require.Equal(t, 1, batch.Claimed)
		for _, id := range []string{"evt_d1", "evt_d2"} {
			ev, err := db.Event(ctx, id)
			require.NoError(t, err)
			require.Equal(t, store.StatusApplied, ev.Status)
			require.True(t, ev.ReleasedAt.Equal(t0.Add(time.Second)), "released_at stamped")
			requireOutcomes(t, db, []string{"deferred", "released", "applied"}, id)
		}
		ev, err := db.Event(ctx, "evt_z")
		require.NoError(t, err)
		require.Equal(t, store.StatusPending, ev.Status, "released, left for a claim: the batch does not hold cus_z")
	})
}

// updates returns how many rows of the test's webhook_events the backend
// has updated so far. On PostgreSQL 15 the count includes earlier
// transactions' not yet reported, so only a difference within the
// transaction tells.
func updates(ctx context.Context, tx *store.Tx) (int, error) {
	return eventsStat(ctx, tx, "n_tup_upd")
}

// scans returns, like updates, the index scans of the test's
// webhook_events.
func scans(ctx context.Context, tx *store.Tx) (int, error) {
	return eventsStat(ctx, tx, "idx_scan")
}

// eventsStat reads a counter of pg_stat_xact_user_tables for the test
// schema's webhook_events.
func eventsStat(ctx context.Context, tx *store.Tx, column string) (n int, err error) {
	return n, tx.SQLX().GetContext(ctx, &n, `SELECT `+column+` FROM pg_stat_xact_user_tables WHERE relid = 'webhook_events'::regclass`)
}

// deferredThenCustomer stores the events first and second of customer cus,
// deferred on it, then the customer.created event created, due after them.
func deferredThenCustomer(t *testing.T, db *store.DB, cus, first, second, created string) {
	t.Helper()
	ctx := context.Background()
	insertAll(t, db, newEvent(first, cus, t0), newEvent(second, cus, t0.Add(time.Millisecond)))
	for _, ev := range storetest.Lease(t, db, "w", t0.Add(time.Minute), first, second) {
		require.NoError(t, db.Process(ctx, ev, "w", t0, func(ctx context.Context, tx *store.Tx) error {
			return tx.MarkDeferred(ctx, "customer:"+cus, t0.Add(time.Hour))
		}))
	}
	customer := newEvent(created, cus, t0.Add(2*time.Millisecond))
	customer.Type = "customer.created"
	insertAll(t, db, customer)
}

// On PostgreSQL a batch writes the row of an event it releases and applies
// once, at its commit: the release is written with the transition. Writing
// it released first would update the row, and every index on status and
// next_attempt_at, twice.
func TestProcessDueWritesWhatItReleasesOnce(t *testing.T) {
	t.Parallel()
	db := storetest.Postgres(t)
	ctx := context.Background()
	deferredThenCustomer(t, db, "cus_o", "evt_o1", "evt_o2", "evt_oc")

	var before, after int
	_, err := db.ProcessDue(ctx, store.ClaimParams{Worker: "w", Limit: 16, Now: t0.Add(time.Second), Lease: time.Minute}, func(ctx context.Context, tx *store.Tx) (err error) {
		switch tx.Event().ID {
		case "evt_oc":
			if before, err = updates(ctx, tx); err != nil {
				return err
			}
			if _, err := tx.Release(ctx, "customer:cus_o"); err != nil {
				return err
			}
		case "evt_o2":
			if after, err = updates(ctx, tx); err != nil {
				return err
			}
		}
		return tx.MarkApplied(ctx, "")
	})
	require.NoError(t, err)
	require.Equal(t, 0, after-before, "the released rows are not written before the commit")
	for _, id := range []string{"evt_o1", "evt_o2"} {
		ev, err := db.Event(ctx, id)
		require.NoError(t, err)
		require.Equal(t, store.StatusApplied, ev.Status, id)
		require.True(t, ev.ReleasedAt.Equal(t0.Add(time.Second)), "%s: released_at stamped", id)
		require.True(t, ev.NextAttemptAt.Equal(ev.ReceivedAt), "%s: due from its receipt, as a release leaves it", id)
		require.Empty(t, ev.WaitingFor, id)
	}
}

// A released event that a batch defers again, or leaves without a
// transition, is still written released: before its deferral, or before the
// commit.
func TestProcessDueWritesTheReleaseOfWhatItDoesNotFinish(t *testing.T) {
	t.Parallel()
	db := storetest.Postgres(t)
	ctx := context.Background()
	deferredThenCustomer(t, db, "cus_u", "evt_u1", "evt_u2", "evt_uc")

	released := t0.Add(time.Second)
	_, err := db.ProcessDue(ctx, store.ClaimParams{Worker: "w", Limit: 16, Now: released, Lease: time.Minute}, func(ctx context.Context, tx *store.Tx) error {
		switch tx.Event().ID {
		case "evt_uc":
			if _, err := tx.Release(ctx, "customer:cus_u"); err != nil {
				return err
			}
			return tx.MarkApplied(ctx, "")
		case "evt_u1":
			return tx.MarkDeferred(ctx, "refund:re_1", t0.Add(2*time.Hour))
		}
		return nil // evt_u2: no transition
	})
	require.NoError(t, err)
	u1, err := db.Event(ctx, "evt_u1")
	require.NoError(t, err)
	require.Equal(t, store.StatusDeferred, u1.Status)
	require.Equal(t, "refund:re_1", u1.WaitingFor)
	require.NotNil(t, u1.ReleasedAt, "released_at stamped before the deferral")
	require.True(t, u1.ReleasedAt.Equal(released))
	u2, err := db.Event(ctx, "evt_u2")
	require.NoError(t, err)
	require.Equal(t, store.StatusPending, u2.Status)
	require.Empty(t, u2.WaitingFor)
	require.NotNil(t, u2.ReleasedAt, "released_at stamped before the commit")
	require.True(t, u2.ReleasedAt.Equal(released))
	require.True(t, u2.NextAttemptAt.Equal(u2.ReceivedAt), "due from its receipt")
}

// On PostgreSQL a batch writes the events it defers with its other
// transitions, in one statement at its commit, not one each; a Flush, for a
// registered handler, writes them at once.
func TestProcessDueWritesItsDeferralsTogether(t *testing.T) {
	t.Parallel()
	db := storetest.Postgres(t)
	ctx := context.Background()
	insertAll(t, db, newEvent("evt_d1", "cus_d", t0), newEvent("evt_d2", "cus_d", t0.Add(time.Millisecond)),
		newEvent("evt_d3", "cus_d", t0.Add(2*time.Millisecond)), newEvent("evt_d4", "cus_d", t0.Add(3*time.Millisecond)))

	status := func(ctx context.Context, tx *store.Tx, id string) (s string, err error) {
		return s, tx.SQLX().GetContext(ctx, &s, `SELECT status FROM webhook_events WHERE event_id = $1`, id)
	}
	deadline := t0.Add(72 * time.Hour)
	var before, held int
	var flushed string
	_, err := db.ProcessDue(ctx, store.ClaimParams{Worker: "w", Limit: 16, Now: t0.Add(time.Second), Lease: time.Minute}, func(ctx context.Context, tx *store.Tx) (err error) {
		switch tx.Event().ID {
		case "evt_d1":
			if before, err = updates(ctx, tx); err != nil {
				return err
			}
		case "evt_d3":
			if held, err = updates(ctx, tx); err != nil {
				return err
			}
		case "evt_d4":
			if err := tx.Flush(ctx); err != nil {
				return err
			}
			if flushed, err = status(ctx, tx, "evt_d3"); err != nil {
				return err
			}
		}
		return tx.MarkDeferred(ctx, "customer:cus_d", deadline)
	})
	require.NoError(t, err)
	require.Equal(t, 0, held-before, "two deferrals held, not written")
	require.Equal(t, "deferred", flushed, "Flush writes the deferrals held")
	for _, id := range []string{"evt_d1", "evt_d2", "evt_d3", "evt_d4"} {
		ev, err := db.Event(ctx, id)
		require.NoError(t, err)
		require.Equal(t, store.StatusDeferred, ev.Status, id)
		require.Equal(t, "customer:cus_d", ev.WaitingFor, id)
		require.True(t, ev.NextAttemptAt.Equal(deadline), "%s: due at its deadline, %s", id, ev.NextAttemptAt)
		require.Zero(t, ev.Attempts, "%s: a deferral counts no attempt", id)
		require.Nil(t, ev.AppliedAt, id)
		require.Empty(t, ev.LeaseOwner, id)
		attempts, err := db.Attempts(ctx, id)
		require.NoError(t, err)
		require.Len(t, attempts, 1, id)
		require.Equal(t, store.OutcomeDeferred, attempts[0].Outcome, id)
		require.Equal(t, "customer:cus_d", attempts[0].Detail, id)
		require.Equal(t, "w", attempts[0].Worker, id)
	}
}

// createsCustomer picks the test's customer.created events, which a batch
// applies first and whose customer they release.
func createsCustomer(ev store.Event) bool { return ev.Type == "customer.created" }

// releasesCustomer names the dependency a customer.created event releases.
func releasesCustomer(ev store.Event) string {
	if !createsCustomer(ev) {
		return ""
	}
	return "customer:" + ev.CustomerID
}

// applyOrDefer applies a customer.created event, creating and releasing its
// customer, and any other event whose customer exists; it defers the rest
// on their customer.
func applyOrDefer(ctx context.Context, tx *store.Tx) error {
	ev := tx.Event()
	if createsCustomer(ev) {
		if err := tx.EnsureCustomer(ctx, ev.CustomerID); err != nil {
			return err
		}
		if err := tx.MarkApplied(ctx, ""); err != nil {
			return err
		}
		_, err := tx.Release(ctx, releasesCustomer(ev))
		return err
	}
	if ok, err := tx.CustomerExists(ctx, ev.CustomerID); err != nil || ok {
		return errors.Join(err, tx.MarkApplied(ctx, ""))
	}
	return tx.MarkDeferred(ctx, "customer:"+ev.CustomerID, t0.Add(time.Hour))
}

// requireOutcomes checks the history of each event id.
func requireOutcomes(t *testing.T, db *store.DB, want []string, ids ...string) {
	t.Helper()
	for _, id := range ids {
		attempts, err := db.Attempts(context.Background(), id)
		require.NoError(t, err)
		var outcomes []string
		for _, a := range attempts {
			outcomes = append(outcomes, a.Outcome)
		}
		require.Equal(t, want, outcomes, id)
	}
}

// On PostgreSQL a batch given ClaimParams.Releases reads the events
// deferred on all its customers at its first Release, in one statement,
// and serves the others from it.
func TestProcessDueReadsItsReleasesOnce(t *testing.T) {
	t.Parallel()
	db := storetest.Postgres(t)
	ctx := context.Background()
	for _, c := range []string{"once1", "once2", "once3"} { // advisory locks are server-wide: ids no other test uses
		deferredThenCustomer(t, db, "cus_"+c, "evt_"+c+"a", "evt_"+c+"b", "evt_"+c+"c")
	}
	var before, after, released int
	_, err := db.ProcessDue(ctx, store.ClaimParams{
		Worker: "w", Limit: 16, Now: t0.Add(time.Second), Lease: time.Minute,
		First: createsCustomer, Releases: releasesCustomer,
	}, func(ctx context.Context, tx *store.Tx) (err error) {
		ev := tx.Event()
		if !createsCustomer(ev) {
			return tx.MarkApplied(ctx, "")
		}
		if released == 0 {
			if before, err = scans(ctx, tx); err != nil {
				return err
			}
		}
		if err := errors.Join(tx.EnsureCustomer(ctx, ev.CustomerID), tx.MarkApplied(ctx, "")); err != nil {
			return err
		}
		r, err := tx.Release(ctx, releasesCustomer(ev))
		released += len(r)
		if err != nil {
			return err
		}
		after, err = scans(ctx, tx)
		return err
	})
	require.NoError(t, err)
	require.Equal(t, 6, released)
	require.Equal(t, 1, after-before, "three releases, one read")
	for _, id := range []string{"evt_once1a", "evt_once1b", "evt_once2a", "evt_once2b", "evt_once3a", "evt_once3b"} {
		ev, err := db.Event(ctx, id)
		require.NoError(t, err)
		require.Equal(t, store.StatusApplied, ev.Status, id)
		require.True(t, ev.ReleasedAt.Equal(t0.Add(time.Second)), "%s: released_at stamped", id)
		requireOutcomes(t, db, []string{"deferred", "released", "applied"}, id)
	}
}

// An event a batch defers after its first Release is found by a later
// Release: the events deferred that the batch read at the first one do not
// include it.
func TestProcessDueReleasesWhatItDeferredAfterItsFirstRelease(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		a, b := newEvent("evt_ra", "cus_ra", t0), newEvent("evt_rb", "cus_rb", t0.Add(2*time.Millisecond))
		a.Type, b.Type = "customer.created", "customer.created"
		insertAll(t, db, a, newEvent("evt_re", "cus_rb", t0.Add(time.Millisecond)), b)

		var seen []string
		_, err := db.ProcessDue(ctx, store.ClaimParams{
			Worker: "w", Limit: 16, Now: t0.Add(time.Second), Lease: time.Minute, Releases: releasesCustomer,
		}, func(ctx context.Context, tx *store.Tx) error {
			seen = append(seen, tx.Event().ID)
			return applyOrDefer(ctx, tx)
		})
		require.NoError(t, err)
		require.Equal(t, []string{"evt_ra", "evt_re", "evt_rb", "evt_re"}, seen)
		ev, err := db.Event(ctx, "evt_re")
		require.NoError(t, err)
		require.Equal(t, store.StatusApplied, ev.Status)
		requireOutcomes(t, db, []string{"deferred", "released", "applied"}, "evt_re")
	})
}

// An event deferred early in a batch and released later in it is processed
// again in the same transaction, and listed twice.
func TestProcessDueAppliesWhatItDeferredAndReleased(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		customer := newEvent("evt_x", "cus_e", t0.Add(time.Millisecond))
		customer.Type = "customer.created"
		insertAll(t, db, newEvent("evt_e", "cus_e", t0), customer)

		var seen []string
		batch, err := db.ProcessDue(ctx, store.ClaimParams{Worker: "w", Limit: 16, Now: t0.Add(time.Second), Lease: time.Minute}, func(ctx context.Context, tx *store.Tx) error {
			seen = append(seen, tx.Event().ID)
			return applyOrDefer(ctx, tx)
		})
		require.NoError(t, err)
		require.Equal(t, []string{"evt_e", "evt_x", "evt_e"}, seen)
		require.Equal(t, seen, ids(batch.Processed))
		ev, err := db.Event(ctx, "evt_e")
		require.NoError(t, err)
		require.Equal(t, store.StatusApplied, ev.Status)
		requireOutcomes(t, db, []string{"deferred", "released", "applied"}, "evt_e")
	})
}

// A Release of a dependency already released in the batch releases only
// what was deferred on it since: the events the first one released, which
// read deferred in the database until the batch writes them, are not
// released, and processed, a second time; neither while they wait in the
// batch nor once processed.
func TestProcessDueReleasesADependencyAgainWithoutItsReleasedEvents(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		name     string
		releases func(store.Event) string // ClaimParams.Releases
		before   bool                     // the event is deferred by an earlier batch
		// fromReleased releases again while processing the released
		// event, rather than the creator.
		fromReleased bool
	}{
		{name: "deferred in the batch, again by the creator"},
		{name: "deferred in the batch, again by the released event", fromReleased: true},
		{name: "deferred before, released from the batch's read, again by the creator", releases: releasesCustomer, before: true},
		{name: "deferred before, released from the batch's read, again by the released event", releases: releasesCustomer, before: true, fromReleased: true},
		{name: "deferred before, released from its own read, again by the creator", before: true},
		{name: "deferred before, released from its own read, again by the released event", before: true, fromReleased: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			storetest.Each(t, func(t *testing.T, db *store.DB) {
				ctx := context.Background()
				customer := fmt.Sprintf("cus_twice_%d", i) // advisory locks are server-wide
				dependent, creator := newEvent("evt_dep", customer, t0), newEvent("evt_cre", customer, t0.Add(time.Millisecond))
				creator.Type = "customer.created"
				params := store.ClaimParams{Worker: "w", Limit: 16, Now: t0.Add(time.Second), Lease: time.Minute, Releases: tc.releases}
				insertAll(t, db, dependent)
				if tc.before {
					_, err := db.ProcessDue(ctx, params, applyOrDefer)
					require.NoError(t, err)
				}
				insertAll(t, db, creator)

				var seen []string
				var again []store.Released
				_, err := db.ProcessDue(ctx, params, func(ctx context.Context, tx *store.Tx) error {
					ev := tx.Event()
					seen = append(seen, ev.ID)
					if len(seen) > 3 { // released again, it would release itself forever
						return fmt.Errorf("processed %v", seen)
					}
					if err := applyOrDefer(ctx, tx); err != nil {
						return err
					}
					if tc.fromReleased && ev.ReleasedAt == nil || !tc.fromReleased && !createsCustomer(ev) {
						return nil
					}
					var err error
					again, err = tx.Release(ctx, "customer:"+customer)
					return err
				})
				require.NoError(t, err)
				require.Empty(t, again)
				want := []string{"evt_cre", "evt_dep"}
				if !tc.before {
					want = []string{"evt_dep", "evt_cre", "evt_dep"}
				}
				require.Equal(t, want, seen)
				requireOutcomes(t, db, []string{"deferred", "released", "applied"}, "evt_dep")
			})
		})
	}
}

// On PostgreSQL the first Release of a batch given ClaimParams.Releases
// reads the mirror rows of the events it releases along with them, as the
// claim does for the claimed events, instead of one at a time as each is
// processed: a row removed behind the transaction's back after the Release
// is still what the released event reads.
func TestProcessDueReadsTheMirrorOfWhatItReleasesWithIt(t *testing.T) {
	t.Parallel()
	db := storetest.Postgres(t)
	ctx := context.Background()
	deferredThenCustomer(t, db, "cus_mirror", "evt_ma", "evt_mb", "evt_mc")
	_, err := db.SQLX().Exec(`INSERT INTO stripe_invoices (id, customer_id, status, last_event_id, last_event_type, last_event_created, updated_at)
		VALUES ('in_evt_ma', 'cus_mirror', 'open', 'evt_old', 'invoice.created', $1, $1)`, t0)
	require.NoError(t, err)

	var read []string
	_, err = db.ProcessDue(ctx, store.ClaimParams{
		Worker: "w", Limit: 16, Now: t0.Add(time.Second), Lease: time.Minute,
		First: createsCustomer, Releases: releasesCustomer,
	}, func(ctx context.Context, tx *store.Tx) error {
		ev := tx.Event()
		if createsCustomer(ev) {
			return applyOrDefer(ctx, tx)
		}
		if _, err := tx.SQLX().ExecContext(ctx, `DELETE FROM stripe_invoices WHERE id = $1`, ev.ObjectID); err != nil {
			return err
		}
		in, err := tx.Invoice(ctx, ev.ObjectID)
		switch {
		case err == nil:
			read = append(read, ev.ID+": "+in.Status)
		case errors.Is(err, store.ErrNotFound):
			read = append(read, ev.ID+": none")
		default:
			return err
		}
		return tx.MarkApplied(ctx, "")
	})
	require.NoError(t, err)
	require.Equal(t, []string{"evt_ma: open", "evt_mb: none"}, read)
}
