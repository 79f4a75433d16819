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
			newEvent("evt_b1", "cus_a", t0), newEvent("evt_b2", "cus_b", t0.Add(time.Millisecond)), newEvent("evt_b3", "cus_a", t0.Add(2*time.Millisecond)))
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
		claimed := claimAll(t, db, "w", newEvent("evt_r1", "cus_a", t0), newEvent("evt_r2", "cus_b", t0.Add(time.Millisecond)))
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
		exists, err := db.CustomerExists(ctx, "cus_a")
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
