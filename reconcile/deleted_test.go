package reconcile_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/internal/scenario"
	"github.com/orderhook/orderhook/store"
	"github.com/orderhook/orderhook/store/storetest"
)

// A customer created before orderhook was deployed, and deleted since, is
// known only from its deletion: the deletion is applied, as a tombstone,
// and releases the customer's events that waited for it, instead of all of
// them waiting for a customer.created that never comes.
func TestTheDeletionOfACustomerNeverSeenCreatesItsTombstone(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s := scenario.Generate(scenario.Config{Customers: 20, Prefix: "gone"}) // one in four is deleted
		deleted := find(t, s, "customer.deleted")
		var paid scenario.Event
		for _, ev := range s.Events {
			if ev.Type == "invoice.paid" && ev.CustomerID == deleted.CustomerID {
				paid = ev
			}
		}
		require.NotEmpty(t, paid.ID)
		insert(t, db, paid, time.Now().Add(-2*time.Second))
		require.Equal(t, 1, runOnce(t, db, "gone"))
		require.Equal(t, store.StatusDeferred, event(t, db, paid.ID).Status, "its customer unknown")

		insert(t, db, deleted, time.Now().Add(-time.Second))
		runOnce(t, db, "gone")
		require.Equal(t, store.StatusApplied, event(t, db, deleted.ID).Status)
		require.Equal(t, store.StatusApplied, event(t, db, paid.ID).Status, "released by the deletion")
		m, err := db.Mirror(context.Background())
		require.NoError(t, err)
		require.Len(t, m.Customers, 1)
		require.True(t, m.Customers[0].Deleted)
	})
}
