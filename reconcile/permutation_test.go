package reconcile_test

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/orderhook/orderhook/internal/deliver"
	"github.com/orderhook/orderhook/internal/scenario"
	"github.com/orderhook/orderhook/reconcile"
	"github.com/orderhook/orderhook/store"
	"github.com/orderhook/orderhook/store/storetest"
	"github.com/orderhook/orderhook/webhook"
)

// The convergence property: however a billing scenario is delivered — each
// of many random orders, with random duplicates, concurrently, through HTTP,
// to a server with four workers — the final mirror equals the in-order
// mirror, every event is applied exactly once, and nothing is left waiting.
// The mirror shows the supersede rules, not the order of application (an
// invoice applied before its customer would leave the same rows), and the
// four loops partition the customers, so they do not contend: the order is
// checked by TestReplicas's requireCustomerOrder and the bench's
// --late-customers test, contention by TestTwoReconcilersApplyExactlyOnce.
//
// Each order is a full scenario of 20 customers under its own id prefix, so
// all orders share one database and one run. By default PostgreSQL checks 200
// orders and SQLite 8: under the race detector the transpiled SQLite engine
// runs about four times slower. ORDERHOOK_PERMUTATIONS sets the number of
// orders for both (`make test-full` uses 200).
func TestPermutationsConvergeToTheInOrderMirror(t *testing.T) {
	t.Parallel()
	override := 0
	if v := os.Getenv("ORDERHOOK_PERMUTATIONS"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err)
		override = n
	}
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		orders := 200
		if db.Dialect() == store.SQLite {
			orders = 8
		}
		orders = cmp.Or(override, orders)
		seed := uint64(time.Now().UnixNano())
		t.Logf("seed %d (orders %d)", seed, orders)
		rng := rand.New(rand.NewPCG(seed, 0))

		var scenarios []scenario.Scenario
		var deliveries []deliver.Event
		want := scenario.Want{Customers: map[string]scenario.Customer{}, Subscriptions: map[string]scenario.Subscription{}, Invoices: map[string]scenario.Invoice{}}
		for o := range orders {
			s := scenario.Generate(scenario.Config{Customers: 20, Seed: rng.Uint64(), Prefix: fmt.Sprintf("p%03d", o)})
			scenarios = append(scenarios, s)
			merge(want, s.Want)
			for _, ev := range s.Shuffled(rng, 0.2, 3) {
				d, err := deliver.NewEvent(ev.Type, ev.Payload)
				require.NoError(t, err)
				deliveries = append(deliveries, d)
			}
		}
		total := 0
		for _, s := range scenarios {
			total += len(s.Events)
		}

		applied := make(chan reconcile.Transition, total*2)
		startWorker(t, db, reconcile.Config{
			Workers: 4, PollInterval: 50 * time.Millisecond,
			OnTransition: func(tr reconcile.Transition) {
				if tr.Outcome == store.OutcomeApplied {
					applied <- tr
				}
			},
		})
		url := serveWebhooks(t, db, "whsec_permutations")
		sender, err := deliver.New(deliver.Config{URL: url, Secrets: []string{"whsec_permutations"}, Concurrency: 16})
		require.NoError(t, err)
		defer sender.CloseIdleConnections()
		report, err := sender.Run(context.Background(), deliveries, nil)
		require.NoError(t, err)
		require.NoError(t, report.Err())
		require.Equal(t, len(deliveries), report.Status[200], "every delivery answered 200")

		// Slow is allowed (the race detector slows SQLite a lot); stuck is
		// not: fail when a minute passes without an application.
		seen := map[string]bool{}
		stall := time.NewTimer(time.Minute)
		defer stall.Stop()
		for len(seen) < total {
			select {
			case tr := <-applied:
				require.False(t, seen[tr.EventID], "%s applied twice", tr.EventID)
				seen[tr.EventID] = true
				stall.Reset(time.Minute)
			case <-stall.C:
				t.Fatalf("nothing applied for a minute: %d of %d events applied", len(seen), total)
			}
		}
		requireExactlyOnce(t, db, scenarios...)
		requireMirror(t, db, want)
		t.Logf("%d orders, %d events, %d deliveries in %s (%.0f/s)", orders, total, len(deliveries), report.Duration, report.Rate())
	})
}

// serveWebhooks serves the receiver over db on a test server and returns its
// endpoint URL.
func serveWebhooks(t *testing.T, db *store.DB, secret string) string {
	t.Helper()
	h, err := webhook.NewHandler(webhook.Config{Secrets: []string{secret}, Tolerance: 5 * time.Minute}, db, nil, zerolog.Nop())
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL + "/webhooks/stripe"
}

func merge(into, from scenario.Want) {
	for k, v := range from.Customers {
		into.Customers[k] = v
	}
	for k, v := range from.Subscriptions {
		into.Subscriptions[k] = v
	}
	for k, v := range from.Invoices {
		into.Invoices[k] = v
	}
}
