package store_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/store"
	"github.com/orderhook/orderhook/store/storetest"
)

// claimAll stores the given events and claims them all as worker.
func claimAll(t *testing.T, db *store.DB, worker string, evs ...store.Event) []store.Event {
	t.Helper()
	ctx := context.Background()
	for _, ev := range evs {
		_, err := db.InsertEvent(ctx, ev)
		require.NoError(t, err)
	}
	claimed, err := db.Claim(ctx, store.ClaimParams{Worker: worker, Limit: len(evs), Now: t0.Add(time.Second), Lease: time.Minute})
	require.NoError(t, err)
	require.Len(t, claimed, len(evs))
	return claimed
}

func TestProcessBatchAppliesInOrderAndSkipsWhatIsNoLongerClaimed(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		claimed := claimAll(t, db, "w",
			newEvent("evt_b1", "cus_ba", t0), newEvent("evt_b2", "cus_bb", t0.Add(time.Millisecond)), newEvent("evt_b3", "cus_ba", t0.Add(2*time.Millisecond)))
		// evt_b2 is processed elsewhere first: the batch must skip it.
		require.NoError(t, db.Process(ctx, claimed[1], "w", t0, func(ctx context.Context, tx *store.Tx) error {
			return tx.MarkIgnored(ctx)
		}))

		var seen []string
		processed, busy, err := db.ProcessBatch(ctx, claimed, "w", t0, func(ctx context.Context, tx *store.Tx) error {
			seen = append(seen, tx.Event().ID)
			return tx.MarkApplied(ctx, "")
		})
		require.NoError(t, err)
		require.Equal(t, []string{"evt_b1", "evt_b3"}, seen, "in claim order, skipping the processed one")
		require.Len(t, processed, 2)
		require.Empty(t, busy)
		for _, id := range []string{"evt_b1", "evt_b3"} {
			ev, err := db.Event(ctx, id)
			require.NoError(t, err)
			require.Equal(t, store.StatusApplied, ev.Status)
			require.Empty(t, ev.LeaseOwner)
		}
	})
}

func TestProcessBatchRollsBackWholeBatchOnError(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		// Customers no parallel test uses: advisory locks span schemas, and a
		// busy customer would be left out of the batch.
		claimed := claimAll(t, db, "w", newEvent("evt_r1", "cus_ra", t0), newEvent("evt_r2", "cus_rb", t0.Add(time.Millisecond)))
		boom := errors.New("boom")
		_, _, err := db.ProcessBatch(ctx, claimed, "w", t0, func(ctx context.Context, tx *store.Tx) error {
			if err := tx.EnsureCustomer(ctx, tx.Event().CustomerID); err != nil {
				return err
			}
			if tx.Event().ID == "evt_r2" {
				return boom
			}
			return tx.MarkApplied(ctx, "")
		})
		require.ErrorIs(t, err, boom, "fn's error, untouched")

		ev, err := db.Event(ctx, "evt_r1")
		require.NoError(t, err)
		require.Equal(t, store.StatusPending, ev.Status, "the first event's transition rolled back with the batch")
		require.Equal(t, "w", ev.LeaseOwner, "still claimed, to be processed alone")
		exists, err := db.CustomerExists(ctx, "cus_ra")
		require.NoError(t, err)
		require.False(t, exists, "the first event's mirror write rolled back with the batch")
	})
}

// A batch does not wait for a customer another transaction is processing: it
// leaves that customer's events out, still claimed, and processes the rest.
func TestProcessBatchLeavesOutBusyCustomers(t *testing.T) {
	t.Parallel()
	db := storetest.Postgres(t)
	ctx := context.Background()
	claimed := claimAll(t, db, "w", newEvent("evt_x1", "cus_x", t0), newEvent("evt_y1", "cus_y", t0.Add(time.Millisecond)),
		newEvent("evt_x2", "cus_x", t0.Add(2*time.Millisecond)))

	holder, err := db.SQLX().BeginTxx(ctx, nil)
	require.NoError(t, err)
	defer func() { _ = holder.Rollback() }()
	_, err = holder.Exec(`SELECT pg_advisory_xact_lock(hashtextextended('orderhook:customer:cus_x', 0))`)
	require.NoError(t, err)

	processed, busy, err := db.ProcessBatch(ctx, claimed, "w", t0, func(ctx context.Context, tx *store.Tx) error {
		return tx.MarkApplied(ctx, "")
	})
	require.NoError(t, err)
	require.Equal(t, []string{"evt_y1"}, ids(processed))
	require.Equal(t, []string{"evt_x1", "evt_x2"}, ids(busy), "in claim order")
	ev, err := db.Event(ctx, "evt_x1")
	require.NoError(t, err)
	require.Equal(t, store.StatusPending, ev.Status)
	require.Equal(t, "w", ev.LeaseOwner, "still claimed")

	// Process waits for the lock instead.
	done := make(chan error, 1)
	go func() {
		done <- db.Process(ctx, busy[0], "w", t0, func(ctx context.Context, tx *store.Tx) error { return tx.MarkApplied(ctx, "") })
	}()
	select {
	case err := <-done:
		t.Fatalf("Process did not wait for the customer's lock: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	require.NoError(t, holder.Rollback())
	require.NoError(t, <-done)
}

func ids(evs []store.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out
}

// Partitions split the due rows by customer: each customer's events go to
// exactly one partition, and the partitions together claim everything.
func TestClaimPartitionsSplitByCustomer(t *testing.T) {
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
		evs, err := db.Claim(ctx, store.ClaimParams{Worker: fmt.Sprintf("w%d", part), Limit: 100, Now: t0, Lease: time.Minute, Partition: part, Partitions: 3})
		require.NoError(t, err)
		for _, ev := range evs {
			if p, ok := owner[ev.CustomerID]; ok {
				require.Equal(t, p, part, "%s claimed by two partitions", ev.CustomerID)
			}
			owner[ev.CustomerID] = part
		}
		claimed += len(evs)
	}
	require.Equal(t, 60, claimed)
	require.Len(t, owner, 20)
	require.Greater(t, len(slices.Compact(slices.Sorted(maps.Values(owner)))), 1, "customers spread over partitions")
}

// The events a batch releases are processed in the same transaction when the
// batch holds their customer: the dependent commits with its dependency.
// One whose customer the batch does not hold is only released.
func TestProcessBatchProcessesWhatItReleases(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		waiting := claimAll(t, db, "w", newEvent("evt_d2", "cus_c", t0.Add(2*time.Millisecond)),
			newEvent("evt_d1", "cus_c", t0.Add(time.Millisecond)), newEvent("evt_z", "cus_z", t0.Add(3*time.Millisecond)))
		for _, ev := range waiting {
			require.NoError(t, db.Process(ctx, ev, "w", t0, func(ctx context.Context, tx *store.Tx) error {
				return tx.MarkDeferred(ctx, "customer:cus_c", t0.Add(time.Hour))
			}))
		}
		customer := newEvent("evt_c", "cus_c", t0.Add(4*time.Millisecond))
		customer.Type = "customer.created"
		claimed := claimAll(t, db, "w", customer)

		var seen []string
		processed, _, err := db.ProcessBatch(ctx, claimed, "w", t0.Add(time.Second), func(ctx context.Context, tx *store.Tx) error {
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
		require.Equal(t, seen, ids(processed))
		for _, id := range []string{"evt_d1", "evt_d2"} {
			ev, err := db.Event(ctx, id)
			require.NoError(t, err)
			require.Equal(t, store.StatusApplied, ev.Status)
			require.True(t, ev.ReleasedAt.Equal(t0.Add(time.Second)), "released_at stamped")
			attempts, err := db.Attempts(ctx, id)
			require.NoError(t, err)
			var outcomes []string
			for _, a := range attempts {
				outcomes = append(outcomes, a.Outcome)
			}
			require.Equal(t, []string{"deferred", "released", "applied"}, outcomes)
		}
		ev, err := db.Event(ctx, "evt_z")
		require.NoError(t, err)
		require.Equal(t, store.StatusPending, ev.Status, "released, left for a claim: the batch does not hold cus_z")
	})
}

// An event deferred early in a batch and released later in it is processed
// again in the same transaction, and listed twice.
func TestProcessBatchAppliesWhatItDeferredAndReleased(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		customer := newEvent("evt_x", "cus_e", t0.Add(time.Millisecond))
		customer.Type = "customer.created"
		claimed := claimAll(t, db, "w", newEvent("evt_e", "cus_e", t0), customer)

		var seen []string
		processed, _, err := db.ProcessBatch(ctx, claimed, "w", t0.Add(time.Second), func(ctx context.Context, tx *store.Tx) error {
			ev := tx.Event()
			seen = append(seen, ev.ID)
			if ev.Type == "customer.created" {
				if err := tx.EnsureCustomer(ctx, ev.CustomerID); err != nil {
					return err
				}
				if err := tx.MarkApplied(ctx, ""); err != nil {
					return err
				}
				_, err := tx.Release(ctx, "customer:cus_e")
				return err
			}
			if ok, err := tx.CustomerExists(ctx, ev.CustomerID); err != nil || ok {
				return errors.Join(err, tx.MarkApplied(ctx, ""))
			}
			return tx.MarkDeferred(ctx, "customer:cus_e", t0.Add(time.Hour))
		})
		require.NoError(t, err)
		require.Equal(t, []string{"evt_e", "evt_x", "evt_e"}, seen)
		require.Equal(t, seen, ids(processed))
		ev, err := db.Event(ctx, "evt_e")
		require.NoError(t, err)
		require.Equal(t, store.StatusApplied, ev.Status)
		attempts, err := db.Attempts(ctx, "evt_e")
		require.NoError(t, err)
		var outcomes []string
		for _, a := range attempts {
			outcomes = append(outcomes, a.Outcome)
		}
		require.Equal(t, []string{"deferred", "released", "applied"}, outcomes)
	})
}
