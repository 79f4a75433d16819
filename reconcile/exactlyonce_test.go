package reconcile_test

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/internal/scenario"
	"github.com/orderhook/orderhook/reconcile"
	"github.com/orderhook/orderhook/store"
	"github.com/orderhook/orderhook/store/storetest"
)

// Two reconcilers with separate connection pools, as two processes would
// have, share one PostgreSQL database while a shuffled, duplicated scenario
// is inserted concurrently: every event is applied exactly once and the
// mirror is the in-order one.
func TestTwoReconcilersApplyExactlyOnce(t *testing.T) {
	t.Parallel()
	url := storetest.PostgresURL(t)
	a, b := storetest.Open(t, url), storetest.Open(t, url)
	s := scenario.Generate(scenario.Config{Customers: 25, Seed: 42, Prefix: "two"})

	applied := make(chan reconcile.Transition, 10000)
	for i, db := range []*store.DB{a, b} {
		startWorker(t, db, reconcile.Config{
			Name: []string{"a", "b"}[i], Workers: 4, PollInterval: 20 * time.Millisecond,
			OnTransition: func(tr reconcile.Transition) {
				if tr.Outcome == store.OutcomeApplied {
					applied <- tr
				}
			},
		})
	}

	deliveries := s.Shuffled(rand.New(rand.NewPCG(42, 1)), 0.3, 4)
	var wg sync.WaitGroup
	for i, db := range []*store.DB{a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := i; j < len(deliveries); j += 4 {
				insert(t, db, deliveries[j], time.Now())
			}
		}()
	}
	wg.Wait()

	seen := map[string]string{}
	timeout := time.After(60 * time.Second)
	for len(seen) < len(s.Events) {
		select {
		case tr := <-applied:
			require.NotContains(t, seen, tr.EventID, "applied twice, by %s and %s", seen[tr.EventID], tr.Worker)
			seen[tr.EventID] = tr.Worker
		case <-timeout:
			t.Fatalf("applied %d of %d events", len(seen), len(s.Events))
		}
	}
	requireExactlyOnce(t, a, s)
	requireMirror(t, a, s.Want)
}

// requireExactlyOnce checks the history: one applied attempt per event, and
// nothing left pending or deferred.
func requireExactlyOnce(t *testing.T, db *store.DB, scenarios ...scenario.Scenario) {
	t.Helper()
	var rows []struct {
		EventID string `db:"event_id"`
		N       int    `db:"n"`
	}
	require.NoError(t, db.SQLX().Select(&rows, `SELECT event_id, count(*) AS n FROM event_attempts WHERE outcome = 'applied' GROUP BY event_id`))
	counts := map[string]int{}
	for _, r := range rows {
		counts[r.EventID] = r.N
	}
	total := 0
	for _, s := range scenarios {
		for _, ev := range s.Events {
			require.Equal(t, 1, counts[ev.ID], "applied attempts of %s (%s)", ev.ID, ev.Type)
			total++
		}
	}
	require.Len(t, counts, total)
	var open int
	require.NoError(t, db.SQLX().Get(&open, `SELECT count(*) FROM webhook_events WHERE status <> 'applied'`))
	require.Zero(t, open, "events not applied")
}

// requireMirror compares the mirror with the scenario's in-order result,
// field for field (which event wrote a row may differ on exact ties).
func requireMirror(t *testing.T, db *store.DB, want scenario.Want) {
	t.Helper()
	got := readMirror(t, db)
	require.Equal(t, want.Customers, got.Customers)
	require.Equal(t, want.Subscriptions, got.Subscriptions)
	require.Equal(t, want.Invoices, got.Invoices)
}

func readMirror(t *testing.T, db *store.DB) scenario.Want {
	t.Helper()
	m, err := db.Mirror(context.Background())
	require.NoError(t, err)
	got := scenario.Want{Customers: map[string]scenario.Customer{}, Subscriptions: map[string]scenario.Subscription{}, Invoices: map[string]scenario.Invoice{}}
	for _, c := range m.Customers {
		got.Customers[c.ID] = scenario.Customer{Email: c.Email, Name: c.Name, Deleted: c.Deleted}
	}
	for _, s := range m.Subscriptions {
		got.Subscriptions[s.ID] = scenario.Subscription{CustomerID: s.CustomerID, Status: s.Status, CancelAtPeriodEnd: s.CancelAtPeriodEnd}
	}
	for _, in := range m.Invoices {
		got.Invoices[in.ID] = scenario.Invoice{CustomerID: in.CustomerID, SubscriptionID: in.SubscriptionID, Status: in.Status, AmountDue: in.AmountDue, AmountPaid: in.AmountPaid}
	}
	return got
}

// An event received by one replica wakes the workers of another at once:
// the worker's poll interval is an hour, so only LISTEN/NOTIFY can deliver
// the wake-up, for each insert. (The batch that applies the customer
// applies the invoice it releases itself, so no NOTIFY of the release is
// owed here: TestBatchApplyingWhatItReleasesNotifiesNobody.)
func TestNotifyWakesWorkersOfAnotherReplica(t *testing.T) {
	t.Parallel()
	url := storetest.PostgresURL(t)
	receiver, worker := storetest.Open(t, url), storetest.Open(t, url)
	s := scenario.Generate(scenario.Config{Customers: 1, Prefix: "notify"})
	h := startWorker(t, worker, reconcile.Config{PollInterval: time.Hour})
	paid, created := find(t, s, "invoice.paid"), find(t, s, "customer.created")

	insert(t, receiver, paid, time.Now())
	h.waitOutcome(t, paid.ID, store.OutcomeDeferred)
	insert(t, receiver, created, time.Now())
	h.waitOutcome(t, paid.ID, store.OutcomeApplied)
}
