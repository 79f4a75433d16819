package reconcile_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/internal/scenario"
	"github.com/orderhook/orderhook/reconcile"
	"github.com/orderhook/orderhook/store"
	"github.com/orderhook/orderhook/store/storetest"
)

// withObject returns ev with its data.object's fields set as given.
func withObject(t *testing.T, ev scenario.Event, fields map[string]any) scenario.Event {
	t.Helper()
	var body map[string]any
	require.NoError(t, json.Unmarshal(ev.Payload, &body))
	obj := body["data"].(map[string]any)["object"].(map[string]any)
	for k, v := range fields {
		obj[k] = v
	}
	var err error
	ev.Payload, err = json.Marshal(body)
	require.NoError(t, err)
	return ev
}

// runOnce runs one batch of a one-loop worker on db, with handlers, and
// returns how many events it claimed.
func runOnce(t *testing.T, db *store.DB, name string, handlers ...map[string]reconcile.HandlerFunc) int {
	t.Helper()
	cfg := reconcile.Config{Workers: 1}
	if len(handlers) > 0 {
		cfg.Handlers = handlers[0]
	}
	w, err := reconcile.NewWorker(cfg, db, zerologNop())
	require.NoError(t, err)
	n, err := w.RunOnce(context.Background(), name)
	require.NoError(t, err, "an event's failure is not the store's")
	return n
}

// A value that PostgreSQL refuses in the writes a batch holds to its end
// (here a check constraint the test adds) names no event: the batch's
// events are applied one at a time, so the one whose value it is fails its
// attempt and the others are applied, instead of the batch failing again
// on every claim with no attempt counted.
//
// The writes held so far are also flushed before an event's handler runs,
// where the refusal is the earlier event's, not the handler's event's.
func TestARefusedValueFailsOnlyItsEvent(t *testing.T) {
	t.Parallel()
	for name, handlers := range map[string]map[string]reconcile.HandlerFunc{
		"at the batch's end":             nil,
		"before a later event's handler": {"customer.updated": func(context.Context, *sqlx.Tx, reconcile.Event) error { return nil }},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			db := storetest.Postgres(t)
			s := scenario.Generate(scenario.Config{Customers: 2, Prefix: "refused"})
			refused := find(t, s, "customer.created") // the first customer's
			var other scenario.Event                  // the second's
			for _, ev := range s.Events {
				if ev.Type == "customer.updated" && ev.CustomerID != refused.CustomerID {
					other = ev
				}
			}
			insert(t, db, refused, time.Now().Add(-2*time.Second))
			insert(t, db, other, time.Now().Add(-time.Second))
			_, err := db.SQLX().Exec(`ALTER TABLE stripe_customers ADD CONSTRAINT not_the_first CHECK (id <> '` + refused.CustomerID + `')`)
			require.NoError(t, err)

			require.Equal(t, 2, runOnce(t, db, "refused", handlers))
			require.Equal(t, []string{store.OutcomeFailed}, attemptOutcomes(t, db, refused.ID))
			require.Contains(t, event(t, db, refused.ID).LastError, "not_the_first")
			require.Equal(t, store.StatusApplied, event(t, db, other.ID).Status)
			require.Equal(t, []string{store.OutcomeApplied}, attemptOutcomes(t, db, other.ID))
		})
	}
}

// An object that does not fit what the mirror reads, or a time no database
// column holds, is dead at its first attempt, on both engines alike: a retry
// reads the same bytes.
func TestAnObjectTheMirrorCannotHoldIsDeadAtOnce(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		eventType string
		fields    map[string]any
		err       string
	}{
		"an amount as a string": {"invoice.paid", map[string]any{"amount_paid": "100"}, "amount_paid"},
		"a period end in the year 318857": {"customer.subscription.created", map[string]any{"current_period_end": int64(10000000000000)},
			"data.object.current_period_end 10000000000000 is not a Unix time between 1970 and 9999"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			storetest.Each(t, func(t *testing.T, db *store.DB) {
				s := scenario.Generate(scenario.Config{Customers: 1, Prefix: "unfit"})
				insert(t, db, find(t, s, "customer.created"), time.Now().Add(-2*time.Second))
				unfit := withObject(t, find(t, s, tc.eventType), tc.fields)
				insert(t, db, unfit, time.Now().Add(-time.Second))

				runOnce(t, db, "unfit")
				ev := event(t, db, unfit.ID)
				require.Equal(t, store.StatusDead, ev.Status)
				require.Equal(t, 1, ev.Attempts)
				require.Contains(t, ev.LastError, tc.err)
			})
		})
	}
}

// PostgreSQL's text holds no NUL: the mirror writes U+FFFD in its place, on
// both engines, instead of the customer never being written there.
func TestAMirrorTextWithANULIsWritten(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		s := scenario.Generate(scenario.Config{Customers: 1, Prefix: "nul"})
		created := withObject(t, find(t, s, "customer.created"), map[string]any{"name": "a\x00b"})
		insert(t, db, created, time.Now().Add(-time.Second))

		runOnce(t, db, "nul")
		require.Equal(t, store.StatusApplied, event(t, db, created.ID).Status)
		require.Equal(t, "a\uFFFDb", onlyCustomer(t, db).Name)
	})
}
