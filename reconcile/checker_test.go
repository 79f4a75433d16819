package reconcile_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/reconcile"
	"github.com/orderhook/orderhook/store"
	"github.com/orderhook/orderhook/store/storetest"
)

// Reject mode answers 409 only while an event still waits: one that is
// dead (its dependency timeout passed) or discarded waits for nothing, and
// a sender told to retry it would retry for nothing.
func TestCheckerMissesADependencyOnlyWhileTheEventWaits(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		received := time.Now().Add(-time.Minute)
		storetest.Seed(t, db,
			storetest.Row{ID: "evt_waits", Type: "invoice.paid", CustomerID: "cus_w", Status: store.StatusDeferred, WaitingFor: "customer:cus_w", Received: received},
			storetest.Row{ID: "evt_pending", Type: "invoice.paid", CustomerID: "cus_w", Received: received},
			storetest.Row{ID: "evt_dead", Type: "invoice.paid", CustomerID: "cus_w", Status: store.StatusDead, LastError: "dependency timeout", Received: received},
			storetest.Row{ID: "evt_discarded", Type: "invoice.paid", CustomerID: "cus_w", Status: store.StatusDiscarded, Received: received},
		)
		c := reconcile.NewChecker(reconcile.Config{}, db)
		for id, want := range map[string]string{
			"evt_waits": "customer:cus_w", "evt_pending": "customer:cus_w", "evt_new": "customer:cus_w",
			"evt_dead": "", "evt_discarded": "",
		} {
			ev, err := db.Event(context.Background(), id)
			if id == "evt_new" {
				require.ErrorIs(t, err, store.ErrNotFound)
				ev = store.Event{ID: id, Type: "invoice.paid", CustomerID: "cus_w"}
			} else {
				require.NoError(t, err)
			}
			ev.ObjectID = "in_" + id // as the receiver reads it from the payload
			dep, err := c.MissingDependency(context.Background(), ev)
			require.NoError(t, err)
			require.Equal(t, want, dep, id)
		}
	})
}
