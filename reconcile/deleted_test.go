package reconcile_test

import (
	"encoding/json"
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
		require.True(t, onlyCustomer(t, db).Deleted)
	})
}

// A deletion cut down to {id, object, deleted}, applied before the
// customer's creation (it creates the customer now), leaves a tombstone
// without email or name; the creation, older, does not supersede it and
// leaves it as it is (README: a cut-down deletion keeps the fields as they
// were when it was applied).
func TestACutDownDeletionBeforeTheCreationKeepsItsTombstone(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		deleted, created := deletionAndCreation(t, "cut")
		var body map[string]any
		require.NoError(t, json.Unmarshal(deleted.Payload, &body))
		body["data"] = map[string]any{"object": map[string]any{"id": deleted.CustomerID, "object": "customer", "deleted": true}}
		var err error
		deleted.Payload, err = json.Marshal(body)
		require.NoError(t, err)

		insert(t, db, deleted, time.Now().Add(-2*time.Second))
		runOnce(t, db, "cut")
		insert(t, db, created, time.Now().Add(-time.Second))
		runOnce(t, db, "cut")

		require.Equal(t, store.StatusApplied, event(t, db, created.ID).Status)
		c := onlyCustomer(t, db)
		require.True(t, c.Deleted)
		require.Equal(t, deleted.ID, c.EventID)
		require.Empty(t, c.Email)
		require.Empty(t, c.Name)
	})
}

// A full deletion sends a name the customer removed as null: the tombstone
// has no name in either delivery order, where a null was once taken for a
// field left out and the creation's name kept.
func TestAFullDeletionKeepsARemovedName(t *testing.T) {
	t.Parallel()
	for name, deletionFirst := range map[string]bool{"deletion first": true, "creation first": false} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			storetest.Each(t, func(t *testing.T, db *store.DB) {
				deleted, created := deletionAndCreation(t, "noname")
				deleted = withObject(t, deleted, map[string]any{"name": nil, "email": "still@example.com"})
				first, second := created, deleted
				if deletionFirst {
					first, second = deleted, created
				}
				insert(t, db, first, time.Now().Add(-2*time.Second))
				runOnce(t, db, "noname")
				insert(t, db, second, time.Now().Add(-time.Second))
				runOnce(t, db, "noname")

				c := onlyCustomer(t, db)
				require.True(t, c.Deleted)
				require.Equal(t, "still@example.com", c.Email)
				require.Empty(t, c.Name, "removed before the deletion, and not brought back")
			})
		})
	}
}

// deletionAndCreation returns the customer.deleted of a scenario's
// customer who is deleted, and that customer's customer.created.
func deletionAndCreation(t *testing.T, prefix string) (deleted, created scenario.Event) {
	t.Helper()
	s := scenario.Generate(scenario.Config{Customers: 20, Prefix: prefix}) // one in four is deleted
	deleted = find(t, s, "customer.deleted")
	for _, ev := range s.Events {
		if ev.Type == "customer.created" && ev.CustomerID == deleted.CustomerID {
			created = ev
		}
	}
	require.NotEmpty(t, created.ID)
	return deleted, created
}
