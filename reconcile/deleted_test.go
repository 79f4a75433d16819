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
// without email or name; the creation, older, does not supersede it, but
// writes the email and name it lacks: the same tombstone as in the
// delivery order the other way round.
func TestACutDownDeletionBeforeTheCreationGetsItsFields(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s := scenario.Generate(scenario.Config{Customers: 20, Prefix: "cut"})
		deleted := find(t, s, "customer.deleted")
		var created scenario.Event
		for _, ev := range s.Events {
			if ev.Type == "customer.created" && ev.CustomerID == deleted.CustomerID {
				created = ev
			}
		}
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
		require.Equal(t, deleted.ID, c.EventID, "the deletion's version kept")
		require.NotEmpty(t, c.Email)
		require.NotEmpty(t, c.Name)
	})
}

// A full deletion that carries the customer's email but a name removed
// since its creation (null) keeps the name removed when the creation comes
// after it: the tombstone is filled only when it holds neither.
func TestAFullDeletionKeepsARemovedName(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s := scenario.Generate(scenario.Config{Customers: 20, Prefix: "noname"})
		deleted := find(t, s, "customer.deleted")
		deleted = withObject(t, deleted, map[string]any{"name": nil, "email": "still@example.com"})
		var created scenario.Event
		for _, ev := range s.Events {
			if ev.Type == "customer.created" && ev.CustomerID == deleted.CustomerID {
				created = ev
			}
		}
		insert(t, db, deleted, time.Now().Add(-2*time.Second))
		runOnce(t, db, "noname")
		insert(t, db, created, time.Now().Add(-time.Second))
		runOnce(t, db, "noname")

		c := onlyCustomer(t, db)
		require.True(t, c.Deleted)
		require.Equal(t, "still@example.com", c.Email)
		require.Empty(t, c.Name, "removed before the deletion, and not brought back")
	})
}
